"""NAT keepalives (RFC 3948): an IKE SA behind a NAT sends a lone 0xff byte to the peer's
NAT-T port every keep-alive seconds when it has sent nothing else; encapsulation=yes
makes both ends act as if NATed (faked NAT-D hashes, IKE on the NAT-T port, ESP in UDP).

Two real pluto daemons on loopback; the keepalives are seen on the wire with tcpdump."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS = '@west @east : PSK "keep the NAT mapping open"\n'


def _conf(encapsulation: str, keepalive: str) -> str:
    return f"""\
config setup

conn nat
    left=127.0.0.1
    leftid=@west
    leftsubnet=10.11.1.0/24
    right=127.0.0.2
    rightid=@east
    rightsubnet=10.11.2.0/24
    authby=secret
    encapsulation={encapsulation}
    nat-keepalive={keepalive}
"""


def _start(root: Path, keep_alive: int) -> tuple[Pluto, Pluto]:
    port, natport = free_udp_port("127.0.0.1"), free_udp_port("127.0.0.1")
    plutos = []
    for name, addr in (("west", "127.0.0.1"), ("east", "127.0.0.2")):
        d = root / name
        d.mkdir()
        p = Pluto(d, addr=addr, ikeport=port, natport=natport, secrets=SECRETS,
                  extra=["--keep-alive", str(keep_alive)]).start()
        assert p.whack("--listen").rc == 0
        plutos.append(p)
    return plutos[0], plutos[1]


def _capture(natport: int, seconds: float) -> list[str]:
    """One-byte UDP datagrams to 127.0.0.2:natport seen on lo during ``seconds``."""
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-l", "-x",
         f"udp and dst host 127.0.0.2 and dst port {natport} and udp[4:2] = 9"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(seconds)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return [line for line in out.splitlines() if "UDP, length 1" in line]


@pytest.mark.parametrize("keepalive", ["yes", "no"])
def test_encapsulated_ike_sa_sends_keepalives(tmp_path: Path, keepalive: str):
    west, east = _start(tmp_path, keep_alive=1)
    try:
        conf = tmp_path / "ipsec.conf"
        conf.write_text(_conf("yes", keepalive))
        for p in (west, east):
            assert p.ipsec("--config", str(conf), "add", "nat").rc == 0
        res = west.ipsec("up", "nat")
        assert res.rc == 0, res
        text = "\n".join(res.lines)
        # encapsulation=yes: IKE_AUTH goes to the NAT-T port, ESP in UDP on both ends
        assert f"sent IKE_AUTH request to 127.0.0.2:UDP/{west.natport}" in text, text
        assert "{ESPinUDP/ESN=>" in text and f"NATD=127.0.0.2:{west.natport}" in text, text
        # the responder saw the faked NAT too: its Child SA is UDP-encapsulated as well
        assert re.search(r"responder established Child SA .*\{ESPinUDP/ESN=>", east.logtext())
        if os.geteuid() != 0 or shutil.which("tcpdump") is None:
            pytest.skip("seeing keepalives on the wire needs root and tcpdump")
        seen = _capture(west.natport, 3.5)
        if keepalive == "yes":
            # west believes it is NATed: about one keepalive a second
            assert len(seen) >= 2, seen
            # the status shows the keepalive event on the IKE SA
            states = west.whack("--showstates").lines
            assert any("established IKE SA" in x and "NAT_KEEPALIVE in " in x
                       for x in states), states
        else:
            assert seen == []
    finally:
        west.stop()
        east.stop()


def test_no_keepalive_without_nat(tmp_path: Path):
    west, east = _start(tmp_path, keep_alive=1)
    try:
        conf = tmp_path / "ipsec.conf"
        conf.write_text(_conf("auto", "yes"))
        for p in (west, east):
            assert p.ipsec("--config", str(conf), "add", "nat").rc == 0
        res = west.ipsec("up", "nat")
        assert res.rc == 0, res
        assert "{ESP/ESN=>" in "\n".join(res.lines)
        if os.geteuid() != 0 or shutil.which("tcpdump") is None:
            pytest.skip("seeing keepalives on the wire needs root and tcpdump")
        assert _capture(west.natport, 2.5) == []
    finally:
        west.stop()
        east.stop()
