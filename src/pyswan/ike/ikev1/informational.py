"""Informational exchanges: notifications, Delete (RFC 2408 3.15) and Dead Peer
Detection (RFC 3706 R_U_THERE / R_U_THERE_ACK), protected as
``HDR*, HASH(1), N/D`` with HASH(1) = prf(SKEYID_a, M-ID | N/D).  They are one message
each way: nothing is retransmitted or acknowledged (DPD's ACK is a new exchange)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ..ikev2.actions import RC_NORETRANSMISSION
from ..ikev2.message import endpoint_text
from . import crypto as C
from .codec import Delete, Hash, IsakmpDecodeError, IsakmpPayload, Message, Notify
from .constants import Exchange, NotifyType, ProtocolId, name_of
from .policy import dpd_timeout
from .sa import IpsecSa, IsakmpSa

if TYPE_CHECKING:
    from .engine import Engine


def send_info(engine: Engine, sa: IsakmpSa, payloads: list[IsakmpPayload]) -> None:
    assert sa.choice is not None and sa.keys is not None
    prf, a = sa.choice.prf, sa.keys.a
    msgid = engine.message_id(sa)
    iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    wire, _ = engine.hashed_message(sa, Exchange.INFO, msgid, payloads, iv,
                                    lambda chain: C.info_hash(prf, a, msgid, chain))
    engine.send(sa, wire)


def notify(engine: Engine, sa: IsakmpSa, ntype: int, protocol: int = ProtocolId.ISAKMP,
           spi: bytes | None = None, data: bytes = b"") -> None:
    """Tell the peer, encrypted once there are keys, else in the clear."""
    if sa.keys is None or sa.choice is None:
        engine.send_clear_notify(sa.local, sa.remote, sa.icookie, sa.rcookie, ntype)
        return
    engine.log(sa.serial, f"sending encrypted notification {name_of(NotifyType, ntype)} to "
                          f"{endpoint_text(sa.remote)}")
    send_info(engine, sa, [Notify(ntype, protocol, sa.icookie + sa.rcookie
                                  if spi is None else spi, data)])


# ------------------------------------------------------------------ receiving


def receive(engine: Engine, sa: IsakmpSa, msg: Message, now: float) -> None:
    if not msg.encrypted:
        # unauthenticated: only worth a log line (a forged one must not hurt the SA)
        for p in msg.payloads:
            if isinstance(p, Notify):
                engine.log(sa.serial, f"ignoring unauthenticated informational payload "
                                      f"{name_of(NotifyType, p.notify_type)}")
        return
    if sa.keys is None or sa.choice is None:
        engine.debug(sa.serial, "dropping encrypted Informational Exchange: no keys yet")
        return
    prf, a = sa.choice.prf, sa.keys.a
    msgid = msg.header.message_id
    iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    try:
        payloads, plain, _ = engine.unseal(sa, msg, iv)
    except (IsakmpDecodeError, C.DecryptError) as e:
        engine.log(sa.serial, f"dropping Informational Exchange message: {e}")
        return
    if not payloads or not isinstance(payloads[0], Hash):
        engine.log(sa.serial, "Informational Exchange message is invalid because it has no "
                              "HASH payload")
        return
    rest = plain[4 + len(payloads[0].data):]
    if not hmac.compare_digest(payloads[0].data, C.info_hash(prf, a, msgid, rest)):
        engine.log(sa.serial, "Informational Exchange message is invalid because it has an "
                              "incorrect HASH")
        return
    for p in payloads[1:]:
        if sa.dying:
            return
        if isinstance(p, Notify):
            _notification(engine, sa, p, msgid, now)
        elif isinstance(p, Delete):
            _delete(engine, sa, p)


def _notification(engine: Engine, sa: IsakmpSa, p: Notify, msgid: int, now: float) -> None:
    if p.notify_type in (NotifyType.R_U_THERE, NotifyType.R_U_THERE_ACK):
        if p.spi != sa.icookie + sa.rcookie or len(p.data) != 4:
            engine.log(sa.serial, f"DPD: ignoring {name_of(NotifyType, p.notify_type)} with "
                                  "a bad SPI or sequence number")
            return
        seq = int.from_bytes(p.data, "big")
        if p.notify_type == NotifyType.R_U_THERE:
            sa.peer_dpd_seq = seq
            send_info(engine, sa, [Notify(NotifyType.R_U_THERE_ACK, ProtocolId.ISAKMP,
                                          sa.icookie + sa.rcookie, p.data)])
        elif sa.dpd_pending and sa.dpd_pending - 0x10000 < seq <= sa.dpd_seq:
            sa.dpd_pending = 0
        else:
            engine.log(sa.serial, f"DPD: R_U_THERE_ACK has unexpected sequence number {seq}")
        return
    engine.log(sa.serial, f"ignoring informational payload "
                          f"{name_of(NotifyType, p.notify_type)}, msgid={msgid:08x}, "
                          f"length={8 + len(p.spi) + len(p.data) + 4}")


def _delete(engine: Engine, sa: IsakmpSa, p: Delete) -> None:
    if p.protocol == ProtocolId.ISAKMP:
        if p.spis and all(s == sa.icookie + sa.rcookie for s in p.spis):
            engine.log(sa.serial, f"received Delete SA payload: deleting ISAKMP State "
                                  f"#{sa.serial}")
            engine.teardown_isakmp(sa, "deleted by peer")
        else:
            engine.log(sa.serial, "ignoring Delete SA payload for another ISAKMP SA")
        return
    if p.protocol not in (ProtocolId.ESP, ProtocolId.AH) or p.spi_size != 4:
        engine.log(sa.serial, f"ignoring Delete SA payload for protocol {p.protocol}")
        return
    for spi_b in p.spis:
        spi = int.from_bytes(spi_b, "big")
        # the peer names its inbound SPI: our outbound one
        child = next((c for c in sa.children.values() if c.spi_out == spi), None)
        if child is None:
            engine.log(sa.serial, f"ignoring Delete SA payload: IPsec SA(0x{spi:08x}) not "
                                  "found")
            continue
        engine.log(sa.serial, f"received Delete SA(0x{spi:08x}) payload: deleting IPsec "
                              f"State #{child.serial}")
        engine.teardown_ipsec(child, "deleted by peer")


# ------------------------------------------------------------------ our requests


def delete_ipsec(engine: Engine, child: IpsecSa, now: float, *, notify: bool) -> None:
    sa = child.isakmp
    if notify and child.established and sa.established and not sa.dying:
        engine.log(child.serial, f"deleting IPsec SA ({child.state.name}) and sending "
                                 "notification")
        send_info(engine, sa, [Delete(ProtocolId.ESP, [child.spi_in.to_bytes(4, "big")], 4)])
    engine.teardown_ipsec(child, "deleted")


def delete_isakmp(engine: Engine, sa: IsakmpSa, now: float, *, notify: bool) -> None:
    if not (notify and sa.established and sa.keys is not None):
        engine.teardown_isakmp(sa, "deleted", f"deleting ISAKMP SA ({sa.state.story})")
        return
    if engine.heir(sa) is None:  # (else the IPsec SAs move to the newer ISAKMP SA)
        for child in list(sa.children.values()):
            delete_ipsec(engine, child, now, notify=True)
    engine.log(sa.serial, f"deleting ISAKMP SA ({sa.state.name}) and sending notification")
    send_info(engine, sa, [Delete(ProtocolId.ISAKMP, [sa.icookie + sa.rcookie], 16)])
    engine.teardown_isakmp(sa, "deleted")


def liveness(engine: Engine, sa: IsakmpSa, now: float) -> None:
    """The DPD timer: declare the peer dead after ``dpdtimeout`` without an ACK, else
    probe again (a new sequence number each time, RFC 3706 5.3)."""
    from .engine import LIVENESS

    if not sa.established or sa.dying:
        return
    if sa.dpd_pending and now - sa.dpd_sent_at >= dpd_timeout(sa.policy):
        engine.log(sa.serial, "DPD: No response from peer - declaring peer dead",
                   RC_NORETRANSMISSION)
        engine.teardown_isakmp(sa, "dead peer", f"deleting ISAKMP SA ({sa.state.story})",
                               rc=RC_NORETRANSMISSION)
        return
    if not sa.dpd_seq:  # RFC 3706 5.3: start from a random number
        sa.dpd_seq = int.from_bytes(engine.rand(2), "big") + 1
    else:
        sa.dpd_seq = sa.dpd_seq % 0x7FFFFFFF + 1
    if not sa.dpd_pending:
        sa.dpd_sent_at = now
    sa.dpd_pending = sa.dpd_seq
    send_info(engine, sa, [Notify(NotifyType.R_U_THERE, ProtocolId.ISAKMP,
                                  sa.icookie + sa.rcookie, sa.dpd_seq.to_bytes(4, "big"))])
    engine.arm(sa, LIVENESS, now + sa.policy.dpd_delay)
