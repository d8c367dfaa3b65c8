"""The updown command: verbs, PLUTO_* environment, no shell interpolation, logging."""

from __future__ import annotations

import asyncio
import ipaddress
from types import SimpleNamespace

from pyswan.auto.extract import extract_conn
from pyswan.kernel.memory import MemoryKernel
from pyswan.pluto.connections import Connection
from pyswan.pluto.log import Logger
from pyswan.pluto.state import State
from pyswan.pluto.updown import environment, run_updown, verb_for


def _conn(name: str, updown: str, subnets: bool = True) -> Connection:
    triples = [("left", "host", "192.0.2.1"), ("right", "host", "192.0.2.2"),
               ("left", "id", "@west"), ("right", "id", "@east"), ("", "authby", "secret"),
               ("left", "updown", updown)]
    if subnets:
        triples += [("left", "subnet", "10.1.0.0/24"), ("right", "subnet", "10.2.0.0/24")]
    conn = Connection(extract_conn(name, triples), 1)
    conn.local = "left"
    conn.interface_name = "eth0"
    return conn


def _pluto(tmp_path):
    return SimpleNamespace(log=Logger(logfile=str(tmp_path / "log"), use_syslog=False),
                           kernel=MemoryKernel())


def test_verbs():
    assert verb_for(_conn("c", "x"), "up") == "up-client"
    assert verb_for(_conn("c", "x", subnets=False), "route") == "route-host"


def test_environment_variables(tmp_path):
    conn = _conn("c", "true")
    st = State(serial=2, conn=conn, kind="child", peer=(ipaddress.ip_address("192.0.2.2"), 500),
               spi_in=0x1234, spi_out=0xABCD, peer_id="@east")
    env = environment(_pluto(tmp_path), conn, "up-client", st)
    assert env["PLUTO_VERB"] == "up-client"
    assert env["PLUTO_CONNECTION"] == "c"
    assert env["PLUTO_ME"] == "192.0.2.1" and env["PLUTO_PEER"] == "192.0.2.2"
    assert env["PLUTO_MY_CLIENT"] == "10.1.0.0/24"
    assert env["PLUTO_MY_CLIENT_NET"] == "10.1.0.0" and env["PLUTO_MY_CLIENT_MASK"] == "255.255.255.0"
    assert env["PLUTO_PEER_CLIENT"] == "10.2.0.0/24"
    assert env["PLUTO_MY_ID"] == "@west" and env["PLUTO_PEER_ID"] == "@east"
    assert env["PLUTO_INTERFACE"] == "eth0"
    assert env["SPI_IN"] == "0x1234" and env["SPI_OUT"] == "0xabcd"
    host = environment(_pluto(tmp_path), _conn("h", "true", subnets=False), "up-host")
    assert host["PLUTO_MY_CLIENT"] == "192.0.2.1/32"
    assert host["PLUTO_PEER_CLIENT_MASK"] == "255.255.255.255"


def test_script_gets_environment_not_interpolation(tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "env.txt"
    script = tmp_path / "updown.sh"
    script.write_text(f'#!/bin/sh\necho "verb=$PLUTO_VERB conn=$PLUTO_CONNECTION" >> {out}\necho hello\n')
    script.chmod(0o755)
    name = f"$(touch {marker})"
    conn = _conn(name, str(script))
    p = _pluto(tmp_path)
    assert asyncio.run(run_updown(p, conn, "up")) is True
    assert not marker.exists()
    assert out.read_text() == f"verb=up-client conn={name}\n"
    p.log.close()
    assert f'"{name}": up-client output: hello' in (tmp_path / "log").read_text()


def test_failure_is_logged(tmp_path):
    conn = _conn("c", "/bin/sh -c 'echo oops; exit 3'")
    p = _pluto(tmp_path)
    assert asyncio.run(run_updown(p, conn, "route")) is False
    p.log.close()
    log = (tmp_path / "log").read_text()
    assert '"c": route-client output: oops' in log
    assert '"c": route-client command exited with status 3' in log


def test_disabled_and_default_on_memory_kernel_do_nothing(tmp_path):
    p = _pluto(tmp_path)
    assert asyncio.run(run_updown(p, _conn("c", "%disabled"), "up")) is True
    assert asyncio.run(run_updown(p, _conn("c", "ipsec _updown"), "up")) is True
