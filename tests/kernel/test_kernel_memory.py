"""MemoryKernel: every method, the kernel behaviours it imitates, and event injection."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from pyswan.kernel.base import (
    AcquireEvent,
    AuthAlg,
    EncrAlg,
    ExpireEvent,
    KernelError,
    Lifetime,
    Mark,
    PolicyExpireEvent,
    PolicySpec,
    SaSpec,
    Selector,
    Template,
    ipsec_policies,
    trap_policy,
)
from pyswan.kernel.memory import REFUSE_LIKE_THIS_HOST, MemoryKernel

T = TypeVar("T")
A = ipaddress.ip_address


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sa(spi: int, direction: str = "outbound", **kw: object) -> SaSpec:
    src, dst = ("10.9.0.1", "10.9.0.2") if direction == "outbound" else ("10.9.0.2", "10.9.0.1")
    base: dict[str, object] = dict(src=src, dst=dst, spi=spi, reqid=16389,
                                   encr=EncrAlg("rfc4106(gcm(aes))", bytes(36), 128),
                                   direction=direction, esn=True)
    base.update(kw)
    return SaSpec(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kernel(clock: Clock) -> MemoryKernel:
    k = MemoryKernel(clock=clock)
    run(k.start())
    return k


class TestSpi:
    def test_deterministic_in_range_and_larval(self, kernel: MemoryKernel) -> None:
        spis = [run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", "esp", 16389))
                for _ in range(50)]
        again = MemoryKernel(seed=0)
        assert spis == [run(again.allocate_spi("10.9.0.2", "10.9.0.1", "esp", 16389))
                        for _ in range(50)]
        assert len(set(spis)) == 50 and all(0x1000 <= s <= 0xFFFFFFFF for s in spis)
        larval = kernel.sas()[0]
        assert larval.larval and larval.spec.reqid == 16389 and larval.spec.encr is None

    def test_narrow_range_and_cpi(self, kernel: MemoryKernel) -> None:
        assert run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", min=0x2000, max=0x2000)) == 0x2000
        with pytest.raises(KernelError) as e:  # the only SPI is taken
            run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", min=0x2000, max=0x2000))
        assert e.value.errno == errno.ENOENT
        cpi = run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", "comp"))
        assert 256 <= cpi <= 61439
        with pytest.raises(KernelError, match="bad SPI range"):
            run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", "comp", max=0x10000))

    def test_update_fills_the_reserved_spi_but_add_collides(self, kernel: MemoryKernel) -> None:
        spi = run(kernel.allocate_spi("10.9.0.2", "10.9.0.1", "esp", 16389))
        with pytest.raises(KernelError) as e:
            run(kernel.add_sa(sa(spi, "inbound")))
        assert e.value.errno == errno.EEXIST
        assert (kernel.owned_counts(), kernel.owned_reserved()) == ((0, 0), 1)
        run(kernel.update_sa(sa(spi, "inbound")))
        installed = kernel.sas()[0]
        assert not installed.larval and installed.spec.encr is not None
        assert (kernel.owned_counts(), kernel.owned_reserved()) == ((1, 0), 0)

    def test_reserved_spi_expires_with_a_hard_expire(self, kernel: MemoryKernel,
                                                     clock: Clock) -> None:
        events: list[object] = []
        kernel.add_event_handler(events.append)
        spi = run(kernel.allocate_spi("10.9.0.2", "10.9.0.1"))
        clock.now += 29
        kernel.tick()
        assert events == []
        clock.now += 1
        kernel.tick()
        assert [(e.hard, e.spi) for e in events] == [(True, spi)]  # type: ignore[attr-defined]
        with pytest.raises(KernelError, match="xfrm_acq_expires") as err:
            run(kernel.update_sa(sa(spi, "inbound")))
        assert err.value.errno == errno.ESRCH


class TestSa:
    def test_add_get_delete(self, kernel: MemoryKernel, clock: Clock) -> None:
        run(kernel.add_sa(sa(0x1234)))
        counters = run(kernel.get_sa_counters("10.9.0.2", 0x1234))
        assert counters == (0, 0, int(clock.now), 0)
        spec, _ = run(kernel.get_sa("10.9.0.2", 0x1234))
        assert spec == sa(0x1234)
        run(kernel.delete_sa("10.9.0.2", 0x1234))
        assert kernel.sas() == []
        with pytest.raises(KernelError) as e:
            run(kernel.delete_sa("10.9.0.2", 0x1234))
        assert e.value.errno == errno.ESRCH and "ESP SA 0x00001234 ->10.9.0.2" in str(e.value)
        run(kernel.delete_sa("10.9.0.2", 0x1234, missing_ok=True))
        with pytest.raises(KernelError):
            run(kernel.get_sa_counters("10.9.0.2", 0x1234))

    def test_duplicate_and_update(self, kernel: MemoryKernel, clock: Clock) -> None:
        run(kernel.add_sa(sa(0x1234)))
        with pytest.raises(KernelError) as e:
            run(kernel.add_sa(sa(0x1234)))
        assert e.value.errno == errno.EEXIST
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 500, 5)
        run(kernel.update_sa(sa(0x1234, lifetime=Lifetime(hard_bytes=10**6))))
        assert run(kernel.get_sa_counters("10.9.0.2", 0x1234)).bytes == 500  # kept
        with pytest.raises(KernelError) as e:  # the direction must match, as with SA_DIR
            run(kernel.update_sa(sa(0x1234, "inbound", src="10.9.0.1", dst="10.9.0.2")))
        assert e.value.errno == errno.ESRCH

    def test_marks_make_distinct_sas(self, kernel: MemoryKernel) -> None:
        run(kernel.add_sa(sa(0x1234, mark=Mark(1))))
        run(kernel.add_sa(sa(0x1234, mark=Mark(2))))
        assert len(kernel.sas()) == 2
        run(kernel.delete_sa("10.9.0.2", 0x1234, mark=Mark(1)))
        assert [s.spec.mark for s in kernel.sas()] == [Mark(2)]

    def test_refuses_like_this_host(self, clock: Clock) -> None:
        k = MemoryKernel(clock=clock, refuse_protos=REFUSE_LIKE_THIS_HOST)
        with pytest.raises(KernelError) as e:
            run(k.add_sa(sa(0x1234)))
        assert e.value.errno == errno.EPROTONOSUPPORT
        assert str(e.value) == ("ESP SA 0x00001234 10.9.0.1->10.9.0.2: kernel refused add SA "
                                "(XFRM_MSG_NEWSA): Protocol not supported [EPROTONOSUPPORT]: "
                                "Requested type not found")
        assert k.sas() == [] and k.owned_counts() == (0, 0)
        # policies still install, as on the real host
        run(k.add_policy(PolicySpec("10.0.0.0/24", "10.1.0.0/24", priority=1)))

    def test_kernel_checks_come_first(self, kernel: MemoryKernel) -> None:
        with pytest.raises(KernelError) as e:
            run(kernel.add_sa(sa(0x1234, encr=None)))
        assert e.value.errno == errno.EINVAL
        assert "Missing required attribute for ESP" in e.value.detail

    def test_byte_limits_expire_soft_then_hard(self, kernel: MemoryKernel) -> None:
        events: list[ExpireEvent] = []
        kernel.add_event_handler(events.append)  # type: ignore[arg-type]
        run(kernel.add_sa(sa(0x1234, lifetime=Lifetime(soft_bytes=1000, hard_bytes=2000))))
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 999)
        assert events == []
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 1)
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 1)  # soft fires once
        assert [(e.hard, e.bytes) for e in events] == [(False, 1000)]
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 1000)
        assert [(e.hard, e.bytes, e.packets) for e in events][-1] == (True, 2001, 4)
        assert kernel.sas() == [] and kernel.owned_counts() == (0, 0)

    def test_time_limits(self, kernel: MemoryKernel, clock: Clock) -> None:
        events: list[ExpireEvent] = []
        kernel.add_event_handler(events.append)  # type: ignore[arg-type]
        run(kernel.add_sa(sa(0x1234, lifetime=Lifetime(soft_add_seconds=60,
                                                        hard_add_seconds=90))))
        clock.now += 59
        kernel.tick()
        clock.now += 1
        kernel.tick()
        kernel.tick()
        clock.now += 30
        kernel.tick()
        assert [e.hard for e in events] == [False, True]
        assert events[0].describe() == "ESP SA 0x00001234 10.9.0.1->10.9.0.2"

    def test_use_time_counts_last_use(self, kernel: MemoryKernel, clock: Clock) -> None:
        run(kernel.add_sa(sa(0x1234)))
        clock.now += 10
        kernel.add_traffic("10.9.0.2", 0x1234, "esp", 84)
        assert run(kernel.get_sa_counters("10.9.0.2", 0x1234)).use_time == int(clock.now)


class TestPolicies:
    def test_index_priority_order_replace(self, kernel: MemoryKernel) -> None:
        wide = PolicySpec("10.0.0.0/8", "10.0.0.0/8", priority=500)
        narrow = PolicySpec("10.1.0.0/16", "10.2.0.0/16", priority=100)
        same = PolicySpec("10.3.0.0/16", "10.4.0.0/16", priority=100)
        inbound = PolicySpec("10.2.0.0/16", "10.1.0.0/16", direction="in", priority=100)
        indexes = [run(kernel.add_policy(p)) for p in (wide, narrow, same, inbound)]
        assert indexes == [1, 9, 17, 24]  # (n << 3) | dir, as Linux numbers them
        assert [p.index for p in kernel.policies("out")] == [9, 17, 1]
        with pytest.raises(KernelError) as e:
            run(kernel.add_policy(wide))
        assert e.value.errno == errno.EEXIST
        # replacing keeps the index and moves it in the order
        assert run(kernel.replace_policy(PolicySpec("10.0.0.0/8", "10.0.0.0/8",
                                                    priority=50))) == 1
        assert [p.index for p in kernel.policies("out")] == [1, 9, 17]
        assert run(kernel.replace_policy(PolicySpec("10.5.0.0/16", "10.6.0.0/16"))) == 33

    def test_lookup_follows_priority(self, kernel: MemoryKernel) -> None:
        run(kernel.add_policy(PolicySpec("0.0.0.0/0", "0.0.0.0/0", action="block",
                                         priority=1000)))
        hole = PolicySpec("10.0.0.0/8", "10.0.0.0/8", 17, 0, 500, priority=10)
        run(kernel.add_policy(hole))
        assert kernel.lookup("10.0.0.1", "10.0.0.2", 17, 500, 500).priority == 10  # type: ignore[union-attr]
        assert kernel.lookup("10.0.0.1", "10.0.0.2", 6, 500, 80).action == "block"  # type: ignore[union-attr]
        assert kernel.lookup("10.0.0.1", "10.0.0.2", direction="in") is None

    def test_delete(self, kernel: MemoryKernel) -> None:
        sel = Selector("10.0.0.0/24", "10.1.0.0/24")
        run(kernel.add_policy(PolicySpec.for_selector(sel, mark=Mark(7))))
        with pytest.raises(KernelError) as e:  # the mark is part of the identity
            run(kernel.delete_policy(sel, "out"))
        assert e.value.errno == errno.ENOENT and str(e.value).startswith(
            "out policy 10.0.0.0/24 -0-> 10.1.0.0/24: kernel refused delete policy")
        run(kernel.delete_policy(sel, "out", Mark(7)))
        run(kernel.delete_policy(sel, "out", Mark(7), missing_ok=True))
        assert kernel.policies() == []

    def test_optional_tunnel_template_refused_outbound(self, kernel: MemoryKernel) -> None:
        t = Template("comp", "tunnel", 1, A("10.0.0.1"), A("10.0.0.2"), optional=True)
        with pytest.raises(KernelError, match="optional template"):
            run(kernel.add_policy(PolicySpec("10.0.0.0/24", "10.1.0.0/24", templates=(t,))))
        run(kernel.add_policy(PolicySpec("10.0.0.0/24", "10.1.0.0/24", direction="in",
                                         templates=(t,))))

    def test_child_sa_install(self, kernel: MemoryKernel) -> None:
        sel = Selector("192.0.1.0/24", "192.0.2.0/24")
        for p in ipsec_policies(sel, "10.9.0.1", "10.9.0.2", reqid=16388, priority=1757393):
            run(kernel.replace_policy(p))
        assert sorted(p.direction for p in kernel.policies()) == ["fwd", "in", "out"]
        assert kernel.owned_counts() == (0, 3)


class TestPackets:
    def test_clear_pass_block(self, kernel: MemoryKernel) -> None:
        assert kernel.send_packet("10.0.0.1", "10.1.0.1") == "clear"
        run(kernel.add_policy(PolicySpec("10.0.0.1/32", "10.1.0.1/32", priority=5)))
        assert kernel.send_packet("10.0.0.1", "10.1.0.1") == "pass"
        run(kernel.add_policy(PolicySpec("10.0.0.1/32", "10.1.0.1/32", 17, priority=1,
                                         action="block")))
        assert kernel.send_packet("10.0.0.1", "10.1.0.1", 17) == "block"

    def test_trap_acquires_once_then_carries(self, kernel: MemoryKernel, clock: Clock) -> None:
        events: list[AcquireEvent] = []
        kernel.add_event_handler(events.append)  # type: ignore[arg-type]
        sel = Selector("192.0.1.0/24", "192.0.2.0/24")
        index = run(kernel.add_policy(trap_policy(sel, reqid=16389, priority=100)))
        assert kernel.send_packet("192.0.1.5", "192.0.2.9", 17, 1234, 53) == "acquire"
        assert kernel.send_packet("192.0.1.5", "192.0.2.9", 17, 1234, 53) == "acquire"
        assert len(events) == 1
        ev = events[0]
        assert (ev.policy_index, ev.reqid, ev.proto) == (index, 16389, "esp")
        assert ev.selector == Selector("192.0.1.5/32", "192.0.2.9/32", 17, 1234, 53)
        # once the outbound SA exists the packet goes through it
        run(kernel.add_sa(sa(0xABCD, src="10.9.0.1", dst="10.9.0.2")))
        assert kernel.send_packet("192.0.1.5", "192.0.2.9", 17, 1234, 53, size=84) == "ipsec"
        assert run(kernel.get_sa_counters("10.9.0.2", 0xABCD))[:2] == (84, 1)
        # a new flow after the SA is gone acquires again, once the old one has expired
        run(kernel.delete_sa("10.9.0.2", 0xABCD))
        clock.now += 31
        kernel.tick()
        assert kernel.send_packet("192.0.1.5", "192.0.2.9", 17, 1234, 53) == "acquire"
        assert len(events) == 2


class TestEvents:
    def test_injection(self, kernel: MemoryKernel) -> None:
        seen: list[object] = []
        kernel.add_event_handler(seen.append)
        sel = Selector("10.0.0.1/32", "10.1.0.1/32", 6, 40000, 443)
        acq = kernel.inject_acquire(sel, policy_index=9, reqid=3, seq=77)
        assert acq.src == A("10.0.0.1") and acq.dst == A("10.1.0.1")
        run(kernel.add_sa(sa(0x1234)))
        exp = kernel.inject_expire("10.9.0.2", 0x1234, hard=False)
        assert kernel.sas() != []
        kernel.inject_expire("10.9.0.2", 0x1234, hard=True)
        assert kernel.sas() == []
        run(kernel.add_policy(PolicySpec.for_selector(sel)))
        pol = kernel.inject_polexpire(sel, "out")
        assert kernel.policies() == [] and pol.index == 1
        assert seen[0] is acq and seen[1] == exp and seen[-1] == pol
        assert isinstance(seen[2], ExpireEvent) and seen[2].hard
        kernel.remove_event_handler(seen.append)
        kernel.inject_acquire(sel)
        assert len(seen) == 4

    def test_policy_lifetime(self, kernel: MemoryKernel, clock: Clock) -> None:
        seen: list[PolicyExpireEvent] = []
        kernel.add_event_handler(seen.append)  # type: ignore[arg-type]
        run(kernel.add_policy(PolicySpec("10.0.0.1/32", "10.1.0.1/32", lifetime=Lifetime(
            soft_add_seconds=10, hard_add_seconds=20))))
        clock.now += 10
        kernel.tick()
        clock.now += 10
        kernel.tick()
        assert [e.hard for e in seen] == [False, True] and kernel.policies() == []

    def test_async_and_broken_handlers(self, caplog: pytest.LogCaptureFixture) -> None:
        k = MemoryKernel()
        got: list[object] = []

        async def handler(event: object) -> None:
            got.append(event)

        def broken(event: object) -> None:
            raise RuntimeError("boom")

        async def main() -> None:
            k.add_event_handler(broken)
            k.add_event_handler(handler)
            k.inject_acquire(Selector("10.0.0.1/32", "10.1.0.1/32"))
            await asyncio.sleep(0)

        run(main())
        assert len(got) == 1 and "failed" in caplog.text


class TestHousekeeping:
    def test_fail_next(self, kernel: MemoryKernel) -> None:
        kernel.fail_next("add_policy", errno.ENOMEM, "simulated", count=2)
        spec = PolicySpec("10.0.0.0/24", "10.1.0.0/24")
        for _ in range(2):
            with pytest.raises(KernelError) as e:
                run(kernel.add_policy(spec))
            assert e.value.errno == errno.ENOMEM and e.value.detail == "simulated"
        run(kernel.add_policy(spec))
        assert kernel.operations == ["add_policy"] * 3

    def test_flush_owned_and_all(self, kernel: MemoryKernel) -> None:
        run(kernel.poke_holes())
        run(kernel.add_sa(sa(0x1234)))
        spi = run(kernel.allocate_spi("10.9.0.2", "10.9.0.1"))
        # the reserved SPI is owned (flush_owned removes it) but is no installed SA
        assert kernel.owned_counts() == (1, 6) and kernel.owned_reserved() == 1 and spi
        run(kernel.flush_owned())
        assert kernel.owned_counts() == (0, 0) and kernel.sas() == [] and kernel.policies() == []
        assert kernel.owned_reserved() == 0
        run(kernel.add_sa(sa(0x1234)))
        run(kernel.flush_all())
        assert kernel.sas() == [] and kernel.owned_counts() == (0, 0)

    def test_flush_owned_reports_refusals_after_trying_all(self, kernel: MemoryKernel) -> None:
        run(kernel.add_sa(sa(0x1234)))
        run(kernel.add_sa(sa(0x1235)))
        kernel.fail_next("delete_sa", errno.EBUSY)
        with pytest.raises(KernelError, match=r"delete SA: Device or resource busy \[EBUSY\]"):
            run(kernel.flush_owned())
        assert len(kernel.sas()) == 1  # the other one went

    def test_holes_and_sockets(self, kernel: MemoryKernel) -> None:
        run(kernel.poke_holes())
        assert len(kernel.policies()) == 6
        run(kernel.plug_holes())
        assert kernel.policies() == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            kernel.bypass_socket(s)
            kernel.enable_espinudp(s)
            assert s.fileno() in kernel.bypassed_sockets & kernel.espinudp_sockets

    def test_name_and_lifecycle(self) -> None:
        async def main() -> MemoryKernel:
            async with MemoryKernel() as k:
                assert k.started  # type: ignore[attr-defined]
            return k  # type: ignore[return-value]

        k = run(main())
        assert k.name == "memory" and not k.started

    def test_auth_only_esp_and_ah(self, kernel: MemoryKernel) -> None:
        auth = AuthAlg("hmac(sha1)", bytes(20), 96)
        run(kernel.add_sa(sa(0x10, encr=None, auth=auth)))
        run(kernel.add_sa(sa(0x11, proto="ah", encr=None, auth=auth, esn=False)))
        assert len(kernel.sas()) == 2
