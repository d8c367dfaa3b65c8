"""Raw public keys as Libreswan writes them, CKAIDs, keyids and key descriptions.

Pure functions (stdlib + cryptography) shared by the engine, the certificate store and the
``ipsec newhostkey``/``showhostkey`` helpers:

* ``leftrsasigkey=0s...``: an RFC 3110 RSA key (exponent length, exponent, modulus) in
  base64 after ``0s`` or hex after ``0x``;
* ``leftecdsakey=0s...``: the raw EC point ``x || y`` (an ``0x04`` prefix is tolerated), the
  curve chosen by length (P-256/384/521);
* ``lefteddsakey=0s...``: the raw 32-byte Ed25519 key;
* ``leftpubkey=...``: a base64 SubjectPublicKeyInfo (``ipsec showhostkey --pubkey`` prints
  it without a prefix; ``0s`` and PEM armour are accepted too).

The CKAID is what NSS (and so Libreswan) calls a key's CKA_ID: the SHA-1 of the RSA modulus
(without a leading zero octet) or of the EC public value (``04 || x || y``, or the raw
Ed25519 key).  The keyid is Libreswan's short printable name: the first nine base64
characters of the RFC 3110 blob for RSA, of the CKAID otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = [
    "PublicKey", "PrivateKey", "PubkeyError", "decode_key_text", "rfc3110_from_rsa",
    "rsa_from_rfc3110", "parse_rsasigkey", "parse_ecdsakey", "parse_eddsakey",
    "parse_pubkey", "parse_raw_pubkey", "format_raw_pubkey", "spki_der", "ckaid", "ckaid_hex",
    "keyid", "key_type_name", "key_strength_bits", "describe_key", "same_public_key",
    "RAW_KEY_KEYWORDS",
]

PublicKey = (rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
             | ed448.Ed448PublicKey)
PrivateKey = (rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
              | ed448.Ed448PrivateKey)

# ipsec.conf keywords (without left/right) that carry a raw key, in Libreswan's precedence.
RAW_KEY_KEYWORDS: Final = ("rsasigkey", "ecdsakey", "eddsakey", "pubkey")

# include/ietf_constants.h: RFC 3110's floor, Libreswan's own floor (512 bits), and the
# signature buffer's ceiling (an 8192-bit modulus plus a possible sign octet).
_RSA_MIN_OCTETS_RFC: Final = 12
_RSA_MIN_OCTETS: Final = 64
_RSA_MAX_OCTETS: Final = 8192 // 8 + 1

# Raw ECDSA point sizes (x || y) -> curve, as pubkey_type_ecp.c looks them up.
_EC_RAW_CURVES: Final[dict[int, ec.EllipticCurve]] = {
    64: ec.SECP256R1(), 96: ec.SECP384R1(), 132: ec.SECP521R1(),
}


class PubkeyError(ValueError):
    """A raw key that cannot be decoded; ``str()`` is Libreswan's diagnostic."""


# ------------------------------------------------------------------ text forms

def decode_key_text(text: str, *, default_base: int | None = None) -> bytes:
    """ttodata(): ``0s`` base64, ``0x`` hex (``_`` allowed), ``0t`` text.

    ``default_base=64`` accepts bare base64 (how ``pubkey=`` is written).
    """
    t = "".join(text.split())
    prefix = t[:2].lower()
    if prefix in ("0s", "0x", "0t"):
        base = {"0s": 64, "0x": 16, "0t": 256}[prefix]
        t = t[2:]
    elif default_base is not None:
        base = default_base
    elif len(t) < 2:
        raise PubkeyError("input too short to be valid")
    elif t[0] != "0":
        raise PubkeyError("input does not begin with format prefix")
    else:
        raise PubkeyError("unknown format prefix")
    if base == 256:
        return t.encode()
    if base == 16:
        t = t.replace("_", "")
        if len(t) % 2 or re.fullmatch(r"[0-9a-fA-F]*", t) is None:
            raise PubkeyError("odd number of hex digits" if len(t) % 2 else "bad hex digit")
        return bytes.fromhex(t)
    try:
        return base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise PubkeyError("bad base64 data") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------------ RFC 3110 RSA

def _int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def rfc3110_from_rsa(key: rsa.RSAPublicKey) -> bytes:
    """The RFC 3110 RDATA: exponent length (1 or 3 octets), exponent, modulus."""
    nums = key.public_numbers()
    e, n = _int_bytes(nums.e), _int_bytes(nums.n)
    if len(e) <= 255:
        head = bytes((len(e),))
    elif len(e) <= 0xFFFF:
        head = b"\x00" + len(e).to_bytes(2, "big")
    else:
        raise PubkeyError("RSA public key exponent too long for resource record")
    return head + e + n


def rsa_from_rfc3110(blob: bytes) -> rsa.RSAPublicKey:
    """Decode an RFC 3110 key with pubkey_type_rsa.c's checks and messages."""
    if len(blob) >= 2 and blob[0] != 0:
        elen, start = blob[0], 1
    elif len(blob) >= 3 and blob[0] == 0:
        elen, start = int.from_bytes(blob[1:3], "big"), 3
    else:
        raise PubkeyError(f"{len(blob)} byte raw RSA public is way too short")
    if start + elen > len(blob):
        raise PubkeyError(f"{len(blob)} byte raw RSA public key is too short for exponent "
                          f"of length {elen}")
    e = int.from_bytes(blob[start:start + elen], "big")
    modulus = blob[start + elen:]
    for floor, what in ((_RSA_MIN_OCTETS_RFC, "RFC minimum"), (_RSA_MIN_OCTETS, "minimum")):
        if len(modulus) < floor:
            raise PubkeyError(f"{len(blob)} byte raw RSA public key {len(modulus)} byte "
                              f"modulus is shorter than {what} {floor}")
    if len(modulus) > _RSA_MAX_OCTETS:
        raise PubkeyError(f"{len(blob)} byte raw RSA public key {len(modulus)} byte modulus "
                          f"is longer than maximum {_RSA_MAX_OCTETS}")
    try:
        return rsa.RSAPublicNumbers(e, int.from_bytes(modulus, "big")).public_key()
    except ValueError as exc:
        raise PubkeyError(f"invalid RSA public key: {exc}") from None


# ------------------------------------------------------------------ parsers

def parse_rsasigkey(text: str) -> rsa.RSAPublicKey:
    return rsa_from_rfc3110(decode_key_text(text))


def parse_ecdsakey(text: str) -> ec.EllipticCurvePublicKey:
    raw = decode_key_text(text)
    curve = _EC_RAW_CURVES.get(len(raw))
    if curve is None and raw[:1] == b"\x04":
        curve = _EC_RAW_CURVES.get(len(raw) - 1)
        raw = raw[1:]
    if curve is None:
        raise PubkeyError(f"unrecognized ECDSA Public Key with length {len(raw)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + raw)
    except ValueError:
        raise PubkeyError(f"invalid {curve.name} ECDSA public key") from None


def parse_eddsakey(text: str) -> ed25519.Ed25519PublicKey:
    raw = decode_key_text(text)
    if len(raw) != 32:  # Libreswan knows Ed25519 only
        raise PubkeyError(f"unrecognized EDDSA Public Key with length {len(raw)}")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def parse_pubkey(text: str) -> PublicKey:
    """A SubjectPublicKeyInfo: bare base64, ``0s`` base64 or PEM."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = serialization.load_der_public_key(decode_key_text(text, default_base=64))
    except PubkeyError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PubkeyError("decoding Subject Public Key Info DER failed") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                            ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise PubkeyError(f"decoded Public Key has unknown type {type(key).__name__}")
    return key


_PARSERS = {"rsasigkey": parse_rsasigkey, "ecdsakey": parse_ecdsakey,
            "eddsakey": parse_eddsakey, "pubkey": parse_pubkey}


def parse_raw_pubkey(keyword: str, text: str) -> PublicKey:
    """Decode the value of ``rsasigkey=``, ``ecdsakey=``, ``eddsakey=`` or ``pubkey=``."""
    try:
        parser = _PARSERS[keyword]
    except KeyError:
        raise PubkeyError(f"could not find '{keyword}'") from None
    return parser(text)


def format_raw_pubkey(key: PublicKey, keyword: str | None = None) -> tuple[str, str]:
    """(keyword, value) as ``ipsec showhostkey`` prints it; ``keyword="pubkey"`` for SPKI."""
    if keyword == "pubkey":
        return "pubkey", _b64(spki_der(key))
    if isinstance(key, rsa.RSAPublicKey):
        return "rsasigkey", "0s" + _b64(rfc3110_from_rsa(key))
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(serialization.Encoding.X962,
                                 serialization.PublicFormat.UncompressedPoint)
        return "ecdsakey", "0s" + _b64(point[1:])
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "eddsakey", "0s" + _b64(key.public_bytes_raw())
    return "pubkey", _b64(spki_der(key))


# ------------------------------------------------------------------ identities of a key

def spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _ckaid_input(key: PublicKey) -> bytes:
    if isinstance(key, rsa.RSAPublicKey):
        return _int_bytes(key.public_numbers().n)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes_raw()


def ckaid(key: PublicKey | PrivateKey) -> bytes:
    """NSS's PK11_MakeIDFromPubKey: SHA-1 of the modulus / public value.

    Values of 20 octets or fewer are used as they are, as NSS does.
    """
    pub = key.public_key() if hasattr(key, "public_key") else key
    data = _ckaid_input(pub)  # type: ignore[arg-type]
    return data if len(data) <= 20 else hashlib.sha1(data).digest()


def ckaid_hex(key: PublicKey | PrivateKey) -> str:
    """The CKAID as Libreswan prints it (lower-case hex)."""
    return ckaid(key).hex()


def keyid(key: PublicKey | PrivateKey) -> str:
    """Libreswan's keyid: nine base64 characters (``AwEAAb...`` for RSA)."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, rsa.RSAPublicKey):
        return _b64(rfc3110_from_rsa(pub))[:9]
    return _b64(ckaid(pub))[:9]  # type: ignore[arg-type]


def key_type_name(key: PublicKey | PrivateKey) -> str:
    """Libreswan's pubkey type name: ``RSA``, ``ECDSA`` or ``EDDSA``."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return "ECDSA"
    return "EDDSA"


def key_strength_bits(key: PublicKey | PrivateKey) -> int:
    """NSS's SECKEY_PublicKeyStrengthInBits: modulus or field size (Ed25519: 255)."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey, ec.EllipticCurvePublicKey,
                        ec.EllipticCurvePrivateKey)):
        return key.key_size
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return 255
    return 448


def describe_key(key: PublicKey | PrivateKey) -> str:
    """``2048-bit RSA``, ``P-256 ECDSA``, ``P-255 EDDSA`` (Libreswan's wording)."""
    bits = key_strength_bits(key)
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return f"{bits}-bit RSA"
    return f"P-{bits} {key_type_name(key)}"


def same_public_key(a: PublicKey | PrivateKey, b: PublicKey | PrivateKey) -> bool:
    pa = a.public_key() if hasattr(a, "public_key") else a
    pb = b.public_key() if hasattr(b, "public_key") else b
    return spki_der(pa) == spki_der(pb)  # type: ignore[arg-type]
