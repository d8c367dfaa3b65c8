"""XAUTH and ModeCfg between an IKEv1 road warrior (west, initiator) and a server (east)."""

from __future__ import annotations

from ipaddress import IPv4Address

from ikev1_harness import LEASE, Net, Users, make_policy
from ikev1_harness import xauth_net as _net

from pyswan.ike.ikev1 import states as S
from pyswan.ike.ikev1.actions import ModeCfgLease
from pyswan.ike.ikev1.codec import decode_message
from pyswan.ike.ikev1.constants import AuthMethod, Exchange, IkeAttr
from pyswan.ike.ikev2 import ChildEstablished, SaDeleted


def test_xauth_then_quick_mode() -> None:
    net = _net()
    net.up()
    west, east = net.west.lines(), net.east.lines()
    details = "{auth=PRESHARED_KEY cipher=AES_CBC_256 integ=HMAC_SHA2_256 group=MODP2048}"
    assert f"#1: XAUTH client - possibly awaiting CFG_request {details}" in west
    assert "#1: XAUTH: Answering XAUTH challenge with user='xroad'" in west
    assert f"#1: XAUTH client - possibly awaiting CFG_set {details}" in west
    assert "#1: XAUTH: Successfully Authenticated" in west
    assert "#1: XAUTH: Sending Username/Password request (XAUTH_R0)" in east
    assert "#1: XAUTH: User xroad: Authentication Successful" in east
    assert west.index("#1: XAUTH: Successfully Authenticated") < next(
        i for i, x in enumerate(west) if "initiating Quick Mode" in x)
    assert len(net.east.of(ChildEstablished)) == 1
    assert net.west.engine.isakmp_sas[1].state is S.MAIN_I4
    assert net.east.engine.isakmp_sas[1].state is S.MAIN_R3
    mm1 = decode_message(net.sent[0][1])
    auth = mm1.payloads[0].proposals[0].transforms[0].attr(IkeAttr.AUTH_METHOD)
    assert auth is not None and auth.value == AuthMethod.XAUTH_INIT_PRESHARED
    xchg = [decode_message(d).header.exchange for _, d in net.sent]
    assert xchg.count(Exchange.MODE_CFG) == 4
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.encr_key_out == e.encr_key_in
    assert [d.ok for d in net.west.done] == [True]


def test_xauth_wrong_password_deletes_the_sa() -> None:
    net = _net(client_password=b"wrong")
    net.up()
    assert "#1: XAUTH: User xroad: Authentication Failed: Incorrect Username or Password" in \
        net.east.lines()
    assert "#1: XAUTH: Authentication failed" in net.west.lines()
    assert not net.east.engine.isakmp_sas and not net.west.engine.isakmp_sas
    assert not net.west.of(ChildEstablished) and not net.east.of(ChildEstablished)
    assert "ike" in [a.kind for a in net.west.of(SaDeleted)]


def test_xauth_server_refuses_a_plain_psk_client() -> None:
    net = _net()
    net = Net(make_policy(), net.east.engine.policies.candidates(
        net.east.addr, net.west.addr)[0], east_psk=Users({"xroad": b"pw"}))
    net.up()
    # XAUTH must match exactly (Libreswan's match_v1_connection())
    assert "packet from 192.0.2.1:UDP/500: initial Main Mode message received but no " \
        "connection has been authorized with authby=PSK and xauth=no" in net.east.lines()
    assert not net.east.engine.isakmp_sas


def test_xauth_and_modecfg_pull() -> None:
    net = _net(modecfg=True)
    net.up()
    west = net.west.lines()
    assert "#1: modecfg: Sending IP request (MODECFG_I1)" in west
    assert f"#1: received IPv4 lease {LEASE}" in west
    assert f"#1: modecfg: sending IPv4 address {LEASE} to the client" in net.east.lines()
    (lease,) = net.west.of(ModeCfgLease)
    assert lease.address == IPv4Address(LEASE) and lease.dns == (IPv4Address("192.0.2.53"),)
    (w,) = net.west.installed.values()
    assert str(w.local_ts[0]) == f"{LEASE}/32"  # the tunnel starts at the lease
    assert len(net.east.of(ChildEstablished)) == 1


def test_modecfg_push_without_xauth() -> None:
    net = _net(modecfg=True, pull=False, xauth=False)
    net.up()
    assert f"#1: received IPv4 lease {LEASE}" in net.west.lines()
    assert net.east.engine.isakmp_sas[1].state is S.MODE_CFG_R2
    assert len(net.east.of(ChildEstablished)) == 1


def test_lost_xauth_ack_is_answered_again() -> None:
    net = _net(modecfg=True)
    acks: list[bytes] = []

    def drop(direction: str, data: bytes) -> bool:
        m = decode_message(data)
        # the client's 2nd Transaction message is the XAUTH ACK: lose it once
        if direction == "west->east" and m.header.exchange == Exchange.MODE_CFG:
            acks.append(data)
            return len(acks) == 2
        return False

    net.drop = drop
    net.up()
    net.advance(5)
    assert len(net.east.of(ChildEstablished)) == 1
    assert any("retransmitting in response to duplicate packet" in x for x in net.west.lines())
