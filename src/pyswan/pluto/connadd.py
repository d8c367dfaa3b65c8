"""Adding a connection: keyword triples -> ConnectionConfig (one place: extract) -> database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..whack import rc
from .connections import Connection


def add_connection(p: Any, name: str, triples: list[tuple[str, str, str]], w: Any,
                   replace: bool = False) -> Connection | None:
    from ..auto.extract import ConnError, extract_conn

    if not name:
        w.send(rc.RC_BADWHACKMESSAGE, "connection has no name")
        return None
    family = _family(p, name)
    if family and not replace:
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
    for existing in family:
        _forget(p, existing, w)
    for warning in config.warnings:
        text = warning if warning.startswith("warning: ") else f'warning: "{name}": {warning}'
        p.log.log(text, w)
    for notice in getattr(config, "notices", ()):
        p.log.log(notice if notice.startswith(f'"{name}"') else f'"{name}": {notice}', w)
    conn = None
    for one in _expand_subnets(config):
        conn = Connection(one, p.conns.next_serial())
        p.conns.add(conn)
        oriented = p.orient(conn)
        kind = f"IKEv{one.ike_version}"
        if one.type in ("passthrough", "drop", "reject"):
            kind = one.type if one.type != "reject" else "drop"
        if oriented:
            p.log.log(f'"{one.name}": added oriented {kind} connection', w)
        else:
            reason = conn.orient_problem or "not oriented"
            p.log.log(f'"{one.name}": added unoriented {kind} connection ({reason})', w)
    return conn


def _family(p: Any, name: str) -> list[Connection]:
    """The connection called ``name``, or the ``name/NxM`` connections its
    leftsubnets=/rightsubnets= were expanded into."""
    conn = p.conns.get(name)
    if conn is not None:
        return [conn]
    return [c for c in p.conns.find(name) if c.name.startswith(name + "/")]


def _expand_subnets(config: Any) -> list[Any]:
    """leftsubnets={a,b}/rightsubnets=: one connection per pair of subnets, named
    ``name/LxR`` (L/R: 1-based index into each end's list, 0 for an end without one) and
    aliased ``name``, as Libreswan's whack_add does; all share one IKE SA."""
    left, right = config.left, config.right
    if not left.subnets_list and not right.subnets_list:
        return [config]

    def choices(end: Any) -> list[tuple[int, Any]]:
        if not end.subnets_list:
            return [(0, replace(end, subnets_list=()))]
        return [(i, replace(end, subnets=(sel,), subnets_list=()))
                for i, sel in enumerate(end.subnets_list, 1)]

    out = []
    for li, lend in choices(left):
        for ri, rend in choices(right):
            out.append(replace(config, name=f"{config.name}/{li}x{ri}", left=lend, right=rend,
                               connalias=(*config.connalias, config.name)))
    return out


def _forget(p: Any, conn: Connection, w: Any) -> None:
    """Replace semantics (ipsec add): the old definition and its SAs go first."""
    if p.states_of(conn) and p.engine is not None:
        p.engine.forget_connection(conn, w)
    p.conns.remove(conn)
