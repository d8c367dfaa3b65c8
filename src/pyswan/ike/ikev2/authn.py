"""AUTH payloads: computing ours and checking the peer's (RFC 7296 2.15, RFC 7619,
RFC 7427, RFC 4754, RFC 8420).

PSK (authby=secret) and NULL use the PRF.  Signature methods (authby=rsasig, ecdsa, eddsa)
get their keys from the glue through ``Credentials``:

* ``local_key(policy) -> LocalKey``: our private key and the certificates to send
  (leaf first, then intermediates; empty for a raw key);
* ``peer_key(policy, peer, certs) -> PeerKey``: the key to verify the peer with, either
  preloaded (``rightrsasigkey=``, ``rightcert=``) or from the peer's CERT payloads after
  chain, CRL and ID validation;
* ``cert_request(policy, initiator) -> bytes | None``: CERTREQ data to send, if any.

Each raises :class:`CredentialError` with the lines pluto logs.

Which signature we make follows Libreswan: with the peer's SIGNATURE_HASH_ALGORITHMS
(RFC 7427) we use method 14 (Digital Signature: RSASSA-PSS, ECDSA or EdDSA) with the
strongest hash both allow; without it RSA falls back to method 1 (PKCS#1 v1.5 with SHA-1)
when ``authby`` allows it (``rsasig``, ``rsa-sha1``) and ECDSA to RFC 4754 methods 9-11.
A PKCS#1 v1.5 signature inside method 14 is refused, as Libreswan does (RFC 8247).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..auth import AuthenticationError, SignatureScheme, scheme_for_key, sign, signed_octets, verify
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
               AuthMethod.RSA: "RSA-digital-signature",
               9: "ECDSA-256-digital-signature", 10: "ECDSA-384-digital-signature",
               11: "ECDSA-521-digital-signature"}
_METHOD_FOR = {"secret": AuthMethod.PSK, "null": AuthMethod.NULL}
SIGNATURE_AUTHBY = frozenset({"rsasig", "ecdsa", "eddsa"})
_SIGNATURE_AUTHBY = SIGNATURE_AUTHBY
_SIG_METHODS = frozenset({1, 9, 10, 11, 14})
_HASH_NAME = {2: "sha256", 3: "sha384", 4: "sha512"}
_HASH_ID = {v: k for k, v in _HASH_NAME.items()}
_CURVE_METHOD = {"secp256r1": 9, "secp384r1": 10, "secp521r1": 11}


@dataclass(frozen=True, slots=True)
class LocalKey:
    """Our signing key, and the certificates (DER) to send with it."""

    private_key: Any
    certs: tuple[bytes, ...] = ()  # leaf first, then intermediates; () for a raw key


@dataclass(frozen=True, slots=True)
class PeerKey:
    """The key that verifies the peer, and how it was found (for the established line):
    ``using preloaded certificate '@east'`` or ``certificate '@east'`` plus
    ``issued by '...'``."""

    public_key: Any
    how: str
    issued_by: str = ""
    log_lines: tuple[str, ...] = ()


@dataclass
class CredentialError(Exception):
    """No usable key or certificate; ``lines`` are logged, the last one is the reason."""

    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.lines[-1] if self.lines else "authentication failed"


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
    """Authentication cannot be done or did not verify; ``str()`` is the log line.
    ``lines`` are logged before it."""

    def __init__(self, text: str, lines: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(text)
        self.lines = tuple(lines)


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


@dataclass(slots=True)
class OurAuth:
    """What we send to authenticate: the AUTH payload, the certificates to go before it,
    and the method text for the ``sent IKE_AUTH request ... with X`` line."""

    auth: AUTH
    certs: tuple[bytes, ...] = ()
    text: str = ""


def make_auth(eng: Engine, sa: IkeSa, peer: Identity | None = None) -> AUTH:
    """Our AUTH payload over our signed octets."""
    return our_auth(eng, sa, peer).auth


def our_auth(eng: Engine, sa: IkeSa, peer: Identity | None = None) -> OurAuth:
    policy = sa.policy
    if policy.local_auth in SIGNATURE_AUTHBY:
        return _sign(eng, sa)
    method = _METHOD_FOR.get(policy.local_auth)
    if method is None:
        raise AuthFailure(f"authby={policy.local_auth} is not supported by this engine")
    octets = my_octets(sa, policy.local_id.body())
    key = b"" if method == AuthMethod.NULL else _psk(eng, sa, peer)
    return OurAuth(AUTH(method, psk_mac(sa.prf, key, octets)), (), METHOD_TEXT[method])


def _local_key(eng: Engine, policy: Any) -> LocalKey:
    getter = getattr(eng.credentials, "local_key", None)
    if getter is None:
        raise AuthFailure(f"authby={policy.local_auth}: no private key available")
    try:
        return getter(policy)  # type: ignore[no-any-return]
    except CredentialError as e:
        raise AuthFailure(str(e), e.lines[:-1]) from None


def _kind(key: Any) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa"
    return "eddsa"


def choose_signature(policy: Any, peer_hashes: frozenset[int] | None, key: Any
                     ) -> tuple[int, SignatureScheme]:
    """The AUTH method and scheme we sign with (see the module notes)."""
    common = [h for h in policy.sig_hashes if peer_hashes and h in peer_hashes]
    kind = _kind(key)
    if kind == "rsa":
        if common and policy.rsa_pss:
            return 14, scheme_for_key(key, _HASH_NAME[common[0]], True)
        if policy.rsa_v15:
            return 1, SignatureScheme("PKCS#1 1.5 RSA", "sha1")
        raise AuthFailure("authentication failed: peer did not send a usable "
                          "SIGNATURE_HASH_ALGORITHMS and the connection does not allow "
                          "RSA PKCS#1 v1.5 (authby=rsa-sha1)")
    if kind == "ecdsa":
        if common:
            return 14, scheme_for_key(key, _HASH_NAME[common[0]])
        method = _CURVE_METHOD.get(key.curve.name)
        if method is None:
            raise AuthFailure(f"authentication failed: no RFC 4754 method for {key.curve.name}")
        return method, SignatureScheme("ECDSA", {9: "sha256", 10: "sha384",
                                                 11: "sha512"}[method])
    return 14, scheme_for_key(key, None)


def _sign(eng: Engine, sa: IkeSa) -> OurAuth:
    policy = sa.policy
    lk = _local_key(eng, policy)
    method, scheme = choose_signature(policy, sa.peer_hashes, lk.private_key)
    octets = my_octets(sa, policy.local_id.body())
    try:
        if method == 14:
            data = sign(lk.private_key, method, scheme.hash, octets,
                        rsa_pss=scheme.name == "RSASSA-PSS")
        else:
            data = sign(lk.private_key, method, None, octets)
    except ValueError as e:
        raise AuthFailure(f"authentication failed: cannot sign: {e}") from None
    if method == 14:
        text = f"digital-signature {scheme.name} with {scheme.hash_fqn}"
    else:
        text = METHOD_TEXT[method]
    certs = lk.certs
    if policy.send_cert == "never" or (policy.send_cert == "sendifasked"
                                       and not sa.peer_certreq):
        certs = ()
    return OurAuth(AUTH(method, data), certs, text)


def check_auth(eng: Engine, sa: IkeSa, peer: Identity, auth: AUTH,
               certs: list[bytes] | tuple[bytes, ...] = ()) -> str:
    """Verify the peer's AUTH; return the rest of ``authenticated peer ...``."""
    policy = sa.policy
    if policy.remote_auth in SIGNATURE_AUTHBY:
        return _check_signature(eng, sa, peer, auth, list(certs))
    expected_method = _METHOD_FOR.get(policy.remote_auth)
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
    return f"using authby={authby} and {peer.type_name} '{peer}'"


def _check_signature(eng: Engine, sa: IkeSa, peer: Identity, auth: AUTH,
                     certs: list[bytes]) -> str:
    policy = sa.policy
    method = auth.method
    if method not in _SIG_METHODS or (method == 1 and not policy.rsa_v15):
        got = METHOD_TEXT.get(method, str(method))  # type: ignore[call-overload]
        raise AuthFailure(f"authentication failed: peer used {got} but the connection "
                          f"requires authby={policy.remote_auth}")
    getter = getattr(eng.credentials, "peer_key", None)
    if getter is None:
        raise AuthFailure(f"authentication failed: no public key for {peer.type_name} "
                          f"'{peer}'")
    try:
        pk: PeerKey = getter(policy, peer, certs)
    except CredentialError as e:
        raise AuthFailure(str(e), e.lines[:-1]) from None
    octets = peer_octets(sa, peer.body())
    try:
        scheme = verify(pk.public_key, method, auth.data, octets)
    except AuthenticationError as e:
        raise AuthFailure(f"authentication failed: {_kind(pk.public_key).upper()} "
                          f"signature of {peer.type_name} '{peer}' using {pk.how} "
                          f"failed: {e}", pk.log_lines) from None
    if method == 14:
        if scheme.name == "PKCS#1 1.5 RSA":
            raise AuthFailure(f"authentication failed: {peer.type_name} '{peer}' used "
                              "PKCS#1 1.5 RSA with a digital signature (RFC 8247 requires "
                              "RSASSA-PSS)", pk.log_lines)
        if scheme.name != "EDDSA" and _HASH_ID.get(scheme.hash or "") not in \
                policy.sig_hashes:
            raise AuthFailure(f"authentication failed: {peer.type_name} '{peer}' signed with "
                              f"{scheme.hash_fqn}, which the connection does not allow",
                              pk.log_lines)
    for line in pk.log_lines:
        eng.log(sa.serial, line)
    desc = scheme.describe(pk.public_key)
    if scheme.name == "EDDSA":
        desc = "Ed448" if scheme.variant == "ed448" else "Ed25519"
    return f"{pk.how} and {desc} digital signature{pk.issued_by}"


# ------------------------------------------------------------------ IKE_SA_INIT helpers

def sighash_data(policy: Any) -> bytes | None:
    """SIGNATURE_HASH_ALGORITHMS notify data we send, or None (no signature auth, or
    authby=rsa-sha1 alone: PKCS#1 v1.5 needs no negotiation)."""
    if policy.local_auth not in SIGNATURE_AUTHBY and policy.remote_auth not in SIGNATURE_AUTHBY:
        return None
    if policy.local_auth == "rsasig" and not policy.rsa_pss and \
            policy.remote_auth in ("rsasig", "secret", "null"):
        return None
    ids = sorted(policy.sig_hashes)
    if "eddsa" in (policy.local_auth, policy.remote_auth):
        ids.append(5)
    return b"".join(h.to_bytes(2, "big") for h in ids)


def note_peer_init(sa: IkeSa, payloads: list[Any], notes: dict[int, Any]) -> None:
    """Remember the peer's SIGNATURE_HASH_ALGORITHMS and CERTREQ from IKE_SA_INIT."""
    got = notes.get(16431)  # SIGNATURE_HASH_ALGORITHMS
    if got is not None:
        data = got.data
        sa.peer_hashes = frozenset(int.from_bytes(data[i:i + 2], "big")
                                   for i in range(0, len(data) - 1, 2))
    if any(p.payload_type == 38 for p in payloads):
        sa.peer_certreq = True


def certreq_payload(eng: Engine, policy: Any, initiator: bool) -> Any:
    """A CERTREQ payload (X.509 signature, encoding 4) to send, or None."""
    if policy.remote_auth not in SIGNATURE_AUTHBY:
        return None
    getter = getattr(eng.credentials, "cert_request", None)
    data = getter(policy, initiator) if getter is not None else None
    if data is None:
        return None
    from ..codec import CERTREQ

    return CERTREQ(4, data)
