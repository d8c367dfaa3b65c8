"""Value parsers of pyswan.auto.values: accepted forms and exact error texts."""

from __future__ import annotations

import ipaddress

import pytest

from pyswan.auto import values as V
from pyswan.auto.values import InvalidValue


def reason(fn, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidValue) as e:
        fn(*args)
    return str(e.value)


@pytest.mark.parametrize("text,want", [
    ("yes", True), ("no", False), ("YES", True), ("true", True), ("false", False),
    ("on", True), ("off", False), ("y", True), ("n", False), ("1", True), ("0", False),
])
def test_yes_no_forms(text: str, want: bool) -> None:
    assert V.parse_yn(text) is want


def test_yes_no_invalid_lists_options() -> None:
    assert reason(V.parse_yn, "maybe") == 'is invalid, valid options are "yes", and "no"'


def test_sparse_options_text_lists_each_value_once() -> None:
    assert V.NIC_OFFLOAD.options_text() == '"no", "crypto", and "packet"'
    assert V.TYPE.options_text() == '"tunnel", "transport", "pass", "drop", and "reject"'


def test_sparse_implemented_as() -> None:
    assert V.TYPE.lookup("reject") == ("drop", "implemented_as")
    assert V.AUTOSTART.lookup("route") == ("ondemand", "alias")
    assert V.AUTOSTART.lookup("start") == ("up", None)


@pytest.mark.parametrize("text,seconds", [
    ("8h", 28800), ("1d", 86400), ("30s", 30), ("500ms", 0.5), ("10", 10), ("1.5m", 90),
    ("2w", 1209600), ("10seconds", 10), ("10 s", 10), (".5s", 0.5), ("3m", 180),
    ("1us", 0.000001), ("0", 0),
])
def test_durations(text: str, seconds: float) -> None:
    assert V.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,msg", [
    ("0xA", 'unrecognized duration multiplier "xA"'),
    ("10foo", 'unrecognized duration multiplier "foo"'),
    ("abc", 'bad duration value "abc": invalid decimal'),
    ("", 'bad duration value "": invalid decimal'),
    (".", 'bad duration value ".": invalid decimal fraction'),
])
def test_duration_errors(text: str, msg: str) -> None:
    assert reason(V.parse_duration, text) == msg


@pytest.mark.parametrize("text,ms", [("500", 500), ("2s", 2000), ("250ms", 250), ("1.5", 1)])
def test_retransmit_interval_bare_is_milliseconds(text: str, ms: int) -> None:
    assert V.parse_duration_ms(text) == ms


def test_retransmit_interval_error_wording() -> None:
    assert reason(V.parse_duration_ms, "5x") == 'duration "5x" has an unrecognized multiplier "x"'
    assert reason(V.parse_duration_ms, "x") == 'invalid duration "x", invalid decimal'


def test_percent() -> None:
    assert V.parse_percent("100%") == 100
    assert V.parse_percent("10%") == 10
    assert reason(V.parse_percent, "10foo") == "expecting % character"
    assert reason(V.parse_percent, "10") == "expecting % character"
    assert reason(V.parse_percent, "") == "empty string"
    assert reason(V.parse_percent, "x%") == "first decimal digit invalid"


@pytest.mark.parametrize("text,want", [
    ("0", 0), ("128", 128), ("0x10", 16), ("010", 8), ("-1", 2**64 - 1), ("0b101", 5),
])
def test_uint(text: str, want: int) -> None:
    assert V.parse_uint(text) == want


def test_uint_errors() -> None:
    assert reason(V.parse_uint, "12a") == "non-decimal digit in number"
    assert reason(V.parse_uint, "x") == "first digit invalid"
    assert reason(V.parse_uint, "") == "empty string"
    assert reason(V.parse_uint, "99999999999999999999999") == "uintmax_t overflow"


@pytest.mark.parametrize("text,scales,want", [
    ("1KiB", V.BINARY_BYTES, 1024), ("2 MiB", V.BINARY_BYTES, 2 * 2**20),
    ("1.5KiB", V.BINARY_BYTES, 1536), ("10", V.BINARY_BYTES, 10),
    ("3 kilobytes", V.BINARY_BYTES, 3072), ("4Ki", V.BINARY, 4096), ("1Ei", V.BINARY, 2**60),
])
def test_scaled_counts(text: str, scales: object, want: int) -> None:
    assert V.parse_scaled(text, scales) == want  # type: ignore[arg-type]


def test_scaled_count_error() -> None:
    assert reason(V.parse_scaled, "1KB", V.BINARY_BYTES) == \
        'unrecognized binary byte multiplier "KB"'


@pytest.mark.parametrize("text,want", [
    ("192.1.2.45", "192.1.2.45"), ("127.1", "127.0.0.1"), ("0x01020304", "1.2.3.4"),
    ("2001:db8::1", "2001:db8::1"), ("::", "::"), ("0.0.0/0".split("/")[0], "0.0.0.0"),
])
def test_addresses(text: str, want: str) -> None:
    assert V.parse_address(text) == ipaddress.ip_address(want)


@pytest.mark.parametrize("text,msg", [
    ("1.2.3.4.5", "garbage at end of dotted-address"),
    ("1.2.3.256", "overflow in dotted-numeric address"),
    ("1..3", "empty dotted-numeric address field"),
    ("1:2", "incomplete IPv6 numeric address"),
    ("1:::2", "::: in IPv6 numeric address"),
    ("", "empty string"),
])
def test_address_errors(text: str, msg: str) -> None:
    assert reason(V.parse_address, text) == msg


def test_selectors() -> None:
    s = V.parse_selector("1.2.3.4/31/tcp/22")
    assert (str(s.network), s.protocol, s.port) == ("1.2.3.4/31", 6, 22)
    assert str(s) == "1.2.3.4/31/tcp/22"
    s6 = V.parse_selector("1:2::/128/tcp/22")
    assert (s6.version, s6.protocol, s6.port) == (6, 6, 22)
    z = V.parse_selector("192.0.1.1/24")
    assert str(z.network) == "192.0.1.0/24" and str(z.nonzero_host) == "192.0.1.1"
    host = V.parse_selector("10.1.1.1")
    assert str(host.network) == "10.1.1.1/32"
    assert [str(x) for x in V.parse_selectors("10.0.0.0/8,2001:db8::/32")] == \
        ["10.0.0.0/8", "2001:db8::/32"]
    # as in Libreswan, ", " is two delimiters and so an empty field
    assert reason(V.parse_selectors, "10.0.0.0/8, 2001:db8::/32") == "empty field"


@pytest.mark.parametrize("text,msg", [
    ("", "empty field"),
    ("1.2.3.0/24,,1.2.4.0/24", "empty field"),
    ("10.0.0.0/33", "10.0.0.0/33 invalid, too large"),
    ("1.2.3.4/32/bogus", "1.2.3.4/32/bogus invalid, unknown protocol"),
    ("1.2.3.4/32/0/22", "1.2.3.4/32/0/22 invalid, a non-zero port requires a valid protocol"),
])
def test_selector_errors(text: str, msg: str) -> None:
    assert reason(V.parse_selectors, text) == msg


@pytest.mark.parametrize("text,proto,port,wild", [
    ("17/1701", 17, 1701, False), ("udp/l2tp", 17, 1701, False), ("tcp/%any", 6, 0, True),
    ("17/%any", 17, 0, True), ("icmp/2048", 1, 2048, False), ("6", 6, 0, False),
    ("%any", 0, 0, False),
])
def test_protoport(text: str, proto: int, port: int, wild: bool) -> None:
    pp = V.parse_protoport(text)
    assert (pp.protocol, pp.port, pp.port_wildcard) == (proto, port, wild)


def test_protoport_errors() -> None:
    assert reason(V.parse_protoport, "") == "missing protocol"
    assert reason(V.parse_protoport, "%any/%any") == \
        "port wildcard (%any) requires a valid protocol"
    assert reason(V.parse_protoport, "0/22") == "protocol 0 must have 0 port"


@pytest.mark.parametrize("text,kind,type_name,display", [
    ("@west", V.ID_FQDN, "FQDN", "@west"),
    ("user@example.com", V.ID_USER_FQDN, "USER_FQDN", "user@example.com"),
    ("192.1.2.45", V.ID_IPV4_ADDR, "IPV4_ADDR", "192.1.2.45"),
    ("2001:db8:1:2::45", V.ID_IPV6_ADDR, "IPV6_ADDR", "2001:db8:1:2::45"),
    ("C=CA, ST=Ontario, O=Libreswan, CN=east.testing.libreswan.org", V.ID_DER_ASN1_DN,
     "DER_ASN1_DN", "C=CA, ST=Ontario, O=Libreswan, CN=east.testing.libreswan.org"),
    ("C=CA,O=Libreswan,CN=west", V.ID_DER_ASN1_DN, "DER_ASN1_DN", "C=CA, O=Libreswan, CN=west"),
    ("@#0a0b", V.ID_KEY_ID, "KEY_ID", "@#0x0a0b"),
    ("@[GroupName]", V.ID_KEY_ID, "KEY_ID", "@#0x" + b"GroupName".hex()),
    ("%any", V.ID_NONE, "NONE", "(none)"),
    ("%none", V.ID_NONE, "NONE", "(none)"),
    ("0.0.0.0", V.ID_NONE, "NONE", "(none)"),
    ("%null", V.ID_NULL, "NULL", "ID_NULL"),
    ("%fromcert", V.ID_FROMCERT, "FROMCERT", "%fromcert"),
])
def test_ids(text: str, kind: int, type_name: str, display: str) -> None:
    i = V.parse_id(text)
    assert (i.kind, i.type_name, i.display(), str(i)) == (kind, type_name, display, display)


def test_id_kinds_are_ikev2_numbers() -> None:
    assert (V.ID_IPV4_ADDR, V.ID_FQDN, V.ID_USER_FQDN, V.ID_IPV6_ADDR, V.ID_DER_ASN1_DN,
            V.ID_KEY_ID, V.ID_NULL) == (1, 2, 3, 5, 9, 11, 13)


def test_id_hostname_is_kept_unresolved() -> None:
    i = V.parse_id("gateway.example.com")
    assert i.kind == V.ID_IPV4_ADDR and i.addr is None and i.dns_name == "gateway.example.com"


def test_id_dn_errors() -> None:
    assert reason(V.parse_id, "XX=foo, CN=bar") == "unknown OID in ID_DER_ASN1_DN"
    assert V.parse_id("@CN=x").kind == V.ID_DER_ASN1_DN  # optional leading @


@pytest.mark.parametrize("text,kind,family", [
    ("192.1.2.45", "addr", 4), ("%any", "any", None), ("%any6", "any", 6),
    ("%defaultroute", "defaultroute", None), ("%defaultroute4", "defaultroute", 4),
    ("%opportunistic", "oppo", None), ("%oppo", "oppo", None),
    ("%opportunisticgroup", "oppogroup", None), ("%group", "group", None),
    ("%direct", "direct", None), ("vpn.example.com", "dns", None), ("%eth0", "iface", None),
])
def test_hosts(text: str, kind: str, family: int | None) -> None:
    h = V.parse_host(text)
    assert (h.kind, h.family) == (kind, family)


def test_host_trailing_junk() -> None:
    assert reason(V.parse_host, "%any4x") == "contains the trailing junk 'x'"


def test_marks() -> None:
    assert V.parse_mark("10") == V.Mark(10, 0xFFFFFFFF)
    assert V.parse_mark("0xA/0xff") == V.Mark(10, 0xFF)
    assert V.parse_mark("-1").unique
    assert reason(V.parse_mark, "0x100/0xff") == \
        "invalid, value 0x000100 has bits outside mask 0x0000ff"
    assert reason(V.parse_mark, "abc") == "value invalid, first digit invalid"
    assert reason(V.parse_mark, "1/x") == "mask invalid, first digit invalid"


def test_pools() -> None:
    p = V.parse_pool("192.168.1.10-192.168.1.20")
    assert (str(p.start), str(p.end), p.size) == ("192.168.1.10", "192.168.1.20", 11)
    c = V.parse_pool("10.0.0.0/24")
    assert str(c) == "10.0.0.0/24" and c.size == 256
    assert [str(x) for x in V.parse_pools("192.168.1.0/24,2001:db8::/120")] == \
        ["192.168.1.0/24", "2001:db8::/120"]
    assert reason(V.parse_pools, "192.168.1.0/24,") == "empty field"
    assert reason(V.parse_pool, "10.0.0.9-10.0.0.1") == "start of pool is greater than end"


def test_ipsec_interface() -> None:
    assert V.parse_ipsec_interface("yes").name == "ipsec1"
    assert V.parse_ipsec_interface("no").name is None
    assert V.parse_ipsec_interface("7").name == "ipsec7"
