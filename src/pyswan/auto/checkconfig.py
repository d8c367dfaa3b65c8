"""`ipsec checkconfig` / `ipsec auto --checkconfig`: every problem, not just the first.

Parses the file (and its includes), validates `config setup`, then runs
`extract_conn()` on each conn exactly as pluto would on `ipsec add`.  A file
with syntax errors or unknown keywords stops after those (Libreswan refuses
the whole file).
Conns that only serve as `also=` fragments (referenced by another conn and
without an `auto=` other than ignore) are not extracted on their own: they
are usually incomplete by design.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyswan.auto.extract import ConnError, SetupError, extract_conn, extract_setup
from pyswan.auto.parser import ConfigFile, RootMap, load_config

__all__ = ["Problem", "check", "check_config"]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str | None
    line: int | None
    severity: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file is not None and self.line else \
            f"{self.file}: " if self.file is not None else ""
        return f"{where}{self.severity}: {self.message}"


def check(path: str, *, root_map: RootMap = None, fragments: bool = False) -> list[Problem]:
    """All problems in ipsec.conf at `path`, in file order per phase.

    fragments=True also extracts conns that are only used through also=.
    """
    try:
        cfg = load_config(path, root_map=root_map, strict=False)
    except OSError as e:
        return [Problem(path, None, "error", f"could not open '{path}': {e.strerror}")]
    return check_config(cfg, fragments=fragments)


def check_config(cfg: ConfigFile, *, fragments: bool = False) -> list[Problem]:
    problems = [Problem(d.file, d.line, d.severity, d.message) for d in cfg.diagnostics]
    if cfg.file_errors:
        # Libreswan refuses such a file outright; conns would be judged on
        # half-parsed sections, so stop at the file's own errors.
        return problems

    # config setup: every bad value, then the setup the conns are checked with
    good = []
    for pair in cfg.setup_pairs():
        try:
            extract_setup([pair])
        except SetupError as e:
            problems.append(Problem(e.file, e.line, "error", e.message))
            continue
        good.append(pair)
    setup = extract_setup(good)
    for w in setup.warnings:
        pos = next(((f, ln) for k, _, f, ln in good if k == "plutodebug"), (None, None))
        problems.append(Problem(pos[0], pos[1], "warning", w))

    used_by_also = cfg.also_targets()
    for name in cfg.conn_names:
        if not fragments and name in used_by_also and _auto(cfg, name) in (None, "ignore"):
            continue
        head = cfg.section_position(name) or (None, None)
        try:
            conn = extract_conn(name, cfg.triples(name), setup)
        except ConnError as e:
            pos = cfg.position(name, e.end, e.keyword) if e.keyword else None
            file, line = pos or head
            for w in e.warnings:
                problems.append(Problem(head[0], head[1], "warning", f'"{name}": {w}'))
            problems.append(Problem(file, line, "error", str(e)))
            continue
        for w in conn.warnings:
            problems.append(Problem(head[0], head[1], "warning", f'"{name}": {w}'))
    return problems


def _auto(cfg: ConfigFile, name: str) -> str | None:
    for e in cfg.conns[name]:
        if e.keyword == "auto" and e.end == "":
            return e.value
    return None

