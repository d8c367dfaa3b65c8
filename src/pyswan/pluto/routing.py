"""Routing a connection: on-demand trap policies, never-negotiate shunts, ACQUIRE, and the
negotiation and failure shunts around an on-demand negotiation.

`--route` (and `auto=ondemand`) installs an outbound trap policy per pair of client
selectors, so that the first packet makes the kernel send an ACQUIRE, which starts the
negotiation. Connections of type passthrough/drop/reject install their shunts instead.
`--unroute` removes them. Updown's prepare/route and unroute verbs run around that.

While a negotiation started by an ACQUIRE runs, the trap is replaced by the connection's
``negotiationshunt`` (%drop: block the traffic; %pass: let it through in the clear), as
Libreswan's routed-ondemand -> routed-negotiation.  An established Child SA replaces that
with its IPsec policies.  When the negotiation fails, ``failureshunt=none`` puts the trap back
at once; %pass/%drop install the failure shunt instead, kept as a *bare shunt* (listed by
``--shuntstatus``) for ``shuntlifetime`` seconds (looked at every ``expire-shunt-interval``),
after which the connection's trap comes back.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from ..kernel.base import (
    AcquireEvent,
    KernelError,
    PolicySpec,
    Selector,
    shunt_policy,
    spd_priority,
    trap_policy,
)
from ..whack import rc
from .updown import run_updown

IPSEC_REQID_BASE = 16384  # automatic reqids start above the manual range (0..0x3fff)


def conn_reqid(conn: Any) -> int:
    """The connection's reqid: `reqid=` or one from the serial, in groups of four."""
    base = conn.template if conn.template is not None else conn
    return conn.config.reqid or IPSEC_REQID_BASE + 4 * base.serial


def _clients(end: Any) -> list[Any]:
    if end.subnets:
        return list(end.subnets)
    addr = end.host_addr
    from ..auto.values import Selector as ConfSelector

    return [ConfSelector(ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}"))]


def selectors(conn: Any) -> list[Selector]:
    """Outbound kernel selectors, one per (local client, remote client) pair."""
    out = []
    for mine in _clients(conn.this):
        for theirs in _clients(conn.that):
            if mine.version != theirs.version:
                continue
            proto = mine.protocol or theirs.protocol
            out.append(Selector(mine.network, theirs.network, proto, mine.port, theirs.port))
    return out


def priority(conn: Any, sel: Selector) -> int:
    return spd_priority(sel.src, sel.dst, local_port=sel.sport, remote_port=sel.dport,
                        proto=sel.proto, instance=conn.instance_no is not None,
                        override=conn.config.priority or 0)


def _shunt_name(kind: str) -> str:
    return {"passthrough": "pass", "drop": "drop", "reject": "reject"}[kind]


def _policies(conn: Any) -> list[PolicySpec]:
    c = conn.config
    specs: list[PolicySpec] = []
    for sel in selectors(conn):
        prio = priority(conn, sel)
        if c.type in ("passthrough", "drop", "reject"):
            shunt = _shunt_name(c.type)
            specs.append(shunt_policy(sel, shunt, direction="out", priority=prio))  # type: ignore[arg-type]
            specs.append(shunt_policy(sel.reversed(), shunt, direction="in", priority=prio))  # type: ignore[arg-type]
            specs.append(shunt_policy(sel.reversed(), shunt, direction="fwd", priority=prio))  # type: ignore[arg-type]
        else:
            specs.append(trap_policy(sel, reqid=conn_reqid(conn), priority=prio, mark=c.mark_out))
    return specs


async def route(p: Any, conn: Any, w: Any) -> bool:
    """Install the connection's trap (or shunt) policies; True when routed."""
    if conn.routing.startswith("routed"):
        return True
    if conn.that.host_addr is None and conn.config.type not in ("passthrough", "drop", "reject"):
        w.send(rc.RC_ROUTE, f"{conn.prefix}: cannot route template connection (peer is %any)")
        return False
    await run_updown(p, conn, "prepare", whack=w)
    installed: list[PolicySpec] = []
    try:
        for spec in _policies(conn):
            await p.kernel.add_policy(spec)
            installed.append(spec)
    except KernelError as e:
        for spec in installed:
            await _delete(p, spec)
        p.log.log(f"{conn.prefix}: route failed: {e}", w, rc.RC_ROUTE)
        return False
    await run_updown(p, conn, "route", whack=w)
    never = conn.config.type in ("passthrough", "drop", "reject")
    conn.routing = "routed-never-negotiate" if never else "routed-ondemand"
    conn.trap_policies = installed
    return True


async def _delete(p: Any, spec: PolicySpec) -> None:
    try:
        await p.kernel.delete_policy(spec.selector, spec.direction, spec.mark)
    except KernelError as e:
        p.log.log(f"kernel: could not delete {spec.describe()}: {e}")


async def unroute(p: Any, conn: Any, w: Any) -> bool:
    if conn.routing in ("routed-tunnel", "unrouted-tunnel"):
        w.send(rc.RC_RTBUSY, f"{conn.prefix}: cannot unroute: route busy (IPsec SA established)")
        return False
    for spec in getattr(conn, "trap_policies", []):
        await _delete(p, spec)  # also takes a negotiation or failure shunt in its place
    conn.trap_policies = []
    _forget_bare_shunts(p, conn)
    if conn.routing.startswith("routed"):
        await run_updown(p, conn, "unroute", whack=w)
    conn.routing = "unrouted"
    return True


def find_acquired(p: Any, ev: AcquireEvent) -> Any | None:
    """The routed connection whose trap policy the packet hit."""
    for conn in p.conns.all_with_instances():
        if conn.routing != "routed-ondemand":
            continue
        if ev.reqid and ev.reqid in (conn_reqid(conn), conn_reqid(conn) + 1):
            return conn
        for sel in selectors(conn):
            if sel.matches(ev.selector.src.network_address, ev.selector.dst.network_address,
                           ev.selector.proto):
                return conn
    return None


def on_kernel_event(p: Any, ev: Any) -> None:
    """Kernel events that routing owns: an ACQUIRE starts a negotiation."""
    if not isinstance(ev, AcquireEvent):
        return
    conn = find_acquired(p, ev)
    if conn is None:
        p.log.debug(f"kernel ACQUIRE for {ev.selector} matches no routed connection")
        return
    p.log.log(f"{conn.prefix}: initiating on demand: acquire for {ev.selector}")
    if p.engine is None:
        return
    # the trap is gone from here on, so later packets of the flow bring no more ACQUIREs
    conn.routing = "routed-negotiation"
    task = asyncio.ensure_future(negotiate_on_demand(p, conn))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task[None]] = set()

# ipsec.conf spellings (and whack's) -> the shunt the kernel gets
_SHUNT = {"pass": "pass", "passthrough": "pass", "drop": "drop", "hold": "drop",
          "reject": "reject", "none": "none"}


def negotiation_shunt(conn: Any) -> str:
    return _SHUNT.get(str(getattr(conn.config, "negotiationshunt", "drop")), "drop")


def failure_shunt(conn: Any) -> str:
    return _SHUNT.get(str(getattr(conn.config, "failureshunt", "none")), "none")


def _outbound_shunts(conn: Any, shunt: str) -> list[PolicySpec]:
    """The connection's trap policies with ``shunt`` in their place (same selector,
    priority and mark, so that each replaces the other in the kernel)."""
    return [shunt_policy(t.selector, shunt, direction="out", priority=t.priority,  # type: ignore[arg-type]
                         mark=t.mark)
            for t in getattr(conn, "trap_policies", [])]


async def _replace_all(p: Any, conn: Any, specs: list[PolicySpec], what: str) -> bool:
    ok = True
    for spec in specs:
        try:
            await p.kernel.replace_policy(spec)
        except KernelError as e:
            p.log.log(f"{conn.prefix}: {what} failed: {e}")
            ok = False
    return ok


async def negotiate_on_demand(p: Any, conn: Any) -> None:
    """routed-ondemand -> routed-negotiation (the negotiation shunt replaces the trap),
    initiate, then routed-tunnel, or on failure the failure shunt or the trap again."""
    from ..whack.protocol import Request
    from .startup import _LogSink

    await _replace_all(p, conn, _outbound_shunts(conn, negotiation_shunt(conn)),
                       "converting ondemand kernel policy to negotiation")
    # an on-demand negotiation does not make the connection "up": when it fails it is not
    # revived, the kernel policies decide what happens to the traffic
    was_up = getattr(conn, "up", False)
    task = asyncio.ensure_future(p.engine.initiate(conn, _LogSink(),
                                                   Request("initiate", name=conn.name)))
    await asyncio.sleep(0)  # initiate() has run up to its first wait, setting UP
    conn.up = was_up
    try:
        await task
    except Exception as e:  # noqa: BLE001 - report, then fall back to the shunts
        p.log.log(f"{conn.prefix}: EXPECTATION FAILED: on-demand initiate: {e!r}")
    if conn.routing == "routed-negotiation":  # not established, not unrouted meanwhile
        await negotiation_failed(p, conn)


async def negotiation_failed(p: Any, conn: Any) -> None:
    """Put the failure shunt (a bare shunt for ``shuntlifetime``) or the trap back."""
    shunt = failure_shunt(conn)
    traps = list(getattr(conn, "trap_policies", []))
    if shunt == "none":
        await _replace_all(p, conn, traps, "restoring ondemand, connection is routed")
        conn.routing = "routed-ondemand"
        return
    specs = _outbound_shunts(conn, shunt)
    if not await _replace_all(p, conn, specs, "installing failure shunt"):
        await _replace_all(p, conn, traps, "restoring ondemand, connection is routed")
        conn.routing = "routed-ondemand"
        return
    conn.routing = "routed-failure"
    now = time.monotonic()
    for spec in specs:
        add_bare_shunt(p, BareShunt(spec.selector, shunt, "failing", spec, conn, now))


# ---------------------------------------------------------------------- bare shunts


@dataclass(eq=False)
class BareShunt:
    """A shunt pluto keeps in the kernel for a while on its own (Libreswan's bare shunt
    table): when ``shuntlifetime`` has passed, it goes and ``conn``'s trap comes back."""

    selector: Selector  # outbound: our client -> peer client
    shunt: str  # pass, drop, reject
    why: str
    policy: PolicySpec
    conn: Any | None = None  # the connection to restore
    added: float = field(default_factory=time.monotonic)

    def __str__(self) -> str:
        # kernel.c show_shunt_status(): "<ours> -<proto>-> <peer> => %<shunt>    <why> $<co>"
        line = f"{self.selector} => %{self.shunt}    {self.why}"
        if self.conn is not None:
            line += f" ${self.conn.serial}"
        return line

    def stale(self) -> bool:
        """Whether the connection has moved on (routed again, tunnel up, unrouted)."""
        return self.conn is not None and self.conn.routing != "routed-failure"


def _setup(p: Any, name: str, default: float) -> float:
    value = getattr(p.setup, name, None) if getattr(p, "setup", None) is not None else None
    return float(value) if isinstance(value, int | float) and value > 0 else default


def shunt_lifetime(p: Any) -> float:
    return _setup(p, "shuntlifetime", 900.0)


def add_bare_shunt(p: Any, bs: BareShunt) -> None:
    p.bare_shunts = [b for b in p.bare_shunts if b.selector != bs.selector] + [bs]
    _arm_scanner(p)


def bare_shunts(p: Any) -> list[BareShunt]:
    """The bare shunts in force (those whose connection moved on are dropped first)."""
    live = [b for b in getattr(p, "bare_shunts", []) if not (
        isinstance(b, BareShunt) and b.stale())]
    p.bare_shunts = live
    return live


def _forget_bare_shunts(p: Any, conn: Any) -> None:
    p.bare_shunts = [b for b in getattr(p, "bare_shunts", []) if getattr(b, "conn", None)
                     is not conn]


def _arm_scanner(p: Any) -> None:
    if getattr(p, "_shunt_scanner", None) is not None:
        return
    loop = asyncio.get_running_loop()
    p._shunt_scanner = loop.call_later(_setup(p, "expire_shunt_interval", 20.0),
                                       _scan, p)


def _scan(p: Any) -> None:
    p._shunt_scanner = None
    task = asyncio.ensure_future(expire_bare_shunts(p))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def expire_bare_shunts(p: Any, now: float | None = None) -> None:
    """kernel.c expire_bare_shunts(): shunts older than ``shuntlifetime`` go; a failure
    shunt's connection gets its trap back (routed-ondemand)."""
    now = time.monotonic() if now is None else now
    lifetime = shunt_lifetime(p)
    expired = [bs for bs in bare_shunts(p) if now - bs.added > lifetime]
    p.bare_shunts = [bs for bs in p.bare_shunts if bs not in expired]
    restore: list[Any] = []
    for bs in expired:
        p.log.debug(f"expiring old bare shunt {bs}")
        if bs.conn is not None:
            if bs.conn not in restore:
                restore.append(bs.conn)
            continue
        try:
            await p.kernel.delete_policy(bs.policy.selector, "out", bs.policy.mark,
                                         missing_ok=True)
        except KernelError as e:
            p.log.log(f"kernel: could not delete bare shunt {bs}: {e}")
    for conn in restore:
        if conn.routing != "routed-failure":
            continue
        _forget_bare_shunts(p, conn)
        await _replace_all(p, conn, list(getattr(conn, "trap_policies", [])),
                           "restoring ondemand after the failure shunt")
        conn.routing = "routed-ondemand"
    if p.bare_shunts:
        _arm_scanner(p)
