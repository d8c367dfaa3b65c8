"""The ISAKMP codec: exact wire bytes, round trips, and strict rejection with the right
notification."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from pyswan.ike.ikev1.codec import (
    ID,
    KE,
    SA,
    Attribute,
    Cert,
    CertRequest,
    Delete,
    Hash,
    Header,
    IsakmpDecodeError,
    Message,
    ModeCfgAttributes,
    NatD,
    NatOA,
    Nonce,
    Notify,
    Proposal,
    Sig,
    Transform,
    VendorID,
    decode_header,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payloads,
    number_attribute,
)
from pyswan.ike.ikev1.constants import (
    CfgAttr,
    Exchange,
    Flag,
    IdType,
    IkeAttr,
    NotifyType,
    ProtocolId,
)
from pyswan.ike.ikev1.constants import Payload as PT

CKY_I = bytes.fromhex("0102030405060708")
CKY_R = bytes.fromhex("1112131415161718")


def header(exchange: int = Exchange.MAIN, flags: int = 0, msgid: int = 0) -> Header:
    return Header(CKY_I, CKY_R, 0, exchange, flags, msgid)


def test_sa_wire_bytes_by_hand() -> None:
    t = Transform(0, 1, [Attribute(IkeAttr.ENCRYPTION, 7), Attribute(IkeAttr.LIFE_DURATION,
                                                                      b"\x00\x01\x51\x80")])
    sa = SA([Proposal(1, ProtocolId.ISAKMP, b"", [t])])
    first, chain = encode_payloads([sa])
    assert first == PT.SA
    attrs = bytes.fromhex("80010007") + bytes.fromhex("000c0004") + b"\x00\x01\x51\x80"
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 0, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    body = struct.pack("!II", 1, 1) + proposal
    assert chain == struct.pack("!BBH", 0, 0, 4 + len(body)) + body
    assert decode_payloads(PT.SA, chain) == [sa]


def test_header_bytes_and_round_trip() -> None:
    payloads = [VendorID(b"v" * 16), KE(b"k" * 32)]
    wire = encode_message(header(flags=0), payloads)
    assert wire[:16] == CKY_I + CKY_R
    assert wire[16] == PT.VID and wire[17] == 0x10 and wire[18] == Exchange.MAIN
    assert struct.unpack("!I", wire[24:28])[0] == len(wire)
    msg = decode_message(wire)
    assert msg.payloads == payloads and not msg.encrypted


def test_every_payload_round_trips() -> None:
    payloads = [
        SA([Proposal(1, ProtocolId.ESP, b"\x00\x00\x12\x34",
                     [Transform(0, 12, [Attribute(4, 1), Attribute(6, 128)]),
                      Transform(1, 3, [Attribute(4, 1)])])]),
        KE(b"\x01" * 256), Nonce(b"n" * 32),
        ID(IdType.IPV4_ADDR_SUBNET, bytes([10, 1, 0, 0, 255, 255, 255, 0]), 17, 500),
        ID(IdType.FQDN, b"east"), Cert(4, b"der"), CertRequest(4, b""), Hash(b"h" * 20),
        Sig(b"s" * 64), Notify(NotifyType.R_U_THERE, ProtocolId.ISAKMP, CKY_I + CKY_R,
                               b"\x00\x00\x00\x07"),
        Delete(ProtocolId.ESP, [b"\x00\x00\x10\x00", b"\x00\x00\x10\x01"], 4),
        Delete(ProtocolId.ISAKMP, [CKY_I + CKY_R], 16),
        VendorID(b"x" * 16), NatD(b"d" * 20), NatD(b"e" * 20, draft=True),
        NatOA(IPv4Address("10.0.0.1")), NatOA(IPv6Address("2001:db8::1"), draft=True),
        ModeCfgAttributes(1, 7, [Attribute(CfgAttr.XAUTH_TYPE, 0),
                                 Attribute(CfgAttr.XAUTH_USER_NAME, b""),
                                 Attribute(CfgAttr.INTERNAL_IP4_ADDRESS, bytes(4))]),
    ]
    first, chain = encode_payloads(payloads)
    assert decode_payloads(first, chain) == payloads
    # draft NAT-D/NAT-OA keep their old payload numbers on the wire
    assert PT.NAT_D_DRAFTS in chain and PT.NAT_OA_DRAFTS in chain


def test_number_attribute_picks_the_form() -> None:
    assert number_attribute(12, 3600) == Attribute(12, 3600)
    assert number_attribute(12, 86400) == Attribute(12, b"\x01\x51\x80")
    assert Attribute(12, b"\x01\x51\x80").as_int() == 86400


def test_id_subnet_and_range_addresses() -> None:
    sub = ID(IdType.IPV4_ADDR_SUBNET, bytes([10, 1, 0, 7, 255, 255, 255, 0]))
    assert sub.addresses() == (IPv4Address("10.1.0.0"), IPv4Address("10.1.0.255"))
    rng = ID(IdType.IPV4_ADDR_RANGE, bytes([10, 0, 0, 1, 10, 0, 0, 9]))
    assert rng.addresses() == (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.9"))
    assert ID(IdType.FQDN, b"x").addresses() is None


def _err(first: int, body: bytes) -> IsakmpDecodeError:
    with pytest.raises(IsakmpDecodeError) as e:
        decode_payloads(first, body)
    return e.value


def _generic(np: int, body: bytes, reserved: int = 0) -> bytes:
    return struct.pack("!BBH", np, reserved, 4 + len(body)) + body


@pytest.mark.parametrize("first,body,notify", [
    (PT.SA, struct.pack("!II", 2, 1), NotifyType.DOI_NOT_SUPPORTED),
    (PT.SA, struct.pack("!II", 1, 2), NotifyType.SITUATION_NOT_SUPPORTED),
    (PT.SA, struct.pack("!II", 1, 1), NotifyType.BAD_PROPOSAL_SYNTAX),  # no proposal
    # a proposal announcing 2 transforms but carrying 1
    (PT.SA, struct.pack("!II", 1, 1) + _generic(0, bytes([1, 1, 0, 2]) + _generic(
        0, bytes([0, 1, 0, 0]))), NotifyType.BAD_PROPOSAL_SYNTAX),
    # a transform's attribute overruns it
    (PT.SA, struct.pack("!II", 1, 1) + _generic(0, bytes([1, 1, 0, 1]) + _generic(
        0, bytes([0, 1, 0, 0]) + bytes.fromhex("000c0008aa"))), NotifyType.BAD_PROPOSAL_SYNTAX),
    (PT.ID, bytes([1, 0, 0, 0, 1, 2, 3]), NotifyType.INVALID_ID_INFORMATION),
    (PT.ID, bytes([4, 0, 0, 0, 10, 0, 0, 0, 255, 0, 255, 0]), NotifyType.INVALID_ID_INFORMATION),
    (PT.ID, bytes([7, 0, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1]), NotifyType.INVALID_ID_INFORMATION),
    (PT.ID, bytes([99, 0, 0, 0, 1]), NotifyType.INVALID_ID_INFORMATION),
    (PT.NONCE, b"short", NotifyType.PAYLOAD_MALFORMED),
    (PT.KE, b"", NotifyType.INVALID_KEY_INFORMATION),
    (PT.HASH, b"", NotifyType.INVALID_HASH_INFORMATION),
    (PT.D, struct.pack("!IBBH", 1, 3, 4, 2) + b"\0" * 4, NotifyType.INVALID_SPI),
    (PT.N, struct.pack("!IBBH", 1, 3, 9, 1), NotifyType.PAYLOAD_MALFORMED),
    (PT.NAT_OA, bytes([1, 0, 0, 0, 1, 2]), NotifyType.INVALID_ID_INFORMATION),
    (PT.ATTR, bytes([9, 0, 0, 0]), NotifyType.PAYLOAD_MALFORMED),
])
def test_bad_payload_bodies(first: int, body: bytes, notify: int) -> None:
    assert _err(first, _generic(0, body)).notify == notify


def test_chain_errors() -> None:
    assert _err(PT.VID, _generic(0, b"x", reserved=1)).notify == NotifyType.PAYLOAD_MALFORMED
    assert _err(99, _generic(0, b"x")).notify == NotifyType.INVALID_PAYLOAD_TYPE
    assert _err(PT.P, _generic(0, b"x")).notify == NotifyType.INVALID_PAYLOAD_TYPE
    assert _err(PT.VID, _generic(0, b"x") + b"junk").notify == \
        NotifyType.UNEQUAL_PAYLOAD_LENGTHS
    assert _err(PT.VID, struct.pack("!BBH", 0, 0, 3)).notify == NotifyType.PAYLOAD_MALFORMED
    assert _err(PT.VID, struct.pack("!BBH", 0, 0, 9) + b"x").notify == \
        NotifyType.PAYLOAD_MALFORMED
    # padding is tolerated only after decryption
    assert decode_payloads(PT.VID, _generic(0, b"x") + bytes(7), padded=True) == \
        [VendorID(b"x")]


def test_header_errors() -> None:
    good = encode_message(header(), [VendorID(b"x")])
    assert decode_message(good).payloads == [VendorID(b"x")]
    cases = [
        (good[:20], NotifyType.UNEQUAL_PAYLOAD_LENGTHS),
        (good[:17] + b"\x20" + good[18:], NotifyType.INVALID_MAJOR_VERSION),
        (good[:17] + b"\x11" + good[18:], NotifyType.INVALID_MINOR_VERSION),
        (good[:19] + b"\x08" + good[20:], NotifyType.INVALID_FLAGS),
        (good + b"x", NotifyType.UNEQUAL_PAYLOAD_LENGTHS),
        (bytes(8) + good[8:], NotifyType.INVALID_COOKIE),
    ]
    for data, notify in cases:
        with pytest.raises(IsakmpDecodeError) as e:
            decode_message(data)
        assert e.value.notify == notify, data.hex()


def test_encrypted_message_keeps_ciphertext() -> None:
    h = header(Exchange.QUICK, Flag.ENCRYPTION, 0x1234)
    wire = h.pack(PT.HASH, 28 + 32) + b"c" * 32
    msg = decode_message(wire)
    assert isinstance(msg, Message) and msg.encrypted and msg.ciphertext == b"c" * 32
    assert decode_header(wire).message_id == 0x1234
