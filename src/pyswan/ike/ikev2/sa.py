"""The engine's per-SA records: IKE SAs, Child SAs and an outstanding request."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cipher import SkBound
from ..proposals import ChosenProposal
from .actions import ChildSaKeys
from .policy import Endpoint, Identity, Policy, Selector
from .states import StateInfo

INITIATOR = "initiator"
RESPONDER = "responder"


@dataclass(slots=True)
class Outstanding:
    """Our request awaiting its response, and Libreswan's retransmit bookkeeping
    (``retransmit.c``: delay doubles while below the timeout; give up when the summed
    delays or the elapsed time reach the timeout)."""

    message_id: int
    exchange: int
    data: bytes | tuple[bytes, ...]  # the message, or its RFC 7383 fragments
    on_response: str  # what the response means: "ike_sa_init", "ike_auth", "delete", ...
    start: float
    delay: float
    delays: float
    timeout: float
    retransmits: int = 0
    context: Any = None
    next_at: float = 0.0  # when the RETRANSMIT timer fires next


@dataclass(eq=False, slots=True)
class ChildSa:
    serial: int
    ike: IkeSa
    policy: Policy
    role: str
    state: StateInfo
    spi_in: int = 0
    spi_out: int = 0
    chosen: ChosenProposal | None = None
    keys: ChildSaKeys | None = None
    local_ts: tuple[Selector, ...] = ()
    remote_ts: tuple[Selector, ...] = ()
    mode: str = "tunnel"
    installed: bool = False
    established: bool = False
    timers: dict[str, float] = field(default_factory=dict)  # event -> deadline
    # CREATE_CHILD_SA (rekey.py / create_child_sa.py)
    replaces: int = 0  # the Child SA this one rekeys (0: a new Child SA)
    successor: int = 0  # the Child SA that rekeyed this one (it no longer rekeys)
    # on our own rekey Child SA: the peer's rekey of the same old SA that crossed it (RFC
    # 7296 2.8.1 compares nonces once both are known); on a collision loser: the winner,
    # while our delete of the loser is under way
    collision: int = 0
    ccsa: bool = False  # we initiate it with CREATE_CHILD_SA (not IKE_AUTH)
    initiated: bool = False  # someone awaits InitiateDone for it
    ni: bytes = b""
    nr: bytes = b""
    ke: Any = None  # our KeyExchange with PFS

    @property
    def ike_serial(self) -> int:
        return self.ike.serial


@dataclass(eq=False, slots=True)
class IkeSa:
    serial: int
    role: str
    policy: Policy
    state: StateInfo
    local: Endpoint
    remote: Endpoint
    spi_i: bytes
    spi_r: bytes = b"\0" * 8
    created: float = 0.0
    # IKE_SA_INIT
    ke: Any = None  # our KeyExchange (initiator, until the response)
    ke_group: Any = None  # algorithms.Ke we sent / accepted
    ni: bytes = b""
    nr: bytes = b""
    cookie: bytes = b""
    init_request: bytes = b""  # the IKE_SA_INIT request as sent (signed octets)
    init_response: bytes = b""
    chosen: ChosenProposal | None = None
    peer_fragmentation: bool = False
    fragmentation: bool = False  # RFC 7383 agreed (we allow it and the peer announced it)
    incoming_fragments: dict[bool, Any] | None = None  # response? -> fragment.Reassembly
    # (message ID, Total Fragments) of the last request that came in fragments
    request_fragments: tuple[int, int] = (-1, 0)
    nat_local: bool = False  # we are behind a NAT
    nat_remote: bool = False  # the peer is behind a NAT
    peer_hashes: frozenset[int] | None = None  # SIGNATURE_HASH_ALGORITHMS (None: absent)
    peer_certreq: bool = False  # the peer sent a CERTREQ
    # keys
    prf: Any = None
    sk_d: bytes = b""
    sk_pi: bytes = b""
    sk_pr: bytes = b""
    seal: SkBound | None = None  # outbound SK
    unseal: SkBound | None = None  # inbound SK
    # IKE_AUTH
    peer_id: Identity | None = None
    established: bool = False
    ike_keys: Any = None  # kdf.IkeKeys (kept for debugging tools such as tshark tables)
    # message IDs (window size 1 each way)
    next_request_id: int = 0  # ours
    expected_request_id: int = 0  # the peer's
    outstanding: Outstanding | None = None
    pending: deque[Callable[[], None]] = field(default_factory=deque)
    # (message ID, packet or its fragments) for duplicates
    last_response: tuple[int, bytes | tuple[bytes, ...]] | None = None
    # children
    children: dict[int, ChildSa] = field(default_factory=dict)
    first_child: ChildSa | None = None  # the Child SA negotiated by IKE_AUTH
    awaiting_install: Any = None  # continuation while the kernel installs a Child SA
    initiated: bool = False  # started by Engine.initiate (someone awaits InitiateDone)
    deleting: bool = False  # our delete request is out (``--down``)
    predecessor: int = 0  # the IKE SA this one replaces
    successor: int = 0  # the IKE SA replacing this one, while it is being negotiated
    dying: bool = False  # torn down
    rekey_of: int = 0  # larval: the IKE SA this CREATE_CHILD_SA rekey replaces
    collision_of: int = 0  # the peer's rekey that crossed ours: the IKE SA both rekeyed
    collision: int = 0  # the IKE SA the peer's rekey of this one made while ours runs
    timers: dict[str, float] = field(default_factory=dict)  # event -> deadline

    @property
    def our_spi(self) -> bytes:
        return self.spi_i if self.role == INITIATOR else self.spi_r

    @property
    def is_initiator(self) -> bool:
        return self.role == INITIATOR
