"""Quick Mode (RFC 2409 5.5): one IPsec SA pair per exchange, with or without PFS::

    I1  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]   ->
                        <- R1  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
    I2  HDR*, HASH(3)                                  ->

Both ends install the pair (``InstallChild``) before going on: the initiator before
sending HASH(3), the responder before answering (Libreswan installs the inbound half
there and the outbound one after HASH(3); the single ``InstallChild`` action covers both).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import dh
from ..ikev2.actions import ChildEstablished, ChildSaKeys, InstallChild, SaCreated
from ..ikev2.policy import Policy, Selector
from ..proposals import format_proposals
from . import crypto as C
from . import informational
from . import states as S
from .codec import (
    ID,
    KE,
    SA,
    Hash,
    IsakmpDecodeError,
    IsakmpPayload,
    Message,
    Nonce,
    Proposal,
)
from .constants import EncapMode, Exchange, IdType, NotifyType, ProtocolId
from .engine import DISCARD, EXPIRE, REKEY
from .proposals import (
    NoProposalChosen,
    accept_phase2,
    encap_modes,
    pfs_group,
    phase2_sa,
    select_phase2,
)
from .sa import INITIATOR, RESPONDER, IpsecSa, IsakmpSa

if TYPE_CHECKING:
    from .engine import Engine

_TUNNEL_MODES = (EncapMode.TUNNEL, EncapMode.UDP_TUNNEL, EncapMode.UDP_TUNNEL_DRAFTS)


# ------------------------------------------------------------------ selectors <-> IDs


def selector_id(sel: Selector) -> ID:
    """IDci/IDcr for a selector: an address for a host, a subnet, else a range."""
    v4 = sel.version == 4
    net = sel.network()
    if net is not None and net.prefixlen == net.max_prefixlen:
        kind, data = (IdType.IPV4_ADDR if v4 else IdType.IPV6_ADDR), sel.start.packed
    elif net is not None:
        kind = IdType.IPV4_ADDR_SUBNET if v4 else IdType.IPV6_ADDR_SUBNET
        data = net.network_address.packed + net.netmask.packed
    else:
        kind = IdType.IPV4_ADDR_RANGE if v4 else IdType.IPV6_ADDR_RANGE
        data = sel.start.packed + sel.end.packed
    port = sel.start_port if sel.start_port == sel.end_port else 0
    return ID(kind, data, sel.protocol, port)


def id_selector(p: ID) -> Selector | None:
    addrs = p.addresses()
    if addrs is None:
        return None
    lo, hi = (p.port, p.port) if p.port else (0, 0xFFFF)
    return Selector(addrs[0], addrs[1], p.protocol, lo, hi)


def _host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Selector:
    return Selector(addr, addr)


def _peer_side(policy: Policy, sa: IsakmpSa) -> tuple[Selector, ...]:
    """The peer's side of the tunnel a Quick Mode request must name.  A ModeCfg
    server's client proposes the address it was leased, as Libreswan's that.client
    becomes the lease; the conn's remote selector is then the pool's range (or empty
    without rightsubnet=), which the lease must fall in."""
    lease = getattr(policy, "modecfg_lease", None)
    if lease and getattr(policy, "modecfg_server", False):
        addr = ipaddress.ip_address(str(lease))
        pool = policy.remote_ts[:1]
        if not pool or (pool[0].start.version == addr.version
                        and pool[0].start <= addr <= pool[0].end):  # type: ignore[operator]
            return (_host(addr),)
    return policy.remote_ts[:1] or (_host(sa.remote[0]),)


# ------------------------------------------------------------------ shared helpers


def _prf_a(sa: IsakmpSa) -> tuple:
    assert sa.choice is not None and sa.keys is not None
    return sa.choice.prf, sa.keys.a


def _register(engine: Engine, child: IpsecSa) -> None:
    engine.children[child.serial] = child
    child.isakmp.children[child.serial] = child
    sa = child.isakmp
    engine.emit(SaCreated(child.serial, "child", sa.serial, child.policy, child.role,
                          sa.local, sa.remote, child.state))


def _policy_story(policy: Policy) -> str:
    rsa = getattr(policy, "local_auth", "secret") == "rsasig"
    parts = ["IKEv1", "RSASIG" if rsa else "PSK", "ENCRYPT"]
    if policy.mode == "tunnel":
        parts.append("TUNNEL")
    if policy.pfs:
        parts.append("PFS")
    parts += ["UP", "IKE_FRAG_ALLOW"]
    parts += {"yes": ["ESN_YES"], "no": ["ESN_NO"]}.get(policy.esn, ["ESN_NO", "ESN_YES"])
    return "+".join(parts)


def _ts_story(local: tuple[Selector, ...], remote: tuple[Selector, ...]) -> str:
    return f"{','.join(map(str, local))}==={','.join(map(str, remote))}"


def _keys(child: IpsecSa) -> ChildSaKeys:
    sa, c = child.isakmp, child.choice
    assert c is not None and sa.keys is not None and sa.choice is not None
    prf = sa.choice.prf
    e = c.encr_keymat
    size = e + c.integ_keymat
    km_in = C.keymat(prf, sa.keys.d, ProtocolId.ESP, child.spi_in, child.ni, child.nr, size,
                     child.gqm_xy)
    km_out = C.keymat(prf, sa.keys.d, ProtocolId.ESP, child.spi_out, child.ni, child.nr,
                      size, child.gqm_xy)
    integ = c.integ
    mode = "tunnel" if c.encap in _TUNNEL_MODES else "transport"
    return ChildSaKeys(
        protocol="esp", mode=mode, local=sa.local, remote=sa.remote, spi_in=child.spi_in,
        spi_out=child.spi_out, encr_name=c.encr.xfrm_name or c.encr.fqn,
        encr_key_in=km_in[:e], encr_key_out=km_out[:e], icv_bits=c.encr.xfrm_icv_bits,
        integ_name=integ.xfrm_name if integ is not None else None,
        integ_key_in=km_in[e:], integ_key_out=km_out[e:],
        trunc_bits=integ.xfrm_trunc_bits if integ is not None else 0, esn=False,
        local_ts=child.local_ts, remote_ts=child.remote_ts,
        replay_window=child.policy.replay_window, encap=sa.nat_local or sa.nat_remote,
        algorithms=c.xfrm_story, lifetime=c.lifetime)


def _open(engine: Engine, sa: IsakmpSa, msg: Message, iv: bytes,
          expected: Callable[[bytes], bytes], what: str
          ) -> tuple[list[IsakmpPayload], bytes] | None:
    """Decrypt and check HASH(n) over what follows it; (payloads, next IV) or None."""
    try:
        payloads, plain, next_iv = engine.unseal(sa, msg, iv)
    except (IsakmpDecodeError, C.DecryptError) as e:
        engine.log(sa.serial, f"dropping Quick Mode {what}: {e}")
        return None
    if not payloads or not isinstance(payloads[0], Hash):
        engine.log(sa.serial, "malformed Quick Mode message: does not start with a HASH "
                              "payload")
        return None
    rest = plain[4 + len(payloads[0].data):]
    if not hmac.compare_digest(payloads[0].data, expected(rest)):
        engine.log(sa.serial, "received Hash Payload does not match computed value")
        return None
    return payloads, next_iv


def _only(payloads: list[IsakmpPayload], kind: type) -> list:
    return [p for p in payloads if isinstance(p, kind)]


# ------------------------------------------------------------------ initiator


def initiate(engine: Engine, sa: IsakmpSa, policy: Policy, now: float, *,
             initiated: bool, first: bool = False, replacing: IpsecSa | None = None
             ) -> IpsecSa | None:
    assert sa.choice is not None
    prf, a = _prf_a(sa)
    msgid = engine.message_id(sa)
    child = IpsecSa(engine.next_serial(), sa, policy, INITIATOR, S.QUICK_I1, msgid)
    child.initiated = initiated
    child.first = first
    if replacing is not None:
        child.replaces = replacing.serial
        replacing.successor = child.serial
    _register(engine, child)
    child.spi_in = engine.child_spi()
    nat = sa.nat_local or sa.nat_remote
    child.group = pfs_group(policy.esp, sa.choice.ke) if policy.pfs else None
    child.sent_sa = phase2_sa(policy.esp, child.spi_in, encap_modes(policy.mode, nat)[0],
                              policy.ipsec_lifetime, child.group)
    if not child.sent_sa.proposals[0].transforms:
        engine.log(child.serial, "no IKEv1 ESP proposal can be sent")
        fail(engine, child)
        return None
    child.ni = engine.rand(engine.config.nonce_size)
    rest: list[IsakmpPayload] = [child.sent_sa, Nonce(child.ni)]
    if child.group is not None:
        child.ke = engine.key_exchange(child.group)
        rest.append(KE(child.ke.public_bytes))
    # a ModeCfg client's side of the tunnel is the address the server gave it
    child.local_ts = ((_host(sa.lease),) if sa.lease is not None
                      else policy.local_ts[:1] or (_host(sa.local[0]),))
    child.remote_ts = policy.remote_ts[:1] or (_host(sa.remote[0]),)
    rest += [selector_id(child.local_ts[0]), selector_id(child.remote_ts[0])]
    pfs = f" pfsgroup={child.group.fqn}" if child.group is not None else ""
    replace = f" to replace #{replacing.serial}" if replacing is not None else ""
    engine.log(child.serial, f"initiating Quick Mode {_policy_story(policy)}{replace} {{using "
                             f"isakmp#{sa.serial} msgid:{msgid:08x} proposal="
                             f"{format_proposals(policy.esp)}{pfs} "
                             f"{_ts_story(child.local_ts, child.remote_ts)}}}")
    iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    wire, child.iv = engine.hashed_message(sa, Exchange.QUICK, msgid, rest, iv,
                                           lambda chain: C.qm_hash1(prf, a, msgid, chain))
    child.last_out = wire
    engine.send(sa, wire, child.serial)
    engine.start_retransmit(child, wire, now)
    engine.log(child.serial, "sent Quick Mode request")
    return child


def fail(engine: Engine, child: IpsecSa) -> None:
    first = child.first
    sa = child.isakmp
    old = engine.children.get(child.replaces) if child.replaces else None
    if old is not None and old.successor == child.serial:
        old.successor = 0  # the replaced pair may try again
    engine.teardown_ipsec(child, "failed")
    if first:
        engine.finish_initiate(sa, False)


def _inR1(engine: Engine, sa: IsakmpSa, child: IpsecSa, msg: Message, data: bytes,
          now: float) -> None:
    prf, a = _prf_a(sa)
    msgid = child.message_id
    opened = _open(engine, sa, msg, child.iv,
                   lambda rest: C.qm_hash2(prf, a, msgid, child.ni, rest), "response")
    if opened is None:
        return
    payloads, next_iv = opened
    sas, nonces = _only(payloads, SA), _only(payloads, Nonce)
    if len(sas) != 1 or len(nonces) != 1:
        engine.log(child.serial, "Quick Mode response needs one SA and one Nonce payload")
        return
    assert child.sent_sa is not None
    try:
        choice, spi_out = accept_phase2(sas[0], child.sent_sa, child.group)
    except (NoProposalChosen, IsakmpDecodeError) as e:
        engine.log(child.serial, f"Quick Mode response rejected: {e}")
        informational.notify(engine, sa, e.notify)
        fail(engine, child)
        return
    ids = _only(payloads, ID)
    sent_ids = [selector_id(child.local_ts[0]).body(), selector_id(child.remote_ts[0]).body()]
    if [i.body() for i in ids] != sent_ids:
        engine.log(child.serial, "IDci/IDcr in the Quick Mode response do not match ours")
        informational.notify(engine, sa, NotifyType.INVALID_ID_INFORMATION)
        fail(engine, child)
        return
    if child.group is not None:
        kes = _only(payloads, KE)
        try:
            if len(kes) != 1:
                raise dh.KeyExchangeError("PFS needs one KE payload")
            child.gqm_xy = child.ke.shared_secret(kes[0].data)
        except dh.KeyExchangeError as e:
            engine.log(child.serial, f"invalid Quick Mode KE: {e}")
            informational.notify(engine, sa, NotifyType.INVALID_KEY_INFORMATION)
            fail(engine, child)
            return
    engine.stop_retransmit(child)
    child.nr, child.choice, child.spi_out, child.iv = nonces[0].data, choice, spi_out, next_iv
    child.last_in = data
    child.keys = _keys(child)
    engine.emit(InstallChild(child.serial, sa.serial, child.keys))


# ------------------------------------------------------------------ responder


def _find_policy(engine: Engine, sa: IsakmpSa, ci: Selector, cr: Selector) -> Policy | None:
    """The connection whose selectors are exactly the ones asked for (IKEv1 does not
    narrow), among those for this peer."""
    peer = sa.peer_id
    for policy in [sa.policy] + engine.policies.candidates(sa.local[0], sa.remote[0]):
        if policy.remote_id is not None and peer is not None \
                and policy.remote_id.key != peer.key:
            continue
        local = policy.local_ts[:1] or (_host(sa.local[0]),)
        remote = _peer_side(policy, sa)
        if local[0] == cr and remote[0] == ci:
            return policy
    return None


def _inI1(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, now: float) -> None:
    assert sa.choice is not None
    prf, a = _prf_a(sa)
    msgid = msg.header.message_id
    iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    opened = _open(engine, sa, msg, iv, lambda rest: C.qm_hash1(prf, a, msgid, rest),
                   "request")
    if opened is None:
        return
    payloads, next_iv = opened
    sa.msgids.add(msgid)
    sas, nonces, kes, ids = (_only(payloads, SA), _only(payloads, Nonce),
                             _only(payloads, KE), _only(payloads, ID))
    if len(sas) != 1 or len(nonces) != 1 or len(kes) > 1 or len(ids) not in (0, 2):
        engine.log(sa.serial, "malformed Quick Mode request: needs one SA, one Nonce, at "
                              "most one KE and no or two ID payloads")
        informational.notify(engine, sa, NotifyType.PAYLOAD_MALFORMED)
        return
    if ids:
        ci, cr = id_selector(ids[0]), id_selector(ids[1])
    else:
        ci, cr = _host(sa.remote[0]), _host(sa.local[0])
    if ci is None or cr is None:
        engine.log(sa.serial, "Quick Mode ID payloads are not addresses")
        informational.notify(engine, sa, NotifyType.INVALID_ID_INFORMATION)
        return
    policy = _find_policy(engine, sa, ci, cr)
    if policy is None:
        engine.log(sa.serial, f"cannot respond to IPsec SA request because no connection "
                              f"is known for {cr}==={ci}")
        informational.notify(engine, sa, NotifyType.INVALID_ID_INFORMATION)
        return
    group = pfs_group(policy.esp, sa.choice.ke) if kes else None
    nat = sa.nat_local or sa.nat_remote
    try:
        if policy.pfs and not kes:
            raise NoProposalChosen("PFS is required by policy but not proposed")
        choice, spi_out = select_phase2(sas[0], policy.esp, encap_modes(policy.mode, nat),
                                        group, policy.ipsec_lifetime)
    except (NoProposalChosen, IsakmpDecodeError) as e:
        engine.log(sa.serial, f"no acceptable Quick Mode proposal: {e}")
        informational.notify(engine, sa, e.notify)
        return
    child = IpsecSa(engine.next_serial(), sa, policy, RESPONDER, S.QUICK_R0, msgid)
    child.spi_out, child.choice, child.group = spi_out, choice, group
    child.ni = nonces[0].data
    child.local_ts, child.remote_ts = (cr,), (ci,)
    _register(engine, child)
    reply: list[IsakmpPayload] = []
    if group is not None:
        own = engine.key_exchange(group)
        try:
            child.gqm_xy = own.shared_secret(kes[0].data)
        except dh.KeyExchangeError as e:
            engine.log(child.serial, f"invalid Quick Mode KE: {e}")
            informational.notify(engine, sa, NotifyType.INVALID_KEY_INFORMATION)
            engine.teardown_ipsec(child, "bad KE")
            return
        reply.append(KE(own.public_bytes))
    child.spi_in = engine.child_spi()
    child.nr = engine.rand(engine.config.nonce_size)
    engine.log(child.serial, f"responding to Quick Mode proposal {{msgid:{msgid:08x}}}")
    engine.log(child.serial, f"    us: {cr}  them: {ci}")
    reply_sa = SA([Proposal(choice.proposal, ProtocolId.ESP, child.spi_in.to_bytes(4, "big"),
                            [choice.transform])])
    child.reply = [reply_sa, Nonce(child.nr)] + reply + ids
    child.iv = next_iv
    child.last_in = data
    child.keys = _keys(child)
    engine.emit(InstallChild(child.serial, sa.serial, child.keys))


def _inI2(engine: Engine, sa: IsakmpSa, child: IpsecSa, msg: Message, data: bytes,
          now: float) -> None:
    prf, a = _prf_a(sa)
    msgid = child.message_id
    opened = _open(engine, sa, msg, child.iv,
                   lambda rest: C.qm_hash3(prf, a, msgid, child.ni, child.nr), "confirmation")
    if opened is None:
        return
    _payloads, next_iv = opened
    child.iv = next_iv
    child.last_in, child.last_out = data, b""
    engine.stop_retransmit(child)
    engine.arm(child, DISCARD, None)
    _established(engine, child, S.QUICK_R2, now)


# ------------------------------------------------------------------ both


def receive(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, now: float) -> None:
    if not sa.established:
        engine.log(sa.serial, "dropping Quick Mode message: ISAKMP SA not established")
        return
    if not msg.encrypted:
        engine.log(sa.serial, "dropping Quick Mode message: not encrypted")
        return
    msgid = msg.header.message_id
    child = next((c for c in sa.children.values() if c.message_id == msgid), None)
    if child is not None:
        if data == child.last_in and child.last_out:
            engine.log(child.serial, f"retransmitting in response to duplicate packet; "
                                     f"already {child.state.name}")
            engine.send(sa, child.last_out, child.serial)
        elif child.state is S.QUICK_I1 and not child.keys:
            _inR1(engine, sa, child, msg, data, now)
        elif child.state is S.QUICK_R1:
            _inI2(engine, sa, child, msg, data, now)
        else:
            engine.debug(child.serial, f"dropping Quick Mode message in {child.state.name}")
        return
    if getattr(sa.policy, "xauth_server", False) and not sa.xauth_ok:
        engine.log(sa.serial, "dropping Quick Mode request: XAUTH has not succeeded")
        return
    if msgid == 0 or msgid in sa.msgids:
        engine.debug(sa.serial, f"dropping Quick Mode message with Message ID {msgid:08x}: "
                                "zero or already used")
        return
    _inI1(engine, sa, msg, data, now)


def installed(engine: Engine, child: IpsecSa, error: str | None, now: float) -> None:
    sa = child.isakmp
    if error is not None:
        engine.log(child.serial, f"failed to install IPsec SA: {error}")
        fail(engine, child)
        return
    child.installed = True
    prf, a = _prf_a(sa)
    msgid = child.message_id
    if child.role == RESPONDER and child.state is S.QUICK_R0:
        wire, child.iv = engine.hashed_message(
            sa, Exchange.QUICK, msgid, child.reply, child.iv,
            lambda chain: C.qm_hash2(prf, a, msgid, child.ni, chain))
        child.reply = []
        child.last_out = wire
        engine.send(sa, wire, child.serial)
        engine.start_retransmit(child, wire, now)
        engine.set_state(child, S.QUICK_R1)
        engine.log(child.serial, f"sent Quick Mode reply, inbound IPsec SA installed, "
                                 f"expecting confirmation {_details(child)}")
    elif child.role == INITIATOR and child.state is S.QUICK_I1:
        wire, child.iv = engine.seal(sa, Exchange.QUICK, msgid,
                                     [Hash(C.qm_hash3(prf, a, msgid, child.ni, child.nr))],
                                     child.iv)
        child.last_out = wire
        engine.send(sa, wire, child.serial)
        _established(engine, child, S.QUICK_I2, now)


def _details(child: IpsecSa) -> str:
    keys = child.keys
    assert keys is not None
    esp = "ESPinUDP" if keys.encap else "ESP"
    return (f"{{{esp}=>0x{keys.spi_out:08x} <0x{keys.spi_in:08x} xfrm={keys.algorithms} "
            f"DPD={child.policy.dpd}}}")


def _established(engine: Engine, child: IpsecSa, state: object, now: float) -> None:
    assert child.keys is not None and child.choice is not None
    child.established = True
    engine.set_state(child, state)  # type: ignore[arg-type]
    engine.log(child.serial, f"IPsec SA established {child.keys.mode} mode "
                             f"{_details(child)}")
    engine.emit(ChildEstablished(child.serial, child.isakmp.serial, child.keys))
    engine.arm(child, EXPIRE, now + child.choice.lifetime)
    policy = child.policy
    if child.role == INITIATOR and policy.rekey \
            and child.choice.lifetime > policy.rekey_margin:
        engine.arm(child, REKEY, now + child.choice.lifetime - policy.rekey_margin)
    old = engine.children.get(child.replaces) if child.replaces else None
    if old is not None:  # make before break: the replaced pair goes now
        informational.delete_ipsec(engine, old, now, notify=True)
    engine.finish_initiate(child, True)
    if child.first:
        child.first = False
        engine.finish_initiate(child.isakmp, True)


def rekey(engine: Engine, child: IpsecSa, now: float, initiated: bool = False) -> None:
    """The REKEY timer of an IPsec SA we initiated: a new Quick Mode for the same
    connection; the old pair is deleted once the new one is up."""
    sa = child.isakmp
    if child.successor or not child.established or not sa.established or sa.dying:
        return
    initiate(engine, sa, child.policy, now, initiated=initiated, replacing=child)
