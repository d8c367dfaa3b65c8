"""Cost of installing and removing one Child SA through the kernel interface.

A Child SA is 2 SAs (inbound, outbound) + 3 policies (out, in, fwd), installed the way
Libreswan does it: reserve the inbound SPI, fill it in (UPDSA), add the outbound SA, then
replace (UPDPOLICY) the three policies; removed by deleting the policies and the SAs.

XfrmKernel runs in a fresh network namespace (needs root).  This host's kernel has no ESP (nor
AH or IPCOMP), so no SA can be installed for real: the XFRM run reserves both SPIs (the kernel
keeps a larval SA for each: a real state-table insert and delete) and times the ESP add/update
separately as what it is here -- a full round trip through the kernel's checks, refused at the
type lookup (on a kernel with ESP, e.g. the QEMU lab, the SAs are installed for real).
MemoryKernel installs real ESP SAs.  "SPI reserved ahead" leaves out the ALLOCSPI, which
pluto does before the negotiation needs the SPI.  Figures are printed, never asserted.

    sudo .venv/bin/python benchmarks/bench_kernel.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from pyswan.kernel import xfrm_structs as xs
from pyswan.kernel.base import (
    EncrAlg,
    Kernel,
    KernelError,
    SaSpec,
    Selector,
    ipsec_policies,
    spd_priority,
)
from pyswan.kernel.memory import MemoryKernel
from pyswan.kernel.netns import NetNS, netns_unavailable
from pyswan.kernel.xfrm import XfrmKernel, encode_policy, encode_sa, open_xfrm_socket

# address objects, as pluto holds them (parsing strings is not the kernel layer's cost)
LOCAL, REMOTE = ipaddress.ip_address("192.1.2.45"), ipaddress.ip_address("192.1.2.23")
GCM = EncrAlg("rfc4106(gcm(aes))", bytes(range(36)), 128)


def child(n: int) -> tuple[Selector, list]:
    sel = Selector(f"10.{n >> 8}.{n & 255}.0/24", f"10.{128 + (n >> 8)}.{n & 255}.0/24")
    return sel, ipsec_policies(sel, LOCAL, REMOTE, reqid=16388 + 4 * n,
                               priority=spd_priority(sel.src, sel.dst))


class Timer:
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, name: str, op: Callable[[], Awaitable[Any]]) -> Any:
        t0 = time.perf_counter()
        try:
            return await op()
        finally:
            self.samples[name].append((time.perf_counter() - t0) * 1e6)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])


async def one_child(k: Kernel, n: int, t: Timer, esp_works: bool) -> None:
    sel, policies = child(n)
    reqid = 16389 + 4 * n
    t0 = time.perf_counter()
    spi_in = await t("allocate_spi", lambda: k.allocate_spi(REMOTE, LOCAL, "esp", reqid))
    t0_reserved = time.perf_counter()  # pluto reserves inbound SPIs ahead (spipool.py)
    inbound = SaSpec(REMOTE, LOCAL, spi_in, reqid=reqid, encr=GCM, esn=True,
                     direction="inbound")
    if esp_works:
        await t("update_sa", lambda: k.update_sa(inbound))
        spi_out = 0x10000 + n
        outbound = SaSpec(LOCAL, REMOTE, spi_out, reqid=reqid, encr=GCM, esn=True,
                          direction="outbound")
        await t("add_sa", lambda: k.add_sa(outbound))
        out_dst = REMOTE
    else:  # stand-in for the outbound SA: a second reserved SPI (a real larval SA)
        spi_out = await t("allocate_spi", lambda: k.allocate_spi(LOCAL, REMOTE, "esp", reqid))
        out_dst = REMOTE
    for p in policies:
        await t("replace_policy", lambda p=p: k.replace_policy(p))
    t1 = time.perf_counter()
    await t("get_sa_counters", lambda: k.get_sa_counters(LOCAL, spi_in))
    t2 = time.perf_counter()
    for p in policies:
        await t("delete_policy", lambda p=p: k.delete_policy(p.selector, p.direction))
    await t("delete_sa", lambda: k.delete_sa(LOCAL, spi_in))
    await t("delete_sa", lambda: k.delete_sa(out_dst, spi_out))
    t3 = time.perf_counter()
    t.samples["INSTALL child"].append((t1 - t0) * 1e6)
    t.samples["INSTALL child, SPI reserved ahead"].append((t1 - t0_reserved) * 1e6)
    t.samples["REMOVE child"].append((t3 - t2) * 1e6)


async def refused_esp(k: Kernel, n: int, t: Timer) -> None:
    spec = SaSpec(LOCAL, REMOTE, 0x20000 + n, reqid=1, encr=EncrAlg("cbc(aes)", bytes(16)),
                  esn=True, direction="outbound")
    try:
        await t("add_sa (ESP, refused here)", lambda: k.add_sa(spec))
    except KernelError:
        pass


async def run(k: Kernel, rounds: int, esp_works: bool, refused: bool) -> Timer:
    t = Timer()
    async with k:
        for n in range(rounds):
            await one_child(k, n, t, esp_works)
            if refused:
                await refused_esp(k, n, t)
        await k.flush_owned()
    return t


def marshalling(rounds: int) -> dict[str, float]:
    sel, policies = child(1)
    sa = SaSpec(LOCAL, REMOTE, 0x1234, reqid=16389, encr=GCM, esn=True, direction="outbound")
    out: dict[str, float] = {}
    policy_bytes = bytes(encode_policy(policies[0], xs.XFRM_MSG_UPDPOLICY, 1))
    for name, fn in (
        ("encode SA (pyroute2 classes)", lambda: encode_sa(
            sa, xs.XFRM_MSG_NEWSA, 1, sa_dir=True, clear_outbound_replay=True)),
        ("encode policy + template", lambda: encode_policy(policies[0], xs.XFRM_MSG_UPDPOLICY,
                                                           1)),
        ("decode policy message", lambda: xs.parse(policy_bytes)),
    ):
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e6)
        out[name] = statistics.median(samples)
    return out


def raw_round_trip(netns: str, rounds: int) -> float:
    """Baseline under the same machine load: a hand-packed XFRM_MSG_GETPOLICY for a policy
    that does not exist, on a plain blocking socket -- the kernel and syscall cost alone."""
    import struct

    sock = open_xfrm_socket(netns)
    sock.setblocking(True)
    body = bytes(56) + struct.pack("=IB3x", 0, 1)
    samples = []
    for seq in range(1, rounds + 1):
        msg = struct.pack("=IHHII", 16 + len(body), xs.XFRM_MSG_GETPOLICY, xs.NLM_F_REQUEST,
                          seq, 0) + body
        t0 = time.perf_counter()
        sock.send(msg)
        sock.recv(65536)
        samples.append((time.perf_counter() - t0) * 1e6)
    sock.close()
    return statistics.median(samples)


def report(title: str, t: Timer, cpu: float, rounds: int) -> None:
    print(f"\n{title}")
    for name in sorted(t.samples, key=lambda n: (n.isupper(), n)):
        s = t.samples[name]
        print(f"  {name:34s} median {t.median(name):8.1f} µs   p90 "
              f"{statistics.quantiles(s, n=10)[-1]:8.1f} µs   n={len(s)}")
    print(f"  process CPU (user+sys) per round, all of the above: {cpu / rounds * 1e6:8.1f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    rounds = ap.parse_args().rounds

    print("per-message marshalling (median µs):")
    for name, value in marshalling(5000).items():
        print(f"  {name:34s} {value:7.1f}")

    c0 = time.process_time()
    memory = asyncio.run(run(MemoryKernel(), rounds, esp_works=True, refused=False))
    report("MemoryKernel (ESP SAs installed)", memory, time.process_time() - c0, rounds)

    reason = netns_unavailable()
    if reason:
        print(f"\nXfrmKernel: skipped ({reason})")
        return
    with NetNS("pyswan-bench-") as ns:
        print(f"\nraw netlink round trip (struct-packed, blocking socket, no pyroute2): "
              f"{raw_round_trip(ns.name, 2000):.1f} µs median")
        esp = asyncio.run(esp_installs(XfrmKernel(ns.name)))
        c0 = time.process_time()
        xfrm = asyncio.run(run(XfrmKernel(ns.name), rounds, esp_works=esp, refused=not esp))
        cpu = time.process_time() - c0
    if esp:
        report("XfrmKernel in a namespace (ESP SAs installed)", xfrm, cpu, rounds)
    else:
        report("XfrmKernel in a namespace -- this kernel refuses ESP/AH/IPCOMP SAs, so the two "
               "SAs are reserved SPIs (larval SAs: real kernel insert/delete) and the ESP add is "
               "timed as the refused round trip", xfrm, cpu, rounds)


async def esp_installs(k: Kernel) -> bool:
    """Whether this kernel takes an AES-GCM ESP SA (the QEMU lab's does, this host's not)."""
    spec = SaSpec(LOCAL, REMOTE, 0x30000, reqid=1, encr=GCM, direction="outbound")
    async with k:
        try:
            await k.add_sa(spec)
        except KernelError:
            return False
        await k.delete_sa(REMOTE, 0x30000)
        return True


if __name__ == "__main__":
    main()
