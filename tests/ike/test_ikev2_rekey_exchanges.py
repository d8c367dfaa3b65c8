"""CREATE_CHILD_SA initiated by pyswan: Child SA rekey (with and without PFS), IKE SA
rekey moving the Child SAs, rekeys on the lifetime timers, simultaneous rekeys (RFC 7296
2.8.1, the orderings of strongSwan's exchange tests), delete during rekey, retransmission
during rekey."""

from __future__ import annotations

from ikev2_harness import EAST, WEST, Net, make_policy

from pyswan.ike.ikev2 import ParentChanged


def _east(**kw):
    return make_policy(local=EAST, remote=WEST, local_id="east", remote_id="west",
                       local_net="10.2.0.0/24", remote_net="10.1.0.0/24", **kw)


def _pair(net: Net) -> None:
    """Both ends hold the same set of Child SAs, installed, with matching SPIs."""
    w = {(k.spi_in, k.spi_out) for k in net.west.installed.values()}
    e = {(k.spi_out, k.spi_in) for k in net.east.installed.values()}
    assert w == e and w


def test_operator_rekeys_the_child_sa_with_pfs():
    net = Net()
    net.up()
    old = net.west.installed[2]
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    lines = net.west.lines()
    i = lines.index("#3: initiating rekey to replace Child SA #2")
    assert lines[i + 1] == "#3: sent CREATE_CHILD_SA request to rekey IPsec SA"
    assert lines[i + 3] == "#2: deleting established Child SA using IKE SA #1"
    assert lines[i + 2].startswith("#3: initiator rekeyed Child SA #2 using #1; IPsec tunnel "
                                "[10.1.0.0/24===10.2.0.0/24] {ESP/ESN=>0x")
    assert net.east.lines()[-1].startswith("#3: responder rekeyed Child SA #2 using #1")
    assert list(net.west.installed) == [3] and list(net.east.installed) == [3]
    assert net.west.installed[3].spi_in != old.spi_in
    assert net.west.done[-1].serial == 3 and net.west.done[-1].ok
    _pair(net)
    # PFS: the request carried a KE payload (the IKE SA's group), so the keys differ from
    # what SK_d and the nonces alone give
    assert net.west.engine.sa(3).chosen.ke.ikev2_id == 19


def test_child_rekey_without_pfs():
    net = Net(make_policy(pfs=False), _east(pfs=False))
    net.up()
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    assert net.west.engine.sa(3).chosen.ke.ikev2_id == 0
    _pair(net)


def test_lifetime_timers_rekey_child_and_ike_sas_repeatedly_without_a_gap():
    pol = make_policy(ike_lifetime=100.0, ipsec_lifetime=60.0, rekey_margin=10.0)
    net = Net(pol, _east(ike_lifetime=100.0, ipsec_lifetime=60.0, rekey_margin=10.0))
    net.up()
    for _ in range(40):
        net.advance(10)
        assert net.west.installed and net.east.installed  # never a gap
        _pair(net)
    lines = net.west.lines()
    assert sum("initiator rekeyed Child SA" in x for x in lines) >= 6
    assert sum("initiator rekeyed IKE SA" in x for x in lines) + \
        sum("responder rekeyed IKE SA" in x for x in net.east.lines()) >= 3
    assert len([k for k in net.west.states.values() if k == "ike"]) == 1
    assert len(net.west.installed) == 1


def test_responder_rekeys_at_half_the_margin():
    pol = make_policy(ipsec_lifetime=100.0, rekey_margin=20.0)
    net = Net(pol, _east(ipsec_lifetime=100.0, rekey_margin=20.0))
    net.up()
    start = net.now
    assert net.east.timers[(2, "REKEY")] == start + 90  # lifetime - margin/2
    w = net.west.timers[(2, "REKEY")] - start
    assert 60 <= w <= 80  # lifetime - margin * (1 + fuzz%)
    assert net.west.timers[(2, "REPLACE")] == start + 100


def test_rekey_no_expires_instead():
    net = Net(make_policy(rekey=False, ipsec_lifetime=50.0))
    net.up()
    assert (2, "EXPIRE") in net.west.timers and (2, "REKEY") not in net.west.timers


def test_operator_rekeys_the_ike_sa_and_children_move():
    net = Net()
    net.up()
    net.handle(net.west, net.west.engine.rekey_ike(1, net.now))
    net.run()
    lines = net.west.lines()
    assert "#3: initiating rekey to replace IKE SA #1" in lines
    assert "#3: sent CREATE_CHILD_SA request to rekey IKE SA #1 (using IKE SA #1)" in lines
    assert any(x.startswith("#3: initiator rekeyed IKE SA #1 {cipher=AES_GCM_16_256") for x in lines)
    assert any(x.startswith("#3: responder rekeyed IKE SA #1 {cipher=") for x in net.east.lines())
    assert net.west.states == {2: "child", 3: "ike"} and net.east.states == {2: "child", 3: "ike"}
    assert [a.parent for a in net.west.of(ParentChanged)] == [3]
    assert net.west.engine.sa(2).ike.serial == 3
    # the new IKE SA works: rekey the Child SA over it
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    assert list(net.west.installed) == [4]
    _pair(net)


def test_reauth_yes_replaces_instead_of_rekeying():
    net = Net(make_policy(reauth=True))
    net.up()
    net.handle(net.west, net.west.engine.rekey_ike(1, net.now))
    net.run()
    assert any("initiating IKEv2 connection (replacing established IKE SA #1)" in x
               for x in net.west.lines())


def _both_rekey_child(net: Net) -> None:
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.handle(net.east, net.east.engine.rekey_child(2, net.now))
    net.run()


def test_simultaneous_child_rekey_one_survives():
    for seed in range(1, 9):  # the nonces decide which side loses: try both outcomes
        net = Net(seed=seed)
        net.up()
        _both_rekey_child(net)
        net.advance(1)
        assert len(net.west.installed) == 1 and len(net.east.installed) == 1, seed
        _pair(net)
        assert 2 not in net.west.states and 2 not in net.east.states
        lost = [x for s in (net.west, net.east) for x in s.lines() if "lowest nonce" in x]
        assert len(lost) == 1


def test_simultaneous_child_rekey_with_delayed_requests():
    # one request overtakes the other's response (strongSwan's collision orderings)
    for seed in range(1, 5):
        net = Net(seed=seed)
        net.up()
        net.handle(net.west, net.west.engine.rekey_child(2, net.now))
        net.step()  # west's request reaches east
        net.handle(net.east, net.east.engine.rekey_child(2, net.now))
        net.run()
        net.advance(1)
        assert len(net.west.installed) == 1 and len(net.east.installed) == 1
        _pair(net)


def test_simultaneous_ike_rekey_one_survives():
    for seed in range(1, 9):
        net = Net(seed=seed)
        net.up()
        net.handle(net.west, net.west.engine.rekey_ike(1, net.now))
        net.handle(net.east, net.east.engine.rekey_ike(1, net.now))
        net.run()
        net.advance(60)
        wike = [s for s, k in net.west.states.items() if k == "ike"]
        eike = [s for s, k in net.east.states.items() if k == "ike"]
        assert len(wike) == 1 and len(eike) == 1, (seed, net.west.states, net.east.states)
        assert net.west.engine.sa(wike[0]).spi_i == net.east.engine.sa(eike[0]).spi_i
        assert all(c.ike.serial == wike[0] for c in net.west.engine.children.values())
        assert all(c.ike.serial == eike[0] for c in net.east.engine.children.values())
        _pair(net)
        # and the survivor still carries traffic and exchanges
        net.handle(net.west, net.west.engine.rekey_child(next(iter(net.west.installed)),
                                                         net.now))
        net.run()
        _pair(net)


def test_peer_deletes_the_child_sa_while_we_rekey_it():
    net = Net()
    net.up()
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.handle(net.east, net.east.engine.delete_child(2, net.now))
    net.run()
    net.advance(1)
    # whichever way the exchanges crossed, both ends agree on what is left
    w = {(k.spi_in, k.spi_out) for k in net.west.installed.values()}
    e = {(k.spi_out, k.spi_in) for k in net.east.installed.values()}
    assert w == e
    assert 2 not in net.west.states and 2 not in net.east.states


def test_rekey_during_ike_delete_is_refused():
    net = Net()
    net.up()
    net.handle(net.east, net.east.engine.delete_ike(1, net.now, wait=True))
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    net.advance(120)
    assert net.west.states == {} and net.east.states == {}
    assert net.west.installed == {} and net.east.installed == {}


def test_rekey_request_retransmitted():
    net = Net()
    net.up()
    dropped = []

    def drop(direction, data):
        if direction == "west->east" and data[18] == 36 and not dropped:
            dropped.append(data)
            return True
        return False

    net.drop = drop
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    assert dropped and 3 not in net.west.installed
    net.advance(1)
    assert "#1: ESTABLISHED_IKE_SA: retransmission; will wait 0.5 seconds for response" in \
        net.west.lines() or any("retransmission" in x for x in net.west.lines())
    assert list(net.west.installed) == [3]
    _pair(net)


def test_ike_rekey_response_lost_then_retransmitted():
    net = Net()
    net.up()
    dropped = []

    def drop(direction, data):
        if direction == "east->west" and data[18] == 36 and not dropped:
            dropped.append(data)
            return True
        return False

    net.drop = drop
    net.handle(net.west, net.west.engine.rekey_ike(1, net.now))
    net.run()
    net.advance(2)
    assert dropped
    assert net.west.states == {2: "child", 3: "ike"} and net.east.states == {2: "child", 3: "ike"}


def test_responder_of_an_ike_rekey_keeps_probing_liveness_on_the_new_sa():
    # Interop lab, Libreswan/strongSwan rekeying pyswan's IKE SA: the responder armed no
    # LIVENESS on the new SA, so dpddelay= probes stopped and a dead peer went unnoticed.
    net = Net(make_policy(), _east(dpd_delay=2.0, retransmit_timeout=6.0))
    net.up()
    net.handle(net.west, net.west.engine.rekey_ike(1, net.now))
    net.run()
    assert net.east.states == {2: "child", 3: "ike"}
    assert (3, "LIVENESS") in net.east.timers
    net.advance(3)
    probes = [d for direction, d in net.sent if direction == "east->west" and d[18] == 37]
    assert probes and probes[-1][8:16] == net.east.engine.sa(3).spi_r  # on the new SA
    net.drop = lambda direction, data: True  # west dies
    net.advance(20)
    assert "No response (or no acceptable response) to our IKEv2 message" in net.east.lines()[-2]
    assert net.east.states == {}
