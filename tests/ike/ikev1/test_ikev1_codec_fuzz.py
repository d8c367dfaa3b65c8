"""Property tests for the ISAKMP codec: round trips, and a total decoder (only
IsakmpDecodeError may come out, whatever the bytes)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    ModeCfgAttributes,
    NatD,
    NatOA,
    Nonce,
    Notify,
    Proposal,
    Sig,
    Transform,
    VendorID,
    decode_message,
    decode_payloads,
    encode_message,
)

FAST = settings(max_examples=int(os.environ.get("PYSWAN_FUZZ_EXAMPLES", "200")),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
small = st.binary(min_size=1, max_size=24)
attributes = st.lists(st.one_of(
    st.builds(Attribute, st.integers(0, 0x7FFF), u16),
    st.builds(Attribute, st.integers(0, 0x7FFF), st.binary(max_size=8))), max_size=4)
transforms = st.builds(Transform, u8, u8, attributes)
proposals = st.builds(Proposal, u8, st.sampled_from([1, 2, 3, 4]),
                      st.sampled_from([b"", b"\0\0\x10\0", bytes(16)]),
                      st.lists(transforms, min_size=1, max_size=4))


@st.composite
def ids(draw: st.DrawFn) -> ID:
    kind = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 9, 11]))
    if kind == 1:
        data = draw(st.binary(min_size=4, max_size=4))
    elif kind == 5:
        data = draw(st.binary(min_size=16, max_size=16))
    elif kind == 4:
        prefix = draw(st.integers(0, 32))
        mask = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
        data = draw(st.binary(min_size=4, max_size=4)) + mask.to_bytes(4, "big")
    elif kind == 7:
        a, b = sorted(draw(st.lists(st.binary(min_size=4, max_size=4), min_size=2,
                                    max_size=2)))
        data = a + b
    else:
        data = draw(small)
    return ID(kind, data, draw(u8), draw(u16))


@st.composite
def deletes(draw: st.DrawFn) -> Delete:
    size = draw(st.sampled_from([4, 16]))
    spis = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=3))
    return Delete(draw(u8), spis, size)


payloads = st.one_of(
    st.builds(lambda ps: SA(ps), st.lists(proposals, min_size=1, max_size=3)),
    st.builds(KE, small), ids(), st.builds(Cert, u8, st.binary(max_size=16)),
    st.builds(CertRequest, u8, st.binary(max_size=16)), st.builds(Hash, small),
    st.builds(Sig, small), st.builds(Nonce, st.binary(min_size=8, max_size=64)),
    st.builds(Notify, u16, u8, st.binary(max_size=16), st.binary(max_size=8)),
    deletes(), st.builds(VendorID, st.binary(max_size=20)),
    st.builds(NatD, small, st.booleans()),
    st.builds(NatOA, st.one_of(st.integers(0, 2**32 - 1).map(IPv4Address),
                               st.integers(0, 2**128 - 1).map(IPv6Address)), st.booleans()),
    st.builds(ModeCfgAttributes, st.integers(1, 4), u16, attributes),
)
headers = st.builds(Header, st.binary(min_size=8, max_size=8).filter(any),
                    st.binary(min_size=8, max_size=8), st.just(0),
                    st.sampled_from([2, 4, 5, 6, 32]), st.integers(0, 7).filter(
                        lambda f: not f & 1), st.integers(0, 2**32 - 1))


def _total(data: bytes) -> None:
    try:
        decode_message(data)
    except IsakmpDecodeError:
        pass


@FAST
@given(headers, st.lists(payloads, max_size=6))
def test_round_trip(h: Header, ps: list) -> None:
    wire = encode_message(h, ps)
    msg = decode_message(wire)
    assert msg.payloads == ps
    assert encode_message(msg.header, msg.payloads) == wire


@FAST
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _total(data)


@FAST
@given(st.binary(max_size=200), u8, st.booleans())
def test_random_chains(data: bytes, first: int, padded: bool) -> None:
    try:
        decode_payloads(first, data, padded=padded)
    except IsakmpDecodeError:
        pass


@FAST
@given(headers, st.lists(payloads, min_size=1, max_size=4), st.data())
def test_mutated_messages(h: Header, ps: list, data: st.DataObject) -> None:
    wire = bytearray(encode_message(h, ps))
    how = data.draw(st.sampled_from(["flip", "truncate", "length"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(wire) - 1))
            wire[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        del wire[data.draw(st.integers(0, len(wire) - 1)):]
        if len(wire) >= 28:  # keep the header's length in step to reach the payloads
            wire[24:28] = len(wire).to_bytes(4, "big")
    else:
        # rewrite some 16-bit field inside the payloads (the lengths live there)
        i = data.draw(st.integers(28, max(28, len(wire) - 2)))
        wire[i:i + 2] = data.draw(u16).to_bytes(2, "big")
    _total(bytes(wire))
