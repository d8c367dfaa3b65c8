"""RFC 7383 fragmentation between two real pluto daemons on loopback.

Each end has an RSA certificate with three RSA-3072 intermediates (``leftcert=`` names a
file holding the whole chain), so IKE_AUTH is about 5 KB each way: with fragmentation
agreed it crosses as SKF fragments, which both debug logs show being cut and put back
together; with ``fragmentation=no`` on one end it goes whole.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ike"))
from test_ikev2_fragmentation import long_chains  # noqa: E402

ISSUER = "O=pyswan long chains, CN=Intermediate 1"


def _pluto(root: Path, name: str, addr: str, port: int) -> Pluto:
    d = root / name
    d.mkdir()
    ipsecdir = long_chains().write(d / "ipsec.d")
    return Pluto(d, addr=addr, ikeport=port, secrets="",
                 extra=["--ipsecdir", str(ipsecdir), "--debug", "all"])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("frag")
    port = free_udp_port("127.0.0.1")
    west = _pluto(root, "west", "127.0.0.1", port).start()
    east = _pluto(root, "east", "127.0.0.2", port).start()
    for p in (west, east):
        assert p.whack("--listen").rc == 0
    yield west, east, root
    west.stop()
    east.stop()


def _body(name: str, net: int, extra: str) -> str:
    return f"""{name}
    left=127.0.0.1
    leftid=@west.frag.example
    leftsubnet=10.{net}.1.0/24
    right=127.0.0.2
    rightid=@east.frag.example
    rightsubnet=10.{net}.2.0/24
{extra}"""


def _add(p: Pluto, root: Path, side: str, name: str, body: str):
    conf = root / f"{side}-{name}.conf"
    conf.write_text("config setup\n\nconn " + body)
    res = p.ipsec("--config", str(conf), "add", name)
    assert res.rc == 0, res
    return res


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _debug(p: Pluto, name: str, pattern: str) -> list[re.Match]:
    """Debug lines ``| "name" #N: <pattern>`` in the daemon's log (after the time)."""
    rx = re.compile(rf'\| "{re.escape(name)}" #\d+: {pattern}$', re.M)
    return list(rx.finditer(p.logtext()))


def test_certificate_ike_auth_crosses_in_fragments(pair):
    west, east, root = pair
    added = _add(west, root, "w", "frag",
                 _body("frag", 41, "    leftcert=west\n    fragmentation=force\n"))
    # Libreswan 5: force only means something to IKEv1
    assert "IKEv1 only fragmentation=force ignored; using fragmentation=yes" in \
        added.out + added.err, added
    _add(east, root, "e", "frag", _body("frag", 41, "    rightcert=east\n"))
    res = west.whack("--name", "frag", "--initiate")
    assert res.rc == 0, res
    assert ('"frag" #1: initiator established IKE SA; authenticated peer certificate '
            f"'@east.frag.example' and 2048-bit RSASSA-PSS with SHA2_512 digital signature "
            f"issued by '{ISSUER}'") in res.lines, res.lines
    assert any("initiator established Child SA using #1" in x for x in res.lines), res.lines
    _wait(lambda: "responder established IKE SA; authenticated peer certificate "
                  "'@west.frag.example'" in east.logtext())
    # west cut its IKE_AUTH request and sent every piece; east took them in and put the
    # message back together, and the same the other way for the response
    cut = _debug(west, "frag", r"recording fragment (\d+)")
    total = int(cut[-1].group(1))
    assert [int(m.group(1)) for m in cut[:total]] == list(range(1, total + 1))
    assert total >= 8
    assert _debug(west, "frag", f"sent {total} messages")
    got = _debug(east, "frag", rf"received IKE encrypted fragment number '(\d+)', total "
                               rf"number '{total}', next payload '(\d+)'")
    assert sorted(int(m.group(1)) for m in got) == list(range(1, total + 1))
    assert {int(m.group(2)) for m in got if m.group(1) == "1"} == {35}  # IDi
    assert _debug(east, "frag", "reassembling incoming fragments")
    back = _debug(west, "frag", r"received IKE encrypted fragment number '1', total number "
                                r"'(\d+)', next payload '36'")  # IDr
    assert back and _debug(east, "frag", f"sent {back[0].group(1)} messages")
    for p in (west, east):  # IKE_SA_INIT picks the first connection for the addresses
        assert p.whack("--name", "frag", "--delete").rc == 0


def test_fragmentation_no_sends_ike_auth_whole(pair):
    west, east, root = pair
    _add(west, root, "w", "whole", _body("whole", 42, "    leftcert=west\n"))
    _add(east, root, "e", "whole",
         _body("whole", 42, "    rightcert=east\n    fragmentation=no\n"))
    res = west.whack("--name", "whole", "--initiate")
    assert res.rc == 0, res
    assert any("initiator established IKE SA; authenticated peer certificate "
               "'@east.frag.example'" in x for x in res.lines), res.lines
    _wait(lambda: '"whole" #' in east.logtext()
          and "responder established IKE SA" in east.logtext().split('"whole"', 1)[1])
    for p in (west, east):
        assert not _debug(p, "whole", "recording fragment .*")
        assert not _debug(p, "whole", "received IKE encrypted fragment .*")
    for p in (west, east):
        assert p.whack("--name", "whole", "--delete").rc == 0
