"""Phase 1 RSA signature authentication (RFC 2409 5.1; the CERT and CR payloads of
RFC 2408 3.9/3.10, RFC 4945).

SIG_I/SIG_R is HASH_I/HASH_R signed with PKCS#1 v1.5 *type 1 padding over the bare hash*,
without the DigestInfo a PKCS#1 signature normally wraps around it: what Libreswan calls
"raw RSA" (``pubkey_signer_raw_rsa``, NSS ``CKM_RSA_PKCS``) and strongSwan
``SIGN_RSA_EMSA_PKCS1_NULL``.  Libreswan logs it as ``2048-bit raw RSA with SHA1``
whatever the PRF.  IKEv1 has no ECDSA in Libreswan (its OAKLEY_ECDSA_* methods are "not
implemented"), so RSA is the only key type accepted here.

Keys come from the credentials object exactly as for IKEv2 (``pyswan.ike.ikev2.authn``):
``local_key(policy) -> LocalKey`` and ``peer_key(policy, peer, certs) -> PeerKey``, both
raising ``CredentialError`` with the lines to log.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..ikev2.authn import CredentialError, LocalKey, PeerKey
from ..ikev2.policy import Identity
from ..pubkey import keyid
from .constants import AuthMethod

RSA_METHODS = frozenset({AuthMethod.RSA_SIG, AuthMethod.XAUTH_INIT_RSA,
                         AuthMethod.XAUTH_RESP_RSA})


class SigAuthError(Exception):
    """Signing or verifying failed; ``str()`` is the line to log, ``lines`` go first."""

    def __init__(self, text: str, lines: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(text)
        self.lines = tuple(lines)


def uses_rsa(policy: Any) -> bool:
    """Does the connection authenticate with RSA signatures (``authby=rsasig``)?  IKEv1
    has one method for both ends."""
    return getattr(policy, "local_auth", "secret") == "rsasig"


def auth_method(policy: Any) -> int:
    """The phase 1 Authentication Method attribute we propose or accept."""
    xauth = bool(getattr(policy, "xauth_client", False) or getattr(policy, "xauth_server",
                                                                    False))
    if uses_rsa(policy):
        return AuthMethod.XAUTH_INIT_RSA if xauth else AuthMethod.RSA_SIG
    return AuthMethod.XAUTH_INIT_PRESHARED if xauth else AuthMethod.PRESHARED_KEY


# ------------------------------------------------------------------ raw RSA


def _emsa_type1(data: bytes, k: int) -> bytes:
    """00 01 FF..FF 00 data (RFC 8017 9.2 steps 4-5, with T = data)."""
    if len(data) > k - 11:
        raise SigAuthError(f"a {len(data)}-octet hash does not fit a {k * 8}-bit RSA key")
    return b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data


def raw_rsa_sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """The RSA private operation on the padded hash, blinded (the library offers PKCS#1
    v1.5 signing only with a DigestInfo, which IKEv1 peers do not expect)."""
    priv = key.private_numbers()
    pub = priv.public_numbers
    n, e = pub.n, pub.e
    k = (n.bit_length() + 7) // 8
    m = int.from_bytes(_emsa_type1(data, k), "big")
    while True:
        r = secrets.randbelow(n - 2) + 2
        try:
            r_inv = pow(r, -1, n)
        except ValueError:  # r shares a factor with n: astronomically unlikely
            continue
        break
    blinded = (m * pow(r, e, n)) % n
    # CRT with the key's own parameters
    m1 = pow(blinded, priv.dmp1, priv.p)
    m2 = pow(blinded, priv.dmq1, priv.q)
    h = (priv.iqmp * (m1 - m2)) % priv.p
    s = ((m2 + h * priv.q) * r_inv) % n
    if pow(s, e, n) != m:  # a fault must not leak the key
        raise SigAuthError("RSA signature self-check failed")
    return s.to_bytes(k, "big")


def raw_rsa_verify(key: rsa.RSAPublicKey, data: bytes, signature: bytes) -> bool:
    k = (key.key_size + 7) // 8
    if len(signature) != k:
        return False
    try:
        recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return hmac.compare_digest(recovered, data)


def issuer_der(cert_der: bytes) -> bytes:
    """The issuer DN of a certificate, as encoded in it (b"" if it does not parse)."""
    try:
        return x509.load_der_x509_certificate(cert_der).issuer.public_bytes()
    except ValueError:
        return b""


def describe(key: rsa.RSAPublicKey) -> str:
    """``2048-bit raw RSA with SHA1`` (Libreswan's jam_auth_method for raw RSA)."""
    return f"{key.key_size}-bit raw RSA with SHA1"


# ------------------------------------------------------------------ credentials


def local_key(credentials: Any, policy: Any) -> LocalKey:
    getter = getattr(credentials, "local_key", None)
    if getter is None:
        raise SigAuthError("unable to locate my private key for RSA Signature")
    try:
        lk: LocalKey = getter(policy)
    except CredentialError as e:
        raise SigAuthError(str(e), e.lines[:-1]) from None
    if not isinstance(lk.private_key, rsa.RSAPrivateKey):
        raise SigAuthError("unable to locate my private key for RSA Signature")
    return lk


def sign(credentials: Any, policy: Any, hash_value: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """(SIG data, our certificates leaf first) for HASH_I/HASH_R."""
    lk = local_key(credentials, policy)
    return raw_rsa_sign(lk.private_key, hash_value), lk.certs


def verify(credentials: Any, policy: Any, peer: Identity, certs: list[bytes],
           hash_value: bytes, signature: bytes, peer_text: str) -> tuple[str, PeerKey]:
    """Check the peer's SIG; return the rest of ``authenticated peer ...`` and its key."""
    getter = getattr(credentials, "peer_key", None)
    if getter is None:
        raise SigAuthError(f"authentication failed: no RSA public key known for "
                           f"'{peer_text}'")
    try:
        pk: PeerKey = getter(policy, peer, certs)
    except CredentialError as e:
        raise SigAuthError(str(e), e.lines[:-1]) from None
    key = pk.public_key
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigAuthError(f"authentication failed: using raw RSA with SHA1 for "
                           f"'{peer_text}': the peer's key is not RSA", pk.log_lines)
    if not raw_rsa_verify(key, hash_value, signature):
        origin = "preloaded" if "preloaded" in pk.how else "peer"
        raise SigAuthError(f"authentication failed: using raw RSA with SHA1 for "
                           f"'{peer_text}' tried {origin}: *{keyid(key)}", pk.log_lines)
    return f"{pk.how} and {describe(key)} signature{pk.issued_by}", pk
