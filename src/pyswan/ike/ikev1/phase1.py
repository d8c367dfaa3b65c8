"""Phase 1: Main Mode (6 messages) and Aggressive Mode (3 messages) with pre-shared keys
(RFC 2409 5.4) or RSA signatures (5.1, with CERT and CR payloads: ``sigauth.py``), NAT
detection (RFC 3947) and the vendor IDs Libreswan sends.

With signatures HASH_I/HASH_R become SIG_I/SIG_R, certificates go before them and
certificate requests as Libreswan places them (R2; I3 after our CERTs; Aggressive I1/R1).

Main Mode::

    I1  HDR, SA, VID...                    ->
                                           <- R1  HDR, SA, VID...
    I2  HDR, KE, Ni, NAT-D, NAT-D          ->
                                           <- R2  HDR, KE, Nr, NAT-D, NAT-D
    I3  HDR*, IDii, HASH_I                 ->
                                           <- R3  HDR*, IDir, HASH_R

Aggressive Mode::

    I1  HDR, SA, KE, Ni, IDii, VID...      ->
                          <- R1  HDR, SA, KE, Nr, IDir, HASH_R, NAT-D, NAT-D, VID...
    I2  HDR*, HASH_I, NAT-D, NAT-D         ->
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from .. import dh
from ..ikev2.actions import RC_FATAL, SaCreated
from ..ikev2.message import endpoint_text
from ..ikev2.policy import Endpoint, Identity, IdentityError, Policy
from ..ikev2.states import StateInfo
from ..x509dn import str_dn
from . import crypto as C
from . import informational, sigauth
from . import states as S
from .codec import (
    HEADER_SIZE,
    ID,
    KE,
    SA,
    Cert,
    CertRequest,
    Hash,
    Header,
    IsakmpDecodeError,
    IsakmpPayload,
    Message,
    NatD,
    Nonce,
    Notify,
    Proposal,
    Sig,
    VendorID,
    encode_message,
)
from .constants import (
    VID_DPD,
    VID_NATT_DRAFT_02N,
    VID_RFC3947,
    AuthMethod,
    CertEncoding,
    Exchange,
    IkeAttr,
    NotifyType,
    ProtocolId,
)
from .constants import Payload as PT
from .policy import aggressive, knob
from .proposals import (
    AUTH_NAMES,
    NoProposalChosen,
    accept_phase1,
    phase1_sa,
    select_phase1,
)
from .sa import INITIATOR, RESPONDER, IsakmpSa

if TYPE_CHECKING:
    from .engine import Engine

# ------------------------------------------------------------------ helpers


def _vids() -> list[IsakmpPayload]:
    return [VendorID(VID_DPD), VendorID(VID_RFC3947), VendorID(VID_NATT_DRAFT_02N)]


def _note_vids(sa: IsakmpSa, payloads: list[IsakmpPayload]) -> None:
    for p in payloads:
        if isinstance(p, VendorID):
            if p.data == VID_RFC3947:
                sa.peer_natt = True
            elif p.data == VID_DPD:
                sa.peer_dpd = True


def _first(payloads: list[IsakmpPayload], kind: type) -> object | None:
    for p in payloads:
        if isinstance(p, kind):
            return p
    return None


def _missing(engine: Engine, sa: IsakmpSa, payloads: list[IsakmpPayload],
             kinds: tuple[type, ...], clear: bool) -> bool:
    """Log (and in the clear, notify) when required payloads are absent."""
    absent = [k for k in kinds if _first(payloads, k) is None]
    if not absent:
        return False
    names = "+".join(PT(k.ptype).name for k in absent)  # type: ignore[attr-defined]
    engine.log(sa.serial, f"message for {sa.state.name} is missing payloads {names}")
    if clear:
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.PAYLOAD_MALFORMED)
    return True


def id_payload(identity: Identity) -> ID:
    return ID(identity.id_type, identity.data, 0, 0)


def peer_identity(p: ID) -> Identity:
    if p.protocol not in (0, 17) or p.port not in (0, 500):
        raise IdentityError(f"phase 1 ID bound to protocol {p.protocol} port {p.port}")
    return Identity.of(p.id_type, p.data)


def id_text(ident: Identity) -> str:
    """How Libreswan prints an ID; a DN as ``C=CA, O=..., CN=...``."""
    if ident.id_type == 9 and ident.text == ident.data.hex():  # a received DER_ASN1_DN
        try:
            return str_dn(ident.data)
        except ValueError:
            return ident.text
    return ident.text


def id_story(ident: Identity) -> str:
    return f"{ident.type_name}: '{id_text(ident)}'"


def _psk(engine: Engine, sa: IsakmpSa) -> bytes | None:
    pol = sa.policy
    psk = engine.credentials.psk(pol.local_id, pol.remote_id)
    if psk is None:
        engine.log(sa.serial, f"Can't authenticate: no preshared key found for "
                              f"`{pol.local_id}' and `{pol.remote_id or '%any'}'.  "
                              "Attribute OAKLEY_AUTHENTICATION_METHOD")
    return psk


def _natd(sa: IsakmpSa) -> list[IsakmpPayload]:
    """NAT-D for the peer's endpoint first, then ours (RFC 3947 3.2)."""
    if not sa.peer_natt or sa.choice is None:
        return []
    prf = sa.choice.prf
    return [NatD(C.nat_d(prf, sa.icookie, sa.rcookie, sa.remote[0].packed, sa.remote[1])),
            NatD(C.nat_d(prf, sa.icookie, sa.rcookie, sa.local[0].packed, sa.local[1]))]


def _check_natd(engine: Engine, sa: IsakmpSa, payloads: list[IsakmpPayload],
                local: Endpoint, remote: Endpoint) -> None:
    hashes = [p.data for p in payloads if isinstance(p, NatD)]
    if not sa.peer_natt or not hashes or sa.choice is None:
        return
    prf = sa.choice.prf
    mine = C.nat_d(prf, sa.icookie, sa.rcookie, local[0].packed, local[1])
    theirs = C.nat_d(prf, sa.icookie, sa.rcookie, remote[0].packed, remote[1])
    sa.nat_local = not hmac.compare_digest(hashes[0], mine)
    sa.nat_remote = theirs not in hashes[1:]
    if sa.nat_local or sa.nat_remote:
        who = " and ".join(w for w, on in (("I am behind NAT", sa.nat_local),
                                           ("peer behind NAT", sa.nat_remote)) if on)
        engine.log(sa.serial, f"NAT-Traversal: Result using RFC 3947 (NAT-Traversal) "
                              f"sender port {remote[1]}: {who}")


def _float(engine: Engine, sa: IsakmpSa) -> None:
    """After NAT detection IKE moves to the NAT-T ports (RFC 3947 4)."""
    if sa.nat_local or sa.nat_remote:
        pol = sa.policy
        engine.move(sa, (sa.local[0], pol.local_nat_port), (sa.remote[0], pol.remote_nat_port))


def _rsa(sa: IsakmpSa) -> bool:
    """Signature authentication: the chosen transform's method once known, else the
    connection's ``authby=``."""
    if sa.choice is not None:
        return sa.choice.auth in sigauth.RSA_METHODS
    return sigauth.uses_rsa(sa.policy)


def _need_psk(engine: Engine, sa: IsakmpSa) -> bool:
    """Look up the PSK when the method needs one; False when it is missing."""
    if _rsa(sa):
        return True
    sa.psk = _psk(engine, sa)
    return sa.psk is not None


def _derive(sa: IsakmpSa, gxy: bytes) -> None:
    c = sa.choice
    assert c is not None
    if c.auth in sigauth.RSA_METHODS:
        skeyid = C.skeyid_sig(c.prf, sa.ni, sa.nr, gxy)
    else:
        assert sa.psk is not None
        skeyid = C.skeyid_psk(c.prf, sa.psk, sa.ni, sa.nr)
    sa.keys = C.skeyids(c.prf, skeyid, gxy, sa.icookie, sa.rcookie)
    sa.enc_key = C.encryption_key(c.prf, sa.keys.e, c.key_size)
    sa.iv = C.phase1_iv(c.prf, sa.gxi, sa.gxr, c.encr.block_size)


# ------------------------------------------------------------------ signatures


def _peer_certs(payloads: list[IsakmpPayload]) -> list[bytes]:
    """The peer's X.509 certificates (DER) in the order they came.  A PKCS#7 wrapped
    bundle (RFC 4945 3.3.4: "SHOULD accept", some peers send their whole chain in one) is
    unwrapped; the validation puts the end certificate first."""
    out: list[bytes] = []
    for p in payloads:
        if type(p) is not Cert:
            continue
        if p.encoding == CertEncoding.X509_SIGNATURE:
            out.append(p.data)
        elif p.encoding == CertEncoding.PKCS7:
            out += _pkcs7_certs(p.data)
    return out


def _pkcs7_certs(data: bytes) -> list[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:  # not PKCS#7 (or no certificates): nothing usable in it
        return []
    return [c.public_bytes(Encoding.DER) for c in certs]


def _note_cert_requests(sa: IsakmpSa, payloads: list[IsakmpPayload]) -> None:
    """A CR naming a CA counts as a request (an empty one does not, as in Libreswan's
    decode_v1_certificate_request())."""
    if any(isinstance(p, CertRequest) and p.encoding == CertEncoding.X509_SIGNATURE
           and p.data for p in payloads):
        sa.peer_cr = True


def _peer_preloaded(sa: IsakmpSa) -> bool:
    return bool(knob(sa.policy, "peer_preloaded", False))


def _peer_ca(engine: Engine, sa: IsakmpSa) -> bytes:
    """``rightca=`` as a DER DN; ``%same`` (implied when unset) is the issuer of our own
    certificate; empty for ``%any`` or when there is nothing to name."""
    ca = knob(sa.policy, "peer_ca", None)
    if ca is not None:
        return bytes(ca)  # type: ignore[arg-type]
    if not _rsa(sa) or not knob(sa.policy, "local_cert", True):
        return b""
    try:
        certs = sigauth.local_key(engine.credentials, sa.policy).certs
    except sigauth.SigAuthError:
        return b""
    return sigauth.issuer_der(certs[0]) if certs else b""


def _cert_request(engine: Engine, sa: IsakmpSa) -> CertRequest:
    """A CR naming the CA we expect (empty when the connection names none)."""
    return CertRequest(CertEncoding.X509_SIGNATURE, _peer_ca(engine, sa))


def _sign(engine: Engine, sa: IsakmpSa, hash_value: bytes
          ) -> tuple[Sig, tuple[bytes, ...]] | None:
    """SIG over HASH_I/HASH_R and our certificates (none for a raw key)."""
    try:
        data, certs = sigauth.sign(engine.credentials, sa.policy, hash_value)
    except sigauth.SigAuthError as e:
        for line in e.lines:
            engine.log(sa.serial, line)
        engine.log(sa.serial, str(e))
        return None
    return Sig(data), certs


def _send_cert(sa: IsakmpSa, certs: tuple[bytes, ...]) -> bool:
    """sendcert=always, or sendifasked and the peer sent a CR naming a CA."""
    mode = getattr(sa.policy, "send_cert", "always")
    # a raw key (leftrsasigkey=) sends no certificate even when the store holds one
    if not certs or not knob(sa.policy, "local_cert", True):
        return False
    return mode == "always" or (mode == "sendifasked" and sa.peer_cr)


def _cert_payloads(engine: Engine, sa: IsakmpSa, certs: tuple[bytes, ...], *,
                   chain: bool, line: str = "I am sending my cert") -> list[IsakmpPayload]:
    """CERT payloads (Main Mode sends the CA chain too, Aggressive Mode only the leaf)."""
    if not _send_cert(sa, certs):
        return []
    engine.log(sa.serial, line)
    out: list[IsakmpPayload] = [Cert(CertEncoding.X509_SIGNATURE, certs[0])]
    if chain and len(certs) > 1:
        engine.log(sa.serial, "I am sending a CA cert chain")
        out += [Cert(CertEncoding.X509_SIGNATURE, c) for c in certs[1:]]
    return out


def _verify(engine: Engine, sa: IsakmpSa, peer: Identity, payloads: list[IsakmpPayload],
            hash_value: bytes) -> bool:
    """Check SIG_I/SIG_R with the peer's preloaded key or its certificate."""
    sig = _first(payloads, Sig)
    assert isinstance(sig, Sig)
    try:
        text, pk = sigauth.verify(engine.credentials, sa.policy, peer, _peer_certs(payloads),
                                  hash_value, sig.data, id_text(peer))
    except sigauth.SigAuthError as e:
        for line in e.lines:
            engine.log(sa.serial, line)
        engine.log(sa.serial, str(e))
        return False
    for line in pk.log_lines:
        engine.log(sa.serial, line)
    engine.log(sa.serial, f"authenticated peer {text}")
    return True


def _auth_payload(sa: IsakmpSa) -> type:
    return Sig if _rsa(sa) else Hash


def _hash_i(sa: IsakmpSa, idii_b: bytes) -> bytes:
    assert sa.choice is not None and sa.keys is not None
    return C.hash_i(sa.choice.prf, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie,
                    sa.sa_i_b, idii_b)


def _hash_r(sa: IsakmpSa, idir_b: bytes) -> bytes:
    assert sa.choice is not None and sa.keys is not None
    return C.hash_r(sa.choice.prf, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie,
                    sa.sa_i_b, idir_b)


def _reply(engine: Engine, sa: IsakmpSa, data_in: bytes, wire: bytes) -> None:
    """Send a response and remember the pair to answer retransmissions of ``data_in``."""
    sa.last_in, sa.last_out = data_in, wire
    engine.send(sa, wire)


def _request(engine: Engine, sa: IsakmpSa, data_in: bytes, wire: bytes, now: float) -> None:
    """Send an initiator message that expects an answer (retransmitted until then)."""
    sa.last_in, sa.last_out = data_in, wire
    engine.send(sa, wire)
    engine.start_retransmit(sa, wire, now)


def _check_peer_id(engine: Engine, sa: IsakmpSa, idp: ID) -> Identity | None:
    try:
        peer = peer_identity(idp)
    except IdentityError as e:
        engine.log(sa.serial, f"invalid peer ID: {e}")
        return None
    want = sa.policy.remote_id
    if want is not None and peer.key != want.key:
        engine.log(sa.serial, f"Peer ID {id_story(peer)} does not match the expected "
                              f"{id_story(want)}")
        return None
    return peer


def _refine(engine: Engine, sa: IsakmpSa, idp: ID) -> None:
    """Main Mode responder: the connection was picked by addresses and proposal before
    the initiator's ID was known; when that ID belongs to another connection between the
    same hosts that accepts the negotiated transform (and, with a PSK, has the same key,
    the one SKEYID came from), move to it (Libreswan's refine_host_connection)."""
    from ..ikev2.actions import PolicySwitched

    try:
        peer = peer_identity(idp)
    except IdentityError:
        return
    want = sa.policy.remote_id
    c = sa.choice
    if want is None or want.key == peer.key or c is None:
        return
    one = SA([Proposal(1, ProtocolId.ISAKMP, b"", [c.transform])])
    for other in engine.policies.candidates(sa.local[0], sa.remote[0]):
        if other is sa.policy or aggressive(other) or other.remote_id is None \
                or other.remote_id.key != peer.key \
                or sigauth.auth_method(other) != c.auth:
            continue
        try:
            select_phase1(one, other.ike, (c.auth,), other.ike_lifetime)
        except (NoProposalChosen, IsakmpDecodeError):
            continue
        if c.auth not in sigauth.RSA_METHODS and \
                engine.credentials.psk(other.local_id, other.remote_id) != sa.psk:
            continue
        engine.log(sa.serial, f'switched to "{other.name}"')
        sa.policy = other
        engine.emit(PolicySwitched(sa.serial, other))
        return


def _established(engine: Engine, sa: IsakmpSa, state: StateInfo, now: float) -> None:
    from ..ikev2.actions import IkeEstablished
    from . import transaction
    from .engine import DISCARD, EXPIRE, LIVENESS, REPLACE

    c = sa.choice
    assert c is not None and sa.peer_id is not None
    sa.established = True
    engine.forget_halfopen(sa)
    # with XAUTH the SA goes straight on to its XAUTH state, whose story Libreswan logs
    # in place of "ISAKMP SA established"
    if sa.is_initiator and knob(sa.policy, "xauth_client"):
        state = S.XAUTH_I0
    elif not sa.is_initiator and knob(sa.policy, "xauth_server"):
        state = S.XAUTH_R0
    engine.set_state(sa, state)
    engine.arm(sa, DISCARD, None)
    engine.stop_retransmit(sa)
    engine.log(sa.serial, f"{state.story} {c.story(AUTH_NAMES.get(c.auth, str(c.auth)))}")
    cipher = c.encr.fqn + (f"_{c.key_bits}" if c.key_bits else "")
    engine.emit(IkeEstablished(sa.serial, sa.peer_id.text,
                               f"{cipher}-{c.prf.fqn}-{c.ke.fqn}", c.lifetime))
    policy = sa.policy
    if sa.is_initiator and policy.rekey and c.lifetime > policy.rekey_margin \
            and policy.remote_addr is not None:
        engine.arm(sa, REPLACE, now + c.lifetime - policy.rekey_margin)
    else:
        engine.arm(sa, EXPIRE, now + c.lifetime)
    old = engine.isakmp_sas.get(sa.predecessor) if sa.predecessor else None
    if old is not None and not old.dying:  # a rekey: the old one goes, its IPsec SAs stay
        informational.delete_isakmp(engine, old, now, notify=True)
    if sa.policy.dpd_delay > 0 and sa.peer_dpd:
        engine.arm(sa, LIVENESS, now + sa.policy.dpd_delay)
    if sa.is_initiator:
        if not transaction.client_start(engine, sa, now):
            start_children(engine, sa, now)
    else:
        transaction.server_start(engine, sa, now)


def _initial_contact(engine: Engine, sa: IsakmpSa) -> None:
    """The peer restarted (RFC 2407 4.6.3.3): every older SA with it is stale."""
    assert sa.peer_id is not None
    for other in list(engine.isakmp_sas.values()):
        if other is not sa and not other.dying and other.peer_id is not None \
                and other.peer_id.key == sa.peer_id.key and other.remote[0] == sa.remote[0]:
            for child in list(other.children.values()):
                engine.teardown_ipsec(child, "initial contact")
            engine.teardown_isakmp(other, "initial contact",
                                   f"deleting ISAKMP SA ({other.state.story}): the peer "
                                   "sent INITIAL_CONTACT")


def start_children(engine: Engine, sa: IsakmpSa, now: float) -> None:
    """Phase 1 (and any XAUTH/ModeCfg) is done: run the Quick Modes waiting for it."""
    from . import quick

    pending, sa.pending_children = sa.pending_children, []
    for policy in pending:
        quick.initiate(engine, sa, policy, now, initiated=False, first=True)
    if not pending:
        engine.finish_initiate(sa, True)


# ------------------------------------------------------------------ initiator


def initiate(engine: Engine, policy: Policy, now: float, remote: Endpoint | None,
             replacing: IsakmpSa | None = None) -> IsakmpSa | None:
    """A new ISAKMP SA (then Quick Mode); ``replacing``: a rekey of that ISAKMP SA, which
    runs no Quick Mode (the IPsec SAs move over to the new one)."""
    if remote is None:
        if policy.remote_addr is None:
            engine.log(0, f"\"{policy.name}\": cannot initiate: the peer's address is "
                          "unknown")
            return None
        remote = (policy.remote_addr, policy.remote_port)
    aggr = aggressive(policy)
    state = S.AGGR_I1 if aggr else S.MAIN_I1
    sa = IsakmpSa(engine.next_serial(), INITIATOR, policy, state,
                  (policy.local_addr, policy.local_port), remote, engine.random_cookie(),
                  created=now, aggressive=aggr)
    engine.register(sa)
    engine.emit(SaCreated(sa.serial, "ike", 0, policy, INITIATOR, sa.local, sa.remote,
                          state))
    if replacing is None:
        sa.initiated = True
        sa.pending_children.append(policy)
    else:
        sa.predecessor = replacing.serial
        replacing.successor = sa.serial
    sent = phase1_sa(policy.ike, sigauth.auth_method(policy), policy.ike_lifetime)
    if aggr:
        return _aggr_initiate(engine, sa, sent, now)
    if not sent.proposals[0].transforms:
        engine.teardown_isakmp(sa, "no proposals", "no IKEv1 proposal can be sent")
        return None
    sa.sent_sa = sent
    sa.sa_i_b = sent.body()
    replace = f" to replace #{replacing.serial}" if replacing is not None else ""
    engine.log(sa.serial, f"initiating IKEv1 Main Mode connection{replace}")
    wire = encode_message(Header(sa.icookie, sa.rcookie, 0, Exchange.MAIN, 0, 0),
                          [sent] + _vids())
    _request(engine, sa, b"", wire, now)
    engine.log(sa.serial, "sent Main Mode request")
    return sa


def _aggr_initiate(engine: Engine, sa: IsakmpSa, sent: SA, now: float) -> IsakmpSa | None:
    # Aggressive Mode commits to one DH group up front: keep only the first one's
    # transforms (Libreswan insists on a single group there)
    transforms = sent.proposals[0].transforms
    if not transforms:
        engine.teardown_isakmp(sa, "no proposals", "no IKEv1 proposal can be sent")
        return None
    group_id = transforms[0].attr(IkeAttr.GROUP_DESCRIPTION)
    keep = [t for t in transforms if t.attr(IkeAttr.GROUP_DESCRIPTION) == group_id]
    for i, t in enumerate(keep):
        t.number = i
    sent = SA([Proposal(1, ProtocolId.ISAKMP, b"", keep)])
    sa.sent_sa = sent
    sa.sa_i_b = sent.body()
    from .proposals import phase1_transform  # which group the first transform names

    first = phase1_transform(keep[0])
    assert first is not None
    sa.ke = engine.key_exchange(first.ke)
    sa.gxi = sa.ke.public_bytes
    sa.ni = engine.rand(engine.config.nonce_size)
    idp = id_payload(sa.policy.local_id)
    sa.id_b = idp.body()
    replace = f" to replace #{sa.predecessor}" if sa.predecessor else ""
    engine.log(sa.serial, f"initiating IKEv1 Aggressive Mode connection{replace}")
    cr: list[IsakmpPayload] = []
    if _rsa(sa) and not _peer_preloaded(sa) and _have_cert(engine, sa):
        engine.log(sa.serial, "I am sending a certificate request")
        cr = [_cert_request(engine, sa)]
    wire = encode_message(Header(sa.icookie, sa.rcookie, 0, Exchange.AGGRESSIVE, 0, 0),
                          [sent, KE(sa.gxi), Nonce(sa.ni), idp] + cr + _vids())
    _request(engine, sa, b"", wire, now)
    engine.log(sa.serial, "sent Aggressive Mode request")
    return sa


# ------------------------------------------------------------------ responder


_PSK_METHODS = frozenset({AuthMethod.PRESHARED_KEY, AuthMethod.XAUTH_INIT_PRESHARED})
_RSA_METHODS = frozenset({AuthMethod.RSA_SIG, AuthMethod.XAUTH_INIT_RSA})
_XAUTH_METHODS = frozenset({AuthMethod.XAUTH_INIT_PRESHARED, AuthMethod.XAUTH_INIT_RSA})


def _proposed_methods(offered: SA) -> frozenset[int]:
    """Authentication Method values of the first proposal's transforms (the ones a
    responder can use)."""
    out: set[int] = set()
    for prop in offered.proposals[:1]:
        for t in prop.transforms:
            for a in t.attributes:
                if a.type == IkeAttr.AUTH_METHOD and a.basic:
                    value = a.as_int()
                    if value in _PSK_METHODS | _RSA_METHODS:
                        out.add(value)
    return frozenset(out)


def respond(engine: Engine, msg: Message, data: bytes, local: Endpoint, remote: Endpoint,
            now: float) -> None:
    """A first message (Main or Aggressive Mode) for no known ISAKMP SA."""
    h = msg.header
    ep = endpoint_text(remote)
    aggr = h.exchange == Exchange.AGGRESSIVE
    mode = "Aggressive Mode" if aggr else "Main Mode"
    if not msg.payloads or not isinstance(msg.payloads[0], SA):
        engine.log(0, f"packet from {ep}: malformed Phase 1 message: does not start with "
                      "an SA payload")
        return
    offered = msg.payloads[0]
    assert isinstance(offered, SA)
    candidates = [p for p in engine.policies.candidates(local[0], remote[0])
                  if aggressive(p) == aggr]
    if aggr:
        idp = _first(msg.payloads, ID)
        if not isinstance(idp, ID) or _first(msg.payloads, KE) is None \
                or _first(msg.payloads, Nonce) is None:
            engine.log(0, f"packet from {ep}: Aggressive Mode request is missing payloads")
            return
        try:
            peer = peer_identity(idp)
        except IdentityError as e:
            engine.log(0, f"packet from {ep}: invalid peer ID: {e}")
            return
        candidates = [p for p in candidates
                      if p.remote_id is None or p.remote_id.key == peer.key]
    # the methods the transforms propose pick the connection (Libreswan's
    # preparse_isakmp_sa_body() and match_v1_connection(): one method per connection,
    # XAUTH must match exactly)
    methods = _proposed_methods(offered)
    xauth = any(m in _XAUTH_METHODS for m in methods)
    authby = "+".join(name for name, ms in (("PSK", _PSK_METHODS), ("RSASIG", _RSA_METHODS))
                      if methods & ms)
    candidates = [p for p in candidates if sigauth.auth_method(p) in methods
                  and bool(knob(p, "xauth_server")) == xauth]
    if not candidates:
        if aggr:
            engine.log(0, f"packet from {ep}: initial Aggressive Mode message from {ep} but "
                          "no (wildcard) connection has been configured with authby "
                          f"{authby}")
        else:
            engine.log(0, f"packet from {ep}: initial Main Mode message received but no "
                          f"connection has been authorized with authby={authby} and "
                          f"xauth={'yes' if xauth else 'no'}")
        return
    choice = None
    policy = candidates[0]
    error: NoProposalChosen | IsakmpDecodeError | None = None
    for policy in candidates:
        try:
            choice = select_phase1(offered, policy.ike, (sigauth.auth_method(policy),),
                                   policy.ike_lifetime)
            break
        except (NoProposalChosen, IsakmpDecodeError) as e:
            error = e
    if choice is None:
        assert error is not None
        engine.log(0, f"packet from {ep}: no acceptable Oakley Transform ({error})")
        engine.send_clear_notify(local, remote, h.icookie, bytes(8), error.notify)
        return
    sa = IsakmpSa(engine.next_serial(), RESPONDER, policy, S.AGGR_R0 if aggr else S.MAIN_R0,
                  local, remote, h.icookie, engine.random_cookie(), created=now,
                  aggressive=aggr)
    engine.register(sa)
    engine.emit(SaCreated(sa.serial, "ike", 0, policy, RESPONDER, local, remote, sa.state))
    sa.choice = choice
    # SAi_b is the initiator's SA body exactly as it came (it is hashed by both ends)
    sa_len = int.from_bytes(data[HEADER_SIZE + 2:HEADER_SIZE + 4], "big")
    sa.sa_i_b = data[HEADER_SIZE + 4:HEADER_SIZE + sa_len]
    _note_vids(sa, msg.payloads)
    from .engine import DISCARD

    engine.arm(sa, DISCARD, now + engine.config.halfopen_timeout)
    if policy.is_template:
        engine.log(sa.serial, f"responding to {mode} from unknown peer {endpoint_text(remote)}")
    else:
        engine.log(sa.serial, f"responding to {mode}")
    reply_sa = SA([Proposal(1, ProtocolId.ISAKMP, b"", [choice.transform])])
    if aggr:
        _aggr_respond(engine, sa, msg, data, reply_sa, now)
        return
    wire = encode_message(Header(sa.icookie, sa.rcookie, 0, Exchange.MAIN, 0, 0),
                          [reply_sa] + _vids())
    _reply(engine, sa, data, wire)
    engine.set_state(sa, S.MAIN_R1)
    engine.log(sa.serial, "sent Main Mode R1")


# ------------------------------------------------------------------ later messages


def receive(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
            remote: Endpoint, now: float) -> None:
    handler = _HANDLERS.get(sa.state)
    if handler is None or (msg.header.exchange == Exchange.AGGRESSIVE) != sa.aggressive:
        engine.log(sa.serial, f"dropping unexpected {'Aggressive' if sa.aggressive else 'Main'}"
                              f" Mode message in state {sa.state.name}")
        return
    handler(engine, sa, msg, data, local, remote, now)


def _clear_only(engine: Engine, sa: IsakmpSa, msg: Message) -> bool:
    if msg.encrypted:
        engine.log(sa.serial, f"dropping encrypted message in state {sa.state.name}")
        return False
    if msg.header.rcookie == bytes(8):
        engine.log(sa.serial, "dropping response with a zero responder cookie")
        return False
    return True


def _open(engine: Engine, sa: IsakmpSa, msg: Message
          ) -> tuple[list[IsakmpPayload], bytes] | None:
    """Decrypt a phase 1 message with the running IV (not yet committed)."""
    if not msg.encrypted:
        engine.log(sa.serial, "packet rejected: should have been encrypted")
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.INVALID_FLAGS)
        return None
    try:
        payloads, _plain, next_iv = engine.unseal(sa, msg, sa.iv)
    except (IsakmpDecodeError, C.DecryptError) as e:
        engine.debug(sa.serial, f"decrypted message does not parse: {e}")
        engine.log(sa.serial, "probable authentication failure (mismatch of preshared "
                              "secrets?): malformed payload in packet")
        return None
    return payloads, next_iv


def _main_inR1(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    if not _clear_only(engine, sa, msg) or _missing(engine, sa, msg.payloads, (SA,), False):
        return
    reply = _first(msg.payloads, SA)
    assert isinstance(reply, SA) and sa.sent_sa is not None
    try:
        sa.choice = accept_phase1(reply, sa.sent_sa)
    except (NoProposalChosen, IsakmpDecodeError) as e:
        engine.log(sa.serial, f"Main Mode response rejected: {e}")
        return
    sa.rcookie = msg.header.rcookie
    _note_vids(sa, msg.payloads)
    if not _need_psk(engine, sa):
        engine.teardown_isakmp(sa, "no PSK", f"deleting ISAKMP SA ({sa.state.story})")
        return
    engine.stop_retransmit(sa)
    sa.ke = engine.key_exchange(sa.choice.ke)
    sa.gxi = sa.ke.public_bytes
    sa.ni = engine.rand(engine.config.nonce_size)
    wire = encode_message(Header(sa.icookie, sa.rcookie, 0, Exchange.MAIN, 0, 0),
                          [KE(sa.gxi), Nonce(sa.ni)] + _natd(sa))
    _request(engine, sa, data, wire, now)
    engine.set_state(sa, S.MAIN_I2)
    engine.log(sa.serial, "sent Main Mode I2")


def _ke_value(engine: Engine, sa: IsakmpSa, ke: KE) -> bool:
    assert sa.choice is not None
    want = sa.choice.ke.size
    if len(ke.data) != want:
        engine.log(sa.serial, f"KE has {len(ke.data)} byte DH public value; {want} required")
        return False
    return True


def _main_inI2(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    if not _clear_only(engine, sa, msg) or _missing(engine, sa, msg.payloads, (KE, Nonce),
                                                    True):
        return
    ke = _first(msg.payloads, KE)
    nonce = _first(msg.payloads, Nonce)
    assert isinstance(ke, KE) and isinstance(nonce, Nonce) and sa.choice is not None
    if not _ke_value(engine, sa, ke):
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.INVALID_KEY_INFORMATION)
        return
    if not _need_psk(engine, sa):
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.AUTHENTICATION_FAILED)
        engine.teardown_isakmp(sa, "no PSK", f"deleting ISAKMP SA ({sa.state.story})")
        return
    own = engine.key_exchange(sa.choice.ke)
    try:
        gxy = own.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        engine.log(sa.serial, f"invalid KE payload: {e}")
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.INVALID_KEY_INFORMATION)
        return
    sa.gxi, sa.gxr, sa.ni = ke.data, own.public_bytes, nonce.data
    sa.nr = engine.rand(engine.config.nonce_size)
    _check_natd(engine, sa, msg.payloads, local, remote)
    _derive(sa, gxy)
    # with signatures, ask for the initiator's certificate unless its key is preloaded:
    # naming rightca=, or (a template) with an empty CR
    cr: list[IsakmpPayload] = []
    if _rsa(sa) and not _peer_preloaded(sa) and (_peer_ca(engine, sa)
                                                 or sa.policy.is_template):
        cr = [_cert_request(engine, sa)]
    wire = encode_message(Header(sa.icookie, sa.rcookie, 0, Exchange.MAIN, 0, 0),
                          [KE(sa.gxr), Nonce(sa.nr)] + cr + _natd(sa))
    _reply(engine, sa, data, wire)
    engine.set_state(sa, S.MAIN_R2)
    engine.log(sa.serial, "sent Main Mode R2")


def _main_inR2(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    if not _clear_only(engine, sa, msg) or _missing(engine, sa, msg.payloads, (KE, Nonce),
                                                    False):
        return
    ke = _first(msg.payloads, KE)
    nonce = _first(msg.payloads, Nonce)
    assert isinstance(ke, KE) and isinstance(nonce, Nonce)
    if not _ke_value(engine, sa, ke):
        return
    try:
        gxy = sa.ke.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        engine.log(sa.serial, f"invalid KE payload: {e}")
        return
    engine.stop_retransmit(sa)
    sa.gxr, sa.nr = ke.data, nonce.data
    _note_cert_requests(sa, msg.payloads)
    _check_natd(engine, sa, msg.payloads, local, remote)
    _derive(sa, gxy)
    _float(engine, sa)
    idp = id_payload(sa.policy.local_id)
    sa.id_b = idp.body()
    payloads: list[IsakmpPayload] = [idp]
    if _rsa(sa):
        signed = _sign(engine, sa, _hash_i(sa, sa.id_b))
        if signed is None:
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
        sig, certs = signed
        payloads += _cert_payloads(engine, sa, certs, chain=True)
        if _send_cert(sa, certs) and not _peer_preloaded(sa):
            engine.log(sa.serial, "I am sending a certificate request")
            payloads.append(_cert_request(engine, sa))
        payloads.append(sig)
    else:
        payloads.append(Hash(_hash_i(sa, sa.id_b)))
    if sa.policy.initial_contact:
        payloads.append(Notify(NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP,
                               sa.icookie + sa.rcookie))
    wire, sa.iv = engine.seal(sa, Exchange.MAIN, 0, payloads, sa.iv)
    _request(engine, sa, data, wire, now)
    engine.set_state(sa, S.MAIN_I3)
    engine.log(sa.serial, "sent Main Mode I3")


def _authenticate(engine: Engine, sa: IsakmpSa,
                  expected: bytes, hashp: Hash) -> bool:
    if not hmac.compare_digest(hashp.data, expected):
        engine.log(sa.serial, "received Hash Payload does not match computed value")
        informational.notify(engine, sa, NotifyType.INVALID_HASH_INFORMATION)
        return False
    return True


def _main_inI3(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    opened = _open(engine, sa, msg)
    if opened is None:
        return
    payloads, next_iv = opened
    if _missing(engine, sa, payloads, (ID, _auth_payload(sa)), False):
        return
    idp = _first(payloads, ID)
    assert isinstance(idp, ID)
    _refine(engine, sa, idp)
    if _rsa(sa):
        # the peer's ID names the key that verifies its signature: check it first.  A
        # failure's notification is encrypted with the IV that follows I3, as the
        # initiator expects (Libreswan takes I3's IV before looking at it)
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            sa.iv = next_iv
            informational.notify(engine, sa, NotifyType.INVALID_ID_INFORMATION)
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
        _note_cert_requests(sa, payloads)
        if not _verify(engine, sa, peer, payloads, _hash_i(sa, idp.body())):
            sa.iv = next_iv
            informational.notify(engine, sa, NotifyType.INVALID_KEY_INFORMATION)
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
    else:
        hashp = _first(payloads, Hash)
        assert isinstance(hashp, Hash)
        if not _authenticate(engine, sa, _hash_i(sa, idp.body()), hashp):
            return
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            informational.notify(engine, sa, NotifyType.INVALID_ID_INFORMATION)
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
    sa.iv = next_iv
    sa.peer_id = peer
    if any(isinstance(p, Notify) and p.notify_type == NotifyType.INITIAL_CONTACT
           for p in payloads):
        _initial_contact(engine, sa)
    if (sa.nat_local or sa.nat_remote) and (local, remote) != (sa.local, sa.remote):
        engine.move(sa, local, remote)
    own = id_payload(sa.policy.local_id)
    sa.id_b = own.body()
    reply: list[IsakmpPayload] = [own]
    if _rsa(sa):
        signed = _sign(engine, sa, _hash_r(sa, sa.id_b))
        if signed is None:
            informational.notify(engine, sa, NotifyType.AUTHENTICATION_FAILED)
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
        sig, certs = signed
        reply += _cert_payloads(engine, sa, certs, chain=True) + [sig]
    else:
        reply.append(Hash(_hash_r(sa, sa.id_b)))
    wire, sa.iv = engine.seal(sa, Exchange.MAIN, 0, reply, sa.iv)
    _reply(engine, sa, data, wire)
    _established(engine, sa, S.MAIN_R3, now)


def _main_inR3(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    opened = _open(engine, sa, msg)
    if opened is None:
        return
    payloads, next_iv = opened
    if _missing(engine, sa, payloads, (ID, _auth_payload(sa)), False):
        return
    idp = _first(payloads, ID)
    assert isinstance(idp, ID)
    if _rsa(sa):
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
        if not _verify(engine, sa, peer, payloads, _hash_r(sa, idp.body())):
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})", rc=RC_FATAL)
            return
    else:
        hashp = _first(payloads, Hash)
        assert isinstance(hashp, Hash)
        if not _authenticate(engine, sa, _hash_r(sa, idp.body()), hashp):
            return
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
    sa.iv = next_iv
    sa.peer_id = peer
    sa.last_in = data
    sa.last_out = b""  # nothing to resend: Main Mode is over
    _established(engine, sa, S.MAIN_I4, now)


# ------------------------------------------------------------------ Aggressive Mode


def _have_cert(engine: Engine, sa: IsakmpSa) -> bool:
    """Do we authenticate with a certificate (and may send it)?"""
    try:
        certs = sigauth.local_key(engine.credentials, sa.policy).certs
    except sigauth.SigAuthError:
        return False
    return bool(certs) and bool(knob(sa.policy, "local_cert", True)) and getattr(sa.policy, "send_cert", "always") in ("always",
                                                                          "sendifasked")


def _aggr_respond(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, reply_sa: SA,
                  now: float) -> None:
    ke, nonce, idp = (_first(msg.payloads, KE), _first(msg.payloads, Nonce),
                      _first(msg.payloads, ID))
    assert isinstance(ke, KE) and isinstance(nonce, Nonce) and isinstance(idp, ID)
    assert sa.choice is not None
    if not _ke_value(engine, sa, ke):
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.INVALID_KEY_INFORMATION)
        engine.teardown_isakmp(sa, "bad KE")
        return
    peer = _check_peer_id(engine, sa, idp)
    if peer is None or not _need_psk(engine, sa):
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.AUTHENTICATION_FAILED)
        engine.teardown_isakmp(sa, "authentication", f"deleting ISAKMP SA ({sa.state.story})")
        return
    own = engine.key_exchange(sa.choice.ke)
    try:
        gxy = own.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        engine.log(sa.serial, f"invalid KE payload: {e}")
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                 NotifyType.INVALID_KEY_INFORMATION)
        engine.teardown_isakmp(sa, "bad KE")
        return
    sa.peer_id = peer
    sa.peer_id_b = idp.body()  # IDii_b, hashed into HASH_I of the third message
    sa.gxi, sa.gxr, sa.ni = ke.data, own.public_bytes, nonce.data
    sa.nr = engine.rand(engine.config.nonce_size)
    _derive(sa, gxy)
    engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
    own_id = id_payload(sa.policy.local_id)
    sa.id_b = own_id.body()
    auth: list[IsakmpPayload] = []
    if _rsa(sa):
        _note_cert_requests(sa, msg.payloads)
        signed = _sign(engine, sa, _hash_r(sa, sa.id_b))
        if signed is None:
            engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie,
                                     NotifyType.AUTHENTICATION_FAILED)
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
        sig, certs = signed
        auth = _cert_payloads(engine, sa, certs, chain=False,
                              line="I am sending my certificate")
        if _send_cert(sa, certs) and not _peer_preloaded(sa):
            engine.log(sa.serial, "I am sending a certificate request")
            auth.append(_cert_request(engine, sa))
        auth.append(sig)
    else:
        auth = [Hash(_hash_r(sa, sa.id_b))]
    wire = encode_message(
        Header(sa.icookie, sa.rcookie, 0, Exchange.AGGRESSIVE, 0, 0),
        [reply_sa, KE(sa.gxr), Nonce(sa.nr), own_id] + auth + _natd(sa) + _vids())
    _reply(engine, sa, data, wire)
    engine.set_state(sa, S.AGGR_R1)
    engine.log(sa.serial, "sent Aggressive Mode response, expecting confirmation")


def _aggr_inR1(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    if not _clear_only(engine, sa, msg) or _missing(
            engine, sa, msg.payloads, (SA, KE, Nonce, ID, _auth_payload(sa)), False):
        return
    reply = _first(msg.payloads, SA)
    ke, nonce, idp = (_first(msg.payloads, KE), _first(msg.payloads, Nonce),
                      _first(msg.payloads, ID))
    assert isinstance(reply, SA) and sa.sent_sa is not None
    assert isinstance(ke, KE) and isinstance(nonce, Nonce) and isinstance(idp, ID)
    try:
        choice = accept_phase1(reply, sa.sent_sa)
    except (NoProposalChosen, IsakmpDecodeError) as e:
        engine.log(sa.serial, f"Aggressive Mode response rejected: {e}")
        return
    if choice.ke.ikev2_id != sa.ke.group:
        engine.log(sa.serial, "Aggressive Mode response chose another DH group")
        return
    sa.choice = choice
    if not _ke_value(engine, sa, ke):
        return
    try:
        gxy = sa.ke.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        engine.log(sa.serial, f"invalid KE payload: {e}")
        return
    sa.rcookie = msg.header.rcookie
    if (choice.auth in sigauth.RSA_METHODS) != sigauth.uses_rsa(sa.policy) \
            or not _need_psk(engine, sa):
        engine.teardown_isakmp(sa, "no PSK", f"deleting ISAKMP SA ({sa.state.story})")
        return
    sa.gxr, sa.nr = ke.data, nonce.data
    _note_vids(sa, msg.payloads)
    _derive(sa, gxy)
    if _rsa(sa):
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
        _note_cert_requests(sa, msg.payloads)
        if not _verify(engine, sa, peer, msg.payloads, _hash_r(sa, idp.body())):
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})", rc=RC_FATAL)
            return
    else:
        hashp = _first(msg.payloads, Hash)
        assert isinstance(hashp, Hash)
        if not hmac.compare_digest(hashp.data, _hash_r(sa, idp.body())):
            engine.log(sa.serial, "received Hash Payload does not match computed value")
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
        peer = _check_peer_id(engine, sa, idp)
        if peer is None:
            engine.teardown_isakmp(sa, "peer ID", f"deleting ISAKMP SA ({sa.state.story})")
            return
        engine.log(sa.serial, f"Peer ID is {id_story(peer)}")
    sa.peer_id = peer
    _check_natd(engine, sa, msg.payloads, local, remote)
    engine.stop_retransmit(sa)
    _float(engine, sa)
    if _rsa(sa):
        # Libreswan's order: [CERT,] NAT-D, NAT-D, SIG_I
        signed = _sign(engine, sa, _hash_i(sa, sa.id_b))
        if signed is None:
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
        sig, certs = signed
        final = _cert_payloads(engine, sa, certs, chain=False) + _natd(sa) + [sig]
    else:
        final = [Hash(_hash_i(sa, sa.id_b))] + _natd(sa)
    wire, sa.iv = engine.seal(sa, Exchange.AGGRESSIVE, 0, final, sa.iv)
    sa.last_in, sa.last_out = data, wire  # the responder may repeat its message
    engine.send(sa, wire)
    engine.log(sa.serial, "sent Aggressive Mode I2")
    _established(engine, sa, S.AGGR_I2, now)


def _aggr_inI2(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, local: Endpoint,
               remote: Endpoint, now: float) -> None:
    opened = _open(engine, sa, msg)
    if opened is None:
        return
    payloads, next_iv = opened
    if _missing(engine, sa, payloads, (_auth_payload(sa),), False):
        return
    assert sa.peer_id is not None
    if _rsa(sa):
        if not _verify(engine, sa, sa.peer_id, payloads, _hash_i(sa, sa.peer_id_b)):
            informational.notify(engine, sa, NotifyType.INVALID_KEY_INFORMATION)
            engine.teardown_isakmp(sa, "authentication",
                                   f"deleting ISAKMP SA ({sa.state.story})")
            return
    else:
        hashp = _first(payloads, Hash)
        assert isinstance(hashp, Hash)
        if not _authenticate(engine, sa, _hash_i(sa, sa.peer_id_b), hashp):
            return
    sa.iv = next_iv
    _check_natd(engine, sa, payloads, local, remote)
    if (sa.nat_local or sa.nat_remote) and (local, remote) != (sa.local, sa.remote):
        engine.move(sa, local, remote)
    sa.last_in, sa.last_out = data, b""
    _established(engine, sa, S.AGGR_R2, now)


_HANDLERS = {
    S.MAIN_I1: _main_inR1, S.MAIN_R1: _main_inI2, S.MAIN_I2: _main_inR2,
    S.MAIN_R2: _main_inI3, S.MAIN_I3: _main_inR3, S.AGGR_I1: _aggr_inR1,
    S.AGGR_R1: _aggr_inI2,
}
