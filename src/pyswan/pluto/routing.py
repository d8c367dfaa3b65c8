"""Routing a connection: on-demand trap policies, never-negotiate shunts, ACQUIRE.

`--route` (and `auto=ondemand`) installs an outbound trap policy per pair of client
selectors, so that the first packet makes the kernel send an ACQUIRE, which starts the
negotiation. Connections of type passthrough/drop/reject install bare shunts instead.
`--unroute` removes them. Updown's prepare/route and unroute verbs run around that.
"""

from __future__ import annotations

import asyncio
import ipaddress
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
        await _delete(p, spec)
    conn.trap_policies = []
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
    if p.engine is not None:
        from ..whack.protocol import Request
        from .startup import _LogSink

        asyncio.ensure_future(p.engine.initiate(conn, _LogSink(), Request("initiate", name=conn.name,
                                                                          flags={"async"})))
