"""ISAKMP message codec (RFC 2408 section 3, RFC 2407 section 4.6, RFC 3947, drafts for
XAUTH/ModeCfg).

Decoding is strict and total: any octet string either decodes or raises
:class:`IsakmpDecodeError` carrying the ISAKMP notification a responder would send
(``PAYLOAD_MALFORMED``, ``INVALID_PAYLOAD_TYPE``...).  Nothing else escapes.

An encrypted message (E flag) is decoded in two steps: :func:`decode_message` gives the
header and the ciphertext; once decrypted, :func:`decode_payloads` with ``padded=True``
parses the plaintext, whose chain may be followed by CBC padding.

Payload objects hold the payload *body* (what follows the 4-octet generic header); IKEv1
hashes are computed over bodies (``SAi_b``, ``IDii_b``, ``Ni_b``), which is what
:meth:`body` returns.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from struct import Struct
from struct import error as StructError
from typing import ClassVar

from .constants import (
    DOI_IPSEC,
    ISAKMP_VERSION,
    SIT_IDENTITY_ONLY,
    Flag,
    IdType,
    NotifyType,
)
from .constants import (
    Payload as PT,
)

_HEADER = Struct("!8s8sBBBBII")
_GENERIC = Struct("!BBH")
_SA_HEAD = Struct("!II")
_PROPOSAL_HEAD = Struct("!BBBB")
_TRANSFORM_HEAD = Struct("!BBH")
_ATTR_HEAD = Struct("!HH")
_ID_HEAD = Struct("!BBH")
_NOTIFY_HEAD = Struct("!IBBH")
_DELETE_HEAD = Struct("!IBBH")
_CFG_HEAD = Struct("!BBH")
_NAT_OA_HEAD = Struct("!B3s")
HEADER_SIZE = _HEADER.size
_AF = 0x8000


class IsakmpDecodeError(Exception):
    """A malformed ISAKMP message; ``notify`` is what to tell the peer."""

    def __init__(self, text: str, notify: int = NotifyType.PAYLOAD_MALFORMED) -> None:
        super().__init__(text)
        self.notify = notify


class IsakmpEncodeError(ValueError):
    """A payload object that cannot be put on the wire (a bug on our side)."""


def _fail(text: str, notify: int = NotifyType.PAYLOAD_MALFORMED) -> IsakmpDecodeError:
    return IsakmpDecodeError(text, notify)


# ------------------------------------------------------------------ header


@dataclass(slots=True)
class Header:
    icookie: bytes
    rcookie: bytes
    next_payload: int
    exchange: int
    flags: int
    message_id: int
    length: int = 0
    version: int = ISAKMP_VERSION

    def pack(self, next_payload: int, length: int) -> bytes:
        return _HEADER.pack(self.icookie, self.rcookie, next_payload, self.version,
                            self.exchange, self.flags, self.message_id, length)


def decode_header(data: bytes) -> Header:
    """The fixed header, checked against the datagram's length."""
    if len(data) < HEADER_SIZE:
        raise _fail(f"message of {len(data)} octets is shorter than the ISAKMP header",
                    NotifyType.UNEQUAL_PAYLOAD_LENGTHS)
    icookie, rcookie, np, version, exchange, flags, msgid, length = _HEADER.unpack_from(data)
    if version >> 4 != 1:
        raise _fail(f"ISAKMP major version {version >> 4} is not 1",
                    NotifyType.INVALID_MAJOR_VERSION)
    if version & 0x0F != 0:
        raise _fail(f"ISAKMP minor version {version & 0x0F} is not 0",
                    NotifyType.INVALID_MINOR_VERSION)
    if length != len(data):
        raise _fail(f"ISAKMP header length {length} but {len(data)} octets received",
                    NotifyType.UNEQUAL_PAYLOAD_LENGTHS)
    if flags & ~0x07:
        raise _fail(f"reserved ISAKMP flags {flags:#04x} set", NotifyType.INVALID_FLAGS)
    if icookie == bytes(8):
        raise _fail("initiator cookie is zero", NotifyType.INVALID_COOKIE)
    return Header(icookie, rcookie, np, exchange, flags, msgid, length, version)


# --------------------------------------------------------------- attributes


@dataclass(frozen=True, slots=True)
class Attribute:
    """A data attribute: ``value`` int is the basic (TV) form, bytes the TLV form."""

    type: int
    value: int | bytes

    @property
    def basic(self) -> bool:
        return isinstance(self.value, int)

    def as_int(self) -> int:
        """The value as a number whatever its form (variable-length attributes such as
        life durations may come either way)."""
        if isinstance(self.value, int):
            return self.value
        return int.from_bytes(self.value, "big")

    def pack(self) -> bytes:
        if not 0 <= self.type < _AF:
            raise IsakmpEncodeError(f"attribute type {self.type} out of range")
        if isinstance(self.value, int):
            if not 0 <= self.value <= 0xFFFF:
                raise IsakmpEncodeError(f"basic attribute value {self.value} out of range")
            return _ATTR_HEAD.pack(self.type | _AF, self.value)
        if len(self.value) > 0xFFFF:
            raise IsakmpEncodeError("attribute value too long")
        return _ATTR_HEAD.pack(self.type, len(self.value)) + self.value


def number_attribute(attr_type: int, value: int) -> Attribute:
    """Basic form when it fits, else the shortest variable form (RFC 2408 3.3)."""
    if value <= 0xFFFF:
        return Attribute(attr_type, value)
    return Attribute(attr_type, value.to_bytes((value.bit_length() + 7) // 8, "big"))


def decode_attributes(data: bytes, what: str, *, padded: bool = False) -> list[Attribute]:
    """``padded``: fewer than 4 zero octets at the end are padding, not an attribute
    (Libreswan 4.x pads a ModeCfg attribute payload to a multiple of 4 octets)."""
    out: list[Attribute] = []
    pos, end = 0, len(data)
    while pos < end:
        if padded and end - pos < 4 and not any(data[pos:]):
            break
        if end - pos < 4:
            raise _fail(f"{what}: truncated attribute ({end - pos} octets left)")
        kind, value = _ATTR_HEAD.unpack_from(data, pos)
        pos += 4
        if kind & _AF:
            out.append(Attribute(kind & ~_AF, value))
            continue
        if pos + value > end:
            raise _fail(f"{what}: attribute {kind} length {value} overruns its payload")
        out.append(Attribute(kind, data[pos:pos + value]))
        pos += value
    return out


def encode_attributes(attrs: list[Attribute]) -> bytes:
    return b"".join(a.pack() for a in attrs)


# --------------------------------------------------------------- payloads


class IsakmpPayload:
    """Base of payload classes: ``ptype`` and the body codec."""

    ptype: ClassVar[int] = 0

    def body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def parse(cls, body: bytes) -> IsakmpPayload:
        raise NotImplementedError


@dataclass(slots=True)
class Transform:
    number: int
    transform_id: int
    attributes: list[Attribute] = field(default_factory=list)

    def pack(self, last: bool) -> bytes:
        attrs = encode_attributes(self.attributes)
        return (_GENERIC.pack(0 if last else PT.T, 0, 8 + len(attrs))
                + _TRANSFORM_HEAD.pack(self.number, self.transform_id, 0) + attrs)

    def attr(self, attr_type: int) -> Attribute | None:
        for a in self.attributes:
            if a.type == attr_type:
                return a
        return None


@dataclass(slots=True)
class Proposal:
    number: int
    protocol: int
    spi: bytes
    transforms: list[Transform] = field(default_factory=list)

    def pack(self, last: bool) -> bytes:
        if len(self.spi) > 255 or len(self.transforms) > 255:
            raise IsakmpEncodeError("proposal SPI or transform count too large")
        inner = b"".join(t.pack(i == len(self.transforms) - 1)
                         for i, t in enumerate(self.transforms))
        head = _PROPOSAL_HEAD.pack(self.number, self.protocol, len(self.spi),
                                   len(self.transforms))
        return (_GENERIC.pack(0 if last else PT.P, 0, 4 + 4 + len(self.spi) + len(inner))
                + head + self.spi + inner)


def _chain_items(data: bytes, item_type: int, what: str) -> list[bytes]:
    """The bodies of a chain of proposal or transform payloads filling ``data``."""
    out: list[bytes] = []
    pos, end = 0, len(data)
    np = item_type
    while np != PT.NONE:
        if np != item_type:
            raise _fail(f"{what}: next payload {np} inside the chain", NotifyType.BAD_PROPOSAL_SYNTAX)
        if end - pos < 4:
            raise _fail(f"{what}: truncated", NotifyType.BAD_PROPOSAL_SYNTAX)
        np, reserved, length = _GENERIC.unpack_from(data, pos)
        if reserved:
            raise _fail(f"{what}: reserved octet is {reserved}", NotifyType.BAD_PROPOSAL_SYNTAX)
        if length < 4 or pos + length > end:
            raise _fail(f"{what}: length {length} is wrong", NotifyType.BAD_PROPOSAL_SYNTAX)
        out.append(data[pos + 4:pos + length])
        pos += length
    if pos != end:
        raise _fail(f"{what}: {end - pos} octets after the last one",
                    NotifyType.BAD_PROPOSAL_SYNTAX)
    return out


def _parse_transform(body: bytes) -> Transform:
    if len(body) < 4:
        raise _fail("transform is too short", NotifyType.BAD_PROPOSAL_SYNTAX)
    number, tid, reserved = _TRANSFORM_HEAD.unpack_from(body)
    if reserved:
        raise _fail("transform reserved field is not zero", NotifyType.BAD_PROPOSAL_SYNTAX)
    try:
        attrs = decode_attributes(body[4:], "transform")
    except IsakmpDecodeError as e:
        raise _fail(str(e), NotifyType.BAD_PROPOSAL_SYNTAX) from None
    return Transform(number, tid, attrs)


def _parse_proposal(body: bytes) -> Proposal:
    if len(body) < 4:
        raise _fail("proposal is too short", NotifyType.BAD_PROPOSAL_SYNTAX)
    number, protocol, spi_size, count = _PROPOSAL_HEAD.unpack_from(body)
    if 4 + spi_size > len(body):
        raise _fail(f"proposal SPI size {spi_size} overruns it", NotifyType.BAD_PROPOSAL_SYNTAX)
    spi = body[4:4 + spi_size]
    rest = body[4 + spi_size:]
    items = _chain_items(rest, PT.T, "transform") if count else []
    if not items and rest:
        raise _fail("proposal has no transforms but trailing data",
                    NotifyType.BAD_PROPOSAL_SYNTAX)
    if len(items) != count:
        raise _fail(f"proposal announces {count} transforms but has {len(items)}",
                    NotifyType.BAD_PROPOSAL_SYNTAX)
    return Proposal(number, protocol, spi, [_parse_transform(t) for t in items])


@dataclass(slots=True)
class SA(IsakmpPayload):
    """Security Association payload of the IPsec DOI (situation SIT_IDENTITY_ONLY)."""

    ptype: ClassVar[int] = PT.SA
    proposals: list[Proposal] = field(default_factory=list)
    doi: int = DOI_IPSEC
    situation: int = SIT_IDENTITY_ONLY

    def body(self) -> bytes:
        return _SA_HEAD.pack(self.doi, self.situation) + b"".join(
            p.pack(i == len(self.proposals) - 1) for i, p in enumerate(self.proposals))

    @classmethod
    def parse(cls, body: bytes) -> SA:
        if len(body) < 8:
            raise _fail("SA payload is too short")
        doi, situation = _SA_HEAD.unpack_from(body)
        if doi != DOI_IPSEC:
            raise _fail(f"SA DOI {doi} is not IPsec", NotifyType.DOI_NOT_SUPPORTED)
        # Libreswan supports only the identity situation (no secrecy/integrity labels)
        if situation != SIT_IDENTITY_ONLY:
            raise _fail(f"SA situation {situation:#x} is not SIT_IDENTITY_ONLY",
                        NotifyType.SITUATION_NOT_SUPPORTED)
        items = _chain_items(body[8:], PT.P, "proposal")
        if not items:
            raise _fail("SA payload has no proposal", NotifyType.BAD_PROPOSAL_SYNTAX)
        return cls([_parse_proposal(p) for p in items], doi, situation)


@dataclass(slots=True)
class _Data(IsakmpPayload):
    """A payload that is just octets."""

    data: bytes = b""

    def body(self) -> bytes:
        return self.data

    @classmethod
    def parse(cls, body: bytes) -> _Data:
        return cls(body)


@dataclass(slots=True)
class KE(_Data):
    ptype: ClassVar[int] = PT.KE

    @classmethod
    def parse(cls, body: bytes) -> KE:
        if not body:
            raise _fail("KE payload is empty", NotifyType.INVALID_KEY_INFORMATION)
        return cls(body)


@dataclass(slots=True)
class Hash(_Data):
    ptype: ClassVar[int] = PT.HASH

    @classmethod
    def parse(cls, body: bytes) -> Hash:
        if not body:
            raise _fail("HASH payload is empty", NotifyType.INVALID_HASH_INFORMATION)
        return cls(body)


@dataclass(slots=True)
class Sig(_Data):
    ptype: ClassVar[int] = PT.SIG

    @classmethod
    def parse(cls, body: bytes) -> Sig:
        if not body:
            raise _fail("SIG payload is empty", NotifyType.INVALID_SIGNATURE)
        return cls(body)


@dataclass(slots=True)
class Nonce(_Data):
    ptype: ClassVar[int] = PT.NONCE

    @classmethod
    def parse(cls, body: bytes) -> Nonce:
        # RFC 2409 5: nonces are 8 to 256 octets
        if not 8 <= len(body) <= 256:
            raise _fail(f"nonce of {len(body)} octets (8 to 256 allowed)")
        return cls(body)


@dataclass(slots=True)
class VendorID(_Data):
    ptype: ClassVar[int] = PT.VID


@dataclass(slots=True)
class NatD(_Data):
    ptype: ClassVar[int] = PT.NAT_D
    draft: bool = False  # sent as payload type 130 (pre-RFC drafts)

    @classmethod
    def parse(cls, body: bytes) -> NatD:
        if not body:
            raise _fail("NAT-D payload is empty")
        return cls(body)


_ID_SIZES = {
    IdType.IPV4_ADDR: (4,), IdType.IPV6_ADDR: (16,), IdType.IPV4_ADDR_SUBNET: (8,),
    IdType.IPV6_ADDR_SUBNET: (32,), IdType.IPV4_ADDR_RANGE: (8,),
    IdType.IPV6_ADDR_RANGE: (32,),
}


@dataclass(slots=True)
class ID(IsakmpPayload):
    """Identification payload; ``protocol``/``port`` are the IPsec DOI fields (zero in
    phase 1 unless the peer binds its ID to UDP/500; the selector in phase 2)."""

    ptype: ClassVar[int] = PT.ID
    id_type: int = IdType.IPV4_ADDR
    data: bytes = b""
    protocol: int = 0
    port: int = 0

    def body(self) -> bytes:
        return _ID_HEAD.pack(self.id_type, self.protocol, self.port) + self.data

    @classmethod
    def parse(cls, body: bytes) -> ID:
        if len(body) < 4:
            raise _fail("ID payload is too short", NotifyType.INVALID_ID_INFORMATION)
        id_type, protocol, port = _ID_HEAD.unpack_from(body)
        data = body[4:]
        sizes = _ID_SIZES.get(id_type)  # type: ignore[call-overload]
        if sizes is not None and len(data) not in sizes:
            raise _fail(f"ID type {id_type} with {len(data)} octets of data",
                        NotifyType.INVALID_ID_INFORMATION)
        if id_type not in IdType._value2member_map_:
            raise _fail(f"ID type {id_type} unknown", NotifyType.INVALID_ID_INFORMATION)
        if sizes is None and not data:
            raise _fail(f"ID type {id_type} is empty", NotifyType.INVALID_ID_INFORMATION)
        if id_type in (IdType.IPV4_ADDR_SUBNET, IdType.IPV6_ADDR_SUBNET):
            half = len(data) // 2
            mask = int.from_bytes(data[half:], "big")
            bits = half * 8
            inv = ~mask & ((1 << bits) - 1)
            if inv & (inv + 1):  # the mask must be contiguous ones then zeros
                raise _fail("ID subnet mask is not contiguous", NotifyType.INVALID_ID_INFORMATION)
        if id_type in (IdType.IPV4_ADDR_RANGE, IdType.IPV6_ADDR_RANGE):
            half = len(data) // 2
            if data[:half] > data[half:]:
                raise _fail("ID address range runs backwards",
                            NotifyType.INVALID_ID_INFORMATION)
        return cls(id_type, data, protocol, port)

    def addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                 ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
        """First and last address for the address forms, else None."""
        d = self.data
        if self.id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
            a = ipaddress.ip_address(d)
            return a, a
        if self.id_type in (IdType.IPV4_ADDR_RANGE, IdType.IPV6_ADDR_RANGE):
            half = len(d) // 2
            return ipaddress.ip_address(d[:half]), ipaddress.ip_address(d[half:])
        if self.id_type in (IdType.IPV4_ADDR_SUBNET, IdType.IPV6_ADDR_SUBNET):
            half = len(d) // 2
            bits = half * 8
            mask = int.from_bytes(d[half:], "big")
            start = int.from_bytes(d[:half], "big") & mask
            end = start | (~mask & ((1 << bits) - 1))
            factory = ipaddress.IPv4Address if half == 4 else ipaddress.IPv6Address
            return factory(start), factory(end)
        return None


@dataclass(slots=True)
class Cert(IsakmpPayload):
    ptype: ClassVar[int] = PT.CERT
    encoding: int = 4
    data: bytes = b""

    def body(self) -> bytes:
        return bytes((self.encoding,)) + self.data

    @classmethod
    def parse(cls, body: bytes) -> Cert:
        if not body:
            raise _fail("CERT payload is empty", NotifyType.INVALID_CERT_ENCODING)
        return cls(body[0], body[1:])


@dataclass(slots=True)
class CertRequest(Cert):
    ptype: ClassVar[int] = PT.CR

    @classmethod
    def parse(cls, body: bytes) -> CertRequest:
        if not body:
            raise _fail("CR payload is empty", NotifyType.INVALID_CERT_ENCODING)
        return cls(body[0], body[1:])


@dataclass(slots=True)
class Notify(IsakmpPayload):
    ptype: ClassVar[int] = PT.N
    notify_type: int = 0
    protocol: int = 1
    spi: bytes = b""
    data: bytes = b""
    doi: int = DOI_IPSEC

    def body(self) -> bytes:
        if len(self.spi) > 255:
            raise IsakmpEncodeError("notify SPI too long")
        return (_NOTIFY_HEAD.pack(self.doi, self.protocol, len(self.spi), self.notify_type)
                + self.spi + self.data)

    @classmethod
    def parse(cls, body: bytes) -> Notify:
        if len(body) < 8:
            raise _fail("N payload is too short")
        doi, protocol, spi_size, ntype = _NOTIFY_HEAD.unpack_from(body)
        if 8 + spi_size > len(body):
            raise _fail(f"N payload SPI size {spi_size} overruns it")
        return cls(ntype, protocol, body[8:8 + spi_size], body[8 + spi_size:], doi)


@dataclass(slots=True)
class Delete(IsakmpPayload):
    ptype: ClassVar[int] = PT.D
    protocol: int = 1
    spis: list[bytes] = field(default_factory=list)
    spi_size: int = 16
    doi: int = DOI_IPSEC

    def body(self) -> bytes:
        if any(len(s) != self.spi_size for s in self.spis) or len(self.spis) > 0xFFFF:
            raise IsakmpEncodeError("delete SPIs do not match the SPI size")
        return (_DELETE_HEAD.pack(self.doi, self.protocol, self.spi_size, len(self.spis))
                + b"".join(self.spis))

    @classmethod
    def parse(cls, body: bytes) -> Delete:
        if len(body) < 8:
            raise _fail("D payload is too short")
        doi, protocol, spi_size, count = _DELETE_HEAD.unpack_from(body)
        if spi_size == 0 or len(body) != 8 + spi_size * count:
            raise _fail(f"D payload of {len(body)} octets for {count} SPIs of "
                        f"{spi_size} octets", NotifyType.INVALID_SPI)
        spis = [body[8 + i * spi_size:8 + (i + 1) * spi_size] for i in range(count)]
        return cls(protocol, spis, spi_size, doi)


@dataclass(slots=True)
class NatOA(IsakmpPayload):
    ptype: ClassVar[int] = PT.NAT_OA
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(0)
    draft: bool = False

    def body(self) -> bytes:
        kind = IdType.IPV4_ADDR if self.address.version == 4 else IdType.IPV6_ADDR
        return _NAT_OA_HEAD.pack(kind, b"\0\0\0") + self.address.packed

    @classmethod
    def parse(cls, body: bytes) -> NatOA:
        if len(body) < 4:
            raise _fail("NAT-OA payload is too short")
        kind, reserved = _NAT_OA_HEAD.unpack_from(body)
        addr = body[4:]
        if reserved != b"\0\0\0":
            raise _fail("NAT-OA reserved octets are not zero")
        if (kind, len(addr)) not in ((IdType.IPV4_ADDR, 4), (IdType.IPV6_ADDR, 16)):
            raise _fail(f"NAT-OA ID type {kind} with {len(addr)} octets",
                        NotifyType.INVALID_ID_INFORMATION)
        return cls(ipaddress.ip_address(addr))


@dataclass(slots=True)
class ModeCfgAttributes(IsakmpPayload):
    """The attribute payload of ModeCfg and XAUTH transactions."""

    ptype: ClassVar[int] = PT.ATTR
    cfg_type: int = 1
    identifier: int = 0
    attributes: list[Attribute] = field(default_factory=list)

    def body(self) -> bytes:
        return _CFG_HEAD.pack(self.cfg_type, 0, self.identifier) + encode_attributes(
            self.attributes)

    @classmethod
    def parse(cls, body: bytes) -> ModeCfgAttributes:
        if len(body) < 4:
            raise _fail("attribute payload is too short")
        cfg_type, reserved, ident = _CFG_HEAD.unpack_from(body)
        if reserved:
            raise _fail("attribute payload reserved octet is not zero")
        if not 1 <= cfg_type <= 4:
            raise _fail(f"attribute payload type {cfg_type} unknown")
        return cls(cfg_type, ident, decode_attributes(body[4:], "attribute payload",
                                                      padded=True))

    def attr(self, attr_type: int) -> Attribute | None:
        for a in self.attributes:
            if a.type == attr_type:
                return a
        return None


_CLASSES: dict[int, type[IsakmpPayload]] = {
    PT.SA: SA, PT.KE: KE, PT.ID: ID, PT.CERT: Cert, PT.CR: CertRequest, PT.HASH: Hash,
    PT.SIG: Sig, PT.NONCE: Nonce, PT.N: Notify, PT.D: Delete, PT.VID: VendorID,
    PT.ATTR: ModeCfgAttributes, PT.NAT_D: NatD, PT.NAT_OA: NatOA,
    PT.NAT_D_DRAFTS: NatD, PT.NAT_OA_DRAFTS: NatOA,
}


def _wire_type(p: IsakmpPayload) -> int:
    if isinstance(p, NatD) and p.draft:
        return PT.NAT_D_DRAFTS
    if isinstance(p, NatOA) and p.draft:
        return PT.NAT_OA_DRAFTS
    return p.ptype


def decode_payloads(first: int, data: bytes, *, padded: bool = False) -> list[IsakmpPayload]:
    """The payload chain starting with type ``first``.  ``padded``: trailing octets after
    the last payload are encryption padding and ignored; otherwise they are an error."""
    out: list[IsakmpPayload] = []
    pos, end = 0, len(data)
    np = first
    while np != PT.NONE:
        cls = _CLASSES.get(np)
        if cls is None:
            raise _fail(f"payload type {np} unknown or not allowed here",
                        NotifyType.INVALID_PAYLOAD_TYPE)
        if end - pos < 4:
            raise _fail(f"{PT(np).name} payload header truncated")
        next_np, reserved, length = _GENERIC.unpack_from(data, pos)
        if reserved:
            raise _fail(f"{PT(np).name} payload reserved octet is {reserved}")
        if length < 4 or pos + length > end:
            raise _fail(f"{PT(np).name} payload length {length} with {end - pos} "
                        "octets left")
        try:
            payload = cls.parse(data[pos + 4:pos + length])
        except (IndexError, ValueError, StructError) as e:  # belt and braces
            raise _fail(f"{PT(np).name} payload: {e}") from None
        if np in (PT.NAT_D_DRAFTS, PT.NAT_OA_DRAFTS):
            payload.draft = True  # type: ignore[attr-defined]
        out.append(payload)
        pos += length
        np = next_np
    if pos != end and not padded:
        raise _fail(f"{end - pos} octets after the last payload",
                    NotifyType.UNEQUAL_PAYLOAD_LENGTHS)
    return out


def encode_payloads(payloads: list[IsakmpPayload]) -> tuple[int, bytes]:
    """(first payload type, the chain)."""
    parts: list[bytes] = []
    for i, p in enumerate(payloads):
        body = p.body()
        if len(body) + 4 > 0xFFFF:
            raise IsakmpEncodeError(f"{type(p).__name__} payload too long")
        np = _wire_type(payloads[i + 1]) if i + 1 < len(payloads) else PT.NONE
        parts.append(_GENERIC.pack(np, 0, len(body) + 4) + body)
    return (_wire_type(payloads[0]) if payloads else PT.NONE), b"".join(parts)


@dataclass(slots=True)
class Message:
    header: Header
    payloads: list[IsakmpPayload] = field(default_factory=list)
    ciphertext: bytes = b""  # the body of an encrypted message, still encrypted

    @property
    def encrypted(self) -> bool:
        return bool(self.header.flags & Flag.ENCRYPTION)


def decode_message(data: bytes) -> Message:
    """Header and, for a cleartext message, its payloads."""
    h = decode_header(data)
    if h.flags & Flag.ENCRYPTION:
        return Message(h, [], data[HEADER_SIZE:])
    return Message(h, decode_payloads(h.next_payload, data[HEADER_SIZE:]))


def encode_message(header: Header, payloads: list[IsakmpPayload]) -> bytes:
    """A cleartext message (the E flag must not be set)."""
    first, body = encode_payloads(payloads)
    return header.pack(first, HEADER_SIZE + len(body)) + body


def payload_names(payloads: list[IsakmpPayload]) -> str:
    """``ISAKMP_NEXT_ID,ISAKMP_NEXT_HASH``-like short summary used in debug lines."""
    return ",".join(PT(_wire_type(p)).name for p in payloads)
