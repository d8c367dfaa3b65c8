"""Child SA negotiation shared by IKE_AUTH (and later CREATE_CHILD_SA): proposal choice,
traffic selectors, transport mode, KEYMAT and the description handed to the kernel."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from .. import algorithms as A
from .. import kdf
from ..codec import SA, GenericPayload, Notify, Payload, TSi, TSr
from ..constants import NotifyType, PayloadType, ProtocolId
from ..proposal_grammar import ProposalSyntaxError
from ..proposals import ChosenProposal, format_child_newest, match_accepted, select_proposal
from . import ts as T
from .actions import ChildSaKeys
from .message import notify, remote_text
from .policy import Policy, Selector, shared_cache
from .sa import ChildSa, IkeSa

if TYPE_CHECKING:
    from .engine import Engine

# errors an IKE_AUTH response may carry about the Child SA alone (RFC 7296 1.2)
CHILD_ERRORS = frozenset({
    NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.NO_ADDITIONAL_SAS, NotifyType.INTERNAL_ADDRESS_FAILURE,
    NotifyType.FAILED_CP_REQUIRED, NotifyType.TS_UNACCEPTABLE, NotifyType.INVALID_SELECTORS,
})
_SN = {"yes": (A.SN_PARTIAL_64_BIT,), "no": (A.SN_32_BIT,),
       "either": (A.SN_PARTIAL_64_BIT, A.SN_32_BIT)}


def esn_options(policy: Policy) -> tuple[A.Sn, ...]:
    return _SN.get(policy.esn, _SN["either"])


# IPCOMP (RFC 7296 2.22, 3.10.1): N(IPCOMP_SUPPORTED) carries a 2-octet CPI and a 1-octet
# transform ID; Libreswan offers and accepts only DEFLATE, with CPIs in its negotiated range
IPCOMP_DEFLATE = 2
IPCOMP_FIRST_NEGOTIATED = 256
IPCOMP_LAST_NEGOTIATED = 61439


def compress(policy: Policy) -> bool:
    """compress=yes: the Child SAs of ``policy`` offer (and accept) IPCOMP."""
    return getattr(policy.esp, "ipcomp", False)


def ipcomp_cpi(spi_in: int) -> int:
    """Our inbound CPI for the Child SA whose inbound SPI is ``spi_in``: derived from the
    SPI (unique among ours) so that nothing more need be kept while the exchange runs."""
    span = IPCOMP_LAST_NEGOTIATED - IPCOMP_FIRST_NEGOTIATED + 1
    return IPCOMP_FIRST_NEGOTIATED + spi_in % span


def ipcomp_notify(cpi: int) -> Notify:
    return notify(NotifyType.IPCOMP_SUPPORTED, cpi.to_bytes(2, "big") + bytes([IPCOMP_DEFLATE]))


def peer_ipcomp(policy: Policy, payloads: list[Payload], responder: bool) -> int | str:
    """The peer's CPI from its N(IPCOMP_SUPPORTED) (0: none, or ignored as we have
    compress=no and answer; ikev2_child.c), or why its offer cannot be used."""
    n = next((p for p in payloads if type(p) is Notify
              and p.type == NotifyType.IPCOMP_SUPPORTED), None)
    if n is None:
        return 0
    if not compress(policy):
        if responder:
            return 0  # "Ignored IPCOMP request as connection has compress=no"
        return ("Unexpected IPCOMP request as our connection policy did not indicate "
                "support for it")
    if len(n.data) < 3:
        return f"N(IPCOMP_SUPPORTED) is {len(n.data)} octets, need 3"
    cpi, transform = int.from_bytes(n.data[:2], "big"), n.data[2]
    if transform != IPCOMP_DEFLATE:
        return f"unsupported IPCOMP compression algorithm {transform}"
    if cpi < IPCOMP_FIRST_NEGOTIATED:
        return f"illegal IPCOMP CPI {cpi}"
    return cpi


def sa_payload(policy: Policy, spi: int) -> Payload:
    """Our ESP (or, phase2=ah, AH) proposals for IKE_AUTH (no KE: the IKE SA's keys are
    used).

    Encoded once per connection; each Child SA only writes its SPI into every proposal."""
    cache = shared_cache("esp", policy.esp)
    key = "sa:" + policy.esn
    cached = cache.get(key)
    if cached is None:
        from ..proposals import to_sa_proposals

        proposals = to_sa_proposals(policy.esp, policy.esp.protocol_id, b"\0\0\0\0",
                                    strip_ke=True,
                                    default_sn=esn_options(policy))
        parts, offsets, pos = [], [], 0
        for i, p in enumerate(proposals):
            enc = p.encode(i == len(proposals) - 1)
            offsets.append(pos + 8)  # proposal header is 8 octets, then the SPI
            parts.append(enc)
            pos += len(enc)
        cached = cache[key] = (b"".join(parts), tuple(offsets))
    body, offsets = cached
    buf = bytearray(body)
    raw = spi.to_bytes(4, "big")
    for off in offsets:
        buf[off:off + 4] = raw
    return GenericPayload(PayloadType.SA, bytes(buf))


def ts_payloads(local: Sequence[Selector], remote: Sequence[Selector], initiator: bool
                ) -> tuple[Payload, Payload]:
    """TSi and TSr (encoded once per pair of selector lists)."""
    return _ts_payloads(tuple(local), tuple(remote), initiator)


@lru_cache(maxsize=4096)
def _ts_payloads(local: tuple[Selector, ...], remote: tuple[Selector, ...], initiator: bool
                 ) -> tuple[Payload, Payload]:
    mine = [s.to_ts() for s in local]
    theirs = [s.to_ts() for s in remote]
    tsi, tsr = (TSi(mine), TSr(theirs)) if initiator else (TSi(theirs), TSr(mine))  # type: ignore[arg-type]
    return (GenericPayload(PayloadType.TSi, tsi.encode_body()),
            GenericPayload(PayloadType.TSr, tsr.encode_body()))


def choose(eng: Engine, sa: IkeSa, payloads: list[Payload]
           ) -> tuple[Policy, ChosenProposal, tuple[Selector, ...], tuple[Selector, ...], str
                      ] | int:
    """Responder: pick the Child SA's proposal, selectors and mode; returns
    ``(policy, chosen, local_ts, remote_ts, mode)`` or the error notification to send."""
    sa_p = tsi = tsr = None
    transport = False
    for p in payloads:
        t = type(p)
        if t is SA and sa_p is None:
            sa_p = p
        elif t is TSi and tsi is None:
            tsi = p
        elif t is TSr and tsr is None:
            tsr = p
        elif t is Notify and p.type == NotifyType.USE_TRANSPORT_MODE:
            transport = True
    assert sa_p is not None and tsi is not None and tsr is not None
    policy = sa.policy
    proposed_i, proposed_r = T.selectors(tsi.selectors), T.selectors(tsr.selectors)
    fit = _fit(policy, proposed_i, proposed_r)
    if fit is None:
        # another connection with the same IDs may carry these selectors
        for other in _siblings(eng, sa):
            fit = _fit(other, proposed_i, proposed_r)
            if fit is not None:
                eng.log(sa.serial, f'switched to "{other.name}"')
                eng.switch_policy(sa, other)
                policy = other
                break
    if fit is None:
        eng.log(sa.serial, "no IKE_AUTH Child SA traffic selectors match: proposed "
                           f"{_sels(proposed_i)}==={_sels(proposed_r)}, connection "
                           f"{_sels(policy.remote_ts)}==={_sels(policy.local_ts)}")
        return NotifyType.TS_UNACCEPTABLE
    # the proposals of the connection the selectors chose (Libreswan matches the TS first:
    # connections between the same hosts may differ in esp=/ah=)
    try:
        chosen = select_proposal(policy.esp, sa_p.proposals, strip_ke=True,
                                 default_sn=esn_options(policy))
    except ProposalSyntaxError as e:
        eng.log(sa.serial, f"Child SA proposal is corrupt: {e}")
        return NotifyType.INVALID_SYNTAX
    if chosen is None:
        eng.log(sa.serial, f"no local proposal matches remote proposals {remote_text(sa_p)}")
        return NotifyType.NO_PROPOSAL_CHOSEN
    remote_ts, local_ts = fit
    if policy.mode == "transport" and not transport:
        eng.log(sa.serial, "connection requires transport mode but the peer asked for tunnel "
                           "mode")
        return NotifyType.NO_PROPOSAL_CHOSEN
    mode = "transport" if transport and policy.mode == "transport" else "tunnel"
    return policy, chosen, local_ts, remote_ts, mode


def _fit(policy: Policy, proposed_i: list[Selector], proposed_r: list[Selector]
         ) -> tuple[tuple[Selector, ...], tuple[Selector, ...]] | None:
    rule = T.responder_rule(policy.narrowing, policy.is_template)
    remote = T.narrow(policy.remote_ts, proposed_i, rule)
    if remote is None:
        return None
    local = T.narrow(policy.local_ts, proposed_r, rule)
    if local is None:
        return None
    return remote, local


def policy_for_ts(eng: Engine, sa: IkeSa, tsi: list[Selector], tsr: list[Selector]
                  ) -> Policy:
    """Responder, CREATE_CHILD_SA: the connection a new Child SA belongs to, that of the
    IKE SA or another with the same peer whose selectors fit (several connections share
    one IKE SA)."""
    for policy in (sa.policy, *_siblings(eng, sa)):
        if _fit(policy, tsi, tsr) is not None:
            return policy
    return sa.policy


def _siblings(eng: Engine, sa: IkeSa) -> list[Policy]:
    if sa.peer_id is None:
        return []
    cur = sa.policy
    return [p for p in eng.policies.for_peer(sa.local[0], sa.remote[0], sa.peer_id)
            if p is not cur and p.local_id.key == cur.local_id.key
            and p.remote_auth == cur.remote_auth]


def _sels(sels: Sequence[Selector]) -> str:
    return ",".join(str(s) for s in sels) or "none"


def check_response(eng: Engine, sa: IkeSa, child: ChildSa, payloads: list[Payload],
                   pfs: bool = False
                   ) -> tuple[ChosenProposal, tuple[Selector, ...], tuple[Selector, ...], str
                              ] | str:
    """Initiator: validate the responder's Child SA answer; returns the agreed values or
    a reason to reject it."""
    policy = child.policy
    sa_p = tsi = tsr = None
    transport = False
    for p in payloads:
        t = type(p)
        if t is SA and sa_p is None:
            sa_p = p
        elif t is TSi and tsi is None:
            tsi = p
        elif t is TSr and tsr is None:
            tsr = p
        elif t is Notify and p.type == NotifyType.USE_TRANSPORT_MODE:
            transport = True
    if sa_p is None or tsi is None or tsr is None:
        return "response is missing SA, TSi or TSr"
    try:
        chosen = match_accepted(policy.esp, sa_p.proposals, strip_ke=not pfs,
                                default_ke=sa.ke_group if pfs else None,
                                default_sn=esn_options(policy))
    except ProposalSyntaxError as e:
        return f"accepted proposal is invalid: {e}"
    if chosen is None:

        return f"remote accepted the invalid proposal {remote_text(sa_p)}"
    rule = T.initiator_rule(policy.narrowing)
    local = T.narrow(policy.local_ts, T.selectors(tsi.selectors), rule) \
        if not policy.narrowing else _within(policy.local_ts, T.selectors(tsi.selectors))
    remote = T.narrow(policy.remote_ts, T.selectors(tsr.selectors), rule) \
        if not policy.narrowing else _within(policy.remote_ts, T.selectors(tsr.selectors))
    if local is None or remote is None:
        return "responder's traffic selectors are not acceptable"
    if transport and policy.mode != "transport":
        return "responder wants transport mode but the connection is tunnel"
    if policy.mode == "transport" and not transport:
        return "responder refused transport mode"
    return chosen, local, remote, "transport" if transport else "tunnel"


def _within(ends: Sequence[Selector], got: list[Selector]) -> tuple[Selector, ...] | None:
    """narrowing=yes initiator: every TS the responder chose must fit within some END."""
    if not got or not all(any(e.contains(g) for e in ends) for g in got):
        return None
    return tuple(got)


def make_keys(sa: IkeSa, child: ChildSa, chosen: ChosenProposal, ni: bytes | None = None,
              nr: bytes | None = None, g_ir: bytes | None = None, cpi_out: int = 0
              ) -> ChildSaKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) split per direction (RFC 7296 2.17).

    IKE_AUTH uses the IKE SA's nonces; CREATE_CHILD_SA its own (and a new g^ir with PFS).
    "Initiator" is whoever started the exchange that created the Child SA.  AH takes
    integrity keys only; ``cpi_out`` (the peer's CPI) adds IPCOMP with our derived CPI."""
    encr = chosen.encr
    ah = chosen.protocol == ProtocolId.AH
    assert encr is not None or ah
    integ = None if chosen.aead or chosen.integ in (None, A.INTEG_NONE) else chosen.integ
    ekb = encr.keymat_size(chosen.key_bits) if encr is not None else 0
    ikb = integ.key_size if integ is not None else 0
    km = kdf.child_keymat(sa.prf, sa.sk_d, ni or sa.ni, nr or sa.nr, ekb, ikb, g_ir)
    if child.role == "initiator":
        e_out, a_out, e_in, a_in = km.encr_i, km.integ_i, km.encr_r, km.integ_r
    else:
        e_out, a_out, e_in, a_in = km.encr_r, km.integ_r, km.encr_i, km.integ_i
    policy = child.policy
    return ChildSaKeys(
        "ah" if ah else "esp", child.mode, sa.local, sa.remote, child.spi_in, child.spi_out,
        (encr.xfrm_name or encr.fqn) if encr is not None else "", e_in, e_out,
        encr.xfrm_icv_bits if encr is not None else 0,
        integ.xfrm_name if integ is not None else None, a_in, a_out,
        integ.xfrm_trunc_bits if integ is not None else 0,
        chosen.sn is A.SN_PARTIAL_64_BIT, child.local_ts, child.remote_ts,
        policy.replay_window, sa.nat_local or sa.nat_remote, format_child_newest(chosen),
        policy.ipsec_lifetime,
        chosen.ke.fqn if g_ir is not None and chosen.ke is not None else "",
        ipcomp_cpi(child.spi_in) if cpi_out else 0, cpi_out)


def esp_name(sa: IkeSa, policy: Policy) -> str:
    """``ESPinUDP`` once NAT has been detected (ESP goes in UDP), else ``ESP``."""
    # (encapsulation=yes sets the NAT flags when IKE_SA_INIT completes)
    proto = "AH" if policy.esp.protocol == "AH" else "ESP"
    return proto + "inUDP" if sa.nat_local or sa.nat_remote else proto


def request_details(sa: IkeSa, policy: Policy, spi_in: int) -> str:
    """``{ESP <0x12345678}`` (``IPCOMP <0x1234`` too with compress=yes) as the initiator
    logs its Child SA request (ikev2_child.c's jam_v2_success_child_sa_request_details)."""
    comp = f" IPCOMP <0x{ipcomp_cpi(spi_in):04x}" if compress(policy) else ""
    return f"{{{esp_name(sa, policy)} <0x{spi_in:08x}{comp}}}"


def details(child: ChildSa, keys: ChildSaKeys) -> str:
    """``{ESP/ESN=>0x12345678 <0x9abcdef0 xfrm=AES_GCM_16_256 DPD=passive}`` (ipsec_doi.c's
    jam_child_sa_details)."""
    esn = "/ESN" if keys.esn else ""
    if keys.protocol == "ah":  # AH: no inUDP and no PFS group (jam_child_sa_details)
        sa = f"AH{esn}=>0x{keys.spi_out:08x} <0x{keys.spi_in:08x} xfrm={keys.algorithms}"
    else:
        esp = "ESPinUDP" if keys.encap else "ESP"
        pfs = f"-{keys.pfs_group}" if keys.pfs_group else ""
        sa = (f"{esp}{esn}=>0x{keys.spi_out:08x} <0x{keys.spi_in:08x} "
              f"xfrm={keys.algorithms}{pfs}")
    comp = f" IPCOMP=>0x{keys.cpi_out:08x} <0x{keys.cpi_in:08x}" if keys.cpi_out else ""
    # NATD: the peer's address and port as seen through the NAT
    natd = f" NATD={keys.remote[0]}:{keys.remote[1]}" if keys.encap else ""
    return f"{{{sa}{comp}{natd} DPD={child.policy.dpd}}}"


def established_line(child: ChildSa, keys: ChildSaKeys, rekeyed: int = 0) -> str:
    role = "initiator" if child.role == "initiator" else "responder"
    what = f"rekeyed Child SA #{rekeyed}" if rekeyed else "established Child SA"
    return (f"{role} {what} using #{child.ike.serial}; IPsec {child.mode} "
            f"{T.describe_pairs(child.local_ts, child.remote_ts)} {details(child, keys)}")
