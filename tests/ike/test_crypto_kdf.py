"""IKEv2 key derivation.

* NIST CAVP SP 800-135 IKEv2 KDF, ACVP test case tcId 100 (HMAC-SHA-1): the
  only published end-to-end vector (as carried by Libreswan's
  ``programs/cavp/test.acvp.ikev2.*``): SKEYSEED, DKM, Child DKM, Child DKM
  with a new D-H secret, and rekey SKEYSEED.
* For the SHA-2 PRFs no published vector exists; the tests cross-check
  ``derive_ike_keys``/``child_keymat`` against an independent formulation
  written here directly on ``hmac`` (a different prf+ loop and key split).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.kdf import (
    child_keymat,
    derive_ike_keys,
    derive_rekey_ike_keys,
    ike_keymat,
    intermediate_skeyseed,
    rekey_skeyseed,
    skeyseed,
)
from pyswan.ike.prf import aes_cmac_prf128, aes_xcbc_prf128, prf_plus

H = bytes.fromhex

CAVP = {
    "g_ir": H("4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52"),
    "g_ir_new": H("863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330"),
    "ni": H("32b50d5f4a3763f3"),
    "nr": H("9206a04b26564cb1"),
    "spi_i": H("34c9e7c188868785"),
    "spi_r": H("3ff77d760d2b2199"),
    "skeyseed": "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
    "dkm": "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a0"
           "62768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204"
           "b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca85"
           "5e4249520a441a81157435a7a56cc4",
    "dkm_child": "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1c"
                 "dabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9"
                 "545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d"
                 "319d41d4b50b3f510b1c0a22f3e664994d234cb4",
    "dkm_child_dh": "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e"
                    "38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e"
                    "7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f93370845"
                    "0b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c",
    "skeyseed_rekey": "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
}
DKM_BYTES = 1056 // 8


def test_cavp_ikev2_sha1() -> None:
    v = CAVP
    seed = skeyseed(A.PRF_HMAC_SHA1, v["ni"], v["nr"], v["g_ir"])
    assert seed.hex() == v["skeyseed"]
    dkm = prf_plus(A.PRF_HMAC_SHA1, seed, v["ni"] + v["nr"] + v["spi_i"] + v["spi_r"],
                   DKM_BYTES)
    assert dkm.hex() == v["dkm"]
    # derive_ike_keys is the same prf+ split into the seven keys
    e, a = 32, 20  # AES-CBC-256 + HMAC-SHA1-96
    keys = derive_ike_keys(A.PRF_HMAC_SHA1, e, a, v["g_ir"], v["ni"], v["nr"],
                           v["spi_i"], v["spi_r"])
    assert keys.skeyseed == seed
    joined = keys.sk_d + keys.sk_ai + keys.sk_ar + keys.sk_ei + keys.sk_er
    assert joined == dkm[:len(joined)]  # 124 of the 132 DKM octets
    sk_d = dkm[:20]
    assert keys.sk_d == sk_d
    # Child SA DKM: prf+(SK_d, Ni | Nr), and with a new D-H secret
    child = child_keymat(A.PRF_HMAC_SHA1, sk_d, v["ni"], v["nr"], 33, 33)
    assert (child.encr_i + child.integ_i + child.encr_r + child.integ_r).hex() == v["dkm_child"]
    child_dh = child_keymat(A.PRF_HMAC_SHA1, sk_d, v["ni"], v["nr"], 33, 33,
                            g_ir_new=v["g_ir_new"])
    joined = child_dh.encr_i + child_dh.integ_i + child_dh.encr_r + child_dh.integ_r
    assert joined.hex() == v["dkm_child_dh"]
    assert rekey_skeyseed(2, sk_d, v["g_ir_new"], v["ni"], v["nr"]).hex() == (
        v["skeyseed_rekey"])


# ---- an independent formulation for the SHA-2 PRFs ------------------------

def _ref_prf_plus(h: str, key: bytes, seed: bytes, n: int) -> bytes:
    out = b""
    block = b""
    i = 0
    while len(out) < n:
        i += 1
        block = hmac.new(key, block + seed + i.to_bytes(1, "big"), getattr(hashlib, h)).digest()
        out += block
    return out[:n]


@pytest.mark.parametrize(("prf", "h"), [(A.PRF_HMAC_SHA2_256, "sha256"),
                                        (A.PRF_HMAC_SHA2_384, "sha384"),
                                        (A.PRF_HMAC_SHA2_512, "sha512")])
def test_ike_keys_cross_check(prf: A.Prf, h: str) -> None:
    ni, nr = bytes(range(32)), bytes(range(100, 132))
    spi_i, spi_r = b"\x01" * 8, b"\x02" * 8
    g_ir = bytes(range(256)) * 1
    e, a = A.AES_GCM_16.keymat_size(256), 0
    keys = derive_ike_keys(prf, e, a, g_ir, ni, nr, spi_i, spi_r)
    seed = hmac.new(ni + nr, g_ir, getattr(hashlib, h)).digest()
    p = prf.key_size
    km = _ref_prf_plus(h, seed, ni + nr + spi_i + spi_r, 3 * p + 2 * e)
    names = ["sk_d", "sk_ei", "sk_er", "sk_pi", "sk_pr"]
    sizes = [p, e, e, p, p]
    pos = 0
    for name, size in zip(names, sizes, strict=True):
        assert getattr(keys, name) == km[pos:pos + size], name
        pos += size
    assert keys.sk_ai == keys.sk_ar == b""
    # CBC + HMAC: integrity keys sit between SK_d and SK_ei
    keys2 = derive_ike_keys(prf, 16, 32, g_ir, ni, nr, spi_i, spi_r)
    km2 = _ref_prf_plus(h, seed, ni + nr + spi_i + spi_r, 3 * p + 2 * 32 + 2 * 16)
    assert keys2.sk_ai == km2[p:p + 32] and keys2.sk_ar == km2[p + 32:p + 64]
    assert keys2.sk_ei == km2[p + 64:p + 80] and keys2.sk_pr == km2[-p:]
    # Child SA: encr_i, integ_i, encr_r, integ_r
    child = child_keymat(prf, keys.sk_d, ni, nr, 32, 64, g_ir_new=b"new")
    ck = _ref_prf_plus(h, keys.sk_d, b"new" + ni + nr, 2 * 96)
    assert (child.encr_i, child.integ_i, child.encr_r, child.integ_r) == (
        ck[:32], ck[32:96], ck[96:128], ck[128:])
    assert "redacted" in repr(keys) and "redacted" in repr(child)


def test_aes_prf_nonce_rule() -> None:
    # RFC 7296 §2.14: AES-XCBC/CMAC PRF key = first 64 bits of Ni | of Nr
    ni, nr, g = bytes(range(32)), bytes(range(64, 96)), b"g" * 32
    assert skeyseed(A.PRF_AES_XCBC, ni, nr, g) == aes_xcbc_prf128(ni[:8] + nr[:8], g)
    assert skeyseed(A.PRF_AES_CMAC, ni, nr, g) == aes_cmac_prf128(ni[:8] + nr[:8], g)
    # ... but prf+ still takes the full nonces
    keys = derive_ike_keys(A.PRF_AES_XCBC, 16, 16, g, ni, nr, b"i" * 8, b"r" * 8)
    seed = aes_xcbc_prf128(ni[:8] + nr[:8], g)
    assert keys.sk_d == prf_plus(A.PRF_AES_XCBC, seed, ni + nr + b"i" * 8 + b"r" * 8, 16)
    assert len(keys.sk_pr) == 16


def test_rekey_uses_old_prf_for_skeyseed_and_new_prf_for_keymat() -> None:
    old_d = b"D" * 20
    ni, nr, g = b"n" * 16, b"m" * 16, b"g" * 32
    keys = derive_rekey_ike_keys(A.PRF_HMAC_SHA1, old_d, A.PRF_HMAC_SHA2_256, 32, 32, g,
                                 ni, nr, b"I" * 8, b"R" * 8)
    seed = hmac.new(old_d, g + ni + nr, hashlib.sha1).digest()
    assert keys.skeyseed == seed
    assert keys == ike_keymat(A.PRF_HMAC_SHA2_256, seed, 32, 32, ni, nr, b"I" * 8, b"R" * 8)
    assert len(keys.sk_d) == 32
    # RFC 9370 additional key exchanges are appended after the nonces
    extra = rekey_skeyseed(A.PRF_HMAC_SHA1, old_d, g, ni, nr, (b"S1", b"S2"))
    assert extra == hmac.new(old_d, g + ni + nr + b"S1S2", hashlib.sha1).digest()
    assert intermediate_skeyseed(5, old_d, b"SK", ni, nr) == hmac.new(
        old_d, b"SK" + ni + nr, hashlib.sha256).digest()
