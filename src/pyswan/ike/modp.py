"""Finite-field Diffie-Hellman (MODP groups 5, 14-18, RFC 3526).

This is the only module that touches FFDH in ``cryptography``: the API is
deprecated there (``CryptographyDeprecationWarning``, pyca/cryptography
#15171) and announced to move to ``cryptography.hazmat.decrepit``.  We try
the decrepit location first, and silence the deprecation warning for our own
import only.

The primes are not pasted in: RFC 3526 defines each one as

    p = 2^n - 2^(n-64) - 1 + 2^64 * ( floor(2^(n-130) * pi) + k )

and we evaluate that formula (pi by Machin's formula in integer arithmetic)
once per group, on first use.  The tests check the results against the RFC
text and for safe primality.
"""

from __future__ import annotations

import warnings
from functools import cache, lru_cache
from typing import Any

# The warning fires on attribute access to the ``dh`` module (a module with
# deprecations), not on the key objects: take the three classes once, here,
# and no FFDH call later warns (no per-call catch_warnings, which is not
# thread-safe and would race in helper threads).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:  # the future home of FFDH
        from cryptography.hazmat.decrepit.asymmetric import dh as _dh  # type: ignore
    except ImportError:  # cryptography < 53
        from cryptography.hazmat.primitives.asymmetric import dh as _dh
    _DHParameterNumbers = _dh.DHParameterNumbers
    _DHPublicNumbers = _dh.DHPublicNumbers
    _DHPrivateNumbers = _dh.DHPrivateNumbers

#: group id -> (modulus bits, k) from RFC 3526 (and RFC 7296 App. B for 1, 2)
RFC_GROUPS: dict[int, tuple[int, int]] = {
    1: (768, 149686),
    2: (1024, 129093),
    5: (1536, 741804),
    14: (2048, 124476),
    15: (3072, 1690314),
    16: (4096, 240904),
    17: (6144, 929484),
    18: (8192, 4743158),
}

GENERATOR = 2


def _arctan_inv(x: int, one: int) -> int:
    """arctan(1/x) scaled by ``one`` (Taylor series, integer arithmetic)."""
    total = term = one // x
    x2 = x * x
    n = 1
    sign = -1
    while term:
        term //= x2
        n += 2
        total += sign * (term // n)
        sign = -sign
    return total


@lru_cache(maxsize=1)
def _pi_fixed(bits: int) -> int:
    """floor(pi * 2^bits), computed with 64 guard bits."""
    guard = 64
    one = 1 << (bits + guard)
    pi = 16 * _arctan_inv(5, one) - 4 * _arctan_inv(239, one)
    return pi >> guard


@cache
def prime(group: int) -> int:
    """The MODP prime of an IKE group, from the RFC 3526 formula."""
    n, k = RFC_GROUPS[group]
    # one pi evaluation serves every group (floor of a shifted floor is exact)
    pi_shifted = _pi_fixed(8192 - 130) >> ((8192 - 130) - (n - 130))
    return (1 << n) - (1 << (n - 64)) - 1 + (1 << 64) * (pi_shifted + k)


def prime_length(group: int) -> int:
    return RFC_GROUPS[group][0] // 8


@cache
def _parameters(group: int) -> Any:
    # building parameters costs ~10-15 us; build once per group
    return _DHParameterNumbers(prime(group), GENERATOR).parameters()


class ModpError(ValueError):
    """An invalid MODP public value."""


class ModpPrivate:
    """One side of a MODP exchange: a private exponent and its public value."""

    __slots__ = ("group", "_key", "public_bytes", "_plen")

    def __init__(self, group: int, private_value: int | None = None) -> None:
        self.group = group
        self._plen = prime_length(group)
        params = _parameters(group)
        if private_value is None:
            key = params.generate_private_key()
        else:
            pub = _DHPublicNumbers(pow(GENERATOR, private_value, prime(group)),
                                   params.parameter_numbers())
            key = _DHPrivateNumbers(private_value, pub).private_key()
        y = key.public_key().public_numbers().y
        self._key = key
        self.public_bytes = y.to_bytes(self._plen, "big")

    def shared_secret(self, peer: bytes) -> bytes:
        """g^xy mod p, left-padded to the length of p (RFC 7296 §2.14)."""
        plen = self._plen
        if len(peer) != plen:
            raise ModpError(f"MODP{plen * 8} public value has {len(peer)} octets, "
                            f"expected {plen}")
        y = int.from_bytes(peer, "big")
        p = prime(self.group)
        # RFC 6989 §2.1: 1 < y < p-1
        if y <= 1 or y >= p - 1:
            raise ModpError(f"MODP{plen * 8} public value out of range")
        try:
            peer_key = _DHPublicNumbers(
                y, _parameters(self.group).parameter_numbers()).public_key()
            secret = self._key.exchange(peer_key)
        except ValueError as e:
            raise ModpError(f"MODP{plen * 8} exchange failed: {e}") from None
        if len(secret) < plen:
            secret = secret.rjust(plen, b"\0")
        return secret
