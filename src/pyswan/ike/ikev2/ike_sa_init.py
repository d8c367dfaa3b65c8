"""IKE_SA_INIT (RFC 7296 1.2, 2.6, 2.10, 2.23): initiator and responder side by side.

Initiator: SA, KE, Ni, N(IKEV2_FRAGMENTATION_SUPPORTED), [N(SIGNATURE_HASH_ALGORITHMS)],
N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP); a COOKIE or INVALID_KE_PAYLOAD
answer restarts the request with the cookie added or the group the responder asked for; an
unauthenticated error answer is ignored (it may be forged) and retransmission goes on, as
Libreswan does.  Responder: find the connection by address pair, choose a proposal, check
the KE group, answer SA, KE, Nr and the same notifications.
"""

from __future__ import annotations

from struct import Struct
from typing import TYPE_CHECKING, Any

from .. import algorithms as A
from .. import dh, kdf
from ..cipher import SkCrypto
from ..codec import (
    KE,
    SA,
    GenericPayload,
    IkeDecodeError,
    Nonce,
    Notify,
    Payload,
    decode_message,
)
from ..constants import ExchangeType, NotifyType, PayloadType
from ..proposal_grammar import ProposalSyntaxError
from ..proposals import (
    ChosenProposal,
    first_ke,
    format_ike_newest,
    invalid_ke_group,
    proposals_include_ke,
    select_proposal,
    to_sa_proposals,
)
from . import authn, redirect
from . import states as S
from .actions import RC_FATAL, SaCreated, SaDeleted, Send
from .cookie import COOKIE_SIZE
from .message import (
    ZERO_SPI,
    build_clear,
    endpoint_text,
    nat_hash,
    nat_notifies,
    nname,
    notifies_of,
    notify,
    remote_text,
    short,
)
from .policy import Endpoint, Policy, shared_cache
from .sa import INITIATOR, RESPONDER, IkeSa, Outstanding

if TYPE_CHECKING:
    from .engine import Engine, Inbound

_U16 = Struct("!H")
_SIGNATURE_HASHES = bytes.fromhex("000200030004")  # SHA2-256, SHA2-384, SHA2-512
_SIGNATURE_AUTH = ("rsasig", "ecdsa", "eddsa")

#: RFC 7383 fragmentation (fragment.py): announced when the connection allows it.
FRAGMENTATION_IMPLEMENTED = True


def prepared(policy: Policy) -> dict[str, Any]:
    """Values every initiation with these ``ike=`` proposals reuses (encoded SA payload,
    KE group)."""
    cache = shared_cache("ike", policy.ike)
    if "ike_sa" not in cache:
        body = SA(to_sa_proposals(policy.ike)).encode_body()
        cache["ike_sa"] = GenericPayload(PayloadType.SA, body)
        cache["ke_group"] = first_ke(policy.ike)
    return cache


# ------------------------------------------------------------------ initiator


def initiate(eng: Engine, policy: Policy, now: float, remote: Endpoint | None,
             predecessor: IkeSa | None = None, redirected: bool = False) -> IkeSa | None:
    if not redirected and predecessor is None:
        redirect.forget(eng, policy)  # a fresh start: redirects count from scratch
    gateway = redirect.redirected_gateway(eng, policy) if remote is None else None
    remote_ep = remote or (gateway or policy.remote_addr, policy.remote_port)
    if remote_ep[0] is None:
        eng.log(0, f'"{policy.name}": cannot initiate: the peer address is %any')
        return None
    local_ep = (policy.local_addr, policy.local_port)
    serial = eng.next_serial()
    sa = IkeSa(serial, INITIATOR, policy, S.IKE_SA_INIT_I0, local_ep, remote_ep,  # type: ignore[arg-type]
               eng.random_spi(), created=now)
    sa.initiated = True
    eng.register(sa)
    eng.emit(SaCreated(serial, "ike", 0, policy, INITIATOR, local_ep, remote_ep,  # type: ignore[arg-type]
                       sa.state))
    replacing = ""
    if predecessor is not None:
        sa.predecessor, predecessor.successor = predecessor.serial, serial
        replacing = f" (replacing established IKE SA #{predecessor.serial})"
    eng.log(serial, f"initiating IKEv2 connection{replacing} to {remote_ep[0]} using UDP")
    group = prepared(policy)["ke_group"]
    if group is None:
        eng.teardown_ike(sa, "failed", "proposals do not contain a valid DH", rc=RC_FATAL)
        return None
    sa.ke_group = group
    sa.ke = eng.key_exchange(group)
    sa.ni = eng.rand(eng.config.nonce_size)
    eng.start_request(sa, ExchangeType.IKE_SA_INIT, lambda msgid: _build_request(sa, eng),
                      "ike_sa_init", now)
    eng.set_state(sa, S.IKE_SA_INIT_I)
    eng.log(serial, f"sent IKE_SA_INIT request to {endpoint_text(remote_ep)}")  # type: ignore[arg-type]
    return sa


def _build_request(sa: IkeSa, eng: Engine) -> bytes:
    policy = sa.policy
    payloads: list[Payload] = []
    impair = eng.config.impair_ddos_cookie
    if (impair == 1 and not sa.cookie) or (impair == 2 and sa.cookie):
        eng.log(sa.serial, "IMPAIR: adding unsolicited and mangled DDOS cookie" if impair == 1
                else "IMPAIR: mangling DDOS cookie sent by peer")
        sa.cookie = b"\xa5"  # one bogus octet, as Libreswan's messupn()
    if sa.cookie:
        payloads.append(notify(NotifyType.COOKIE, sa.cookie))  # must come first (2.6)
    payloads += [prepared(policy)["ike_sa"], KE(sa.ke_group.ikev2_id, sa.ke.public_bytes),
                 Nonce(sa.ni)]
    if policy.fragmentation and FRAGMENTATION_IMPLEMENTED:
        payloads.append(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
    redirect_note = redirect.initiator_notify(eng, policy)
    if redirect_note is not None:  # REDIRECTED_FROM or REDIRECT_SUPPORTED (RFC 5685)
        payloads.append(redirect_note)
    sighash = authn.sighash_data(policy)
    if sighash is not None:
        payloads.append(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, sighash))
    payloads += nat_notifies(sa.spi_i, ZERO_SPI, sa.local, sa.remote,
                             fake=policy.encapsulation == "yes")
    data = build_clear(sa, ExchangeType.IKE_SA_INIT, 0, payloads, False)
    sa.init_request = data
    return data


def process_cookie(eng: Engine, sa: IkeSa, inb: Inbound, now: float, o: Outstanding) -> None:
    cookie = notifies_of(inb.payloads)[NotifyType.COOKIE].data
    if not 1 <= len(cookie) <= 64:
        eng.log(sa.serial, f"ignoring IKE_SA_INIT response with a COOKIE of {len(cookie)} "
                           "bytes")
        _keep_waiting(eng, sa, o)
        return
    eng.log(sa.serial, "received anti-DDOS COOKIE response, resending IKE_SA_INIT request "
                       "with COOKIE payload")
    sa.cookie = cookie
    sa.outstanding = o
    eng.resend_request(sa, _build_request(sa, eng), now)


def process_invalid_ke(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                       o: Outstanding) -> None:
    data = notifies_of(inb.payloads)[NotifyType.INVALID_KE_PAYLOAD].data
    group = A.ke_by_id(_U16.unpack(data)[0]) if len(data) == 2 else None
    if group is None or group is sa.ke_group or not proposals_include_ke(sa.policy.ike, group):
        shown = group.fqn if group is not None else data.hex()
        eng.log(sa.serial, f"ignoring unauthenticated INVALID_KE_PAYLOAD response suggesting "
                           f"unacceptable DH {shown}")
        _keep_waiting(eng, sa, o)
        return
    eng.log(sa.serial, f"Received unauthenticated INVALID_KE_PAYLOAD response to DH "
                       f"{sa.ke_group.fqn}; resending with suggested DH {group.fqn}")
    sa.ke_group = group
    sa.ke = eng.key_exchange(group)
    sa.outstanding = o
    eng.resend_request(sa, _build_request(sa, eng), now)
    eng.log(sa.serial, f"sent IKE_SA_INIT request to {endpoint_text(sa.remote)}")


def process_redirect(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                     o: Outstanding) -> None:
    """N(REDIRECT) instead of SA, KE, Nr (RFC 5685 4): start again at the gateway it names
    (redirect.py); one we may not follow is ignored like any unauthenticated answer."""
    if not redirect.process_init_response(eng, sa, inb, now):
        _keep_waiting(eng, sa, o)


def process_error_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                           o: Outstanding) -> None:
    """An unauthenticated IKE_SA_INIT answer that is neither usable nor a retry request:
    log it and keep retransmitting (it could be forged; RFC 7296 2.21.1)."""
    names = [p for p in inb.payloads if type(p) is Notify and p.is_error]
    what = f"{nname(names[0].type)} notification" if names else "no acceptable payloads"
    present = ",".join(short(p) for p in inb.payloads) or "none"
    missing = ",".join(n for n, t in (("SA", PayloadType.SA), ("KE", PayloadType.KE),
                                      ("Ni", PayloadType.NONCE))
                       if not any(p.payload_type == t for p in inb.payloads))
    eng.log(sa.serial, f"ignoring IKE_SA_INIT response containing {what} (Message ID 0; "
                       f"message payloads {present}, missing {missing})")
    _keep_waiting(eng, sa, o)


def _keep_waiting(eng: Engine, sa: IkeSa, o: Outstanding) -> None:
    eng.keep_waiting(sa, o)


def process_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                     o: Outstanding) -> None:
    policy = sa.policy
    spi_r = inb.data[8:16]
    if spi_r == ZERO_SPI:
        eng.log(sa.serial, "IKE_SA_INIT response has zero IKE SA Responder SPI; dropping "
                           "packet")
        _keep_waiting(eng, sa, o)
        return
    sa_payload = next(p for p in inb.payloads if type(p) is SA)
    ke = next(p for p in inb.payloads if type(p) is KE)
    nonce = next(p for p in inb.payloads if type(p) is Nonce)
    try:
        chosen = _match_accepted(policy, sa_payload)
    except ProposalSyntaxError as e:
        chosen = None
        eng.log(sa.serial, f"IKE_SA_INIT response SA payload is invalid: {e}")
    if chosen is None:
        eng.log(sa.serial, "remote accepted the invalid proposal "
                           f"{remote_text(sa_payload)}")
        _fail(eng, sa, "IKE_SA_INIT response rejected: no acceptable proposal")
        return
    if chosen.ke is None or chosen.ke is not sa.ke_group or ke.group != sa.ke_group.ikev2_id:
        _fail(eng, sa, f"IKE_SA_INIT response KE payload group {ke.group} does not match "
                       f"the accepted {chosen.ke.fqn if chosen.ke else 'none'}")
        return
    try:
        shared = sa.ke.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        _fail(eng, sa, f"IKE_SA_INIT response KE payload is unusable: {e}")
        return
    sa.spi_r = spi_r
    sa.nr = nonce.data
    sa.init_response = inb.data
    sa.chosen = chosen
    sa.ke = None  # the private value is no longer needed
    notes = notifies_of(inb.payloads)
    sa.peer_fragmentation = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in notes
    sa.fragmentation = policy.fragmentation and sa.peer_fragmentation
    authn.note_peer_init(sa, inb.payloads, notes)
    _nat_detect(sa, notes, initiator=True)
    if policy.encapsulation == "yes":
        sa.nat_local = True  # as if behind a NAT (our NAT-D hash was faked to match)
    if sa.nat_local or sa.nat_remote:
        # RFC 7296 2.23: once a NAT is seen, everything from IKE_AUTH on uses the NAT-T
        # port (with the non-ESP marker), and ESP is UDP-encapsulated
        eng.move(sa, (sa.local[0], policy.local_nat_port),
                 (sa.remote[0], policy.remote_nat_port))
    derive_keys(sa, chosen, shared)
    eng.set_state(sa, S.IKE_SA_INIT_IR)
    eng.log(sa.serial, f"processed IKE_SA_INIT response from {endpoint_text(sa.remote)} "
                       f"{secured(chosen)}, initiating IKE_AUTH")
    from . import ike_auth  # noqa: PLC0415 - ike_auth imports child, which needs us

    ike_auth.initiate(eng, sa, now)


def _fail(eng: Engine, sa: IkeSa, why: str) -> None:
    eng.log(sa.serial, why)
    eng.log(sa.serial, f"encountered fatal error in state {sa.state.name}", RC_FATAL)
    eng.teardown_ike(sa, "failed", f"deleting IKE SA ({sa.state.story})", rc=RC_FATAL)


def _match_accepted(policy: Policy, sa_payload: SA) -> ChosenProposal | None:
    from ..proposals import match_accepted

    return match_accepted(policy.ike, sa_payload.proposals)


# ------------------------------------------------------------------ responder


def receive_request(eng: Engine, data: bytes, local: Endpoint, remote: Endpoint,
                    now: float) -> None:
    """An IKE_SA_INIT request (SPIr zero, Message ID 0) from ``remote``."""
    spi_i = data[:8]
    dup = eng._halfopen.get((spi_i, remote))  # noqa: SLF001 - the engine's own index
    if dup is not None:
        if dup.init_response:
            eng.debug(dup.serial, "retransmitting IKE_SA_INIT response for duplicate request")
            eng.send(dup, dup.init_response)
        return
    peer = endpoint_text(remote)
    if eng.halfopen >= eng.config.max_halfopen_ike:
        # drop_new_exchanges(): no state, no answer; logged within the rate limit
        eng.limited_log(f"packet from {peer}: dropping IKE_SA_INIT request, too many half "
                        f"open IKE SAs ({eng.halfopen})", now)
        return
    try:
        msg = decode_message(data)
    except IkeDecodeError as e:
        if eng.cookies_required():
            eng.debug(0, f"packet from {peer}: DDOS so not responding to invalid packet")
            return
        eng.log(0, f"packet from {peer}: dropping malformed IKE_SA_INIT request: {e}")
        return
    payloads = msg.payloads
    sa_payload = ke = nonce = None
    for p in payloads:
        t = type(p)
        if t is SA and sa_payload is None:
            sa_payload = p
        elif t is KE and ke is None:
            ke = p
        elif t is Nonce and nonce is None:
            nonce = p
    notes = notifies_of(payloads)
    if not _cookie_passed(eng, payloads, nonce, spi_i, local, remote, now):
        return
    if redirect.global_redirect(eng, notes, nonce.data if nonce is not None else None, spi_i,
                                local, remote):
        return
    if sa_payload is None or ke is None or nonce is None:
        _stateless_notify(eng, spi_i, local, remote, NotifyType.INVALID_SYNTAX,
                          "IKE_SA_INIT request is missing SA, KE or Ni")
        return
    candidates = eng.policies.candidates(local[0], remote[0])
    if not candidates:
        _stateless_notify(eng, spi_i, local, remote, NotifyType.NO_PROPOSAL_CHOSEN,
                          "no suitable connection found with IKEv2 policy")
        return
    policy = candidates[0]
    serial = eng.next_serial()
    sa = IkeSa(serial, RESPONDER, policy, S.UNSECURED_R, local, remote, spi_i,
               eng.random_spi(), created=now)
    sa.expected_request_id = 0
    eng.register(sa)
    eng._halfopen[(spi_i, remote)] = sa  # noqa: SLF001
    eng.emit(SaCreated(serial, "ike", 0, policy, RESPONDER, local, remote, sa.state))
    eng.log(serial, f"processing IKE_SA_INIT request from {peer} containing "
                    f"{_containing(payloads)}")
    chosen, text = _select(policy, data, sa_payload)
    if isinstance(chosen, str):
        eng.log(serial, f"proposal is corrupt: {chosen}")
        _reject(eng, sa, inb_msgid=0, kind=NotifyType.INVALID_SYNTAX)
        return
    if chosen is None:
        eng.log(serial, f"no local proposal matches remote proposals {text}")
        _reject(eng, sa, 0, NotifyType.NO_PROPOSAL_CHOSEN)
        return
    eng.log(serial, f"proposal {chosen.number}:IKE={newest(chosen)} chosen from "
                    f"remote proposals {text}")
    want = invalid_ke_group(chosen, ke.group)
    if want is not None:
        got = A.ke_by_id(ke.group)
        eng.log(serial, f"responding with INVALID_KE_PAYLOAD: KE payload group "
                        f"{got.fqn if got else ke.group} is not the accepted {want.fqn}")
        _reject(eng, sa, 0, NotifyType.INVALID_KE_PAYLOAD, _U16.pack(want.ikev2_id))
        return
    try:
        if chosen.ke.family == "mlkem":
            ke_out, shared = dh.respond(chosen.ke, ke.data)
        else:
            mine = eng.key_exchange(chosen.ke)
            ke_out, shared = mine.public_bytes, mine.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        eng.log(serial, f"KE payload is unusable: {e}")
        _reject(eng, sa, 0, NotifyType.INVALID_SYNTAX)
        return
    sa.ni = nonce.data
    sa.nr = eng.rand(eng.config.nonce_size)
    sa.chosen = chosen
    sa.ke_group = chosen.ke
    sa.init_request = data
    sa.peer_fragmentation = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in notes
    sa.fragmentation = (policy.fragmentation and sa.peer_fragmentation
                        and FRAGMENTATION_IMPLEMENTED)
    authn.note_peer_init(sa, payloads, notes)
    _nat_detect(sa, notes, initiator=False)
    if policy.encapsulation == "yes":
        sa.nat_remote = True
    derive_keys(sa, chosen, shared)
    out: list[Payload] = [_accepted_sa(chosen), KE(chosen.ke.ikev2_id, ke_out),
                          Nonce(sa.nr)]
    if sa.fragmentation:
        out.append(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
    out += nat_notifies(sa.spi_i, sa.spi_r, local, remote,
                        fake=policy.encapsulation == "yes")
    certreq = authn.certreq_payload(eng, policy, False)
    if certreq is not None:
        out.append(certreq)
    sighash = authn.sighash_data(policy)
    if sighash is not None and sa.peer_hashes is not None:
        out.append(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, sighash))
    response = build_clear(sa, ExchangeType.IKE_SA_INIT, 0, out, True)
    sa.init_response = response
    eng.send_response(sa, 0, response)
    eng.set_state(sa, S.IKE_SA_INIT_R)
    eng.arm(sa, "DISCARD", now + eng.config.halfopen_timeout)
    eng.log(serial, f"sent IKE_SA_INIT response to {peer} {secured(chosen)}")


_GENERIC = Struct("!BBH")
_ACCEPTED: dict[tuple, GenericPayload] = {}
_NEWEST: dict[tuple, str] = {}


def _suite_key(c: ChosenProposal) -> tuple:
    return (c.number, c.protocol, c.encr, c.encr_keylen, c.prf, c.integ, c.ke, c.sn,
            c.addke, c.implied)


def _accepted_sa(chosen: ChosenProposal) -> GenericPayload:
    """The IKE_SA_INIT response's SA payload (no SPI): encoded once per choice."""
    key = _suite_key(chosen)
    got = _ACCEPTED.get(key)
    if got is None:
        if len(_ACCEPTED) > 1024:
            _ACCEPTED.clear()
        got = _ACCEPTED[key] = GenericPayload(PayloadType.SA,
                                              SA([chosen.to_sa_proposal()]).encode_body())
    return got


def newest(chosen: ChosenProposal) -> str:
    """``AES_GCM_16_256-HMAC_SHA2_512-DH19``, remembered per choice."""
    key = _suite_key(chosen)
    got = _NEWEST.get(key)
    if got is None:
        if len(_NEWEST) > 1024:
            _NEWEST.clear()
        got = _NEWEST[key] = format_ike_newest(chosen)
    return got
_CONTAINING: dict[tuple, str] = {}


def _containing(payloads: list[Payload]) -> str:
    """``SA,KE,Ni,N(NAT_DETECTION_SOURCE_IP),...`` (the same for every request a given
    initiator sends, so remembered)."""
    key = tuple((p.payload_type, p.type if type(p) is Notify else 0) for p in payloads)
    text = _CONTAINING.get(key)
    if text is None:
        if len(_CONTAINING) > 256:
            _CONTAINING.clear()
        text = _CONTAINING[key] = ",".join(short(p) for p in payloads)
    return text


def _raw_payload(data: bytes, wanted: int) -> bytes | None:
    """The raw bytes of the first cleartext payload of type ``wanted`` (already validated
    by the decoder, so lengths can be trusted)."""
    ptype, pos = data[16], 28
    while ptype and pos + 4 <= len(data):
        nxt, _, length = _GENERIC.unpack_from(data, pos)
        if ptype == wanted:
            return data[pos:pos + length]
        ptype, pos = nxt, pos + length
    return None


def _select(policy: Policy, data: bytes, sa_payload: SA) -> tuple[Any, str]:
    """select_proposal, remembered per connection by the raw SA payload: a burst of
    initiators running the same software sends the same proposals."""
    cache = shared_cache("ike", policy.ike).setdefault("select", {})
    raw = _raw_payload(data, PayloadType.SA)
    got = cache.get(raw)
    if got is None:
        try:
            chosen = select_proposal(policy.ike, sa_payload.proposals)
        except ProposalSyntaxError as e:
            got = (str(e), "")
        else:
            got = (chosen, remote_text(sa_payload, chosen.number if chosen else 0))
        if len(cache) > 256:
            cache.clear()
        cache[raw] = got
    return got


def process_request(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> None:
    """Table entry for documentation: IKE_SA_INIT requests are handled by
    :func:`receive_request` before any state exists."""
    raise AssertionError("IKE_SA_INIT requests never reach an existing SA")


def _reject(eng: Engine, sa: IkeSa, inb_msgid: int, kind: int, data: bytes = b"") -> None:
    """Answer the request with an unencrypted error and forget the larval SA."""
    response = build_clear(sa, ExchangeType.IKE_SA_INIT, inb_msgid, [notify(kind, data)], True)
    eng.log(sa.serial, f"responding to IKE_SA_INIT message (ID {inb_msgid}) from "
                       f"{endpoint_text(sa.remote)} with unencrypted notification "
                       f"{nname(kind)}")
    eng.send(sa, response)
    eng.teardown_ike(sa, "rejected")


def _stateless_notify(eng: Engine, spi_i: bytes, local: Endpoint, remote: Endpoint,
                      kind: int, why: str, data: bytes = b"", log: bool = True) -> None:
    from ..codec import Message, encode_message

    msg = Message(spi_i, ZERO_SPI, ExchangeType.IKE_SA_INIT, 0x20, 0, [notify(kind, data)])
    if log:
        eng.log(0, f"packet from {endpoint_text(remote)}: responding to IKE_SA_INIT request "
                   f"with Message ID 0 with unencrypted notification {nname(kind)}, {why}")
    eng.emit(Send(0, encode_message(msg), local, remote))


def stateless_response(eng: Engine, spi_i: bytes, local: Endpoint, remote: Endpoint,
                       payloads: list[Payload]) -> None:
    """An IKE_SA_INIT response sent without creating any state (COOKIE, REDIRECT)."""
    from ..codec import Message, encode_message

    msg = Message(spi_i, ZERO_SPI, ExchangeType.IKE_SA_INIT, 0x20, 0, payloads)
    eng.emit(Send(0, encode_message(msg), local, remote))


def _cookie_passed(eng: Engine, payloads: list[Payload], nonce: Nonce | None, spi_i: bytes,
                   local: Endpoint, remote: Endpoint, now: float) -> bool:
    """Libreswan's ``v2_rejected_initiator_cookie()``, inverted: under DDoS a request
    without our cookie is answered with N(COOKIE) (no state kept); a cookie that is sent
    is checked whatever the mode.  Only a COOKIE that is the first payload counts."""
    want = eng.cookies_required()
    first = payloads[0] if payloads else None
    cookie = first if type(first) is Notify and first.type == NotifyType.COOKIE else None
    if not want and cookie is None:
        return True
    peer = endpoint_text(remote)
    if nonce is None:
        eng.limited_log(f"packet from {peer}: DDOS cookie requires Ni paylod - dropping "
                        "message", now)
        return False
    if not 16 <= len(nonce.data) <= 256:
        eng.limited_log(f"packet from {peer}: DOS cookie failed as Ni payload invalid - "
                        "dropping message", now)
        return False
    if cookie is None:
        made = eng.cookies.make(now, nonce.data, remote, spi_i)
        stateless_response(eng, spi_i, local, remote, [notify(NotifyType.COOKIE, made)])
        eng.debug(0, f"packet from {peer}: responding to IKE_SA_INIT request with Message ID 0 "
                     "with unencrypted notification COOKIE, DOS mode is on, initial request "
                     "must include a COOKIE")
        return False
    if cookie.protocol != 0 or cookie.spi or len(cookie.data) != COOKIE_SIZE:
        eng.limited_log(f"packet from {peer}: DOS cookie notification corrupt, or invalid - "
                        "dropping message", now)
        return False
    if not eng.cookies.check(now, cookie.data, nonce.data, remote, spi_i):
        eng.limited_log(f"packet from {peer}: DOS cookies do not match - dropping message",
                        now)
        return False
    eng.debug(0, f"packet from {peer}: cookies match")
    return True


# ------------------------------------------------------------------ shared


def derive_keys(sa: IkeSa, chosen: ChosenProposal, shared: bytes) -> None:
    """SKEYSEED and the seven keys; bind the SK ciphers for each direction once."""
    prf = chosen.prf
    suite = SkCrypto(chosen.encr, chosen.key_bits, None if chosen.aead else chosen.integ)
    keys = kdf.derive_ike_keys(prf, suite.encr_key_bytes, suite.integ_key_bytes, shared,
                               sa.ni, sa.nr, sa.spi_i, sa.spi_r)
    sa.prf = prf
    sa.sk_d, sa.sk_pi, sa.sk_pr = keys.sk_d, keys.sk_pi, keys.sk_pr
    ei = suite.bind(keys.sk_ei, keys.sk_ai or None)
    er = suite.bind(keys.sk_er, keys.sk_ar or None)
    sa.seal, sa.unseal = (ei, er) if sa.is_initiator else (er, ei)
    sa.ike_keys = keys


def secured(chosen: ChosenProposal) -> str:
    """``{cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_512 group=DH19}``."""
    encr = chosen.encr
    cipher = f"{encr.fqn}_{chosen.key_bits}" if chosen.key_bits else encr.fqn
    integ = ("n/a" if chosen.integ is None or chosen.integ is A.INTEG_NONE
             else chosen.integ.fqn)
    return (f"{{cipher={cipher} integ={integ} prf={chosen.prf.fqn} "
            f"group={chosen.ke.fqn}}}")


def _nat_detect(sa: IkeSa, notes: dict[int, Notify], initiator: bool) -> None:
    src = notes.get(NotifyType.NAT_DETECTION_SOURCE_IP)
    dst = notes.get(NotifyType.NAT_DETECTION_DESTINATION_IP)
    spi_r = sa.spi_r if initiator else ZERO_SPI
    if dst is not None:
        sa.nat_local = dst.data != nat_hash(sa.spi_i, spi_r, sa.local)
    if src is not None:
        sa.nat_remote = src.data != nat_hash(sa.spi_i, spi_r, sa.remote)


__all__ = ["SaDeleted", "derive_keys", "initiate", "prepared", "receive_request", "secured"]
