"""Property tests for the IKEv2 codec.

1. Round trip: every message the strategies build survives encode -> decode -> encode.
2. The decoder is total: on random bytes, and on valid messages that have been truncated,
   bit-flipped or had a length field rewritten, it either returns a Message or raises
   IkeDecodeError (never IndexError, struct.error, ValueError...).  This is the Python
   form of "no assert reachable from the network" (anchors-and-security.md 4.4, class 8).
"""

from __future__ import annotations

import os
import struct
from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
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
    GenericPayload,
    IDi,
    IDr,
    IkeDecodeError,
    Message,
    Nonce,
    Notify,
    Proposal,
    RawTrafficSelector,
    TrafficSelector,
    Transform,
    TSi,
    TSr,
    VendorID,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payloads,
)

# PYSWAN_FUZZ_EXAMPLES=5000 for a longer soak; the default keeps the file under ~10 s.
FAST = settings(
    max_examples=int(os.environ.get("PYSWAN_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
small = st.binary(max_size=24)
critical = st.booleans()
KNOWN_TYPES = set(range(33, 49)) | {53}
unknown_types = st.integers(1, 255).filter(lambda t: t not in KNOWN_TYPES)

# --- valid payloads ---------------------------------------------------------------------------

extra_attributes = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0x8000, 0xFFFF).filter(lambda t: t != 0x800E),
            st.binary(min_size=2, max_size=2),
        ),
        st.tuples(st.integers(0, 0x7FFF), st.binary(max_size=8)),
    ),
    max_size=2,
)
transforms = st.builds(Transform, u8, u16, st.none() | u16, extra_attributes)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    protocol = draw(st.sampled_from([1, 2, 3, 0, 200]))
    size = {1: draw(st.sampled_from([0, 8])), 2: 4, 3: 4}.get(protocol, draw(st.integers(0, 8)))
    return Proposal(
        draw(u8),
        protocol,
        draw(st.binary(min_size=size, max_size=size)),
        draw(st.lists(transforms, max_size=5)),
    )


@st.composite
def deletes(draw: st.DrawFn) -> Delete:
    protocol = draw(st.sampled_from([1, 2, 3, 9]))
    if protocol == 1:
        return Delete(1, 0, [], critical=draw(critical))
    size = 4 if protocol in (2, 3) else draw(st.integers(1, 8))
    spis = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=4))
    return Delete(protocol, size, spis, critical=draw(critical))


ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(IPv6Address)
selectors = st.one_of(
    st.builds(lambda p, a, b, x, y: TrafficSelector(7, p, a, b, x, y), u8, u16, u16, ipv4, ipv4),
    st.builds(lambda p, a, b, x, y: TrafficSelector(8, p, a, b, x, y), u8, u16, u16, ipv6, ipv6),
    st.builds(RawTrafficSelector, st.integers(0, 255).filter(lambda t: t not in (7, 8)), small, u8),
)


def eap_message(code: int, ident: int, rest: bytes) -> bytes:
    return struct.pack("!BBH", code, ident, 4 + len(rest)) + rest


cleartext_payloads = st.one_of(
    st.builds(
        lambda ps, c: SA(ps, critical=c), st.lists(proposals(), min_size=1, max_size=4), critical
    ),
    st.builds(KE, u16, st.binary(max_size=64), critical=critical),
    st.builds(IDi, u8, small, critical=critical),
    st.builds(IDr, u8, small, critical=critical),
    st.builds(CERT, u8, small, critical=critical),
    st.builds(CERTREQ, u8, small, critical=critical),
    st.builds(AUTH, u8, small, critical=critical),
    st.builds(Nonce, st.binary(min_size=16, max_size=256), critical=critical),
    st.builds(Notify, u8, st.binary(max_size=8), u16, small, critical=critical),
    deletes(),
    st.builds(VendorID, small, critical=critical),
    st.builds(lambda s, c: TSi(s, critical=c), st.lists(selectors, max_size=4), critical),
    st.builds(lambda s, c: TSr(s, critical=c), st.lists(selectors, max_size=4), critical),
    st.builds(
        CP, u8, st.lists(st.tuples(st.integers(0, 0x7FFF), small), max_size=4), critical=critical
    ),
    st.builds(EAP, st.builds(eap_message, u8, u8, small), critical=critical),
    st.builds(GenericPayload, unknown_types, small),
)
encrypted_payloads = st.one_of(
    st.builds(SK, u8, st.binary(max_size=64)),
    st.builds(
        lambda first, n, extra, body: SKF(first, n, n + extra, body),
        u8,
        st.integers(1, 100),
        st.integers(0, 100),
        st.binary(max_size=64),
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    payloads = draw(st.lists(cleartext_payloads, max_size=6))
    if draw(st.booleans()):
        payloads.append(draw(encrypted_payloads))
    return Message(
        draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        draw(u8),
        draw(u8),
        draw(u32),
        payloads,
        2,
        draw(st.integers(0, 15)),
    )


# --- round trips -------------------------------------------------------------------------------


@FAST
@given(messages())
def test_message_round_trip(msg: Message) -> None:
    wire = encode_message(msg)
    assert decode_message(wire) == msg
    assert encode_message(decode_message(wire)) == wire


@FAST
@given(st.lists(cleartext_payloads, max_size=6))
def test_payload_chain_round_trip(payloads: list) -> None:
    first, wire = encode_payloads(payloads)
    assert decode_payloads(first, wire) == payloads


# --- the decoder only ever raises IkeDecodeError ------------------------------------------


def decode_or_reject(data: bytes) -> Message | None:
    try:
        msg = decode_message(data)
    except IkeDecodeError:
        return None
    # Whatever was accepted must re-encode into something that decodes the same
    # (reserved bits are dropped, so the bytes themselves may differ).
    again = encode_message(msg)
    assert decode_message(again) == msg
    return msg


def with_length(data: bytes) -> bytes:
    """Make the header's Length field agree with the datagram so the payloads get parsed."""
    if len(data) < 28:
        return data
    return data[:24] + struct.pack("!I", len(data)) + data[28:]


@FAST
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    decode_or_reject(data)


@FAST
@given(u8, st.binary(max_size=200))
def test_random_payloads_behind_a_valid_header(first: int, body: bytes) -> None:
    header = struct.pack("!8s8sBBBBII", b"i" * 8, b"r" * 8, first, 0x20, 34, 8, 0, 28 + len(body))
    decode_or_reject(header + body)


@FAST
@given(u8, st.binary(max_size=200))
def test_random_inner_payloads(first: int, body: bytes) -> None:
    try:
        decode_payloads(first, body)
    except IkeDecodeError:
        pass


@FAST
@given(messages(), st.data())
def test_truncated_messages(msg: Message, data: st.DataObject) -> None:
    wire = encode_message(msg)
    cut = data.draw(st.integers(0, len(wire) - 1))
    decode_or_reject(wire[:cut])
    decode_or_reject(with_length(wire[:cut]))


@FAST
@given(messages(), st.data())
def test_bit_flips(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        bit = data.draw(st.integers(28 * 8, len(wire) * 8 - 1)) if len(wire) > 28 else 0
        wire[bit // 8] ^= 1 << (bit % 8)
    decode_or_reject(bytes(wire))


def length_field_offsets(wire: bytes) -> list[int]:
    """Offsets of 16-bit fields worth corrupting: every generic payload length, plus every
    even offset inside payload bodies (substructure lengths, counts, SPI sizes...)."""
    offsets = []
    pos, next_type = 28, wire[16]
    while next_type and pos + 4 <= len(wire):
        offsets.append(pos + 2)
        next_type, length = wire[pos], struct.unpack_from("!H", wire, pos + 2)[0]
        pos += max(length, 4)
    return offsets + list(range(28, len(wire) - 1, 2))


@FAST
@given(messages(), st.data())
def test_length_field_edits(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_message(msg))
    offsets = length_field_offsets(bytes(wire))
    if not offsets:
        return
    offset = data.draw(st.sampled_from(offsets))
    value = data.draw(st.sampled_from([0, 1, 3, 4, 5, 7, 8, 0xFFFF]) | u16)
    struct.pack_into("!H", wire, offset, value)
    decode_or_reject(bytes(wire))
    delta = data.draw(st.sampled_from([-1, 1]))
    struct.pack_into("!H", wire, offset, (value + delta) & 0xFFFF)
    decode_or_reject(with_length(bytes(wire)))


@FAST
@given(messages(), st.data())
def test_byte_overwrites_and_splices(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_message(msg))
    if len(wire) <= 28:
        return
    start = data.draw(st.integers(28, len(wire) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    spliced = bytes(wire[:start]) + junk + bytes(wire[start:])
    decode_or_reject(with_length(spliced))
    wire[start : start + len(junk)] = junk
    decode_or_reject(with_length(bytes(wire)))
