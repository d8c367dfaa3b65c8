"""Local interfaces and the IKE UDP sockets bound on them.

Like pluto, we bind one UDP socket per local address and port (the IKE port and the
NAT-T port) rather than a wildcard socket: the socket a datagram arrives on then names
the local address, and orientation can match connection ends against these addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IKE socket receive buffer: bursts of IKE_SA_INIT overflowed Libreswan's 208 KiB default
#: (performance-anchors.md); 4 MiB absorbs a burst of hundreds of initiations.
RCVBUF = 4 << 20
NON_ESP_MARKER = b"\0\0\0\0"


@dataclass
class Interface:
    """One bound (device, address, port) endpoint."""

    device: str
    addr: IPAddress
    port: int
    nat: bool  # the NAT-T port: IKE messages carry the 4-byte non-ESP marker
    transport: asyncio.DatagramTransport | None = field(default=None, repr=False)

    def status_line(self) -> str:
        return f"interface {self.device} {self.addr}:UDP/{self.port}{' (NAT)' if self.nat else ''}"

    def sendto(self, data: bytes, addr: tuple) -> None:
        if self.transport is None:
            return
        if self.nat:
            data = NON_ESP_MARKER + data
        self.transport.sendto(data, addr)


def discover(devices: list[str] | None = None, listen: str | None = None) -> list[tuple[str, IPAddress]]:
    """Local (device, address) pairs usable for IKE, filtered as pluto's options ask."""
    from pyroute2 import IPRoute

    found: list[tuple[str, IPAddress, int]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for msg in ipr.get_addr():
            raw = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if raw is None:
                continue
            addr = ipaddress.ip_address(raw)
            if addr.version == 6 and addr.is_link_local:
                continue
            dev = names.get(msg["index"], f"if{msg['index']}")
            if devices and dev not in devices:
                continue
            found.append((dev, addr, msg["prefixlen"]))
    if listen:
        want = ipaddress.ip_address(listen)
        exact = [(d, a) for d, a, _ in found if a == want]
        if exact:
            return exact[:1]
        # every address of a loopback prefix is local (127.0.0.2 on lo's 127.0.0.1/8):
        # this lets several daemons share one host without root
        for dev, addr, plen in found:
            if dev == "lo" and want in ipaddress.ip_network(f"{addr}/{plen}", strict=False):
                return [(dev, want)]
        return []
    result = [(d, a) for d, a, _ in found]
    result.sort(key=lambda da: (da[0] != "lo", da[0], da[1].version, int(da[1])))
    return result


class _IkeProtocol(asyncio.DatagramProtocol):
    def __init__(self, iface: Interface, deliver: Callable[[Interface, bytes, tuple], None]):
        self.iface = iface
        self.deliver = deliver

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.iface.nat:
            # on the NAT-T port only messages with the non-ESP marker are IKE;
            # a single 0xff byte is a NAT keepalive
            if len(data) < 4 or data[:4] != NON_ESP_MARKER:
                return
            data = data[4:]
        self.deliver(self.iface, data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do here
        pass


def _make_socket(addr: IPAddress, port: int) -> socket.socket:
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
                break
            except OSError:
                continue
        s.bind((str(addr), port))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


async def bind(
    loop: asyncio.AbstractEventLoop,
    device: str,
    addr: IPAddress,
    port: int,
    nat: bool,
    deliver: Callable[[Interface, bytes, tuple], None],
    prepare: Callable[[socket.socket, bool], None] | None = None,
) -> Interface:
    iface = Interface(device, addr, port, nat)
    sock = _make_socket(addr, port)
    if prepare is not None:
        try:
            prepare(sock, nat)
        except Exception:
            sock.close()
            raise
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _IkeProtocol(iface, deliver), sock=sock
    )
    iface.transport = transport
    return iface
