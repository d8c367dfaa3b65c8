"""Key exchange: RFC 3526/7296 primes, RFC 5903 ECDH, RFC 7748 X25519/X448,
ML-KEM round trips, and rejection of bad peer values."""

from __future__ import annotations

import hashlib
import random
import warnings

import pytest

from pyswan.ike import modp
from pyswan.ike.dh import KeyExchangeError, key_exchange, respond


def _h(s: str) -> bytes:
    return bytes.fromhex("".join(s.split()))


# RFC 7296 Appendix B.2 (group 2), printed in full in the RFC
RFC7296_MODP1024 = """
FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381
FFFFFFFF FFFFFFFF"""

# RFC 3526 §3, the 2048-bit MODP group (14)
RFC3526_MODP2048 = """
FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D
C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F
83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D
670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9
DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510
15728E5A 8AACAA68 FFFFFFFF FFFFFFFF"""

# SHA-256 of the upper-case hex (no spaces) of the RFC 3526 primes, taken from
# the RFC text; a compact cross-check of the larger groups.
RFC3526_SHA256 = {
    5: "0a14e50abc56277fbf3d24ae174026486e91f013263cfde280c32577dcebe636",
    14: "dcd8538e629d7b8bc0dabdcda6744e0542bfb801d50305b2f6acf823b3d4e7ba",
    15: "2b2c15e1523695d748a2f56b3b81d59d23467b300f1879585be61f0addacdc45",
    16: "2349a6f8251156cbfade78ada6bd1e0c961a56847def4d288b6fdbd740016bff",
    17: "eeff9f22efbb6af437e9bb4a5466ddc607a9d0c954e14a4a90461688896b9e2b",
    18: "d0c08f76798cac51345c195a01a2bea21bc577cfa9d857bbc6627ee41cb0b2b6",
}


def test_modp_primes_match_the_rfcs() -> None:
    assert modp.prime(2) == int.from_bytes(_h(RFC7296_MODP1024), "big")
    assert modp.prime(14) == int.from_bytes(_h(RFC3526_MODP2048), "big")
    for group, digest in RFC3526_SHA256.items():
        p = modp.prime(group)
        assert p.bit_length() == modp.RFC_GROUPS[group][0]
        assert hashlib.sha256(format(p, "X").encode()).hexdigest() == digest


def _probable_prime(n: int, rounds: int = 4) -> bool:
    rng = random.Random(n)
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize("group", [5, 14, 15])
def test_modp_primes_are_safe_primes(group: int) -> None:
    p = modp.prime(group)
    assert _probable_prime(p) and _probable_prime((p - 1) // 2)


def test_modp_exchange_and_padding() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the deprecation warning must stay inside modp
        a = key_exchange(14)
        b = key_exchange(14)
        assert len(a.public_bytes) == 256
        s = a.shared_secret(b.public_bytes)
    assert s == b.shared_secret(a.public_bytes) and len(s) == 256
    # deterministic: x = 2 gives y = 4; the secret is left-padded to len(p)
    c = key_exchange(14, private=2)
    assert int.from_bytes(c.public_bytes, "big") == 4
    p = modp.prime(14)
    peer = key_exchange(14, private=3)  # y = 8, secret = 8^2 = 64
    assert c.shared_secret(peer.public_bytes) == (64).to_bytes(256, "big")
    assert p.bit_length() == 2048


@pytest.mark.parametrize("bad", [
    b"\x00" * 256, (1).to_bytes(256, "big"), (modp.prime(14) - 1).to_bytes(256, "big"),
    modp.prime(14).to_bytes(256, "big"), b"\x02" * 255,
])
def test_modp_rejects_bad_peer_values(bad: bytes) -> None:
    with pytest.raises(KeyExchangeError):
        key_exchange(14, private=5).shared_secret(bad)


def test_rfc5903_p256() -> None:
    i = 0xC88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433
    r = 0xC6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53
    gi = _h("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
            "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3")
    gr = _h("D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
            "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB")
    gir = _h("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE")
    ki = key_exchange(19, private=i)
    kr = key_exchange(19, private=r)
    assert ki.public_bytes == gi and kr.public_bytes == gr  # x || y, no 0x04
    assert ki.shared_secret(gr) == gir == kr.shared_secret(gi)


@pytest.mark.parametrize("group", [19, 20, 21])
def test_ecp_rejects_bad_points(group: int) -> None:
    k = key_exchange(group)
    good = key_exchange(group).public_bytes
    n = len(good) // 2
    off_curve = good[:-1] + bytes([good[-1] ^ 1])
    for bad in (good[:-1], good + b"\0", off_curve, bytes(2 * n), b"\xff" * (2 * n)):
        with pytest.raises(KeyExchangeError):
            k.shared_secret(bad)


def test_rfc7748_x25519() -> None:
    a = key_exchange(31, private=_h(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    b = key_exchange(31, private=_h(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
    assert a.public_bytes == _h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert b.public_bytes == _h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = _h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert a.shared_secret(b.public_bytes) == shared == b.shared_secret(a.public_bytes)


def test_rfc7748_x448() -> None:
    a = key_exchange(32, private=_h(
        "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d"
        "d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"))
    b_pub = _h("3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430"
               "27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609")
    assert a.public_bytes == _h("9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c"
                                "22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0")
    assert a.shared_secret(b_pub) == _h(
        "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b"
        "b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d")


@pytest.mark.parametrize(("group", "size"), [(31, 32), (32, 56)])
def test_ecx_rejects_bad_values(group: int, size: int) -> None:
    k = key_exchange(group)
    with pytest.raises(KeyExchangeError):
        k.shared_secret(bytes(size))  # low-order point: all-zero secret
    with pytest.raises(KeyExchangeError):
        k.shared_secret(bytes(size - 1))


@pytest.mark.parametrize("group", [36, 37])
def test_mlkem_round_trip(group: int) -> None:
    init = key_exchange(group)
    ciphertext, secret = respond(group, init.public_bytes)
    assert init.shared_secret(ciphertext) == secret and len(secret) == 32
    with pytest.raises(KeyExchangeError):
        init.shared_secret(ciphertext[:-1])
    with pytest.raises(KeyExchangeError):
        respond(group, init.public_bytes[:-1])


def test_respond_for_dh_and_unsupported_groups() -> None:
    init = key_exchange(31)
    pub, secret = respond(31, init.public_bytes)
    assert init.shared_secret(pub) == secret
    for group in (0, 2, 22, 99):
        with pytest.raises(KeyExchangeError):
            key_exchange(group)
