"""The algorithm registry: names, ids, sizes, kernel names, implementations."""

from __future__ import annotations

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.cipher import SkCrypto
from pyswan.ike.dh import key_exchange
from pyswan.ike.prf import keyed_integ, keyed_prf


@pytest.mark.parametrize(("kind", "name", "fqn"), [
    ("encrypt", "aes", "AES_CBC"),
    ("encrypt", "AES_CBC", "AES_CBC"),
    ("encrypt", "aes_gcm", "AES_GCM_16"),
    ("encrypt", "aes_gcm_16", "AES_GCM_16"),
    ("encrypt", "aes_gcm_c", "AES_GCM_16"),
    ("encrypt", "aes_gcm_b", "AES_GCM_12"),
    ("encrypt", "aes_gcm_a", "AES_GCM_8"),
    ("encrypt", "aes_ctr", "AES_CTR"),
    ("encrypt", "aesctr", "AES_CTR"),
    ("encrypt", "chacha20_poly1305", "CHACHA20_POLY1305"),
    ("encrypt", "3des", "3DES_CBC"),
    ("encrypt", "null", "NULL"),
    ("prf", "sha1", "HMAC_SHA1"),
    ("prf", "sha", "HMAC_SHA1"),
    ("prf", "sha2", "HMAC_SHA2_256"),
    ("prf", "sha256", "HMAC_SHA2_256"),
    ("prf", "sha2_512", "HMAC_SHA2_512"),
    ("prf", "aes_xcbc", "AES_XCBC"),
    ("integ", "sha1", "HMAC_SHA1_96"),
    ("integ", "sha2", "HMAC_SHA2_256_128"),
    ("integ", "sha2_256", "HMAC_SHA2_256_128"),
    ("integ", "sha384", "HMAC_SHA2_384_192"),
    ("integ", "sha2_512", "HMAC_SHA2_512_256"),
    ("integ", "aes_xcbc", "AES_XCBC_96"),
    ("integ", "aes_cmac", "AES_CMAC_96"),
    ("integ", "null", "NONE"),
    ("ke", "modp2048", "MODP2048"),
    ("ke", "dh14", "MODP2048"),
    ("ke", "dh19", "DH19"),
    ("ke", "ecp_256", "DH19"),
    ("ke", "ecp384", "DH20"),
    ("ke", "dh31", "DH31"),
    ("ke", "curve25519", "DH31"),
    ("ke", "x448", "DH32"),
    ("ke", "dh32", "DH32"),
    ("ke", "none", "NONE"),
    ("ke", "mlkem768", "ML_KEM_768"),
    ("sn", "yes", "PARTIAL_64_BIT_SEQUENTIAL"),
])
def test_lookup_by_name(kind: str, name: str, fqn: str) -> None:
    alg = A.by_name(kind, name)
    assert alg is not None and alg.fqn == fqn


def test_lookup_unknown_and_fips() -> None:
    assert A.by_name("encrypt", "blowfish") is None
    assert A.is_known_name("encrypt", "blowfish")
    assert A.is_known_name("encrypt", "IKEv2_ENCR_DES")
    assert not A.is_known_name("encrypt", "vanitycipher")
    assert A.is_known_name("ke", "modp1024") and not A.is_known_name("ke", "4096")
    assert A.by_name("encrypt", "camellia", fips=True) is None
    assert A.by_name("encrypt", "aes", fips=True) is A.AES_CBC
    assert A.by_name("prf", "aes_cmac") is None  # AES-CMAC PRF: by id only


def test_lookup_by_id() -> None:
    assert A.encr_by_id(20) is A.AES_GCM_16
    assert A.encr_by_id(28) is A.CHACHA20_POLY1305
    assert A.prf_by_id(5) is A.PRF_HMAC_SHA2_256
    assert A.prf_by_id(8) is A.PRF_AES_CMAC
    assert A.integ_by_id(12) is A.INTEG_HMAC_SHA2_256_128
    assert A.integ_by_id(0) is A.INTEG_NONE
    assert A.ke_by_id(31) is A.DH31
    assert A.ke_by_id(36) is A.ML_KEM_768
    assert A.ke_by_id(2) is None  # MODP1024 is gone
    assert A.by_transform(A.TransformType.ADDKE3, 14) is A.MODP2048
    assert A.by_transform(99, 1) is None


def test_sizes() -> None:
    assert A.AES_GCM_16.keymat_size(256) == 36
    assert A.AES_GCM_8.keymat_size(128) == 20
    assert A.AES_CTR.keymat_size(192) == 28
    assert A.CHACHA20_POLY1305.keymat_size() == 36
    assert A.AES_CBC.keymat_size() == 16  # default 128
    assert A.TDES_CBC.keymat_size() == 24
    assert A.AES_CCM_8.keymat_size(256) == 35
    assert (A.AES_GCM_12.icv_size, A.AES_GCM_12.iv_size, A.AES_GCM_12.salt_size) == (12, 8, 4)
    assert A.AES_CBC.key_lengths == (128, 192, 256) and A.AES_CBC.keydeflen == 128
    assert [(i.key_size, i.icv_size) for i in (
        A.INTEG_HMAC_SHA1_96, A.INTEG_HMAC_SHA2_256_128, A.INTEG_HMAC_SHA2_384_192,
        A.INTEG_HMAC_SHA2_512_256, A.INTEG_AES_XCBC_96, A.INTEG_AES_CMAC_96)] == [
        (20, 12), (32, 16), (48, 24), (64, 32), (16, 12), (16, 12)]
    assert (A.DH19.size, A.DH21.size, A.MODP3072.size, A.DH32.size) == (64, 132, 384, 56)
    assert (A.ML_KEM_768.size, A.ML_KEM_768.responder_size) == (1184, 1088)


def test_xfrm_names() -> None:
    assert (A.AES_GCM_16.xfrm_name, A.AES_GCM_16.xfrm_icv_bits) == ("rfc4106(gcm(aes))", 128)
    assert A.AES_GCM_8.xfrm_icv_bits == 64
    assert A.CHACHA20_POLY1305.xfrm_name == "rfc7539esp(chacha20,poly1305)"
    assert A.AES_CBC.xfrm_name == "cbc(aes)"
    assert A.AES_CTR.xfrm_name == "rfc3686(ctr(aes))"
    assert A.TDES_CBC.xfrm_name == "cbc(des3_ede)"
    assert (A.INTEG_HMAC_SHA2_256_128.xfrm_name,
            A.INTEG_HMAC_SHA2_256_128.xfrm_trunc_bits) == ("hmac(sha256)", 128)
    assert (A.INTEG_HMAC_SHA1_96.xfrm_name, A.INTEG_HMAC_SHA1_96.xfrm_trunc_bits) == (
        "hmac(sha1)", 96)
    assert A.INTEG_AES_XCBC_96.xfrm_name == "xcbc(aes)"
    assert A.INTEG_AES_CMAC_96.xfrm_name == "cmac(aes)"


def test_integ_from_prf() -> None:
    assert A.integ_for_prf(A.PRF_HMAC_SHA2_256) is A.INTEG_HMAC_SHA2_256_128
    assert A.integ_for_prf(A.PRF_AES_XCBC) is A.INTEG_AES_XCBC_96
    assert A.integ_for_prf(A.PRF_AES_CMAC) is None
    assert A.integ_for_prf(A.PRF_HMAC_MD5, fips=True) is None


def test_ike_versions_ids() -> None:
    assert A.AES_CBC.ikev1_oakley_id == 7 and A.AES_CBC.ikev1_ipsec_id == 12
    assert A.AES_GCM_16.ikev1_oakley_id is None and A.AES_GCM_16.ikev1_ipsec_id == 20
    assert A.CHACHA20_POLY1305.ikev1_ipsec_id is None
    assert A.INTEG_HMAC_SHA2_256_128.ikev1_ipsec_id == 5
    assert A.KE_NONE.ikev1_oakley_id is None


def test_every_ike_algorithm_is_implemented() -> None:
    for e in A.ENCRYPT:
        if e.ike:
            integ = None if e.aead else A.INTEG_HMAC_SHA2_256_128
            for bits in e.key_lengths:
                SkCrypto(e, bits, integ)
    for p in A.PRFS:
        assert len(keyed_prf(p, b"k" * p.key_size)(b"data")) == p.output_size
    for i in A.INTEGS:
        if i.mac:
            assert len(keyed_integ(i, b"k" * i.key_size)(b"a", b"b")) == i.icv_size
    for k in A.KES:
        if k.ike and k.family != "none" and k.family != "modp":
            assert len(key_exchange(k).public_bytes) == k.size
