"""Key exchange for IKE: MODP, ECP (RFC 5903), Curve25519/448 (RFC 8031), ML-KEM.

``key_exchange(group)`` gives the initiator's half: ``.public_bytes`` is the KE
payload data, ``.shared_secret(peer)`` the secret once the peer's KE payload
arrives.  ``respond(group, peer)`` is the responder's single step, returning
``(public_bytes, shared_secret)``; for Diffie-Hellman it is the same as
generating a key and calling ``shared_secret``, for a KEM (ML-KEM) the
responder encapsulates to the initiator's key and sends the ciphertext.

Every peer value is validated and a bad one raises ``KeyExchangeError``
(mapped by the engine to INVALID_SYNTAX / a failed exchange).
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x448, x25519

from . import algorithms as A
from .modp import ModpError, ModpPrivate


class KeyExchangeError(ValueError):
    """The peer's key exchange data is unusable."""


class KeyExchange(Protocol):
    group: int
    public_bytes: bytes

    def shared_secret(self, peer: bytes) -> bytes: ...


_CURVES: dict[int, ec.EllipticCurve] = {
    19: ec.SECP256R1(),
    20: ec.SECP384R1(),
    21: ec.SECP521R1(),
}
_COORD = {19: 32, 20: 48, 21: 66}
_ECP_PRIMES = {
    19: 2**256 - 2**224 + 2**192 + 2**96 - 1,
    20: 2**384 - 2**128 - 2**96 + 2**32 - 1,
    21: 2**521 - 1,
}


class _Modp:
    __slots__ = ("group", "public_bytes", "_priv")

    def __init__(self, group: int, private: int | None) -> None:
        self._priv = ModpPrivate(group, private)
        self.group = group
        self.public_bytes = self._priv.public_bytes

    def shared_secret(self, peer: bytes) -> bytes:
        try:
            return self._priv.shared_secret(peer)
        except ModpError as e:
            raise KeyExchangeError(str(e)) from None


class _Ecp:
    __slots__ = ("group", "public_bytes", "_key")

    def __init__(self, group: int, private: int | None) -> None:
        curve = _CURVES[group]
        self.group = group
        if private is None:
            self._key = ec.generate_private_key(curve)
        else:
            self._key = ec.derive_private_key(private, curve)
        pub = self._key.public_key().public_numbers()
        n = _COORD[group]
        # RFC 5903 §7: the KE data is x || y, without the 0x04 point prefix
        self.public_bytes = pub.x.to_bytes(n, "big") + pub.y.to_bytes(n, "big")

    def shared_secret(self, peer: bytes) -> bytes:
        n = _COORD[self.group]
        if len(peer) != 2 * n:
            raise KeyExchangeError(f"DH{self.group} public value has {len(peer)} octets, "
                                   f"expected {2 * n}")
        p = _ECP_PRIMES[self.group]
        x = int.from_bytes(peer[:n], "big")
        y = int.from_bytes(peer[n:], "big")
        if x >= p or y >= p:
            raise KeyExchangeError(f"DH{self.group} public value coordinate out of range")
        try:
            peer_key = ec.EllipticCurvePublicKey.from_encoded_point(
                _CURVES[self.group], b"\x04" + peer)
            # RFC 5903 §9: the shared secret is the x coordinate only
            return self._key.exchange(ec.ECDH(), peer_key)
        except ValueError as e:
            raise KeyExchangeError(f"DH{self.group} public value is not on the curve: {e}"
                                   ) from None


class _Ecx:
    __slots__ = ("group", "public_bytes", "_key", "_pub_cls", "_size")

    def __init__(self, group: int, private: bytes | None) -> None:
        mod = x25519 if group == 31 else x448
        priv_cls = mod.X25519PrivateKey if group == 31 else mod.X448PrivateKey
        self._pub_cls = mod.X25519PublicKey if group == 31 else mod.X448PublicKey
        self._size = 32 if group == 31 else 56
        self.group = group
        self._key = (priv_cls.generate() if private is None
                     else priv_cls.from_private_bytes(private))
        self.public_bytes = self._key.public_key().public_bytes_raw()

    def shared_secret(self, peer: bytes) -> bytes:
        if len(peer) != self._size:
            raise KeyExchangeError(f"DH{self.group} public value has {len(peer)} octets, "
                                   f"expected {self._size}")
        try:
            secret = self._key.exchange(self._pub_cls.from_public_bytes(peer))
        except ValueError as e:  # OpenSSL refuses an all-zero result
            raise KeyExchangeError(f"DH{self.group} exchange failed: {e}") from None
        # RFC 8031 §2.3: MUST check for the all-zero value
        if not any(secret):
            raise KeyExchangeError(f"DH{self.group} shared secret is all zero")
        return secret


_MLKEM = {
    36: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey, A.ML_KEM_768),
    37: (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey, A.ML_KEM_1024),
}


class _MlKem:
    """Initiator side of ML-KEM: sends the encapsulation key, decapsulates."""

    __slots__ = ("group", "public_bytes", "_key", "_ct_size")

    def __init__(self, group: int, private: bytes | None) -> None:
        priv_cls, _, desc = _MLKEM[group]
        self.group = group
        self._key = (priv_cls.generate() if private is None
                     else priv_cls.from_seed_bytes(private))
        self.public_bytes = self._key.public_key().public_bytes_raw()
        self._ct_size = desc.responder_size

    def shared_secret(self, peer: bytes) -> bytes:
        if len(peer) != self._ct_size:
            raise KeyExchangeError(f"{_MLKEM[self.group][2].fqn} ciphertext has "
                                   f"{len(peer)} octets, expected {self._ct_size}")
        # decapsulation never fails: a bad ciphertext yields an unrelated secret
        return self._key.decapsulate(peer)


def _group_id(group: int | A.Ke) -> int:
    return group.ikev2_id if isinstance(group, A.Ke) else int(group)  # type: ignore[return-value]


def key_exchange(group: int | A.Ke, private: int | bytes | None = None) -> KeyExchange:
    """A fresh local key-exchange value for ``group`` (IKEv2 transform id).

    ``private`` injects a deterministic private key for tests: an int
    exponent/scalar for MODP/ECP, raw bytes for X25519/X448, a 64-octet
    seed for ML-KEM.
    """
    g = _group_id(group)
    desc = A.ke_by_id(g)
    if desc is None or desc.family == "none":
        raise KeyExchangeError(f"key exchange group {g} is not supported")
    family = desc.family
    if family == "modp":
        return _Modp(g, private)  # type: ignore[arg-type]
    if family == "ecp":
        return _Ecp(g, private)  # type: ignore[arg-type]
    if family == "ecx":
        return _Ecx(g, private)  # type: ignore[arg-type]
    return _MlKem(g, private)  # type: ignore[arg-type]


def respond(group: int | A.Ke, peer: bytes) -> tuple[bytes, bytes]:
    """The responder's step: ``(public_bytes to send, shared secret)``."""
    g = _group_id(group)
    desc = A.ke_by_id(g)
    if desc is not None and desc.family == "mlkem":
        if len(peer) != desc.size:
            raise KeyExchangeError(f"{desc.fqn} encapsulation key has {len(peer)} octets, "
                                   f"expected {desc.size}")
        try:
            pub = _MLKEM[g][1].from_public_bytes(peer)
        except ValueError as e:
            raise KeyExchangeError(f"{desc.fqn} encapsulation key invalid: {e}") from None
        secret, ciphertext = pub.encapsulate()
        return ciphertext, secret
    local = key_exchange(g)
    return local.public_bytes, local.shared_secret(peer)
