"""Two IKEv2 engines wired through a fake network and a fake clock (exchange tests).

``Net`` delivers datagrams in order, answers ``InstallChild`` like a kernel would (or
refuses, when told to), fires timers when the clock is advanced, and records every action
and log line per side.  Randomness is seeded, so runs are reproducible.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pyswan.ike import dh
from pyswan.ike.constants import IdType
from pyswan.ike.ikev2 import (
    RC_DEBUG,
    ChildEstablished,
    Engine,
    EngineConfig,
    Identity,
    InitiateDone,
    InstallChild,
    Log,
    Policy,
    PolicyIndex,
    RemoveChild,
    SaCreated,
    SaDeleted,
    Selector,
    Send,
    SetTimer,
)
from pyswan.ike.proposals import parse_proposals

WEST = ipaddress.ip_address("192.0.2.1")
EAST = ipaddress.ip_address("192.0.2.2")


def fqdn(name: str) -> Identity:
    return Identity.of(IdType.FQDN, name.encode())


def make_policy(name: str = "c", *, local=WEST, remote=EAST, local_id="west",
                remote_id: str | None = "east", ike: str | None = None, esp: str | None = None,
                local_net="10.1.0.0/24", remote_net="10.2.0.0/24", port: int = 500,
                **kw) -> Policy:
    return Policy(
        name=name, handle=name, local_addr=local, remote_addr=remote, local_port=port,
        remote_port=port, local_id=fqdn(local_id),
        remote_id=fqdn(remote_id) if remote_id is not None else None,
        ike=parse_proposals("ike", ike), esp=parse_proposals("esp", esp),
        local_ts=(Selector.from_network(ipaddress.ip_network(local_net)),),
        remote_ts=(Selector.from_network(ipaddress.ip_network(remote_net)),), **kw)


class Psks:
    def __init__(self, secrets: dict[frozenset, bytes] | None = None,
                 default: bytes | None = b"secret") -> None:
        self.secrets = secrets or {}
        self.default = default

    def psk(self, local: Identity, remote: Identity | None) -> bytes | None:
        if remote is not None:
            got = self.secrets.get(frozenset((local.key, remote.key)))
            if got is not None:
                return got
        return self.default


def deterministic_ke(rng: random.Random) -> Callable:
    def make(group):
        gid = group.ikev2_id if hasattr(group, "ikev2_id") else int(group)
        if gid in (31, 32):
            return dh.key_exchange(gid, rng.randbytes(32 if gid == 31 else 56))
        if gid in (19, 20, 21):
            return dh.key_exchange(gid, rng.getrandbits(200) + 1)
        return dh.key_exchange(gid, rng.getrandbits(256) | 1)
    return make


@dataclass
class Side:
    name: str
    addr: ipaddress.IPv4Address
    engine: Engine
    log: list[tuple[int, str, int]] = field(default_factory=list)
    actions: list = field(default_factory=list)
    timers: dict[tuple[int, str], float] = field(default_factory=dict)
    installed: dict[int, object] = field(default_factory=dict)
    install_error: str | None = None
    states: dict[int, str] = field(default_factory=dict)  # serial -> kind while alive
    done: list[InitiateDone] = field(default_factory=list)

    def lines(self, debug: bool = False) -> list[str]:
        return [f"#{s}: {t}" if s else t for s, t, rc in self.log if debug or rc != RC_DEBUG]

    def of(self, cls) -> list:
        return [a for a in self.actions if isinstance(a, cls)]


class Net:
    def __init__(self, west: list[Policy] | Policy | None = None,
                 east: list[Policy] | Policy | None = None, *, seed: int = 1,
                 west_psk: Psks | None = None, east_psk: Psks | None = None,
                 east_config: EngineConfig | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = 1000.0
        west = west if west is not None else make_policy()
        east = east if east is not None else make_policy(
            local=EAST, remote=WEST, local_id="east", remote_id="west",
            local_net="10.2.0.0/24", remote_net="10.1.0.0/24")
        serial = iter(range(1, 10**6)).__next__
        self.west = Side("west", WEST, self._engine(west, west_psk, None, serial))
        serial2 = iter(range(1, 10**6)).__next__
        self.east = Side("east", EAST, self._engine(east, east_psk, east_config, serial2))
        self.queue: deque[tuple[Side, Send]] = deque()
        self.drop: Callable[[str, bytes], bool] = lambda direction, data: False
        self.sent: list[tuple[str, bytes]] = []
        self.deferred_installs: list[tuple[Side, InstallChild]] = []
        self.defer_installs = False
        self.nat: dict[tuple, tuple] = {}  # west's (addr, port) -> what east sees
        self.routes: list[tuple[str, tuple, tuple]] = []  # (direction, from, to) as sent

    def _engine(self, policies, psks, config, serials) -> Engine:
        plist = policies if isinstance(policies, list) else [policies]
        return Engine(PolicyIndex(plist), psks or Psks(), rng=self.rng.randbytes,
                      serials=serials, key_exchange=deterministic_ke(self.rng), config=config)

    def side(self, name: str) -> Side:
        return self.west if name == "west" else self.east

    def peer(self, side: Side) -> Side:
        return self.east if side is self.west else self.west

    # -- driving
    def handle(self, side: Side, actions: list) -> None:
        for a in actions:
            side.actions.append(a)
            if isinstance(a, Send):
                self.queue.append((side, a))
            elif isinstance(a, SetTimer):
                key = (a.serial, a.event)
                if a.at is None:
                    side.timers.pop(key, None)
                else:
                    side.timers[key] = a.at
            elif isinstance(a, Log):
                side.log.append((a.serial, a.text, a.rc))
            elif isinstance(a, InstallChild):
                if self.defer_installs:
                    self.deferred_installs.append((side, a))
                else:
                    self.finish_install(side, a)
            elif isinstance(a, RemoveChild):
                side.installed.pop(a.serial, None)
            elif isinstance(a, SaCreated):
                side.states[a.serial] = a.kind
            elif isinstance(a, SaDeleted):
                side.states.pop(a.serial, None)
                side.timers = {k: v for k, v in side.timers.items() if k[0] != a.serial}
            elif isinstance(a, InitiateDone):
                side.done.append(a)
            elif isinstance(a, ChildEstablished):
                pass

    def finish_install(self, side: Side, a: InstallChild) -> None:
        err = side.install_error
        if err is None:
            side.installed[a.serial] = a.keys
        self.handle(side, side.engine.child_installed(a.serial, err, self.now))

    def initiate(self, policy: Policy | None = None, side: str = "west") -> int:
        s = self.side(side)
        pol = policy or next(iter(s.engine.policies._by_pair.values()))[0]
        actions = s.engine.initiate(pol, self.now)
        self.handle(s, actions)
        return actions[0].serial

    def run(self, limit: int = 1000) -> None:
        """Deliver queued datagrams until none are left."""
        n = 0
        while self.queue:
            n += 1
            assert n < limit, "message storm"
            self.step()

    def step(self) -> None:
        """Deliver the next queued datagram."""
        src, send = self.queue.popleft()
        dst = self.peer(src)
        direction = f"{src.name}->{dst.name}"
        self.sent.append((direction, send.data))
        self.routes.append((direction, send.local, send.remote))
        if self.drop(direction, send.data):
            return
        local, remote = send.remote, send.local
        if self.nat and src is self.west:  # source NAT on west's way out
            remote = self.nat.get(send.local, send.local)
        elif self.nat and src is self.east:  # and the way back in
            back = {v: k for k, v in self.nat.items()}
            if send.remote not in back:
                return  # nothing is mapped there: the NAT drops it
            local = back[send.remote]
        self.handle(dst, dst.engine.receive(send.data, local, remote, self.now))

    def inject(self, side: Side, data: bytes, port: int = 500) -> list:
        peer = self.peer(side)
        actions = side.engine.receive(data, (side.addr, port), (peer.addr, port), self.now)
        self.handle(side, actions)
        return actions

    def advance(self, seconds: float) -> None:
        """Move the clock, firing timers in time order (and delivering what they send)."""
        end = self.now + seconds
        while True:
            due = [(at, side, key) for side in (self.west, self.east)
                   for key, at in side.timers.items() if at <= end]
            if not due:
                break
            at, side, key = min(due, key=lambda d: d[0])
            self.now = max(self.now, at)
            del side.timers[key]
            self.handle(side, side.engine.timer(key[0], key[1], self.now))
            self.run()
        self.now = end

    def up(self) -> int:
        serial = self.initiate()
        self.run()
        return serial
