"""Fixtures of the interop lab, and the matrix every run prints and writes to docs/interop.md."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import matrix  # noqa: E402
import netlab  # noqa: E402
from scenario import PairResult, kernel_has_esp  # noqa: E402

ROW_KEY = pytest.StashKey[matrix.Row]()
ROWS: list[matrix.Row] = []


def _lab_unusable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [p for p in ("ip", "tcpdump", "nft") if shutil.which(p) is None]
    if missing:
        return f"missing programs: {' '.join(missing)} (apt-get install iproute2 tcpdump nftables)"
    return None


@pytest.fixture(scope="session")
def interop_host() -> Iterator[bool]:
    """The host can run the lab; yields whether its kernel holds ESP SAs."""
    reason = _lab_unusable()
    if reason:
        pytest.skip(reason)
    netlab.cleanup_stale_namespaces()
    yield kernel_has_esp()
    netlab.cleanup_stale_namespaces()


@pytest.fixture
def record_cell(request: pytest.FixtureRequest) -> Callable[..., None]:
    """record_cell(cell, where, result=PairResult | None, notes=...): one matrix row.

    The row's result column comes from the test's outcome (pass, FAIL, xfail, skip).
    """

    def record(cell: str, where: str, result: PairResult | None = None, notes: str = "") -> None:
        if result is not None:
            main = [n for n in result.notes if n.startswith(("IKE", "Child", "ping", "auth"))]
            notes = "; ".join([*main, notes] if notes else main)
        request.node.stash[ROW_KEY] = matrix.Row(
            cell, where, "?", result.seconds if result else 0.0, notes, matrix.today()
        )

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    row = item.stash.get(ROW_KEY, None)
    if row is None or rep.when == "teardown" or (rep.when == "setup" and rep.passed):
        return
    if hasattr(rep, "wasxfail"):
        row.result = "xfail: " + (rep.wasxfail or "").removeprefix("reason: ")
        if rep.passed:
            row.result = "pass (xfail did not fail: " + (rep.wasxfail or "") + ")"
    elif rep.passed:
        row.result = "pass"
    elif rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        row.result = "skip: " + reason.removeprefix("Skipped: ")
    else:
        row.result = "FAIL"
    if not row.seconds:
        row.seconds = rep.duration
    if row not in ROWS:
        ROWS.append(row)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("interop matrix")
    width = max(len(r.cell) for r in ROWS)
    for r in ROWS:
        tr.write_line(f"{r.cell:<{width}}  {r.where:<5} {r.seconds:6.1f}s  {r.result}")
    tr.write_line(f"total {sum(r.seconds for r in ROWS):.1f}s in {len(ROWS)} cells")
    if os.environ.get("PYSWAN_INTEROP_NO_DOC"):
        return
    try:
        matrix.write(ROWS)
        tr.write_line(f"written to {matrix.DOC}")
    except OSError as e:  # a read-only checkout must not fail the run
        tr.write_line(f"could not write {matrix.DOC}: {e}")
