"""pluto's log: syslog (facility authpriv) by default, stderr or a file when asked.

Lines that belong to a whack request are also relayed to that whack with an RC code,
as Libreswan does. Debug lines start with `| `. Secrets only reach the log when the
`private` debug class is on (see `Logger.private`).
"""

from __future__ import annotations

import os
import sys
import syslog
import time
from typing import Protocol, TextIO


class WhackSink(Protocol):
    def send(self, rc: int, text: str) -> None: ...


class Logger:
    def __init__(
        self,
        *,
        stderr: bool = False,
        logfile: str | None = None,
        logtime: bool = True,
        logappend: bool = True,
        use_syslog: bool = True,
    ) -> None:
        self.logtime = logtime
        self._stamp_second = -1
        self._stamp = ""
        self.stream: TextIO | None = None
        self.logfile = logfile
        self.use_syslog = use_syslog and not stderr and not logfile
        self.debugging: set[str] = set()
        # lines held while one datagram or timer is processed (hold/release): written with
        # one write() instead of one system call per line
        self._held: list[str] | None = None
        if logfile:
            self.stream = open(logfile, "a" if logappend else "w", buffering=1)  # noqa: SIM115
        elif stderr:
            self.stream = sys.stderr
        if self.use_syslog:
            syslog.openlog("pluto", syslog.LOG_CONS | syslog.LOG_NDELAY | syslog.LOG_PID,
                           syslog.LOG_AUTHPRIV)

    # -- switches --------------------------------------------------------------------
    @property
    def dbg(self) -> bool:
        """True when base debugging is on (guards the cost of formatting debug lines)."""
        return "base" in self.debugging

    @property
    def private(self) -> bool:
        """True when secrets may be logged (debug class `private`)."""
        return "private" in self.debugging

    # -- output ----------------------------------------------------------------------
    def _emit(self, line: str, priority: int) -> None:
        if self.stream is not None:
            if self.logtime:
                t = time.time()
                second = int(t)
                if second != self._stamp_second:  # strftime once a second, not per line
                    self._stamp_second = second
                    self._stamp = time.strftime("%b %e %H:%M:%S", time.localtime(second))
                line = f"{self._stamp}.{int((t - second) * 1e6):06d}: {line}"
            held = self._held
            if held is not None:
                held.append(line)
                return
            try:
                self.stream.write(line + "\n")
            except (OSError, ValueError):
                pass
        elif self.use_syslog:
            syslog.syslog(priority, line)

    def log(self, text: str, whack: WhackSink | None = None, rc: int = 0) -> None:
        """A normal log line, also relayed to `whack` when one is attached."""
        self._emit(text, syslog.LOG_WARNING)
        if whack is not None:
            self._write_held()  # whack never sees a line before the log file has it
            whack.send(rc, text)

    def error(self, text: str, whack: WhackSink | None = None, rc: int = 0) -> None:
        self._emit(text, syslog.LOG_ERR)
        if whack is not None:
            self._write_held()
            whack.send(rc, text)

    def hold(self) -> bool:
        """Keep file lines back until ``release()`` (the caller must call it, with no
        await in between); False when already holding (a nested caller releases nothing)."""
        if self._held is not None or self.stream is None:
            return False
        self._held = []
        return True

    def release(self) -> None:
        """Write the held lines, in order, and stop holding."""
        self._write_held()
        self._held = None

    def _write_held(self) -> None:
        held = self._held
        if held and self.stream is not None:
            self._held = []
            try:
                self.stream.write("\n".join(held) + "\n")
            except (OSError, ValueError):
                pass

    def debug(self, text: str) -> None:
        if self.dbg:
            self._emit("| " + text, syslog.LOG_DEBUG)

    def reopen(self) -> None:
        """Reopen the log file (after logrotate)."""
        if self.logfile and self.stream is not None:
            self.stream.close()
            self.stream = open(self.logfile, "a", buffering=1)  # noqa: SIM115

    def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stderr:
            self.stream.close()
        self.stream = None


def sd_notify(message: str) -> None:
    """Tell systemd about our state when started as a notify service (NOTIFY_SOCKET)."""
    import socket

    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        pass
