"""INFORMATIONAL (RFC 7296 1.4, 1.5, 2.4): deletes in both directions, liveness.

Requests we send: delete the IKE SA (``--down``: wait for the answer, then tear down),
delete a Child SA (the peer answers with its own SPI), an empty liveness probe.  Requests
we answer: a Delete of the IKE SA (empty answer, then everything goes), Deletes of Child
SAs (answer with our inbound SPIs of the same Child SAs), empty ones (liveness), lone
notifications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..codec import Delete, Notify, Payload
from ..constants import ExchangeType, ProtocolId
from .message import build_sk, nname
from .sa import ChildSa, IkeSa, Outstanding

if TYPE_CHECKING:
    from .engine import Engine, Inbound


def build_delete(eng: Engine, sa: IkeSa, msgid: int, deletes: list[Payload],
                 response: bool = False) -> bytes:
    iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
    return build_sk(sa, ExchangeType.INFORMATIONAL, msgid, deletes, response, iv)


def request_ike_delete(eng: Engine, sa: IkeSa, now: float) -> None:
    sa.deleting = True  # no new exchanges; the delete goes out even behind a queued one
    from .create_child_sa import abandon_child_exchange  # noqa: PLC0415 - it imports us

    abandon_child_exchange(eng, sa, now, queued_only=True)  # queued requests are dropped
    sa.pending.clear()
    # a request under way is finished first: the peer may have it already, and one it
    # never got leaves a hole in the message IDs it would not accept the delete after
    eng.start_request(sa, ExchangeType.INFORMATIONAL,
                      lambda msgid: build_delete(eng, sa, msgid, [Delete(ProtocolId.IKE, 0)]),
                      "delete_ike", now)
    eng.log(sa.serial, "sent INFORMATIONAL request to delete IKE SA")


def request_child_delete(eng: Engine, child: ChildSa, now: float, quiet: bool = False
                         ) -> None:
    sa = child.ike
    spi = child.spi_in.to_bytes(4, "big")
    state = "established" if child.established else "larval"
    proto = _child_protocol(child)
    eng.start_request(sa, ExchangeType.INFORMATIONAL,
                      lambda msgid: build_delete(eng, sa, msgid, [Delete(proto, 4, [spi])]),
                      "delete_child", now, context=child.serial)
    if not quiet:
        eng.log(child.serial, f"sent INFORMATIONAL request to delete {state} Child SA using "
                              f"IKE SA #{sa.serial}")
    if not child.installed:
        # nothing in the kernel: forget it now, the peer has been told
        if child.initiated:  # and whoever waits for it (--rekey-child) hears it failed
            from .actions import InitiateDone  # noqa: PLC0415 - kept local, as is ours

            child.initiated = False
            eng.emit(InitiateDone(child.serial, False))
        eng.teardown_child(child, "rejected")


def _child_protocol(child: ChildSa) -> int:
    """The Delete payload names the Child SA's protocol (phase2=ah: AH; Libreswan looks the
    SPI up per protocol)."""
    proto = child.keys.protocol if child.keys is not None else \
        getattr(child.policy.esp, "protocol", "ESP")
    return ProtocolId.AH if proto.lower() == "ah" else ProtocolId.ESP


def request_spi_delete(eng: Engine, sa: IkeSa, spi_in: int, now: float) -> None:
    """Delete a Child SA the peer has and we never installed (named by our inbound SPI)."""
    spi = spi_in.to_bytes(4, "big")
    eng.start_request(sa, ExchangeType.INFORMATIONAL,
                      lambda msgid: build_delete(eng, sa, msgid,
                                                 [Delete(ProtocolId.ESP, 4, [spi])]),
                      "delete_child", now, context=0)


def request_liveness(eng: Engine, sa: IkeSa, now: float) -> None:
    eng.start_request(sa, ExchangeType.INFORMATIONAL,
                      lambda msgid: build_delete(eng, sa, msgid, []), "liveness", now)


def process_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float,
                     o: Outstanding) -> None:
    if o.on_response == "delete_ike":
        eng.teardown_ike(sa, "deleted", f"deleting IKE SA ({sa.state.story})")
    elif o.on_response == "delete_child":
        child = eng.children.get(o.context)
        if child is not None:  # (it may have moved to the IKE SA that rekeyed this one)
            eng.teardown_child(child, "deleted")
    else:
        eng.debug(sa.serial, "received INFORMATIONAL response")


def delete_timed_out(eng: Engine, sa: IkeSa, o: Outstanding, now: float) -> None:
    """No answer to our delete: the peer is gone; finish the job locally."""
    if o.on_response == "delete_child":
        child = eng.children.get(o.context)
        if child is not None:
            eng.teardown_child(child, "deleted")
        if sa.pending and not sa.dying:
            sa.pending.popleft()()
        return
    eng.teardown_ike(sa, "deleted", f"deleting IKE SA ({sa.state.story})")


def process_request(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> None:
    from . import redirect  # noqa: PLC0415 - redirect starts IKE_SA_INIT, which imports us

    if redirect.process_informational(eng, sa, inb, now):
        return  # N(REDIRECT): answered, and we are on our way to the new gateway
    deletes = [p for p in inb.payloads if type(p) is Delete]
    if any(d.protocol == ProtocolId.IKE for d in deletes):
        eng.send_response(sa, inb.message_id, build_delete(eng, sa, inb.message_id, [], True))
        from .create_child_sa import abandon_child_exchange, redundant_ike_deleted  # noqa: PLC0415

        redundant_ike_deleted(eng, sa, now)  # a rekey collision it lost: keep its Child SAs
        abandon_child_exchange(eng, sa, now)
        o = sa.outstanding  # our delete of a Child SA an IKE SA rekey moved elsewhere:
        moved = eng.children.get(o.context) if o and o.on_response == "delete_child" else None
        if moved is not None and moved.ike is not sa:  # ask again there
            request_child_delete(eng, moved, now, quiet=True)
        eng.teardown_ike(sa, "deleted by peer", f"deleting IKE SA ({sa.state.story})")
        return
    answers: list[Payload] = []
    for d in deletes:
        if d.protocol not in (ProtocolId.ESP, ProtocolId.AH):
            eng.log(sa.serial, f"Ignored bogus delete protoid '{d.protocol}'")
            continue
        ours: list[bytes] = []
        for raw in d.spis:
            spi = int.from_bytes(raw, "big")
            child = next((c for c in sa.children.values() if c.spi_out == spi), None)
            if child is None:  # moved to a sibling by an IKE SA rekey (collision) the peer
                child = next((c for c in eng.children.values() if c.spi_out == spi  # lost
                              and c.ike.remote == sa.remote and c.ike.peer_id == sa.peer_id
                              and not c.ike.dying), None)
            if child is None:
                name = "ESP" if d.protocol == ProtocolId.ESP else "AH"
                eng.log(sa.serial, f"received delete request for {name} Child SA with "
                                   f"outbound SPI 0x{spi:08x} but corresponding state not "
                                   "found")
                continue
            ours.append(child.spi_in.to_bytes(4, "big"))
            old = eng.children.get(child.replaces) if child.replaces else None
            if old is not None and old.successor == child.serial:
                old.successor = 0  # its replacement is gone: it may rekey again
            eng.teardown_child(child, "deleted by peer")
        if ours:
            answers.append(Delete(d.protocol, 4, ours))
    for n in inb.payloads:
        if type(n) is Notify and n.is_error:
            eng.log(sa.serial, f"received INFORMATIONAL notification {nname(n.type)}")
    if not deletes and not inb.payloads:
        eng.debug(sa.serial, "received liveness probe; answering")
    eng.send_response(sa, inb.message_id, build_delete(eng, sa, inb.message_id, answers, True))
