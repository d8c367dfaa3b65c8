"""`whack --listen`: discover interfaces, bind the IKE and NAT-T ports, orient connections."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from ..kernel.base import KernelError
from .interfaces import bind, discover


async def listen(p: Any, w: Any) -> None:
    loop = asyncio.get_running_loop()
    p.log.log("listening for IKE messages", w)
    try:
        # pyroute2's synchronous IPRoute runs its own event loop: keep it off ours
        addrs = await loop.run_in_executor(None, discover, p.opts.interfaces or None, p.opts.listen)
    except OSError as e:
        p.log.log(f"cannot list interfaces: {e}", w)
        addrs = []
    bound = {(i.addr, i.port) for i in p.interfaces}

    def _prepare(sock: socket.socket, nat: bool) -> None:
        # IKE must never be caught by our own policies; the NAT-T socket hands
        # ESP-in-UDP to the kernel
        p.kernel.bypass_socket(sock)
        if nat:
            p.kernel.enable_espinudp(sock)

    ports = [(p.opts.ikeport, False)]
    if p.opts.natikeport != p.opts.ikeport:
        ports.append((p.opts.natikeport, True))
    for dev, addr in addrs:
        for port, nat in ports:
            if (addr, port) in bound:
                continue
            try:
                iface = await bind(loop, dev, addr, port, nat, p.on_datagram, _prepare)
            except (OSError, KernelError) as e:
                why = e.strerror if isinstance(e, OSError) else str(e)
                p.log.log(f"failed to add UDP interface {dev} {addr}:{port}: {why}", w)
                continue
            p.interfaces.append(iface)
            p.log.log(f"adding UDP interface {dev} {addr}:{port}", w)
    if not p.interfaces:
        p.log.log("no usable interfaces found: not listening", w)
    p.listening = bool(p.interfaces)
    for conn in p.conns.all_with_instances():
        if not conn.oriented:
            p.orient(conn)
    p.load_secrets(w)
