"""AH and IPCOMP Child SAs in the kernel layer.

The XFRM messages are read back at the byte offsets of /work/shared/reference/python-stack.md
§2.2 (xfrm_usersa_info, xfrm_user_tmpl, xfrm_algo[_auth], attribute numbers), not through our
own decoder; the memory kernel takes the same SAs and policies; and the pluto glue, with
two daemons on the memory kernel, installs a ``phase2=ah`` and a ``compress=yes`` Child SA
as Libreswan does (IPCOMP innermost and in tunnel mode, then ESP in transport mode; the
policy templates in that order) and takes every SA out again with the Child SA."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

from test_pluto_kernel_glue import _pair, _settle, _Whack

from pyswan.kernel import xfrm_structs as xs
from pyswan.kernel.base import (
    AuthAlg,
    EncrAlg,
    SaSpec,
    Selector,
    ipsec_policies,
    reqid_for,
)
from pyswan.kernel.memory import MemoryKernel
from pyswan.kernel.xfrm import encode_policy, encode_sa
from pyswan.whack.protocol import Request

NLMSG_HDR = 16
USERSA_INFO = 224
USERPOLICY_INFO = 168
USER_TMPL = 64
A = ipaddress.ip_address


def _attrs(data: bytes, body: int) -> dict[int, bytes]:
    """Netlink attributes after the fixed body: {type: payload} (NLA_ALIGNTO 4)."""
    out: dict[int, bytes] = {}
    pos = NLMSG_HDR + body
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        out[kind & 0x3FFF] = data[pos + 4:pos + length]
        pos += (length + 3) & ~3
    return out


def _sa_fields(data: bytes) -> dict[str, object]:
    b = NLMSG_HDR
    return {
        "daddr": data[b + 56:b + 60], "spi": struct.unpack_from("!I", data, b + 72)[0],
        "proto": data[b + 76], "saddr": data[b + 80:b + 84],
        "reqid": struct.unpack_from("=I", data, b + 208)[0],
        "family": struct.unpack_from("=H", data, b + 212)[0], "mode": data[b + 214],
        "flags": data[b + 216],
    }


def test_ah_sa_bytes() -> None:
    key = bytes(range(32))
    spec = SaSpec("192.0.2.1", "192.0.2.2", 0xC0FFEE01, "ah", "tunnel", 16385,
                  auth=AuthAlg("hmac(sha256)", key, 128), direction="inbound")
    data = bytes(encode_sa(spec, xs.XFRM_MSG_NEWSA, 7, sa_dir=True,
                           clear_outbound_replay=True))
    f = _sa_fields(data)
    assert f == {"daddr": A("192.0.2.2").packed, "spi": 0xC0FFEE01, "proto": 51,
                 "saddr": A("192.0.2.1").packed, "reqid": 16385, "family": socket.AF_INET,
                 "mode": 1, "flags": f["flags"]}
    assert f["flags"] & 0x40  # XFRM_STATE_ALIGN4: AH over IPv4 (RFC 4302)
    attrs = _attrs(data, USERSA_INFO)
    auth = attrs[20]  # ALG_AUTH_TRUNC: name[64], key bits, trunc bits, key
    assert auth[:64].rstrip(b"\0") == b"hmac(sha256)"
    assert struct.unpack_from("=II", auth, 64) == (256, 128) and auth[72:] == key
    assert 2 not in attrs and 18 not in attrs and 3 not in attrs  # no CRYPT, AEAD, COMP


def test_ipcomp_sa_bytes() -> None:
    spec = SaSpec("192.0.2.1", "192.0.2.2", 0x606C, "comp", "tunnel", 16386, comp="deflate",
                  replay_window=0, direction="outbound")
    data = bytes(encode_sa(spec, xs.XFRM_MSG_NEWSA, 8, sa_dir=True,
                           clear_outbound_replay=True))
    f = _sa_fields(data)
    assert (f["proto"], f["spi"], f["reqid"], f["mode"]) == (108, 0x606C, 16386, 1)
    attrs = _attrs(data, USERSA_INFO)
    comp = attrs[3]  # ALG_COMP: xfrm_algo with no key
    assert comp[:64].rstrip(b"\0") == b"deflate" and struct.unpack_from("=I", comp, 64) == (0,)
    assert len(comp) == 68
    assert not {1, 2, 18, 20, 23} & set(attrs)  # no AUTH/CRYPT/AEAD/AUTH_TRUNC/REPLAY_ESN


def _templates(data: bytes) -> list[tuple[int, int, int, int, int, bytes, bytes]]:
    raw = _attrs(data, USERPOLICY_INFO)[5]  # TMPL: array of xfrm_user_tmpl
    assert len(raw) % USER_TMPL == 0
    out = []
    for i in range(0, len(raw), USER_TMPL):
        t = raw[i:i + USER_TMPL]
        out.append((t[20], struct.unpack_from("=I", t, 44)[0], t[48], t[50],
                    struct.unpack_from("=H", t, 24)[0], t[0:4], t[28:32]))
    return out


def test_policy_templates_comp_then_esp_and_ah_alone() -> None:
    sel = Selector("10.1.0.0/24", "10.2.0.0/24")
    out, inn, fwd = ipsec_policies(sel, "192.0.2.1", "192.0.2.2", reqid=16384, priority=9,
                                   protos=("esp", "comp"))
    got = _templates(bytes(encode_policy(out, xs.XFRM_MSG_NEWPOLICY, 1)))
    east, west = A("192.0.2.2").packed, A("192.0.2.1").packed
    # (proto, reqid, mode, optional, family, tunnel dst, tunnel src): IPCOMP innermost in
    # tunnel mode with the ends, then ESP in transport mode; outbound IPCOMP is required
    assert got == [(108, 16386, 1, 0, socket.AF_INET, east, west),
                   (50, 16385, 0, 0, socket.AF_INET, bytes(4), bytes(4))]
    for pol in (inn, fwd):  # inbound IPCOMP is optional (level use)
        got = _templates(bytes(encode_policy(pol, xs.XFRM_MSG_NEWPOLICY, 1)))
        assert [(t[0], t[3], t[5]) for t in got] == [(108, 1, west), (50, 0, bytes(4))]
    (out,) = ipsec_policies(sel, "192.0.2.1", "192.0.2.2", reqid=16384, priority=9,
                            mode="transport", protos=("ah",))[:1]
    assert _templates(bytes(encode_policy(out, xs.XFRM_MSG_NEWPOLICY, 1))) == [
        (51, reqid_for("ah", 16384), 0, 0, socket.AF_INET, bytes(4), bytes(4))]


def test_memory_kernel_takes_ah_and_ipcomp_and_checks_them() -> None:
    async def scenario() -> None:
        k = MemoryKernel()
        auth = AuthAlg("hmac(sha256)", bytes(32), 128)
        await k.add_sa(SaSpec("192.0.2.1", "192.0.2.2", 0x1001, "ah", auth=auth))
        await k.add_sa(SaSpec("192.0.2.1", "192.0.2.2", 0x300, "comp", comp="deflate",
                              replay_window=0))
        assert {(s.spec.proto, s.spec.spi) for s in k.sas()} == {("ah", 0x1001),
                                                                 ("comp", 0x300)}
        for bad in (SaSpec("192.0.2.1", "192.0.2.2", 0x1002, "ah", auth=auth,
                           encr=EncrAlg("cbc(aes)", bytes(16))),
                    SaSpec("192.0.2.1", "192.0.2.2", 0x1003, "ah")):
            try:
                await k.add_sa(bad)
            except Exception as e:  # noqa: BLE001 - the kernel's EINVAL
                assert "AH" in str(e)
            else:
                raise AssertionError("memory kernel took an invalid AH SA")
        refusing = MemoryKernel(refuse_protos={"ah", "comp"})
        for spec in (SaSpec("192.0.2.1", "192.0.2.2", 0x1001, "ah", auth=auth),
                     SaSpec("192.0.2.1", "192.0.2.2", 0x300, "comp", comp="deflate")):
            try:
                await refusing.add_sa(spec)
            except Exception as e:  # noqa: BLE001
                assert "not found" in str(e) or "not supported" in str(e).lower()
            else:
                raise AssertionError("refuse_protos let an SA in")
    asyncio.run(scenario())


# ------------------------------------------------------------------ the glue


def _status(p) -> list[str]:
    from pyswan.pluto.status import cmd_status, cmd_trafficstatus

    return cmd_status(p, Request("status")) + cmd_trafficstatus(p, Request("trafficstatus"))


def _child(p):
    return next(s for s in p.states if s.kind == "child" and s.established)


def test_glue_installs_and_removes_an_ah_child_sa(tmp_path) -> None:
    async def scenario() -> None:
        west, east = await _pair(tmp_path, ("", "phase2", "ah"), ("", "ah", "sha2_256"))
        await west.engine.initiate(west.conns.get("c"), _Whack(), Request("initiate", "c"))
        await _settle(west, east)
        for p, me, peer in ((west, "127.0.0.1", "127.0.0.2"), (east, "127.0.0.2", "127.0.0.1")):
            st = _child(p)
            sas = {(s.spec.proto, s.spec.dst, s.spec.spi): s.spec for s in p.kernel.sas()
                   if not s.larval}
            inbound = sas[("ah", A(me), st.spi_in)]
            outbound = sas[("ah", A(peer), st.spi_out)]
            for spec in (inbound, outbound):
                assert spec.encr is None and spec.auth.name == "hmac(sha256)"
                assert spec.auth.trunc_bits == 128 and spec.mode == "tunnel"
            assert not any(proto == "esp" for proto, _, _ in sas)
            pols = [pol for pol in p.kernel.policies() if pol.templates]
            assert pols and all([t.proto for t in pol.templates] == ["ah"] for pol in pols)
            lines = _status(p)
            said = f"ah.{st.spi_out:x}@{peer} ah.{st.spi_in:x}@{me} tun.0@{peer}"
            assert any(said in line and "Traffic: AHin=0B AHout=0B AHmax=" in line
                       for line in lines), lines
            assert any("type=AH, add_time=" in line for line in lines)
            assert any("AH algorithm newest: HMAC_SHA2_256_128; pfsgroup=" in line
                       for line in lines)
        # the integrity keys of one end's inbound SA are the other's outbound
        w_in = next(s.spec for s in west.kernel.sas() if s.spec.proto == "ah"
                    and s.spec.dst == A("127.0.0.1"))
        e_out = next(s.spec for s in east.kernel.sas() if s.spec.proto == "ah"
                     and s.spec.dst == A("127.0.0.1"))
        assert w_in.auth.key == e_out.auth.key and len(w_in.auth.key) == 32
        for p in (west, east):
            await p.engine.shutdown(leave_state=False)
        await _settle(west, east, rounds=5)
        for p in (west, east):
            assert [s for s in p.kernel.sas() if s.spec.proto == "ah"] == []
        log = (tmp_path / "west.log").read_text()
        assert "AH traffic information: in=0B out=0B" in log
    asyncio.run(scenario())


def test_glue_installs_ipcomp_with_esp(tmp_path) -> None:
    async def scenario() -> None:
        west, east = await _pair(tmp_path, ("", "compress", "yes"))
        await west.engine.initiate(west.conns.get("c"), _Whack(), Request("initiate", "c"))
        await _settle(west, east)
        cpis = {}
        for p, me, peer in ((west, "127.0.0.1", "127.0.0.2"), (east, "127.0.0.2", "127.0.0.1")):
            st = _child(p)
            sas = {(s.spec.proto, s.spec.dst): s.spec for s in p.kernel.sas() if not s.larval}
            comp_in, comp_out = sas[("comp", A(me))], sas[("comp", A(peer))]
            esp_in, esp_out = sas[("esp", A(me))], sas[("esp", A(peer))]
            assert comp_in.comp == comp_out.comp == "deflate"
            assert 256 <= comp_in.spi <= 61439 and comp_in.mode == "tunnel"
            assert esp_in.mode == esp_out.mode == "transport"  # IPCOMP is innermost
            assert comp_in.reqid == esp_in.reqid + 1  # reqid_for: comp = base + 2, esp + 1
            cpis[p] = (comp_in.spi, comp_out.spi)
            pols = [pol for pol in p.kernel.policies() if pol.templates]
            assert {pol.direction for pol in pols} == {"out", "in", "fwd"}
            for pol in pols:
                assert [(t.proto, t.mode, t.optional) for t in pol.templates] == [
                    ("comp", "tunnel", pol.direction != "out"), ("esp", "transport", False)]
            lines = _status(p)
            saids = (f"esp.{st.spi_out:x}@{peer} esp.{st.spi_in:x}@{me} "
                     f"comp.{comp_out.spi:x}@{peer} comp.{comp_in.spi:x}@{me} tun.0@{peer}")
            assert any(saids in line and "ESPmax=" in line and " IPCOMPin=0B IPCOMPout=0B "
                       "IPCOMPmax=" in line for line in lines), lines
            assert any("ESP algorithm newest: AES_GCM_16_256; IPCOMP; pfsgroup=" in line
                       for line in lines)
        assert cpis[west] == cpis[east][::-1]
        log = (tmp_path / "west.log").read_text()
        assert f"IPCOMP=>0x{cpis[west][1]:08x} <0x{cpis[west][0]:08x} DPD=passive}}" in log
        for p in (west, east):
            await p.engine.shutdown(leave_state=False)
        await _settle(west, east, rounds=5)
        for p in (west, east):
            assert [s for s in p.kernel.sas() if s.spec.proto in ("comp", "esp")
                    and not s.larval] == []
        assert "IPCOMP traffic information: in=0B out=0B" in \
            (tmp_path / "west.log").read_text()
    asyncio.run(scenario())
