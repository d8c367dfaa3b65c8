"""The whack <-> pluto control protocol.

Libreswan ships a native C struct that changes with every release; pyswan keeps the
semantics (one request per connection, a magic and version check, one command per
request, connections as `(end, keyword, value)` triples like Libreswan 5.3+) with a
byte layout of its own that is explicit and versioned:

    request  = header body
    header   = magic "PSWK" | u16 version | u16 reserved (0) | u32 body length
    body     = record*
    record   = u8 tag | u32 length | value
    value    = UTF-8 string, or for pairs/triples: (u16 length | UTF-8 string)* fields

Replies are text lines `NNN text\\n` (NNN = a Libreswan RC code, see `rc`). During an
exchange pluto may send a prompt line (RC_USERPROMPT / RC_ENTERSECRET) and whack
answers with one line on the same socket.

Only the standard library is used here: whack must start fast.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"PSWK"
VERSION = 1
HEADER = struct.Struct("!4sHHI")
RECORD = struct.Struct("!BI")
FIELD = struct.Struct("!H")
#: Largest request pluto accepts; a 10,000-subnet connection still fits easily.
MAX_REQUEST = 1 << 20
#: Longest reply line (Libreswan's LOG_WIDTH-ish limit on what whack reads).
MAX_LINE = 4096

TAG_COMMAND = 1
TAG_NAME = 2
TAG_FLAG = 3
TAG_ARG = 4
TAG_CONN = 5
TAG_OPTION = 6


class ProtocolError(Exception):
    """A request that cannot be decoded; pluto answers RC_BADWHACKMESSAGE."""


@dataclass
class Request:
    """One control request: a command plus its operands."""

    command: str
    name: str | None = None
    #: boolean modifiers: "async", "utc", "leave-state", ...
    flags: set[str] = field(default_factory=set)
    #: command operands: "remote-host", "deletestate", "crash", "xauthuser", ...
    args: dict[str, str] = field(default_factory=dict)
    #: order-sensitive repeatable options: ("debug", "base"), ("impair", "none") ...
    options: list[tuple[str, str]] = field(default_factory=list)
    #: connection description as (end, keyword, value); end is "left", "right" or ""
    conn: list[tuple[str, str, str]] = field(default_factory=list)


def _fields(*values: str) -> bytes:
    out = bytearray()
    for v in values:
        b = v.encode()
        if len(b) > 0xFFFF:
            raise ProtocolError(f"value too long ({len(b)} bytes)")
        out += FIELD.pack(len(b)) + b
    return bytes(out)


def _split_fields(data: bytes, count: int) -> list[str]:
    out = []
    pos = 0
    for _ in range(count):
        if pos + 2 > len(data):
            raise ProtocolError("truncated field")
        (n,) = FIELD.unpack_from(data, pos)
        pos += 2
        if pos + n > len(data):
            raise ProtocolError("field overruns its record")
        out.append(_decode_str(data[pos : pos + n]))
        pos += n
    if pos != len(data):
        raise ProtocolError("trailing bytes in record")
    return out


def _decode_str(b: bytes) -> str:
    try:
        s = b.decode()
    except UnicodeDecodeError as e:
        raise ProtocolError("string is not UTF-8") from e
    if "\0" in s:
        raise ProtocolError("string contains NUL")
    return s


def encode_request(req: Request) -> bytes:
    records = bytearray()

    def put(tag: int, value: bytes) -> None:
        records.extend(RECORD.pack(tag, len(value)))
        records.extend(value)

    put(TAG_COMMAND, req.command.encode())
    if req.name is not None:
        put(TAG_NAME, req.name.encode())
    for f in sorted(req.flags):
        put(TAG_FLAG, f.encode())
    for k, v in req.args.items():
        put(TAG_ARG, _fields(k, v))
    for k, v in req.options:
        put(TAG_OPTION, _fields(k, v))
    for end, k, v in req.conn:
        put(TAG_CONN, _fields(end, k, v))
    if len(records) > MAX_REQUEST:
        raise ProtocolError(f"request of {len(records)} bytes exceeds {MAX_REQUEST}")
    return HEADER.pack(MAGIC, VERSION, 0, len(records)) + bytes(records)


def decode_header(data: bytes) -> int:
    """Check a request header; return the body length that follows."""
    if len(data) != HEADER.size:
        raise ProtocolError(f"ignoring runt message from whack: got {len(data)} bytes")
    magic, version, _reserved, length = HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(
            f"ignoring message from whack with bad magic {int.from_bytes(magic, 'big')}; "
            f"should be {int.from_bytes(MAGIC, 'big')}; Mismatched versions of userland tools."
        )
    if version != VERSION:
        raise ProtocolError(
            f"ignoring message from whack with version {version}; should be {VERSION}; "
            "Mismatched versions of userland tools."
        )
    if length > MAX_REQUEST:
        raise ProtocolError(f"ignoring oversized message from whack: {length} bytes")
    return length


def decode_body(body: bytes) -> Request:
    pos = 0
    command = None
    req = Request(command="")
    while pos < len(body):
        if pos + RECORD.size > len(body):
            raise ProtocolError("truncated record header")
        tag, n = RECORD.unpack_from(body, pos)
        pos += RECORD.size
        if pos + n > len(body):
            raise ProtocolError("record overruns the message")
        value = body[pos : pos + n]
        pos += n
        if tag == TAG_COMMAND:
            if command is not None:
                raise ProtocolError("more than one command in a message")
            command = _decode_str(value)
        elif tag == TAG_NAME:
            req.name = _decode_str(value)
        elif tag == TAG_FLAG:
            req.flags.add(_decode_str(value))
        elif tag == TAG_ARG:
            k, v = _split_fields(value, 2)
            req.args[k] = v
        elif tag == TAG_OPTION:
            k, v = _split_fields(value, 2)
            req.options.append((k, v))
        elif tag == TAG_CONN:
            end, k, v = _split_fields(value, 3)
            if end not in ("", "left", "right"):
                raise ProtocolError(f"bad connection end {end!r}")
            req.conn.append((end, k, v))
        else:
            raise ProtocolError(f"unknown record type {tag}")
    if not command:
        raise ProtocolError("message has no command")
    req.command = command
    return req


def format_line(rc: int, text: str) -> bytes:
    """One reply line; embedded newlines become separate lines with the same code."""
    return b"".join(f"{rc:03d} {part}\n".encode() for part in text.split("\n"))


def parse_line(line: str) -> tuple[int, str]:
    """Split `NNN text` into (rc, text); raise ValueError when the prefix is missing."""
    if len(line) < 4 or not line[:3].isdigit() or line[3] != " ":
        raise ValueError(f"log line missing NNN prefix: {line}")
    return int(line[:3]), line[4:]
