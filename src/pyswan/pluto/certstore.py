"""The certificate and key store: pyswan's replacement for Libreswan's NSS database.

NSS is not part of this stack, so certificates and keys live in plain files under
``--ipsecdir`` (default ``/etc/ipsec.d``)::

    certs/    end-entity certificates, PEM or DER; the nickname (``leftcert=``) is the file
              name without its extension; certificates after the first in a PEM file are
              intermediates sent along with it
    private/  private keys (PEM or DER, PKCS#8 or traditional, unencrypted), matched to
              certificates by public key and to ``leftckaid=`` by CKAID
    cacerts/  trust anchors and intermediate CAs (every CA here is trusted, like NSS's
              ``CT,,`` certificates)
    crls/     certificate revocation lists, PEM or DER

``ipsec import file.p12`` (pyswan.auto.importcmd) fills these directories.  Path validation
is in :mod:`pyswan.pluto.certchain`, DNs in :mod:`pyswan.ike.x509dn`, ID matching in
:mod:`pyswan.pluto.x509ids`.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pyswan.auto.connconfig import EndConfig
from pyswan.auto.values import ID, ID_NONE
from pyswan.ike.pubkey import (
    PrivateKey,
    PubkeyError,
    PublicKey,
    ckaid_hex,
    describe_key,
    key_strength_bits,
    parse_raw_pubkey,
    spki_der,
)
from pyswan.ike.x509dn import atodn, same_dn, str_dn

from .certchain import CertVerifyError, serial_text, verify_chain
from .x509ids import (
    cert_issuer_der,
    cert_subject_der,
    crl_issuer_der,
    id_from_dn_der,
    is_ca_cert,
    match_peer_id_cert,
    spki_subject_public_key,
)

__all__ = ["CertStore", "CertStoreError", "CertVerifyError", "Credentials", "PeerCert",
           "StoredCert", "load_certificates", "load_private_key"]

_BLANK = " "  # whack's blank separator line holds one space (as in status.py)
_SKIP_SUFFIXES = ("~", ".bak", ".orig", ".swp", ".tmp")
_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey,
              ed448.Ed448PrivateKey)


class CertStoreError(Exception):
    """A certificate or key named by a connection is missing or unusable."""


@dataclass(frozen=True, slots=True)
class StoredCert:
    nickname: str
    cert: x509.Certificate
    path: Path
    extra: tuple[x509.Certificate, ...] = ()  # further certificates in the same file


@dataclass(frozen=True, slots=True)
class _StoredKey:
    path: Path
    key: PrivateKey
    spki: bytes
    ckaid: str


@dataclass(frozen=True, slots=True)
class Credentials:
    """What this end authenticates with: a certificate (or not) and its private key."""

    cert: x509.Certificate | None
    chain: list[x509.Certificate]  # intermediates to send (sendca=all), leaf excluded
    private_key: PrivateKey
    key_description: str  # "2048-bit RSA", "P-256 ECDSA", "P-255 EDDSA"
    ckaid: str
    nickname: str | None = None

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()  # type: ignore[return-value]

    @property
    def subject_der(self) -> bytes | None:
        """The certificate's subject as encoded: the ID data to send for ``%fromcert``."""
        return cert_subject_der(self.cert) if self.cert is not None else None

    @property
    def issuer_dn(self) -> str | None:
        """The issuer as pluto prints it; Libreswan's default ``leftca=``."""
        return str_dn(cert_issuer_der(self.cert)) if self.cert is not None else None

    def chain_for(self, sendca: str) -> list[x509.Certificate]:
        """Intermediates to send for ``sendca=none|issuer|all`` (get_auth_chain())."""
        if sendca == "none":
            return []
        if sendca == "issuer":
            return self.chain[:1]
        return list(self.chain)


@dataclass(frozen=True, slots=True)
class PeerCert:
    """A peer certificate that validated, and the ID it vouches for."""

    public_key: PublicKey
    cert: x509.Certificate
    subject_dn: str  # as pluto prints it
    matched_id: ID  # the peer's ID (the subject DN for %fromcert or a wildcard match)
    description: str  # key description, e.g. "3072-bit RSA"
    issuer_dn: str = ""
    chain: tuple[x509.Certificate, ...] = ()  # validated path, leaf first, anchor last
    log_lines: tuple[str, ...] = ()  # lines pluto logs on success (require-id-on-cert=no)

    @property
    def subject_der(self) -> bytes:
        """The subject exactly as encoded (the peer's ID data when it used %fromcert)."""
        return cert_subject_der(self.cert)


# ------------------------------------------------------------------ file readers

def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file, or the one in a DER file; ValueError otherwise."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def load_private_key(data: bytes) -> PrivateKey:
    """An unencrypted private key, PEM or DER; TypeError if encrypted, ValueError if bad."""
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password=None)
    else:
        key = serialization.load_der_private_key(data, password=None)
    return key  # type: ignore[return-value]


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _files(directory: Path) -> list[Path]:
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and not p.name.startswith(".")
            and not p.name.endswith(_SKIP_SUFFIXES)]


def _gmt(when: datetime) -> str:
    # NSS formats certificate and CRL times in GMT whatever --utc says
    return when.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")


def _moment(now: datetime | None) -> datetime:
    """``now`` as an aware UTC time (naive values are taken as UTC)."""
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _normal_ckaid(text: str) -> str:
    t = text.strip().lower()
    return t[2:] if t.startswith("0x") else t


# ------------------------------------------------------------------ the store

@dataclass
class _Contents:
    end: dict[str, StoredCert] = field(default_factory=dict)
    ca: list[StoredCert] = field(default_factory=list)
    keys: list[_StoredKey] = field(default_factory=list)
    crls: list[tuple[Path, x509.CertificateRevocationList]] = field(default_factory=list)


class CertStore:
    """Certificates, keys and CRLs under one ipsecdir; call :meth:`load` first."""

    def __init__(self, ipsecdir: str, *, crl_strict: bool = False) -> None:
        self.ipsecdir = ipsecdir
        base = Path(ipsecdir)
        self.certs_dir = base / "certs"
        self.private_dir = base / "private"
        self.cacerts_dir = base / "cacerts"
        self.crls_dir = base / "crls"
        self.crl_strict = crl_strict
        self._c = _Contents()

    # ---------------------------------------------------------------- loading

    def load(self) -> list[str]:
        """Read all four directories; return warnings.  The new contents replace the old
        in one step, so lookups never see a half-read store."""
        warnings: list[str] = []
        c = _Contents()
        self._load_end(c, warnings)
        self._load_ca(c, warnings)
        self._load_keys(c, warnings)
        self._load_crls(c, warnings)
        self._c = c
        return warnings

    def reload(self) -> list[str]:
        """``ipsec rereadcerts`` / ``rereadall``: read everything again."""
        return self.load()

    def _read_certs(self, path: Path, warnings: list[str]) -> list[x509.Certificate]:
        try:
            return load_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            warnings.append(f"ignoring {path}: not a PEM or DER certificate ({exc})")
            return []

    def _load_end(self, c: _Contents, warnings: list[str]) -> None:
        for path in _files(self.certs_dir):
            certs = self._read_certs(path, warnings)
            if not certs:
                continue
            nick = path.stem
            if nick in c.end:
                warnings.append(f"ignoring {path}: nickname \"{nick}\" is already used by "
                                f"{c.end[nick].path}")
                continue
            c.end[nick] = StoredCert(nick, certs[0], path, tuple(certs[1:]))

    def _load_ca(self, c: _Contents, warnings: list[str]) -> None:
        for path in _files(self.cacerts_dir):
            certs = self._read_certs(path, warnings)
            for i, cert in enumerate(certs):
                nick = path.stem if len(certs) == 1 else f"{path.stem}-{i + 1}"
                if not is_ca_cert(cert):
                    warnings.append(f"WARNING: {path}: certificate \"{nick}\" is not a CA "
                                    "certificate (basicConstraints CA:TRUE missing)")
                c.ca.append(StoredCert(nick, cert, path))

    def _load_keys(self, c: _Contents, warnings: list[str]) -> None:
        for path in _files(self.private_dir):
            try:
                mode = path.stat().st_mode
                key = load_private_key(path.read_bytes())
            except TypeError:
                warnings.append(f"ignoring {path}: the private key is encrypted; pyswan reads "
                                "unencrypted keys only (re-import it with ipsec import)")
                continue
            except Exception as exc:  # any unreadable or malformed file
                warnings.append(f"ignoring {path}: not a private key ({exc})")
                continue
            if not isinstance(key, _KEY_TYPES):
                warnings.append(f"ignoring {path}: unsupported key type "
                                f"{type(key).__name__}")
                continue
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                warnings.append(f"WARNING: private key file {path} is accessible by group or "
                                f"others (mode {stat.S_IMODE(mode):04o}); it should be 0600")
            pub = key.public_key()
            c.keys.append(_StoredKey(path, key, spki_der(pub), ckaid_hex(key)))

    def _load_crls(self, c: _Contents, warnings: list[str]) -> None:
        for path in _files(self.crls_dir):
            try:
                crl = _load_crl(path.read_bytes())
            except (OSError, ValueError) as exc:
                warnings.append(f"ignoring {path}: not a PEM or DER CRL ({exc})")
                continue
            issuers = [s.cert for s in c.ca if s.cert.subject == crl.issuer]
            if issuers and not any(_crl_signed_by(crl, i) for i in issuers):
                warnings.append(f"ignoring {path}: CRL signature does not verify with the "
                                f"key of '{str_dn(crl_issuer_der(crl))}'")
                continue
            c.crls.append((path, crl))

    # ---------------------------------------------------------------- lookups

    @property
    def end_certs(self) -> dict[str, StoredCert]:
        return dict(self._c.end)

    @property
    def ca_certs(self) -> list[x509.Certificate]:
        return [s.cert for s in self._c.ca]

    @property
    def crls(self) -> list[x509.CertificateRevocationList]:
        return [crl for _, crl in self._c.crls]

    def find_cert(self, nickname: str) -> x509.Certificate | None:
        stored = self._c.end.get(nickname)
        return stored.cert if stored is not None else None

    def _key_for(self, pub: PublicKey) -> _StoredKey | None:
        spki = spki_der(pub)
        return next((k for k in self._c.keys if k.spki == spki), None)

    def has_private_key(self, cert: x509.Certificate) -> bool:
        return self._key_for(cert.public_key()) is not None  # type: ignore[arg-type]

    def _local_chain(self, stored: StoredCert) -> list[x509.Certificate]:
        """Non-root CAs from the leaf up, as CERT_CertChainFromCert() would find them."""
        pool = list(stored.extra) + self.ca_certs
        chain: list[x509.Certificate] = []
        cert = stored.cert
        while len(chain) < 8:
            issuer = next((p for p in pool if p.subject == cert.issuer and p not in chain
                           and p != cert), None)
            if issuer is None or cert_subject_der(issuer) == cert_issuer_der(issuer):
                break
            chain.append(issuer)
            cert = issuer
        return chain

    # ---------------------------------------------------------------- our credentials

    def local_credentials(self, nickname: str | None, ckaid: str | None, *,
                          leftright: str | None = None,
                          now: datetime | None = None) -> Credentials:
        """The certificate and private key for ``leftcert=`` or ``leftckaid=``.

        Raises CertStoreError with a message a connection can log.
        """
        lr = f"{leftright} " if leftright else ""
        if nickname is None and ckaid is not None:
            want = _normal_ckaid(ckaid)
            stored = next((s for s in self._c.end.values()
                           if ckaid_hex(s.cert.public_key()) == want), None)  # type: ignore
            if stored is None:
                key = next((k for k in self._c.keys if k.ckaid == want), None)
                if key is None:
                    raise CertStoreError(f"private key matching CKAID \"{want}\" not found in "
                                         f"{self.private_dir}")
                return Credentials(None, [], key.key, describe_key(key.key), key.ckaid)
            nickname = stored.nickname
        if nickname is None:
            raise CertStoreError(f"{lr}end has neither a certificate nor a CKAID")
        stored = self._c.end.get(nickname)
        if stored is None:
            raise CertStoreError(f"no certificate nicknamed \"{nickname}\" in "
                                 f"{self.certs_dir}")
        cert = stored.cert
        moment = _moment(now)
        if moment > cert.not_valid_after_utc:
            raise CertStoreError(f"{lr}certificate '{nickname}' has expired")
        if moment < cert.not_valid_before_utc:
            raise CertStoreError(f"{lr}certificate '{nickname}' is not yet valid")
        key = self._key_for(cert.public_key())  # type: ignore[arg-type]
        if key is None:
            raise CertStoreError(f"private key matching certificate \"{nickname}\" not found "
                                 f"in {self.private_dir}")
        return Credentials(cert, self._local_chain(stored), key.key, describe_key(key.key),
                           key.ckaid, nickname)

    def id_from_cert(self, cert: x509.Certificate) -> ID:
        """``%fromcert``: the certificate's subject DN as a DER_ASN1_DN ID."""
        return id_from_dn_der(cert_subject_der(cert))

    def public_key_for(self, end: EndConfig) -> tuple[PublicKey, str]:
        """The public key of an end: its certificate's, else its raw key, else its CKAID's.

        As in pluto, ``leftcert=`` wins over a raw key, and ``%cert`` means the certificate.
        """
        lr = end.leftright
        keyword, value = end.pubkey_keyword, end.pubkey
        if keyword is None or value is None:
            keyword, value = next(((k, getattr(end, k)) for k in
                                   ("rsasigkey", "ecdsakey", "eddsakey")
                                   if getattr(end, k, None)), (None, None))
        if end.cert is not None:
            cert = self.find_cert(end.cert)
            if cert is None:
                raise CertStoreError(f"{lr} certificate '{end.cert}' not found in "
                                     f"{self.certs_dir}")
            pub = cert.public_key()
            return pub, describe_key(pub)  # type: ignore[arg-type]
        if value is not None and value.startswith("%dns"):
            raise CertStoreError(f"{lr}{keyword}={value}: support not compiled in")
        if value is not None and not value.startswith("%"):
            try:
                pub = parse_raw_pubkey(keyword or "rsasigkey", value)
            except PubkeyError as exc:
                raise CertStoreError(f"{lr}{keyword} invalid: {exc}") from None
            return pub, describe_key(pub)
        if end.ckaid is not None:
            want = _normal_ckaid(end.ckaid)
            key = next((k for k in self._c.keys if k.ckaid == want), None)
            if key is not None:
                pub = key.key.public_key()  # type: ignore[assignment]
                return pub, describe_key(pub)
        raise CertStoreError(f"{lr} end has no public key (no {lr}cert=, {lr}rsasigkey=, "
                             f"{lr}pubkey= or {lr}ckaid= that names a key)")

    # ---------------------------------------------------------------- the peer's certificate

    def verify_peer(self, end_entity_der: bytes, intermediates_der: list[bytes], *,
                    expected_id: ID | None, ca: str | None, now: datetime | None = None,
                    require_id_on_certificate: bool = True) -> PeerCert:
        """Validate the peer's CERT payloads and match them against the ID it claims.

        ``expected_id`` is the peer's ID as accepted for the connection (Libreswan checks
        the connection's remote ID after refinement to the peer's IDi/IDr); None or
        ``%any`` skips the ID check and ``%fromcert`` adopts the subject DN.  ``ca`` is the
        connection's ``rightca=`` DN (None or ``%any`` for any).  Raises CertVerifyError.
        """
        anchors = self.ca_certs
        if not anchors:
            raise CertVerifyError("no Certificate Authority in NSS Certificate DB! "
                                  "certificate payloads discarded", code="NO_CA")
        try:
            leaf = x509.load_der_x509_certificate(end_entity_der)
            pool = [x509.load_der_x509_certificate(d) for d in intermediates_der]
        except ValueError:
            raise CertVerifyError("NSS: decoding certificate payload using "
                                  "CERT_NewTempCertificate() failed: SEC_ERROR_BAD_DER: "
                                  "security library: improperly formatted DER-encoded "
                                  "message.", code="SEC_ERROR_BAD_DER") from None
        if is_ca_cert(leaf):  # make_end_cert_first()
            others = [c for c in pool if not is_ca_cert(c)]
            if not others:
                raise CertVerifyError("X509: no EE-cert in chain!", code="NO_EE_CERT")
            pool = [leaf] + [c for c in pool if c is not others[0]]
            leaf = others[0]
        # roots sent by the peer are ignored: trust comes from cacerts/ only
        pool = [c for c in pool if cert_subject_der(c) != cert_issuer_der(c)]
        moment = _moment(now)
        path = verify_chain(leaf, pool, anchors, self.crls, moment,
                            crl_strict=self.crl_strict)
        self._check_ca(path, ca)
        log_lines: list[str] = []
        subject = cert_subject_der(leaf)
        if expected_id is None or expected_id.kind == ID_NONE:
            matched = id_from_dn_der(subject)
        else:
            diag, replacement = match_peer_id_cert(leaf, expected_id)
            if diag is not None:
                if require_id_on_certificate:
                    raise CertVerifyError(f"X509: authentication failed; {diag}",
                                          code="ID_MISMATCH")
                log_lines += [diag, "X509: connection allows unmatched IKE ID and "
                                    "certificate SAN"]
            matched = replacement or expected_id
        pub = leaf.public_key()
        return PeerCert(pub, leaf, str_dn(subject), matched,  # type: ignore[arg-type]
                        describe_key(pub), str_dn(cert_issuer_der(leaf)),  # type: ignore
                        tuple(path), tuple(log_lines))

    def _check_ca(self, path: list[x509.Certificate], ca: str | None) -> None:
        """trusted_ca(): ``rightca=`` must name the issuer or a CA above it.

        Like pluto, walk up by issuer name through the store, past the trust anchor the
        path ended on, until a self-signed root.
        """
        if ca is None or ca in ("%any", "%same", ""):
            return
        try:
            want = atodn(ca[1:] if ca.startswith("@") else ca)
        except ValueError:
            return  # pluto ignores a bad CA string ("bad ... CA string (ignored)")
        above = list(path[1:])
        while above and len(above) < 16 and \
                cert_subject_der(above[-1]) != cert_issuer_der(above[-1]):
            parent = next((c for c in self.ca_certs if c.subject == above[-1].issuer), None)
            if parent is None or parent in above:
                break
            above.append(parent)
        if any(same_dn(cert_subject_der(c), want) for c in above):
            return
        issuer = str_dn(cert_issuer_der(path[0]))
        raise CertVerifyError(f"X509: peer certificate issued by '{issuer}' is not trusted "
                              f"by CA '{str_dn(want)}'", code="CA_MISMATCH")

    # ---------------------------------------------------------------- CERTREQ

    def _ca_spki_hashes(self, ca: str | None) -> list[bytes]:
        want = None
        if ca is not None and ca not in ("", "%any", "%same"):
            try:
                want = atodn(ca[1:] if ca.startswith("@") else ca)
            except ValueError:
                want = None
        out = []
        for s in self._c.ca:
            if not is_ca_cert(s.cert):
                continue
            if want is not None and not same_dn(cert_subject_der(s.cert), want):
                continue
            out.append(hashlib.sha1(spki_der(s.cert.public_key())).digest())  # type: ignore
        return out

    def cert_requests(self, ca: str | None = None) -> list[bytes]:
        """20-octet SHA-1 hashes of the CAs' SubjectPublicKeyInfo for a CERTREQ payload.

        With ``ca`` (a ``rightca=`` DN) only that CA is named, as pluto does for
        permanent connections.  Concatenate them for the payload (RFC 7296 3.7).
        """
        seen: list[bytes] = []
        for spki_hash in self._ca_spki_hashes(ca):
            if spki_hash not in seen:
                seen.append(spki_hash)
        return seen

    def match_certreq(self, hashes: bytes | Sequence[bytes],
                      cert: x509.Certificate | None = None) -> bool:
        """Does a received CERTREQ name one of our CAs (or ``cert``'s issuer chain)?

        Accepts the payload data (concatenated hashes) or a list.  An empty request
        names any CA (RFC 4945 3.2.7.2).  Both SHA-1 of the SubjectPublicKeyInfo (RFC 7296)
        and of the subjectPublicKey bits (what Libreswan and some others send) count.
        """
        wanted = _split_hashes(hashes)
        if not wanted:
            return True
        if cert is not None:
            names = {c.subject for c in self._local_chain(
                StoredCert("", cert, Path(), ()))} | {cert.issuer}
            cas = [c for c in self.ca_certs if c.subject in names]
        else:
            cas = self.ca_certs
        for c in cas:
            spki = spki_der(c.public_key())  # type: ignore[arg-type]
            bits = spki_subject_public_key(spki)
            if {hashlib.sha1(spki).digest(), hashlib.sha1(bits).digest()} & wanted:
                return True
        return False

    # ---------------------------------------------------------------- listings

    def list_lines(self, kind: str, utc: bool = False) -> list[str]:
        """Body of ``ipsec listcerts`` (``end``), ``listcacerts`` (``ca``), ``listcrls``."""
        if kind == "crl":
            return self._crl_lines()
        if kind == "end":
            entries = [s for s in sorted(self._c.end.values(), key=lambda s: s.nickname)
                       if not is_ca_cert(s.cert)]
        elif kind == "ca":
            entries = sorted(self._c.ca, key=lambda s: s.nickname)
        else:
            raise ValueError(f"unknown listing {kind!r}")
        out: list[str] = []
        for s in entries:
            out += self._cert_lines(s)
        return out

    def _cert_lines(self, s: StoredCert) -> list[str]:
        cert = s.cert
        root = cert_subject_der(cert) == cert_issuer_der(cert)
        pub = cert.public_key()
        bits = key_strength_bits(pub)  # type: ignore[arg-type]
        kind = " RSA" if isinstance(pub, rsa.RSAPublicKey) else "(other)"
        has_key = ": has private key" if self.has_private_key(cert) else ""
        return [
            f"{'Root ' if root else ''}{'CA' if is_ca_cert(cert) else 'End'} certificate "
            f"\"{s.nickname}\" - SN: {serial_text(cert)}",
            f"  subject: {str_dn(cert_subject_der(cert))}",
            f"  issuer: {str_dn(cert_issuer_der(cert))}",
            f"  not before: {_gmt(cert.not_valid_before_utc)}",
            f"  not after: {_gmt(cert.not_valid_after_utc)}",
            f"  {bits} bit{kind}{has_key}",
            _BLANK,
        ]

    def _crl_lines(self) -> list[str]:
        out: list[str] = []
        for _, crl in self._c.crls:
            if out:
                out.append(_BLANK)
            out.append(f"issuer: {str_dn(crl_issuer_der(crl))}")
            out.append(f"revoked certs: {sum(1 for _ in crl)}")
            out.append(f"updates: this {_gmt(crl.last_update_utc)}")
            if crl.next_update_utc is not None:
                out.append(f"         next {_gmt(crl.next_update_utc)}")
        return out


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return bool(crl.is_signature_valid(issuer.public_key()))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _split_hashes(hashes: bytes | Iterable[bytes]) -> set[bytes]:
    if isinstance(hashes, (bytes, bytearray)):
        data = bytes(hashes)
        return {data[i:i + 20] for i in range(0, len(data) - len(data) % 20, 20)}
    return {bytes(h) for h in hashes}

