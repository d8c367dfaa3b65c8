"""The control socket: one whack request per connection, replies as `NNN text` lines.

A bad request (runt, wrong magic or version, oversized, garbled records) is answered
with RC_BADWHACKMESSAGE and the connection closed; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from ..whack import rc
from ..whack.protocol import HEADER, ProtocolError, Request, decode_body, decode_header, format_line

#: How long a client may take to deliver its request.
REQUEST_TIMEOUT = 10.0


class WhackSession:
    """The reply side of one whack connection; also a log sink for relayed lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False
        self.request: Request | None = None
        self.released = asyncio.get_running_loop().create_future()

    def send(self, code: int, text: str) -> None:
        if self.closed or self.writer.is_closing():
            return
        try:
            self.writer.write(format_line(code, text))
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def prompt(self, code: int, text: str, timeout: float = 60.0) -> str | None:
        """Ask whack a question (XAUTH); None if whack went away."""
        self.send(code, text)
        try:
            await self.writer.drain()
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            return None
        if not line:
            return None
        return line.decode(errors="replace").rstrip("\n")[:128]

    def release(self) -> None:
        """Let whack go: the reply is complete (or the request was asynchronous)."""
        if not self.released.done():
            self.released.set_result(None)


Handler = Callable[[Request, WhackSession], Awaitable[None]]


class ControlServer:
    def __init__(self, path: str, handler: Handler, log: Callable[[str], None]) -> None:
        self.path = path
        self.handler = handler
        self.log = log
        self.server: asyncio.base_events.Server | None = None
        self.sessions: set[WhackSession] = set()

    async def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)
        old = os.umask(0o177)  # the socket is created 0600: only root may whack pluto
        try:
            self.server = await asyncio.start_unix_server(
                self._serve, path=self.path, backlog=1024, limit=1 << 16
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def _read_request(self, reader: asyncio.StreamReader) -> Request:
        try:
            head = await asyncio.wait_for(reader.readexactly(HEADER.size), REQUEST_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            raise ProtocolError(f"ignoring runt message from whack: got {len(e.partial)} bytes") from None
        except TimeoutError:
            raise ProtocolError("ignoring message from whack: timed out reading it") from None
        length = decode_header(head)
        try:
            body = await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            raise ProtocolError(
                f"ignoring truncated message from whack: got {len(e.partial)} of {length} bytes"
            ) from None
        except TimeoutError:
            raise ProtocolError("ignoring message from whack: timed out reading it") from None
        return decode_body(body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = WhackSession(reader, writer)
        self.sessions.add(session)
        try:
            try:
                req = await self._read_request(reader)
            except ProtocolError as e:
                self.log(str(e))
                session.send(rc.RC_BADWHACKMESSAGE, str(e))
                return
            except (ConnectionError, OSError):
                return
            session.request = req
            task = asyncio.ensure_future(self.handler(req, session))
            # the handler may keep running (an exchange in flight) after releasing whack
            done, _ = await asyncio.wait({task, session.released}, return_when=asyncio.FIRST_COMPLETED)
            if task in done and task.exception() is not None:
                exc = task.exception()
                self.log(f"EXPECTATION FAILED: whack request {req.command!r} raised {exc!r}")
                session.send(rc.RC_INTERNAL_ERROR, f"EXPECTATION FAILED: internal error handling {req.command}: {exc}")
        finally:
            self.sessions.discard(session)
            session.closed = True
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                pass
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for s in list(self.sessions):
            s.release()
        if os.path.exists(self.path):
            try:
                os.unlink(self.path)
            except OSError:
                pass
