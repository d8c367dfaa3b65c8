"""The Security Association payload: proposals, transforms and attributes (RFC 7296 3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct
from typing import Self

from .codec_base import IkeEncodeError, Payload, fail
from .constants import (
    ATTRIBUTE_FORMAT_TV,
    LAST_SUBSTRUCTURE,
    MORE_PROPOSALS,
    MORE_TRANSFORMS,
    TRANSFORM_ATTR_KEY_LENGTH,
    PayloadType,
    ProtocolId,
    TransformType,
    enum_name,
    transform_id_name,
)

# last substruc, RESERVED, proposal length, proposal num, protocol ID, SPI size, # transforms
_PROPOSAL = Struct("!BxHBBBB")
# last substruc, RESERVED, transform length, transform type, RESERVED, transform ID
_TRANSFORM = Struct("!BxHBxH")
_ATTRIBUTE = Struct("!HH")  # AF bit + attribute type, length (TLV) or value (TV)
_KEY_LENGTH_TV = ATTRIBUTE_FORMAT_TV | TRANSFORM_ATTR_KEY_LENGTH

# Proposal SPI sizes that RFC 7296 3.3.1 allows per protocol (IKE: 0 in IKE_SA_INIT,
# 8 when rekeying).  Other protocol numbers are decoded structurally and left to the
# proposal matcher to reject.
_PROPOSAL_SPI_SIZES = {ProtocolId.IKE: (0, 8), ProtocolId.AH: (4,), ProtocolId.ESP: (4,)}


@dataclass(slots=True)
class Transform:
    """One transform.  Key Length (attribute 14, TV form) is the only attribute IKEv2
    defines; anything else is kept in ``extra_attributes`` as ``(type incl. AF bit, value)``
    so the proposal matcher can refuse the transform (RFC 7296 3.3.6) without the decoder
    failing.  A TV attribute's value is its 2 octets."""

    type: int
    id: int
    key_length: int | None = None
    extra_attributes: list[tuple[int, bytes]] = field(default_factory=list)

    def encode(self, last: bool) -> bytes:
        attrs = b""
        if self.key_length is not None:
            attrs = _ATTRIBUTE.pack(_KEY_LENGTH_TV, self.key_length)
        if self.extra_attributes:
            attrs += b"".join(_encode_attribute(t, v) for t, v in self.extra_attributes)
        flag = LAST_SUBSTRUCTURE if last else MORE_TRANSFORMS
        return _TRANSFORM.pack(flag, 8 + len(attrs), self.type, self.id) + attrs

    def __str__(self) -> str:
        text = f"{enum_name(TransformType, self.type)}={transform_id_name(self.type, self.id)}"
        if self.key_length is not None:
            text += f"_{self.key_length}"
        if self.extra_attributes:
            text += "{" + ",".join(f"{t:#x}:{v.hex()}" for t, v in self.extra_attributes) + "}"
        return text


def _encode_attribute(attr_type: int, value: bytes) -> bytes:
    if attr_type & ATTRIBUTE_FORMAT_TV:
        if len(value) != 2:
            raise IkeEncodeError(f"TV attribute {attr_type:#x} needs a 2-byte value")
        return attr_type.to_bytes(2, "big") + value
    return _ATTRIBUTE.pack(attr_type, len(value)) + value


@dataclass(slots=True)
class Proposal:
    number: int
    protocol: int
    spi: bytes
    transforms: list[Transform] = field(default_factory=list)

    def encode(self, last: bool) -> bytes:
        count = len(self.transforms)
        body = b"".join(t.encode(i == count - 1) for i, t in enumerate(self.transforms))
        flag = LAST_SUBSTRUCTURE if last else MORE_PROPOSALS
        head = _PROPOSAL.pack(
            flag, 8 + len(self.spi) + len(body), self.number, self.protocol, len(self.spi), count
        )
        return head + self.spi + body

    def __str__(self) -> str:
        spi = f" spi={self.spi.hex()}" if self.spi else ""
        transforms = " ".join(str(t) for t in self.transforms)
        return f"{self.number}:{enum_name(ProtocolId, self.protocol)}{spi} {transforms}"


@dataclass(slots=True)
class SA(Payload):
    """Security Association (3.3): one or more proposals."""

    TYPE = PayloadType.SA
    proposals: list[Proposal] = field(default_factory=list)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        return cls(_decode_proposals(buf, start, end), critical=critical)

    def encode_body(self) -> bytes:
        count = len(self.proposals)
        return b"".join(p.encode(i == count - 1) for i, p in enumerate(self.proposals))

    def __str__(self) -> str:
        proposals = "; ".join(str(p) for p in self.proposals)
        return f"SA{self._crit()} [{proposals}]"


def _decode_proposals(buf: bytes, pos: int, end: int) -> list[Proposal]:
    if pos == end:
        raise fail("SA payload has no proposals")
    proposals = []
    while True:
        if end - pos < 8:
            raise fail(f"proposal header truncated ({end - pos} bytes left)")
        last, length, number, protocol, spi_size, count = _PROPOSAL.unpack_from(buf, pos)
        if last not in (LAST_SUBSTRUCTURE, MORE_PROPOSALS):
            raise fail(f"proposal {number}: Last Substruc is {last}, want 0 or 2")
        if length < 8 + spi_size or length > end - pos:
            raise fail(f"proposal {number}: length {length} invalid ({end - pos} bytes left)")
        allowed = _PROPOSAL_SPI_SIZES.get(protocol)  # type: ignore[call-overload]
        if allowed is not None and spi_size not in allowed:
            raise fail(f"proposal {number}: SPI size {spi_size} invalid for protocol {protocol}")
        spi_end = pos + 8 + spi_size
        transforms = _decode_transforms(buf, spi_end, pos + length, count, number)
        proposals.append(Proposal(number, protocol, buf[pos + 8 : spi_end], transforms))
        pos += length
        if last == LAST_SUBSTRUCTURE:
            break
        if pos == end:
            raise fail(f"proposal {number} says more follow, but the SA payload ends")
    if pos != end:
        raise fail(f"{end - pos} bytes after the last proposal")
    return proposals


def _decode_transforms(
    buf: bytes, pos: int, end: int, count: int, proposal: int
) -> list[Transform]:
    transforms = []
    for index in range(count):
        if end - pos < 8:
            raise fail(f"proposal {proposal}: transform {index + 1} of {count} truncated")
        last, length, transform_type, transform_id = _TRANSFORM.unpack_from(buf, pos)
        if length < 8 or length > end - pos:
            raise fail(f"proposal {proposal}: transform length {length} invalid")
        want = LAST_SUBSTRUCTURE if index == count - 1 else MORE_TRANSFORMS
        if last != want:
            raise fail(
                f"proposal {proposal}: transform {index + 1} of {count} Last Substruc "
                f"is {last}, want {want}"
            )
        if length == 8:  # no attributes: the common case, kept cheap
            transforms.append(Transform(transform_type, transform_id, None, []))
        else:
            key_length, extra = _decode_attributes(buf, pos + 8, pos + length)
            transforms.append(Transform(transform_type, transform_id, key_length, extra))
        pos += length
    if pos != end:
        raise fail(f"proposal {proposal}: {end - pos} bytes after {count} transforms")
    return transforms


def _decode_attributes(buf: bytes, pos: int, end: int) -> tuple[int | None, list]:
    key_length = None
    extra: list[tuple[int, bytes]] = []
    while pos < end:
        if end - pos < 4:
            raise fail("transform attribute truncated")
        attr_type, length_or_value = _ATTRIBUTE.unpack_from(buf, pos)
        if attr_type & ATTRIBUTE_FORMAT_TV:
            if attr_type == _KEY_LENGTH_TV and key_length is None:
                key_length = length_or_value
            else:
                extra.append((attr_type, buf[pos + 2 : pos + 4]))
            pos += 4
        else:
            value_end = pos + 4 + length_or_value
            if value_end > end:
                raise fail(f"transform attribute {attr_type} length {length_or_value} overruns")
            extra.append((attr_type, buf[pos + 4 : value_end]))
            pos = value_end
    return key_length, extra
