"""DN printing and parsing, DN/ID matching (lib/libswan/x509dn.c, id.c behaviour)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.auto.values import ID_DER_ASN1_DN, ID_FQDN, ID_IPV4_ADDR, ID_KEY_ID, parse_id
from pyswan.ike.x509dn import (
    atodn,
    dn_has_wildcards,
    match_dn,
    match_dn_any_order_wild,
    nss_dn,
    parse_name,
    str_dn,
)
from pyswan.pluto.x509ids import MAX_WILDCARDS, id_dn_der, id_from_payload, match_id, same_id


def dn(*attrs: x509.NameAttribute) -> bytes:
    return x509.Name(list(attrs)).public_bytes()


def _printable(oid: ObjectIdentifier, value: str) -> x509.NameAttribute:
    return x509.NameAttribute(oid, value, _type=_ASN1Type.PrintableString)


def test_atodn_builds_pluto_der() -> None:
    # one AVA per RDN, PrintableString for C/O/CN, IA5String for E
    expected = dn(_printable(NameOID.COUNTRY_NAME, "CA"),
                  _printable(NameOID.ORGANIZATION_NAME, "Libreswan"),
                  _printable(NameOID.COMMON_NAME, "east"),
                  x509.NameAttribute(NameOID.EMAIL_ADDRESS, "user@example.org",
                                     _type=_ASN1Type.IA5String))
    assert atodn("C=CA, O=Libreswan, CN=east, E=user@example.org") == expected
    assert atodn("@c = CA,o=Libreswan,cn=east,emailAddress=user@example.org"[1:]) == expected


@pytest.mark.parametrize("text, error", [
    ("XX=foo", "unknown OID in ID_DER_ASN1_DN"),
    ("CN foo", "missing '='"),
    ('CN="quoted"', "obsolete rfc1779 quoting using '\"' not supported"),
    ("2.5.4.3=plain", "numeric OID requires #HEXPAIR BER"),
    ("C=#", "#HEXPAIR value is not a single BER element"),
    ("C=#0c05ab", "#HEXPAIR value is not a single BER element"),
])
def test_atodn_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        atodn(text)


def test_atodn_escapes_and_types() -> None:
    assert str_dn(atodn(r"CN=a\,b, O=x\2Cy")) == r"CN=a\,b, O=x\,y"
    assert str_dn(atodn("/C=CA/O=Slash Form")) == "C=CA, O=Slash Form"
    assert str_dn(atodn("CN=caf\\C3\\A9")) == r"CN=caf\C3\A9"  # T61String, bytes escaped
    assert str_dn(atodn("2.5.4.9=#0c044d61696e")) == "2.5.4.9=#0C044D61696E"
    assert str_dn(atodn("CN=trailing   ")) == "CN=trailing"
    assert atodn("CN=*")[-1:] == b"*" and dn_has_wildcards(atodn("O=x, CN=*"))
    assert not dn_has_wildcards(atodn("CN=a*"))


def test_str_dn_escaping() -> None:
    der = dn(x509.NameAttribute(NameOID.COMMON_NAME, "#lead, comma+plus "),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caf\u00e9"),
             x509.NameAttribute(ObjectIdentifier("2.5.4.9"), "Main"))
    assert str_dn(der) == r"CN=\#lead\, comma\+plus\ , O=Caf\C3\A9, 2.5.4.9=#0C044D61696E"
    assert str_dn(b"") == "(empty)"
    assert str_dn(b"\x30\x05junk") == "0x30056A756E6B"


def test_nss_dn_is_reversed_and_quoted() -> None:
    der = dn(x509.NameAttribute(NameOID.COUNTRY_NAME, "CA"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
             x509.NameAttribute(NameOID.COMMON_NAME, "east"))
    assert nss_dn(der) == 'CN=east,O="Acme, Inc.",C=CA'


@pytest.mark.parametrize("cert_dn, expected, ordered, any_order, wild", [
    ("C=CA, O=Acme, CN=east", "C=CA, O=Acme, CN=east", True, True, 0),
    ("C=CA, O=Acme, CN=east", "C=CA, O=Acme, CN=*", True, True, 1),
    ("C=CA, O=Acme, CN=east", "CN=east, C=CA, O=Acme", False, True, 0),
    ("C=CA, O=Acme, CN=east", "CN=*, C=CA, O=*", False, True, 2),
    ("C=CA, O=Acme, CN=east", "C=CA, O=acme, CN=east", True, True, 0),  # PrintableString
    ("C=CA, O=Acme, CN=east", "C=CA, O=Acme, CN=west", False, False, 0),
    ("C=CA, O=Acme, CN=east", "C=CA, O=Acme", False, True, 0),  # the any-order quirk
    ("C=CA, O=Acme", "C=CA, O=Acme, CN=east", False, False, 0),
])
def test_dn_matching(cert_dn: str, expected: str, ordered: bool, any_order: bool,
                     wild: int) -> None:
    a, b = atodn(cert_dn), atodn(expected)
    assert match_dn(a, b, wildcards=True)[0] is ordered
    ok, count = match_dn_any_order_wild(a, b)
    assert ok is any_order
    if ok:
        assert count == wild


def test_utf8_values_compare_with_case() -> None:
    cert = dn(x509.NameAttribute(NameOID.COMMON_NAME, "East"))  # UTF8String
    assert not match_dn_any_order_wild(cert, atodn("CN=east"))[0]
    assert match_dn_any_order_wild(cert, atodn("CN=East"))[0]  # decoded values compared
    printable = dn(_printable(NameOID.COMMON_NAME, "East  Side"))
    assert match_dn_any_order_wild(printable, atodn("CN=east side"))[0]


def test_id_conversions() -> None:
    i = id_from_payload(ID_FQDN, b"east.example.org")
    assert i.display() == "@east.example.org"
    assert id_from_payload(ID_IPV4_ADDR, bytes([192, 0, 2, 1])).display() == "192.0.2.1"
    assert id_from_payload(ID_KEY_ID, b"\x01\x02").display() == "@#0x0102"
    der = atodn("C=CA, CN=east")
    d = id_from_payload(ID_DER_ASN1_DN, der)
    assert d.display() == "C=CA, CN=east" and id_dn_der(d) == der
    hexform = parse_id("@~" + der.hex())
    assert id_dn_der(hexform) == der


@pytest.mark.parametrize("peer, configured, ok, wild", [
    ("@east", "@EAST.", True, 0),
    ("@east", "%any", True, MAX_WILDCARDS),
    ("@east", "@west", False, MAX_WILDCARDS),
    ("@east", "192.0.2.1", False, MAX_WILDCARDS),
    ("192.0.2.1", "192.0.2.1", True, 0),
    ("C=CA, O=Acme, CN=east", "C=CA, O=Acme, CN=*", True, 1),
    ("C=CA, O=Acme, CN=east", "O=*, C=CA, CN=*", True, 2),
    ("C=CA, O=Acme, CN=east", "C=CA, O=Other, CN=*", False, 0),
])
def test_match_id(peer: str, configured: str, ok: bool, wild: int) -> None:
    matched, count = match_id(parse_id(peer), parse_id(configured))
    assert matched is ok
    if ok:  # the count only ranks successful matches
        assert count == wild


def test_same_id() -> None:
    assert same_id(parse_id("%any"), parse_id("@x"))
    assert same_id(parse_id("user@Example.org"), parse_id("user@example.org"))
    assert not same_id(parse_id("C=CA, CN=a"), parse_id("CN=a, C=CA"))  # same_dn is ordered


# ------------------------------------------------------------------ properties

_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                               blacklist_characters="/"), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["C", "O", "OU", "CN", "E", "DC"]), _VALUE),
                min_size=1, max_size=5))
def test_str_dn_and_atodn_round_trip(rdns: list[tuple[str, str]]) -> None:
    """What pluto prints, pluto reads back to the same DER (except for '/', a separator)."""
    text = ", ".join(f"{k}={v}" for k, v in rdns)
    try:
        der = atodn(text)
    except ValueError:
        return  # e.g. a value that starts with '#' or '"'
    assert atodn(str_dn(der)) == der
    assert match_dn_any_order_wild(der, der)[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_dn_reader_fails_only_with_value_error(data: bytes) -> None:
    try:
        parse_name(data)
    except ValueError:
        pass
    str_dn(data)
    nss_dn(data)
    match_dn_any_order_wild(data, data)
