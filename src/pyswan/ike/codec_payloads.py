"""IKEv2 payloads other than SA (RFC 7296 section 3, RFC 7383 2.5)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from struct import Struct
from typing import Self

from .codec_base import IkeEncodeError, Layout, LayoutPayload, Payload, fail, hexstr
from .constants import (
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttribute,
    IdType,
    KeMethod,
    PayloadType,
    ProtocolId,
    TsType,
    enum_name,
    notify_is_error,
    notify_name,
    payload_name,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# SPI sizes fixed by the protocol (RFC 7296 3.3.1, 3.11); other protocols are left alone.
CHILD_SPI_SIZE = 4
IKE_SPI_SIZE = 8


# --- payloads that are a fixed head plus data -------------------------------------------------


@dataclass(slots=True)
class KE(LayoutPayload):
    """Key Exchange (3.4): group number, RESERVED, key exchange data."""

    TYPE = PayloadType.KE
    LAYOUT = Layout("!H2x", ("group",))
    group: int
    data: bytes

    def __str__(self) -> str:
        return f"KE{self._crit()} {enum_name(KeMethod, self.group)} {hexstr(self.data)}"


@dataclass(slots=True)
class IdPayload(LayoutPayload):
    """Identification (3.5): ID type, 3 RESERVED octets, identification data (may be empty
    for ID_NULL)."""

    LAYOUT = Layout("!B3x", ("id_type",))
    id_type: int
    data: bytes

    def __str__(self) -> str:
        shown = self.data.decode("ascii", "replace") if self.id_type in _TEXT_IDS else None
        value = repr(shown) if shown is not None else hexstr(self.data, 32)
        return f"{payload_name(self.TYPE)}{self._crit()} {enum_name(IdType, self.id_type)} {value}"


_TEXT_IDS = (IdType.FQDN, IdType.RFC822_ADDR)


class IDi(IdPayload):
    __slots__ = ()
    TYPE = PayloadType.IDi


class IDr(IdPayload):
    __slots__ = ()
    TYPE = PayloadType.IDr


@dataclass(slots=True)
class CertPayload(LayoutPayload):
    """Certificate (3.6) and Certificate Request (3.7): encoding octet plus data."""

    LAYOUT = Layout("!B", ("encoding",))
    encoding: int
    data: bytes

    def __str__(self) -> str:
        encoding = enum_name(CertEncoding, self.encoding)
        return f"{payload_name(self.TYPE)}{self._crit()} {encoding} {hexstr(self.data)}"


class CERT(CertPayload):
    __slots__ = ()
    TYPE = PayloadType.CERT


class CERTREQ(CertPayload):
    __slots__ = ()
    TYPE = PayloadType.CERTREQ


@dataclass(slots=True)
class AUTH(LayoutPayload):
    """Authentication (3.8): method, 3 RESERVED octets, authentication data."""

    TYPE = PayloadType.AUTH
    LAYOUT = Layout("!B3x", ("method",))
    method: int
    data: bytes

    def __str__(self) -> str:
        return f"AUTH{self._crit()} {enum_name(AuthMethod, self.method)} {hexstr(self.data)}"


@dataclass(slots=True)
class Nonce(LayoutPayload):
    """Nonce (3.9): 16 to 256 octets of nonce data."""

    TYPE = PayloadType.NONCE
    LAYOUT = Layout(min_data=16, max_data=256)
    data: bytes

    def __str__(self) -> str:
        return f"Ni{self._crit()} {hexstr(self.data)}"


@dataclass(slots=True)
class VendorID(LayoutPayload):
    """Vendor ID (3.12): opaque."""

    TYPE = PayloadType.VENDOR_ID
    LAYOUT = Layout()
    data: bytes

    def __str__(self) -> str:
        return f"V{self._crit()} {hexstr(self.data, 32)}"


_EAP_LENGTH = Struct("!2xH")


@dataclass(slots=True)
class EAP(LayoutPayload):
    """EAP (3.16): one EAP message, whose own Length field must cover exactly the payload
    (the EAP header is 4 octets: code, identifier, length)."""

    TYPE = PayloadType.EAP
    LAYOUT = Layout(min_data=4)
    data: bytes

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        if end - start >= 4:
            (eap_length,) = _EAP_LENGTH.unpack_from(buf, start)
            if eap_length != end - start:
                raise fail(f"EAP message length {eap_length} != payload body {end - start}")
        return super(EAP, cls).decode_body(buf, start, end, critical)

    def __str__(self) -> str:
        code = self.data[0] if self.data else "?"
        return f"EAP{self._crit()} code={code} {hexstr(self.data)}"


@dataclass(slots=True)
class GenericPayload(LayoutPayload):
    """A payload type this codec does not know, kept raw so the engine can ignore it."""

    type: int
    data: bytes

    @property
    def payload_type(self) -> int:
        return self.type

    def __str__(self) -> str:
        return f"{payload_name(self.type)}{self._crit()} {hexstr(self.data)}"


# --- Notify and Delete ---------------------------------------------------------------------

_NOTIFY_HEAD = Struct("!BBH")  # protocol ID, SPI size, notify message type


@dataclass(slots=True)
class Notify(Payload):
    """Notify (3.10): protocol ID, SPI size, type, SPI, notification data."""

    TYPE = PayloadType.NOTIFY
    protocol: int
    spi: bytes
    type: int
    data: bytes = b""

    @classmethod
    def of(
        cls, type: int, data: bytes = b"", *, protocol: int = ProtocolId.NONE, spi: bytes = b""
    ) -> Notify:
        """The common case: a notification about no particular SA."""
        return cls(protocol, spi, type, data)

    @property
    def is_error(self) -> bool:
        return notify_is_error(self.type)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        if end - start < 4:
            raise fail(f"N payload body is {end - start} bytes, need at least 4")
        protocol, spi_size, notify_type = _NOTIFY_HEAD.unpack_from(buf, start)
        spi_end = start + 4 + spi_size
        if spi_end > end:
            raise fail(f"N({notify_name(notify_type)}) SPI size {spi_size} overruns payload")
        return cls(
            protocol, buf[start + 4 : spi_end], notify_type, buf[spi_end:end], critical=critical
        )

    def encode_body(self) -> bytes:
        return _NOTIFY_HEAD.pack(self.protocol, len(self.spi), self.type) + self.spi + self.data

    def __str__(self) -> str:
        text = f"N({notify_name(self.type).rstrip('?')}){self._crit()}"
        if self.protocol or self.spi:
            text += f" {enum_name(ProtocolId, self.protocol)} spi={self.spi.hex()}"
        if self.data:
            text += f" {hexstr(self.data)}"
        return text


_DELETE_HEAD = Struct("!BBH")  # protocol ID, SPI size, number of SPIs


@dataclass(slots=True)
class Delete(Payload):
    """Delete (3.11).  IKE deletes carry no SPI (size 0, count 0); AH/ESP SPIs are 4 octets."""

    TYPE = PayloadType.DELETE
    protocol: int
    spi_size: int
    spis: list[bytes] = field(default_factory=list)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        if end - start < 4:
            raise fail(f"D payload body is {end - start} bytes, need at least 4")
        protocol, spi_size, count = _DELETE_HEAD.unpack_from(buf, start)
        if protocol == ProtocolId.IKE and (spi_size or count):
            raise fail(f"D payload for IKE has SPI size {spi_size} and {count} SPIs, want 0")
        if protocol in (ProtocolId.AH, ProtocolId.ESP) and spi_size != CHILD_SPI_SIZE:
            raise fail(f"D payload for {ProtocolId(protocol).name} has SPI size {spi_size}")
        if spi_size == 0 and count:
            raise fail(f"D payload lists {count} SPIs of size 0")
        pos = start + 4
        if count * spi_size != end - pos:
            raise fail(f"D payload: {count} SPIs of {spi_size} bytes != {end - pos} bytes")
        spis = [buf[p : p + spi_size] for p in range(pos, end, spi_size)] if spi_size else []
        return cls(protocol, spi_size, spis, critical=critical)

    def encode_body(self) -> bytes:
        if any(len(spi) != self.spi_size for spi in self.spis):
            raise IkeEncodeError(f"Delete SPIs must all be {self.spi_size} bytes")
        return _DELETE_HEAD.pack(self.protocol, self.spi_size, len(self.spis)) + b"".join(self.spis)

    def __str__(self) -> str:
        spis = ",".join(spi.hex() for spi in self.spis)
        return f"D{self._crit()} {enum_name(ProtocolId, self.protocol)} [{spis}]"


# --- Traffic selectors ---------------------------------------------------------------------

_TS_HEAD = Struct("!B3x")  # number of TSs
_TS_SELECTOR = Struct("!BBHHH")  # TS type, IP protocol, selector length, start port, end port
_TS_RAW = Struct("!BBH")  # TS type, (protocol / reserved), selector length
_TS_ADDRESS_SIZE = {TsType.IPV4_ADDR_RANGE: 4, TsType.IPV6_ADDR_RANGE: 16}
_TS_ADDRESS_CLASS = {
    TsType.IPV4_ADDR_RANGE: ipaddress.IPv4Address,
    TsType.IPV6_ADDR_RANGE: ipaddress.IPv6Address,
}


@dataclass(slots=True)
class TrafficSelector:
    """An address-range selector (3.13.1), TS type 7 (IPv4) or 8 (IPv6)."""

    ts_type: int
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: IPAddress
    end_addr: IPAddress

    def encode(self) -> bytes:
        size = _TS_ADDRESS_SIZE.get(self.ts_type)  # type: ignore[call-overload]
        start, end = self.start_addr.packed, self.end_addr.packed
        if size is None or len(start) != size or len(end) != size:
            raise IkeEncodeError(f"addresses of {self} do not match TS type {self.ts_type}")
        head = _TS_SELECTOR.pack(
            self.ts_type, self.ip_protocol, 8 + 2 * size, self.start_port, self.end_port
        )
        return head + start + end

    def __str__(self) -> str:
        ports = f"{self.start_port}-{self.end_port}"
        return f"{self.start_addr}-{self.end_addr}:{self.ip_protocol}/{ports}"


@dataclass(slots=True)
class RawTrafficSelector:
    """A selector of any other TS type (e.g. SECLABEL, RFC 9478), kept as raw bytes.

    ``reserved`` is the octet after the TS type (the IP protocol for address ranges) and
    ``data`` everything after the 4-octet selector header.
    """

    ts_type: int
    data: bytes
    reserved: int = 0

    def encode(self) -> bytes:
        return _TS_RAW.pack(self.ts_type, self.reserved, 4 + len(self.data)) + self.data

    def __str__(self) -> str:
        return f"{enum_name(TsType, self.ts_type)} {hexstr(self.data, 32)}"


AnySelector = TrafficSelector | RawTrafficSelector


def _decode_selector(buf: bytes, pos: int, end: int) -> tuple[AnySelector, int]:
    if end - pos < 4:
        raise fail("traffic selector header truncated")
    ts_type, second, length = _TS_RAW.unpack_from(buf, pos)
    if length < 4 or length > end - pos:
        raise fail(f"traffic selector length {length} invalid ({end - pos} bytes left)")
    size = _TS_ADDRESS_SIZE.get(ts_type)  # type: ignore[call-overload]
    if size is None:
        return RawTrafficSelector(ts_type, buf[pos + 4 : pos + length], second), pos + length
    if length != 8 + 2 * size:
        raise fail(f"{TsType(ts_type).name} selector length {length} != {8 + 2 * size}")
    _, proto, _, start_port, end_port = _TS_SELECTOR.unpack_from(buf, pos)
    addr = _TS_ADDRESS_CLASS[ts_type]
    start = addr(buf[pos + 8 : pos + 8 + size])
    stop = addr(buf[pos + 8 + size : pos + length])
    return TrafficSelector(ts_type, proto, start_port, end_port, start, stop), pos + length


@dataclass(slots=True)
class TsPayload(Payload):
    """Traffic Selector payload (3.13): count, 3 RESERVED octets, selectors."""

    selectors: list[AnySelector] = field(default_factory=list)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        if end - start < 4:
            raise fail(f"{payload_name(cls.TYPE)} payload body is {end - start} bytes")
        (count,) = _TS_HEAD.unpack_from(buf, start)
        pos = start + 4
        selectors = []
        for _ in range(count):
            selector, pos = _decode_selector(buf, pos, end)
            selectors.append(selector)
        if pos != end:
            raise fail(f"{payload_name(cls.TYPE)}: {end - pos} bytes after {count} selectors")
        return cls(selectors, critical=critical)

    def encode_body(self) -> bytes:
        head = _TS_HEAD.pack(len(self.selectors))
        return head + b"".join(selector.encode() for selector in self.selectors)

    def __str__(self) -> str:
        selectors = " ".join(str(s) for s in self.selectors)
        return f"{payload_name(self.TYPE)}{self._crit()} [{selectors}]"


class TSi(TsPayload):
    __slots__ = ()
    TYPE = PayloadType.TSi


class TSr(TsPayload):
    __slots__ = ()
    TYPE = PayloadType.TSr


# --- Configuration ---------------------------------------------------------------------------

_CP_HEAD = Struct("!B3x")  # CFG type
_CP_ATTRIBUTE = Struct("!HH")  # R bit + attribute type, length
_CP_TYPE_MASK = 0x7FFF  # the top bit is reserved (3.15.1)


@dataclass(slots=True)
class CP(Payload):
    """Configuration (3.15): CFG type and a list of (attribute type, value) pairs."""

    TYPE = PayloadType.CP
    cfg_type: int
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        if end - start < 4:
            raise fail(f"CP payload body is {end - start} bytes, need at least 4")
        (cfg_type,) = _CP_HEAD.unpack_from(buf, start)
        pos = start + 4
        attributes = []
        while pos < end:
            if end - pos < 4:
                raise fail("CP attribute header truncated")
            attr_type, length = _CP_ATTRIBUTE.unpack_from(buf, pos)
            value_end = pos + 4 + length
            if value_end > end:
                raise fail(f"CP attribute {attr_type & _CP_TYPE_MASK} length {length} overruns")
            attributes.append((attr_type & _CP_TYPE_MASK, buf[pos + 4 : value_end]))
            pos = value_end
        return cls(cfg_type, attributes, critical=critical)

    def encode_body(self) -> bytes:
        parts = [_CP_HEAD.pack(self.cfg_type)]
        for attr_type, value in self.attributes:
            parts.append(_CP_ATTRIBUTE.pack(attr_type & _CP_TYPE_MASK, len(value)))
            parts.append(value)
        return b"".join(parts)

    def __str__(self) -> str:
        attrs = ",".join(
            f"{enum_name(ConfigAttribute, t)}={v.hex()}" if v else enum_name(ConfigAttribute, t)
            for t, v in self.attributes
        )
        return f"CP{self._crit()} {enum_name(CfgType, self.cfg_type)} [{attrs}]"


# --- Encrypted payloads --------------------------------------------------------------------


@dataclass(slots=True)
class SK(Payload):
    """Encrypted and Authenticated (3.14), not decrypted here.

    ``first_inner`` is the type of the first payload inside (it travels in SK's Next Payload
    field); ``body`` is IV + ciphertext + ICV exactly as on the wire.  SK is always the last
    payload, so the integrity-protected prefix of a received message ``data`` is
    ``data[:len(data) - len(sk.body)]``.
    """

    TYPE = PayloadType.SK
    first_inner: int
    body: bytes

    def encode_body(self) -> bytes:
        return self.body

    def __str__(self) -> str:
        return f"SK{self._crit()} first={payload_name(self.first_inner)} {len(self.body)} bytes"


_SKF_HEAD = Struct("!HH")  # fragment number, total fragments


@dataclass(slots=True)
class SKF(Payload):
    """Encrypted and Authenticated Fragment (RFC 7383 2.5).  ``first_inner`` is the first
    inner payload type in fragment 1 and zero in the others."""

    TYPE = PayloadType.SKF
    first_inner: int
    frag_number: int
    total_fragments: int
    body: bytes

    def encode_body(self) -> bytes:
        return _SKF_HEAD.pack(self.frag_number, self.total_fragments) + self.body

    def __str__(self) -> str:
        return (
            f"SKF{self._crit()} {self.frag_number}/{self.total_fragments} "
            f"first={payload_name(self.first_inner)} {len(self.body)} bytes"
        )


def decode_skf(buf: bytes, start: int, end: int, first_inner: int, critical: bool) -> SKF:
    if end - start < 4:
        raise fail(f"SKF payload body is {end - start} bytes, need at least 4")
    number, total = _SKF_HEAD.unpack_from(buf, start)
    if number == 0 or total == 0 or number > total:
        raise fail(f"SKF fragment {number} of {total} is impossible")
    return SKF(first_inner, number, total, buf[start + 4 : end], critical=critical)


__all__ = [
    "AUTH",
    "CERT",
    "CERTREQ",
    "CHILD_SPI_SIZE",
    "CP",
    "CertPayload",
    "Delete",
    "EAP",
    "GenericPayload",
    "IDi",
    "IDr",
    "IKE_SPI_SIZE",
    "IdPayload",
    "KE",
    "Nonce",
    "Notify",
    "RawTrafficSelector",
    "SK",
    "SKF",
    "TSi",
    "TSr",
    "TrafficSelector",
    "TsPayload",
    "VendorID",
    "decode_skf",
]
