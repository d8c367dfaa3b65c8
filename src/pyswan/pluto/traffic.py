"""Traffic counters: the kernel counts ESP bytes; status output asks it first."""

from __future__ import annotations

from typing import Any

from ..kernel.base import KernelError


async def refresh(p: Any) -> None:
    """Update each established Child SA's in/out byte counts from the kernel's SAs."""
    if p.kernel is None:
        return
    for st in p.states:
        if st.kind != "child" or not st.established or st.peer is None:
            continue
        local = st.local[0] if st.local else st.conn.this.host_addr
        proto = st.protocol.lower()
        try:
            if st.spi_in:
                st.in_bytes = (await p.kernel.get_sa_counters(local, st.spi_in, proto)).bytes
            if st.spi_out:
                st.out_bytes = (await p.kernel.get_sa_counters(st.peer[0], st.spi_out, proto)).bytes
        except KernelError as e:
            p.log.debug(f"#{st.serial}: cannot read kernel counters: {e}")
