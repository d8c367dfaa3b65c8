"""Proposal parsing, formatting, wire forms, and negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.ike import algorithms as A
from pyswan.ike.proposals import (
    Proposal,
    ProposalError,
    ProposalSyntaxError,
    WireProposal,
    WireTransform,
    first_ke,
    format_child_newest,
    format_ike_newest,
    invalid_ke_group,
    match_accepted,
    parse_proposals,
    proposals_include_ke,
    select_proposal,
    to_wire_proposals,
)

DEFAULT_KE = "DH19+DH20+DH21+DH31+MODP4096+MODP3072+MODP2048+MODP8192"


# ------------------------------------------------------------------ parsing

def test_defaults() -> None:
    ike = parse_proposals("ike", None)
    assert ike.defaulted and len(ike) == 5
    assert str(ike).split(", ") == [
        f"{e}-HMAC_SHA2_512+HMAC_SHA2_256-{DEFAULT_KE}"
        for e in ("AES_GCM_16_256", "AES_GCM_16_128", "CHACHA20_POLY1305", "AES_CBC_256",
                  "AES_CBC_128")]
    assert str(parse_proposals("esp", None)) == (
        "AES_GCM_16_256, AES_GCM_16_128, CHACHA20_POLY1305, "
        "AES_CBC_256-HMAC_SHA2_512_256+HMAC_SHA2_256_128, "
        "AES_CBC_128-HMAC_SHA2_512_256+HMAC_SHA2_256_128")
    assert str(parse_proposals("ah", None)) == "HMAC_SHA2_512_256, HMAC_SHA2_256_128"
    assert "CHACHA20" not in str(parse_proposals("ike", None, fips=True))


def test_structure() -> None:
    p = parse_proposals("ike", "aes_gcm256-sha2;dh19")[0]
    assert p == Proposal(encr=((A.AES_GCM_16, 256),), prf=(A.PRF_HMAC_SHA2_256,),
                         integ=(A.INTEG_NONE,), ke=(A.DH19,))
    assert p.aead and str(p) == "AES_GCM_16_256-HMAC_SHA2_256-DH19"
    p = parse_proposals("ike", "aes128-sha1;modp2048")[0]
    assert p.integ == (A.INTEG_HMAC_SHA1_96,) and str(p) == "AES_CBC_128-HMAC_SHA1-MODP2048"
    p = parse_proposals("esp", "aes-128-sha2_512;dh19")[0]
    assert p.encr == ((A.AES_CBC, 128),) and p.ke == (A.DH19,) and not p.prf


@pytest.mark.parametrize(("proto", "text", "out"), [
    ("ike", "aes", f"AES_CBC-HMAC_SHA2_512+HMAC_SHA2_256-{DEFAULT_KE}"),
    ("ike", "aes256-sha2;dh19", "AES_CBC_256-HMAC_SHA2_256-DH19"),
    ("ike", "3des-md5;modp1536,aes-sha1;modp2048",
     "3DES_CBC-HMAC_MD5-MODP1536, AES_CBC-HMAC_SHA1-MODP2048"),
    ("ike", "aes_gcm_16_128-none-sha2-dh14", "AES_GCM_16_128-HMAC_SHA2_256-MODP2048"),
    ("ike", "chacha20_poly1305-sha2_256", f"CHACHA20_POLY1305-HMAC_SHA2_256-{DEFAULT_KE}"),
    ("ike", "aes-aes_xcbc;dh31", "AES_CBC-AES_XCBC-DH31"),
    ("ike", "aes-sha2-curve448", "AES_CBC-HMAC_SHA2_256-DH32"),
    ("ike", "aes128-sha2-dh31;addke2=ml_kem_768",
     "AES_CBC_128-HMAC_SHA2_256-DH31;addke2=ML_KEM_768"),
    ("esp", "aes_gcm;aes128+aes256-sha2_512+sha2_256", None),
    ("esp", "aes_gcm-null", "AES_GCM_16"),
    ("esp", "aes128-sha2_512;dh19", "AES_CBC_128-HMAC_SHA2_512_256-DH19"),
    ("esp", "aes_ctr-aes_cmac", "AES_CTR-AES_CMAC_96"),
    ("ah", "sha2_256", "HMAC_SHA2_256_128"),
])
def test_format(proto: str, text: str, out: str | None) -> None:
    if out is None:
        with pytest.raises(ProposalError):
            parse_proposals(proto, text)
    else:
        assert str(parse_proposals(proto, text)) == out


@pytest.mark.parametrize(("proto", "text", "error"), [
    ("ike", "", "IKE proposal is empty"),
    ("ike", "aes;none", "IKE Key Exchange algorithm 'NONE' not permitted"),
    ("ike", "aes_ccm", "IKE Encryption Algorithm (cipher) 'aes_ccm' is not supported"),
    ("ike", "id2", "IKE Encryption Algorithm (cipher) 'id2' is not recognized"),
    ("esp", "3des-sha1;modp1024", "ESP Key Exchange Method (DH) 'modp1024' is not supported"),
    ("esp", "aes224", "ESP encryption algorithm AES_CBC with key length 224 invalid; "
                      "valid key lengths: 128, 192, 256"),
    ("esp", "aes_gcm-sha1", "AEAD ESP encryption algorithm AES_GCM_16 must have 'NONE' as "
                            "the integrity algorithm"),
    ("ah", "null", "AH cannot have 'none' as the integrity algorithm"),
    ("ike", "aes;foo=bar", "transform 'foo' unrecognized"),
])
def test_errors(proto: str, text: str, error: str) -> None:
    with pytest.raises(ProposalError) as e:
        parse_proposals(proto, text)
    assert str(e.value) == error


def test_pfs_policy() -> None:
    no_pfs = parse_proposals("esp", "aes-sha1;modp2048", pfs=False)
    assert no_pfs.warnings == ("ignoring ESP Key Exchange algorithm 'MODP2048' as PFS "
                               "policy is disabled",)
    assert str(no_pfs) == "AES_CBC-HMAC_SHA1_96" and not no_pfs[0].ke
    pfs = parse_proposals("esp", "aes-sha1;modp2048", pfs=True)
    assert str(pfs) == "AES_CBC-HMAC_SHA1_96-MODP2048" and not pfs.warnings
    with pytest.raises(ProposalError, match="either all or no ESP proposals"):
        parse_proposals("esp", "aes-sha1,3des-sha1;modp8192")


def test_ikev1_syntax() -> None:
    ps = parse_proposals("ike", "aes-sha1", ike_version=1)
    assert [str(p) for p in ps] == ["AES_CBC-HMAC_SHA1-MODP2048", "AES_CBC-HMAC_SHA1-MODP1536",
                                    "AES_CBC-HMAC_SHA1-DH19", "AES_CBC-HMAC_SHA1-DH31"]
    with pytest.raises(ProposalError, match=r"^'\+' invalid"):
        parse_proposals("ike", "aes+3des", ike_version=1)
    assert parse_proposals("ike", "aes;addke1=dh19").intermediate


# --------------------------------------------------------------- wire forms

def _wire(ps_text: str, proto: str = "ike", **kw: object) -> list[WireProposal]:
    return to_wire_proposals(parse_proposals(proto, ps_text), **kw)  # type: ignore[arg-type]


def _t(p: WireProposal) -> list[tuple[int, int, int | None]]:
    return [tuple(t) for t in p.transforms]  # type: ignore[misc]


def test_wire_key_lengths_and_omissions() -> None:
    ike = _wire("aes-sha2;dh19")[0]
    assert _t(ike) == [(1, 12, 256), (1, 12, 128), (2, 5, None), (3, 12, None), (4, 19, None)]
    esp = _wire("aes-sha2", "esp", spi=b"\1\2\3\4")[0]
    assert esp.spi == b"\1\2\3\4" and esp.protocol == 3
    assert _t(esp) == [(1, 12, 128), (1, 12, 256), (3, 12, None), (5, 1, None), (5, 0, None)]
    gcm = _wire("aes_gcm256", "esp", default_sn=[A.SN_32_BIT])[0]
    assert _t(gcm) == [(1, 20, 256), (5, 0, None)]  # INTEG=NONE not sent
    assert _t(_wire("3des-sha1;dh14")[0])[0] == (1, 3, None)  # no Key Length for 3DES
    assert _t(_wire("chacha20_poly1305;dh31")[0])[0] == (1, 28, None)
    # the IKE_AUTH Child SA strips KE; a rekey forces the negotiated one
    assert all(t.type != 4 for t in _wire("aes-sha1;dh19", "esp", strip_ke=True)[0].transforms)
    forced = _wire("aes-sha1", "esp", force_ke=A.DH20)[0]
    assert (4, 20, None) in _t(forced)
    # KE=NONE next to a real group is sent (it is a real choice)
    assert (4, 0, None) in _t(_wire("aes-sha1;none+dh19", "esp")[0])


def test_to_sa_proposals_uses_the_codec() -> None:
    codec = pytest.importorskip("pyswan.ike.codec")
    from pyswan.ike.proposals import to_sa_proposals

    sa = to_sa_proposals(parse_proposals("ike", None))
    assert isinstance(sa[0], codec.Proposal) and isinstance(sa[0].transforms[0],
                                                            codec.Transform)
    assert (sa[0].transforms[0].type, sa[0].transforms[0].id,
            sa[0].transforms[0].key_length) == (1, 20, 256)
    chosen = select_proposal(parse_proposals("ike", "aes_gcm256-sha2;dh19"), sa)
    assert chosen is not None and isinstance(chosen.to_sa_proposal(), codec.Proposal)


# ----------------------------------------------------------------- selection

def test_responder_prefers_local_order() -> None:
    initiator = _wire("aes128-sha1-modp2048,aes256-sha2-dh19")
    local = parse_proposals("ike", "aes256-sha2;dh19,aes128-sha1;modp2048")
    chosen = select_proposal(local, initiator)
    assert chosen is not None
    assert (chosen.number, chosen.local_index) == (2, 0)
    assert str(chosen) == "AES_CBC_256-HMAC_SHA2_256-DH19"
    # within a proposal, the first local transform the peer offered wins
    initiator = _wire("aes-sha1-modp2048+dh19+dh20")
    chosen = select_proposal(parse_proposals("ike", "aes-sha1;dh20+dh19"), initiator)
    assert chosen is not None and chosen.ke is A.DH20 and chosen.key_bits == 256


def test_default_against_default() -> None:
    chosen = select_proposal(parse_proposals("ike", None), to_wire_proposals(
        parse_proposals("ike", None)))
    assert chosen is not None and chosen.number == 1
    assert str(chosen) == "AES_GCM_16_256-HMAC_SHA2_512-DH19"
    assert chosen.to_wire() == WireProposal(1, 1, b"", (
        WireTransform(1, 20, 256), WireTransform(2, 7), WireTransform(4, 19)))
    esp = select_proposal(parse_proposals("esp", None),
                          _wire("aes256-sha2,aes_gcm256", "esp", spi=b"spi!"))
    assert esp is not None and str(esp) == "AES_GCM_16_256" and esp.spi == b"spi!"
    assert esp.sn is A.SN_PARTIAL_64_BIT  # esn=either prefers ESN
    assert esp.to_wire(b"mine").spi == b"mine"


def test_no_match_cases() -> None:
    local = parse_proposals("ike", "aes256-sha2;dh19")
    assert select_proposal(local, _wire("aes128-sha2;dh19")) is None  # key length
    assert select_proposal(local, _wire("aes256-sha2;dh20")) is None
    assert select_proposal(local, _wire("aes256-sha1;dh19")) is None
    # an extra transform type the local proposal lacks
    assert select_proposal(local, _wire("aes256-sha2;dh19;addke1=dh20")) is None
    # SPI present in IKE_SA_INIT
    assert select_proposal(local, _wire("aes256-sha2;dh19", spi=b"12345678")) is None
    assert select_proposal(local, _wire("aes256-sha2;dh19", spi=b"12345678"),
                           expect_spi=True) is not None
    # ESP offered where IKE is wanted
    assert select_proposal(local, _wire("aes256-sha2", "esp", spi=b"abcd")) is None


def test_syntax_errors_and_skipped_proposals() -> None:
    local = parse_proposals("ike", "aes256-sha2;dh19")
    good = (WireTransform(1, 12, 256), WireTransform(2, 5), WireTransform(3, 12),
            WireTransform(4, 19))
    with pytest.raises(ProposalSyntaxError):
        select_proposal(local, [WireProposal(2, 1, b"", good)])
    with pytest.raises(ProposalSyntaxError):
        select_proposal(local, [WireProposal(1, 1, b"", (WireTransform(0, 1),))])
    # unknown transform type or mixed NONE/real integrity: skip that proposal
    unknown = WireProposal(1, 1, b"", (*good, WireTransform(200, 1)))
    mixed = WireProposal(2, 1, b"", (*good, WireTransform(3, 0)))
    assert select_proposal(local, [unknown, mixed]) is None
    chosen = select_proposal(local, [unknown, mixed, WireProposal(3, 1, b"", good)])
    assert chosen is not None and chosen.number == 3
    # plain tuples work too
    assert select_proposal(local, [(1, 1, b"", [(1, 12, 256), (2, 5), (3, 12), (4, 19)])])


def test_aead_integ_none_sent_explicitly() -> None:
    local = parse_proposals("ike", "aes_gcm256-sha2;dh19")
    explicit = WireProposal(1, 1, b"", (WireTransform(1, 20, 256), WireTransform(2, 5),
                                        WireTransform(3, 0), WireTransform(4, 19)))
    chosen = select_proposal(local, [explicit])
    assert chosen is not None and chosen.integ is A.INTEG_NONE
    assert WireTransform(3, 0) in chosen.transforms()  # echoed back
    implied = select_proposal(local, _wire("aes_gcm256-sha2;dh19"))
    assert implied is not None and implied.integ is A.INTEG_NONE
    assert all(t.type != 3 for t in implied.transforms())


def test_ike_auth_child_without_ke() -> None:
    local = parse_proposals("esp", "aes-sha2;dh19")
    offered = _wire("aes-sha2", "esp", spi=b"abcd", strip_ke=True)
    assert select_proposal(local, offered) is None  # local wants DH19 (PFS)
    chosen = select_proposal(local, offered, strip_ke=True)
    assert chosen is not None and chosen.ke is A.KE_NONE
    assert format_child_newest(chosen) == "AES_CBC_128-HMAC_SHA2_256_128"


def test_initiator_checks_the_accepted_proposal() -> None:
    local = parse_proposals("ike", "aes256-sha2;dh19,aes_gcm128-sha2;dh20")
    accepted = WireProposal(2, 1, b"", (WireTransform(1, 20, 128), WireTransform(2, 5),
                                        WireTransform(4, 20)))
    chosen = match_accepted(local, [accepted])
    assert chosen is not None and chosen.local_index == 1
    assert format_ike_newest(chosen) == "AES_GCM_16_128-HMAC_SHA2_256-DH20"
    wrong = accepted._replace(number=1)
    assert match_accepted(local, [wrong]) is None
    with pytest.raises(ProposalSyntaxError):
        match_accepted(local, [accepted, accepted])
    with pytest.raises(ProposalSyntaxError):
        match_accepted(local, [accepted._replace(number=3)])
    sneaky = accepted._replace(transforms=(*accepted.transforms, WireTransform(3, 12)))
    assert match_accepted(local, [sneaky]) is None


def test_invalid_ke_logic() -> None:
    ike = parse_proposals("ike", None)
    assert first_ke(ike) is A.DH19
    assert proposals_include_ke(ike, 14) and proposals_include_ke(ike, A.DH31)
    assert not proposals_include_ke(ike, 5)
    # the initiator sent KE=MODP2048 but offered DH19 first; Libreswan asks for
    # the accepted proposal's group (the first local group also offered)
    responder = parse_proposals("ike", "aes_gcm256-sha2;dh19+modp2048")
    chosen = select_proposal(responder, _wire("aes_gcm256-sha2;modp2048+dh19"))
    assert chosen is not None and chosen.ke is A.DH19
    assert invalid_ke_group(chosen, 14) is A.DH19
    assert invalid_ke_group(chosen, 19) is None


def test_newest_formats() -> None:
    def chosen(proto: str, text: str, **kw: object) -> object:
        ps = parse_proposals(proto, text)
        spi = b"" if proto == "ike" else b"abcd"
        c = select_proposal(ps, to_wire_proposals(ps, spi=spi), **kw)  # type: ignore[arg-type]
        assert c is not None
        return c

    assert str(chosen("ike", "aes256-sha2_512;dh19")) == "AES_CBC_256-HMAC_SHA2_512-DH19"
    assert str(chosen("ike", "aes256-sha1-sha2_256_128;dh19")) == (
        "AES_CBC_256-HMAC_SHA1-HMAC_SHA2_256_128-DH19")
    assert str(chosen("ike", "3des-sha1;dh14")) == "3DES_CBC_192-HMAC_SHA1-MODP2048"
    assert str(chosen("esp", "aes_gcm256")) == "AES_GCM_16_256"
    assert str(chosen("esp", "3des-sha1")) == "3DES_CBC-HMAC_SHA1_96"
    assert str(chosen("esp", "aes-sha2")) == "AES_CBC_128-HMAC_SHA2_256_128"
    c = chosen("ike", "aes_gcm256-sha2;dh19")
    assert str(c.proposal()) == "AES_GCM_16_256-HMAC_SHA2_256-DH19"  # type: ignore[attr-defined]


# ------------------------------------------------------------ round trips

_NORM = ["aes", "aes128", "aes256", "3des", "aes_ctr192", "camellia256"]
_AEAD = ["aes_gcm", "aes_gcm_c256", "aes_gcm_a128", "chacha20_poly1305"]
_PRFS = ["sha1", "sha2", "sha2_384", "sha2_512", "aes_xcbc", "md5"]
_INTEGS = ["sha1", "sha2_256", "sha2_512", "aes_xcbc", "aes_cmac"]
_KES = ["dh19", "dh20", "modp2048", "dh31", "modp3072", "dh32", "ml_kem_768"]


@settings(max_examples=150, deadline=None)
@given(aead=st.booleans(), data=st.data())
def test_printed_proposals_parse_back_to_themselves(aead: bool, data: st.DataObject) -> None:
    """Libreswan's printed form can be fed straight back into the parser."""
    pick = st.lists(st.sampled_from(_AEAD if aead else _NORM), min_size=1, max_size=3)
    encr = "+".join(data.draw(pick))
    prfs = "+".join(data.draw(st.lists(st.sampled_from(_PRFS), min_size=1, max_size=3)))
    kes = "+".join(data.draw(st.lists(st.sampled_from(_KES), min_size=1, max_size=3)))
    ike = parse_proposals("ike", f"{encr}-{prfs};{kes}")
    assert parse_proposals("ike", str(ike)).proposals == ike.proposals
    esp_text = encr if aead else f"{encr}-" + "+".join(
        data.draw(st.lists(st.sampled_from(_INTEGS), min_size=1, max_size=2)))
    # (not for AEAD with KE: Libreswan prints AES_GCM_16-DH19, which reads
    # DH19 as the integrity algorithm; pyswan keeps that quirk)
    ke = "" if aead else ";" + kes.split("+")[0]
    esp = parse_proposals("esp", esp_text + ke)
    assert parse_proposals("esp", str(esp)).proposals == esp.proposals
    # and every proposal survives the wire and the responder's selection
    offered = to_wire_proposals(ike)
    chosen = select_proposal(ike, offered)
    assert chosen is not None and chosen.number == 1
    assert match_accepted(ike, [chosen.to_wire()]) == chosen
