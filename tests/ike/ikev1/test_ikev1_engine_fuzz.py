"""Bad packets never raise out of the IKEv1 engine, never hit its internal-error net, and
never disturb established SAs: real messages of a run, mutated, replayed at both ends
in every state the run went through."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ikev1_harness import Net, east_policy, make_policy, rsa_net, xauth_net

from pyswan.ike.ikev2 import ChildEstablished

FAST = settings(max_examples=int(os.environ.get("PYSWAN_FUZZ_EXAMPLES", "40")),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scenarios() -> dict[str, Callable[[], Net]]:
    return {
        "main": Net,
        "aggressive": lambda: Net(make_policy(aggressive=True, ike="aes-sha2;dh19"),
                                  east_policy(aggressive=True, ike="aes-sha2;dh19")),
        "xauth+modecfg": lambda: xauth_net(modecfg=True),
        "rsasig": rsa_net,
        "rsasig-aggressive": lambda: rsa_net(aggressive=True),
    }


SCENARIOS = _scenarios()


def _recorded(make: Callable[[], Net]) -> list[bytes]:
    net = make()
    net.up()
    return [d for _, d in net.sent]


RECORDED = {name: _recorded(make) for name, make in SCENARIOS.items()}


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    wire = bytearray(data)
    how = draw(st.sampled_from(["flip", "truncate", "extend", "length", "header"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(wire) - 1))
            wire[i] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        del wire[draw(st.integers(0, len(wire) - 1)):]
        if len(wire) >= 28:
            wire[24:28] = len(wire).to_bytes(4, "big")
    elif how == "extend":
        wire += draw(st.binary(min_size=1, max_size=40))
        wire[24:28] = len(wire).to_bytes(4, "big")
    elif how == "length":
        i = draw(st.integers(28, max(28, len(wire) - 2)))
        wire[i:i + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    else:  # exchange type, flags, message ID
        i = draw(st.sampled_from([18, 19, 20, 21, 22, 23]))
        wire[i] = draw(st.integers(0, 255))
    return bytes(wire)


def mutations(name: str) -> st.SearchStrategy[tuple[int, bytes]]:
    wires = RECORDED[name]

    @st.composite
    def one(draw: st.DrawFn) -> tuple[int, bytes]:
        n = draw(st.integers(0, len(wires) - 1))
        return n, _mutate(wires[n], draw)

    return one()


def _no_internal_errors(net: Net) -> None:
    for side in (net.west, net.east):
        assert not [x for x in side.lines(debug=True) if "internal error" in x]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_mutated_messages_mid_exchange(name: str) -> None:
    """Inject mutated copies of message n, to the end that receives message n, just
    before message n is delivered."""
    origin = _recorded_directions(name)

    @FAST
    @given(st.lists(mutations(name), min_size=1, max_size=4))
    def run(bad: list[tuple[int, bytes]]) -> None:
        net = SCENARIOS[name]()
        net.initiate()
        delivered = 0
        todo = sorted(bad)
        while net.queue:
            while todo and todo[0][0] == delivered:
                n, data = todo.pop(0)
                net.inject(net.west if origin[n] == "east->west" else net.east, data)
            net.step()
            delivered += 1
        net.run()
        _no_internal_errors(net)

    run()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_mutated_messages_after_establishment(name: str) -> None:
    origin = _recorded_directions(name)

    @FAST
    @given(st.lists(mutations(name), min_size=1, max_size=6))
    def run(bad: list[tuple[int, bytes]]) -> None:
        net = SCENARIOS[name]()
        net.up()
        for n, data in bad:
            net.inject(net.west if origin[n] == "east->west" else net.east, data)
        net.run()
        _no_internal_errors(net)
        # nothing mutated can authenticate: both ends keep their SAs
        assert net.west.engine.isakmp_sas[1].established
        assert net.east.engine.isakmp_sas[1].established
        assert len(net.west.engine.children) == len(net.east.engine.children) == 1
        assert len(net.east.of(ChildEstablished)) == 1

    run()


def _recorded_directions(name: str) -> list[str]:
    net = SCENARIOS[name]()
    net.up()
    assert [d for _, d in net.sent] == RECORDED[name]  # the runs are reproducible
    return [direction for direction, _ in net.sent]


@FAST
@given(st.binary(min_size=28, max_size=300), st.binary(min_size=16, max_size=16))
def test_random_bodies_with_live_cookies(body: bytes, cookies_from: bytes) -> None:
    net = Net()
    net.up()
    sa = net.east.engine.isakmp_sas[1]
    data = bytearray(body)
    data[0:16] = sa.icookie + sa.rcookie
    data[17] = 0x10
    data[24:28] = len(data).to_bytes(4, "big")
    net.inject(net.east, bytes(data))
    net.run()
    _no_internal_errors(net)
    assert net.east.engine.isakmp_sas[1].established
