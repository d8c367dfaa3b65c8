"""IKE_AUTH with public keys: raw keys and X.509 certificates, RSA (PSS and PKCS#1 v1.5),
ECDSA and Ed25519, and the failures (bad signature, wrong ID, revoked, unknown CA,
sendcert=never), between two engines in one process."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pluto"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ikev2_harness import EAST, WEST, Net, Psks, make_policy  # noqa: E402
from test_certstore_pki import PKI, key_pem, pem, write_store  # noqa: E402

from pyswan.ike.pubkey import format_raw_pubkey  # noqa: E402
from pyswan.pluto import pkauth  # noqa: E402
from pyswan.pluto.certstore import CertStore  # noqa: E402

INTER = "C=CA, O=Libreswan, CN=Intermediate CA"
MAINCA = "C=CA, O=Libreswan, CN=Libreswan test CA for mainca"
_EXTRA: dict[str, rsa.RSAPrivateKey] = {}


def extra_rsa(name: str) -> rsa.RSAPrivateKey:
    if name not in _EXTRA:
        _EXTRA[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _EXTRA[name]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    root = write_store(tmp_path_factory.mktemp("ipsecdir"), inter_in_cacerts=False)
    c = PKI.certs
    (root / "certs" / "revoked.pem").write_bytes(pem(c.revoked))
    (root / "certs" / "stranger.pem").write_bytes(pem(c.stranger))
    (root / "certs" / "east-chain.pem").write_bytes(pem(c.east) + pem(c.interca))
    for nick in ("rsa-east", "rsa-other"):
        (root / "private" / f"{nick}.pem").write_bytes(key_pem(extra_rsa(nick)))
    return root


@pytest.fixture(scope="module")
def store(store_dir: Path) -> CertStore:
    s = CertStore(str(store_dir))
    s.load()
    # interca is only sent by the peer (sendca=all): add it as a local chain source
    return s


def end(leftright: str = "left", **kw) -> SimpleNamespace:
    base = dict(leftright=leftright, cert=None, ckaid=None, pubkey_keyword=None, pubkey=None,
                rsasigkey=None, ecdsakey=None, eddsakey=None, ca=None, id=None,
                id_from_host=False, sendcert="always")
    base.update(kw)
    return SimpleNamespace(**base)


def raw(key) -> dict:
    keyword, value = format_raw_pubkey(key.public_key())
    return {"pubkey_keyword": keyword, "pubkey": value}


class Keys(Psks):
    """The engine's Credentials, answered by pkauth from a real CertStore."""

    def __init__(self, store: CertStore, this, that, cfg=None) -> None:
        super().__init__()
        self.store, self.this, self.that = store, this, that
        self.cfg = cfg or SimpleNamespace(sendca="all", require_id_on_certificate=True)

    def local_key(self, policy):
        return pkauth.local_key(self.store, self.this, self.cfg)

    def peer_key(self, policy, peer, certs):
        return pkauth.peer_key(self.store, self.that, self.cfg, peer, certs)

    def cert_request(self, policy, initiator):
        return pkauth.cert_request(self.store, self.that, initiator)


def pair(store, west_this, west_that, east_this, east_that, *, west_id="west",
         east_id="east", west_kw=None, east_kw=None, west_auth="rsasig",
         east_auth="rsasig") -> Net:
    wp = make_policy(local_id=west_id, remote_id=east_id, local_auth=west_auth,
                     remote_auth=east_auth, **(west_kw or {}))
    ep = make_policy(local=EAST, remote=WEST, local_id=east_id, remote_id=west_id,
                     local_net="10.2.0.0/24", remote_net="10.1.0.0/24",
                     local_auth=east_auth, remote_auth=west_auth, **(east_kw or {}))
    return Net(wp, ep, west_psk=Keys(store, west_this, west_that),
               east_psk=Keys(store, east_this, east_that))


def _spis(lines):
    return [re.sub(r"0x[0-9a-f]{8}", "0xESPESP", line) for line in lines]


def established(net: Net) -> tuple[str, str]:
    w = [x for x in net.west.lines() if "established IKE SA" in x]
    e = [x for x in net.east.lines() if "established IKE SA" in x]
    assert w and e, (net.west.lines(), net.east.lines())
    return w[0], e[0]


# ------------------------------------------------------------------ raw keys


def test_raw_rsa_keys_rsassa_pss_sha2_512(store):
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    net = pair(store, end(**raw(k.west)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(k.west)))
    net.up()
    lines = _spis(net.west.lines())
    assert ("#1: sent IKE_AUTH request to 192.0.2.2:UDP/500 with digital-signature RSASSA-PSS "
            "with SHA2_512 and FQDN '@west'; Child SA #2 {ESP <0xESPESP} [10.1.0.0/24===10.2.0.0/24]") in lines
    w, e = established(net)
    assert w == ("#1: initiator established IKE SA; authenticated peer using preloaded "
                 "certificate '@east' and 2048-bit RSASSA-PSS with SHA2_512 digital signature")
    assert e == ("#1: responder established IKE SA; authenticated peer using preloaded "
                 "certificate '@west' and 2048-bit RSASSA-PSS with SHA2_512 digital signature")
    assert [d.ok for d in net.west.done] == [True]
    assert 2 in net.west.installed and 2 in net.east.installed


def test_raw_ecdsa_keys(store):
    k = PKI.keys
    net = pair(store, end(**raw(k.road)), end("right", **raw(k.east)),
               end(**raw(k.east)), end("right", **raw(k.road)),
               west_auth="ecdsa", east_auth="ecdsa")
    net.up()
    w, e = established(net)
    assert w.endswith("using preloaded certificate '@east' and P-256 ECDSA with SHA2_512 "
                      "digital signature")
    assert e.endswith("using preloaded certificate '@west' and P-384 ECDSA with SHA2_512 "
                      "digital signature")


def test_raw_eddsa_keys(store):
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    net = pair(store, end(**raw(k.ed)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(k.ed)),
               west_auth="eddsa", east_auth="rsasig")
    net.up()
    w, e = established(net)
    assert "RSASSA-PSS with SHA2_512" in w
    assert e.endswith("using preloaded certificate '@west' and Ed25519 digital signature")


def test_ckaid_names_the_private_key(store):
    k = PKI.keys
    from pyswan.ike.pubkey import ckaid_hex

    east_key = extra_rsa("rsa-east")
    net = pair(store, end(ckaid=ckaid_hex(k.west)), end("right", **raw(east_key)),
               end(ckaid=ckaid_hex(east_key)), end("right", **raw(k.west)))
    net.up()
    established(net)


def test_pkcs1_fallback_when_peer_does_not_announce_hashes(store):
    """authby=rsa-sha1 on east: no SIGNATURE_HASH_ALGORITHMS, both sides use method 1."""
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    net = pair(store, end(**raw(k.west)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(k.west)),
               east_kw={"rsa_pss": False})
    net.up()
    lines = net.west.lines()
    assert any("with RSA-digital-signature and FQDN '@west'" in x for x in lines), lines
    w, e = established(net)
    assert w.endswith("and 2048-bit PKCS#1 1.5 RSA with SHA1 digital signature")
    assert e.endswith("and 2048-bit PKCS#1 1.5 RSA with SHA1 digital signature")


def test_pss_only_refuses_pkcs1(store):
    """authby=rsa-sha2 on west (no v1.5) and a peer that does not negotiate hashes."""
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    net = pair(store, end(**raw(k.west)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(k.west)),
               west_kw={"rsa_v15": False}, east_kw={"rsa_pss": False})
    net.up()
    assert any("peer did not send a usable SIGNATURE_HASH_ALGORITHMS and the connection "
               "does not allow RSA PKCS#1 v1.5" in x for x in net.west.lines()), net.west.lines()
    assert [d.ok for d in net.west.done] == [False]


def test_bad_signature_is_authentication_failed(store):
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    wrong = extra_rsa("rsa-other")
    net = pair(store, end(**raw(k.west)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(wrong)))
    net.up()
    east = net.east.lines()
    assert any("authentication failed: RSA signature of FQDN '@west'" in x for x in east), east
    assert any("with encrypted notification AUTHENTICATION_FAILED" in x for x in east)
    assert "#1: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED" in \
        net.west.lines()
    assert [d.ok for d in net.west.done] == [False]


# ------------------------------------------------------------------ certificates


def cert_pair(store, west_cert="west", east_cert="east-chain", *, west_id="west.testing.libreswan.org",
              east_id="east.testing.libreswan.org", west_send="always", **kw) -> Net:
    net = pair(store, end(cert=west_cert, sendcert=west_send), end("right"),
               end(cert=east_cert), end("right"), west_id=west_id, east_id=east_id,
               west_kw={"send_cert": west_send}, **kw)
    return net


def test_certificates_rsa_initiator_ecdsa_responder_with_chain(store):
    net = cert_pair(store)
    net.up()
    w, e = established(net)
    assert w == ("#1: initiator established IKE SA; authenticated peer certificate "
                 "'@east.testing.libreswan.org' and P-256 ECDSA with SHA2_512 digital "
                 f"signature issued by '{INTER}'")
    assert e == ("#1: responder established IKE SA; authenticated peer certificate "
                 "'@west.testing.libreswan.org' and 2048-bit RSASSA-PSS with SHA2_512 "
                 f"digital signature issued by '{MAINCA}'")
    # east sent its certificate and the intermediate (interca is not in cacerts/)
    assert [d.ok for d in net.west.done] == [True]


def test_certificate_ed25519(store):
    net = cert_pair(store, east_cert="ed", east_id="ed.example.org")
    net.up()
    w, _ = established(net)
    assert w.endswith("certificate '@ed.example.org' and Ed25519 digital signature issued "
                      f"by '{MAINCA}'")


def test_certificate_p384_dn_id(store):
    """road has no SAN: its ID is its subject DN (leftid=%fromcert)."""
    from pyswan.ike.constants import IdType
    from pyswan.ike.ikev2 import Identity

    subject = pkauth.cert_identity(store, end(cert="road"))
    assert subject is not None and subject.id_type == IdType.DER_ASN1_DN
    wp = make_policy(local_id="west.testing.libreswan.org", remote_id=None)
    ep = make_policy(local=EAST, remote=WEST, local_id="x", remote_id=None,
                     local_net="10.2.0.0/24", remote_net="10.1.0.0/24")
    wp.local_auth = wp.remote_auth = ep.local_auth = ep.remote_auth = "ecdsa"
    wp.local_auth = ep.remote_auth = "rsasig"
    ep.local_id = Identity(subject.id_type, subject.data, subject.text)
    net = Net(wp, ep, west_psk=Keys(store, end(cert="west"), end("right")),
              east_psk=Keys(store, end(cert="road"), end("right")))
    net.up()
    w, _ = established(net)
    assert w.endswith(f"certificate 'CN=road' and P-384 ECDSA with SHA2_512 digital signature "
                      f"issued by '{INTER}'")


def test_wrong_id_is_rejected(store):
    net = cert_pair(store, west_id="nobody.example.org")
    net.up()
    east = net.east.lines()
    assert any(x.startswith("#1: X509: authentication failed;") for x in east), east
    assert "#1: X509: certificate payload rejected for this connection" in east
    assert "#1: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED" in \
        net.west.lines()


def test_revoked_certificate_is_rejected(store):
    net = cert_pair(store, west_cert="revoked", west_id="revoked.example.org")
    # revoked has no SAN: use its DN as ID
    subject = pkauth.cert_identity(store, end(cert="revoked"))
    net.west.engine.policies._by_pair  # noqa: B018
    for pol in (p for lst in net.west.engine.policies._by_pair.values() for p in lst):
        pol.local_id = subject
    for pol in (p for lst in net.east.engine.policies._by_pair.values() for p in lst):
        pol.remote_id = None
    net.up()
    east = net.east.lines()
    assert any("revoked" in x.lower() for x in east), east
    assert "#1: X509: certificate payload rejected for this connection" in east
    assert [d.ok for d in net.west.done] == [False]


def test_unknown_ca_is_rejected(store):
    net = cert_pair(store, west_cert="stranger")
    subject = pkauth.cert_identity(store, end(cert="stranger"))
    for pol in (p for lst in net.west.engine.policies._by_pair.values() for p in lst):
        pol.local_id = subject
    for pol in (p for lst in net.east.engine.policies._by_pair.values() for p in lst):
        pol.remote_id = None
    net.up()
    east = net.east.lines()
    assert "#1: X509: certificate payload rejected for this connection" in east, east
    assert [d.ok for d in net.west.done] == [False]


def test_sendcert_never_with_peer_certreq_fails(store):
    net = cert_pair(store, west_send="never")
    net.up()
    east = net.east.lines()
    assert any("no certificate or public key for FQDN '@west.testing.libreswan.org'" in x
               for x in east), east
    assert [d.ok for d in net.west.done] == [False]


def test_sendcert_sendifasked_answers_the_certreq(store):
    net = cert_pair(store, west_send="sendifasked")
    net.up()
    established(net)
    assert [d.ok for d in net.west.done] == [True]


def test_signature_hash_policy_restricts(store):
    """authby=rsa-sha2_256 on both: the signature uses SHA2_256."""
    k = PKI.keys
    east_key = extra_rsa("rsa-east")
    net = pair(store, end(**raw(k.west)), end("right", **raw(east_key)),
               end(**raw(east_key)), end("right", **raw(k.west)),
               west_kw={"sig_hashes": (2,)}, east_kw={"sig_hashes": (2,)})
    net.up()
    w, _ = established(net)
    assert w.endswith("2048-bit RSASSA-PSS with SHA2_256 digital signature")


def test_signature_policy_from_authby():
    def cfg(*authby):
        return SimpleNamespace(authby=authby)
    assert pkauth.signature_policy(cfg()) == {"sig_hashes": (4, 3, 2), "rsa_pss": True,
                                              "rsa_v15": True}
    assert pkauth.signature_policy(cfg("rsa-sha1"))["rsa_pss"] is False
    got = pkauth.signature_policy(cfg("rsa-sha2_256"))
    assert got == {"sig_hashes": (2,), "rsa_pss": True, "rsa_v15": False}
    assert pkauth.hash_policy_text(cfg("ecdsa-sha2_384,rsa-sha2_512")) == "SHA2_384+SHA2_512"
