"""Distinguished names as Libreswan handles them (lib/libswan/x509dn.c).

Libreswan keeps DNs as DER and compares them itself rather than through NSS, except for the
any-order match which borrows NSS's AVA comparison.  This module reproduces that on top of a
small DER reader:

* ``str_dn`` prints a DN the way pluto logs it (``C=CA, ST=Ontario, ..., CN=east``: RDNs in
  certificate order, RFC 4514 escaping, unknown OIDs as ``1.2.3=#BER``); ``nss_dn`` prints it
  the way NSS's ``subjectName`` reads (reversed, no spaces), used in certificate errors;
* ``atodn`` turns an ipsec.conf DN into DER exactly as pluto does (one AVA per RDN,
  PrintableString unless a character forbids it, IA5String for ``E=``);
* ``match_dn`` / ``match_dn_any_order_wild``: equality with ``*`` wildcard values in the
  expected DN, first in order, then in any RDN order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .der import oid_body, oid_text, read_tlv, tlv

__all__ = [
    "Ava", "parse_name", "str_dn", "nss_dn", "atodn", "dn_has_wildcards", "match_dn",
    "same_dn", "match_dn_any_order_wild", "decode_value", "der_tlv", "der_children",
    "PLUTO_NAMES",
]

# ASN.1 tags used here
_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_UTF8, _PRINTABLE, _T61, _IA5, _UNIVERSAL, _BMP = 0x0C, 0x13, 0x14, 0x16, 0x1C, 0x1E
_STRING_TAGS: Final = frozenset((_PRINTABLE, _T61, _IA5, _UTF8, _BMP))  # get_next_rdn()

_EMAIL_OID: Final = "1.2.840.113549.1.9.1"

# oid.c names that can appear in a DN (pluto prints these; anything else is dotted).
PLUTO_NAMES: Final[dict[str, str]] = {
    "0.2.262.1.10.7.20": "ND", "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC", "2.5.4.3": "CN", "2.5.4.4": "S", "2.5.4.5": "SN",
    "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "T", "2.5.4.13": "D", "2.5.4.36": "userCertificate", "2.5.4.41": "N",
    "2.5.4.42": "G", "2.5.4.43": "I", "2.5.4.45": "ID", "2.5.4.72": "role",
    _EMAIL_OID: "E", "1.2.840.113549.1.9.2": "unstructuredName",
    "1.3.6.1.4.1.1201.1.1.2.2.75": "TCGID",
}

# x509dn.c x501rdns[]: names accepted by atodn -> (OID, default string type)
_ATODN: Final[dict[str, tuple[str, int]]] = {
    name.lower(): (oid, tag) for name, oid, tag in [
        ("ND", "0.2.262.1.10.7.20", _PRINTABLE), ("UID", "0.9.2342.19200300.100.1.1", _PRINTABLE),
        ("DC", "0.9.2342.19200300.100.1.25", _PRINTABLE), ("CN", "2.5.4.3", _PRINTABLE),
        ("S", "2.5.4.4", _PRINTABLE), ("SN", "2.5.4.5", _PRINTABLE),
        ("serialNumber", "2.5.4.5", _PRINTABLE), ("C", "2.5.4.6", _PRINTABLE),
        ("L", "2.5.4.7", _PRINTABLE), ("ST", "2.5.4.8", _PRINTABLE),
        ("O", "2.5.4.10", _PRINTABLE), ("OU", "2.5.4.11", _PRINTABLE),
        ("T", "2.5.4.12", _PRINTABLE), ("D", "2.5.4.13", _PRINTABLE),
        ("N", "2.5.4.41", _PRINTABLE), ("G", "2.5.4.42", _PRINTABLE),
        ("I", "2.5.4.43", _PRINTABLE), ("ID", "2.5.4.45", _PRINTABLE),
        ("E", _EMAIL_OID, _IA5), ("Email", _EMAIL_OID, _IA5),
        ("emailAddress", _EMAIL_OID, _IA5), ("UN", "1.2.840.113549.1.9.2", _IA5),
        ("unstructuredName", "1.2.840.113549.1.9.2", _IA5),
        ("TCGID", "1.3.6.1.4.1.1201.1.1.2.2.75", _PRINTABLE),
    ]
}

# NSS's CERT_NameToAscii keywords (for the subjectName-style rendering).
_NSS_NAMES: Final[dict[str, str]] = {
    "2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.6": "C", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID", _EMAIL_OID: "E", "2.5.4.5": "serialNumber",
    "2.5.4.4": "SN", "2.5.4.12": "title", "2.5.4.42": "givenName", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.46": "dnQualifier", "2.5.4.17": "postalCode",
    "2.5.4.65": "pseudonym",
}

_PRINTABLE_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


# ------------------------------------------------------------------ DER reading

der_tlv = read_tlv  # (tag, content start, end) of the TLV at pos


def der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, TLV start, content start, end) of each TLV in data[start:end]."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = der_tlv(data[:end], pos)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


_oid_text = oid_text
_oid_body = oid_body


_der = tlv


@dataclass(frozen=True, slots=True)
class Ava:
    """One AttributeTypeAndValue: dotted OID, string tag, content octets and the value TLV."""

    oid: str
    tag: int
    value: bytes
    ber: bytes


def parse_name(der: bytes) -> tuple[tuple[Ava, ...], ...]:
    """A DER Name as RDNs of AVAs; ValueError when it is not a well-formed Name."""
    tag, start, end = der_tlv(der, 0)
    if tag != _SEQUENCE or end != len(der):
        raise ValueError("DN is not a SEQUENCE")
    rdns = []
    for rtag, _, rstart, rend in der_children(der, start, end):
        if rtag != _SET:
            raise ValueError("RDN is not a SET")
        avas = []
        for atag, _, astart, aend in der_children(der, rstart, rend):
            if atag != _SEQUENCE:
                raise ValueError("AVA is not a SEQUENCE")
            parts = der_children(der, astart, aend)
            if len(parts) != 2 or parts[0][0] != _OID:
                raise ValueError("AVA is not an OID and value pair")
            oid = _oid_text(der[parts[0][2]:parts[0][3]])
            vtag, vpos, vstart, vend = parts[1]
            avas.append(Ava(oid, vtag, der[vstart:vend], der[vpos:vend]))
        if not avas:
            raise ValueError("empty RDN")
        rdns.append(tuple(avas))
    return tuple(rdns)


def _avas(der: bytes) -> list[Ava]:
    return [a for rdn in parse_name(der) for a in rdn]


# ------------------------------------------------------------------ printing

def _escape_value(value: bytes) -> str:
    """format_dn()'s RFC 4514 escaping of one attribute value."""
    out: list[str] = []
    body = value
    if body[:1] in (b" ", b"#"):
        out.append("\\" + chr(body[0]))
        body = body[1:]
    trailing = body.endswith(b" ")
    if trailing:
        body = body[:-1]
    for c in body:
        ch = chr(c)
        if ch in '\\"+,;<>':
            out.append("\\" + ch)
        elif 0x20 <= c <= 0x7E:
            out.append(ch)
        else:
            out.append(f"\\{c:02X}")
    if trailing:
        out.append("\\ ")
    return "".join(out)


def str_dn(der: bytes) -> str:
    """jam_dn(): how pluto prints a DN; ``(empty)`` or ``0x<HEX>`` when unprintable."""
    if not der:
        return "(empty)"
    try:
        parts = []
        for ava in _avas(der):
            name = PLUTO_NAMES.get(ava.oid)
            if name is None:
                parts.append(f"{ava.oid}=#{ava.ber.hex().upper()}")
                continue
            if ava.tag not in _STRING_TAGS:
                raise ValueError("unexpected ASN1 string type")
            parts.append(f"{name}={_escape_value(ava.value)}")
        return ", ".join(parts)
    except ValueError:
        return "0x" + der.hex().upper()


def decode_value(ava: Ava) -> str:
    """CERT_DecodeAVAValue(): the value as text whatever its string type."""
    if ava.tag == _BMP:
        return ava.value.decode("utf-16-be", "replace")
    if ava.tag == _UNIVERSAL:
        return ava.value.decode("utf-32-be", "replace")
    if ava.tag == _T61:
        return ava.value.decode("latin-1")
    return ava.value.decode("utf-8", "replace")


def _nss_value(text: str) -> str:
    special = ',=+<>#;"\\\r\n'
    if (text == "" or text[0] == " " or text[-1] == " " or "  " in text
            or any(c in special for c in text)):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def nss_dn(der: bytes) -> str:
    """CERT_NameToAscii(): NSS's ``subjectName`` (last RDN first, ``,`` without spaces)."""
    try:
        rdns = parse_name(der)
    except ValueError:
        return "0x" + der.hex().upper()
    parts = []
    for rdn in reversed(rdns):
        avas = []
        for ava in rdn:
            name = _NSS_NAMES.get(ava.oid)
            if name is None:
                avas.append(f"OID.{ava.oid}=#{ava.ber.hex().upper()}")
            else:
                avas.append(f"{name}={_nss_value(decode_value(ava))}")
        parts.append("+".join(avas))
    return ",".join(parts)


# ------------------------------------------------------------------ atodn

def _single_element(data: bytes) -> bool:
    try:
        return bool(data) and der_tlv(data, 0)[2] == len(data)
    except ValueError:
        return False


def _is_hex2(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(c) in "0123456789abcdefABCDEF" for c in pair)


def _is_printable(value: bytes) -> bool:
    return all(chr(c) in _PRINTABLE_CHARS for c in value)


def atodn(text: str) -> bytes:
    """An ipsec.conf DN (``C=CA, O=Libreswan, CN=*``) as DER, exactly as pluto builds it.

    Raises ValueError with pluto's diagnostic.
    """
    src = text.encode()
    i, n = 0, len(src)
    rdns: list[bytes] = []
    while True:
        while i < n and src[i] in b" /,":
            i += 1
        if i >= n:
            break
        default_tag: int | None
        if chr(src[i]).isdigit():
            j = i
            while j < n and src[j] not in b" =":
                j += 1
            dotted = src[i:j].decode()
            arcs = dotted.split(".")
            if len(arcs) < 2 or not all(a.isdigit() for a in arcs):
                raise ValueError("numeric OID missing first '.'")
            if int(arcs[0]) > 255 // 40:
                raise ValueError("numeric OID has invalid first digit")
            if int(arcs[1]) >= 40:
                raise ValueError("numeric OID has invalid second digit")
            oid, default_tag = dotted, None
        else:
            j = i
            while j < n and src[j] not in b" =":
                j += 1
            found = _ATODN.get(src[i:j].decode(errors="replace").lower())
            if found is None:
                raise ValueError("unknown OID in ID_DER_ASN1_DN")
            oid, default_tag = found
        i = j
        while i < n and src[i] == 0x20:
            i += 1
        if i >= n or src[i] != ord("="):
            raise ValueError("missing '='")
        i += 1
        while i < n and src[i] == 0x20:
            i += 1
        if i < n and src[i] == ord("#"):
            # a BER value as hex pairs, used as is
            i += 1
            j = i
            while _is_hex2(src[j:j + 2]):
                j += 2
            value_tlv = bytes.fromhex(src[i:j].decode())
            i = j
            # pluto copies these octets blindly; refuse what would make the DN unparsable
            if not _single_element(value_tlv):
                raise ValueError("#HEXPAIR value is not a single BER element")
        elif i < n and src[i] == ord('"'):
            raise ValueError("obsolete rfc1779 quoting using '\"' not supported")
        else:
            if default_tag is None:
                raise ValueError("numeric OID requires #HEXPAIR BER")
            value = bytearray()
            escape_stop = 0
            while i < n and src[i] not in b",/":
                if src[i] == ord("\\") and _is_hex2(src[i + 1:i + 3]):
                    value.append(int(src[i + 1:i + 3], 16))
                    i += 3
                    escape_stop = len(value)
                elif src[i] == ord("\\") and i + 1 < n:
                    value.append(src[i + 1])
                    i += 2
                    escape_stop = len(value)
                else:
                    value.append(src[i])
                    i += 1
            while len(value) > escape_stop and value[-1] == 0x20:
                value.pop()
            tag = default_tag
            if tag == _PRINTABLE and not _is_printable(bytes(value)):
                tag = _T61
            value_tlv = _der(tag, bytes(value))
        ava = _der(_SEQUENCE, _der(_OID, _oid_body(oid)) + value_tlv)
        rdns.append(_der(_SET, ava))
    return _der(_SEQUENCE, b"".join(rdns))


# ------------------------------------------------------------------ comparing

def dn_has_wildcards(der: bytes) -> bool:
    try:
        return any(a.value == b"*" for a in _avas(der))
    except ValueError:
        return False


def match_dn(a: bytes, b: bytes, wildcards: bool = False) -> tuple[bool, int]:
    """x509dn.c match_dn(): ``a`` (the certificate's) against ``b`` (``*`` wild when allowed).

    AVAs are compared in order; PrintableString (and e-mail IA5String) values in ``a`` compare
    without regard to case.  Returns (matched, number of wildcards used).
    """
    if not wildcards and a == b:
        return True, 0
    try:
        la, lb = _avas(a), _avas(b)
    except ValueError:
        return False, 0
    count = 0
    for x, y in zip(la, lb, strict=False):
        if x.tag not in _STRING_TAGS or y.tag not in _STRING_TAGS or x.oid != y.oid:
            return False, count
        if wildcards and y.value == b"*":
            count += 1
            continue
        if len(x.value) != len(y.value):
            return False, count
        if (x.tag != y.tag or x.tag == _PRINTABLE) and any(c & 0x80 for c in x.value + y.value):
            return False, count
        if x.value == y.value:
            continue
        caseless = x.tag == _PRINTABLE or (x.tag == _IA5 and x.oid == _EMAIL_OID)
        if caseless and x.value.lower() == y.value.lower() and b"\0" not in x.value:
            continue
        return False, count
    if len(la) != len(lb):
        return False, count
    return True, count


def same_dn(a: bytes, b: bytes) -> bool:
    return match_dn(a, b)[0]


def _printable_canon(value: bytes) -> bytes:
    # CERT_CompareDERPrintableStrings: case and runs of spaces do not matter
    return b" ".join(value.lower().split())


def _ava_equal(x: Ava, y: Ava) -> bool:
    """NSS CERT_CompareAVA() for AVAs of the same type."""
    if x.ber == y.ber:
        return True
    if not x.value or not y.value:
        return False
    if x.tag != y.tag:
        return decode_value(x) == decode_value(y)
    if x.tag == _PRINTABLE:
        return _printable_canon(x.value) == _printable_canon(y.value)
    return False


def match_dn_any_order_wild(a: bytes, b: bytes) -> tuple[bool, int]:
    """An exact (ordered) match, else every RDN of ``b`` found somewhere in ``a``.

    As in Libreswan, the unordered pass only requires each expected RDN to match some RDN of
    the certificate's DN, so an expected DN with fewer RDNs can match.
    """
    ok, count = match_dn(a, b, wildcards=True)
    if ok:
        return True, count
    try:
        ra, rb = parse_name(a), parse_name(b)
    except ValueError:
        return False, 0
    count = matched = 0
    for rdn_b in rb:
        for rdn_a in ra:
            hits, wild = 0, False
            for y in rdn_b:
                for x in rdn_a:
                    if x.oid != y.oid:
                        continue
                    if decode_value(y) == "*":
                        wild = True
                        hits += 1
                        break
                    if _ava_equal(x, y):
                        hits += 1
                        break
            if hits and hits == len(rdn_b):
                matched += 1
                count += wild
                break
    return (matched > 0 and matched == len(rb)), count
