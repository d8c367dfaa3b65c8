"""The few DER building blocks IKE needs (AlgorithmIdentifiers, DN IDs), in one place."""

from __future__ import annotations


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + der_len(len(content)) + content


def oid_body(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_text(body: bytes) -> str:
    """Dotted text of OBJECT IDENTIFIER content octets; ValueError when malformed."""
    if not body:
        raise ValueError("OID length is zero")
    arcs = [body[0] // 40, body[0] % 40]
    v = 0
    for b in body[1:]:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(v)
            v = 0
    if body[-1] & 0x80:
        raise ValueError("corrupt OID run encoding")
    return ".".join(map(str, arcs))


def read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER TLV at ``pos``; ValueError when malformed
    (short form or long form up to 4 length octets, as certificates need)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, n = data[pos], data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(data):
            raise ValueError("bad DER length")
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + n
