"""IKEv2 codec: byte-exact encodings written from the RFC 7296 layouts, round trips, and
malformed input mapped to the right notification."""

from __future__ import annotations

import struct
from ipaddress import ip_address

import pytest

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
    GenericPayload,
    IDi,
    IDr,
    IkeDecodeError,
    IkeEncodeError,
    InvalidMajorVersion,
    Message,
    Nonce,
    Notify,
    Proposal,
    RawTrafficSelector,
    TrafficSelector,
    Transform,
    TSi,
    TSr,
    UnsupportedCriticalPayload,
    VendorID,
    decode_header,
    decode_message,
    decode_payloads,
    describe_payloads,
    encode_message,
    encode_payloads,
    sk_prefix,
    skf_prefix,
)
from pyswan.ike.constants import (
    AuthMethod,
    CfgType,
    ConfigAttribute,
    EncrId,
    ExchangeType,
    HeaderFlag,
    IdType,
    KeMethod,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
    TsType,
    exchange_name,
    notify_name,
    payload_name,
)

SPI_I = bytes.fromhex("0011223344556677")
SPI_R = bytes.fromhex("8899aabbccddeeff")
ZERO_SPI = bytes(8)


def h(text: str) -> bytes:
    """Hex with whitespace and # comments, so expected bytes can be laid out like the RFC."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex("".join("".join(lines).split()))


def ike_sa_init() -> Message:
    return Message(
        SPI_I,
        ZERO_SPI,
        ExchangeType.IKE_SA_INIT,
        HeaderFlag.INITIATOR,
        0,
        [
            SA(
                [
                    Proposal(
                        1,
                        ProtocolId.IKE,
                        b"",
                        [
                            Transform(TransformType.ENCR, EncrId.AES_GCM_16, 256),
                            Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
                            Transform(TransformType.KE, KeMethod.DH31),
                        ],
                    )
                ]
            ),
            KE(KeMethod.DH31, b"\x41" * 32),
            Nonce(b"\x4e" * 16),
            Notify.of(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
        ],
    )


IKE_SA_INIT_WIRE = h(
    """
    0011223344556677 0000000000000000   # SPIi, SPIr
    21 20 22 08 00000000 00000088       # next=SA, version 2.0, IKE_SA_INIT, I, MID 0, len 136
    22 00 0028                          # SA: next=KE, length 40
      00 00 0024 01 01 00 03            #   last proposal, length 36, #1, IKE, no SPI, 3 transforms
        03 00 000c 01 00 0014 800e 0100 #   ENCR AES_GCM_16, Key Length (TV) 256
        03 00 0008 02 00 0005           #   PRF HMAC_SHA2_256
        00 00 0008 04 00 001f           #   KE 31 (Curve25519), last transform
    28 00 0028 001f 0000                # KE: next=Ni, length 40, group 31, RESERVED
    """
    + "41" * 32
    + """
    29 00 0014                          # Ni: next=N, length 20
    """
    + "4e" * 16
    + """
    00 00 0008 00 00 402e               # N: last, length 8, no protocol/SPI, 16430
"""
)


# --- byte-exact encodings ------------------------------------------------------------------


def test_ike_sa_init_encodes_byte_exact() -> None:
    assert encode_message(ike_sa_init()) == IKE_SA_INIT_WIRE


def test_ike_sa_init_decodes_field_by_field() -> None:
    msg = decode_message(IKE_SA_INIT_WIRE)
    assert (msg.spi_i, msg.spi_r, msg.exchange, msg.flags, msg.message_id) == (
        SPI_I,
        ZERO_SPI,
        34,
        0x08,
        0,
    )
    assert (msg.major, msg.minor) == (2, 0)
    assert msg.is_initiator and not msg.is_response
    sa, ke, nonce, notify = msg.payloads
    assert sa.proposals[0].transforms[0] == Transform(1, 20, 256)
    assert sa.proposals[0].transforms[2].key_length is None
    assert ke.group == 31 and ke.data == b"A" * 32
    assert msg.get(Nonce) is nonce and nonce.data == b"N" * 16
    assert msg.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is notify
    assert msg.notify(NotifyType.COOKIE) is None
    assert msg == ike_sa_init()


IKE_AUTH_INNER = h("""
    27 00 000c 02 000000 77657374             # IDi: next=AUTH, FQDN "west"
    2c 00 000c 02 000000 aaaaaaaa             # AUTH: next=TSi, shared key MAC
    2d 00 0018 01 000000                      # TSi: next=TSr, one selector
      07 00 0010 0000 ffff c0000100 c00001ff  #   IPv4, any protocol, 0-65535, 192.0.1.0-255
    29 00 0018 01 000000                      # TSr: next=N
      07 06 0010 0050 0050 c0000200 c00002ff  #   IPv4, TCP, port 80, 192.0.2.0-255
    00 00 0008 00 00 4000                     # N(INITIAL_CONTACT), last
""")


def ike_auth_inner() -> list:
    return [
        IDi(IdType.FQDN, b"west"),
        AUTH(AuthMethod.PSK, b"\xaa" * 4),
        TSi(
            [
                TrafficSelector(
                    TsType.IPV4_ADDR_RANGE,
                    0,
                    0,
                    65535,
                    ip_address("192.0.1.0"),
                    ip_address("192.0.1.255"),
                )
            ]
        ),
        TSr(
            [
                TrafficSelector(
                    TsType.IPV4_ADDR_RANGE,
                    6,
                    80,
                    80,
                    ip_address("192.0.2.0"),
                    ip_address("192.0.2.255"),
                )
            ]
        ),
        Notify.of(NotifyType.INITIAL_CONTACT),
    ]


def test_inner_payloads_encode_byte_exact() -> None:
    assert encode_payloads(ike_auth_inner()) == (PayloadType.IDi, IKE_AUTH_INNER)


def test_inner_payloads_decode() -> None:
    assert decode_payloads(PayloadType.IDi, IKE_AUTH_INNER) == ike_auth_inner()
    assert decode_payloads(PayloadType.IDi, memoryview(IKE_AUTH_INNER)) == ike_auth_inner()


def test_empty_chain() -> None:
    assert encode_payloads([]) == (0, b"")
    assert decode_payloads(0, b"") == []


def test_sk_prefix_byte_exact_and_matches_full_encoding() -> None:
    msg = Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, HeaderFlag.INITIATOR, 1, [])
    prefix = sk_prefix(msg, PayloadType.IDi, 100)
    assert prefix == h("""
        0011223344556677 8899aabbccddeeff
        2e 20 23 08 00000001 00000084     # next=SK, IKE_AUTH, MID 1, length 28+4+100
        23 00 0068                        # SK: first inner IDi, length 104
    """)
    body = bytes(range(100))
    whole = Message(SPI_I, SPI_R, 35, 8, 1, [SK(PayloadType.IDi, body)])
    assert prefix + body == encode_message(whole)
    decoded = decode_message(prefix + body)
    assert decoded.encrypted == SK(PayloadType.IDi, body)
    # the integrity-protected region ahead of the body is exactly the prefix
    wire = prefix + body
    assert wire[: len(wire) - len(decoded.encrypted.body)] == prefix


def test_sk_prefix_with_cleartext_payload_before_sk() -> None:
    msg = Message(SPI_I, SPI_R, ExchangeType.INFORMATIONAL, 0, 7, [VendorID(b"pyswan")])
    prefix = sk_prefix(msg, PayloadType.NONE, 20)
    assert prefix == h("""
        0011223344556677 8899aabbccddeeff
        2b 20 25 00 00000007 0000003e     # next=V, INFORMATIONAL, length 28+10+4+20 = 62
        2e 00 000a 7079737761 6e          # V: next=SK, "pyswan"
        00 00 0018                        # SK: empty inner chain, length 24
    """)
    body = b"\x00" * 20
    assert decode_message(prefix + body).payloads == [VendorID(b"pyswan"), SK(0, body)]


def test_skf_prefix_byte_exact() -> None:
    msg = Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, HeaderFlag.RESPONSE, 1, [])
    prefix = skf_prefix(msg, PayloadType.IDr, 1, 3, 50)
    assert prefix == h("""
        0011223344556677 8899aabbccddeeff
        35 20 23 20 00000001 00000056     # next=SKF, response, length 28+8+50 = 86
        24 00 003a 0001 0003              # SKF: first inner IDr, length 58, fragment 1 of 3
    """)
    body = b"\x11" * 50
    assert decode_message(prefix + body).payloads == [SKF(PayloadType.IDr, 1, 3, body)]
    later = skf_prefix(msg, 0, 3, 3, 50)
    assert decode_message(later + body).payloads == [SKF(0, 3, 3, body)]


def test_critical_bit_of_known_payload_is_kept() -> None:
    payloads = [VendorID(b"v", critical=True), Nonce(b"n" * 16)]
    first, wire = encode_payloads(payloads)
    assert wire[:4] == h("28 80 0005")
    assert decode_payloads(first, wire) == payloads
    assert decode_payloads(first, wire) != [VendorID(b"v"), Nonce(b"n" * 16)]


def test_transform_attributes_other_than_key_length_are_kept() -> None:
    wire = h("""
        00 00 0018 01 00 000c      # last transform, length 24, ENCR AES_CBC
          800e 0080                # Key Length 128 (TV)
          8011 1234                # unknown TV attribute 17
          0020 0004 deadbeef       # unknown TLV attribute 32, 4 bytes
    """)
    sa_body = h("00 00 0024 01 03 04 01 11223344") + wire  # ESP, SPI 4
    payloads = decode_payloads(PayloadType.SA, h("00 00 0028") + sa_body)
    transform = payloads[0].proposals[0].transforms[0]
    assert transform == Transform(1, 12, 128, [(0x8011, h("1234")), (0x0020, h("deadbeef"))])
    assert encode_payloads(payloads) == (PayloadType.SA, h("00 00 0028") + sa_body)


def test_unknown_ts_type_is_kept_raw() -> None:
    label = b"system_u:object_r:ipsec_spd_t:s0"
    ts = TSi(
        [
            RawTrafficSelector(TsType.SECLABEL, label),
            TrafficSelector(
                8, 17, 500, 500, ip_address("2001:db8::"), ip_address("2001:db8::ffff")
            ),
        ]
    )
    first, wire = encode_payloads([ts])
    assert wire[8:12] == bytes((10, 0)) + struct.pack("!H", 4 + len(label))
    assert decode_payloads(first, wire) == [ts]


def test_all_payload_kinds_round_trip() -> None:
    payloads = [
        SA(
            [
                Proposal(
                    1,
                    ProtocolId.ESP,
                    b"\x01\x02\x03\x04",
                    [
                        Transform(TransformType.ENCR, EncrId.AES_CBC, 128),
                        Transform(TransformType.INTEG, 12),
                        Transform(TransformType.ESN, 0),
                    ],
                ),
                Proposal(2, ProtocolId.AH, b"\x05\x06\x07\x08", [Transform(3, 12)]),
            ]
        ),
        KE(KeMethod.MODP2048, b"\x07" * 256),
        IDi(IdType.NULL, b""),
        IDr(IdType.IPV6_ADDR, ip_address("2001:db8::1").packed),
        CERT(4, b"\x30\x82"),
        CERTREQ(4, bytes(20)),
        AUTH(AuthMethod.DIGITAL_SIGNATURE, b"sig"),
        Nonce(b"\x00" * 256),
        Notify(ProtocolId.ESP, b"\xca\xfe\xba\xbe", NotifyType.REKEY_SA, b""),
        Delete(ProtocolId.ESP, 4, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"]),
        Delete(ProtocolId.IKE, 0, []),
        VendorID(b""),
        TSi([]),
        CP(
            CfgType.CFG_REPLY,
            [
                (ConfigAttribute.INTERNAL_IP4_ADDRESS, bytes([10, 0, 0, 1])),
                (ConfigAttribute.INTERNAL_DNS_DOMAIN, b"example.com"),
            ],
        ),
        EAP(h("01 05 0009 01") + b"user"),
        GenericPayload(250, b"opaque"),
    ]
    msg = Message(SPI_I, SPI_R, ExchangeType.CREATE_CHILD_SA, 0x28, 0xFFFFFFFF, payloads)
    wire = encode_message(msg)
    assert decode_message(wire) == msg
    assert encode_message(decode_message(wire)) == wire


def test_decode_header_fast_path() -> None:
    header = decode_header(IKE_SA_INIT_WIRE)
    assert (header.spi_i, header.next_payload, header.exchange) == (SPI_I, 33, 34)
    assert (header.major, header.minor, header.length) == (2, 0, 136)
    assert header.is_initiator and not header.is_response
    assert "IKE_SA_INIT request" in str(header)


def test_log_names_are_libreswans() -> None:
    assert NotifyType.AUTHENTICATION_FAILED.name == "AUTHENTICATION_FAILED"
    assert exchange_name(37) == "INFORMATIONAL"
    assert notify_name(16388) == "NAT_DETECTION_SOURCE_IP"
    assert payload_name(PayloadType.NONCE) == "Ni" and payload_name(200) == "200?"
    msg = decode_message(IKE_SA_INIT_WIRE)
    assert describe_payloads(msg.payloads) == "SA,KE,Ni,N(IKEV2_FRAGMENTATION_SUPPORTED)"
    inner = [IDr(2, b"east"), AUTH(2, b"x"), Notify.of(60000)]
    assert describe_payloads([SK(36, b"")], inner) == "SK{IDr,AUTH,N}"
    assert str(msg).startswith("IKE_SA_INIT request 0011223344556677/0000000000000000 msgid=0")
    for payload in msg.payloads + ike_auth_inner():
        assert str(payload)  # every payload has a readable form


# --- encoder refusals --------------------------------------------------------------------


def test_encoder_refuses_unrepresentable_messages() -> None:
    with pytest.raises(IkeEncodeError):
        encode_payloads([SK(0, b""), Nonce(b"n" * 16)])
    with pytest.raises(IkeEncodeError):
        encode_payloads([VendorID(b"x" * 65532)])
    with pytest.raises(IkeEncodeError):
        encode_payloads([KE(70000, b"")])
    with pytest.raises(IkeEncodeError):
        encode_message(Message(b"short", SPI_R, 34, 0, 0, []))
    with pytest.raises(IkeEncodeError):
        encode_payloads([Delete(3, 4, [b"abc"])])
    with pytest.raises(IkeEncodeError):
        encode_payloads([TSi([TrafficSelector(7, 0, 0, 0, ip_address("::"), ip_address("::"))])])
    with pytest.raises(IkeEncodeError):
        sk_prefix(Message(SPI_I, SPI_R, 35, 0, 1, [SK(0, b"")]), 0, 10)


def test_encoder_is_permissive_about_receive_rules() -> None:
    """Tests and impairments need to send what the strict decoder rejects."""
    _, wire = encode_payloads([Nonce(b"short")])
    with pytest.raises(IkeDecodeError):
        decode_payloads(PayloadType.NONCE, wire)


# --- malformed messages --------------------------------------------------------------------


def message_with(payload_bytes: bytes, first: int, *, spi_r: bytes = ZERO_SPI) -> bytes:
    """A header around raw payload bytes, with a correct Length field."""
    header = struct.pack(
        "!8s8sBBBBII", SPI_I, spi_r, first, 0x20, 34, 0x08, 0, 28 + len(payload_bytes)
    )
    return header + payload_bytes


def assert_rejected(data: bytes, notify: NotifyType = NotifyType.INVALID_SYNTAX) -> IkeDecodeError:
    with pytest.raises(IkeDecodeError) as info:
        decode_message(data)
    assert info.value.notify == notify
    return info.value


def test_truncated_header() -> None:
    for size in (0, 1, 27):
        assert_rejected(IKE_SA_INIT_WIRE[:size])
    with pytest.raises(IkeDecodeError):
        decode_header(IKE_SA_INIT_WIRE[:27])


@pytest.mark.parametrize("length", [0, 27, 135, 137, 0xFFFFFFFF])
def test_header_length_field_must_match_datagram(length: int) -> None:
    data = bytearray(IKE_SA_INIT_WIRE)
    struct.pack_into("!I", data, 24, length)
    assert_rejected(bytes(data))


def test_datagram_longer_than_length_field() -> None:
    assert_rejected(IKE_SA_INIT_WIRE + b"\x00")


def test_major_version_3() -> None:
    data = bytearray(IKE_SA_INIT_WIRE)
    data[17] = 0x30
    error = assert_rejected(bytes(data), NotifyType.INVALID_MAJOR_VERSION)
    assert isinstance(error, InvalidMajorVersion) and error.major == 3


def test_ikev1_header_through_demux_fast_path() -> None:
    data = bytearray(IKE_SA_INIT_WIRE)
    data[17] = 0x10
    with pytest.raises(InvalidMajorVersion):
        decode_header(bytes(data))
    assert decode_header(bytes(data), check_version=False).major == 1


def test_minor_version_is_ignored() -> None:
    data = bytearray(IKE_SA_INIT_WIRE)
    data[17] = 0x2F
    assert decode_message(bytes(data)).minor == 15


def test_unknown_critical_payload() -> None:
    data = message_with(h("00 80 0008 01020304"), 200)
    error = assert_rejected(data, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
    assert isinstance(error, UnsupportedCriticalPayload)
    assert error.payload_type == 200
    assert error.notify_data == b"\xc8"


def test_unknown_critical_payload_after_known_ones() -> None:
    # Nonce whose Next Payload is an unknown type 77 with the critical bit set
    data = message_with(h("4d 00 0014") + b"n" * 16 + h("00 80 0004"), PayloadType.NONCE)
    error = assert_rejected(data, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
    assert error.notify_data == bytes([77])


def test_unknown_non_critical_payload_is_kept() -> None:
    msg = decode_message(message_with(h("00 00 0006 abcd"), 77))
    assert msg.payloads == [GenericPayload(77, h("abcd"))]


def test_ikev1_payload_type_in_ikev2_is_unknown() -> None:
    assert_rejected(message_with(h("00 80 0004"), 1), NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)


@pytest.mark.parametrize("length", [0, 1, 3])
def test_payload_length_below_header(length: int) -> None:
    assert_rejected(message_with(struct.pack("!BBH", 0, 0, length) + b"vvvv", PayloadType.V))


def test_payload_length_beyond_message() -> None:
    assert_rejected(message_with(h("00 00 0009 7676"), PayloadType.V))


def test_generic_header_truncated() -> None:
    assert_rejected(message_with(h("00 00"), PayloadType.V))
    # a chain that promises another payload after the last byte
    assert_rejected(message_with(h("2b 00 0004"), PayloadType.V))


def test_trailing_bytes_after_last_payload() -> None:
    assert_rejected(message_with(h("00 00 0004 0000"), PayloadType.V))


def transform_bytes(*last_flags: int) -> bytes:
    return b"".join(struct.pack("!BxHBxH", flag, 8, 1, 12) for flag in last_flags)


def sa_with(
    count: int, transforms: bytes, *, proposal_flag: int = 0, protocol: int = 1, spi: bytes = b""
) -> bytes:
    proposal = (
        struct.pack(
            "!BxHBBBB", proposal_flag, 8 + len(spi) + len(transforms), 1, protocol, len(spi), count
        )
        + spi
        + transforms
    )
    return struct.pack("!BBH", 0, 0, 4 + len(proposal)) + proposal


def test_sa_builder_is_valid() -> None:
    decode_message(message_with(sa_with(3, transform_bytes(3, 3, 0)), PayloadType.SA))


@pytest.mark.parametrize("count", [0, 2, 4, 255])
def test_transform_count_mismatch(count: int) -> None:
    assert_rejected(message_with(sa_with(count, transform_bytes(3, 3, 0)), PayloadType.SA))


@pytest.mark.parametrize("flags", [(3, 3, 3), (0, 3, 0), (3, 2, 0), (3, 3, 2)])
def test_transform_last_substructure_flags(flags: tuple[int, ...]) -> None:
    assert_rejected(message_with(sa_with(3, transform_bytes(*flags)), PayloadType.SA))


@pytest.mark.parametrize("flag", [1, 3, 255])
def test_proposal_last_substructure_flag(flag: int) -> None:
    assert_rejected(
        message_with(sa_with(1, transform_bytes(0), proposal_flag=flag), PayloadType.SA)
    )


def test_proposal_claims_more_follow() -> None:
    assert_rejected(message_with(sa_with(1, transform_bytes(0), proposal_flag=2), PayloadType.SA))


def test_empty_sa() -> None:
    assert_rejected(message_with(h("00 00 0004"), PayloadType.SA))


@pytest.mark.parametrize(
    ("protocol", "spi"), [(3, b""), (3, b"12345678"), (2, b"123"), (1, b"1234")]
)
def test_proposal_spi_size(protocol: int, spi: bytes) -> None:
    data = message_with(sa_with(1, transform_bytes(0), protocol=protocol, spi=spi), PayloadType.SA)
    assert_rejected(data)


def test_proposal_spi_overruns_proposal() -> None:
    sa = bytearray(sa_with(1, transform_bytes(0), protocol=3, spi=b"1234"))
    sa[4 + 6] = 40  # SPI size larger than the proposal
    assert_rejected(message_with(bytes(sa), PayloadType.SA))


def test_transform_length_below_minimum_and_attribute_overrun() -> None:
    short = struct.pack("!BxHBxH", 0, 4, 1, 12) + b"\x00" * 4
    assert_rejected(message_with(sa_with(1, short), PayloadType.SA))
    overrun = struct.pack("!BxHBxH", 0, 12, 1, 12) + h("000e 0010")
    assert_rejected(message_with(sa_with(1, overrun), PayloadType.SA))
    truncated_attr = struct.pack("!BxHBxH", 0, 10, 1, 12) + h("800e")
    assert_rejected(message_with(sa_with(1, truncated_attr), PayloadType.SA))


def test_sk_not_last() -> None:
    # SK claims 8 bytes but 4 more follow: those bytes can only be a payload after SK
    data = message_with(h("29 00 0008 00000000") + h("00 00 0004"), PayloadType.SK)
    assert_rejected(data)


def test_sk_inside_sk_plaintext() -> None:
    with pytest.raises(IkeDecodeError) as info:
        decode_payloads(PayloadType.SK, h("00 00 0008 00000000"))
    assert info.value.notify == NotifyType.INVALID_SYNTAX


@pytest.mark.parametrize(("number", "total"), [(0, 1), (1, 0), (3, 2)])
def test_impossible_fragment_numbers(number: int, total: int) -> None:
    skf = struct.pack("!BBHHH", 0, 0, 12, number, total) + b"body"
    assert_rejected(message_with(skf, PayloadType.SKF))


def test_skf_too_short() -> None:
    assert_rejected(message_with(h("00 00 0006 0001"), PayloadType.SKF))


@pytest.mark.parametrize("size", [0, 15, 257])
def test_nonce_size_out_of_range(size: int) -> None:
    payload = struct.pack("!BBH", 0, 0, 4 + size) + b"n" * size
    assert_rejected(message_with(payload, PayloadType.NONCE))


@pytest.mark.parametrize("size", [16, 256])
def test_nonce_size_limits_accepted(size: int) -> None:
    payload = struct.pack("!BBH", 0, 0, 4 + size) + b"n" * size
    assert decode_message(message_with(payload, PayloadType.NONCE)).payloads == [Nonce(b"n" * size)]


@pytest.mark.parametrize(
    "ptype",
    [
        PayloadType.KE,
        PayloadType.IDi,
        PayloadType.IDr,
        PayloadType.AUTH,
        PayloadType.N,
        PayloadType.D,
        PayloadType.TSi,
        PayloadType.CP,
        PayloadType.EAP,
    ],
)
def test_fixed_part_too_short(ptype: int) -> None:
    assert_rejected(message_with(h("00 00 0007 000000"), ptype))


@pytest.mark.parametrize("ptype", [PayloadType.CERT, PayloadType.CERTREQ])
def test_cert_needs_encoding_octet(ptype: int) -> None:
    assert_rejected(message_with(h("00 00 0004"), ptype))


def test_notify_spi_overruns() -> None:
    assert_rejected(message_with(h("00 00 000a 03 04 4009 0000"), PayloadType.N))


@pytest.mark.parametrize(
    "body",
    [
        "03 04 0002 00000001",  # count says 2, one SPI present
        "03 04 0001 00000001 00",  # a stray byte
        "03 08 0001 0000000100000002",  # ESP SPI size 8
        "01 00 0001",  # IKE delete with an SPI count
        "01 04 0001 00000001",  # IKE delete with an SPI
        "09 00 0005",  # unknown protocol, SPIs of size 0
    ],
)
def test_delete_inconsistent(body: str) -> None:
    payload = h(body)
    assert_rejected(
        message_with(struct.pack("!BBH", 0, 0, 4 + len(payload)) + payload, PayloadType.D)
    )


@pytest.mark.parametrize(
    "body",
    [
        "02 000000 07 00 0010 0000ffff 0a000000 0a0000ff",  # count 2, one selector
        "01 000000 07 00 0028 0000ffff 0a000000 0a0000ff",  # IPv4 with the IPv6 length
        "01 000000 08 00 0010 0000ffff 0a000000 0a0000ff",  # IPv6 with the IPv4 length
        "01 000000 07 00 0010 0000ffff 0a000000",  # truncated selector
        "01 000000 0a 00 0003",  # selector length below 4
        "01 000000 07 00",  # selector header truncated
        "00 000000 00",  # bytes after zero selectors
    ],
)
def test_traffic_selector_inconsistent(body: str) -> None:
    payload = h(body)
    assert_rejected(
        message_with(struct.pack("!BBH", 0, 0, 4 + len(payload)) + payload, PayloadType.TSi)
    )


@pytest.mark.parametrize(
    "body",
    [
        "01 000000 0001 0004 0a00",  # attribute value overruns
        "01 000000 0001",  # attribute header truncated
    ],
)
def test_cp_attribute_overrun(body: str) -> None:
    payload = h(body)
    assert_rejected(
        message_with(struct.pack("!BBH", 0, 0, 4 + len(payload)) + payload, PayloadType.CP)
    )


def test_cp_reserved_bit_is_ignored() -> None:
    payload = h("01 000000 8001 0000")
    msg = decode_message(message_with(struct.pack("!BBH", 0, 0, 12) + payload, PayloadType.CP))
    assert msg.payloads == [CP(1, [(1, b"")])]


@pytest.mark.parametrize("body", ["01 05 0008 01", "01 05 0004 01 00", "01 05"])
def test_eap_length_must_match(body: str) -> None:
    payload = h(body)
    assert_rejected(
        message_with(struct.pack("!BBH", 0, 0, 4 + len(payload)) + payload, PayloadType.EAP)
    )


def test_errors_are_exceptions_with_readable_text() -> None:
    error = assert_rejected(message_with(sa_with(2, transform_bytes(3, 3, 0)), PayloadType.SA))
    assert "transform" in str(error)
    assert error.notify_data == b""
