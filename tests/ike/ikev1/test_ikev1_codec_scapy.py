"""scapy's ISAKMP layer as an independent codec for what it covers (header, SA/P/T with
attributes, KE, ID, HASH, NONCE, N, D, VID, SIG): what scapy builds we decode to the same
values, and what we encode scapy dissects to the same values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.ike.ikev1.codec import (
    ID,
    KE,
    SA,
    Attribute,
    Delete,
    Hash,
    Header,
    Nonce,
    Notify,
    Proposal,
    Sig,
    Transform,
    VendorID,
    decode_message,
    encode_message,
)

isakmp = pytest.importorskip("scapy.layers.isakmp")

CKY_I = bytes.fromhex("a1a2a3a4a5a6a7a8")
CKY_R = bytes.fromhex("b1b2b3b4b5b6b7b8")


def test_scapy_built_main_mode_sa_decodes() -> None:
    s = isakmp
    pkt = (s.ISAKMP(init_cookie=CKY_I, resp_cookie=CKY_R, exch_type=2)
           / s.ISAKMP_payload_SA(prop=s.ISAKMP_payload_Proposal(
               trans_nb=2,
               trans=s.ISAKMP_payload_Transform(
                   transform_count=1,
                   transforms=[("Encryption", "AES-CBC"), ("Hash", "SHA"),
                               ("Authentication", "PSK"), ("GroupDesc", "2048MODPgr"),
                               ("KeyLength", 256), ("LifeType", "Seconds"),
                               ("LifeDuration", 86400)])
               / s.ISAKMP_payload_Transform(transform_count=2,
                                            transforms=[("Encryption", "3DES-CBC")])))
           / s.ISAKMP_payload_VendorID(VendorID=b"v" * 16))
    msg = decode_message(bytes(pkt))
    assert msg.header.exchange == 2 and msg.header.icookie == CKY_I
    sa, vid = msg.payloads
    assert isinstance(sa, SA) and vid == VendorID(b"v" * 16)
    (prop,) = sa.proposals
    t1, t2 = prop.transforms
    assert (t1.number, t1.transform_id) == (1, 1)
    assert [(a.type, a.as_int()) for a in t1.attributes] == [
        (1, 7), (2, 2), (3, 1), (4, 14), (14, 256), (11, 1), (12, 86400)]
    assert t2.attributes == [Attribute(1, 5)]


u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
data = st.binary(min_size=8, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 16), min_size=1, max_size=6), data, data,
       st.integers(0, 2**32 - 1), u16, st.binary(min_size=4, max_size=4))
def test_our_encoding_dissects_in_scapy(types: list[int], ke: bytes, nonce: bytes,
                                        msgid: int, notify: int, spi: bytes) -> None:
    s = isakmp
    attrs = [Attribute(t, 1000 + t) for t in types]
    payloads = [
        SA([Proposal(1, 3, spi, [Transform(1, 12, attrs)])]),
        KE(ke), Nonce(nonce), ID(1, bytes([10, 0, 0, 1]), 17, 500), Hash(nonce),
        Notify(notify, 3, spi, b"xy"), Delete(3, [spi], 4), Sig(ke), VendorID(nonce),
    ]
    wire = encode_message(Header(CKY_I, CKY_R, 0, 32, 0, msgid), payloads)
    pkt = s.ISAKMP(wire)
    assert pkt.init_cookie == CKY_I and pkt.resp_cookie == CKY_R
    assert pkt.id == msgid and pkt.length == len(wire) and pkt.exch_type == 32
    p = pkt[s.ISAKMP_payload_Proposal]
    assert p.SPI == spi and p.trans_nb == 1 and p.proto == 3
    t = pkt[s.ISAKMP_payload_Transform]
    assert t.transform_id == 12 and t.length == 8 + 4 * len(types)
    assert pkt[s.ISAKMP_payload_KE].ke == ke
    assert pkt[s.ISAKMP_payload_Nonce].nonce == nonce
    i = pkt[s.ISAKMP_payload_ID]
    assert (i.IDtype, i.ProtoID, i.Port, i.IdentData) == (1, 17, 500, "10.0.0.1")
    assert pkt[s.ISAKMP_payload_Hash].hash == nonce
    n = pkt[s.ISAKMP_payload_Notify]
    assert (n.notify_msg_type, n.SPI, n.notify_data, n.proto) == (notify, spi, b"xy", 3)
    d = pkt[s.ISAKMP_payload_Delete]
    assert (d.SPIcount, d.SPIsize, d.SPIs) == (1, 4, [spi])
    assert pkt[s.ISAKMP_payload_SIG].sig == ke
    assert pkt[s.ISAKMP_payload_VendorID].VendorID == nonce
