"""pluto's log holds the lines of one datagram or timer and writes them with one write()
(Logger.hold/release): same lines, same order, and a line relayed to whack is in the log
file before whack gets it."""

from __future__ import annotations

from pathlib import Path

from pyswan.pluto.log import Logger


class _PeekingWhack:
    """A whack that reads the log file at the moment a line reaches it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[str, str]] = []

    def send(self, rc: int, text: str) -> None:
        self.seen.append((text, self.path.read_text()))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_held_lines_are_written_in_order_on_release(tmp_path: Path) -> None:
    path = tmp_path / "pluto.log"
    log = Logger(logfile=str(path), logtime=False, use_syslog=False)
    log.log("before")
    assert log.hold() is True
    assert log.hold() is False  # nested: the outer holder releases
    log.log("one")
    log.error("two")
    assert _lines(path) == ["before"]  # held back
    log.release()
    log.log("after")
    assert _lines(path) == ["before", "one", "two", "after"]
    log.close()


def test_a_line_for_whack_reaches_the_file_first(tmp_path: Path) -> None:
    path = tmp_path / "pluto.log"
    log = Logger(logfile=str(path), logtime=False, use_syslog=False)
    whack = _PeekingWhack(path)
    assert log.hold()
    log.log("quiet")
    log.log("loud", whack)
    log.log("later")
    log.release()
    assert whack.seen == [("loud", "quiet\nloud\n")]
    assert _lines(path) == ["quiet", "loud", "later"]
    log.close()


def test_without_a_file_nothing_is_held(tmp_path: Path) -> None:
    log = Logger(use_syslog=False)
    assert log.hold() is False
