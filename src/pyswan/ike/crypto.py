"""One import for the IKE crypto: key exchange, PRFs, SK protection, keys, AUTH.

The pieces live in small modules (``modp``, ``dh``, ``prf``, ``cipher``,
``kdf``, ``auth``); this module only re-exports them.
"""

from __future__ import annotations

from .auth import (
    AuthenticationError,
    AuthMethod,
    HashAlgorithm,
    SignatureScheme,
    psk_auth,
    psk_verify,
    scheme_for_key,
    sign,
    signed_octets,
    verify,
)
from .cipher import IntegrityError, SkBound, SkCrypto
from .dh import KeyExchange, KeyExchangeError, key_exchange, respond
from .kdf import (
    ChildKeys,
    IkeKeys,
    child_keymat,
    derive_ike_keys,
    derive_rekey_ike_keys,
    ike_keymat,
    intermediate_skeyseed,
    rekey_skeyseed,
    skeyseed,
)
from .prf import (
    aes_cmac,
    aes_cmac_prf128,
    aes_xcbc_mac,
    aes_xcbc_prf128,
    keyed_integ,
    keyed_prf,
    prf,
    prf_plus,
)

__all__ = [
    "AuthMethod", "AuthenticationError", "ChildKeys", "HashAlgorithm", "IkeKeys",
    "IntegrityError", "KeyExchange", "KeyExchangeError", "SignatureScheme", "SkBound",
    "SkCrypto", "aes_cmac", "aes_cmac_prf128", "aes_xcbc_mac", "aes_xcbc_prf128",
    "child_keymat", "derive_ike_keys", "derive_rekey_ike_keys", "ike_keymat",
    "intermediate_skeyseed", "key_exchange", "keyed_integ", "keyed_prf", "prf",
    "prf_plus", "psk_auth", "psk_verify", "rekey_skeyseed", "respond", "scheme_for_key",
    "sign", "signed_octets", "skeyseed", "verify",
]
