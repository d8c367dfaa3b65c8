"""pluto on the real XFRM kernel in network namespaces: inbound SPIs come from the kernel's
ALLOCSPI, and the negotiation and failure shunts around an on-demand negotiation.

`ip xfrm state` / `ip xfrm policy` inside the namespaces are the oracle.  This host's kernel
has no ESP, so a Child SA cannot be installed here: the responder's attempt fails at the
kernel, which is where the reserved SPI shows (UPDSA on the larval SA, not NEWSA).  The
QEMU lab (tests/lab) covers the installed case.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyswan.kernel.netns import NetNS, netns_unavailable
from pyswan_testlib import Pluto

pytestmark = pytest.mark.root

SECRETS = '@west @east : PSK "shunts and spis in namespaces"\n'
SETUP = "config setup\n\tshuntlifetime=4s\n\texpire-shunt-interval=1s\n"


@pytest.fixture(scope="module")
def netns_ok() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def pair(netns_ok: None) -> Iterator[tuple[NetNS, NetNS]]:
    """west and east joined by a veth pair; clients on lo, routed over the veth."""
    with NetNS("pyswan-w-") as west, NetNS("pyswan-e-") as east:
        subprocess.run(["ip", "link", "add", "vw", "netns", west.name, "type", "veth", "peer",
                        "name", "ve", "netns", east.name], check=True)
        for ns, dev, addr, client, peer_net in (
                (west, "vw", "192.0.2.1/24", "10.1.0.1/24", "10.2.0.0/24"),
                (east, "ve", "192.0.2.2/24", "10.2.0.1/24", "10.1.0.0/24")):
            ns.ip("addr", "add", addr, "dev", dev)
            ns.ip("addr", "add", client, "dev", "lo")
            ns.ip("link", "set", dev, "up")
            ns.ip("route", "add", peer_net, "dev", dev, "src", client.split("/")[0])
        yield west, east


def _pluto(ns: NetNS, root: Path, name: str, addr: str) -> Pluto:
    d = root / name
    d.mkdir()
    (d / "ipsec.conf").write_text(SETUP)
    p = Pluto(d, addr=addr, kernel="xfrm", ikeport=500, natport=4500, secrets=SECRETS,
              extra=["--config", str(d / "ipsec.conf")])
    p.argv = ["ip", "netns", "exec", ns.name, *p.argv]
    p.start()
    assert p.whack("--listen").rc == 0
    return p


def _add(p: Pluto, local: str, *extra: str) -> None:
    me, peer = ("west", "east") if local == "192.0.2.1" else ("east", "west")
    lnet, rnet = ("10.1.0.0/24", "10.2.0.0/24") if me == "west" else ("10.2.0.0/24",
                                                                       "10.1.0.0/24")
    remote = "192.0.2.2" if me == "west" else "192.0.2.1"
    res = p.whack("--name", "t", "--host", local, "--id", f"@{me}", "--client", lnet, "--to",
                  "--host", remote, "--id", f"@{peer}", "--client", rnet, "--psk", "--tunnel",
                  "--encrypt", "--ike", "aes_gcm256-sha2_256;dh31", "--esp", "aes_gcm256",
                  *extra)
    assert res.rc == 0, res


def _states(ns: NetNS) -> list[dict[str, str]]:
    """`ip xfrm state` entries: src, dst, proto, spi and whether algorithms are set."""
    out = []
    for block in re.split(r"\n(?=src )", ns.ip("xfrm", "state").strip()):
        m = re.match(r"src (\S+) dst (\S+)\s+proto (\S+) spi (0x[0-9a-f]+)", block)
        if m:
            out.append({"src": m[1], "dst": m[2], "proto": m[3], "spi": m[4],
                        "keyed": "aead" in block or "enc " in block})
    return out


def _out_policy(ns: NetNS, src: str, dst: str) -> str | None:
    """The `ip xfrm policy` block of the outbound policy src -> dst, if any."""
    for block in re.split(r"\n(?=src )", ns.ip("xfrm", "policy").strip()):
        if block.startswith(f"src {src} dst {dst}") and "dir out" in block:
            return block
    return None


def _action(block: str | None) -> str:
    """iproute2 prints only "action block" (allow is the default)."""
    assert block is not None
    return "block" if "action block" in block else "allow"


def _wait(cond: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.1)


def test_inbound_spis_come_from_allocspi(pair, tmp_path):
    west_ns, east_ns = pair
    west = _pluto(west_ns, tmp_path, "west", "192.0.2.1")
    east = _pluto(east_ns, tmp_path, "east", "192.0.2.2")
    try:
        _add(west, "192.0.2.1")
        _add(east, "192.0.2.2")
        # once the connection is oriented, pluto reserves inbound SPIs on its address
        reserved = _wait(lambda: [s for s in _states(east_ns)
                                  if s["dst"] == "192.0.2.2" and s["proto"] == "esp"
                                  and not s["keyed"]], "east's reserved SPIs")
        spis = {int(s["spi"], 16) for s in reserved}  # type: ignore[union-attr]
        assert all(spi >= 0x1000 for spi in spis)
        assert {s["src"] for s in reserved} == {"0.0.0.0"}  # type: ignore[union-attr]
        west.whack("--name", "t", "--initiate", timeout=60)
        log = east.logtext()
        m = re.search(r'"t" #\d+: ERROR: ESP SA (0x[0-9a-f]{8}) 192\.0\.2\.1->192\.0\.2\.2: '
                      r"kernel refused (\w+ SA) \((XFRM_MSG_\w+)\): (.*)", log)
        if m:  # this host: no ESP -- the larval SA pluto reserved was to be filled in
            assert (m[2], m[3]) == ("update SA", "XFRM_MSG_UPDSA"), m[0]
            assert int(m[1], 16) in spis, (m[1], sorted(spis))
            # the failed Child SA released its reservation
            _wait(lambda: m[1] not in {s["spi"] for s in _states(east_ns)},
                  "the failed SA's reservation to go")
        else:  # a kernel with ESP: the installed inbound SA sits on a reserved SPI
            keyed = [s for s in _states(east_ns) if s["keyed"] and s["dst"] == "192.0.2.2"]
            assert keyed and int(keyed[0]["spi"], 16) in spis, (keyed, spis)
        assert east.whack("--shutdown").rc == 0
        east.proc.wait(20)
        # the reservations east did not use went with it
        assert [s for s in _states(east_ns) if s["dst"] == "192.0.2.2"] == []
    finally:
        west.stop()
        east.stop()


def _ping(ns: NetNS) -> None:
    ns.run("ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.5", check=False)


@pytest.mark.parametrize("negotiation, failure", [("drop", "pass"), ("pass", "drop")])
def test_negotiation_then_failure_shunt_then_trap_again(pair, tmp_path, negotiation, failure):
    """No peer answers: while west retransmits, its negotiation shunt stands in for the
    trap; when it gives up, the failure shunt is a bare shunt for shuntlifetime (4s here),
    then the trap is back."""
    west_ns, _east_ns = pair
    west = _pluto(west_ns, tmp_path, "west", "192.0.2.1")
    try:
        extra = ["--retransmit-timeout", "6s", "--retransmit-interval", "500ms"]
        if negotiation == "pass":
            extra.append("--negopass")  # negotiationshunt=drop is the default
        extra.append("--failpass" if failure == "pass" else "--faildrop")
        _add(west, "192.0.2.1", *extra)
        assert west.whack("--name", "t", "--route").rc == 0
        trap = _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")
        assert _action(trap) == "allow" and "proto esp" in trap, trap  # type: ignore[operator]
        assert "routed-ondemand" in west.whack("--connectionstatus").lines[0]

        _ping(west_ns)  # the trap catches it: ACQUIRE, negotiation
        during = _wait(lambda: (lambda b: b if b and "proto esp" not in b else None)(
            _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")), "the negotiation shunt")
        assert _action(during) == ("block" if negotiation == "drop" else "allow"), during
        assert '"t": initiating on demand: acquire for 10.1.0.1/32' in west.logtext()
        assert "routed-negotiation" in west.whack("--connectionstatus").lines[0]
        assert west.whack("--shuntstatus").lines == [" ", "Bare Shunt list:", " "]

        # west gives up (retransmit-timeout): the failure shunt replaces it, listed as bare
        shunts = _wait(lambda: [x for x in west.whack("--shuntstatus").lines if "=>" in x],
                       "the failure shunt")
        assert shunts == [f"10.1.0.0/24 -0-> 10.2.0.0/24 => %{failure}    failing $1"]
        after = _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")
        assert after is not None and "proto esp" not in after, after
        assert _action(after) == ("allow" if failure == "pass" else "block"), after
        assert "routed-failure" in west.whack("--connectionstatus").lines[0]

        # shuntlifetime later, the bare shunt is gone and the trap is back
        _wait(lambda: west.whack("--shuntstatus").lines == [" ", "Bare Shunt list:", " "],
              "the failure shunt to expire")
        again = _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")
        assert _action(again) == "allow" and "proto esp" in again, again  # type: ignore[operator]
        assert "routed-ondemand" in west.whack("--connectionstatus").lines[0]
        assert west.whack("--name", "t", "--unroute").rc == 0
        assert _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24") is None
    finally:
        west.stop()


def test_failureshunt_none_restores_the_trap_at_once(pair, tmp_path):
    west_ns, _east_ns = pair
    west = _pluto(west_ns, tmp_path, "west", "192.0.2.1")
    try:
        _add(west, "192.0.2.1", "--retransmit-timeout", "3s", "--retransmit-interval", "500ms")
        assert west.whack("--name", "t", "--route").rc == 0
        _ping(west_ns)
        _wait(lambda: "routed-negotiation" in west.whack("--connectionstatus").lines[0],
              "the negotiation")
        block = _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")
        assert _action(block) == "block", block  # negotiationshunt=drop
        _wait(lambda: "routed-ondemand" in west.whack("--connectionstatus").lines[0],
              "the trap to come back")
        trap = _out_policy(west_ns, "10.1.0.0/24", "10.2.0.0/24")
        assert _action(trap) == "allow" and "proto esp" in trap, trap  # type: ignore[operator]
        assert west.whack("--shuntstatus").lines == [" ", "Bare Shunt list:", " "]
    finally:
        west.stop()
