"""Quick Mode proposal handling: several offers (RFC 2408 4.2: Proposal payloads sharing a
number form one offer, offers are alternatives), the responder's pick in the peer's order
as Libreswan's parse_ipsec_sa_body() makes it, and the Commit Flag (RFC 2408 3.1), which
Libreswan ignores."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.ikev1 import crypto as C
from pyswan.ike.ikev1.codec import (
    SA,
    Attribute,
    Notify,
    Proposal,
    decode_message,
    decode_payloads,
)
from pyswan.ike.ikev1.constants import EncapMode, Exchange, Flag, NotifyType, ProtocolId
from pyswan.ike.ikev1.proposals import NoProposalChosen, phase2_sa, select_phase2
from pyswan.ike.proposals import parse_proposals

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ikev1_harness import RC_DEBUG, Net, east_policy, make_policy  # noqa: E402


def esp(text: str):
    return parse_proposals("esp", text, ike_version=1, pfs=False)


def _offer(text: str, number: int, spi: int = 0x1234, protocol: int = ProtocolId.ESP
           ) -> Proposal:
    (prop,) = phase2_sa(esp(text), spi, EncapMode.TUNNEL, 3600, None).proposals
    return Proposal(number, protocol, prop.spi, prop.transforms)


def test_first_acceptable_offer_in_the_peers_order() -> None:
    """Offer 1 is an AH+ESP bundle (no AH here: passed over), offer 2 has nothing we
    accept, offer 3 is taken, and of its transforms the peer's first acceptable one."""
    sa = SA([_offer("aes128-sha1", 1, protocol=ProtocolId.AH), _offer("aes128-sha1", 1),
             _offer("aes_gcm256", 2), _offer("3des-md5,aes256-sha2_256,aes128-sha1", 3,
                                                  spi=0x5678)])
    c, spi = select_phase2(sa, esp("aes128-sha1,aes256-sha2_256"), (EncapMode.TUNNEL,),
                           None, 28800)
    assert (c.proposal, spi) == (3, 0x5678)
    assert (c.encr, c.key_bits, c.integ) == (A.AES_CBC, 256, A.INTEG_HMAC_SHA2_256_128)


def test_offer_problems() -> None:
    mine = esp("aes128-sha1")
    two_esp = SA([_offer("aes128-sha1", 1), _offer("aes128-sha1", 1)])
    with pytest.raises(NoProposalChosen) as e:
        select_phase2(two_esp, mine, (EncapMode.TUNNEL,), None, 28800)
    assert e.value.notify == NotifyType.BAD_PROPOSAL_SYNTAX
    with pytest.raises(NoProposalChosen) as e:
        select_phase2(SA([_offer("aes128-sha1", 1, protocol=ProtocolId.ISAKMP)]), mine,
                      (EncapMode.TUNNEL,), None, 28800)
    assert e.value.notify == NotifyType.INVALID_PROTOCOL_ID
    with pytest.raises(NoProposalChosen) as e:
        select_phase2(SA([_offer("3des-md5", 1), _offer("aes_gcm128", 2)]), mine,
                      (EncapMode.TUNNEL,), None, 28800)
    assert e.value.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert str(e.value) == "no acceptable Proposal in IPsec SA"


def test_several_esp_proposals_end_to_end() -> None:
    """esp= with several proposals: the initiator offers them all (one Proposal, its
    transforms in order); the responder takes the first one it also allows."""
    net = Net(make_policy(esp="aes128-sha2_512,3des-sha1,aes256-sha1"),
              east_policy(esp="aes256-sha1,3des-sha1"))
    net.up()
    (w,) = net.west.installed.values()
    (e,) = net.east.installed.values()
    assert w.algorithms == e.algorithms == "3DES_CBC-HMAC_SHA1_96"
    assert w.encr_key_out == e.encr_key_in and len(w.encr_key_out) == 24
    line = next(x for x in net.west.lines() if "initiating Quick Mode" in x)
    assert "proposal=AES_CBC_128-HMAC_SHA2_512_256, 3DES_CBC-HMAC_SHA1_96, " \
           "AES_CBC_256-HMAC_SHA1_96" in line, line


def test_3des_phase1_and_phase2() -> None:
    """The legacy suite end to end: 3DES-CBC (24-octet key, so SKEYID_e is expanded
    by RFC 2409 appendix B) with SHA-1 and MODP1024/1536."""
    net = Net(make_policy(ike="3des-sha1;modp1536", esp="3des-md5"),
              east_policy(ike="3des-sha1;modp1536", esp="3des-md5"))
    net.up()
    assert any("ISAKMP SA established {auth=PRESHARED_KEY cipher=3DES_CBC integ=HMAC_SHA1 "
               "group=MODP1536}" in x for x in net.west.lines()), net.west.lines()
    sa = next(iter(net.west.engine.isakmp_sas.values()))
    assert len(sa.enc_key) == 24 and sa.enc_key[:20] != sa.keys.e[:20]
    (w,) = net.west.installed.values()
    assert w.algorithms == "3DES_CBC-HMAC_MD5_96" and w.encr_name == "cbc(des3_ede)"


def test_commit_flag_is_ignored_like_libreswan() -> None:
    net = Net()
    net.initiate()
    # deliver everything up to west's Quick Mode request, then set its Commit Flag
    while net.queue:
        side, send = net.queue[0]
        if side is net.west and send.data[18] == Exchange.QUICK:
            break
        net.step()
    side, send = net.queue.popleft()
    data = bytearray(send.data)
    data[19] |= Flag.COMMIT
    net.queue.appendleft((side, dataclasses.replace(send, data=bytes(data))))
    net.run()
    assert decode_message(bytes(data)).header.flags & Flag.COMMIT
    debug = [t for _s, t, rc in net.east.log if rc == RC_DEBUG]
    assert "IKE message has the Commit Flag set but Pluto doesn't implement this feature " \
           "due to security concerns; ignoring flag" in debug
    # no CONNECTED notify is awaited or sent: both ends are up after three messages
    assert [d.ok for d in net.west.done] == [True]
    assert len(net.east.installed) == 1
    qm = [d for _dr, d in net.sent if d[18] == Exchange.QUICK]
    assert len(qm) == 3 and not any(d[19] & Flag.COMMIT for d in qm[1:])


def test_responder_lifetime_notify_in_the_reply_is_accepted() -> None:
    """Libreswan sends no RESPONDER-LIFETIME (RFC 2407 4.6.3.1) but peers such as Cisco
    put one in the Quick Mode reply; the initiator accepts the reply all the same (the
    notify is covered by HASH(2) like any other payload)."""
    net = Net(make_policy(pfs=False), east_policy(pfs=False))
    net.initiate()
    qm1 = b""
    while net.queue:
        side, send = net.queue[0]
        if send.data[18] == Exchange.QUICK:
            if side is net.west:
                qm1 = send.data
            else:
                break
        net.step()
    side, send = net.queue.popleft()
    east_sa = next(iter(net.east.engine.isakmp_sas.values()))
    (child,) = east_sa.children.values()
    block = east_sa.choice.encr.block_size
    iv = qm1[-block:]  # the responder's IV: the request's last cipher block
    msg = decode_message(send.data)
    plain, _ = C.decrypt(east_sa.choice.encr, east_sa.enc_key, iv, msg.ciphertext)
    payloads = decode_payloads(msg.header.next_payload, plain, padded=True)
    life = Attribute(1, 1).pack() + Attribute(2, (3600).to_bytes(4, "big")).pack()
    rest = payloads[1:] + [Notify(NotifyType.RESPONDER_LIFETIME, ProtocolId.ESP,
                                  child.spi_in.to_bytes(4, "big"), life)]
    prf, a = east_sa.choice.prf, east_sa.keys.a
    wire, child.iv = net.east.engine.hashed_message(
        east_sa, Exchange.QUICK, child.message_id, rest, iv,
        lambda c: C.qm_hash2(prf, a, child.message_id, child.ni, c))
    net.queue.appendleft((side, dataclasses.replace(send, data=wire)))
    net.run()
    assert [d.ok for d in net.west.done] == [True]
    assert any("IPsec SA established" in x for x in net.east.lines())
    assert len(net.west.installed) == len(net.east.installed) == 1
