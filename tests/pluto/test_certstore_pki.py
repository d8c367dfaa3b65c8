"""A small test PKI (built once per session) and the directory store written from it.

Other certstore tests import ``PKI``, ``NOW`` and ``write_store`` from here.

    mainca (RSA-2048 root)
      ├── west      RSA-2048, full SANs, O as PrintableString
      ├── ed        Ed25519
      ├── revoked   P-256 (on mainca's CRL)
      ├── expired   P-256 (2020-2021)
      ├── codesign / ikeonly / kusign   EKU and KU profile cases
      ├── noca-int  an "intermediate" without basicConstraints CA
      │     └── orphan
      └── interca   (P-256 intermediate, pathlen 0)
            ├── east   P-256, SAN *.wild.example.org
            └── road   P-384, no SAN
    otherca (P-256 root, not trusted) ── stranger
    forged: claims mainca as issuer but is signed by otherca's key
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 1, tzinfo=UTC)
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
END = dt.datetime(2030, 1, 1, tzinfo=UTC)
IPSEC_IKE = ObjectIdentifier("1.3.6.1.5.5.7.3.17")


def name(*pairs: tuple[ObjectIdentifier, str], printable: tuple[ObjectIdentifier, ...] = ()
         ) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(oid, value, _type=x509.name._ASN1Type.PrintableString)
        if oid in printable else x509.NameAttribute(oid, value)
        for oid, value in pairs
    ])


WEST_DN = name((NameOID.COUNTRY_NAME, "CA"), (NameOID.STATE_OR_PROVINCE_NAME, "Ontario"),
               (NameOID.ORGANIZATION_NAME, "Libreswan"),
               (NameOID.ORGANIZATIONAL_UNIT_NAME, "Test Department"),
               (NameOID.COMMON_NAME, "west.testing.libreswan.org"),
               (NameOID.EMAIL_ADDRESS, "user-west@testing.libreswan.org"),
               printable=(NameOID.ORGANIZATION_NAME,))
MAINCA_DN = name((NameOID.COUNTRY_NAME, "CA"), (NameOID.ORGANIZATION_NAME, "Libreswan"),
                 (NameOID.COMMON_NAME, "Libreswan test CA for mainca"))
INTER_DN = name((NameOID.COUNTRY_NAME, "CA"), (NameOID.ORGANIZATION_NAME, "Libreswan"),
                (NameOID.COMMON_NAME, "Intermediate CA"))
OTHER_DN = name((NameOID.COMMON_NAME, "Some other CA"))


def cn(text: str) -> x509.Name:
    return name((NameOID.COMMON_NAME, text))


def _sign_alg(key: object) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue(subject: x509.Name, pub: object, issuer: x509.Name, issuer_key: object, *,
          serial: int, ca: bool | None = False, pathlen: int | None = None,
          ku: dict[str, bool] | None = None, eku: list[ObjectIdentifier] | None = None,
          san: list[x509.GeneralName] | None = None,
          not_before: dt.datetime = START, not_after: dt.datetime = END) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(pub).serial_number(serial)  # type: ignore[arg-type]
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False))  # type: ignore
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    if ku is not None:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign",
                               "crl_sign", "encipher_only", "decipher_only"), False)
        flags.update(ku)
        b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, _sign_alg(issuer_key))  # type: ignore[arg-type]


CA_KU = {"key_cert_sign": True, "crl_sign": True}
EE_KU = {"digital_signature": True}


@cache
def _build() -> SimpleNamespace:
    k = SimpleNamespace(
        mainca=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        west=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        interca=ec.generate_private_key(ec.SECP256R1()),
        otherca=ec.generate_private_key(ec.SECP256R1()),
        east=ec.generate_private_key(ec.SECP256R1()),
        road=ec.generate_private_key(ec.SECP384R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
        misc=ec.generate_private_key(ec.SECP256R1()),
        raw=ec.generate_private_key(ec.SECP256R1()),
    )
    mk, pub = k.mainca, (lambda key: key.public_key())
    c = SimpleNamespace()
    c.mainca = issue(MAINCA_DN, pub(mk), MAINCA_DN, mk, serial=1, ca=True, ku=CA_KU)
    c.interca = issue(INTER_DN, pub(k.interca), MAINCA_DN, mk, serial=2, ca=True, pathlen=0,
                      ku=CA_KU)
    c.otherca = issue(OTHER_DN, pub(k.otherca), OTHER_DN, k.otherca, serial=3, ca=True,
                      ku=CA_KU)
    c.west = issue(WEST_DN, pub(k.west), MAINCA_DN, mk, serial=0x81, ku=EE_KU, san=[
        x509.DNSName("west.testing.libreswan.org"),
        x509.RFC822Name("user-west@testing.libreswan.org"),
        x509.IPAddress(ipaddress.ip_address("192.1.2.45")),
        x509.IPAddress(ipaddress.ip_address("2001:db8:1:2::45"))])
    c.east = issue(cn("east.testing.libreswan.org"), pub(k.east), INTER_DN, k.interca,
                   serial=0x10, ku=EE_KU, eku=[ExtendedKeyUsageOID.SERVER_AUTH],
                   san=[x509.DNSName("east.testing.libreswan.org"),
                        x509.DNSName("*.wild.example.org")])
    c.road = issue(cn("road"), pub(k.road), INTER_DN, k.interca, serial=0x11)
    c.ed = issue(cn("ed"), pub(k.ed), MAINCA_DN, mk, serial=0x12,
                 san=[x509.DNSName("ed.example.org")])
    c.revoked = issue(cn("revoked"), pub(k.misc), MAINCA_DN, mk, serial=0x13)
    c.expired = issue(cn("expired"), pub(k.misc), MAINCA_DN, mk, serial=0x14,
                      not_before=dt.datetime(2020, 1, 1, tzinfo=UTC),
                      not_after=dt.datetime(2021, 1, 1, tzinfo=UTC))
    c.codesign = issue(cn("codesign"), pub(k.misc), MAINCA_DN, mk, serial=0x15,
                       eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    c.ikeonly = issue(cn("ikeonly"), pub(k.misc), MAINCA_DN, mk, serial=0x16, eku=[IPSEC_IKE])
    c.kusign = issue(cn("kusign"), pub(k.misc), MAINCA_DN, mk, serial=0x17,
                     ku={"key_cert_sign": True})
    c.nocaint = issue(cn("noca-int"), pub(k.interca), MAINCA_DN, mk, serial=0x18, ca=None)
    c.orphan = issue(cn("orphan"), pub(k.misc), cn("noca-int"), k.interca, serial=0x19)
    c.stranger = issue(cn("stranger"), pub(k.misc), OTHER_DN, k.otherca, serial=0x1A)
    c.forged = issue(cn("forged"), pub(k.misc), MAINCA_DN, k.otherca, serial=0x1B)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(MAINCA_DN)
           .last_update(dt.datetime(2025, 1, 1, tzinfo=UTC))
           .next_update(dt.datetime(2026, 1, 1, tzinfo=UTC))
           .add_revoked_certificate(
               x509.RevokedCertificateBuilder().serial_number(c.revoked.serial_number)
               .revocation_date(dt.datetime(2025, 2, 1, tzinfo=UTC)).build())
           .sign(mk, hashes.SHA256()))
    return SimpleNamespace(keys=k, certs=c, crl=crl)


class _Pki:
    """Lazy access: ``PKI.certs.west``, ``PKI.keys.west``, ``PKI.crl``."""

    def __getattr__(self, attr: str) -> object:
        return getattr(_build(), attr)


PKI = _Pki()


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: object) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_store(root: Path, *, inter_in_cacerts: bool = True, crl: bool = True) -> Path:
    """An ipsecdir with west/east/road/ed certs and keys, mainca (+interca), the CRL."""
    c, k = PKI.certs, PKI.keys
    for sub in ("certs", "private", "cacerts", "crls"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "cacerts" / "mainca.pem").write_bytes(pem(c.mainca))
    if inter_in_cacerts:
        (root / "cacerts" / "interca.der").write_bytes(der(c.interca))
    (root / "certs" / "west.pem").write_bytes(pem(c.west))
    (root / "certs" / "east.der").write_bytes(der(c.east))
    (root / "certs" / "road.pem").write_bytes(pem(c.road) + pem(c.interca))  # with its chain
    (root / "certs" / "ed.pem").write_bytes(pem(c.ed))
    (root / "certs" / "expired.pem").write_bytes(pem(c.expired))
    for nick in ("west", "east", "road", "ed", "raw"):
        path = root / "private" / f"{nick}.pem"
        path.write_bytes(key_pem(getattr(k, nick)))
        os.chmod(path, 0o600)
    (root / "private" / "misc.der").write_bytes(
        k.misc.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()))
    os.chmod(root / "private" / "misc.der", 0o600)
    if crl:
        (root / "crls" / "mainca.crl").write_bytes(
            PKI.crl.public_bytes(serialization.Encoding.DER))
    return root


def test_pki_builds_and_chains() -> None:
    c = PKI.certs
    c.west.verify_directly_issued_by(c.mainca)
    c.east.verify_directly_issued_by(c.interca)
    c.interca.verify_directly_issued_by(c.mainca)
    assert PKI.crl.get_revoked_certificate_by_serial_number(c.revoked.serial_number)
