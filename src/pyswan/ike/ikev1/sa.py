"""The IKEv1 engine's records: ISAKMP SAs (phase 1) and IPsec SAs (Quick Mode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ikev2.actions import ChildSaKeys
from ..ikev2.policy import Endpoint, Identity, Policy, Selector
from ..ikev2.states import StateInfo
from .codec import SA
from .crypto import Skeyids
from .proposals import Phase1Choice, Phase2Choice

INITIATOR = "initiator"
RESPONDER = "responder"


@dataclass(slots=True)
class Retransmit:
    """Our last message of an exchange and Libreswan's retransmit bookkeeping (the
    delay doubles; give up when the time spent reaches the timeout)."""

    data: bytes
    start: float
    delay: float
    timeout: float
    retransmits: int = 0


@dataclass(eq=False, slots=True)
class IpsecSa:
    serial: int
    isakmp: IsakmpSa
    policy: Policy
    role: str
    state: StateInfo
    message_id: int
    iv: bytes = b""  # the exchange's current CBC IV
    spi_in: int = 0
    spi_out: int = 0
    ni: bytes = b""
    nr: bytes = b""
    ke: Any = None  # our KeyExchange (PFS)
    group: Any = None  # algorithms.Ke for PFS, None without
    gqm_xy: bytes = b""
    sent_sa: SA | None = None
    choice: Phase2Choice | None = None
    keys: ChildSaKeys | None = None
    local_ts: tuple[Selector, ...] = ()
    remote_ts: tuple[Selector, ...] = ()
    send_ids: bool = True
    installed: bool = False
    established: bool = False
    initiated: bool = False  # someone awaits InitiateDone
    first: bool = False  # the Quick Mode that completes the ISAKMP SA's initiation
    replaces: int = 0  # the IPsec SA this one rekeys
    successor: int = 0  # the IPsec SA rekeying this one
    reply: list[Any] = field(default_factory=list)  # responder: answer held during install
    retransmit: Retransmit | None = None
    last_in: bytes = b""  # the peer's last message, to spot duplicates
    last_out: bytes = b""  # our answer to it
    timers: dict[str, float] = field(default_factory=dict)

    @property
    def ike_serial(self) -> int:
        return self.isakmp.serial


@dataclass(eq=False, slots=True)
class IsakmpSa:
    serial: int
    role: str
    policy: Policy
    state: StateInfo
    local: Endpoint
    remote: Endpoint
    icookie: bytes
    rcookie: bytes = bytes(8)
    created: float = 0.0
    aggressive: bool = False
    # phase 1 negotiation
    sent_sa: SA | None = None  # initiator: our SA payload
    sa_i_b: bytes = b""  # SAi_b, the initiator's SA body, hashed into HASH_I/HASH_R
    choice: Phase1Choice | None = None
    ke: Any = None
    gxi: bytes = b""
    gxr: bytes = b""
    ni: bytes = b""
    nr: bytes = b""
    psk: bytes | None = None
    keys: Skeyids | None = None
    enc_key: bytes = b""
    iv: bytes = b""  # phase 1 CBC IV, then the last phase 1 block (phase 2 IV seed)
    id_b: bytes = b""  # our ID payload body
    peer_id: Identity | None = None
    peer_id_b: bytes = b""  # the peer's ID payload body (Aggressive Mode responder)
    peer_cr: bool = False  # the peer sent a CR naming a CA (sendcert=sendifasked)
    established: bool = False
    # peer capabilities from vendor IDs
    peer_natt: bool = False  # RFC 3947
    peer_dpd: bool = False
    nat_local: bool = False
    nat_remote: bool = False
    # DPD (RFC 3706)
    dpd_seq: int = 0
    dpd_pending: int = 0  # sequence number of an unanswered R_U_THERE (0: none)
    dpd_sent_at: float = 0.0
    peer_dpd_seq: int = -1
    # XAUTH / ModeCfg transaction exchanges (one at a time)
    cfg_msgid: int = 0
    cfg_iv: bytes = b""
    cfg_last_in: bytes = b""  # the peer's message being answered
    cfg_answers: dict[bytes, bytes] = field(default_factory=dict)  # its message -> ours
    xauth_ok: bool = False
    xauth_user: str = ""
    xauth_request: Any = None  # client: the challenge held while the operator is asked
    lease: Any = None  # ModeCfg client: the address the server gave us
    # exchanges
    retransmit: Retransmit | None = None
    last_in: bytes = b""
    last_out: bytes = b""
    children: dict[int, IpsecSa] = field(default_factory=dict)
    msgids: set[int] = field(default_factory=set)  # phase 2 message IDs seen or used
    pending_children: list[Policy] = field(default_factory=list)  # QM to start once up
    initiated: bool = False
    predecessor: int = 0  # the ISAKMP SA this one rekeys
    successor: int = 0  # the ISAKMP SA rekeying this one
    dying: bool = False
    timers: dict[str, float] = field(default_factory=dict)

    @property
    def our_cookie(self) -> bytes:
        return self.icookie if self.role == INITIATOR else self.rcookie

    @property
    def is_initiator(self) -> bool:
        return self.role == INITIATOR
