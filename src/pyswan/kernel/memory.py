"""An in-memory kernel: records what would have been installed, behaves like XFRM.

Used by unprivileged pluto (``using kernel interface: memory``) and by tests.  It applies the
kernel's own checks (:func:`~pyswan.kernel.base.verify_sa`, duplicate/missing entries with
the errnos Linux returns), orders policies as the kernel does (priority, then age; index
``(n << 3) | dir``), keeps larval SAs for reserved SPIs, and can simulate what the kernel
would report: traffic counters, lifetime expiry (soft/hard EXPIRE), policy expiry, and the
ACQUIRE a packet triggers when it hits a policy whose SA is missing.  Tests can also inject
events directly and make operations fail ("refuse ESP like this host does").

Time comes from ``clock`` (Unix seconds); call :meth:`MemoryKernel.tick` to let lifetimes
run out.  Events are delivered synchronously from the call that causes them.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .base import (
    AcquireEvent,
    AddressLike,
    ExpireEvent,
    IPAddress,
    Kernel,
    KernelError,
    Mark,
    PolicyDirection,
    PolicyExpireEvent,
    PolicySpec,
    Proto,
    SaCounters,
    SaSpec,
    Selector,
    _addr,
    describe_sa,
    policy_key,
    sa_key,
    spi_range,
    verify_sa,
)

_DIR_NUM = {"in": 0, "out": 1, "fwd": 2}
XFRM_MAX_DEPTH = 6  # templates per policy


@dataclass(slots=True)
class MemorySa:
    spec: SaSpec
    larval: bool
    add_time: int
    bytes: int = 0
    packets: int = 0
    use_time: int = 0
    soft_expired: bool = False

    @property
    def counters(self) -> SaCounters:
        return SaCounters(self.bytes, self.packets, self.add_time, self.use_time)


@dataclass(slots=True)
class MemoryPolicy:
    given: PolicySpec  # as the caller gave it
    index: int
    add_time: int
    order: int  # insertion order: the tie-break among equal priorities
    soft_expired: bool = False
    _spec: PolicySpec | None = None

    @property
    def spec(self) -> PolicySpec:
        """The policy with the index the kernel gave it (made when first asked for)."""
        if self._spec is None:
            self._spec = replace(self.given, index=self.index)
        return self._spec


@dataclass(slots=True)
class _Failure:
    errno: int
    detail: str
    count: int


REFUSE_LIKE_THIS_HOST = frozenset({"esp", "ah", "comp"})  # no INET_ESP/AH/IPCOMP here


class MemoryKernel(Kernel):
    """The in-memory kernel.

    ``refuse_protos``: SA protocols whose add/update fails with EPROTONOSUPPORT "Requested
    type not found", as on a kernel without the module (:data:`REFUSE_LIKE_THIS_HOST` for the
    development machine).  ``seed`` makes SPI allocation reproducible.  ``acq_expires`` is
    ``net.core.xfrm_acq_expires``: how long a reserved SPI waits for its SA.
    """

    name = "memory"

    def __init__(self, *, seed: int | None = 0, clock: Callable[[], float] = time.time,
                 refuse_protos: Iterable[str] = (), acq_expires: int = 30) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self.clock = clock
        self.refuse_protos = set(refuse_protos)
        self.acq_expires = acq_expires
        self._sas: dict[tuple, MemorySa] = {}
        self._policies: dict[tuple, MemoryPolicy] = {}
        self._order = 0
        self._idx_generator = 0
        self._acquires: dict[tuple, int] = {}  # pending ACQUIREs: flow -> expiry
        self._acquire_seq = 0
        self._failures: dict[str, _Failure] = {}
        self.bypassed_sockets: set[int] = set()
        self.espinudp_sockets: set[int] = set()
        self.operations: list[str] = []  # every call, in order, for tests and benchmarks
        self.started = False

    # -- lifecycle
    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    # -- failure injection
    def fail_next(self, operation: str, err: int = errno.EPERM, detail: str = "",
                  count: int = 1) -> None:
        """Make the next ``count`` calls of ``operation`` (a method name: ``add_sa``,
        ``update_sa``, ``delete_sa``, ``get_sa_counters``, ``allocate_spi``, ``add_policy``,
        ``replace_policy``, ``delete_policy``) fail with ``err``."""
        self._failures[operation] = _Failure(err, detail, count)

    def _check_failure(self, operation: str, label: str, subject: Callable[[], str]) -> None:
        self.operations.append(operation)
        failure = self._failures.get(operation)
        if failure is None:
            return
        failure.count -= 1
        if failure.count <= 0:
            del self._failures[operation]
        raise KernelError(label, subject(), failure.errno, failure.detail)

    def _now(self) -> int:
        return int(self.clock())

    # -- SAs
    async def allocate_spi(self, src: AddressLike, dst: AddressLike, proto: Proto = "esp",
                           reqid: int = 0, min: int | None = None, max: int | None = None,
                           *, mark: Mark | None = None) -> int:
        s, d = _addr(src), _addr(dst)
        lo_default, hi_default = spi_range(proto)
        lo = lo_default if min is None else min
        hi = hi_default if max is None else max
        def subject() -> str:
            return f"{proto.upper()} SPI for {s}->{d} (reqid {reqid})"

        self._check_failure("allocate_spi", "allocate SPI", subject)
        if lo > hi or (proto == "comp" and hi >= 0x10000):
            raise KernelError("allocate SPI", subject(), errno.EINVAL, "bad SPI range",
                              "XFRM_MSG_ALLOCSPI")
        for _ in range(100):  # the kernel, too, gives up after a while
            spi = self._rng.randint(lo, hi)
            if sa_key(d, spi, proto, mark) not in self._sas:
                break
        else:
            raise KernelError("allocate SPI", subject(), errno.ENOENT, "no free SPI in range",
                              "XFRM_MSG_ALLOCSPI")
        spec = SaSpec(s, d, spi, proto, "transport", reqid, mark=mark, replay_window=0,
                      direction="inbound")
        larval = MemorySa(spec, True, self._now())
        self._sas[sa_key(d, spi, proto, mark)] = larval
        self._reserve_sa(d, spi, proto, mark)
        return spi

    def _verify_new(self, spec: SaSpec, label: str, mtype: str) -> None:
        problem = verify_sa(spec)
        if problem:
            raise KernelError(label, spec.describe(), errno.EINVAL, problem, mtype)
        if spec.proto in self.refuse_protos:
            raise KernelError(label, spec.describe(), errno.EPROTONOSUPPORT,
                              "Requested type not found", mtype)

    async def add_sa(self, spec: SaSpec) -> None:
        self._check_failure("add_sa", "add SA", spec.describe)
        self._verify_new(spec, "add SA", "XFRM_MSG_NEWSA")
        key = sa_key(spec.dst, spec.spi, spec.proto, spec.mark)
        if key in self._sas:
            raise KernelError("add SA", spec.describe(), errno.EEXIST, "", "XFRM_MSG_NEWSA")
        self._sas[key] = MemorySa(spec, False, self._now())
        self._own_sa(spec.dst, spec.spi, spec.proto, spec.mark)
        self._answer_acquire(spec)

    async def update_sa(self, spec: SaSpec) -> None:
        self._check_failure("update_sa", "update SA", spec.describe)
        self._verify_new(spec, "update SA", "XFRM_MSG_UPDSA")
        key = sa_key(spec.dst, spec.spi, spec.proto, spec.mark)
        old = self._sas.get(key)
        if old is None or old.spec.direction != spec.direction:
            raise KernelError(
                "update SA", spec.describe(), errno.ESRCH,
                "kernel expired our reserved IPsec SA SPI - negotiation took too long? "
                "Try increasing /proc/sys/net/core/xfrm_acq_expires", "XFRM_MSG_UPDSA")
        if old.larval:
            self._sas[key] = MemorySa(spec, False, self._now())
        else:  # an update keeps the counters
            old.spec = spec
        self._own_sa(spec.dst, spec.spi, spec.proto, spec.mark)
        self._answer_acquire(spec)

    async def delete_sa(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                        mark: Mark | None = None, *, missing_ok: bool = False) -> None:
        d = _addr(dst)
        self._check_failure("delete_sa", "delete SA", lambda: describe_sa(proto, spi, None, d))
        if self._sas.pop(sa_key(d, spi, proto, mark), None) is None and not missing_ok:
            raise KernelError("delete SA", describe_sa(proto, spi, None, d), errno.ESRCH, "",
                              "XFRM_MSG_DELSA")
        self._disown_sa(d, spi, proto, mark)

    def _get(self, dst: IPAddress, spi: int, proto: str, mark: Mark | None) -> MemorySa:
        sa = self._sas.get(sa_key(dst, spi, proto, mark))
        if sa is None:
            raise KernelError("get SA", describe_sa(proto, spi, None, dst), errno.ESRCH, "",
                              "XFRM_MSG_GETSA")
        return sa

    async def get_sa(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                     mark: Mark | None = None) -> tuple[SaSpec, SaCounters]:
        sa = self._get(_addr(dst), spi, proto, mark)
        return sa.spec, sa.counters

    async def get_sa_counters(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                              mark: Mark | None = None) -> SaCounters:
        d = _addr(dst)
        self._check_failure("get_sa_counters", "get SA", lambda: describe_sa(proto, spi, None, d))
        return self._get(d, spi, proto, mark).counters

    # -- policies
    def _verify_policy(self, spec: PolicySpec, label: str, mtype: str) -> None:
        if len(spec.templates) > XFRM_MAX_DEPTH:
            raise KernelError(label, spec.describe(), errno.EINVAL, "too many templates",
                              mtype)
        for t in spec.templates:
            if t.optional and t.mode == "tunnel" and spec.direction == "out":
                raise KernelError(label, spec.describe(), errno.EINVAL,
                                  "Mode in optional template not allowed in outbound policy",
                                  mtype)

    def _next_index(self, direction: str) -> int:
        # xfrm_gen_index(): a counter stepping by 8 with the direction in the low bits (it
        # only comes back round after 2^29 policies, so no collision check)
        while True:
            idx = (self._idx_generator | _DIR_NUM[direction]) & 0xFFFFFFFF
            self._idx_generator += 8
            if idx:
                return idx

    def _insert(self, spec: PolicySpec, old: MemoryPolicy | None) -> int:
        index = old.index if old is not None else self._next_index(spec.direction)
        self._order += 1
        key = policy_key(spec.selector, spec.direction, spec.mark, spec.if_id)
        self._policies[key] = MemoryPolicy(spec, index, self._now(), self._order)
        self._own_policy(spec)
        return index

    async def add_policy(self, spec: PolicySpec) -> int:
        self._check_failure("add_policy", "add policy", spec.describe)
        self._verify_policy(spec, "add policy", "XFRM_MSG_NEWPOLICY")
        key = policy_key(spec.selector, spec.direction, spec.mark, spec.if_id)
        if key in self._policies:
            raise KernelError("add policy", spec.describe(), errno.EEXIST, "",
                              "XFRM_MSG_NEWPOLICY")
        return self._insert(spec, None)

    async def replace_policy(self, spec: PolicySpec) -> int:
        self._check_failure("replace_policy", "replace policy", spec.describe)
        self._verify_policy(spec, "replace policy", "XFRM_MSG_UPDPOLICY")
        key = policy_key(spec.selector, spec.direction, spec.mark, spec.if_id)
        return self._insert(spec, self._policies.get(key))

    async def delete_policy(self, sel: Selector, direction: PolicyDirection,
                            mark: Mark | None = None, *, if_id: int | None = None,
                            missing_ok: bool = False) -> None:
        self._check_failure("delete_policy", "delete policy", lambda: f"{direction} policy {sel}")
        if self._policies.pop(policy_key(sel, direction, mark, if_id), None) is None and (
                not missing_ok):
            raise KernelError("delete policy", f"{direction} policy {sel}", errno.ENOENT, "",
                              "XFRM_MSG_DELPOLICY")
        self._disown_policy(sel, direction, mark, if_id)

    # -- tables
    def sas(self) -> list[MemorySa]:
        return list(self._sas.values())

    def policies(self, direction: PolicyDirection | None = None) -> list[PolicySpec]:
        """Policies in the order the kernel would try them: lowest priority first, then the
        oldest."""
        chosen = [p for p in self._policies.values()
                  if direction is None or p.spec.direction == direction]
        chosen.sort(key=lambda p: (p.spec.priority, p.order))
        return [p.spec for p in chosen]

    async def dump_sas(self) -> list[SaSpec]:
        return [sa.spec for sa in self._sas.values()]

    async def dump_policies(self) -> list[PolicySpec]:
        return self.policies()

    async def flush_all(self) -> None:
        self.operations.append("flush_all")
        self._sas.clear()
        self._policies.clear()
        self._acquires.clear()
        self._owned.sas.clear()
        self._owned.policies.clear()
        self._owned.reserved.clear()

    def bypass_socket(self, sock: socket.socket) -> None:
        self.bypassed_sockets.add(sock.fileno())

    def enable_espinudp(self, sock: socket.socket) -> None:
        self.espinudp_sockets.add(sock.fileno())

    # -- simulation
    def lookup(self, src: AddressLike, dst: AddressLike, proto: int = 0, sport: int = 0,
               dport: int = 0, direction: PolicyDirection = "out",
               mark: int = 0) -> PolicySpec | None:
        """The policy the kernel would apply to this packet, if any."""
        s, d = _addr(src), _addr(dst)
        for spec in self.policies(direction):
            if spec.mark is not None and (mark & spec.mark.mask) != spec.mark.value:
                continue
            if spec.selector.matches(s, d, proto, sport, dport):
                return spec
        return None

    def _sa_for_template(self, proto: str, reqid: int, dst: IPAddress | None) -> MemorySa | None:
        for sa in self._sas.values():
            if sa.larval or sa.spec.proto != proto or sa.spec.direction != "outbound":
                continue
            if reqid and sa.spec.reqid != reqid:
                continue
            if dst is not None and sa.spec.dst != dst:
                continue
            return sa
        return None

    def send_packet(self, src: AddressLike, dst: AddressLike, proto: int = 17,
                    sport: int = 0, dport: int = 0, size: int = 100) -> str:
        """Route one outgoing packet through the policies, as the kernel's xfrm_lookup would.

        Returns ``"clear"`` (no policy), ``"pass"``, ``"block"``, ``"ipsec"`` (an SA carried it
        and its counters moved) or ``"acquire"`` (no SA yet: an ACQUIRE was emitted, once per
        flow until ``acq_expires``, and the packet dropped).
        """
        s, d = _addr(src), _addr(dst)
        spec = self.lookup(s, d, proto, sport, dport)
        if spec is None:
            return "clear"
        if spec.action == "block":
            return "block"
        if not spec.templates:
            return "pass"
        outer: MemorySa | None = None
        for t in spec.templates:
            tdst = t.dst if t.mode == "tunnel" else None
            sa = self._sa_for_template(t.proto, t.reqid, tdst)
            if sa is None and not t.optional:
                self._acquire(spec, s, d, proto, sport, dport)
                return "acquire"
            outer = sa or outer
        if outer is not None:
            self.add_traffic(outer.spec.dst, outer.spec.spi, outer.spec.proto, size, 1,
                             mark=outer.spec.mark)
        return "ipsec"

    def _acquire(self, policy: PolicySpec, src: IPAddress, dst: IPAddress, proto: int,
                 sport: int, dport: int) -> None:
        flow = (policy.index, src, dst, proto, sport, dport)
        now = self._now()
        if self._acquires.get(flow, 0) > now:
            return  # one ACQUIRE per flow while the kernel's larval SA lives
        self._acquires[flow] = now + self.acq_expires
        t = policy.templates[0]
        self._acquire_seq += 1
        self._emit(AcquireEvent(
            selector=Selector.host_pair(src, dst, proto) if not (sport or dport) else Selector(
                ipaddress.ip_network(src), ipaddress.ip_network(dst), proto, sport, dport),
            policy_index=policy.index, reqid=t.reqid, seq=self._acquire_seq, proto=t.proto,
            src=t.src if t.mode == "tunnel" and t.src is not None else src,
            dst=t.dst if t.mode == "tunnel" and t.dst is not None else dst))

    def _answer_acquire(self, spec: SaSpec) -> None:
        # an outbound SA ends the pending ACQUIREs of the flows it now carries
        if spec.direction == "outbound" and self._acquires:
            self._acquires = {f: t for f, t in self._acquires.items()
                              if not self._flow_uses(f[0], spec)}

    def _flow_uses(self, policy_index: int, spec: SaSpec) -> bool:
        for p in self._policies.values():
            if p.spec.index == policy_index:
                return any(t.proto == spec.proto and (not t.reqid or t.reqid == spec.reqid)
                           for t in p.spec.templates)
        return True

    def add_traffic(self, dst: AddressLike, spi: int, proto: Proto = "esp", nbytes: int = 0,
                    packets: int = 1, *, mark: Mark | None = None) -> None:
        """Count traffic on an SA (as the data path would) and fire byte/packet EXPIREs."""
        sa = self._get(_addr(dst), spi, proto, mark)
        sa.bytes += nbytes
        sa.packets += packets
        sa.use_time = self._now()
        self._check_limits(sa)

    def _check_limits(self, sa: MemorySa) -> None:
        lft = sa.spec.lifetime
        now = self._now()
        age = now - sa.add_time
        used = now - sa.use_time if sa.use_time else 0
        hard = (sa.bytes >= lft.hard_bytes or sa.packets >= lft.hard_packets
                or (lft.hard_add_seconds and age >= lft.hard_add_seconds)
                or (lft.hard_use_seconds and sa.use_time and used >= lft.hard_use_seconds))
        if hard:
            self._expire_sa(sa, hard=True)
            return
        soft = (sa.bytes >= lft.soft_bytes or sa.packets >= lft.soft_packets
                or (lft.soft_add_seconds and age >= lft.soft_add_seconds)
                or (lft.soft_use_seconds and sa.use_time and used >= lft.soft_use_seconds))
        if soft and not sa.soft_expired:
            sa.soft_expired = True
            self._expire_sa(sa, hard=False)

    def _expire_sa(self, sa: MemorySa, *, hard: bool) -> ExpireEvent:
        spec = sa.spec
        if hard:
            self._sas.pop(sa_key(spec.dst, spec.spi, spec.proto, spec.mark), None)
            self._disown_sa(spec.dst, spec.spi, spec.proto, spec.mark)
        event = ExpireEvent(hard=hard, spi=spec.spi, proto=spec.proto, dst=spec.dst,
                            src=spec.src, reqid=spec.reqid, bytes=sa.bytes, packets=sa.packets,
                            add_time=sa.add_time, mark=spec.mark)
        self._emit(event)
        return event

    def tick(self) -> None:
        """Let time-based lifetimes run out at ``clock()``: larval SAs older than
        ``acq_expires`` go (hard EXPIRE), SAs and policies past their limits expire."""
        now = self._now()
        for sa in list(self._sas.values()):
            if sa.larval:
                if now - sa.add_time >= self.acq_expires:
                    self._expire_sa(sa, hard=True)
            else:
                self._check_limits(sa)
        for key, p in list(self._policies.items()):
            lft, age = p.spec.lifetime, now - p.add_time
            if lft.hard_add_seconds and age >= lft.hard_add_seconds:
                del self._policies[key]
                self._disown_policy(p.spec.selector, p.spec.direction, p.spec.mark,
                                    p.spec.if_id)
                self._emit(PolicyExpireEvent(True, p.spec.selector, p.spec.direction,
                                             p.spec.index, p.spec.priority))
            elif lft.soft_add_seconds and age >= lft.soft_add_seconds and not p.soft_expired:
                p.soft_expired = True
                self._emit(PolicyExpireEvent(False, p.spec.selector, p.spec.direction,
                                             p.spec.index, p.spec.priority))
        self._acquires = {f: t for f, t in self._acquires.items() if t > now}

    # -- direct injection
    def inject_acquire(self, selector: Selector, *, policy_index: int = 0, reqid: int = 0,
                       seq: int = 0, proto: str = "esp", src: AddressLike | None = None,
                       dst: AddressLike | None = None) -> AcquireEvent:
        event = AcquireEvent(selector, policy_index, reqid, seq, proto,
                             _addr(src) if src is not None else selector.src.network_address,
                             _addr(dst) if dst is not None else selector.dst.network_address)
        self._emit(event)
        return event

    def inject_expire(self, dst: AddressLike, spi: int, proto: Proto = "esp", *,
                      hard: bool = False, mark: Mark | None = None) -> ExpireEvent:
        """Expire an installed SA now (a hard expire removes it, as the kernel does)."""
        return self._expire_sa(self._get(_addr(dst), spi, proto, mark), hard=hard)

    def inject_polexpire(self, selector: Selector, direction: PolicyDirection, *,
                         hard: bool = True, mark: Mark | None = None) -> PolicyExpireEvent:
        key = policy_key(selector, direction, mark, None)
        p = self._policies.get(key)
        index = p.spec.index if p is not None else 0
        priority = p.spec.priority if p is not None else 0
        if hard and p is not None:
            del self._policies[key]
            self._disown_policy(selector, direction, mark, None)
        event = PolicyExpireEvent(hard, selector, direction, index, priority)
        self._emit(event)
        return event
