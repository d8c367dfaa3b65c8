"""Libreswan's ``ike=`` / ``esp=`` / ``ah=`` grammar: the parser proper.

This follows ``lib/libswan/proposals.c``, ``v1_proposals.c`` and
``v2_proposals.c`` behaviour for behaviour: the three-token look-ahead, the
``<encr>-<prf>-<integ>`` versus ``<encr>-<integ>-<prf>`` back-tracking,
default merging (IKEv2) or expansion into one proposal per combination
(IKEv1), duplicate removal, PFS stripping and the exact error wording.
It produces raw ``(type, algorithm, key bits)`` lists; ``proposals.py``
wraps them in ``Proposal`` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import algorithms as A

# proposal transform "types" (same numbering as IKEv2 transform types)
ENCRYPT, PRF, INTEG, KE, SN = 1, 2, 3, 4, 5
ADDKE1, ADDKE7 = 6, 12
TYPE_NAMES = {1: "encrypt", 2: "prf", 3: "integ", 4: "ke", 5: "sn",
              **{t: f"addke{t - 5}" for t in range(ADDKE1, ADDKE7 + 1)}}
_TYPE_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}
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


def jam_transform(alg: A.Alg, keylen: int) -> str:
    return f"{alg.fqn}_{keylen}" if keylen else alg.fqn


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
DEFAULTS: dict[tuple[str, int], tuple[str, str, dict[int, tuple[A.Alg, ...]]]] = {
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

Raw = list[tuple[int, A.Alg, int]]  # (type, algorithm, key bits) in parse order


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


class Parser:
    def __init__(self, protocol: str, version: int, pfs: bool, fips: bool) -> None:
        proto = {"IKE": _IKEV2_IKE if version == 2 else _IKEV1_IKE, "ESP": _ESP,
                 "AH": _AH}[protocol]
        self.proto = proto
        self.version = version
        self.pfs = pfs
        self.fips = fips
        self.defaults = DEFAULTS[(protocol, version)]
        self.logs: list[str] = []
        self.proposals: list[Raw] = []

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

    def _parse_encrypt(self, raw: Raw, toks: _Tokens) -> None:
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

    def _parse_encrypts(self, raw: Raw, toks: _Tokens) -> None:
        self._parse_encrypt(raw, toks)
        while toks.prev[1] == "+":
            self._parse_encrypt(raw, toks)

    def _parse_one(self, raw: Raw, ttype: int, token: str) -> None:
        kind = _KIND[ttype]
        if token == "":
            raise self.error(f"{self.proto.name} {A.STORY[kind]} is empty")
        raw.append((ttype, self._byname(kind, token, token), 0))

    def _parse_algorithms(self, raw: Raw, ttype: int, toks: _Tokens) -> None:
        token = toks.curr[0]
        assert token is not None
        self._parse_one(raw, ttype, token)
        toks.shift()
        while toks.prev[1] == "+":
            token = toks.curr[0]
            self._parse_one(raw, ttype, token if token is not None else "")
            toks.shift()

    def _try(self, raw: Raw, ttype: int, toks: _Tokens) -> bool:
        try:
            self._parse_algorithms(raw, ttype, toks)
        except ProposalError:
            return False
        return True

    def _parse_prfs(self, raw: Raw, toks: _Tokens) -> None:
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

    def _parse_transforms(self, raw: Raw, ttype: int, explicit: bool,
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

    def _parse_proposal(self, text: str) -> Raw:
        raw: Raw = []
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

    def _merge(self, raw: Raw, ttype: int) -> None:
        defaults = self.defaults[2].get(ttype)
        if defaults and not any(t == ttype for t, _, _ in raw):
            raw.extend((ttype, alg, 0) for alg in defaults)

    def _merge_defaults(self, raw: Raw) -> None:
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

    def _aead_none_ok(self, raw: Raw) -> None:
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

    def _expect(self, raw: Raw, ttype: int, expected: bool) -> None:
        present = any(t == ttype for t, _, _ in raw)
        if present and not expected:
            raise self.error(f"{self.proto.name} proposal has unexpected "
                             f"{TYPE_NAMES[ttype]} transform")
        if expected and not present:
            raise self.error(f"{self.proto.name} proposal missing {TYPE_NAMES[ttype]} "
                             "transform")

    def _proposal_ok(self, raw: Raw) -> None:
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

    def _append(self, raw: Raw) -> None:
        p = self.proto.name
        kept: Raw = []
        for i, (t, alg, keylen) in enumerate(raw):
            for pt, palg, pkeylen in raw[:i]:
                # an earlier transform with no key length matches any length
                if pt == t and palg is alg and (pkeylen == 0 or pkeylen == keylen):
                    self.logs.append(f"discarding duplicate {p} {alg.story} "
                                     f"{jam_transform(alg, keylen)}")
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
        raw: Raw = [(t, *v1[t]) for t in (ENCRYPT, PRF, INTEG, KE) if t in v1]
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


def _encrypt_aead(raw: Raw) -> bool:
    encrypts = [a for t, a, _ in raw if t == ENCRYPT]
    return bool(encrypts) and all(a.aead for a in encrypts)  # type: ignore[attr-defined]


def _encrypt_norm(raw: Raw) -> bool:
    encrypts = [a for t, a, _ in raw if t == ENCRYPT]
    return bool(encrypts) and not any(a.aead for a in encrypts)  # type: ignore[attr-defined]


def _integ_none(raw: Raw) -> bool:
    return all(a is A.INTEG_NONE for t, a, _ in raw if t == INTEG)
