"""Parsers for ipsec.conf values.

Every parser raises `InvalidValue` (a ValueError) whose message is the bare
reason Libreswan gives ("empty field", "unrecognized duration multiplier
\"xA\""); `pyswan.auto.extract` wraps it with the keyword and value.

Nothing here touches the network: DNS names are kept as names.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "InvalidValue",
    "Sparse",
    "YN", "YN_TEXT", "YNA", "YNF", "YNE", "NPPI", "TYPE", "AUTOSTART", "KEYEXCHANGE",
    "IKEV2", "SENDCERT", "FAILURESHUNT", "NEGOTIATIONSHUNT", "ENABLE_TCP", "NIC_OFFLOAD",
    "REMOTE_PEER_TYPE", "XAUTHBY", "XAUTHFAIL", "NAT_IKEV1_METHOD", "AUTHEAP", "SENDCA",
    "AUTH", "PHASE2", "HOSTADDRFAMILY", "IKEV1_POLICY", "OCSP_METHOD", "GLOBAL_REDIRECT",
    "SECCOMP", "DDOS_MODE", "PUBKEY_KEYWORDS", "UPDOWN_CONFIG",
    "parse_yn", "parse_uint", "parse_duration", "parse_duration_ms", "parse_percent",
    "parse_scaled", "BINARY", "BINARY_BYTES", "TIMESCALE",
    "parse_address", "parse_addresses", "parse_cidr", "parse_subnet",
    "Selector", "parse_selector", "parse_selectors", "ProtoPort", "parse_protoport",
    "parse_protocol", "parse_port",
    "ID", "ID_NONE", "ID_FROMCERT", "ID_IPV4_ADDR", "ID_FQDN", "ID_USER_FQDN",
    "ID_IPV6_ADDR", "ID_DER_ASN1_DN", "ID_KEY_ID", "ID_NULL", "parse_id", "parse_dn",
    "Host", "parse_host", "parse_nexthop", "AddressPool", "parse_pool", "parse_pools",
    "Mark", "parse_mark", "IpsecInterface", "parse_ipsec_interface", "split_list",
]


class InvalidValue(ValueError):
    """A value that does not parse; str() is Libreswan's reason text."""


# ---------------------------------------------------------------------------
# enumerations ("sparse names"): several spellings map to one canonical value
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sparse:
    """An ordered, case-insensitive name table.

    entries: (spelling, canonical, note); note "implemented_as" makes
    `lookup` report the substitution (e.g. type=reject -> drop).
    """

    entries: tuple[tuple[str, str, str | None], ...]

    def lookup(self, text: str) -> tuple[str, str | None]:
        low = text.lower()
        for spelled, canonical, note in self.entries:
            if spelled.lower() == low:
                return canonical, note
        raise InvalidValue("is invalid, valid options are " + self.options_text())

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and any(
            s.lower() == text.lower() for s, _, _ in self.entries)

    def options_text(self) -> str:
        """`"a", "b", and "c"`: first spelling of each distinct value."""
        seen: list[tuple[str, str | None]] = []
        names: list[str] = []
        for spelled, canonical, note in self.entries:
            if (canonical, note) in seen:
                continue
            seen.append((canonical, note))
            names.append(f'"{spelled}"')
        if len(names) == 1:
            return names[0]
        return ", ".join(names[:-1]) + ", and " + names[-1]


def _sparse(*items: str | tuple[str, str] | tuple[str, str, str]) -> Sparse:
    out: list[tuple[str, str, str | None]] = []
    for it in items:
        if isinstance(it, str):
            out.append((it, it, None))
        elif len(it) == 2:
            out.append((it[0], it[1], None))
        else:
            out.append((it[0], it[1], it[2]))
    return Sparse(tuple(out))


def _yes_no(yes: str, no: str) -> list[tuple[str, str]]:
    return [("yes", yes), ("no", no), ("true", yes), ("false", no),
            ("on", yes), ("off", no), ("y", yes), ("n", no)]


_IMPL: Final = "implemented_as"

YN: Final = _sparse(*_yes_no("yes", "no"), ("1", "yes"), ("0", "no"))
YN_TEXT: Final = _sparse(*_yes_no("yes", "no"))
YNA: Final = _sparse(*_yes_no("yes", "no"), "auto")
YNF: Final = _sparse(*_yes_no("yes", "no"), "force", ("never", "no"), ("insist", "force"))
YNE: Final = _sparse(*_yes_no("yes", "no"), "either")
NPPI: Final = _sparse("never", "permit", "propose", "insist", ("always", "insist"),
                      *_yes_no("propose", "never"))
TYPE: Final = _sparse("tunnel", "transport", ("pass", "passthrough"), "passthrough", "drop",
                      ("reject", "drop", _IMPL))
# route is its own value in Libreswan (listed in errors); start is up's alias
AUTOSTART: Final = _sparse("ignore", "add", "ondemand", ("route", "ondemand", "alias"), "up",
                           ("start", "up"), "keep")
KEYEXCHANGE: Final = _sparse("ikev1", "ikev2", "ike")
IKEV2: Final = _sparse(*_yes_no("yes", "no"), ("never", "no"), ("propose", "yes"),
                       ("permit", "no"), ("insist", "yes"), ("always", "yes"))
SENDCERT: Final = _sparse("always", "sendifasked", "never", ("alwayssend", "always"),
                          ("no", "never"), ("yes", "always"), ("ifasked", "sendifasked"))
FAILURESHUNT: Final = _sparse("none", "pass", ("passthrough", "pass"), "drop",
                              ("hold", "drop", _IMPL), ("reject", "drop", _IMPL))
NEGOTIATIONSHUNT: Final = _sparse("pass", ("passthrough", "pass"), "drop",
                                  ("hold", "drop", _IMPL))
ENABLE_TCP: Final = _sparse(*_yes_no("yes", "no"), "fallback")
NIC_OFFLOAD: Final = _sparse("no", "crypto", "packet", ("yes", "crypto"))
REMOTE_PEER_TYPE: Final = _sparse("ietf", "cisco")
XAUTHBY: Final = _sparse("file", "pam", "alwaysok")
XAUTHFAIL: Final = _sparse("hard", "soft")
NAT_IKEV1_METHOD: Final = _sparse("both", "rfc", "drafts", "none")
AUTHEAP: Final = _sparse("none", "tls")
SENDCA: Final = _sparse("none", "issuer", "all")
# auth= is an enum in Libreswan ("secret" is PSK's alias); eddsa/rsa added.
AUTH: Final = _sparse("never", "secret", ("psk", "secret"), "rsasig", ("rsa", "rsasig"),
                      "ecdsa", "eddsa", "null", "eaponly")
PHASE2: Final = _sparse("esp", "ah")
HOSTADDRFAMILY: Final = _sparse("ipv4", ("v4", "ipv4"), ("inet", "ipv4"), "ipv6",
                                ("v6", "ipv6"), ("inet6", "ipv6"))
# libreswan(7) 5.2 says "ikev1-policy=yes" turns IKEv1 on: taken as accept
IKEV1_POLICY: Final = _sparse("accept", "reject", "drop", ("yes", "accept"))
OCSP_METHOD: Final = _sparse("get", "post")
GLOBAL_REDIRECT: Final = _sparse("no", "yes", "auto")
SECCOMP: Final = _sparse("enabled", "disabled", "tolerant")
DDOS_MODE: Final = _sparse("auto", "busy", "unlimited")
PUBKEY_KEYWORDS: Final = _sparse("%cert", "%dns", ("%dnsondemand", "%dns"))
UPDOWN_CONFIG: Final = _sparse("exec", "async", ("noexec", "noexec"), ("noasync", "noasync"))


def parse_yn(text: str) -> bool:
    canonical, _ = YN.lookup(text)
    return canonical == "yes"


# ---------------------------------------------------------------------------
# numbers, durations, scaled counts (shunk_to_uintmax / tto_scaled_uintmax)
# ---------------------------------------------------------------------------

_UINTMAX: Final = 2**64 - 1
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def _to_uint(text: str, base: int = 0, *, partial: bool = False) -> tuple[int, str]:
    """Libreswan's shunk_to_uintmax: returns (value, rest)."""
    if base in (0, 10) and text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        value = int(text)  # fast path: plain decimal
        if value > _UINTMAX:
            raise InvalidValue("uintmax_t overflow")
        return value, ""
    if text == "":
        raise InvalidValue("empty string")
    if text.startswith("-1"):
        rest = text[2:]
        if partial or rest == "":
            return _UINTMAX, rest
        raise InvalidValue("trailing junk")
    draft = base
    if base == 0:
        low = text.lower()
        if low.startswith("0x") and len(text) > 2 and text[2] in "0123456789abcdefABCDEF":
            text, base = text[2:], 16
        elif low.startswith("0b") and len(text) > 2 and text[2] in "01":
            text, base = text[2:], 2
        elif text[0] == "0":
            base = 8
        else:
            base = 10
    value = 0
    i = 0
    while i < len(text):
        d = _DIGITS.find(text[i].lower())
        if d < 0 or d >= base:
            break
        value = value * base + d
        if value > _UINTMAX:
            raise InvalidValue("uintmax_t overflow")
        i += 1
    if i == 0:
        raise InvalidValue({2: "first binary digit invalid", 8: "first octal digit invalid",
                            10: "first decimal digit invalid",
                            16: "first hex digit invalid"}.get(draft, "first digit invalid"))
    rest = text[i:]
    if not partial and rest:
        raise InvalidValue({2: "non-binary digit in number", 8: "non-octal digit in number",
                            10: "non-decimal digit in number",
                            16: "non-hex digit in number"}.get(base, "non-digit in number"))
    return value, rest


def parse_uint(text: str, base: int = 0) -> int:
    """An unsigned number; `0x` hex and leading-0 octal as in C."""
    return _to_uint(text, base)[0]


@dataclass(frozen=True, slots=True)
class _Scales:
    name: str
    default: str
    # suffix -> multiplier; matched case-insensitively
    table: tuple[tuple[tuple[str, ...], int], ...]

    def find(self, suffix: str) -> int | None:
        low = suffix.lower()
        for names, mult in self.table:
            if any(n.lower() == low for n in names):
                return mult
        return None


_US = 1_000_000
TIMESCALE: Final = _Scales("duration", "s", (
    (("us",), 1), (("ms",), 1000), (("s", "second", "seconds"), _US),
    (("m", "minute", "minutes"), 60 * _US), (("h", "hour", "hours"), 3600 * _US),
    (("d", "day", "days"), 86400 * _US), (("w", "week", "weeks"), 7 * 86400 * _US),
))
BINARY: Final = _Scales("binary", "", tuple(
    ((s,), 1024**i) for i, s in enumerate(["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])))
BINARY_BYTES: Final = _Scales("binary byte", "", (
    (("", "byte", "bytes"), 1), (("KiB", "kilobyte", "kilobytes"), 1024),
    (("MiB", "megabyte", "megabytes"), 1024**2), (("GiB", "gigabyte", "gigabytes"), 1024**3),
    (("TiB", "terabyte", "terrabytes"), 1024**4), (("PiB", "petabyte", "petabytes"), 1024**5),
    (("EiB", "exabyte", "exabytes"), 1024**6),
))


def _mixed_decimal(text: str) -> tuple[int, int, int, str]:
    """[DECIMAL][.FRACTION] -> (whole, numerator, denominator, rest)."""
    whole, rest, have = 0, text, False
    if rest[:1].isdigit():
        m = re.match(r"[0-9]+", rest)
        assert m is not None
        whole, rest, have = int(m.group()), rest[m.end():], True
    num, den = 0, 1
    if rest.startswith("."):
        rest = rest[1:]
        m = re.match(r"[0-9]+", rest)
        if m is None:
            if not have:
                raise InvalidValue("invalid decimal fraction")
        else:
            num, den, rest = int(m.group()), 10 ** len(m.group()), rest[m.end():]
    elif not have:
        raise InvalidValue("invalid decimal")
    return whole, num, den, rest


def _apply_scale(mult: int, whole: int, num: int, den: int) -> int:
    value = whole * mult
    if value > _UINTMAX:
        raise InvalidValue("overflow")
    if num and den:
        if den > mult:
            raise InvalidValue("underflow")
        value += num * mult // den  # exact (Libreswan truncates mult // den first)
    return value


def parse_scaled(text: str, scales: _Scales) -> int:
    """tto_scaled_uintmax(): `1.5KiB`, `10 seconds` -> integer in base units."""
    try:
        whole, num, den, rest = _mixed_decimal(text)
    except InvalidValue as e:
        raise InvalidValue(f'bad {scales.name} value "{text}": {e}') from None
    rest = rest.lstrip(" ")
    mult = scales.find(rest if rest else scales.default)
    if mult is None:
        raise InvalidValue(f'unrecognized {scales.name} multiplier "{rest}"')
    try:
        return _apply_scale(mult, whole, num, den)
    except InvalidValue as e:
        raise InvalidValue(f'invalid {scales.name} value "{text}", {e}') from None


def parse_duration(text: str) -> float:
    """A duration in seconds (`8h`, `1d`, `30s`, `500ms`, `1.5m`; bare = seconds)."""
    return parse_scaled(text, TIMESCALE) / _US


def parse_duration_ms(text: str) -> int:
    """retransmit-interval=: like a duration but a bare number is milliseconds.

    Uses ttodeltatimescale()'s wording for errors.
    """
    try:
        whole, num, den, rest = _mixed_decimal(text)
    except InvalidValue as e:
        raise InvalidValue(f'invalid duration "{text}", {e}') from None
    rest = rest.lstrip(" ")
    mult = TIMESCALE.find(rest) if rest else 1000
    if mult is None:
        raise InvalidValue(f'duration "{text}" has an unrecognized multiplier "{rest}"')
    try:
        return _apply_scale(mult, whole, num, den) // 1000
    except InvalidValue as e:
        raise InvalidValue(f'invalid duration "{text}", {e}') from None


def parse_percent(text: str) -> int:
    """`NUMBER%` (rekeyfuzz=)."""
    value, rest = _to_uint(text, 10, partial=True)
    if rest != "%":
        raise InvalidValue("expecting % character")
    return value


# ---------------------------------------------------------------------------
# addresses, subnets, selectors
# ---------------------------------------------------------------------------


_DOTTED_QUAD: Final = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                                 r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _dotted(text: str) -> ipaddress.IPv4Address:
    """trydotted(): inet_aton style, incl. `127.1` and 0x/octal fields."""
    if _DOTTED_QUAD.fullmatch(text):
        return ipaddress.IPv4Address(text)  # fast path: canonical a.b.c.d
    parts = text.split(".")
    if len(parts) > 4:
        raise InvalidValue("garbage at end of dotted-address")
    out = [0, 0, 0, 0]
    for b, tok in enumerate(parts):
        if tok == "":
            raise InvalidValue("empty dotted-numeric address field")
        byte = _to_uint(tok, 0)[0]
        last = b == len(parts) - 1
        if last and b > 0:
            e = 3
            while e >= b and byte:
                out[e] = byte & 0xFF
                byte >>= 8
                e -= 1
            if byte:
                raise InvalidValue("overflow in dotted-numeric address")
            break
        if byte > 0xFF:
            raise InvalidValue("byte overflow in dotted-numeric address")
        out[b] = byte
    return ipaddress.IPv4Address(bytes(out))


def _colon(text: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        pass
    if ":::" in text:
        raise InvalidValue("::: in IPv6 numeric address")
    if text.count("::") > 1:
        raise InvalidValue("more than one :: in IPv6 numeric address")
    if text.endswith(":") and not text.endswith("::"):
        raise InvalidValue("trailing `:' in IPv6 numeric address")
    if text.startswith(":") and not text.startswith("::"):
        raise InvalidValue("single leading `:' in IPv6 numeric address")
    if re.fullmatch(r"[0-9a-fA-F:]*", text) is None:
        raise InvalidValue("extra garbage on end of IPv6 numeric address")
    if any(len(g) > 4 for g in text.split(":")):
        raise InvalidValue("too large")
    raise InvalidValue("incomplete IPv6 numeric address")


def parse_address(text: str, family: int | None = None) -> IPAddress:
    """ttoaddress_num(): a numeric IPv4/IPv6 address (no DNS)."""
    if text == "":
        raise InvalidValue("empty string")
    if family in (None, 4) and len(text) == 10 and text[:2].lower() == "0x":
        try:
            v = int(text[2:], 16)
            return ipaddress.IPv4Address(v)
        except ValueError:
            pass
    if family == 6 or (family is None and ":" in text):
        return _colon(text)
    return _dotted(text)


def split_list(text: str, delims: str = ", ", *, keep_empty: bool = False) -> list[str]:
    """Split on any of `delims`; empty tokens dropped unless keep_empty."""
    toks = re.split("[" + re.escape(delims) + "]", text)
    if keep_empty:
        return toks
    return [t for t in toks if t]


def parse_addresses(text: str, family: int | None = None) -> list[IPAddress]:
    out: list[IPAddress] = []
    for tok in split_list(text):
        try:
            out.append(parse_address(tok, family))
        except InvalidValue as e:
            raise InvalidValue(f"{tok} invalid, {e}") from None
    return out


def _prefix(addr: IPAddress, tok: str) -> int:
    n = _to_uint(tok, 0)[0]
    if n > addr.max_prefixlen:
        raise InvalidValue("mask is too big")
    return n


def parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """ttocidr_num(): address/len keeping host bits (interface-ip=, vti=)."""
    addr_s, slash, plen_s = text.partition("/")
    addr = parse_address(addr_s)
    plen = _prefix(addr, plen_s) if slash else addr.max_prefixlen
    return ipaddress.ip_interface(f"{addr}/{plen}")


def parse_subnet(text: str) -> IPNetwork:
    """address[/len] with host bits zeroed (Libreswan logs, then zeroes)."""
    sel = parse_selector(text)
    if sel.protocol or sel.port:
        raise InvalidValue("protocol/port not allowed in a subnet")
    return sel.network


_PROTOCOLS: Final[dict[str, int]] = {
    "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
    "icmpv6": 58, "ipv6-icmp": 58, "icmp6": 58, "sctp": 132, "udplite": 136, "ipcomp": 108,
}
_PROTOCOL_NAMES: Final[dict[int, str]] = {
    1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp",
    132: "sctp",
}
_SERVICES: Final[dict[str, int]] = {
    "l2tp": 1701, "isakmp": 500, "ipsec-nat-t": 4500, "ssh": 22, "http": 80, "https": 443,
    "domain": 53, "ntp": 123, "bootps": 67, "bootpc": 68, "telnet": 23, "smtp": 25,
    "ftp": 21, "snmp": 161, "syslog": 514, "radius": 1812,
}


def parse_protocol(text: str) -> int:
    """A protocol name (`udp`, `tcp`) or number 0-255."""
    low = text.lower()
    if low in _PROTOCOLS:
        return _PROTOCOLS[low]
    try:
        n = _to_uint(text, 10)[0]
    except InvalidValue:
        raise InvalidValue(f"protocol '{text}' unknown") from None
    if n > 255:
        raise InvalidValue(f"protocol '{text}' unknown")
    return n


def parse_port(text: str) -> int:
    """A port number 0-65535 or a service name (`l2tp`)."""
    low = text.lower()
    if low in _SERVICES:
        return _SERVICES[low]
    try:
        n = _to_uint(text, 10)[0]
    except InvalidValue:
        raise InvalidValue(f"port '{text}' unknown") from None
    if n > 65535:
        raise InvalidValue(f"port '{text}' out of range")
    return n


@dataclass(frozen=True, slots=True)
class Selector:
    """A traffic selector: network + protocol (0 = all) + port (0 = all)."""

    network: IPNetwork
    protocol: int = 0
    port: int = 0
    nonzero_host: IPAddress | None = None  # address given had host bits set

    @property
    def version(self) -> int:
        return self.network.version

    def contains(self, addr: IPAddress) -> bool:
        return addr.version == self.network.version and addr in self.network

    def __str__(self) -> str:
        s = str(self.network)
        if self.protocol or self.port:
            s += f"/{_PROTOCOL_NAMES.get(self.protocol, str(self.protocol))}/{self.port}"
        return s


def parse_selector(text: str) -> Selector:
    """ttoselector_num(): `addr[/len[/proto[/port]]]` (also `addr/len:proto/port`)."""
    addr_s, _, rest = text.partition("/")
    addr = parse_address(addr_s)
    m = re.match(r"([^/:]*)[/:]?(.*)", rest, re.S)
    assert m is not None
    plen_s, rest = m.group(1), m.group(2)
    if plen_s:
        plen = _to_uint(plen_s, 0)[0]
        if plen > addr.max_prefixlen:
            raise InvalidValue("too large")
    else:
        plen = addr.max_prefixlen
    proto_s, _, port_s = rest.partition("/")
    protocol = 0
    if proto_s:
        try:
            protocol = parse_protocol(proto_s)
        except InvalidValue:
            raise InvalidValue("unknown protocol") from None
    port = 0
    if port_s:
        port = _to_uint(port_s, 0)[0]
        if port > 65535:
            raise InvalidValue("too large")
        if protocol == 0 and port != 0:
            raise InvalidValue("a non-zero port requires a valid protocol")
    net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
    nonzero = addr if net.network_address != addr else None
    return Selector(net, protocol, port, nonzero)


def parse_selectors(text: str, delims: str = ", ") -> list[Selector]:
    """ttoselectors_num(): a list; an empty field (`a,,b`, ``""``) is an error."""
    toks = split_list(text, delims, keep_empty=True)
    # ttoshunks(KEEP_EMPTY): a run of delimiters yields an empty token.
    if text == "" or any(t == "" for t in toks):
        raise InvalidValue("empty field")
    out = []
    for tok in toks:
        try:
            out.append(parse_selector(tok))
        except InvalidValue as e:
            raise InvalidValue(f"{tok} invalid, {e}") from None
    return out


@dataclass(frozen=True, slots=True)
class ProtoPort:
    """leftprotoport=: protocol (0 = any), port (0 = any), port wildcard (%any)."""

    protocol: int
    port: int = 0
    port_wildcard: bool = False

    def __str__(self) -> str:
        port = "%any" if self.port_wildcard else str(self.port)
        return f"{self.protocol}/{port}"


def parse_protoport(text: str) -> ProtoPort:
    """ttoprotoport(): `17/1701`, `udp/l2tp`, `tcp/%any`, `6`, `%any`."""
    proto_s, slash, port_s = text.partition("/")
    if proto_s == "":
        raise InvalidValue("missing protocol")
    protocol = 0 if proto_s.lower() == "%any" else parse_protocol(proto_s)
    if not slash or port_s == "":
        return ProtoPort(protocol)
    if port_s.lower() == "%any":
        if protocol == 0:
            raise InvalidValue("port wildcard (%any) requires a valid protocol")
        return ProtoPort(protocol, 0, True)
    port = parse_port(port_s)
    if protocol == 0 and port != 0:
        raise InvalidValue("protocol 0 must have 0 port")
    return ProtoPort(protocol, port)


# ---------------------------------------------------------------------------
# IDs (lib/libswan/id.c::ttoid)
# ---------------------------------------------------------------------------

# IKEv2 ID type numbers (RFC 7296 3.5, RFC 7619 for NULL); NONE/FROMCERT are
# Libreswan-internal.
ID_FROMCERT: Final = -3
ID_NONE: Final = 0
ID_IPV4_ADDR: Final = 1
ID_FQDN: Final = 2
ID_USER_FQDN: Final = 3
ID_IPV6_ADDR: Final = 5
ID_DER_ASN1_DN: Final = 9
ID_KEY_ID: Final = 11
ID_NULL: Final = 13

_ID_TYPE_NAMES: Final[dict[int, str]] = {
    ID_FROMCERT: "FROMCERT", ID_NONE: "NONE", ID_IPV4_ADDR: "IPV4_ADDR", ID_FQDN: "FQDN",
    ID_USER_FQDN: "USER_FQDN", ID_IPV6_ADDR: "IPV6_ADDR", ID_DER_ASN1_DN: "DER_ASN1_DN",
    ID_KEY_ID: "KEY_ID", ID_NULL: "NULL",
}

# x509dn.c x501rdns[]: accepted attribute names -> canonical spelling
_DN_ATTRS: Final[dict[str, str]] = {
    a.lower(): c for a, c in [
        ("ND", "ND"), ("UID", "UID"), ("DC", "DC"), ("CN", "CN"), ("S", "S"), ("SN", "SN"),
        ("serialNumber", "SN"), ("C", "C"), ("L", "L"), ("ST", "ST"), ("O", "O"),
        ("OU", "OU"), ("T", "T"), ("D", "D"), ("N", "N"), ("G", "G"), ("I", "I"),
        ("ID", "ID"), ("E", "E"), ("Email", "E"), ("emailAddress", "E"), ("UN", "UN"),
        ("unstructuredName", "UN"), ("TCGID", "TCGID"),
    ]
}


@dataclass(frozen=True, slots=True)
class ID:
    """A parsed leftid=/rightid=.

    kind is the IKEv2 ID type number (or ID_NONE/ID_FROMCERT); text is what
    was written; name is the payload-ish form (FQDN without `@`, DN as
    normalised text, KEY_ID as bytes); addr is set for IP IDs; dns_name is set
    when an IP ID was written as a host name still to be resolved.
    """

    kind: int
    text: str
    name: str | bytes = ""
    addr: IPAddress | None = None
    dns_name: str | None = None
    rdns: tuple[tuple[str, str], ...] = field(default=())

    @property
    def type_name(self) -> str:
        """Short name as 5.3+ status prints it (`FQDN`, `IPV4_ADDR`, ...)."""
        return _ID_TYPE_NAMES.get(self.kind, str(self.kind))

    @property
    def is_wildcard(self) -> bool:
        return self.kind == ID_NONE

    def display(self) -> str:
        """How Libreswan prints the ID (jam_id): `@west`, `192.1.2.45`, DN."""
        k = self.kind
        if k == ID_FROMCERT:
            return "%fromcert"
        if k == ID_NONE:
            return "(none)"
        if k == ID_NULL:
            return "ID_NULL"
        if k in (ID_IPV4_ADDR, ID_IPV6_ADDR):
            if self.addr is None:
                return self.dns_name or "%any"
            return "%any" if self.addr.is_unspecified else str(self.addr)
        if k == ID_FQDN:
            return f"@{self.name}"
        if k == ID_USER_FQDN:
            return str(self.name)
        if k == ID_DER_ASN1_DN:
            return str(self.name)
        if k == ID_KEY_ID:
            assert isinstance(self.name, bytes)
            return "@#0x" + self.name.hex()
        return f"unknown id kind {k}"

    def __str__(self) -> str:
        return self.display()


def _split_rdns(text: str) -> list[str]:
    """Split a DN on unescaped `,` (or `/` when it starts with `/`)."""
    sep = "/" if text.startswith("/") else ","
    if sep == "/":
        text = text[1:]
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def parse_dn(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """atodn(): LDAP/openssl style DN -> (normalised text, RDN pairs)."""
    rdns: list[tuple[str, str]] = []
    for part in _split_rdns(text):
        part = part.strip()
        if part == "":
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise InvalidValue("missing '='")
        key = key.strip()
        value = value.strip()
        if value.startswith('"'):
            raise InvalidValue("obsolete rfc1779 quoting using '\"' not supported")
        canon = _DN_ATTRS.get(key.lower())
        if canon is None:
            if re.fullmatch(r"[0-9]+(\.[0-9]+)+", key):
                if not value.startswith("#"):
                    raise InvalidValue("numeric OID requires #HEXPAIR BER")
                canon = key
            else:
                raise InvalidValue("unknown OID in ID_DER_ASN1_DN")
        rdns.append((canon, value))
    normal = ", ".join(f"{k}={v}" for k, v in rdns)
    return normal, tuple(rdns)


def _hex_bytes(text: str) -> bytes:
    t = text[2:] if text[:2].lower() == "0x" else text
    t = t.replace("_", "")
    if t == "" or len(t) % 2 or re.fullmatch(r"[0-9a-fA-F]*", t) is None:
        raise InvalidValue("odd number of hex digits" if len(t) % 2 else "bad hex digit")
    return bytes.fromhex(t)


def parse_id(text: str) -> ID:
    """ttoid(): every ID form of ipsec.conf(5); host names are not resolved."""
    if text == "%fromcert":
        return ID(ID_FROMCERT, text)
    if text == "%none":
        return ID(ID_NONE, text)
    if text == "%null":
        return ID(ID_NULL, text)
    if text in ("%any", "0.0.0.0"):
        return ID(ID_NONE, text)
    if "=" in text:
        normal, rdns = parse_dn(text[1:] if text.startswith("@") else text)
        return ID(ID_DER_ASN1_DN, text, normal, rdns=rdns)
    if "@" not in text:
        if text == "":
            raise InvalidValue("empty string")
        family = 6 if ":" in text else 4
        try:
            addr = parse_address(text, family)
        except InvalidValue:
            # a DNS name: Libreswan resolves it; keep the name for later.
            if not re.fullmatch(r"[A-Za-z0-9._-]+", text) or family == 6:
                raise InvalidValue(f"'{text}' is not a numeric IPv{family} address "
                                   "or a host name") from None
            kind = ID_IPV4_ADDR if family == 4 else ID_IPV6_ADDR
            return ID(kind, text, dns_name=text)
        kind = ID_IPV4_ADDR if addr.version == 4 else ID_IPV6_ADDR
        return ID(kind, text, addr=addr)
    if text.startswith("@#"):
        return ID(ID_KEY_ID, text, _hex_bytes(text[2:]))
    if text.startswith("@~"):
        der = _hex_bytes(text[2:])
        return ID(ID_DER_ASN1_DN, text, der.hex())
    if text.startswith("@["):
        inner = text[2:]
        if inner.endswith("]"):
            inner = inner[:-1]
        return ID(ID_KEY_ID, text, inner.encode())
    if text.startswith("@"):
        return ID(ID_FQDN, text, text[1:])
    return ID(ID_USER_FQDN, text, text)


# ---------------------------------------------------------------------------
# left=/right= and nexthop
# ---------------------------------------------------------------------------

_HOST_KEYWORDS: Final[dict[str, str]] = {
    "%defaultroute": "defaultroute", "%any": "any", "%oppo": "oppo",
    "%opportunistic": "oppo", "%opportunisticgroup": "oppogroup", "%oppogroup": "oppogroup",
    "%group": "group", "%direct": "direct",
}


@dataclass(frozen=True, slots=True)
class Host:
    """left=/right= (or nexthop=) as Libreswan classifies it.

    kind: addr | any | defaultroute | oppo | oppogroup | group | direct |
    dns | iface | unset.  family is 4/6 when the value pins it (`%any6`,
    `%defaultroute4`, an address), else None.
    """

    text: str | None
    kind: str
    addr: IPAddress | None = None
    family: int | None = None
    iface: str | None = None

    @property
    def is_set(self) -> bool:
        return self.kind != "unset"


def parse_host(text: str | None) -> Host:
    """extract_host_addr(): classify without resolving DNS names."""
    if text is None or text == "":
        # Libreswan would try to resolve "" as a host name and fail later
        return Host(text, "unset")
    if text.startswith("%"):
        m = re.fullmatch(r"(%[^46]*)([46]?)(.*)", text, re.S)
        assert m is not None
        word, fam, junk = m.groups()
        if junk:
            raise InvalidValue(f"contains the trailing junk '{junk}'")
        family = int(fam) if fam else None
        kind = _HOST_KEYWORDS.get(word.lower())
        if kind is None:
            return Host(text, "iface", family=family, iface=word[1:])
        return Host(text, kind, family=family)
    try:
        addr = parse_address(text)
    except InvalidValue:
        return Host(text, "dns")
    return Host(text, "addr", addr, addr.version)


def parse_nexthop(text: str | None) -> Host:
    """nexthop=: an address, %defaultroute or %direct (checked by extract)."""
    return parse_host(text)


# ---------------------------------------------------------------------------
# address pools, marks, ipsec-interface
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressPool:
    """addresspool=: an inclusive range; `cidr` is set when given as a prefix."""

    start: IPAddress
    end: IPAddress
    cidr: IPNetwork | None = None

    @property
    def version(self) -> int:
        return self.start.version

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def __contains__(self, addr: object) -> bool:
        return (isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address)
                and addr.version == self.version and self.start <= addr <= self.end)

    def __str__(self) -> str:
        if self.cidr is not None:
            return str(self.cidr)
        # Libreswan prints an exact-prefix range as CIDR
        nets = list(ipaddress.summarize_address_range(self.start, self.end))
        if len(nets) == 1:
            return str(nets[0])
        return f"{self.start}-{self.end}"


def parse_pool(text: str) -> AddressPool:
    """ttopool_num(): `a.b.c.d-e.f.g.h` or `addr/len`."""
    m = re.match(r"([^/-]*)([/-]?)(.*)", text, re.S)
    assert m is not None
    start_s, sep, rest = m.groups()
    start = parse_address(start_s)
    if sep == "-":
        end = parse_address(rest, start.version)
        if end < start:
            raise InvalidValue("start of pool is greater than end")
        return AddressPool(start, end)
    if sep == "/":
        plen_s, _, sub = rest.partition("/")
        plen = _to_uint(plen_s, 0)[0]
        if plen > start.max_prefixlen:
            raise InvalidValue("too large")
        if sub:
            raise InvalidValue("subprefix address pools are not supported")
        net = ipaddress.ip_network(f"{start}/{plen}", strict=False)
        return AddressPool(net.network_address, net.broadcast_address, net)
    if rest:
        raise InvalidValue("expecting '-' or '/'")
    return AddressPool(start, start)


def parse_pools(text: str) -> list[AddressPool]:
    """A comma list of pools, at most one per address family."""
    toks = split_list(text, ",", keep_empty=True)
    if any(t.strip() == "" for t in toks):
        raise InvalidValue("empty field")
    out: list[AddressPool] = []
    for tok in toks:
        try:
            pool = parse_pool(tok.strip())
        except InvalidValue as e:
            raise InvalidValue(f"{tok} invalid, {e}") from None
        out.append(pool)
    return out


@dataclass(frozen=True, slots=True)
class Mark:
    """mark=/mark-in=/mark-out=: value/mask; value -1 means unique per SA."""

    value: int
    mask: int = 0xFFFFFFFF
    unique: bool = False

    def __str__(self) -> str:
        v = -1 if self.unique else self.value
        return f"{v}/{self.mask:#010x}"


def parse_mark(text: str) -> Mark:
    """mark_parse(): `( -1 | N | 0xN ) [ / ( N | 0xN ) ]`."""
    m = re.fullmatch(r"(-?[^/]*)(?:/(.*))?", text, re.S)
    assert m is not None
    val_s, mask_s = m.group(1), m.group(2)
    if val_s.startswith("-") and val_s != "-1":
        if re.fullmatch(r"-[0-9]+", val_s):
            raise InvalidValue(f"value invalid, {val_s} is less than -1")
    unique = val_s == "-1"
    if unique:
        value = 0xFFFFFFFF
    else:
        try:
            value = parse_uint(val_s)
        except InvalidValue as e:
            raise InvalidValue(f"value invalid, {e}") from None
        if value > 0xFFFFFFFF:
            raise InvalidValue(f"value invalid, {value} is larger than 0xffffffff")
    mask = 0xFFFFFFFF
    if mask_s is not None:
        try:
            mask = parse_uint(mask_s)
        except InvalidValue as e:
            raise InvalidValue(f"mask invalid, {e}") from None
        if mask > 0xFFFFFFFF:
            raise InvalidValue(f"mask invalid, {mask} is larger than 0xffffffff")
    if not unique and value & ~mask:
        raise InvalidValue(f"invalid, value {value:#08x} has bits outside mask {mask:#08x}")
    return Mark(value, mask, unique)


@dataclass(frozen=True, slots=True)
class IpsecInterface:
    """ipsec-interface=: `yes` (ipsec1), `no`, or an interface number."""

    enabled: bool
    id: int = 0

    @property
    def name(self) -> str | None:
        return f"ipsec{self.id}" if self.enabled else None


def parse_ipsec_interface(text: str) -> IpsecInterface:
    if text in YN_TEXT:
        return IpsecInterface(True, 1) if parse_yn(text) else IpsecInterface(False)
    try:
        n = parse_uint(text, 10)
    except InvalidValue:
        raise InvalidValue(f'ipsec-interface={text} invalid, expecting yes, no, or a number'
                           ) from None
    if n >= 2**32:
        raise InvalidValue(f"ipsec-interface={text} invalid, too large")
    return IpsecInterface(True, n)
