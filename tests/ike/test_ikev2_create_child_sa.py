"""CREATE_CHILD_SA, responder side: a peer rekeys the Child SA and the IKE SA.

pyswan itself rekeys by replacing the IKE SA, so the requests here are built by hand with
the initiator's real keys and the responses are checked against an independent key
computation."""

from __future__ import annotations

from ikev2_harness import Net

from pyswan.ike import dh, kdf
from pyswan.ike.cipher import SkCrypto
from pyswan.ike.codec import KE, SA, Delete, Nonce, Notify, decode_message
from pyswan.ike.constants import NotifyType, ProtocolId
from pyswan.ike.ikev2 import ParentChanged, Send
from pyswan.ike.ikev2 import child as C
from pyswan.ike.ikev2.message import build_sk, open_sk
from pyswan.ike.proposals import to_sa_proposals


def _exchange(net: Net, payloads: list, exchange: int = 36) -> list:
    """Send a request from west's IKE SA #1 straight to east; return the decrypted
    response payloads."""
    west = net.west.engine.sa(1)
    msgid = west.next_request_id
    west.next_request_id += 1
    data = build_sk(west, exchange, msgid, payloads, False)
    actions = net.inject(net.east, data)
    # the answer may wait for the (fake) kernel install, which the harness does in between
    sends = [a for a in actions if isinstance(a, Send)] or \
        [send for side, send in net.queue if side is net.east]
    assert len(sends) == 1, net.east.lines()[-3:]
    reply = sends[0].data
    net.queue.clear()
    return open_sk(west, reply, decode_message(reply))


def test_peer_rekeys_the_child_sa():
    net = Net()
    net.up()
    west = net.west.engine.sa(1)
    old = net.west.installed[2]
    new_spi = 0x12345678
    ni = bytes(range(32))
    request = [Notify(ProtocolId.ESP, old.spi_in.to_bytes(4, "big"), NotifyType.REKEY_SA),
               C.sa_payload(west.policy, new_spi), Nonce(ni),
               *C.ts_payloads(west.policy.local_ts, west.policy.remote_ts, initiator=True)]
    reply = _exchange(net, request)
    assert [type(p).__name__ for p in reply] == ["SA", "Nonce", "TSi", "TSr"]
    nr = next(p for p in reply if isinstance(p, Nonce)).data
    their_spi = int.from_bytes(next(p for p in reply if isinstance(p, SA)).proposals[0].spi,
                               "big")
    assert net.east.lines()[-1].startswith("#3: responder rekeyed Child SA #2 using #1; IPsec "
                                           "tunnel [10.2.0.0/24===10.1.0.0/24] {ESP/ESN=>0x12345678")
    keys = net.east.installed[3]
    assert keys.spi_out == new_spi and keys.spi_in == their_spi
    # KEYMAT from this exchange's nonces; west started it, so its keys come first
    km = kdf.child_keymat(west.prf, west.sk_d, ni, nr, len(keys.encr_key_in), 0)
    assert keys.encr_key_in == km.encr_i and keys.encr_key_out == km.encr_r
    # the initiator then deletes the old Child SA
    reply = _exchange(net, [Delete(ProtocolId.ESP, 4, [old.spi_in.to_bytes(4, "big")])], 37)
    assert reply == [Delete(ProtocolId.ESP, 4, [old.spi_out.to_bytes(4, "big")])]
    assert sorted(net.east.installed) == [3]
    assert net.east.states == {1: "ike", 3: "child"}


def test_peer_rekeys_the_child_sa_with_pfs_and_a_wrong_group_first():
    net = Net()
    net.up()
    west = net.west.engine.sa(1)
    old = net.west.installed[2]
    proposals = to_sa_proposals(west.policy.esp, ProtocolId.ESP, b"\x00\x00\x10\x01",
                                default_ke=west.ke_group, default_sn=C.esn_options(west.policy))
    wrong = dh.key_exchange(31)  # the IKE SA uses DH19; Libreswan's pfsgroup=<Phase1>
    base = [Notify(ProtocolId.ESP, old.spi_in.to_bytes(4, "big"), NotifyType.REKEY_SA),
            SA(proposals), Nonce(bytes(32))]
    ts = list(C.ts_payloads(west.policy.local_ts, west.policy.remote_ts, initiator=True))
    reply = _exchange(net, [*base, KE(31, wrong.public_bytes), *ts])
    assert [(type(p).__name__, getattr(p, "type", None)) for p in reply] == \
        [("Notify", NotifyType.INVALID_KE_PAYLOAD)]
    assert reply[0].data == west.ke_group.ikev2_id.to_bytes(2, "big")
    right = dh.key_exchange(west.ke_group)
    reply = _exchange(net, [*base, KE(west.ke_group.ikev2_id, right.public_bytes), *ts])
    ker = next(p for p in reply if isinstance(p, KE))
    shared = right.shared_secret(ker.data)
    nr = next(p for p in reply if isinstance(p, Nonce)).data
    keys = next(iter(v for k, v in net.east.installed.items() if k != 2))
    km = kdf.child_keymat(west.prf, west.sk_d, bytes(32), nr, len(keys.encr_key_in), 0, shared)
    assert keys.encr_key_in == km.encr_i


def test_peer_rekeys_the_ike_sa_and_children_follow():
    net = Net()
    net.up()
    west = net.west.engine.sa(1)
    new_spi_i = b"\x11" * 8
    proposals = to_sa_proposals(west.policy.ike, ProtocolId.IKE, new_spi_i)
    mine = dh.key_exchange(west.ke_group)
    ni = b"\x22" * 32
    reply = _exchange(net, [SA(proposals), Nonce(ni), KE(west.ke_group.ikev2_id,
                                                         mine.public_bytes)])
    accepted = next(p for p in reply if isinstance(p, SA)).proposals[0]
    nr = next(p for p in reply if isinstance(p, Nonce)).data
    shared = mine.shared_secret(next(p for p in reply if isinstance(p, KE)).data)
    assert net.east.lines()[-1].startswith("#3: responder rekeyed IKE SA #1 {cipher=")
    assert [a.parent for a in net.east.of(ParentChanged)] == [3]
    # derive the new SA's keys independently and talk to east over it
    chosen = west.chosen
    suite = SkCrypto(chosen.encr, chosen.key_bits, None)
    keys = kdf.derive_rekey_ike_keys(west.prf, west.sk_d, chosen.prf, suite.encr_key_bytes,
                                     suite.integ_key_bytes, shared, ni, nr, new_spi_i,
                                     accepted.spi)
    new = net.east.engine.sa(3)
    assert new.spi_i == new_spi_i and new.spi_r == accepted.spi
    assert new.ike_keys.sk_d == keys.sk_d
    assert net.east.engine.sa(2).ike is new  # the Child SA moved
    # the initiator deletes the old IKE SA; the Child SA survives on the new one
    reply = _exchange(net, [Delete(ProtocolId.IKE, 0)], 37)
    assert reply == []
    assert net.east.states == {2: "child", 3: "ike"}
    assert 2 in net.east.installed
