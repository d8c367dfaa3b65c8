"""`ipsec addconn` / `ipsec add`: read ipsec.conf and send connections to pluto.

A connection travels as its keyword triples (`ConfigFile.triples`); pluto validates the
values (`pyswan.auto.extract`), so what pluto accepts is decided in one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..whack import rc
from ..whack.client import WhackProblem, send_request
from ..whack.protocol import Request

DEFAULT_CONFIG = "/etc/ipsec.conf"
EXIT_USAGE, EXIT_CONFIG = 10, 3

Emit = Callable[[int, str], None]


def config_path(config: str | None) -> str:
    return config or os.environ.get("IPSEC_CONF") or DEFAULT_CONFIG


def load(config: str | None, err: Callable[[str], None]):  # type: ignore[no-untyped-def]
    """Load ipsec.conf; None (after printing Libreswan's message) when it cannot load."""
    from .parser import ConfigError, load_config

    path = config_path(config)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        err(f"cannot load config '{path}': {e}")
        return None
    except OSError as e:
        err(f"cannot load config '{path}': {e.strerror}")
        return None
    for warning in cfg.warnings:
        err(warning)
    return cfg


def add_conns(cfg, names: list[str], ctl: str, emit: Emit, err: Callable[[str], None],  # type: ignore[no-untyped-def]
              auto: str | None = None) -> int:
    """Send each named conn (aliases tried) to pluto with replace semantics."""
    from .parser import ConnLoadError

    status = 0
    for name in names:
        found = cfg.find(name)
        if not found:
            err(f"conn '{name}': not found (tried aliases)")
            status = status or rc.RC_UNKNOWN_NAME
            continue
        for conn_name in found:
            try:
                triples = list(cfg.triples(conn_name))
            except ConnLoadError as e:
                err(f"conn {conn_name} did not load properly: {e}")
                status = status or rc.RC_FATAL
                continue
            req = Request("add", name=conn_name, flags={"replace"}, conn=triples)
            try:
                code = send_request(ctl, req, emit)
            except WhackProblem as e:
                err(f"whack: {e}")
                return rc.RC_WHACK_PROBLEM
            status = status or code
    return status


def autoall(cfg, ctl: str, emit: Emit, err: Callable[[str], None]) -> int:  # type: ignore[no-untyped-def]
    """pluto's start-up pass: add, listen, route ondemand conns, initiate auto=up conns."""
    from ..pluto.startup import auto_of
    from .parser import ConnLoadError

    autos: dict[str, str] = {}
    for n in cfg.conn_names:
        try:
            autos[n] = auto_of(list(cfg.triples(n)))
        except ConnLoadError as e:
            err(f"conn {n} did not load properly: {e}")
    wanted = [n for n in autos if autos[n] in ("add", "ondemand", "up", "keep")]
    status = add_conns(cfg, wanted, ctl, emit, err)
    try:
        send_request(ctl, Request("listen"), emit)
        for n in wanted:
            if autos[n] == "ondemand":
                send_request(ctl, Request("route", name=n), emit)
        for n in wanted:
            if autos[n] == "up":
                send_request(ctl, Request("initiate", name=n, flags={"async"}), emit)
    except WhackProblem as e:
        err(f"whack: {e}")
        return rc.RC_WHACK_PROBLEM
    return status


def list_by_auto(cfg, which: str) -> str:  # type: ignore[no-untyped-def]
    from ..pluto.startup import auto_of
    from .parser import ConnLoadError

    names = []
    for n in cfg.conn_names:
        try:
            a = auto_of(list(cfg.triples(n)))
        except ConnLoadError:
            continue
        if which == "all" or (which == "add" and a == "add") or (which == "route" and a == "ondemand") \
                or (which == "start" and a == "up") or (which == "ignore" and a == "ignore"):
            names.append(n)
    return " ".join(names)


def _stderr(msg: str) -> None:
    sys.stderr.write(msg + "\n")
