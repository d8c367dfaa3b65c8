"""Algorithm proposals: Libreswan's ``ike=`` / ``esp=`` / ``ah=`` lines.

* ``parse_proposals()`` turns a line (or ``None`` for the defaults) into a
  ``ProposalSet``, exactly as Libreswan does (grammar in
  ``proposal_grammar.py``); errors carry Libreswan's wording.
* ``format_proposal()`` prints a proposal as ``ipsec algparse`` and the
  ``IKE algorithms:`` status line do; ``algparse()`` mimics the tool.
* Wire forms and negotiation live in ``proposal_match.py`` and are
  re-exported here: ``to_wire_proposals``/``to_sa_proposals``,
  ``select_proposal`` (responder), ``match_accepted`` (initiator), the
  INVALID_KE_PAYLOAD helpers and the ``algorithm newest`` formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from . import algorithms as A
from .algorithms import ProtocolId, TransformType
from .proposal_grammar import (
    ADDKE1,
    ADDKE7,
    ENCRYPT,
    INTEG,
    KE,
    PRF,
    SN,
    TYPE_NAMES,
    Parser,
    ProposalError,
    ProposalSyntaxError,
    Raw,
    jam_transform,
)

if TYPE_CHECKING:
    from .proposal_match import LocalTables

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
    # compress=yes: Child SAs negotiated with these proposals also offer IPCOMP (DEFLATE,
    # RFC 7296 2.22); a Child SA setting, carried here as the engine's Policy takes its
    # Child SA configuration from this set
    ipcomp: bool = False

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
    def _local_cache(self) -> dict[tuple[Any, ...], LocalTables]:
        return {}

    def local_proposals(self, options: tuple[Any, ...] = (None, None, None)) -> LocalTables:
        """Match tables for selection, built once per option set (see
        ``proposal_match.local_options``)."""
        cached = self._local_cache.get(options)
        if cached is None:
            from .proposal_match import LocalProposal, LocalTables, local_transforms

            proto = self.protocol_id
            cached = LocalTables.build(tuple(
                LocalProposal.build(local_transforms(p, proto, *options), proto)
                for p in self.proposals))
            self._local_cache[options] = cached
        return cached


# --------------------------------------------------------------- formatting

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
            out.append(TYPE_NAMES[t] + "=")
        out.append(jam_transform(alg, keylen))
        prev = t
    return "".join(out)


def format_proposals(ps: Iterable[Proposal]) -> str:
    return ", ".join(format_proposal(p) for p in ps)


# ------------------------------------------------------------------ parsing

def _to_proposal(raw: Raw) -> Proposal:
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
    ``ProposalError`` with Libreswan's message.  Results are immutable and
    cached, so connections with the same line share one ``ProposalSet`` (and
    its precomputed selection tables).
    """
    name = protocol.upper()
    if name not in ("IKE", "ESP", "AH"):
        raise ValueError(f"unknown proposal protocol {protocol!r}")
    return _parse_cached(name, text, ike_version, pfs, fips)


@lru_cache(maxsize=512)
def _parse_cached(name: str, text: str | None, ike_version: int, pfs: bool,
                  fips: bool) -> ProposalSet:
    parser = Parser(name, ike_version, pfs, fips)
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


# negotiation lives in proposal_match (which imports this module's types)
from .proposal_match import (  # noqa: E402
    ChosenProposal,
    WireProposal,
    WireTransform,
    first_ke,
    format_child_newest,
    format_ike_newest,
    format_newest,
    invalid_ke_group,
    match_accepted,
    proposals_include_ke,
    select_proposal,
    to_sa_proposals,
    to_wire_proposals,
)

__all__ = [
    "ChosenProposal", "Proposal", "ProposalError", "ProposalSet", "ProposalSyntaxError",
    "TransformType", "WireProposal", "WireTransform", "algparse", "first_ke",
    "format_child_newest", "format_ike_newest", "format_newest", "format_proposal",
    "format_proposals", "invalid_ke_group", "match_accepted", "parse_proposals",
    "proposals_include_ke", "select_proposal", "to_sa_proposals", "to_wire_proposals",
]
