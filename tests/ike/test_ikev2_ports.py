"""Where responses and later requests go (RFC 7296 2.11, 2.23): a response goes back to
the address and port its request came from, and an initiator that moves to the NAT-T port
without any NAT (strongSwan does, in IKE_AUTH) is followed there."""

from __future__ import annotations

from ikev2_harness import EAST, WEST, Net


def _east_sa(net: Net):
    return next(iter(net.east.engine.ike_sas.values()))


def test_initiator_floating_to_the_nat_port_without_nat_is_followed():
    net = Net()
    net.up()
    west_sa = next(iter(net.west.engine.ike_sas.values()))
    assert not (west_sa.nat_local or west_sa.nat_remote)
    # the initiator moves to 4500 (no NAT) and sends a request from there
    net.west.engine.move(west_sa, (WEST, 4500), (EAST, 4500))
    net.routes.clear()
    child = next(s for s, kind in net.west.states.items() if kind == "child")
    net.handle(net.west, net.west.engine.rekey_child(child, net.now))
    net.run()
    # east answered where the request came from, and follows the initiator there
    assert ("east->west", (EAST, 4500), (WEST, 4500)) in net.routes, net.routes
    assert all(r[1][1] == 4500 and r[2][1] == 4500 for r in net.routes), net.routes
    assert (_east_sa(net).local, _east_sa(net).remote) == ((EAST, 4500), (WEST, 4500))
    # east's own requests (a delete) go to the initiator's new port too
    net.routes.clear()
    ike = next(iter(net.east.engine.ike_sas))
    net.handle(net.east, net.east.engine.delete_ike(ike, net.now, wait=True))
    net.run()
    assert net.routes and all(r[2][1] == 4500 for r in net.routes if r[0] == "east->west")
    assert net.west.states == {} and net.east.states == {}


def test_duplicate_request_answered_to_where_it_came_from():
    net = Net()
    net.up()
    west_sa = next(iter(net.west.engine.ike_sas.values()))
    child = next(s for s, kind in net.west.states.items() if kind == "child")
    net.handle(net.west, net.west.engine.rekey_child(child, net.now))
    net.run()
    # west's last request (the delete of the rekeyed Child SA) again, from another port:
    # east's cached response goes there
    last = [d for way, d in net.sent if way == "west->east" and not d[19] & 0x20][-1]
    actions = net.east.engine.receive(last, (EAST, 500), (WEST, 4444), net.now)
    sends = [a for a in actions if type(a).__name__ == "Send"]
    assert sends and all(a.remote == (WEST, 4444) and a.local == (EAST, 500) for a in sends)
    assert west_sa.established
