"""PRFs and MACs against RFC 4231/4868 (HMAC-SHA2), RFC 2202 (HMAC-SHA1),
RFC 3566/4434 (AES-XCBC) and RFC 4493/4494/4615 (AES-CMAC); prf+."""

from __future__ import annotations

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.prf import (
    aes_cmac,
    aes_cmac_prf128,
    aes_xcbc_mac,
    aes_xcbc_prf128,
    keyed_integ,
    keyed_prf,
    prf,
    prf_plus,
)

H = bytes.fromhex
XCBC_KEY = H("000102030405060708090a0b0c0d0e0f")
M20 = bytes(range(20))

# RFC 4231 test case 1 (key 0x0b * 20, "Hi There") and 2 ("Jefe")
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", {
        "sha256": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "sha384": "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
                  "faea9ea9076ede7f4af152e8b2fa9cb6",
        "sha512": "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                  "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    }),
    (b"Jefe", b"what do ya want for nothing?", {
        "sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    }),
]
PRF_BY_HASH = {"sha256": A.PRF_HMAC_SHA2_256, "sha384": A.PRF_HMAC_SHA2_384,
               "sha512": A.PRF_HMAC_SHA2_512}
INTEG_BY_HASH = {"sha256": A.INTEG_HMAC_SHA2_256_128, "sha384": A.INTEG_HMAC_SHA2_384_192,
                 "sha512": A.INTEG_HMAC_SHA2_512_256}


@pytest.mark.parametrize(("key", "msg", "outputs"), RFC4231)
def test_hmac_sha2_prf_and_truncated_integ(key: bytes, msg: bytes,
                                           outputs: dict[str, str]) -> None:
    for h, out in outputs.items():
        p = PRF_BY_HASH[h]
        assert prf(p, key, msg).hex() == out
        assert keyed_prf(p, key)(msg).hex() == out
        integ = INTEG_BY_HASH[h]
        if len(key) == integ.key_size:  # RFC 4868: ICV = leading half of the HMAC
            assert keyed_integ(integ, key)(msg[:3], msg[3:]).hex() == out[:2 * integ.icv_size]


def test_hmac_sha1_rfc2202() -> None:
    assert prf(A.PRF_HMAC_SHA1, b"\x0b" * 20, b"Hi There").hex() == (
        "b617318655057264e28bc0b6fb378c8ef146be00")
    assert keyed_integ(A.INTEG_HMAC_SHA1_96, b"\x0b" * 20)(b"Hi There").hex() == (
        "b617318655057264e28bc0b6")


RFC3566 = [
    (b"", "75f0251d528ac01c4573dfd584d79f29"),
    (bytes(range(3)), "5b376580ae2f19afe7219ceef172756f"),
    (bytes(range(16)), "d2a246fa349b68a79998a4394ff7a263"),
    (bytes(range(20)), "47f51b4564966215b8985c63055ed308"),
    (bytes(range(32)), "f54f0ec8d2b9f3d36807734bd5283fd4"),
    (bytes(range(34)), "becbb3bccdb518a30677d5481fb6b4d8"),
    (bytes(1000), "f0dafee895db30253761103b5d84528f"),
]


@pytest.mark.parametrize(("msg", "mac"), RFC3566)
def test_aes_xcbc_rfc3566(msg: bytes, mac: str) -> None:
    assert aes_xcbc_mac(XCBC_KEY, msg).hex() == mac
    assert keyed_integ(A.INTEG_AES_XCBC_96, XCBC_KEY)(msg).hex() == mac[:24]


@pytest.mark.parametrize(("key", "out"), [
    (XCBC_KEY, "47f51b4564966215b8985c63055ed308"),
    (H("00010203040506070809"), "0fa087af7d866e7653434e602fdde835"),
    (H("000102030405060708090a0b0c0d0e0fedcb"), "8cd3c93ae598a9803006ffb67c40e9e4"),
])
def test_aes_xcbc_prf_rfc4434(key: bytes, out: str) -> None:
    assert aes_xcbc_prf128(key, M20).hex() == out
    assert prf(A.PRF_AES_XCBC, key, M20).hex() == out


CMAC_KEY = H("2b7e151628aed2a6abf7158809cf4f3c")
CMAC_MSG = H("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
             "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")


@pytest.mark.parametrize(("n", "mac"), [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
])
def test_aes_cmac_rfc4493_and_cmac96_rfc4494(n: int, mac: str) -> None:
    assert aes_cmac(CMAC_KEY, CMAC_MSG[:n]).hex() == mac
    integ = keyed_integ(A.INTEG_AES_CMAC_96, CMAC_KEY)
    assert integ(CMAC_MSG[:n // 2], CMAC_MSG[n // 2:n]).hex() == mac[:24]


@pytest.mark.parametrize(("key", "out"), [
    (H("000102030405060708090a0b0c0d0e0fedcb"), "84a348a4a45d235babfffc0d2b4da09a"),
    (XCBC_KEY, "980ae87b5f4c9c5214f5b6a8455e4c2d"),
    (H("00010203040506070809"), "290d9e112edb09ee141fcf64c0b72f3d"),
])
def test_aes_cmac_prf_rfc4615(key: bytes, out: str) -> None:
    assert aes_cmac_prf128(key, M20).hex() == out
    assert prf(A.PRF_AES_CMAC, key, M20).hex() == out
    assert keyed_prf(8, key)(M20).hex() == out


def test_prf_plus_construction() -> None:
    # T1 = prf(K, S | 0x01), T2 = prf(K, T1 | S | 0x02), ... (RFC 7296 §2.13)
    key, seed = b"key", b"seed"
    t1 = prf(A.PRF_HMAC_SHA1, key, seed + b"\x01")
    t2 = prf(A.PRF_HMAC_SHA1, key, t1 + seed + b"\x02")
    t3 = prf(A.PRF_HMAC_SHA1, key, t2 + seed + b"\x03")
    assert prf_plus(A.PRF_HMAC_SHA1, key, seed, 50) == (t1 + t2 + t3)[:50]
    assert prf_plus(2, key, seed, 20) == t1
    assert len(prf_plus(A.PRF_AES_XCBC, XCBC_KEY, seed, 255 * 16)) == 255 * 16
    with pytest.raises(ValueError):
        prf_plus(A.PRF_AES_XCBC, XCBC_KEY, seed, 255 * 16 + 1)


def test_bad_keys_and_ids() -> None:
    with pytest.raises(ValueError):
        keyed_integ(A.INTEG_HMAC_SHA2_256_128, b"short")
    with pytest.raises(ValueError):
        prf(3, b"k", b"m")  # HMAC_TIGER: not implemented
    with pytest.raises(ValueError):
        aes_xcbc_mac(b"k" * 15, b"")
