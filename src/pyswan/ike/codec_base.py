"""Errors, the payload base class and the declarative layout shared by the IKEv2 payloads.

Decoders work on one immutable ``bytes`` buffer with explicit ``start``/``end`` offsets:
``Struct.unpack_from`` reads in place, and only the values that end up in a payload are
sliced out, so a message is copied once per field at most.  Every length read from the wire
is compared with ``end`` before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from struct import Struct
from typing import ClassVar, Self

from .constants import NotifyType, PayloadType, payload_name

GENERIC_HEADER = Struct("!BBH")  # next payload, critical bit + reserved, payload length
CRITICAL_BIT = 0x80


class IkeDecodeError(Exception):
    """A received message (or part of one) is malformed.

    ``notify`` is the notification the engine should answer with, when it answers at all
    (RFC 7296 2.21: errors in unauthenticated messages are normally just dropped), and
    ``notify_data`` its Notification Data.
    """

    notify: NotifyType = NotifyType.INVALID_SYNTAX

    def __init__(self, message: str, *, notify: NotifyType | None = None, data: bytes = b""):
        super().__init__(message)
        if notify is not None:
            self.notify = notify
        self.notify_data = data


class UnsupportedCriticalPayload(IkeDecodeError):
    """An unknown payload with the critical bit set (RFC 7296 2.5, 3.2)."""

    notify = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, payload_type: int):
        # The notification data is the one-octet type of the offending payload.
        super().__init__(
            f"unsupported critical payload type {payload_type}", data=bytes((payload_type,))
        )
        self.payload_type = payload_type


class InvalidMajorVersion(IkeDecodeError):
    """The header's major version is not 2.

    Major version 1 is IKEv1 and belongs to a different codec: the daemon's demux either
    checks the version itself or calls ``decode_header(data, check_version=False)``.
    """

    notify = NotifyType.INVALID_MAJOR_VERSION

    def __init__(self, major: int, minor: int = 0):
        super().__init__(f"IKE major version {major}.{minor} is not 2")
        self.major = major
        self.minor = minor


class IkeEncodeError(ValueError):
    """A payload cannot be represented on the wire (a field too long, an SK not last...).

    Encoding is otherwise permissive on purpose: it writes what it is given, so tests and
    impairments can build messages that the strict decoder must reject.
    """


def fail(what: str) -> IkeDecodeError:
    return IkeDecodeError(what)


def hexstr(data: bytes, limit: int = 16) -> str:
    """Hex for debug output, shortened when long."""
    if len(data) <= limit:
        return data.hex()
    return f"{data[:limit].hex()}...({len(data)} bytes)"


@dataclass(slots=True)
class Payload:
    """Base of every IKEv2 payload.

    ``critical`` is the C bit of the generic header; it is meaningful only for payload types
    the receiver does not know, but it is kept so that encoding reproduces the input.
    """

    TYPE: ClassVar[int] = PayloadType.NONE
    critical: bool = field(default=False, kw_only=True, repr=False)

    @property
    def payload_type(self) -> int:
        return self.TYPE

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        raise NotImplementedError

    def encode_body(self) -> bytes:
        raise NotImplementedError

    def _crit(self) -> str:
        return " critical" if self.critical else ""


class Layout:
    """Declares a payload as a fixed head followed by a variable ``data`` field.

    ``fmt`` is a ``struct`` format for the head (``x`` for RESERVED octets, which are sent as
    zero and ignored on receipt, RFC 7296 3.2), ``fields`` names the head's values in order,
    and ``min_data``/``max_data`` bound the length of the trailing data.  The same
    description drives decode and encode.
    """

    __slots__ = ("head", "fields", "get", "min_data", "max_data")

    def __init__(
        self,
        fmt: str = "!",
        fields: tuple[str, ...] = (),
        min_data: int = 0,
        max_data: int | None = None,
    ):
        self.head = Struct(fmt)
        self.fields = fields
        self.get = attrgetter(*fields) if len(fields) > 1 else None
        self.min_data = min_data
        self.max_data = max_data


class LayoutPayload(Payload):
    """A payload described entirely by a :class:`Layout`; subclasses declare ``LAYOUT``."""

    __slots__ = ()
    LAYOUT: ClassVar[Layout] = Layout()

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, critical: bool) -> Self:
        layout = cls.LAYOUT
        head = layout.head
        data_len = end - start - head.size
        if data_len < layout.min_data:
            raise fail(
                f"{payload_name(cls.TYPE)} payload body is {end - start} bytes, "
                f"need at least {head.size + layout.min_data}"
            )
        if layout.max_data is not None and data_len > layout.max_data:
            raise fail(
                f"{payload_name(cls.TYPE)} payload body is {end - start} bytes, "
                f"at most {head.size + layout.max_data} allowed"
            )
        values = head.unpack_from(buf, start)
        return cls(*values, buf[start + head.size : end], critical=critical)

    def encode_body(self) -> bytes:
        layout = self.LAYOUT
        if layout.get is not None:
            head = layout.head.pack(*layout.get(self))
        elif layout.fields:
            head = layout.head.pack(getattr(self, layout.fields[0]))
        else:
            head = b""
        return head + self.data  # type: ignore[attr-defined]
