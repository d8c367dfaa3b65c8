"""CREATE_CHILD_SA (RFC 7296 1.3, 2.17, 2.18), responder side.

Peers rekey with it (strongSwan rekeys Child SAs hourly by default), so pyswan answers all
three variants:

* new Child SA:    SK{SA, Ni, [KEi], TSi, TSr}          -> SK{SA, Nr, [KEr], TSi, TSr}
* rekey Child SA:  SK{N(REKEY_SA), SA, Ni, [KEi], TSi, TSr} -> the same; the initiator then
  deletes the old Child SA with an INFORMATIONAL exchange
* rekey IKE SA:    SK{SA(IKE, new SPIi), Ni, KEi}       -> SK{SA(IKE, new SPIr), Nr, KEr};
  the Child SAs move to the new IKE SA and the initiator deletes the old one.

When pyswan itself rekeys it replaces the IKE SA instead (``Engine.replace_ike``).
"""

from __future__ import annotations

from struct import Struct
from typing import TYPE_CHECKING

from .. import dh, kdf
from ..cipher import SkCrypto
from ..codec import KE, SA, Nonce, Notify, Payload, TSi, TSr
from ..constants import ExchangeType, NotifyType, ProtocolId
from ..proposal_grammar import ProposalSyntaxError
from ..proposals import match_accepted, select_proposal
from . import child as C
from . import states as S
from . import ts as T
from .actions import IkeEstablished, InstallChild, ParentChanged, SaCreated
from .message import build_sk, endpoint_text, nname, remote_text
from .sa import RESPONDER, ChildSa, IkeSa

if TYPE_CHECKING:
    from .engine import Engine, Inbound

_U16 = Struct("!H")
_XCHG = ExchangeType.CREATE_CHILD_SA


def process_request(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> None:
    sa_p = nonce = ke = tsi = tsr = rekey = None
    transport = False
    for p in inb.payloads:
        t = type(p)
        if t is SA and sa_p is None:
            sa_p = p
        elif t is Nonce and nonce is None:
            nonce = p
        elif t is KE and ke is None:
            ke = p
        elif t is TSi and tsi is None:
            tsi = p
        elif t is TSr and tsr is None:
            tsr = p
        elif t is Notify and p.type == NotifyType.REKEY_SA and rekey is None:
            rekey = p
        elif t is Notify and p.type == NotifyType.USE_TRANSPORT_MODE:
            transport = True
    assert sa_p is not None and nonce is not None
    if sa.deleting:
        _refuse(eng, sa, inb, NotifyType.TEMPORARY_FAILURE, "the IKE SA is being deleted")
        return
    running = sa.outstanding.on_response if sa.outstanding is not None else ""
    if any(prop.protocol == ProtocolId.IKE for prop in sa_p.proposals) and tsi is None:
        if running in ("create_child", "delete_child"):  # RFC 7296 2.25.1
            _refuse(eng, sa, inb, NotifyType.TEMPORARY_FAILURE,
                    "a Child SA exchange of this IKE SA is under way")
            return
        _rekey_ike(eng, sa, inb, sa_p, nonce.data, ke, now)
        return
    if running == "rekey_ike":  # RFC 7296 2.25.2 (and its Child SAs are about to move)
        _refuse(eng, sa, inb, NotifyType.TEMPORARY_FAILURE, "the IKE SA is being rekeyed")
        return
    if tsi is None or tsr is None:
        _refuse(eng, sa, inb, NotifyType.INVALID_SYNTAX, "Child SA request without TSi/TSr")
        return
    _child(eng, sa, inb, sa_p, nonce.data, ke, tsi, tsr, rekey, transport, now)


def _refuse(eng: Engine, sa: IkeSa, inb: Inbound, kind: int, why: str,
            data: bytes = b"") -> None:
    eng.log(sa.serial, f"{why}; responding to CREATE_CHILD_SA message (ID {inb.message_id}) "
                       f"from {endpoint_text(sa.remote)} with encrypted notification "
                       f"{nname(kind)}")
    eng.respond_error(sa, inb, kind, data)


def _child(eng: Engine, sa: IkeSa, inb: Inbound, sa_p: SA, ni: bytes, ke: KE | None,
           tsi: TSi, tsr: TSr, rekey: Notify | None, transport: bool, now: float) -> None:
    old = None
    policy = sa.policy
    if rekey is not None:
        spi = int.from_bytes(rekey.spi, "big") if len(rekey.spi) == 4 else -1
        # REKEY_SA names the SPI the initiator receives on: our outbound SPI
        old = next((c for c in sa.children.values() if c.spi_out == spi), None)
        if old is None:
            _refuse(eng, sa, inb, NotifyType.CHILD_SA_NOT_FOUND,
                    f"rekey of unknown Child SA with SPI {rekey.spi.hex()}")
            return
        if _replaced_or_deleting(eng, sa, old):  # RFC 7296 2.25.1
            _refuse(eng, sa, inb, NotifyType.TEMPORARY_FAILURE,
                    f"Child SA #{old.serial} is already rekeyed or being deleted")
            return
        policy = old.policy
    else:
        policy = C.policy_for_ts(eng, sa, T.selectors(tsi.selectors), T.selectors(tsr.selectors))
    sn = C.esn_options(policy)
    try:
        if ke is not None:
            chosen = select_proposal(policy.esp, sa_p.proposals, default_ke=sa.ke_group,
                                     default_sn=sn)
        else:
            chosen = select_proposal(policy.esp, sa_p.proposals, strip_ke=True, default_sn=sn)
    except ProposalSyntaxError as e:
        _refuse(eng, sa, inb, NotifyType.INVALID_SYNTAX, f"Child SA proposal is corrupt: {e}")
        return
    if chosen is None:
        eng.log(sa.serial, f"no local proposal matches remote proposals {remote_text(sa_p)}")
        _refuse(eng, sa, inb, NotifyType.NO_PROPOSAL_CHOSEN, "no proposal chosen")
        return
    shared = None
    ke_out: list[Payload] = []
    if ke is not None:
        if chosen.ke is None or chosen.ke.ikev2_id != ke.group:
            want = chosen.ke or sa.ke_group
            _refuse(eng, sa, inb, NotifyType.INVALID_KE_PAYLOAD,
                    f"KE payload group {ke.group} is not the accepted {want.fqn}",
                    _U16.pack(want.ikev2_id))
            return
        try:
            mine = eng.key_exchange(chosen.ke)
            shared = mine.shared_secret(ke.data)
        except dh.KeyExchangeError as e:
            _refuse(eng, sa, inb, NotifyType.INVALID_SYNTAX, f"KE payload unusable: {e}")
            return
        ke_out = [KE(chosen.ke.ikev2_id, mine.public_bytes)]
    rule = T.responder_rule(policy.narrowing, policy.is_template)
    remote_ts = T.narrow(policy.remote_ts, T.selectors(tsi.selectors), rule)
    local_ts = T.narrow(policy.local_ts, T.selectors(tsr.selectors), rule)
    if remote_ts is None or local_ts is None:
        _refuse(eng, sa, inb, NotifyType.TS_UNACCEPTABLE, "traffic selectors do not match")
        return
    if policy.mode == "transport" and not transport:
        _refuse(eng, sa, inb, NotifyType.NO_PROPOSAL_CHOSEN, "transport mode required")
        return
    mode = "transport" if transport and policy.mode == "transport" else "tunnel"
    cpi = C.peer_ipcomp(policy, inb.payloads, responder=True)
    if isinstance(cpi, str):
        _refuse(eng, sa, inb, NotifyType.NO_PROPOSAL_CHOSEN, cpi)
        return
    nr = eng.rand(eng.config.nonce_size)
    child = ChildSa(eng.next_serial(), sa, policy, RESPONDER, S.NEW_CHILD_R0,
                    local_ts=local_ts, remote_ts=remote_ts, mode=mode, chosen=chosen)
    child.spi_in = eng.child_spi()
    child.spi_out = int.from_bytes(chosen.spi, "big")
    eng.children[child.serial] = child
    sa.children[child.serial] = child
    eng.emit(SaCreated(child.serial, "child", sa.serial, policy, RESPONDER, sa.local,
                       sa.remote, child.state))
    child.ni, child.nr = ni, nr
    if old is not None:
        child.replaces = old.serial
        ours = eng.children.get(old.successor) if old.successor else None
        if ours is not None and ours.ccsa and not ours.established:
            # both ends rekey it: RFC 7296 2.8.1 decides once ours is done (noted on ours,
            # as the peer may delete the old one before our response comes in)
            ours.collision = child.serial
        else:
            old.successor = child.serial
    child.keys = C.make_keys(sa, child, chosen, ni, nr, shared, cpi_out=cpi)
    sa.awaiting_install = (child, inb.message_id, _XCHG, [], [Nonce(nr), *ke_out],
                           old.serial if old is not None else 0)
    eng.emit(InstallChild(child.serial, sa.serial, child.keys))


def _replaced_or_deleting(eng: Engine, sa: IkeSa, old: ChildSa) -> bool:
    """A peer's rekey of ``old`` comes too soon or too late: it is the peer's side of a
    rekey collision our response has yet to settle (the nonces must be compared while it
    is there), a rekey of it has completed (it waits for its delete), it lost a collision
    (our delete of it is queued), or our delete of it is the exchange under way."""
    new = eng.children.get(old.successor) if old.successor else None
    if new is not None and new.established or old.collision and old.installed:
        return True
    if any(c.collision == old.serial and not c.installed for c in sa.children.values()):
        return True
    o = sa.outstanding
    return o is not None and o.on_response == "delete_child" and o.context == old.serial


def _rekey_ike(eng: Engine, sa: IkeSa, inb: Inbound, sa_p: SA, ni: bytes, ke: KE | None,
               now: float) -> None:
    policy = sa.policy
    try:
        chosen = select_proposal(policy.ike, sa_p.proposals, expect_spi=True)
    except ProposalSyntaxError as e:
        _refuse(eng, sa, inb, NotifyType.INVALID_SYNTAX, f"IKE proposal is corrupt: {e}")
        return
    if chosen is None:
        eng.log(sa.serial, f"no local proposal matches remote proposals {remote_text(sa_p)}")
        _refuse(eng, sa, inb, NotifyType.NO_PROPOSAL_CHOSEN, "no proposal chosen for IKE rekey")
        return
    if ke is None or chosen.ke is None or chosen.ke.ikev2_id != ke.group:
        want = chosen.ke or sa.ke_group
        _refuse(eng, sa, inb, NotifyType.INVALID_KE_PAYLOAD,
                f"IKE rekey KE payload is not for the accepted {want.fqn}",
                _U16.pack(want.ikev2_id))
        return
    try:
        mine = eng.key_exchange(chosen.ke)
        shared = mine.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        _refuse(eng, sa, inb, NotifyType.INVALID_SYNTAX, f"KE payload unusable: {e}")
        return
    nr = eng.rand(eng.config.nonce_size)
    new = IkeSa(eng.next_serial(), RESPONDER, policy, S.ESTABLISHED_IKE_SA, sa.local,
                sa.remote, chosen.spi, eng.random_spi(), created=now)
    new.ni, new.nr, new.chosen, new.ke_group = ni, nr, chosen, chosen.ke
    new.peer_id, new.established = sa.peer_id, True
    new.nat_local, new.nat_remote = sa.nat_local, sa.nat_remote
    new.fragmentation = sa.fragmentation  # agreed in IKE_SA_INIT; a rekey keeps it
    suite = SkCrypto(chosen.encr, chosen.key_bits, None if chosen.aead else chosen.integ)
    keys = kdf.derive_rekey_ike_keys(sa.prf, sa.sk_d, chosen.prf, suite.encr_key_bytes,
                                     suite.integ_key_bytes, shared, ni, nr, new.spi_i,
                                     new.spi_r)
    new.prf, new.ike_keys = chosen.prf, keys
    new.sk_d, new.sk_pi, new.sk_pr = keys.sk_d, keys.sk_pi, keys.sk_pr
    new.unseal = suite.bind(keys.sk_ei, keys.sk_ai or None)
    new.seal = suite.bind(keys.sk_er, keys.sk_ar or None)
    # answer on the old SA first: the response belongs to it
    out = [SA([chosen.to_sa_proposal(new.spi_r)]), Nonce(nr),
           KE(chosen.ke.ikev2_id, mine.public_bytes)]
    iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
    eng.send_response(sa, inb.message_id, build_sk(sa, _XCHG, inb.message_id, out, True, iv))
    eng.register(new)
    eng.emit(SaCreated(new.serial, "ike", 0, policy, RESPONDER, new.local, new.remote,
                       new.state))
    ours = eng.ike_sas.get(sa.successor) if sa.successor else None
    if ours is not None and ours.rekey_of == sa.serial:
        sa.collision = new.serial  # both ends rekey it: RFC 7296 2.8.1 decides
        new.collision_of = sa.serial
    else:
        sa.successor = new.serial  # rekeyed: it only waits for the peer's delete now
    _move_children(eng, sa, new, now)  # the Child SAs now belong to the new IKE SA
    sa.first_child = None
    from .ike_auth import schedule_lifetime
    from .ike_sa_init import newest, secured

    eng.log(new.serial, f"responder rekeyed IKE SA #{sa.serial} {secured(chosen)}")
    eng.emit(IkeEstablished(new.serial, sa.peer_id.text if sa.peer_id else "",  # type: ignore[union-attr]
                            newest(chosen), policy.ike_lifetime))
    schedule_lifetime(eng, new, policy.ike_lifetime, now)
    if policy.dpd_delay > 0:  # dpddelay= probes go on with the new SA (the old one stops)
        eng.arm(new, "LIVENESS", now + policy.dpd_delay)
    for event in ("REKEY", "REPLACE", "EXPIRE", "LIVENESS"):
        eng.arm(sa, event, None)  # the old SA waits for the initiator's delete
    eng.arm(sa, "EXPIRE", now + max(policy.retransmit_timeout, 30.0))


# ------------------------------------------------------------------ initiator
#
# new Child SA:   SK{SA, Ni, [KEi], TSi, TSr}                 (a second connection sharing
#                                                              the IKE SA, leftsubnets=)
# rekey Child SA: SK{N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}    (pfs= decides KEi; then the
#                                                              old Child SA is deleted)
# rekey IKE SA:   SK{SA(IKE, new SPIi), Ni, KEi}              (the Child SAs move to the
#                                                              new IKE SA; the old is deleted)
#
# Collisions (RFC 7296 2.8.1, 2.25): a rekey of a Child SA the peer is rekeying too is
# resolved by the nonces (the exchange with the lowest nonce loses: its initiator deletes
# the SA it created); a request for an SA being deleted answers TEMPORARY_FAILURE or
# CHILD_SA_NOT_FOUND and the requester gives up (the delete wins).


def _child_proposals(eng: Engine, sa: IkeSa, policy, spi: int) -> tuple[Payload, object]:
    """Our ESP proposals (KE per pfs=, the IKE SA's group when esp= names none) and the
    KE group to send (None without PFS)."""
    if not policy.pfs:
        return C.sa_payload(policy, spi), None
    from ..proposals import to_sa_proposals

    proposals = to_sa_proposals(policy.esp, policy.esp.protocol_id, spi.to_bytes(4, "big"),
                                default_ke=sa.ke_group, default_sn=C.esn_options(policy))
    group = None
    for p in policy.esp.proposals:
        if p.ke:
            group = p.ke[0]
            break
    group = group or sa.ke_group
    if getattr(group, "ikev2_id", 0) == 0:  # esp=...-none: no PFS after all
        return C.sa_payload(policy, spi), None
    return SA(proposals), group


def initiate_child(eng: Engine, sa: IkeSa, policy, now: float,
                   replacing: ChildSa | None = None, initiated: bool = False
                   ) -> ChildSa | None:
    """Start a CREATE_CHILD_SA exchange for a new Child SA of ``policy`` on ``sa`` or, with
    ``replacing``, to rekey that Child SA."""
    from .sa import INITIATOR

    if not sa.established or sa.dying or sa.deleting:
        return None
    if replacing is not None:
        policy = replacing.policy
        local_ts, remote_ts, mode = replacing.local_ts, replacing.remote_ts, replacing.mode
        state = S.REKEY_CHILD_I1
    else:
        local_ts, remote_ts, mode = policy.local_ts, policy.remote_ts, policy.mode
        state = S.NEW_CHILD_I1
    child = ChildSa(eng.next_serial(), sa, policy, INITIATOR, S.NEW_CHILD_I0,
                    local_ts=local_ts, remote_ts=remote_ts, mode=mode)
    child.ccsa = True
    child.initiated = initiated
    child.spi_in = eng.child_spi()
    child.ni = eng.rand(eng.config.nonce_size)
    eng.children[child.serial] = child
    sa.children[child.serial] = child
    eng.emit(SaCreated(child.serial, "child", sa.serial, policy, INITIATOR, sa.local,
                       sa.remote, child.state))
    if replacing is None:
        eng.log(child.serial, f"initiating Child SA using IKE SA #{sa.serial}")
    sa_payload, group = _child_proposals(eng, sa, policy, child.spi_in)
    inner: list[Payload] = []
    if replacing is not None:
        replacing.successor = child.serial
        child.replaces = replacing.serial
        inner.append(Notify(policy.esp.protocol_id, replacing.spi_in.to_bytes(4, "big"),
                            NotifyType.REKEY_SA))
        eng.log(child.serial, f"initiating rekey to replace Child SA #{replacing.serial}")
    inner += [sa_payload, Nonce(child.ni)]
    if group is not None:
        child.ke = eng.key_exchange(group)
        inner.append(KE(group.ikev2_id, child.ke.public_bytes))
    inner.extend(C.ts_payloads(local_ts, remote_ts, initiator=True))
    if C.compress(policy):
        inner.append(C.ipcomp_notify(C.ipcomp_cpi(child.spi_in)))
    if mode == "transport":
        from .message import notify

        inner.append(notify(NotifyType.USE_TRANSPORT_MODE))
    eng.start_request(sa, _XCHG, lambda msgid: _build(eng, sa, msgid, inner),
                      "create_child", now, context=child)
    eng.set_state(child, state)
    if replacing is not None:
        eng.log(child.serial, "sent CREATE_CHILD_SA request to rekey IPsec SA")
    else:
        eng.log(child.serial, f"sent CREATE_CHILD_SA request to create Child SA using IKE SA "
                              f"#{sa.serial} {C.request_details(sa, policy, child.spi_in)} "
                              f"{T.describe_pairs(local_ts, remote_ts)}")
    return child


def initiate_rekey_ike(eng: Engine, sa: IkeSa, now: float, initiated: bool = False
                       ) -> IkeSa | None:
    """Start a CREATE_CHILD_SA exchange rekeying ``sa`` (new SPIs, new keys)."""
    from .sa import INITIATOR

    if not sa.established or sa.dying or sa.deleting or sa.successor \
            or sa.chosen is None or sa.ke_group is None:
        return None
    policy = sa.policy
    new = IkeSa(eng.next_serial(), INITIATOR, policy, S.REKEY_IKE_I1, sa.local, sa.remote,
                eng.random_spi(), created=now)
    new.rekey_of = sa.serial
    new.predecessor = sa.serial
    new.initiated = initiated
    new.ni = eng.rand(eng.config.nonce_size)
    new.ke_group = sa.ke_group
    new.ke = eng.key_exchange(sa.ke_group)
    new.nat_local, new.nat_remote = sa.nat_local, sa.nat_remote
    new.fragmentation = sa.fragmentation  # agreed in IKE_SA_INIT; a rekey keeps it
    sa.successor = new.serial
    eng.ike_sas[new.serial] = new  # found by serial (timers, status); by SPI once up
    eng.emit(SaCreated(new.serial, "ike", 0, policy, INITIATOR, new.local, new.remote,
                       new.state))
    eng.log(new.serial, f"initiating rekey to replace IKE SA #{sa.serial}")
    from ..proposals import to_sa_proposals

    # propose what was agreed before first (its KE is the one we send), then the rest
    first = sa.chosen.to_sa_proposal(new.spi_i)
    rest = [p for p in to_sa_proposals(policy.ike, ProtocolId.IKE, new.spi_i,
                                       default_ke=sa.ke_group)
            if any(t.type == 4 and t.id == sa.ke_group.ikev2_id for t in p.transforms)]
    proposals = [first]
    for p in rest:
        if len(proposals) < 64 and (p.transforms != first.transforms):
            proposals.append(p)
    for i, p in enumerate(proposals, 1):
        p.number = i
    inner: list[Payload] = [SA(proposals), Nonce(new.ni),
                            KE(sa.ke_group.ikev2_id, new.ke.public_bytes)]
    eng.start_request(sa, _XCHG, lambda msgid: _build(eng, sa, msgid, inner), "rekey_ike",
                      now, context=new)
    eng.log(new.serial, f"sent CREATE_CHILD_SA request to rekey IKE SA #{sa.serial} (using "
                        f"IKE SA #{sa.serial})")
    return new


def _build(eng: Engine, sa: IkeSa, msgid: int, inner: list[Payload]) -> bytes:
    iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
    return build_sk(sa, _XCHG, msgid, inner, False, iv)


def process_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float, o) -> None:
    if o.on_response == "rekey_ike":
        _rekey_ike_response(eng, sa, inb, now, o.context)
    elif o.on_response == "create_child":
        _child_response(eng, sa, inb, now, o.context)
    else:
        eng.debug(sa.serial, f"unexpected CREATE_CHILD_SA response for {o.on_response}")


def _error(inb: Inbound) -> Notify | None:
    return next((p for p in inb.payloads if type(p) is Notify and p.is_error), None)


def _child_failed(eng: Engine, child: ChildSa, why: str, now: float,
                  retry: bool = False) -> None:
    eng.log(child.serial, why)
    old = eng.children.get(child.replaces) if child.replaces else None
    theirs = eng.children.get(child.collision) if child.collision else None
    if old is not None and old.successor == child.serial and theirs is not None:
        old.successor = theirs.serial  # the peer's rekey of it went through instead
    elif old is not None and old.successor == child.serial:
        old.successor = 0  # the old one may try again (its REPLACE still stands)
        ike = old.ike
        if retry and old.established and ike.established and not ike.dying \
                and not ike.deleting:
            # a collision (RFC 7296 2.25): rekey again a little later; the jitter keeps
            # it from meeting the peer's retry of whatever collided with it
            base = max(1.0, min(10.0, old.policy.retransmit_timeout / 6))
            eng.arm(old, "REKEY", now + base * (1 + eng.rand(1)[0] / 255))
    if child.initiated:
        eng.emit(_done(child.serial, False))
    eng.teardown_child(child, "failed")


def _done(serial: int, ok: bool):
    from .actions import InitiateDone

    return InitiateDone(serial, ok)


def _child_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float, child: ChildSa) -> None:
    if eng.children.get(child.serial) is not child:
        # deleted while the exchange ran: the peer's new Child SA must go too, and the one
        # it was to replace may rekey again
        old = eng.children.get(child.replaces) if child.replaces else None
        if old is not None and old.successor == child.serial:
            old.successor = 0
        sa_p = next((p for p in inb.payloads if type(p) is SA), None)
        if sa_p is not None and sa_p.proposals and len(sa_p.proposals[0].spi) == 4:
            from . import informational

            eng.log(sa.serial, f"Child SA #{child.serial} was deleted while being "
                               "negotiated; deleting the peer's new Child SA")
            informational.request_spi_delete(eng, sa, child.spi_in, now)
        return
    err = _error(inb)
    if err is not None:
        _child_failed(eng, child, f"CREATE_CHILD_SA failed with error notification "
                                  f"{nname(err.type)}", now,
                      retry=err.type == NotifyType.TEMPORARY_FAILURE)
        return
    nonce = next((p for p in inb.payloads if type(p) is Nonce), None)
    ke = next((p for p in inb.payloads if type(p) is KE), None)
    if nonce is None:
        _child_failed(eng, child, "CREATE_CHILD_SA response is missing Nr", now)
        return
    policy = child.policy
    result = C.check_response(eng, sa, child, inb.payloads, pfs=child.ke is not None)
    if isinstance(result, str):
        _child_failed(eng, child, result, now)
        return
    chosen, local_ts, remote_ts, mode = result
    cpi = C.peer_ipcomp(policy, inb.payloads, responder=False)
    if isinstance(cpi, str):
        _child_failed(eng, child, cpi, now)
        return
    shared = None
    if child.ke is not None:
        if ke is None or chosen.ke is None or ke.group != chosen.ke.ikev2_id:
            _child_failed(eng, child, "CREATE_CHILD_SA response has no acceptable KE payload",
                          now)
            return
        try:
            shared = child.ke.shared_secret(ke.data)
        except dh.KeyExchangeError as e:
            _child_failed(eng, child, f"KE payload unusable: {e}", now)
            return
    child.nr = nonce.data
    child.spi_out = int.from_bytes(chosen.spi, "big")
    child.chosen = chosen
    child.local_ts, child.remote_ts, child.mode = local_ts, remote_ts, mode
    child.keys = C.make_keys(sa, child, chosen, child.ni, child.nr, shared, cpi_out=cpi)
    child.ke = None
    del policy
    sa.awaiting_install = child
    eng.emit(InstallChild(child.serial, sa.serial, child.keys))


def child_installed(eng: Engine, child: ChildSa, error: str | None, now: float) -> None:
    """The kernel answered for a Child SA we negotiated with CREATE_CHILD_SA."""
    from . import informational
    from .ike_auth import _child_up

    sa = child.ike
    sa.awaiting_install = None
    if error is not None:
        eng.log(child.serial, "the Child SA could not be installed; deleting it")
        informational.request_child_delete(eng, child, now)
        old = eng.children.get(child.replaces) if child.replaces else None
        if old is not None:
            old.successor = 0
        if child.initiated:
            eng.emit(_done(child.serial, False))
        return
    child.installed = True
    _child_up(eng, child, child.keys, now, child.replaces)
    if child.initiated:
        child.initiated = False
        eng.emit(_done(child.serial, True))
    old = eng.children.get(child.replaces) if child.replaces else None
    theirs = eng.children.get(child.collision) if child.collision else None  # peer's rekey
    child.collision = 0
    if theirs is not None:
        # simultaneous rekey (RFC 7296 2.8.1): the exchange with the lowest nonce made the
        # redundant SA; whoever initiated that exchange deletes it, the other end the old
        if min(child.ni, child.nr) < min(theirs.ni, theirs.nr):
            eng.log(child.serial, f"simultaneous rekey of Child SA #{child.replaces}: this "
                                  "exchange has the lowest nonce; deleting its Child SA")
            if old is not None:
                old.successor = theirs.serial
            child.replaces = 0
            child.collision = theirs.serial  # lost to it: our delete of it is under way
            informational.request_child_delete(eng, child, now)
            return
        if old is not None:
            old.successor = child.serial
    if old is not None and old.ike is sa and not sa.dying:
        eng.log(old.serial, f"deleting {'established' if old.established else 'larval'} "
                            f"Child SA using IKE SA #{sa.serial}")
        informational.request_child_delete(eng, old, now, quiet=True)


def _rekey_ike_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float, new: IkeSa) -> None:
    if eng.ike_sas.get(new.serial) is not new or new.dying:
        return
    err = _error(inb)
    sa_p = next((p for p in inb.payloads if type(p) is SA), None)
    nonce = next((p for p in inb.payloads if type(p) is Nonce), None)
    ke = next((p for p in inb.payloads if type(p) is KE), None)

    def fail(why: str) -> None:
        eng.log(new.serial, why)
        sa.successor = 0
        eng.teardown_ike(new, "failed")

    if err is not None:
        fail(f"CREATE_CHILD_SA failed with error notification {nname(err.type)}")
        if err.type == NotifyType.TEMPORARY_FAILURE and not sa.dying:
            # a collision: try again a little later (RFC 7296 2.25)
            eng.arm(sa, "REKEY", now + max(1.0, min(10.0, sa.policy.retransmit_timeout / 6)))
        return
    if sa_p is None or nonce is None or ke is None:
        fail("CREATE_CHILD_SA rekey IKE SA response is missing SA, Nr or KEr")
        return
    try:
        chosen = match_accepted(sa.policy.ike, sa_p.proposals, expect_spi=True,
                                default_ke=sa.ke_group)
    except ProposalSyntaxError as e:
        fail(f"accepted proposal is invalid: {e}")
        return
    if chosen is None or chosen.ke is None or chosen.ke.ikev2_id != ke.group \
            or ke.group != sa.ke_group.ikev2_id or len(chosen.spi) != 8:
        fail(f"remote accepted the invalid proposal {remote_text(sa_p)}")
        return
    try:
        shared = new.ke.shared_secret(ke.data)
    except dh.KeyExchangeError as e:
        fail(f"KE payload unusable: {e}")
        return
    new.ke = None
    new.nr = nonce.data
    new.spi_r = chosen.spi
    new.chosen, new.ke_group = chosen, chosen.ke
    new.peer_id, new.established = sa.peer_id, True
    suite = SkCrypto(chosen.encr, chosen.key_bits, None if chosen.aead else chosen.integ)
    keys = kdf.derive_rekey_ike_keys(sa.prf, sa.sk_d, chosen.prf, suite.encr_key_bytes,
                                     suite.integ_key_bytes, shared, new.ni, new.nr,
                                     new.spi_i, new.spi_r)
    new.prf, new.ike_keys = chosen.prf, keys
    new.sk_d, new.sk_pi, new.sk_pr = keys.sk_d, keys.sk_pi, keys.sk_pr
    new.seal = suite.bind(keys.sk_ei, keys.sk_ai or None)
    new.unseal = suite.bind(keys.sk_er, keys.sk_ar or None)
    theirs = eng.ike_sas.get(sa.collision) if sa.collision else None
    sa.collision = 0
    if sa.deleting:
        # deleted (--down) while we rekeyed it: the peer has the new IKE SA, the Child SAs
        # moved to it, so it goes too (our delete of the old one is next in the queue)
        eng.register(new)
        eng._delete_ike(new, now, notify=True, wait=True)
        if theirs is not None and not theirs.dying:  # and so does the peer's rekey of it
            eng._delete_ike(theirs, now, notify=True, wait=True)
        return
    _promote(eng, sa, new, now, f"initiator rekeyed IKE SA #{sa.serial}")
    new.rekey_of = 0
    new.predecessor = 0
    sa.successor = 0
    eng.finish_initiate(new, True)
    if theirs is not None and not theirs.dying:
        # simultaneous IKE SA rekey (RFC 7296 2.8.1): the exchange with the lowest nonce
        # made the redundant IKE SA; its initiator deletes it, the other end the old one
        if min(new.ni, new.nr) < min(theirs.ni, theirs.nr):
            eng.log(new.serial, f"simultaneous rekey of IKE SA #{sa.serial}: this exchange "
                                "has the lowest nonce; deleting its IKE SA")
            _move_children(eng, new, theirs, now)
            eng._delete_ike(new, now, notify=True, wait=True)
            sa.successor = theirs.serial  # the old one waits for the peer's delete
            return
        _move_children(eng, theirs, new, now)
        # the redundant IKE SA is the peer's to delete; should that never come (the peer
        # lost our response with the old IKE SA), it expires (strongSwan does the same)
        for event in ("REKEY", "REPLACE", "LIVENESS"):
            eng.arm(theirs, event, None)
        eng.arm(theirs, "EXPIRE", now + max(sa.policy.retransmit_timeout, 30.0))
    # the old IKE SA goes (telling the peer, waiting for its answer)
    eng._delete_ike(sa, now, notify=True, wait=True)


def abandon_child_exchange(eng: Engine, sa: IkeSa, now: float, queued_only: bool = False
                           ) -> None:
    """``sa`` goes while CREATE_CHILD_SA exchanges of ours for new Child SAs run or wait on
    it (``queued_only``: only those waiting): those Child SAs fail now (one moved to the
    IKE SA that rekeyed ``sa`` would stay larval, the Child SA it rekeys would never rekey
    again, and whoever waits for it would wait for ever)."""
    o = sa.outstanding
    current = o.context if o is not None and o.on_response == "create_child" else None
    doomed = [c for c in sa.children.values() if c.ccsa and c.keys is None
              and c is not current]
    if current is not None and not current.installed and not queued_only:
        doomed.append(current)
    for child in doomed:
        if eng.children.get(child.serial) is child:
            _child_failed(eng, child, f"IKE SA #{sa.serial} is going away; abandoning its "
                                      "CREATE_CHILD_SA exchange", now, retry=True)


def _move_children(eng: Engine, frm: IkeSa, to: IkeSa, now: float) -> None:
    """The Child SAs of ``frm`` now belong to ``to``.  One of ours not negotiated yet
    cannot follow: its request waits in ``frm``'s queue (one in flight holds the IKE SA
    rekey off, RFC 7296 2.25.1), which goes with ``frm``; it is given up, and a rekey is
    tried again soon on ``to``."""
    for child in list(frm.children.values()):
        if child.ccsa and child.keys is None:
            _child_failed(eng, child, f"IKE SA #{frm.serial} was rekeyed before the "
                                      "CREATE_CHILD_SA request went out; abandoning it",
                          now, retry=True)
            continue
        child.ike = to
        to.children[child.serial] = child
        eng.emit(ParentChanged(child.serial, to.serial))
        new = eng.children.get(child.successor) if child.successor else None
        if child.installed and (child.collision or new is not None and new.ccsa
                                and new.installed):
            # our rekey of it is done (or it lost a collision) and its delete may be
            # queued on ``frm`` only: ask again on ``to`` (a duplicate finds nothing)
            from . import informational

            informational.request_child_delete(eng, child, now, quiet=True)
    frm.children.clear()


def redundant_ike_deleted(eng: Engine, sa: IkeSa, now: float) -> None:
    """The peer deletes ``sa``, the IKE SA its rekey made while our rekey of the same IKE
    SA runs: it lost the collision (RFC 7296 2.8.1).  The Child SAs go back to the old
    IKE SA, for our rekey to take over when its response comes."""
    old = eng.ike_sas.get(sa.collision_of) if sa.collision_of else None
    if old is None or old.dying or old.collision != sa.serial:
        return
    old.collision = 0
    _move_children(eng, sa, old, now)
    o = old.outstanding
    if o is not None and "EXPIRE" in old.timers:
        # answering the peer's rekey set the old SA to expire; ours may take its timeout
        grace = max(old.policy.retransmit_timeout, 30.0)
        eng.arm(old, "EXPIRE", max(old.timers["EXPIRE"], o.start + o.timeout + grace))


def _promote(eng: Engine, old: IkeSa, new: IkeSa, now: float, what: str) -> None:
    """The new IKE SA is up: it takes over the Child SAs."""
    from .ike_auth import schedule_lifetime
    from .ike_sa_init import newest, secured

    eng.register(new)
    eng.set_state(new, S.ESTABLISHED_IKE_SA)
    _move_children(eng, old, new, now)
    old.first_child = None
    eng.log(new.serial, f"{what} {secured(new.chosen)}")  # type: ignore[arg-type]
    eng.emit(IkeEstablished(new.serial, old.peer_id.text if old.peer_id else "",
                            newest(new.chosen), new.policy.ike_lifetime))  # type: ignore[arg-type]
    schedule_lifetime(eng, new, new.policy.ike_lifetime, now)
    if new.policy.dpd_delay > 0:
        eng.arm(new, "LIVENESS", now + new.policy.dpd_delay)
    for event in ("REKEY", "REPLACE", "EXPIRE", "LIVENESS"):
        eng.arm(old, event, None)
