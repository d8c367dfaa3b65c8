"""AUTH payload computations (RFC 7296 §2.15, RFC 7427, RFC 4754, RFC 8420).

* ``signed_octets``: what each side signs or MACs:
  ``RealMessage | NonceOfPeer | prf(SK_p, RestOfIDPayload)``.
* ``psk_auth``: ``prf(prf(PSK, "Key Pad for IKEv2"), signed_octets)``.
* ``sign`` / ``verify``: RSA (method 1: PKCS#1 v1.5 with SHA-1), ECDSA
  (methods 9/10/11: raw ``r | s``), and RFC 7427 Digital Signature
  (method 14: a length-prefixed ASN.1 AlgorithmIdentifier, then the
  signature).  ``verify`` reports the scheme used, for log lines such as
  ``2048-bit RSASSA-PSS with SHA2_512``.

The AlgorithmIdentifier blobs are DER-encoded here from their OIDs.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from . import algorithms as A
from .der import oid_body, oid_text, read_tlv, tlv
from .prf import keyed_prf, prf


class AuthMethod(IntEnum):
    """IKEv2 Authentication Method (RFC 7296 §3.8 and later registrations)."""

    RSA_SIG = 1
    PSK = 2
    DSS_SIG = 3
    ECDSA_SHA2_256_P256 = 9
    ECDSA_SHA2_384_P384 = 10
    ECDSA_SHA2_512_P521 = 11
    GSPAM = 12
    NULL = 13
    DIGITAL_SIGNATURE = 14


class HashAlgorithm(IntEnum):
    """RFC 7427 §7: hash algorithm ids for SIGNATURE_HASH_ALGORITHMS."""

    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5


class AuthenticationError(ValueError):
    """A signature or PSK AUTH value did not verify, or is malformed."""


# ------------------------------------------------------------ octets and PSK

def signed_octets(message: bytes, peer_nonce: bytes, prf_alg: A.Prf | int, sk_p: bytes,
                  id_payload_body: bytes) -> bytes:
    """InitiatorSignedOctets / ResponderSignedOctets (RFC 7296 §2.15).

    ``message`` is this side's first message (IKE_SA_INIT request for the
    initiator, response for the responder), ``peer_nonce`` the other side's
    nonce data, ``sk_p`` this side's SK_pi / SK_pr, and ``id_payload_body``
    the ID payload after its generic header: ID type, 3 reserved octets, data.
    """
    return b"".join((message, peer_nonce, prf(prf_alg, sk_p, id_payload_body)))


_KEY_PAD = b"Key Pad for IKEv2"


def psk_auth(prf_alg: A.Prf | int, psk: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)."""
    return keyed_prf(prf_alg, prf(prf_alg, psk, _KEY_PAD))(octets)


def psk_verify(prf_alg: A.Prf | int, psk: bytes, octets: bytes, auth_data: bytes) -> None:
    if not hmac.compare_digest(psk_auth(prf_alg, psk, octets), auth_data):
        raise AuthenticationError("pre-shared key AUTH payload does not verify")


# --------------------------------------------------------------- tiny DER

def _oid(dotted: str) -> bytes:
    return tlv(0x06, oid_body(dotted))


_NULL = b"\x05\x00"


def _alg_id(oid: str, params: bytes | None = None) -> bytes:
    return tlv(0x30, _oid(oid) + (params or b""))


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the TLV at ``pos``."""
    tag, start, end = read_tlv(data, pos)
    return tag, data[start:end], end


# -------------------------------------------------------- signature schemes

_HASH_OID = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
_HASH_BY_OID = {v: k for k, v in _HASH_OID.items()}
_HASH_FQN = {"sha1": "SHA1", "sha256": "SHA2_256", "sha384": "SHA2_384",
             "sha512": "SHA2_512", None: "IDENTITY"}
_HASH_CLS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_PKCS1_OID = {"sha1": "1.2.840.113549.1.1.5", "sha256": "1.2.840.113549.1.1.11",
              "sha384": "1.2.840.113549.1.1.12", "sha512": "1.2.840.113549.1.1.13"}
_ECDSA_OID = {"sha1": "1.2.840.10045.4.1", "sha256": "1.2.840.10045.4.3.2",
              "sha384": "1.2.840.10045.4.3.3", "sha512": "1.2.840.10045.4.3.4"}
_PSS_OID = "1.2.840.113549.1.1.10"
_MGF1_OID = "1.2.840.113549.1.1.8"
_ED25519_OID = "1.3.101.112"
_ED448_OID = "1.3.101.113"
_SALT = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def _norm_hash(name: str | None) -> str | None:
    if name is None:
        return None
    n = name.lower().replace("-", "_")
    n = {"sha2_256": "sha256", "sha2_384": "sha384", "sha2_512": "sha512",
         "identity": None}.get(n, n)  # type: ignore[assignment]
    if n is not None and n not in _HASH_CLS:
        raise ValueError(f"unsupported hash {name}")
    return n


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """How an AUTH payload was signed: RFC 7427 name and hash."""

    name: str  # "PKCS#1 1.5 RSA", "RSASSA-PSS", "ECDSA", "EDDSA"
    hash: str | None  # hashlib name, None for EdDSA (IDENTITY)
    salt_length: int = 0  # RSASSA-PSS only
    variant: str = ""  # EdDSA curve: "ed25519" or "ed448"

    @property
    def hash_fqn(self) -> str:
        return _HASH_FQN[self.hash]

    def describe(self, public_key: object) -> str:
        """Libreswan's wording, e.g. ``2048-bit RSASSA-PSS with SHA2_512``."""
        if isinstance(public_key, rsa.RSAPublicKey):
            return f"{public_key.key_size}-bit {self.name} with {self.hash_fqn}"
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return f"P-{public_key.curve.key_size} {self.name} with {self.hash_fqn}"
        return f"{self.name} with {self.hash_fqn}"

    def algorithm_identifier(self) -> bytes:
        """The RFC 7427 AlgorithmIdentifier DER for this scheme."""
        h = self.hash
        if self.name == "PKCS#1 1.5 RSA":
            return _alg_id(_PKCS1_OID[h], _NULL)  # type: ignore[index]
        if self.name == "ECDSA":
            return _alg_id(_ECDSA_OID[h])  # type: ignore[index]
        if self.name == "EDDSA":
            return _alg_id(self._ed_oid)
        if self.name == "RSASSA-PSS":
            hash_alg = _alg_id(_HASH_OID[h], _NULL)  # type: ignore[index]
            params = tlv(0x30, tlv(0xA0, hash_alg)
                          + tlv(0xA1, _alg_id(_MGF1_OID, hash_alg))
                          + tlv(0xA2, tlv(0x02, bytes((self.salt_length,)))))
            return _alg_id(_PSS_OID, params)
        raise ValueError(self.name)

    @property
    def _ed_oid(self) -> str:
        return _ED448_OID if self.variant == "ed448" else _ED25519_OID


def _scheme_from_alg_id(blob: bytes) -> SignatureScheme:
    """Parse an AlgorithmIdentifier; raise ValueError if unknown."""
    tag, content, end = _der_read(blob, 0)
    if tag != 0x30 or end != len(blob):
        raise ValueError("AlgorithmIdentifier is not a SEQUENCE")
    tag, oid_body, pos = _der_read(content, 0)
    if tag != 0x06:
        raise ValueError("AlgorithmIdentifier has no OID")
    oid = tlv(0x06, oid_body)
    params = content[pos:]
    for h, o in _PKCS1_OID.items():
        if oid == _oid(o):
            return SignatureScheme("PKCS#1 1.5 RSA", h)
    for h, o in _ECDSA_OID.items():
        if oid == _oid(o):
            return SignatureScheme("ECDSA", h)
    if oid == _oid(_ED25519_OID):
        return SignatureScheme("EDDSA", None, variant="ed25519")
    if oid == _oid(_ED448_OID):
        return SignatureScheme("EDDSA", None, variant="ed448")
    if oid == _oid(_PSS_OID):
        return _pss_scheme(params)
    raise ValueError("unsupported signature algorithm")


def _hash_of(alg_id_content: bytes) -> str:
    tag, oid_body, _ = _der_read(alg_id_content, 0)
    h = _HASH_BY_OID.get(_oid_str(oid_body)) if tag == 0x06 else None
    if h is None:
        raise ValueError("unsupported PSS hash")
    return h


def _oid_str(body: bytes) -> str:
    try:
        return oid_text(body)
    except ValueError:  # a peer's garbage: no hash matches it
        return ""


def _pss_scheme(params: bytes) -> SignatureScheme:
    # RSASSA-PSS-params (RFC 4055): every field defaults to SHA-1 / MGF1-SHA1 / 20
    h, mgf_h, salt = "sha1", "sha1", 20
    if params:
        tag, seq, _ = _der_read(params, 0)
        if tag != 0x30:
            raise ValueError("bad RSASSA-PSS parameters")
        pos = 0
        while pos < len(seq):
            tag, field, pos = _der_read(seq, pos)
            if tag == 0xA0:
                _, alg, _ = _der_read(field, 0)
                h = _hash_of(alg)
            elif tag == 0xA1:
                _, alg, _ = _der_read(field, 0)
                t, mgf_oid, p2 = _der_read(alg, 0)
                if t != 0x06 or _oid_str(mgf_oid) != _MGF1_OID:
                    raise ValueError("unsupported PSS mask generation function")
                _, inner, _ = _der_read(alg, p2)
                mgf_h = _hash_of(inner)
            elif tag == 0xA2:
                _, num, _ = _der_read(field, 0)
                salt = int.from_bytes(num, "big")
    if mgf_h != h:
        raise ValueError("RSASSA-PSS with a different MGF1 hash is not supported")
    return SignatureScheme("RSASSA-PSS", h, salt)


def scheme_for_key(private_key: object, hash_name: str | None = "sha256",
                   rsa_pss: bool = True) -> SignatureScheme:
    """The RFC 7427 scheme pyswan uses for a key."""
    h = _norm_hash(hash_name)
    if isinstance(private_key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        h = h or "sha256"
        if rsa_pss:
            return SignatureScheme("RSASSA-PSS", h, _SALT[h])
        return SignatureScheme("PKCS#1 1.5 RSA", h)
    if isinstance(private_key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return SignatureScheme("ECDSA", h or "sha256")
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return SignatureScheme("EDDSA", None, variant="ed25519")
    if isinstance(private_key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return SignatureScheme("EDDSA", None, variant="ed448")
    raise ValueError(f"unsupported key type {type(private_key).__name__}")


_ECDSA_METHODS = {
    AuthMethod.ECDSA_SHA2_256_P256: ("sha256", "secp256r1", 32),
    AuthMethod.ECDSA_SHA2_384_P384: ("sha384", "secp384r1", 48),
    AuthMethod.ECDSA_SHA2_512_P521: ("sha512", "secp521r1", 66),
}


def _raw_sign(key: object, scheme: SignatureScheme, octets: bytes) -> bytes:
    h = scheme.hash
    if scheme.name == "PKCS#1 1.5 RSA":
        return key.sign(octets, padding.PKCS1v15(), _HASH_CLS[h]())  # type: ignore
    if scheme.name == "RSASSA-PSS":
        alg = _HASH_CLS[h]()  # type: ignore[index]
        return key.sign(octets, padding.PSS(mgf=padding.MGF1(alg),  # type: ignore
                                            salt_length=scheme.salt_length), alg)
    if scheme.name == "ECDSA":
        return key.sign(octets, ec.ECDSA(_HASH_CLS[h]()))  # type: ignore
    return key.sign(octets)  # type: ignore[attr-defined]


def sign(private_key: object, method: int, hash_name: str | None, octets: bytes,
         *, rsa_pss: bool = True) -> bytes:
    """The AUTH payload data for ``method`` (after the 4-octet AUTH header).

    Method 1 is RSA PKCS#1 v1.5 with SHA-1; 9/10/11 are RFC 4754 ECDSA with
    raw ``r | s``; 14 is RFC 7427 (RSA: PSS unless ``rsa_pss=False``).
    """
    if method == AuthMethod.RSA_SIG:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("RSA signature method needs an RSA key")
        return _raw_sign(private_key, SignatureScheme("PKCS#1 1.5 RSA", "sha1"), octets)
    if method in _ECDSA_METHODS:
        h, curve, n = _ECDSA_METHODS[AuthMethod(method)]
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or \
                private_key.curve.name != curve:
            raise ValueError(f"auth method {method} needs a {curve} key")
        der = _raw_sign(private_key, SignatureScheme("ECDSA", h), octets)
        r, s = decode_dss_signature(der)
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
    if method == AuthMethod.DIGITAL_SIGNATURE:
        scheme = scheme_for_key(private_key, hash_name, rsa_pss)
        blob = scheme.algorithm_identifier()
        return bytes((len(blob),)) + blob + _raw_sign(private_key, scheme, octets)
    raise ValueError(f"auth method {method} is not a signature method")


def _raw_verify(public_key: object, scheme: SignatureScheme, sig: bytes,
                octets: bytes) -> None:
    h = scheme.hash
    name = scheme.name
    if name in ("PKCS#1 1.5 RSA", "RSASSA-PSS"):
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise AuthenticationError(f"{name} signature but the peer key is not RSA")
        alg = _HASH_CLS[h]()  # type: ignore[index]
        pad = (padding.PKCS1v15() if name == "PKCS#1 1.5 RSA" else
               padding.PSS(mgf=padding.MGF1(alg), salt_length=scheme.salt_length))
        public_key.verify(sig, octets, pad, alg)
    elif name == "ECDSA":
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise AuthenticationError("ECDSA signature but the peer key is not ECDSA")
        public_key.verify(sig, octets, ec.ECDSA(_HASH_CLS[h]()))  # type: ignore[index]
    else:
        if not isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            raise AuthenticationError("EdDSA signature but the peer key is not EdDSA")
        public_key.verify(sig, octets)


def verify(public_key: object, auth_method: int, auth_data: bytes,
           octets: bytes) -> SignatureScheme:
    """Check a signature AUTH payload; return the scheme that verified.

    Raises ``AuthenticationError`` on a bad or malformed signature.
    """
    try:
        if auth_method == AuthMethod.RSA_SIG:
            scheme = SignatureScheme("PKCS#1 1.5 RSA", "sha1")
            _raw_verify(public_key, scheme, auth_data, octets)
            return scheme
        if auth_method in _ECDSA_METHODS:
            h, curve, n = _ECDSA_METHODS[AuthMethod(auth_method)]
            if not isinstance(public_key, ec.EllipticCurvePublicKey) or \
                    public_key.curve.name != curve:
                raise AuthenticationError(f"auth method {auth_method} needs a {curve} key")
            if len(auth_data) != 2 * n:
                raise AuthenticationError("ECDSA signature has the wrong length")
            der = encode_dss_signature(int.from_bytes(auth_data[:n], "big"),
                                       int.from_bytes(auth_data[n:], "big"))
            scheme = SignatureScheme("ECDSA", h)
            _raw_verify(public_key, scheme, der, octets)
            return scheme
        if auth_method == AuthMethod.DIGITAL_SIGNATURE:
            if not auth_data or len(auth_data) < 1 + auth_data[0]:
                raise AuthenticationError("digital signature AUTH payload truncated")
            blob = auth_data[1:1 + auth_data[0]]
            try:
                scheme = _scheme_from_alg_id(blob)
            except ValueError as e:
                raise AuthenticationError(f"digital signature: {e}") from None
            _raw_verify(public_key, scheme, auth_data[1 + auth_data[0]:], octets)
            return scheme
    except InvalidSignature:
        raise AuthenticationError("signature does not verify") from None
    raise AuthenticationError(f"auth method {auth_method} is not a signature method")
