"""IKEv2 message fragmentation (RFC 7383), sized and logged the way Libreswan 5.x does it.

Both ends must announce N(IKEV2_FRAGMENTATION_SUPPORTED) in IKE_SA_INIT (``fragmentation=``,
default yes; ``force`` is IKEv1-only and reads as yes).  From then on:

* Sending: an SK-protected message at least as long as the address family's limit (IPv4
  532, IPv6 1192 octets: Libreswan's ``ISAKMP_V2_FRAG_MAXLEN_IPv4/6``) goes out as SKF
  fragments instead, each with its own IV, padding and ICV; fragment 1 carries the first
  inner payload type, the others zero.  The plaintext is cut into chunks so that each
  fragment's datagram, non-ESP marker included, fits a 576-octet IPv4 (1280 IPv6) packet.
  The fragments are computed once and stored: retransmissions and a responder's answer to
  a duplicate request resend every one of them.
* Receiving: each fragment is verified and decrypted on arrival and only then kept, so a
  forged fragment never disturbs the set; per IKE SA there is one set for the peer's
  request and one for the response we await, keyed by message ID.  Limits are Libreswan's:
  at most 32 fragments (``MAX_IKE_FRAGMENTS``) of at most one 64 KiB datagram each.  A
  repeated fragment is ignored; a larger Total Fragments restarts the set and a smaller one
  is dropped (RFC 7383 2.6); an unfragmented copy of the same message replaces the set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct
from typing import TYPE_CHECKING

from ..codec import SKF, Message, skf_prefix
from ..constants import IKE_HEADER_SIZE, PayloadType
from .sa import IkeSa

if TYPE_CHECKING:
    from .engine import Engine

MAX_IKE_FRAGMENTS = 32  # pluto_constants.h: "Windows has been observed to send 29"
MAX_INPUT_UDP_SIZE = 65536  # pluto_constants.h: the largest datagram pluto reads
NON_ESP_MARKER_SIZE = 4
# pluto_constants.h: the UDP data that must always get through (576 and 1280 octet packets
# less 20/48 octets of IP and UDP headers) less an overhead allowance of 24 / 40 octets
MAX_FRAGMENT_IPV4 = (576 - 20) - (2 * 4 + 16)
MAX_FRAGMENT_IPV6 = (1280 - 48) - 40
_SKF_HEADER = 8  # generic payload header + Fragment Number + Total Fragments
_HEADER = Struct("!8s8sBBBBI")
_SKF_NUMBERS = Struct("!HH")

Datagrams = bytes | tuple[bytes, ...]


def max_message(sa: IkeSa) -> int:
    """Libreswan's ``ikev2_max_fragment_size`` for the peer's address family."""
    return MAX_FRAGMENT_IPV6 if sa.remote[0].version == 6 else MAX_FRAGMENT_IPV4


def _marker(sa: IkeSa) -> bool:
    """Whether our datagrams carry the non-ESP marker (we talk on the NAT-T port)."""
    return sa.local[1] == sa.policy.local_nat_port


def chunk_size(sa: IkeSa) -> int:
    """Plaintext octets per fragment (``record_outbound_fragments``): the limit less the
    marker, IKE and SKF headers and ICV, rounded down to the cipher block, less 2."""
    suite = sa.seal.suite  # type: ignore[union-attr]
    n = max_message(sa) - (NON_ESP_MARKER_SIZE if _marker(sa) else 0)
    n -= IKE_HEADER_SIZE + _SKF_HEADER + suite.icv_size
    if suite.block > 1:
        n -= n % suite.block
    return n - 2


# ------------------------------------------------------------------ sending

def outgoing(eng: Engine, sa: IkeSa, data: bytes) -> Datagrams:
    """What to put on the wire for the message ``data`` just built: itself, or its SKF
    fragments when fragmentation was negotiated and it is too long."""
    # Libreswan compares the bare message (its non-ESP marker allowance is dead code)
    if (not sa.fragmentation or len(data) < max_message(sa) or sa.seal is None
            or data[16] != PayloadType.SK):
        return data
    # the message was sealed whole by build_sk (every builder uses it); open it again with
    # the same outbound key rather than thread the plaintext through every exchange
    seal = sa.seal
    try:
        plain = seal.open(data[:IKE_HEADER_SIZE + 4], data[IKE_HEADER_SIZE + 4:])
        size = chunk_size(sa)
        total = -(-len(plain) // size)
        if total > MAX_IKE_FRAGMENTS:
            eng.log(sa.serial, f"fragmenting this {len(plain)} byte message into {size} byte "
                               "chunks leads to too many frags")
            return data
        spi_i, spi_r, _np, _version, exchange, flags, msgid = _HEADER.unpack_from(data)
        header = Message(spi_i, spi_r, exchange, flags, msgid, [])
        first = data[IKE_HEADER_SIZE]
        out = []
        for number in range(1, total + 1):
            chunk = plain[(number - 1) * size:number * size]
            head = skf_prefix(header, first if number == 1 else PayloadType.NONE, number,
                              total, seal.body_length(len(chunk)))
            out.append(head + seal.seal(head, chunk, eng.rand(seal.suite.iv_size)))
            eng.debug(sa.serial, f"recording fragment {number}")
    except ValueError as e:  # cannot happen (we sealed it a moment ago): send it whole
        eng.log(sa.serial, f"error encrypting fragment: {e}")
        return data
    return tuple(out)


# ------------------------------------------------------------------ receiving

@dataclass(slots=True)
class Reassembly:
    """The verified fragments of one message received so far."""

    message_id: int
    exchange: int
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)  # number -> plaintext
    first_inner: int = 0  # from fragment 1
    first: tuple[bytes, Message] | None = None  # fragment 1 as received


def collect(eng: Engine, sa: IkeSa, data: bytes, msg: Message, response: bool
            ) -> tuple[int, bytes, bytes, Message] | None:
    """Take in the fragment ``msg`` (received as ``data``).  Once the message is complete:
    its first inner payload type, its plaintext, and fragment 1 (datagram, message)."""
    skf = msg.payloads[0]
    assert type(skf) is SKF
    number, total, np = skf.frag_number, skf.total_fragments, skf.first_inner
    if not sa.fragmentation:
        eng.log(sa.serial, "ignoring fragment as peer never proposed fragmentation")
        return None
    eng.debug(sa.serial, f"received IKE encrypted fragment number '{number}', total number "
                         f"'{total}', next payload '{np}'")
    sets = sa.incoming_fragments
    if sets is None:
        sets = sa.incoming_fragments = {}
    cur = sets.get(response)
    if cur is not None and cur.message_id != msg.message_id:
        cur = None  # left over from an earlier message; replaced once this one verifies
    why = _ignore(skf, len(data), cur, msg.exchange)
    if why is not None:
        eng.log(sa.serial, f"dropping fragment {number} of {total} as {why}")
        return None
    try:
        plain = sa.unseal.open(data[:len(data) - len(skf.body)], skf.body)  # type: ignore
    except ValueError:  # IntegrityError: forged, corrupted, or for other keys
        eng.log(sa.serial, f"fragment {number} of {total} invalid")
        return None
    eng.debug(sa.serial, f"fragment {number} of {total} decrypted")
    if cur is None or total > cur.total:
        # RFC 7383 2.6: a larger Total Fragments means the sender re-fragmented (smaller
        # fragments): what was collected so far is of no use
        cur = sets[response] = Reassembly(msg.message_id, msg.exchange, total)
    cur.parts[number] = plain
    if number == 1:
        cur.first_inner, cur.first = np, (data, msg)
    if len(cur.parts) < total:
        eng.debug(sa.serial, "waiting for more fragments")
        return None
    eng.debug(sa.serial, "reassembling incoming fragments")
    del sets[response]
    if not response:
        sa.request_fragments = (msg.message_id, total)
    assert cur.first is not None
    return (cur.first_inner, b"".join(cur.parts[i] for i in range(1, total + 1)),
            *cur.first)


def _ignore(skf: SKF, size: int, cur: Reassembly | None, exchange: int) -> str | None:
    """Why a fragment is not worth decrypting (``ignore_v2_incoming_fragment``)."""
    number, total = skf.frag_number, skf.total_fragments
    if total > MAX_IKE_FRAGMENTS:
        return "total number of fragments must be no more than MAX_IKE_FRAGMENTS"
    if number == 1 and skf.first_inner == PayloadType.NONE:
        return "first fragment's next payload must not be ISAKMP_NEXT_v2NONE"
    if number > 1 and skf.first_inner != PayloadType.NONE:
        return "later fragment's next payload must be ISAKMP_NEXT_v2NONE"
    if size > MAX_INPUT_UDP_SIZE:
        return "fragment is larger than MAX_INPUT_UDP_SIZE"
    if cur is None:
        return None
    if exchange != cur.exchange:
        return "message exchange does not match"
    if total < cur.total:
        return "fragment total changed"  # a stale copy: the sender moved to more fragments
    if total == cur.total and number in cur.parts:
        return "repeat"
    return None


def forget(sa: IkeSa, response: bool) -> None:
    """A whole (unfragmented) copy of the message arrived: drop the partial set."""
    if sa.incoming_fragments:
        sa.incoming_fragments.pop(response, None)


def duplicate_request(eng: Engine, sa: IkeSa, data: bytes, xname: str, msgid: int
                      ) -> bool:
    """A request repeating the one last answered came as a fragment: whether to resend our
    response (RFC 7383 2.6.1: only for fragment 1 of the same fragmentation)."""
    if len(data) < IKE_HEADER_SIZE + _SKF_HEADER:
        return False
    number, total = _SKF_NUMBERS.unpack_from(data, IKE_HEADER_SIZE + 4)
    got_id, got_total = sa.request_fragments
    if got_id != msgid:
        eng.log(sa.serial, f"{xname} request fragment has duplicate Message ID {msgid} "
                           "but original was not fragmented; message dropped")
        return False
    if total != got_total:
        eng.debug(sa.serial, f"Message ID: {xname} request fragment {number} of {total} has "
                             f"duplicate Message ID {msgid} but should have fragment total "
                             f"{got_total}; message dropped")
        return False
    if number != 1:
        eng.debug(sa.serial, f"Message ID: {xname} request fragment {number} of {total} has "
                             f"duplicate Message ID {msgid} but is not fragment 1; message "
                             "dropped")
        return False
    eng.log(sa.serial, f"{xname} request fragment {number} of {total} has duplicate "
                       f"Message ID {msgid}; retransmitting response")
    return True
