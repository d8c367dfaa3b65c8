"""AUTH payloads: signed octets, PSK, RSA/ECDSA/EdDSA signatures, RFC 7427
AlgorithmIdentifier blobs, and the RFC 4754 ECDSA vector."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pyswan.ike import algorithms as A
from pyswan.ike.auth import (
    AuthenticationError,
    AuthMethod,
    SignatureScheme,
    psk_auth,
    psk_verify,
    scheme_for_key,
    sign,
    signed_octets,
    verify,
)

H = bytes.fromhex


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signed_octets_and_psk() -> None:
    msg, nonce, sk_pi = b"IKE_SA_INIT request", b"Nr" * 16, b"p" * 32
    id_body = b"\x02\x00\x00\x00" + b"west"  # ID_FQDN, reserved, data
    octets = signed_octets(msg, nonce, A.PRF_HMAC_SHA2_256, sk_pi, id_body)
    assert octets == msg + nonce + hmac.new(sk_pi, id_body, hashlib.sha256).digest()
    psk = b"swordfish"
    pad = hmac.new(psk, b"Key Pad for IKEv2", hashlib.sha256).digest()
    auth = psk_auth(A.PRF_HMAC_SHA2_256, psk, octets)
    assert auth == hmac.new(pad, octets, hashlib.sha256).digest()
    assert psk_auth(5, psk, octets) == auth  # by IKEv2 PRF id
    psk_verify(5, psk, octets, auth)
    with pytest.raises(AuthenticationError):
        psk_verify(5, b"wrong", octets, auth)
    # an AES-XCBC PRF takes any PSK length (RFC 4434 key handling)
    assert len(psk_auth(A.PRF_AES_XCBC, b"a long pre-shared secret", octets)) == 16


def test_rfc7427_blobs(rsa_key: rsa.RSAPrivateKey) -> None:
    pss256 = H("3041 0609 2a864886f70d01010a 3034"
               " a00f 300d 0609 608648016503040201 0500"
               " a11c 301a 0609 2a864886f70d010108 300d 0609 608648016503040201 0500"
               " a203 020120".replace(" ", ""))
    assert scheme_for_key(rsa_key, "sha256").algorithm_identifier() == pss256
    pss512 = scheme_for_key(rsa_key, "sha512").algorithm_identifier()
    assert len(pss512) == 67 and pss512.endswith(H("a203020140"))
    assert scheme_for_key(rsa_key, "sha256", rsa_pss=False).algorithm_identifier() == H(
        "300d06092a864886f70d01010b0500")
    assert SignatureScheme("PKCS#1 1.5 RSA", "sha1").algorithm_identifier() == H(
        "300d06092a864886f70d0101050500")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert scheme_for_key(ec_key, "sha256").algorithm_identifier() == H(
        "300a06082a8648ce3d040302")
    assert scheme_for_key(ed25519.Ed25519PrivateKey.generate()).algorithm_identifier() == H(
        "300506032b6570")
    assert scheme_for_key(ed448.Ed448PrivateKey.generate()).algorithm_identifier() == H(
        "300506032b6571")


@pytest.mark.parametrize(("hash_name", "pss", "text"), [
    ("sha256", True, "2048-bit RSASSA-PSS with SHA2_256"),
    ("sha512", True, "2048-bit RSASSA-PSS with SHA2_512"),
    ("sha384", False, "2048-bit PKCS#1 1.5 RSA with SHA2_384"),
])
def test_rsa_digital_signature(rsa_key: rsa.RSAPrivateKey, hash_name: str, pss: bool,
                               text: str) -> None:
    octets = b"signed octets"
    data = sign(rsa_key, AuthMethod.DIGITAL_SIGNATURE, hash_name, octets, rsa_pss=pss)
    scheme = verify(rsa_key.public_key(), 14, data, octets)
    assert scheme.describe(rsa_key.public_key()) == text
    with pytest.raises(AuthenticationError):
        verify(rsa_key.public_key(), 14, data, octets + b"!")
    with pytest.raises(AuthenticationError):
        verify(ec.generate_private_key(ec.SECP256R1()).public_key(), 14, data, octets)


def test_rsa_method_1(rsa_key: rsa.RSAPrivateKey) -> None:
    data = sign(rsa_key, AuthMethod.RSA_SIG, None, b"octets")
    assert len(data) == 256
    scheme = verify(rsa_key.public_key(), 1, data, b"octets")
    assert (scheme.name, scheme.hash_fqn) == ("PKCS#1 1.5 RSA", "SHA1")
    with pytest.raises(AuthenticationError):
        verify(rsa_key.public_key(), 1, data[:-1] + b"\0", b"octets")


@pytest.mark.parametrize(("method", "curve", "size"), [
    (9, ec.SECP256R1(), 64), (10, ec.SECP384R1(), 96), (11, ec.SECP521R1(), 132)])
def test_ecdsa_rfc4754_methods(method: int, curve: ec.EllipticCurve, size: int) -> None:
    key = ec.generate_private_key(curve)
    data = sign(key, method, None, b"octets")
    assert len(data) == size  # raw r | s
    assert verify(key.public_key(), method, data, b"octets").name == "ECDSA"
    with pytest.raises(AuthenticationError):
        verify(key.public_key(), method, data, b"other")
    with pytest.raises(AuthenticationError):
        verify(key.public_key(), method, data[:-1], b"octets")


def test_ecdsa_rfc4754_vector() -> None:
    # RFC 4754 §8.1: ECDSA-256 over "abc" with a fixed k
    gw = ec.EllipticCurvePublicNumbers(
        0x2442A5CC0ECD015FA3CA31DC8E2BBC70BF42D60CBCA20085E0822CB04235E970,
        0x6FC98BD7E50211A4A27102FA3549DF79EBCB4BF246B80945CDDFE7D509BBFD7D,
        ec.SECP256R1()).public_key()
    sig = H("CB28E0999B9C7715FD0A80D8E47A77079716CBBF917DD72E97566EA1C066957C"
            "86FA3BB4E26CAD5BF90B7F81899256CE7594BB1EA0C89212748BFF3B3D5B0315")
    scheme = verify(gw, AuthMethod.ECDSA_SHA2_256_P256, sig, b"abc")
    assert scheme.describe(gw) == "P-256 ECDSA with SHA2_256"
    with pytest.raises(AuthenticationError):
        verify(gw, AuthMethod.ECDSA_SHA2_256_P256, sig, b"abd")


def test_ecdsa_and_eddsa_digital_signature() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    data = sign(key, 14, "sha384", b"x")
    assert verify(key.public_key(), 14, data, b"x").describe(key.public_key()) == (
        "P-384 ECDSA with SHA2_384")
    for ed in (ed25519.Ed25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate()):
        data = sign(ed, 14, None, b"x")
        scheme = verify(ed.public_key(), 14, data, b"x")
        assert (scheme.name, scheme.hash_fqn) == ("EDDSA", "IDENTITY")
        with pytest.raises(AuthenticationError):
            verify(ed.public_key(), 14, data, b"y")


def test_pss_parameters_are_parsed_not_matched(rsa_key: rsa.RSAPrivateKey) -> None:
    # a peer may omit the NULL parameters in the hash AlgorithmIdentifiers
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    blob = H("303d06092a864886f70d01010a3030a00d300b0609608648016503040201"
             "a11a301806092a864886f70d010108300b0609608648016503040201a203020120")
    sig = rsa_key.sign(b"m", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    scheme = verify(rsa_key.public_key(), 14, bytes([len(blob)]) + blob + sig, b"m")
    assert (scheme.name, scheme.hash, scheme.salt_length) == ("RSASSA-PSS", "sha256", 32)


def test_malformed_auth_data(rsa_key: rsa.RSAPrivateKey) -> None:
    pub = rsa_key.public_key()
    for bad in (b"", b"\x20\x30", b"\x05" + H("3003060100") + b"sig",
                b"\x07" + H("300506032b6599") + b"sig"):
        with pytest.raises(AuthenticationError):
            verify(pub, 14, bad, b"m")
    with pytest.raises(AuthenticationError):
        verify(pub, 2, b"psk is not a signature", b"m")
    with pytest.raises(ValueError):
        sign(rsa_key, 9, None, b"m")
    with pytest.raises(ValueError):
        sign(rsa_key, 2, None, b"m")
