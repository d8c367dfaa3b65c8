"""The connection database: named connections, aliases, orientation, instances."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Connection:
    """A connection as pluto holds it: its configuration plus runtime state."""

    def __init__(self, config: Any, serial: int) -> None:
        self.config = config
        self.serial = serial  # `conn serial: $N`
        self.name: str = config.name
        self.local: str | None = None  # "left" or "right" once oriented
        self.orient_problem: str | None = None
        self.routing = "unrouted"
        self.newest_ike = 0
        self.newest_child = 0
        self.interface_name: str | None = None
        self.up = False  # the UP policy: revive when the SAs go away
        self.template: Connection | None = None
        self.instance_no: int | None = None
        self.next_instance = 1
        self.instances: dict[int, Connection] = {}
        self.trap_policies: list[Any] = []  # kernel policies installed by --route
        self.leases: dict[int, IPAddress] = {}  # IP version -> the peer's lease (instances)

    # -- ends ----------------------------------------------------------------------
    @property
    def oriented(self) -> bool:
        return self.local is not None

    @property
    def this(self) -> Any:
        return self.config.right if self.local == "right" else self.config.left

    @property
    def that(self) -> Any:
        return self.config.left if self.local == "right" else self.config.right

    @property
    def this_side(self) -> str:
        return self.local or "left"

    @property
    def that_side(self) -> str:
        return "left" if self.local == "right" else "right"

    # -- naming ----------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """`"name"`, or `"name"[N] 192.0.2.1` for an instance, as log lines and status
        start (Libreswan's jam_connection())."""
        if self.instance_no is not None:
            peer = getattr(self.that, "host_addr", None)
            return f'"{self.name}"[{self.instance_no}]' + (f" {peer}" if peer else "")
        return f'"{self.name}"'

    @property
    def aliases(self) -> list[str]:
        return list(getattr(self.config, "connalias", None) or [])

    @property
    def is_template(self) -> bool:
        """A connection whose peer is %any and not yet instantiated (road warrior)."""
        that = self.that
        return self.instance_no is None and getattr(that, "host_addr", None) is None

    def orient(self, local_addrs: set[IPAddress]) -> bool:
        left = getattr(self.config.left, "host_addr", None)
        right = getattr(self.config.right, "host_addr", None)
        lmatch = left is not None and left in local_addrs
        rmatch = right is not None and right in local_addrs
        if lmatch and rmatch:
            self.local = None
            self.orient_problem = (
                f"both left={self.config.left.host} and right={self.config.right.host} "
                "match an interface"
            )
        elif lmatch or rmatch:
            self.local = "left" if lmatch else "right"
            self.orient_problem = None
        else:
            self.local = None
            self.orient_problem = (
                f"neither left={self.config.left.host} nor right={self.config.right.host} "
                "match an interface"
            )
        return self.local is not None


class ConnectionDB:
    def __init__(self) -> None:
        self._by_name: dict[str, Connection] = {}
        self._by_alias: dict[str, dict[str, Connection]] = {}  # alias -> name -> conn
        self._serial = 0
        #: bumped on every add/remove so that caches (the IKE glue's policies) can tell
        self.generation = 0

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def get(self, name: str) -> Connection | None:
        return self._by_name.get(name)

    def find(self, name: str) -> list[Connection]:
        """The connection called `name`, else every connection with that alias."""
        conn = self._by_name.get(name)
        if conn is not None:
            return [conn]
        return list(self._by_alias.get(name, {}).values())

    def add(self, conn: Connection) -> None:
        self._by_name[conn.name] = conn
        for alias in conn.aliases:
            self._by_alias.setdefault(alias, {})[conn.name] = conn
        self.generation += 1

    def remove(self, conn: Connection) -> None:
        if self._by_name.get(conn.name) is conn:
            del self._by_name[conn.name]
            for alias in conn.aliases:
                named = self._by_alias.get(alias, {})
                named.pop(conn.name, None)
                if not named:
                    self._by_alias.pop(alias, None)
        self.generation += 1

    def sorted(self) -> list[Connection]:
        """Status order: by name, then by instance."""
        out: list[Connection] = []
        for c in sorted(self._by_name.values(), key=lambda c: c.name):
            out.append(c)
            out.extend(c.instances[k] for k in sorted(c.instances))
        return out

    def all_with_instances(self) -> Iterable[Connection]:
        for c in list(self._by_name.values()):
            yield c
            yield from list(c.instances.values())
