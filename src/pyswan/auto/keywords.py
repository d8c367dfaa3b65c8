"""The ipsec.conf keyword tables (`config setup` and `conn`).

Modelled on Libreswan 5.x (lib/libswan/ipsecconf/setup.c and conn.c): each
keyword has a canonical name, a value type, a default and, for `conn`, whether
it comes in `left…`/`right…` variants.  Aliases map onto a canonical keyword;
obsolete keywords are accepted, warned about and dropped.

The parser only needs names and shapes from here; values are validated in one
place, `pyswan.auto.extract`, which uses the `vtype`/`choices` recorded here.

Canonical wire naming (docs/architecture.md): a per-end keyword is named
without its prefix and `left=`/`right=` itself is the keyword `host`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "Section",
    "Keyword",
    "KeyMatch",
    "KeywordError",
    "SETUP_KEYWORDS",
    "CONN_KEYWORDS",
    "SETUP_ALIASES",
    "CONN_ALIASES",
    "SETUP_OBSOLETE",
    "CONN_OBSOLETE",
    "lookup_setup",
    "lookup_conn",
    "conn_keyword",
    "setup_keyword",
    "display_name",
    "is_x_comment",
]


class Section(StrEnum):
    SETUP = "config setup"
    CONN = "conn"
    CONN_DEFAULT = "conn %default"


@dataclass(frozen=True, slots=True)
class Keyword:
    """One ipsec.conf keyword.

    vtype names the value parser extract uses: ``string``, ``yn``, ``enum``,
    ``duration``, ``duration_ms``, ``percent``, ``uint``, ``bytes``,
    ``packets``, ``host``, ``nexthop``, ``subnet``, ``subnets``, ``addrs``,
    ``addr``, ``cidr``, ``id``, ``pubkey``, ``protoport``, ``port``, ``pool``,
    ``mark``, ``proposals``, ``list``, ``also``.
    """

    name: str
    vtype: str = "string"
    default: object = None
    choices: tuple[str, ...] = ()
    per_end: bool = False
    duplicate_ok: bool = False  # also= may repeat
    append: bool = False  # connalias=/subnets= accumulate
    optarg_only: bool = False  # config setup: command line only
    doc: str = ""


def _k(name: str, vtype: str = "string", default: object = None,
       choices: tuple[str, ...] = (), **kw: object) -> Keyword:
    return Keyword(name, vtype, default, choices, **kw)  # type: ignore[arg-type]


_YN = ("yes", "no")

# ---------------------------------------------------------------------------
# config setup (setup.c config_setup_keyword[] + config_setup_defaults[])
# ---------------------------------------------------------------------------

_SETUP_LIST: Final[list[Keyword]] = [
    _k("ikev1-policy", "enum", "drop", ("accept", "reject", "drop")),
    _k("curl-iface"),
    _k("myvendorid", default="OE-Libreswan-5.4"),
    _k("plutodebug", default=None),
    _k("logfile"),
    _k("loglimit", "yn", True),
    _k("logtime", "yn", True),
    _k("logappend", "yn", True),
    _k("logip", "yn", True),
    _k("audit-log", "yn", True),
    _k("dnssec-enable", "yn", True),
    _k("dnssec-rootkey-file", default="/var/lib/unbound/root.key"),
    _k("dnssec-anchors"),
    _k("dumpdir", default="/run/pluto"),
    _k("ipsecdir", default="/etc/ipsec.d"),
    _k("nssdir", default="/var/lib/ipsec/nss"),
    _k("exampledir", optarg_only=True),
    _k("rundir", default="/run/pluto", optarg_only=True),
    _k("logstderr", optarg_only=True),
    _k("secretsfile", default="/etc/ipsec.secrets"),
    _k("statsbin"),
    _k("uniqueids", "yn", True),
    _k("shuntlifetime", "duration", 900.0),
    _k("global-redirect", "enum", "no", ("no", "yes", "auto")),
    _k("global-redirect-to"),
    _k("crl-strict", "yn", False),
    _k("crlcheckinterval", "duration", 0.0),
    _k("crl-timeout", "duration", 5.0),
    _k("ocsp-strict", "yn", False),
    _k("ocsp-enable", "yn", False),
    _k("ocsp-uri"),
    _k("ocsp-timeout", "duration", 2.0),
    _k("ocsp-trustname"),
    _k("ocsp-cache-size", "uint", 1000),
    _k("ocsp-cache-min-age", "duration", 3600.0),
    _k("ocsp-cache-max-age", "duration", 86400.0),
    _k("ocsp-method", "enum", "get", ("get", "post")),
    _k("seccomp", "enum", "disabled", ("enabled", "disabled", "tolerant")),
    _k("ddos-mode", "enum", "auto", ("auto", "busy", "unlimited")),
    _k("ddos-ike-threshold", "uint", 25000),
    _k("max-halfopen-ike", "uint", 50000),
    _k("ike-socket-bufsize", "uint", None),
    _k("ike-socket-errqueue", "yn", True),
    _k("expire-lifetime", "duration", 30.0),
    _k("virtual-private"),
    _k("seeddev", default="/dev/random"),
    _k("seedbits", "uint", 0),
    _k("keep-alive", "duration", 20.0),
    _k("listen-tcp", "yn", False),
    _k("listen-udp", "yn", True),
    _k("listen"),
    _k("protostack", default="xfrm"),
    _k("nhelpers", "int", -1),
    _k("drop-oppo-null", "yn", False),
    _k("expire-shunt-interval", "duration", 20.0),
    _k("dns-resolver", default="file"),
    _k("ipsec-interface-managed", "yn", True),
    _k("nflog-all", "uint", 0),
]

SETUP_KEYWORDS: Final[dict[str, Keyword]] = {k.name: k for k in _SETUP_LIST}
SETUP_ALIASES: Final[dict[str, str]] = {
    "curl-timeout": "crl-timeout",
    "xfrmlifetime": "expire-lifetime",
}
SETUP_OBSOLETE: Final[frozenset[str]] = frozenset({
    "syslog", "plutostderrlog", "virtual_private", "interfaces",
    "ikev1-secctx-attr-type", "secctx-attr-type",
})

# ---------------------------------------------------------------------------
# conn (conn.c config_conn_keyword[]; defaults from programs/pluto/extract.c)
# ---------------------------------------------------------------------------


def _e(name: str, vtype: str = "string", default: object = None,
       choices: tuple[str, ...] = ()) -> Keyword:
    return Keyword(name, vtype, default, choices, per_end=True)


_CONN_LIST: Final[list[Keyword]] = [
    # per-end ("left…"/"right…")
    _e("host", "host"),  # left= / right=
    Keyword("subnets", "subnets", per_end=True, append=True),
    _e("subnet", "subnet"),
    _e("sourceip", "addrs"),
    _e("ikeport", "port"),
    _e("interface-ip", "cidr"),
    _e("vti", "cidr"),
    _e("nexthop", "nexthop"),
    _e("updown", "string", "ipsec _updown"),
    _e("updown-config", "flags", None, ("exec", "async")),
    _e("id", "id"),
    _e("rsasigkey", "pubkey"),
    _e("ecdsakey", "pubkey"),
    _e("eddsakey", "pubkey"),
    _e("pubkey", "pubkey"),
    _e("cert"),
    _e("ckaid"),
    _e("sendcert", "enum", "always", ("always", "sendifasked", "never")),
    _e("ca"),
    _e("xauthserver", "yn", False),
    _e("xauthclient", "yn", False),
    _e("modecfgserver", "yn", False),
    _e("modecfgclient", "yn", False),
    _e("username"),
    _e("addresspool", "pool"),
    _e("auth", "enum", None, ("never", "secret", "rsasig", "ecdsa", "eddsa", "null", "eaponly")),
    _e("cat", "yn", False),
    _e("protoport", "protoport"),
    _e("autheap", "enum", "none", ("none", "tls")),
    _e("groundhog", "yn", False),
    # connection-wide
    Keyword("also", "also", duplicate_ok=True),
    Keyword("connalias", "list", append=True),
    _k("debug"),
    _k("auto", "enum", "ignore", ("ignore", "add", "ondemand", "up", "keep")),
    _k("hostaddrfamily", "enum", None, ("ipv4", "ipv6")),
    _k("authby", "list"),
    _k("keyexchange", "enum", "ikev2", ("ikev1", "ikev2", "ike")),
    _k("ikev2", "enum", None, ("no", "never", "permit", "yes", "propose", "insist", "always")),
    _k("ppk", "enum", None, ("never", "permit", "propose", "insist")),
    _k("ppk-ids", "list"),
    _k("intermediate", "yn", False),
    _k("esn", "enum", "either", ("yes", "no", "either")),
    _k("decap-dscp", "yn", False),
    _k("encap-dscp", "yn", True),
    _k("nopmtudisc", "yn", False),
    _k("fragmentation", "enum", "yes", ("yes", "no", "force")),
    _k("mobike", "yn", False),
    _k("narrowing", "yn", False),
    _k("pam-authorize", "yn", False),
    _k("send-redirect", "enum", None, ("yes", "no", "auto")),
    _k("redirect-to", "list"),
    _k("accept-redirect", "yn", False),
    _k("accept-redirect-to", "list"),
    _k("pfs", "yn", True),
    _k("session-resumption", "yn", False),
    _k("send-supported-auth-methods", "yn", False),
    _k("nat-keepalive", "yn", True),
    _k("initial-contact", "yn", False),
    _k("send-esp-tfc-padding-not-supported", "yn", False),
    _k("reject-simultaneous-ike-auth", "yn", False),
    _k("iptfs", "yn", False),
    _k("iptfs-fragmentation", "yn", True),
    _k("iptfs-packet-size", "bytes", 0),
    _k("iptfs-max-queue-size", "bytes", 1000000),
    _k("iptfs-reorder-window", "uint", 3),
    _k("iptfs-init-delay", "duration", 0.0),
    _k("iptfs-drop-time", "duration", 1.0),
    _k("fake-strongswan", "yn", False),
    _k("send-vendorid", "yn", False),
    _k("sha2-truncbug", "yn", False),
    _k("share-lease", "yn", True),
    _k("ms-dh-downgrade", "yn", False),
    _k("pfs-rekey-workaround", "yn", False),
    _k("require-id-on-certificate", "yn", True),
    # Libreswan's table literally spells this "dns-match-id," (so HEAD never
    # matches it); pyswan accepts the intended spelling.
    _k("dns-match-id", "yn", False),
    _k("ipsec-max-bytes", "bytes", 2**63),
    _k("ipsec-max-packets", "packets", 2**63),
    _k("ipsec-lifetime", "duration", 28800.0),
    _k("retransmit-timeout", "duration", 60.0),
    _k("retransmit-interval", "duration_ms", 500),
    _k("ikepad", "enum", None, ("yes", "no", "auto")),
    _k("nat-ikev1-method", "enum", "both", ("both", "rfc", "drafts", "none")),
    _k("sec-label"),
    _k("remote-peer-type", "enum", "ietf", ("ietf", "cisco")),
    _k("nm-configured", "yn", False),
    _k("cisco-unity", "yn", False),
    _k("cisco-split", "yn", False),
    _k("xauthby", "enum", "file", ("file", "pam", "alwaysok")),
    _k("xauthfail", "enum", "hard", ("hard", "soft")),
    _k("modecfgpull", "yn", False),
    _k("modecfgdns", "addrs"),
    _k("modecfgdomains", "list"),
    _k("modecfgbanner"),
    _k("ignore-peer-dns", "yn", False),
    _k("mark", "mark"),
    _k("mark-in", "mark"),
    _k("mark-out", "mark"),
    _k("vti-interface"),
    _k("vti-routing", "yn", False),
    _k("vti-shared", "yn", False),
    _k("ipsec-interface", "ipsec_interface", None),
    _k("clones", "uint", None),
    _k("nic-offload", "enum", "no", ("no", "crypto", "packet")),
    _k("encapsulation", "enum", "auto", ("yes", "no", "auto")),
    _k("overlapip", "yn", False),
    _k("reauth", "yn", False),
    _k("rekey", "yn", True),
    _k("rekeymargin", "duration", 540.0),
    _k("rekeyfuzz", "percent", 100),
    _k("replay-window", "uint", 128),
    _k("ikelifetime", "duration", 28800.0),
    _k("type", "enum", "tunnel", ("tunnel", "transport", "passthrough", "drop")),
    _k("failureshunt", "enum", "none", ("none", "pass", "drop")),
    _k("negotiationshunt", "enum", "drop", ("pass", "drop")),
    _k("enable-tcp", "enum", "no", ("no", "yes", "fallback")),
    _k("tcp-remoteport", "port", 4500),
    _k("ike", "proposals"),
    _k("esp", "proposals"),
    _k("ah", "proposals"),
    _k("phase2", "enum", "esp", ("esp", "ah")),
    _k("phase2alg", "proposals"),
    _k("compress", "yn", False),
    _k("metric", "uint", None),
    _k("dpddelay", "duration", 0.0),
    _k("dpdtimeout", "duration", 0.0),
    _k("sendca", "enum", "all", ("none", "issuer", "all")),
    _k("mtu", "bytes", None),
    _k("priority", "uint", 0),
    _k("tfc", "uint", 0),
    _k("reqid", "uint", None),
    _k("nflog-group", "uint", 0),
    _k("aggressive", "yn", False),
]

CONN_KEYWORDS: Final[dict[str, Keyword]] = {k.name: k for k in _CONN_LIST}
CONN_ALIASES: Final[dict[str, str]] = {
    "aggrmode": "aggressive",
    "keylife": "ipsec-lifetime",
    "lifetime": "ipsec-lifetime",
    "salifetime": "ipsec-lifetime",
    "ikev1-dpdtimeout": "dpdtimeout",
    "nflog": "nflog-group",
    "xauthusername": "username",  # per-end, NetworkManager-libreswan
    "policy-label": "sec-label",
    "remote_peer_type": "remote-peer-type",
    "send-no-esp-tfc": "send-esp-tfc-padding-not-supported",
}
CONN_OBSOLETE: Final[frozenset[str]] = frozenset({"dpdaction", "clientaddrfamily", "keyingtries"})

_PER_END_NAMES: Final[list[str]] = [k.name for k in _CONN_LIST if k.per_end] + [
    a for a, t in CONN_ALIASES.items() if CONN_KEYWORDS[t].per_end
]


class KeywordError(ValueError):
    """An unknown or misplaced keyword; message is Libreswan's wording."""


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """Result of looking up a raw ipsec.conf key.

    end is ``left``/``right`` for a per-end keyword, else ``""``.  keyword is
    None for obsolete keys (warned about and dropped).  spelled is what the
    user's key resolves to for messages (``leftsubnet``, ``salifetime``).
    """

    end: str
    keyword: Keyword | None
    spelled: str
    alias: str | None = None

    @property
    def obsolete(self) -> bool:
        return self.keyword is None


def is_x_comment(key: str) -> bool:
    """`x-foo`/`X_foo` keys are comments (scanner rule ``[Xx][_-]…``)."""
    return len(key) > 2 and key[0] in "xX" and key[1] in "_-"


def lookup_setup(key: str) -> KeyMatch:
    """Find a `config setup` keyword; raises KeywordError when unknown."""
    low = key.lower()
    kw = SETUP_KEYWORDS.get(low)
    if kw is not None:
        if kw.optarg_only:
            raise KeywordError(
                f"'config setup' keyword '{key}' invalid; use command line option")
        return KeyMatch("", kw, kw.name)
    target = SETUP_ALIASES.get(low)
    if target is not None:
        return KeyMatch("", SETUP_KEYWORDS[target], low, alias=low)
    if low in SETUP_OBSOLETE:
        return KeyMatch("", None, low)
    raise KeywordError(f"unrecognized 'config setup' keyword '{key}'")


def _strip_end(low: str) -> tuple[str, str] | None:
    """Split `leftfoo`, `left-foo`, `left` into (end, rest)."""
    for end in ("left", "right"):
        if low.startswith(end):
            rest = low[len(end):]
            if rest == "":
                return end, "host"
            if rest.startswith("-"):
                rest = rest[1:]
            return end, rest
    return None


def lookup_conn(key: str, section: Section = Section.CONN) -> KeyMatch:
    """Find a `conn` keyword, handling the left/right prefix.

    Mirrors parser.y::parser_find_key: an exact (case-insensitive) match wins;
    a per-end keyword given without prefix is an error; `also=` is not
    allowed in `conn %default`.
    """
    low = key.lower()
    if low == "host":
        # `host` is only the wire name; in a file it must be left=/right=
        raise KeywordError(f"unrecognized '{section.value}' keyword '{key}'")
    kw = CONN_KEYWORDS.get(low)
    alias = None
    if kw is None and low in CONN_ALIASES:
        alias = low
        kw = CONN_KEYWORDS[CONN_ALIASES[low]]
    if kw is not None:
        if kw.name == "also" and section is Section.CONN_DEFAULT:
            raise KeywordError(f"unrecognized '{section.value}' keyword '{key}'")
        if kw.per_end:
            raise KeywordError(f'keyword "{low}" requires "left" or "right" prefix')
        return KeyMatch("", kw, alias or kw.name, alias=alias)
    if low in CONN_OBSOLETE:
        return KeyMatch("", None, low)
    split = _strip_end(low)
    if split is not None:
        end, rest = split
        kw = CONN_KEYWORDS.get(rest)
        alias = None
        if kw is None and rest in CONN_ALIASES:
            alias = rest
            kw = CONN_KEYWORDS[CONN_ALIASES[rest]]
        if kw is not None and kw.per_end:
            spelled = end + ("" if kw.name == "host" else (alias or kw.name))
            return KeyMatch(end, kw, spelled, alias=alias)
    raise KeywordError(f"unrecognized '{section.value}' keyword '{key}'")


def conn_keyword(name: str) -> Keyword:
    """The canonical conn keyword called `name` (wire form, e.g. ``host``)."""
    return CONN_KEYWORDS[name]


def setup_keyword(name: str) -> Keyword:
    return SETUP_KEYWORDS[name]


def display_name(end: str, keyword: str) -> str:
    """How Libreswan names a keyword in messages: ``left``, ``leftsubnet``."""
    if keyword == "host":
        return end
    return f"{end}{keyword}"
