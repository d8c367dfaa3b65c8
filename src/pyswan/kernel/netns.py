"""Network namespaces for tests, benchmarks and a daemon that wants its own.

A :class:`NetNS` is a named namespace made with iproute2 (``ip netns add``), so that
``ip -n NAME xfrm ...`` can inspect it.  Nothing here moves the calling process into the
namespace: commands run through ``ip -n``/``ip netns exec``, and sockets are opened inside it
by pyroute2's ``netns.create_socket`` (a forked child enters the namespace and hands the socket
back).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from types import TracebackType


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, XFRM)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not found"
    name = "pyswan-probe-" + secrets.token_hex(4)
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class NetNS:
    """A uniquely named network namespace, deleted on :meth:`delete` / context exit."""

    def __init__(self, prefix: str = "pyswan-k-") -> None:
        self.name = prefix + secrets.token_hex(4)
        self._alive = False

    def create(self) -> NetNS:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self._alive = True
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        if self._alive:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self._alive = False

    def __enter__(self) -> NetNS:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.delete()

    def ip(self, *args: str, check: bool = True) -> str:
        """Run ``ip -n NAME args...`` and return its output."""
        done = subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (``ip netns exec``)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                              text=True, check=check)

    def sysctl(self, key: str, value: str | int) -> None:
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket that lives in the namespace."""
        from pyroute2 import netns as pyroute2_netns

        return pyroute2_netns.create_socket(self.name, family, type, proto, flags=0)

    def veth_pair(self, left: str, right: str, left_addr: str,
                  right_addr: str | None = None) -> None:
        """Two ends of a veth pair, both inside this namespace and up; ``left`` gets
        ``left_addr`` (a prefix, e.g. 10.1.0.1/24), ``right`` an address only if given."""
        self.ip("link", "add", left, "type", "veth", "peer", "name", right)
        self.ip("addr", "add", left_addr, "dev", left)
        if right_addr:
            self.ip("addr", "add", right_addr, "dev", right)
        self.ip("link", "set", left, "up")
        self.ip("link", "set", right, "up")
