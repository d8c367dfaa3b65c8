"""Certificate path validation for IKE, in the shape of NSS's IPsec profile.

cryptography's ``x509.verification`` is a web-PKI verifier: it insists on SANs, rejects
leaves whose only EKU is ipsecIKE unless told otherwise, fixes a 2048-bit RSA floor and
has no revocation checking.  Libreswan validates through NSS with the "IPsec" usage
(RFC 4945), so the path is built here instead and each step uses cryptography only for
signatures:

* the leaf: keyUsage, when present, must allow digitalSignature or nonRepudiation;
  extendedKeyUsage, when present, must contain ipsecIKE, anyExtendedKeyUsage, serverAuth,
  clientAuth or one of the old IPsec purposes (x509-profile-0{1,2} in Libreswan's tests);
* issuers are looked up by subject among the trust anchors (the cacerts/ directory, every
  CA certificate there being trusted as NSS's ``CT,,`` certificates are) and then among
  the certificates the peer sent; they must be CAs (basicConstraints cA) and, when keyUsage
  is present, allow keyCertSign; pathLenConstraint is honoured;
* every certificate must be inside its validity period at ``now``;
* CRLs from crls/ whose signature verifies with the issuer's key are consulted for every
  certificate below the anchor.

Failures raise :class:`CertVerifyError` whose ``reason`` is the line pluto logs, e.g.
``NSS: ERROR: IPsec certificate CN=west invalid: SEC_ERROR_UNKNOWN_ISSUER: Peer's
Certificate issuer is not recognized.``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from ..ike.x509dn import nss_dn
from .x509ids import cert_serial_bytes, cert_subject_der, is_ca_cert

__all__ = ["CertVerifyError", "NSS_ERRORS", "verify_chain", "crl_for", "serial_text",
           "MAX_CA_PATH_LEN"]

MAX_CA_PATH_LEN = 7  # Libreswan's limit on intermediates

# NSS error codes and their texts as llog_nss_error_code() prints them.
NSS_ERRORS: dict[str, str] = {
    "SEC_ERROR_UNKNOWN_ISSUER": "Peer's Certificate issuer is not recognized.",
    "SEC_ERROR_BAD_SIGNATURE": "Peer's certificate has an invalid signature.",
    "SEC_ERROR_EXPIRED_CERTIFICATE": "Peer's Certificate has expired.",
    "SEC_ERROR_EXPIRED_ISSUER_CERTIFICATE": "Peer's Certificate issuer has expired.",
    "SEC_ERROR_REVOKED_CERTIFICATE": "Peer's Certificate has been revoked.",
    "SEC_ERROR_CA_CERT_INVALID": "Issuer certificate is invalid.",
    "SEC_ERROR_INADEQUATE_KEY_USAGE": "Certificate key usage inadequate for attempted "
                                      "operation.",
    "SEC_ERROR_INADEQUATE_CERT_TYPE": "Certificate type not approved for application.",
    "SEC_ERROR_PATH_LEN_CONSTRAINT_INVALID": "The certificate issuer's path length "
                                             "constraint was violated.",
    "SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION": "Certificate contains unknown critical "
                                            "extension.",
    "SEC_ERROR_CRL_EXPIRED": "The CRL for the certificate's issuer has expired. Update it "
                             "or check your system date and time.",
}

_IPSEC_EKUS = frozenset((
    ObjectIdentifier("1.3.6.1.5.5.7.3.17"),  # id-kp-ipsecIKE
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsageOID.CLIENT_AUTH,
    ObjectIdentifier("1.3.6.1.5.5.7.3.5"),  # ipsecEndSystem
    ObjectIdentifier("1.3.6.1.5.5.7.3.6"),  # ipsecTunnel
    ObjectIdentifier("1.3.6.1.5.5.7.3.7"),  # ipsecUser
))


@dataclass
class CertVerifyError(Exception):
    """Validation failed; ``reason`` is pluto's log line for it.

    ``code`` is the NSS error name (or a short pyswan code such as ``ID_MISMATCH``),
    ``subject`` the NSS-style name of the certificate blamed, ``serial`` its serial for
    revocations, ``detail`` an extra explanatory line (never a Libreswan line).
    """

    reason: str
    code: str = ""
    subject: str = ""
    serial: str = ""
    detail: str = ""

    def __str__(self) -> str:
        return self.reason


def serial_text(cert: x509.Certificate) -> str:
    """``0x...`` as pluto prints a serial (datatot 'x' over the INTEGER's octets)."""
    return "0x" + cert_serial_bytes(cert).hex()


def _nss_error(code: str, cert: x509.Certificate, **extra: str) -> CertVerifyError:
    who = nss_dn(cert_subject_der(cert))
    return CertVerifyError(f"NSS: ERROR: IPsec certificate {who} invalid: {code}: "
                           f"{NSS_ERRORS[code]}", code=code, subject=who, **extra)


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_critical(cert: x509.Certificate) -> None:
    for ext in cert.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            raise _nss_error("SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION", cert)


def _check_leaf_usage(cert: x509.Certificate) -> None:
    ku = _ext(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not (ku.digital_signature or ku.content_commitment):
        raise _nss_error("SEC_ERROR_INADEQUATE_KEY_USAGE", cert)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage) and not _IPSEC_EKUS.intersection(eku):
        raise _nss_error("SEC_ERROR_INADEQUATE_CERT_TYPE", cert)


def _can_sign_certs(cert: x509.Certificate) -> bool:
    if not is_ca_cert(cert):
        return False
    ku = _ext(cert, x509.KeyUsage)
    return not isinstance(ku, x509.KeyUsage) or ku.key_cert_sign


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _key_ids_agree(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer, x509.SubjectKeyIdentifier)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or aki.key_identifier is None \
            or not isinstance(ski, x509.SubjectKeyIdentifier):
        return True
    return aki.key_identifier == ski.digest


@dataclass
class _Search:
    anchors: list[x509.Certificate]
    pool: list[x509.Certificate]
    bad_signature: x509.Certificate | None = None
    bad_anchor: x509.Certificate | None = None
    seen: set[bytes] = field(default_factory=set)


def _candidates(cert: x509.Certificate, certs: list[x509.Certificate]) -> list[x509.Certificate]:
    found = [c for c in certs if c.subject == cert.issuer]
    # an AKI/SKI match is tried first; a mismatch is not fatal (some CAs get this wrong)
    return sorted(found, key=lambda c: not _key_ids_agree(cert, c))


def _extend(path: list[x509.Certificate], s: _Search) -> list[x509.Certificate] | None:
    """Depth-first search for a path from ``path[-1]`` up to a trust anchor."""
    cert = path[-1]
    for anchor in _candidates(cert, s.anchors):
        if not _signed_by(cert, anchor):
            s.bad_signature = s.bad_signature or cert
            continue
        if not _can_sign_certs(anchor):
            s.bad_anchor = s.bad_anchor or anchor
            continue
        return path + [anchor]
    if len(path) > MAX_CA_PATH_LEN:
        return None
    for inter in _candidates(cert, s.pool):
        der = inter.fingerprint(hashes.SHA256())
        if der in s.seen or not _can_sign_certs(inter):
            continue
        if not _signed_by(cert, inter):
            s.bad_signature = s.bad_signature or cert
            continue
        s.seen.add(der)
        found = _extend(path + [inter], s)
        if found is not None:
            return found
    return None


def _check_path_len(path: list[x509.Certificate]) -> None:
    # path[0] is the leaf; a CA at index i has i-1 intermediates below it
    for i, ca in enumerate(path[1:], start=1):
        bc = _ext(ca, x509.BasicConstraints)
        if isinstance(bc, x509.BasicConstraints) and bc.path_length is not None \
                and i - 1 > bc.path_length:
            raise _nss_error("SEC_ERROR_PATH_LEN_CONSTRAINT_INVALID", path[0])


def _in_period(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def crl_for(cert: x509.Certificate, issuer: x509.Certificate,
            crls: list[x509.CertificateRevocationList]) -> x509.CertificateRevocationList | None:
    """The newest CRL issued by ``issuer`` (by name, with a valid signature)."""
    best = None
    for crl in crls:
        if crl.issuer != issuer.subject:
            continue
        try:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
        except (TypeError, ValueError, UnsupportedAlgorithm):
            continue
        if best is None or crl.last_update_utc > best.last_update_utc:
            best = crl
    return best


def _check_revocation(path: list[x509.Certificate], crls: list[x509.CertificateRevocationList],
                      now: datetime, crl_strict: bool) -> None:
    for cert, issuer in zip(path, path[1:], strict=False):
        crl = crl_for(cert, issuer, crls)
        if crl is None or (crl.next_update_utc is not None and crl.next_update_utc < now):
            if crl_strict:
                raise CertVerifyError("certificate payload rejected; crl-strict=yes and "
                                      "Certificate Revocation List (CRL) is expired or missing",
                                      code="CRL_MISSING",
                                      subject=nss_dn(cert_subject_der(cert)))
            if crl is None:
                continue
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            # NSS blames the issuer whose CRL revoked the certificate
            who = nss_dn(cert_subject_der(cert))
            raise _nss_error("SEC_ERROR_REVOKED_CERTIFICATE", issuer, serial=serial_text(cert),
                             detail=f"certificate {who} SN: {serial_text(cert)} was revoked "
                                    f"on {entry.revocation_date_utc:%b %d %H:%M:%S %Y} UTC")


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 anchors: list[x509.Certificate], crls: list[x509.CertificateRevocationList],
                 now: datetime, *, crl_strict: bool = False) -> list[x509.Certificate]:
    """Validate ``leaf``; return the path leaf first, trust anchor last."""
    _check_critical(leaf)
    _check_leaf_usage(leaf)
    if any(leaf == a for a in anchors):  # a trusted (self-signed) peer certificate
        path = [leaf]
    else:
        search = _Search(anchors, intermediates)
        found = _extend([leaf], search)
        if found is None:
            if search.bad_anchor is not None:
                raise _nss_error("SEC_ERROR_CA_CERT_INVALID", search.bad_anchor)
            if search.bad_signature is not None:
                raise _nss_error("SEC_ERROR_BAD_SIGNATURE", search.bad_signature)
            raise _nss_error("SEC_ERROR_UNKNOWN_ISSUER", leaf)
        path = found
    for ca in path[1:]:
        _check_critical(ca)
    _check_path_len(path)
    if not _in_period(leaf, now):
        raise _nss_error("SEC_ERROR_EXPIRED_CERTIFICATE", leaf)
    for ca in path[1:]:
        if not _in_period(ca, now):
            raise _nss_error("SEC_ERROR_EXPIRED_ISSUER_CERTIFICATE", ca)
    _check_revocation(path, crls, now, crl_strict)
    return path
