"""The narrow kernel interface pluto talks to.

Everything here is plain data: SA and policy descriptions go in, integers, counters and
events come out.  Two implementations exist: :class:`pyswan.kernel.xfrm.XfrmKernel` (Linux
XFRM over netlink) and :class:`pyswan.kernel.memory.MemoryKernel` (records what would have been
installed; used by unprivileged pluto and by tests).  This package imports neither
``pyswan.ike`` nor ``pyswan.pluto``.

Vocabulary follows Libreswan's ``kernel.h``/``kernel_xfrm.c``:

* an SA is identified by (dst, spi, proto[, mark]) -- the kernel's ``xfrm_usersa_id``;
* a policy is identified by (selector, direction[, mark, if_id]) -- ``xfrm_userpolicy_id``;
  its *priority* decides which of several overlapping policies wins: **lower wins**, and among
  equal priorities the one installed first wins.  :func:`spd_priority` reproduces Libreswan's
  calculation (``kernel.c:spd_priority()``) so that pyswan's policies interleave with
  hand-made or Libreswan-made ones exactly as Libreswan's would.
"""

from __future__ import annotations

import abc
import asyncio
import errno as errno_mod
import inspect
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeAlias

log = logging.getLogger(__name__)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressLike: TypeAlias = IPAddress | str
NetworkLike: TypeAlias = IPNetwork | IPAddress | str

Proto = Literal["esp", "ah", "comp"]
Mode = Literal["tunnel", "transport"]
PolicyDirection = Literal["in", "out", "fwd"]
SaDirection = Literal["inbound", "outbound"]
Action = Literal["allow", "block"]

XFRM_INF = (1 << 64) - 1  # "no limit" in xfrm_lifetime_cfg
UDP_ENCAP_ESPINUDP = 2
IPSEC_SA_DEFAULT_REPLAY_WINDOW = 128  # Libreswan's replay-window= default
IPSEC_MANUAL_REQID_MAX = 0x3FFF  # reqids above this are allocated 4 at a time (reqid.c)

IPSEC_DOI_SPI_OUR_MIN = 0x1000  # pluto never hands out an SPI below this
IPCOMP_FIRST_NEGOTIATED = 256  # CPI range pluto allocates from (ietf_constants.h)
IPCOMP_LAST_NEGOTIATED = 61439

IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58

PROTO_NUMBERS: dict[str, int] = {"esp": 50, "ah": 51, "comp": 108}
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}
# Libreswan's "said" prefix (esp.1234@192.0.2.1, tun.0@..., comp.7@...)
_SAID_PREFIX = {"esp": "esp", "ah": "ah", "comp": "comp"}


def _addr(value: AddressLike) -> IPAddress:
    return value if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) else (
        ipaddress.ip_address(value)
    )


def _net(value: NetworkLike) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    return ipaddress.ip_network(value, strict=False)


def _check_proto(proto: str) -> None:
    if proto not in PROTO_NUMBERS:
        raise ValueError(f"SA protocol must be one of esp, ah, comp, not {proto!r}")


def _check_mode(mode: str) -> None:
    if mode not in ("tunnel", "transport"):
        raise ValueError(f"mode must be tunnel or transport, not {mode!r}")


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} does not fit in 32 bits")


# ---------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True)
class Mark:
    """An XFRM mark (``mark=``/``mark-in=``/``mark-out=``): value and mask."""

    value: int
    mask: int = 0xFFFFFFFF

    def __post_init__(self) -> None:
        _check_u32("mark", self.value)
        _check_u32("mark mask", self.mask)

    def __str__(self) -> str:
        return f"{self.value:#x}/{self.mask:#x}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Traffic selector: the packets a policy (or a transport-mode SA) applies to.

    Ports follow the kernel's convention (a port of 0 is a wildcard; a non-zero port is matched
    exactly).  For ICMP the kernel wants the type in ``sport`` and the code in ``dport``; use
    :meth:`from_protoport` to convert Libreswan's ``protoport=icmp/2048`` form.
    """

    src: IPNetwork
    dst: IPNetwork
    proto: int = 0
    sport: int = 0
    dport: int = 0
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __init__(
        self, src: NetworkLike, dst: NetworkLike, proto: int = 0, sport: int = 0, dport: int = 0
    ) -> None:
        s, d = _net(src), _net(dst)
        if s.version != d.version:
            raise ValueError(f"selector mixes address families: {s} and {d}")
        if not 0 <= proto <= 255:
            raise ValueError(f"selector protocol {proto} out of range")
        for name, port in (("sport", sport), ("dport", dport)):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"selector {name} {port} out of range")
        object.__setattr__(self, "src", s)
        object.__setattr__(self, "dst", d)
        object.__setattr__(self, "proto", proto)
        object.__setattr__(self, "sport", sport)
        object.__setattr__(self, "dport", dport)
        # selectors key the policy tables: hash once (ipaddress hashing is slow)
        object.__setattr__(self, "_hash", hash((s, d, proto, sport, dport)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def from_protoport(
        cls, src: NetworkLike, dst: NetworkLike, proto: int = 0, src_port: int = 0,
        dst_port: int = 0,
    ) -> Selector:
        """Build a selector from Libreswan's ``leftprotoport``/``rightprotoport`` values.

        For ICMP/ICMPv6 Libreswan packs type<<8|code into the port (``icmp/2048`` is echo
        request); XFRM wants type in sport and code in dport (``kernel_xfrm.c``).
        """
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            return cls(src, dst, proto, src_port >> 8, src_port & 0xFF)
        return cls(src, dst, proto, src_port, dst_port)

    @classmethod
    def host_pair(cls, src: AddressLike, dst: AddressLike, proto: int = 0) -> Selector:
        """A /32 (or /128) selector between two hosts (transport mode, bare shunts)."""
        s, d = _addr(src), _addr(dst)
        return cls(ipaddress.ip_network(s), ipaddress.ip_network(d), proto)

    @property
    def version(self) -> int:
        return self.src.version

    @property
    def family(self) -> int:
        return socket.AF_INET if self.src.version == 4 else socket.AF_INET6

    def reversed(self) -> Selector:
        """The selector of the opposite direction (in/fwd versus out)."""
        return Selector(self.dst, self.src, self.proto, self.dport, self.sport)

    def matches(self, src: IPAddress, dst: IPAddress, proto: int = 0, sport: int = 0,
                dport: int = 0) -> bool:
        """Whether a packet falls under this selector (what the kernel's xfrm_selector_match
        does; a zero protocol/port in the selector is a wildcard)."""
        if src.version != self.version or dst.version != self.version:
            return False
        if src not in self.src or dst not in self.dst:
            return False
        if self.proto and proto != self.proto:
            return False
        if self.sport and sport != self.sport:
            return False
        return not (self.dport and dport != self.dport)

    def _end(self, net: IPNetwork, port: int) -> str:
        return f"{net}:{port}" if port else str(net)

    def __str__(self) -> str:
        # Libreswan's shunt-list form: "192.0.1.0/24 -0-> 192.0.2.0/24"
        return (f"{self._end(self.src, self.sport)} -{self.proto}-> "
                f"{self._end(self.dst, self.dport)}")


@dataclass(frozen=True, slots=True)
class Lifetime:
    """SA/policy lifetimes (``xfrm_lifetime_cfg``): limits the kernel enforces itself.

    Byte and packet limits default to "no limit"; second limits of 0 mean "none".  Libreswan
    leaves the time limits to pluto's own timers and gives the kernel the byte/packet limits
    (``ipsec-max-bytes``/``ipsec-max-packets``).
    """

    soft_bytes: int = XFRM_INF
    hard_bytes: int = XFRM_INF
    soft_packets: int = XFRM_INF
    hard_packets: int = XFRM_INF
    soft_add_seconds: int = 0
    hard_add_seconds: int = 0
    soft_use_seconds: int = 0
    hard_use_seconds: int = 0

    def as_tuple(self) -> tuple[int, ...]:
        """The eight values in ``xfrm_lifetime_cfg`` order."""
        return (self.soft_bytes, self.hard_bytes, self.soft_packets, self.hard_packets,
                self.soft_add_seconds, self.hard_add_seconds, self.soft_use_seconds,
                self.hard_use_seconds)


NO_LIFETIME = Lifetime()


@dataclass(frozen=True, slots=True)
class EncrAlg:
    """Encryption algorithm by its XFRM name (``cbc(aes)``, ``rfc4106(gcm(aes))``, ...).

    ``icv_bits`` > 0 makes it an AEAD (XFRMA_ALG_AEAD); its ``key`` then includes the salt
    (the KEYMAT slice as is), as the kernel expects.
    """

    name: str
    key: bytes
    icv_bits: int = 0

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) >= 64:
            raise ValueError(f"bad XFRM encryption algorithm name {self.name!r}")

    @property
    def aead(self) -> bool:
        return self.icv_bits > 0

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"EncrAlg({self.name!r}, <{len(self.key)} byte key>, icv_bits={self.icv_bits})"


@dataclass(frozen=True, slots=True)
class AuthAlg:
    """Integrity algorithm by XFRM name (``hmac(sha256)``), key and truncation in bits."""

    name: str
    key: bytes
    trunc_bits: int

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) >= 64:
            raise ValueError(f"bad XFRM integrity algorithm name {self.name!r}")

    def __repr__(self) -> str:
        return (f"AuthAlg({self.name!r}, <{len(self.key)} byte key>, "
                f"trunc_bits={self.trunc_bits})")


@dataclass(frozen=True, slots=True)
class Encap:
    """UDP encapsulation of ESP (NAT-T, RFC 3948): ``xfrm_encap_tmpl``."""

    type: int = UDP_ENCAP_ESPINUDP
    sport: int = 4500
    dport: int = 4500
    oa: IPAddress | None = None  # NAT-OA original address; Libreswan leaves it zero


@dataclass(frozen=True, slots=True)
class SaSpec:
    """One IPsec SA (one direction of a Child SA, or its IPCOMP companion)."""

    src: IPAddress
    dst: IPAddress
    spi: int
    proto: Proto = "esp"
    mode: Mode = "tunnel"
    reqid: int = 0
    encr: EncrAlg | None = None
    auth: AuthAlg | None = None
    comp: str | None = None  # XFRM compression name, e.g. "deflate" (proto="comp")
    replay_window: int = IPSEC_SA_DEFAULT_REPLAY_WINDOW
    esn: bool = False
    encap: Encap | None = None
    lifetime: Lifetime = NO_LIFETIME
    mark: Mark | None = None
    selector: Selector | None = None  # transport mode only (Libreswan sets none for tunnels)
    direction: SaDirection = "inbound"
    if_id: int | None = None  # XFRM interface id (ipsec-interface=)
    set_mark: Mark | None = None  # mark put on packets the SA outputs (Libreswan: the if_id)
    tfcpad: int = 0  # ESP tunnel mode only; ignored otherwise, as Libreswan does
    encap_dscp: bool = False  # copy DSCP to the outer header (encap-dscp=)
    decap_dscp: bool = False  # copy DSCP from the outer header (decap-dscp=)
    nopmtudisc: bool = False
    seq: int = 0  # the ACQUIRE sequence this SA answers (lets the kernel drop its larval SA)

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", _addr(self.src))
        object.__setattr__(self, "dst", _addr(self.dst))
        if self.src.version != self.dst.version:
            raise ValueError(f"SA {self.src}->{self.dst} mixes address families")
        _check_proto(self.proto)
        _check_mode(self.mode)
        _check_u32("SPI", self.spi)
        _check_u32("reqid", self.reqid)
        if self.direction not in ("inbound", "outbound"):
            raise ValueError(f"SA direction must be inbound or outbound, not {self.direction!r}")
        if self.encr is not None and self.encr.aead and self.auth is not None:
            raise ValueError(f"AEAD {self.encr.name} takes no separate integrity algorithm")
        # What each protocol needs is checked where the kernel checks it (verify_sa()), so
        # that SAs read back from the kernel, larval ones included, fit this type too.
        if not 0 <= self.replay_window <= 0xFFFFFFF8:
            raise ValueError(f"replay window {self.replay_window} out of range")

    @property
    def family(self) -> int:
        return socket.AF_INET if self.dst.version == 4 else socket.AF_INET6

    @property
    def said(self) -> str:
        """Libreswan's SA id text: ``esp.1a2b3c4d@192.0.2.2``."""
        return f"{_SAID_PREFIX[self.proto]}.{self.spi:x}@{self.dst}"

    def describe(self) -> str:
        """The subject of log lines: ``ESP SA 0x1a2b3c4d 192.0.2.1->192.0.2.2``."""
        return describe_sa(self.proto, self.spi, self.src, self.dst)


def describe_sa(proto: str, spi: int, src: IPAddress | None, dst: IPAddress) -> str:
    name = {"comp": "IPCOMP"}.get(proto, proto.upper())
    ends = f"{src}->{dst}" if src is not None else f"->{dst}"
    return f"{name} SA {spi:#010x} {ends}"


def verify_sa(spec: SaSpec) -> str | None:
    """The kernel's own sanity checks on a new SA (``xfrm_user.c:verify_newsa_info()``), with
    its extended-ACK wording; None when the SA would pass them.  MemoryKernel applies these so
    that a mistake caught by Linux is caught without it too."""
    has_auth, has_encr = spec.auth is not None, spec.encr is not None
    aead = has_encr and spec.encr.aead  # type: ignore[union-attr]
    if spec.selector is not None and spec.selector.version != spec.dst.version and (
            spec.mode == "transport"):
        return "Invalid address family in selector"
    if spec.proto == "ah":
        if not has_auth:
            return "Missing required attribute for AH: AUTH_TRUNC or AUTH"
        if has_encr or spec.comp:
            return "Invalid attributes for AH: AEAD, CRYPT, COMP, TFCPAD"
    elif spec.proto == "esp":
        if spec.comp:
            return "Invalid attribute for ESP: COMP"
        if not has_auth and not has_encr:
            return ("Missing required attribute for ESP: at least one of AUTH, AUTH_TRUNC, "
                    "CRYPT, AEAD")
        if aead and has_auth:
            return ("Invalid attribute combination for ESP: AEAD can't be used with AUTH, "
                    "AUTH_TRUNC, CRYPT")
    else:
        if not spec.comp:
            return "Missing required attribute for COMP: COMP"
        if has_auth or has_encr:
            return "Invalid attributes for COMP: AEAD, AUTH, AUTH_TRUNC, CRYPT, TFCPAD"
        if spec.spi >= 0x10000:
            return "SPI is too large for COMP (must be < 0x10000)"
        if spec.esn:
            return "ESN only supported for ESP and AH"
    if spec.direction == "outbound" and spec.decap_dscp:
        return "Flag NDECAP_DSCP should not be set for output SA"
    if spec.direction == "inbound" and spec.nopmtudisc:
        return "Flag NOPMTUDISC should not be set for input SA"
    return None


def spi_range(proto: Proto) -> tuple[int, int]:
    """The range pluto allocates inbound SPIs (CPIs for IPCOMP) from (``kernel.c``)."""
    if proto == "comp":
        return IPCOMP_FIRST_NEGOTIATED, IPCOMP_LAST_NEGOTIATED
    return IPSEC_DOI_SPI_OUR_MIN, 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Template:
    """One rule of a policy (``xfrm_user_tmpl``): which SA the traffic must go through.

    ``src``/``dst`` are the tunnel end points (required in tunnel mode, ignored otherwise;
    Libreswan's trap policies use unspecified addresses).  ``optional`` is iproute2's
    ``level use`` (Libreswan sets it on inbound IPCOMP rules, which the peer may skip for
    packets that do not compress).
    """

    proto: Proto = "esp"
    mode: Mode = "tunnel"
    reqid: int = 0
    src: IPAddress | None = None
    dst: IPAddress | None = None
    optional: bool = False
    spi: int = 0

    def __post_init__(self) -> None:
        _check_proto(self.proto)
        _check_mode(self.mode)
        _check_u32("reqid", self.reqid)
        if self.src is not None:
            object.__setattr__(self, "src", _addr(self.src))
        if self.dst is not None:
            object.__setattr__(self, "dst", _addr(self.dst))
        if self.mode == "tunnel" and (self.src is None or self.dst is None):
            raise ValueError("a tunnel-mode template needs both tunnel end points")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One kernel policy (SPD entry) for one direction."""

    src: IPNetwork
    dst: IPNetwork
    proto: int = 0
    sport: int = 0
    dport: int = 0
    direction: PolicyDirection = "out"
    action: Action = "allow"
    priority: int = 0
    templates: tuple[Template, ...] = ()
    mark: Mark | None = None
    if_id: int | None = None
    lifetime: Lifetime = NO_LIFETIME
    index: int = 0  # assigned by the kernel; filled in on dumps, 0 when asking
    _selector: Selector | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sel = Selector(self.src, self.dst, self.proto, self.sport, self.dport)  # validates
        object.__setattr__(self, "src", sel.src)
        object.__setattr__(self, "dst", sel.dst)
        object.__setattr__(self, "_selector", sel)
        object.__setattr__(self, "templates", tuple(self.templates))
        if self.direction not in ("in", "out", "fwd"):
            raise ValueError(f"policy direction must be in, out or fwd, not {self.direction!r}")
        if self.action not in ("allow", "block"):
            raise ValueError(f"policy action must be allow or block, not {self.action!r}")
        _check_u32("priority", self.priority)

    @classmethod
    def for_selector(cls, selector: Selector, **kwargs: object) -> PolicySpec:
        return cls(selector.src, selector.dst, selector.proto, selector.sport,  # type: ignore[arg-type]
                   selector.dport, **kwargs)

    @property
    def selector(self) -> Selector:
        return self._selector  # type: ignore[return-value]

    def describe(self) -> str:
        return f"{self.direction} policy {self.selector}"


class SaCounters(NamedTuple):
    """Kernel SA counters (``xfrm_lifetime_cur`` + ``XFRMA_LASTUSED``).

    ``use_time`` is when the SA last carried a packet (XFRMA_LASTUSED, what Libreswan's idle
    and traffic status use); when the kernel does not report that, the time of first use.
    Times are Unix seconds, 0 when never.
    """

    bytes: int
    packets: int
    add_time: int
    use_time: int


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class AcquireEvent:
    """XFRM_MSG_ACQUIRE: a packet hit a policy whose SA does not exist yet.

    ``selector`` is the packet (host/host, protocol and ports); ``policy_index`` the
    triggering policy; ``reqid`` that of its first template (what Libreswan keys on).
    """

    selector: Selector
    policy_index: int
    reqid: int
    seq: int
    proto: str  # template protocol (esp/ah/comp) or the number as text when unknown
    src: IPAddress  # tunnel end points the template asked for
    dst: IPAddress
    direction: PolicyDirection = "out"


@dataclass(frozen=True, slots=True)
class ExpireEvent:
    """XFRM_MSG_EXPIRE: an SA reached a soft limit (time to rekey) or a hard one (gone)."""

    hard: bool
    spi: int
    proto: str
    dst: IPAddress
    src: IPAddress
    reqid: int = 0
    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    mark: Mark | None = None

    def describe(self) -> str:
        return describe_sa(self.proto, self.spi, self.src, self.dst)


@dataclass(frozen=True, slots=True)
class PolicyExpireEvent:
    """XFRM_MSG_POLEXPIRE: a policy with a lifetime expired (Libreswan: bare shunts)."""

    hard: bool
    selector: Selector
    direction: PolicyDirection
    index: int
    priority: int = 0


KernelEvent: TypeAlias = AcquireEvent | ExpireEvent | PolicyExpireEvent
EventHandler: TypeAlias = Callable[[KernelEvent], Awaitable[None] | None]


# ---------------------------------------------------------------------------------------------
# Errors


class KernelError(Exception):
    """The kernel (or the simulated kernel) refused an operation.

    ``str()`` is a complete log line naming the object, e.g.
    ``ESP SA 0x12345678 192.0.2.1->192.0.2.2: kernel refused add SA (XFRM_MSG_NEWSA):
    Protocol not supported [EPROTONOSUPPORT]: Requested type not found``.
    """

    def __init__(self, operation: str, description: str, errno: int = 0, detail: str = "",
                 message_type: str = "") -> None:
        super().__init__(operation, description, errno, detail)
        self.operation = operation
        self.description = description
        self.errno = errno
        self.detail = detail  # the kernel's extended-ACK text, when it gave one
        self.message_type = message_type

    def __str__(self) -> str:
        what = f"{self.operation} ({self.message_type})" if self.message_type else self.operation
        text = f"{self.description}: kernel refused {what}"
        if self.errno:
            name = errno_mod.errorcode.get(self.errno, str(self.errno))
            text += f": {os.strerror(self.errno)} [{name}]"
        if self.detail:
            text += f": {self.detail}"
        return text


# ---------------------------------------------------------------------------------------------
# Libreswan's policy shaping (kernel.c / kernel_policy.c / reqid.c), as pure functions


def reqid_for(proto: Proto, base_reqid: int) -> int:
    """Per-protocol reqid of a bundle (``reqid.c``): automatic reqids come in groups of four
    (AH +0, ESP +1, IPCOMP +2); manual ones (<= 0x3fff) are shared by every SA."""
    if base_reqid <= IPSEC_MANUAL_REQID_MAX:
        return base_reqid
    return base_reqid + {"ah": 0, "esp": 1, "comp": 2}[proto]


def spd_priority(local: NetworkLike, remote: NetworkLike, *, local_port: int = 0,
                 remote_port: int = 0, proto: int = 0, opportunistic: bool = False,
                 null_auth: bool = False, instance: bool = False, override: int = 0) -> int:
    """Libreswan's kernel policy priority (``kernel.c:spd_priority()``); lower wins.

    The value packs, from most to least significant: base (2 bits: 1 static connection,
    2 opportunistic, 3 opportunistic with authby=null), wildcard ports (2 bits: one per end
    with port 0), wildcard protocol (1 bit), 128 - local prefix length (8 bits),
    128 - remote prefix length (8 bits), and 1 unless the connection is an instance (of a
    template or an OE group).  So a narrower or more specific policy gets a smaller number and
    wins, and an instance beats its template.  ``priority=`` in ipsec.conf (``override``) replaces it all.
    E.g. a static /24 <-> /24 template: 1757393; an OE /32 instance with authby=null: 3850432.
    """
    if override:
        return override
    base = (3 if null_auth else 2) if opportunistic else 1
    prio = base
    prio = (prio << 2) | ((local_port == 0) + (remote_port == 0))
    prio = (prio << 1) | (proto == 0)
    prio = (prio << 8) | (128 - _net(local).prefixlen)
    prio = (prio << 8) | (128 - _net(remote).prefixlen)
    prio = (prio << 1) | (0 if instance else 1)
    return prio


def ipsec_policies(local: Selector, local_host: AddressLike, remote_host: AddressLike, *,
                   reqid: int, priority: int, mode: Mode = "tunnel",
                   protos: Iterable[Proto] = ("esp",), mark_in: Mark | None = None,
                   mark_out: Mark | None = None, if_id: int | None = None) -> list[PolicySpec]:
    """The policies Libreswan installs for an established Child SA (``kernel_policy.c``).

    ``local`` is the outbound selector (local client -> remote client).  Returns out, in and
    (tunnel mode only) fwd, each with templates ordered inner to outer: IPCOMP, ESP, AH.  Only
    the innermost rule carries tunnel mode; IPCOMP rules are optional except outbound.  Like
    ``kernel_xfrm.c`` the templates use the per-protocol reqids of :func:`reqid_for`.
    """
    lh, rh = _addr(local_host), _addr(remote_host)
    order = [p for p in ("comp", "esp", "ah") if p in tuple(protos)]
    if not order:
        raise ValueError("an IPsec policy needs at least one of esp, ah, comp")

    def rules(src: IPAddress, dst: IPAddress, direction: PolicyDirection) -> tuple[Template, ...]:
        out: list[Template] = []
        for i, proto in enumerate(order):
            tunnel = mode == "tunnel" and i == 0
            out.append(Template(
                proto=proto, mode="tunnel" if tunnel else "transport",
                reqid=reqid_for(proto, reqid),  # type: ignore[arg-type]
                src=src if tunnel else None, dst=dst if tunnel else None,
                optional=(proto == "comp" and direction != "out")))
        return tuple(out)

    inbound = local.reversed()
    policies = [
        PolicySpec.for_selector(local, direction="out", priority=priority,
                                templates=rules(lh, rh, "out"), mark=mark_out, if_id=if_id),
        PolicySpec.for_selector(inbound, direction="in", priority=priority,
                                templates=rules(rh, lh, "in"), mark=mark_in, if_id=if_id),
    ]
    if mode == "tunnel":
        policies.append(PolicySpec.for_selector(
            inbound, direction="fwd", priority=priority, templates=rules(rh, lh, "fwd"),
            mark=mark_in, if_id=if_id))
    return policies


def trap_policy(local: Selector, *, reqid: int, priority: int,
                mark: Mark | None = None) -> PolicySpec:
    """An on-demand (``%trap``) policy: outbound allow with an ESP transport template between
    unspecified addresses, so the first matching packet triggers an ACQUIRE (Libreswan's
    ``kernel_policy_from_void`` + ``rule[0].reqid = c->child.reqid``)."""
    return PolicySpec.for_selector(local, direction="out", action="allow", priority=priority,
                                   templates=(Template("esp", "transport", reqid),), mark=mark)


def shunt_policy(sel: Selector, shunt: Literal["pass", "drop", "reject", "hold"], *,
                 direction: PolicyDirection = "out", priority: int,
                 mark: Mark | None = None) -> PolicySpec:
    """A shunt policy: %pass is an allow without template, %drop/%reject a block, %hold an
    allow with a transport ESP template (packets wait for the negotiation)."""
    if shunt == "pass":
        return PolicySpec.for_selector(sel, direction=direction, action="allow",
                                       priority=priority, mark=mark)
    if shunt in ("drop", "reject"):
        return PolicySpec.for_selector(sel, direction=direction, action="block",
                                       priority=priority, mark=mark)
    if shunt == "hold":
        return PolicySpec.for_selector(sel, direction=direction, action="allow",
                                       priority=priority, templates=(Template("esp", "transport"),),
                                       mark=mark)
    raise ValueError(f"unknown shunt %{shunt}")


ICMPV6_NEIGHBOUR_SOLICITATION = 135
ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136


def icmpv6_bypass_policies() -> list[PolicySpec]:
    """Libreswan's IPv6 "holes" (``kernel_xfrm_poke_holes``): neighbour discovery must never be
    caught by a policy, so allow it in/fwd/out at priority 1 (0 is left to the admin)."""
    any6 = ipaddress.ip_network("::/0")
    out: list[PolicySpec] = []
    for icmp_type in (ICMPV6_NEIGHBOUR_SOLICITATION, ICMPV6_NEIGHBOUR_ADVERTISEMENT):
        for direction in ("in", "fwd", "out"):
            out.append(PolicySpec(any6, any6, IPPROTO_ICMPV6, icmp_type, 0,
                                  direction=direction, priority=1))  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------------------------------
# The interface


@dataclass(slots=True)
class _Owned:
    """What a kernel object installed, so that flush_owned() can remove exactly that."""

    sas: dict[tuple, tuple[IPAddress, int, str, Mark | None]] = field(default_factory=dict)
    # SPIs reserved with allocate_spi and not filled in yet (larval SAs)
    reserved: dict[tuple, tuple[IPAddress, int, str, Mark | None]] = field(
        default_factory=dict)
    policies: dict[tuple, tuple[Selector, str, Mark | None, int | None]] = field(
        default_factory=dict)


def sa_key(dst: IPAddress, spi: int, proto: str, mark: Mark | None) -> tuple:
    return (dst, spi, proto, (mark.value, mark.mask) if mark else None)


def policy_key(sel: Selector, direction: str, mark: Mark | None, if_id: int | None) -> tuple:
    return (sel, direction, (mark.value, mark.mask) if mark else None, if_id or 0)


class Kernel(abc.ABC):
    """The kernel interface pluto uses.  All methods raise :class:`KernelError` on refusal.

    Event handlers (ACQUIRE, EXPIRE, POLEXPIRE) are called with the event; a handler may be a
    coroutine function, in which case it is scheduled as a task on the running loop.
    """

    name: str = "kernel"

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []
        self._owned = _Owned()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open what the implementation needs (sockets, subscriptions)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release it.  Installed SAs/policies stay (use flush_owned() first to remove)."""

    async def __aenter__(self) -> Kernel:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events
    def add_event_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def remove_event_handler(self, handler: EventHandler) -> None:
        self._handlers.remove(handler)

    def _emit(self, event: KernelEvent) -> None:
        for handler in list(self._handlers):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)  # keep a reference until done
                    task.add_done_callback(self._tasks.discard)
            except Exception:  # a broken handler must not take the event reader down
                log.exception("kernel event handler %r failed on %r", handler, event)

    # -- SAs
    @abc.abstractmethod
    async def allocate_spi(self, src: AddressLike, dst: AddressLike, proto: Proto = "esp",
                           reqid: int = 0, min: int | None = None, max: int | None = None,
                           *, mark: Mark | None = None) -> int:
        """Reserve an inbound SPI (XFRM_MSG_ALLOCSPI) for an SA from ``src`` to ``dst`` (us).

        The kernel holds a larval SA for it until :meth:`update_sa` fills it in, or until
        ``net.core.xfrm_acq_expires`` seconds pass (then a hard EXPIRE arrives for it).  The
        default range is pluto's (:func:`spi_range`): 0x1000-0xffffffff, keeping clear of
        0-255 (reserved by RFC 4303) and of the low values manual keying uses; for IPCOMP the
        CPI range 256-61439."""

    @abc.abstractmethod
    async def add_sa(self, spec: SaSpec) -> None:
        """Install a new SA (XFRM_MSG_NEWSA); fails if the (dst, spi, proto) exists."""

    @abc.abstractmethod
    async def update_sa(self, spec: SaSpec) -> None:
        """Fill in a larval SA from allocate_spi, or replace an SA (XFRM_MSG_UPDSA)."""

    @abc.abstractmethod
    async def delete_sa(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                        mark: Mark | None = None, *, missing_ok: bool = False) -> None:
        """Remove an SA (XFRM_MSG_DELSA)."""

    @abc.abstractmethod
    async def get_sa_counters(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                              mark: Mark | None = None) -> SaCounters:
        """Traffic counters of an SA (XFRM_MSG_GETSA)."""

    # -- policies
    @abc.abstractmethod
    async def add_policy(self, spec: PolicySpec) -> int:
        """Install a new policy (XFRM_MSG_NEWPOLICY); fails if one with the same selector,
        direction and mark exists.  Returns the kernel's policy index."""

    @abc.abstractmethod
    async def replace_policy(self, spec: PolicySpec) -> int:
        """Install or replace a policy (XFRM_MSG_UPDPOLICY; what Libreswan uses for every
        add, since NEW fails on leftovers).  A replaced policy keeps its index."""

    @abc.abstractmethod
    async def delete_policy(self, sel: Selector, direction: PolicyDirection,
                            mark: Mark | None = None, *, if_id: int | None = None,
                            missing_ok: bool = False) -> None:
        """Remove the policy for ``sel`` in ``direction`` (XFRM_MSG_DELPOLICY)."""

    # -- whole-table operations
    @abc.abstractmethod
    async def dump_sas(self) -> list[SaSpec]:
        """Every SA in the kernel (not only ours), keys included.  Larval SAs (a reserved SPI,
        or the kernel's placeholder while an ACQUIRE is pending) come back without
        algorithms."""

    @abc.abstractmethod
    async def dump_policies(self) -> list[PolicySpec]:
        """Every policy in the kernel, with its index."""

    @abc.abstractmethod
    async def flush_all(self) -> None:
        """Remove every SA and policy, ours or not (FLUSHPOLICY + FLUSHSA), as pluto does at
        start-up and at shutdown."""

    async def flush_owned(self) -> None:
        """Remove every SA and policy this object installed and has not removed since (for
        ``--shutdown``).  Entries that vanished meanwhile are ignored; other refusals are
        collected and raised together at the end, after trying everything."""
        failures: list[KernelError] = []
        for sel, direction, mark, if_id in list(self._owned.policies.values()):
            try:
                await self.delete_policy(sel, direction, mark, if_id=if_id,  # type: ignore[arg-type]
                                         missing_ok=True)
            except KernelError as e:
                failures.append(e)
        for dst, spi, proto, mark in [*self._owned.sas.values(),
                                      *self._owned.reserved.values()]:
            try:
                await self.delete_sa(dst, spi, proto, mark, missing_ok=True)  # type: ignore[arg-type]
            except KernelError as e:
                failures.append(e)
        if failures:
            first = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise KernelError(first.operation, first.description + more, first.errno,
                              first.detail, first.message_type)

    def owned_counts(self) -> tuple[int, int]:
        """(SAs, policies) this object installed and has not removed since; SPIs merely
        reserved (larval SAs from allocate_spi) are counted by :meth:`owned_reserved`."""
        return len(self._owned.sas), len(self._owned.policies)

    def owned_reserved(self) -> int:
        """SPIs this object reserved (allocate_spi) that no SA has filled in yet."""
        return len(self._owned.reserved)

    # -- bookkeeping helpers for implementations
    def _own_sa(self, dst: IPAddress, spi: int, proto: str, mark: Mark | None) -> None:
        key = sa_key(dst, spi, proto, mark)
        self._owned.sas[key] = (dst, spi, proto, mark)
        self._owned.reserved.pop(key, None)

    def _reserve_sa(self, dst: IPAddress, spi: int, proto: str, mark: Mark | None) -> None:
        self._owned.reserved[sa_key(dst, spi, proto, mark)] = (dst, spi, proto, mark)

    def _disown_sa(self, dst: IPAddress, spi: int, proto: str, mark: Mark | None) -> None:
        key = sa_key(dst, spi, proto, mark)
        self._owned.sas.pop(key, None)
        self._owned.reserved.pop(key, None)

    def _own_policy(self, spec: PolicySpec) -> None:
        sel = spec.selector
        self._owned.policies[policy_key(sel, spec.direction, spec.mark, spec.if_id)] = (
            sel, spec.direction, spec.mark, spec.if_id)

    def _disown_policy(self, sel: Selector, direction: str, mark: Mark | None,
                       if_id: int | None) -> None:
        self._owned.policies.pop(policy_key(sel, direction, mark, if_id), None)

    # -- sockets
    def bypass_socket(self, sock: socket.socket) -> None:  # noqa: B027 - optional hook
        """Exempt an IKE socket from every policy (Libreswan's per-socket "policy hole",
        IP_XFRM_POLICY/IPV6_XFRM_POLICY allow in and out).  A no-op without a kernel."""

    def enable_espinudp(self, sock: socket.socket) -> None:  # noqa: B027 - optional hook
        """Let the kernel take ESP-in-UDP off a NAT-T socket (UDP_ENCAP).  No-op here."""

    # -- ICMPv6 holes
    async def poke_holes(self) -> None:
        """Install the ICMPv6 neighbour-discovery bypass policies (pluto does at start-up)."""
        for spec in icmpv6_bypass_policies():
            await self.replace_policy(spec)

    async def plug_holes(self) -> None:
        for spec in icmpv6_bypass_policies():
            await self.delete_policy(spec.selector, spec.direction, missing_ok=True)
