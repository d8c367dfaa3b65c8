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
from ..proposals import select_proposal
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
    if any(prop.protocol == ProtocolId.IKE for prop in sa_p.proposals) and tsi is None:
        _rekey_ike(eng, sa, inb, sa_p, nonce.data, ke, now)
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
        policy = old.policy
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
    nr = eng.rand(eng.config.nonce_size)
    child = ChildSa(eng.next_serial(), sa, policy, RESPONDER, S.NEW_CHILD_R0,
                    local_ts=local_ts, remote_ts=remote_ts, mode=mode, chosen=chosen)
    child.spi_in = eng.child_spi()
    child.spi_out = int.from_bytes(chosen.spi, "big")
    eng.children[child.serial] = child
    sa.children[child.serial] = child
    eng.emit(SaCreated(child.serial, "child", sa.serial, policy, RESPONDER, sa.local,
                       sa.remote, child.state))
    child.keys = C.make_keys(sa, child, chosen, ni, nr, shared)
    sa.awaiting_install = (child, inb.message_id, _XCHG, [], [Nonce(nr), *ke_out],
                           old.serial if old is not None else 0)
    eng.emit(InstallChild(child.serial, sa.serial, child.keys))


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
    for child in list(sa.children.values()):  # the Child SAs now belong to the new IKE SA
        child.ike = new
        new.children[child.serial] = child
        eng.emit(ParentChanged(child.serial, new.serial))
    sa.children.clear()
    sa.first_child = None
    from .ike_auth import schedule_lifetime
    from .ike_sa_init import newest, secured

    eng.log(new.serial, f"responder rekeyed IKE SA #{sa.serial} {secured(chosen)}")
    eng.emit(IkeEstablished(new.serial, sa.peer_id.text if sa.peer_id else "",  # type: ignore[union-attr]
                            newest(chosen), policy.ike_lifetime))
    schedule_lifetime(eng, new, policy.ike_lifetime, now)
    for event in ("REKEY", "REPLACE", "EXPIRE", "LIVENESS"):
        eng.arm(sa, event, None)  # the old SA waits for the initiator's delete
    eng.arm(sa, "EXPIRE", now + max(policy.retransmit_timeout, 30.0))
