"""scapy's IKEv2 dissector as an independent decoder of what the codec encodes.

scapy is lenient (it dissects garbage without complaint), so it only checks field values
of well-formed messages; strictness is tested in test_codec.py and test_codec_fuzz.py.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.ike.codec import (
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    KE,
    SA,
    SK,
    SKF,
    Delete,
    IDi,
    Message,
    Nonce,
    Notify,
    Proposal,
    TrafficSelector,
    Transform,
    TSi,
    TSr,
    VendorID,
    decode_message,
    encode_message,
)
from pyswan.ike.constants import (
    AuthMethod,
    CfgType,
    ConfigAttribute,
    EncrId,
    ExchangeType,
    HeaderFlag,
    IdType,
    IntegId,
    KeMethod,
    NotifyType,
    PrfId,
    ProtocolId,
    TransformType,
    TsType,
)

ikev2 = pytest.importorskip("scapy.contrib.ikev2")
NoPayload = pytest.importorskip("scapy.packet").NoPayload
raw = pytest.importorskip("scapy.compat").raw

SPI_I = bytes.fromhex("a1a2a3a4a5a6a7a8")
SPI_R = bytes.fromhex("b1b2b3b4b5b6b7b8")


def chain(pkt) -> list:
    """The packets linked through ``.payload`` (scapy's representation of a chain)."""
    if isinstance(pkt, list):
        return [q for p in pkt for q in chain(p)]
    out = []
    while pkt is not None and not isinstance(pkt, NoPayload):
        out.append(pkt)
        pkt = pkt.payload
    return out


def check_header(pkt, msg: Message, wire: bytes) -> None:
    assert pkt.init_SPI == msg.spi_i and pkt.resp_SPI == msg.spi_r
    assert pkt.version == (msg.major << 4 | msg.minor)
    assert pkt.exch_type == msg.exchange
    assert int(pkt.flags) == msg.flags
    assert pkt.id == msg.message_id
    assert pkt.length == len(wire)


def check_sa(scapy_sa, sa: SA) -> None:
    proposals = chain(scapy_sa.prop)
    assert len(proposals) == len(sa.proposals)
    for sp, proposal in zip(proposals, sa.proposals, strict=True):
        assert sp.proposal == proposal.number
        assert sp.proto == proposal.protocol
        assert sp.SPIsize == len(proposal.spi) and bytes(sp.SPI) == proposal.spi
        transforms = chain(sp.trans)
        assert sp.trans_nb == len(transforms) == len(proposal.transforms)
        for st_, transform in zip(transforms, proposal.transforms, strict=True):
            assert st_.transform_type == transform.type
            assert st_.transform_id == transform.id
            if transform.key_length is None:
                assert st_.length == 8
            else:
                assert st_.length == 12 and st_.key_length == transform.key_length


def check_payload(sp, payload) -> None:
    """Compare one scapy payload with one of ours, field by field."""
    assert sp.length == 4 + len(payload.encode_body())
    assert (int(sp.flags) & 0x80 != 0) == payload.critical
    match payload:
        case SA():
            assert isinstance(sp, ikev2.IKEv2_SA)
            check_sa(sp, payload)
        case KE():
            assert isinstance(sp, ikev2.IKEv2_KE)
            assert (sp.group, sp.ke) == (payload.group, payload.data)
        case Nonce():
            assert isinstance(sp, ikev2.IKEv2_Nonce) and sp.nonce == payload.data
        case Notify():
            assert isinstance(sp, ikev2.IKEv2_Notify)
            assert (sp.proto, sp.SPIsize, sp.type) == (
                payload.protocol,
                len(payload.spi),
                payload.type,
            )
            assert bytes(sp.SPI or b"") == payload.spi
            assert bytes(sp.notify or b"") == payload.data
        case Delete():
            assert isinstance(sp, ikev2.IKEv2_Delete)
            assert (sp.proto, sp.SPIsize, sp.SPInum) == (
                payload.protocol,
                payload.spi_size,
                len(payload.spis),
            )
            assert list(sp.SPI) == payload.spis
        case TSi() | TSr():
            assert isinstance(sp, ikev2.IKEv2_TSi if type(payload) is TSi else ikev2.IKEv2_TSr)
            assert sp.number_of_TSs == len(payload.selectors)
            for ss, ts in zip(sp.traffic_selector, payload.selectors, strict=True):
                v6 = ts.ts_type == TsType.IPV6_ADDR_RANGE
                assert (ss.TS_type, ss.IP_protocol_ID, ss.start_port, ss.end_port) == (
                    ts.ts_type,
                    ts.ip_protocol,
                    ts.start_port,
                    ts.end_port,
                )
                start = ss.starting_address_v6 if v6 else ss.starting_address_v4
                end = ss.ending_address_v6 if v6 else ss.ending_address_v4
                assert (ip_address(start), ip_address(end)) == (ts.start_addr, ts.end_addr)
        case CP():
            assert isinstance(sp, ikev2.IKEv2_CP) and sp.CFGType == payload.cfg_type
            assert len(sp.attributes) == len(payload.attributes)
            for sa_, (attr_type, value) in zip(sp.attributes, payload.attributes, strict=True):
                assert (sa_.type, sa_.length) == (attr_type, len(value))
                assert raw(sa_)[4 : 4 + sa_.length] == value
        case IDi():
            assert isinstance(sp, ikev2.IKEv2_IDi)
            assert (sp.IDtype, bytes(sp.ID)) == (payload.id_type, payload.data)
        case AUTH():
            assert isinstance(sp, ikev2.IKEv2_AUTH)
            assert (sp.auth_type, sp.load) == (payload.method, payload.data)
        case CERT():
            assert isinstance(sp, ikev2.IKEv2_CERT) and sp.cert_encoding == payload.encoding
            assert raw(sp)[5 : sp.length] == payload.data
        case CERTREQ():
            assert isinstance(sp, ikev2.IKEv2_CERTREQ) and sp.cert_encoding == payload.encoding
            assert bytes(sp.cert_authority) == payload.data
        case VendorID():
            assert isinstance(sp, ikev2.IKEv2_VendorID) and sp.vendorID == payload.data
        case EAP():
            assert isinstance(sp, ikev2.IKEv2_EAP) and sp.load == payload.data
        case SK():
            assert isinstance(sp, ikev2.IKEv2_Encrypted)
            assert sp.next_payload == payload.first_inner and sp.load == payload.body
        case SKF():
            assert isinstance(sp, ikev2.IKEv2_Encrypted_Fragment)
            assert sp.next_payload == payload.first_inner
            assert (sp.frag_number, sp.frag_total) == (payload.frag_number, payload.total_fragments)
            assert sp.load == payload.body
        case _:
            raise AssertionError(f"no scapy comparison for {payload!r}")


def check_with_scapy(msg: Message) -> None:
    wire = encode_message(msg)
    pkt = ikev2.IKEv2(wire)
    check_header(pkt, msg, wire)
    payloads = chain(pkt.payload)
    assert len(payloads) == len(msg.payloads)
    for sp, payload in zip(payloads, msg.payloads, strict=True):
        check_payload(sp, payload)
    assert raw(pkt) == wire  # scapy rebuilds the same bytes
    assert decode_message(wire) == msg


def ike_sa_init_request() -> Message:
    T = TransformType
    proposals = [
        Proposal(
            1,
            ProtocolId.IKE,
            b"",
            [
                Transform(T.ENCR, EncrId.AES_GCM_16, 256),
                Transform(T.PRF, PrfId.HMAC_SHA2_512),
                Transform(T.KE, KeMethod.DH31),
                Transform(T.KE, KeMethod.DH19),
            ],
        ),
        Proposal(
            2,
            ProtocolId.IKE,
            b"",
            [
                Transform(T.ENCR, EncrId.CHACHA20_POLY1305),
                Transform(T.PRF, PrfId.HMAC_SHA2_256),
                Transform(T.KE, KeMethod.DH31),
            ],
        ),
        Proposal(
            3,
            ProtocolId.IKE,
            b"",
            [
                Transform(T.ENCR, EncrId.AES_CBC, 256),
                Transform(T.PRF, PrfId.HMAC_SHA2_256),
                Transform(T.INTEG, IntegId.HMAC_SHA2_256_128),
                Transform(T.KE, KeMethod.MODP2048),
            ],
        ),
        Proposal(
            4,
            ProtocolId.IKE,
            b"",
            [
                Transform(T.ENCR, EncrId.AES_CBC, 128),
                Transform(T.PRF, PrfId.HMAC_SHA1),
                Transform(T.INTEG, IntegId.HMAC_SHA1_96),
                Transform(T.KE, KeMethod.MODP2048),
            ],
        ),
    ]
    return Message(
        SPI_I,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        HeaderFlag.INITIATOR,
        0,
        [
            SA(proposals),
            KE(KeMethod.DH31, bytes(range(32))),
            Nonce(bytes(range(100, 132))),
            Notify.of(NotifyType.NAT_DETECTION_SOURCE_IP, b"\x11" * 20),
            Notify.of(NotifyType.NAT_DETECTION_DESTINATION_IP, b"\x22" * 20),
            Notify.of(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
            Notify.of(NotifyType.SIGNATURE_HASH_ALGORITHMS, bytes.fromhex("000200030004")),
        ],
    )


def test_ike_sa_init_request_against_scapy() -> None:
    check_with_scapy(ike_sa_init_request())


def test_selectors_delete_notify_cp_against_scapy() -> None:
    msg = Message(
        SPI_I,
        SPI_R,
        ExchangeType.INFORMATIONAL,
        HeaderFlag.RESPONSE,
        9,
        [
            TSi(
                [
                    TrafficSelector(
                        TsType.IPV4_ADDR_RANGE,
                        0,
                        0,
                        65535,
                        ip_address("10.1.0.0"),
                        ip_address("10.1.255.255"),
                    ),
                    TrafficSelector(
                        TsType.IPV6_ADDR_RANGE,
                        17,
                        500,
                        4500,
                        ip_address("2001:db8::"),
                        ip_address("2001:db8::ffff"),
                    ),
                ]
            ),
            TSr(
                [
                    TrafficSelector(
                        TsType.IPV4_ADDR_RANGE,
                        6,
                        443,
                        443,
                        ip_address("192.0.2.7"),
                        ip_address("192.0.2.7"),
                    )
                ]
            ),
            Delete(ProtocolId.ESP, 4, [b"\xc0\x01\x02\x03", b"\xc0\x04\x05\x06"]),
            Delete(ProtocolId.IKE, 0, []),
            Notify(ProtocolId.ESP, b"\xc0\x01\x02\x03", NotifyType.REKEY_SA, b""),
            Notify.of(NotifyType.AUTHENTICATION_FAILED),
            CP(
                CfgType.CFG_REPLY,
                [
                    (ConfigAttribute.INTERNAL_IP4_ADDRESS, bytes([100, 64, 0, 1])),
                    (ConfigAttribute.INTERNAL_IP4_DNS, bytes([9, 9, 9, 9])),
                    (ConfigAttribute.INTERNAL_DNS_DOMAIN, b"example.org"),
                ],
            ),
        ],
    )
    check_with_scapy(msg)


def test_auth_payloads_against_scapy() -> None:
    msg = Message(
        SPI_I,
        SPI_R,
        ExchangeType.IKE_AUTH,
        HeaderFlag.INITIATOR,
        1,
        [
            IDi(IdType.FQDN, b"west.testing.libreswan.org"),
            CERT(4, b"\x30\x82\x01\x00certificate"),
            CERTREQ(4, bytes(range(20))),
            AUTH(AuthMethod.PSK, b"\x5a" * 32),
            VendorID(b"OEvyjoC"),
            EAP(bytes.fromhex("0201000a01") + b"alice"),
        ],
    )
    check_with_scapy(msg)


def test_sk_and_skf_against_scapy() -> None:
    check_with_scapy(
        Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, 0x08, 1, [SK(35, bytes(range(80)))])
    )
    check_with_scapy(
        Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, 0x20, 1, [SKF(36, 2, 5, bytes(range(60)))])
    )


SCAPY_PARSED_NOTIFIES = {16406, 16407, 16408, 16409}  # REDIRECT_SUPPORTED ... REDIRECT_REPLY
addresses_v4 = st.integers(0, 2**32 - 1).map(lambda n: ip_address(n))
notifies = st.builds(
    Notify,
    protocol=st.sampled_from([0, 1, 3]),
    spi=st.sampled_from([b"", b"\x01\x02\x03\x04"]),
    # scapy parses the data of a few notify types itself (REDIRECT, REDIRECTED_FROM ...):
    # compare opaque-data types only
    type=st.integers(1, 65535).filter(lambda t: t not in SCAPY_PARSED_NOTIFIES),
    data=st.binary(max_size=40),
)
selectors = st.builds(
    lambda proto, p1, p2, a, b: TrafficSelector(7, proto, p1, p2, a, b),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 65535),
    addresses_v4,
    addresses_v4,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(notifies, st.lists(selectors, max_size=3).map(TSi)), max_size=6))
def test_random_notifies_and_selectors_against_scapy(payloads: list) -> None:
    check_with_scapy(Message(SPI_I, SPI_R, ExchangeType.INFORMATIONAL, 0, 3, payloads))
