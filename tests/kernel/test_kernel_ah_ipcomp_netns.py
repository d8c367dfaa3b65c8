"""AH and IPCOMP against Linux XFRM in a network namespace (root), iproute2 as the oracle.

Policies whose templates are AH, or IPCOMP then ESP, install on any kernel with XFRM.  The
SAs need the kernel's AH / IPCOMP modules: where they exist the SA is read back; where they
do not (the development host, /work/shared/reference/kernel-lab.md) the refusal must be the
clean one, with nothing left half-installed and nothing recorded as ours."""

from __future__ import annotations

import errno
from typing import Any

from test_kernel_xfrm_netns import find, ip_policies, ip_states, netns_ok, ns, with_kernel

from pyswan.kernel.base import AuthAlg, KernelError, SaSpec, Selector, ipsec_policies
from pyswan.kernel.netns import NetNS
from pyswan.kernel.xfrm import XfrmKernel

__all__ = ["netns_ok", "ns"]  # the fixtures, imported for pytest


def _install_or_refusal(ns: NetNS, spec: SaSpec) -> dict[str, Any]:
    async def body(k: XfrmKernel) -> dict[str, Any]:
        r: dict[str, Any] = {}
        try:
            await k.add_sa(spec)
            r["states"] = ip_states(ns)
            await k.delete_sa(spec.dst, spec.spi, spec.proto)
        except KernelError as e:
            r["error"] = e
        r["after"] = (ip_states(ns), k.owned_counts())
        return r
    return with_kernel(ns, body)


def test_ah_sa_installed_or_refused_cleanly(ns: NetNS) -> None:
    spec = SaSpec("192.0.2.1", "192.0.2.2", 0xA1A1A1A1, "ah", "tunnel", 16388,
                  auth=AuthAlg("hmac(sha256)", bytes(range(32)), 128), direction="outbound")
    r = _install_or_refusal(ns, spec)
    if "error" in r:  # no AH in this kernel
        e = r["error"]
        assert e.errno == errno.EPROTONOSUPPORT and e.detail == "Requested type not found"
        assert str(e).startswith("AH SA 0xa1a1a1a1 192.0.2.1->192.0.2.2: kernel refused add "
                                 "SA (XFRM_MSG_NEWSA): Protocol not supported")
    else:
        (st,) = r["states"]
        assert (st["proto"], st["spi"], st["reqid"], st["mode"]) == (
            "ah", "0xa1a1a1a1", "16388", "tunnel")
        assert st["auth-trunc"] == "hmac(sha256)"
    assert r["after"] == ([], (0, 0))


def test_ipcomp_sa_installed_or_refused_cleanly(ns: NetNS) -> None:
    spec = SaSpec("192.0.2.1", "192.0.2.2", 0x606C, "comp", "tunnel", 16390, comp="deflate",
                  replay_window=0, direction="outbound")
    r = _install_or_refusal(ns, spec)
    if "error" in r:  # no IPCOMP in this kernel
        e = r["error"]
        assert e.errno == errno.EPROTONOSUPPORT and e.detail == "Requested type not found"
        assert str(e).startswith("IPCOMP SA 0x0000606c 192.0.2.1->192.0.2.2: kernel refused")
    else:
        (st,) = r["states"]
        assert (st["proto"], st["spi"], st["mode"]) == ("comp", "0x0000606c", "tunnel")
        assert st["comp"] == "deflate"
    assert r["after"] == ([], (0, 0))


def test_bundle_policies_in_the_kernel(ns: NetNS) -> None:
    sel = Selector("10.1.0.0/24", "10.2.0.0/24")
    comp_esp = ipsec_policies(sel, "192.0.2.1", "192.0.2.2", reqid=16384, priority=100,
                              protos=("comp", "esp"))
    ah = ipsec_policies(Selector("10.3.0.0/24", "10.4.0.0/24"), "192.0.2.1", "192.0.2.2",
                        reqid=16392, priority=100, protos=("ah",))

    async def body(k: XfrmKernel) -> list[dict[str, Any]]:
        for spec in (*comp_esp, *ah):
            await k.replace_policy(spec)
        got = ip_policies(ns)
        for spec in (*comp_esp, *ah):
            await k.delete_policy(spec.selector, spec.direction)
        assert ip_policies(ns) == []
        return got

    pols = with_kernel(ns, body)
    out = find(pols, src="10.1.0.0/24", dir="out")
    assert [(t["proto"], t["mode"], t["reqid"], t.get("level")) for t in out["tmpls"]] == [
        ("comp", "tunnel", "16386", "required"), ("esp", "transport", "16385", "required")]
    assert (out["tmpls"][0]["src"], out["tmpls"][0]["dst"]) == ("192.0.2.1", "192.0.2.2")
    for direction in ("in", "fwd"):
        p = find(pols, src="10.2.0.0/24", dir=direction)
        assert [(t["proto"], t.get("level")) for t in p["tmpls"]] == [
            ("comp", "use"), ("esp", "required")]
    a = find(pols, src="10.3.0.0/24", dir="out")
    assert [(t["proto"], t["mode"], t["reqid"]) for t in a["tmpls"]] == [
        ("ah", "tunnel", "16392")]
