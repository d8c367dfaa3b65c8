"""Simultaneous IKEv2 SA lifecycle exchanges (RFC 7296 2.8.1, 2.25), every delivery order
that matters, with strongSwan's exchange tests (test_child_rekey.c, test_ike_rekey.c,
test_child_delete.c, test_ike_delete.c) as the bar.

Each test holds, reorders, drops and delivers single messages through the two-engine
harness, forces which nonce is the lowest (strongSwan's ``nonce_first_byte``), and ends by
checking that both ends agree: the same Child SAs by SPI pair (installed in the "kernel"),
the same IKE SPIs, nothing half-done, no timer left for an SA that is gone, and the
survivors still carry an exchange.
"""

from __future__ import annotations

import pytest
from ikev2_harness import Net, Side

from pyswan.ike.ikev2 import SaDeleted

CCSA = 36
INFO = 37
REQUEST, RESPONSE = False, True


# ------------------------------------------------------------------ steering messages

def _is(send, exchange: int | None, response: bool | None) -> bool:
    data = send.data
    return (exchange is None or data[18] == exchange) and \
        (response is None or bool(data[19] & 0x20) == response)


def queued(net: Net, src: str, exchange: int | None = None,
           response: bool | None = None) -> list:
    side = net.side(src)
    return [(s, m) for s, m in net.queue if s is side and _is(m, exchange, response)]


def _key(item) -> tuple:
    side, m = item
    return side.name, m.data[:16], m.data[18:24]  # SPIs, exchange, flags, message ID


def take_at(net: Net, index: int) -> list:
    """Remove the queued message at ``index``, with all of its RFC 7383 fragments (it is
    held back, to be delivered later or never)."""
    key = _key(net.queue[index])
    held = [item for item in net.queue if _key(item) == key]
    for item in held:
        net.queue.remove(item)
    return held


def take(net: Net, src: str, exchange: int | None = None, response: bool | None = None):
    """Remove the first queued message from ``src`` of that kind (see ``take_at``)."""
    found = queued(net, src, exchange, response)
    assert found, (src, exchange, response, [(s.name, m.data[18:20].hex()) for s, m in net.queue])
    return take_at(net, net.queue.index(found[0]))


def deliver(net: Net, held: list) -> None:
    """Deliver one held message (all of its fragments) now."""
    for item in reversed(held):
        net.queue.appendleft(item)
    for _ in held:
        net.step()


def send(net: Net, src: str, exchange: int | None = None, response: bool | None = None):
    """Deliver the first queued message from ``src`` of that kind; return it."""
    held = take(net, src, exchange, response)
    deliver(net, held)
    return held


def force_nonces(side: Side, *first: int) -> None:
    """The next nonces ``side`` makes start with these bytes (the rest stays random), so a
    test decides which exchange holds the lowest nonce."""
    todo = list(first)
    rand = side.engine.rand
    size = side.engine.config.nonce_size

    def forced(n: int) -> bytes:
        data = rand(n)
        if n == size and todo:
            return bytes([todo.pop(0)]) + data[1:]
        return data

    side.engine.rand = forced


# ------------------------------------------------------------------ what both ends hold

def child_pairs(side: Side) -> set[tuple[int, int]]:
    """(west's inbound SPI, east's inbound SPI) of each installed Child SA, as this side
    sees it; checked against the engine's own records."""
    kernel = {(k.spi_in, k.spi_out) for k in side.installed.values()}
    engine = {(c.spi_in, c.spi_out) for c in side.engine.children.values()}
    assert kernel == engine, (side.name, kernel, engine)
    return kernel if side.name == "west" else {(o, i) for i, o in kernel}


def rekey(net: Net, side: Side, what: str, serial: int) -> int:
    """The operator rekeys the Child SA or IKE SA ``serial`` of ``side`` (``--rekey-child``,
    ``--rekey-ike``); the new SA is remembered, as it must see its ``InitiateDone``."""
    start = side.engine.rekey_child if what == "child" else side.engine.rekey_ike
    actions = start(serial, net.now)
    net.handle(side, actions)
    assert type(actions[0]).__name__ == "SaCreated", side.lines()[-1:]
    net.started = [*getattr(net, "started", []), (side, actions[0].serial)]
    return actions[0].serial


def ike_spis(side: Side) -> set[tuple[bytes, bytes]]:
    return {(sa.spi_i, sa.spi_r) for sa in side.engine.ike_sas.values()}


def settle(net: Net, seconds: float = 60.0) -> None:
    """Deliver everything, then let retransmissions and waits run out."""
    net.run()
    net.advance(seconds)
    net.run()


def agree(net: Net, children: int = 1, ike: int = 1) -> None:
    """Both ends hold the same SAs, each end's records and "kernel" agree, every exchange
    is finished and no timer is left for an SA that is gone."""
    for side in (net.west, net.east):
        eng = side.engine
        alive = set(eng.ike_sas) | set(eng.children)
        assert set(side.states) == alive, (side.name, side.states, alive)
        assert {s for s, _ in side.timers} <= alive, (side.name, side.timers)
        for sa in eng.ike_sas.values():
            assert sa.established and not sa.dying and not sa.deleting, (side.name, sa.serial)
            assert sa.outstanding is None and not sa.pending, (side.name, sa.serial)
            assert sa.awaiting_install is None, (side.name, sa.serial)
            assert not sa.successor and not sa.collision, (side.name, sa.serial)
        for c in eng.children.values():
            assert c.established and c.installed, (side.name, c.serial)
            assert eng.ike_sas.get(c.ike.serial) is c.ike, (side.name, c.serial)
            assert not c.successor and not c.collision, (side.name, c.serial)
        assert not any("internal error" in line for line in side.lines()), side.name
        for serial in alive:  # the timers the engine keeps are the ones it asked for
            sa = eng.ike_sas.get(serial) or eng.children[serial]
            assert {e for s, e in side.timers if s == serial} == set(sa.timers), serial
    for side, serial in getattr(net, "started", []):  # every operator's rekey ended
        assert [d.serial for d in side.done].count(serial) == 1, (side.name, serial)
    assert child_pairs(net.west) == child_pairs(net.east)
    assert len(child_pairs(net.west)) == children
    assert ike_spis(net.west) == ike_spis(net.east)
    assert len(ike_spis(net.west)) == ike


def still_works(net: Net) -> None:
    """The survivors carry a new exchange: rekey the Child SA (or the IKE SA) once more."""
    before = child_pairs(net.west)
    if before:
        serial = next(iter(net.west.engine.children))
        rekey(net, net.west, "child", serial)
    else:
        rekey(net, net.west, "ike", next(iter(net.west.engine.ike_sas)))
    ike_before = ike_spis(net.west)
    settle(net)
    agree(net, children=len(before))
    if before:
        assert child_pairs(net.west).isdisjoint(before)
    else:
        assert ike_spis(net.west).isdisjoint(ike_before)


def up() -> Net:
    net = Net()
    net.up()
    agree(net)
    return net


def only_child(side: Side) -> int:
    (serial,) = side.engine.children
    return serial


def only_ike(side: Side) -> int:
    (serial,) = side.engine.ike_sas
    return serial


def lowest_nonce_lines(net: Net) -> list[tuple[str, str]]:
    return [(s.name, line) for s in (net.west, net.east) for line in s.lines()
            if "has the lowest nonce" in line]


# ------------------------------------------------------------------ simultaneous Child SA rekey
#
# Four nonces: west's Ni (0), east's Ni (1), east's Nr for west's exchange (2), west's Nr
# for east's exchange (3).  West's exchange holds nonces 0 and 2, east's 1 and 3; the one
# holding the lowest made the redundant Child SA and its initiator deletes that, the other
# end deletes the old one.

LOWEST = [0, 1, 2, 3]


def _loser(lowest: int) -> str:
    return "west" if lowest in (0, 2) else "east"


def _child_collision(lowest: int) -> Net:
    net = up()
    w = [0xFF, 0xFF]
    e = [0xFF, 0xFF]
    # west makes nonces 0 (its Ni) and 3 (its Nr); east 1 (Ni) and 2 (Nr)
    {0: w, 3: w, 1: e, 2: e}[lowest][0 if lowest in (0, 1) else 1] = 0x00
    force_nonces(net.west, *w)
    force_nonces(net.east, *e)
    old = child_pairs(net.west)
    rekey(net, net.west, "child", 2)
    rekey(net, net.east, "child", 2)
    net.old = old  # type: ignore[attr-defined]
    return net


def _check_child_outcome(net: Net, lowest: int) -> None:
    settle(net)
    agree(net)
    assert child_pairs(net.west).isdisjoint(net.old)  # type: ignore[attr-defined]
    # the loser's own new Child SA went; the winner's survives on both ends
    loser = net.side(_loser(lowest))
    winner = net.peer(loser)
    (survivor,) = winner.engine.children.values()
    assert survivor.ccsa, "the surviving Child SA is the one the winner initiated"
    lines = lowest_nonce_lines(net)
    assert [n for n, _ in lines] == [loser.name], lines
    # every Child SA either end created is gone except the survivor: none leaked
    for side in (net.west, net.east):
        created = {a.serial for a in side.actions if type(a).__name__ == "SaCreated"
                   and a.kind == "child"}
        gone = {a.serial for a in side.of(SaDeleted) if a.kind == "child"}
        assert created - gone == set(side.engine.children), side.name
    still_works(net)


@pytest.mark.parametrize("lowest", LOWEST)
@pytest.mark.parametrize("first_response", ["west", "east"])
def test_child_rekey_collision_requests_cross(lowest, first_response):
    """Both requests cross; then the responses arrive in either order (strongSwan's
    test_collision)."""
    net = _child_collision(lowest)
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    second = "east" if first_response == "west" else "west"
    send(net, first_response, CCSA, RESPONSE)
    send(net, second, CCSA, RESPONSE)
    _check_child_outcome(net, lowest)


@pytest.mark.parametrize("lowest", LOWEST)
def test_child_rekey_collision_response_delayed_past_the_delete(lowest):
    """East's response to west is held until east has finished its own exchange and its
    delete (of the old or of its redundant Child SA) has been answered (strongSwan's
    test_collision_delayed_response)."""
    net = _child_collision(lowest)
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    held = take(net, "east", CCSA, RESPONSE)
    send(net, "west", CCSA, RESPONSE)  # east completes its exchange
    net.run()  # east's delete and its answer (west may queue its own behind the hold)
    deliver(net, held)
    _check_child_outcome(net, lowest)


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_child_rekey_collision_request_delayed(lowest):
    """West's request is held; east's whole exchange runs (west sees the collision, east
    does not), east deletes the old Child SA, then west's request arrives (strongSwan's
    test_collision_delayed_request: answered TEMPORARY_FAILURE or CHILD_SA_NOT_FOUND, and
    west gives up its rekey)."""
    net = _child_collision(lowest)
    held = take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    deliver(net, held)
    settle(net)
    agree(net)
    assert child_pairs(net.west).isdisjoint(net.old)  # type: ignore[attr-defined]
    (survivor,) = net.east.engine.children.values()
    assert survivor.ccsa  # east's rekey won: it never saw a collision
    assert any("with encrypted notification TEMPORARY_FAILURE" in x for x in net.east.lines())
    assert "CREATE_CHILD_SA failed with error notification TEMPORARY_FAILURE" in \
        "\n".join(net.west.lines())
    still_works(net)


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_child_rekey_collision_request_delayed_past_the_delete(lowest):
    """As above, but west's request arrives only after east's delete of the old Child SA
    has been answered: CHILD_SA_NOT_FOUND (test_collision_delayed_request_more)."""
    net = _child_collision(lowest)
    held = take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    net.run()
    deliver(net, held)
    settle(net)
    agree(net)
    assert any("CHILD_SA_NOT_FOUND" in line for line in net.east.lines() + net.west.lines())
    still_works(net)


# ------------------------------------------------------------------ simultaneous IKE SA rekey
#
# The same four nonces as above, in IKE SA rekeys (test_ike_rekey.c: test_collision and its
# delayed/dropped variants).  The Child SA is not rekeyed: it moves to the survivor.

def _ike_collision(lowest: int) -> Net:
    net = up()
    w = [0xFF, 0xFF]
    e = [0xFF, 0xFF]
    {0: w, 3: w, 1: e, 2: e}[lowest][0 if lowest in (0, 1) else 1] = 0x00
    force_nonces(net.west, *w)
    force_nonces(net.east, *e)
    net.old = ike_spis(net.west)  # type: ignore[attr-defined]
    net.children = child_pairs(net.west)  # type: ignore[attr-defined]
    rekey(net, net.west, "ike", 1)
    rekey(net, net.east, "ike", 1)
    return net


def _check_ike_outcome(net: Net, lowest: int | None, loser_knows: bool = True) -> None:
    settle(net)
    agree(net)
    assert ike_spis(net.west).isdisjoint(net.old)  # type: ignore[attr-defined]
    assert child_pairs(net.west) == net.children  # type: ignore[attr-defined]
    for side in (net.west, net.east):
        (ike,) = side.engine.ike_sas.values()
        (child,) = side.engine.children.values()
        assert child.ike is ike and ike.children == {child.serial: child}
    if lowest is not None:
        # the survivor is the winner's: its initiator's SPI is the winner's
        loser = net.side(_loser(lowest))
        winner = net.peer(loser)
        (ike,) = winner.engine.ike_sas.values()
        assert ike.is_initiator
        assert [n for n, _ in lowest_nonce_lines(net)] == [loser.name] * loser_knows
    still_works(net)


@pytest.mark.parametrize("lowest", LOWEST)
@pytest.mark.parametrize("first_response", ["west", "east"])
def test_ike_rekey_collision_requests_cross(lowest, first_response):
    net = _ike_collision(lowest)
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    second = "east" if first_response == "west" else "west"
    send(net, first_response, CCSA, RESPONSE)
    send(net, second, CCSA, RESPONSE)
    _check_ike_outcome(net, lowest)


@pytest.mark.parametrize("lowest", LOWEST)
def test_ike_rekey_collision_response_delayed_past_the_delete(lowest):
    """East's response to west is held until east's own exchange has finished and its
    delete (of the old IKE SA, or of its redundant one) has been answered."""
    net = _ike_collision(lowest)
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    held = take(net, "east", CCSA, RESPONSE)
    send(net, "west", CCSA, RESPONSE)
    net.run()
    deliver(net, held)
    # east won: its delete of the old IKE SA comes first and west, the loser, takes it as
    # the end of a rekey without collision; east's copy of west's redundant IKE SA, which
    # west will never delete, expires
    _check_ike_outcome(net, lowest, loser_knows=_loser(lowest) == "east")


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_ike_rekey_collision_request_delayed(lowest):
    """West's request is held; east's rekey completes (only west sees a collision) and
    east deletes the old IKE SA; west's request then arrives on the IKE SA east is
    deleting: TEMPORARY_FAILURE (test_collision_delayed_request)."""
    net = _ike_collision(lowest)
    held = take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    deliver(net, held)
    _check_ike_outcome(net, None)
    (ike,) = net.east.engine.ike_sas.values()
    assert ike.is_initiator  # east's rekey made the survivor


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_ike_rekey_collision_request_dropped(lowest):
    """West's request is lost; east's rekey completes and deletes the old IKE SA; west's
    retransmission finds no IKE SA (test_collision_dropped_request)."""
    net = _ike_collision(lowest)
    take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    _check_ike_outcome(net, None)
    (ike,) = net.east.engine.ike_sas.values()
    assert ike.is_initiator


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_ike_rekey_collision_request_delayed_past_the_delete(lowest):
    """West's request arrives after east's delete of the old IKE SA was answered: the
    IKE SA is gone on both ends and the request is dropped
    (test_collision_delayed_request_and_delete)."""
    net = _ike_collision(lowest)
    held = take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    net.run()
    deliver(net, held)
    _check_ike_outcome(net, None)


# ------------------------------------------------------------------ Child SA rekey vs delete
#
# test_child_rekey.c's collisions delete: one end rekeys the Child SA the other deletes.
# A rekey of a Child SA being deleted is answered TEMPORARY_FAILURE (RFC 7296 2.25.1), a
# delete of one being rekeyed as usual; the rekey is given up and the Child SA is gone.

def _rekey_vs_delete(rekeyer: str) -> tuple[Net, str]:
    net = up()
    deleter = "east" if rekeyer == "west" else "west"
    r, d = net.side(rekeyer), net.side(deleter)
    rekey(net, r, "child", only_child(r))
    net.handle(d, d.engine.delete_child(only_child(d), net.now))
    return net, deleter


def _check_gone(net: Net) -> None:
    settle(net)
    agree(net, children=0)
    still_works(net)


@pytest.mark.parametrize("rekeyer", ["west", "east"])
@pytest.mark.parametrize("first_response", ["rekeyer", "deleter"])
def test_child_rekey_vs_child_delete_requests_cross(rekeyer, first_response):
    net, deleter = _rekey_vs_delete(rekeyer)
    send(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, INFO, REQUEST)
    assert any("with encrypted notification TEMPORARY_FAILURE" in x
               for x in net.side(deleter).lines())
    if first_response == "rekeyer":  # the delete's answer first, then TEMPORARY_FAILURE
        send(net, rekeyer, INFO, RESPONSE)
        send(net, deleter, CCSA, RESPONSE)
    else:
        send(net, deleter, CCSA, RESPONSE)
        send(net, rekeyer, INFO, RESPONSE)
    _check_gone(net)


@pytest.mark.parametrize("rekeyer", ["west", "east"])
def test_child_rekey_vs_child_delete_delete_delayed(rekeyer):
    """The delete request is held until the TEMPORARY_FAILURE answer to the rekey has
    arrived (test_collision_delete_drop_delete)."""
    net, deleter = _rekey_vs_delete(rekeyer)
    held = take(net, deleter, INFO, REQUEST)
    send(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, CCSA, RESPONSE)
    assert len(net.side(rekeyer).engine.children) == 1  # given up; the old one stays
    deliver(net, held)
    _check_gone(net)


@pytest.mark.parametrize("rekeyer", ["west", "east"])
def test_child_rekey_vs_child_delete_rekey_delayed(rekeyer):
    """The rekey request is held until the delete exchange is over: CHILD_SA_NOT_FOUND
    (test_collision_delete_drop_rekey)."""
    net, deleter = _rekey_vs_delete(rekeyer)
    held = take(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, INFO, REQUEST)
    send(net, rekeyer, INFO, RESPONSE)
    deliver(net, held)
    assert any("with encrypted notification CHILD_SA_NOT_FOUND" in x
               for x in net.side(deleter).lines())
    _check_gone(net)


@pytest.mark.parametrize("rekeyer", ["west", "east"])
@pytest.mark.parametrize("rekey_response_first", [True, False])
def test_peer_deletes_the_old_child_sa_after_answering_its_rekey(rekeyer,
                                                                  rekey_response_first):
    """The peer answers the rekey, then its operator deletes the old Child SA, which the
    rekeyer is about to delete too: both deletes of it cross; the new Child SA stays."""
    net = up()
    other = "east" if rekeyer == "west" else "west"
    r, o = net.side(rekeyer), net.side(other)
    old = child_pairs(net.west)
    rekey(net, r, "child", only_child(r))
    send(net, rekeyer, CCSA, REQUEST)
    net.handle(o, o.engine.delete_child(min(o.engine.children), net.now))  # the old one
    if rekey_response_first:
        send(net, other, CCSA, RESPONSE)  # the rekeyer now deletes the old one as well
        send(net, other, INFO, REQUEST)
    else:
        send(net, other, INFO, REQUEST)  # the old Child SA goes before the rekey ends
        send(net, other, CCSA, RESPONSE)
    settle(net)
    agree(net)
    assert child_pairs(net.west).isdisjoint(old)
    still_works(net)


# ------------------------------------------------------------------ simultaneous deletes

def test_child_delete_collision():
    """Both ends delete the Child SA at once (test_child_delete.c test_collision)."""
    net = up()
    net.handle(net.west, net.west.engine.delete_child(2, net.now))
    net.handle(net.east, net.east.engine.delete_child(2, net.now))
    send(net, "west", INFO, REQUEST)
    send(net, "east", INFO, REQUEST)
    _check_gone(net)


def test_child_delete_collision_one_request_delayed():
    """test_collision_drop: east's delete reaches west only after west's exchange."""
    net = up()
    net.handle(net.west, net.west.engine.delete_child(2, net.now))
    net.handle(net.east, net.east.engine.delete_child(2, net.now))
    send(net, "west", INFO, REQUEST)
    held = take(net, "east", INFO, REQUEST)
    send(net, "east", INFO, RESPONSE)
    deliver(net, held)
    _check_gone(net)


@pytest.mark.parametrize("wait", [True, False])
def test_ike_delete_collision(wait):
    """Both ends delete the IKE SA at once (test_ike_delete.c test_collision)."""
    net = up()
    net.handle(net.west, net.west.engine.delete_ike(1, net.now, wait=wait))
    net.handle(net.east, net.east.engine.delete_ike(1, net.now, wait=wait))
    settle(net)
    agree(net, children=0, ike=0)
    assert net.west.installed == {} and net.east.installed == {}


# ------------------------------------------------------------------ IKE SA rekey vs Child SA rekey
#
# test_child_rekey.c test_collision_ike_rekey: one end rekeys the IKE SA while the other
# rekeys its Child SA.  Whatever each end answers, they must end with one IKE SA and one
# Child SA, the same on both ends.

def _ike_vs_child(ike_rekeyer: str) -> tuple[Net, str]:
    net = up()
    child_rekeyer = "east" if ike_rekeyer == "west" else "west"
    i, c = net.side(ike_rekeyer), net.side(child_rekeyer)
    net.old = ike_spis(net.west)  # type: ignore[attr-defined]
    net.children = child_pairs(net.west)  # type: ignore[attr-defined]
    rekey(net, i, "ike", only_ike(i))
    rekey(net, c, "child", only_child(c))
    return net, child_rekeyer


def _check_one_of_each(net: Net) -> None:
    settle(net)
    agree(net)
    # both rekeys happened in the end (one of them retried after TEMPORARY_FAILURE)
    assert ike_spis(net.west).isdisjoint(net.old)  # type: ignore[attr-defined]
    assert child_pairs(net.west).isdisjoint(net.children)  # type: ignore[attr-defined]
    for side in (net.west, net.east):
        (ike,) = side.engine.ike_sas.values()
        assert all(c.ike is ike for c in side.engine.children.values())
    still_works(net)


@pytest.mark.parametrize("ike_rekeyer", ["west", "east"])
@pytest.mark.parametrize("first_response", ["ike", "child"])
def test_ike_rekey_vs_child_rekey_requests_cross(ike_rekeyer, first_response):
    net, child_rekeyer = _ike_vs_child(ike_rekeyer)
    send(net, ike_rekeyer, CCSA, REQUEST)
    send(net, child_rekeyer, CCSA, REQUEST)
    if first_response == "ike":  # the IKE rekey's response
        send(net, child_rekeyer, CCSA, RESPONSE)
        send(net, ike_rekeyer, CCSA, RESPONSE)
    else:
        send(net, ike_rekeyer, CCSA, RESPONSE)
        send(net, child_rekeyer, CCSA, RESPONSE)
    # RFC 7296 2.25.1 and 2.25.2: each end refuses the other's request for now
    for side, why in ((ike_rekeyer, "the IKE SA is being rekeyed"),
                      (child_rekeyer, "a Child SA exchange of this IKE SA is under way")):
        assert any(x.startswith(f"#1: {why}; responding to CREATE_CHILD_SA message") and
                   x.endswith("with encrypted notification TEMPORARY_FAILURE")
                   for x in net.side(side).lines()), side
    _check_one_of_each(net)


@pytest.mark.parametrize("ike_rekeyer", ["west", "east"])
def test_ike_rekey_completes_before_the_child_rekey_request_arrives(ike_rekeyer):
    """The Child SA rekey request reaches the old IKE SA while it is being deleted."""
    net, child_rekeyer = _ike_vs_child(ike_rekeyer)
    held = take(net, child_rekeyer, CCSA, REQUEST)
    send(net, ike_rekeyer, CCSA, REQUEST)
    send(net, child_rekeyer, CCSA, RESPONSE)
    deliver(net, held)
    _check_one_of_each(net)


@pytest.mark.parametrize("ike_rekeyer", ["west", "east"])
def test_child_rekey_completes_before_the_ike_rekey_request_arrives(ike_rekeyer):
    net, child_rekeyer = _ike_vs_child(ike_rekeyer)
    held = take(net, ike_rekeyer, CCSA, REQUEST)
    send(net, child_rekeyer, CCSA, REQUEST)
    send(net, ike_rekeyer, CCSA, RESPONSE)
    deliver(net, held)
    _check_one_of_each(net)


# ------------------------------------------------------------------ rekeys vs IKE SA delete
#
# test_ike_rekey.c collisions delete and test_child_rekey.c test_collision_ike_delete: a
# rekey (of the IKE SA or of a Child SA) reaching an IKE SA being deleted is answered
# TEMPORARY_FAILURE; the delete wins and nothing is left on either end.

def _rekey_vs_ike_delete(what: str, rekeyer: str) -> tuple[Net, str]:
    net = up()
    deleter = "east" if rekeyer == "west" else "west"
    r, d = net.side(rekeyer), net.side(deleter)
    if what == "ike":
        rekey(net, r, "ike", only_ike(r))
    else:
        rekey(net, r, "child", only_child(r))
    net.handle(d, d.engine.delete_ike(only_ike(d), net.now, wait=True))
    return net, deleter


def _check_all_gone(net: Net) -> None:
    settle(net)
    agree(net, children=0, ike=0)
    assert net.west.installed == {} and net.east.installed == {}


@pytest.mark.parametrize("what", ["ike", "child"])
@pytest.mark.parametrize("rekeyer", ["west", "east"])
@pytest.mark.parametrize("first_response", ["rekeyer", "deleter"])
def test_rekey_vs_ike_delete_requests_cross(what, rekeyer, first_response):
    net, deleter = _rekey_vs_ike_delete(what, rekeyer)
    send(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, INFO, REQUEST)
    assert any("TEMPORARY_FAILURE" in x for x in net.side(deleter).lines())
    if first_response == "rekeyer":
        if queued(net, rekeyer, INFO, RESPONSE):
            send(net, rekeyer, INFO, RESPONSE)
    else:
        send(net, deleter, CCSA, RESPONSE)
    _check_all_gone(net)


@pytest.mark.parametrize("what", ["ike", "child"])
@pytest.mark.parametrize("rekeyer", ["west", "east"])
def test_rekey_vs_ike_delete_delete_delayed(what, rekeyer):
    """TEMPORARY_FAILURE arrives before the delete (test_collision_delete_drop_delete):
    a retry may be scheduled, but the delete ends everything."""
    net, deleter = _rekey_vs_ike_delete(what, rekeyer)
    held = take(net, deleter, INFO, REQUEST)
    send(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, CCSA, RESPONSE)
    assert len(net.side(rekeyer).engine.ike_sas) == 1  # the rekey gave up, the SA stays
    deliver(net, held)
    _check_all_gone(net)


@pytest.mark.parametrize("what", ["ike", "child"])
@pytest.mark.parametrize("rekeyer", ["west", "east"])
def test_rekey_vs_ike_delete_rekey_delayed(what, rekeyer):
    """The rekey request arrives after the IKE SA is gone: dropped, and the rekeyer's
    retransmissions find nothing either."""
    net, deleter = _rekey_vs_ike_delete(what, rekeyer)
    held = take(net, rekeyer, CCSA, REQUEST)
    send(net, deleter, INFO, REQUEST)
    send(net, rekeyer, INFO, RESPONSE)
    deliver(net, held)
    _check_all_gone(net)


# ------------------------------------------------------------------ retransmissions, lost messages

@pytest.mark.parametrize("what", ["child", "ike"])
@pytest.mark.parametrize("lost", ["west", "east"])
def test_rekey_collision_with_a_lost_response(what, lost):
    """Both ends rekey; one response is lost, so its request is retransmitted and answered
    again from the responder's copy: the collision resolves as if nothing was lost."""
    net = (_child_collision if what == "child" else _ike_collision)(0)
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    take(net, lost, CCSA, RESPONSE)  # dropped
    other = "east" if lost == "west" else "west"
    send(net, other, CCSA, RESPONSE)
    net.run()
    net.advance(1)  # the retransmission, answered again
    if what == "child":
        _check_child_outcome(net, 0)
    else:
        _check_ike_outcome(net, 0, loser_knows=lost == "west")
    retransmitter = net.peer(net.side(lost))
    retransmitted = any("retransmission; will wait" in x for x in retransmitter.lines())
    # except where east, the winner, deleted the old IKE SA first: that ends west's rekey
    assert retransmitted == (what == "child" or lost == "west")


@pytest.mark.parametrize("what", ["child", "ike"])
def test_rekey_collision_with_duplicated_requests_and_responses(what):
    """Every CREATE_CHILD_SA message of the collision arrives twice (a retransmission
    crossing the answer): duplicates of requests are answered from the copy, duplicates
    of responses are dropped."""
    net = (_child_collision if what == "child" else _ike_collision)(3)
    w = take(net, "west", CCSA, REQUEST)
    e = take(net, "east", CCSA, REQUEST)
    deliver(net, w)
    deliver(net, e)
    deliver(net, w)  # east answers it again
    deliver(net, e)
    wr = take(net, "west", CCSA, RESPONSE)  # with the copy answering the duplicate
    er = take(net, "east", CCSA, RESPONSE)
    assert len(wr) == len(er) and len(wr) % 2 == 0  # (each copy, in as many fragments)
    deliver(net, er)
    deliver(net, wr)
    deliver(net, er)  # stale duplicates
    deliver(net, wr)
    if what == "child":
        _check_child_outcome(net, 3)
    else:
        _check_ike_outcome(net, 3)


def test_child_rekey_request_retransmitted_while_the_responder_installs():
    """The responder is still installing the new Child SA when the retransmission of the
    request comes in: it is dropped, the one response goes out once installed."""
    net = up()
    net.defer_installs = True
    rekey(net, net.west, "child", 2)
    w = take(net, "west", CCSA, REQUEST)
    deliver(net, w)
    deliver(net, w)
    assert "#1: dropping retransmitted request: still processing it" in net.east.lines(True)
    assert not queued(net, "east")
    net.defer_installs = False
    for side, a in net.deferred_installs:
        net.finish_install(side, a)
    net.deferred_installs.clear()
    settle(net)
    agree(net)
    still_works(net)


@pytest.mark.parametrize("request_arrives", [True, False])
def test_operator_deletes_the_ike_sa_while_its_child_rekey_runs(request_arrives):
    """``--down`` while our Child SA rekey is in flight: the exchange is finished first
    (the peer may have it; a lost one is retransmitted, as the peer would not accept the
    delete's message ID before it), then everything goes on both ends."""
    net = up()
    new = rekey(net, net.west, "child", 2)
    if request_arrives:
        send(net, "west", CCSA, REQUEST)
    else:
        take(net, "west", CCSA, REQUEST)  # lost
    net.handle(net.west, net.west.engine.delete_ike(1, net.now, wait=True))
    _check_all_gone(net)
    assert [d.ok for d in net.west.done if d.serial == new] == [True]


@pytest.mark.xfail(strict=True, reason="strongSwan's own FIXME (test_child_rekey.c): the "
                   "peer deletes the new Child SA before the rekey response arrives; the "
                   "delete names an SPI the rekeyer does not know yet, so the rekeyer then "
                   "installs a Child SA the peer no longer has (it would have to remember "
                   "unknown deletes while rekeying, and ChildSa has no field for that)")
def test_peer_deletes_the_new_child_sa_before_the_rekey_response_arrives():
    net = up()
    rekey(net, net.west, "child", 2)
    send(net, "west", CCSA, REQUEST)
    held = take(net, "east", CCSA, RESPONSE)
    net.handle(net.east, net.east.engine.delete_child(max(net.east.engine.children), net.now))
    send(net, "east", INFO, REQUEST)
    send(net, "west", INFO, RESPONSE)
    deliver(net, held)
    settle(net)
    agree(net, children=0)


def _finish_installs(net: Net, name: str | None = None) -> None:
    """The kernel answers the installs it holds (of one side, or all and stops holding)."""
    if name is None:
        net.defer_installs = False
    for item in [i for i in net.deferred_installs if name in (None, i[0].name)]:
        net.deferred_installs.remove(item)
        net.finish_install(*item)


@pytest.mark.parametrize("ike_rekeyer", ["west", "east"])
def test_ike_rekey_vs_child_rekey_with_a_slow_kernel(ike_rekeyer):
    """As the crossing above, with the kernel slow to install: whatever waits for it, no
    IKE SA stays blocked (before RFC 7296 2.25.1 was followed, the child rekeyer's IKE SA
    kept dropping the peer's requests once the IKE rekey had moved the new Child SA)."""
    net, child_rekeyer = _ike_vs_child(ike_rekeyer)
    net.defer_installs = True
    send(net, ike_rekeyer, CCSA, REQUEST)
    send(net, child_rekeyer, CCSA, REQUEST)
    _finish_installs(net, ike_rekeyer)
    send(net, ike_rekeyer, CCSA, RESPONSE)
    send(net, child_rekeyer, CCSA, RESPONSE)
    net.run()
    _finish_installs(net)
    _check_one_of_each(net)


@pytest.mark.parametrize("lowest", LOWEST)
def test_child_rekey_collision_with_a_slow_kernel(lowest):
    """West's kernel is slow to install west's new Child SA: east's delete (of the old or
    of its redundant Child SA) arrives while west waits."""
    net = _child_collision(lowest)
    net.defer_installs = True
    send(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    _finish_installs(net)  # both responses go out
    net.defer_installs = True
    send(net, "east", CCSA, RESPONSE)  # west's install waits
    send(net, "west", CCSA, RESPONSE)  # east completes (installed later too)
    _finish_installs(net, "east")
    if queued(net, "east", INFO, REQUEST):
        send(net, "east", INFO, REQUEST)  # east's delete reaches west while it waits
    _finish_installs(net)
    _check_child_outcome(net, lowest)


@pytest.mark.parametrize("lowest", [0, 1, 3])
def test_child_rekey_collision_request_dropped(lowest):
    """West's request is lost; east's rekey completes and deletes the old Child SA; west's
    retransmission is answered TEMPORARY_FAILURE or CHILD_SA_NOT_FOUND and west gives up."""
    net = _child_collision(lowest)
    take(net, "west", CCSA, REQUEST)
    send(net, "east", CCSA, REQUEST)
    send(net, "west", CCSA, RESPONSE)
    settle(net)
    agree(net)
    (survivor,) = net.east.engine.children.values()
    assert survivor.ccsa
    assert any("retransmission; will wait" in x for x in net.west.lines())
    still_works(net)


@pytest.mark.parametrize("what", ["child", "ike"])
def test_rekey_timers_of_both_ends_fire_together(what):
    """Not the operator: both ends' REKEY timers fire at the same moment."""
    net = up()
    serial = 2 if what == "child" else 1
    at = max(net.west.timers[(serial, "REKEY")], net.east.timers[(serial, "REKEY")])
    net.now = at
    for side in (net.west, net.east):
        del side.timers[(serial, "REKEY")]
        net.handle(side, side.engine.timer(serial, "REKEY", at))
    assert len(net.queue) >= 2  # both sent a request
    settle(net)
    agree(net)
    still_works(net)


@pytest.mark.parametrize("ike_rekeyer", ["west", "east"])
def test_ike_rekey_completes_while_the_answer_to_a_child_rekey_waits_for_the_kernel(
        ike_rekeyer):
    """The IKE SA rekeyer answers the peer's Child SA rekey only once its kernel installed
    the new Child SA; its own IKE SA rekey completes in between and moves that Child SA:
    the answer must still go out (on the IKE SA the request came in on)."""
    net, child_rekeyer = _ike_vs_child(ike_rekeyer)
    net.defer_installs = True
    send(net, ike_rekeyer, CCSA, REQUEST)
    send(net, child_rekeyer, CCSA, REQUEST)  # the IKE SA rekeyer's install waits
    send(net, child_rekeyer, CCSA, RESPONSE)  # the IKE SA rekey completes meanwhile
    _finish_installs(net)
    _check_one_of_each(net)


@pytest.mark.parametrize("request_arrives", [True, False])
def test_operator_deletes_the_ike_sa_while_its_ike_rekey_runs(request_arrives):
    """``--down`` while our IKE SA rekey is in flight: the peer may have made the new IKE
    SA already (moving the Child SAs to it), so that must go too; nothing is left."""
    net = up()
    rekey(net, net.west, "ike", 1)
    if request_arrives:
        send(net, "west", CCSA, REQUEST)
    else:
        take(net, "west", CCSA, REQUEST)  # lost
    net.handle(net.west, net.west.engine.delete_ike(1, net.now, wait=True))
    _check_all_gone(net)


# ------------------------------------------------------------------ random interleavings
#
# Beyond the orderings above: both ends start rekeys and deletes at random moments, the
# network delivers in random order and loses some datagrams; once everything has settled
# both ends must agree.  (Seeded, so each run is the same; a failure names its seed.)

def _random_operation(net: Net, r, side: Side, what: str) -> None:
    eng = side.engine
    if what in ("child", "ike"):
        sas = eng.children if what == "child" else eng.ike_sas
        if sas:
            start = eng.rekey_child if what == "child" else eng.rekey_ike
            actions = start(r.choice(sorted(sas)), net.now)  # refused at times: fine
            net.handle(side, actions)
            if actions and type(actions[0]).__name__ == "SaCreated":  # then it must end
                net.started = [*getattr(net, "started", []), (side, actions[0].serial)]
    elif what == "delete-child":
        # not a Child SA the peer's rekey just made: a delete of it overtaking the rekey's
        # response is strongSwan's unsolved case (the xfail test above)
        ok = sorted(s for s, c in eng.children.items()
                    if not (c.role == "responder" and c.replaces))
        if ok:
            net.handle(side, eng.delete_child(r.choice(ok), net.now))
    elif what == "delete-ike":  # --down of the connection: its IKE SA (not one on its way
        # out, nor the one a peer's colliding rekey made while ours runs)
        colliding = {sa.collision for sa in eng.ike_sas.values()}
        ok = sorted(s for s, sa in eng.ike_sas.items()
                    if sa.established and not sa.successor and s not in colliding)
        if ok:
            net.handle(side, eng.delete_ike(r.choice(ok), net.now, wait=True))


def _random_run(seed: int, operations: tuple[str, ...], loss: float) -> Net:
    import random

    r = random.Random(seed)
    net = Net(seed=seed)
    net.up()
    for side in (net.west, net.east):
        _random_operation(net, r, side, r.choice(operations))
    for _ in range(300):
        if not net.queue:
            break
        held = take_at(net, r.randrange(len(net.queue)))
        if r.random() >= loss:
            deliver(net, held)
        if r.random() < 0.15:
            _random_operation(net, r, r.choice((net.west, net.east)), r.choice(operations))
        if r.random() < 0.1:
            net.advance(r.choice([0.5, 1, 3, 12]))
    settle(net, 200)
    return net


@pytest.mark.parametrize("operations,loss", [
    (("child", "ike"), 0.0),
    (("child", "ike"), 0.3),
    (("child", "ike", "delete-child"), 0.15),
    (("child", "ike", "delete-child", "delete-ike"), 0.0),
    (("child", "ike", "delete-child", "delete-ike"), 0.2),
])
def test_random_interleavings_end_in_agreement(operations, loss):
    for seed in range(150):
        net = _random_run(seed, operations, loss)
        try:
            agree(net, children=len(child_pairs(net.west)), ike=len(ike_spis(net.west)))
            assert len(ike_spis(net.west)) <= 1
            if "delete-child" not in operations and "delete-ike" not in operations:
                assert len(child_pairs(net.west)) == 1
        except AssertionError as e:
            raise AssertionError(f"seed {seed}: {e}") from e


@pytest.mark.xfail(strict=True, reason="a Child SA delete queued (not yet sent) on an IKE "
                   "SA when a colliding IKE SA rekey moves its Child SAs away is dropped "
                   "with that IKE SA's queue: the engine cannot tell a queued delete from "
                   "other queued requests (ChildSa has no 'being deleted' mark), so only "
                   "deletes it owes for rekeys and lost collisions are asked again")
def test_random_interleaving_with_a_queued_child_delete_lost_in_an_ike_rekey():
    net = _random_run(1436, ("child", "ike", "delete-child"), 0.15)
    agree(net, children=len(child_pairs(net.west)))
