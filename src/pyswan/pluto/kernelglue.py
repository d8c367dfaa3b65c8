"""Choosing the kernel interface: XFRM when root with netlink, else the in-memory kernel."""

from __future__ import annotations

import os
from typing import Any


def _xfrm_usable() -> bool:
    if os.geteuid() != 0:
        return False
    import socket

    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)  # NETLINK_XFRM
    except OSError:
        return False
    s.close()
    return True


async def open_kernel(pluto: Any) -> Any:
    choice = pluto.opts.kernel
    if choice == "auto":
        choice = "xfrm" if _xfrm_usable() else "memory"
    if choice == "xfrm":
        from ..kernel.xfrm import XfrmKernel

        kernel: Any = XfrmKernel()
    else:
        from ..kernel.memory import MemoryKernel

        kernel = MemoryKernel()
    await kernel.start()
    pluto.log.log(f"using kernel interface: {kernel.name}")
    return kernel
