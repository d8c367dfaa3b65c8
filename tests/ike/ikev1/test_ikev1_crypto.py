"""IKEv1 key derivation checked against a second, independent computation written
straight from RFC 2409 with the ``cryptography`` package (not pyswan's PRF code)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyswan.ike import algorithms as A
from pyswan.ike.ikev1 import crypto as C

HASHES = {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256,
          "sha384": hashes.SHA384, "sha512": hashes.SHA512}
PRFS = [A.PRF_HMAC_MD5, A.PRF_HMAC_SHA1, A.PRF_HMAC_SHA2_256, A.PRF_HMAC_SHA2_512]

NI = bytes(range(16, 48))
NR = bytes(range(100, 132))
GXY = bytes(range(256))
GXI = b"\x11" * 256
GXR = b"\x22" * 256
CKY_I = bytes.fromhex("0011223344556677")
CKY_R = bytes.fromhex("8899aabbccddeeff")
PSK = b"this is a pre-shared key"


def ref_prf(p: A.Prf, key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, HASHES[p.hash_name]())
    h.update(data)
    return h.finalize()


def ref_hash(p: A.Prf, data: bytes) -> bytes:
    h = hashes.Hash(HASHES[p.hash_name]())
    h.update(data)
    return h.finalize()


@pytest.mark.parametrize("p", PRFS, ids=lambda p: p.fqn)
def test_skeyid_chain_psk_and_sig(p: A.Prf) -> None:
    skeyid = C.skeyid_psk(p, PSK, NI, NR)
    assert skeyid == ref_prf(p, PSK, NI + NR)
    assert C.skeyid_sig(p, NI, NR, GXY) == ref_prf(p, NI + NR, GXY)
    k = C.skeyids(p, skeyid, GXY, CKY_I, CKY_R)
    d = ref_prf(p, skeyid, GXY + CKY_I + CKY_R + b"\0")
    a = ref_prf(p, skeyid, d + GXY + CKY_I + CKY_R + b"\1")
    e = ref_prf(p, skeyid, a + GXY + CKY_I + CKY_R + b"\2")
    assert (k.d, k.a, k.e) == (d, a, e)
    assert len({k.d, k.a, k.e}) == 3
    assert "Skeyids(...)" == repr(k)  # keys never printed


@pytest.mark.parametrize("p,size", [(A.PRF_HMAC_MD5, 32), (A.PRF_HMAC_SHA1, 24),
                                    (A.PRF_HMAC_SHA1, 32), (A.PRF_HMAC_SHA2_256, 32),
                                    (A.PRF_HMAC_SHA2_256, 16)], ids=str)
def test_encryption_key_expansion(p: A.Prf, size: int) -> None:
    e = ref_prf(p, b"k", b"e")
    got = C.encryption_key(p, e, size)
    if len(e) >= size:
        assert got == e[:size]
    else:  # appendix B: Ka = K1 | K2 | ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1)
        k1 = ref_prf(p, e, b"\0")
        k2 = ref_prf(p, e, k1)
        assert got == (k1 + k2)[:size]
    assert len(got) == size


@pytest.mark.parametrize("p", PRFS, ids=lambda p: p.fqn)
def test_ivs(p: A.Prf) -> None:
    iv = C.phase1_iv(p, GXI, GXR, 16)
    assert iv == ref_hash(p, GXI + GXR)[:16]
    last = b"\x55" * 16
    assert C.phase2_iv(p, last, 0x01020304, 16) == ref_hash(p, last + bytes([1, 2, 3, 4]))[:16]
    assert C.phase2_iv(p, last, 1, 8) != C.phase2_iv(p, last, 2, 8)


def test_cbc_chains_iv_from_last_block() -> None:
    key, iv = b"k" * 16, b"i" * 16
    plain = b"p" * 20  # padded with zeros to 32
    ct, next_iv = C.encrypt(A.AES_CBC, key, iv, plain)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    assert ct == enc.update(plain + bytes(12)) + enc.finalize()
    assert next_iv == ct[-16:]
    back, iv2 = C.decrypt(A.AES_CBC, key, iv, ct)
    assert back == plain + bytes(12) and iv2 == next_iv
    ct3, _ = C.encrypt(A.TDES_CBC, b"k" * 24, b"i" * 8, b"x" * 9)
    assert len(ct3) == 16
    with pytest.raises(C.DecryptError):
        C.decrypt(A.AES_CBC, key, iv, ct[:-1])
    with pytest.raises(C.DecryptError):
        C.decrypt(A.AES_CBC, key, iv, b"")


@pytest.mark.parametrize("p", PRFS, ids=lambda p: p.fqn)
def test_phase1_hashes(p: A.Prf) -> None:
    sa_b, idi, idr = b"SA body", b"\x02\0\0\0west", b"\x02\0\0\0east"
    s = b"skeyid"
    assert C.hash_i(p, s, GXI, GXR, CKY_I, CKY_R, sa_b, idi) == ref_prf(
        p, s, GXI + GXR + CKY_I + CKY_R + sa_b + idi)
    assert C.hash_r(p, s, GXI, GXR, CKY_I, CKY_R, sa_b, idr) == ref_prf(
        p, s, GXR + GXI + CKY_R + CKY_I + sa_b + idr)
    # the two directions differ even with identical IDs
    assert C.hash_i(p, s, GXI, GXR, CKY_I, CKY_R, sa_b, idi) != C.hash_r(
        p, s, GXI, GXR, CKY_I, CKY_R, sa_b, idi)
    addr = bytes([192, 0, 2, 1])
    assert C.nat_d(p, CKY_I, CKY_R, addr, 500) == ref_hash(
        p, CKY_I + CKY_R + addr + b"\x01\xf4")


@pytest.mark.parametrize("p", PRFS, ids=lambda p: p.fqn)
def test_quick_mode_hashes(p: A.Prf) -> None:
    a, mid, rest = b"skeyid_a", 0xDEADBEEF, b"payloads after HASH"
    m = mid.to_bytes(4, "big")
    assert C.qm_hash1(p, a, mid, rest) == ref_prf(p, a, m + rest)
    assert C.qm_hash2(p, a, mid, NI, rest) == ref_prf(p, a, m + NI + rest)
    assert C.qm_hash3(p, a, mid, NI, NR) == ref_prf(p, a, b"\0" + m + NI + NR)
    assert C.info_hash(p, a, mid, rest) == ref_prf(p, a, m + rest)


@pytest.mark.parametrize("p", PRFS, ids=lambda p: p.fqn)
@pytest.mark.parametrize("gqm", [b"", b"\x33" * 256], ids=["nopfs", "pfs"])
def test_keymat(p: A.Prf, gqm: bytes) -> None:
    d, spi = b"skeyid_d", 0x12345678
    seed = gqm + b"\x03" + spi.to_bytes(4, "big") + NI + NR
    size = 16 + 32 + 20  # e.g. AES-128 + SHA2-256 key, then more than that
    blocks = [ref_prf(p, d, seed)]
    while sum(map(len, blocks)) < size:
        blocks.append(ref_prf(p, d, blocks[-1] + seed))
    assert len(blocks) >= 2
    assert C.keymat(p, d, 3, spi, NI, NR, size, gqm) == b"".join(blocks)[:size]
    # each direction has its own SPI, hence its own keys
    assert C.keymat(p, d, 3, spi + 1, NI, NR, 16, gqm) != C.keymat(p, d, 3, spi, NI, NR, 16,
                                                                   gqm)
