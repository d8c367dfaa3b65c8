"""IKE_AUTH with the first Child SA (RFC 7296 1.2, 2.15, 2.21.2): both sides.

Initiator: SK{IDi, [IDr], AUTH, [N(INITIAL_CONTACT)], SA, TSi, TSr, [N(USE_TRANSPORT_MODE)]}.
Responder: refine the connection by the IDs (switching when another connection fits the
peer better, as Libreswan does), verify AUTH, establish the IKE SA, choose the Child SA,
have it installed, then answer SK{IDr, AUTH, SA, TSi, TSr}.  A Child SA problem
(NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, a kernel refusal) leaves the IKE SA up and is
reported in the response; an authentication problem answers AUTHENTICATION_FAILED and
deletes the IKE SA.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..codec import AUTH, CERT, CERTREQ, GenericPayload, IDi, IDr, Notify, Payload
from ..constants import ExchangeType, IdType, NotifyType, PayloadType
from . import child as C
from . import cp as CP_
from . import informational, redirect
from . import states as S
from . import ts as T
from .actions import (
    RC_FATAL,
    ChildEstablished,
    IkeEstablished,
    InstallChild,
    SaCreated,
)
from .authn import AuthFailure, certreq_payload, check_auth, our_auth
from .message import build_sk, endpoint_text, nname, notifies_of, notify
from .policy import Identity, IdentityError, Policy
from .sa import INITIATOR, RESPONDER, ChildSa, IkeSa, Outstanding

if TYPE_CHECKING:
    from .engine import Engine, Inbound


# ------------------------------------------------------------------ initiator


def initiate(eng: Engine, sa: IkeSa, now: float) -> None:
    """Send IKE_AUTH right after processing the IKE_SA_INIT response."""
    policy = sa.policy
    child = ChildSa(eng.next_serial(), sa, policy, INITIATOR, S.NEW_CHILD_I0,
                    mode=policy.mode, local_ts=policy.local_ts, remote_ts=policy.remote_ts)
    child.spi_in = eng.child_spi()
    eng.children[child.serial] = child
    sa.children[child.serial] = child
    sa.first_child = child
    eng.emit(SaCreated(child.serial, "child", sa.serial, policy, INITIATOR, sa.local,
                       sa.remote, child.state))
    try:
        ours = our_auth(eng, sa)
    except AuthFailure as e:
        for line in (*e.lines, str(e)):
            eng.log(sa.serial, line)
        eng.log(sa.serial, f"encountered fatal error in state {sa.state.name}", RC_FATAL)
        eng.teardown_ike(sa, "failed", f"deleting IKE SA ({sa.state.story})", rc=RC_FATAL)
        return
    inner: list[Payload] = [IDi(policy.local_id.id_type, policy.local_id.data)]
    inner.extend(CERT(4, der) for der in ours.certs)
    certreq = certreq_payload(eng, policy, True)
    if certreq is not None:
        inner.append(certreq)
    if policy.send_idr and policy.remote_id is not None:
        inner.append(IDr(policy.remote_id.id_type, policy.remote_id.data))
    inner.append(ours.auth)
    if policy.initial_contact:
        inner.append(notify(NotifyType.INITIAL_CONTACT))
    inner.append(C.sa_payload(policy, child.spi_in))
    if policy.cp_request:
        inner.append(CP_.request(child.local_ts))
    inner.extend(C.ts_payloads(child.local_ts, child.remote_ts, initiator=True))
    if C.compress(policy):  # after the TS payloads, as Libreswan
        inner.append(C.ipcomp_notify(C.ipcomp_cpi(child.spi_in)))
    if policy.mode == "transport":
        inner.append(notify(NotifyType.USE_TRANSPORT_MODE))
    iv_size = sa.seal.suite.iv_size  # type: ignore[union-attr]
    eng.start_request(sa, ExchangeType.IKE_AUTH,
                      lambda msgid: build_sk(sa, ExchangeType.IKE_AUTH, msgid, inner, False,
                                             eng.rand(iv_size)),
                      "ike_auth", now)
    eng.set_state(sa, S.IKE_AUTH_I)
    eng.log(sa.serial, f"sent IKE_AUTH request to {endpoint_text(sa.remote)} with {ours.text} "
                       f"and {policy.local_id.type_name} '{policy.local_id}'; Child SA "
                       f"#{child.serial} {C.request_details(sa, policy, child.spi_in)} "
                       f"{T.describe_pairs(child.local_ts, child.remote_ts)}")


def process_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                     o: Outstanding) -> None:
    policy = sa.policy
    idr = auth = None
    certs: list[bytes] = []
    for p in inb.payloads:
        if type(p) is IDr and idr is None:
            idr = p
        elif type(p) is AUTH and auth is None:
            auth = p
        elif type(p) is CERT and p.encoding == 4:
            certs.append(p.data)
    assert idr is not None and auth is not None
    try:
        peer = Identity.of(idr.id_type, idr.data)
        if policy.remote_id is not None and peer.key != policy.remote_id.key:
            raise AuthFailure(f"Peer ID '{peer}' mismatched on first found connection and "
                              "no better connection found")
        how = check_auth(eng, sa, peer, auth, certs)
    except (AuthFailure, IdentityError) as e:
        for line in getattr(e, "lines", ()):
            eng.log(sa.serial, line)
        eng.log(sa.serial, str(e) if isinstance(e, AuthFailure)
                else f"authentication failed: responder ID payload invalid: {e}")
        eng.log(sa.serial, f"encountered fatal error in state {sa.state.name}", RC_FATAL)
        eng.teardown_ike(sa, "authentication failed", f"deleting IKE SA ({sa.state.story})",
                         rc=RC_FATAL)
        return
    _established(eng, sa, peer, how, now)
    if redirect.process_auth_response(eng, sa, inb, now):
        return  # RFC 5685 6: the gateway sent us elsewhere; this IKE SA goes
    child = sa.first_child
    if child is None:
        eng.finish_initiate(sa, True)
        eng.retire_predecessor(sa, now)
        return
    notes = notifies_of(inb.payloads)
    for kind in notes:
        if kind in C.CHILD_ERRORS:
            eng.log(child.serial, f"IKE_AUTH response rejected Child SA with "
                                  f"{NotifyType(kind).name}")
            eng.teardown_child(child, "rejected by peer")
            eng.finish_initiate(sa, False)
            eng.retire_predecessor(sa, now)
            return
    if policy.cp_client and not CP_.process_reply(eng, child, inb.payloads):
        eng.log(sa.serial, "IKE SA established but initiator rejected Child SA response")
        _reject_child(eng, sa, child, now)
        return
    result = C.check_response(eng, sa, child, inb.payloads)
    if isinstance(result, str):
        eng.log(sa.serial, result)
        eng.log(sa.serial, "IKE SA established but initiator rejected Child SA response")
        _reject_child(eng, sa, child, now)
        return
    chosen, local_ts, remote_ts, mode = result
    cpi = C.peer_ipcomp(policy, inb.payloads, responder=False)
    if isinstance(cpi, str):
        eng.log(sa.serial, cpi)
        eng.log(sa.serial, "IKE SA established but initiator rejected Child SA response")
        _reject_child(eng, sa, child, now)
        return
    sa_p = next(p for p in inb.payloads if p.payload_type == 33)
    spi = sa_p.proposals[0].spi  # type: ignore[attr-defined]
    child.spi_out = int.from_bytes(spi, "big")
    child.chosen = chosen
    child.local_ts, child.remote_ts, child.mode = local_ts, remote_ts, mode
    child.keys = C.make_keys(sa, child, chosen, cpi_out=cpi)
    sa.awaiting_install = child
    eng.emit(InstallChild(child.serial, sa.serial, child.keys))


def _reject_child(eng: Engine, sa: IkeSa, child: ChildSa, now: float) -> None:
    informational.request_child_delete(eng, child, now)
    eng.finish_initiate(sa, False)


def process_failure_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                             o: Outstanding) -> None:
    """IKE_AUTH response without IDr/AUTH: the responder refused us."""
    notes = [p for p in inb.payloads if type(p) is Notify]
    serious = next((n for n in notes if n.type in (NotifyType.INVALID_SYNTAX,
                                                   NotifyType.AUTHENTICATION_FAILED,
                                                   NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)),
                   None)
    if serious is not None:
        eng.log(sa.serial, "IKE SA authentication request rejected by peer: "
                           f"{NotifyType(serious.type).name}")
    else:
        errors = [n for n in notes if n.is_error]
        if errors:
            name = nname(errors[0].type)
            eng.log(sa.serial, f"IKE_AUTH response contained the error notification {name}")
        else:
            eng.log(sa.serial, "IKE SA authentication request rejected by peer: unrecognized "
                               "response")
    eng.log(sa.serial, f"encountered fatal error in state {sa.state.name}", RC_FATAL)
    eng.teardown_ike(sa, "rejected by peer", f"deleting IKE SA ({sa.state.story})",
                     rc=RC_FATAL)


# ------------------------------------------------------------------ responder


def process_request(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> None:
    idi = idr = auth = None
    certs: list[bytes] = []
    for p in inb.payloads:
        t = type(p)
        if t is IDi and idi is None:
            idi = p
        elif t is IDr and idr is None:
            idr = p
        elif t is AUTH and auth is None:
            auth = p
        elif t is CERT and p.encoding == 4:  # type: ignore[attr-defined]
            certs.append(p.data)  # type: ignore[attr-defined]
        elif t is CERTREQ:
            sa.peer_certreq = True
    assert idi is not None and auth is not None
    try:
        peer = Identity.of(idi.id_type, idi.data)
    except IdentityError as e:
        _auth_failed(eng, sa, inb, f"authentication failed: initiator ID payload invalid: {e}")
        return
    tarzan = None
    if idr is not None:
        try:
            tarzan = Identity.of(idr.id_type, idr.data)
        except IdentityError:
            tarzan = None
    policy = refine(eng, sa, peer, tarzan)
    if policy is None:
        _auth_failed(eng, sa, inb, f"Peer ID '{peer}' mismatched on first found connection "
                                   "and no better connection found")
        return
    if policy is not sa.policy:
        eng.log(sa.serial, f'switched to "{policy.name}"')
        eng.switch_policy(sa, policy)
    try:
        how = check_auth(eng, sa, peer, auth, certs)
        mine = our_auth(eng, sa, peer)
    except AuthFailure as e:
        for line in e.lines:
            eng.log(sa.serial, line)
        _auth_failed(eng, sa, inb, str(e))
        return
    # a road warrior: its SAs belong to an instance for this peer, with its ID filled in
    inst = eng.policies.instantiate(sa.policy, sa.remote[0], peer)
    if inst is not sa.policy:
        eng.switch_policy(sa, inst)
    _established(eng, sa, peer, how, now)
    if sa.policy.uniqueids:
        wipe_old(eng, sa, now)
        if NotifyType.INITIAL_CONTACT in notifies_of(inb.payloads):
            _initial_contact(eng, sa)
    policy = sa.policy
    head: list[Payload] = [IDr(policy.local_id.id_type, policy.local_id.data)]
    head.extend(CERT(4, der) for der in mine.certs)
    head.append(mine.auth)
    moved = redirect.auth_redirect(eng, sa)
    if moved is not None:  # send-redirect=: N(REDIRECT) instead of a Child SA
        eng.debug(sa.serial, "skipping child; redirect response")
        _respond(eng, sa, inb.message_id, [moved, *head])
        return
    present = {p.payload_type for p in inb.payloads}
    if not {33, 44, 45} <= present:  # SA, TSi, TSr: no Child SA asked for
        _respond(eng, sa, inb.message_id, head)
        return
    payloads = inb.payloads
    reply: list[Payload] = []
    leasing = CP_.lease_for_request(eng, sa, payloads) if policy.cp_server else None
    if isinstance(leasing, tuple):  # the lease, not the peer's TSi, is its end of the Child SA
        cp_reply, payloads, leased = leasing
        reply.append(cp_reply)
        sa.policy = replace(policy, remote_ts=leased, cache={})  # still the same connection
    result = leasing if isinstance(leasing, int) else C.choose(eng, sa, payloads)
    if isinstance(result, int):
        eng.log(sa.serial, f"responding to IKE_AUTH message (ID {inb.message_id}) from "
                           f"{endpoint_text(sa.remote)} with encrypted notification "
                           f"{nname(result)}")
        _respond(eng, sa, inb.message_id, [*head, notify(result)])
        return
    head.extend(reply)  # CP(CFG_REPLY) goes before the SA payload
    policy, chosen, local_ts, remote_ts, mode = result
    cpi = C.peer_ipcomp(policy, payloads, responder=True)
    if isinstance(cpi, str):
        eng.log(sa.serial, f"{cpi}; responding to IKE_AUTH message (ID {inb.message_id}) "
                           f"from {endpoint_text(sa.remote)} with encrypted notification "
                           "NO_PROPOSAL_CHOSEN")
        _respond(eng, sa, inb.message_id, [*head, notify(NotifyType.NO_PROPOSAL_CHOSEN)])
        return
    if policy.is_template:  # the selectors moved it to another road-warrior template
        policy = eng.policies.instantiate(policy, sa.remote[0], peer)
        if policy is not sa.policy:
            eng.switch_policy(sa, policy)
    child = ChildSa(eng.next_serial(), sa, policy, RESPONDER, S.NEW_CHILD_R0,
                    local_ts=local_ts, remote_ts=remote_ts, mode=mode, chosen=chosen)
    child.spi_in = eng.child_spi()
    child.spi_out = int.from_bytes(chosen.spi, "big")
    eng.children[child.serial] = child
    sa.children[child.serial] = child
    sa.first_child = child
    eng.emit(SaCreated(child.serial, "child", sa.serial, policy, RESPONDER, sa.local,
                       sa.remote, child.state))
    child.keys = C.make_keys(sa, child, chosen, cpi_out=cpi)
    sa.awaiting_install = (child, inb.message_id, ExchangeType.IKE_AUTH, head, [], 0)
    eng.emit(InstallChild(child.serial, sa.serial, child.keys))


def wipe_old(eng: Engine, sa: IkeSa, now: float) -> None:
    """uniqueids=yes: the new IKE SA replaces the SAs of older instances of the same
    connection with the same IDs (Libreswan's wipe_old_connections(); a new SA of the
    very same connection leaves the old one alone, as there)."""
    policy = sa.policy
    if policy.remote_id is None or policy.is_template:
        return
    new_null = policy.remote_auth == "null"
    doomed: set[int] = set()
    for serial in list(eng.by_name.get(policy.name, ())):
        other = eng.ike_sas[serial]
        op = other.policy
        if (other is sa or other.dying or op.handle is policy.handle or op.name != policy.name
                or op.is_template or op.remote_id is None
                or op.remote_id.key != policy.remote_id.key
                or op.local_id.key != policy.local_id.key):
            continue
        old_null = op.remote_auth == "null"
        if new_null and not old_null:
            eng.log(sa.serial, "cannot replace old authenticated connection with authnull "
                               "connection")
            continue
        if new_null and old_null and op.remote_addr != policy.remote_addr:
            eng.log(sa.serial, "NULL auth ID for different IP's cannot replace each other")
            continue
        doomed.add(other.serial)
    for serial in sorted(doomed):
        other = eng.ike_sas.get(serial)
        if other is not None and not other.dying:
            eng.debug(sa.serial, f"unorienting old connection with same IDs: #{serial}")
            eng._delete_ike(other, now, notify=True, wait=False)  # noqa: SLF001


def _initial_contact(eng: Engine, sa: IkeSa) -> None:
    """N(INITIAL_CONTACT) with uniqueids=yes: the connection's established Child SA from
    before is gone on the peer; drop it without telling it (Libreswan deletes just that
    one, skipping the delete notification)."""
    handle = sa.policy.handle
    old = [c for c in eng.children.values()
           if c.established and c.ike is not sa and c.policy.handle is handle]
    if old:
        newest = max(old, key=lambda c: c.serial)
        eng.debug(sa.serial, f"initial Contact received, deleting old state #{newest.serial} "
                             f"from connection {sa.policy.name} due to new IKE SA #{sa.serial}")
        eng.teardown_child(newest, "initial contact")


def refine(eng: Engine, sa: IkeSa, peer: Identity, tarzan: Identity | None) -> Policy | None:
    """The connection that best fits the peer's IDi (and our IDr, if the peer sent one):
    the current one if it fits, else another for the same addresses (Libreswan's
    ``refine_host_connection``)."""
    def fits(p: Policy) -> bool:
        return p.remote_id is None or p.remote_id.key == peer.key

    def jane(p: Policy) -> bool:
        return tarzan is None or p.local_id.key == tarzan.key

    cur = sa.policy
    if fits(cur) and jane(cur):
        return cur
    others = [p for p in eng.policies.for_peer(sa.local[0], sa.remote[0], peer) if fits(p)]
    for p in others:
        if jane(p):
            return p
    if fits(cur):
        return cur
    return others[0] if others else None


def _auth_failed(eng: Engine, sa: IkeSa, inb: Inbound, why: str) -> None:
    eng.log(sa.serial, why)
    eng.log(sa.serial, f"responding to IKE_AUTH message (ID {inb.message_id}) from "
                       f"{endpoint_text(sa.remote)} with encrypted notification "
                       "AUTHENTICATION_FAILED")
    eng.respond_error(sa, inb, NotifyType.AUTHENTICATION_FAILED)
    eng.teardown_ike(sa, "authentication failed")


def _respond(eng: Engine, sa: IkeSa, msgid: int, inner: list[Payload],
             exchange: int = ExchangeType.IKE_AUTH) -> None:
    iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
    eng.send_response(sa, msgid, build_sk(sa, exchange, msgid, inner, True, iv))


# ------------------------------------------------------------------ both


def _established(eng: Engine, sa: IkeSa, peer: Identity, how: str, now: float) -> None:
    from .ike_sa_init import newest

    sa.established = True
    sa.peer_id = peer
    eng.arm(sa, "DISCARD", None)
    eng.set_state(sa, S.ESTABLISHED_IKE_SA)
    role = "initiator" if sa.is_initiator else "responder"
    eng.log(sa.serial, f"{role} established IKE SA; authenticated peer {how}")
    eng.emit(IkeEstablished(sa.serial, _id_display(peer), newest(sa.chosen),  # type: ignore[arg-type]
                            sa.policy.ike_lifetime))
    schedule_lifetime(eng, sa, sa.policy.ike_lifetime, now)
    if sa.policy.dpd_delay > 0:
        eng.arm(sa, "LIVENESS", now + sa.policy.dpd_delay)


def _id_display(peer: Identity) -> str:
    return peer.text if peer.id_type != IdType.NULL else "ID_NULL"


def schedule_lifetime(eng: Engine, sa: IkeSa | ChildSa, lifetime: float, now: float) -> None:
    """REKEY before the end and REPLACE at it (EXPIRE when rekey=no), with Libreswan's
    margins: initiator margin * (100 + random fuzz)%, responder margin / 2."""
    policy = sa.policy
    if not policy.rekey:
        eng.arm(sa, "EXPIRE", now + lifetime)
        return
    if sa.role == INITIATOR:
        fuzz = eng.rand(1)[0] % (policy.rekey_fuzz + 1) if policy.rekey_fuzz else 0
        margin = policy.rekey_margin * (100 + fuzz) / 100
    else:
        margin = policy.rekey_margin / 2
    if lifetime > margin:
        eng.arm(sa, "REKEY", now + lifetime - margin)
    eng.arm(sa, "REPLACE", now + lifetime)


def child_installed(eng: Engine, child: ChildSa, error: str | None, now: float) -> None:
    """The kernel answered ``InstallChild``."""
    sa = child.ike
    pending = sa.awaiting_install
    sa.awaiting_install = None
    if sa.dying or child.serial not in eng.children:
        return
    keys = child.keys
    assert keys is not None
    if child.role == RESPONDER:
        assert isinstance(pending, tuple)
        _, msgid, exchange, head, mid, rekeyed = pending
        if error is not None:
            # Libreswan answers a failed install with TS_UNACCEPTABLE; the IKE SA stays up
            eng.log(sa.serial, f"responding to {ExchangeType(exchange).name} message (ID "
                               f"{msgid}) from {endpoint_text(sa.remote)} with encrypted "
                               "notification TS_UNACCEPTABLE")
            _respond(eng, sa, msgid, [*head, notify(NotifyType.TS_UNACCEPTABLE)], exchange)
            eng.teardown_child(child, "kernel refused")
            return
        child.installed = True
        inner = [*head, child_sa_payload(child), *mid]
        inner.extend(C.ts_payloads(child.local_ts, child.remote_ts, initiator=False))
        if child.mode == "transport":
            inner.append(notify(NotifyType.USE_TRANSPORT_MODE))
        if keys.cpi_in:  # we accepted the peer's IPCOMP: our CPI (last, as Libreswan)
            inner.append(C.ipcomp_notify(keys.cpi_in))
        _respond(eng, sa, msgid, inner, exchange)
        _child_up(eng, child, keys, now, rekeyed)
        return
    if error is not None:
        # the line naming the SA and the kernel's reason comes from the caller
        eng.log(child.serial, "IKE SA established but the Child SA could not be installed; "
                              "deleting it")
        _reject_child(eng, sa, child, now)
        return
    child.installed = True
    _child_up(eng, child, keys, now)
    eng.finish_initiate(sa, True)
    eng.retire_predecessor(sa, now)


_ACCEPTED: dict[tuple, tuple[bytes, int]] = {}


def child_sa_payload(child: ChildSa) -> Payload:
    """The accepted proposal with our SPI; encoded once per distinct choice."""
    c = child.chosen
    assert c is not None
    key = (c.number, c.protocol, c.encr, c.encr_keylen, c.prf, c.integ, c.ke, c.sn,
           c.addke, c.implied)
    got = _ACCEPTED.get(key)
    if got is None:
        body = c.to_sa_proposal(b"\0\0\0\0").encode(True)
        if len(_ACCEPTED) > 1024:
            _ACCEPTED.clear()
        got = _ACCEPTED[key] = (body, 8)
    body, off = got
    return GenericPayload(PayloadType.SA, body[:off] + child.spi_in.to_bytes(4, "big")
                          + body[off + 4:])


def _child_up(eng: Engine, child: ChildSa, keys: object, now: float, rekeyed: int = 0) -> None:
    child.established = True
    eng.set_state(child, S.ESTABLISHED_CHILD_SA)
    eng.log(child.serial, C.established_line(child, child.keys, rekeyed))  # type: ignore[arg-type]
    eng.emit(ChildEstablished(child.serial, child.ike.serial, child.keys))  # type: ignore[arg-type]
    schedule_lifetime(eng, child, child.policy.ipsec_lifetime, now)
