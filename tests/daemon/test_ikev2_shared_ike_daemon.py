"""Several connections to one peer share an IKE SA (Libreswan's viable parent): a second
connection gets its Child SA by CREATE_CHILD_SA, an alias starts them all at once (the
later ones queued on the first IKE SA), and leftsubnets=/rightsubnets= become one
connection per pair of subnets, named ``conn/LxR``.  Two real pluto daemons on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS = '@west @east : PSK "shared between the connections"\n'

CONF = """\
config setup

conn %default
    left=127.0.0.1
    leftid=@west
    right=127.0.0.2
    rightid=@east
    authby=secret

conn one
    leftsubnet=10.7.1.0/24
    rightsubnet=10.7.2.0/24

conn two
    leftsubnet=10.8.1.0/24
    rightsubnet=10.8.2.0/24

conn multi
    leftsubnet=10.9.1.0/24
    rightsubnets={10.9.2.0/24 10.9.3.0/24}
"""


@pytest.fixture()
def pair(tmp_path: Path):
    port = free_udp_port("127.0.0.1")
    plutos = []
    for name, addr in (("west", "127.0.0.1"), ("east", "127.0.0.2")):
        d = tmp_path / name
        d.mkdir()
        p = Pluto(d, addr=addr, ikeport=port, secrets=SECRETS).start()
        plutos.append(p)
        assert p.whack("--listen").rc == 0
    conf = tmp_path / "ipsec.conf"
    conf.write_text(CONF)
    yield plutos[0], plutos[1], conf
    for p in plutos:
        p.stop()


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _states(p: Pluto) -> list[str]:
    return [x for x in p.whack("--showstates").lines if x.startswith("#")]


def _san(lines: list[str], port: int) -> list[str]:
    return [re.sub(r"0x[0-9a-f]{8}", "0xESPESP", x).replace(f":UDP/{port}", ":UDP/500")
            for x in lines]


def test_second_connection_creates_child_on_existing_ike_sa(pair):
    west, east, conf = pair
    for p in (west, east):
        for name in ("one", "two"):
            assert p.ipsec("--config", str(conf), "add", name).rc == 0
    assert west.ipsec("up", "one").rc == 0
    res = west.ipsec("up", "two")
    assert res.rc == 0, res
    assert _san(res.lines, west.ikeport) == [
        '"two" #3: initiating Child SA using IKE SA #1',
        '"two" #3: sent CREATE_CHILD_SA request to create Child SA using IKE SA #1 '
        "{ESP <0xESPESP} [10.8.1.0/24===10.8.2.0/24]",
        '"two" #3: initiator established Child SA using #1; IPsec tunnel '
        "[10.8.1.0/24===10.8.2.0/24] {ESP/ESN=>0xESPESP <0xESPESP "
        "xfrm=AES_GCM_16_256-DH19 DPD=passive}",
    ]
    # one IKE SA on each side, carrying both connections' Child SAs
    traffic = west.whack("--trafficstatus").lines
    assert [x.split(",")[0] for x in traffic] == ['#2: "one"', '#3: "two"']
    _wait(lambda: sum("established IKE SA" in x for x in _states(east)) == 1
          and sum("established Child SA" in x for x in _states(east)) == 2)
    assert sum("established IKE SA" in x for x in _states(west)) == 1

    # --down of the connection that does not own the IKE SA deletes only its Child SA
    res = west.ipsec("down", "two")
    assert res.rc == 0, res
    assert res.lines[0] == ('"two": initiating delete of connection\'s Child SA #3 using '
                            'IKE SA "one" #1')
    assert res.lines[1].startswith('"two": note: IKE SA "one" #1 will remain up: '
                                   "required by UP policy; in-use by \"one\" #2")
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    assert [x.split(",")[0] for x in west.whack("--trafficstatus").lines] == ['#2: "one"']
    assert sum("established IKE SA" in x for x in _states(west)) == 1

    # up again: a new Child SA on the same IKE SA; then --down of the owner leaves the IKE
    # SA up for the other connection
    assert west.ipsec("up", "two").rc == 0
    res = west.ipsec("down", "one")
    assert res.rc == 0, res
    assert "\"one\": note: connection's IKE SA #1 will remain up: in-use by \"two\"" \
        in res.lines[0]
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    assert [x.split(",")[0].split(": ")[1] for x in west.whack("--trafficstatus").lines] \
        == ['"two"']


def test_subnets_expand_to_connections_sharing_one_ike_sa(pair):
    west, east, conf = pair
    for p in (west, east):
        res = p.ipsec("--config", str(conf), "add", "multi")
        assert res.rc == 0, res
        assert res.lines == ['"multi/0x1": added oriented IKEv2 connection',
                             '"multi/0x2": added oriented IKEv2 connection']
    # the name is now an alias of both
    res = west.ipsec("up", "multi")
    assert res.rc == 0, res
    lines = _san(res.lines, west.ikeport)
    assert lines[:2] == [
        'initiating all connections with alias "multi"',
        '"multi/0x1" #1: initiating IKEv2 connection to 127.0.0.2 using UDP',
    ]
    # (pyswan sends IKE_SA_INIT at once, so its "sent" line may come before these two)
    queued = lines.index('"multi/0x2": queue Child SA; waiting on IKE SA "multi/0x1" #1 '
                         "negotiating with 127.0.0.2")
    assert lines.index("initiating 2 connections") == queued + 1
    assert lines[-3:] == [
        '"multi/0x2" #3: initiating Child SA using IKE SA #1',
        '"multi/0x2" #3: sent CREATE_CHILD_SA request to create Child SA using IKE SA #1 '
        "{ESP <0xESPESP} [10.9.1.0/24===10.9.3.0/24]",
        '"multi/0x2" #3: initiator established Child SA using #1; IPsec tunnel '
        "[10.9.1.0/24===10.9.3.0/24] {ESP/ESN=>0xESPESP <0xESPESP "
        "xfrm=AES_GCM_16_256-DH19 DPD=passive}",
    ]
    assert '"multi/0x1" #2: initiator established Child SA using #1; IPsec tunnel ' \
        "[10.9.1.0/24===10.9.2.0/24]" in "\n".join(lines)
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 2)
    # the responder found each Child SA's own connection
    assert sorted(x.split(",")[0].split(": ")[1] for x in east.whack("--trafficstatus").lines) \
        == ['"multi/0x1"', '"multi/0x2"']

    res = west.ipsec("down", "multi")
    assert res.rc == 0, res
    assert res.lines[0] == 'terminating all connections with alias "multi"'
    assert res.lines[-1] == "terminated 2 connections"
    _wait(lambda: east.whack("--trafficstatus").lines == [])
    # redefining the family by its base name is refused; --replace (ipsec add) replaces it
    res = west.whack("--name", "multi", "--host", "127.0.0.1", "--to", "--host", "127.0.0.2",
                     "--psk")
    assert res.rc == 20 and 'attempt to redefine connection "multi"' in res.lines[-1], res
    assert west.ipsec("--config", str(conf), "add", "multi").rc == 0
    names = [x for x in west.whack("--connectionstatus").lines if "multi/" in x]
    assert {re.match(r'"([^"]+)"', x).group(1) for x in names} == {"multi/0x1", "multi/0x2"}
    assert west.ipsec("delete", "multi").rc == 0
    assert not [x for x in west.whack("--connectionstatus").lines if "multi" in x]
