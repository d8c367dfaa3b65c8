"""Raw public keys (RFC 3110 rsasigkey, ecdsakey, eddsakey, pubkey), CKAIDs and keyids."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pyswan.ike.pubkey import (
    PubkeyError,
    ckaid,
    ckaid_hex,
    decode_key_text,
    describe_key,
    format_raw_pubkey,
    keyid,
    parse_ecdsakey,
    parse_eddsakey,
    parse_pubkey,
    parse_raw_pubkey,
    parse_rsasigkey,
    rfc3110_from_rsa,
    same_public_key,
    spki_der,
)

# Libreswan's testing/pluto/ikev2-55-ipseckey-02/road.secrets: a public key and the CKAID
# pluto computed for it (3104-bit modulus, exponent 3).
ROAD_PUBKEY = (
    "0sAQPHFfpyJ3Ck4fMKcCH5DD/iZRKH2f0Sy6/U4MLj3Xeg76rH1qKyMPJksMXmx6cnF1R6jjLJrP2/j7MzuXR0c90"
    "jgxFT1tSRDjZ+Z/yJHkis6douZp1uT+KYp9xBs6Q39QepnCNpg1SHe+oAp1urLUE00aMXHqdkLX//RXpdhVxz3WPn"
    "QK3rceZfIUOA9SNMPUoRLMqa1nnFwlFur8NumfUmHGfuij4wS8GTp5I0Noy/5tDT/ngLCmQERMqMg/3xLrUAdmGm3v"
    "FZZyttwlfg8n1rn9NGQYwxwv3EYHIIO7tW+wH8HVdOz3wPxG9ybyoO8zDboID5cMy7B6n513aZY0tqDxo3lcub6hf3"
    "VWJrioMF/0N4V929CIWc8WI1bmnHBAtLxBvSOImM3lbQyCxRVDIbfSfczTd6Tssa7NLOSO1DSJyK/DCfsVccqZjlhJN"
    "s2k3MleP18qWznXCuJI0IOw+M6Vql8E2cPC9/vBCVNByWdCn8q/uPS3GqCya18DKYkGr9MfWr")
ROAD_CKAID = "1a15cce89273439c2bf4202ac1066ef259b0ef45"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def own_rfc3110(pub: rsa.RSAPublicKey) -> bytes:
    """RFC 3110 section 2, written out independently of the code under test."""
    n = pub.public_numbers().n.to_bytes(pub.key_size // 8, "big")
    e = (65537).to_bytes(3, "big")
    return bytes([len(e)]) + e + n


def test_rsasigkey_round_trip_with_own_encoding() -> None:
    pub = rsa_key().public_key()
    blob = own_rfc3110(pub)
    text = "0s" + base64.b64encode(blob).decode()
    parsed = parse_rsasigkey(text)
    assert parsed.public_numbers() == pub.public_numbers()
    assert rfc3110_from_rsa(parsed) == blob
    assert format_raw_pubkey(parsed) == ("rsasigkey", text)
    assert parse_rsasigkey("0x" + blob.hex()).public_numbers() == pub.public_numbers()
    assert parse_rsasigkey("0x" + "_".join(blob.hex()[i:i + 8] for i in range(0, 2 * len(blob), 8)))
    # the 3-octet exponent length form
    long_form = b"\x00\x00\x03" + blob[1:]
    assert rsa_from_text(long_form).public_numbers() == pub.public_numbers()


def rsa_from_text(blob: bytes) -> rsa.RSAPublicKey:
    return parse_rsasigkey("0s" + base64.b64encode(blob).decode())


def test_ckaid_and_keyid_for_rsa() -> None:
    pub = rsa_key().public_key()
    modulus = pub.public_numbers().n.to_bytes(256, "big")
    assert ckaid(pub) == hashlib.sha1(modulus).digest()
    assert ckaid_hex(rsa_key()) == hashlib.sha1(modulus).hexdigest()  # private key too
    assert keyid(pub) == base64.b64encode(own_rfc3110(pub)).decode()[:9]
    assert keyid(pub).startswith("AwEAA")
    assert describe_key(pub) == "2048-bit RSA"


def test_ckaid_matches_libreswan() -> None:
    key = parse_rsasigkey(ROAD_PUBKEY)
    assert key.key_size == 3104 and key.public_numbers().e == 3
    assert ckaid_hex(key) == ROAD_CKAID
    assert keyid(key) == "AQPHFfpyJ"


@pytest.mark.parametrize("blob, message", [
    (b"\x01", "1 byte raw RSA public is way too short"),
    (b"\x05\x01\x00", "3 byte raw RSA public key is too short for exponent of length 5"),
    (b"\x01\x03" + b"\xff" * 8, "10 byte raw RSA public key 8 byte modulus is shorter than "
                                "RFC minimum 12"),
    (b"\x01\x03" + b"\xff" * 32, "34 byte raw RSA public key 32 byte modulus is shorter than "
                                 "minimum 64"),
])
def test_rsasigkey_errors(blob: bytes, message: str) -> None:
    with pytest.raises(PubkeyError) as e:
        rsa_from_text(blob)
    assert str(e.value) == message


@pytest.mark.parametrize("text, message", [
    ("AwEAAQ==", "input does not begin with format prefix"),
    ("0qAAAA", "unknown format prefix"),
    ("0x123", "odd number of hex digits"),
    ("0s!!!!", "bad base64 data"),
])
def test_decode_key_text_errors(text: str, message: str) -> None:
    with pytest.raises(PubkeyError, match=message):
        decode_key_text(text)


@pytest.mark.parametrize("curve, size", [(ec.SECP256R1(), 256), (ec.SECP384R1(), 384),
                                         (ec.SECP521R1(), 521)])
def test_ecdsakey(curve: ec.EllipticCurve, size: int) -> None:
    pub = ec.generate_private_key(curve).public_key()
    point = pub.public_bytes(serialization.Encoding.X962,
                             serialization.PublicFormat.UncompressedPoint)
    for raw in (point[1:], point):  # with and without the 0x04 prefix
        parsed = parse_ecdsakey("0s" + base64.b64encode(raw).decode())
        assert same_public_key(parsed, pub)
    assert format_raw_pubkey(pub) == ("ecdsakey", "0s" + base64.b64encode(point[1:]).decode())
    assert ckaid(pub) == hashlib.sha1(point).digest()  # NSS hashes 04 || x || y
    assert keyid(pub) == base64.b64encode(ckaid(pub)).decode()[:9]
    assert describe_key(pub) == f"P-{size} ECDSA"


def test_ecdsakey_wrong_length() -> None:
    with pytest.raises(PubkeyError, match="unrecognized ECDSA Public Key with length 10"):
        parse_ecdsakey("0x" + "00" * 10)


def test_eddsakey() -> None:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = pub.public_bytes_raw()
    assert same_public_key(parse_eddsakey("0s" + base64.b64encode(raw).decode()), pub)
    assert ckaid(pub) == hashlib.sha1(raw).digest()
    assert describe_key(pub) == "P-255 EDDSA"
    with pytest.raises(PubkeyError, match="unrecognized EDDSA Public Key with length 31"):
        parse_eddsakey("0x" + "00" * 31)


def test_pubkey_spki_forms() -> None:
    pub = rsa_key().public_key()
    spki = spki_der(pub)
    b64 = base64.b64encode(spki).decode()
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (b64, "0s" + b64, pem):
        assert spki_der(parse_pubkey(text)) == spki
    assert format_raw_pubkey(pub, "pubkey") == ("pubkey", b64)
    assert same_public_key(parse_raw_pubkey("pubkey", b64), rsa_key())
    with pytest.raises(PubkeyError, match="decoding Subject Public Key Info DER failed"):
        parse_pubkey("AAAA")
    with pytest.raises(PubkeyError, match="could not find 'dsakey'"):
        parse_raw_pubkey("dsakey", b64)
