"""What the engine asks its caller to do.

Every engine entry point returns a list of these, in the order they must be carried out.
They are plain data: the daemon glue maps them onto sockets, timers, the kernel, the state
table and whack; tests inspect them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .policy import Endpoint, Policy, Selector
from .states import StateInfo

# Libreswan 5.x reply codes the engine uses (include/lswlog.h); kept here so the sans-IO
# engine needs nothing from the whack package.
RC_LOG = 0
RC_NORETRANSMISSION = 51
RC_FATAL = 56


@dataclass(slots=True)
class Send:
    """Transmit ``data`` (an IKE message, no non-ESP marker) from ``local`` to ``remote``."""

    serial: int  # the IKE SA it belongs to (0 for a stateless reply)
    data: bytes
    local: Endpoint
    remote: Endpoint


@dataclass(slots=True)
class SetTimer:
    """Arm (``at`` = absolute time, on the clock the engine was given) or cancel
    (``at`` = None) the named event of an SA.  At most one timer per (serial, event)."""

    serial: int
    event: str  # RETRANSMIT, DISCARD, REKEY, REPLACE, EXPIRE
    at: float | None


@dataclass(slots=True)
class Log:
    """A log line.  ``serial`` names the SA it is about (0: none; the text then carries its
    own prefix such as ``packet from ...``); the caller adds the ``"conn" #N: `` prefix and
    relays the line to whack if one is attached to the SA or its IKE SA."""

    serial: int
    text: str
    rc: int = RC_LOG


@dataclass(slots=True)
class SaCreated:
    """A new IKE or Child SA (state) exists: ``kind`` is "ike" or "child"."""

    serial: int
    kind: str
    parent: int  # the IKE SA of a Child SA (0 for an IKE SA)
    policy: Policy
    role: str  # "initiator" or "responder"
    local: Endpoint
    remote: Endpoint
    state: StateInfo


@dataclass(slots=True)
class StateChanged:
    serial: int
    state: StateInfo


@dataclass(slots=True)
class PolicySwitched:
    """The responder moved an SA to a better matching connection (IKE_AUTH IDs)."""

    serial: int
    policy: Policy


@dataclass(slots=True)
class EndpointsChanged:
    """The SA now talks from ``local`` to ``remote`` (NAT traversal moved it to the NAT-T
    port, or the peer's NAT mapping changed)."""

    serial: int
    local: Endpoint
    remote: Endpoint


@dataclass(slots=True)
class ParentChanged:
    """A Child SA now belongs to another IKE SA (the peer rekeyed the IKE SA)."""

    serial: int
    parent: int


@dataclass(slots=True)
class IkeEstablished:
    serial: int
    peer_id: str  # Libreswan's display of the authenticated peer ID
    algorithms: str  # "AES_GCM_16_256-HMAC_SHA2_512-DH19" (status "algorithm newest")
    lifetime: float


@dataclass(slots=True)
class ChildSaKeys:
    """Everything the kernel needs for both directions of a Child SA."""

    protocol: str  # "esp" or "ah" (phase2=ah: no encryption, encr_name "")
    mode: str  # "tunnel" | "transport"
    local: Endpoint
    remote: Endpoint
    spi_in: int
    spi_out: int
    encr_name: str  # XFRM name, e.g. rfc4106(gcm(aes))
    encr_key_in: bytes  # KEYMAT slice including any salt
    encr_key_out: bytes
    icv_bits: int  # AEAD tag bits; 0 when not AEAD
    integ_name: str | None
    integ_key_in: bytes
    integ_key_out: bytes
    trunc_bits: int
    esn: bool
    local_ts: tuple[Selector, ...]
    remote_ts: tuple[Selector, ...]
    replay_window: int
    encap: bool  # UDP encapsulation (NAT detected)
    algorithms: str  # "AES_GCM_16_256" (status "ESP algorithm newest")
    lifetime: float
    pfs_group: str = ""  # the KE group of a CREATE_CHILD_SA with PFS ("DH19"), else ""
    cpi_in: int = 0  # IPCOMP (compress=yes, both ends agreed): our CPI; 0 without IPCOMP
    cpi_out: int = 0  # the peer's CPI

    def __repr__(self) -> str:  # never print keys
        return (f"ChildSaKeys({self.protocol} in={self.spi_in:#010x} out={self.spi_out:#010x} "
                f"{self.algorithms} {self.mode})")


@dataclass(slots=True)
class InstallChild:
    """Install both directions of a Child SA, then call ``Engine.child_installed(serial,
    error)``: the engine waits for that before answering (responder) or declaring the Child
    SA up (initiator)."""

    serial: int
    ike_serial: int
    keys: ChildSaKeys


@dataclass(slots=True)
class ChildEstablished:
    serial: int
    ike_serial: int
    keys: ChildSaKeys


@dataclass(slots=True)
class RemoveChild:
    """Take an installed Child SA out of the kernel.  The caller logs the traffic line
    (``ESP traffic information: in=..B out=..B``) from the kernel's counters first."""

    serial: int
    keys: ChildSaKeys


@dataclass(slots=True)
class SaDeleted:
    """The SA is gone from the engine; forget its state."""

    serial: int
    kind: str
    established: bool
    reason: str = ""


@dataclass(slots=True)
class InitiateDone:
    """The exchanges started by ``Engine.initiate`` are over: ``ok`` when the IKE SA (and
    the Child SA, if any) came up.  Whack waiting for them may be released."""

    serial: int
    ok: bool
    rc: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


Action = (Send | SetTimer | Log | SaCreated | StateChanged | PolicySwitched | IkeEstablished
          | InstallChild | ChildEstablished | RemoveChild | SaDeleted | InitiateDone
          | EndpointsChanged | ParentChanged)
