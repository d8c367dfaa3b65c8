"""IKEv1 SA payloads from ike=/esp= lines, and the responder's choice."""

from __future__ import annotations

import pytest

from pyswan.ike import algorithms as A
from pyswan.ike.ikev1.codec import SA, Attribute, IsakmpDecodeError, Proposal, Transform
from pyswan.ike.ikev1.constants import (
    KEY_IKE,
    AuthMethod,
    EncapMode,
    IkeAttr,
    IpsecAttr,
    NotifyType,
    ProtocolId,
)
from pyswan.ike.ikev1.proposals import (
    NoProposalChosen,
    accept_phase1,
    accept_phase2,
    pfs_group,
    phase1_sa,
    phase2_sa,
    select_phase1,
    select_phase2,
)
from pyswan.ike.proposals import parse_proposals

PSK = AuthMethod.PRESHARED_KEY


def ike(text: str | None):
    return parse_proposals("ike", text, ike_version=1)


def esp(text: str | None, pfs: bool = True):
    return parse_proposals("esp", text, ike_version=1, pfs=pfs)


def _attrs(t: Transform) -> dict[int, int | bytes]:
    return {a.type: a.value for a in t.attributes}


def test_phase1_sa_expands_key_lengths_longest_first() -> None:
    sa = phase1_sa(ike("aes-sha2;modp2048,3des-sha1;modp1536"), PSK, 28800)
    (prop,) = sa.proposals
    assert (prop.number, prop.protocol, prop.spi) == (1, ProtocolId.ISAKMP, b"")
    got = [(_attrs(t)[IkeAttr.ENCRYPTION], _attrs(t).get(IkeAttr.KEY_LENGTH),
            _attrs(t)[IkeAttr.HASH], _attrs(t)[IkeAttr.GROUP_DESCRIPTION]) for t in
           prop.transforms]
    assert got == [(7, 256, 4, 14), (7, 128, 4, 14), (5, None, 2, 5)]
    assert [t.number for t in prop.transforms] == [0, 1, 2]
    assert all(t.transform_id == KEY_IKE for t in prop.transforms)
    t0 = _attrs(prop.transforms[0])
    assert t0[IkeAttr.AUTH_METHOD] == PSK and t0[IkeAttr.LIFE_TYPE] == 1
    assert t0[IkeAttr.LIFE_DURATION] == (28800).to_bytes(4, "big")


def test_responder_takes_the_peers_first_acceptable_transform() -> None:
    offered = phase1_sa(ike("3des-sha1;modp1536,aes-sha2;modp2048"), PSK, 86400)
    c = select_phase1(offered, ike("aes-sha2;modp2048,3des-sha1;modp1536"), (PSK,), 3600)
    assert (c.encr, c.key_bits, c.prf, c.ke) == (A.TDES_CBC, 0, A.PRF_HMAC_SHA1, A.MODP1536)
    assert c.lifetime == 3600  # the shorter of the two
    c = select_phase1(offered, ike("aes128-sha2;modp2048"), (PSK,), 28800)
    assert (c.encr, c.key_bits) == (A.AES_CBC, 128)
    assert c.transform is offered.proposals[0].transforms[2]
    assert accept_phase1(SA([Proposal(1, 1, b"", [c.transform])]), offered).key_bits == 128


def test_no_choice_reasons() -> None:
    offered = phase1_sa(ike("aes-sha2;modp2048"), PSK, 28800)
    with pytest.raises(NoProposalChosen) as e:
        select_phase1(offered, ike("3des-md5;modp1536"), (PSK,), 28800)
    assert e.value.notify == NotifyType.NO_PROPOSAL_CHOSEN
    with pytest.raises(NoProposalChosen):  # the right suite, the wrong auth method
        select_phase1(offered, ike("aes-sha2;modp2048"), (AuthMethod.RSA_SIG,), 28800)
    two = SA(offered.proposals * 2)
    with pytest.raises(NoProposalChosen) as e:  # phase 1 takes a single proposal
        select_phase1(two, ike(None), (PSK,), 28800)
    assert e.value.notify == NotifyType.PAYLOAD_MALFORMED
    esp_sa = SA([Proposal(1, ProtocolId.ESP, b"1234", offered.proposals[0].transforms)])
    with pytest.raises(NoProposalChosen) as e:
        select_phase1(esp_sa, ike(None), (PSK,), 28800)
    assert e.value.notify == NotifyType.INVALID_PROTOCOL_ID


def test_attribute_rules() -> None:
    base = [Attribute(IkeAttr.ENCRYPTION, 7), Attribute(IkeAttr.HASH, 4),
            Attribute(IkeAttr.AUTH_METHOD, PSK), Attribute(IkeAttr.GROUP_DESCRIPTION, 14),
            Attribute(IkeAttr.KEY_LENGTH, 128)]
    mine = ike("aes128-sha2;modp2048")

    def sa(*transforms: list[Attribute]) -> SA:
        return SA([Proposal(1, 1, b"", [Transform(i, KEY_IKE, a)
                                        for i, a in enumerate(transforms)])])

    # an unknown attribute rules out that transform only
    c = select_phase1(sa(base + [Attribute(99, 1)], base), mine, (PSK,), 28800)
    assert c.transform.number == 1
    with pytest.raises(IsakmpDecodeError) as e:  # basic-only attribute in TLV form
        select_phase1(sa(base[:1] + [Attribute(IkeAttr.HASH, b"\0\4")] + base[2:]), mine,
                      (PSK,), 28800)
    assert e.value.notify == NotifyType.BAD_PROPOSAL_SYNTAX
    with pytest.raises(IsakmpDecodeError):  # repeated attribute
        select_phase1(sa(base + base[:1]), mine, (PSK,), 28800)
    with pytest.raises(NoProposalChosen):  # AES with a key length AES does not have
        select_phase1(sa(base[:4] + [Attribute(IkeAttr.KEY_LENGTH, 100)]), mine, (PSK,),
                      28800)
    with pytest.raises(NoProposalChosen):  # 3DES with a key length
        select_phase1(sa([Attribute(IkeAttr.ENCRYPTION, 5)] + base[1:]),
                      ike("3des-sha2;modp2048"), (PSK,), 28800)


def test_phase2_sa_and_selection() -> None:
    mine = esp("aes-sha1,aes_gcm256")
    offered = phase2_sa(mine, 0x1234, EncapMode.TUNNEL, 3600, A.MODP2048)
    (prop,) = offered.proposals
    assert prop.protocol == ProtocolId.ESP and prop.spi == (0x1234).to_bytes(4, "big")
    ids = [(t.transform_id, _attrs(t).get(IpsecAttr.KEY_LENGTH),
            _attrs(t).get(IpsecAttr.AUTH_ALGORITHM)) for t in prop.transforms]
    assert ids == [(12, 128, 2), (12, 256, 2), (20, 256, None)]  # default length first
    assert all(_attrs(t)[IpsecAttr.GROUP_DESCRIPTION] == 14 for t in prop.transforms)
    c, spi = select_phase2(offered, esp("aes_gcm256"), (EncapMode.TUNNEL,), A.MODP2048,
                           28800)
    assert (c.encr, c.integ, c.key_bits, spi) == (A.AES_GCM_16, None, 256, 0x1234)
    assert c.xfrm_story == "AES_GCM_16_256" and c.encr_keymat == 36  # key + 4 salt
    reply = SA([Proposal(1, ProtocolId.ESP, b"\0\0\x99\x99", [c.transform])])
    assert accept_phase2(reply, offered, A.MODP2048)[1] == 0x9999
    with pytest.raises(NoProposalChosen):  # PFS group mismatch
        select_phase2(offered, mine, (EncapMode.TUNNEL,), None, 28800)
    with pytest.raises(NoProposalChosen):  # transport asked, tunnel offered
        select_phase2(offered, mine, (EncapMode.TRANSPORT,), A.MODP2048, 28800)
    with pytest.raises(NoProposalChosen):
        accept_phase2(reply, offered, None)
    bad_spi = SA([Proposal(1, ProtocolId.ESP, b"\0\0\0\1", prop.transforms)])
    with pytest.raises(NoProposalChosen) as e:
        select_phase2(bad_spi, mine, (EncapMode.TUNNEL,), A.MODP2048, 28800)
    assert e.value.notify == NotifyType.INVALID_SPI


def test_pfs_group_defaults_to_phase1() -> None:
    assert pfs_group(esp("aes-sha1"), A.DH19) is A.DH19
    assert pfs_group(esp("aes-sha1;modp3072"), A.DH19) is A.MODP3072
