"""IKEv1 SA payloads from ``ike=``/``esp=`` proposal sets, and the responder's choice.

IKEv1 has one Proposal payload whose Transforms are complete suites (one per
combination), unlike IKEv2's per-type transform lists; the responder picks the first
of the *peer's* transforms it accepts (Libreswan's order) and echoes it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from .. import algorithms as A
from ..proposals import ProposalSet
from .codec import SA, Attribute, IsakmpDecodeError, Proposal, Transform
from .constants import (
    IKE_BASIC_ONLY,
    IPSEC_BASIC_ONLY,
    KEY_IKE,
    AuthMethod,
    EncapMode,
    IkeAttr,
    IpsecAttr,
    LifeType,
    NotifyType,
    ProtocolId,
)


class NoProposalChosen(Exception):
    """Nothing the peer offered is acceptable; ``notify`` says why."""

    def __init__(self, text: str, notify: int = NotifyType.NO_PROPOSAL_CHOSEN) -> None:
        super().__init__(text)
        self.notify = notify


def _by(attr: str, algs: tuple[A.Alg, ...], *, ike_only: bool = False) -> dict[int, A.Alg]:
    out: dict[int, A.Alg] = {}
    for a in algs:
        wire = getattr(a, attr)
        if wire is not None and (a.ike or not ike_only):
            out.setdefault(wire, a)
    return out


_OAKLEY_ENCR = _by("ikev1_oakley_id", A.ENCRYPT, ike_only=True)
_OAKLEY_HASH = _by("ikev1_oakley_id", A.PRFS)
_OAKLEY_GROUP = {k: v for k, v in _by("ikev1_oakley_id", A.KES).items() if k}
_ESP_ENCR = _by("ikev1_ipsec_id", A.ENCRYPT)
_ESP_INTEG = _by("ikev1_ipsec_id", A.INTEGS)


def _key_lengths(encr: A.Encr, bits: int, longest_first: bool) -> tuple[int, ...]:
    """Key lengths to propose: the one asked for, else both the default and the longest
    (Libreswan: longest first for IKE, default first for ESP, which is why its logs show
    ``cipher=AES_CBC_256`` but ``xfrm=AES_CBC_128``); none when the cipher has no Key
    Length attribute."""
    if encr.keylen_omitted:
        return (0,)
    if bits:
        return (bits,)
    if encr.max_key_length != encr.keydeflen:
        both = (encr.max_key_length, encr.keydeflen)
        return both if longest_first else both[::-1]
    return (encr.keydeflen,)


def _life(value: float) -> bytes:
    return int(value).to_bytes(4, "big")


# ------------------------------------------------------------------ phase 1


@dataclass(frozen=True, slots=True)
class Phase1Choice:
    encr: A.Encr
    key_bits: int
    prf: A.Prf
    ke: A.Ke
    auth: int
    lifetime: float
    transform: Transform

    @property
    def key_size(self) -> int:
        return (self.key_bits or self.encr.keydeflen) // 8

    def story(self, auth_name: str) -> str:
        """``{auth=PRESHARED_KEY cipher=AES_CBC_256 integ=HMAC_SHA2_256 group=MODP2048}``"""
        cipher = self.encr.fqn + (f"_{self.key_bits}" if self.key_bits else "")
        return (f"{{auth={auth_name} cipher={cipher} integ={self.prf.fqn} "
                f"group={self.ke.fqn}}}")


def phase1_sa(ike: ProposalSet, auth: int, lifetime: float) -> SA:
    """The initiator's phase 1 SA payload."""
    transforms: list[Transform] = []
    for p in ike:
        for (encr, bits), prf_alg, ke in product(p.encr, p.prf, p.ke):
            if encr.ikev1_oakley_id is None or prf_alg.ikev1_oakley_id is None \
                    or not ke.ikev1_oakley_id:
                continue
            for kl in _key_lengths(encr, bits, True):
                attrs = [Attribute(IkeAttr.LIFE_TYPE, LifeType.SECONDS),
                         Attribute(IkeAttr.LIFE_DURATION, _life(lifetime)),
                         Attribute(IkeAttr.ENCRYPTION, encr.ikev1_oakley_id),
                         Attribute(IkeAttr.HASH, prf_alg.ikev1_oakley_id),
                         Attribute(IkeAttr.AUTH_METHOD, auth),
                         Attribute(IkeAttr.GROUP_DESCRIPTION, ke.ikev1_oakley_id)]
                if kl:
                    attrs.append(Attribute(IkeAttr.KEY_LENGTH, kl))
                transforms.append(Transform(len(transforms), KEY_IKE, attrs))
    return SA([Proposal(1, ProtocolId.ISAKMP, b"", transforms)])


def _attrs(t: Transform, basic_only: frozenset[int], known: type) -> dict[int, Attribute]:
    seen: dict[int, Attribute] = {}
    for a in t.attributes:
        if a.type in seen:
            raise IsakmpDecodeError(f"transform repeats attribute {a.type}",
                                    NotifyType.BAD_PROPOSAL_SYNTAX)
        if a.type not in known._value2member_map_:
            raise NoProposalChosen(f"unknown attribute {a.type}",
                                   NotifyType.ATTRIBUTES_NOT_SUPPORTED)
        if a.type in basic_only and not a.basic:
            raise IsakmpDecodeError(f"attribute {known(a.type).name} must be basic",
                                    NotifyType.BAD_PROPOSAL_SYNTAX)
        seen[a.type] = a
    return seen


def _lifetime(attrs: dict[int, Attribute], type_attr: int, dur_attr: int, default: float
              ) -> float:
    """Seconds asked for (kilobyte limits are ignored, as Libreswan does)."""
    if type_attr in attrs and attrs[type_attr].as_int() == LifeType.SECONDS \
            and dur_attr in attrs:
        return float(attrs[dur_attr].as_int())
    return default


def phase1_transform(t: Transform) -> Phase1Choice | None:
    """What a peer's transform means, or None when we cannot do it."""
    if t.transform_id != KEY_IKE:
        return None
    attrs = _attrs(t, IKE_BASIC_ONLY, IkeAttr)
    need = (IkeAttr.ENCRYPTION, IkeAttr.HASH, IkeAttr.AUTH_METHOD, IkeAttr.GROUP_DESCRIPTION)
    if any(k not in attrs for k in need):
        return None
    encr = _OAKLEY_ENCR.get(attrs[IkeAttr.ENCRYPTION].as_int())
    prf_alg = _OAKLEY_HASH.get(attrs[IkeAttr.HASH].as_int())
    ke = _OAKLEY_GROUP.get(attrs[IkeAttr.GROUP_DESCRIPTION].as_int())
    if encr is None or prf_alg is None or ke is None or IkeAttr.PRF in attrs:
        return None
    bits = attrs[IkeAttr.KEY_LENGTH].as_int() if IkeAttr.KEY_LENGTH in attrs else 0
    assert isinstance(encr, A.Encr) and isinstance(prf_alg, A.Prf) and isinstance(ke, A.Ke)
    if encr.keylen_omitted:
        if bits:
            return None
    elif not bits:
        bits = encr.keydeflen
    elif not encr.has_key_length(bits):
        return None
    life = _lifetime(attrs, IkeAttr.LIFE_TYPE, IkeAttr.LIFE_DURATION, 0.0)
    return Phase1Choice(encr, bits, prf_alg, ke, attrs[IkeAttr.AUTH_METHOD].as_int(), life, t)


def _allowed_p1(ike: ProposalSet, c: Phase1Choice) -> bool:
    for p in ike:
        for (encr, bits), prf_alg, ke in product(p.encr, p.prf, p.ke):
            if encr is c.encr and prf_alg is c.prf and ke is c.ke \
                    and (not bits or bits == c.key_bits or encr.keylen_omitted):
                return True
    return False


def _single_proposal(sa: SA, protocol: int) -> Proposal:
    if len(sa.proposals) != 1:
        raise NoProposalChosen(f"{len(sa.proposals)} proposals (one expected)",
                               NotifyType.BAD_PROPOSAL_SYNTAX)
    prop = sa.proposals[0]
    if prop.protocol != protocol:
        raise NoProposalChosen(f"proposal protocol {prop.protocol}",
                               NotifyType.INVALID_PROTOCOL_ID)
    return prop


def select_phase1(sa: SA, ike: ProposalSet, auth_methods: tuple[int, ...],
                  max_lifetime: float) -> Phase1Choice:
    """The responder's choice among the peer's phase 1 transforms (raises
    :class:`NoProposalChosen` or, for syntax errors, ``IsakmpDecodeError``)."""
    if len(sa.proposals) != 1:  # Libreswan's wording and notification
        raise NoProposalChosen("Proposal Payload must be alone in Oakley SA; found "
                               "ISAKMP_NEXT_P following Proposal",
                               NotifyType.PAYLOAD_MALFORMED)
    prop = _single_proposal(sa, ProtocolId.ISAKMP)
    if prop.spi and len(prop.spi) != 16:
        raise NoProposalChosen("phase 1 proposal SPI size", NotifyType.INVALID_SPI)
    for t in prop.transforms:
        try:
            c = phase1_transform(t)
        except NoProposalChosen:  # an attribute we do not know: not this transform
            continue
        if c is None or c.auth not in auth_methods or not _allowed_p1(ike, c):
            continue
        life = min(c.lifetime, max_lifetime) if c.lifetime else max_lifetime
        return Phase1Choice(c.encr, c.key_bits, c.prf, c.ke, c.auth, life, t)
    raise NoProposalChosen("no acceptable Oakley Transform")


def accept_phase1(reply: SA, sent: SA) -> Phase1Choice:
    """The initiator checks the responder's one transform was among those offered."""
    prop = _single_proposal(reply, ProtocolId.ISAKMP)
    if len(prop.transforms) != 1:
        raise NoProposalChosen("responder returned more than one transform",
                               NotifyType.BAD_PROPOSAL_SYNTAX)
    t = prop.transforms[0]
    c = phase1_transform(t)
    offered = [(o.transform_id, sorted((a.type, a.value) for a in o.attributes
                                       if a.type not in (IkeAttr.LIFE_DURATION,)))
               for o in sent.proposals[0].transforms]
    mine = (t.transform_id, sorted((a.type, a.value) for a in t.attributes
                                   if a.type not in (IkeAttr.LIFE_DURATION,)))
    if c is None or mine not in offered:
        raise NoProposalChosen("responder chose a transform we did not offer")
    return c


# ------------------------------------------------------------------ phase 2


@dataclass(frozen=True, slots=True)
class Phase2Choice:
    encr: A.Encr
    key_bits: int
    integ: A.Integ | None
    ke: A.Ke | None
    encap: int
    lifetime: float
    transform: Transform
    proposal: int = 1  # the chosen Proposal's number, echoed in the reply

    @property
    def encr_keymat(self) -> int:
        return self.encr.keymat_size(self.key_bits)

    @property
    def integ_keymat(self) -> int:
        return self.integ.key_size if self.integ is not None else 0

    @property
    def xfrm_story(self) -> str:
        """``AES_CBC_128-HMAC_SHA1_96`` (the ``xfrm=`` of the established line)."""
        name = self.encr.fqn + (f"_{self.key_bits}" if self.key_bits else "")
        if self.integ is not None and self.integ is not A.INTEG_NONE:
            name += "-" + self.integ.fqn
        return name


def pfs_group(esp: ProposalSet, phase1: A.Ke) -> A.Ke:
    """The PFS group: the first one on esp=, else the phase 1 group (Libreswan)."""
    for p in esp:
        for ke in p.ke:
            if ke.ikev1_ipsec_id:
                return ke
    return phase1


def phase2_sa(esp: ProposalSet, spi: int, encap: int, lifetime: float,
              group: A.Ke | None) -> SA:
    transforms: list[Transform] = []
    for p in esp:
        integs: tuple[A.Integ | None, ...] = p.integ or (None,)
        for (encr, bits), integ in product(p.encr, integs):
            if encr.ikev1_ipsec_id is None:
                continue
            if integ is not None and integ is not A.INTEG_NONE and integ.ikev1_ipsec_id is None:
                continue
            for kl in _key_lengths(encr, bits, False):
                attrs = [Attribute(IpsecAttr.LIFE_TYPE, LifeType.SECONDS),
                         Attribute(IpsecAttr.LIFE_DURATION, _life(lifetime))]
                if group is not None:
                    attrs.append(Attribute(IpsecAttr.GROUP_DESCRIPTION,
                                           group.ikev1_ipsec_id or 0))
                attrs.append(Attribute(IpsecAttr.ENCAPSULATION_MODE, encap))
                if integ is not None and integ is not A.INTEG_NONE:
                    attrs.append(Attribute(IpsecAttr.AUTH_ALGORITHM,
                                           integ.ikev1_ipsec_id or 0))
                if kl:
                    attrs.append(Attribute(IpsecAttr.KEY_LENGTH, kl))
                transforms.append(Transform(len(transforms), encr.ikev1_ipsec_id, attrs))
    return SA([Proposal(1, ProtocolId.ESP, spi.to_bytes(4, "big"), transforms)])


def phase2_transform(t: Transform) -> Phase2Choice | None:
    attrs = _attrs(t, IPSEC_BASIC_ONLY, IpsecAttr)
    encr = _ESP_ENCR.get(t.transform_id)
    if encr is None or IpsecAttr.ENCAPSULATION_MODE not in attrs:
        return None
    assert isinstance(encr, A.Encr)
    integ: A.Integ | None = None
    if IpsecAttr.AUTH_ALGORITHM in attrs:
        got = _ESP_INTEG.get(attrs[IpsecAttr.AUTH_ALGORITHM].as_int())
        if got is None:
            return None
        assert isinstance(got, A.Integ)
        integ = got
    if encr.aead == (integ is not None):
        return None  # AEAD wants no integrity; anything else needs one
    ke: A.Ke | None = None
    if IpsecAttr.GROUP_DESCRIPTION in attrs:
        g = _OAKLEY_GROUP.get(attrs[IpsecAttr.GROUP_DESCRIPTION].as_int())
        if g is None:
            return None
        assert isinstance(g, A.Ke)
        ke = g
    bits = attrs[IpsecAttr.KEY_LENGTH].as_int() if IpsecAttr.KEY_LENGTH in attrs else 0
    if encr.keylen_omitted:
        if bits:
            return None
    elif not bits:
        bits = encr.keydeflen
    elif not encr.has_key_length(bits):
        return None
    life = _lifetime(attrs, IpsecAttr.LIFE_TYPE, IpsecAttr.LIFE_DURATION, 0.0)
    return Phase2Choice(encr, bits, integ, ke, attrs[IpsecAttr.ENCAPSULATION_MODE].as_int(),
                        life, t)


def _allowed_p2(esp: ProposalSet, c: Phase2Choice) -> bool:
    for p in esp:
        integs: tuple[A.Integ | None, ...] = p.integ or (None,)
        for (encr, bits), integ in product(p.encr, integs):
            if integ is A.INTEG_NONE:
                integ = None
            if encr is c.encr and integ is c.integ and (not bits or bits == c.key_bits
                                                        or encr.keylen_omitted):
                return True
    return False


def encap_modes(mode: str, nat: bool) -> tuple[int, ...]:
    """Encapsulation Mode values meaning ``mode`` (UDP forms when a NAT is in the path)."""
    if mode == "transport":
        return ((EncapMode.UDP_TRANSPORT, EncapMode.UDP_TRANSPORT_DRAFTS) if nat
                else (EncapMode.TRANSPORT,))
    return ((EncapMode.UDP_TUNNEL, EncapMode.UDP_TUNNEL_DRAFTS) if nat
            else (EncapMode.TUNNEL,))


def _conjunctions(sa: SA) -> list[list[Proposal]]:
    """Proposals grouped as RFC 2408 4.2 says: consecutive ones sharing a number form one
    offer (a bundle such as AH+ESP), offers are alternatives in the peer's order."""
    groups: list[list[Proposal]] = []
    for prop in sa.proposals:
        if groups and groups[-1][0].number == prop.number:
            groups[-1].append(prop)
        else:
            groups.append([prop])
    return groups


def _esp_spi(prop: Proposal) -> int:
    if len(prop.spi) != 4:
        raise NoProposalChosen(f"ESP SPI of {len(prop.spi)} octets", NotifyType.INVALID_SPI)
    spi = int.from_bytes(prop.spi, "big")
    if spi < 0x100:
        raise NoProposalChosen(f"ESP SPI {spi:#x} is reserved", NotifyType.INVALID_SPI)
    return spi


def select_phase2(sa: SA, esp: ProposalSet, modes: tuple[int, ...], group: A.Ke | None,
                  max_lifetime: float) -> tuple[Phase2Choice, int]:
    """The responder's choice and the peer's (inbound to it) SPI: the first acceptable
    transform of the first acceptable offer, as Libreswan's parse_ipsec_sa_body() does.
    Offers needing AH or IPComp are passed over (only ESP is negotiated here)."""
    for offer in _conjunctions(sa):
        kinds = [p.protocol for p in offer]
        for k in kinds:
            if k not in (ProtocolId.AH, ProtocolId.ESP, ProtocolId.IPCOMP):
                raise NoProposalChosen(f"unexpected Protocol ID ({k}) in IPsec Proposal",
                                       NotifyType.INVALID_PROTOCOL_ID)
        if len(set(kinds)) != len(kinds):
            raise NoProposalChosen("IPsec SA contains two simultaneous proposals of one "
                                   "protocol", NotifyType.BAD_PROPOSAL_SYNTAX)
        if kinds != [ProtocolId.ESP]:
            continue
        prop = offer[0]
        spi = _esp_spi(prop)
        for t in prop.transforms:
            try:
                c = phase2_transform(t)
            except NoProposalChosen:
                continue
            if c is None or c.encap not in modes or c.ke is not group \
                    or not _allowed_p2(esp, c):
                continue
            life = min(c.lifetime, max_lifetime) if c.lifetime else max_lifetime
            return Phase2Choice(c.encr, c.key_bits, c.integ, c.ke, c.encap, life, t,
                                prop.number), spi
    raise NoProposalChosen("no acceptable Proposal in IPsec SA")


def accept_phase2(reply: SA, sent: SA, group: A.Ke | None) -> tuple[Phase2Choice, int]:
    prop = _single_proposal(reply, ProtocolId.ESP)
    if len(prop.spi) != 4 or len(prop.transforms) != 1:
        raise NoProposalChosen("Quick Mode reply needs one ESP transform and a 4-octet SPI",
                               NotifyType.BAD_PROPOSAL_SYNTAX)
    spi = int.from_bytes(prop.spi, "big")
    t = prop.transforms[0]
    c = phase2_transform(t)

    def key(x: Transform) -> tuple:
        return (x.transform_id, sorted((a.type, a.value) for a in x.attributes
                                       if a.type != IpsecAttr.LIFE_DURATION))

    offered = [key(o) for p in sent.proposals if p.number == prop.number
               for o in p.transforms]
    if c is None or c.ke is not group or key(t) not in offered:
        raise NoProposalChosen("responder chose an ESP transform we did not offer")
    if spi < 0x100:
        raise NoProposalChosen(f"ESP SPI {spi:#x} is reserved", NotifyType.INVALID_SPI)
    return c, spi


AUTH_NAMES = {AuthMethod.PRESHARED_KEY: "PRESHARED_KEY", AuthMethod.RSA_SIG: "RSA_SIG",
              # Libreswan keeps XAUTH apart from the authentication method it prints
              AuthMethod.XAUTH_INIT_PRESHARED: "PRESHARED_KEY",
              AuthMethod.XAUTH_RESP_PRESHARED: "PRESHARED_KEY",
              AuthMethod.XAUTH_INIT_RSA: "RSA_SIG", AuthMethod.XAUTH_RESP_RSA: "RSA_SIG"}
