"""pluto --config: after start-up, act on every conn's auto= as `addconn --autoall` does."""

from __future__ import annotations

from typing import Any

from ..whack.protocol import Request
from .listen import listen


class _LogSink:
    """Start-up has no whack attached: replies only go to the log."""

    def send(self, rc: int, text: str) -> None:
        pass

    def release(self) -> None:
        pass


async def load_config_conns(p: Any) -> None:
    from ..auto.parser import ConnLoadError
    from .commands import cmd_initiate, cmd_route
    from .connadd import add_connection

    cfg = p.opts.config_file
    sink = _LogSink()
    triples: dict[str, list[tuple[str, str, str]]] = {}
    for n in cfg.conn_names:
        try:
            triples[n] = list(cfg.triples(n))
        except ConnLoadError as e:
            p.log.log(f"conn {n} did not load properly: {e}")
    autos = {n: auto_of(t) for n, t in triples.items()}
    add = [n for n in triples if autos[n] in ("add", "ondemand", "up", "keep")]
    for name in add:
        add_connection(p, name, triples[name], sink)
    await listen(p, sink)
    for name in add:
        if autos[name] == "ondemand":
            await cmd_route(p, Request("route", name=name), sink)  # type: ignore[arg-type]
    for name in add:
        if autos[name] == "up":
            conn = p.conns.get(name)
            if conn is not None:
                conn.up = True
            await cmd_initiate(p, Request("initiate", name=name, flags={"async"}), sink)  # type: ignore[arg-type]


_AUTO_ALIASES = {"route": "ondemand", "start": "up"}


def auto_of(triples: list[tuple[str, str, str]]) -> str:
    """A conn's auto= value, aliases folded (route -> ondemand, start -> up)."""
    value = "ignore"
    for end, key, v in triples:
        if not end and key == "auto":
            value = v
    return _AUTO_ALIASES.get(value, value)
