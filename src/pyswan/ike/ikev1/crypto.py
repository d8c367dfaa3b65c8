"""IKEv1 key derivation, IVs and authentication hashes (RFC 2409 sections 5, 5.5, 5.7,
appendix B).

Everything here is a pure function of its inputs; the PRF is HMAC with the negotiated
hash (Libreswan negotiates no separate PRF attribute) and the IV hash is the bare hash.

Notation follows RFC 2409: ``*_b`` are payload bodies without the generic header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .. import algorithms as A
from ..prf import keyed_prf, prf

try:  # TripleDES and Camellia moved to "decrepit" in cryptography 43+
    from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore
        Camellia,
        TripleDES,
    )


class DecryptError(ValueError):
    """Ciphertext that is not a whole number of cipher blocks."""


# ------------------------------------------------------------------ SKEYID


def skeyid_psk(prf_alg: A.Prf, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """SKEYID = prf(pre-shared-key, Ni_b | Nr_b)."""
    return prf(prf_alg, psk, ni_b + nr_b)


def skeyid_sig(prf_alg: A.Prf, ni_b: bytes, nr_b: bytes, gxy: bytes) -> bytes:
    """SKEYID = prf(Ni_b | Nr_b, g^xy) (signature authentication)."""
    return prf(prf_alg, ni_b + nr_b, gxy)


@dataclass(frozen=True, slots=True)
class Skeyids:
    skeyid: bytes
    d: bytes
    a: bytes
    e: bytes

    def __repr__(self) -> str:  # keys never reach logs
        return "Skeyids(...)"


def skeyids(prf_alg: A.Prf, skeyid: bytes, gxy: bytes, cky_i: bytes, cky_r: bytes
            ) -> Skeyids:
    """SKEYID_d, _a and _e, each chained from the previous one."""
    run = keyed_prf(prf_alg, skeyid)
    tail = gxy + cky_i + cky_r
    d = run(tail + b"\x00")
    a = run(d + tail + b"\x01")
    e = run(a + tail + b"\x02")
    return Skeyids(skeyid, d, a, e)


def encryption_key(prf_alg: A.Prf, skeyid_e: bytes, size: int) -> bytes:
    """The cipher key: SKEYID_e truncated, or expanded when too short (appendix B:
    K1 = prf(SKEYID_e, 0), K2 = prf(SKEYID_e, K1), ...; the 0 is one zero octet)."""
    if len(skeyid_e) >= size:
        return skeyid_e[:size]
    run = keyed_prf(prf_alg, skeyid_e)
    out = k = run(b"\x00")
    while len(out) < size:
        k = run(k)
        out += k
    return out[:size]


# ------------------------------------------------------------------ IVs


def iv_hash(prf_alg: A.Prf, data: bytes) -> bytes:
    return hashlib.new(prf_alg.hash_name or "sha1", data).digest()


def phase1_iv(prf_alg: A.Prf, gxi: bytes, gxr: bytes, block: int) -> bytes:
    """IV = hash(g^xi | g^xr), truncated to the cipher block."""
    return iv_hash(prf_alg, gxi + gxr)[:block]


def phase2_iv(prf_alg: A.Prf, phase1_last: bytes, message_id: int, block: int) -> bytes:
    """A new exchange's IV: hash(last phase 1 CBC block | M-ID) (RFC 2409 appendix B)."""
    return iv_hash(prf_alg, phase1_last + message_id.to_bytes(4, "big"))[:block]


# ------------------------------------------------------------------ CBC


def _cipher(encr: A.Encr, key: bytes) -> algorithms.BlockCipherAlgorithm:
    if encr.cipher == "aes-cbc":
        return algorithms.AES(key)
    if encr.cipher == "3des-cbc":
        return TripleDES(key)
    if encr.cipher == "camellia-cbc":
        return Camellia(key)
    raise ValueError(f"{encr.fqn} cannot protect IKEv1 messages")


def encrypt(encr: A.Encr, key: bytes, iv: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, next IV).  The plaintext is zero padded to whole blocks."""
    block = encr.block_size
    pad = -len(plaintext) % block
    c = Cipher(_cipher(encr, key), modes.CBC(iv)).encryptor()
    out = c.update(plaintext + bytes(pad)) + c.finalize()
    return out, out[-block:]


def decrypt(encr: A.Encr, key: bytes, iv: bytes, ciphertext: bytes) -> tuple[bytes, bytes]:
    """(plaintext with any padding, next IV)."""
    block = encr.block_size
    if not ciphertext or len(ciphertext) % block:
        raise DecryptError(f"encrypted body of {len(ciphertext)} octets is not a whole "
                           f"number of {block}-octet blocks")
    c = Cipher(_cipher(encr, key), modes.CBC(iv)).decryptor()
    return c.update(ciphertext) + c.finalize(), ciphertext[-block:]


# ------------------------------------------------------------------ phase 1 hashes


def hash_i(prf_alg: A.Prf, skeyid: bytes, gxi: bytes, gxr: bytes, cky_i: bytes,
           cky_r: bytes, sai_b: bytes, idii_b: bytes) -> bytes:
    """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)."""
    return prf(prf_alg, skeyid, gxi + gxr + cky_i + cky_r + sai_b + idii_b)


def hash_r(prf_alg: A.Prf, skeyid: bytes, gxi: bytes, gxr: bytes, cky_i: bytes,
           cky_r: bytes, sai_b: bytes, idir_b: bytes) -> bytes:
    """HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)."""
    return prf(prf_alg, skeyid, gxr + gxi + cky_r + cky_i + sai_b + idir_b)


def nat_d(prf_alg: A.Prf, cky_i: bytes, cky_r: bytes, addr: bytes, port: int) -> bytes:
    """NAT-D = HASH(CKY-I | CKY-R | IP | Port) (RFC 3947 3.2)."""
    return iv_hash(prf_alg, cky_i + cky_r + addr + port.to_bytes(2, "big"))


# ------------------------------------------------------------------ phase 2 hashes


def _mid(message_id: int) -> bytes:
    return message_id.to_bytes(4, "big")


def qm_hash1(prf_alg: A.Prf, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr]); ``rest`` is the
    message's payloads after HASH, generic headers included."""
    return prf(prf_alg, skeyid_a, _mid(message_id) + rest)


def qm_hash2(prf_alg: A.Prf, skeyid_a: bytes, message_id: int, ni_b: bytes,
             rest: bytes) -> bytes:
    """HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])."""
    return prf(prf_alg, skeyid_a, _mid(message_id) + ni_b + rest)


def qm_hash3(prf_alg: A.Prf, skeyid_a: bytes, message_id: int, ni_b: bytes,
             nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)."""
    return prf(prf_alg, skeyid_a, b"\x00" + _mid(message_id) + ni_b + nr_b)


def info_hash(prf_alg: A.Prf, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """HASH(1) of an informational / transaction exchange: prf(SKEYID_a, M-ID | N/D...)."""
    return prf(prf_alg, skeyid_a, _mid(message_id) + rest)


def keymat(prf_alg: A.Prf, skeyid_d: bytes, protocol: int, spi: int, ni_b: bytes,
           nr_b: bytes, size: int, gqm_xy: bytes = b"") -> bytes:
    """KEYMAT for one direction (``spi`` is the receiver's SPI), expanded to ``size``:
    K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), Kn = prf(SKEYID_d,
    Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)."""
    run = keyed_prf(prf_alg, skeyid_d)
    seed = gqm_xy + bytes((protocol,)) + spi.to_bytes(4, "big") + ni_b + nr_b
    out = k = run(seed)
    while len(out) < size:
        k = run(k + seed)
        out += k
    return out[:size]
