"""pluto with the real XFRM kernel inside a network namespace: route, ACQUIRE, unroute."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from pyswan_testlib import Pluto

pytestmark = pytest.mark.root


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for network namespaces")
    name = f"pyswan-r-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        _ip("-n", name, "link", "set", "d1", "up")
        _ip("-n", name, "addr", "add", "192.0.2.1/24", "dev", "d0")
        _ip("-n", name, "addr", "add", "10.1.0.1/24", "dev", "d0")
        _ip("-n", name, "link", "set", "d0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _pluto_in(netns: str, tmp_path) -> Pluto:
    # a fresh namespace: the standard ports are free
    p = Pluto(tmp_path, addr="192.0.2.1", kernel="xfrm", ikeport=500, natport=4500)
    p.argv = ["ip", "netns", "exec", netns, *p.argv]
    return p.start()


def test_route_installs_trap_and_unroute_removes_it(netns, tmp_path):
    p = _pluto_in(netns, tmp_path)
    try:
        assert "using kernel interface: xfrm" in p.whack("--status").lines
        assert p.whack("--listen").rc == 0
        res = p.whack("--name", "trap", "--host", "192.0.2.1", "--client", "10.1.0.0/24", "--to",
                      "--host", "192.0.2.2", "--client", "10.2.0.0/24", "--psk", "--tunnel",
                      "--encrypt")
        assert res.rc == 0, res
        assert p.whack("--name", "trap", "--route").rc == 0
        policies = _ip("-n", netns, "xfrm", "policy")
        assert "src 10.1.0.0/24 dst 10.2.0.0/24" in policies
        assert "dir out" in policies and "proto esp" in policies
        assert "routed-ondemand" in p.whack("--connectionstatus").lines[0]
        # trapped traffic makes the kernel send an ACQUIRE; pluto starts negotiating
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", "-I", "10.1.0.1",
                        "10.2.0.5"], capture_output=True, check=False)
        for _ in range(50):
            if "initiating on demand" in p.logtext():
                break
            time.sleep(0.1)
        assert '"trap": initiating on demand: acquire for 10.1.0.1/32' in p.logtext()
        assert p.whack("--name", "trap", "--unroute").rc == 0
        assert "10.2.0.0/24" not in _ip("-n", netns, "xfrm", "policy")
        assert p.whack("--name", "trap", "--route").rc == 0
        assert p.whack("--shutdown").rc == 0
        p.proc.wait(20)
        assert "10.2.0.0/24" not in _ip("-n", netns, "xfrm", "policy")
    finally:
        p.stop()


def test_passthrough_connection_installs_bare_shunts(netns, tmp_path):
    p = _pluto_in(netns, tmp_path)
    try:
        assert p.whack("--listen").rc == 0
        res = p.whack("--name", "clear", "--host", "192.0.2.1", "--client", "10.1.0.0/24", "--to",
                      "--host", "192.0.2.2", "--client", "10.3.0.0/24", "--pass")
        assert res.rc == 0, res
        assert p.whack("--name", "clear", "--route").rc == 0
        policies = _ip("-n", netns, "xfrm", "policy")
        assert "src 10.1.0.0/24 dst 10.3.0.0/24" in policies
        assert "src 10.3.0.0/24 dst 10.1.0.0/24" in policies
        assert "routed-never-negotiate" in p.whack("--connectionstatus").lines[0]
    finally:
        p.stop()
    assert "10.3.0.0/24" not in _ip("-n", netns, "xfrm", "policy")


def test_kernel_choice_is_announced(tmp_path):
    """Without a usable XFRM kernel (or when asked), pluto says which kernel it uses."""
    p = Pluto(tmp_path, kernel="memory").start()
    try:
        assert p.whack("--status").lines[0] == "using kernel interface: memory"
        assert "using kernel interface: memory" in p.logtext()
    finally:
        p.stop()
