"""DDoS protection and RFC 5685 redirect between real pluto daemons on loopback addresses
(in-memory kernel), driven by whack."""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyswan.ike.codec import Notify, decode_message
from pyswan.ike.constants import IdType, NotifyType
from pyswan.ike.ikev2 import Engine, Identity, Policy, PolicyIndex, Send
from pyswan.ike.proposals import parse_proposals
from pyswan_testlib import Pluto, free_udp_port

SECRETS = '@west @east : PSK "the shared secret"\n'


def _dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    return d


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _add(p: Pluto, name: str, here: str, there: str, my_id: str, peer_id: str,
         lnet: str, rnet: str, *extra: str) -> None:
    res = p.whack("--name", name, "--host", here, "--id", my_id, "--client", lnet,
                  "--to", "--host", there, "--id", peer_id, "--client", rnet,
                  "--psk", "--tunnel", "--encrypt", "--pfs", *extra)
    assert res.rc == 0, res


def _global(p: Pluto) -> dict[str, str]:
    return dict(line.split("=", 1) for line in p.whack("--globalstatus").lines if "=" in line)


def _flood_requests(n: int, port: int) -> list[bytes]:
    """``n`` IKE_SA_INIT requests from 127.0.0.1 to 127.0.0.2 (distinct SPIs and nonces),
    made by an engine of our own that will never answer."""
    policy = Policy(name="flood", handle=None, local_addr=ipaddress.ip_address("127.0.0.1"),
                    remote_addr=ipaddress.ip_address("127.0.0.2"), local_port=port,
                    remote_port=port, local_id=Identity.of(IdType.FQDN, b"west"),
                    remote_id=Identity.of(IdType.FQDN, b"east"),
                    ike=parse_proposals("ike", None), esp=parse_proposals("esp", None))
    eng = Engine(PolicyIndex([policy]))
    return [a.data for _ in range(n) for a in eng.initiate(policy, 0.0) if isinstance(a, Send)]


def _first_notify(data: bytes) -> int | None:
    msg = decode_message(data)
    first = msg.payloads[0] if msg.payloads else None
    return first.type if type(first) is Notify else None


@pytest.fixture
def ddos_pair(tmp_path):
    port = free_udp_port("127.0.0.1")
    conf = tmp_path / "east.conf"
    conf.write_text("config setup\n\tddos-ike-threshold=5\n\tmax-halfopen-ike=40\n")
    west = Pluto(_dir(tmp_path, "west"), addr="127.0.0.1", ikeport=port, secrets=SECRETS)
    east = Pluto(_dir(tmp_path, "east"), addr="127.0.0.2", ikeport=port, secrets=SECRETS,
                 extra=["--config", str(conf)])
    west.start()
    east.start()
    try:
        for p in (west, east):
            assert p.whack("--listen").rc == 0
        _add(west, "k", "127.0.0.1", "127.0.0.2", "@west", "@east", "10.9.1.0/24",
             "10.9.2.0/24")
        _add(east, "k", "127.0.0.2", "127.0.0.1", "@east", "@west", "10.9.2.0/24",
             "10.9.1.0/24")
        yield west, east, port
    finally:
        west.stop()
        east.stop()


def test_flood_turns_on_cookies_in_auto_mode(ddos_pair):
    west, east, port = ddos_pair
    g = _global(east)
    assert (g["config.setup.ike.ddos_threshold"], g["config.setup.ike.max_halfopen"]) == \
        ("5", "40")
    assert east.whack("--briefstatus").lines[0] == \
        "State Information: DDoS cookies not required, Accepting new IKE connections"
    answers: list[int | None] = []
    socks = []
    try:
        for data in _flood_requests(30, port):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a new source port each
            s.bind(("127.0.0.1", 0))
            s.settimeout(10)
            socks.append(s)
            s.sendto(data, ("127.0.0.2", port))
            answers.append(_first_notify(s.recvfrom(65536)[0]))
    finally:
        for s in socks:
            s.close()
    # five requests made half-open IKE SAs; from then on the answer is N(COOKIE)
    assert NotifyType.COOKIE not in answers[:5]
    assert answers[5:] == [NotifyType.COOKIE] * 25
    g = _global(east)
    assert g["current.states.iketype.halfopen"] == "5"
    assert g["current.states.enumerate.IKE_SA_INIT_R"] == "5"
    assert east.whack("--briefstatus").lines[:2] == [
        "State Information: DDoS cookies REQUIRED, Accepting new IKE connections",
        "IKE SAs: total(5), half-open(5), open(0), authenticated(0), anonymous(0)",
    ]
    # a legitimate initiator answers the cookie and gets its tunnel
    res = west.whack("--name", "k", "--initiate")
    assert res.rc == 0, res
    assert any(re.fullmatch(r'"k" #\d+: received anti-DDOS COOKIE response, resending '
                            r"IKE_SA_INIT request with COOKIE payload", line)
               for line in res.lines)
    assert "established Child SA" in res.lines[-1]
    assert any(line.startswith('#') and '"k"' in line
               for line in east.whack("--trafficstatus").lines)
    # --ddos-unlimited: no more cookies, whatever the count
    assert east.whack("--ddos-unlimited").lines == [
        "pluto DDoS protection mode set to unlimited"]
    assert east.whack("--briefstatus").lines[0].startswith(
        "State Information: DDoS cookies not required")
    assert east.whack("--ddos-unlimited").lines == [
        "pluto DDoS protection remains in unlimited mode"]


def test_half_open_ceiling_stops_answering(ddos_pair):
    west, east, port = ddos_pair
    assert east.whack("--ddos-unlimited").rc == 0
    silent = 0
    socks = []
    try:
        for data in _flood_requests(45, port):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.5 if len(socks) >= 40 else 10)
            socks.append(s)
            s.sendto(data, ("127.0.0.2", port))
            try:
                s.recvfrom(65536)
            except TimeoutError:
                silent += 1
    finally:
        for s in socks:
            s.close()
    assert silent == 5
    assert _global(east)["current.states.iketype.halfopen"] == "40"
    assert east.whack("--briefstatus").lines[0] == \
        "State Information: DDoS cookies not required, NOT ACCEPTING new IKE connections"
    _wait(lambda: "dropping IKE_SA_INIT request, too many half open IKE SAs (40)"
          in east.logtext())


def test_impair_ddos_cookie_reaches_the_wire(ddos_pair):
    west, east, port = ddos_pair
    assert west.whack("--impair", "ddos-cookie:1").rc == 0
    res = west.whack("--name", "k", "--initiate", "--asynchronous")
    assert res.rc == 0, res
    _wait(lambda: "DOS cookie notification corrupt, or invalid - dropping message"
          in east.logtext())
    assert "IMPAIR: adding unsolicited and mangled DDOS cookie" in west.logtext()
    assert east.whack("--showstates").lines == []


# ---------------------------------------------------------------------- redirect


@pytest.fixture
def trio(tmp_path):
    """west 127.0.0.1 (accept-redirect=yes), east 127.0.0.2 and north 127.0.0.3, both
    gateways for west's 10.8.1.0/24 <-> 10.8.2.0/24 with the ID @east."""
    port = free_udp_port("127.0.0.1")
    west = Pluto(_dir(tmp_path, "west"), addr="127.0.0.1", ikeport=port, secrets=SECRETS)
    east = Pluto(_dir(tmp_path, "east"), addr="127.0.0.2", ikeport=port, secrets=SECRETS)
    north = Pluto(_dir(tmp_path, "north"), addr="127.0.0.3", ikeport=port, secrets=SECRETS)
    daemons = (west, east, north)
    for p in daemons:
        p.start()
    try:
        for p in daemons:
            assert p.whack("--listen").rc == 0
        _add(west, "r", "127.0.0.1", "127.0.0.2", "@west", "@east", "10.8.1.0/24",
             "10.8.2.0/24", "--accept-redirect", "yes")
        for gw, addr in ((east, "127.0.0.2"), (north, "127.0.0.3")):
            _add(gw, "r", addr, "127.0.0.1", "@east", "@west", "10.8.2.0/24", "10.8.1.0/24")
        yield west, east, north
    finally:
        for p in daemons:
            p.stop()


def _tunnels(p: Pluto) -> list[str]:
    return [line for line in p.whack("--trafficstatus").lines if line.startswith("#")]


def test_global_redirect_sends_the_initiator_to_the_next_gateway(trio):
    west, east, north = trio
    assert east.whack("--global-redirect", "yes").lines == [
        "ipsec whack: --global-redirect set to no as there are no active redirect targets"]
    assert east.whack("--global-redirect-to", "127.0.0.3").lines == [
        "set global redirect target to 127.0.0.3"]
    assert east.whack("--global-redirect", "yes").lines == ["set global redirect to yes"]
    assert "global-redirect=yes, global-redirect-to=127.0.0.3" in east.whack("--status").lines
    res = west.whack("--name", "r", "--initiate")
    lines = [re.sub(r"#\d+", "#N", line) for line in res.lines]
    assert '"r" #N: IKE_SA_INIT response redirects to new gateway 127.0.0.3' in lines
    assert '"r" #N: scheduling redirect 1 to 127.0.0.3' in lines
    # the tunnel comes up with north, not with east
    _wait(lambda: len(_tunnels(north)) == 1 and len(_tunnels(west)) == 1)
    assert _tunnels(east) == []
    assert _global(east)["total.ike.ikev2.redirect.completed"] == "1"
    log = north.logtext()
    assert re.search(r"processing IKE_SA_INIT request from 127\.0\.0\.1:UDP/\d+ containing "
                     r"\S*N\(REDIRECTED_FROM\)", log), log
    # now north sends it back to east by an INFORMATIONAL (active redirect)
    assert east.whack("--global-redirect", "no").lines == ["set global redirect to 'no'"]
    res = north.whack("--name", "r", "--redirect-to", "127.0.0.2")
    assert res.rc == 0, res
    assert res.lines == ['redirections sent for 1 tunnels of connection "r"']
    _wait(lambda: len(_tunnels(east)) == 1 and not _tunnels(north))
    assert "INFORMATIONAL response redirects to new gateway 127.0.0.2" in west.logtext()
    _wait(lambda: len(_tunnels(west)) == 1)
    assert north.whack("--name", "r", "--redirect-to", "127.0.0.2").lines == [
        'no active tunnels found for connection "r"']


def test_send_redirect_in_ike_auth(trio):
    west, east, north = trio
    assert east.whack("--name", "r", "--delete").rc == 0
    _add(east, "r", "127.0.0.2", "127.0.0.1", "@east", "@west", "10.8.2.0/24", "10.8.1.0/24",
         "--send-redirect", "yes", "--redirect-to", "127.0.0.3")
    res = west.whack("--name", "r", "--initiate")
    lines = [re.sub(r"#\d+", "#N", line) for line in res.lines]
    assert '"r" #N: IKE_AUTH response redirects to new gateway 127.0.0.3' in lines, res
    _wait(lambda: len(_tunnels(north)) == 1 and len(_tunnels(west)) == 1)
    # east authenticated west but made no Child SA, and west deleted the IKE SA
    _wait(lambda: east.whack("--showstates").lines == [])
    assert _tunnels(east) == []


def test_force_busy_and_config_ddos_mode(tmp_path):
    busy = Pluto(_dir(tmp_path, "busy"), extra=["--force-busy"]).start()
    conf = tmp_path / "unlimited.conf"
    conf.write_text("config setup\n\tddos-mode=unlimited\n\tddos-ike-threshold=0\n"
                    "\tglobal-redirect=yes\n")
    calm = Pluto(_dir(tmp_path, "calm"), extra=["--config", str(conf)]).start()
    try:
        assert busy.whack("--briefstatus").lines[0].startswith(
            "State Information: DDoS cookies REQUIRED")
        assert any("ddos-mode=busy" in line for line in busy.whack("--status").lines)
        assert busy.whack("--ddos-auto").lines == ["pluto DDoS protection mode set to auto"]
        assert busy.whack("--briefstatus").lines[0].startswith(
            "State Information: DDoS cookies not required")
        # threshold 0 would demand cookies at once in auto mode; unlimited never does
        assert calm.whack("--briefstatus").lines[0].startswith(
            "State Information: DDoS cookies not required")
        assert any("ddos-cookies-threshold=0, ddos-max-halfopen=50000, ddos-mode=unlimited"
                   in line for line in calm.whack("--status").lines)
        # global-redirect=yes with nowhere to redirect to is switched off at startup
        assert "WARNING: ignoring global-redirect=yes as global-redirect-to= is empty" \
            in calm.logtext()
        assert "global-redirect=no, global-redirect-to=<unset>" in calm.whack("--status").lines
        assert calm.whack("--ddos-auto").rc == 0
        assert calm.whack("--briefstatus").lines[0].startswith(
            "State Information: DDoS cookies REQUIRED")
    finally:
        busy.stop()
        calm.stop()
