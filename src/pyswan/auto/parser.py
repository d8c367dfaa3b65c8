"""ipsec.conf: the file syntax, `include`, `%default` and `also=`.

Follows Libreswan 5.x lib/libswan/ipsecconf/{scanner.lex,parser.y,confread.c}:

* sections start in column 0 (`config setup`, `conn NAME`), body lines must
  start with white space; `include GLOB` (relative to the including file,
  depth limit 10) and an optional leading `version 2`;
* a value is `"quoted"`, `{braced}` or a run of non-blanks; `#` starts a
  comment at the start of a line or after a value;
* `x-foo=`/`X_foo=` keys are comments (warned about);
* an unknown keyword fails the whole file (`file:line: unrecognized 'conn'
  keyword 'foo'`); obsolete keywords and duplicates are warned about;
* `conn %default` values fill in whatever a conn lacks (several %default
  sections: the last value wins); `also=` expands another section in place,
  first definition wins, each section at most once per conn.

Values are not validated here: that is `pyswan.auto.extract`'s job.  Every
value keeps its file and line.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from pyswan.auto.keywords import (
    KeyMatch,
    KeywordError,
    Section,
    display_name,
    is_x_comment,
    lookup_conn,
    lookup_setup,
)

__all__ = ["Entry", "Diagnostic", "ConfigError", "ConnLoadError", "ConfigFile", "RootMap",
           "load_config", "parse_text", "MAX_INCLUDE_DEPTH"]

MAX_INCLUDE_DEPTH = 10
_GLOB_CHARS = re.compile(r"[*?\[]")


class Entry(NamedTuple):
    """One value: (end, keyword, value, file, line); keyword is canonical."""

    end: str
    keyword: str
    value: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem with a position; str() is Libreswan-like `file:line: message`."""

    file: str | None
    line: int | None
    severity: str  # "warning" | "error"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file is not None else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}{self.message}"


class ConfigError(Exception):
    """The file cannot be loaded; str() is the first error, `file:line: ...`."""

    def __init__(self, errors: list[Diagnostic]) -> None:
        first = errors[0]
        where = f"{first.file}:{first.line}: " if first.file is not None else ""
        super().__init__(f"{where}{first.message}")
        self.errors = errors
        self.file = first.file
        self.line = first.line
        self.message = first.message


class ConnLoadError(ConfigError):
    """A conn that cannot be assembled (missing also= target, conflicting values)."""


@dataclass
class _Raw:
    """A key=value line as written, before %default/also= processing."""

    end: str
    keyword: str  # canonical
    spelled: str  # display name as Libreswan prints it (leftsubnet, salifetime)
    value: str
    file: str
    line: int
    duplicate_ok: bool = False
    append: bool = False
    obsolete: bool = False


@dataclass
class _Section:
    kind: Section
    name: str
    file: str
    line: int
    entries: list[_Raw] = field(default_factory=list)


# ---------------------------------------------------------------------------
# lexing one line
# ---------------------------------------------------------------------------

_VALUE_RES = (
    re.compile(r'"([^"\n]*)"'),
    re.compile(r'\{([^"\n]*)\}'),
    re.compile(r'[^" \t\n]+'),
    re.compile(r'[^{} \t\n]+'),
)
_KEY_RE = re.compile(r'[^"= \t\n]+')


def _lex_value(text: str, pos: int) -> tuple[str, int] | None:
    """VALUE state: the longest of Libreswan's four value rules wins."""
    best: tuple[int, str] | None = None
    for rx in _VALUE_RES:
        m = rx.match(text, pos)
        if m is None:
            continue
        value = m.group(1) if m.groups() else m.group(0)
        if best is None or m.end() > best[0]:
            best = (m.end(), value)
    if best is None:
        return None
    return best[1], best[0]


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


class _Syntax(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _token_name(text: str, pos: int) -> str:
    if pos >= len(text):
        return "EOL"
    ch = text[pos]
    if ch == "=":
        return "EQUAL"
    if ch == '"':
        return "STRING"
    m = _KEY_RE.match(text, pos)
    return f"KEYWORD [{m.group(0)}]" if m else f"'{ch}'"


def _rest_is_comment(text: str, pos: int) -> None:
    """INITIAL state after a complete statement: blanks, then `#...` or EOL."""
    pos = _skip_blanks(text, pos)
    if pos < len(text) and text[pos] != "#":
        raise _Syntax(f"syntax error, unexpected {_token_name(text, pos)}, expecting EOL")


# ---------------------------------------------------------------------------
# the reader: lines -> sections, following includes
# ---------------------------------------------------------------------------

RootMap = Mapping[str, str] | Callable[[str], str] | None


class _Reader:
    def __init__(self, root_map: RootMap) -> None:
        self.root_map = root_map
        self.sections: list[_Section] = []
        self.setup: list[_Raw] = []
        self.diags: list[Diagnostic] = []
        self.files: list[str] = []
        self.current: _Section | None = None
        self.in_setup = False
        self.seen_section = False

    # --- diagnostics --------------------------------------------------

    def warn(self, file: str, line: int, message: str) -> None:
        self.diags.append(Diagnostic(file, line, "warning", message))

    def error(self, file: str, line: int, message: str) -> None:
        self.diags.append(Diagnostic(file, line, "error", message))

    # --- files --------------------------------------------------------

    def real_path(self, path: str) -> str:
        rm = self.root_map
        if rm is None:
            return path
        if callable(rm):
            return rm(path)
        best = ""
        for prefix in rm:
            if path.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return rm[best] + path[len(best):] if best else path

    def feed_file(self, logical: str, real: str, level: int) -> None:
        with open(real, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        self.feed_text(text, logical, level, os.path.dirname(logical) or ".")

    def feed_text(self, text: str, filename: str, level: int, directory: str) -> None:
        self.files.append(filename)
        for lineno, raw in enumerate(text.split("\n"), start=1):
            line = raw.rstrip("\r")
            try:
                self.feed_line(line, filename, lineno, level, directory)
            except _Syntax as e:
                self.error(filename, lineno, e.message)

    def include(self, pattern: str, file: str, line: int, level: int, directory: str) -> None:
        # an include ends the current section (grammar: section_or_include)
        self.current = None
        self.in_setup = False
        logical = pattern if os.path.isabs(pattern) else os.path.join(directory, pattern)
        real_pattern = self.real_path(logical)
        matches = sorted(glob.glob(real_pattern))
        if not matches:
            if not _GLOB_CHARS.search(pattern):
                self.warn(file, line, f"could not open include filename: '{logical}'")
            return
        if level >= MAX_INCLUDE_DEPTH:
            self.warn(file, line, f"including '{logical}' exceeds max inclusion depth of "
                                  f"{MAX_INCLUDE_DEPTH}")
            return
        for real in matches:
            # keep the logical (as-written) name for diagnostics
            shown = real
            if real_pattern != logical and not _GLOB_CHARS.search(pattern):
                shown = logical
            elif real_pattern != logical:
                rel = os.path.relpath(real, os.path.dirname(real_pattern))
                shown = os.path.join(os.path.dirname(logical), rel)
            try:
                self.feed_file(shown, real, level + 1)
            except OSError as e:
                self.warn(file, line, f"cannot open include file '{shown}' ('{pattern}') from "
                                      f"{file}:{line} level {level}: {e.strerror}")
            self.current = None
            self.in_setup = False

    # --- one line -----------------------------------------------------

    def feed_line(self, line: str, file: str, lineno: int, level: int, directory: str) -> None:
        stripped = line.lstrip(" \t")
        if stripped == "" or stripped.startswith("#"):
            return  # blank or comment line
        if line[0] in " \t":
            if self.current is None and not self.in_setup:
                raise _Syntax("syntax error, unexpected FIRST_SPACES")
            self.body_line(line, len(line) - len(stripped), file, lineno)
            return
        m = _KEY_RE.match(line)
        word = m.group(0) if m else ""
        if word == "config":
            pos = _skip_blanks(line, m.end() if m else 0)
            m2 = _KEY_RE.match(line, pos)
            if m2 is None or m2.group(0) != "setup":
                raise _Syntax("syntax error, unexpected "
                              f"{_token_name(line, pos)}, expecting SETUP")
            _rest_is_comment(line, m2.end())
            self.current = None
            self.in_setup = True
            self.seen_section = True
            return
        if word in ("conn", "include", "version"):
            pos = _skip_blanks(line, len(word))
            got = _lex_value(line, pos)
            if got is None:
                raise _Syntax("syntax error, unexpected EOL, expecting STRING")
            value, end = got
            _rest_is_comment(line, end)
            if word == "conn":
                kind = Section.CONN_DEFAULT if value == "%default" else Section.CONN
                self.current = _Section(kind, value, file, lineno)
                self.sections.append(self.current)
                self.in_setup = False
                self.seen_section = True
            elif word == "include":
                self.include(value, file, lineno, level, directory)
            else:
                if self.seen_section or level > 1:
                    raise _Syntax("syntax error, unexpected VERSION")
            return
        raise _Syntax(f"syntax error, unexpected {_token_name(line, 0)}")

    def body_line(self, line: str, pos: int, file: str, lineno: int) -> None:
        m = _KEY_RE.match(line, pos)
        if m is None:
            raise _Syntax(f"syntax error, unexpected {_token_name(line, pos)}, "
                          "expecting KEYWORD")
        key = m.group(0)
        pos = _skip_blanks(line, m.end())
        if is_x_comment(key):
            # COMMENT_VALUE: everything after '=' up to the newline, verbatim
            if pos < len(line) and line[pos] == "=":
                self.warn(file, lineno, f"X- style comment ignored: {key}={line[pos + 1:]}")
            else:
                self.warn(file, lineno, f"X- style comment ignored: {key}")
            return
        if pos >= len(line) or line[pos] != "=":
            raise _Syntax(f"syntax error, unexpected {_token_name(line, pos)}, "
                          f"expecting EQUAL [{key}]")
        pos = _skip_blanks(line, pos + 1)
        if pos >= len(line):
            value = ""
        else:
            got = _lex_value(line, pos)
            if got is None:
                raise _Syntax(f"syntax error, unexpected {_token_name(line, pos)}")
            value, pos = got
            _rest_is_comment(line, pos)
        self.keyval(key, value, file, lineno)

    def keyval(self, key: str, value: str, file: str, lineno: int) -> None:
        if self.in_setup:
            try:
                match = lookup_setup(key)
            except KeywordError as e:
                self.error(file, lineno, str(e))
                return
            # config setup: everything is kept, duplicates included; the
            # setup pass warns (in Libreswan's order) after parsing
            name = match.keyword.name if match.keyword else key.lower()
            spelled = match.alias or name
            self.setup.append(_Raw("", name, spelled, value, file, lineno,
                                   obsolete=match.keyword is None))
            return
        section = self.current
        assert section is not None
        try:
            match = lookup_conn(key, section.kind)
        except KeywordError as e:
            self.error(file, lineno, str(e))
            return
        if match.keyword is None:
            self.warn(file, lineno, f"obsolete keyword ignored: {match.spelled}={value}")
            return
        self.add_conn_value(section, match, value, file, lineno)

    def add_conn_value(self, section: _Section, match: KeyMatch, value: str, file: str,
                       lineno: int) -> None:
        kw = match.keyword
        assert kw is not None
        if not kw.duplicate_ok:
            for old in section.entries:
                # same keyword definition (an alias is a different one)
                if old.spelled == match.spelled:
                    self.warn(file, lineno, f"ignoring duplicate {section.kind.value} keyword: "
                                            f"{match.spelled}={value}")
                    return
        section.entries.append(_Raw(match.end, kw.name, match.spelled, value, file, lineno,
                                    duplicate_ok=kw.duplicate_ok, append=kw.append))


# ---------------------------------------------------------------------------
# the loaded configuration
# ---------------------------------------------------------------------------


class ConfigFile:
    """A parsed ipsec.conf with %default and also= applied.

    setup: the `config setup` values (Entry, end ""), last value of each
    keyword; conns: name -> entries in effect; conn_names in file order;
    warnings: printable `warning: file:line: ...` strings (diagnostics has
    the structured form); errors: fatal problems (non-empty only when loaded
    with strict=False); conn_errors: conns that cannot be assembled.
    """

    def __init__(self, path: str, reader: _Reader) -> None:
        self.path = path
        self.files = reader.files
        self.diagnostics: list[Diagnostic] = list(reader.diags)
        # errors that make Libreswan refuse the whole file
        self.file_errors = [d for d in reader.diags if d.severity == "error"]
        self._sections = reader.sections
        self._by_name: dict[str, _Section] = {}
        for s in reader.sections:
            self._by_name.setdefault(s.name, s)
        self.setup: list[Entry] = self._process_setup(reader.setup)
        self.conn_errors: dict[str, Diagnostic] = {}
        self.conns: dict[str, list[Entry]] = {}
        self._aliases: dict[str, list[str]] = {}
        self._expand_conns()

    # --- public API ---------------------------------------------------

    @property
    def warnings(self) -> list[str]:
        return [str(d) for d in self.diagnostics if d.severity == "warning"]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def conn_names(self) -> list[str]:
        return list(self.conns)

    def setup_pairs(self) -> list[tuple[str, str, str, int]]:
        """(keyword, value, file, line) for extract_setup()."""
        return [(e.keyword, e.value, e.file, e.line) for e in self.setup]

    def find(self, name: str) -> list[str]:
        """Conns called `name`, else every conn listing it in connalias=."""
        if name in self.conns or name in self.conn_errors:
            return [name]
        return list(self._aliases.get(name, []))

    def entries(self, name: str) -> list[Entry]:
        if name in self.conn_errors:
            raise ConnLoadError([self.conn_errors[name]])
        return self.conns[name]

    def triples(self, name: str) -> list[tuple[str, str, str]]:
        """The conn in wire form: (end, keyword, value), keyword canonical."""
        return [(e.end, e.keyword, e.value) for e in self.entries(name)]

    def position(self, name: str, end: str, keyword: str) -> tuple[str, int] | None:
        """Where a conn's value came from (for pointing errors at a line)."""
        for e in self.conns.get(name, []):
            if e.end == end and e.keyword == keyword:
                return e.file, e.line
        return None

    def also_targets(self) -> set[str]:
        """Every section name some section pulls in with also=."""
        return {r.value for s in self._sections for r in s.entries if r.keyword == "also"}

    def section_position(self, name: str) -> tuple[str, int] | None:
        s = self._by_name.get(name)
        return (s.file, s.line) if s else None

    def add_argv_conn(self, name: str, args: list[str]) -> list[tuple[str, str, str]]:
        """`ipsec addconn --name NAME key=value ...`: a conn from the command line.

        The conn gets this file's %default values and may use also=, as
        Libreswan's confread_load_argv() does.  Returns its triples and keeps
        it (replacing a file conn of the same name).  Raises ConfigError.
        """
        section = _Section(Section.CONN, name, "argv", 0)
        reader = _Reader(None)
        reader.current = section
        for i, arg in enumerate(args, start=1):
            key, eq, value = arg.partition("=")
            if not eq:
                raise ConfigError([Diagnostic(None, None, "error", f"missing '=' in {arg}")])
            reader.keyval(key, value, "argv", i)
        errors = [d for d in reader.diags if d.severity == "error"]
        if errors:
            raise ConfigError(errors)
        self.diagnostics.extend(reader.diags)
        self.conns.pop(name, None)
        self.conn_errors.pop(name, None)
        self._sections.append(section)
        self._by_name.setdefault(name, section)
        self._expand_one(section, self._defaults())
        return self.triples(name)

    # --- config setup -------------------------------------------------

    def _process_setup(self, raws: list[_Raw]) -> list[Entry]:
        out: dict[str, Entry] = {}
        for r in raws:
            if r.obsolete:
                self.diagnostics.append(Diagnostic(
                    r.file, r.line, "warning", f"obsolete keyword ignored: {r.spelled}={r.value}"))
                continue
            if r.keyword in out:
                self.diagnostics.append(Diagnostic(
                    r.file, r.line, "warning",
                    f"overriding earlier 'config setup' keyword with new value: "
                    f"{r.spelled}={r.value}"))
                del out[r.keyword]
            out[r.keyword] = Entry("", r.keyword, r.value, r.file, r.line)
        return list(out.values())

    # --- conns: %default and also= (confread.c translate_conn) ---------

    def _defaults(self) -> dict[tuple[str, str], _Raw]:
        defaults: dict[tuple[str, str], _Raw] = {}
        for s in self._sections:
            if s.kind is Section.CONN_DEFAULT:
                for r in s.entries:
                    defaults[(r.end, r.keyword)] = r  # later %default wins
        return defaults

    def _expand_conns(self) -> None:
        defaults = self._defaults()
        for s in self._sections:
            if s.kind is not Section.CONN or s.name in self.conns or s.name in self.conn_errors:
                continue
            self._expand_one(s, defaults)

    def _expand_one(self, s: _Section, defaults: dict[tuple[str, str], _Raw]) -> None:
        values: dict[tuple[str, str], _Raw] = {}
        error = self._translate(s, s, values, set(), [])
        if error is not None:
            self.conn_errors[s.name] = error
            self.diagnostics.append(error)
            return
        entries = [_entry(r) for r in values.values()]
        for key, r in defaults.items():
            if key not in values:
                entries.append(_entry(r))
        self.conns[s.name] = entries
        for e in entries:
            if e.keyword == "connalias":
                for alias in re.split(r"[\s,]+", e.value):
                    if alias and s.name not in self._aliases.get(alias, []):
                        self._aliases.setdefault(alias, []).append(s.name)

    def _translate(self, conn: _Section, section: _Section,
                   values: dict[tuple[str, str], _Raw], visited: set[str],
                   stack: list[str]) -> Diagnostic | None:
        visited.add(section.name)
        stack.append(section.name)
        try:
            for r in section.entries:
                if r.keyword == "also":
                    target = self._by_name.get(r.value)
                    if target is None:
                        return Diagnostic(r.file, r.line, "error",
                                          f"cannot find conn '{r.value}' needed by conn "
                                          f"'{conn.name}'")
                    if target.name in stack:
                        self.diagnostics.append(Diagnostic(
                            r.file, r.line, "warning",
                            f"also={r.value} in conn '{section.name}' loops back to conn "
                            f"'{r.value}'; ignored"))
                        continue
                    if target.name in visited:
                        continue  # each section once per conn
                    err = self._translate(conn, target, values, visited, stack)
                    if err is not None:
                        return err
                    continue
                key = (r.end, r.keyword)
                old = values.get(key)
                if old is None:
                    values[key] = r
                elif r.append:
                    values[key] = _Raw(r.end, r.keyword, r.spelled, f"{old.value} {r.value}",
                                       old.file, old.line, append=True)
                else:
                    # first definition wins; a different value is an error
                    # (confread.c: "only fatal if we try to change values")
                    text = (f"duplicate key '{display_name(r.end, r.keyword)}' in conn "
                            f"{conn.name} while processing def {section.name}")
                    if old.value != r.value:
                        return Diagnostic(r.file, r.line, "error", text)
                    self.diagnostics.append(Diagnostic(r.file, r.line, "warning", text))
            return None
        finally:
            stack.pop()


def _entry(r: _Raw) -> Entry:
    return Entry(r.end, r.keyword, r.value, r.file, r.line)


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


def load_config(path: str, *, root_map: RootMap = None, strict: bool = True) -> ConfigFile:
    """Load an ipsec.conf and everything it includes.

    root_map maps absolute include paths onto the file system, e.g.
    ``{"/testing/": "/corpus/testing/"}``.  With strict (the default) any
    error raises ConfigError (as Libreswan refuses the whole file); otherwise
    errors are kept in `ConfigFile.errors`.  A missing top-level file raises
    OSError.
    """
    reader = _Reader(root_map)
    reader.feed_file(path, path, 1)
    return _finish(path, reader, strict)


def parse_text(text: str, filename: str = "ipsec.conf", *, root_map: RootMap = None,
               strict: bool = True) -> ConfigFile:
    """Parse ipsec.conf text; includes resolve relative to filename's directory."""
    reader = _Reader(root_map)
    reader.feed_text(text, filename, 1, os.path.dirname(filename) or ".")
    return _finish(filename, reader, strict)


def _finish(path: str, reader: _Reader, strict: bool) -> ConfigFile:
    errors = [d for d in reader.diags if d.severity == "error"]
    if strict and errors:
        raise ConfigError(errors)
    return ConfigFile(path, reader)

