"""IKEv2 SA lifecycle between two real plutos with lifetimes shortened to seconds:
CREATE_CHILD_SA rekeys on the timers with no gap in the Child SA set, whack's
--rekey-ike/--rekey-child/--down-ike, and revival of an UP connection."""

from __future__ import annotations

import re
import time

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS = '@west @east : PSK "the shared secret"\n'


@pytest.fixture
def pair(tmp_path):
    port = free_udp_port("127.0.0.1")
    plutos = []
    for name, addr in (("west", "127.0.0.1"), ("east", "127.0.0.2")):
        d = tmp_path / name
        d.mkdir()
        p = Pluto(d, addr=addr, ikeport=port, secrets=SECRETS)
        p.start()
        assert p.whack("--listen").rc == 0
        plutos.append(p)
    yield plutos
    for p in plutos:
        p.stop()


def _add(p: Pluto, *extra: str) -> None:
    res = p.whack("--name", "c", "--host", "127.0.0.1", "--id", "@west",
                  "--client", "10.1.0.0/24", "--to", "--host", "127.0.0.2", "--id", "@east",
                  "--client", "10.2.0.0/24", "--psk", "--tunnel", "--encrypt", "--pfs", *extra)
    assert res.rc == 0, res


def _children(p: Pluto) -> list[int]:
    return [int(x.split(":")[0][1:]) for x in p.whack("--showstates").lines
            if "established Child SA" in x]


def _wait(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_timers_rekey_repeatedly_without_a_gap(pair):
    west, east = pair
    short = ("--ikelifetime", "6", "--ipseclifetime", "4", "--rekeymargin", "2")
    _add(west, *short)
    _add(east, *short)
    assert west.whack("--name", "c", "--initiate").rc == 0
    states = west.whack("--showstates").lines
    assert re.search(r"established IKE SA; REKEY in \ds; REPLACE in [56]s; newest;", states[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert _children(west) and _children(east)  # never a gap
        time.sleep(0.1)
    log = west.logtext()
    assert log.count("initiator rekeyed Child SA") >= 3
    assert re.search(r'"c" #\d+: initiating rekey to replace Child SA #\d+', log)
    assert "sent CREATE_CHILD_SA request to rekey IPsec SA" in log
    assert re.search(r'"c" #\d+: deleting established Child SA using IKE SA #\d+', log)
    assert "rekeyed IKE SA" in log + east.logtext()
    assert len(_children(west)) <= 2


def test_whack_rekey_and_down_ike(pair):
    west, east = pair
    _add(west)
    _add(east)
    assert west.whack("--name", "c", "--initiate").rc == 0
    res = west.whack("--name", "c", "--rekey-child")
    assert res.rc == 0, res
    assert res.lines[0] == '"c" #3: initiating rekey to replace Child SA #2'
    assert res.lines[1] == '"c" #3: sent CREATE_CHILD_SA request to rekey IPsec SA'
    assert res.lines[2].startswith('"c" #3: initiator rekeyed Child SA #2 using #1; IPsec tunnel')
    res = west.whack("--name", "c", "--rekey-ike")
    assert res.rc == 0, res
    assert res.lines[0] == '"c" #4: initiating rekey to replace IKE SA #1'
    assert any(x.startswith('"c" #4: initiator rekeyed IKE SA #1 {cipher=') for x in res.lines)
    _wait(lambda: {x.split(":")[0] for x in west.whack("--showstates").lines} == {"#3", "#4"})
    # --delete-ike keeps UP: the connection revives
    res = west.whack("--name", "c", "--delete-ike")
    assert res.rc == 0, res
    _wait(lambda: "revival attempt 1 scheduled in 0 seconds" in west.logtext())
    _wait(lambda: len(_children(west)) == 1 and len(_children(east)) == 1)
    # --down-ike clears UP: nothing comes back
    res = west.whack("--name", "c", "--down-ike")
    assert res.rc == 0, res
    _wait(lambda: _children(west) == [] and _children(east) == [])
    time.sleep(0.5)
    assert west.whack("--showstates").lines == []
    assert west.logtext().count("revival attempt") == 1


def test_liveness_declares_a_killed_peer_dead_and_revival_reconnects(pair):
    """dpddelay=1: a probe a second; the peer is SIGKILLed, so the probe's
    retransmit-timeout (3s) runs out: the IKE SA and its Child SA go and, the connection
    being UP, revival retries with backoff until the restarted peer answers."""
    west, east = pair
    liveness = ("--dpddelay", "1", "--retransmit-timeout", "3", "--retransmit-interval", "250")
    _add(west, *liveness)
    _add(east)
    assert west.whack("--name", "c", "--initiate").rc == 0
    states = west.whack("--showstates").lines
    assert any("established IKE SA" in x and "LIVENESS in " in x for x in states), states
    time.sleep(1.5)  # probes go out and are answered
    assert "#1" in west.whack("--showstates").lines[0]

    assert east.proc is not None
    east.proc.kill()
    east.proc.wait()
    killed = time.monotonic()
    _wait(lambda: "3 second timeout exceeded" in west.logtext(), timeout=10)
    # dead within dpddelay + retransmit-timeout (plus scheduling slack)
    assert time.monotonic() - killed < 1 + 3 + 2
    log = west.logtext()
    assert re.search(r'"c" #1: ESTABLISHED_IKE_SA: 3 second timeout exceeded after \d+ '
                     r"retransmits\.  No response \(or no acceptable response\) to our IKEv2 "
                     r"message", log), log
    assert '"c" #1: connection is supposed to remain up; revival attempt 1 scheduled in ' \
        "0 seconds" in log
    assert _children(west) == [] or all(c > 2 for c in _children(west))

    # the first attempts fail (nobody answers); once the peer is back, one succeeds
    _wait(lambda: "revival attempt 2 scheduled in 5 seconds" in west.logtext(), timeout=10)
    east.proc = None
    for stale in ("pluto.pid", "pluto.ctl"):  # SIGKILL left them, as after a crash
        (east.rundir / stale).unlink(missing_ok=True)
    restarted = Pluto(east.rundir, addr="127.0.0.2", ikeport=east.ikeport, natport=east.natport,
                      secrets=SECRETS)
    restarted.start()
    pair[1] = restarted
    assert restarted.whack("--listen").rc == 0
    _add(restarted)
    _wait(lambda: len(_children(west)) == 1 and len(_children(restarted)) == 1, timeout=20)
    assert "initiating connection 'c' with serial $1 which is dead but must remain up per " \
        "local policy" in west.logtext() or "which timed out but must remain up" \
        in west.logtext()
