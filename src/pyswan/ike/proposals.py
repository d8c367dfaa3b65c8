"""Libreswan's ``ike=`` / ``esp=`` / ``ah=`` proposal grammar, and IKEv2 SA
proposal negotiation.

Parsing follows ``lib/libswan/proposals.c``, ``v1_proposals.c`` and
``v2_proposals.c`` behaviour for behaviour (token look-ahead, the
``<encr>-<prf>-<integ>`` versus ``<encr>-<integ>-<prf>`` back-tracking,
default merging, duplicate removal, PFS stripping, error wording), so that
``algparse()`` reproduces ``ipsec algparse`` output; the corpus test in
``tests/ike/test_proposals_corpus.py`` holds it to that.

Negotiation follows ``programs/pluto/ikev2_proposals.c``:

* the responder walks the initiator's proposals in order, but the winner is
  the *local* proposal that comes first in the local preference order and
  that some remote proposal matches in full; within it, each transform type
  takes the first *local* transform that the remote proposal offered
  (local preference, not the initiator's order).  The accepted proposal
  carries the initiator's proposal number and SPI.
* the initiator checks that the single accepted proposal names one of its
  proposals and only transforms that proposal contains.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from . import algorithms as A
from .algorithms import ProtocolId, TransformType

# proposal transform "types" (same numbering as IKEv2 transform types)
ENCRYPT, PRF, INTEG, KE, SN = 1, 2, 3, 4, 5
ADDKE1, ADDKE7 = 6, 12
_TYPE_NAMES = {1: "encrypt", 2: "prf", 3: "integ", 4: "ke", 5: "sn",
               **{t: f"addke{t - 5}" for t in range(ADDKE1, ADDKE7 + 1)}}
_TYPE_BY_NAME = {v: k for k, v in _TYPE_NAMES.items()}
_KIND = {1: "encrypt", 2: "prf", 3: "integ", 4: "ke", 5: "sn",
         **{t: "ke" for t in range(ADDKE1, ADDKE7 + 1)}}
_INT_MAX = 2**31 - 1


class ProposalError(ValueError):
    """A proposal string Libreswan would reject; ``str()`` is its wording.

    ``warnings`` holds the log lines emitted before the error.
    """

    def __init__(self, message: str, warnings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.warnings = tuple(warnings)


class ProposalSyntaxError(ValueError):
    """A received SA payload is malformed (answer INVALID_SYNTAX)."""


# ------------------------------------------------------------------ results

@dataclass(frozen=True, slots=True)
class Proposal:
    """One Libreswan proposal: lists of algorithms per transform type."""

    encr: tuple[tuple[A.Encr, int], ...] = ()  # (algorithm, key bits; 0 = any)
    prf: tuple[A.Prf, ...] = ()
    integ: tuple[A.Integ, ...] = ()
    ke: tuple[A.Ke, ...] = ()
    sn: tuple[A.Sn, ...] = ()
    addke: tuple[tuple[A.Ke, ...], ...] = ()  # addke1 .. addke7

    @property
    def aead(self) -> bool:
        return bool(self.encr) and all(e.aead for e, _ in self.encr)

    def transforms(self) -> Iterator[tuple[int, A.Alg, int]]:
        """(type, algorithm, key bits) in Libreswan's canonical order."""
        for alg, keylen in self.encr:
            yield ENCRYPT, alg, keylen
        for t, algs in ((PRF, self.prf), (INTEG, self.integ), (KE, self.ke), (SN, self.sn)):
            for a in algs:
                yield t, a, 0
        for i, algs in enumerate(self.addke):
            for a in algs:
                yield ADDKE1 + i, a, 0

    def __str__(self) -> str:
        return format_proposal(self)


@dataclass(frozen=True)
class ProposalSet:
    """The parsed value of an ``ike=``, ``esp=`` or ``ah=`` line."""

    protocol: str  # "IKE", "ESP" or "AH"
    proposals: tuple[Proposal, ...]
    ike_version: int = 2
    defaulted: bool = False
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Proposal]:
        return iter(self.proposals)

    def __len__(self) -> int:
        return len(self.proposals)

    def __getitem__(self, i: int) -> Proposal:
        return self.proposals[i]

    def __str__(self) -> str:
        return format_proposals(self)

    @property
    def protocol_id(self) -> ProtocolId:
        return ProtocolId[self.protocol]

    @property
    def intermediate(self) -> bool:
        """True when an additional key exchange needs IKE_INTERMEDIATE."""
        return any(any(p.addke) for p in self.proposals)

    @cached_property
    def _local_cache(self) -> dict[tuple[Any, ...], tuple[_LocalProposal, ...]]:
        return {}

    def _local(self, options: tuple[Any, ...] = (None, None, None)
               ) -> tuple[_LocalProposal, ...]:
        """Match tables for selection, built once per option set."""
        cached = self._local_cache.get(options)
        if cached is None:
            proto = self.protocol_id
            cached = tuple(_LocalProposal.build(_local_transforms(p, proto, *options), proto)
                           for p in self.proposals)
            self._local_cache[options] = cached
        return cached


# --------------------------------------------------------------- formatting

def _jam_transform(alg: A.Alg, keylen: int) -> str:
    return f"{alg.fqn}_{keylen}" if keylen else alg.fqn


def _skip_integ(p: Proposal) -> bool:
    # jam_proposal(): hide INTEG when it is implied (AEAD + NONE, or one
    # integrity algorithm built from each PRF, in the same order)
    if p.aead and len(p.integ) == 1 and p.integ[0] is A.INTEG_NONE:
        return True
    if not p.prf or not p.integ or len(p.prf) != len(p.integ):
        return False
    return all(i.prf is f for f, i in zip(p.prf, p.integ, strict=True))


def format_proposal(p: Proposal) -> str:
    """As ``ipsec algparse`` / ``IKE algorithms:`` print it."""
    skip = _skip_integ(p)
    out: list[str] = []
    prev = 0
    for t, alg, keylen in p.transforms():
        if t == INTEG and skip:
            continue
        if prev < t <= KE:
            out.append("-" if out else "")
        elif t == prev:
            out.append("+")
        else:
            out.append(";" if out else "")
            out.append(_TYPE_NAMES[t] + "=")
        out.append(_jam_transform(alg, keylen))
        prev = t
    return "".join(out)


def format_proposals(ps: Iterable[Proposal]) -> str:
    return ", ".join(format_proposal(p) for p in ps)


# ------------------------------------------------------------------ parser

@dataclass(frozen=True)
class _Protocol:
    name: str
    encrypt: bool
    prf: bool
    integ: bool
    ke: bool
    check_pfs_vs_ke: bool


_IKEV1_IKE = _Protocol("IKE", True, True, False, True, False)
_IKEV2_IKE = _Protocol("IKE", True, True, True, True, False)
_ESP = _Protocol("ESP", True, False, True, True, True)
_AH = _Protocol("AH", False, False, True, True, True)

_V2_IKE_KE = (A.DH19, A.DH20, A.DH21, A.DH31, A.MODP4096, A.MODP3072, A.MODP2048,
              A.MODP8192)
_V2_INTEG = (A.INTEG_HMAC_SHA2_512_256, A.INTEG_HMAC_SHA2_256_128)

# (protocol, version) -> (default string non-FIPS, default string FIPS, {type: defaults})
_DEFAULTS: dict[tuple[str, int], tuple[str, str, dict[int, tuple[A.Alg, ...]]]] = {
    ("IKE", 2): ("AES_GCM_16_256,AES_GCM_16_128,CHACHA20_POLY1305,AES_CBC_256,AES_CBC_128",
                 "AES_GCM_16_256,AES_GCM_16_128,AES_CBC_256,AES_CBC_128",
                 {PRF: (A.PRF_HMAC_SHA2_512, A.PRF_HMAC_SHA2_256), KE: _V2_IKE_KE}),
    ("ESP", 2): ("AES_GCM_16_256,AES_GCM_16_128,CHACHA20_POLY1305,AES_CBC_256,AES_CBC_128",
                 "AES_GCM_16_256,AES_GCM_16_128,AES_CBC_256,AES_CBC_128",
                 {INTEG: _V2_INTEG}),
    ("AH", 2): ("SHA2_512_256,SHA2_256_128", "SHA2_512_256,SHA2_256_128",
                {INTEG: _V2_INTEG}),
    ("IKE", 1): ("AES_CBC,3DES", "AES_CBC,3DES",
                 {KE: (A.MODP2048, A.MODP1536, A.DH19, A.DH31),
                  PRF: (A.PRF_HMAC_SHA2_256, A.PRF_HMAC_SHA2_512, A.PRF_HMAC_SHA1)}),
    ("ESP", 1): ("AES_CBC,AES_GCM_16_128,AES_GCM_16_256,3DES",
                 "AES_CBC,AES_GCM_16_128,AES_GCM_16_256,3DES",
                 {INTEG: (A.INTEG_HMAC_SHA1_96, A.INTEG_HMAC_SHA2_512_256,
                          A.INTEG_HMAC_SHA2_256_128)}),
    ("AH", 1): ("SHA1_96,SHA2_512,SHA2_256", "SHA1_96,SHA2_512,SHA2_256", {}),
}

_Raw = list[tuple[int, A.Alg, int]]  # (type, algorithm, key bits) in parse order


class _Tokens:
    """Libreswan's three-token look-ahead over ``-;+=``-delimited input."""

    __slots__ = ("prev", "curr", "next", "rest")

    def __init__(self, text: str) -> None:
        self.prev: tuple[str | None, str] = (None, "")
        self.curr: tuple[str | None, str] = (None, "")
        self.next: tuple[str | None, str] = (None, "")
        self.rest: str | None = text
        self.shift()
        self.shift()

    def shift(self) -> None:
        self.prev = self.curr
        self.curr = self.next
        self.next, self.rest = _split_token(self.rest, "-;+=")

    def copy(self) -> _Tokens:
        t = object.__new__(_Tokens)
        t.prev, t.curr, t.next, t.rest = self.prev, self.curr, self.next, self.rest
        return t

    def restore(self, other: _Tokens) -> None:
        self.prev, self.curr, self.next, self.rest = (other.prev, other.curr, other.next,
                                                      other.rest)


def _split_token(text: str | None, delims: str) -> tuple[tuple[str | None, str], str | None]:
    """shunk_token(): (token, delimiter) and the rest (None once exhausted)."""
    if text is None:
        return (None, ""), None
    for i, ch in enumerate(text):
        if ch in delims:
            return (text[:i], ch), text[i + 1:]
    return (text, ""), None


def _split_proposals(text: str) -> list[str]:
    return text.split(",")


class _Parser:
    def __init__(self, protocol: str, version: int, pfs: bool, fips: bool) -> None:
        proto = {"IKE": _IKEV2_IKE if version == 2 else _IKEV1_IKE, "ESP": _ESP,
                 "AH": _AH}[protocol]
        self.proto = proto
        self.version = version
        self.pfs = pfs
        self.fips = fips
        self.defaults = _DEFAULTS[(protocol, version)]
        self.logs: list[str] = []
        self.proposals: list[_Raw] = []

    def error(self, msg: str) -> ProposalError:
        return ProposalError(msg, self.logs)

    # -- algorithm lookup (alg_byname.c) --------------------------------------

    def _wire_id(self, alg: A.Alg) -> int | None:
        if self.version == 2:
            return alg.ikev2_id
        return alg.ikev1_oakley_id if self.proto.name == "IKE" else alg.ikev1_ipsec_id

    def _alg_problem(self, alg: A.Alg, print_name: str) -> str | None:
        p = self.proto.name
        if self._wire_id(alg) is None:
            return f"{p} {alg.story} '{print_name}' is not supported by IKEv{self.version}"
        usable = alg.ike if (p == "IKE" or alg.kind == "ke") else True
        if not usable:
            return f"{p} {alg.story} '{print_name}' is not supported"
        if self.fips and not alg.fips:
            return f"{p} {alg.story} '{print_name}' is not valid"
        return None

    def _byname(self, kind: str, name: str, print_name: str) -> A.Alg:
        alg = A.by_name(kind, name, self.fips)
        if alg is None:
            how = "is not supported" if A.is_known_name(kind, name) else "is not recognized"
            raise self.error(f"{self.proto.name} {A.STORY[kind]} '{print_name}' {how}")
        problem = self._alg_problem(alg, print_name)
        if problem:
            raise self.error(problem)
        return alg

    def _encrypt_byname(self, name: str, keylen: int, print_name: str) -> A.Encr:
        alg = self._byname("encrypt", name, print_name)
        assert isinstance(alg, A.Encr)
        if keylen > 0:
            p = self.proto.name
            if alg.keylen_omitted:
                raise self.error(f"{p} encryption algorithm {alg.fqn} does not allow a "
                                 "key lengths")
            if not alg.has_key_length(keylen):
                valid = ", ".join(str(k) for k in alg.key_lengths)
                raise self.error(f"{p} encryption algorithm {alg.fqn} with key length "
                                 f"{keylen} invalid; valid key lengths: {valid}")
        return alg

    def _eklen(self, print_name: str, text: str) -> int:
        p = self.proto.name
        if not text.isdigit() or not text.isascii():
            raise self.error(f"{p} encryption algorithm '{print_name}' key length invalid, "
                             f"contains trailing garbage")
        eklen = int(text)
        if eklen >= _INT_MAX:
            raise self.error(f"{p} encryption algorithm '{print_name}' key length WAY too big")
        if eklen == 0:
            raise self.error(f"{p} encryption key length is zero")
        return eklen

    # -- transform parsing (proposals.c) --------------------------------------

    def _parse_encrypt(self, raw: _Raw, toks: _Tokens) -> None:
        token, delim = toks.curr
        assert token is not None
        if token == "":
            raise self.error(f"{self.proto.name} encryption algorithm is empty")
        nxt = toks.next[0]
        if delim == "-" and nxt and nxt[0].isdigit():
            # <ealg>-<eklen>
            print_name = f"{token}-{nxt}"
            eklen = self._eklen(print_name, nxt)
            raw.append((ENCRYPT, self._encrypt_byname(token, eklen, print_name), eklen))
            toks.shift()
            toks.shift()
            return
        try:
            alg = self._encrypt_byname(token, 0, token)
        except ProposalError:
            # <ealg><eklen> or <ealg>_<eklen>?
            end = len(token)
            while end > 0 and token[end - 1].isdigit():
                end -= 1
            if end == len(token):
                raise
            eklen = self._eklen(token, token[end:])
            ealg = token[:end]
            if ealg.endswith("_"):
                ealg = ealg[:-1]
            raw.append((ENCRYPT, self._encrypt_byname(ealg, eklen, token), eklen))
            toks.shift()
            return
        raw.append((ENCRYPT, alg, 0))
        toks.shift()

    def _parse_encrypts(self, raw: _Raw, toks: _Tokens) -> None:
        self._parse_encrypt(raw, toks)
        while toks.prev[1] == "+":
            self._parse_encrypt(raw, toks)

    def _parse_one(self, raw: _Raw, ttype: int, token: str) -> None:
        kind = _KIND[ttype]
        if token == "":
            raise self.error(f"{self.proto.name} {A.STORY[kind]} is empty")
        raw.append((ttype, self._byname(kind, token, token), 0))

    def _parse_algorithms(self, raw: _Raw, ttype: int, toks: _Tokens) -> None:
        token = toks.curr[0]
        assert token is not None
        self._parse_one(raw, ttype, token)
        toks.shift()
        while toks.prev[1] == "+":
            token = toks.curr[0]
            self._parse_one(raw, ttype, token if token is not None else "")
            toks.shift()

    def _try(self, raw: _Raw, ttype: int, toks: _Tokens) -> bool:
        try:
            self._parse_algorithms(raw, ttype, toks)
        except ProposalError:
            return False
        return True

    def _parse_prfs(self, raw: _Raw, toks: _Tokens) -> None:
        start = toks.copy()
        n0 = len(raw)
        try:
            self._parse_algorithms(raw, PRF, toks)
        except ProposalError as prf_error:
            if not self.proto.integ:
                raise
            # perhaps <encr>-<integ>[-<prf>]; report the PRF error if not
            toks.restore(start)
            del raw[n0:]
            if not self._try(raw, INTEG, toks):
                raise prf_error from None
            if toks.curr[0] is None or toks.prev[1] == ";":
                return
            if not _integ_none(raw):
                self.logs.append("WARNING: IKE proposal has integ specified before prf; "
                                 "use encrypt-prf-integ-ke order")
            self._parse_algorithms(raw, PRF, toks)
            return
        # <encr>-<prf> worked; is <integ> next (<encr>-<prf>-<integ>)?
        if toks.curr[0] is not None and toks.prev[1] != ";" and self.proto.integ:
            saved = toks.copy()
            n1 = len(raw)
            if self._try(raw, INTEG, toks) and not _integ_none(raw):
                n2 = len(raw)
                also_prf = self._try(raw, PRF, saved.copy())
                del raw[n2:]
                if not also_prf:
                    return
            # not INTEG, NONE, or ambiguous: leave the token for KE
            toks.restore(saved)
            del raw[n1:]

    def _parse_transforms(self, raw: _Raw, ttype: int, explicit: bool,
                          toks: _Tokens) -> None:
        proto = self.proto
        if ttype == ENCRYPT and proto.encrypt:
            return self._parse_encrypts(raw, toks)
        if ttype == PRF and proto.prf:
            return self._parse_prfs(raw, toks)
        if ttype == INTEG and proto.integ and (not proto.prf or explicit):
            return self._parse_algorithms(raw, ttype, toks)
        if ttype == KE and proto.ke:
            return self._parse_algorithms(raw, ttype, toks)
        if ttype >= SN and explicit:
            return self._parse_algorithms(raw, ttype, toks)
        if explicit:
            tok, delim = toks.prev
            raise self.error(f"{proto.name} proposal contains unexpected explicit "
                             f"{tok}{delim}")
        return None

    def _parse_proposal(self, text: str) -> _Raw:
        raw: _Raw = []
        toks = _Tokens(text)
        ttype = ENCRYPT
        while toks.curr[0] is not None:
            token, delim = toks.curr
            prev_delim = toks.prev[1]
            if delim == "=":
                new_type = _TYPE_BY_NAME.get(token.lower())
                if new_type is None:
                    raise self.error(f"transform '{token}' unrecognized")
                if self.version == 1 and new_type >= ADDKE1:
                    raise self.error(f"transform '{token}' invalid")
                if new_type == INTEG and ttype <= PRF and self.proto.prf:
                    self.logs.append("WARNING: IKE proposal has integ= specified before "
                                     "prf=; use encrypt-prf-integ-ke order")
                toks.shift()
                ttype = new_type
                explicit = True
            elif prev_delim == ";" and ttype <= KE:
                ttype = KE  # ";<ke>" is "ke=<ke>"
                explicit = True
            elif prev_delim != ";" and ttype <= KE:
                explicit = False
            else:
                raise self.error(f"{self.proto.name} proposal contains unexpected "
                                 f"'{prev_delim}{token}{delim}', expecting ';<transform>=...'")
            self._parse_transforms(raw, ttype, explicit, toks)
            ttype += 1
        return raw

    # -- defaults (v2_proposals.c) --------------------------------------------

    def _merge(self, raw: _Raw, ttype: int) -> None:
        defaults = self.defaults[2].get(ttype)
        if defaults and not any(t == ttype for t, _, _ in raw):
            raw.extend((ttype, alg, 0) for alg in defaults)

    def _merge_defaults(self, raw: _Raw) -> None:
        self._merge(raw, ENCRYPT)
        self._merge(raw, PRF)
        if not any(t == INTEG for t, _, _ in raw):
            if _encrypt_aead(raw):
                raw.append((INTEG, A.INTEG_NONE, 0))
            elif INTEG in self.defaults[2]:
                self._merge(raw, INTEG)
            elif any(t == PRF for t, _, _ in raw) and _encrypt_norm(raw):
                for t, prf, _ in list(raw):
                    if t != PRF:
                        continue
                    integ = A.integ_for_prf(prf, self.fips)  # type: ignore[arg-type]
                    if integ is None:
                        raise self.error(f"{self.proto.name} integrity derived from PRF "
                                         f"{prf.fqn} is not supported")
                    if not any(a is integ for _, a, _ in raw):
                        raw.append((INTEG, integ, 0))
        for ttype in range(KE, ADDKE7 + 1):
            self._merge(raw, ttype)

    # -- checks (ike_info.c, esp_info.c, ah_info.c) ---------------------------

    def _aead_none_ok(self, raw: _Raw) -> None:
        encrypts = [a for t, a, _ in raw if t == ENCRYPT]
        if not encrypts:
            return
        p = self.proto.name
        aead = _encrypt_aead(raw)
        norm = _encrypt_norm(raw)
        if not aead and not norm:
            raise self.error(f"AEAD and non-AEAD {p} encryption algorithm cannot be combined")
        none = _integ_none(raw)
        if aead and not none:
            raise self.error(f"AEAD {p} encryption algorithm {encrypts[0].fqn} must have "
                             "'NONE' as the integrity algorithm")
        if norm and none:
            raise self.error(f"non-AEAD {p} encryption algorithm {encrypts[0].fqn} cannot "
                             "have 'NONE' as the integrity algorithm")

    def _expect(self, raw: _Raw, ttype: int, expected: bool) -> None:
        present = any(t == ttype for t, _, _ in raw)
        if present and not expected:
            raise self.error(f"{self.proto.name} proposal has unexpected "
                             f"{_TYPE_NAMES[ttype]} transform")
        if expected and not present:
            raise self.error(f"{self.proto.name} proposal missing {_TYPE_NAMES[ttype]} "
                             "transform")

    def _proposal_ok(self, raw: _Raw) -> None:
        name = self.proto.name
        if name == "IKE":
            self._aead_none_ok(raw)
            for ttype in (ENCRYPT, PRF, INTEG, KE):
                self._expect(raw, ttype, True)
            if any(t == KE and a is A.KE_NONE for t, a, _ in raw):
                raise self.error("IKE Key Exchange algorithm 'NONE' not permitted")
        elif name == "ESP":
            self._aead_none_ok(raw)
            self._expect(raw, ENCRYPT, True)
            self._expect(raw, PRF, False)
            self._expect(raw, INTEG, True)
        else:
            self._expect(raw, ENCRYPT, False)
            self._expect(raw, PRF, False)
            self._expect(raw, INTEG, True)
            if any(t == INTEG and a is A.INTEG_NONE for t, a, _ in raw):
                raise self.error("AH cannot have 'none' as the integrity algorithm")

    # -- appending (proposals.c append_proposal) -------------------------------

    def _append(self, raw: _Raw) -> None:
        p = self.proto.name
        kept: _Raw = []
        for i, (t, alg, keylen) in enumerate(raw):
            for pt, palg, pkeylen in raw[:i]:
                # an earlier transform with no key length matches any length
                if pt == t and palg is alg and (pkeylen == 0 or pkeylen == keylen):
                    self.logs.append(f"discarding duplicate {p} {alg.story} "
                                     f"{_jam_transform(alg, keylen)}")
                    break
            else:
                kept.append((t, alg, keylen))
        if not self.pfs and self.proto.check_pfs_vs_ke:
            ke = [a for t, a, _ in kept if t == KE]
            if ke:
                if ke[0] is A.KE_NONE:
                    self.logs.append(f"ignoring redundant {p} Key Exchange algorithm 'NONE' "
                                     "as PFS policy is disabled")
                else:
                    self.logs.append(f"ignoring {p} Key Exchange algorithm '{ke[0].fqn}' "
                                     "as PFS policy is disabled")
                kept = [x for x in kept if x[0] != KE]
        kept.sort(key=lambda x: x[0])  # stable: keeps the order within a type
        for old in self.proposals:
            if len(old) == len(kept) and all(
                    o[1] is n[1] and not (o[1].kind == "encrypt" and o[2] != 0 and o[2] != n[2])
                    for o, n in zip(old, kept, strict=True)):
                return  # a duplicate proposal
        self.proposals.append(kept)

    # -- IKEv2 ------------------------------------------------------------------

    def parse_v2(self, text: str) -> None:
        if text == "":
            raise self.error(f"{self.proto.name} proposal is empty")
        for part in _split_proposals(text):
            raw = self._parse_proposal(part)
            self._merge_defaults(raw)
            self._proposal_ok(raw)
            self._append(raw)

    # -- IKEv1 ------------------------------------------------------------------

    def parse_v1(self, text: str) -> None:
        if text == "":
            raise self.error(f"{self.proto.name} proposal is empty")
        for part in _split_proposals(text):
            if "+" in part:
                raise self.error("'+' invalid, IKEv1 proposals do not support multiple "
                                 "transforms of the same type")
            raw = self._parse_proposal(part)
            seen: set[int] = set()
            for t, _, _ in raw:
                if t in seen:
                    raise self.error("IKEv1 does not support multiple transforms of the "
                                     "same type ('=' invalid)")
                seen.add(t)
            first = {t: (a, k) for t, a, k in reversed(raw)}
            self._v1_expand(first)

    def _v1_expand(self, v1: dict[int, tuple[A.Alg, int]]) -> None:
        """add_proposal_defaults(): expand every missing transform's defaults."""
        defaults = self.defaults[2]
        encrypt = v1.get(ENCRYPT, (None, 0))[0]
        aead = isinstance(encrypt, A.Encr) and encrypt.aead
        for ttype in (KE, ENCRYPT, PRF):
            if ttype not in v1 and ttype in defaults:
                for alg in defaults[ttype]:
                    if self._alg_problem(alg, alg.fqn) is None:
                        self._v1_expand({**v1, ttype: (alg, 0)})
                return
        if INTEG not in v1:
            if aead:
                return self._v1_expand({**v1, INTEG: (A.INTEG_NONE, 0)})
            if INTEG in defaults:
                for alg in defaults[INTEG]:
                    if self._alg_problem(alg, alg.fqn) is None:
                        self._v1_expand({**v1, INTEG: (alg, 0)})
                return None
            if PRF in v1 and encrypt is not None:
                integ = A.integ_for_prf(v1[PRF][0], self.fips)  # type: ignore[arg-type]
                if integ is None:
                    raise self.error(f"{self.proto.name} integrity derived from PRF "
                                     f"{v1[PRF][0].fqn} is not supported")
                return self._v1_expand({**v1, INTEG: (integ, 0)})
        raw: _Raw = [(t, *v1[t]) for t in (ENCRYPT, PRF, INTEG, KE) if t in v1]
        self._proposal_ok(raw)
        self._append(raw)
        return None

    # -- whole line ---------------------------------------------------------------

    def pfs_vs_ke_check(self) -> None:
        if not self.proto.check_pfs_vs_ke:
            return
        without_ke = with_none = False
        unique: list[A.Alg] = []
        for raw in self.proposals:
            ke = next((a for t, a, _ in raw if t == KE), None)
            if ke is None:
                without_ke = True
            elif ke is A.KE_NONE:
                with_none = True
            elif ke not in unique:
                unique.append(ke)
        if not unique and not with_none:
            return
        p = self.proto.name
        if without_ke:
            raise self.error(f"either all or no {p} proposals should specify Key Exchange")
        if len(unique) >= 2:
            if self.version == 1:
                raise self.error(f"more than one IKEv1 {p} Key Exchange algorithm "
                                 f"({unique[0].fqn}, {unique[1].fqn}) is not allowed in "
                                 "quick mode")
            raise self.error(f"more than one IKEv2 {p} Key Exchange algorithm "
                             f"({unique[0].fqn}, {unique[1].fqn}) requires unimplemented "
                             "CREATE_CHILD_SA INVALID_KE")


def _encrypt_aead(raw: _Raw) -> bool:
    encrypts = [a for t, a, _ in raw if t == ENCRYPT]
    return bool(encrypts) and all(a.aead for a in encrypts)  # type: ignore[attr-defined]


def _encrypt_norm(raw: _Raw) -> bool:
    encrypts = [a for t, a, _ in raw if t == ENCRYPT]
    return bool(encrypts) and not any(a.aead for a in encrypts)  # type: ignore[attr-defined]


def _integ_none(raw: _Raw) -> bool:
    return all(a is A.INTEG_NONE for t, a, _ in raw if t == INTEG)


def _to_proposal(raw: _Raw) -> Proposal:
    by: dict[int, list[Any]] = {}
    for t, alg, keylen in raw:
        by.setdefault(t, []).append((alg, keylen) if t == ENCRYPT else alg)
    addke = [tuple(by.get(t, ())) for t in range(ADDKE1, ADDKE7 + 1)]
    while addke and not addke[-1]:
        addke.pop()
    return Proposal(tuple(by.get(ENCRYPT, ())), tuple(by.get(PRF, ())),
                    tuple(by.get(INTEG, ())), tuple(by.get(KE, ())), tuple(by.get(SN, ())),
                    tuple(addke))


def parse_proposals(protocol: str, text: str | None, *, ike_version: int = 2,
                    pfs: bool = True, fips: bool = False) -> ProposalSet:
    """Parse an ``ike=``/``esp=``/``ah=`` value (``None``: Libreswan's defaults).

    ``pfs`` is the connection's PFS policy: when false, KE algorithms on
    esp=/ah= are dropped with Libreswan's "ignoring ..." warning.  Raises
    ``ProposalError`` with Libreswan's message.
    """
    name = protocol.upper()
    if name not in ("IKE", "ESP", "AH"):
        raise ValueError(f"unknown proposal protocol {protocol!r}")
    parser = _Parser(name, ike_version, pfs, fips)
    defaulted = text is None
    if text is None:
        text = parser.defaults[1] if fips else parser.defaults[0]
    if ike_version == 2:
        parser.parse_v2(text)
    else:
        parser.parse_v1(text)
    parser.pfs_vs_ke_check()
    return ProposalSet(name, tuple(_to_proposal(r) for r in parser.proposals), ike_version,
                       defaulted, tuple(parser.logs))


# ------------------------------------------------------------------ algparse

_PROTOCOLS = ("ike", "esp", "ah")


def algparse(argv: Sequence[str]) -> tuple[list[str], int]:
    """A subset of ``ipsec algparse``: ``[--ikev1|--ikev2] [--pfs] [--fips] PROPOSAL...``.

    Each PROPOSAL is ``ike``, ``esp``, ``ah`` (the defaults), ``PROTO=STRING``,
    or a bare string tried as all three.  Returns the console lines and the
    exit status (1 when any proposal failed, as with ``COUNT`` in algparse).
    """
    version, pfs, fips = 2, False, False
    args: list[str] = []
    for arg in argv:
        if arg == "--ikev1":
            version = 1
        elif arg == "--ikev2":
            version = 2
        elif arg in ("--pfs", "--pfs=yes"):
            pfs = True
        elif arg == "--pfs=no":
            pfs = False
        elif arg in ("--fips", "--fips=yes"):
            fips = True
        elif arg == "--fips=no":
            fips = False
        elif arg.startswith("--"):
            return [f"unknown option: {arg}"], 124
        else:
            args.append(arg)
    lines: list[str] = []
    failures = 0
    for arg in args:
        proto, eq, text = arg.partition("=")
        if arg in _PROTOCOLS:
            jobs: list[tuple[str, str | None]] = [(arg, None)]
        elif eq and proto in _PROTOCOLS:
            jobs = [(proto, text)]
        elif eq:
            return lines + [f"unrecognized PROTOCOL in '{arg}'"], 1
        else:
            jobs = [(p, arg) for p in _PROTOCOLS]
        for proto, value in jobs:
            header = "algparse" + (" --fips" if fips else "") + f" --ikev{version}"
            header += " --pfs" if pfs else ""
            header += f" '{proto}'" if value is None else f" '{proto}={value}'"
            lines.append(header)
            try:
                ps = parse_proposals(proto, value, ike_version=version, pfs=pfs, fips=fips)
            except ProposalError as e:
                lines.extend(f"ipsec algparse: {w}" for w in e.warnings)
                lines.append(f"\tERROR: {e.message}")
                failures += 1
                continue
            lines.extend(f"ipsec algparse: {w}" for w in ps.warnings)
            lines.extend(f"\t{format_proposal(p)}" for p in ps)
    return lines, (1 if failures else 0)


# --------------------------------------------------------------- wire forms

class WireTransform(NamedTuple):
    """Duck-compatible with ``codec.Transform(type, id, key_length)``."""

    type: int
    id: int
    key_length: int | None = None


class WireProposal(NamedTuple):
    """Duck-compatible with ``codec.Proposal(number, protocol, spi, transforms)``."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[WireTransform, ...]


def _encrypt_wire(alg: A.Encr, keylen: int, protocol: int) -> list[tuple[int, int]]:
    """(id, key length attribute; 0 = none) as Libreswan proposes them."""
    eid = alg.ikev2_id
    assert eid is not None
    if keylen:
        return [(eid, keylen)]
    if alg.keylen_omitted:
        return [(eid, 0)]
    if alg.keydeflen == alg.max_key_length:
        return [(eid, alg.keydeflen)]
    # no key length given: propose both; IKE largest first, ESP default first
    if protocol == ProtocolId.IKE:
        return [(eid, alg.max_key_length), (eid, alg.keydeflen)]
    if protocol == ProtocolId.ESP:
        return [(eid, alg.keydeflen), (eid, alg.max_key_length)]
    return []


_ESN_EITHER = (A.SN_PARTIAL_64_BIT, A.SN_32_BIT)  # Libreswan's default esn=either


def _local_transforms(p: Proposal, protocol: int, force_ke: A.Ke | None = None,
                      default_ke: A.Ke | None = None,
                      default_sn: Sequence[A.Sn] | None = None,
                      ) -> dict[int, list[tuple[int, int]]]:
    """Per transform type, (id, key length) in local preference order.

    KE: ``force_ke`` (KE_NONE strips it: the IKE_AUTH Child SA; a group:
    rekeys), else the proposal's, else ``default_ke`` (PFS with the IKE SA's
    group).  SN (ESP/AH only): the proposal's ``sn=``, else ``default_sn``,
    whose default is the connection default ``esn=either`` (ESN preferred).
    """
    out: dict[int, list[tuple[int, int]]] = {}
    for alg, keylen in p.encr:
        out.setdefault(ENCRYPT, []).extend(_encrypt_wire(alg, keylen, protocol))
    for t, algs in ((PRF, p.prf), (INTEG, p.integ)):
        if algs:
            out[t] = [(a.ikev2_id, 0) for a in algs]  # type: ignore[misc]
    kes: Sequence[A.Ke] = ((force_ke,) if force_ke is not None else
                           p.ke or ((default_ke,) if default_ke is not None else ()))
    if kes:
        out[KE] = [(a.ikev2_id, 0) for a in kes]  # type: ignore[misc]
    if protocol != ProtocolId.IKE:
        sns = p.sn or (_ESN_EITHER if default_sn is None else tuple(default_sn))
        if sns:
            out[SN] = [(a.ikev2_id, 0) for a in sns]  # type: ignore[misc]
    for i, algs in enumerate(p.addke):
        if algs:
            out[ADDKE1 + i] = [(a.ikev2_id, 0) for a in algs]  # type: ignore[misc]
    return out


def to_wire_proposals(ps: ProposalSet, protocol: int | None = None, spi: bytes = b"", *,
                      default_sn: Sequence[A.Sn] | None = None, strip_ke: bool = False,
                      force_ke: A.Ke | None = None,
                      default_ke: A.Ke | None = None) -> list[WireProposal]:
    """The SA payload proposals for ``ps`` (one per Libreswan proposal).

    See ``_local_transforms`` for the KE and SN options (``strip_ke`` for the
    IKE_AUTH Child SA).  A lone INTEG=NONE or KE=NONE is not sent (AEAD
    implies INTEG=NONE; RFC 7296 §3.3.3), exactly as Libreswan emits them.
    """
    proto = int(protocol if protocol is not None else ps.protocol_id)
    force = A.KE_NONE if strip_ke else force_ke
    result = []
    for number, p in enumerate(ps, start=1):
        local = _local_transforms(p, proto, force, default_ke, default_sn)
        transforms = []
        for t in sorted(local):
            entries = local[t]
            if (t == INTEG or t in _KEM_TYPES) and len(entries) == 1 and entries[0][0] == 0:
                continue
            transforms.extend(WireTransform(t, i, k or None) for i, k in entries)
        result.append(WireProposal(number, proto, spi, tuple(transforms)))
    return result


def to_sa_proposals(ps: ProposalSet, protocol: int | None = None, spi: bytes = b"",
                    **kwargs: Any) -> list[Any]:
    """Like ``to_wire_proposals`` but as ``codec.Proposal``/``codec.Transform``."""
    from . import codec  # lazily: the codec is a sibling module

    return [codec.Proposal(w.number, w.protocol, w.spi,  # type: ignore[attr-defined]
                           [codec.Transform(t.type, t.id, t.key_length)  # type: ignore
                            for t in w.transforms])
            for w in to_wire_proposals(ps, protocol, spi, **kwargs)]


# ----------------------------------------------------------------- selection

_KEM_TYPES = frozenset({KE, *range(ADDKE1, ADDKE7 + 1)})
_TYPE_ROOF = 15  # first unknown IKEv2 transform type (after KWA 13, GCAUTH 14)


@dataclass(frozen=True, slots=True)
class _LocalProposal:
    protocol: int
    transforms: dict[int, list[tuple[int, int]]]
    index: dict[int, dict[tuple[int, int], int]]  # type -> (id, keylen) -> position
    required: frozenset[int]
    optional: frozenset[int]

    @classmethod
    def build(cls, tr: dict[int, list[tuple[int, int]]], protocol: int) -> _LocalProposal:
        index = {t: {entry: i for i, entry in reversed(list(enumerate(lst)))}
                 for t, lst in tr.items()}
        # INTEG=NONE / KE=NONE make the type optional: NONE is implied if absent
        optional = frozenset(t for t, lst in tr.items()
                             if (t == INTEG or t in _KEM_TYPES) and any(i == 0 for i, _ in lst))
        return cls(protocol, tr, index, frozenset(tr) - optional, optional)


@dataclass(frozen=True, slots=True)
class ChosenProposal:
    """The negotiated suite: one transform per type."""

    number: int  # the initiator's proposal number
    protocol: int
    spi: bytes  # the peer's SPI from the proposal
    local_index: int  # which local proposal (0-based) matched
    encr: A.Encr | None = None
    encr_keylen: int = 0  # Key Length attribute; 0 when absent
    prf: A.Prf | None = None
    integ: A.Integ | None = None
    ke: A.Ke | None = None
    sn: A.Sn | None = None
    addke: tuple[A.Ke | None, ...] = ()
    # transforms that were implied (INTEG/KE NONE absent from the proposal)
    implied: frozenset[int] = field(default_factory=frozenset)

    @property
    def key_bits(self) -> int:
        """Effective key size: the attribute, or the cipher's default."""
        if self.encr is None:
            return 0
        return self.encr_keylen or self.encr.keydeflen

    @property
    def aead(self) -> bool:
        return self.encr is not None and self.encr.aead

    def proposal(self) -> Proposal:
        encr = ((self.encr, self.encr_keylen),) if self.encr else ()
        return Proposal(encr,  # type: ignore[arg-type]
                        (self.prf,) if self.prf else (),
                        (self.integ,) if self.integ else (),
                        (self.ke,) if self.ke else (),
                        (self.sn,) if self.sn else (),
                        tuple((k,) if k else () for k in self.addke))

    def transforms(self) -> tuple[WireTransform, ...]:
        """The accepted proposal's transforms, for the response SA payload."""
        out: list[WireTransform] = []
        if self.encr is not None:
            out.append(WireTransform(ENCRYPT, self.encr.ikev2_id,  # type: ignore[arg-type]
                                     self.encr_keylen or None))
        for t, alg in ((PRF, self.prf), (INTEG, self.integ), (KE, self.ke), (SN, self.sn)):
            if alg is not None and t not in self.implied:
                out.append(WireTransform(t, alg.ikev2_id))  # type: ignore[arg-type]
        for i, alg in enumerate(self.addke):
            if alg is not None and ADDKE1 + i not in self.implied:
                out.append(WireTransform(ADDKE1 + i, alg.ikev2_id))  # type: ignore[arg-type]
        return tuple(out)

    def to_wire(self, spi: bytes | None = None) -> WireProposal:
        """The accepted proposal (responder: pass the local SPI for Child SAs)."""
        return WireProposal(self.number, self.protocol,
                            self.spi if spi is None else spi, self.transforms())

    def to_sa_proposal(self, spi: bytes | None = None) -> Any:
        """``to_wire`` as a ``codec.Proposal``."""
        from . import codec

        w = self.to_wire(spi)
        return codec.Proposal(w.number, w.protocol, w.spi,  # type: ignore[attr-defined]
                              [codec.Transform(t.type, t.id, t.key_length)  # type: ignore
                               for t in w.transforms])

    def __str__(self) -> str:
        return format_newest(self)


def _t(x: Any) -> tuple[int, int, int]:
    """(type, id, key length) from a codec Transform, WireTransform or tuple.

    A transform with attributes other than Key Length gets key length -1,
    which matches nothing (RFC 7296 §3.3.6: the proposal is not acceptable).
    """
    if isinstance(x, tuple) and not hasattr(x, "type"):
        kl = x[2] if len(x) > 2 else None
        return int(x[0]), int(x[1]), int(kl or 0)
    if getattr(x, "extra_attributes", None):
        return int(x.type), int(x.id), -1
    return int(x.type), int(x.id), int(getattr(x, "key_length", None) or 0)


def _p(x: Any) -> tuple[int, int, bytes, Sequence[Any]]:
    if isinstance(x, tuple) and not hasattr(x, "number"):
        return int(x[0]), int(x[1]), bytes(x[2]), x[3]
    return int(x.number), int(x.protocol), bytes(x.spi or b""), x.transforms


def _expected_spi_size(protocol: int, expect_spi: bool) -> int:
    if not expect_spi:
        return 0
    return 8 if protocol == ProtocolId.IKE else 4


def _match_transforms(locals_: Sequence[_LocalProposal], bound: int, number: int,
                      protocol: int, spi: bytes, transforms: Sequence[Any],
                      only: int | None = None) -> ChosenProposal | None:
    """process_transforms(): the best local proposal this remote one matches."""
    candidates = [only] if only is not None else range(bound)
    # per candidate: type -> best position so far (len == none yet)
    best: dict[int, dict[int, int]] = {c: {} for c in candidates}
    matched: dict[int, set[int]] = {c: set() for c in candidates}
    kems: dict[int, set[int]] = {c: set() for c in candidates}
    proposed: set[int] = set()
    matched_any: set[int] = set()
    first_integ: int | None = None
    for tr in transforms:
        ttype, tid, keylen = _t(tr)
        if keylen < 0:
            return None  # unknown transform attribute: try the next proposal
        if ttype == 0:
            raise ProposalSyntaxError(f"proposal {number} has a transform of type 0")
        if ttype >= _TYPE_ROOF:
            return None  # unknown transform type: try the next proposal
        proposed.add(ttype)
        if ttype == INTEG:
            if first_integ is None:
                first_integ = tid
            elif first_integ == 0 or tid == 0:
                return None  # NONE mixed with real integrity
        key = (tid, keylen)
        for c in candidates:
            lp = locals_[c]
            if lp.protocol != protocol:
                continue
            pos = lp.index.get(ttype, {}).get(key)
            if pos is None:
                continue
            lst = lp.transforms[ttype]
            cur = best[c].get(ttype, len(lst))
            if pos >= cur:
                continue
            if ttype in _KEM_TYPES:
                if tid != 0 and tid in kems[c]:
                    continue  # RFC 9370: no duplicate KE across ADDKE types
                if cur < len(lst):
                    kems[c].discard(lst[cur][0])
                kems[c].add(tid)
            best[c][ttype] = pos
            matched[c].add(ttype)
            matched_any.add(ttype)
    if proposed - matched_any:
        return None
    for c in candidates:
        lp = locals_[c]
        if proposed - matched[c] or lp.required - matched[c]:
            continue
        return _chosen(lp, c, best[c], number, protocol, spi)
    return None


def _chosen(lp: _LocalProposal, index: int, best: dict[int, int], number: int,
            protocol: int, spi: bytes) -> ChosenProposal:
    got: dict[int, tuple[int, int]] = {}
    implied: set[int] = set()
    for t in lp.transforms:
        if t in best:
            got[t] = lp.transforms[t][best[t]]
        elif t in lp.optional:
            got[t] = (0, 0)  # NONE implied
            implied.add(t)
    encr = A.encr_by_id(got[ENCRYPT][0]) if ENCRYPT in got else None
    addke = tuple(A.ke_by_id(got[t][0]) if t in got else None
                  for t in range(ADDKE1, ADDKE7 + 1))
    while addke and addke[-1] is None:
        addke = addke[:-1]
    return ChosenProposal(
        number, protocol, spi, index, encr,
        got[ENCRYPT][1] if ENCRYPT in got else 0,
        A.prf_by_id(got[PRF][0]) if PRF in got else None,
        A.integ_by_id(got[INTEG][0]) if INTEG in got else None,
        A.ke_by_id(got[KE][0]) if KE in got else None,
        A.sn_by_id(got[SN][0]) if SN in got else None,
        addke, frozenset(implied))


def _options(strip_ke: bool, force_ke: A.Ke | None, default_ke: A.Ke | None,
             default_sn: Sequence[A.Sn] | None) -> tuple[Any, ...]:
    return (A.KE_NONE if strip_ke else force_ke, default_ke,
            None if default_sn is None else tuple(default_sn))


def select_proposal(local: ProposalSet, received: Sequence[Any], *,
                    expect_spi: bool | None = None, strip_ke: bool = False,
                    force_ke: A.Ke | None = None, default_ke: A.Ke | None = None,
                    default_sn: Sequence[A.Sn] | None = None) -> ChosenProposal | None:
    """Responder: choose from the initiator's SA proposals (RFC 7296 §2.7, §3.3.6).

    ``received`` holds codec ``Proposal`` objects, ``WireProposal``s or
    ``(number, protocol, spi, [(type, id, key_length)...])`` tuples.
    Returns ``None`` for NO_PROPOSAL_CHOSEN; raises ``ProposalSyntaxError``
    for INVALID_SYNTAX.  ``expect_spi`` defaults to: no SPI for IKE
    (IKE_SA_INIT), a 4-octet SPI for ESP/AH; pass True for an IKE rekey.
    The KE/SN options shape the local proposals as for ``to_wire_proposals``
    (``strip_ke=True`` for the IKE_AUTH Child SA).
    """
    locals_ = local._local(_options(strip_ke, force_ke, default_ke, default_sn))
    proto = int(local.protocol_id)
    want_spi = (proto != ProtocolId.IKE) if expect_spi is None else expect_spi
    chosen: ChosenProposal | None = None
    next_number = 1
    for remote in received:
        number, protocol, spi, transforms = _p(remote)
        if number != next_number:
            raise ProposalSyntaxError(f"proposal number was {number} but {next_number} "
                                      "expected")
        next_number += 1
        if protocol != proto:
            continue  # e.g. AH offered where ESP is wanted
        if len(spi) != _expected_spi_size(protocol, want_spi):
            continue
        bound = chosen.local_index if chosen is not None else len(locals_)
        match = _match_transforms(locals_, bound, number, protocol, spi, transforms)
        if match is not None:
            chosen = match
            if chosen.local_index == 0:
                break  # nothing can beat the first local proposal
    return chosen


def match_accepted(local: ProposalSet, accepted: Sequence[Any], *,
                   expect_spi: bool | None = None, strip_ke: bool = False,
                   force_ke: A.Ke | None = None, default_ke: A.Ke | None = None,
                   default_sn: Sequence[A.Sn] | None = None) -> ChosenProposal | None:
    """Initiator: validate the responder's single accepted proposal.

    Returns ``None`` when it is not one of ours (fail the exchange);
    raises ``ProposalSyntaxError`` when the SA payload itself is bad.
    """
    if len(accepted) != 1:
        raise ProposalSyntaxError("more than one accepted proposal received"
                                  if accepted else "no accepted proposal received")
    number, protocol, spi, transforms = _p(accepted[0])
    locals_ = local._local(_options(strip_ke, force_ke, default_ke, default_sn))
    if number < 1 or number > len(locals_):
        raise ProposalSyntaxError("invalid accepted proposal")
    proto = int(local.protocol_id)
    want_spi = (proto != ProtocolId.IKE) if expect_spi is None else expect_spi
    if protocol != proto or len(spi) != _expected_spi_size(protocol, want_spi):
        return None
    return _match_transforms(locals_, number, number, protocol, spi, transforms,
                             only=number - 1)


# --------------------------------------------------------------- KE helpers

def _ke_id(group: int | A.Ke) -> int:
    return group.ikev2_id if isinstance(group, A.Ke) else int(group)  # type: ignore[return-value]


def first_ke(local: ProposalSet) -> A.Ke | None:
    """The group an initiator puts in its KE payload: the first one proposed."""
    for p in local:
        for ke in p.ke:
            if ke is not A.KE_NONE:
                return ke
    return None


def proposals_include_ke(local: ProposalSet, group: int | A.Ke) -> bool:
    """Initiator: is the group suggested by INVALID_KE_PAYLOAD one we propose?"""
    gid = _ke_id(group)
    return any(ke.ikev2_id == gid for p in local for ke in p.ke)


def invalid_ke_group(chosen: ChosenProposal, received_group: int | A.Ke) -> A.Ke | None:
    """Responder: ``None`` if the KE payload's group is the chosen one, else the
    group to request in INVALID_KE_PAYLOAD (Libreswan: the accepted proposal's
    KE, i.e. the first local group the initiator also offered)."""
    if chosen.ke is None or chosen.ke.ikev2_id == _ke_id(received_group):
        return None
    return chosen.ke


# --------------------------------------------------------------- status text

def format_newest(chosen: ChosenProposal) -> str:
    """``IKEv2 algorithm newest:`` / ``ESP algorithm newest:`` text."""
    if chosen.protocol == ProtocolId.IKE:
        return format_ike_newest(chosen)
    return format_child_newest(chosen)


def format_ike_newest(c: ChosenProposal) -> str:
    """e.g. ``AES_GCM_16_256-HMAC_SHA2_512-DH19`` (pluto ``crypto.c``)."""
    parts = []
    if c.encr is not None:
        parts.append(_jam_transform(c.encr, c.key_bits))
    if c.prf is not None:
        parts.append(c.prf.fqn)
    if c.integ is not None and (c.prf is None or
                                (c.aead and c.integ is not A.INTEG_NONE) or
                                (not c.aead and c.integ.prf is not c.prf)):
        parts.append(c.integ.fqn)
    if c.ke is not None:
        parts.append(c.ke.fqn)
    return "-".join(parts)


def format_child_newest(c: ChosenProposal) -> str:
    """e.g. ``AES_GCM_16_256`` or ``AES_CBC_256-HMAC_SHA2_256_128`` (plutoalg.c)."""
    parts = []
    e = c.encr
    if e is not None:
        bits = c.key_bits
        show = not e.keylen_omitted or (bits != 0 and bits != e.keydeflen)
        parts.append(f"{e.fqn}_{bits}" if show else e.fqn)
    if c.integ is not None and (c.integ is not A.INTEG_NONE or not c.aead):
        parts.append(c.integ.fqn)
    return "-".join(parts)


__all__ = [
    "ChosenProposal", "Proposal", "ProposalError", "ProposalSet", "ProposalSyntaxError",
    "TransformType", "WireProposal", "WireTransform", "algparse", "first_ke",
    "format_child_newest", "format_ike_newest", "format_newest", "format_proposal",
    "format_proposals", "invalid_ke_group", "match_accepted", "parse_proposals",
    "proposals_include_ke", "select_proposal", "to_sa_proposals", "to_wire_proposals",
]
