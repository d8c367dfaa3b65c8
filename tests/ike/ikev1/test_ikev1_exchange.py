"""Main Mode + Quick Mode between two IKEv1 engines: states, log lines, wire shape,
matching keys, retransmission, failures."""

from __future__ import annotations

import re

import pytest
from ikev1_harness import EAST, WEST, Net, Psks, east_policy, make_policy

from pyswan.ike.ikev1 import states as S
from pyswan.ike.ikev1.codec import KE, SA, VendorID, decode_message
from pyswan.ike.ikev1.constants import (
    VID_DPD,
    VID_RFC3947,
    EncapMode,
    Exchange,
    Flag,
    IpsecAttr,
)
from pyswan.ike.ikev1.constants import Payload as PT
from pyswan.ike.ikev2 import ChildEstablished, IkeEstablished, InitiateDone, SaDeleted


def _lines(side) -> list[str]:
    return side.lines()


def _child(net: Net, side: str = "west"):
    s = net.side(side)
    (serial,) = [a.serial for a in s.of(ChildEstablished)]
    return s.engine.children[serial]


def test_main_mode_and_quick_mode_establish_with_libreswan_lines() -> None:
    net = Net()
    serial = net.up()
    west = _lines(net.west)
    assert west[:6] == [
        "#1: initiating IKEv1 Main Mode connection",
        "#1: sent Main Mode request",
        "#1: sent Main Mode I2",
        "#1: sent Main Mode I3",
        "#1: Peer ID is FQDN: '@east'",
        "#1: ISAKMP SA established {auth=PRESHARED_KEY cipher=AES_CBC_256 "
        "integ=HMAC_SHA2_256 group=MODP2048}",
    ]
    assert re.fullmatch(
        r"#2: initiating Quick Mode IKEv1\+PSK\+ENCRYPT\+TUNNEL\+PFS\+UP\+IKE_FRAG_ALLOW"
        r"\+ESN_NO\+ESN_YES \{using isakmp#1 msgid:[0-9a-f]{8} proposal=AES_CBC-HMAC_SHA1_96, "
        r".* pfsgroup=MODP2048 10\.1\.0\.0/24===10\.2\.0\.0/24\}", west[6])
    assert west[7] == "#2: sent Quick Mode request"
    assert re.fullmatch(r"#2: IPsec SA established tunnel mode \{ESP=>0x[0-9a-f]{8} "
                        r"<0x[0-9a-f]{8} xfrm=AES_CBC_128-HMAC_SHA1_96 DPD=passive\}", west[8])
    east = _lines(net.east)
    assert east[:5] == ["#1: responding to Main Mode", "#1: sent Main Mode R1",
                        "#1: sent Main Mode R2", "#1: Peer ID is FQDN: '@west'",
                        west[5]]
    assert net.west.engine.isakmp_sas[serial].state is S.MAIN_I4
    assert net.east.engine.isakmp_sas[1].state is S.MAIN_R3
    assert _child(net, "west").state is S.QUICK_I2
    assert _child(net, "east").state is S.QUICK_R2
    assert [d.ok for d in net.west.done] == [True]
    assert [e.peer_id for e in net.west.of(IkeEstablished)] == ["@east"]


def test_wire_shape_of_the_nine_messages() -> None:
    net = Net()
    net.up()
    msgs = [decode_message(d) for _, d in net.sent]
    assert [m.header.exchange for m in msgs] == [Exchange.MAIN] * 6 + [Exchange.QUICK] * 3
    assert [bool(m.header.flags & Flag.ENCRYPTION) for m in msgs] == [False] * 4 + [True] * 5
    assert [d for d, _ in net.sent] == ["west->east", "east->west"] * 4 + ["west->east"]
    mm1, mm2, mm3, mm4 = msgs[:4]
    assert isinstance(mm1.payloads[0], SA) and len(mm1.payloads[0].proposals[0].transforms) > 1
    assert len(mm2.payloads[0].proposals[0].transforms) == 1  # the one chosen, echoed
    vids = {p.data for p in mm1.payloads if isinstance(p, VendorID)}
    assert {VID_RFC3947, VID_DPD} <= vids
    # RFC 3947 NAT-D (payload 20) follows KE and Nonce, twice each way
    for m in (mm3, mm4):
        assert [type(p).__name__ for p in m.payloads] == ["KE", "Nonce", "NatD", "NatD"]
        assert len(m.payloads[0].data) == 256  # MODP2048
    assert mm2.header.rcookie != bytes(8) and mm1.header.rcookie == bytes(8)
    assert len({m.header.message_id for m in msgs[6:]}) == 1 and msgs[6].header.message_id
    assert mm3.header.next_payload == PT.KE


def test_child_keys_match_crosswise() -> None:
    net = Net()
    net.up()
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert (w.spi_in, w.spi_out) == (e.spi_out, e.spi_in)
    assert w.encr_key_out == e.encr_key_in and w.encr_key_in == e.encr_key_out
    assert w.integ_key_out == e.integ_key_in and w.integ_key_in == e.integ_key_out
    assert w.encr_key_in != w.encr_key_out  # each direction has its own KEYMAT
    assert len(w.encr_key_in) == 16 and len(w.integ_key_in) == 20
    assert (w.encr_name, w.integ_name, w.trunc_bits) == ("cbc(aes)", "hmac(sha1)", 96)
    assert w.local_ts == e.remote_ts and w.remote_ts == e.local_ts
    assert str(w.local_ts[0]) == "10.1.0.0/24" and w.mode == "tunnel" and not w.encap


@pytest.mark.parametrize("pfs", [True, False])
def test_quick_mode_with_and_without_pfs(pfs: bool) -> None:
    net = Net(make_policy(pfs=pfs), east_policy(pfs=pfs))
    net.up()
    qm1 = decode_message(net.sent[6][1])
    assert qm1.encrypted  # (KE presence shows in the child state)
    w, e = _child(net, "west"), _child(net, "east")
    assert (w.group is not None) == pfs and (e.group is not None) == pfs
    assert (w.gqm_xy == e.gqm_xy) and bool(w.gqm_xy) == pfs
    (wk,) = net.west.installed.values()
    (ek,) = net.east.installed.values()
    assert wk.encr_key_out == ek.encr_key_in
    assert ("pfsgroup=MODP2048" in _lines(net.west)[6]) == pfs


@pytest.mark.parametrize("ike,esp,story,xfrm", [
    ("3des-sha1;modp2048", "3des-sha1", "cipher=3DES_CBC integ=HMAC_SHA1 group=MODP2048",
     "3DES_CBC-HMAC_SHA1_96"),
    ("aes128-md5;modp1536", "aes256-sha2_512", "cipher=AES_CBC_128 integ=HMAC_MD5 "
     "group=MODP1536", "AES_CBC_256-HMAC_SHA2_512_256"),
    ("aes256-sha2_512;dh19", "aes_gcm256", "cipher=AES_CBC_256 integ=HMAC_SHA2_512 group=DH19",
     "AES_GCM_16_256"),
    ("aes-sha2;dh31", "aes-sha2_256", "cipher=AES_CBC_256 integ=HMAC_SHA2_256 group=DH31",
     "AES_CBC_128-HMAC_SHA2_256_128"),
])
def test_algorithms(ike: str, esp: str, story: str, xfrm: str) -> None:
    net = Net(make_policy(ike=ike, esp=esp), east_policy(ike=ike, esp=esp))
    net.up()
    assert any(story in line for line in _lines(net.west))
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.algorithms == xfrm and w.encr_key_out == e.encr_key_in
    assert w.integ_key_out == e.integ_key_in


def test_wrong_psk_fails_with_libreswan_lines() -> None:
    net = Net(east_psk=Psks(default=b"not the same"))
    net.initiate()
    net.run()
    east = _lines(net.east)
    assert any("probable authentication failure (mismatch of preshared secrets?): "
               "malformed payload in packet" in x
               or "received Hash Payload does not match computed value" in x for x in east)
    assert not net.west.of(ChildEstablished) and not net.east.of(IkeEstablished)
    net.advance(120)
    west = _lines(net.west)
    assert any(re.fullmatch(r"#1: STATE_MAIN_I3: 60 second timeout exceeded after \d+ "
                            r"retransmits\.  Possible authentication failure: no acceptable "
                            r"response to our first encrypted message", x) for x in west)
    assert [d.ok for d in net.west.done] == [False]
    assert not net.west.engine.isakmp_sas
    # the responder gives up on its half-open SA too
    net.advance(300)
    assert not net.east.engine.isakmp_sas


def test_no_psk_for_the_peer() -> None:
    net = Net(west_psk=Psks(default=None))
    net.up()
    assert any("Can't authenticate: no preshared key found for `@west' and `@east'" in x
               for x in _lines(net.west))
    assert [d.ok for d in net.west.done] == [False]


def test_lost_message_is_retransmitted() -> None:
    net = Net()
    dropped = []

    def drop(direction: str, data: bytes) -> bool:
        if direction == "east->west" and not dropped:
            dropped.append(data)
            return True
        return False

    net.drop = drop
    net.initiate()
    net.run()
    assert not net.west.of(ChildEstablished)
    net.advance(1)
    assert "#1: STATE_MAIN_I1: retransmission; will wait 0.5 seconds for response" in \
        _lines(net.west)
    assert "#1: retransmitting in response to duplicate packet; already STATE_MAIN_R1" in \
        _lines(net.east)
    assert net.west.of(ChildEstablished) and net.east.of(ChildEstablished)


def test_duplicate_main_mode_i3_gets_the_same_answer() -> None:
    net = Net()
    net.up()
    mm5 = net.sent[4][1]
    mm6 = net.sent[5][1]
    before = len(net.queue)
    net.inject(net.east, mm5)
    assert len(net.queue) == before + 1 and net.queue[-1][1].data == mm6
    assert net.east.engine.isakmp_sas[1].state is S.MAIN_R3


def test_lost_quick_mode_confirmation_is_recovered() -> None:
    net = Net()
    net.drop = lambda direction, data: data == (net.sent[-1][1] if len(net.sent) == 9
                                                 else None)
    net.up()
    assert len(net.west.of(ChildEstablished)) == 1 and not net.east.of(ChildEstablished)
    net.drop = lambda direction, data: False
    net.advance(2)  # the responder repeats its reply; the initiator repeats HASH(3)
    assert len(net.east.of(ChildEstablished)) == 1
    assert any("retransmitting in response to duplicate packet; already STATE_QUICK_I2" in x
               for x in _lines(net.west))


def test_no_acceptable_ike_proposal() -> None:
    net = Net(make_policy(ike="aes128-sha1;modp2048"),
              east_policy(ike="3des-md5;modp1536"))
    net.up()
    assert any("no acceptable Oakley Transform" in x for x in _lines(net.east))
    assert "sending notification NO_PROPOSAL_CHOSEN to 192.0.2.1:UDP/500" in _lines(net.east)
    assert "#1: ignoring unauthenticated informational payload NO_PROPOSAL_CHOSEN" in \
        _lines(net.west)
    assert not net.east.engine.isakmp_sas


def test_no_acceptable_esp_proposal() -> None:
    net = Net(make_policy(esp="aes128-sha1"), east_policy(esp="3des-md5"))
    net.up()
    assert net.west.of(IkeEstablished) and not net.west.of(ChildEstablished)
    assert any("no acceptable Quick Mode proposal" in x for x in _lines(net.east))
    assert any("ignoring informational payload NO_PROPOSAL_CHOSEN" in x
               for x in _lines(net.west))
    net.advance(100)
    assert any("STATE_QUICK_I1: 60 second timeout exceeded after" in x and
               "No acceptable response to our first Quick Mode message: perhaps peer likes "
               "no proposal" in x for x in _lines(net.west))
    assert [d.ok for d in net.west.done] == [False]


def test_peer_id_mismatch_is_refused() -> None:
    net = Net(east=east_policy(remote_id="someone-else"))
    net.up()
    assert any("Peer ID FQDN: '@west' does not match the expected FQDN: '@someone-else'"
               in x for x in _lines(net.east))
    assert not net.east.of(IkeEstablished)


def test_subnet_mismatch_in_quick_mode() -> None:
    net = Net(east=east_policy(remote_net="10.9.0.0/24"))
    net.up()
    assert any("cannot respond to IPsec SA request because no connection is known for "
               "10.2.0.0/24===10.1.0.0/24" in x for x in _lines(net.east))
    assert not net.east.of(ChildEstablished)


def test_nat_traversal_floats_to_4500_and_encapsulates() -> None:
    from ipaddress import ip_address
    nat_addr = ip_address("198.51.100.7")
    net = Net(east=east_policy(remote=None))  # a template: the peer hides behind the NAT
    net.nat = {(WEST, 500): (nat_addr, 40000), (WEST, 4500): (nat_addr, 40001)}
    net.up()
    sa_e = net.east.engine.isakmp_sas[1]
    assert sa_e.nat_remote and not sa_e.nat_local
    assert sa_e.remote == (nat_addr, 40001) and sa_e.local == (EAST, 4500)
    assert net.west.engine.isakmp_sas[1].nat_local
    assert any("I am behind NAT" in x for x in _lines(net.west))
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.encap and e.encap and w.encr_key_out == e.encr_key_in
    assert "ESPinUDP=>" in _lines(net.west)[-1]
    # MM5 onwards go between the NAT-T ports
    assert all(route[1][1] == 4500 for route in net.routes[4:])
    assert _child(net).choice.encap == EncapMode.UDP_TUNNEL
    qm_attr = _child(net).choice.transform.attr(IpsecAttr.ENCAPSULATION_MODE)
    assert qm_attr is not None and qm_attr.value == EncapMode.UDP_TUNNEL


def test_responder_without_a_connection_ignores() -> None:
    net = Net(east=east_policy(remote=EAST))  # east expects another peer address
    net.up()
    assert "packet from 192.0.2.1:UDP/500: initial Main Mode message received but no " \
        "connection has been authorized with authby=PSK and xauth=no" in _lines(net.east)
    assert not net.east.engine.isakmp_sas


def test_ke_of_the_wrong_size_is_rejected() -> None:
    net = Net()
    net.initiate()
    net.step()  # MM1
    net.step()  # MM2
    src, send = net.queue.popleft()  # MM3
    msg = decode_message(send.data)
    ke = next(p for p in msg.payloads if isinstance(p, KE))
    ke.data = ke.data[:-1]
    from pyswan.ike.ikev1.codec import encode_message
    net.inject(net.east, encode_message(msg.header, msg.payloads))
    assert "#1: KE has 255 byte DH public value; 256 required" in _lines(net.east)
    assert "sending notification INVALID_KEY_INFORMATION to 192.0.2.1:UDP/500" in \
        _lines(net.east)
    assert net.east.engine.isakmp_sas[1].state is S.MAIN_R1


def test_initiate_done_and_sa_deleted_on_timeout() -> None:
    net = Net()
    net.drop = lambda direction, data: True
    net.initiate()
    net.run()
    net.advance(100)
    assert any("STATE_MAIN_I1: 60 second timeout exceeded after" in x and "No response (or "
               "no acceptable response) to our first IKEv1 message" in x
               for x in _lines(net.west))
    assert [a.kind for a in net.west.of(SaDeleted)] == ["ike"]
    assert net.west.done == [InitiateDone(1, False, net.west.done[0].rc)]
    assert net.west.done[0].rc == 51  # RC_NORETRANSMISSION


def test_libreswan_timeout_arithmetic_seven_retransmits() -> None:
    """0.5 s, then doubling from the second retransmit: 7 retransmits fit in 60 s."""
    net = Net()
    net.drop = lambda direction, data: True
    net.initiate()
    net.run()
    net.advance(100)
    waits = [x.split("will wait ")[1] for x in _lines(net.west) if "will wait" in x]
    assert waits == [f"{w} seconds for response" for w in
                     ("0.5", "1", "2", "4", "8", "16", "32")]
    assert "#1: STATE_MAIN_I1: 60 second timeout exceeded after 7 retransmits.  No response " \
           "(or no acceptable response) to our first IKEv1 message" in _lines(net.west)
