"""IKEv1 phase 1 with RSA signatures (RFC 2409 5.1): raw keys and X.509 certificates from
a real certificate store (``pkauth`` answering the engine's credential questions exactly
as pluto's glue does), Main and Aggressive Mode, CERT/CR placement, and the failures."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pluto"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ikev1_harness import Net, Psks, east_policy, make_policy  # noqa: E402
from test_certstore_pki import EE_KU, MAINCA_DN, PKI, cn, issue, key_pem, pem, write_store  # noqa: E402,E501

from pyswan.ike.ikev1 import crypto as C  # noqa: E402
from pyswan.ike.ikev1 import sigauth  # noqa: E402
from pyswan.ike.ikev1.codec import (  # noqa: E402
    Cert,
    CertRequest,
    Sig,
    decode_message,
    decode_payloads,
)
from pyswan.ike.ikev1.constants import AuthMethod, Exchange  # noqa: E402
from pyswan.ike.pubkey import format_raw_pubkey, keyid  # noqa: E402
from pyswan.pluto import pkauth  # noqa: E402
from pyswan.pluto.certstore import CertStore  # noqa: E402
from pyswan.pluto.x509ids import cert_subject_der  # noqa: E402

MAINCA = "C=CA, O=Libreswan, CN=Libreswan test CA for mainca"
EAST_FQDN = "east-v1.testing.libreswan.org"
WEST_FQDN = "west.testing.libreswan.org"
_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(name: str) -> rsa.RSAPrivateKey:
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[name]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CertStore:
    """The test PKI's store plus an RSA certificate for east (IKEv1 has no ECDSA)."""
    root = write_store(tmp_path_factory.mktemp("ipsecdir"), inter_in_cacerts=False)
    east = issue(cn(EAST_FQDN), rsa_key("east-v1").public_key(), MAINCA_DN, PKI.keys.mainca,
                 serial=0x301, ku=EE_KU, san=[x509.DNSName(EAST_FQDN)])
    (root / "certs" / "east-v1.pem").write_bytes(pem(east))
    for nick in ("east-v1", "east-raw", "other"):
        (root / "private" / f"{nick}.pem").write_bytes(key_pem(rsa_key(nick)))
    s = CertStore(str(root))
    s.load()
    return s


def end(leftright: str = "left", **kw) -> SimpleNamespace:
    base = dict(leftright=leftright, cert=None, ckaid=None, pubkey_keyword=None, pubkey=None,
                rsasigkey=None, ecdsakey=None, eddsakey=None, ca=None, id=None,
                id_from_host=False, sendcert="always")
    base.update(kw)
    return SimpleNamespace(**base)


def raw(key) -> dict:
    keyword, value = format_raw_pubkey(key.public_key(), "rsasigkey")
    return {"pubkey_keyword": keyword, "pubkey": value}


class Keys(Psks):
    """The IKEv1 engine's credentials as pluto's glue gives them (ikeglue._Credentials):
    pkauth over a real certificate store; no PSK at all."""

    def __init__(self, store: CertStore, this, that) -> None:
        super().__init__(default=None)
        self.store, self.this, self.that = store, this, that
        self.cfg = SimpleNamespace(sendca="all", require_id_on_certificate=True)

    def local_key(self, policy):
        return pkauth.local_key(self.store, self.this, self.cfg)

    def peer_key(self, policy, peer, certs):
        return pkauth.peer_key(self.store, self.that, self.cfg, peer, certs)

    def cert_request(self, policy, initiator):
        return pkauth.cert_request(self.store, self.that, initiator)


def pair(store, west_ends, east_ends, *, west_id="west", east_id="east", ike=None,
         west_kw=None, east_kw=None) -> Net:
    common = dict(local_auth="rsasig", remote_auth="rsasig", ike=ike)
    wp = make_policy(local_id=west_id, remote_id=east_id, **common, **(west_kw or {}))
    ep = east_policy(local_id=east_id, remote_id=west_id, **common, **(east_kw or {}))
    return Net(wp, ep, west_psk=Keys(store, *west_ends), east_psk=Keys(store, *east_ends))


def raw_pair(store, *, east_knows_west=None, west_knows_east=None, west_kw=None,
             east_kw=None, **kw) -> Net:
    """leftrsasigkey=/rightrsasigkey= on both ends (west's key also has a certificate in
    the store, which a raw-key connection must not send)."""
    w, e = PKI.keys.west, rsa_key("east-raw")
    raw_kw = {"local_cert": False, "peer_preloaded": True}
    kw |= {"west_kw": raw_kw | (west_kw or {}), "east_kw": raw_kw | (east_kw or {})}
    return pair(store, (end(**raw(w)), end("right", **raw(west_knows_east or e))),
                (end(**raw(e)), end("right", **raw(east_knows_west or w))), **kw)


def cert_pair(store, *, west_kw=None, east_kw=None, aggressive=False) -> Net:
    """west: leftcert=west; east: leftcert=east-v1; each validates the other's CERT
    against mainca; east's rightca= names mainca (so it asks with a CR)."""
    mainca_dn = cert_subject_der(PKI.certs.mainca)
    ekw = {"peer_ca": mainca_dn, "aggressive": aggressive} | (east_kw or {})
    wkw = {"aggressive": aggressive} | (west_kw or {})
    return pair(store, (end(cert="west"), end("right")),
                (end(cert="east-v1"), end("right", ca=MAINCA)),
                west_id=WEST_FQDN, east_id=EAST_FQDN, west_kw=wkw, east_kw=ekw)


def _spis(lines: list[str]) -> list[str]:
    return [re.sub(r"0x[0-9a-f]{8}", "0xESPESP", x) for x in lines]


def _isakmp(net: Net, side: str):
    sas = list(net.side(side).engine.isakmp_sas.values())
    assert len(sas) == 1, sas
    return sas[0]


def _phase1(net: Net, direction: str, exchange: int) -> list[bytes]:
    return [d for dr, d in net.sent if dr == direction and d[18] == exchange]


def _opened(net: Net, side: str, wire: bytes, iv: bytes) -> list:
    """Decrypt one of our own phase 1 messages with the SA's keys (for wire checks)."""
    sa = _isakmp(net, side)
    msg = decode_message(wire)
    plain, _ = C.decrypt(sa.choice.encr, sa.enc_key, iv, msg.ciphertext)
    return decode_payloads(msg.header.next_payload, plain, padded=True)


# ------------------------------------------------------------------ raw keys


def test_main_mode_raw_rsa_keys(store):
    net = raw_pair(store)
    net.up()
    west = _spis(net.west.lines())
    assert west[:4] == ["#1: initiating IKEv1 Main Mode connection",
                        "#1: sent Main Mode request", "#1: sent Main Mode I2",
                        "#1: sent Main Mode I3"], west
    assert west[4:7] == [
        "#1: Peer ID is FQDN: '@east'",
        "#1: authenticated peer using preloaded certificate '@east' and 2048-bit raw RSA "
        "with SHA1 signature",
        "#1: ISAKMP SA established {auth=RSA_SIG cipher=AES_CBC_256 integ=HMAC_SHA2_256 "
        "group=MODP2048}"], west
    assert west[7].startswith("#2: initiating Quick Mode IKEv1+RSASIG+ENCRYPT+TUNNEL+PFS+UP")
    assert west[-1] == ("#2: IPsec SA established tunnel mode {ESP=>0xESPESP <0xESPESP "
                        "xfrm=AES_CBC_128-HMAC_SHA1_96 DPD=passive}")
    assert "#1: authenticated peer using preloaded certificate '@west' and 2048-bit raw " \
        "RSA with SHA1 signature" in net.east.lines()
    assert [d.ok for d in net.west.done] == [True]
    assert 2 in net.west.installed and 2 in net.east.installed
    # no certificate involved: no CR in R2 (the key is preloaded), no CERT/CR in I3
    r2 = decode_message(_phase1(net, "east->west", Exchange.MAIN)[1])
    assert not any(isinstance(p, CertRequest) for p in r2.payloads)


def test_signature_is_raw_pkcs1_over_hash_and_skeyid_is_the_signature_variant(store):
    net = raw_pair(store)
    net.up()
    west, east = _isakmp(net, "west"), _isakmp(net, "east")
    prf = west.choice.prf
    assert west.choice.auth == AuthMethod.RSA_SIG
    gxy = west.ke.shared_secret(west.gxr)
    for sa in (west, east):
        assert sa.keys.skeyid == C.skeyid_sig(prf, sa.ni, sa.nr, gxy)
    # I3 on the wire: ID then SIG; the signature opens (PKCS#1 type 1, no DigestInfo)
    # to exactly HASH_I
    i3 = _phase1(net, "west->east", Exchange.MAIN)[2]
    iv = C.phase1_iv(prf, west.gxi, west.gxr, west.choice.encr.block_size)
    payloads = _opened(net, "west", i3, iv)
    assert [type(p).__name__ for p in payloads] == ["ID", "Sig"]
    sig = payloads[1].data
    assert len(sig) == 256
    opened = PKI.keys.west.public_key().recover_data_from_signature(
        sig, padding.PKCS1v15(), None)
    expect = C.hash_i(prf, west.keys.skeyid, west.gxi, west.gxr, west.icookie, west.rcookie,
                      west.sa_i_b, payloads[0].body())
    assert opened == expect and len(opened) == 32  # HMAC-SHA2-256 output, nothing wrapped


def test_raw_rsa_sign_and_verify_roundtrip():
    key = rsa_key("other")
    data = bytes(range(20))
    sig = sigauth.raw_rsa_sign(key, data)
    assert sigauth.raw_rsa_verify(key.public_key(), data, sig)
    assert not sigauth.raw_rsa_verify(key.public_key(), data[:-1] + b"\x00", sig)
    assert not sigauth.raw_rsa_verify(key.public_key(), data, sig[:-1])
    assert not sigauth.raw_rsa_verify(PKI.keys.west.public_key(), data, sig)
    # deterministic padding: signing twice gives the same value (blinding is undone)
    assert sigauth.raw_rsa_sign(key, data) == sig


def test_aggressive_mode_raw_rsa_keys(store):
    net = raw_pair(store, west_kw={"aggressive": True}, east_kw={"aggressive": True})
    net.up()
    west = net.west.lines()
    assert west[0] == "#1: initiating IKEv1 Aggressive Mode connection"
    assert "#1: authenticated peer using preloaded certificate '@east' and 2048-bit raw RSA " \
        "with SHA1 signature" in west
    assert any(x.startswith("#1: ISAKMP SA established {auth=RSA_SIG") for x in west), west
    assert any("IPsec SA established" in x for x in west)
    assert "#1: authenticated peer using preloaded certificate '@west' and 2048-bit raw " \
        "RSA with SHA1 signature" in net.east.lines()
    assert [d.ok for d in net.west.done] == [True]


def test_wrong_preloaded_key_fails_authentication(store):
    net = raw_pair(store, west_knows_east=rsa_key("other"))
    net.up()
    west = net.west.lines()
    want = keyid(rsa_key("other").public_key())
    assert f"#1: authentication failed: using raw RSA with SHA1 for '@east' tried " \
        f"preloaded: *{want}" in west, west
    assert not any("ISAKMP SA established" in x for x in west)
    assert [d.ok for d in net.west.done] == [False]
    assert not net.west.engine.isakmp_sas


def test_responder_rejects_forged_initiator(store):
    net = raw_pair(store, east_knows_west=rsa_key("other"))
    net.initiate()
    net.run()
    east = net.east.lines()
    assert any(x.startswith("#1: authentication failed: using raw RSA with SHA1 for "
                            "'@west'") for x in east), east
    assert not any("ISAKMP SA established" in x for x in east)
    assert not net.east.engine.isakmp_sas
    assert not net.west.installed
    # the notification is encrypted with the IV that follows I3, so west can read it
    assert any(x.startswith("#1: ignoring informational payload INVALID_KEY_INFORMATION")
               for x in net.west.lines()), net.west.lines()


def test_psk_peer_does_not_match_rsa_connection(store):
    """A PSK proposal finds no authby=rsasig connection (the method is in the transform,
    and IKEv1 has one method per connection)."""
    wp = make_policy()  # authby=secret
    ep = east_policy(local_auth="rsasig", remote_auth="rsasig")
    net = Net(wp, ep)
    net.initiate()
    net.run()
    assert "packet from 192.0.2.1:UDP/500: initial Main Mode message received but no " \
        "connection has been authorized with authby=PSK and xauth=no" in net.east.lines()
    assert not net.east.engine.isakmp_sas
    # the same in Aggressive Mode, with Libreswan's other wording
    net = Net(make_policy(aggressive=True), east_policy(aggressive=True, local_auth="rsasig",
                                                       remote_auth="rsasig"))
    net.initiate()
    net.run()
    assert "packet from 192.0.2.1:UDP/500: initial Aggressive Mode message from " \
        "192.0.2.1:UDP/500 but no (wildcard) connection has been configured with authby " \
        "PSK" in net.east.lines(), net.east.lines()


def test_responder_picks_the_connection_by_proposed_method(store):
    """Two connections between the same hosts, one per method: each initiator lands on
    the one its transforms propose."""
    w, e = PKI.keys.west, rsa_key("east-raw")
    raw_kw = {"local_cert": False, "peer_preloaded": True, "local_auth": "rsasig",
              "remote_auth": "rsasig"}
    psk_east = east_policy(name="psk")
    rsa_east = east_policy(name="rsa", **raw_kw)
    keys = Keys(store, end(**raw(e)), end("right", **raw(w)))
    keys.default = b"secret"
    net = Net(make_policy(), [rsa_east, psk_east], east_psk=keys)
    net.up()
    assert _isakmp(net, "east").policy is psk_east
    net = Net(make_policy(**raw_kw), [psk_east, rsa_east],
              west_psk=Keys(store, end(**raw(w)), end("right", **raw(e))), east_psk=keys)
    net.up()
    assert _isakmp(net, "east").policy is rsa_east
    assert _isakmp(net, "east").choice.auth == AuthMethod.RSA_SIG


# ------------------------------------------------------------------ certificates


def test_main_mode_certificates(store):
    net = cert_pair(store)
    net.up()
    west = net.west.lines()
    assert west[:6] == ["#1: initiating IKEv1 Main Mode connection",
                        "#1: sent Main Mode request", "#1: sent Main Mode I2",
                        "#1: I am sending my cert", "#1: I am sending a certificate request",
                        "#1: sent Main Mode I3"], west
    assert f"#1: Peer ID is FQDN: '@{EAST_FQDN}'" in west
    assert (f"#1: authenticated peer certificate '@{EAST_FQDN}' and 2048-bit raw RSA with "
            f"SHA1 signature issued by '{MAINCA}'") in west, west
    assert any(x.startswith("#1: ISAKMP SA established {auth=RSA_SIG") for x in west)
    east = net.east.lines()
    assert (f"#1: authenticated peer certificate '@{WEST_FQDN}' and 2048-bit raw RSA with "
            f"SHA1 signature issued by '{MAINCA}'") in east, east
    assert "#1: I am sending my cert" in east
    assert [d.ok for d in net.west.done] == [True]
    # R2 asks with a CR naming rightca= (mainca's DN)
    r2 = decode_message(_phase1(net, "east->west", Exchange.MAIN)[1])
    crs = [p for p in r2.payloads if isinstance(p, CertRequest)]
    assert [(c.encoding, c.data) for c in crs] == [(4, cert_subject_der(PKI.certs.mainca))]
    # I3: ID, CERT (west's certificate, DER), CR, SIG in that order
    w = _isakmp(net, "west")
    iv = C.phase1_iv(w.choice.prf, w.gxi, w.gxr, w.choice.encr.block_size)
    i3 = _opened(net, "west", _phase1(net, "west->east", Exchange.MAIN)[2], iv)
    assert [type(p).__name__ for p in i3] == ["ID", "Cert", "CertRequest", "Sig"]
    from cryptography.hazmat.primitives.serialization import Encoding

    assert i3[1].encoding == 4 and i3[1].data == PKI.certs.west.public_bytes(Encoding.DER)


def test_aggressive_mode_certificates(store):
    net = cert_pair(store, aggressive=True)
    net.up()
    west, east = net.west.lines(), net.east.lines()
    assert (f"#1: authenticated peer certificate '@{EAST_FQDN}' and 2048-bit raw RSA with "
            f"SHA1 signature issued by '{MAINCA}'") in west, west
    assert (f"#1: authenticated peer certificate '@{WEST_FQDN}' and 2048-bit raw RSA with "
            f"SHA1 signature issued by '{MAINCA}'") in east, east
    assert "#1: I am sending my certificate" in east  # Libreswan's wording in R1
    assert "#1: I am sending my cert" in west  # and in I2
    assert [d.ok for d in net.west.done] == [True]
    # I2: CERT, then the signature (NAT-D, when present, between them)
    r1 = decode_message(_phase1(net, "east->west", Exchange.AGGRESSIVE)[0])
    assert any(type(p) is Cert for p in r1.payloads)
    assert any(isinstance(p, Sig) for p in r1.payloads)


def test_sendcert_never_leaves_peer_without_a_key(store):
    net = cert_pair(store, west_kw={"send_cert": "never"})
    net.initiate()
    net.run()
    east = net.east.lines()
    assert any("no certificate or public key" in x for x in east), east
    assert not any("ISAKMP SA established" in x for x in east)


def test_certificate_for_another_id_is_rejected(store):
    """west claims @east-v1...'s name with its own certificate: the ID is not on it."""
    mainca_dn = cert_subject_der(PKI.certs.mainca)
    net = pair(store, (end(cert="west"), end("right")),
               (end(cert="east-v1"), end("right", ca=MAINCA)),
               west_id="impostor.testing.libreswan.org", east_id=EAST_FQDN,
               east_kw={"peer_ca": mainca_dn})
    net.initiate()
    net.run()
    east = net.east.lines()
    assert any("X509: certificate payload rejected for this connection" in x
               for x in east), east
    assert not net.east.engine.isakmp_sas


def test_main_mode_responder_switches_to_the_connection_of_the_peer_id(store):
    """east has two connections with west's address: the first one (picked before the
    ID is known) expects another ID; the initiator's ID moves the SA to the second."""
    w, e = PKI.keys.west, rsa_key("east-raw")
    raw_kw = {"local_cert": False, "peer_preloaded": True, "local_auth": "rsasig",
              "remote_auth": "rsasig"}
    wp = make_policy(**raw_kw)
    decoy = east_policy(name="decoy", remote_id="somebody-else", **raw_kw)
    real = east_policy(name="real", **raw_kw)
    net = Net(wp, [decoy, real],
              west_psk=Keys(store, end(**raw(w)), end("right", **raw(e))),
              east_psk=Keys(store, end(**raw(e)), end("right", **raw(w))))
    net.up()
    assert '#1: switched to "real"' in net.east.lines(), net.east.lines()
    assert _isakmp(net, "east").policy is real
    assert [d.ok for d in net.west.done] == [True]


class XauthKeys(Keys):
    def xauth_password(self, user: str) -> bytes | None:
        return b"pw" if user == "xroad" else None

    def xauth_check(self, user: str, password: bytes, policy: object = None) -> bool:
        return (user, password) == ("xroad", b"pw")


def test_xauth_over_rsa_signatures(store):
    """XAUTHInitRSA (65005): RSA signatures for phase 1, then the XAUTH exchange."""
    w, e = PKI.keys.west, rsa_key("east-raw")
    raw_kw = {"local_cert": False, "peer_preloaded": True, "local_auth": "rsasig",
              "remote_auth": "rsasig"}
    wp = make_policy(xauth_client=True, xauth_username="xroad", **raw_kw)
    ep = east_policy(xauth_server=True, **raw_kw)
    net = Net(wp, ep, west_psk=XauthKeys(store, end(**raw(w)), end("right", **raw(e))),
              east_psk=XauthKeys(store, end(**raw(e)), end("right", **raw(w))))
    net.up()
    sa = _isakmp(net, "west")
    assert sa.choice.auth == AuthMethod.XAUTH_INIT_RSA
    west = net.west.lines()
    assert any(x.startswith("#1: XAUTH client - possibly awaiting CFG_set {auth=RSA_SIG ")
               for x in west), west
    assert "#1: XAUTH: Answering XAUTH challenge with user='xroad'" in west
    assert any("IPsec SA established" in x for x in west), west


def test_pkcs7_wrapped_certificates_are_unwrapped(store):
    """RFC 4945 3.3.4: accept a PKCS#7 bundle (chain first, leaf later: the validation
    still finds the end certificate) and nothing from garbage."""
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    from pyswan.ike.ikev1 import phase1
    from pyswan.ike.ikev1.constants import CertEncoding
    from pyswan.ike.ikev2.policy import Identity

    leaf, ca = PKI.certs.west, PKI.certs.mainca
    bundle = pkcs7.serialize_certificates([ca, leaf], Encoding.DER)
    got = phase1._peer_certs([Cert(CertEncoding.PKCS7, bundle),
                              Cert(CertEncoding.PKCS7, b"\x30\x03junk"),
                              CertRequest(CertEncoding.X509_SIGNATURE, b"")])
    assert got == [ca.public_bytes(Encoding.DER), leaf.public_bytes(Encoding.DER)]
    peer = Identity.of(2, WEST_FQDN.encode())
    pk = pkauth.peer_key(store, end("right"), SimpleNamespace(require_id_on_certificate=True),
                         peer, got)
    assert pk.public_key.public_numbers() == PKI.keys.west.public_key().public_numbers()


def test_rightca_defaults_to_the_issuer_of_our_certificate(store):
    """rightca=%same is implied: east (no rightca=) asks in R2 for certificates from the
    CA that issued its own; with rightca=%any a permanent connection asks nothing."""
    net = cert_pair(store, east_kw={"peer_ca": None})
    net.up()
    r2 = decode_message(_phase1(net, "east->west", Exchange.MAIN)[1])
    crs = [(p.encoding, p.data) for p in r2.payloads if isinstance(p, CertRequest)]
    assert crs == [(4, cert_subject_der(PKI.certs.mainca))]
    assert [d.ok for d in net.west.done] == [True]
    net = cert_pair(store, east_kw={"peer_ca": b""})
    net.up()
    r2 = decode_message(_phase1(net, "east->west", Exchange.MAIN)[1])
    assert not [p for p in r2.payloads if isinstance(p, CertRequest)]
    assert [d.ok for d in net.west.done] == [True]  # west sends its cert: sendcert=always
