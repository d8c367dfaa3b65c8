"""XFRM message encoding and decoding, without a kernel (no root needed)."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.kernel import xfrm_structs as xs
from pyswan.kernel.base import (
    AcquireEvent,
    AuthAlg,
    Encap,
    EncrAlg,
    ExpireEvent,
    Lifetime,
    Mark,
    PolicyExpireEvent,
    PolicySpec,
    SaSpec,
    Selector,
    Template,
)
from pyswan.kernel.xfrm import (
    _Channel,
    encode_allocspi,
    encode_bypass,
    encode_policy,
    encode_policy_id,
    encode_sa,
    encode_sa_id,
    event_from_message,
    policy_from_message,
    sa_from_message,
)

A = ipaddress.ip_address


def roundtrip_sa(spec: SaSpec, **kw: bool) -> tuple[SaSpec, xs.xfrm_msg]:
    opts = dict(sa_dir=True, clear_outbound_replay=True)
    opts.update(kw)
    data = encode_sa(spec, xs.XFRM_MSG_NEWSA, 42, **opts)
    msg = xs.parse(bytes(data))
    return sa_from_message(msg)[0], msg


def test_struct_sizes_match_the_kernel_header() -> None:
    sizes = {xs.XfrmSelector: 56, xs.UsersaInfo: 224, xs.UsersaId: 24, xs.UserspiInfo: 232,
             xs.UserpolicyInfo: 168, xs.UserpolicyId: 64, xs.UserTmpl: 64,
             xs.UserAcquire: 280, xs.UserExpire: 232, xs.UserPolexpire: 176,
             xs.EncapTmpl: 24, xs.AlgoAuthHdr: 72, xs.ReplayEsnHdr: 24}
    assert {c: c.st.size for c in sizes} == sizes


def test_network_order_fields() -> None:
    blob = xs.UsersaId.pack(bytes(16), 0x12345678, 2, 50)
    assert blob[16:20] == b"\x12\x34\x56\x78"  # SPI is big-endian on the wire
    assert xs.UsersaId.unpack_from(blob).spi == 0x12345678
    sel = xs.XfrmSelector.pack(bytes(16), bytes(16), 500, 0xFFFF, 4500, 0xFFFF, 2, 32, 32, 17,
                               0, 0)
    assert sel[32:34] == struct.pack(">H", 500) and sel[36:38] == struct.pack(">H", 4500)


class TestSa:
    def test_aead_tunnel_esn_encap_outbound(self) -> None:
        spec = SaSpec("192.1.2.45", "192.1.2.23", 0xCAFE0001, "esp", "tunnel", 16389,
                      encr=EncrAlg("rfc4106(gcm(aes))", bytes(range(36)), 128),
                      replay_window=128, esn=True, encap=Encap(sport=4500, dport=1234),
                      mark=Mark(0x10, 0xFF), if_id=7, set_mark=Mark(7, 0xFFFF),
                      direction="outbound", tfcpad=1500,
                      lifetime=Lifetime(soft_bytes=1 << 62, hard_bytes=1 << 63), seq=9)
        back, msg = roundtrip_sa(spec)
        b = msg["body"]
        assert msg["header"]["type"] == xs.XFRM_MSG_NEWSA
        assert msg["header"]["flags"] == xs.NLM_F_REQUEST | xs.NLM_F_ACK
        assert b.flags == xs.XFRM_STATE_AF_UNSPEC | xs.XFRM_STATE_ESN
        assert b.sel_family == 0  # tunnel SAs carry no selector (kernel_xfrm.c)
        assert b.replay_window == 0
        # outbound: replay window cleared, DSCP not copied out, direction attribute "out"
        esn = xs.ReplayEsnHdr.unpack_from(msg.attr(xs.XFRMA_REPLAY_ESN_VAL))
        assert (esn.replay_window, esn.bmp_len) == (0, 0)
        assert xs.unpack_u32(msg.attr(xs.XFRMA_SA_EXTRA_FLAGS)) == 1
        assert msg.attr(xs.XFRMA_SA_DIR) == bytes([xs.XFRM_SA_DIR_OUT])
        assert back == dataclasses.replace(spec, replay_window=0)

    def test_cbc_sha2_inbound_replay_window(self) -> None:
        spec = SaSpec("192.1.2.23", "192.1.2.45", 0x1001, encr=EncrAlg("cbc(aes)", bytes(32)),
                      auth=AuthAlg("hmac(sha256)", bytes(32), 128), replay_window=128,
                      direction="inbound", decap_dscp=True)
        back, msg = roundtrip_sa(spec)
        esn = xs.ReplayEsnHdr.unpack_from(msg.attr(xs.XFRMA_REPLAY_ESN_VAL))
        assert (esn.replay_window, esn.bmp_len) == (128, 4)  # "bitmap-length 4" in ip xfrm
        assert len(msg.attr(xs.XFRMA_REPLAY_ESN_VAL)) == 24 + 16
        assert msg.attr(xs.XFRMA_SA_EXTRA_FLAGS) is None
        assert msg.attr(xs.XFRMA_SA_DIR) == bytes([xs.XFRM_SA_DIR_IN])
        assert (back.encr, back.auth, back.replay_window, back.decap_dscp) == (
            spec.encr, spec.auth, 128, True)
        # 32 or less without ESN uses the old field
        _, msg = roundtrip_sa(SaSpec("192.1.2.23", "192.1.2.45", 0x1001,
                                     encr=EncrAlg("cbc(aes)", bytes(16)), replay_window=32))
        assert msg["body"].replay_window == 32 and msg.attr(xs.XFRMA_REPLAY_ESN_VAL) is None

    def test_old_kernel_keeps_outbound_window_and_no_direction(self) -> None:
        spec = SaSpec("10.0.0.1", "10.0.0.2", 0x1001, encr=EncrAlg("cbc(aes)", bytes(16)),
                      replay_window=16, direction="outbound")
        _, msg = roundtrip_sa(spec, sa_dir=False, clear_outbound_replay=False)
        assert msg["body"].replay_window == 16 and msg.attr(xs.XFRMA_SA_DIR) is None

    def test_transport_ah_ipv4_and_ipcomp(self) -> None:
        ah = SaSpec("10.0.0.1", "10.0.0.2", 0x2001, "ah", "transport",
                    auth=AuthAlg("hmac(sha1)", bytes(20), 96), replay_window=0)
        back, msg = roundtrip_sa(ah)
        assert msg["body"].flags & xs.XFRM_STATE_ALIGN4  # RFC 4302 32-bit alignment, IPv4
        assert back.selector == Selector("10.0.0.1/32", "10.0.0.2/32")
        assert back.auth == ah.auth and back.mode == "transport"
        comp = SaSpec("10.0.0.1", "10.0.0.2", 0x3001, "comp", "tunnel", comp="deflate",
                      esn=False, direction="outbound")
        back, msg = roundtrip_sa(comp)
        assert back.comp == "deflate" and msg.attr(xs.XFRMA_REPLAY_ESN_VAL) is None
        assert msg.attr(xs.XFRMA_SA_EXTRA_FLAGS) is None  # IPCOMP gets none of the ESP knobs

    def test_ipv6_transport_with_port_selector(self) -> None:
        sel = Selector("fd00::1/128", "fd00::2/128", 6, 0, 443)
        spec = SaSpec("fd00::1", "fd00::2", 0x4001, "esp", "transport",
                      encr=EncrAlg("cbc(aes)", bytes(16)),
                      auth=AuthAlg("hmac(sha512)", bytes(64), 256), selector=sel,
                      direction="outbound")
        back, msg = roundtrip_sa(spec)
        assert msg["body"].family == socket.AF_INET6 and back.selector == sel
        assert (msg["body"].sel_dport_mask, msg["body"].sel_sport_mask) == (0xFFFF, 0)
        assert back.dst == A("fd00::2")

    def test_ids_and_allocspi(self) -> None:
        msg = xs.parse(bytes(encode_sa_id(xs.XFRM_MSG_DELSA, A("fd00::2"), 0x1234, "esp",
                                          Mark(1), 5)))
        assert (msg["body"].spi, msg["body"].family, msg["body"].proto) == (0x1234, 10, 50)
        assert msg["header"]["flags"] & xs.NLM_F_ACK
        assert xs.XfrmMark.unpack_from(msg.attr(xs.XFRMA_MARK)) == (1, 0xFFFFFFFF)
        get = xs.parse(bytes(encode_sa_id(xs.XFRM_MSG_GETSA, A("10.0.0.1"), 1, "ah", None, 6)))
        assert not get["header"]["flags"] & xs.NLM_F_ACK  # the reply is the SA itself
        alloc = xs.parse(bytes(encode_allocspi(A("10.0.0.2"), A("10.0.0.1"), "esp", 16389,
                                               0x1000, 0xFFFFFFFF, None, 7, sa_dir=True)))
        b = alloc["body"]
        assert (b.min, b.max, b.reqid, b.id_proto, b.family) == (0x1000, 0xFFFFFFFF, 16389,
                                                                 50, 2)
        assert alloc.attr(xs.XFRMA_SA_DIR) == bytes([xs.XFRM_SA_DIR_IN])

    def test_bypass_blob(self) -> None:
        blob = encode_bypass(socket.AF_INET6, xs.XFRM_POLICY_OUT)
        info = xs.UserpolicyInfo.unpack_from(blob)
        assert len(blob) == 168 and info.sel_family == socket.AF_INET6
        assert (info.dir, info.action) == (xs.XFRM_POLICY_OUT, xs.XFRM_POLICY_ALLOW)


class TestPolicy:
    def test_tunnel_policy_with_mark(self) -> None:
        spec = PolicySpec("192.0.1.0/24", "192.0.2.0/24", 17, 0, 53, direction="out",
                          priority=1757393, mark=Mark(5), if_id=3, templates=(
                              Template("esp", "tunnel", 16389, A("192.1.2.45"),
                                       A("192.1.2.23")),))
        msg = xs.parse(bytes(encode_policy(spec, xs.XFRM_MSG_UPDPOLICY, 3)))
        b = msg["body"]
        assert (b.dir, b.action, b.priority, b.lft_soft_byte_limit) == (1, 0, 1757393,
                                                                        xs.XFRM_INF)
        tmpl = xs.UserTmpl.unpack_from(msg.attr(xs.XFRMA_TMPL))
        assert (tmpl.aalgos, tmpl.ealgos, tmpl.calgos) == (0xFFFFFFFF,) * 3
        assert policy_from_message(msg) == spec

    def test_4in6_template_family(self) -> None:
        spec = PolicySpec("10.0.1.0/24", "10.0.2.0/24", templates=(
            Template("esp", "tunnel", 1, A("2001:db8::1"), A("2001:db8::2")),))
        msg = xs.parse(bytes(encode_policy(spec, xs.XFRM_MSG_NEWPOLICY, 3)))
        assert msg["body"].sel_family == socket.AF_INET
        assert xs.UserTmpl.unpack_from(msg.attr(xs.XFRMA_TMPL)).family == socket.AF_INET6
        assert policy_from_message(msg) == spec

    def test_policy_id(self) -> None:
        sel = Selector("10.0.0.0/8", "10.1.0.0/16")
        msg = xs.parse(bytes(encode_policy_id(sel, "fwd", Mark(9), 4, 1)))
        assert msg["header"]["type"] == xs.XFRM_MSG_DELPOLICY and msg["body"].dir == 2
        assert (msg["body"].sel_prefixlen_s, msg["body"].sel_prefixlen_d) == (8, 16)
        assert xs.unpack_u32(msg.attr(xs.XFRMA_IF_ID)) == 4


nets4 = st.builds(lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{p}",
                                                      strict=False),
                  st.integers(0, 2**32 - 1), st.integers(0, 32))
nets6 = st.builds(lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{p}",
                                                      strict=False),
                  st.integers(0, 2**128 - 1), st.integers(0, 128))
addrs = st.one_of(st.integers(1, 2**32 - 1).map(ipaddress.IPv4Address),
                  st.integers(1, 2**128 - 1).map(ipaddress.IPv6Address))


@st.composite
def templates(draw: st.DrawFn) -> Template:
    mode = draw(st.sampled_from(["tunnel", "transport"]))
    src = dst = None
    if mode == "tunnel":
        src = draw(addrs)
        dst = draw(addrs.filter(lambda a: a.version == src.version))
    return Template(draw(st.sampled_from(["esp", "ah", "comp"])), mode,
                    draw(st.integers(0, 2**32 - 1)), src, dst, draw(st.booleans()),
                    draw(st.integers(0, 2**32 - 1)))


@st.composite
def policies(draw: st.DrawFn) -> PolicySpec:
    nets = draw(st.sampled_from([nets4, nets6]))
    return PolicySpec(
        draw(nets), draw(nets), draw(st.integers(0, 255)), draw(st.integers(0, 65535)),
        draw(st.integers(0, 65535)), draw(st.sampled_from(["in", "out", "fwd"])),
        draw(st.sampled_from(["allow", "block"])), draw(st.integers(0, 2**32 - 1)),
        tuple(draw(st.lists(templates(), max_size=3))),
        draw(st.none() | st.builds(Mark, st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1))),
        draw(st.none() | st.integers(0, 2**32 - 1)),
        Lifetime(*draw(st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8))))


@settings(max_examples=150, deadline=None)
@given(policies())
def test_any_policy_round_trips(spec: PolicySpec) -> None:
    msg = xs.parse(bytes(encode_policy(spec, xs.XFRM_MSG_NEWPOLICY, 1)))
    back = policy_from_message(msg)
    # a mark of 0/0 is "no mark" to the kernel too
    expected = spec if spec.mark != Mark(0, 0) else dataclasses.replace(spec, mark=None)
    assert back == expected


class TestEvents:
    def _policy_body(self, sel: tuple, index: int, direction: int) -> tuple:
        return (*sel, *([xs.XFRM_INF] * 4 + [0] * 4), 0, 0, 0, 0, 10, index, direction, 0, 0, 0)

    def test_acquire(self) -> None:
        a16 = lambda s: A(s).packed + bytes(12)  # noqa: E731
        sel = (a16("192.0.2.7"), a16("10.1.0.1"), 4242, 0xFFFF, 5555, 0xFFFF, 2, 32, 32, 17,
               0, 0)
        body = xs.UserAcquire.pack(a16("10.1.0.2"), 0, 50, a16("10.1.0.1"), *sel,
                                   *self._policy_body(sel, 9, 1), 0, 0, 0, 77)
        tmpl = xs.UserTmpl.pack(a16("10.1.0.2"), 0, 50, 2, a16("10.1.0.1"), 31, 1, 0, 0, 0,
                                0, 0)
        data = xs.build(xs.xfrm_user_acquire, xs.XFRM_MSG_ACQUIRE, 0, 0, body,
                        [("XFRMA_TMPL", tmpl)])
        ev = event_from_message(xs.parse(bytes(data)))
        assert ev == AcquireEvent(Selector("10.1.0.1/32", "192.0.2.7/32", 17, 5555, 4242), 9,
                                  31, 77, "esp", A("10.1.0.1"), A("10.1.0.2"), "out")

    def test_expire_and_polexpire(self) -> None:
        spec = SaSpec("10.0.0.1", "10.0.0.2", 0xBEEF, encr=EncrAlg("cbc(aes)", bytes(16)),
                      reqid=5, mark=Mark(3))
        sa = xs.parse(bytes(encode_sa(spec, xs.XFRM_MSG_NEWSA, 1, sa_dir=False,
                                      clear_outbound_replay=False)))
        body = xs.UserExpire.pack(*sa["body"], 1)
        data = xs.build(xs.xfrm_user_expire, xs.XFRM_MSG_EXPIRE, 0, 0, body,
                        [("XFRMA_MARK", xs.XfrmMark.st.pack(3, 0xFFFFFFFF))])
        ev = event_from_message(xs.parse(bytes(data)))
        assert ev == ExpireEvent(True, 0xBEEF, "esp", A("10.0.0.2"), A("10.0.0.1"), 5, 0, 0,
                                 0, Mark(3))
        pol = xs.parse(bytes(encode_policy(PolicySpec("10.0.0.0/24", "10.1.0.0/24",
                                                      direction="in"), 19, 1)))
        body = xs.UserPolexpire.pack(*pol["body"], 0)
        data = xs.build(xs.xfrm_user_polexpire, xs.XFRM_MSG_POLEXPIRE, 0, 0, body)
        assert event_from_message(xs.parse(bytes(data))) == PolicyExpireEvent(
            False, Selector("10.0.0.0/24", "10.1.0.0/24"), "in", 0, 0)


class FakeSocket:
    """Stands in for the netlink socket: the reply to each send() is queued at once."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.queue: list[bytes] = []
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        if self.replies:
            self.queue.append(self.replies.pop(0))
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.queue:
            raise BlockingIOError
        return self.queue.pop(0)

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        pass


def nlmsgerr(seq: int, error: int, text: str = "") -> bytes:
    tlv = b""
    flags = 0
    if text:
        raw = text.encode() + b"\0"
        tlv = struct.pack("=HH", 4 + len(raw), xs.NLMSGERR_ATTR_MSG) + raw
        tlv += b"\0" * ((-len(tlv)) & 3)
        flags = xs.NLM_F_CAPPED | xs.NLM_F_ACK_TLVS
    body = struct.pack("=iIHHII", error, 16, xs.XFRM_MSG_NEWSA, 5, seq, 0)
    return struct.pack("=IHHII", 16 + len(body) + len(tlv), xs.NLMSG_ERROR, flags, seq, 0) + \
        body + tlv


def test_channel_reads_the_ack_without_waiting() -> None:
    import asyncio

    sock = FakeSocket([nlmsgerr(101, 0), nlmsgerr(102, -errno.EPROTONOSUPPORT,
                                                  "Requested type not found")])
    ch = _Channel(sock, timeout=1)  # type: ignore[arg-type]

    async def main() -> tuple:
        ok = await ch.request(bytearray(16), 101)
        bad = await ch.request(bytearray(16), 102)
        return ok, bad

    ok, bad = asyncio.run(main())
    assert (ok.done, ok.error) == (True, 0)
    assert (bad.error, bad.ext_ack) == (errno.EPROTONOSUPPORT, "Requested type not found")


def test_channel_times_out_cleanly() -> None:
    import asyncio

    import pytest

    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    left.setblocking(False)
    ch = _Channel(left, timeout=0.05)
    try:
        pending = asyncio.run(ch.request(bytearray(16), 7))
        assert pending.error == errno.ETIMEDOUT
    finally:
        ch.close()
        right.close()
    with pytest.raises(OSError):
        left.send(b"closed")
