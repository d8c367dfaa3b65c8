"""AUTH payloads: computing ours and checking the peer's (RFC 7296 2.15, RFC 7619).

PSK (authby=secret) and NULL are implemented.  Signature methods (RSA, ECDSA, EdDSA from
raw keys or certificates) plug in here: ``Credentials`` grows ``private_key(policy)`` and
``peer_keys(policy, peer_id)``, and :func:`make_auth` / :func:`check_auth` call
``pyswan.ike.auth.sign`` / ``verify`` with them.  Until then such connections fail cleanly
with a log line (AUTHENTICATION_FAILED towards the peer).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ..auth import signed_octets
from ..codec import AUTH
from ..constants import AuthMethod
from ..prf import prf
from .policy import Identity
from .sa import IkeSa

if TYPE_CHECKING:
    from .engine import Engine

# Libreswan's human names for the method we used (the "sent IKE_AUTH request ... with X")
METHOD_TEXT = {AuthMethod.PSK: "shared-key-mac", AuthMethod.NULL: "null",
               AuthMethod.DIGITAL_SIGNATURE: "digital-signature",
               AuthMethod.RSA: "RSA-digital-signature"}
_METHOD_FOR = {"secret": AuthMethod.PSK, "null": AuthMethod.NULL}
_SIGNATURE_AUTHBY = {"rsasig", "ecdsa", "eddsa"}


_KEY_PAD = b"Key Pad for IKEv2"
_PADDED: dict[tuple[str, bytes], bytes] = {}  # (PRF, PSK) -> prf(PSK, "Key Pad for IKEv2")


def psk_mac(prf_alg: object, psk: bytes, octets: bytes) -> bytes:
    """prf(prf(PSK, "Key Pad for IKEv2"), octets) with the inner PRF remembered per PSK."""
    key = (prf_alg.fqn, psk)  # type: ignore[attr-defined]
    padded = _PADDED.get(key)
    if padded is None:
        if len(_PADDED) > 4096:
            _PADDED.clear()
        padded = _PADDED[key] = prf(prf_alg, psk, _KEY_PAD)  # type: ignore[arg-type]
    return prf(prf_alg, padded, octets)  # type: ignore[arg-type]


class AuthFailure(Exception):
    """Authentication cannot be done or did not verify; ``str()`` is the log line."""


def my_octets(sa: IkeSa, id_body: bytes) -> bytes:
    """Our signed octets: our first message, the peer's nonce, prf(SK_p, our ID)."""
    if sa.is_initiator:
        return signed_octets(sa.init_request, sa.nr, sa.prf, sa.sk_pi, id_body)
    return signed_octets(sa.init_response, sa.ni, sa.prf, sa.sk_pr, id_body)


def peer_octets(sa: IkeSa, id_body: bytes) -> bytes:
    if sa.is_initiator:
        return signed_octets(sa.init_response, sa.ni, sa.prf, sa.sk_pr, id_body)
    return signed_octets(sa.init_request, sa.nr, sa.prf, sa.sk_pi, id_body)


def _psk(eng: Engine, sa: IkeSa, peer: Identity | None) -> bytes:
    policy = sa.policy
    key = eng.credentials.psk(policy.local_id, peer if peer is not None else policy.remote_id)
    if key is None:
        who = (peer or policy.remote_id)
        raise AuthFailure(f"authentication failed: no PSK found for '{policy.local_id}' and "
                          f"'{who if who is not None else '%any'}'")
    return key


def make_auth(eng: Engine, sa: IkeSa, peer: Identity | None = None) -> AUTH:
    """Our AUTH payload over our signed octets."""
    policy = sa.policy
    method = _METHOD_FOR.get(policy.local_auth)
    if method is None:
        raise AuthFailure(f"authby={policy.local_auth} is not supported by this engine yet")
    octets = my_octets(sa, policy.local_id.body())
    key = b"" if method == AuthMethod.NULL else _psk(eng, sa, peer)
    return AUTH(method, psk_mac(sa.prf, key, octets))


def check_auth(eng: Engine, sa: IkeSa, peer: Identity, auth: AUTH) -> str:
    """Verify the peer's AUTH; return how it authenticated (for the established line)."""
    policy = sa.policy
    expected_method = _METHOD_FOR.get(policy.remote_auth)
    if policy.remote_auth in _SIGNATURE_AUTHBY:
        raise AuthFailure(f"authby={policy.remote_auth} is not supported by this engine yet")
    if expected_method is None or auth.method != expected_method:
        got = METHOD_TEXT.get(auth.method, str(auth.method))  # type: ignore[call-overload]
        raise AuthFailure(f"authentication failed: peer used {got} but the connection "
                          f"requires authby={policy.remote_auth}")
    key = b"" if expected_method == AuthMethod.NULL else _psk(eng, sa, peer)
    octets = peer_octets(sa, peer.body())
    if not hmac.compare_digest(psk_mac(sa.prf, key, octets), auth.data):
        raise AuthFailure("authentication failed: computed hash does not match hash "
                          f"received from peer {peer.type_name} '{peer}'")
    authby = "secret" if expected_method == AuthMethod.PSK else "null"
    return f"authby={authby} and {peer.type_name} '{peer}'"
