"""The lab's PKI: one RSA root CA and, for west and east, an RSA and an ECDSA certificate.

Built once per process with `cryptography` (no files until a daemon writes its own
store), so every cell of a session uses the same CA and keys:

    interop-ca   RSA-2048 root, "C=XX, O=pyswan interop lab, CN=pyswan interop CA"
      ├── west-rsa / east-rsa       RSA-2048, ID = the subject DN (%fromcert)
      └── west-ecdsa / east-ecdsa   P-256, ID = the DNS SAN (@west.ecdsa.interop.example)

Each daemon writes what it needs in its own dialect: strongSwan under its swanctl
directory (`x509/`, `private/`, `x509ca/`), pyswan under its ``--ipsecdir`` (`certs/`,
`private/`, `cacerts/`), Libreswan into its NSS database (a PKCS#12 file through
`pk12util` and the CA through `certutil`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

CA_NICK = "interop-ca"
P12_PASSWORD = "interop"  # only protects the transfer file into NSS
ORG = "pyswan interop lab"


def _dn(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])  # fmt: skip


def dn_text(name: x509.Name) -> str:
    """'C=XX, O=..., CN=...' in the order of the certificate (how all three print it)."""
    short = {NameOID.COUNTRY_NAME: "C", NameOID.ORGANIZATION_NAME: "O", NameOID.COMMON_NAME: "CN"}
    return ", ".join(f"{short[a.oid]}={a.value}" for a in name)


@dataclass(frozen=True)
class Credential:
    nick: str  # file / NSS nickname
    cert: x509.Certificate
    key: object  # private key
    ident: str  # the ID the end uses: a DN ('C=XX, ...') or an FQDN ('@host')

    @property
    def id_is_dn(self) -> bool:
        return not self.ident.startswith("@")

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # fmt: skip

    def p12(self, ca: x509.Certificate) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            self.nick.encode(), self.key, self.cert, [ca],  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
        )  # fmt: skip


@dataclass(frozen=True)
class LabPki:
    ca: x509.Certificate
    ca_key: object
    creds: dict[str, Credential]  # "west-rsa" -> Credential

    @property
    def ca_dn(self) -> str:
        return dn_text(self.ca.subject)

    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)

    def cred(self, role: str, kind: str) -> Credential:
        return self.creds[f"{role}-{kind}"]


def _issue(subject: x509.Name, pub: object, issuer: x509.Name, issuer_key: object, serial: int,
           *, ca: bool, san: list[x509.GeneralName] | None = None) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(pub).serial_number(serial)  # type: ignore[arg-type]
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
    )  # fmt: skip
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)  # type: ignore[attr-defined]  # fmt: skip
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


@cache
def lab_pki() -> LabPki:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _dn("pyswan interop CA")
    ca = _issue(ca_name, ca_key.public_key(), ca_name, ca_key, 1, ca=True)
    creds: dict[str, Credential] = {}
    serial = 0x100
    for role in ("west", "east"):
        for kind in ("rsa", "ecdsa"):
            serial += 1
            key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
                   else ec.generate_private_key(ec.SECP256R1()))  # fmt: skip
            fqdn = f"{role}.{kind}.interop.example"
            subject = _dn(f"{role} {kind}")
            cert = _issue(subject, key.public_key(), ca_name, ca_key, serial, ca=False,
                          san=[x509.DNSName(fqdn)])  # fmt: skip
            # RSA ends are named by their DN (leftid=%fromcert), ECDSA ends by their SAN.
            ident = dn_text(subject) if kind == "rsa" else f"@{fqdn}"
            creds[f"{role}-{kind}"] = Credential(f"{role}-{kind}", cert, key, ident)
    return LabPki(ca, ca_key, creds)


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o600)
