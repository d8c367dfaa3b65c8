"""Address pools (`leftaddresspool=`/`rightaddresspool=`): leases handed to road warriors
through IKEv2 configuration payloads, kept the way Libreswan's addresspool.c keeps them.

A pool grows its lease table on demand (1, 2, 4, ... up to its size); a new or released
one-time lease goes to the head of the free list, a lease that may be recovered by the
same peer ID later ("reusable", only for IDs that name one client: not PSK, not NULL
authentication, not IP address IDs, and only with uniqueids=yes) lingers at its tail.
The next lease comes from the head, so a client that reconnects right after its old
instance went away gets its old address back either way.

Pools are shared by connections with exactly the same range (and may not overlap
otherwise, which `extract_conn()` already checks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NOBODY = 0  # COS_NOBODY: a lease assigned to no connection
_SIZE_LIMIT = 2**32 - 1  # leases are counted in 32 bits (UINT32_MAX)


class PoolError(Exception):
    """No lease could be given (the text is Libreswan's reason, e.g. exhausted)."""


@dataclass(slots=True)
class _Lease:
    assigned_to: int = NOBODY  # the connection (instance) serial holding it
    reusable: str | None = None  # the peer ID it lingers for
    free: bool = True


class AddressPool:
    def __init__(self, spec: Any) -> None:
        self.spec = spec  # pyswan.auto.values.AddressPool
        self.start: IPAddress = spec.start
        self.size = min(spec.size, _SIZE_LIMIT)
        self.leases: list[_Lease] = []
        self.free: list[int] = []  # lease indexes, head first
        self.reusable: dict[str, int] = {}
        self.in_use = 0

    def __str__(self) -> str:
        return str(self.spec)

    @property
    def version(self) -> int:
        return self.start.version

    def address(self, index: int) -> IPAddress:
        return ipaddress.ip_address(int(self.start) + index)  # type: ignore[return-value]

    def cidr(self, index: int) -> str:
        addr = self.address(index)
        return f"{addr}/{addr.max_prefixlen}"

    def index_of(self, addr: IPAddress) -> int | None:
        if addr.version != self.version:
            return None
        index = int(addr) - int(self.start)
        return index if 0 <= index < len(self.leases) else None

    def _grow(self) -> None:
        old = len(self.leases)
        if old >= self.size:
            raise PoolError("address pool exhausted")
        new = min(old * 2, self.size) if old else min(1, self.size)
        for index in range(old, new):
            self.leases.append(_Lease())
            self.free.insert(0, index)  # PREPEND: the highest new index comes out first

    def _take(self, index: int, reusable: str | None) -> bool:
        """Move a lease off the free list; True when it was lingering for another ID."""
        lease = self.leases[index]
        self.free.remove(index)
        lease.free = False
        self.in_use += 1
        stolen = lease.reusable is not None
        if stolen:
            self.reusable.pop(lease.reusable, None)  # type: ignore[arg-type]
        lease.reusable = reusable
        if reusable is not None:
            self.reusable[reusable] = index
        return stolen

    def lease(self, serial: int, reusable: str | None = None) -> tuple[IPAddress, str]:
        """A lease for connection ``serial``; ``reusable`` is the peer ID when the lease may
        be recovered by that ID later.  Returns the address and Libreswan's log line."""
        grown_from = len(self.leases)
        index = self.reusable.get(reusable) if reusable is not None else None
        if index is not None:
            lease = self.leases[index]
            if lease.free:
                self.free.remove(index)
                lease.free = False
                self.in_use += 1
            lease.assigned_to = serial  # recovered (from the free list or an older owner)
            story = "recovered"
        else:
            if not self.free:
                self._grow()
            index = self.free[0]
            story = "stolen" if self._take(index, reusable) else "unused"
            self.leases[index].assigned_to = serial
        line = (f"assigning {story}{' recoverable' if self.leases[index].reusable else ''} "
                f"lease {self.cidr(index)} from addresspool {self}")
        if grown_from != len(self.leases):
            line += f"; addresspool grown from {grown_from} to {len(self.leases)} leases"
        return self.address(index), line

    def release(self, addr: IPAddress, serial: int) -> None:
        """The connection ``serial`` is done with ``addr``: a reusable lease lingers (at
        the tail of the free list), a one-time lease is freed (at its head)."""
        index = self.index_of(addr)
        if index is None:
            return
        lease = self.leases[index]
        if lease.free or lease.assigned_to != serial:
            return  # already released, or recovered by a newer connection
        lease.free = True
        lease.assigned_to = NOBODY
        self.in_use -= 1
        if lease.reusable is not None:
            self.free.append(index)
        else:
            self.free.insert(0, index)

    def holder(self, addr: IPAddress) -> int:
        index = self.index_of(addr)
        return self.leases[index].assigned_to if index is not None else NOBODY

    def status_lines(self, conn_by_serial: Callable[[int], Any]) -> list[str]:
        """whack --addresspoolstatus for this pool (whack_addresspoolstatus())."""
        out = [f"address pool {self}: {self.size} addresses, {len(self.leases)} leases, "
               f"{self.in_use} in-use, {len(self.free)} free ({len(self.reusable)} reusable)"]
        for index, lease in enumerate(self.leases):
            cidr = self.cidr(index)
            name = f" {lease.reusable}" if lease.reusable is not None else ""
            out.append(f"    {cidr} {'free' if lease.free else 'assigned to'} "
                       f"${lease.assigned_to} {name}")
            pad = " " * len(cidr)
            conn = conn_by_serial(lease.assigned_to) if lease.assigned_to else None
            if conn is not None:
                out.append(f"    {pad} {conn.prefix}")
            else:
                out.append(f"    {pad} connection ${lease.assigned_to} does not exist")
        return out


def pool_for(pluto: Any, spec: Any) -> AddressPool:
    """The daemon's pool for this range (created on first use; newest first in status)."""
    pools: dict[tuple, AddressPool] = pluto.__dict__.setdefault("address_pools", {})
    key = (spec.start, spec.end)
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = AddressPool(spec)
    return pool


def can_reuse(conn: Any, uniqueids: bool) -> str | None:
    """The name a lease may linger under, or None (client_can_reuse_lease()): PSK and NULL
    authenticated peers share IDs, and IP address IDs change with NAT."""
    that = conn.that
    auth = {str(a) for a in (conn.config.authby or ())} | {that.auth}
    if auth & {"secret", "psk", "null"} or not uniqueids:
        return None
    ident = that.id
    if ident is None or ident.kind in (0, 1, 5, 13, -3):
        return None
    return ident.display()


def status_lines(pluto: Any) -> list[str]:
    """`whack --addresspoolstatus`: a separator, then every pool, newest first."""
    pools: dict[tuple, AddressPool] = pluto.__dict__.setdefault("address_pools", {})
    used: set[tuple] = set()
    for conn in pluto.conns:  # pools of loaded connections exist from when they were added
        for end in (conn.config.left, conn.config.right):
            for spec in end.addresspool:
                pool_for(pluto, spec)
                used.add((spec.start, spec.end))
    for key in [k for k, pool in pools.items() if k not in used and not pool.in_use]:
        del pools[key]  # its last connection was deleted (Libreswan drops the reference)
    out = [" "]
    by_serial = {c.serial: c for c in pluto.conns.all_with_instances()}
    for pool in reversed(list(pools.values())):
        out.extend(pool.status_lines(by_serial.get))
    return out


def release_all(pluto: Any, conn: Any) -> None:
    """Give back every lease an instance holds (it is going away)."""
    leases: dict[int, IPAddress] = getattr(conn, "leases", {})
    for spec in _specs(conn):
        addr = leases.get(spec.start.version)
        if addr is not None:
            pool_for(pluto, spec).release(addr, conn.serial)
    leases.clear()


def _specs(conn: Any) -> Iterable[Any]:
    return conn.that.addresspool


def modecfg_policy(conn: Any) -> dict[str, Any]:
    """The engine policy's configuration-payload fields for a connection.  As Libreswan's
    extract.c: an end with an addresspool= is a modecfg client and the other end its
    server, whatever modecfgclient=/modecfgserver= say."""
    this, that, cfg = conn.this, conn.that, conn.config
    client = bool(this.modecfgclient or this.addresspool)
    server = bool(this.modecfgserver or that.addresspool)
    needs_reply = client and not this.cat
    return {
        "cp_client": needs_reply,
        "cp_request": needs_reply or bool(cfg.modecfgdns or cfg.modecfgdomains),
        "cp_server": server,
        "local_leftright": conn.this_side,
        "modecfg_dns": tuple(cfg.modecfgdns),
        "modecfg_domains": tuple(cfg.modecfgdomains),
    }


def lease_text(leases: Iterable[IPAddress]) -> str:
    """`lease=` of --trafficstatus: each address as a CIDR, comma separated."""
    return ",".join(f"{a}/{a.max_prefixlen}" for a in sorted(leases, key=lambda a: a.version))


def pool_selectors(end: Any) -> tuple[Any, ...]:
    """An end with an addresspool= and no subnet= proposes the whole pool until CP gives
    it its address (Libreswan's TSi of a modecfg client configured with the pool)."""
    if end.subnets or not end.addresspool:
        return ()
    from ..ike.ikev2.policy import Selector

    return tuple(Selector(pool.start, pool.end) for pool in end.addresspool)
