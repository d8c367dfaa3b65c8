"""Turn a conn's keyword triples into a typed `ConnectionConfig`.

This is pyswan's counterpart of Libreswan 5.x programs/pluto/extract.c:
every conn value is validated here, once, whether the connection came from
ipsec.conf (`ipsec add`, pluto at start-up, `ipsec checkconfig`) or from a
whack command line.  Checks run in Libreswan's order so the first error a
user sees is the one Libreswan would print, with the same wording.

Warnings are collected as bare messages (no `"conn": ` prefix, no
`warning: `); whoever prints them adds those.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pyswan.auto import values as V
from pyswan.auto.connconfig import ConnectionConfig, EndConfig, SetupConfig, Triple
from pyswan.auto.keywords import (
    CONN_ALIASES,
    CONN_KEYWORDS,
    SETUP_KEYWORDS,
    KeywordError,
    lookup_setup,
)

__all__ = ["ConnError", "SetupError", "extract_conn", "extract_setup", "DEBUG_NAMES",
           "canonical_triples"]

_ENDS = ("left", "right")
_IPSEC_MANUAL_REQID_MAX = 0x3FFF
_IFNAMSIZ = 16
_MAX_LIFETIME = 86400.0  # IKE_SA_LIFETIME_MAXIMUM / IPSEC_SA_LIFETIME_MAXIMUM
_SA_MAX_OPERATIONS = 2**63
_POOL_LIMIT = 3 * 2**30  # "limiting the address pool ... to 3Gi addresses"

DEBUG_NAMES = frozenset({
    "none", "all", "base", "tmi", "routing", "cpu-usage", "refcnt", "updown", "crypt",
    "private", "whackwatch", "add-prefix", "add-state",
})


class ConnError(ValueError):
    """A connection Libreswan would refuse to add.

    str() is Libreswan's line, `"NAME": failed to add connection: REASON`;
    `reason` is the bare text, `end`/`keyword` name the culprit when known.
    """

    def __init__(self, name: str, reason: str, *, end: str = "", keyword: str | None = None,
                 warnings: Sequence[str] = ()) -> None:
        super().__init__(f'"{name}": failed to add connection: {reason}')
        self.name = name
        self.reason = reason
        self.end = end
        self.keyword = keyword
        self.warnings = list(warnings)


class SetupError(ConnError):
    """An invalid `config setup` value; str() names file:line when known.

    A ConnError subclass so callers catching ConnError see both kinds.
    """

    def __init__(self, message: str, *, keyword: str, file: str | None = None,
                 line: int | None = None) -> None:
        where = f"{file}:{line}: " if file is not None and line is not None else ""
        ValueError.__init__(self, f"{where}error: {message}")
        self.name = "config setup"
        self.reason = message
        self.end = ""
        self.warnings = []
        self.message = message
        self.keyword = keyword
        self.file = file
        self.line = line


class _Fail(Exception):
    """Internal: carries a reason up to extract_conn()."""

    def __init__(self, reason: str, end: str = "", keyword: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.end = end
        self.keyword = keyword


# ---------------------------------------------------------------------------
# the keyword "whack message": canonical triples indexed by end and keyword
# ---------------------------------------------------------------------------


def canonical_triples(triples: Iterable[Triple]) -> list[Triple]:
    """Map aliases onto canonical names; raise KeywordError for unknown keys.

    The first value of a keyword wins, except append keywords (connalias=,
    subnets=) which accumulate space separated, as Libreswan's confread does.
    """
    out: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    for end, key, value in triples:
        name = CONN_ALIASES.get(key, key)
        kw = CONN_KEYWORDS.get(name)
        if kw is None or kw.name == "also":
            raise KeywordError(f"unrecognized 'conn' keyword '{key}'")
        if kw.per_end and end not in _ENDS:
            raise KeywordError(f'keyword "{name}" requires "left" or "right" prefix')
        if not kw.per_end and end:
            raise KeywordError(f"unrecognized 'conn' keyword '{end}{key}'")
        k = (end, name)
        if k in out:
            if kw.append:
                out[k] = f"{out[k]} {value}"
            continue
        out[k] = value
        order.append(k)
    return [(e, n, out[(e, n)]) for e, n in order]


@dataclass
class _Wm:
    """The conn being extracted: values by (end, keyword) plus warnings."""

    name: str
    values: dict[tuple[str, str], str]
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    never_negotiate: bool = False
    type_text: str | None = None

    def get(self, key: str, end: str = "") -> str | None:
        return self.values.get((end, key))

    def has(self, key: str, end: str = "") -> bool:
        return (end, key) in self.values

    def warn(self, msg: str) -> None:
        """Libreswan's vwarning(): printed as `warning: "conn": msg`."""
        self.warnings.append(msg)

    def note(self, msg: str) -> None:
        """Libreswan's vlog(): printed as `"conn": msg`."""
        self.notices.append(msg)

    # --- Libreswan's extract_*() helpers ---------------------------------

    def kv(self, key: str, end: str = "") -> str:
        """PRI_KV: `"leftsubnet=value"`."""
        return f'"{_disp(end, key)}={self.get(key, end) or ""}"'

    def nn_ignored(self, key: str, end: str = "") -> bool:
        """never-negotiate: warn that a set option is ignored; True if so."""
        if not self.never_negotiate:
            return False
        value = self.get(key, end)
        if value is not None:
            self.warn(f'"{_disp(end, key)}={value}" ignored for never-negotiate '
                      f'("type={self.type_text}") connection')
        return True

    def string(self, key: str, end: str = "") -> str | None:
        if self.nn_ignored(key, end):
            return None
        return self.get(key, end)

    def sparse(self, key: str, table: V.Sparse, unset: str | None, end: str = "",
               *, nn: bool = True) -> str | None:
        if nn and self.nn_ignored(key, end):
            return unset
        value = self.get(key, end)
        if value is None:
            return unset
        return self._lookup(key, table, value, end)

    def _lookup(self, key: str, table: V.Sparse, value: str, end: str = "") -> str:
        try:
            canonical, note = table.lookup(value)
        except V.InvalidValue as e:
            raise _Fail(f"{self.kv(key, end)} {e}", end, key) from None
        if note == "implemented_as":
            self.warn(f'{self.kv(key, end)} implemented as "{canonical}"')
        return canonical

    def yn(self, key: str, unset: bool, end: str = "") -> bool:
        got = self.sparse(key, V.YN, None, end)
        return unset if got is None else got == "yes"

    def duration(self, key: str, unset: float, end: str = "") -> float:
        value = self.string(key, end)
        if value is None:
            return unset
        try:
            return V.parse_duration(value)
        except V.InvalidValue as e:
            raise _Fail(f"{self.kv(key, end)} invalid, {e}", end, key) from None

    def uint(self, key: str, unset: int | None, *, lo: int = 0, hi: int = 0,
             end: str = "", story: str = "") -> int | None:
        value = self.string(key, end)
        if value is None:
            return unset
        try:
            n = V.parse_uint(value)
        except V.InvalidValue as e:
            raise _Fail(f"{self.kv(key, end)} invalid, {e}", end, key) from None
        return _check_range(story, end, key, n, lo, hi)

    def scaled(self, key: str, scales: object, unset: int | None, *, clamp: int = 0,
               story: str = "") -> int | None:
        value = self.string(key)
        if value is None:
            return unset
        try:
            n = V.parse_scaled(value, scales)  # type: ignore[arg-type]
        except V.InvalidValue as e:
            raise _Fail(f"{self.kv(key)} invalid, {e}", "", key) from None
        if clamp and n > clamp:
            self.note(f"{story} {key}={n} clamped to the maximum {clamp}")
            return clamp
        return n


def _disp(end: str, key: str) -> str:
    return end if key == "host" else f"{end}{key}"


def _check_range(story: str, end: str, key: str, n: int, lo: int, hi: int) -> int:
    pre = f"{story} " if story else ""
    name = _disp(end, key)
    if lo and hi and not lo <= n <= hi:
        raise _Fail(f"{pre}{name}={n} invalid, must be in the range {lo}-{hi}", end, key)
    if lo and n < lo:
        raise _Fail(f"{pre}{name}={n} invalid, minimum is {lo}", end, key)
    if hi and n > hi:
        raise _Fail(f"{name}={n} invalid, maximum is {hi}", end, key)
    return n


# ---------------------------------------------------------------------------
# authby= (extract_authby)
# ---------------------------------------------------------------------------

_RSA = {"rsasig", "rsasig_v1_5"}


def _parse_authby(wm: _Wm, ike_version: int) -> set[str]:
    """authby= -> set of bits: psk rsasig rsasig_v1_5 ecdsa eddsa null never."""
    if wm.never_negotiate:
        return {"never"}
    text = wm.get("authby")
    if text is None:
        return {"rsasig", "rsasig_v1_5"} if ike_version == 1 else \
            {"rsasig", "rsasig_v1_5", "ecdsa"}
    bits: set[str] = set()
    for val in V.split_list(text, ", ", keep_empty=True):
        if val == "secret":
            bits.add("psk")
        elif val in ("rsasig", "rsa"):
            bits |= {"rsasig", "rsasig_v1_5"}
        elif val == "never":
            bits.add("never")
        elif ike_version == 1:
            raise _Fail(f"authby={val} is not valid for IKEv1", "", "authby")
        elif val == "null":
            bits.add("null")
        elif val == "rsa-sha1":
            bits.add("rsasig_v1_5")
        elif val in ("rsa-sha2", "rsa-sha2_256", "rsa-sha2_384", "rsa-sha2_512"):
            bits.add("rsasig")
        elif val == "eddsa":
            bits.add("eddsa")
        elif val in ("ecdsa", "ecdsa-sha2", "ecdsa-sha2_256", "ecdsa-sha2_384",
                     "ecdsa-sha2_512"):
            bits.add("ecdsa")
        elif val == "ecdsa-sha1":
            raise _Fail("authby=ecdsa cannot use sha1, only sha2", "", "authby")
        else:
            raise _Fail(f"authby={val} is unknown", "", "authby")
    return bits


def _auth_from_authby(bits: set[str]) -> str | None:
    # authby.c auth_from_authby(): PSS RSA, ECDSA, EdDSA, then RSA v1.5, PSK, NULL
    for bit, auth in (("rsasig", "rsasig"), ("ecdsa", "ecdsa"), ("eddsa", "eddsa"),
                      ("rsasig_v1_5", "rsasig"), ("psk", "secret"), ("null", "null"),
                      ("never", "never")):
        if bit in bits:
            return auth
    return None


_AUTH_MASK = {"rsasig": {"rsasig", "rsasig_v1_5"}, "ecdsa": {"ecdsa"}, "eddsa": {"eddsa"}}
_AUTHBY_NAMES = {"psk": "PSK", "rsasig": "RSASIG", "rsasig_v1_5": "RSASIG_v1_5",
                 "ecdsa": "ECDSA", "eddsa": "EDDSA", "null": "AUTH_NULL", "never": "AUTH_NEVER"}


def _str_authby(bits: set[str]) -> str:
    order = ["psk", "rsasig", "ecdsa", "rsasig_v1_5", "eddsa", "null", "never"]
    return "+".join(_AUTHBY_NAMES[b] for b in order if b in bits)


# ---------------------------------------------------------------------------
# hosts (host_addrs_from_whack_message)
# ---------------------------------------------------------------------------


@dataclass
class _Afi:
    family: int | None = None
    source: str = ""

    def check(self, name: str, value: str, family: int | None) -> None:
        if family is None or family == self.family:
            return
        if self.family is None:
            self.family, self.source = family, f"{name}={value}"
            return
        raise _Fail(f"host address family IPv{self.family} from {self.source} "
                    f"conflicts with {name}={value}")


def _extract_hosts(wm: _Wm, iface_exists: Callable[[str], bool] | None
                   ) -> tuple[dict[str, V.Host], dict[str, V.Host], int]:
    afi = _Afi()
    fam_text = wm.get("hostaddrfamily")
    if fam_text is not None:
        try:
            canonical, _ = V.HOSTADDRFAMILY.lookup(fam_text)
        except V.InvalidValue:
            raise _Fail(f"hostaddrfamily={fam_text} is not unrecognized", "",
                        "hostaddrfamily") from None
        afi.check("hostaddrfamily", fam_text, 4 if canonical == "ipv4" else 6)
    hosts: dict[str, V.Host] = {}
    hops: dict[str, V.Host] = {}
    for end in _ENDS:
        for key, table in (("host", hosts), ("nexthop", hops)):
            text = wm.get(key, end)
            try:
                h = V.parse_host(text)
            except V.InvalidValue as e:
                raise _Fail(f'"{_disp(end, key)}={text}" {e}', end, key) from None
            if h.is_set:
                assert text is not None
                afi.check(_disp(end, key), text, h.family)
            table[end] = h
    family = afi.family or 4
    can_orient = False
    for end in _ENDS:
        h = hosts[end]
        if h.kind in ("addr", "defaultroute", "dns"):
            can_orient = True
        elif h.kind == "iface":
            if iface_exists is not None and not iface_exists(h.iface or ""):
                raise _Fail(f"{end}={h.text} does not appear to be an interface", end, "host")
            can_orient = True
        elif h.kind == "unset":
            raise _Fail(f"{end}= is not set", end, "host")
        elif h.kind == "direct":
            raise _Fail(f"{end}={h.text} invalid", end, "host")
    if not can_orient:
        raise _Fail(f"neither 'left={hosts['left'].text or ''}' nor "
                    f"'right={hosts['right'].text or ''}' specify the local host's IP address")
    for end in _ENDS:
        n = hops[end]
        if n.kind in ("any", "iface", "oppo", "oppogroup", "group", "dns"):
            raise _Fail(f"{end}nexthop={n.text} invalid", end, "nexthop")
        if n.kind == "unset" and hosts[end].kind == "defaultroute":
            hops[end] = V.Host(None, "defaultroute")
    return hosts, hops, family


# ---------------------------------------------------------------------------
# per-end host config (extract_host_end)
# ---------------------------------------------------------------------------

_PUBKEY_KEYS = ("rsasigkey", "ecdsakey", "eddsakey", "pubkey")


def _check_pubkey(end: str, key: str, value: str) -> None:
    """whack_pubkey_to_chunk(): 0s base64 or 0x hex raw key."""
    try:
        if value[:2].lower() == "0s":
            data = base64.b64decode(value[2:], validate=True)
        elif value[:2].lower() == "0x":
            data = bytes.fromhex(value[2:].replace("_", ""))
        else:
            data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Fail(f"{end}{key} invalid: bad key encoding", end, key) from None
    if not data:
        raise _Fail(f"{end}{key} invalid: empty key", end, key)


@dataclass
class _EndHost:
    fields: dict[str, object]
    auth: str | None
    modecfgserver: bool
    modecfgclient: bool


def _extract_host_end(wm: _Wm, end: str, other: str, hosts: dict[str, V.Host],
                      ike_version: int, authby: set[str]) -> _EndHost:
    f: dict[str, object] = {}
    opportunistic = any(hosts[e].kind in ("oppo", "oppogroup") for e in _ENDS)
    f["groundhog"] = wm.yn("groundhog", False, end)

    # id=
    id_text = wm.string("id", end)
    if id_text is not None:
        idstr = id_text
        if not idstr.startswith("@") and ",," in idstr and "=" in idstr:
            wm.warn(f"changing legacy ',,' to '\\,' in {end}id={id_text}")
            idstr = idstr.replace(",,", "\\,")
        try:
            f["id"] = V.parse_id(idstr)
        except V.InvalidValue as e:
            raise _Fail(f"{end}id={id_text} invalid, {e}", end, "id") from None
    elif not wm.never_negotiate and hosts[end].kind == "addr":
        addr = hosts[end].addr
        assert addr is not None
        f["id"] = V.parse_id(str(addr))
        f["id_from_host"] = True

    f["ca"] = wm.get("ca", end)
    f["cert"] = wm.get("cert", end)
    f["ckaid"] = wm.get("ckaid", end)

    # rsasigkey= / ecdsakey= / eddsakey= / pubkey=: only one
    pk_key: str | None = None
    pk_value: str | None = None
    for key in _PUBKEY_KEYS:
        value = wm.get(key, end)
        f[key] = value
        if value is None:
            continue
        if pk_key is not None:
            raise _Fail(f"duplicate key fields {pk_key}= and {key}=", end, key)
        pk_key, pk_value = key, value
    f["pubkey_keyword"] = pk_key
    f["pubkey"] = pk_value
    raw_pubkey = pk_value if pk_value is not None and pk_value not in V.PUBKEY_KEYWORDS \
        and pk_value != "%none" else None
    cert = wm.get("cert", end)
    ckaid = wm.get("ckaid", end)
    if cert is not None:
        if ckaid is not None:
            wm.warn(f"ignoring {end} ckaid '{ckaid}' and using {end} certificate '{cert}'")
        if raw_pubkey is not None:
            wm.warn(f"ignoring '{end}{pk_key}={raw_pubkey}' and using {end} certificate "
                    f"'{cert}'")
    elif raw_pubkey is not None:
        assert pk_key is not None
        if ckaid is not None:
            wm.warn(f"ignoring {end}ckaid={ckaid} and using {end}{pk_key}={raw_pubkey}")
        _check_pubkey(end, pk_key, raw_pubkey)
    elif ckaid is not None:
        try:
            bytes.fromhex(ckaid.replace(":", ""))
        except ValueError:
            raise _Fail(f"{end}-ckaid='{ckaid}' invalid: bad hex", end, "ckaid") from None

    f["xauthserver"] = wm.yn("xauthserver", False, end)
    f["xauthclient"] = wm.yn("xauthclient", False, end)
    f["username"] = wm.string("username", end)
    if ike_version == 2:
        for key in ("xauthserver", "xauthclient"):
            if wm.has(key, end):
                wm.warn(f'IKEv2 connection ignores "{end}{key}={wm.get(key, end)}"')

    autheap = wm.sparse("autheap", V.AUTHEAP, "none", end)
    f["autheap"] = autheap
    auth = wm.sparse("auth", V.AUTH, None, end)
    if autheap == "none" and auth == "eaponly":
        raise _Fail("leftauth/rightauth can only be 'eaponly' when using "
                    "leftautheap/rightautheap is not 'none'", end, "auth")
    f["auth_explicit"] = auth is not None
    if wm.never_negotiate and auth not in (None, "never"):
        raise _Fail(f"{end}auth={auth} option is invalid for type=passthrough connection",
                    end, "auth")

    end_authby = set(authby)
    if ike_version == 1:
        if auth is not None:
            raise _Fail(f"{end}auth= is not supported by IKEv1", end, "auth")
        auth = _auth_from_authby(authby)
        chosen = {"rsasig"} if auth == "rsasig" else \
            {"psk"} if auth == "secret" else {auth} if auth else set()
        supplied = authby - {"rsasig_v1_5", "ecdsa", "eddsa"}
        unexpected = supplied - chosen
        if unexpected:
            raise _Fail(f"additional {_str_authby(unexpected)} in authby="
                        f"{_str_authby(supplied)} is not supported by IKEv1", "", "authby")
        end_authby = chosen
    if auth in _AUTH_MASK:
        masked = end_authby & _AUTH_MASK[auth]
        if not masked:
            raise _Fail(f"{end}auth={auth} expects authby={_str_authby(_AUTH_MASK[auth])}",
                        end, "auth")
    elif auth == "secret":
        end_authby = {"psk"}
    elif auth == "null":
        end_authby = {"null"}
    elif auth is None:
        auth = _auth_from_authby(end_authby)
    if id_text == "%fromcert" and auth in ("secret", "null"):
        raise _Fail("ID cannot be specified as %fromcert if PSK or AUTH-NULL is used",
                    end, "id")
    f["auth"] = auth or "never"

    f["sendcert"] = wm.sparse("sendcert", V.SENDCERT, "always", end)
    port_text = wm.string("ikeport", end)
    if port_text is not None:
        try:
            port = V.parse_port(port_text)
        except V.InvalidValue as e:
            raise _Fail(f"{wm.kv('ikeport', end)} invalid, {e}", end, "ikeport") from None
        if port == 0:
            raise _Fail(f"{wm.kv('ikeport', end)} invalid, must be in range 1-65535",
                        end, "ikeport")
        f["ikeport"] = port

    server = wm.yn("modecfgserver", False, end)
    client = wm.yn("modecfgclient", False, end)

    def conflict(msg: str, key: str) -> None:
        if not opportunistic:
            raise _Fail(msg, end, key)

    if server and client:
        conflict(f"both {end}modecfgserver=yes and {end}modecfgclient=yes defined",
                 "modecfgserver")
    cat = wm.yn("cat", False, end)
    other_cat = wm.yn("cat", False, other)
    if server and cat:
        conflict(f"both {end}modecfgserver=yes and {end}cat=yes defined", "cat")
    if client and other_cat:
        conflict(f"both {end}modecfgclient=yes and {other}cat=yes defined", "cat")
    if server and wm.has("addresspool", end):
        conflict(f"{end}modecfgserver=yes does not expect {end}addresspool=", "modecfgserver")
    if client and wm.has("addresspool", other):
        conflict(f"{end}modecfgclient=yes does not expect {other}addresspool=", "modecfgclient")
    if cat and wm.has("addresspool", other):
        conflict(f"both {end}cat=yes and {other}addresspool= defined", "cat")
    return _EndHost(f, auth, server, client)


# ---------------------------------------------------------------------------
# per-end child config (extract_child_end_config)
# ---------------------------------------------------------------------------


def _is_virt(wm: _Wm, end: str) -> bool:
    s = wm.get("subnet", end)
    return s is not None and (s.startswith("vhost:") or s.startswith("vnet:"))


def _cidr(wm: _Wm, key: str, end: str) -> object:
    value = wm.string(key, end)
    if value is None:
        return None
    try:
        return V.parse_cidr(value)
    except V.InvalidValue as e:
        raise _Fail(f"{wm.kv(key, end)} invalid, {e}", end, key) from None


def _extract_child_end(wm: _Wm, end: str, host: V.Host, protoport: V.ProtoPort | None,
                       ike_version: int, pools_seen: list[V.AddressPool]
                       ) -> dict[str, object]:
    f: dict[str, object] = {}
    if ike_version == 2:
        f["cat"] = wm.yn("cat", False, end)
    elif wm.has("cat", end):
        wm.warn(f"IKEv1, ignoring {end}cat={wm.get('cat', end)} (client address translation)")
    f["vti"] = _cidr(wm, "vti", end)
    f["interface_ip"] = _cidr(wm, "interface-ip", end)
    f["protoport"] = protoport

    # updown-config= then updown=
    uc = wm.string("updown-config", end)
    flags: list[str] = []
    if uc is not None:
        for tok in V.split_list(uc, ", "):
            try:
                flags.append(V.UPDOWN_CONFIG.lookup(tok)[0])
            except V.InvalidValue:
                raise _Fail(f"{wm.kv('updown-config', end)} invalid, '{tok}' unrecognized",
                            end, "updown-config") from None
    f["updown_config"] = tuple(x for x in flags if not x.startswith("no"))
    if wm.nn_ignored("updown", end):
        f["updown"] = None
    else:
        updown = wm.get("updown", end)
        f["updown"] = "ipsec _updown" if updown is None else \
            None if updown in ("%disabled", "") else updown

    subnet = wm.get("subnet", end)
    pool_text = wm.get("addresspool", end)
    selectors: list[V.Selector] = []
    if pool_text is not None:
        if wm.has("subnets", end):
            raise _Fail(f"cannot specify both {end}addresspool= and {end}subnets=",
                        end, "addresspool")
        if subnet is not None and not _is_virt(wm, end):
            raise _Fail(f"cannot specify both {end}addresspool= and {end}subnet=",
                        end, "addresspool")
        try:
            pools = V.parse_pools(pool_text)
        except V.InvalidValue as e:
            raise _Fail(f"{end}addresspool={pool_text} invalid, {e}", end,
                        "addresspool") from None
        families: set[int] = set()
        for pool in pools:
            where = f"{end}addresspool={pool_text} invalid"
            if ike_version == 1 and pool.version == 6:
                raise _Fail(f"{where}, IKEv1 does not support IPv6 address pool", end,
                            "addresspool")
            if pool.version == 6 and pool.cidr is None and len(list(
                    ipaddress.summarize_address_range(pool.start, pool.end))) != 1:
                raise _Fail(f"{where}, IPv6 range {pool} is not a subnet", end, "addresspool")
            if int(pool.start) == 0:
                shown = pool if pool.version == 6 or pool.cidr is not None else \
                    f"{pool.start}-{pool.end}"
                raise _Fail(f"{where}, address pool {shown} starts at address zero", end,
                            "addresspool")
            if pool.version in families:
                raise _Fail(f"{where}, multiple IPv{pool.version} address pools", end,
                            "addresspool")
            families.add(pool.version)
            for seen in pools_seen:
                overlap = seen.version == pool.version and not (
                    pool.end < seen.start or seen.end < pool.start)
                if overlap and (seen.start, seen.end) != (pool.start, pool.end):
                    raise _Fail(f"{where}, range inexactly overlaps existing address pool "
                                f"{seen}", end, "addresspool")
            if pool.size > _POOL_LIMIT:
                wm.warn(f"limiting the address pool {pool} to 3Gi addresses")
            pools_seen.append(pool)
        f["addresspool"] = tuple(pools)
    elif subnet is not None and not _is_virt(wm, end):
        try:
            selectors = V.parse_selectors(subnet)
        except V.InvalidValue as e:
            raise _Fail(f"{end}subnet={subnet} invalid, {e}", end, "subnet") from None
        if protoport is not None:
            if len(selectors) > 1:
                raise _Fail(f"{end}subnet= must be a single subnet when combined with "
                            f"{end}protoport=", end, "subnet")
            if selectors[0].protocol or selectors[0].port:
                raise _Fail(f"{end}subnet= cannot be a selector when combined with "
                            f"{end}protoport=", end, "subnet")
            selectors = [V.Selector(selectors[0].network, protoport.protocol, protoport.port)]
        nonzero = next((s.nonzero_host for s in selectors if s.nonzero_host), None)
        if nonzero is not None:
            wm.note(f"zeroing non-zero address identifier {nonzero} in {end}subnet={subnet}")
    f["subnet"] = subnet
    f["subnets"] = tuple(selectors)

    if _is_virt(wm, end):
        if ike_version > 1:
            raise _Fail(f"IKEv{ike_version} does not support virtual subnets", end, "subnet")
        f["virtual_subnet"] = subnet

    sourceip = wm.get("sourceip", end)
    if sourceip is not None:
        iface_ip = wm.get("interface-ip", end)
        if iface_ip is not None:
            raise _Fail(f"cannot specify {end}interface-ip={iface_ip} and "
                        f"{end}ssourceip={sourceip}", end, "sourceip")
        try:
            addrs = V.parse_addresses(sourceip)
        except V.InvalidValue as e:
            raise _Fail(f"{end}sourceip={sourceip} invalid, {e}", end, "sourceip") from None
        seen: dict[int, V.IPAddress] = {}
        where = f"{end}sourceip={sourceip} invalid"
        for a in addrs:
            if a.is_unspecified:
                raise _Fail(f"{where}, must be a valid address", end, "sourceip")
            if a.version in seen:
                raise _Fail(f"{where}, multiple IPv{a.version} addresses "
                            f"({seen[a.version]} and {a}) specified", end, "sourceip")
            seen[a.version] = a
            if selectors:
                if wm.has("connalias"):
                    continue  # aliases hide the selector list
                if not any(s.contains(a) for s in selectors):
                    raise _Fail(f"{where}, address {a} is not within {end}subnet={subnet}",
                                end, "sourceip")
            elif host.addr is not None:
                if a != host.addr:
                    raise _Fail(f"{where}, address {a} does not match {end}={host.addr} and "
                                f"{end}subnet= was not specified", end, "sourceip")
            elif host.kind in ("defaultroute", "any"):
                # Libreswan knows the (zero) family address here; the real
                # address is only known once oriented, so accept.
                continue
            else:
                raise _Fail(f"{where}, {end}subnet= unspecified and {end} IP address unknown",
                            end, "sourceip")
        f["sourceip"] = tuple(addrs)
    return f


# ---------------------------------------------------------------------------
# lifetimes (extract_lifetime)
# ---------------------------------------------------------------------------


def _lifetime(wm: _Wm, key: str, default: float, margin: float, fuzz: int) -> float:
    value = wm.duration(key, -1.0)
    lifetime = default if value < 0 else value
    min_lifetime = margin * (100 + fuzz) / 100
    if _MAX_LIFETIME < min_lifetime:
        raise _Fail(f"{key}={int(lifetime)} must be greater than rekeymargin={int(margin)}s + "
                    f"rekeyfuzz={fuzz}% yet less than the maximum allowed "
                    f"{int(min_lifetime)}", "", key)
    if lifetime > _MAX_LIFETIME:
        wm.note(f"{key}={int(lifetime)} seconds exceeds maximum of {int(_MAX_LIFETIME)} "
                "seconds, setting to the maximum allowed")
        return _MAX_LIFETIME
    if lifetime < min_lifetime:
        wm.note(f"{key}={int(lifetime)} must be greater than rekeymargin={int(margin)}s + "
                f"rekeyfuzz={fuzz}%, setting to {int(min_lifetime)} seconds")
        return min_lifetime
    return lifetime


def _mark(wm: _Wm, key: str) -> V.Mark | None:
    value = wm.string(key)
    if value is None:
        return None
    try:
        return V.parse_mark(value)
    except V.InvalidValue as e:
        raise _Fail(f'{key}="{value}" {e}', "", key) from None


# ---------------------------------------------------------------------------
# extract_conn
# ---------------------------------------------------------------------------


def extract_conn(name: str, triples: Sequence[Triple], setup: SetupConfig | None = None,
                 *, iface_exists: Callable[[str], bool] | None = None) -> ConnectionConfig:
    """Validate a conn's (end, keyword, value) triples into a ConnectionConfig.

    Raises ConnError with Libreswan's wording on the first problem, in
    Libreswan's order.  `iface_exists` (optional) checks `left=%eth0`.
    """
    try:
        canon = canonical_triples(triples)
    except KeywordError as e:
        raise ConnError(name, str(e)) from None
    wm = _Wm(name, {(e, k): v for e, k, v in canon})
    try:
        return _extract(wm, canon, setup or SetupConfig(), iface_exists)
    except _Fail as f:
        raise ConnError(name, f.reason, end=f.end, keyword=f.keyword,
                        warnings=wm.warnings) from None


def _ike_version(wm: _Wm) -> int:
    kx = wm.sparse("keyexchange", V.KEYEXCHANGE, None, nn=False)
    ikev2 = wm.sparse("ikev2", V.IKEV2, None, nn=False)
    if kx in (None, "ike"):
        version = 1 if ikev2 == "no" else 2
    else:
        version = 1 if kx == "ikev1" else 2
    if (version == 1 and ikev2 == "yes") or (version == 2 and ikev2 == "no"):
        wm.note(f"ignoring ikev2={ikev2} which conflicts with keyexchange=ikev{version}")
    elif ikev2 is not None:
        wm.note(f"ikev2={ikev2} has been replaced by keyexchange=ikev{version}")
    return version


def _encap(wm: _Wm) -> tuple[str | None, str | None]:
    """phase2= vs esp= vs ah= vs phase2alg= (extract_encap_proto)."""
    esp, ah, p2alg = wm.get("esp"), wm.get("ah"), wm.get("phase2alg")
    default = "esp" if esp is not None else "ah" if ah is not None else "esp"
    if wm.nn_ignored("phase2"):
        return None, None
    phase2_text = wm.get("phase2")
    phase2 = default if phase2_text is None else wm._lookup("phase2", V.PHASE2, phase2_text)
    good, bad = (esp, ah) if phase2 == "esp" else (ah, esp)
    other = "ah" if phase2 == "esp" else "esp"
    if bad is not None:
        if good is not None:
            raise _Fail(f'{phase2}="{good}" conficts with {other}="{bad}"', "", phase2)
        raise _Fail(f'phase2="{phase2}" conflicts with {other}="{bad}"', "", "phase2")
    if p2alg is not None:
        if good is not None:
            raise _Fail(f'{phase2}="{good}" conficts with phase2alg="{p2alg}"', "", "phase2alg")
        return phase2, p2alg
    return phase2, good


def _extract(wm: _Wm, canon: list[Triple], setup: SetupConfig,
             iface_exists: Callable[[str], bool] | None) -> ConnectionConfig:
    c: dict[str, object] = {}
    type_text = wm.get("type")
    if type_text is not None and type_text in V.TYPE:
        wm.never_negotiate = V.TYPE.lookup(type_text)[0] in ("passthrough", "drop")
        wm.type_text = type_text

    debug = wm.get("debug")
    if debug is not None:
        names = [d for d in V.split_list(debug, "+, \t")]
        if not all(n.removeprefix("no-") in DEBUG_NAMES for n in names):
            wm.warn(f"debug={debug} invalid, ignored")
        else:
            c["debug"] = debug

    hosts, hops, family = _extract_hosts(wm, iface_exists)
    # leftsubnets= (whack_add.c, before extract: one Child SA per combination)
    subnets_lists = {end: _subnets_list(wm, end, other)
                     for end, other in (("left", "right"), ("right", "left"))}
    ike_version = _ike_version(wm)
    authby = _parse_authby(wm, ike_version)

    end_hosts: dict[str, _EndHost] = {}
    for end, other in (("left", "right"), ("right", "left")):
        end_hosts[end] = _extract_host_end(wm, end, other, hosts, ike_version, authby)
    # an address pool makes this end a client and the other a server
    server = {e: end_hosts[e].modecfgserver for e in _ENDS}
    client = {e: end_hosts[e].modecfgclient for e in _ENDS}
    for end, other in (("left", "right"), ("right", "left")):
        if wm.has("addresspool", end):
            client[end] = True
            server[other] = True

    protoports: dict[str, V.ProtoPort | None] = {}
    for end in _ENDS:
        pp = wm.get("protoport", end)
        protoports[end] = None
        if pp is not None:
            try:
                protoports[end] = V.parse_protoport(pp)
            except V.InvalidValue as e:
                raise _Fail(f"{end}protoport={pp} invalid, {e}", end, "protoport") from None
    if all(p is not None and p.port_wildcard for p in protoports.values()):
        raise _Fail("cannot have protoports with wildcard (%any) ports on both sides")

    has_pool = wm.has("addresspool", "left") or wm.has("addresspool", "right")
    narrowing = wm.yn("narrowing", ike_version == 2 and has_pool)
    if narrowing and ike_version < 2:
        raise _Fail("narrowing=yes requires IKEv2", "", "narrowing")
    if wm.has("narrowing") and not narrowing:
        for end in _ENDS:
            if wm.has("addresspool", end):
                raise _Fail(f"narrowing=no conflicts with {end}addresspool="
                            f"{wm.get('addresspool', end)}", "", "narrowing")
    c["narrowing"] = narrowing

    # connection kind (extract_connection_end_kind), either end's view
    kinds = []
    for other in ("right", "left"):
        if any(hosts[e].kind in ("group", "oppogroup") for e in _ENDS):
            kinds.append("group")
        elif wm.has("sec-label"):
            kinds.append("labeled_template")
        elif (wm.has("narrowing") and narrowing) or _is_virt(wm, other) \
                or wm.has("addresspool", other) \
                or (protoports[other] is not None and protoports[other].port_wildcard):
            kinds.append("template")
        elif not wm.never_negotiate and any(
                hosts[e].kind not in ("addr", "iface", "defaultroute", "dns") for e in _ENDS):
            kinds.append("template")
        else:
            kinds.append("permanent")
    for k in ("group", "labeled_template", "template", "permanent"):
        if k in kinds:
            c["kind"] = k
            break

    clones_text = wm.string("clones")
    if clones_text is not None:
        if clones_text in V.YN_TEXT:
            c["clones"] = (os.cpu_count() or 1) if V.parse_yn(clones_text) else None
        else:
            n = wm.uint("clones", None, story="number of replicant Child SA")
            # 0 means no; anything else must be in range (extract_yn_uintmax)
            c["clones"] = None if not n else _check_range(
                "number of replicant Child SA", "", "clones", n, 1, 2**32 - 1)

    pfs = wm.yn("pfs", True)
    compress = wm.yn("compress", False)
    c["pfs"], c["compress"] = pfs, compress

    phase2, phase2alg = _encap(wm)
    c["phase2"], c["phase2alg"] = phase2, phase2alg
    c["esp"], c["ah"] = wm.get("esp"), wm.get("ah")

    ctype = "tunnel" if type_text is None else wm._lookup("type", V.TYPE, type_text)
    c["type"] = ctype
    if ctype == "transport" and wm.has("vti-interface"):
        raise _Fail("VTI requires tunnel mode but connection specifies type=transport",
                    "", "vti-interface")
    if "never" in authby:
        if not wm.never_negotiate:
            raise _Fail("connection with authby=never must specify shunt type via type=",
                        "", "authby")
    c["authby"] = tuple(V.split_list(wm.get("authby") or "", ", "))

    if ike_version == 1 and setup.ikev1_policy != "accept":
        raise _Fail(f"global ikev1-policy={setup.ikev1_policy} does not allow IKEv1 "
                    "connections", "", "keyexchange")
    opportunistic = any(h.kind in ("oppo", "oppogroup") for h in hosts.values())
    if opportunistic and ike_version < 2:
        raise _Fail("opportunistic connection MUST have IKEv2", "", "keyexchange")

    def v2_only(key: str, what: str) -> bool:
        on = wm.yn(key, False)
        if on and ike_version < 2:
            raise _Fail(f"{what} requires IKEv2", "", key)
        return on

    c["session_resumption"] = v2_only("session-resumption", "session resumption")
    c["send_supported_auth_methods"] = v2_only("send-supported-auth-methods",
                                               "send-supported-auth-methods")
    c["sha2_truncbug"] = wm.yn("sha2-truncbug", False)
    c["share_lease"] = wm.yn("share-lease", True)
    c["overlapip"] = wm.yn("overlapip", False)
    msdh = wm.yn("ms-dh-downgrade", False)
    pfswa = wm.yn("pfs-rekey-workaround", False)
    if msdh and pfswa:
        raise _Fail("cannot specify both ms-dh-downgrade=yes and pfs-rekey-workaround=yes",
                    "", "ms-dh-downgrade")
    c["ms_dh_downgrade"], c["pfs_rekey_workaround"] = msdh, pfswa
    c["dns_match_id"] = wm.yn("dns-match-id", False)
    c["pam_authorize"] = wm.yn("pam-authorize", False)
    c["ignore_peer_dns"] = wm.yn("ignore-peer-dns", False)
    ikepad = wm.sparse("ikepad", V.YNA, None)
    if ike_version >= 2 and ikepad is not None:
        wm.warn(f"IKEv2 connection ignores ikepad={wm.get('ikepad')}")
    c["ikepad"] = ikepad
    c["require_id_on_certificate"] = wm.yn("require-id-on-certificate", True)

    aggressive = wm.yn("aggressive", False)
    if aggressive and ike_version >= 2:
        raise _Fail("cannot specify aggressive mode with IKEv2", "", "aggressive")
    if aggressive and not wm.has("ike"):
        raise _Fail("cannot specify aggressive mode without ike= to set algorithm",
                    "", "aggressive")
    c["aggressive"] = aggressive
    c["decap_dscp"] = wm.yn("decap-dscp", False)
    c["encap_dscp"] = wm.yn("encap-dscp", True)
    c["nopmtudisc"] = wm.yn("nopmtudisc", False)

    mobike = wm.yn("mobike", False)
    if mobike:
        if ike_version < 2:
            raise _Fail("MOBIKE requires IKEv2", "", "mobike")
        if ctype != "tunnel":
            raise _Fail("MOBIKE requires tunnel mode", "", "mobike")
    c["mobike"] = mobike

    tfc = wm.uint("tfc", 0, hi=2**32 - 1) or 0
    if tfc > 0:
        if ctype == "transport":
            raise _Fail("connection with type=transport cannot specify tfc=", "", "tfc")
        if phase2 == "ah":
            raise _Fail("connection with encap_proto=ah cannot specify tfc=", "", "tfc")
    c["tfc"] = tfc

    iptfs = wm.yn("iptfs", False)
    if iptfs:
        if ike_version < 2:
            raise _Fail("IPTFS is not compatible with keyexchange=IKEv1, either omit option "
                        "or specify keyexchange=IKEv2", "", "iptfs")
        if ctype != "tunnel":
            raise _Fail(f"IPTFS is not compatible with type={type_text}, either omit option "
                        "or specify type=tunnel", "", "iptfs")
        if tfc > 0:
            raise _Fail(f"IPTFS is not compatible with tfc={tfc}, either omit option or "
                        "specify tfc=0", "", "iptfs")
        if compress:
            raise _Fail("IPTFS is not compatible with compress=yes, either omit option or "
                        "specify compress=no", "", "iptfs")
        if phase2 != "esp":
            raise _Fail("IPTFS is not compatible with ah=, either omit option or specify "
                        "esp=", "", "iptfs")
        c["iptfs_packet_size"] = wm.scaled("iptfs-packet-size", V.BINARY, 0)
        c["iptfs_max_queue_size"] = wm.scaled("iptfs-max-queue-size", V.BINARY, 0)
        drop = wm.duration("iptfs-drop-time", 0.0)
        init = wm.duration("iptfs-init-delay", 0.0)
        limit = (2**32 - 1) / 1e6
        if drop >= limit:
            raise _Fail(f"iptfs-drop-time cannot larger than {limit}", "", "iptfs-drop-time")
        if init >= limit:
            raise _Fail(f"iptfs-init-delay cannot larger than {limit}", "", "iptfs-init-delay")
        c["iptfs_drop_time"], c["iptfs_init_delay"] = drop, init
        c["iptfs_reorder_window"] = _check_range(
            "", "", "iptfs-reorder-window",
            wm.scaled("iptfs-reorder-window", V.BINARY, 0) or 0, 0, 65535)
    c["iptfs"] = iptfs
    c["iptfs_fragmentation"] = wm.yn("iptfs-fragmentation", True)
    if wm.has("iptfs-fragmentation") and not wm.never_negotiate:
        if not wm.has("iptfs"):
            wm.warn(f"iptfs-fragmentation={wm.get('iptfs-fragmentation')} ignored without "
                    "iptfs=yes")
        elif not iptfs:
            wm.warn(f"iptfs-fragmentation={wm.get('iptfs-fragmentation')} ignored when "
                    "iptfs=no")

    # RFC 5685 redirect
    c["redirect_to"] = tuple(V.split_list(wm.get("redirect-to") or "", ", "))
    c["accept_redirect_to"] = tuple(V.split_list(wm.get("accept-redirect-to") or "", ", "))
    send_redirect = wm.sparse("send-redirect", V.YNA, None)
    if ike_version == 1:
        if send_redirect is not None:
            wm.warn(f"IKEv1 connection ignores send-redirect={wm.get('send-redirect')}")
        if wm.has("accept-redirect"):
            wm.warn("IKEv1 connection ignores accept-redirect=")
    else:
        if send_redirect == "yes" and not wm.has("redirect-to"):
            wm.warn("send-redirect=yes ignored, redirect-to= was not specified")
        if send_redirect == "no" and wm.has("redirect-to"):
            wm.warn("send-redirect=no, redirect-to= is ignored")
        c["accept_redirect"] = wm.yn("accept-redirect", False)
    c["send_redirect"] = send_redirect

    frag = wm.sparse("fragmentation", V.YNF, "yes") or "yes"
    if ike_version >= 2 and frag == "force":
        wm.warn(f"IKEv1 only fragmentation={wm.get('fragmentation')} ignored; using "
                "fragmentation=yes")
        frag = "yes"
    c["fragmentation"] = frag

    tcp = wm.sparse("enable-tcp", V.ENABLE_TCP, "no") or "no"
    if ike_version < 2:
        if wm.has("enable-tcp") and tcp != "no":
            raise _Fail("enable-tcp= requires IKEv2", "", "enable-tcp")
        tcp = "no"
    c["enable_tcp"] = tcp
    remoteport = wm.uint("tcp-remoteport", 4500, lo=1, hi=65535) or 4500
    if tcp == "no":
        if wm.has("tcp-remoteport"):
            wm.warn(f"tcp-remoteport={wm.get('tcp-remoteport')} ignored for non-TCP "
                    "connections")
        remoteport = 4500
    elif remoteport == 500:
        raise _Fail("tcp-remoteport cannot be 500", "", "tcp-remoteport")
    c["tcp_remoteport"] = remoteport

    c["connalias"] = tuple(V.split_list(wm.get("connalias") or "", ", "))
    c["rekey"] = wm.yn("rekey", True)
    c["reauth"] = wm.yn("reauth", False)
    auto_text = wm.get("auto")
    c["auto"] = "ignore" if auto_text is None else wm._lookup("auto", V.AUTOSTART, auto_text)

    # extract_shunt_policy() goes through extract_sparse_name(), which warns
    # about (and ignores) shunts of a never-negotiate conn
    c["negotiationshunt"] = wm.sparse("negotiationshunt", V.NEGOTIATIONSHUNT, "drop")
    c["failureshunt"] = wm.sparse("failureshunt", V.FAILURESHUNT, "none")

    replay = wm.uint("replay-window", 128, hi=2**32 - 1)
    assert replay is not None
    c["replay_window"] = replay
    esn = wm.sparse("esn", V.YNE, None)
    if replay == 0:
        if esn not in (None, "no"):
            wm.warn("forcing esn=no as replay-window=0")
        esn = "no"
    c["esn"] = esn or "either"

    ppk = wm.sparse("ppk", V.NPPI, None)
    if ike_version == 1 and wm.has("ppk"):
        wm.warn(f"ignoring ppk={wm.get('ppk')} as IKEv1")
        ppk = None
    c["ppk"] = ppk
    c["intermediate"] = v2_only("intermediate", "intermediate")
    c["ike"] = None if wm.nn_ignored("ike") else wm.get("ike")

    # never-negotiate: warned about by sparse(), and then meaningless
    encapsulation = wm.sparse("encapsulation", V.YNA, "auto")
    c["encapsulation"] = "no" if wm.never_negotiate else encapsulation
    vti_if = wm.get("vti-interface")
    if vti_if is not None and len(vti_if) >= _IFNAMSIZ:
        wm.warn(f"length of vti-interface '{vti_if}' exceeds IFNAMSIZ ({_IFNAMSIZ})")
    c["vti_shared"] = wm.yn("vti-shared", False)
    c["vti_routing"] = wm.yn("vti-routing", False)
    c["vti_interface"] = wm.string("vti-interface")

    nic = wm.sparse("nic-offload", V.NIC_OFFLOAD, "no") or "no"
    if nic == "packet":
        if ctype != "transport":
            raise _Fail("nic-offload=packet restricted to type=transport", "", "nic-offload")
        if phase2 != "esp":
            raise _Fail("nic-offload=packet restricted to phase2=esp", "", "nic-offload")
        if compress:
            raise _Fail("nic-offload=packet restricted to compress=no", "", "nic-offload")
        if c["encapsulation"] == "yes":
            raise _Fail("nic-offload=packet cannot specify encapsulation=yes", "",
                        "nic-offload")
        if replay not in (32, 64, 128, 256):
            raise _Fail("current packet offload hardware only supports replay-window of 32, "
                        "64, 128 or 256", "", "replay-window")
    c["nic_offload"] = nic

    c["remote_peer_type"] = wm.sparse("remote-peer-type", V.REMOTE_PEER_TYPE, "ietf", nn=False)
    for key in ("cisco-unity", "nm-configured", "cisco-split"):
        value = wm.get(key)
        c[key.replace("-", "_")] = value is not None and wm._lookup(key, V.YN, value) == "yes"

    fuzz_text = wm.string("rekeyfuzz")
    fuzz = 100
    if fuzz_text is not None:
        try:
            fuzz = V.parse_percent(fuzz_text)
        except V.InvalidValue as e:
            raise _Fail(f"{wm.kv('rekeyfuzz')} invalid, {e}", "", "rekeyfuzz") from None
        if fuzz > 2**31 - 1 - 100:
            wm.note(f"{wm.kv('rekeyfuzz')} is way to large, using 100%")
            fuzz = 100
    if not wm.never_negotiate:
        margin = wm.duration("rekeymargin", 540.0)
        if margin > (2**31 - 1) / (100 + fuzz):
            raise _Fail(f"rekeymargin={wm.get('rekeymargin')} is so large it causes overflow",
                        "", "rekeymargin")
        c["rekeymargin"], c["rekeyfuzz"] = margin, fuzz
        c["ikelifetime"] = _lifetime(wm, "ikelifetime", 28800.0, margin, fuzz)
        ipsec_life = _lifetime(wm, "ipsec-lifetime", 28800.0, margin, fuzz)
        c["ipsec_lifetime"] = ipsec_life
        c["retransmit_timeout"] = wm.duration("retransmit-timeout", 60.0)
        ri = wm.string("retransmit-interval")
        if ri is not None:
            try:
                c["retransmit_interval"] = V.parse_duration_ms(ri)
            except V.InvalidValue as e:
                raise _Fail(f"{wm.kv('retransmit-interval')} invalid, {e}", "",
                            "retransmit-interval") from None
        c["ipsec_max_bytes"] = wm.scaled("ipsec-max-bytes", V.BINARY_BYTES, _SA_MAX_OPERATIONS,
                                         clamp=_SA_MAX_OPERATIONS, story="IPsec max bytes")
        c["ipsec_max_packets"] = wm.scaled("ipsec-max-packets", V.BINARY, _SA_MAX_OPERATIONS,
                                           clamp=_SA_MAX_OPERATIONS, story="IPsec max packets")
        if margin >= ipsec_life:
            new = ipsec_life / 2
            wm.note(f"rekeymargin ({int(margin)}s) >= salifetime ({int(ipsec_life)}s); "
                    f"reducing rekeymargin to {int(new)}s seconds")
            c["rekeymargin"] = new
        dpddelay, dpdtimeout = wm.get("dpddelay"), wm.get("dpdtimeout")
        if ike_version == 1:
            if dpddelay is not None and dpdtimeout is not None:
                c["dpddelay"] = _dpd("dpddelay", dpddelay)
                c["dpdtimeout"] = _dpd("dpdtimeout", dpdtimeout)
            elif dpddelay is not None or dpdtimeout is not None:
                wm.warn("IKEv1 dpd settings are ignored unless both dpdtimeout= and "
                        "dpddelay= are set")
        else:
            if dpddelay is not None:
                c["dpddelay"] = _dpd("dpddelay", dpddelay)
            if dpdtimeout is not None:
                wm.warn("IKEv2 ignores dpdtimeout==; use dpddelay= and retransmit-timeout=")
        c["metric"] = wm.uint("metric", None, lo=1)
        c["mtu"] = wm.scaled("mtu", V.BINARY_BYTES, None, story="Maximum Transmission Unit")
        c["nat_keepalive"] = wm.yn("nat-keepalive", True)
        c["nat_ikev1_method"] = wm.sparse("nat-ikev1-method", V.NAT_IKEV1_METHOD, "both")
        c["initial_contact"] = wm.yn("initial-contact", False)
        c["fake_strongswan"] = wm.yn("fake-strongswan", False)
        c["send_vendorid"] = wm.yn("send-vendorid", False)
        c["sendca"] = wm.sparse("sendca", V.SENDCA, "all")
        c["xauthby"] = wm.sparse("xauthby", V.XAUTHBY, "file")
        c["xauthfail"] = wm.sparse("xauthfail", V.XAUTHFAIL, "hard")
        if ike_version == 2:
            for key in ("xauthby", "xauthfail"):
                if wm.has(key):
                    wm.warn(f"IKEv2 connection ignores {key}={wm.get(key)}")
        c["ppk_ids"] = tuple(V.split_list(wm.get("ppk-ids") or "", ", "))

    c["modecfgpull"] = wm.yn("modecfgpull", False)
    dns = wm.string("modecfgdns")
    if dns is not None:
        try:
            c["modecfgdns"] = tuple(V.parse_addresses(dns, 4 if ike_version == 1 else None))
        except V.InvalidValue as e:
            raise _Fail(f"{wm.kv('modecfgdns')} invalid, {e}", "", "modecfgdns") from None
    domains = wm.string("modecfgdomains")
    if domains is not None:
        doms = V.split_list(domains, ", ")
        if ike_version == 1 and len(doms) > 1:
            wm.warn(f"IKEv1 only uses the first domain in {wm.kv('modecfgdomains')}")
            doms = doms[:1]
        c["modecfgdomains"] = tuple(doms)
    c["modecfgbanner"] = wm.string("modecfgbanner")

    mark = _mark(wm, "mark")
    c["mark"] = mark
    for key in ("mark-in", "mark-out"):
        if wm.get(key) is not None and wm.has("mark") and not wm.never_negotiate:
            wm.warn(f'{wm.kv(key)} overrides "mark={wm.get("mark")}"')
        c[key.replace("-", "_")] = _mark(wm, key) or mark

    ipsec_if = wm.string("ipsec-interface")
    if ipsec_if is not None:
        try:
            c["ipsec_interface"] = V.parse_ipsec_interface(ipsec_if)
        except V.InvalidValue as e:
            raise _Fail(str(e), "", "ipsec-interface") from None
    c["nflog_group"] = wm.uint("nflog-group", 0, lo=1, hi=65535)
    c["priority"] = wm.uint("priority", 0, hi=2**32 - 1)
    c["send_esp_tfc_padding_not_supported"] = wm.yn("send-esp-tfc-padding-not-supported",
                                                    False)
    if wm.has("reject-simultaneous-ike-auth") and ike_version < 2:
        raise _Fail("cannot specify reject-simultaneous-ike-auth for IKEv1", "",
                    "reject-simultaneous-ike-auth")
    c["reject_simultaneous_ike_auth"] = wm.yn("reject-simultaneous-ike-auth", False)
    reqid = wm.uint("reqid", None, lo=1, hi=_IPSEC_MANUAL_REQID_MAX)
    c["reqid"] = reqid

    label = wm.get("sec-label")
    if label is not None:
        if ike_version == 1:
            raise _Fail("IKEv1 does not support Labeled IPsec", "", "sec-label")
        if label == "" or len(label) > 4096:
            raise _Fail(f"security label length is invalid: policy-label={label}", "",
                        "sec-label")
        c["sec_label"] = label

    # contradictions between the ends
    if wm.has("addresspool", "left") and wm.has("addresspool", "right"):
        raise _Fail("both leftaddresspool= and rightaddresspool= defined", "", "addresspool")
    for what, table in (("modecfgserver", server), ("modecfgclient", client)):
        if table["left"] and table["right"] and not opportunistic:
            raise _Fail(f"both left{what}=yes and right{what}=yes defined", "", what)
    if ike_version == 2 and wm.yn("cat", False, "left") and wm.yn("cat", False, "right") \
            and not opportunistic:
        raise _Fail("both leftcat=yes and rightcat=yes defined", "", "cat")
    if _is_virt(wm, "left") and _is_virt(wm, "right"):
        raise _Fail("both leftvirt= and rightvirt= defined", "", "subnet")
    if c.get("kind") == "group" and (_is_virt(wm, "left") or _is_virt(wm, "right")):
        raise _Fail("connection groups do not support virtual subnets", "", "subnet")

    auths = {e: end_hosts[e].auth for e in _ENDS}
    if not wm.never_negotiate:
        if auths["left"] in (None, "never") or auths["right"] in (None, "never"):
            raise _Fail("no authentication (auth=, authby=) was set", "", "authby")
        if {auths["left"], auths["right"]} == {"secret", "null"}:
            raise _Fail(f"cannot mix PSK and NULL authentication (leftauth={auths['left']} "
                        f"and rightauth={auths['right']})", "", "auth")
    else:
        for e in _ENDS:
            end_hosts[e].fields["auth"] = "never"

    # child ends (selectors, pools, sourceip)
    pools_seen: list[V.AddressPool] = []
    child: dict[str, dict[str, object]] = {}
    for end in _ENDS:
        child[end] = _extract_child_end(wm, end, hosts[end], protoports[end], ike_version,
                                        pools_seen)

    for end in _ENDS:
        child[end]["subnets_list"] = subnets_lists[end]

    if ike_version == 1:
        for end in _ENDS:
            if len(child[end]["subnets"]) <= 1:  # type: ignore[arg-type]
                continue
            if c.get("cisco_split") and server[end]:
                wm.note(f"allowing IKEv1 {end}subnet= with multiple selectors as "
                        f"cisco-split=yes and {end}modecfgserver=yes")
                continue
            raise _Fail(f"IKEv1 does not support {end}subnet= with multiple selectors "
                        f"without cisco-split=yes and {end}modecfgserver=yes", end, "subnet")

    _check_families(wm, child, family)

    ends: dict[str, EndConfig] = {}
    for end in _ENDS:
        h, n = hosts[end], hops[end]
        fields = dict(end_hosts[end].fields)
        fields.update(child[end])
        fields["modecfgserver"] = server[end]
        fields["modecfgclient"] = client[end]
        ends[end] = EndConfig(
            leftright=end, host=h.text, host_kind=h.kind, host_addr=h.addr, iface=h.iface,
            nexthop=n.text, nexthop_kind=n.kind, nexthop_addr=n.addr,
            **fields,  # type: ignore[arg-type]
        )
    c = {k: v for k, v in c.items() if v is not None or k in _NULLABLE}
    return ConnectionConfig(
        name=wm.name, left=ends["left"], right=ends["right"], ike_version=ike_version,
        hostaddrfamily=family, keywords=tuple(canon), warnings=wm.warnings,
        notices=wm.notices,
        **c,  # type: ignore[arg-type]
    )


_NULLABLE = frozenset({"ike", "esp", "ah", "phase2", "phase2alg", "metric", "mtu", "reqid",
                       "mark", "mark_in", "mark_out", "ikepad", "send_redirect", "ppk",
                       "modecfgbanner", "clones", "vti_interface"})


def _dpd(key: str, value: str) -> float:
    try:
        return V.parse_duration(value)
    except V.InvalidValue as e:
        raise _Fail(f"{key}={value} invalid, {e}", "", key) from None


def _subnets_list(wm: _Wm, end: str, other: str) -> tuple[V.Selector, ...]:
    """leftsubnets=: checked as whack_add.c's parse_subnets() does.

    When either end has subnets=, each subnet= must be a single subnet.
    """
    text = wm.get("subnets", end)
    if text is None:
        return ()
    for e in (end, other):
        subnet = wm.get("subnet", e)
        if subnet is None or _is_virt(wm, e):
            continue
        if subnet == "":
            raise _Fail(f"{e}subnet= invalid, empty string", e, "subnet")
        if len(V.split_list(subnet, ", ")) > 1:
            raise _Fail(f'multi-selector {e}subnet="{subnet}" combined with '
                        f'{end}subnets="{text}"', e, "subnet")
        try:
            sel = V.parse_selector(subnet)
        except V.InvalidValue as err:
            raise _Fail(f"{e}subnet={subnet} invalid, {err}", e, "subnet") from None
        if sel.nonzero_host is not None:
            raise _Fail(f"{e}subnet={subnet} contains non-zero host identifier", e, "subnet")
    sels = []
    for tok in V.split_list(text, ", \t"):
        try:
            sel = V.parse_selector(tok)
        except V.InvalidValue as err:
            raise _Fail(f"{end}subnets={text} invalid, {tok} invalid, {err}", end,
                        "subnets") from None
        sels.append(sel)
    return tuple(sels)


def _check_families(wm: _Wm, child: dict[str, dict[str, object]], host_family: int) -> None:
    """"address family of leftsubnet=... conflicts with right..." (extract.c end)."""
    used: dict[str, dict[int, tuple[str, str]]] = {}
    for end in _ENDS:
        fams: dict[int, tuple[str, str]] = {}
        sels = child[end]["subnets"]
        pools = child[end].get("addresspool", ())
        if sels:
            for s in sels:  # type: ignore[attr-defined]
                fams.setdefault(s.version, ("subnet", wm.get("subnet", end) or ""))
        elif pools:
            for p in pools:  # type: ignore[attr-defined]
                fams.setdefault(p.version, ("addresspool", wm.get("addresspool", end) or ""))
        else:
            fams[host_family] = ("", wm.get("host", end) or "")
        used[end] = fams
    for i in (4, 6):
        if (i in used["left"]) == (i in used["right"]):
            continue
        j = 6 if i == 4 else 4
        if i in used["left"]:
            li, rj = used["left"][i], used["right"].get(j, ("", ""))
        else:
            li, rj = used["left"].get(j, ("", "")), used["right"][i]
        raise _Fail(f"address family of left{li[0]}={li[1]} conflicts with "
                    f"right{rj[0]}={rj[1]}")


# ---------------------------------------------------------------------------
# config setup
# ---------------------------------------------------------------------------

_SETUP_SPARSE: dict[str, V.Sparse] = {
    "ikev1-policy": V.IKEV1_POLICY, "global-redirect": V.GLOBAL_REDIRECT,
    "ocsp-method": V.OCSP_METHOD, "seccomp": V.SECCOMP, "ddos-mode": V.DDOS_MODE,
}

SetupPair = tuple[str, str] | tuple[str, str, str | None, int | None]


def extract_setup(pairs: Iterable[SetupPair]) -> SetupConfig:
    """Validate `config setup` (keyword, value[, file, line]) pairs.

    A later value overrides an earlier one (with Libreswan's warning); an
    invalid value raises SetupError, except plutodebug= which is only
    warned about, as pluto does.
    """
    kwargs: dict[str, object] = {}
    given: dict[str, str] = {}
    warnings: list[str] = []
    for pair in pairs:
        key, value = pair[0], pair[1]
        file = pair[2] if len(pair) > 2 else None  # type: ignore[misc]
        line = pair[3] if len(pair) > 3 else None  # type: ignore[misc]
        where = f"{file}:{line}: " if file is not None and line is not None else ""
        try:
            match = lookup_setup(key)
        except KeywordError as e:
            raise SetupError(str(e), keyword=key, file=file, line=line) from None
        if match.keyword is None:
            warnings.append(f"{where}obsolete keyword ignored: {key}={value}")
            continue
        kw = match.keyword
        if kw.name in given:
            warnings.append(f"{where}overriding earlier 'config setup' keyword with new "
                            f"value: {key}={value}")

        try:
            parsed: object
            if kw.vtype == "yn":
                parsed = V.YN.lookup(value)[0] == "yes"
            elif kw.vtype == "enum":
                parsed = _SETUP_SPARSE[kw.name].lookup(value)[0]
            elif kw.vtype == "uint":
                parsed = V.parse_uint(value, 10)
            elif kw.vtype == "int":
                parsed = -1 if value == "-1" else V.parse_uint(value, 10)
            elif kw.vtype == "duration":
                parsed = V.parse_duration(value)
            else:
                parsed = value
        except V.InvalidValue as e:
            msg = f'"{key}={value}" {e}' if kw.vtype in ("yn", "enum") else \
                f"{key}={value} invalid, {e}"
            raise SetupError(msg, keyword=kw.name, file=file, line=line) from None
        if kw.name == "plutodebug":
            names = V.split_list(value, "+, \t")
            if not all(n.removeprefix("no-") in DEBUG_NAMES for n in names):
                warnings.append(f"plutodebug='{value}' invalid, keyword ignored")
                continue
        kwargs[kw.name.replace("-", "_")] = parsed
        given[kw.name] = value
    return SetupConfig(**kwargs, warnings=warnings, given=given)  # type: ignore[arg-type]


def setup_default(keyword: str) -> object:
    """Default of a config setup keyword (for `ipsec addconn --configsetup`)."""
    return SETUP_KEYWORDS[keyword].default
