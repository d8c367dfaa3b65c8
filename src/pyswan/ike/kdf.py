"""IKEv2 key derivation (RFC 7296 §2.13-2.18, RFC 9370 for additional KEs).

All lengths are in octets.  ``encr_key_bytes`` includes any salt/nonce the
cipher takes from KEYMAT (AES-GCM and AES-CTR +4, ChaCha20-Poly1305 +4):
use ``Encr.keymat_size(bits)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import algorithms as A
from .prf import prf, prf_plus, resolve_prf


@dataclass(frozen=True, slots=True)
class IkeKeys:
    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes
    skeyseed: bytes = b""

    def __repr__(self) -> str:  # never print key material by accident
        return "IkeKeys(<redacted>)"


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """Child SA KEYMAT, initiator-to-responder keys first (RFC 7296 §2.17)."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return "ChildKeys(<redacted>)"


def _nonce_key(desc: A.Prf, ni: bytes, nr: bytes) -> bytes:
    # RFC 7296 §2.14: for AES-XCBC-PRF-128 and AES-CMAC-PRF-128 only the first
    # 64 bits of Ni and of Nr key SKEYSEED (the full nonces still feed prf+).
    if desc.mac in ("xcbc", "cmac"):
        return ni[:8] + nr[:8]
    return ni + nr


def skeyseed(prf_alg: A.Prf | int, ni: bytes, nr: bytes, g_ir: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir)."""
    desc = resolve_prf(prf_alg)
    return prf(desc, _nonce_key(desc, ni, nr), g_ir)


def rekey_skeyseed(old_prf: A.Prf | int, sk_d_old: bytes, g_ir_new: bytes, ni: bytes,
                   nr: bytes, additional: tuple[bytes, ...] = ()) -> bytes:
    """SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr [| SK(1) ... SK(n)]).

    The old IKE SA's PRF is used (RFC 7296 §2.18: the rekeying exchange
    belongs to the old SA); ``additional`` are RFC 9370 ADDKE secrets.
    """
    return prf(old_prf, sk_d_old, b"".join((g_ir_new, ni, nr, *additional)))


def ike_keymat(prf_alg: A.Prf | int, seed_key: bytes, encr_key_bytes: int,
               integ_key_bytes: int, ni: bytes, nr: bytes, spi_i: bytes,
               spi_r: bytes) -> IkeKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni|Nr|SPIi|SPIr)."""
    desc = resolve_prf(prf_alg)
    p = desc.key_size
    e = encr_key_bytes
    a = integ_key_bytes
    total = 3 * p + 2 * a + 2 * e
    km = prf_plus(desc, seed_key, b"".join((ni, nr, spi_i, spi_r)), total)
    o = p
    sk_ai, o = km[o:o + a], o + a
    sk_ar, o = km[o:o + a], o + a
    sk_ei, o = km[o:o + e], o + e
    sk_er, o = km[o:o + e], o + e
    sk_pi, o = km[o:o + p], o + p
    return IkeKeys(km[:p], sk_ai, sk_ar, sk_ei, sk_er, sk_pi, km[o:o + p], seed_key)


def derive_ike_keys(prf_alg: A.Prf | int, encr_key_bytes: int, integ_key_bytes: int,
                    g_ir: bytes, ni: bytes, nr: bytes, spi_i: bytes,
                    spi_r: bytes) -> IkeKeys:
    """IKE_SA_INIT keys: SKEYSEED from the nonces and g^ir, then prf+."""
    seed = skeyseed(prf_alg, ni, nr, g_ir)
    return ike_keymat(prf_alg, seed, encr_key_bytes, integ_key_bytes, ni, nr, spi_i, spi_r)


def derive_rekey_ike_keys(old_prf: A.Prf | int, sk_d_old: bytes, new_prf: A.Prf | int,
                          encr_key_bytes: int, integ_key_bytes: int, g_ir_new: bytes,
                          ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes,
                          additional: tuple[bytes, ...] = ()) -> IkeKeys:
    """Keys of an IKE SA rekeyed by CREATE_CHILD_SA (new SPIs, new nonces)."""
    seed = rekey_skeyseed(old_prf, sk_d_old, g_ir_new, ni, nr, additional)
    return ike_keymat(new_prf, seed, encr_key_bytes, integ_key_bytes, ni, nr, spi_i, spi_r)


def intermediate_skeyseed(prf_alg: A.Prf | int, sk_d: bytes, sk_n: bytes, ni: bytes,
                          nr: bytes) -> bytes:
    """RFC 9370 §2.2.2: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)."""
    return prf(prf_alg, sk_d, b"".join((sk_n, ni, nr)))


def child_keymat(prf_alg: A.Prf | int, sk_d: bytes, ni: bytes, nr: bytes,
                 encr_key_bytes: int, integ_key_bytes: int,
                 g_ir_new: bytes | None = None,
                 additional: tuple[bytes, ...] = ()) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) [| SK(1)...]] | Ni | Nr) (RFC 7296 §2.17)."""
    seed = b"".join((g_ir_new or b"", *additional, ni, nr))
    e, a = encr_key_bytes, integ_key_bytes
    km = prf_plus(prf_alg, sk_d, seed, 2 * (e + a))
    return ChildKeys(km[:e], km[e:e + a], km[e + a:2 * e + a], km[2 * e + a:])
