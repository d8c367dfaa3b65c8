"""SK payload protection: round trips for every IKE suite, tamper detection,
padding, lengths, and known-answer vectors (NIST GCM, RFC 7539, RFC 3602,
RFC 3686) pushed through the SK framing."""

from __future__ import annotations

import os

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.cipher import IntegrityError, SkCrypto
from pyswan.ike.prf import keyed_integ

H = bytes.fromhex
PREFIX = b"\x11" * 28 + b"\x2e\x20\x23\x08" + b"\x00" * 8 + b"\x21\x00\x00\x00"

SUITES = [
    (A.AES_GCM_16, 256, None), (A.AES_GCM_16, 128, None), (A.AES_GCM_12, 192, None),
    (A.AES_GCM_8, 128, None), (A.CHACHA20_POLY1305, 0, None), (A.AES_CCM_16, 128, None),
    (A.AES_CBC, 256, A.INTEG_HMAC_SHA2_256_128), (A.AES_CBC, 128, A.INTEG_HMAC_SHA2_512_256),
    (A.AES_CBC, 192, A.INTEG_HMAC_SHA1_96), (A.AES_CTR, 256, A.INTEG_HMAC_SHA2_384_192),
    (A.TDES_CBC, 0, A.INTEG_HMAC_SHA1_96), (A.CAMELLIA_CBC, 256, A.INTEG_AES_XCBC_96),
    (A.AES_CBC, 128, A.INTEG_AES_CMAC_96),
]


def _keys(sk: SkCrypto) -> tuple[bytes, bytes | None]:
    return os.urandom(sk.encr_key_bytes), (os.urandom(sk.integ_key_bytes)
                                           if sk.integ_key_bytes else None)


@pytest.mark.parametrize(("encr", "bits", "integ"), SUITES,
                         ids=lambda x: getattr(x, "fqn", str(x)))
def test_round_trip_and_tamper(encr: A.Encr, bits: int, integ: A.Integ | None) -> None:
    sk = SkCrypto(encr, bits, integ)
    ke, ka = _keys(sk)
    bound = sk.bind(ke, ka)
    for n in (0, 1, 7, 15, 16, 17, 300):
        pt = os.urandom(n)
        body = bound.seal(PREFIX, pt)
        assert len(body) == sk.body_length(n)
        assert bound.open(PREFIX, body) == pt
        assert sk.open(ke, ka, PREFIX, body) == pt  # unbound form agrees
        flipped = bytearray(body)
        flipped[len(body) // 2] ^= 1
        with pytest.raises(IntegrityError):
            bound.open(PREFIX, bytes(flipped))
        with pytest.raises(IntegrityError):
            bound.open(PREFIX[:-1] + b"\x01", body)  # prefix is authenticated
        with pytest.raises(IntegrityError):
            bound.open(PREFIX, body[: sk.iv_size + sk.icv_size])
    # a different key does not verify
    other = sk.bind(*_keys(sk))
    with pytest.raises(IntegrityError):
        other.open(PREFIX, bound.seal(PREFIX, b"hello"))


def test_lengths_and_padding() -> None:
    cbc = SkCrypto(A.AES_CBC, 256, A.INTEG_HMAC_SHA2_256_128)
    assert (cbc.iv_size, cbc.icv_size, cbc.block) == (16, 16, 16)
    assert cbc.body_length(0) == 16 + 16 + 16
    assert cbc.body_length(15) == 16 + 16 + 16
    assert cbc.body_length(16) == 16 + 32 + 16
    gcm = SkCrypto(A.AES_GCM_16, 256)
    assert gcm.body_length(300) == 8 + 301 + 16
    assert gcm.encr_key_bytes == 36 and gcm.integ_key_bytes == 0
    assert SkCrypto(A.TDES_CBC, 0, A.INTEG_HMAC_SHA1_96).body_length(8) == 8 + 16 + 12
    assert SkCrypto(A.AES_CTR, 128, A.INTEG_HMAC_SHA1_96).body_length(5) == 8 + 6 + 12
    # by IKEv2 ids as well
    assert SkCrypto(20, 256).encr is A.AES_GCM_16
    assert SkCrypto(12, 128, 12).integ is A.INTEG_HMAC_SHA2_256_128


def test_padding_bytes_like_libreswan() -> None:
    # AES-CBC, key K, IV 0: decrypt by hand to see padding 0,1,2,... then pad length
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    sk = SkCrypto(A.AES_CBC, 128, A.INTEG_HMAC_SHA1_96)
    ke, ka = b"K" * 16, b"A" * 20
    body = sk.seal(ke, ka, PREFIX, b"abc", iv=bytes(16))
    dec = Cipher(algorithms.AES(ke), modes.CBC(bytes(16))).decryptor()
    assert dec.update(body[16:32]) == b"abc" + bytes(range(12)) + b"\x0c"


def test_extra_padding_is_accepted() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    sk = SkCrypto(A.AES_CBC, 128, A.INTEG_HMAC_SHA1_96)
    ke, ka = b"K" * 16, b"A" * 20
    iv = bytes(16)
    data = b"hi" + b"\xee" * 29 + bytes([29])  # 29 octets of padding: two blocks
    enc = Cipher(algorithms.AES(ke), modes.CBC(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    icv = keyed_integ(A.INTEG_HMAC_SHA1_96, ka)(PREFIX, iv, ct)
    assert sk.open(ke, ka, PREFIX, iv + ct + icv) == b"hi"
    bad = bytearray(data)
    bad[-1] = 40  # longer than the payload
    enc = Cipher(algorithms.AES(ke), modes.CBC(iv)).encryptor()
    ct = enc.update(bytes(bad)) + enc.finalize()
    icv = keyed_integ(A.INTEG_HMAC_SHA1_96, ka)(PREFIX, iv, ct)
    with pytest.raises(IntegrityError):
        sk.open(ke, ka, PREFIX, iv + ct + icv)
    # ciphertext not a multiple of the block size
    icv = keyed_integ(A.INTEG_HMAC_SHA1_96, ka)(PREFIX, iv, ct[:-1])
    with pytest.raises(IntegrityError):
        sk.open(ke, ka, PREFIX, iv + ct[:-1] + icv)


def test_bad_suites_and_keys() -> None:
    with pytest.raises(ValueError):
        SkCrypto(A.AES_GCM_16, 256, A.INTEG_HMAC_SHA1_96)
    with pytest.raises(ValueError):
        SkCrypto(A.AES_CBC, 256, None)
    with pytest.raises(ValueError):
        SkCrypto(A.AES_CBC, 100, A.INTEG_HMAC_SHA1_96)
    with pytest.raises(ValueError):
        SkCrypto(A.NULL_ENCR, 0, A.INTEG_HMAC_SHA1_96)
    with pytest.raises(ValueError):
        SkCrypto(A.AES_GCM_16, 128).bind(b"short")
    with pytest.raises(ValueError):
        SkCrypto(A.AES_GCM_16, 128).bind(bytes(20)).seal(b"", b"", iv=b"1234")


# McGrew-Viega / NIST GCM test case 4: K, nonce cafebabe|facedbaddecaf888, A, P -> C, T
GCM_K = H("feffe9928665731c6d6a8f9467308308")
GCM_P = H("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
          "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
GCM_A = H("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_C = H("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
          "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091")
GCM_T = H("5bc94fbc3221a5db94fae95ae7121a47")


@pytest.mark.parametrize("encr", [A.AES_GCM_16, A.AES_GCM_12, A.AES_GCM_8])
def test_gcm_known_answer(encr: A.Encr) -> None:
    # RFC 5282: KEYMAT = key | 4-octet salt, nonce = salt | 8-octet IV, AAD = prefix
    sk = SkCrypto(encr, 128).bind(GCM_K + H("cafebabe"))
    iv = H("facedbaddecaf888")
    n = encr.icv_size
    # P's last octet (0x39 = 57) reads as the pad length: 58 octets are padding
    assert sk.open(GCM_A, iv + GCM_C + GCM_T[:n]) == GCM_P[:2]
    # sealing P minus its last octet gives C's first 59 octets (GCM is CTR)
    body = sk.seal(GCM_A, GCM_P[:-1], iv=iv)
    assert body[8:8 + 59] == GCM_C[:59]
    with pytest.raises(IntegrityError):
        sk.open(GCM_A, iv + GCM_C + bytes(n))


def test_chacha20_poly1305_rfc7539_known_answer() -> None:
    key = bytes(range(0x80, 0xA0))
    aad = H("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one "
          b"tip for the future, sunscreen would be it.")
    ct = H("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
           "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
           "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
           "3ff4def08e4b7a9de576d26586cec64b6116")
    tag = H("1ae10b594f09e26a7e902ecbd0600691")
    # RFC 7634: KEYMAT = key | salt; nonce = salt (07000000) | IV (4041..47)
    sk = SkCrypto(A.CHACHA20_POLY1305).bind(key + H("07000000"))
    iv = H("4041424344454647")
    # the final '.' (0x2e = 46) is read as the pad length
    assert sk.open(aad, iv + ct + tag) == pt[:len(pt) - 47]
    assert sk.seal(aad, pt[:-1], iv=iv)[8:8 + len(pt) - 1] == ct[:-1]


def test_aes_cbc_rfc3602_known_answer() -> None:
    sk = SkCrypto(A.AES_CBC, 128, A.INTEG_HMAC_SHA1_96)
    key = H("c286696d887c9aa0611bbb3e2025a45a")
    iv = H("562e17996d093d28ddb3ba695a2e6f58")
    # an empty payload pads with 00..0e then pad length 0f: case #2's first block
    body = sk.seal(key, b"I" * 20, PREFIX, b"", iv=iv)
    assert body[16:32] == H("d296cd94c2cccf8a3a863028b5e1dc0a")
    # case #2 whole: plaintext 00..1f decrypts to "" (0x1f = 31 octets of padding)
    ct = H("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
    icv = keyed_integ(A.INTEG_HMAC_SHA1_96, b"I" * 20)(PREFIX, iv, ct)
    assert sk.open(key, b"I" * 20, PREFIX, iv + ct + icv) == b""


def test_aes_ctr_rfc3686_known_answer() -> None:
    # vector #2: key 7E24..63, nonce 006CB6DB, IV C0543B59DA48D90B, P = 00..1f
    sk = SkCrypto(A.AES_CTR, 128, A.INTEG_HMAC_SHA1_96)
    ke = H("7E24067817FAE0D743D6CE1F32539163") + H("006CB6DB")
    iv = H("C0543B59DA48D90B")
    c = H("5104A106168A72D9790D41EE8EDAD388EB2E1EFC46DA57C8FCE630DF9141BE28")
    body = sk.seal(ke, b"I" * 20, PREFIX, bytes(range(31)), iv=iv)
    assert body[8:8 + 31] == c[:31]
    icv = keyed_integ(A.INTEG_HMAC_SHA1_96, b"I" * 20)(PREFIX, iv, c)
    assert sk.open(ke, b"I" * 20, PREFIX, iv + c + icv) == b""


@pytest.mark.parametrize(("encr", "bits"), [(A.AES_CBC, 256), (A.TDES_CBC, 0),
                                            (A.CAMELLIA_CBC, 128)])
def test_long_lived_cbc_context_is_plain_cbc_on_the_wire(encr: A.Encr, bits: int) -> None:
    """The chained CBC context emits ordinary random-IV CBC: an independent
    decryption with a fresh context and the sent IV gives the padded text."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    sk = SkCrypto(encr, bits, A.INTEG_HMAC_SHA2_256_128)
    ke, ka = _keys(sk)
    sender, receiver = sk.bind(ke, ka), sk.bind(ke, ka)
    alg = {"aes-cbc": algorithms.AES, "3des-cbc": TripleDES, "camellia-cbc": Camellia}
    n, icv = sk.iv_size, sk.icv_size
    ivs = set()
    for i in range(6):
        pt = os.urandom(7 * i)
        body = sender.seal(PREFIX, pt) if i != 3 else sender.seal(PREFIX, pt, iv=bytes(n))
        iv, ct = body[:n], body[n:-icv]
        ivs.add(iv)
        dec = Cipher(alg[encr.cipher](ke), modes.CBC(iv)).decryptor()
        padded = dec.update(ct) + dec.finalize()
        assert padded[:len(pt)] == pt and padded[-1] == len(padded) - len(pt) - 1
        if i == 2:  # a forged message in between changes nothing
            with pytest.raises(IntegrityError):
                receiver.open(PREFIX, body[:-1] + bytes([body[-1] ^ 1]))
        assert receiver.open(PREFIX, body) == pt
    assert len(ivs) == 6
