"""Building and opening IKEv2 messages for an SA: clear and SK-protected, plus the small
helpers every exchange needs (NAT detection hashes, notify lookups, endpoint text)."""

from __future__ import annotations

import hashlib
import ipaddress
from struct import Struct

from .. import algorithms as A
from ..codec import (
    SA,
    SK,
    IkeDecodeError,
    Message,
    Notify,
    Payload,
    decode_payloads,
    encode_message,
    encode_payloads,
    sk_prefix,
)
from ..constants import HeaderFlag, NotifyType, ProtocolId, TransformType
from .policy import Endpoint
from .sa import IkeSa

_PORT = Struct("!H")
ZERO_SPI = b"\0" * 8


def flags_for(sa: IkeSa, response: bool) -> int:
    flags = HeaderFlag.INITIATOR if sa.is_initiator else 0
    if response:
        flags |= HeaderFlag.RESPONSE
    return int(flags)


def build_clear(sa: IkeSa, exchange: int, message_id: int, payloads: list[Payload],
                response: bool) -> bytes:
    msg = Message(sa.spi_i, sa.spi_r, exchange, flags_for(sa, response), message_id, payloads)
    return encode_message(msg)


def build_sk(sa: IkeSa, exchange: int, message_id: int, inner: list[Payload],
             response: bool, iv: bytes | None = None) -> bytes:
    """An SK-protected message: header, SK{inner}; lengths fixed before sealing."""
    seal = sa.seal
    assert seal is not None
    first, plain = encode_payloads(inner)
    msg = Message(sa.spi_i, sa.spi_r, exchange, flags_for(sa, response), message_id, [])
    prefix = sk_prefix(msg, first, seal.body_length(len(plain)))
    return prefix + seal.seal(prefix, plain, iv)


def open_sk(sa: IkeSa, data: bytes, msg: Message) -> list[Payload]:
    """Verify and decrypt the SK payload of ``msg`` (received as ``data``).

    Raises ``IntegrityError`` (from the cipher) when it does not verify and
    ``IkeDecodeError`` when the plaintext is malformed.
    """
    sk = msg.payloads[-1] if msg.payloads else None
    if type(sk) is not SK:
        raise IkeDecodeError("message has no SK payload")
    if len(msg.payloads) != 1:
        raise IkeDecodeError("cleartext payloads before SK")
    unseal = sa.unseal
    assert unseal is not None
    prefix = data[: len(data) - len(sk.body)]
    plain = unseal.open(prefix, sk.body)
    return decode_payloads(sk.first_inner, plain)


def nat_hash(spi_i: bytes, spi_r: bytes, endpoint: Endpoint) -> bytes:
    """NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port) (RFC 7296 2.23)."""
    addr, port = endpoint
    return hashlib.sha1(spi_i + spi_r + addr.packed + _PORT.pack(port)).digest()


def nat_notifies(spi_i: bytes, spi_r: bytes, local: Endpoint, remote: Endpoint,
                 fake: bool = False) -> list[Notify]:
    """``fake`` (encapsulation=yes): hash a bogus source so that the peer sees a NAT and
    UDP-encapsulates ESP too, as Libreswan does."""
    source = (ipaddress.ip_address(0 if local[0].version == 4 else "::"), 0) if fake else local
    return [Notify(ProtocolId.NONE, b"", NotifyType.NAT_DETECTION_SOURCE_IP,
                   nat_hash(spi_i, spi_r, source)),
            Notify(ProtocolId.NONE, b"", NotifyType.NAT_DETECTION_DESTINATION_IP,
                   nat_hash(spi_i, spi_r, remote))]


def notify(kind: int, data: bytes = b"") -> Notify:
    return Notify(ProtocolId.NONE, b"", kind, data)


def notifies_of(payloads: list[Payload]) -> dict[int, Notify]:
    """First Notify of each type."""
    out: dict[int, Notify] = {}
    for p in payloads:
        if type(p) is Notify and p.type not in out:
            out[p.type] = p
    return out


_EP_TEXT: dict[Endpoint, str] = {}


def endpoint_text(ep: Endpoint) -> str:
    """Libreswan's ``192.1.2.23:UDP/500`` (IPv6 in brackets)."""
    text = _EP_TEXT.get(ep)
    if text is None:
        addr, port = ep
        host = f"[{addr}]" if addr.version == 6 else str(addr)
        if len(_EP_TEXT) > 4096:
            _EP_TEXT.clear()
        text = _EP_TEXT[ep] = f"{host}:UDP/{port}"
    return text


def seconds_text(value: float) -> str:
    """Libreswan's deltatime: ``0.5``, ``1``, ``60``."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def nname(kind: int) -> str:
    try:
        return NotifyType(kind).name
    except ValueError:
        return str(kind)


def remote_text(sa_payload: SA, first_match: int = 0) -> str:
    """Libreswan's remote proposal list: ``1:IKE:ENCR=AES_GCM_16_256;PRF=...[first-match]``."""
    names = {TransformType.ENCR: "ENCR", TransformType.PRF: "PRF",
             TransformType.INTEG: "INTEG", TransformType.KE: "DH", TransformType.ESN: "ESN"}
    out = []
    for prop in sa_payload.proposals:
        parts = []
        for t in prop.transforms:
            alg = A.by_transform(t.type, t.id)
            name = alg.fqn if alg is not None else str(t.id)
            if t.key_length:
                name += f"_{t.key_length}"
            parts.append(f"{names.get(t.type, str(t.type))}={name}")
        try:
            proto = ProtocolId(prop.protocol).name
        except ValueError:
            proto = str(prop.protocol)
        spi = f"SPI={prop.spi.hex()};" if prop.spi else ""
        mark = "[first-match]" if prop.number == first_match else ""
        out.append(f"{prop.number}:{proto}:{spi}{';'.join(parts)}{mark}")
    return " ".join(out)


def short(p: object) -> str:
    """Libreswan's payload summary for one payload: ``SA``, ``N(COOKIE)``."""
    from ..codec import describe_payloads

    return describe_payloads([p])  # type: ignore[list-item]
