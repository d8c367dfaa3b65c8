"""pluto's pool of inbound SPIs reserved with ALLOCSPI (pyswan.pluto.spipool), on the
in-memory kernel, which keeps larval SAs and expires them as XFRM does."""

from __future__ import annotations

import asyncio
import ipaddress

from pyswan.ike.ikev2 import Engine
from pyswan.kernel.base import EncrAlg, ExpireEvent, SaSpec
from pyswan.kernel.memory import MemoryKernel
from pyswan.pluto.spipool import SpiPool

A = ipaddress.ip_address
US = A("192.0.2.2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _larval(kernel: MemoryKernel) -> dict[int, object]:
    return {sa.spec.spi: sa.spec for sa in kernel.sas() if sa.larval}


def test_take_claim_and_fill_in_the_larval_sa() -> None:
    async def main() -> None:
        kernel = MemoryKernel(seed=7)
        pool = SpiPool(kernel, size=3, acq_expires=30, sweep_interval=3600)
        assert pool.take(US) is None  # nothing reserved yet: the engine picks its own
        await _settle()
        larval = _larval(kernel)
        assert len(larval) == 3 and all(spi >= 0x1000 for spi in larval)
        assert {str(s.dst) for s in larval.values()} == {"192.0.2.2"}  # type: ignore[attr-defined]
        spi = pool.take(US)
        assert spi in larval
        assert pool.claim(A("192.0.2.9"), spi) is False  # another address: not this one
        await _settle()
        assert len(_larval(kernel)) == 4  # topped up: 3 waiting, 1 handed out
        spi2 = pool.take(US)
        assert pool.claim(US, spi2) is True and pool.claim(US, spi2) is False  # once
        sa = SaSpec("192.0.2.1", US, spi2, "esp", "tunnel", 16389,
                    encr=EncrAlg("rfc4106(gcm(aes))", bytes(36), 128), direction="inbound")
        await kernel.update_sa(sa)  # what the glue does with a claimed SPI
        assert spi2 not in _larval(kernel) and kernel.owned_counts() == (1, 0)
        await pool.close()
        # close() releases every reservation not filled in, the SA stays
        assert _larval(kernel) == {} and [s.spec.spi for s in kernel.sas()] == [spi2]
        assert pool.take(US) is None
    asyncio.run(main())


def test_old_reservations_are_replaced_and_forgotten() -> None:
    async def main() -> None:
        clock = Clock()
        kernel = MemoryKernel(seed=3, clock=clock, acq_expires=30)
        pool = SpiPool(kernel, size=2, clock=clock, sweep_interval=3600)
        assert pool.acq_expires == 30 and pool.fresh_for == 10
        pool.take(US)
        await _settle()
        first = set(_larval(kernel))
        handed = pool.take(US)
        await _settle()
        clock.now += 11  # waiting ones are too old to hand out now
        pool._sweep()
        await _settle()
        now_larval = set(_larval(kernel))
        assert handed in now_larval  # handed out: kept until the kernel's own limit
        assert len(now_larval - first) == 2 and (first - {handed}).isdisjoint(now_larval)
        clock.now += 20  # 31 s after it was reserved, never used: the kernel's limit
        pool._sweep()
        await _settle()
        assert handed not in _larval(kernel) and pool.claim(US, handed) is False
        await pool.close()
    asyncio.run(main())


def test_hard_expire_of_a_reservation_removes_it_from_the_pool() -> None:
    async def main() -> None:
        clock = Clock()
        kernel = MemoryKernel(seed=5, clock=clock, acq_expires=30)
        pool = SpiPool(kernel, size=1, clock=clock, sweep_interval=3600)
        kernel.add_event_handler(pool.on_kernel_event)
        pool.take(US)
        await _settle()
        (spi,) = _larval(kernel)
        clock.now += 30
        kernel.tick()  # the kernel drops it and says so
        assert pool.reserved() == [] and spi not in _larval(kernel)
        await pool.close()
    asyncio.run(main())


def test_primed_addresses_and_allocspi_refusal() -> None:
    async def main() -> None:
        kernel = MemoryKernel(seed=1)
        logged: list[str] = []
        pool = SpiPool(kernel, size=2, acq_expires=30, addresses=lambda: [US],
                       log=logged.append, sweep_interval=0.01)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(_larval(kernel)) == 2:
                break
        assert len(_larval(kernel)) == 2  # reserved before anyone asked
        assert pool.take(US) in _larval(kernel)
        other = A("2001:db8::1")
        kernel.fail_next("allocate_spi", count=5)
        assert pool.take(other) is None
        await _settle()
        assert any(line.startswith("cannot reserve inbound SPIs on 2001:db8::1: ESP SPI for "
                                   "::->2001:db8::1 (reqid 0): kernel refused allocate SPI")
                   for line in logged), logged
        asked = kernel.operations.count("allocate_spi")
        await asyncio.sleep(0.05)  # several sweeps: refused addresses are not asked again
        assert pool.take(other) is None
        await _settle()
        assert kernel.operations.count("allocate_spi") == asked
        await pool.close()
    asyncio.run(main())


def test_engine_takes_spis_from_the_source_and_falls_back() -> None:
    offered: list[int | None] = [0x2000, 0x2000, None, 0x10]
    asked: list[object] = []

    def source(local: object) -> int | None:
        asked.append(local)
        return offered.pop(0)

    eng = Engine(spi_source=source)
    assert eng.child_spi() == 0x2000
    second = eng.child_spi()  # the same SPI again is refused: a random one instead
    third = eng.child_spi()  # the source has none
    fourth = eng.child_spi()  # below pluto's range: refused
    assert len({0x2000, second, third, fourth}) == 4
    assert all(s >= 0x1000 for s in (second, third, fourth))
    assert asked == [None] * 4  # no IKE SA being processed: no local address


def test_memory_and_expire_event_shape() -> None:
    """The hard EXPIRE of a reservation carries what the pool keys on."""
    clock = Clock()
    kernel = MemoryKernel(seed=9, clock=clock, acq_expires=2)
    events: list[object] = []
    kernel.add_event_handler(events.append)
    spi = asyncio.run(kernel.allocate_spi("0.0.0.0", US, "esp"))
    clock.now += 2
    kernel.tick()
    (ev,) = events
    assert isinstance(ev, ExpireEvent) and (ev.hard, ev.spi, ev.dst) == (True, spi, US)
