"""The IKEv1 engine: ISAKMP demultiplexing, encryption, retransmission, timers, deletion.

Sans-IO like the IKEv2 engine (``pyswan.ike.ikev2.engine``), with the same entry points
and the same action types: ``receive``/``timer``/``initiate``/``child_installed``/
``delete_*`` take the time and return the actions to carry out.  Randomness (cookies,
nonces, SPIs, message IDs) and key exchange values are injectable.

The exchanges live beside this module: ``phase1`` (Main and Aggressive Mode), ``quick``
(Quick Mode) and ``informational`` (Delete, DPD).  A peer's packet never raises out of
:meth:`Engine.receive`: malformed input is logged and dropped (or answered with the
notification RFC 2408 asks for, when it arrived in the clear).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import algorithms as A
from .. import dh
from ..ikev2.actions import (
    RC_LOG,
    RC_NORETRANSMISSION,
    Action,
    EndpointsChanged,
    InitiateDone,
    Log,
    ParentChanged,
    RemoveChild,
    SaDeleted,
    Send,
    SetTimer,
    StateChanged,
)
from ..ikev2.engine import RC_DEBUG, BufferedRandom
from ..ikev2.message import endpoint_text, seconds_text
from ..ikev2.policy import Credentials, Endpoint, NoCredentials, Policy, PolicyIndex
from ..ikev2.states import StateInfo
from . import crypto as C
from . import states as S
from .codec import (
    HEADER_SIZE,
    Hash,
    Header,
    IsakmpDecodeError,
    IsakmpPayload,
    Message,
    Notify,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payloads,
)
from .constants import Exchange, Flag, NotifyType, ProtocolId, name_of
from .sa import INITIATOR, IpsecSa, IsakmpSa, Retransmit

ZERO_COOKIE = bytes(8)
TIMER_SLACK = 0.005
RETRANSMIT = "RETRANSMIT"
DISCARD = "DISCARD"
EXPIRE = "EXPIRE"
REKEY = "REKEY"
REPLACE = "REPLACE"
LIVENESS = "LIVENESS"


@dataclass(slots=True)
class EngineConfig:
    nonce_size: int = 32  # DEFAULT_NONCE_SIZE
    max_retransmits: int = 12
    halfopen_timeout: float = 200.0  # responder's DISCARD of an unfinished exchange


class Engine:
    def __init__(self, policies: PolicyIndex | None = None,
                 credentials: Credentials | None = None, *,
                 rng: Callable[[int], bytes] | None = None,
                 serials: Callable[[], int] | None = None,
                 key_exchange: Callable[[Any], Any] | None = None,
                 config: EngineConfig | None = None) -> None:
        self.policies = policies if policies is not None else PolicyIndex()
        self.credentials: Credentials = credentials or NoCredentials()
        self.rand: Callable[[int], bytes] = rng or BufferedRandom()
        self.next_serial: Callable[[], int] = serials or itertools.count(1).__next__
        self.key_exchange = key_exchange or dh.key_exchange
        self.config = config or EngineConfig()
        self.isakmp_sas: dict[int, IsakmpSa] = {}
        self.children: dict[int, IpsecSa] = {}
        self._by_cookie: dict[bytes, IsakmpSa] = {}  # our cookie -> SA
        self._halfopen: dict[tuple[bytes, Endpoint], IsakmpSa] = {}  # (CKY-I, peer)
        self._child_spis: set[int] = set()
        self._out: list[Action] = []
        self._current: IsakmpSa | None = None

    # ------------------------------------------------------------------ entry points

    def receive(self, data: bytes, local: Endpoint, remote: Endpoint, now: float
                ) -> list[Action]:
        """A datagram arrived on ``local`` from ``remote`` (non-ESP marker removed)."""
        out = self._out = []
        self._current = None
        try:
            self._receive(data, local, remote, now)
        except Exception as e:  # noqa: BLE001 - a peer's packet must never crash the daemon
            self.log(0, f"packet from {endpoint_text(remote)}: dropped: internal error "
                        f"{type(e).__name__}: {e}")
            sa = self._current
            if sa is not None and not sa.dying and not sa.established:
                self.teardown_isakmp(sa, "internal error")
        self._current = None
        self._out = []
        return out

    def timer(self, serial: int, event: str, now: float) -> list[Action]:
        out = self._out = []
        sa: IsakmpSa | IpsecSa | None = self.isakmp_sas.get(serial) or self.children.get(serial)
        due = sa.timers.get(event) if sa is not None else None
        if sa is not None and due is not None and now + TIMER_SLACK >= due:
            del sa.timers[event]
            if isinstance(sa, IsakmpSa):
                self._isakmp_timer(sa, event, now)
            else:
                self._ipsec_timer(sa, event, now)
        self._out = []
        return out

    def initiate(self, policy: Policy, now: float, remote: Endpoint | None = None
                 ) -> list[Action]:
        """Start Main (or Aggressive) Mode, then Quick Mode for ``policy``; the first
        action is the ``SaCreated`` of the new ISAKMP SA."""
        out = self._out = []
        phase1.initiate(self, policy, now, remote)
        self._out = []
        return out

    def initiate_child(self, policy: Policy, ike_serial: int, now: float) -> list[Action]:
        """Quick Mode for ``policy`` over the established ISAKMP SA ``ike_serial``."""
        out = self._out = []
        sa = self.isakmp_sas.get(ike_serial)
        if sa is not None and sa.established and not sa.dying:
            quick.initiate(self, sa, policy, now, initiated=True)
        self._out = []
        return out

    def child_installed(self, serial: int, error: str | None, now: float) -> list[Action]:
        """Answer to ``InstallChild``: ``error`` is None on success."""
        out = self._out = []
        child = self.children.get(serial)
        if child is not None:
            quick.installed(self, child, error, now)
        self._out = []
        return out

    def rekey_ike(self, serial: int, now: float) -> list[Action]:
        """Operator asked to rekey the ISAKMP SA (``--rekey-ike``): IKEv1 has no rekey
        exchange, so a new phase 1 replaces it and the IPsec SAs move over; the first
        action is the new ISAKMP SA's ``SaCreated``, its ``InitiateDone`` ends it."""
        out = self._out = []
        sa = self.isakmp_sas.get(serial)
        if sa is None:
            child = self.children.get(serial)
            sa = child.isakmp if child is not None else None
        if sa is not None and sa.established and not sa.dying and not sa.successor:
            new = phase1.initiate(self, sa.policy, now, None, replacing=sa)
            if new is not None:
                new.initiated = True
        elif sa is not None:
            self.log(sa.serial, "cannot rekey: not an established ISAKMP SA, or a rekey is "
                                "already under way")
        self._out = []
        return out

    def xauth_answer(self, serial: int, user: str, password: bytes, now: float
                     ) -> list[Action]:
        """The operator answered an ``XauthPrompt``: reply to the held XAUTH challenge."""
        from .transaction import client_answer  # noqa: PLC0415 - transaction imports us

        out = self._out = []
        sa = self.isakmp_sas.get(serial)
        if sa is not None:
            client_answer(self, sa, user, password, now)
        self._out = []
        return out

    def rekey_child(self, serial: int, now: float) -> list[Action]:
        """Operator asked to rekey an IPsec SA: a new Quick Mode replacing it (the first
        action is the new IPsec SA's ``SaCreated``)."""
        out = self._out = []
        child = self.children.get(serial)
        if child is not None and child.established and not child.successor:
            quick.rekey(self, child, now, initiated=True)
        elif child is not None:
            self.log(serial, "cannot rekey: not an established IPsec SA, or a rekey is "
                             "already under way")
        self._out = []
        return out

    def delete_ike(self, serial: int, now: float, *, notify: bool = True,
                   wait: bool = False) -> list[Action]:
        """Delete an ISAKMP SA and its IPsec SAs, telling the peer (``wait`` is accepted
        for symmetry with IKEv2: IKEv1 deletes are not acknowledged)."""
        del wait
        out = self._out = []
        sa = self.isakmp_sas.get(serial)
        if sa is not None and not sa.dying:
            informational.delete_isakmp(self, sa, now, notify=notify)
        self._out = []
        return out

    def delete_child(self, serial: int, now: float, *, notify: bool = True) -> list[Action]:
        out = self._out = []
        child = self.children.get(serial)
        if child is not None:
            informational.delete_ipsec(self, child, now, notify=notify)
        self._out = []
        return out

    def shutdown(self, now: float, *, notify: bool = True) -> list[Action]:
        out = self._out = []
        for sa in list(self.isakmp_sas.values()):
            if not sa.dying:
                informational.delete_isakmp(self, sa, now, notify=notify)
        self._out = []
        return out

    @property
    def ike_sas(self) -> dict[int, IsakmpSa]:
        """The IKEv2 engine's name for the IKE (here ISAKMP) SAs, for the glue."""
        return self.isakmp_sas

    def sa(self, serial: int) -> IsakmpSa | IpsecSa | None:
        return self.isakmp_sas.get(serial) or self.children.get(serial)

    # ------------------------------------------------------------------ helpers

    def emit(self, action: Action) -> None:
        self._out.append(action)

    def log(self, serial: int, text: str, rc: int = RC_LOG) -> None:
        self._out.append(Log(serial, text, rc))

    def debug(self, serial: int, text: str) -> None:
        self._out.append(Log(serial, text, RC_DEBUG))

    def set_state(self, sa: IsakmpSa | IpsecSa, state: StateInfo) -> None:
        sa.state = state
        self._out.append(StateChanged(sa.serial, state))

    def arm(self, sa: IsakmpSa | IpsecSa, event: str, at: float | None) -> None:
        if at is None:
            if sa.timers.pop(event, None) is not None:
                self._out.append(SetTimer(sa.serial, event, None))
            return
        sa.timers[event] = at
        self._out.append(SetTimer(sa.serial, event, at))

    def send(self, sa: IsakmpSa, data: bytes, serial: int = 0) -> None:
        self._out.append(Send(serial or sa.serial, data, sa.local, sa.remote))

    def move(self, sa: IsakmpSa, local: Endpoint, remote: Endpoint) -> None:
        if (local, remote) != (sa.local, sa.remote):
            if self._halfopen.get((sa.icookie, sa.remote)) is sa:
                del self._halfopen[(sa.icookie, sa.remote)]
                self._halfopen[(sa.icookie, remote)] = sa
            sa.local, sa.remote = local, remote
            self._out.append(EndpointsChanged(sa.serial, local, remote))

    def register(self, sa: IsakmpSa) -> None:
        self._current = sa
        self.isakmp_sas[sa.serial] = sa
        self._by_cookie[sa.our_cookie] = sa
        if not sa.is_initiator:
            self._halfopen[(sa.icookie, sa.remote)] = sa

    def forget_halfopen(self, sa: IsakmpSa) -> None:
        """Phase 1 is over: a repeated first message no longer belongs to this SA."""
        if self._halfopen.get((sa.icookie, sa.remote)) is sa:
            del self._halfopen[(sa.icookie, sa.remote)]

    def random_cookie(self) -> bytes:
        while True:
            cookie = self.rand(8)
            if cookie != ZERO_COOKIE and cookie not in self._by_cookie:
                return cookie

    def child_spi(self) -> int:
        while True:
            spi = int.from_bytes(self.rand(4), "big")
            if spi >= 0x1000 and spi not in self._child_spis:
                self._child_spis.add(spi)
                return spi

    def message_id(self, sa: IsakmpSa) -> int:
        """A fresh, non-zero phase 2 message ID not used on this ISAKMP SA."""
        while True:
            msgid = int.from_bytes(self.rand(4), "big")
            if msgid and msgid not in sa.msgids:
                sa.msgids.add(msgid)
                return msgid

    def finish_initiate(self, sa: IsakmpSa | IpsecSa, ok: bool, rc: int = 0) -> None:
        if sa.initiated:
            sa.initiated = False
            self._out.append(InitiateDone(sa.serial, ok, rc))

    # ------------------------------------------------------------------ messages

    def header(self, sa: IsakmpSa, exchange: int, msgid: int, flags: int = 0) -> Header:
        return Header(sa.icookie, sa.rcookie, 0, exchange, flags, msgid)

    def seal(self, sa: IsakmpSa, exchange: int, msgid: int,
             payloads: list[IsakmpPayload], iv: bytes) -> tuple[bytes, bytes]:
        """An encrypted message and the IV that follows it."""
        assert sa.choice is not None
        first, chain = encode_payloads(payloads)
        body, next_iv = C.encrypt(sa.choice.encr, sa.enc_key, iv, chain)
        h = self.header(sa, exchange, msgid, Flag.ENCRYPTION)
        return h.pack(first, HEADER_SIZE + len(body)) + body, next_iv

    def unseal(self, sa: IsakmpSa, msg: Message, iv: bytes
               ) -> tuple[list[IsakmpPayload], bytes, bytes]:
        """(payloads, plaintext without padding, next IV); raises IsakmpDecodeError or
        C.DecryptError."""
        assert sa.choice is not None
        plain, next_iv = C.decrypt(sa.choice.encr, sa.enc_key, iv, msg.ciphertext)
        payloads = decode_payloads(msg.header.next_payload, plain, padded=True)
        return payloads, plain[:chain_length(plain, len(payloads))], next_iv

    def hashed_message(self, sa: IsakmpSa, exchange: int, msgid: int,
                       rest: list[IsakmpPayload], iv: bytes,
                       compute: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
        """HASH then ``rest``, the hash computed over ``rest`` as it goes on the wire."""
        _first, chain = encode_payloads(rest)
        return self.seal(sa, exchange, msgid, [Hash(compute(chain))] + rest, iv)

    def start_retransmit(self, owner: IsakmpSa | IpsecSa, data: bytes, now: float) -> None:
        policy = owner.policy
        owner.retransmit = Retransmit(data, now, policy.retransmit_interval,
                                      policy.retransmit_timeout)
        self.arm(owner, RETRANSMIT, now + policy.retransmit_interval)

    def stop_retransmit(self, owner: IsakmpSa | IpsecSa) -> None:
        owner.retransmit = None
        self.arm(owner, RETRANSMIT, None)

    def clear_notify(self, local: Endpoint, remote: Endpoint, icookie: bytes, rcookie: bytes,
                     notify: int) -> list[Action]:
        """Entry point: answer a packet the caller refused with a notification in the clear
        (``ikev1-policy=reject``: INVALID_MAJOR_VERSION)."""
        out = self._out = []
        self.send_clear_notify(local, remote, icookie, rcookie, notify)
        self._out = []
        return out

    def send_clear_notify(self, local: Endpoint, remote: Endpoint, icookie: bytes,
                          rcookie: bytes, notify: int) -> None:
        """An unencrypted Informational exchange (before any keys exist)."""
        self.log(0, f"sending notification {name_of(NotifyType, notify)} to "
                    f"{endpoint_text(remote)}")
        data = encode_message(Header(icookie, rcookie, 0, Exchange.INFO, 0, 0),
                              [Notify(notify, ProtocolId.ISAKMP, icookie + rcookie)])
        self._out.append(Send(0, data, local, remote))

    # ------------------------------------------------------------------ teardown

    def teardown_ipsec(self, child: IpsecSa, reason: str) -> None:
        if child.installed and child.keys is not None:
            self._out.append(RemoveChild(child.serial, child.keys))
        child.installed = False
        for event in list(child.timers):
            self.arm(child, event, None)
        self._child_spis.discard(child.spi_in)
        self.children.pop(child.serial, None)
        child.isakmp.children.pop(child.serial, None)
        self.finish_initiate(child, False)
        self._out.append(SaDeleted(child.serial, "child", child.established, reason))

    def teardown_isakmp(self, sa: IsakmpSa, reason: str, line: str | None = None,
                        rc: int = 0) -> None:
        """Forget an ISAKMP SA and its IPsec SAs (no message is sent here)."""
        if line:
            self.log(sa.serial, line, rc)
        heir = self.heir(sa)
        for child in list(sa.children.values()):
            if heir is not None and child.established:
                # IKEv1 IPsec SAs outlive their ISAKMP SA; deletes and DPD for them now
                # go through the newest ISAKMP SA with the same peer
                del sa.children[child.serial]
                child.isakmp = heir
                heir.children[child.serial] = child
                self._out.append(ParentChanged(child.serial, heir.serial))
            else:
                self.teardown_ipsec(child, reason)
        for event in list(sa.timers):
            self.arm(sa, event, None)
        sa.retransmit = None
        sa.dying = True
        if self._by_cookie.get(sa.our_cookie) is sa:
            del self._by_cookie[sa.our_cookie]
        self.forget_halfopen(sa)
        self.isakmp_sas.pop(sa.serial, None)
        self.finish_initiate(sa, False, rc)
        self._out.append(SaDeleted(sa.serial, "ike", sa.established, reason))

    def heir(self, sa: IsakmpSa) -> IsakmpSa | None:
        """The newest other established ISAKMP SA of the same connection and peer."""
        best = None
        for other in self.isakmp_sas.values():
            if other is not sa and other.established and not other.dying \
                    and other.policy is sa.policy and other.remote[0] == sa.remote[0] \
                    and (best is None or other.serial > best.serial):
                best = other
        return best

    # ------------------------------------------------------------------ timers

    def _isakmp_timer(self, sa: IsakmpSa, event: str, now: float) -> None:
        if event == RETRANSMIT:
            self._retransmit(sa, sa, now)
        elif event == DISCARD:
            self.teardown_isakmp(sa, "discarded", f"deleting ISAKMP SA ({sa.state.story})")
        elif event == EXPIRE:
            informational.delete_isakmp(self, sa, now, notify=True)
        elif event == REPLACE:
            # rekey: a new phase 1; this one lives on until the new one is up (or until
            # the margin is spent)
            if not sa.successor and sa.established and not sa.dying:
                phase1.initiate(self, sa.policy, now, None, replacing=sa)
            self.arm(sa, EXPIRE, now + sa.policy.rekey_margin)
        elif event == LIVENESS:
            informational.liveness(self, sa, now)

    def _ipsec_timer(self, child: IpsecSa, event: str, now: float) -> None:
        if event == RETRANSMIT:
            self._retransmit(child.isakmp, child, now)
        elif event == DISCARD:
            self.teardown_ipsec(child, "discarded")
        elif event == REKEY:
            quick.rekey(self, child, now)
        elif event == EXPIRE:
            informational.delete_ipsec(self, child, now, notify=True)

    def _retransmit(self, sa: IsakmpSa, owner: IsakmpSa | IpsecSa, now: float) -> None:
        o = owner.retransmit
        if o is None:
            return
        exceeded = o.retransmits >= self.config.max_retransmits
        if exceeded or now - o.start >= o.timeout:
            if exceeded:
                what = (f"max number of retransmissions ({o.retransmits}) reached after "
                        f"{seconds_text(round(now - o.start, 3))} seconds")
            else:
                what = (f"{seconds_text(o.timeout)} second timeout exceeded after "
                        f"{o.retransmits} retransmits")
            state = owner.state
            # Libreswan's excuses (retransmit.c), by state
            if state is S.MAIN_I3:
                why = (".  Possible authentication failure: no acceptable response to our "
                       "first encrypted message")
            elif state in (S.MAIN_I1, S.AGGR_I1):
                why = ".  No response (or no acceptable response) to our first IKEv1 message"
            elif state is S.QUICK_I1:
                # only while the connection has no IPsec SA up
                why = "" if any(c.established and c.policy is owner.policy
                                for c in self.children.values()) else (
                    ".  No acceptable response to our first Quick Mode message: perhaps "
                    "peer likes no proposal")
            else:
                why = ".  No response (or no acceptable response) to our IKEv1 message"
            self.log(owner.serial, f"{state.name}: {what}{why}", RC_NORETRANSMISSION)
            owner.retransmit = None
            if isinstance(owner, IpsecSa):
                quick.fail(self, owner)
            else:
                self.teardown_isakmp(owner, "timeout",
                                     f"deleting ISAKMP SA ({owner.state.story})",
                                     rc=RC_NORETRANSMISSION)
            return
        if o.retransmits > 0 and o.delay * 2 < o.timeout:
            o.delay *= 2
        o.retransmits += 1
        self.send(sa, o.data, owner.serial)
        self.arm(owner, RETRANSMIT, now + o.delay)
        self.log(owner.serial, f"{owner.state.name}: retransmission; will wait "
                               f"{seconds_text(o.delay)} seconds for response")

    # ------------------------------------------------------------------ receiving

    def _find(self, h: Header) -> IsakmpSa | None:
        sa = self._by_cookie.get(h.rcookie)
        if sa is not None and not sa.is_initiator and sa.icookie == h.icookie:
            return sa
        sa = self._by_cookie.get(h.icookie)
        if sa is not None and sa.is_initiator and (
                sa.rcookie == h.rcookie
                or (sa.rcookie == ZERO_COOKIE and sa.state in (S.MAIN_I1, S.AGGR_I1))):
            return sa
        return None

    def _receive(self, data: bytes, local: Endpoint, remote: Endpoint, now: float) -> None:
        try:
            msg = decode_message(data)
        except IsakmpDecodeError as e:
            self.log(0, f"packet from {endpoint_text(remote)}: dropping malformed ISAKMP "
                        f"message: {e}")
            return
        h = msg.header
        sa = self._find(h)
        if sa is None:
            if h.exchange in (Exchange.MAIN, Exchange.AGGRESSIVE) and h.message_id == 0 \
                    and h.rcookie == ZERO_COOKIE and not msg.encrypted:
                old = self._halfopen.get((h.icookie, remote))
                if old is not None:
                    self._duplicate(old, data)
                    return
                phase1.respond(self, msg, data, local, remote, now)
                return
            self.debug(0, f"packet from {endpoint_text(remote)}: no ISAKMP SA for "
                          f"{h.icookie.hex()}/{h.rcookie.hex()}; dropping "
                          f"{name_of(Exchange, h.exchange)} message")
            return
        self._current = sa
        if data == sa.last_in and sa.last_out:
            self._duplicate(sa, data)
            return
        if h.flags & Flag.COMMIT:
            # neither encrypted nor authenticated: honouring it would let anyone on the
            # path stall Quick Mode, so Libreswan (and this engine) ignore it
            self.debug(sa.serial, "IKE message has the Commit Flag set but Pluto doesn't "
                                  "implement this feature due to security concerns; "
                                  "ignoring flag")
        if h.exchange in (Exchange.MAIN, Exchange.AGGRESSIVE):
            if h.message_id != 0:
                self.log(sa.serial, "dropping phase 1 message with a non-zero Message ID")
                return
            phase1.receive(self, sa, msg, data, local, remote, now)
        elif h.exchange == Exchange.QUICK:
            quick.receive(self, sa, msg, data, now)
        elif h.exchange == Exchange.INFO:
            informational.receive(self, sa, msg, now)
        elif h.exchange == Exchange.MODE_CFG:
            transaction.receive(self, sa, msg, data, now)
        else:
            self.log(sa.serial, f"dropping {name_of(Exchange, h.exchange)} exchange: not "
                                "supported")

    def _duplicate(self, sa: IsakmpSa, data: bytes) -> None:
        if data == sa.last_in and sa.last_out:
            self.log(sa.serial, f"retransmitting in response to duplicate packet; already "
                                f"{sa.state.name}")
            self.send(sa, sa.last_out)
        else:
            self.debug(sa.serial, "discarding duplicate packet")


def chain_length(plain: bytes, count: int) -> int:
    """Octets taken by the first ``count`` payloads of a decoded chain (the rest of a
    decrypted body is padding, which hashes must not cover)."""
    pos = 0
    for _ in range(count):
        pos += int.from_bytes(plain[pos + 2:pos + 4], "big")
    return pos


def prf_of(sa: IsakmpSa) -> A.Prf:
    assert sa.choice is not None
    return sa.choice.prf


from . import informational, phase1, quick, transaction  # noqa: E402 - they import us for typing

__all__ = ["Engine", "EngineConfig", "INITIATOR", "RC_DEBUG", "chain_length", "prf_of"]
