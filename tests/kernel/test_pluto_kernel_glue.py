"""pluto's kernel-facing behaviour in one process, on the in-memory kernel: two daemons (real
engine, real glue) joined by a fake wire.  Inbound SPIs come from the SPI pool (ALLOCSPI, then
UPDSA on the larval SA); an ACQUIRE on a routed connection swaps the trap for the negotiation
shunt, and a failed negotiation leaves the failure shunt as a bare shunt until it expires.
The namespace tests (tests/netns) check the same against Linux XFRM."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path
from typing import Any

from pyswan.whack.protocol import Request

SECRETS = '@west @east : PSK "the kernel glue in one process"\n'


class _Whack:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self.released = asyncio.get_running_loop().create_future()

    def send(self, rc: int, text: str) -> None:
        self.lines.append((rc, text))

    def release(self) -> None:
        if not self.released.done():
            self.released.set_result(None)


class _Wire:
    """A datagram transport that hands what is sent to the peer daemon."""

    def __init__(self, iface: Any, peer: Any) -> None:
        self.iface, self.peer = iface, peer
        self.loop = asyncio.get_running_loop()

    def sendto(self, data: bytes, addr: tuple) -> None:
        if self.peer is None:
            return  # nobody there
        self.loop.call_soon(self.peer.on_datagram, self.peer.interfaces[0], data,
                            (str(self.iface.addr), self.iface.port))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _daemon(tmp: Path, name: str, addr: str, **kernel_kw: Any) -> Any:
    from pyswan.auto.secrets import load_secrets
    from pyswan.kernel.memory import MemoryKernel
    from pyswan.pluto import routing
    from pyswan.pluto.daemon import Pluto
    from pyswan.pluto.ikeglue import IkeGlue
    from pyswan.pluto.interfaces import Interface
    from pyswan.pluto.main import PlutoOptions

    secrets = tmp / f"{name}.secrets"
    secrets.write_text(SECRETS)
    secrets.chmod(0o600)
    p = Pluto(PlutoOptions(rundir=str(tmp), logfile=str(tmp / f"{name}.log"), ikeport=500,
                           secretsfile=str(secrets)))
    p.kernel = MemoryKernel(**kernel_kw)
    p.secrets = load_secrets(str(secrets))
    p.interfaces = [Interface("lo", ipaddress.ip_address(addr), 500, False)]
    p.listening = True
    p.engine = IkeGlue(p)
    p.kernel.add_event_handler(p.engine.on_kernel_event)
    p.kernel.add_event_handler(p.engine.spis.on_kernel_event)
    p.kernel.add_event_handler(lambda ev: routing.on_kernel_event(p, ev))
    return p


def _conn(p: Any, me: str, *extra: tuple[str, str, str]) -> Any:
    from pyswan.pluto.connadd import add_connection

    west = me == "west"
    triples = [("left", "host", "127.0.0.1"), ("left", "id", "@west"),
               ("left", "subnet", "10.1.0.0/24"), ("right", "host", "127.0.0.2"),
               ("right", "id", "@east"), ("right", "subnet", "10.2.0.0/24"),
               ("", "authby", "secret"), *extra]
    conn = add_connection(p, "c", triples, _Whack())
    assert conn is not None and conn.this.host_addr == ipaddress.ip_address(
        "127.0.0.1" if west else "127.0.0.2")
    return conn


async def _pair(tmp: Path, *extra: tuple[str, str, str], east: bool = True,
                east_kernel: dict | None = None) -> tuple[Any, Any]:
    w = _daemon(tmp, "west", "127.0.0.1")
    e = _daemon(tmp, "east", "127.0.0.2", **(east_kernel or {})) if east else None
    w.interfaces[0].transport = _Wire(w.interfaces[0], e)
    _conn(w, "west", *extra)
    if e is not None:
        e.interfaces[0].transport = _Wire(e.interfaces[0], w)
        _conn(e, "east", *extra)
    return w, e


async def _settle(*daemons: Any, rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.01)
        for d in daemons:
            if d is not None:
                await d.engine.drain()


def _shunt_lines(p: Any) -> list[str]:
    from pyswan.pluto.status import cmd_shuntstatus

    return cmd_shuntstatus(p, Request("shuntstatus"))


async def _route(p: Any) -> Any:
    from pyswan.pluto import routing

    conn = p.conns.get("c")
    assert await routing.route(p, conn, _Whack())
    return conn


def test_inbound_sas_fill_in_spis_reserved_with_allocspi(tmp_path):
    async def scenario() -> None:
        west, east = await _pair(tmp_path)
        for p in (west, east):
            p.engine.spis._sweep()  # the pool's timer, now: reserve on the conn's address
        await _settle(west, east, rounds=5)
        reserved = {p: {sa.spec.spi for sa in p.kernel.sas() if sa.larval} for p in (west, east)}
        assert all(len(spis) == 4 for spis in reserved.values())
        await west.engine.initiate(west.conns.get("c"), _Whack(), Request("initiate", "c"))
        await _settle(west, east)
        for p in (west, east):
            child = next(s for s in p.states if s.kind == "child")
            assert child.spi_in in reserved[p]  # the SPI the kernel handed out ...
            spec, _ = await p.kernel.get_sa(p.interfaces[0].addr, child.spi_in)
            assert spec.encr is not None and spec.direction == "inbound"  # ... now keyed
            assert p.kernel.operations.count("update_sa") == 1  # UPDSA, not NEWSA
            assert p.kernel.owned_counts() == (2, 3)
        for p in (west, east):
            await p.engine.shutdown(leave_state=False)
            await p.engine.spis.close()
        await _settle(west, east, rounds=5)
        for p in (west, east):  # unused reservations released
            assert [sa for sa in p.kernel.sas() if sa.larval] == []
    asyncio.run(scenario())


def test_acquire_runs_under_the_negotiation_shunt_then_tunnel(tmp_path):
    async def scenario() -> None:
        west, east = await _pair(tmp_path)
        conn = await _route(west)
        k = west.kernel
        assert k.lookup("10.1.0.1", "10.2.0.5").templates  # the trap
        assert k.send_packet("10.1.0.1", "10.2.0.5", 1) == "acquire"
        assert conn.routing == "routed-negotiation"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # negotiationshunt=drop (default) replaced the trap while IKE runs
        assert k.send_packet("10.1.0.1", "10.2.0.6", 1) == "block"
        await _settle(west, east)
        assert conn.routing == "routed-tunnel"
        assert k.send_packet("10.1.0.1", "10.2.0.5", 1) == "ipsec"
        assert not conn.up  # an on-demand negotiation does not mark the connection UP
        assert _shunt_lines(west) == [" ", "Bare Shunt list:", " "]
        # the tunnel goes: the trap comes back
        await west.engine.terminate(conn, _Whack(), delete=False)
        await _settle(west, east)
        assert conn.routing == "routed-ondemand" and k.lookup("10.1.0.1", "10.2.0.5").templates
    asyncio.run(scenario())


def test_failed_negotiation_leaves_failure_shunt_until_shuntlifetime(tmp_path):
    async def scenario() -> None:
        from pyswan.pluto import routing

        # the responder's kernel refuses ESP: the Child SA fails (TS_UNACCEPTABLE)
        west, east = await _pair(tmp_path, ("", "failureshunt", "passthrough"),
                                 ("", "negotiationshunt", "passthrough"),
                                 east_kernel={"refuse_protos": ["esp"]})
        conn = await _route(west)
        k = west.kernel
        assert k.send_packet("10.1.0.1", "10.2.0.5", 1) == "acquire"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert k.send_packet("10.1.0.1", "10.2.0.6", 1) == "pass"  # negotiationshunt=pass
        await _settle(west, east)
        assert conn.routing == "routed-failure"
        assert _shunt_lines(west) == [" ", "Bare Shunt list:", " ",
                                      f"10.1.0.0/24 -0-> 10.2.0.0/24 => %pass    failing "
                                      f"${conn.serial}"]
        assert k.send_packet("10.1.0.1", "10.2.0.5", 1) == "pass"
        await routing.expire_bare_shunts(west)  # not yet 900 s old: stays
        assert len(_shunt_lines(west)) == 4
        await routing.expire_bare_shunts(west, time.monotonic() + 901)
        assert _shunt_lines(west) == [" ", "Bare Shunt list:", " "]
        assert conn.routing == "routed-ondemand"
        assert k.lookup("10.1.0.1", "10.2.0.5").templates  # the trap again
        assert not conn.up
    asyncio.run(scenario())


def test_failureshunt_none_puts_the_trap_back(tmp_path):
    async def scenario() -> None:
        west, east = await _pair(tmp_path, east_kernel={"refuse_protos": ["esp"]})
        conn = await _route(west)
        assert west.kernel.send_packet("10.1.0.1", "10.2.0.5", 1) == "acquire"
        await _settle(west, east)
        assert conn.routing == "routed-ondemand"
        assert west.kernel.lookup("10.1.0.1", "10.2.0.5").templates
        assert _shunt_lines(west) == [" ", "Bare Shunt list:", " "]
    asyncio.run(scenario())


def test_unroute_during_failure_shunt_removes_it(tmp_path):
    async def scenario() -> None:
        from pyswan.pluto import routing

        west, east = await _pair(tmp_path, ("", "failureshunt", "drop"),
                                 east_kernel={"refuse_protos": ["esp"]})
        conn = await _route(west)
        west.kernel.send_packet("10.1.0.1", "10.2.0.5", 1)
        await _settle(west, east)
        assert conn.routing == "routed-failure"
        assert west.kernel.send_packet("10.1.0.1", "10.2.0.5", 1) == "block"
        assert await routing.unroute(west, conn, _Whack())
        assert west.kernel.lookup("10.1.0.1", "10.2.0.5") is None
        assert _shunt_lines(west) == [" ", "Bare Shunt list:", " "]
    asyncio.run(scenario())
