"""Adding a connection: keyword triples -> ConnectionConfig (one place: extract) -> database."""

from __future__ import annotations

from typing import Any

from ..whack import rc
from .connections import Connection


def add_connection(p: Any, name: str, triples: list[tuple[str, str, str]], w: Any,
                   replace: bool = False) -> Connection | None:
    from ..auto.extract import ConnError, extract_conn

    if not name:
        w.send(rc.RC_BADWHACKMESSAGE, "connection has no name")
        return None
    existing = p.conns.get(name)
    if existing is not None and not replace:
        p.log.log(f'attempt to redefine connection "{name}"', w, rc.RC_DUPNAME)
        return None
    try:
        config = extract_conn(name, triples, p.setup)
    except ConnError as e:
        text = str(e)
        if not text.startswith(f'"{name}"'):
            text = f'"{name}": failed to add connection: {text}'
        p.log.log(text, w, rc.RC_FATAL)
        return None
    if existing is not None:
        _forget(p, existing, w)
    for warning in config.warnings:
        text = warning if warning.startswith("warning: ") else f'warning: "{name}": {warning}'
        p.log.log(text, w)
    for notice in getattr(config, "notices", ()):
        p.log.log(notice if notice.startswith(f'"{name}"') else f'"{name}": {notice}', w)
    conn = Connection(config, p.conns.next_serial())
    p.conns.add(conn)
    oriented = p.orient(conn)
    kind = f"IKEv{config.ike_version}"
    if config.type in ("passthrough", "drop", "reject"):
        kind = config.type if config.type != "reject" else "drop"
    if oriented:
        p.log.log(f'"{name}": added oriented {kind} connection', w)
    else:
        reason = conn.orient_problem or "not oriented"
        p.log.log(f'"{name}": added unoriented {kind} connection ({reason})', w)
    return conn


def _forget(p: Any, conn: Connection, w: Any) -> None:
    """Replace semantics (ipsec add): the old definition and its SAs go first."""
    if p.states_of(conn) and p.engine is not None:
        p.engine.forget_connection(conn, w)
    p.conns.remove(conn)
