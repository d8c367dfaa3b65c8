"""phase2=ah and compress=yes Child SAs between two engines.

AH: the SA payload offers protocol AH with integrity (and ESN) transforms only, in IKE_AUTH
and CREATE_CHILD_SA; KEYMAT gives integrity keys alone (RFC 7296 2.17).  IPCOMP: each end
with compress=yes sends N(IPCOMP_SUPPORTED) (CPI, DEFLATE) after its TS payloads (RFC 7296
2.22); both agreeing puts the CPIs in the Child SA's keys and its established line."""

from __future__ import annotations

import dataclasses

from ikev2_harness import EAST, WEST, Net, make_policy

from pyswan.ike import kdf
from pyswan.ike.codec import SA, Nonce, Notify, decode_message
from pyswan.ike.constants import NotifyType, ProtocolId
from pyswan.ike.ikev2 import child as C
from pyswan.ike.ikev2.message import build_sk, open_sk
from pyswan.ike.proposals import parse_proposals


def _policy(side: str, *, ah: str | None = None, proto: str = "ah", compress: bool = False,
            **kw):
    if side == "west":
        p = make_policy(**kw)
    else:
        p = make_policy(local=EAST, remote=WEST, local_id="east", remote_id="west",
                        local_net="10.2.0.0/24", remote_net="10.1.0.0/24", **kw)
    ps = parse_proposals(proto, ah if proto == "ah" else None)
    if compress:
        ps = dataclasses.replace(ps, ipcomp=True)
    return dataclasses.replace(p, esp=ps)


def _ike_auth(net: Net) -> tuple[list, list]:
    """The decrypted IKE_AUTH request (as east reads it) and response (as west does)."""
    msgs = [(d, data) for d, data in net.sent if decode_message(data).exchange == 35]
    (_, req), (_, resp) = msgs[0], msgs[1]
    return (open_sk(net.east.engine.sa(1), req, decode_message(req)),
            open_sk(net.west.engine.sa(1), resp, decode_message(resp)))


def _sa(payloads: list) -> SA:
    return next(p for p in payloads if isinstance(p, SA))


def test_ah_child_sa_in_ike_auth_bytes_keys_and_lines():
    net = Net(_policy("west", ah="sha2_256"), _policy("east", ah="sha2_256,sha2_512"))
    net.up()
    req, resp = _ike_auth(net)
    w, e = net.west.installed[2], net.east.installed[2]
    # request: one AH proposal, SPI size 4, INTEG HMAC_SHA2_256_128 (12) and ESN yes/no
    (prop,) = _sa(req).proposals
    assert prop.protocol == ProtocolId.AH and prop.spi == w.spi_in.to_bytes(4, "big")
    assert [(t.type, t.id) for t in prop.transforms] == [(3, 12), (5, 1), (5, 0)]
    # proposal: last, length 36, #1, protocol AH (2), SPI size 4, 3 transforms, the SPI
    assert _sa(req).encode_body() == (bytes.fromhex("00000024 01 02 04 03")
                                      + w.spi_in.to_bytes(4, "big")
                                      + bytes.fromhex("03000008 0300000c"  # INTEG 12
                                                      "03000008 05000001"  # ESN yes
                                                      "00000008 05000000"))  # ESN no
    # response: AH, its SPI, the integrity algorithm and one ESN choice
    (acc,) = _sa(resp).proposals
    assert acc.protocol == ProtocolId.AH and acc.spi == e.spi_in.to_bytes(4, "big")
    assert [(t.type, t.id) for t in acc.transforms] == [(3, 12), (5, 1)]
    assert not any(isinstance(p, Notify) and p.type == NotifyType.IPCOMP_SUPPORTED
                   for p in req + resp)
    # keys: integrity only, crossed between the ends, from KEYMAT = prf+(SK_d, Ni | Nr)
    ike = net.west.engine.sa(1)
    km = kdf.child_keymat(ike.prf, ike.sk_d, ike.ni, ike.nr, 0, 32)
    for k in (w, e):
        assert k.protocol == "ah" and k.encr_name == "" and k.encr_key_in == b""
        assert k.integ_name == "hmac(sha256)" and k.trunc_bits == 128 and k.esn
    assert (w.integ_key_out, w.integ_key_in) == (km.integ_i, km.integ_r)
    assert (e.integ_key_in, e.integ_key_out) == (km.integ_i, km.integ_r)
    assert (w.spi_in, w.spi_out) == (e.spi_out, e.spi_in)
    assert f"Child SA #2 {{AH <0x{w.spi_in:08x}}} [10.1.0.0/24===10.2.0.0/24]" in \
        net.west.lines()[3]
    assert net.west.lines()[-1] == (
        "#2: initiator established Child SA using #1; IPsec tunnel [10.1.0.0/24===10.2.0.0/"
        f"24] {{AH/ESN=>0x{w.spi_out:08x} <0x{w.spi_in:08x} xfrm=HMAC_SHA2_256_128 "
        "DPD=passive}")
    assert net.east.lines()[-1].endswith(
        f"{{AH/ESN=>0x{e.spi_out:08x} <0x{e.spi_in:08x} xfrm=HMAC_SHA2_256_128 DPD=passive}}")


def test_ah_against_esp_is_no_proposal_chosen():
    net = Net(_policy("west"), make_policy(local=EAST, remote=WEST, local_id="east",
                                           remote_id="west", local_net="10.2.0.0/24",
                                           remote_net="10.1.0.0/24"))
    net.up()
    assert net.west.installed == {} and net.east.installed == {}
    assert "#2: IKE_AUTH response rejected Child SA with NO_PROPOSAL_CHOSEN" in \
        net.west.lines()
    assert net.west.engine.sa(1).established  # the IKE SA stays


def test_ah_child_rekey_with_create_child_sa():
    net = Net(_policy("west", esn="no"), _policy("east", esn="no"))
    net.up()
    old = net.west.installed[2]
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    assert list(net.west.installed) == [3] and list(net.east.installed) == [3]
    w, e = net.west.installed[3], net.east.installed[3]
    assert w.protocol == e.protocol == "ah" and w.spi_in != old.spi_in
    assert (w.spi_in, w.spi_out) == (e.spi_out, e.spi_in)
    assert (w.integ_key_out, w.integ_key_in) == (e.integ_key_in, e.integ_key_out)
    assert w.integ_key_out != old.integ_key_out and len(w.integ_key_out) == 64  # SHA2_512
    line = next(x for x in net.west.lines() if x.startswith("#3: initiator rekeyed"))
    assert line.endswith(f"{{AH=>0x{w.spi_out:08x} <0x{w.spi_in:08x} "
                         "xfrm=HMAC_SHA2_512_256 DPD=passive}")
    # the rekey request named the old SA as AH, and proposed AH with a KE (pfs=yes)
    ccsa = [data for d, data in net.sent
            if d == "west->east" and decode_message(data).exchange == 36]
    inner = open_sk(net.east.engine.sa(1), ccsa[0], decode_message(ccsa[0]))
    rekey = next(p for p in inner if isinstance(p, Notify) and p.type == NotifyType.REKEY_SA)
    assert rekey.protocol == ProtocolId.AH and rekey.spi == old.spi_in.to_bytes(4, "big")
    props = _sa(inner).proposals
    assert all(p.protocol == ProtocolId.AH for p in props)
    assert {t.type for p in props for t in p.transforms} == {3, 4, 5}  # no ENCR
    # the old one is gone from both ends (its delete found it by SPI)
    net.advance(1)
    assert 2 not in net.east.installed


def _deflate(cpi: int) -> bytes:
    return cpi.to_bytes(2, "big") + b"\x02"


def test_ipcomp_with_esp_in_ike_auth():
    net = Net(_policy("west", proto="esp", compress=True),
              _policy("east", proto="esp", compress=True))
    net.up()
    req, resp = _ike_auth(net)
    w, e = net.west.installed[2], net.east.installed[2]
    names = [type(p).__name__ for p in req]
    n_req = next(p for p in req if isinstance(p, Notify)
                 and p.type == NotifyType.IPCOMP_SUPPORTED)
    assert names.index("TSr") < req.index(n_req)  # after the TS payloads, as Libreswan
    assert (n_req.protocol, n_req.spi, n_req.data) == (0, b"", _deflate(w.cpi_in))
    assert n_req.encode_body() == bytes.fromhex("00004003") + _deflate(w.cpi_in)
    n_resp = next(p for p in resp if isinstance(p, Notify)
                  and p.type == NotifyType.IPCOMP_SUPPORTED)
    assert n_resp.data == _deflate(e.cpi_in)
    assert C.IPCOMP_FIRST_NEGOTIATED <= w.cpi_in <= C.IPCOMP_LAST_NEGOTIATED
    assert (w.cpi_in, w.cpi_out) == (e.cpi_out, e.cpi_in) and w.cpi_in != e.cpi_in
    assert w.protocol == "esp" and w.encr_key_out == e.encr_key_in
    assert f"{{ESP <0x{w.spi_in:08x} IPCOMP <0x{w.cpi_in:04x}}}" in net.west.lines()[3]
    assert net.west.lines()[-1].endswith(
        f"xfrm=AES_GCM_16_256 IPCOMP=>0x{w.cpi_out:08x} <0x{w.cpi_in:08x} DPD=passive}}")
    assert f"IPCOMP=>0x{e.cpi_out:08x} <0x{e.cpi_in:08x} DPD=passive}}" in \
        net.east.lines()[-1]


def test_ipcomp_with_ah():
    net = Net(_policy("west", compress=True), _policy("east", compress=True))
    net.up()
    w = net.west.installed[2]
    assert w.protocol == "ah" and w.cpi_in and w.cpi_out
    assert net.west.lines()[-1].endswith(
        f"xfrm=HMAC_SHA2_512_256 IPCOMP=>0x{w.cpi_out:08x} <0x{w.cpi_in:08x} DPD=passive}}")


def test_ipcomp_needs_both_ends():
    # the responder without compress=yes ignores the offer; the Child SA comes up plain
    net = Net(_policy("west", proto="esp", compress=True), _policy("east", proto="esp"))
    net.up()
    _, resp = _ike_auth(net)
    assert not any(isinstance(p, Notify) and p.type == NotifyType.IPCOMP_SUPPORTED
                   for p in resp)
    assert net.west.installed[2].cpi_in == 0 == net.east.installed[2].cpi_out
    assert "IPCOMP=>" not in net.west.lines()[-1]
    # and the initiator without it offers nothing for a compress=yes responder to take
    net = Net(_policy("west", proto="esp"), _policy("east", proto="esp", compress=True))
    net.up()
    req, _ = _ike_auth(net)
    assert not any(isinstance(p, Notify) for p in req
                   if getattr(p, "type", 0) == NotifyType.IPCOMP_SUPPORTED)
    assert net.east.installed[2].cpi_in == 0 and 2 in net.west.installed


def _ccsa(net: Net, extra: list) -> list:
    """West's IKE SA asks east for a new Child SA by hand; returns east's answer."""
    west = net.west.engine.sa(1)
    msgid = west.next_request_id
    west.next_request_id += 1
    payloads = [C.sa_payload(west.policy, 0x01020304), Nonce(bytes(32)),
                *C.ts_payloads(west.policy.local_ts, west.policy.remote_ts, initiator=True),
                *extra]
    net.inject(net.east, build_sk(west, 36, msgid, payloads, False))
    sends = [send for side, send in net.queue if side is net.east]
    net.queue.clear()
    return open_sk(west, sends[-1].data, decode_message(sends[-1].data))


def test_ipcomp_in_create_child_sa_responder():
    net = Net(_policy("west", proto="esp", compress=True),
              _policy("east", proto="esp", compress=True))
    net.up()
    reply = _ccsa(net, [C.ipcomp_notify(0x4321)])
    n = next(p for p in reply if isinstance(p, Notify)
             and p.type == NotifyType.IPCOMP_SUPPORTED)
    keys = net.east.installed[3]
    assert keys.cpi_out == 0x4321 and n.data == _deflate(keys.cpi_in)
    assert [type(p).__name__ for p in reply] == ["SA", "Nonce", "TSi", "TSr", "Notify"]


def test_ipcomp_bad_offers_are_no_proposal_chosen():
    net = Net(_policy("west", proto="esp", compress=True),
              _policy("east", proto="esp", compress=True))
    net.up()
    for data, why in ((b"\x43\x21\x03", "unsupported IPCOMP compression algorithm 3"),
                      (b"\x00\x10\x02", "illegal IPCOMP CPI 16"),
                      (b"\x43", "N(IPCOMP_SUPPORTED) is 1 octets, need 3")):
        reply = _ccsa(net, [Notify(0, b"", NotifyType.IPCOMP_SUPPORTED, data)])
        assert [(type(p).__name__, getattr(p, "type", 0)) for p in reply] == \
            [("Notify", NotifyType.NO_PROPOSAL_CHOSEN)]
        assert any(why in line for line in net.east.lines())
    assert list(net.east.installed) == [2]


def test_sa_payload_for_esp_unchanged_by_ah_support():
    # the ESP proposals still say ESP (protocol 3) with ENCR
    p = _policy("west", proto="esp")
    sa = decode_sa(C.sa_payload(p, 0xAABBCCDD))
    assert all(x.protocol == ProtocolId.ESP for x in sa.proposals)
    assert any(t.type == 1 for x in sa.proposals for t in x.transforms)


def decode_sa(payload) -> SA:
    return SA.decode_body(payload.data, 0, len(payload.data), False)


def test_ipcomp_rekey_gets_new_cpis_on_both_ends():
    net = Net(_policy("west", proto="esp", compress=True),
              _policy("east", proto="esp", compress=True))
    net.up()
    old = net.west.installed[2]
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    w, e = net.west.installed[3], net.east.installed[3]
    assert (w.cpi_in, w.cpi_out) == (e.cpi_out, e.cpi_in) and w.cpi_in != old.cpi_in
    ccsa = [data for d, data in net.sent
            if d == "west->east" and decode_message(data).exchange == 36]
    inner = open_sk(net.east.engine.sa(1), ccsa[0], decode_message(ccsa[0]))
    n = [p for p in inner if isinstance(p, Notify) and p.type == NotifyType.IPCOMP_SUPPORTED]
    assert [x.data for x in n] == [_deflate(w.cpi_in)]
    line = next(x for x in net.west.lines() if x.startswith("#3: initiator rekeyed"))
    assert f"IPCOMP=>0x{w.cpi_out:08x} <0x{w.cpi_in:08x}" in line


def test_unasked_ipcomp_in_a_response_is_refused():
    # ikev2_child.c: an initiator without compress=yes refuses an answer carrying IPCOMP;
    # a responder without it ignores the offer
    plain = _policy("west", proto="esp")
    offer = [C.ipcomp_notify(0x300)]
    assert C.peer_ipcomp(plain, offer, responder=False) == (
        "Unexpected IPCOMP request as our connection policy did not indicate support for it")
    assert C.peer_ipcomp(plain, offer, responder=True) == 0
    assert C.peer_ipcomp(_policy("west", compress=True), offer, responder=False) == 0x300


def test_ah_child_sa_delete_names_protocol_ah():
    """The Delete payload for an AH Child SA says AH (Libreswan looks SPIs up per
    protocol), and the peer deletes its side."""
    from pyswan.ike.codec import Delete

    net = Net(_policy("west", ah="sha2_256"), _policy("east", ah="sha2_256"))
    net.up()
    child = next(s for s, kind in net.west.states.items() if kind == "child")
    east_sa = net.east.engine.sa(1)  # opens what west sends
    net.handle(net.west, net.west.engine.delete_child(child, net.now))
    request = net.queue[0][1].data
    payloads = open_sk(east_sa, request, decode_message(request))
    net.run()
    deletes = [p for p in payloads if type(p) is Delete]
    assert [d.protocol for d in deletes] == [ProtocolId.AH]
    assert "child" not in net.east.states.values() and "child" not in net.west.states.values()
