"""Inbound SPIs from the kernel (XFRM_MSG_ALLOCSPI), reserved ahead of time.

pluto takes the SPI of every inbound Child SA from the kernel: ALLOCSPI picks a free one in
0x1000-0xffffffff and holds it as a larval SA, and the negotiated SA is later written over
that larval SA with UPDSA.  The IKEv2 engine is sans-IO and cannot wait for the kernel while
it builds a message, so the glue keeps a few SPIs per local address reserved in advance and
the engine takes one synchronously (``Engine(spi_source=pool.take)``).  When the pool has
none ready (the first negotiation on an address, a burst), the engine falls back to a random
SPI and the SA is added with NEWSA, as before.

Larval SAs do not live for ever: the kernel deletes them after ``net.core.xfrm_acq_expires``
seconds (30 by default).  So SPIs waiting in the pool are replaced well before that, SPIs
handed out but never installed (failed negotiations) are deleted once they are that old, and
at shutdown every unused reservation is deleted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..kernel.base import IPAddress, KernelError

DEFAULT_ACQ_EXPIRES = 30  # net.core.xfrm_acq_expires default
_ANY4, _ANY6 = ipaddress.IPv4Address(0), ipaddress.IPv6Address(0)


def acq_expires_of(kernel: Any) -> int:
    """How long the kernel keeps a reserved SPI: MemoryKernel says; for XFRM the sysctl of
    the namespace pluto runs in."""
    value = getattr(kernel, "acq_expires", None)
    if isinstance(value, int) and value > 0:
        return value
    try:
        with open("/proc/sys/net/core/xfrm_acq_expires") as f:
            return max(1, int(f.read().strip()))
    except (OSError, ValueError):
        return DEFAULT_ACQ_EXPIRES


class SpiPool:
    """A few ALLOCSPI reservations per local address, refilled in the background.

    ``take(local)`` is the engine's synchronous hook; ``claim(local, spi)`` tells the kernel
    glue whether an inbound SA's SPI is a live reservation (install with UPDSA) or not (NEWSA).
    """

    def __init__(self, kernel: Any, *, size: int = 4, acq_expires: int | None = None,
                 addresses: Callable[[], Iterable[IPAddress]] | None = None,
                 log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sweep_interval: float = 1.0) -> None:
        self.kernel = kernel
        # the local addresses worth reserving on ahead of the first negotiation (those of
        # the oriented connections); others get a pool when first asked
        self.addresses = addresses
        self.sweep_interval = sweep_interval
        self.size = size
        self.acq_expires = acq_expires or acq_expires_of(kernel)
        # an SPI is handed out only while it has most of its life left, so that the
        # negotiation that takes it has time to finish before the kernel drops the larval SA
        self.fresh_for = max(1.0, self.acq_expires / 3)
        self.clock = clock
        self.log = log or (lambda text: None)
        self.ready: dict[IPAddress, deque[tuple[int, float]]] = {}
        self.handed: dict[tuple[IPAddress, int], float] = {}
        self.failed: dict[IPAddress, float] = {}  # address -> when ALLOCSPI last failed
        self._filling: set[IPAddress] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False
        self.stats = {"taken": 0, "missed": 0, "claimed": 0, "allocated": 0, "discarded": 0}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (engine tests): the pool stays empty, the engine picks SPIs
        self._arm_sweeper()

    # ---------------------------------------------------------------- the engine's hook

    def take(self, local: IPAddress | None) -> int | None:
        """A reserved inbound SPI on ``local``, or None (the engine then picks one itself)."""
        if local is None or self.closed:
            self.stats["missed"] += 1
            return None
        queue = self.ready.get(local)
        if queue is None:
            queue = self.ready[local] = deque()
        now = self.clock()
        spi = None
        while queue:
            got, at = queue.popleft()
            if now - at < self.fresh_for:
                spi = got
                self.handed[(local, got)] = at
                break
            self._spawn(self._delete(local, got))
        self._refill(local)
        self.stats["taken" if spi is not None else "missed"] += 1
        return spi

    # ---------------------------------------------------------------- the kernel glue's side

    def claim(self, local: IPAddress, spi: int) -> bool:
        """Whether ``spi`` on ``local`` is a reservation the kernel still holds: the inbound
        SA is then written over it with UPDSA (else added with NEWSA)."""
        if self.handed.pop((local, spi), None) is None:
            return False
        # even an old one: if the kernel has let it go, UPDSA says so (ESRCH) and the glue
        # adds the SA instead
        self.stats["claimed"] += 1
        return True

    def reserved(self) -> list[tuple[IPAddress, int]]:
        """Every reservation the pool holds (waiting or handed out)."""
        out = [(addr, spi) for addr, q in self.ready.items() for spi, _ in q]
        out.extend(self.handed)
        return out

    # ---------------------------------------------------------------- filling and ageing

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (engine tests): nothing to do in the background
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._arm_sweeper()

    def _refill(self, local: IPAddress) -> None:
        if self.closed or local in self._filling:
            return
        if len(self.ready.get(local, ())) >= self.size:
            return
        failed = self.failed.get(local)
        if failed is not None and self.clock() - failed < self.fresh_for:
            return  # the kernel refused lately: do not hammer it
        self._filling.add(local)
        self._spawn(self._fill(local))

    async def _fill(self, local: IPAddress) -> None:
        try:
            queue = self.ready.setdefault(local, deque())
            while not self.closed and len(queue) < self.size:
                # the peer is not known yet: reserve it from "anywhere" of the same family
                # (UPDSA finds the larval SA by destination, SPI and protocol only)
                anywhere = _ANY4 if local.version == 4 else _ANY6  # not parsed per SPI
                try:
                    spi = await self.kernel.allocate_spi(anywhere, local, "esp")
                except KernelError as e:
                    self.failed[local] = self.clock()
                    self.log(f"cannot reserve inbound SPIs on {local}: {e}")
                    return
                self.stats["allocated"] += 1
                if self.closed:
                    await self._delete(local, spi)
                    return
                queue.append((spi, self.clock()))
            self.failed.pop(local, None)
        finally:
            self._filling.discard(local)

    async def _delete(self, local: IPAddress, spi: int) -> None:
        self.stats["discarded"] += 1
        try:
            await self.kernel.delete_sa(local, spi, "esp", missing_ok=True)
        except KernelError as e:
            self.log(f"cannot release reserved SPI {spi:#010x} on {local}: {e}")

    def _arm_sweeper(self) -> None:
        if self._sweeper is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self.sweep_interval, self._sweep)

    def _sweep(self) -> None:
        """Replace waiting SPIs that are getting old, forget handed-out ones the kernel has
        dropped (deleting them, in case it has not), and top the pools up."""
        self._sweeper = None
        if self.closed:
            return
        if self.addresses is not None:
            try:
                for local in self.addresses():
                    if local is not None and local not in self.ready:
                        self.ready[local] = deque()
            except Exception as e:  # noqa: BLE001 - a bad hook must not stop the pool
                self.log(f"SPI pool: cannot list local addresses: {e!r}")
        now = self.clock()
        for local, queue in self.ready.items():
            keep = deque((spi, at) for spi, at in queue if now - at < self.fresh_for)
            for spi, at in queue:
                if now - at >= self.fresh_for:
                    self._spawn(self._delete(local, spi))
            self.ready[local] = keep
            self._refill(local)
        for key, at in list(self.handed.items()):
            if now - at >= self.acq_expires:
                del self.handed[key]
                self._spawn(self._delete(*key))
        self._arm_sweeper()

    def on_kernel_event(self, event: Any) -> None:
        """A hard EXPIRE of a reservation: the kernel dropped it; forget it."""
        spi = getattr(event, "spi", 0)
        if not spi or not getattr(event, "hard", False):
            return
        dst = event.dst
        queue = self.ready.get(dst)
        if queue is not None and any(s == spi for s, _ in queue):
            self.ready[dst] = deque((s, at) for s, at in queue if s != spi)
        self.handed.pop((dst, spi), None)

    async def close(self) -> None:
        """Stop refilling and delete every reservation not yet used."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._tasks:  # let reservations under way finish (they see ``closed``)
            await asyncio.wait(list(self._tasks), timeout=5.0)
        pending = self.reserved()
        self.ready.clear()
        self.handed.clear()
        for local, spi in pending:
            await self._delete(local, spi)
