"""Aggressive Mode, Informational Delete (ISAKMP and IPsec SA) and DPD between two
IKEv1 engines."""

from __future__ import annotations

import re

from ikev1_harness import WEST, Net, Psks, east_policy, make_policy

from pyswan.ike.ikev1 import states as S
from pyswan.ike.ikev1.codec import ID, KE, SA, Hash, Nonce, decode_message
from pyswan.ike.ikev1.constants import Exchange, Flag
from pyswan.ike.ikev2 import (
    ChildEstablished,
    IkeEstablished,
    ParentChanged,
    RemoveChild,
    SaDeleted,
)


def _aggr() -> Net:
    return Net(make_policy(aggressive=True, ike="aes256-sha2;modp2048"),
               east_policy(aggressive=True, ike="aes256-sha2;modp2048"))


def test_aggressive_mode_then_quick_mode() -> None:
    net = _aggr()
    net.up()
    west, east = net.west.lines(), net.east.lines()
    assert west[:5] == [
        "#1: initiating IKEv1 Aggressive Mode connection",
        "#1: sent Aggressive Mode request",
        "#1: Peer ID is FQDN: '@east'",
        "#1: sent Aggressive Mode I2",
        "#1: ISAKMP SA established {auth=PRESHARED_KEY cipher=AES_CBC_256 "
        "integ=HMAC_SHA2_256 group=MODP2048}",
    ]
    assert east[:4] == ["#1: responding to Aggressive Mode", "#1: Peer ID is FQDN: '@west'",
                        "#1: sent Aggressive Mode response, expecting confirmation",
                        west[4]]
    assert net.west.engine.isakmp_sas[1].state is S.AGGR_I2
    assert net.east.engine.isakmp_sas[1].state is S.AGGR_R2
    msgs = [decode_message(d) for _, d in net.sent]
    assert [m.header.exchange for m in msgs[:3]] == [Exchange.AGGRESSIVE] * 3
    assert [bool(m.header.flags & Flag.ENCRYPTION) for m in msgs[:3]] == [False, False, True]
    am1, am2 = msgs[0].payloads, msgs[1].payloads
    assert [type(p) for p in am1[:4]] == [SA, KE, Nonce, ID]
    assert [type(p) for p in am2[:5]] == [SA, KE, Nonce, ID, Hash]
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.encr_key_out == e.encr_key_in and w.integ_key_in == e.integ_key_out
    assert [d.ok for d in net.west.done] == [True]


def test_aggressive_mode_wrong_psk_fails_at_the_initiator() -> None:
    net = Net(make_policy(aggressive=True, ike="aes256-sha2;modp2048"),
              east_policy(aggressive=True, ike="aes256-sha2;modp2048"),
              east_psk=Psks(default=b"different"))
    net.up()
    assert "#1: received Hash Payload does not match computed value" in net.west.lines()
    assert not net.west.of(IkeEstablished) and not net.west.engine.isakmp_sas
    assert [d.ok for d in net.west.done] == [False]


def test_aggressive_initiator_needs_an_aggressive_responder() -> None:
    net = Net(make_policy(aggressive=True), east_policy())
    net.up()
    assert "packet from 192.0.2.1:UDP/500: initial Aggressive Mode message from " \
        "192.0.2.1:UDP/500 but no (wildcard) connection has been configured with authby " \
        "PSK" in net.east.lines(), net.east.lines()
    assert not net.east.engine.isakmp_sas


def test_delete_ipsec_sa() -> None:
    net = Net()
    net.up()
    (child,) = net.west.engine.children.values()
    spi_in = child.spi_in
    net.handle(net.west, net.west.engine.delete_child(child.serial, net.now))
    net.run()
    assert "#2: deleting IPsec SA (STATE_QUICK_I2) and sending notification" in \
        net.west.lines()
    assert f"#1: received Delete SA(0x{spi_in:08x}) payload: deleting IPsec State #2" in \
        net.east.lines()
    assert not net.east.engine.children and not net.west.engine.children
    assert net.east.of(RemoveChild) and net.west.of(RemoveChild)
    assert net.east.engine.isakmp_sas[1].established  # the ISAKMP SA stays
    # and a new Quick Mode can run over it
    net.handle(net.west, net.west.engine.initiate_child(child.policy, 1, net.now))
    net.run()
    assert len(net.east.of(ChildEstablished)) == 2


def test_delete_isakmp_sa_takes_everything() -> None:
    net = Net()
    net.up()
    net.handle(net.west, net.west.engine.delete_ike(1, net.now))
    net.run()
    assert "#1: deleting ISAKMP SA (STATE_MAIN_I4) and sending notification" in \
        net.west.lines()
    east = net.east.lines()
    assert any(re.fullmatch(r"#1: received Delete SA\(0x[0-9a-f]{8}\) payload: deleting "
                            r"IPsec State #2", x) for x in east)
    assert "#1: received Delete SA payload: deleting ISAKMP State #1" in east
    assert not net.east.engine.isakmp_sas and not net.east.engine.children
    assert sorted(a.kind for a in net.east.of(SaDeleted)) == ["child", "ike"]


def test_forged_delete_is_ignored() -> None:
    net = Net()
    net.up()
    # a Delete built with keys the peer does not have: fails HASH/decryption
    other = Net(seed=2)
    other.up()
    sa_o = other.west.engine.isakmp_sas[1]
    sa_e = net.east.engine.isakmp_sas[1]
    sa_o.icookie, sa_o.rcookie = sa_e.icookie, sa_e.rcookie
    before = len(other.west.actions)
    other.handle(other.west, other.west.engine.delete_ike(1, other.now))
    sends = [a for a in other.west.actions[before:] if type(a).__name__ == "Send"]
    for s in sends:
        net.inject(net.east, s.data)
    assert net.east.engine.isakmp_sas[1].established and net.east.engine.children
    assert any("Informational Exchange" in x for x in net.east.lines())


def test_dpd_probe_answered_then_dead_peer() -> None:
    net = Net(make_policy(dpd_delay=10.0, dpd_timeout=30.0), east_policy())
    net.up()
    net.advance(10.5)
    sa = net.west.engine.isakmp_sas[1]
    assert sa.dpd_seq and not sa.dpd_pending  # R_U_THERE went out and was acknowledged
    info = [decode_message(d) for direction, d in net.sent[9:]]
    assert [m.header.exchange for m in info] == [Exchange.INFO, Exchange.INFO]
    net.drop = lambda direction, data: direction == "east->west"
    net.advance(45)
    assert "#1: DPD: No response from peer - declaring peer dead" in net.west.lines()
    assert not net.west.engine.isakmp_sas and not net.west.engine.children
    assert net.east.engine.isakmp_sas  # the peer itself never noticed


def test_no_probes_when_dpd_is_passive() -> None:
    net = Net()
    net.up()
    n = len(net.sent)
    net.advance(1000)
    assert len(net.sent) == n and net.west.engine.isakmp_sas[1].dpd_seq == 0


def test_isakmp_sa_expires_and_is_deleted() -> None:
    net = Net(make_policy(ike_lifetime=3600.0, rekey=False), east_policy(ike_lifetime=3600.0))
    net.up()
    net.advance(3601)
    assert "#1: deleting ISAKMP SA (STATE_MAIN_I4) and sending notification" in \
        net.west.lines()
    assert not net.west.engine.isakmp_sas and not net.east.engine.isakmp_sas


def test_isakmp_sa_rekey_keeps_the_ipsec_sas() -> None:
    net = Net(make_policy(ike_lifetime=3600.0, rekey_margin=540.0),
              east_policy(ike_lifetime=3600.0))
    net.up()
    net.advance(3061)
    west = net.west.lines()
    assert "#3: initiating IKEv1 Main Mode connection to replace #1" in west
    assert "#1: deleting ISAKMP SA (STATE_MAIN_I4) and sending notification" in west
    assert "#1: received Delete SA payload: deleting ISAKMP State #1" in net.east.lines()
    assert list(net.west.engine.isakmp_sas) == [3] and list(net.east.engine.isakmp_sas) == [3]
    # the IPsec SA survived and now belongs to the new ISAKMP SA at both ends
    assert [c.ike_serial for c in net.west.engine.children.values()] == [3]
    assert [c.ike_serial for c in net.east.engine.children.values()] == [3]
    assert [(a.serial, a.parent) for a in net.east.of(ParentChanged)] == [(2, 3)]
    assert not [a for a in net.west.of(SaDeleted) if a.kind == "child"]
    # and it can still be deleted with the peer told, through the new ISAKMP SA
    net.handle(net.west, net.west.engine.delete_child(2, net.now))
    net.run()
    assert not net.east.engine.children


def test_ipsec_sa_rekey_replaces_the_pair() -> None:
    net = Net(make_policy(ipsec_lifetime=600.0, rekey_margin=60.0),
              east_policy(ipsec_lifetime=600.0))
    net.up()
    (old,) = net.west.engine.children
    net.advance(545)
    assert any(re.fullmatch(r"#3: initiating Quick Mode \S+ to replace #2 \{using isakmp#1 "
                            r"msgid:[0-9a-f]{8} .*", x) for x in net.west.lines())
    assert list(net.west.engine.children) == [3] and list(net.east.engine.children) == [3]
    assert "#2: deleting IPsec SA (STATE_QUICK_I2) and sending notification" in \
        net.west.lines()
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.encr_key_out == e.encr_key_in and old not in net.west.installed


def test_operator_rekey_of_an_ipsec_sa() -> None:
    net = Net()
    net.up()
    actions = net.west.engine.rekey_child(2, net.now)
    net.handle(net.west, actions)
    net.run()
    assert actions[0].serial == 3 and type(actions[0]).__name__ == "SaCreated"
    assert [d.serial for d in net.west.done if d.ok] == [1, 3]
    assert list(net.west.engine.children) == [3] and list(net.east.engine.children) == [3]
    # nothing to rekey any more under the old number
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    assert list(net.west.engine.children) == [3]


def test_initial_contact_clears_the_peers_old_sas() -> None:
    net = Net(make_policy(initial_contact=True), east_policy())
    net.up()
    net.initiate()  # as if west had restarted and forgotten #1 and #2
    net.run()
    assert "#1: deleting ISAKMP SA (ISAKMP SA established): the peer sent INITIAL_CONTACT" \
        in net.east.lines()
    assert list(net.east.engine.isakmp_sas) == [3]
    assert [c.ike_serial for c in net.east.engine.children.values()] == [3]
    assert sorted(a.serial for a in net.east.of(SaDeleted)) == [1, 2]
    assert len(net.east.of(ChildEstablished)) == 2


def test_aggressive_mode_behind_nat() -> None:
    from ipaddress import ip_address

    nat_addr = ip_address("198.51.100.9")
    net = Net(make_policy(aggressive=True, ike="aes256-sha2;modp2048"),
              east_policy(aggressive=True, ike="aes256-sha2;modp2048", remote=None))
    net.nat = {(WEST, 500): (nat_addr, 41000), (WEST, 4500): (nat_addr, 41001)}
    net.up()
    sa_e = net.east.engine.isakmp_sas[1]
    assert sa_e.nat_remote and sa_e.remote == (nat_addr, 41001)
    assert net.routes[2][1][1] == 4500  # the third message already floats
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.encap and e.encap and w.encr_key_out == e.encr_key_in
    assert "#1: responding to Aggressive Mode from unknown peer 198.51.100.9:UDP/41000" in \
        net.east.lines()
