"""The IKEv2 engine: demultiplexing, message-ID windows, retransmission, timers, deletion.

Sans-IO in the style of h11: every entry point takes the current time ``now`` (seconds on
any monotonic clock the caller likes) and returns the list of actions (``actions.py``) the
caller must carry out, in order.  Nothing here touches a socket, a clock, the kernel or
the daemon; randomness (SPIs, nonces, IVs) and key exchange values come from injectable
functions so that two engines can be run deterministically in one test.

Each exchange lives in its own module (``ike_sa_init``, ``ike_auth``, ``informational``,
``create_child_sa``) with its initiator and responder halves side by side; which function
handles which message in which state is the table in ``states.py``.

A peer's packet can never raise out of :meth:`Engine.receive`: malformed messages are
dropped or answered with the notification RFC 7296 asks for, and anything unexpected is
logged and dropped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct
from typing import Any

from .. import dh
from ..codec import (
    SK,
    SKF,
    Delete,
    IkeDecodeError,
    Message,
    Payload,
    decode_message,
    decode_payloads,
)
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId, notify_name
from . import states as S
from .actions import (
    RC_LOG,
    RC_NORETRANSMISSION,
    Action,
    EndpointsChanged,
    InitiateDone,
    Log,
    PolicySwitched,
    RemoveChild,
    SaDeleted,
    Send,
    SetTimer,
    StateChanged,
)
from .cookie import CookieSecrets, LogLimiter, cookies_required
from .message import ZERO_SPI, build_sk, endpoint_text, open_sk, seconds_text
from .policy import Credentials, Endpoint, NoCredentials, Policy, PolicyIndex
from .sa import INITIATOR, ChildSa, IkeSa, Outstanding

_HEADER = Struct("!8s8sBBBBII")
RC_DEBUG = -1  # Log.rc for debug lines (the glue shows them only with debugging on)

TIMER_SLACK = 0.005  # seconds a timer may fire early (event loop clock resolution)
RETRANSMIT = "RETRANSMIT"
DISCARD = "DISCARD"
REKEY = "REKEY"
LIVENESS = "LIVENESS"
REPLACE = "REPLACE"
EXPIRE = "EXPIRE"


class BufferedRandom:
    """``os.urandom`` in 4 KiB gulps: the engine asks for a handful of small values per
    message (SPIs, nonces, IVs) and a system call for each shows up in profiles."""

    __slots__ = ("_buf", "_pos", "_source")

    def __init__(self, source: Callable[[int], bytes] = os.urandom) -> None:
        self._source = source
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        if pos + n > len(self._buf):
            self._buf = self._source(max(4096, n))
            pos = 0
        self._pos = pos + n
        return self._buf[pos:pos + n]


@dataclass(slots=True)
class EngineConfig:
    nonce_size: int = 32  # DEFAULT_NONCE_SIZE
    max_retransmits: int = 12  # MAXIMUM_RETRANSMITS_PER_EXCHANGE
    halfopen_timeout: float = 200.0  # EXCHANGE_TIMEOUT_DELAY: responder's DISCARD
    require_cookies: bool = False  # answer IKE_SA_INIT with N(COOKIE) first (DDoS mode)
    cookie_secret: bytes = b""
    # DDoS protection (cookie.py): ddos-mode=, ddos-ike-threshold=, max-halfopen-ike=
    ddos_mode: str = "auto"
    ddos_ike_threshold: int = 25000
    max_halfopen_ike: int = 50000
    # RFC 5685 (redirect.py): global-redirect=yes|no|auto, global-redirect-to= (as text),
    # and the per-connection settings looked up for a policy (None: nothing accepted/sent)
    global_redirect: str = "no"
    global_redirect_to: str = ""
    redirect_settings: Callable[[Any], Any] | None = None
    impair_ddos_cookie: int = 0  # --impair ddos-cookie: 1 add a bogus one, 2 mangle ours


@dataclass(slots=True)
class Inbound:
    """A received message, once its header has been accepted."""

    data: bytes
    exchange: int
    message_id: int
    response: bool
    msg: Message
    payloads: list[Payload]  # cleartext payloads, or the decrypted SK contents
    local: Endpoint
    remote: Endpoint


class Engine:
    def __init__(self, policies: PolicyIndex | None = None,
                 credentials: Credentials | None = None, *,
                 rng: Callable[[int], bytes] | None = None,
                 serials: Callable[[], int] | None = None,
                 key_exchange: Callable[[Any], Any] | None = None,
                 config: EngineConfig | None = None,
                 spi_source: Callable[[Any], int | None] | None = None) -> None:
        self.policies = policies if policies is not None else PolicyIndex()
        # inbound Child SA SPIs reserved ahead with the kernel (pluto's SPI pool); asked with
        # the local address, it answers None when it has none ready
        self.spi_source = spi_source
        self.credentials: Credentials = credentials or NoCredentials()
        self.rand: Callable[[int], bytes] = rng or BufferedRandom()
        self.next_serial: Callable[[], int] = serials or itertools.count(1).__next__
        self.key_exchange = key_exchange or dh.key_exchange
        self.config = config or EngineConfig()
        if not self.config.cookie_secret:
            self.config.cookie_secret = self.rand(32)
        self.cookies = CookieSecrets(self.rand)
        self.cookies.seed(self.config.cookie_secret)
        self.halfopen = 0  # IKE SAs in a half-open state (Libreswan's total_halfopen_ike())
        self.unsecured_log = LogLimiter()  # lines about unauthenticated packets
        self.counters: dict[str, int] = {}  # --globalstatus counters kept by the engine
        self.redirects: dict[int, Any] = {}  # id(policy.handle) -> redirect.Attempt
        self.ike_sas: dict[int, IkeSa] = {}
        self.children: dict[int, ChildSa] = {}
        self._by_spi: dict[bytes, IkeSa] = {}  # our IKE SPI -> SA
        #: IKE SA serials by connection name (a template's instances share its name): what
        #: uniqueids looks through, instead of every IKE SA
        self.by_name: dict[str, set[int]] = {}
        self._halfopen: dict[tuple[bytes, Endpoint], IkeSa] = {}  # responder: (SPIi, peer)
        self._child_spis: set[int] = set()  # inbound SPIs in use
        self._out: list[Action] = []
        self._current: IkeSa | None = None  # the SA a message is being processed for
        # the request being answered: (local, remote, SA, message ID), for send_response
        self._reply_to: tuple[Endpoint, Endpoint, IkeSa, int] | None = None

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
            if sa is not None and not sa.dying and self.ike_sas.get(sa.serial) is sa:
                # half-processed: do not leave it wedged; drop it (the peer will retry)
                self.teardown_ike(sa, "internal error", f"deleting IKE SA ({sa.state.story})")
        self._current = None
        self._out = []
        return out

    def timer(self, serial: int, event: str, now: float) -> list[Action]:
        """The timer ``event`` of SA ``serial`` fired."""
        out = self._out = []
        sa: IkeSa | ChildSa | None = self.ike_sas.get(serial) or self.children.get(serial)
        # a timer fires at most once per arming, and never before its deadline: a late
        # callback for a deadline since moved (or cancelled) is ignored
        due = sa.timers.get(event) if sa is not None else None
        if sa is not None and due is not None and now + TIMER_SLACK >= due:
            del sa.timers[event]
            if isinstance(sa, IkeSa):
                self._ike_timer(sa, event, now)
            else:
                self._child_timer(sa, event, now)
        self._out = []
        return out

    def initiate(self, policy: Policy, now: float, remote: Endpoint | None = None
                 ) -> list[Action]:
        """Start IKE_SA_INIT (and then IKE_AUTH with a Child SA) for ``policy``.  The first
        action is the ``SaCreated`` of the new IKE SA."""
        out = self._out = []
        ike_sa_init.initiate(self, policy, now, remote)
        self._out = []
        return out

    def child_installed(self, serial: int, error: str | None, now: float) -> list[Action]:
        """Answer to ``InstallChild``: ``error`` is None on success, else why it failed."""
        out = self._out = []
        child = self.children.get(serial)
        if child is not None:
            if child.ccsa:
                create_child_sa.child_installed(self, child, error, now)
            else:
                ike_auth.child_installed(self, child, error, now)
        self._out = []
        return out

    def delete_ike(self, serial: int, now: float, *, notify: bool = True,
                   wait: bool = False) -> list[Action]:
        """Delete an IKE SA and its children.  ``notify``: tell the peer; ``wait``: wait for
        the peer's response before tearing down (``--down``), else tear down at once
        (``--delete``, ``--shutdown``)."""
        out = self._out = []
        sa = self.ike_sas.get(serial)
        if sa is not None:
            self._delete_ike(sa, now, notify=notify, wait=wait)
        self._out = []
        return out

    def delete_child(self, serial: int, now: float, *, notify: bool = True) -> list[Action]:
        """Delete one Child SA, telling the peer with an INFORMATIONAL exchange."""
        out = self._out = []
        child = self.children.get(serial)
        if child is not None:
            if notify and child.ike.established and not child.ike.dying:
                informational.request_child_delete(self, child, now)
            else:
                self.teardown_child(child, "deleted")
        self._out = []
        return out

    def shutdown(self, now: float, *, notify: bool = True) -> list[Action]:
        """Delete everything (``--shutdown``): established IKE SAs send a delete."""
        out = self._out = []
        for sa in list(self.ike_sas.values()):
            self._delete_ike(sa, now, notify=notify, wait=False)
        self._out = []
        return out

    def rekey_ike(self, serial: int, now: float) -> list[Action]:
        """Operator asked to rekey the IKE SA (``--rekey-ike``): a CREATE_CHILD_SA exchange
        with new SPIs and keys moving the Child SAs (``reauth=yes``: replace the IKE SA by
        a new negotiation instead).  The first action is the new IKE SA's ``SaCreated``
        (none when rekeying is not possible); ``InitiateDone`` for it ends the rekey."""
        out = self._out = []
        sa = self.ike_sas.get(serial)
        if sa is None:
            child = self.children.get(serial)
            sa = child.ike if child is not None else None
        if sa is not None:
            new = self._rekey_ike(sa, now, operator=True)
            if new is None:
                self.log(sa.serial, "cannot rekey: not an established IKE SA, or a rekey is "
                                    "already under way")
        self._out = []
        return out

    def rekey_child(self, serial: int, now: float) -> list[Action]:
        """Operator asked to rekey a Child SA (``--rekey-child``): CREATE_CHILD_SA with
        N(REKEY_SA); the first action is the new Child SA's ``SaCreated``."""
        out = self._out = []
        child = self.children.get(serial)
        if child is not None:
            new = None
            if child.established and not child.successor:
                new = create_child_sa.initiate_child(self, child.ike, child.policy, now,
                                                     replacing=child, initiated=True)
            if new is None:
                self.log(child.serial, "cannot rekey: not an established Child SA, or a "
                                       "rekey is already under way")
        self._out = []
        return out

    def initiate_child(self, policy: Policy, ike_serial: int, now: float) -> list[Action]:
        """A new Child SA for ``policy`` on the established IKE SA ``ike_serial`` (a
        connection sharing the IKE SA); the first action is its ``SaCreated``."""
        out = self._out = []
        sa = self.ike_sas.get(ike_serial)
        if sa is not None:
            create_child_sa.initiate_child(self, sa, policy, now, initiated=True)
        self._out = []
        return out

    def _rekey_ike(self, sa: IkeSa, now: float, operator: bool = False) -> IkeSa | None:
        if sa.policy.reauth:
            return self.replace_ike(sa, now, operator=operator)
        return create_child_sa.initiate_rekey_ike(self, sa, now, initiated=operator)

    def replace_ike(self, sa: IkeSa, now: float, operator: bool = False) -> IkeSa | None:
        """Make-before-break replacement: negotiate a new IKE SA (and Child SA) for the same
        connection; the old one is deleted once the new one is up.  (A rekey by
        CREATE_CHILD_SA would keep the peer's state; this re-authenticates instead.)"""
        policy = sa.policy
        if (sa.successor or not sa.established or sa.dying or sa.deleting
                or policy.remote_addr is None):
            return None
        new = ike_sa_init.initiate(self, policy, now, None, predecessor=sa)
        if new is not None:
            new.initiated = operator
        return new

    def retire_predecessor(self, sa: IkeSa, now: float) -> None:
        """The replacement ``sa`` is up: the IKE SA it replaces goes (telling the peer)."""
        old = self.ike_sas.get(sa.predecessor) if sa.predecessor else None
        sa.predecessor = 0
        if old is not None and not old.dying:
            old.successor = 0
            self._delete_ike(old, now, notify=True, wait=False)

    def redirect(self, serial: int, to: str, now: float) -> list[Action]:
        """Active redirect (``whack --name C --redirect-to GW``, RFC 5685 5): an
        INFORMATIONAL request with N(REDIRECT) tells the peer of the established IKE SA
        ``serial`` to go to gateway ``to``."""
        out = self._out = []
        sa = self.ike_sas.get(serial)
        if sa is not None:
            from . import redirect  # noqa: PLC0415 - redirect imports the exchanges

            redirect.request_informational(self, sa, to, now)
        self._out = []
        return out

    def cookies_required(self) -> bool:
        """Answer IKE_SA_INIT with N(COOKIE) first (Libreswan's require_ddos_cookies())."""
        cfg = self.config
        return cfg.require_cookies or cookies_required(cfg.ddos_mode, self.halfopen,
                                                       cfg.ddos_ike_threshold)

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def note_unsecured(self, text: str, now: float) -> list[Action]:
        """Entry point: log a line about an unauthenticated packet the caller dropped,
        under the same rate limit as the engine's own."""
        out = self._out = []
        self.limited_log(text, now)
        self._out = []
        return out

    def limited_log(self, text: str, now: float) -> None:
        """A line about an unauthenticated packet, rate limited (debug once over)."""
        ok, notes = self.unsecured_log.admit(now)
        for note in notes:
            self.log(0, note)
        if ok:
            self.log(0, text)
        else:
            self.debug(0, text)

    def sa(self, serial: int) -> IkeSa | ChildSa | None:
        return self.ike_sas.get(serial) or self.children.get(serial)

    # ------------------------------------------------------------------ helpers for exchanges

    def emit(self, action: Action) -> None:
        self._out.append(action)

    def log(self, serial: int, text: str, rc: int = RC_LOG) -> None:
        self._out.append(Log(serial, text, rc))

    def debug(self, serial: int, text: str) -> None:
        self._out.append(Log(serial, text, RC_DEBUG))

    def set_state(self, sa: IkeSa | ChildSa, state: S.StateInfo) -> None:
        if state.ike and self.ike_sas.get(sa.serial) is sa:  # keep the half-open count
            self.halfopen += ((state.category == S.HALF_OPEN)
                              - (sa.state.category == S.HALF_OPEN))
        sa.state = state
        self._out.append(StateChanged(sa.serial, state))

    def arm(self, sa: IkeSa | ChildSa, event: str, at: float | None) -> None:
        if at is None:
            if sa.timers.pop(event, None) is not None:
                self._out.append(SetTimer(sa.serial, event, None))
            return
        sa.timers[event] = at
        self._out.append(SetTimer(sa.serial, event, at))

    def send(self, sa: IkeSa, data: bytes | tuple[bytes, ...],
             to: tuple[Endpoint, Endpoint] | None = None) -> None:
        """Send a message, or all of its fragments (RFC 7383) in order; ``to``: the
        (local, remote) endpoints of the request being answered (RFC 7296 2.11: a response
        goes back where its request came from), else the SA's."""
        local, remote = to if to is not None else (sa.local, sa.remote)
        if type(data) is bytes:
            self._out.append(Send(sa.serial, data, local, remote))
            return
        for frag in data:
            self._out.append(Send(sa.serial, frag, local, remote))
        self.debug(sa.serial, f"sent {len(data)} messages")

    def switch_policy(self, sa: IkeSa, policy: Policy) -> None:
        """Move the SA to a better fitting connection (responder, IKE_AUTH)."""
        if policy.name != sa.policy.name:
            self._name_index(sa, add=False)
            sa.policy = policy
            self._name_index(sa, add=True)
        sa.policy = policy
        self._out.append(PolicySwitched(sa.serial, policy))

    def move(self, sa: IkeSa, local: Endpoint, remote: Endpoint) -> None:
        """Talk to the peer over other endpoints from now on (NAT traversal)."""
        if (local, remote) != (sa.local, sa.remote):
            sa.local, sa.remote = local, remote
            self._out.append(EndpointsChanged(sa.serial, local, remote))

    def register(self, sa: IkeSa) -> None:
        self._current = sa
        if self.ike_sas.get(sa.serial) is not sa and sa.state.category == S.HALF_OPEN:
            self.halfopen += 1
        self.ike_sas[sa.serial] = sa
        self._by_spi[sa.our_spi] = sa
        self._name_index(sa, add=True)

    def _name_index(self, sa: IkeSa, add: bool) -> None:
        serials = self.by_name.setdefault(sa.policy.name, set()) if add else \
            self.by_name.get(sa.policy.name)
        if serials is None:
            return
        if add:
            serials.add(sa.serial)
            return
        serials.discard(sa.serial)
        if not serials:
            del self.by_name[sa.policy.name]

    def random_spi(self) -> bytes:
        while True:
            spi = self.rand(8)
            if spi != ZERO_SPI and spi not in self._by_spi:
                return spi

    def child_spi(self) -> int:
        """A fresh inbound ESP SPI in pluto's range (0x1000-0xffffffff), unique among ours.

        The engine must not wait on the kernel here, so the kernel's ALLOCSPI is reached only
        through ``spi_source`` (SPIs reserved ahead of time); without one, or when it has none
        ready, the SPI is random and a clash is caught when the SA is added."""
        source = self.spi_source
        if source is not None:
            sa = self._current
            spi = source(sa.local[0] if sa is not None else None)
            if spi is not None and spi >= 0x1000 and spi not in self._child_spis:
                self._child_spis.add(spi)
                return spi
        while True:
            spi = int.from_bytes(self.rand(4), "big")
            if spi >= 0x1000 and spi not in self._child_spis:
                self._child_spis.add(spi)
                return spi

    def processor(self, name: str) -> Callable[..., None]:
        return _PROCESSORS[name]

    def start_request(self, sa: IkeSa, exchange: int,
                      build: Callable[[int], bytes], on_response: str, now: float,
                      context: Any = None, *, initial: bool = False) -> None:
        """Send a request (window size 1: queue it behind an outstanding one)."""
        if sa.outstanding is not None:
            sa.pending.append(lambda: self.start_request(sa, exchange, build, on_response,
                                                         now, context))
            return
        msgid = sa.next_request_id
        sa.next_request_id += 1
        data = fragment.outgoing(self, sa, build(msgid))
        policy = sa.policy
        sa.outstanding = Outstanding(msgid, exchange, data, on_response, now,
                                     policy.retransmit_interval, policy.retransmit_interval,
                                     policy.retransmit_timeout, 0, context)
        self.send(sa, data)
        sa.outstanding.next_at = now + policy.retransmit_interval
        self.arm(sa, RETRANSMIT, sa.outstanding.next_at)

    def resend_request(self, sa: IkeSa, data: bytes, now: float) -> None:
        """Replace the outstanding request (same message ID: COOKIE / INVALID_KE retry) and
        restart its retransmission clock."""
        o = sa.outstanding
        assert o is not None
        o.data = data
        o.start = now
        o.delay = o.delays = sa.policy.retransmit_interval
        o.retransmits = 0
        self.send(sa, data)
        o.next_at = now + o.delay
        self.arm(sa, RETRANSMIT, o.next_at)

    def keep_waiting(self, sa: IkeSa, o: Outstanding) -> None:
        """A response was not acceptable: the request stays outstanding and its
        retransmit timer is put back where it was."""
        sa.outstanding = o
        self.arm(sa, RETRANSMIT, o.next_at)

    def send_response(self, sa: IkeSa, message_id: int, data: bytes) -> None:
        wire = fragment.outgoing(self, sa, data)
        sa.last_response = (message_id, wire)
        sa.expected_request_id = message_id + 1
        reply_to = self._reply_to
        self.send(sa, wire, reply_to[:2] if reply_to is not None and reply_to[2] is sa
                  and reply_to[3] == message_id else None)

    def respond_error(self, sa: IkeSa, inb: Inbound, kind: int, data: bytes = b"") -> None:
        """An SK-protected response carrying just one error notification."""
        from .message import notify

        pkt = build_sk(sa, inb.exchange, inb.message_id, [notify(kind, data)], True,
                       self.rand(sa.seal.suite.iv_size) if sa.seal else None)
        self.send_response(sa, inb.message_id, pkt)

    def finish_initiate(self, sa: IkeSa, ok: bool, rc: int = 0) -> None:
        if sa.initiated:
            sa.initiated = False
            self._out.append(InitiateDone(sa.serial, ok, rc))

    # ------------------------------------------------------------------ teardown

    def teardown_child(self, child: ChildSa, reason: str) -> None:
        if child.installed and child.keys is not None:
            self._out.append(RemoveChild(child.serial, child.keys))
        child.installed = False
        for event in list(child.timers):
            self.arm(child, event, None)
        self._child_spis.discard(child.spi_in)
        self.children.pop(child.serial, None)
        child.ike.children.pop(child.serial, None)
        if child.ike.first_child is child:
            child.ike.first_child = None
        self._out.append(SaDeleted(child.serial, "child", child.established, reason))

    def teardown_ike(self, sa: IkeSa, reason: str, line: str | None = None,
                     line_first: bool = False, rc: int = 0) -> None:
        """Forget an IKE SA and its children (no messages are sent here)."""
        if line and line_first:
            self.log(sa.serial, line)
        for child in list(sa.children.values()):
            self.teardown_child(child, reason)
        if line and not line_first:
            self.log(sa.serial, line)
        for event in list(sa.timers):
            self.arm(sa, event, None)
        sa.outstanding = None
        sa.pending.clear()
        sa.incoming_fragments = None
        sa.dying = True
        if sa.successor:  # a CREATE_CHILD_SA rekey of this SA still running goes with it
            succ = self.ike_sas.get(sa.successor)
            if succ is not None and succ.rekey_of == sa.serial and not succ.dying:
                self.teardown_ike(succ, reason)
        if self._by_spi.get(sa.our_spi) is sa:
            del self._by_spi[sa.our_spi]
        self._name_index(sa, add=False)
        if not sa.is_initiator:
            key = (sa.spi_i, sa.remote)
            if self._halfopen.get(key) is sa:
                del self._halfopen[key]
        if self.ike_sas.pop(sa.serial, None) is sa and sa.state.category == S.HALF_OPEN:
            self.halfopen -= 1
        if sa.predecessor:  # a failed replacement: the old SA may try again later
            old = self.ike_sas.get(sa.predecessor)
            if old is not None and old.successor == sa.serial:
                old.successor = 0
        self.finish_initiate(sa, False, rc)
        self._out.append(SaDeleted(sa.serial, "ike", sa.established, reason))

    def _delete_ike(self, sa: IkeSa, now: float, *, notify: bool, wait: bool) -> None:
        if sa.dying or (wait and sa.deleting):
            return
        if not (notify and sa.established and sa.seal is not None):
            self.teardown_ike(sa, "deleted", f"deleting IKE SA ({sa.state.story})")
            return
        if wait:
            informational.request_ike_delete(self, sa, now)
            return
        # fire and forget: Libreswan's "deleting IKE SA (STATE) and sending notification"
        self.log(sa.serial, f"deleting IKE SA ({sa.state.name}) and sending notification")
        msgid = sa.next_request_id
        sa.next_request_id += 1
        self.send(sa, informational.build_delete(self, sa, msgid, [Delete(ProtocolId.IKE, 0)]))
        self.teardown_ike(sa, "deleted")

    # ------------------------------------------------------------------ timers

    def _ike_timer(self, sa: IkeSa, event: str, now: float) -> None:
        if event == RETRANSMIT:
            self._retransmit(sa, now)
        elif event == DISCARD:
            self.teardown_ike(sa, "discarded", f"deleting IKE SA ({sa.state.story})")
        elif event == EXPIRE:
            self._delete_ike(sa, now, notify=True, wait=False)
        elif event == REPLACE:
            # the end of its life: if no replacement is under way, start one; the old SA
            # goes now either way
            self.replace_ike(sa, now)
            self._delete_ike(sa, now, notify=True, wait=False)
        elif event == REKEY:
            # only the newest IKE SA of the connection rekeys (one being replaced does not)
            if not sa.successor:
                self._rekey_ike(sa, now)
        elif event == LIVENESS:
            # dpddelay=: probe with an empty INFORMATIONAL when no exchange is running; no
            # answer within retransmit-timeout means the peer is dead (the SA goes)
            if sa.established and not sa.deleting and sa.outstanding is None:
                informational.request_liveness(self, sa, now)
            self.arm(sa, LIVENESS, now + sa.policy.dpd_delay)

    def _child_timer(self, child: ChildSa, event: str, now: float) -> None:
        if event == REKEY:
            # only the newest Child SA rekeys: one already rekeyed (by either end) waits
            # for its delete
            if not child.successor and child.established and child.ike.established \
                    and not child.ike.dying:
                create_child_sa.initiate_child(self, child.ike, child.policy, now,
                                               replacing=child)
            return
        if event == REPLACE and child.ike.successor and not self.ike_sas.get(
                child.ike.successor, child.ike).rekey_of:
            return  # the replacement IKE SA brings a new Child SA; this one goes with its IKE
        if event in (REPLACE, EXPIRE):
            if child.ike.established and not child.ike.dying:
                informational.request_child_delete(self, child, now)
            else:
                self.teardown_child(child, "expired")

    def _retransmit(self, sa: IkeSa, now: float) -> None:
        o = sa.outstanding
        if o is None:
            return
        count_exceeded = o.retransmits >= self.config.max_retransmits
        if count_exceeded or now - o.start >= o.timeout or o.delays >= o.timeout:
            if count_exceeded:
                what = (f"max number of retransmissions ({o.retransmits}) reached after "
                        f"{seconds_text(round(now - o.start, 3))} seconds")
            else:
                what = (f"{seconds_text(o.timeout)} second timeout exceeded after "
                        f"{o.retransmits} retransmits")
            if sa.state is S.IKE_AUTH_I:
                why = "Possible authentication failure: no acceptable response to our first " \
                      "encrypted message"
            elif sa.state is S.IKE_SA_INIT_I:
                why = "No response (or no acceptable response) to our first IKEv2 message"
            else:
                why = "No response (or no acceptable response) to our IKEv2 message"
            self.log(sa.serial, f"{sa.state.name}: {what}.  {why}", RC_NORETRANSMISSION)
            self._exchange_timeout(sa, o, now)
            return
        if o.retransmits > 0 and o.delay * 2 < o.timeout:
            o.delay *= 2
        o.retransmits += 1
        o.delays += o.delay
        self.send(sa, o.data)
        o.next_at = now + o.delay
        self.arm(sa, RETRANSMIT, o.next_at)
        self.log(sa.serial, f"{sa.state.name}: retransmission; will wait "
                            f"{seconds_text(o.delay)} seconds for response")

    def _exchange_timeout(self, sa: IkeSa, o: Outstanding, now: float) -> None:
        sa.outstanding = None
        if o.on_response == "liveness":
            self.teardown_ike(sa, "dead peer", f"deleting IKE SA ({sa.state.story})",
                              rc=RC_NORETRANSMISSION)
            return
        if o.on_response in ("delete_ike", "delete_child") and sa.established:
            # the peer is gone; finish what the delete started
            informational.delete_timed_out(self, sa, o, now)
            return
        self.teardown_ike(sa, "timeout", f"deleting IKE SA ({sa.state.story})",
                          rc=RC_NORETRANSMISSION)

    # ------------------------------------------------------------------ receiving

    def _receive(self, data: bytes, local: Endpoint, remote: Endpoint, now: float) -> None:
        if len(data) < 28:
            self.debug(0, f"packet from {endpoint_text(remote)}: dropping runt of "
                          f"{len(data)} bytes")
            return
        spi_i, spi_r, np, version, exchange, flags, msgid, length = _HEADER.unpack_from(data)
        if version >> 4 != 2 or length != len(data):
            self.debug(0, f"packet from {endpoint_text(remote)}: dropping message with "
                          f"version {version:#04x} length {length} (received {len(data)})")
            return
        response = bool(flags & 0x20)
        from_initiator = bool(flags & 0x08)
        if exchange == ExchangeType.IKE_SA_INIT and not response:
            if from_initiator and spi_r == ZERO_SPI and msgid == 0 and spi_i != ZERO_SPI:
                ike_sa_init.receive_request(self, data, local, remote, now)
            else:
                self.debug(0, f"packet from {endpoint_text(remote)}: dropping bogus "
                              "IKE_SA_INIT request")
            return
        sa = self._by_spi.get(spi_r if from_initiator else spi_i)
        if sa is None or sa.is_initiator == from_initiator:
            self.debug(0, f"packet from {endpoint_text(remote)}: no IKE SA for "
                          f"{spi_i.hex()}/{spi_r.hex()}; dropping {exchange} message")
            return
        if sa.is_initiator:
            if sa.spi_r != ZERO_SPI and spi_r != sa.spi_r:
                self.debug(sa.serial, "dropping message with the wrong responder SPI")
                return
        elif spi_i != sa.spi_i:
            self.debug(sa.serial, "dropping message with the wrong initiator SPI")
            return
        if response:
            o = sa.outstanding
            if o is None or msgid != o.message_id or exchange != o.exchange:
                self.debug(sa.serial, f"dropping unexpected response with Message ID {msgid}")
                return
        else:
            if msgid != sa.expected_request_id:
                last = sa.last_response
                if last is not None and msgid == last[0] and np == PayloadType.SKF:
                    # RFC 7383 2.6.1: only fragment 1 brings the response back
                    if fragment.duplicate_request(self, sa, data, _xname(exchange), msgid):
                        self.send(sa, last[1], (local, remote))
                elif last is not None and msgid == last[0]:
                    self.debug(sa.serial, f"retransmitting response for duplicate request "
                                          f"with Message ID {msgid}")
                    self.send(sa, last[1], (local, remote))
                else:
                    self.debug(sa.serial, f"dropping request with Message ID {msgid}; "
                                          f"expecting {sa.expected_request_id}")
                return
            if sa.awaiting_install is not None:
                self.debug(sa.serial, "dropping retransmitted request: still processing it")
                return
        try:
            msg = decode_message(data)
        except IkeDecodeError as e:
            self.log(sa.serial, f"dropping malformed {_xname(exchange)} message from "
                                f"{endpoint_text(remote)}: {e}")
            return
        if exchange == ExchangeType.IKE_SA_INIT:
            payloads = msg.payloads
        else:
            if sa.unseal is None:
                self.debug(sa.serial, "dropping encrypted message: no keys yet")
                return
            encrypted = type(msg.payloads[0]) if len(msg.payloads) == 1 else None
            if encrypted is SKF:
                whole = fragment.collect(self, sa, data, msg, response)
                if whole is None:  # dropped, or more fragments to come
                    return
                first_inner, plain, data, msg = whole
            elif encrypted is not SK:
                self.log(sa.serial, f"dropping {_xname(exchange)} message from "
                                    f"{endpoint_text(remote)}: expecting just an SK payload")
                return
            try:
                if encrypted is SK:
                    payloads = open_sk(sa, data, msg)
                    if sa.incoming_fragments:  # a whole copy replaces fragments of it
                        fragment.forget(sa, response)
                else:
                    payloads = decode_payloads(first_inner, plain)
            except IkeDecodeError as e:
                if response:
                    self.log(sa.serial, f"dropping {_xname(exchange)} response: {e}")
                    return
                # authenticated but malformed: RFC 7296 2.21.2 / 2.21.3
                self.log(sa.serial, f"{_xname(exchange)} request malformed: {e}; "
                                    f"responding with {notify_name(e.notify)}")
                self.respond_error(sa, Inbound(data, exchange, msgid, False, msg, [],
                                               local, remote), e.notify, e.notify_data)
                return
            except ValueError as e:  # IntegrityError: forged, corrupted or for old keys
                self.log(sa.serial, f"dropping {_xname(exchange)} "
                                    f"{'response' if response else 'request'} from "
                                    f"{endpoint_text(remote)}: {e}")
                return
        self._dispatch(sa, Inbound(data, exchange, msgid, response, msg, payloads, local,
                                   remote), now)

    def _dispatch(self, sa: IkeSa, inb: Inbound, now: float) -> None:
        self._current = sa
        present = {p.payload_type for p in inb.payloads}
        notifies = {p.type for p in inb.payloads if p.payload_type == PayloadType.N}
        t = S.lookup(sa.state, inb.exchange, inb.response, present, notifies)  # type: ignore
        if t is None:
            rows = S.candidates(sa.state, inb.exchange, inb.response)
            kind = "response" if inb.response else "request"
            if not rows:
                self.log(sa.serial, f"dropping unexpected {_xname(inb.exchange)} {kind} "
                                    f"in state {sa.state.name}")
            elif not inb.response and sa.seal is not None:
                self.log(sa.serial, f"{_xname(inb.exchange)} request is missing payloads; "
                                    "responding with INVALID_SYNTAX")
                self.respond_error(sa, inb, NotifyType.INVALID_SYNTAX)
            else:
                self.log(sa.serial, f"dropping {_xname(inb.exchange)} {kind}: missing "
                                    "payloads")
            return
        if not inb.response and sa.unseal is not None \
                and (inb.local, inb.remote) != (sa.local, sa.remote) \
                and (sa.nat_local or sa.nat_remote
                     or inb.local[1] == sa.policy.local_nat_port != sa.local[1]):
            # an authenticated request from a new address/port: the NAT mapping, or the
            # initiator's move to the NAT-T port (which it may make without a NAT, as
            # strongSwan does), tells where to talk to it from now on (RFC 7296 2.23)
            self.move(sa, inb.local, inb.remote)
        if inb.response:
            o = sa.outstanding
            sa.outstanding = None
            self.arm(sa, RETRANSMIT, None)
            self.processor(t.processor)(self, sa, inb, now, o)
            if sa.outstanding is None and sa.pending and not sa.dying:
                sa.pending.popleft()()
        else:
            self._reply_to = (inb.local, inb.remote, sa, inb.message_id)
            try:
                self.processor(t.processor)(self, sa, inb, now)
            finally:
                self._reply_to = None


from . import (  # noqa: E402 - they import us for typing
    create_child_sa,
    fragment,
    ike_auth,
    ike_sa_init,
    informational,
)

_MODULES = {"ike_sa_init": ike_sa_init, "ike_auth": ike_auth, "informational": informational,
            "create_child_sa": create_child_sa}
_PROCESSORS: dict[str, Callable[..., None]] = {
    t.processor: getattr(_MODULES[t.processor.partition(".")[0]], t.processor.partition(".")[2])
    for t in S.TRANSITIONS
}


def _xname(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return f"exchange {exchange}"


__all__ = ["Engine", "EngineConfig", "Inbound", "INITIATOR", "RC_DEBUG"]
