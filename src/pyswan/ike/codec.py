"""Strict IKEv2 message codec (RFC 7296 sections 2.5 and 3, RFC 7383 2.5).

Decoding is a security boundary: every length is checked against what is left before it is
used, and the only exception a decoder raises is :class:`IkeDecodeError` (or a subclass),
which names the notification to answer with.  Encoding computes every length and chains the
Next Payload fields itself; it round-trips exactly (``encode_message(decode_message(b)) == b``
for well-formed ``b``).

The SK and SKF payloads are not decrypted here: the engine decrypts ``SK.body`` and hands
the plaintext to :func:`decode_payloads`, and builds outgoing messages with
:func:`encode_payloads` plus :func:`sk_prefix` / :func:`skf_prefix`.

The payload classes live in ``codec_payloads`` and ``codec_sa`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from struct import Struct
from struct import error as StructError
from typing import TypeVar

from .codec_base import (
    CRITICAL_BIT,
    GENERIC_HEADER,
    IkeDecodeError,
    IkeEncodeError,
    InvalidMajorVersion,
    Payload,
    UnsupportedCriticalPayload,
    fail,
)
from .codec_payloads import (
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    KE,
    SK,
    SKF,
    CertPayload,
    Delete,
    GenericPayload,
    IDi,
    IdPayload,
    IDr,
    Nonce,
    Notify,
    RawTrafficSelector,
    TrafficSelector,
    TSi,
    TsPayload,
    TSr,
    VendorID,
    decode_skf,
)
from .codec_sa import SA, Proposal, Transform
from .constants import (
    IKE_HEADER_SIZE,
    IKEV2_MAJOR_VERSION,
    HeaderFlag,
    PayloadType,
    exchange_name,
    notify_name,
    payload_name,
)

_HEADER = Struct("!8s8sBBBBII")  # SPIi, SPIr, next payload, version, exchange, flags, MID, len
_SKF_EXTRA = Struct("!HH")
_MAX_PAYLOAD_LENGTH = 0xFFFF
_MAX_MESSAGE_LENGTH = 0xFFFFFFFF

# Payload types this codec understands, by Next Payload value.  SK and SKF are handled by
# the chain itself because their Next Payload field names the first inner payload.
_DECODERS: dict[int, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        SA,
        KE,
        IDi,
        IDr,
        CERT,
        CERTREQ,
        AUTH,
        Nonce,
        Notify,
        Delete,
        VendorID,
        TSi,
        TSr,
        CP,
        EAP,
    )
}
_ENCRYPTED = (PayloadType.SK, PayloadType.SKF)


# --- header ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Header:
    spi_i: bytes
    spi_r: bytes
    next_payload: int
    major: int
    minor: int
    exchange: int
    flags: int
    message_id: int
    length: int

    @property
    def is_initiator(self) -> bool:
        """The I flag: sent by the original initiator of the IKE SA."""
        return bool(self.flags & HeaderFlag.INITIATOR)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & HeaderFlag.RESPONSE)

    def __str__(self) -> str:
        role = "response" if self.is_response else "request"
        return (
            f"{exchange_name(self.exchange)} {role} {self.spi_i.hex()}/{self.spi_r.hex()} "
            f"msgid={self.message_id} flags={self.flags:#04x} len={self.length}"
        )


def decode_header(data: bytes, *, check_version: bool = True) -> Header:
    """Decode and check the 28-byte IKE header of the datagram ``data``.

    The Length field must equal ``len(data)`` exactly.  With ``check_version`` (the default)
    a major version other than 2 raises :class:`InvalidMajorVersion`; the daemon's demux may
    pass ``False`` to read an IKEv1 header through the same fast path.
    """
    if len(data) < IKE_HEADER_SIZE:
        raise fail(f"message of {len(data)} bytes is shorter than the IKE header")
    spi_i, spi_r, next_payload, version, exchange, flags, message_id, length = _HEADER.unpack_from(
        data
    )
    major, minor = version >> 4, version & 0x0F
    if check_version and major != IKEV2_MAJOR_VERSION:
        raise InvalidMajorVersion(major, minor)
    if length != len(data):
        raise fail(f"IKE header Length {length} != {len(data)} bytes received")
    return Header(spi_i, spi_r, next_payload, major, minor, exchange, flags, message_id, length)


# --- message ---------------------------------------------------------------------------------

P = TypeVar("P", bound=Payload)


@dataclass(slots=True)
class Message:
    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    message_id: int
    payloads: list[Payload]
    major: int = IKEV2_MAJOR_VERSION
    minor: int = 0

    @property
    def is_initiator(self) -> bool:
        return bool(self.flags & HeaderFlag.INITIATOR)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & HeaderFlag.RESPONSE)

    @property
    def encrypted(self) -> SK | SKF | None:
        """The SK or SKF payload (always the last one), if any."""
        last = self.payloads[-1] if self.payloads else None
        return last if isinstance(last, (SK, SKF)) else None

    def get(self, cls: type[P]) -> P | None:
        """The first payload of class ``cls`` (e.g. ``msg.get(Nonce)``), or None."""
        for payload in self.payloads:
            if type(payload) is cls:
                return payload  # type: ignore[return-value]
        return None

    def get_all(self, cls: type[P]) -> list[P]:
        return [p for p in self.payloads if type(p) is cls]  # type: ignore[misc]

    def notify(self, notify_type: int) -> Notify | None:
        """The first Notify of ``notify_type``, or None."""
        for payload in self.payloads:
            if type(payload) is Notify and payload.type == notify_type:
                return payload
        return None

    def __str__(self) -> str:
        role = "response" if self.is_response else "request"
        return (
            f"{exchange_name(self.exchange)} {role} {self.spi_i.hex()}/{self.spi_r.hex()} "
            f"msgid={self.message_id} containing {describe_payloads(self.payloads)}"
        )


def decode_message(data: bytes) -> Message:
    """Decode a whole IKEv2 datagram (without any non-ESP marker).

    Cleartext payloads are decoded; an SK or SKF payload must be the last one and is
    returned with its body (IV + ciphertext + ICV) untouched.
    """
    if type(data) is not bytes:
        data = bytes(data)
    header = decode_header(data)
    payloads = _decode_chain(data, header.next_payload, IKE_HEADER_SIZE, len(data), True)
    return Message(
        header.spi_i,
        header.spi_r,
        header.exchange,
        header.flags,
        header.message_id,
        payloads,
        header.major,
        header.minor,
    )


def decode_payloads(first_type: int, data: bytes) -> list[Payload]:
    """Decode a chain of payloads starting with type ``first_type``: the plaintext of an SK
    payload after decryption (padding and Pad Length already removed).  SK and SKF are not
    allowed inside."""
    if type(data) is not bytes:
        data = bytes(data)
    return _decode_chain(data, first_type, 0, len(data), False)


def _decode_chain(
    buf: bytes, ptype: int, pos: int, end: int, allow_encrypted: bool
) -> list[Payload]:
    payloads: list[Payload] = []
    decoders = _DECODERS
    while ptype:
        if end - pos < 4:
            raise fail(f"{payload_name(ptype)} payload header truncated ({end - pos} bytes left)")
        next_type, flags, length = GENERIC_HEADER.unpack_from(buf, pos)
        if length < 4 or length > end - pos:
            raise fail(
                f"{payload_name(ptype)} payload length {length} invalid ({end - pos} bytes left)"
            )
        critical = bool(flags & CRITICAL_BIT)
        body = pos + 4
        pos += length
        cls = decoders.get(ptype)
        if cls is not None:
            payloads.append(cls.decode_body(buf, body, pos, critical))
        elif ptype in _ENCRYPTED:
            payloads.append(
                _decode_encrypted(buf, ptype, next_type, body, pos, end, critical, allow_encrypted)
            )
            return payloads  # SK's Next Payload is the first inner type, not a successor
        elif critical:
            raise UnsupportedCriticalPayload(ptype)
        else:
            payloads.append(GenericPayload(ptype, buf[body:pos]))
        ptype = next_type
    if pos != end:
        raise fail(f"{end - pos} bytes after the last payload")
    return payloads


def _decode_encrypted(
    buf: bytes,
    ptype: int,
    first_inner: int,
    start: int,
    stop: int,
    end: int,
    critical: bool,
    allow: bool,
) -> SK | SKF:
    name = payload_name(ptype)
    if not allow:
        raise fail(f"{name} payload inside an encrypted payload")
    if stop != end:
        raise fail(f"{name} payload is not the last payload ({end - stop} bytes follow)")
    if ptype == PayloadType.SK:
        return SK(first_inner, buf[start:stop], critical=critical)
    return decode_skf(buf, start, stop, first_inner, critical)


# --- encoding --------------------------------------------------------------------------------


def encode_payloads(payloads: list[Payload]) -> tuple[int, bytes]:
    """Encode ``payloads`` with their Next Payload chain; returns (first type, bytes).

    An SK/SKF payload may appear only last (its Next Payload field carries its
    ``first_inner``)."""
    return _encode_chain(payloads, PayloadType.NONE)


def _encode_chain(payloads: list[Payload], tail_type: int) -> tuple[int, bytes]:
    """Chain ``payloads``; the last one's Next Payload is ``tail_type`` (e.g. SK when the
    encrypted payload follows separately)."""
    parts = []
    count = len(payloads)
    pack = GENERIC_HEADER.pack
    try:
        for index, payload in enumerate(payloads):
            if isinstance(payload, (SK, SKF)):
                if index != count - 1 or tail_type:
                    raise IkeEncodeError(f"{payload_name(payload.TYPE)} must be the last payload")
                next_type = payload.first_inner
            elif index + 1 < count:
                next_type = payloads[index + 1].payload_type
            else:
                next_type = tail_type
            body = payload.encode_body()
            length = 4 + len(body)
            if length > _MAX_PAYLOAD_LENGTH:
                raise IkeEncodeError(
                    f"{payload_name(payload.payload_type)} payload is "
                    f"{length} bytes, more than 65535"
                )
            parts.append(pack(next_type, CRITICAL_BIT if payload.critical else 0, length))
            parts.append(body)
    except StructError as e:
        raise IkeEncodeError(f"cannot encode payload: {e}") from e
    first = payloads[0].payload_type if payloads else tail_type
    return first, b"".join(parts)


def _pack_header(msg: Message, next_payload: int, length: int) -> bytes:
    if length > _MAX_MESSAGE_LENGTH:
        raise IkeEncodeError(f"message of {length} bytes is too long")
    try:
        return _HEADER.pack(
            msg.spi_i,
            msg.spi_r,
            next_payload,
            (msg.major << 4) | msg.minor,
            msg.exchange,
            msg.flags,
            msg.message_id,
            length,
        )
    except StructError as e:
        raise IkeEncodeError(f"cannot encode IKE header: {e}") from e


def _check_spis(msg: Message) -> None:
    if len(msg.spi_i) != 8 or len(msg.spi_r) != 8:
        raise IkeEncodeError("IKE SPIs must be 8 bytes each")


def encode_message(msg: Message) -> bytes:
    """Encode ``msg``; all lengths are computed, an SK/SKF body is written as given."""
    _check_spis(msg)
    first, body = _encode_chain(msg.payloads, PayloadType.NONE)
    return _pack_header(msg, first, IKE_HEADER_SIZE + len(body)) + body


def sk_prefix(msg: Message, sk_first_inner: int, sk_body_len: int) -> bytes:
    """The message up to and including the SK payload header, with every length already
    counting ``sk_body_len`` bytes of body (IV + ciphertext + ICV) still to be appended.

    ``msg.payloads`` holds only the cleartext payloads that precede SK (usually none).  The
    result is the AEAD associated data (RFC 5282 5.1) and the start of the region the
    integrity checksum covers (RFC 7296 3.14).
    """
    return _encrypted_prefix(msg, PayloadType.SK, sk_first_inner, sk_body_len, b"")


def skf_prefix(
    msg: Message, first_inner: int, frag_number: int, total: int, body_len: int
) -> bytes:
    """As :func:`sk_prefix` for one fragment (RFC 7383 2.5): the SKF header carries the
    fragment number and total after the generic header.  ``first_inner`` should be zero
    for every fragment but the first."""
    try:
        extra = _SKF_EXTRA.pack(frag_number, total)
    except StructError as e:
        raise IkeEncodeError(f"cannot encode SKF header: {e}") from e
    return _encrypted_prefix(msg, PayloadType.SKF, first_inner, body_len, extra)


def _encrypted_prefix(
    msg: Message, ptype: int, first_inner: int, body_len: int, extra: bytes
) -> bytes:
    _check_spis(msg)
    _, clear = _encode_chain(msg.payloads, ptype)
    payload_length = 4 + len(extra) + body_len
    if payload_length > _MAX_PAYLOAD_LENGTH:
        raise IkeEncodeError(f"{payload_name(ptype)} payload of {payload_length} bytes")
    try:
        sk_header = GENERIC_HEADER.pack(first_inner, 0, payload_length) + extra
    except StructError as e:
        raise IkeEncodeError(f"cannot encode {payload_name(ptype)} header: {e}") from e
    first = msg.payloads[0].payload_type if msg.payloads else ptype
    total = IKE_HEADER_SIZE + len(clear) + len(sk_header) + body_len
    return _pack_header(msg, first, total) + clear + sk_header


# --- logging ---------------------------------------------------------------------------------


def describe_payloads(payloads: Iterable[Payload], inner: Iterable[Payload] | None = None) -> str:
    """Libreswan's payload summary: ``SA,KE,Ni,N(NAT_DETECTION_SOURCE_IP)`` and, with the
    decrypted ``inner`` payloads, ``SK{IDr,AUTH,SA,TSi,TSr}``."""
    text = ",".join(_short(p) for p in payloads)
    if inner is not None:
        text += "{" + ",".join(_short(p) for p in inner) + "}"
    return text


def _short(payload: Payload) -> str:
    name = payload_name(payload.payload_type)
    if type(payload) is Notify:
        notify = notify_name(payload.type)
        if not notify.endswith("?"):  # Libreswan prints a bare "N" for unknown types
            return f"{name}({notify})"
    return name


__all__ = [
    "AUTH",
    "CERT",
    "CERTREQ",
    "CP",
    "EAP",
    "KE",
    "SA",
    "SK",
    "SKF",
    "CertPayload",
    "Delete",
    "GenericPayload",
    "Header",
    "IDi",
    "IDr",
    "IdPayload",
    "IkeDecodeError",
    "IkeEncodeError",
    "InvalidMajorVersion",
    "Message",
    "Nonce",
    "Notify",
    "Payload",
    "Proposal",
    "RawTrafficSelector",
    "TSi",
    "TSr",
    "TrafficSelector",
    "Transform",
    "TsPayload",
    "UnsupportedCriticalPayload",
    "VendorID",
    "decode_header",
    "decode_message",
    "decode_payloads",
    "describe_payloads",
    "encode_message",
    "encode_payloads",
    "sk_prefix",
    "skf_prefix",
]
