"""Protection of the IKEv2 Encrypted (SK) payload (RFC 7296 §3.14, RFC 5282,
RFC 5930, RFC 7634).

The SK body is ``IV | ciphertext | ICV`` where the ciphertext covers
``plaintext | padding | pad length``.  ``prefix`` is the message from the
IKE header through the SK generic payload header (the caller must already
have written the final lengths into it, see ``body_length``):

* AEAD (AES-GCM, AES-CCM, ChaCha20-Poly1305): ``prefix`` is the associated
  data, the nonce is ``salt | IV`` with the salt taken from the end of the
  key material and an 8-octet explicit IV;
* otherwise the ICV is the truncated MAC of ``prefix | IV | ciphertext``
  (encrypt-then-MAC, verified before anything is decrypted).

Padding follows Libreswan: block ciphers pad to a full block (1 to block
size octets including the pad-length octet, filled 0, 1, 2, ...); stream
and AEAD modes add just the pad-length octet.  On input any padding that
fits is accepted (RFC 7296 §3.14).

``SkCrypto`` describes the negotiated suite; ``bind(ke, ka)`` returns an
``SkBound`` holding the per-SA objects (AEAD contexts, keyed MACs, CBC
contexts) built once, which is what the engine should keep per direction.

CBC without a new cipher context per message: a long-lived CBC encryptor
continues its chain from the previous message, so each message starts with
a fresh random block R; the first output block E(R xor previous) is random
and is sent as the IV, the rest is the normal CBC encryption under that IV.
A long-lived decryptor fed ``IV | ciphertext`` gives one garbage block and
then the plaintext (CBC decryption only looks one block back).  Standard
receivers see ordinary random-IV CBC.  An ``SkBound`` is therefore not
thread-safe; keep one per SA direction in the engine's thread.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from . import algorithms as A
from .prf import keyed_integ

try:  # TripleDES and Camellia moved to "decrepit" in cryptography 43+
    from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore
        Camellia,
        TripleDES,
    )


class IntegrityError(ValueError):
    """The SK payload failed authentication, or its padding/length is bad."""


_PADS = [bytes(range(n)) for n in range(256)]  # Libreswan's padding bytes 0,1,2,...
_CTR_ONE = b"\x00\x00\x00\x01"


def _block_algorithm(kind: str, key: bytes) -> algorithms.BlockCipherAlgorithm:
    if kind == "aes-cbc":
        return algorithms.AES(key)
    if kind == "3des-cbc":
        return TripleDES(key)
    if kind == "camellia-cbc":
        return Camellia(key)
    raise ValueError(kind)


class SkCrypto:
    """The negotiated SK suite (encryption + integrity), independent of keys."""

    __slots__ = ("encr", "integ", "key_bits", "encr_key_bytes", "integ_key_bytes",
                 "iv_size", "icv_size", "block", "aead")

    def __init__(self, encr: int | A.Encr, encr_keylen: int = 0,
                 integ: int | A.Integ | None = None) -> None:
        e = encr if isinstance(encr, A.Encr) else A.encr_by_id(encr)
        if e is None or e.cipher not in _SUPPORTED:
            raise ValueError(f"SK encryption {encr} is not supported")
        self.encr = e
        self.key_bits = encr_keylen or e.keydeflen
        if e.key_lengths and self.key_bits not in e.key_lengths:
            raise ValueError(f"{e.fqn} with key length {self.key_bits} invalid")
        self.encr_key_bytes = e.keymat_size(self.key_bits)
        self.aead = e.aead
        if self.aead:
            if integ not in (None, 0, A.INTEG_NONE):
                raise ValueError(f"AEAD {e.fqn} takes no integrity algorithm")
            self.integ = None
            self.integ_key_bytes = 0
            self.icv_size = e.icv_size
        else:
            i = integ if isinstance(integ, A.Integ) else (
                A.integ_by_id(integ) if integ is not None else None)
            if i is None or i is A.INTEG_NONE or not i.mac:
                raise ValueError(f"{e.fqn} needs an integrity algorithm")
            self.integ = i
            self.integ_key_bytes = i.key_size
            self.icv_size = i.icv_size
        self.iv_size = e.iv_size
        self.block = e.block_size if e.pad_to_block else 1

    def padded_length(self, plaintext_len: int) -> int:
        """Plaintext plus padding plus the pad-length octet."""
        b = self.block
        return plaintext_len + (b - plaintext_len % b if b > 1 else 1)

    def body_length(self, plaintext_len: int) -> int:
        """Octets of IV | ciphertext | ICV for a plaintext of this length."""
        return self.iv_size + self.padded_length(plaintext_len) + self.icv_size

    def bind(self, ke: bytes, ka: bytes | None = None) -> SkBound:
        return SkBound(self, ke, ka)

    def seal(self, ke: bytes, ka: bytes | None, prefix: bytes, plaintext: bytes,
             iv: bytes | None = None) -> bytes:
        return SkBound(self, ke, ka).seal(prefix, plaintext, iv)

    def open(self, ke: bytes, ka: bytes | None, prefix: bytes, body: bytes) -> bytes:
        return SkBound(self, ke, ka).open(prefix, body)


class SkBound:
    """An SkCrypto with keys: cipher contexts and keyed MACs built once."""

    __slots__ = ("suite", "_kind", "_key", "_salt", "_aead", "_mac", "_pad_block",
                 "_iv_size", "_icv", "_cbc_enc", "_cbc_dec")

    def __init__(self, suite: SkCrypto, ke: bytes, ka: bytes | None) -> None:
        if len(ke) != suite.encr_key_bytes:
            raise ValueError(f"{suite.encr.fqn} needs {suite.encr_key_bytes} octets of "
                             f"key material, got {len(ke)}")
        self.suite = suite
        kind = suite.encr.cipher
        self._kind = kind
        salt_len = suite.encr.salt_size
        self._key = ke[:len(ke) - salt_len]
        self._salt = ke[len(ke) - salt_len:]
        self._iv_size = suite.iv_size
        self._icv = suite.icv_size
        self._pad_block = suite.block
        self._aead: AESGCM | AESCCM | ChaCha20Poly1305 | None = None
        if kind == "aes-gcm":
            self._aead = AESGCM(self._key)
        elif kind == "chacha20-poly1305":
            self._aead = ChaCha20Poly1305(self._key)
        elif kind == "aes-ccm":
            self._aead = AESCCM(self._key, tag_length=suite.icv_size)
        self._cbc_enc = self._cbc_dec = None
        if kind in _CBC:
            zero = bytes(suite.iv_size)
            self._cbc_enc = Cipher(_block_algorithm(kind, self._key), modes.CBC(zero)).encryptor()
            self._cbc_dec = Cipher(_block_algorithm(kind, self._key), modes.CBC(zero)).decryptor()
        self._mac = None
        if suite.integ is not None:
            if ka is None:
                raise ValueError(f"{suite.integ.fqn} needs an integrity key")
            self._mac = keyed_integ(suite.integ, ka)

    def body_length(self, plaintext_len: int) -> int:
        return self.suite.body_length(plaintext_len)

    # -- sealing -----------------------------------------------------------

    def _pad(self, plaintext: bytes) -> bytes:
        b = self._pad_block
        n = b - len(plaintext) % b if b > 1 else 1
        return plaintext + _PADS[n - 1] + bytes((n - 1,))

    def seal(self, prefix: bytes, plaintext: bytes, iv: bytes | None = None) -> bytes:
        """The SK body ``IV | ciphertext | ICV`` protecting ``plaintext``.

        ``iv`` forces the IV (tests); by default it is random.
        """
        data = self._pad(plaintext)
        kind = self._kind
        if iv is None and self._cbc_enc is not None:
            n = self._iv_size
            out = self._cbc_enc.update(os.urandom(n) + data)
            iv, ct = out[:n], out[n:]
            return iv + ct + self._mac(prefix, iv, ct)  # type: ignore[misc]
        if iv is None:
            iv = os.urandom(self._iv_size)
        elif len(iv) != self._iv_size:
            raise ValueError(f"IV must be {self._iv_size} octets")
        if self._aead is not None:
            ct = self._aead.encrypt(self._salt + iv, data, prefix)
            if self._icv != 16 and kind == "aes-gcm":
                # a shortened GCM tag is a prefix of the full tag
                ct = ct[:len(ct) - 16 + self._icv]
            return iv + ct
        if kind == "aes-ctr":
            enc = Cipher(algorithms.AES(self._key),
                         modes.CTR(self._salt + iv + _CTR_ONE)).encryptor()
        else:
            enc = Cipher(_block_algorithm(kind, self._key), modes.CBC(iv)).encryptor()
        ct = enc.update(data) + enc.finalize()
        return iv + ct + self._mac(prefix, iv, ct)  # type: ignore[misc]

    # -- opening -----------------------------------------------------------

    def open(self, prefix: bytes, body: bytes) -> bytes:
        """The plaintext of an SK body; ``IntegrityError`` if it does not verify."""
        ivn, icv = self._iv_size, self._icv
        if len(body) < ivn + icv + 1:
            raise IntegrityError("SK payload too short")
        iv = body[:ivn]
        kind = self._kind
        if self._aead is not None:
            ct = body[ivn:]
            nonce = self._salt + iv
            try:
                if kind == "aes-gcm" and icv != 16:
                    dec = Cipher(algorithms.AES(self._key),
                                 modes.GCM(nonce, ct[-icv:], min_tag_length=icv)).decryptor()
                    dec.authenticate_additional_data(prefix)
                    data = dec.update(ct[:-icv]) + dec.finalize()
                else:
                    data = self._aead.decrypt(nonce, ct, prefix)
            except InvalidTag:
                raise IntegrityError("SK payload failed AEAD authentication") from None
        else:
            ct = body[ivn:len(body) - icv]
            if not hmac.compare_digest(self._mac(prefix, iv, ct),  # type: ignore[misc]
                                       body[len(body) - icv:]):
                raise IntegrityError("SK payload integrity check failed")
            if kind == "aes-ctr":
                dec = Cipher(algorithms.AES(self._key),
                             modes.CTR(self._salt + iv + _CTR_ONE)).decryptor()
                data = dec.update(ct) + dec.finalize()
            else:
                if not ct or len(ct) % self._pad_block:
                    raise IntegrityError("SK payload not a multiple of the block size")
                data = self._cbc_dec.update(iv + ct)[ivn:]  # type: ignore[union-attr]
        if not data:
            raise IntegrityError("SK payload has no pad length")
        pad = data[-1] + 1
        if pad > len(data):
            raise IntegrityError("SK payload padding longer than the payload")
        return data[:len(data) - pad]


_CBC = frozenset({"aes-cbc", "3des-cbc", "camellia-cbc"})
_SUPPORTED = frozenset({"aes-gcm", "aes-ccm", "chacha20-poly1305", "aes-ctr", "aes-cbc",
                        "3des-cbc", "camellia-cbc"})
