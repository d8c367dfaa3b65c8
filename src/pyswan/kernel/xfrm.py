"""Linux XFRM over netlink: :class:`XfrmKernel`.

What it does is what Libreswan's ``programs/pluto/kernel_xfrm.c`` does, message for message:
NEWSA/UPDSA/DELSA/GETSA, ALLOCSPI, NEWPOLICY/UPDPOLICY/DELPOLICY, FLUSHSA/FLUSHPOLICY, and
the ACQUIRE/EXPIRE/POLEXPIRE multicast events, with the same attribute choices:

* SAs: tunnel mode sets ``XFRM_STATE_AF_UNSPEC`` (so 4in6/6in4 work); transport mode carries a
  selector; replay windows up to 32 without ESN use the legacy field, anything else
  ``XFRMA_REPLAY_ESN_VAL`` with a bitmap rounded up to 32-bit words; outbound SAs get replay
  window 0 on kernels >= 6.10 (they refuse anything else there) and
  ``XFRM_SA_XFLAG_DONT_ENCAP_DSCP`` unless ``encap_dscp``; IPv4 AH gets ``XFRM_STATE_ALIGN4``
  (RFC 4302 32-bit alignment); ``XFRMA_SA_DIR`` is sent where the kernel knows it (>= 6.10),
  on ALLOCSPI as "in" too, because UPDSA must then match the larval SA's direction.
* Policies: byte/packet lifetimes infinite, ``aalgos/ealgos/calgos`` all ones in templates,
  template family from the tunnel end points (so 4in6 works), marks as ``XFRMA_MARK``.

Plumbing (see ``benchmarks/bench_kernel.py``): messages are pyroute2 ``nlmsg``/``nla``
classes (:mod:`pyswan.kernel.xfrm_structs`) with ``struct``-packed C structs.  The socket is a
plain ``AF_NETLINK`` socket (opened inside a named namespace with pyroute2's
``netns.create_socket``) driven from the asyncio loop by this module rather than by pyroute2's
``AsyncNetlinkSocket``, whose request machinery alone costs ~170 µs per request
(python-stack.md §2.3).  The kernel handles an XFRM request synchronously inside ``send()``,
so the answer is normally queued by the time ``send()`` returns and is read at once, without a
loop round trip; when it is not, the request waits on a future that a loop reader feeds,
answers matched by sequence number and our port id.  The same socket listens to the policy
notification group, so that the index of a policy we install arrives with the ACK instead of
costing a GETPOLICY.  Measured here (2 vCPU, busy): a kernel round trip is ~5 µs, a policy
install ~45-90 µs in all and an SA message ~30-45 µs to encode; nearly all of the Python cost
is pyroute2's message objects, the price of building on them.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import xfrm_structs as xs
from .base import (
    PROTO_NAMES,
    PROTO_NUMBERS,
    AcquireEvent,
    AddressLike,
    AuthAlg,
    Encap,
    EncrAlg,
    ExpireEvent,
    IPAddress,
    Kernel,
    KernelError,
    Lifetime,
    Mark,
    PolicyDirection,
    PolicyExpireEvent,
    PolicySpec,
    Proto,
    SaCounters,
    SaSpec,
    Selector,
    Template,
    _addr,
    describe_sa,
    spi_range,
)

log = logging.getLogger(__name__)

_DIR_NUM = {"in": xs.XFRM_POLICY_IN, "out": xs.XFRM_POLICY_OUT, "fwd": xs.XFRM_POLICY_FWD}
_DIR_NAME: dict[int, PolicyDirection] = {v: k for k, v in _DIR_NUM.items()}  # type: ignore[misc]
_ZERO16 = bytes(16)
_INF_BYTES_PACKETS = (xs.XFRM_INF, xs.XFRM_INF, xs.XFRM_INF, xs.XFRM_INF, 0, 0, 0, 0)
_ALLOC_ONES = 0xFFFFFFFF


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split("-")[0].split(".")
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def _a16(addr: IPAddress | None) -> bytes:
    if addr is None:
        return _ZERO16
    packed = addr.packed
    return packed if len(packed) == 16 else packed + bytes(12)


def _af(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _from16(raw: bytes, family: int) -> IPAddress:
    if family == socket.AF_INET6:
        return ipaddress.IPv6Address(raw)
    return ipaddress.IPv4Address(raw[:4])


def _sel_values(sel: Selector | None) -> tuple:
    """The 12 values of an ``xfrm_selector`` (a zero selector for None, as Libreswan leaves
    tunnel-mode SAs)."""
    if sel is None:
        return (_ZERO16, _ZERO16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return (_a16(sel.dst.network_address), _a16(sel.src.network_address),
            sel.dport, 0xFFFF if sel.dport else 0, sel.sport, 0xFFFF if sel.sport else 0,
            sel.family, sel.dst.prefixlen, sel.src.prefixlen, sel.proto, 0, 0)


def _selector_from(raw: object, prefix: str) -> Selector | None:
    get = raw.__getattribute__
    family = get(prefix + "family")
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    daddr = _from16(get(prefix + "daddr"), family)
    saddr = _from16(get(prefix + "saddr"), family)
    return Selector(ipaddress.ip_network(f"{saddr}/{get(prefix + 'prefixlen_s')}", strict=False),
                    ipaddress.ip_network(f"{daddr}/{get(prefix + 'prefixlen_d')}", strict=False),
                    get(prefix + "proto"), get(prefix + "sport"), get(prefix + "dport"))


def _mark_attr(mark: Mark | None) -> list[tuple[str, bytes]]:
    return [("XFRMA_MARK", xs.XfrmMark.st.pack(mark.value, mark.mask))] if mark else []


def _mark_from(msg: xs.xfrm_msg) -> Mark | None:
    raw = msg.attr(xs.XFRMA_MARK)
    if raw is None:
        return None
    v, m = xs.XfrmMark.st.unpack_from(raw)
    return Mark(v, m) if (v or m) else None


def _proto_name(number: int) -> str:
    return PROTO_NAMES.get(number, str(number))


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_sa(spec: SaSpec, mtype: int, seq: int, *, sa_dir: bool,
              clear_outbound_replay: bool) -> bytearray:
    """XFRM_MSG_NEWSA/UPDSA for ``spec``, shaped as ``kernel_xfrm.c:netlink_add_sa()``."""
    tunnel = spec.mode == "tunnel"
    ipcomp = spec.proto == "comp"
    outbound = spec.direction == "outbound"
    flags = 0
    attrs: list[tuple[str, bytes]] = []
    replay_legacy = 0
    if tunnel:
        flags |= xs.XFRM_STATE_AF_UNSPEC
    if spec.proto == "ah" and spec.src.version == 4:
        flags |= xs.XFRM_STATE_ALIGN4
    if not ipcomp:
        if spec.esn:
            flags |= xs.XFRM_STATE_ESN
        if spec.decap_dscp:
            flags |= xs.XFRM_STATE_DECAP_DSCP
        if not spec.encap_dscp and outbound:
            attrs.append(("XFRMA_SA_EXTRA_FLAGS", xs.pack_u32(xs.XFRM_SA_XFLAG_DONT_ENCAP_DSCP)))
        if spec.nopmtudisc:
            flags |= xs.XFRM_STATE_NOPMTUDISC
        window = 0 if (outbound and clear_outbound_replay) else spec.replay_window
        if window <= 32 and not spec.esn:
            replay_legacy = window
        else:
            attrs.append(("XFRMA_REPLAY_ESN_VAL", xs.pack_replay_esn(window)))
    if spec.auth is not None:
        attrs.append(("XFRMA_ALG_AUTH_TRUNC", xs.pack_algo_auth(
            spec.auth.name, spec.auth.key, spec.auth.trunc_bits)))
    if ipcomp:
        attrs.append(("XFRMA_ALG_COMP", xs.pack_algo(spec.comp or "", b"")))
    elif spec.encr is not None:
        if spec.encr.aead:
            attrs.append(("XFRMA_ALG_AEAD", xs.pack_algo_aead(
                spec.encr.name, spec.encr.key, spec.encr.icv_bits)))
        else:
            attrs.append(("XFRMA_ALG_CRYPT", xs.pack_algo(spec.encr.name, spec.encr.key)))
    if spec.tfcpad and tunnel and spec.proto == "esp":
        attrs.append(("XFRMA_TFCPAD", xs.pack_u32(spec.tfcpad)))
    if spec.encap is not None:
        attrs.append(("XFRMA_ENCAP", xs.EncapTmpl.pack(
            spec.encap.type, spec.encap.sport, spec.encap.dport, _a16(spec.encap.oa))))
    attrs.extend(_mark_attr(spec.mark))
    if spec.if_id is not None:
        attrs.append(("XFRMA_IF_ID", xs.pack_u32(spec.if_id)))
    if spec.set_mark is not None:
        attrs.append(("XFRMA_SET_MARK", xs.pack_u32(spec.set_mark.value)))
        attrs.append(("XFRMA_SET_MARK_MASK", xs.pack_u32(spec.set_mark.mask)))
    if sa_dir:
        attrs.append(("XFRMA_SA_DIR", bytes((xs.XFRM_SA_DIR_OUT if outbound
                                             else xs.XFRM_SA_DIR_IN,))))
    if spec.mode == "transport":
        sel = spec.selector or Selector.host_pair(spec.src, spec.dst)
    else:
        sel = None
    body = xs.UsersaInfo.pack(
        *_sel_values(sel),
        _a16(spec.dst), spec.spi, PROTO_NUMBERS[spec.proto],
        _a16(spec.src),
        *spec.lifetime.as_tuple(),
        0, 0, 0, 0,  # curlft
        0, 0, 0,  # stats
        spec.seq, spec.reqid, spec.family,
        xs.XFRM_MODE_TUNNEL if tunnel else xs.XFRM_MODE_TRANSPORT,
        replay_legacy, flags)
    return xs.build(xs.xfrm_usersa_info, mtype, xs.NLM_F_REQUEST | xs.NLM_F_ACK, seq, body,
                    attrs)


def _template_values(t: Template, sel_family: int) -> tuple:
    ends = t.dst if t.mode == "tunnel" else None
    family = _af(ends.version) if ends is not None else sel_family
    return (_a16(t.dst if t.mode == "tunnel" else None), t.spi, PROTO_NUMBERS[t.proto],
            family, _a16(t.src if t.mode == "tunnel" else None), t.reqid,
            xs.XFRM_MODE_TUNNEL if t.mode == "tunnel" else xs.XFRM_MODE_TRANSPORT,
            0, 1 if t.optional else 0, _ALLOC_ONES, _ALLOC_ONES, _ALLOC_ONES)


def encode_policy(spec: PolicySpec, mtype: int, seq: int) -> bytearray:
    """XFRM_MSG_NEWPOLICY/UPDPOLICY, as ``kernel_xfrm.c:kernel_xfrm_policy_add()``."""
    sel = spec.selector
    lft = spec.lifetime.as_tuple()
    body = xs.UserpolicyInfo.pack(
        *_sel_values(sel), *lft, 0, 0, 0, 0,
        spec.priority, spec.index, _DIR_NUM[spec.direction],
        xs.XFRM_POLICY_ALLOW if spec.action == "allow" else xs.XFRM_POLICY_BLOCK,
        0, xs.XFRM_SHARE_ANY)
    attrs: list[tuple[str, bytes]] = []
    if spec.templates:
        attrs.append(("XFRMA_TMPL", b"".join(
            xs.UserTmpl.pack(*_template_values(t, sel.family)) for t in spec.templates)))
    attrs.extend(_mark_attr(spec.mark))
    if spec.if_id is not None:
        attrs.append(("XFRMA_IF_ID", xs.pack_u32(spec.if_id)))
    return xs.build(xs.xfrm_userpolicy_info, mtype, xs.NLM_F_REQUEST | xs.NLM_F_ACK, seq,
                    body, attrs)


def encode_policy_id(sel: Selector, direction: PolicyDirection, mark: Mark | None,
                     if_id: int | None, seq: int) -> bytearray:
    body = xs.UserpolicyId.pack(*_sel_values(sel), 0, _DIR_NUM[direction])
    attrs = _mark_attr(mark)
    if if_id is not None:
        attrs.append(("XFRMA_IF_ID", xs.pack_u32(if_id)))
    return xs.build(xs.xfrm_userpolicy_id, xs.XFRM_MSG_DELPOLICY,
                    xs.NLM_F_REQUEST | xs.NLM_F_ACK, seq, body, attrs)


def encode_sa_id(mtype: int, dst: IPAddress, spi: int, proto: str, mark: Mark | None,
                 seq: int) -> bytearray:
    flags = xs.NLM_F_REQUEST | (xs.NLM_F_ACK if mtype == xs.XFRM_MSG_DELSA else 0)
    body = xs.UsersaId.pack(_a16(dst), spi, _af(dst.version), PROTO_NUMBERS[proto])
    return xs.build(xs.xfrm_usersa_id, mtype, flags, seq, body, _mark_attr(mark))


def encode_allocspi(src: IPAddress, dst: IPAddress, proto: str, reqid: int, lo: int, hi: int,
                    mark: Mark | None, seq: int, *, sa_dir: bool) -> bytearray:
    body = xs.UserspiInfo.pack(
        *_sel_values(None), _a16(dst), 0, PROTO_NUMBERS[proto], _a16(src),
        *_INF_BYTES_PACKETS, 0, 0, 0, 0, 0, 0, 0,
        0, reqid, _af(src.version), xs.XFRM_MODE_TRANSPORT, 0, 0, lo, hi)
    attrs = _mark_attr(mark)
    if sa_dir:
        attrs.append(("XFRMA_SA_DIR", bytes((xs.XFRM_SA_DIR_IN,))))
    return xs.build(xs.xfrm_userspi_info, xs.XFRM_MSG_ALLOCSPI, xs.NLM_F_REQUEST, seq, body,
                    attrs)


def encode_bypass(family: int, direction: int) -> bytes:
    """The ``xfrm_userpolicy_info`` for IP_XFRM_POLICY: allow, no selector."""
    return xs.UserpolicyInfo.st.pack(
        _ZERO16, _ZERO16, 0, 0, 0, 0, family, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, direction, xs.XFRM_POLICY_ALLOW, 0, 0)


# ---------------------------------------------------------------------------------------------
# Decoding


def sa_from_message(msg: xs.xfrm_msg) -> tuple[SaSpec, SaCounters]:
    """An SA as the kernel reports it (NEWSA reply, dump entry)."""
    b = msg["body"]
    family = b.family
    encr: EncrAlg | None = None
    auth: AuthAlg | None = None
    comp: str | None = None
    raw = msg.attr(xs.XFRMA_ALG_AEAD)
    if raw is not None:
        name, key, icv = xs.unpack_algo(raw, xs.AlgoAeadHdr)
        encr = EncrAlg(name, key, icv)
    raw = msg.attr(xs.XFRMA_ALG_CRYPT)
    if raw is not None:
        name, key, _ = xs.unpack_algo(raw, xs.AlgoHdr)
        encr = EncrAlg(name, key)
    raw = msg.attr(xs.XFRMA_ALG_AUTH_TRUNC)
    if raw is not None:
        name, key, trunc = xs.unpack_algo(raw, xs.AlgoAuthHdr)
        auth = AuthAlg(name, key, trunc)
    elif (raw := msg.attr(xs.XFRMA_ALG_AUTH)) is not None:
        name, key, _ = xs.unpack_algo(raw, xs.AlgoHdr)
        auth = AuthAlg(name, key, 96)
    raw = msg.attr(xs.XFRMA_ALG_COMP)
    if raw is not None:
        comp = xs.unpack_algo(raw, xs.AlgoHdr)[0]
    replay = b.replay_window
    raw = msg.attr(xs.XFRMA_REPLAY_ESN_VAL)
    if raw is not None:
        replay = xs.ReplayEsnHdr.unpack_from(raw).replay_window
    encap = None
    raw = msg.attr(xs.XFRMA_ENCAP)
    if raw is not None:
        e = xs.EncapTmpl.unpack_from(raw)
        oa = _from16(e.oa, family)
        encap = Encap(e.type, e.sport, e.dport, None if int(oa) == 0 else oa)
    if_id = msg.attr(xs.XFRMA_IF_ID)
    set_mark = msg.attr(xs.XFRMA_SET_MARK)
    set_mask = msg.attr(xs.XFRMA_SET_MARK_MASK)
    tfc = msg.attr(xs.XFRMA_TFCPAD)
    sa_dir = msg.attr(xs.XFRMA_SA_DIR)
    extra = msg.attr(xs.XFRMA_SA_EXTRA_FLAGS)
    extra_flags = xs.unpack_u32(extra) if extra else 0
    outbound = bool(sa_dir) and sa_dir[0] == xs.XFRM_SA_DIR_OUT
    proto = _proto_name(b.id_proto)
    spec = SaSpec(
        src=_from16(b.saddr, family), dst=_from16(b.id_daddr, family), spi=b.id_spi,
        proto=proto if proto in PROTO_NUMBERS else "esp",  # type: ignore[arg-type]
        mode="tunnel" if b.mode == xs.XFRM_MODE_TUNNEL else "transport",
        reqid=b.reqid, encr=encr, auth=auth, comp=comp, replay_window=replay,
        esn=bool(b.flags & xs.XFRM_STATE_ESN), encap=encap,
        lifetime=Lifetime(b.lft_soft_byte_limit, b.lft_hard_byte_limit,
                          b.lft_soft_packet_limit, b.lft_hard_packet_limit,
                          b.lft_soft_add_expires_seconds, b.lft_hard_add_expires_seconds,
                          b.lft_soft_use_expires_seconds, b.lft_hard_use_expires_seconds),
        mark=_mark_from(msg),
        selector=_selector_from(b, "sel_") if b.mode != xs.XFRM_MODE_TUNNEL else None,
        direction="outbound" if outbound else "inbound",
        if_id=xs.unpack_u32(if_id) if if_id else None,
        set_mark=Mark(xs.unpack_u32(set_mark),
                      xs.unpack_u32(set_mask) if set_mask else 0xFFFFFFFF) if set_mark else None,
        tfcpad=xs.unpack_u32(tfc) if tfc else 0,
        encap_dscp=outbound and not extra_flags & xs.XFRM_SA_XFLAG_DONT_ENCAP_DSCP,
        decap_dscp=bool(b.flags & xs.XFRM_STATE_DECAP_DSCP),
        nopmtudisc=bool(b.flags & xs.XFRM_STATE_NOPMTUDISC), seq=b.seq)
    return spec, counters_from_message(msg)


def counters_from_message(msg: xs.xfrm_msg) -> SaCounters:
    b = msg["body"]
    lastused = msg.attr(xs.XFRMA_LASTUSED)
    use_time = xs.unpack_u64(lastused) if lastused else b.cur_use_time
    return SaCounters(b.cur_bytes, b.cur_packets, b.cur_add_time, use_time)


def policy_from_message(msg: xs.xfrm_msg, prefix: str = "") -> PolicySpec | None:
    b = msg["body"]
    get = b.__getattribute__
    sel = _selector_from(b, prefix + "sel_")
    if sel is None:  # per-socket or AF_UNSPEC policies: not ours to describe
        return None
    templates = []
    raw = msg.attr(xs.XFRMA_TMPL)
    if raw:
        for off in range(0, len(raw) - 63, 64):
            t = xs.UserTmpl.unpack_from(raw, off)
            tunnel = t.mode == xs.XFRM_MODE_TUNNEL
            templates.append(Template(
                proto=_proto_name(t.id_proto) if t.id_proto in PROTO_NAMES else "esp",  # type: ignore[arg-type]
                mode="tunnel" if tunnel else "transport", reqid=t.reqid,
                src=_from16(t.saddr, t.family) if tunnel else None,
                dst=_from16(t.id_daddr, t.family) if tunnel else None,
                optional=bool(t.optional), spi=t.id_spi))
    if_id = msg.attr(xs.XFRMA_IF_ID)
    lft = Lifetime(*(get(prefix + "lft_" + n) for n in (
        "soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit",
        "soft_add_expires_seconds", "hard_add_expires_seconds", "soft_use_expires_seconds",
        "hard_use_expires_seconds")))
    return PolicySpec.for_selector(
        sel, direction=_DIR_NAME.get(get(prefix + "dir"), "out"),
        action="block" if get(prefix + "action") == xs.XFRM_POLICY_BLOCK else "allow",
        priority=get(prefix + "priority"), templates=tuple(templates), mark=_mark_from(msg),
        if_id=xs.unpack_u32(if_id) if if_id else None, lifetime=lft,
        index=get(prefix + "index"))


def event_from_message(msg: xs.xfrm_msg) -> AcquireEvent | ExpireEvent | PolicyExpireEvent | None:
    mtype = msg["header"]["type"]
    b = msg["body"]
    if mtype == xs.XFRM_MSG_ACQUIRE:
        sel = _selector_from(b, "sel_")
        if sel is None:
            return None
        reqid, family = 0, b.pol_sel_family or b.sel_family
        raw = msg.attr(xs.XFRMA_TMPL)
        if raw and len(raw) >= 64:
            t = xs.UserTmpl.unpack_from(raw, 0)
            reqid, family = t.reqid, t.family or family
        return AcquireEvent(
            selector=sel, policy_index=b.pol_index, reqid=reqid, seq=b.seq,
            proto=_proto_name(b.id_proto), src=_from16(b.saddr, family),
            dst=_from16(b.id_daddr, family), direction=_DIR_NAME.get(b.pol_dir, "out"))
    if mtype == xs.XFRM_MSG_EXPIRE:
        return ExpireEvent(
            hard=bool(b.hard), spi=b.id_spi, proto=_proto_name(b.id_proto),
            dst=_from16(b.id_daddr, b.family), src=_from16(b.saddr, b.family), reqid=b.reqid,
            bytes=b.cur_bytes, packets=b.cur_packets, add_time=b.cur_add_time,
            mark=_mark_from(msg))
    if mtype == xs.XFRM_MSG_POLEXPIRE:
        sel = _selector_from(b, "sel_")
        if sel is None:
            return None
        return PolicyExpireEvent(hard=bool(b.hard), selector=sel,
                                 direction=_DIR_NAME.get(b.dir, "out"), index=b.index,
                                 priority=b.priority)
    return None


# ---------------------------------------------------------------------------------------------
# The request channel


@dataclass(slots=True)
class _Pending:
    dump: bool
    ack: bool  # finished by the ACK (NLMSG_ERROR), not by the first reply message
    parts: list[bytes] = field(default_factory=list)
    error: int = 0
    ext_ack: str = ""
    done: bool = False
    future: asyncio.Future[None] | None = None


class _Channel:
    """Requests and replies on one netlink socket, matched by sequence number."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        name = sock.getsockname()
        self.port = name[0] if isinstance(name, tuple) else 0  # netlink port id: replies carry it
        self.timeout = timeout
        self._pending: dict[int, _Pending] = {}
        self._seq = random.randrange(1, 1 << 30)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    async def request(self, data: bytearray, seq: int, *, dump: bool = False) -> _Pending:
        # Sign the request with our port id: the kernel copies it into the notifications the
        # request causes, which is how we recognise ours among everyone's.
        xs.set_message_pid(data, self.port)
        flags = xs.message_flags(data)
        pending = _Pending(dump, bool(flags & xs.NLM_F_ACK) and not dump)
        self._pending[seq] = pending
        try:
            try:
                self.sock.send(data)
            except OSError as e:
                pending.error, pending.done = e.errno or errno.EIO, True
                return pending
            # The kernel answered inside send(); read it now, no loop round trip.
            self.drain()
            if not pending.done:
                loop = asyncio.get_running_loop()
                pending.future = loop.create_future()
                self.watch(loop)
                try:
                    await asyncio.wait_for(pending.future, self.timeout)
                except TimeoutError:
                    pending.error, pending.done = errno.ETIMEDOUT, True
            return pending
        finally:
            self._pending.pop(seq, None)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the socket whenever it has data (slow answers, and other processes' policy
        notifications, which would otherwise pile up until the socket overflows)."""
        if not self._reading:
            loop.add_reader(self.sock.fileno(), self.drain)
            self._loop, self._reading = loop, True

    def _unwatch(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False

    def drain(self) -> None:
        """Read every queued message and hand replies to their requests."""
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    # notifications overflowed the socket; replies may still be queued (if one
                    # was lost, its request times out)
                    log.debug("xfrm netlink socket overrun")
                    continue
                log.warning("xfrm netlink socket: %s", e)
                for p in self._pending.values():
                    self._finish(p, e.errno or errno.EIO)
                return
            if not data:
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        for offset, length, mtype, flags, seq, pid in xs.split(data):
            pending = self._pending.get(seq)
            if pending is None or pending.done or pid != self.port:
                continue  # someone else's notification, or the answer to a timed-out request
            if mtype == xs.NLMSG_ERROR:
                err = xs.NlmsgerrBody.st.unpack_from(data, offset + 16)[0]
                if err:
                    msg = xs.parse(data, offset)
                    pending.ext_ack = msg.ext_ack  # type: ignore[attr-defined]
                self._finish(pending, -err)
            elif mtype == xs.NLMSG_DONE:
                self._finish(pending, 0)
            else:
                pending.parts.append(data[offset:offset + length])
                if not (pending.dump or pending.ack or flags & xs.NLM_F_MULTI):
                    self._finish(pending, 0)

    @staticmethod
    def _finish(pending: _Pending, error: int) -> None:
        pending.error, pending.done = error, True
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(None)

    def close(self) -> None:
        self._unwatch()
        for p in self._pending.values():
            self._finish(p, errno.ECONNABORTED)
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The kernel


def open_xfrm_socket(netns: str | None, groups: int = 0) -> socket.socket:
    """A non-blocking NETLINK_XFRM socket, in ``netns`` when given (the namespace must exist;
    the socket is made by a short-lived forked child, so this process never enters it)."""
    if netns is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, xs.NETLINK_XFRM)
    else:
        from pyroute2 import netns as pyroute2_netns

        sock = pyroute2_netns.create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW,
                                            xs.NETLINK_XFRM, flags=0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, groups))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class XfrmKernel(Kernel):
    """Linux XFRM over netlink.

    ``netns`` names a network namespace (``ip netns add``) to work in without the process
    entering it; None is the process's own namespace (e.g. under ``ip netns exec``).
    ``sa_dir`` forces XFRMA_SA_DIR on or off (default: on for kernels >= 6.10, as Libreswan
    probes).  ``timeout`` bounds each request.
    """

    name = "xfrm"

    def __init__(self, netns: str | None = None, *, sa_dir: bool | None = None,
                 events: bool = True, timeout: float = 5.0) -> None:
        super().__init__()
        self.netns = netns
        new_kernel = _kernel_at_least(6, 10)
        self.sa_dir = new_kernel if sa_dir is None else sa_dir
        # Linux >= 6.10 refuses a replay window on outbound SAs (kernel_xfrm.c does the same)
        self.clear_outbound_replay = new_kernel or self.sa_dir
        self._events_wanted = events
        self._timeout = timeout
        self._req: _Channel | None = None
        self._events: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle
    async def start(self) -> None:
        if self._req is not None:
            return
        self._loop = asyncio.get_running_loop()
        # The request socket also listens to policy notifications: the kernel stamps the one
        # our own NEW/UPDPOLICY causes with our port and sequence number and queues it before
        # the ACK, which gives the policy's index without a GETPOLICY round trip.
        where = f" in network namespace {self.netns}" if self.netns else ""
        try:
            sock = open_xfrm_socket(self.netns, 1 << (xs.XFRMNLGRP_POLICY - 1))
        except OSError as e:
            raise KernelError("open", f"XFRM netlink socket{where}", e.errno or 0) from e
        for opt in (xs.NETLINK_CAP_ACK, xs.NETLINK_EXT_ACK):
            try:
                sock.setsockopt(xs.SOL_NETLINK, opt, 1)
            except OSError:  # old kernels: errors just come without the text
                pass
        self._req = _Channel(sock, self._timeout)
        self._req.watch(self._loop)
        if self._events_wanted:
            # POLEXPIRE is multicast on the EXPIRE group too
            groups = (1 << (xs.XFRMNLGRP_ACQUIRE - 1)) | (1 << (xs.XFRMNLGRP_EXPIRE - 1))
            try:
                self._events = open_xfrm_socket(self.netns, groups)
            except OSError as e:
                self._req.close()
                self._req = None
                raise KernelError("open", f"XFRM event socket{where}", e.errno or 0) from e
            self._loop.add_reader(self._events.fileno(), self._read_events)

    async def close(self) -> None:
        if self._events is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._events.fileno())
            self._events.close()
            self._events = None
        if self._req is not None:
            self._req.close()
            self._req = None

    def _channel(self) -> _Channel:
        if self._req is None:
            raise RuntimeError("XfrmKernel used before start()")
        return self._req

    async def _call(self, data: bytearray, seq: int, operation: str,
                    subject: Callable[[], str], mtype: int, *, dump: bool = False,
                    ok_errors: Iterable[int] = ()) -> _Pending:
        """One request; ``subject`` names the object for the error message (only called when
        there is an error, so that the hot path formats no addresses)."""
        pending = await self._channel().request(data, seq, dump=dump)
        if pending.error and pending.error not in ok_errors:
            detail = pending.ext_ack
            if pending.error == errno.ESRCH and mtype == xs.XFRM_MSG_UPDSA:
                detail = (detail + "; " if detail else "") + (
                    "kernel expired our reserved IPsec SA SPI - negotiation took too long? "
                    "Try increasing /proc/sys/net/core/xfrm_acq_expires")
            raise KernelError(operation, subject(), pending.error, detail,
                              xs.MESSAGE_NAMES.get(mtype, str(mtype)))
        return pending

    # -- events
    def _read_events(self) -> None:
        assert self._events is not None
        while True:
            try:
                data = self._events.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # overrun: some events were lost
                    log.warning("xfrm events: kernel dropped messages (%s)", e)
                    continue
                log.error("xfrm events socket failed, no more ACQUIRE/EXPIRE: %s", e)
                if self._loop is not None:
                    self._loop.remove_reader(self._events.fileno())
                return
            for offset, _length, mtype, _flags, _seq, _pid in xs.split(data):
                if mtype not in (xs.XFRM_MSG_ACQUIRE, xs.XFRM_MSG_EXPIRE,
                                 xs.XFRM_MSG_POLEXPIRE):
                    continue
                try:
                    event = event_from_message(xs.parse(data, offset))
                except Exception:  # malformed: log and keep reading
                    log.exception("undecodable xfrm message type %d", mtype)
                    continue
                if event is None:
                    continue
                if isinstance(event, ExpireEvent):
                    if event.spi == 0:
                        continue  # the kernel's own acquire placeholder expired (Libreswan)
                    if event.hard:  # the kernel has deleted it
                        self._disown_sa(event.dst, event.spi, event.proto, event.mark)
                elif isinstance(event, PolicyExpireEvent) and event.hard:
                    self._disown_policy(event.selector, event.direction, None, None)
                self._emit(event)

    # -- SAs
    async def allocate_spi(self, src: AddressLike, dst: AddressLike, proto: Proto = "esp",
                           reqid: int = 0, min: int | None = None, max: int | None = None,
                           *, mark: Mark | None = None) -> int:
        s, d = _addr(src), _addr(dst)
        lo_default, hi_default = spi_range(proto)
        lo = lo_default if min is None else min
        hi = hi_default if max is None else max
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_allocspi(s, d, proto, reqid, lo, hi, mark, seq, sa_dir=self.sa_dir)

        def subject() -> str:
            return f"{proto.upper()} SPI for {s}->{d} (reqid {reqid})"

        pending = await self._call(data, seq, "allocate SPI", subject, xs.XFRM_MSG_ALLOCSPI)
        reply = pending.parts[0] if pending.parts else b""
        if len(reply) < 16 + xs.UsersaInfo.size or xs.message_type(reply) != xs.XFRM_MSG_NEWSA:
            raise KernelError("allocate SPI", subject(), errno.EPROTO,
                              "no SA in the kernel's answer", "XFRM_MSG_ALLOCSPI")
        spi = xs.usersa_spi(reply)
        self._reserve_sa(d, spi, proto, mark)
        return spi

    async def _put_sa(self, spec: SaSpec, mtype: int, operation: str) -> None:
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_sa(spec, mtype, seq, sa_dir=self.sa_dir,
                         clear_outbound_replay=self.clear_outbound_replay)
        await self._call(data, seq, operation, spec.describe, mtype)
        self._own_sa(spec.dst, spec.spi, spec.proto, spec.mark)

    async def add_sa(self, spec: SaSpec) -> None:
        await self._put_sa(spec, xs.XFRM_MSG_NEWSA, "add SA")

    async def update_sa(self, spec: SaSpec) -> None:
        await self._put_sa(spec, xs.XFRM_MSG_UPDSA, "update SA")

    async def delete_sa(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                        mark: Mark | None = None, *, missing_ok: bool = False) -> None:
        d = _addr(dst)
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_sa_id(xs.XFRM_MSG_DELSA, d, spi, proto, mark, seq)
        ok = (errno.ESRCH, errno.ENOENT) if missing_ok else ()
        await self._call(data, seq, "delete SA", lambda: describe_sa(proto, spi, None, d),
                         xs.XFRM_MSG_DELSA, ok_errors=ok)
        self._disown_sa(d, spi, proto, mark)

    async def get_sa(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                     mark: Mark | None = None) -> tuple[SaSpec, SaCounters]:
        """The SA as installed, with its counters (XFRM_MSG_GETSA)."""
        return sa_from_message(await self._get_sa_message(_addr(dst), spi, proto, mark))

    async def _get_sa_message(self, d: IPAddress, spi: int, proto: Proto,
                              mark: Mark | None) -> xs.xfrm_msg:
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_sa_id(xs.XFRM_MSG_GETSA, d, spi, proto, mark, seq)

        def subject() -> str:
            return describe_sa(proto, spi, None, d)

        pending = await self._call(data, seq, "get SA", subject, xs.XFRM_MSG_GETSA)
        if not pending.parts:
            raise KernelError("get SA", subject(), errno.EPROTO, "empty reply", "XFRM_MSG_GETSA")
        return xs.parse(pending.parts[0])

    async def get_sa_counters(self, dst: AddressLike, spi: int, proto: Proto = "esp",
                              mark: Mark | None = None) -> SaCounters:
        msg = await self._get_sa_message(_addr(dst), spi, proto, mark)
        return counters_from_message(msg)

    # -- policies
    async def _put_policy(self, spec: PolicySpec, mtype: int, operation: str) -> int:
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_policy(spec, mtype, seq)
        pending = await self._call(data, seq, operation, spec.describe, mtype)
        self._own_policy(spec)
        for part in pending.parts:  # our own notification (see start())
            if xs.message_type(part) in (xs.XFRM_MSG_NEWPOLICY, xs.XFRM_MSG_UPDPOLICY) and (
                    len(part) >= 16 + xs.UserpolicyInfo.size):
                return xs.userpolicy_index(part)
        # notification lost (socket overrun): ask
        return await self._policy_index(spec)

    async def _policy_index(self, spec: PolicySpec) -> int:
        ch = self._channel()
        seq = ch.next_seq()
        body = xs.UserpolicyId.pack(*_sel_values(spec.selector), 0, _DIR_NUM[spec.direction])
        attrs = _mark_attr(spec.mark)
        if spec.if_id is not None:
            attrs.append(("XFRMA_IF_ID", xs.pack_u32(spec.if_id)))
        data = xs.build(xs.xfrm_userpolicy_id, xs.XFRM_MSG_GETPOLICY, xs.NLM_F_REQUEST, seq,
                        body, attrs)
        pending = await self._call(data, seq, "get policy", spec.describe,
                                   xs.XFRM_MSG_GETPOLICY)
        reply = pending.parts[0] if pending.parts else b""
        if len(reply) < 16 + xs.UserpolicyInfo.size or (
                xs.message_type(reply) != xs.XFRM_MSG_NEWPOLICY):
            return 0
        return xs.userpolicy_index(reply)

    async def add_policy(self, spec: PolicySpec) -> int:
        return await self._put_policy(spec, xs.XFRM_MSG_NEWPOLICY, "add policy")

    async def replace_policy(self, spec: PolicySpec) -> int:
        return await self._put_policy(spec, xs.XFRM_MSG_UPDPOLICY, "replace policy")

    async def delete_policy(self, sel: Selector, direction: PolicyDirection,
                            mark: Mark | None = None, *, if_id: int | None = None,
                            missing_ok: bool = False) -> None:
        ch = self._channel()
        seq = ch.next_seq()
        data = encode_policy_id(sel, direction, mark, if_id, seq)
        ok = (errno.ENOENT,) if missing_ok else ()
        await self._call(data, seq, "delete policy", lambda: f"{direction} policy {sel}",
                         xs.XFRM_MSG_DELPOLICY, ok_errors=ok)
        self._disown_policy(sel, direction, mark, if_id)

    # -- tables
    async def _dump(self, mtype: int, operation: str) -> list[xs.xfrm_msg]:
        ch = self._channel()
        seq = ch.next_seq()
        data = xs.build(xs.xfrm_flushpolicy, mtype, xs.NLM_F_REQUEST | xs.NLM_F_DUMP, seq,
                        None)
        pending = await self._call(data, seq, operation, lambda: "XFRM table", mtype,
                                   dump=True)
        return [xs.parse(part) for part in pending.parts]

    async def dump_sas(self) -> list[SaSpec]:
        return [sa_from_message(m)[0] for m in await self._dump(xs.XFRM_MSG_GETSA, "dump SAs")
                if m["header"]["type"] == xs.XFRM_MSG_NEWSA]

    async def dump_policies(self) -> list[PolicySpec]:
        out = []
        for m in await self._dump(xs.XFRM_MSG_GETPOLICY, "dump policies"):
            if m["header"]["type"] == xs.XFRM_MSG_NEWPOLICY:
                spec = policy_from_message(m)
                if spec is not None:
                    out.append(spec)
        return out

    async def flush_all(self) -> None:
        """Remove every SA and policy in the namespace, ours or not (FLUSHPOLICY + FLUSHSA),
        as pluto does at start-up and shutdown."""
        ch = self._channel()
        seq = ch.next_seq()
        data = xs.build(xs.xfrm_flushpolicy, xs.XFRM_MSG_FLUSHPOLICY,
                        xs.NLM_F_REQUEST | xs.NLM_F_ACK, seq, None)
        await self._call(data, seq, "flush", lambda: "all policies", xs.XFRM_MSG_FLUSHPOLICY)
        seq = ch.next_seq()
        data = xs.build(xs.xfrm_usersa_flush, xs.XFRM_MSG_FLUSHSA,
                        xs.NLM_F_REQUEST | xs.NLM_F_ACK, seq, (0,))
        await self._call(data, seq, "flush", lambda: "all SAs", xs.XFRM_MSG_FLUSHSA)
        self._owned.sas.clear()
        self._owned.policies.clear()
        self._owned.reserved.clear()

    # -- sockets
    def bypass_socket(self, sock: socket.socket) -> None:
        family = sock.family
        level, opt = ((socket.IPPROTO_IP, xs.IP_XFRM_POLICY) if family == socket.AF_INET
                      else (socket.IPPROTO_IPV6, xs.IPV6_XFRM_POLICY))
        for direction in (xs.XFRM_POLICY_IN, xs.XFRM_POLICY_OUT):
            try:
                sock.setsockopt(level, opt, encode_bypass(family, direction))
            except OSError as e:
                raise KernelError("bypass socket", f"IKE socket fd {sock.fileno()}",
                                  e.errno or 0, "setsockopt IP_XFRM_POLICY") from e

    def enable_espinudp(self, sock: socket.socket) -> None:
        """Let the kernel take ESP-in-UDP (RFC 3948) off a NAT-T port-4500 socket."""
        try:
            sock.setsockopt(socket.IPPROTO_UDP, 100, 2)  # UDP_ENCAP, UDP_ENCAP_ESPINUDP
        except OSError as e:
            raise KernelError("enable ESP-in-UDP", f"socket fd {sock.fileno()}",
                              e.errno or 0, "setsockopt UDP_ENCAP") from e
