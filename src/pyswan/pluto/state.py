"""What pluto shows of an IKE or Child SA (a "state" with a serial number `#N`).

The protocol engine owns the negotiation; the daemon keeps one `State` per SA for
status output, whack commands and kernel bookkeeping.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HALF_OPEN, OPEN, ESTABLISHED = "half-open", "open", "established"


@dataclass(eq=False)
class State:
    serial: int
    conn: Any  # pluto.connections.Connection
    kind: str  # "ike" or "child"
    ike_version: int = 2
    name: str = "IKE_SA_INIT_I0"
    story: str = "waiting for KE to finish"
    category: str = HALF_OPEN
    peer: tuple[IPAddress, int] | None = None
    local: tuple[IPAddress, int] | None = None
    parent: int = 0  # the IKE SA of a Child SA
    #: pending events: name -> absolute monotonic deadline
    events: dict[str, float] = field(default_factory=dict)
    authenticated: bool = False
    anonymous: bool = False
    peer_id: str = ""
    username: str = ""
    lease: str = ""
    # what the peer's ModeCfg/CP reply said, for updown's PLUTO_PEER_*_INFO / _BANNER
    seen_dns: str = ""
    seen_domains: str = ""
    seen_banner: str = ""
    # Child SA details
    protocol: str = "ESP"
    spi_in: int = 0
    spi_out: int = 0
    mode: str = "tunnel"
    in_bytes: int = 0
    out_bytes: int = 0
    add_time: float = field(default_factory=time.time)
    algorithms: str = ""
    engine: Any = None  # the protocol engine's SA object

    @property
    def established(self) -> bool:
        return self.category == ESTABLISHED

    @property
    def is_ike(self) -> bool:
        return self.kind == "ike"


class StateTable:
    """The states by serial, with indexes by connection and by parent (the glue asks for
    a connection's states and an IKE SA's children on every SA event; scanning all the
    states each time made a burst of N setups cost O(N^2)).  A state's ``conn`` and
    ``parent`` change only through :meth:`set_conn` and :meth:`set_parent`."""

    def __init__(self) -> None:
        self._states: dict[int, State] = {}
        self._by_conn: dict[int, dict[int, State]] = {}  # id(conn) -> serial -> state
        self._by_parent: dict[int, dict[int, State]] = {}  # IKE serial -> its children
        self._serial = 0

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def add(self, st: State) -> None:
        self._states[st.serial] = st
        self._by_conn.setdefault(id(st.conn), {})[st.serial] = st
        if st.kind == "child":
            self._by_parent.setdefault(st.parent, {})[st.serial] = st

    def remove(self, st: State) -> None:
        if self._states.pop(st.serial, None) is None:
            return
        _drop(self._by_conn, id(st.conn), st.serial)
        if st.kind == "child":
            _drop(self._by_parent, st.parent, st.serial)

    def set_conn(self, st: State, conn: Any) -> None:
        if self._states.get(st.serial) is st:
            _drop(self._by_conn, id(st.conn), st.serial)
            self._by_conn.setdefault(id(conn), {})[st.serial] = st
        st.conn = conn

    def set_parent(self, st: State, parent: int) -> None:
        if self._states.get(st.serial) is st and st.kind == "child":
            _drop(self._by_parent, st.parent, st.serial)
            self._by_parent.setdefault(parent, {})[st.serial] = st
        st.parent = parent

    def get(self, serial: int) -> State | None:
        return self._states.get(serial)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._states.values(), key=lambda s: s.serial))

    def __len__(self) -> int:
        return len(self._states)

    def of_connection(self, conn: Any) -> list[State]:
        got = self._by_conn.get(id(conn))
        return [got[k] for k in sorted(got)] if got else []

    def children_of(self, ike: State) -> list[State]:
        got = self._by_parent.get(ike.serial)
        return [got[k] for k in sorted(got)] if got else []

    def counts(self) -> dict[str, int]:
        c = {"ike": 0, "half-open": 0, "open": 0, "authenticated": 0, "anonymous": 0,
             "ipsec": 0, "ipsec-authenticated": 0, "ipsec-anonymous": 0}
        for s in self._states.values():
            if s.kind == "ike":
                c["ike"] += 1
                if s.category == HALF_OPEN:
                    c["half-open"] += 1
                elif s.category == OPEN:
                    c["open"] += 1
                elif s.anonymous:
                    c["anonymous"] += 1
                else:
                    c["authenticated"] += 1
            elif s.established:
                c["ipsec"] += 1
                c["ipsec-anonymous" if s.anonymous else "ipsec-authenticated"] += 1
        return c


def _drop(index: dict[int, dict[int, State]], key: int, serial: int) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(serial, None)
        if not bucket:
            del index[key]
