"""IKEv1 between two real pluto daemons (127.0.0.1 and 127.0.0.2, in-memory kernel):
Main Mode + Quick Mode with PFS, Aggressive Mode, XAUTH + ModeCfg, delete, as
``ipsec auto`` users drive them from ipsec.conf (``ikev1-policy=accept``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS = ('@west @east : PSK "an IKEv1 pre-shared key"\n'
           '@xroad : XAUTH "road password"\n')

CONF = """\
config setup
    ikev1-policy=accept

conn %default
    keyexchange=ikev1
    left=127.0.0.1
    leftid=@west
    right=127.0.0.2
    rightid=@east
    authby=secret

conn mm
    leftsubnet=10.21.1.0/24
    rightsubnet=10.21.2.0/24
    ike=aes256-sha2_256-modp2048
    esp=aes128-sha1-modp2048
    pfs=yes

conn aggr
    aggressive=yes
    leftsubnet=10.22.1.0/24
    rightsubnet=10.22.2.0/24
    ike=aes256-sha2_256-modp2048

conn xauth
    rightsubnet=10.23.2.0/24
    leftxauthclient=yes
    leftusername=xroad
    leftmodecfgclient=yes
    rightxauthserver=yes
    rightmodecfgserver=yes
    modecfgpull=yes
    xauthby=alwaysok
    {xauth}
"""

# west (left) is the XAUTH/ModeCfg client; east (right) the server, leasing from a pool
XAUTH_WEST = ""
XAUTH_EAST = "leftaddresspool=10.23.1.5-10.23.1.5\n    modecfgdomains=road.example\n" \
             "    modecfgbanner=welcome"


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture()
def pair(tmp_path: Path):
    port = free_udp_port("127.0.0.1")
    plutos = []
    for name, addr, xauth in (("west", "127.0.0.1", XAUTH_WEST), ("east", "127.0.0.2",
                                                                   XAUTH_EAST)):
        d = tmp_path / name
        d.mkdir()
        conf = d / "ipsec.conf"
        conf.write_text(CONF.format(xauth=xauth))
        p = Pluto(d, addr=addr, ikeport=port, secrets=SECRETS,
                  extra=["--config", str(conf)]).start()
        p.conf = conf  # type: ignore[attr-defined]
        assert p.whack("--listen").rc == 0  # (--config listens too, asynchronously)
        plutos.append(p)
    yield plutos[0], plutos[1]
    for p in plutos:
        p.stop()


def _add(p: Pluto, name: str) -> None:
    res = p.ipsec("--config", str(p.conf), "add", name)  # type: ignore[attr-defined]
    assert res.rc == 0, res
    assert res.lines == [f'"{name}": added oriented IKEv1 connection'], res


def _san(lines: list[str]) -> list[str]:
    return [re.sub(r"0x[0-9a-f]{8}", "0xESPESP", x) for x in lines]


def test_main_mode_and_quick_mode_with_pfs(pair):
    west, east = pair
    for p in (west, east):
        _add(p, "mm")
    res = west.ipsec("up", "mm")
    assert res.rc == 0, res
    lines = _san(res.lines)
    assert lines[:4] == [
        '"mm" #1: initiating IKEv1 Main Mode connection',
        '"mm" #1: sent Main Mode request',
        '"mm" #1: sent Main Mode I2',
        '"mm" #1: sent Main Mode I3',
    ]
    assert "\"mm\" #1: Peer ID is FQDN: '@east'" in lines
    assert '"mm" #1: ISAKMP SA established {auth=PRESHARED_KEY cipher=AES_CBC_256 ' \
        "integ=HMAC_SHA2_256 group=MODP2048}" in lines
    assert any(x.startswith('"mm" #2: initiating Quick Mode IKEv1+PSK+ENCRYPT+TUNNEL+PFS')
               for x in lines), lines
    # (IKEv1 does not append the PFS group to xfrm=, unlike IKEv2)
    assert lines[-2:] == ['"mm" #2: sent Quick Mode request',
                          '"mm" #2: IPsec SA established tunnel mode {ESP=>0xESPESP '
                          "<0xESPESP xfrm=AES_CBC_128-HMAC_SHA1_96 DPD=passive}"], lines
    # both sides: one ISAKMP SA, one IPsec SA with mirrored SPIs
    west_t = west.whack("--trafficstatus").lines
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    east_t = east.whack("--trafficstatus").lines
    assert len(west_t) == 1 and west_t[0].startswith('#2: "mm", type=ESP'), west_t
    assert "id='@east'" in west_t[0] and "id='@west'" in east_t[0]
    states = west.whack("--showstates").lines
    assert any(x.startswith('#1: "mm":') and "ISAKMP SA established" in x for x in states), \
        states
    assert any(x.startswith('#2: "mm":') and "IPsec SA established" in x for x in states), \
        states
    spis_w = re.findall(r"esp\.([0-9a-f]+)@", "\n".join(west.whack("--status").lines))
    spis_e = re.findall(r"esp\.([0-9a-f]+)@", "\n".join(east.whack("--status").lines))
    assert spis_w and sorted(spis_w) == sorted(spis_e)

    # delete from the initiator: the responder hears of it
    res = west.ipsec("down", "mm")
    assert res.rc == 0, res
    _wait(lambda: east.whack("--trafficstatus").lines == [])
    _wait(lambda: not [x for x in east.whack("--showstates").lines if x.startswith("#")])


def test_aggressive_mode(pair):
    west, east = pair
    for p in (west, east):
        _add(p, "aggr")
    res = west.ipsec("up", "aggr")
    assert res.rc == 0, res
    lines = res.lines
    assert lines[0] == '"aggr" #1: initiating IKEv1 Aggressive Mode connection', lines
    assert any("ISAKMP SA established" in x for x in lines), lines
    assert any("IPsec SA established tunnel mode" in x for x in lines), lines
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)


def test_xauth_and_modecfg_lease(pair):
    west, east = pair
    for p in (west, east):
        _add(p, "xauth")
    res = west.ipsec("up", "xauth")
    assert res.rc == 0, res
    text = "\n".join(res.lines)
    assert "XAUTH: Answering XAUTH challenge with user='xroad'" in text, text
    assert '"xauth" #1: received IPv4 lease 10.23.1.5' in res.lines, text
    assert "IPsec SA established tunnel mode" in text, text
    assert "XAUTH: User xroad: Authentication Successful" in east.logtext()
    # both ends show the XAUTH user and the ModeCfg lease in trafficstatus
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
    for p in (west, east):
        line = p.whack("--trafficstatus").lines[0]
        assert line.startswith('#') and '"xauth", username=xroad, type=ESP' in line, line
        assert line.endswith("lease=10.23.1.5/32"), line
    # the client's tunnel is its lease; the server's banner reached it (Cisco Unity)
    assert "10.23.1.5/32===10.23.2.0/24" in text
    assert '"xauth" #1: received MODECFG_BANNER: welcome' in res.lines, res.lines


@pytest.mark.parametrize("policy", ["drop", "reject"])
def test_responder_ikev1_policy_drop_and_reject(tmp_path: Path, policy: str):
    """Without ikev1-policy=accept a responder never negotiates IKEv1: drop ignores the
    packets (logged, rate limited), reject answers INVALID_MAJOR_VERSION in the clear."""
    port = free_udp_port("127.0.0.1")
    west_conf, east_conf = tmp_path / "west.conf", tmp_path / "east.conf"
    west_conf.write_text(CONF.format(xauth=XAUTH_WEST).replace(
        "conn mm\n", "conn mm\n    retransmit-timeout=2s\n"))
    east_conf.write_text(f"config setup\n    ikev1-policy={policy}\n")
    plutos = []
    try:
        for name, addr, conf in (("west", "127.0.0.1", west_conf),
                                 ("east", "127.0.0.2", east_conf)):
            d = tmp_path / name
            d.mkdir()
            plutos.append(Pluto(d, addr=addr, ikeport=port, secrets=SECRETS,
                                extra=["--config", str(conf)]).start())
            assert plutos[-1].whack("--listen").rc == 0
        west, east = plutos
        assert west.ipsec("--config", str(west_conf), "add", "mm").rc == 0
        # east cannot even load an IKEv1 connection under this policy
        res = east.ipsec("--config", str(west_conf), "add", "mm")
        assert res.rc != 0 and "ikev1-policy" in res.out, res
        res = west.ipsec("up", "mm")
        assert res.rc != 0, res
        assert "STATE_MAIN_I1: 2 second timeout exceeded" in res.out, res
        log = east.logtext()
        if policy == "drop":
            assert "ignoring IKEv1 packet as global policy is set to silently drop all " \
                "IKEv1 packets" in log, log
            assert "INVALID_MAJOR_VERSION" not in log
        else:
            assert "rejecting IKEv1 packet as global policy is set to reject all IKEv1 " \
                "packets" in log, log
            assert "sending notification INVALID_MAJOR_VERSION to 127.0.0.1" in log, log
            assert "INVALID_MAJOR_VERSION" in west.logtext()
        assert not [x for x in east.whack("--showstates").lines if x.startswith("#")]
    finally:
        for p in plutos:
            p.stop()


def test_xauth_prompts_answered_through_whack(tmp_path: Path):
    """No XAUTH secret and no leftusername= on the client: pluto prompts the whack that
    started the negotiation for both, and whack answers from --xauthuser/--xauthpass (a
    wrong password is refused by the server)."""
    port = free_udp_port("127.0.0.1")
    plutos = []
    try:
        for name, addr, xauth, secrets in (
                ("west", "127.0.0.1", XAUTH_WEST, '@west @east : PSK "an IKEv1 pre-shared key"\n'),
                ("east", "127.0.0.2", XAUTH_EAST.replace("xauthby=alwaysok", ""), SECRETS)):
            d = tmp_path / name
            d.mkdir()
            conf = d / "ipsec.conf"
            conf.write_text(CONF.format(xauth=xauth).replace("    leftusername=xroad\n", "")
                            .replace("xauthby=alwaysok", "xauthby=file"))
            (d / "passwd").write_text("xroad:road password:xauth\n")
            p = Pluto(d, addr=addr, ikeport=port, secrets=secrets,
                      extra=["--config", str(conf), "--ipsecdir", str(d)]).start()
            p.conf = conf  # type: ignore[attr-defined]
            assert p.whack("--listen").rc == 0
            plutos.append(p)
        west, east = plutos
        for p in plutos:
            _add(p, "xauth")
        res = west.whack("--name", "xauth", "--initiate", "--xauthuser", "xroad",
                         "--xauthpass", "road password")
        assert res.rc == 0, res
        text = "\n".join(res.lines)
        assert '"xauth" #1: prompt for Username:' in text, text
        assert '"xauth" #1: prompt for Password:' in text, text
        assert "XAUTH: Answering XAUTH challenge with user='xroad'" in text, text
        assert "IPsec SA established tunnel mode" in text, text
        assert "XAUTH: User xroad: Authentication Successful" in east.logtext()
        assert "road password" not in west.logtext() + east.logtext()
        # a wrong password: the server says no and the SA goes
        assert west.whack("--name", "xauth", "--delete").rc == 0
        _add(west, "xauth")
        res = west.whack("--name", "xauth", "--initiate", "--xauthuser", "xroad",
                         "--xauthpass", "not it")
        assert '"xauth" #3: XAUTH: Authentication failed' in res.lines, res
        assert "IPsec SA established" not in res.out
        assert "XAUTH: User xroad: Authentication Failed" in east.logtext()
        assert west.whack("--trafficstatus").lines == []
    finally:
        for p in plutos:
            p.stop()


def test_rekey_ike_and_child_from_whack(pair):
    """--rekey-ike: a new phase 1 replaces the ISAKMP SA and the IPsec SA moves over;
    --rekey-child: a new Quick Mode replaces the IPsec SA."""
    west, east = pair
    for p in (west, east):
        _add(p, "mm")
    assert west.ipsec("up", "mm").rc == 0
    res = west.whack("--name", "mm", "--rekey-ike")
    assert res.rc == 0, res
    assert res.lines[0] == '"mm" #3: initiating IKEv1 Main Mode connection to replace #1', \
        res.lines
    assert any(x.startswith('"mm" #3: ISAKMP SA established') for x in res.lines), res.lines
    _wait(lambda: not any(x.startswith("#1:") for x in west.whack("--showstates").lines))
    states = west.whack("--showstates").lines
    assert any(x.startswith('#2: "mm":') and "ISAKMP SA #3" in x for x in states), states
    res = west.whack("--name", "mm", "--rekey-child")
    assert res.rc == 0, res
    assert any("#4: IPsec SA established tunnel mode" in x for x in res.lines), res.lines
    _wait(lambda: [x.split(",")[0] for x in west.whack("--trafficstatus").lines]
          == ['#4: "mm"'])
    _wait(lambda: len(east.whack("--trafficstatus").lines) == 1)
