"""ipsec.secrets: PSK, XAUTH and PPK secrets.

Follows Libreswan's lib/libswan/secrets.c and lex.c: a record starts in
column 0 and continues on indented lines; `INDEX ... : KIND SECRET`;
`include GLOB` (relative to the including file, depth 10); `#` comments;
secrets as `"quoted"`, `'quoted'`, `0x` hex, `0s` base64 or `0t` text.
`: RSA ...` and other kinds are warned about and ignored.

Secret bytes live only inside `Secret` objects, whose repr/str hide them;
no diagnostic ever quotes a secret.

Libreswan skips a bad record and carries on; pyswan does the same but
`load_secrets(strict=True)` (the default) then raises `SecretsError`, so a
reload can keep the previous secrets (all or nothing).
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyswan.auto.values import (
    ID,
    ID_DER_ASN1_DN,
    ID_FQDN,
    ID_IPV4_ADDR,
    ID_IPV6_ADDR,
    ID_NONE,
    ID_USER_FQDN,
    InvalidValue,
    parse_id,
)

__all__ = ["Secret", "SecretEntry", "Secrets", "SecretsError", "SecretsDiagnostic",
           "load_secrets", "parse_secrets_text", "MAX_INCLUDE_DEPTH", "WEAK_PSK_LENGTH"]

MAX_INCLUDE_DEPTH = 10
WEAK_PSK_LENGTH = 8
_GLOB_CHARS = re.compile(r"[*?\[]")


class Secret:
    """Secret bytes that never show up in repr()/str()/logs."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __bytes__(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret(<hidden, {len(self._value)} bytes>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """One record: kind PSK|XAUTH|PPKS, its indices, and the secret."""

    kind: str
    ids: tuple[ID, ...]
    secret: Secret
    file: str
    line: int
    ppk_id: bytes | None = None  # PPKS only


@dataclass(frozen=True, slots=True)
class SecretsDiagnostic:
    file: str
    line: int
    severity: str  # "warning" | "error"
    message: str

    def __str__(self) -> str:
        return f'"{self.file}" line {self.line}: {self.message}'


class SecretsError(Exception):
    """Errors in the secrets files; str() names the first `"file" line N`."""

    def __init__(self, errors: list[SecretsDiagnostic]) -> None:
        super().__init__(str(errors[0]))
        self.errors = errors


# ---------------------------------------------------------------------------
# lexing (lex.c): records of tokens
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Tok:
    text: str
    quote: str  # "", '"', "'" or "`"
    line: int


@dataclass(slots=True)
class _Record:
    tokens: list[_Tok]
    line: int


def _tokens_of_line(line: str, lineno: int, notes: list[tuple[int, str]]) -> Iterator[_Tok]:
    p, n = 0, len(line)
    while p < n:
        ch = line[p]
        if ch in " \t":
            p += 1
            continue
        if ch == "#":
            return
        if ch in "\"'`":
            end = line.find(ch, p + 1)
            if end < 0:
                notes.append((lineno, "unterminated string"))
                yield _Tok(line[p:], "", lineno)
                return
            yield _Tok(line[p + 1:end], ch, lineno)
            p = end + 1
            continue
        if line.startswith("0t", p):
            yield _Tok(line[p:], "", lineno)  # 0t... runs to end of line
            return
        q = p
        while q < n and line[q] not in " \t":
            q += 1
        if q - 1 > p and line[q - 1] == ":":
            q -= 1  # separate a trailing ':' from the token
        yield _Tok(line[p:q], "", lineno)
        p = q


def _records(text: str, notes: list[tuple[int, str]]) -> Iterator[_Record]:
    current: _Record | None = None
    leading = True
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        toks = list(_tokens_of_line(line, lineno, notes))
        if not toks:
            continue
        if line[0] not in " \t":
            if current is not None:
                yield current
            current = _Record(toks, lineno)
            leading = False
        elif current is not None:
            current.tokens.extend(toks)
        elif leading:
            notes.append((lineno, "file starts with indentation (continuation notation)"))
            leading = False
    if current is not None:
        yield current


# ---------------------------------------------------------------------------
# secret values (ttochunk base 0)
# ---------------------------------------------------------------------------


def _ttodata(tok: str) -> bytes:
    prefix = tok[:2].lower()
    body = tok[2:]
    if prefix == "0x":
        digits = body.replace("_", "")
        if not re.fullmatch(r"[0-9a-fA-F]+", digits):
            raise InvalidValue("non-hex digit in hex number")
        if len(digits) % 2:
            raise InvalidValue("hex digits must be in pairs")
        return bytes.fromhex(digits)
    if prefix == "0s":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue("non-base64 digit in base64 number") from None
    if prefix == "0t":
        return body.encode()
    raise InvalidValue("unknown format prefix")


# ---------------------------------------------------------------------------
# matching IDs (id.c same_id)
# ---------------------------------------------------------------------------


def _is_any(i: ID) -> bool:
    if i.kind == ID_NONE:
        return True
    return i.kind in (ID_IPV4_ADDR, ID_IPV6_ADDR) and i.addr is not None and \
        i.addr.is_unspecified and i.dns_name is None


def _same_id(a: ID, b: ID) -> bool:
    if a.kind == ID_NONE or b.kind == ID_NONE:
        return True
    if a.kind != b.kind:
        return False
    if a.kind in (ID_IPV4_ADDR, ID_IPV6_ADDR):
        if a.addr is not None and b.addr is not None:
            return a.addr == b.addr
        return (a.dns_name or str(a.addr)).lower() == (b.dns_name or str(b.addr)).lower()
    if a.kind in (ID_FQDN, ID_USER_FQDN):
        return str(a.name).lower().rstrip(".") == str(b.name).lower().rstrip(".")
    if a.kind == ID_DER_ASN1_DN and a.rdns and b.rdns:
        return [(k.upper(), v) for k, v in a.rdns] == [(k.upper(), v) for k, v in b.rdns]
    return a.name == b.name


def _as_id(x: ID | str | None) -> ID | None:
    if x is None or isinstance(x, ID):
        return x
    return parse_id(x)


_MATCH_DEFAULT, _MATCH_ANY, _MATCH_REMOTE, _MATCH_LOCAL = 1, 2, 4, 8
_ACCEPTED = {_MATCH_DEFAULT, _MATCH_ANY, _MATCH_LOCAL | _MATCH_DEFAULT,
             _MATCH_LOCAL | _MATCH_ANY, _MATCH_REMOTE | _MATCH_ANY,
             _MATCH_LOCAL | _MATCH_REMOTE}


@dataclass
class Secrets:
    """All loaded secrets, in file order."""

    entries: list[SecretEntry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    diagnostics: list[SecretsDiagnostic] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # non-file messages

    @property
    def warnings(self) -> list[str]:
        """Printable Libreswan-style lines (warnings and skipped records)."""
        return self.notices + [str(d) for d in self.diagnostics]

    @property
    def errors(self) -> list[SecretsDiagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, kind: str, local_id: ID | str | None, remote_id: ID | str | None = None,
             *, asymmetric: bool = False) -> SecretEntry | None:
        """secret_find_by_id(): the most specific entry of `kind`.

        Two indices matching local and remote beat one matching plus %any,
        beat one matching the local end alone, beat %any, beat no index;
        among equals the first in the file wins.
        """
        local = _as_id(local_id)
        remote = _as_id(remote_id)
        best: SecretEntry | None = None
        best_match = 0
        for s in self.entries:
            if s.kind != kind:
                continue
            match = 0
            if not s.ids:
                match = _MATCH_DEFAULT
            else:
                for i in s.ids:
                    if _is_any(i):
                        match |= _MATCH_ANY
                        continue
                    if local is not None and _same_id(i, local):
                        match |= _MATCH_LOCAL
                    if remote is not None and _same_id(i, remote):
                        match |= _MATCH_REMOTE
                if match == _MATCH_LOCAL and len(s.ids) == 1:
                    match |= _MATCH_DEFAULT
            if match == 0:
                continue
            if match == _MATCH_LOCAL and not asymmetric:
                continue
            if match not in _ACCEPTED and match != _MATCH_LOCAL:
                continue
            if match > best_match:
                best, best_match = s, match
        return best

    def lookup_psk(self, local_id: ID | str | None, remote_id: ID | str | None) -> bytes | None:
        entry = self.find("PSK", local_id, remote_id)
        return entry.secret.reveal() if entry else None

    def lookup_xauth(self, username: str) -> bytes | None:
        """The XAUTH password of `username` (index `@username` or `username`)."""
        want = username.lstrip("@").lower()
        for s in self.entries:
            if s.kind != "XAUTH":
                continue
            for i in s.ids:
                if str(i.name).lower() == want or i.text.lstrip("@").lower() == want:
                    return s.secret.reveal()
        return None

    def lookup_ppk(self, ppk_id: bytes | str) -> bytes | None:
        want = ppk_id.encode() if isinstance(ppk_id, str) else ppk_id
        for s in self.entries:
            if s.kind == "PPKS" and s.ppk_id == want:
                return s.secret.reveal()
        return None

    def ppk_ids(self) -> list[bytes]:
        return [s.ppk_id for s in self.entries if s.kind == "PPKS" and s.ppk_id is not None]

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for s in self.entries:
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        return f"Secrets({len(self.entries)} entries {kinds}, files={self.files})"


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


class _Loader:
    def __init__(self, secrets: Secrets) -> None:
        self.s = secrets

    def diag(self, file: str, line: int, severity: str, message: str) -> None:
        self.s.diagnostics.append(SecretsDiagnostic(file, line, severity, message))

    def load_glob(self, pattern: str, depth: int, origin: tuple[str, int] | None) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            where = origin or (pattern, 0)
            self.diag(where[0], where[1], "error",
                      f'preshared secrets file "{pattern}" nested too deeply')
            return
        files = sorted(glob.glob(pattern))
        if not files:
            if origin is None:
                self.s.notices.append(f'no secrets filename matched "{pattern}"')
            elif not _GLOB_CHARS.search(pattern):
                self.diag(origin[0], origin[1], "warning",
                          f'no secrets filename matched "{pattern}"')
            return
        for f in files:
            self.load_file(f, depth)

    def load_file(self, path: str, depth: int) -> None:
        try:
            st = os.stat(path)
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except OSError as e:
            self.diag(path, 0, "error", f"could not open secrets file: {e.strerror}")
            return
        self.s.files.append(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.diag(path, 0, "warning",
                      f"WARNING: secrets file is accessible by group or others (mode "
                      f"{stat.S_IMODE(st.st_mode):04o}); use chmod 600")
        self.load_text(text, path, depth)

    def load_text(self, text: str, filename: str, depth: int) -> None:
        notes: list[tuple[int, str]] = []
        for rec in _records(text, notes):
            self.record(rec, filename, depth)
        for line, msg in notes:
            self.diag(filename, line, "warning", msg)

    def record(self, rec: _Record, file: str, depth: int) -> None:
        toks = rec.tokens
        first = toks[0]
        if first.quote == "" and first.text.lower() == "include":
            if len(toks) < 2:
                self.diag(file, rec.line, "error", "unexpected end of include directive")
                return
            if len(toks) > 2:
                self.diag(file, rec.line, "error", "ignoring malformed INCLUDE -- expected "
                                                   "Record Boundary after filename")
                return
            target = toks[1].text
            if not target.startswith("/") and "/" in file:
                target = os.path.join(os.path.dirname(file), target)
            self.load_glob(target, depth + 1, (file, rec.line))
            return
        ids: list[ID] = []
        i = 0
        while i < len(toks) and not (toks[i].text == ":" and toks[i].quote == ""):
            tok = toks[i]
            try:
                ids.append(_index_id(tok.text))
            except InvalidValue as e:
                self.diag(file, tok.line, "error", f'ERROR: index "{tok.text}" {e}')
                return
            i += 1
        if i >= len(toks):
            self.diag(file, toks[-1].line, "error", "unexpected end of id list")
            return
        i += 1  # eat ':'
        if i >= len(toks):
            self.diag(file, rec.line, "error", "ERROR: unexpected end of record")
            return
        kind_tok = toks[i]
        kind = kind_tok.text.lower() if not kind_tok.quote else ""
        rest = toks[i + 1:]
        if kind == "psk" or kind == "xauth":
            what = kind.upper()
            if not rest:
                self.diag(file, rec.line, "error",
                          "ERROR: unexpected end of record in PSK")
                return
            secret = self.secret_value(rest[0], what, file, rec.line)
            if secret is None:
                return
            if what == "PSK" and rest[0].quote and len(secret) < WEAK_PSK_LENGTH:
                self.diag(file, rec.line, "warning", "WARNING: using a weak secret (PSK)")
            extra = rest[1:]
            ppk_id = None
        elif kind == "ppks":
            if not rest:
                self.diag(file, rec.line, "error",
                          "ERROR: unexpected end of record in static PPK")
                return
            if rest[0].quote not in ('"', "'"):
                self.diag(file, rec.line, "error", "no quotation marks found, PPK ID should "
                                                   "be in quotation marks")
                return
            ppk_id = rest[0].text.encode()
            if len(rest) < 2:
                self.diag(file, rec.line, "error",
                          "No PPK found. PPK should be specified after PPK ID")
                return
            secret = self.secret_value(rest[1], "PPK", file, rec.line)
            if secret is None:
                return
            extra = rest[2:]
        elif kind == "pin":
            self.diag(file, rec.line, "error",
                      "ERROR: keyword 'pin' obsoleted, please use NSS for smartcard support")
            return
        else:
            self.diag(file, rec.line, "warning",
                      f"WARNING: ignored unrecognized keyword: {kind_tok.text}")
            return
        if extra:
            self.diag(file, rec.line, "error", "expected record boundary in key")
            return
        self.s.entries.append(SecretEntry(kind.upper(), tuple(ids), Secret(secret), file,
                                          rec.line, ppk_id))

    def secret_value(self, tok: _Tok, what: str, file: str, line: int) -> bytes | None:
        if tok.quote in ('"', "'"):
            return tok.text.encode()
        try:
            return _ttodata(tok.text)
        except InvalidValue as e:
            # never echo the secret itself
            self.diag(file, line, "error", f"{what} data malformed ({e})")
            return None


def _index_id(text: str) -> ID:
    """An index: like leftid= but `%any`/`%any6` are the zero addresses."""
    if text == "%any":
        return parse_id("0.0.0.0")
    if text == "%any6":
        return parse_id("::")
    return parse_id(text)


def load_secrets(path_glob: str, *, strict: bool = True) -> Secrets:
    """Load every file matching path_glob (and what they include).

    With strict, any error (a record Libreswan would skip) raises
    SecretsError; warnings never do.
    """
    secrets = Secrets()
    _Loader(secrets).load_glob(path_glob, 1, None)
    if strict and secrets.errors:
        raise SecretsError(secrets.errors)
    return secrets


def parse_secrets_text(text: str, filename: str = "ipsec.secrets", *,
                       strict: bool = True) -> Secrets:
    """Parse ipsec.secrets text; includes resolve relative to filename."""
    secrets = Secrets(files=[filename])
    _Loader(secrets).load_text(text, filename, 1)
    if strict and secrets.errors:
        raise SecretsError(secrets.errors)
    return secrets
