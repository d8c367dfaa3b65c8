"""PRFs and integrity MACs: HMAC (RFC 2104/4868), AES-XCBC (RFC 3566/4434),
AES-CMAC (RFC 4493/4494/4615), and prf+ (RFC 7296 §2.13).

``cryptography`` has no AES-XCBC, so it is built here on AES (two cipher
calls per message: CBC-MAC over all full blocks but the last, then one ECB
block).  HMAC uses the stdlib: ``hmac.digest`` is C code and as fast as
``cryptography``'s HMAC; keyed objects are pre-built once and ``copy()``-ed
per message so the key schedule is not redone (cheap per SA, hot per packet).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from . import algorithms as A

_ZERO16 = bytes(16)

KeyedFn = Callable[[bytes], bytes]


# ------------------------------------------------------------------ AES-XCBC

def _ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


class AesXcbc:
    """AES-XCBC-MAC (RFC 3566) with its derived keys K1, K2, K3 precomputed."""

    __slots__ = ("_k1", "_k2", "_k3")

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("AES-XCBC-MAC needs a 128-bit key")
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        derived = enc.update(b"\x01" * 16 + b"\x02" * 16 + b"\x03" * 16)
        self._k1 = derived[:16]
        self._k2 = derived[16:32]
        self._k3 = derived[32:]

    def mac(self, msg: bytes) -> bytes:
        """The full 128-bit XCBC-MAC of ``msg``."""
        n = len(msg)
        if n and n % 16 == 0:
            head, last, k = msg[:-16], msg[-16:], self._k2
        else:
            cut = n - n % 16
            head = msg[:cut]
            last = msg[cut:] + b"\x80" + bytes(15 - n % 16)
            k = self._k3
        if head:
            # CBC-MAC of the leading full blocks: the last ciphertext block
            enc = Cipher(algorithms.AES(self._k1), modes.CBC(_ZERO16)).encryptor()
            e_prev = enc.update(head)[-16:]
            last = _xor16(last, e_prev)
        return _ecb(self._k1, _xor16(last, k))


def aes_xcbc_mac(key: bytes, msg: bytes) -> bytes:
    return AesXcbc(key).mac(msg)


def _xcbc_prf_key(key: bytes) -> bytes:
    # RFC 4434 §2: shorter keys are zero-padded, longer ones are hashed down
    # with AES-XCBC-PRF-128 under the all-zero key.
    if len(key) == 16:
        return key
    if len(key) < 16:
        return key + bytes(16 - len(key))
    return AesXcbc(_ZERO16).mac(key)


def aes_xcbc_prf128(key: bytes, msg: bytes) -> bytes:
    """AES-XCBC-PRF-128 (RFC 4434), any key length."""
    return AesXcbc(_xcbc_prf_key(key)).mac(msg)


# ------------------------------------------------------------------ AES-CMAC

def aes_cmac(key: bytes, msg: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def _cmac_prf_key(key: bytes) -> bytes:
    # RFC 4615 §3: any key that is not exactly 128 bits is first run through
    # AES-CMAC under the all-zero key (shorter keys too, unlike RFC 4434)
    return key if len(key) == 16 else aes_cmac(_ZERO16, key)


def aes_cmac_prf128(key: bytes, msg: bytes) -> bytes:
    """AES-CMAC-PRF-128 (RFC 4615), any key length."""
    return aes_cmac(_cmac_prf_key(key), msg)


# ----------------------------------------------------------------------- PRF

def resolve_prf(prf: A.Prf | int) -> A.Prf:
    if isinstance(prf, A.Prf):
        return prf
    desc = A.prf_by_id(prf)
    if desc is None:
        raise ValueError(f"unsupported PRF transform {prf}")
    return desc


def keyed_prf(prf: A.Prf | int, key: bytes) -> KeyedFn:
    """``data -> prf(key, data)`` with the key schedule done once."""
    desc = resolve_prf(prf)
    if desc.mac == "hmac":
        base = hmac.new(key, digestmod=desc.hash_name)  # type: ignore[arg-type]

        def run(data: bytes) -> bytes:
            h = base.copy()
            h.update(data)
            return h.digest()

        return run
    if desc.mac == "xcbc":
        return AesXcbc(_xcbc_prf_key(key)).mac
    if desc.mac == "cmac":
        base_cmac = CMAC(algorithms.AES(_cmac_prf_key(key)))

        def run_cmac(data: bytes) -> bytes:
            c = base_cmac.copy()
            c.update(data)
            return c.finalize()

        return run_cmac
    raise ValueError(f"PRF {desc.fqn} has no implementation")


def prf(prf_alg: A.Prf | int, key: bytes, data: bytes) -> bytes:
    """One PRF invocation, ``prf(key, data)``."""
    desc = resolve_prf(prf_alg)
    if desc.mac == "hmac":
        return hmac.digest(key, data, desc.hash_name)  # type: ignore[arg-type]
    return keyed_prf(desc, key)(data)


def prf_plus(prf_alg: A.Prf | int, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (RFC 7296 §2.13): T1 | T2 | ... truncated to ``length`` octets."""
    run = keyed_prf(prf_alg, key)
    out: list[bytes] = []
    have = 0
    t = b""
    counter = 1
    while have < length:
        if counter > 255:
            raise ValueError("prf+ cannot produce more than 255 blocks")
        t = run(t + seed + bytes((counter,)))
        out.append(t)
        have += len(t)
        counter += 1
    return b"".join(out)[:length]


# ----------------------------------------------------------------- integrity

MacFn = Callable[..., bytes]


def keyed_integ(integ: A.Integ | int, key: bytes) -> MacFn:
    """``(*parts) -> truncated ICV`` over the concatenation of ``parts``."""
    desc = integ if isinstance(integ, A.Integ) else A.integ_by_id(integ)
    if desc is None:
        raise ValueError(f"unsupported integrity transform {integ}")
    if len(key) != desc.key_size:
        raise ValueError(f"{desc.fqn} needs a {desc.key_size}-octet key, got {len(key)}")
    n = desc.icv_size
    if desc.mac == "hmac":
        base = hmac.new(key, digestmod=desc.hash_name)  # type: ignore[arg-type]

        def run(*parts: bytes) -> bytes:
            h = base.copy()
            for p in parts:
                h.update(p)
            return h.digest()[:n]

        return run
    if desc.mac == "xcbc":
        x = AesXcbc(key)
        return lambda *parts: x.mac(b"".join(parts))[:n]
    if desc.mac == "cmac":
        base_cmac = CMAC(algorithms.AES(key))

        def run_cmac(*parts: bytes) -> bytes:
            c = base_cmac.copy()
            for p in parts:
                c.update(p)
            return c.finalize()[:n]

        return run_cmac
    raise ValueError(f"integrity algorithm {desc.fqn} has no implementation")
