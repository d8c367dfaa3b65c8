"""IDs matched against connections and certificates, as Libreswan does (id.c, x509.c).

* ``match_id`` / ``same_id``: connection ID matching (DNs with ``*`` wildcards);
* ``match_peer_id_cert``: the check of the peer's ID against its certificate: the subject DN
  for DER_ASN1_DN IDs, the subjectAltName for IP, FQDN and USER_FQDN IDs;
* helpers that read the exact DER of a certificate's subject, issuer and serial.

DN parsing, printing and comparison live in :mod:`pyswan.ike.x509dn`.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from pyswan.auto.values import (
    ID,
    ID_DER_ASN1_DN,
    ID_FQDN,
    ID_FROMCERT,
    ID_IPV4_ADDR,
    ID_IPV6_ADDR,
    ID_KEY_ID,
    ID_NONE,
    ID_NULL,
    ID_USER_FQDN,
)

from ..ike.x509dn import (
    PLUTO_NAMES,
    atodn,
    decode_value,
    der_children,
    der_tlv,
    match_dn_any_order_wild,
    nss_dn,
    parse_name,
    same_dn,
    str_dn,
)

__all__ = [
    "cert_subject_der", "cert_issuer_der", "cert_serial_bytes", "is_ca_cert", "id_dn_der",
    "id_from_dn_der", "id_from_payload", "str_id", "same_id", "match_id",
    "cert_verify_subject_alt_name", "match_peer_id_cert", "crl_issuer_der",
    "spki_subject_public_key", "MAX_WILDCARDS",
]


# ------------------------------------------------------------------ certificates

def _tbs_fields(cert: x509.Certificate) -> list[tuple[int, int, int, int]]:
    tbs = cert.tbs_certificate_bytes
    _, start, end = der_tlv(tbs, 0)
    fields = der_children(tbs, start, end)
    return fields[1:] if fields and fields[0][0] == 0xA0 else fields


def cert_subject_der(cert: x509.Certificate) -> bytes:
    """The subject Name exactly as encoded in the certificate (NSS's derSubject)."""
    _, pos, _, end = _tbs_fields(cert)[4]
    return cert.tbs_certificate_bytes[pos:end]


def cert_issuer_der(cert: x509.Certificate) -> bytes:
    _, pos, _, end = _tbs_fields(cert)[2]
    return cert.tbs_certificate_bytes[pos:end]


def cert_serial_bytes(cert: x509.Certificate) -> bytes:
    """The serialNumber INTEGER's content octets (what NSS prints after ``SN: 0x``)."""
    _, _, start, end = _tbs_fields(cert)[0]
    return cert.tbs_certificate_bytes[start:end]


def is_ca_cert(cert: x509.Certificate) -> bool:
    """CERT_IsCACert(): basicConstraints cA, or a self-signed version 1 certificate."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version == x509.Version.v1 and cert.issuer == cert.subject


# ------------------------------------------------------------------ IDs

def id_dn_der(ident: ID) -> bytes:
    """The DER of a DER_ASN1_DN ID (``@~hex`` is already DER)."""
    text = ident.text
    if text.startswith("@~"):
        return bytes.fromhex(str(ident.name))
    return atodn(text[1:] if text.startswith("@") else text)


def id_from_dn_der(der: bytes) -> ID:
    """A DER_ASN1_DN ID for a DER Name, displayed as pluto prints it."""
    text = str_dn(der)
    try:
        rdns = tuple((PLUTO_NAMES.get(a.oid, a.oid), decode_value(a)) for a in [a for rdn in parse_name(der) for a in rdn])
    except ValueError:
        rdns = ()
    return ID(ID_DER_ASN1_DN, text, text, rdns=rdns)


def id_from_payload(id_type: int, data: bytes) -> ID:
    """An ID payload (type and identification data) as a ``pyswan.auto.values.ID``."""
    if id_type in (ID_IPV4_ADDR, ID_IPV6_ADDR):
        addr = ipaddress.ip_address(data)
        return ID(id_type, str(addr), addr=addr)
    if id_type == ID_FQDN:
        name = data.decode("utf-8", "backslashreplace")
        return ID(ID_FQDN, "@" + name, name)
    if id_type == ID_USER_FQDN:
        name = data.decode("utf-8", "backslashreplace")
        return ID(ID_USER_FQDN, name, name)
    if id_type == ID_DER_ASN1_DN:
        return id_from_dn_der(data)
    if id_type == ID_KEY_ID:
        return ID(ID_KEY_ID, "@#0x" + data.hex(), data)
    if id_type == ID_NULL:
        return ID(ID_NULL, "%null")
    raise ValueError(f"ID type {id_type} is not supported")


def str_id(ident: ID) -> str:
    """str_id(): DNs in pluto's canonical form, everything else as displayed."""
    if ident.kind == ID_DER_ASN1_DN:
        try:
            return str_dn(id_dn_der(ident))
        except ValueError:
            return ident.display()
    return ident.display()


def _name_eq(a: str, b: str) -> bool:
    return a.rstrip(".").lower() == b.rstrip(".").lower()


def _id_eq(a: ID, b: ID) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind in (ID_NONE, ID_NULL):
        return True
    if a.kind in (ID_IPV4_ADDR, ID_IPV6_ADDR):
        if a.addr is not None and b.addr is not None:
            return a.addr == b.addr
        return _name_eq(a.dns_name or str(a.addr), b.dns_name or str(b.addr))
    if a.kind in (ID_FQDN, ID_USER_FQDN):
        return _name_eq(str(a.name), str(b.name))
    if a.kind == ID_DER_ASN1_DN:
        try:
            return same_dn(id_dn_der(a), id_dn_der(b))
        except ValueError:
            return False
    return a.name == b.name


def same_id(a: ID, b: ID) -> bool:
    """id.c same_id(): ID_NONE on either side is a wildcard."""
    return a.kind == ID_NONE or b.kind == ID_NONE or _id_eq(a, b)


MAX_WILDCARDS: Final = 15


def match_id(a: ID, b: ID) -> tuple[bool, int]:
    """id.c match_id(): does ID ``a`` (the peer's) fit ``b`` (the configured, maybe wild)?

    Returns (matched, wildcards); fewer wildcards is a better connection match.
    """
    if b.kind == ID_NONE:
        return True, MAX_WILDCARDS
    if a.kind != b.kind:
        return False, MAX_WILDCARDS
    if a.kind == ID_DER_ASN1_DN:
        try:
            return match_dn_any_order_wild(id_dn_der(a), id_dn_der(b))
        except ValueError:
            return False, MAX_WILDCARDS
    if same_id(a, b):
        return True, 0
    return False, MAX_WILDCARDS


def _ascii_id(ident: ID) -> str:
    if ident.kind in (ID_IPV4_ADDR, ID_IPV6_ADDR):
        return ident.dns_name if ident.addr is None and ident.dns_name else str(ident.addr)
    return str(ident.name)


def cert_verify_subject_alt_name(cert: x509.Certificate, ident: ID,
                                 who: str = "peer") -> str | None:
    """nss_cert_verify.c: match an IP/FQDN/USER_FQDN ID against the subjectAltName.

    Returns None on a match, else pluto's diagnostic.
    """
    kind = ident.type_name
    ascii_id = _ascii_id(ident)
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return (f"{who} certificate contains no subjectAltName extension to match "
                f"{kind} '{ident.display()}'")
    except ValueError:
        return (f"{who} certificate subjectAltName extension failed to decode while "
                f"looking for {kind} '{ident.display()}'")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(ascii_id)
    except ValueError:
        ip = None
    for gn in ext.value:  # type: ignore[attr-defined]
        if isinstance(gn, (x509.DNSName, x509.RFC822Name)) and ip is None:
            value = gn.value
            name = ascii_id
            if len(value) > 2 and value.startswith("*."):
                # a wildcard in the certificate stands for the first label of the ID
                value = value[2:]
                dot = name.find(".")
                if dot < 0:
                    continue
                name = name[dot + 1:]
            if name.lower() == value.lower():
                return None
        elif isinstance(gn, x509.IPAddress) and ip is not None:
            if isinstance(gn.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) \
                    and gn.value.packed == ip.packed:
                return None
    return f"{who} certificate subjectAltName extension does not match {kind} '{ascii_id}'"


def match_peer_id_cert(cert: x509.Certificate, peer_id: ID) -> tuple[str | None, ID | None]:
    """x509.c match_peer_id_cert(): (diagnostic or None, replacement ID or None).

    The replacement is the certificate's subject DN for ``%fromcert`` and for a DN ID that
    matched through wildcards; otherwise the peer keeps its ID.
    """
    if is_ca_cert(cert):
        return "cannot use peer CA certificate", None
    kind = peer_id.kind
    if kind in (ID_IPV4_ADDR, ID_IPV6_ADDR, ID_FQDN, ID_USER_FQDN):
        return cert_verify_subject_alt_name(cert, peer_id), None
    subject = cert_subject_der(cert)
    if kind == ID_FROMCERT:
        return None, id_from_dn_der(subject)
    if kind == ID_DER_ASN1_DN:
        try:
            ok, wild = match_dn_any_order_wild(subject, id_dn_der(peer_id))
        except ValueError:
            ok, wild = False, 0
        if not ok:
            return (f"peer ID DER_ASN1_DN '{nss_dn(subject)}' does not match expected "
                    f"'{str_id(peer_id)}'"), None
        return None, (id_from_dn_der(subject) if wild else None)
    return (f"unhandled ID type {peer_id.type_name}; cannot match peer's certificate with "
            "expected peer ID"), None


def crl_issuer_der(crl: x509.CertificateRevocationList) -> bytes:
    """The CRL's issuer Name as encoded (TBSCertList: [version,] signature, issuer, ...)."""
    tbs = crl.tbs_certlist_bytes
    _, start, end = der_tlv(tbs, 0)
    fields = der_children(tbs, start, end)
    if fields and fields[0][0] == 0x02:
        fields = fields[1:]
    _, pos, _, fend = fields[1]
    return tbs[pos:fend]


def spki_subject_public_key(spki: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's key octets (NSS's ``derPublicKey``)."""
    _, start, end = der_tlv(spki, 0)
    fields = der_children(spki, start, end)
    if len(fields) != 2 or fields[1][0] != 0x03:
        raise ValueError("not a SubjectPublicKeyInfo")
    _, _, bstart, bend = fields[1]
    return spki[bstart + 1:bend]  # skip the unused-bits octet
