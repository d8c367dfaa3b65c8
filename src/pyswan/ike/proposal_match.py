"""IKEv2 SA proposals on the wire, and their negotiation.

Follows ``programs/pluto/ikev2_proposals.c``:

* Emission: one SA proposal per Libreswan proposal.  An encryption
  algorithm without a key length is proposed with both its largest and its
  default key size (IKE: largest first; ESP: default first).  A lone
  INTEG=NONE or KE=NONE is not sent.
* Responder (``select_proposal``): the initiator's proposals are read in
  order, but the winner is the *local* proposal that comes first in local
  preference and that some remote proposal matches completely (every
  proposed transform type matched, every required local type present);
  within it each type takes the first *local* transform the remote
  proposal offered.  So Libreswan's preference order wins, not the
  initiator's.  The accepted proposal keeps the initiator's number and SPI.
* Initiator (``match_accepted``): the single accepted proposal must name
  one of ours and contain only transforms that proposal offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from . import algorithms as A
from .algorithms import ProtocolId
from .proposal_grammar import ADDKE1, ADDKE7, ENCRYPT, INTEG, KE, PRF, SN, jam_transform
from .proposal_grammar import ProposalSyntaxError as ProposalSyntaxError

if TYPE_CHECKING:  # proposals.py re-exports this module, so import it lazily
    from .proposals import Proposal, ProposalSet


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


def local_transforms(p: Proposal, protocol: int, force_ke: A.Ke | None = None,
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

    See ``local_transforms`` for the KE and SN options (``strip_ke`` for the
    IKE_AUTH Child SA).  A lone INTEG=NONE or KE=NONE is not sent (AEAD
    implies INTEG=NONE; RFC 7296 §3.3.3), exactly as Libreswan emits them.
    """
    proto = int(protocol if protocol is not None else ps.protocol_id)
    force = A.KE_NONE if strip_ke else force_ke
    result = []
    for number, p in enumerate(ps, start=1):
        local = local_transforms(p, proto, force, default_ke, default_sn)
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
class LocalProposal:
    protocol: int
    transforms: dict[int, list[tuple[int, int]]]
    index: dict[int, dict[tuple[int, int], int]]  # type -> (id, keylen) -> position
    required: frozenset[int]
    optional: frozenset[int]

    @classmethod
    def build(cls, tr: dict[int, list[tuple[int, int]]], protocol: int) -> LocalProposal:
        index = {t: {entry: i for i, entry in reversed(list(enumerate(lst)))}
                 for t, lst in tr.items()}
        # INTEG=NONE / KE=NONE make the type optional: NONE is implied if absent
        optional = frozenset(t for t, lst in tr.items()
                             if (t == INTEG or t in _KEM_TYPES) and any(i == 0 for i, _ in lst))
        return cls(protocol, tr, index, frozenset(tr) - optional, optional)


class LocalTables(NamedTuple):
    """A ProposalSet ready for matching: per-proposal tables plus one index
    ``type -> (id, key length) -> [(local proposal, position), ...]``."""

    proposals: tuple[LocalProposal, ...]
    index: dict[int, dict[tuple[int, int], list[tuple[int, int]]]]

    @classmethod
    def build(cls, proposals: tuple[LocalProposal, ...]) -> LocalTables:
        index: dict[int, dict[tuple[int, int], list[tuple[int, int]]]] = {}
        for c, lp in enumerate(proposals):
            for t, positions in lp.index.items():
                by_key = index.setdefault(t, {})
                for key, pos in positions.items():
                    by_key.setdefault(key, []).append((c, pos))
        return cls(proposals, index)


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
        from .proposals import Proposal

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
    try:
        ttype, tid, keylen = x.type, x.id, x.key_length
    except AttributeError:  # a plain (type, id[, key_length]) tuple
        return x[0], x[1], (x[2] if len(x) > 2 else 0) or 0
    if getattr(x, "extra_attributes", None):
        return ttype, tid, -1
    return ttype, tid, keylen or 0


def _p(x: Any) -> tuple[int, int, bytes, Sequence[Any]]:
    try:
        return x.number, x.protocol, bytes(x.spi or b""), x.transforms
    except AttributeError:  # a plain (number, protocol, spi, transforms) tuple
        return x[0], x[1], bytes(x[2]), x[3]


def _expected_spi_size(protocol: int, expect_spi: bool) -> int:
    if not expect_spi:
        return 0
    return 8 if protocol == ProtocolId.IKE else 4


def _match_transforms(tables: LocalTables, lo: int, hi: int, number: int, protocol: int,
                      spi: bytes, transforms: Sequence[Any]) -> ChosenProposal | None:
    """process_transforms(): the best local proposal in [lo, hi) this remote
    proposal matches, or None."""
    locals_ = tables.proposals
    n = len(locals_)
    # per local proposal: type -> position of the best transform so far
    best: list[dict[int, int]] = [{} for _ in range(n)]
    kems: list[set[int]] = [set() for _ in range(n)]
    proposed: set[int] = set()
    first_integ = -1
    index = tables.index
    for tr in transforms:
        ttype, tid, keylen = _t(tr)
        if ttype == 0:
            raise ProposalSyntaxError(f"proposal {number} has a transform of type 0")
        if ttype >= _TYPE_ROOF or keylen < 0:
            return None  # unknown transform type or attribute: try the next proposal
        proposed.add(ttype)
        if ttype == INTEG:
            if first_integ < 0:
                first_integ = tid
            elif first_integ == 0 or tid == 0:
                return None  # NONE mixed with real integrity
        if lo >= hi:
            continue  # nothing left to beat: only checking the syntax
        hits = index.get(ttype, _NO_HITS).get((tid, keylen))
        if not hits:
            continue
        kem = ttype in _KEM_TYPES
        for c, pos in hits:  # in local proposal order
            if c < lo:
                continue
            if c >= hi:
                break
            b = best[c]
            cur = b.get(ttype)
            if cur is not None and pos >= cur:
                continue  # the earlier match is preferred locally
            if kem:
                if tid != 0 and tid in kems[c]:
                    continue  # RFC 9370: no duplicate KE across ADDKE types
                if cur is not None:
                    kems[c].discard(locals_[c].transforms[ttype][cur][0])
                kems[c].add(tid)
            b[ttype] = pos
    for c in range(lo, hi):
        matched = best[c].keys()
        lp = locals_[c]
        if proposed <= matched and lp.required <= matched:
            return _chosen(lp, c, best[c], number, protocol, spi)
    return None


_NO_HITS: dict[tuple[int, int], list[tuple[int, int]]] = {}


def _chosen(lp: LocalProposal, index: int, best: dict[int, int], number: int,
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


def local_options(strip_ke: bool, force_ke: A.Ke | None, default_ke: A.Ke | None,
                  default_sn: Sequence[A.Sn] | None) -> tuple[Any, ...]:
    """The cache key for ``ProposalSet.local_proposals``."""
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
    tables = local.local_proposals(local_options(strip_ke, force_ke, default_ke, default_sn))
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
        # later proposals only count if they match a better local proposal,
        # but are still read (a malformed one is INVALID_SYNTAX)
        bound = chosen.local_index if chosen is not None else len(tables.proposals)
        match = _match_transforms(tables, 0, bound, number, protocol, spi, transforms)
        if match is not None:
            chosen = match
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
    tables = local.local_proposals(local_options(strip_ke, force_ke, default_ke, default_sn))
    if number < 1 or number > len(tables.proposals):
        raise ProposalSyntaxError("invalid accepted proposal")
    proto = int(local.protocol_id)
    want_spi = (proto != ProtocolId.IKE) if expect_spi is None else expect_spi
    if protocol != proto or len(spi) != _expected_spi_size(protocol, want_spi):
        return None
    return _match_transforms(tables, number - 1, number, number, protocol, spi, transforms)


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
        parts.append(jam_transform(c.encr, c.key_bits))
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
