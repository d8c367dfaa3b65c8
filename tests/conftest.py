"""Shared fixtures: real pluto daemons on loopback, driven by real whack/ipsec processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyswan_testlib import Pluto  # noqa: E402

os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture
def pluto_factory(tmp_path: Path):
    started: list[Pluto] = []

    def make(name: str = "p", **kw: object) -> Pluto:
        d = tmp_path / name
        d.mkdir()
        p = Pluto(d, **kw)  # type: ignore[arg-type]
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def pluto(pluto_factory) -> Pluto:
    p = pluto_factory("west").start()
    return p
