"""phase2=ah and compress=yes between two real pluto daemons (loopback, in-memory kernel),
driven by ``ipsec add/up/down`` and whack's status commands: the Child SA is negotiated as
AH (or ESP with IPCOMP), shows up in ``--status``/``--trafficstatus`` as Libreswan prints
it, and goes with ``ipsec down``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS = '@west @east : PSK "authenticated, maybe compressed"\n'

CONF = """\
config setup

conn %default
    left=127.0.0.1
    leftid=@west
    leftsubnet=10.1.0.0/24
    right=127.0.0.2
    rightid=@east
    rightsubnet=10.2.0.0/24
    authby=secret

conn ah
    phase2=ah
    ah=sha2_256

conn comp
    leftsubnet=10.3.0.0/24
    rightsubnet=10.4.0.0/24
    compress=yes

conn ahcomp
    leftsubnet=10.5.0.0/24
    rightsubnet=10.6.0.0/24
    phase2=ah
    compress=yes
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
    for p in plutos:
        for name in ("ah", "comp", "ahcomp"):
            res = p.ipsec("--config", str(conf), "add", name)
            assert res.rc == 0, res
    yield plutos[0], plutos[1]
    for p in plutos:
        p.stop()


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _hex(lines: list[str]) -> list[str]:
    return [re.sub(r"0x[0-9a-f]{8}", "0xSPISPI", x) for x in lines]


def _status(p: Pluto, name: str) -> list[str]:
    return [x for x in p.whack("--status").lines if f'"{name}"' in x]


def test_phase2_ah(pair):
    west, east = pair
    res = west.ipsec("up", "ah")
    assert res.rc == 0, res
    lines = _hex(res.lines)
    assert any(x.endswith("Child SA #2 {AH <0xSPISPI} [10.1.0.0/24===10.2.0.0/24]")
               for x in lines), lines
    assert lines[-1] == ('"ah" #2: initiator established Child SA using #1; IPsec tunnel '
                         "[10.1.0.0/24===10.2.0.0/24] {AH/ESN=>0xSPISPI <0xSPISPI "
                         "xfrm=HMAC_SHA2_256_128 DPD=passive}")
    spi_out, spi_in = re.findall(r"0x([0-9a-f]{8})", res.lines[-1])[:2]
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    for p, me, peer, out, inn in ((west, "127.0.0.1", "127.0.0.2", spi_out, spi_in),
                                  (east, "127.0.0.2", "127.0.0.1", spi_in, spi_out)):
        (traffic,) = p.whack("--trafficstatus").lines
        assert re.fullmatch(r'#2: "ah", type=AH, add_time=\d+, inBytes=0, outBytes=0, '
                            r"maxBytes=2\^63B, id='@(east|west)'", traffic), traffic
        status = _status(p, "ah")
        said = (f'#2: "ah" ah.{int(out, 16):x}@{peer} ah.{int(inn, 16):x}@{me} '
                f"tun.0@{peer} tun.0@{me} Traffic: AHin=0B AHout=0B AHmax=2^63B ")
        assert said in status, status
        assert '"ah":   AH algorithms: HMAC_SHA2_256_128' in status
        assert any(x.startswith('"ah":   AH algorithm newest: HMAC_SHA2_256_128;')
                   for x in status), status
    res = west.ipsec("down", "ah")
    assert res.rc == 0, res
    _wait(lambda: east.whack("--trafficstatus").lines == [])
    assert west.whack("--trafficstatus").lines == []
    _wait(lambda: "AH traffic information: in=0B out=0B" in east.logtext())
    assert '"ah" #2: AH traffic information: in=0B out=0B' in west.logtext()


def test_compress_yes(pair):
    west, east = pair
    res = west.ipsec("up", "comp")
    assert res.rc == 0, res
    request = next(x for x in res.lines if "sent IKE_AUTH request" in x)
    assert re.search(r"Child SA #2 \{ESP <0x[0-9a-f]{8} IPCOMP <0x[0-9a-f]{4}\} "
                     r"\[10\.3\.0\.0/24===10\.4\.0\.0/24\]$", request), request
    up = res.lines[-1]
    m = re.search(r"\{ESP/ESN=>0x([0-9a-f]{8}) <0x([0-9a-f]{8}) xfrm=AES_GCM_16_256 "
                  r"IPCOMP=>0x([0-9a-f]{8}) <0x([0-9a-f]{8}) DPD=passive\}$", up)
    assert m and up.startswith('"comp" #2: initiator established Child SA'), up
    spi_out, spi_in, cpi_out, cpi_in = (int(g, 16) for g in m.groups())
    assert int(request.split("IPCOMP <0x")[1][:4], 16) == cpi_in
    assert 256 <= cpi_in <= 61439 and 256 <= cpi_out <= 61439
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    # east's view is the mirror image
    east_up = next(x for x in east.logtext().splitlines()
                   if "responder established Child SA" in x)
    assert east_up.endswith(f"{{ESP/ESN=>0x{spi_in:08x} <0x{spi_out:08x} xfrm=AES_GCM_16_256 "
                            f"IPCOMP=>0x{cpi_in:08x} <0x{cpi_out:08x} DPD=passive}}")
    status = _status(west, "comp")
    assert (f'#2: "comp" esp.{spi_out:x}@127.0.0.2 esp.{spi_in:x}@127.0.0.1 '
            f"comp.{cpi_out:x}@127.0.0.2 comp.{cpi_in:x}@127.0.0.1 tun.0@127.0.0.2 "
            "tun.0@127.0.0.1 Traffic: ESPin=0B ESPout=0B ESPmax=2^63B IPCOMPin=0B "
            "IPCOMPout=0B IPCOMPmax=2^63B ") in status, status
    assert any(x.startswith('"comp":   ESP algorithm newest: AES_GCM_16_256; IPCOMP; ')
               for x in status), status
    assert "type=ESP" in west.whack("--trafficstatus").lines[0]
    res = west.ipsec("down", "comp")
    assert res.rc == 0, res
    _wait(lambda: east.whack("--trafficstatus").lines == [])
    log = west.logtext()
    assert '"comp" #2: ESP traffic information: in=0B out=0B' in log
    assert '"comp" #2: IPCOMP traffic information: in=0B out=0B' in log


def test_ah_with_ipcomp(pair):
    west, east = pair
    res = west.ipsec("up", "ahcomp")
    assert res.rc == 0, res
    assert re.search(r"\{AH/ESN=>0x[0-9a-f]{8} <0x[0-9a-f]{8} xfrm=HMAC_SHA2_512_256 "
                     r"IPCOMP=>0x[0-9a-f]{8} <0x[0-9a-f]{8} DPD=passive\}$", res.lines[-1]), \
        res.lines
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    assert "type=AH" in west.whack("--trafficstatus").lines[0]
