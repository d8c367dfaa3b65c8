"""The directory certificate store: loading, our credentials, peer validation, CERTREQ, listings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from test_certstore_pki import NOW, PKI, der, key_pem, pem, write_store

from pyswan.auto.connconfig import EndConfig
from pyswan.auto.values import ID_DER_ASN1_DN, parse_id
from pyswan.ike.pubkey import ckaid_hex, format_raw_pubkey, spki_der
from pyswan.pluto.certstore import CertStore, CertStoreError, CertVerifyError

WEST_DN = ("C=CA, ST=Ontario, O=Libreswan, OU=Test Department, "
           "CN=west.testing.libreswan.org, E=user-west@testing.libreswan.org")
WEST_NSS = ("E=user-west@testing.libreswan.org,CN=west.testing.libreswan.org,"
            "OU=Test Department,O=Libreswan,ST=Ontario,C=CA")
MAINCA_NSS = "CN=Libreswan test CA for mainca,O=Libreswan,C=CA"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return write_store(tmp_path / "ipsec.d")


@pytest.fixture
def store(store_dir: Path) -> CertStore:
    s = CertStore(str(store_dir))
    assert s.load() == []
    return s


def nss_error(subject: str, code: str, text: str) -> str:
    return f"NSS: ERROR: IPsec certificate {subject} invalid: {code}: {text}"


# ------------------------------------------------------------------ loading

def test_load_reads_all_four_directories(store: CertStore) -> None:
    assert sorted(store.end_certs) == ["east", "ed", "expired", "road", "west"]
    assert len(store.ca_certs) == 2 and len(store.crls) == 1


def test_missing_ipsecdir_is_an_empty_store(tmp_path: Path) -> None:
    s = CertStore(str(tmp_path / "nowhere"))
    assert s.load() == []
    assert s.end_certs == {} and s.list_lines("end") == []


def test_group_readable_private_key_is_warned_about(store_dir: Path) -> None:
    os.chmod(store_dir / "private" / "west.pem", 0o644)
    warnings = CertStore(str(store_dir)).load()
    assert warnings == [f"WARNING: private key file {store_dir / 'private' / 'west.pem'} is "
                        "accessible by group or others (mode 0644); it should be 0600"]


def test_encrypted_and_garbage_files_are_skipped_with_a_warning(store_dir: Path) -> None:
    enc = PKI.keys.west.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"secret"))
    (store_dir / "private" / "locked.pem").write_bytes(enc)
    os.chmod(store_dir / "private" / "locked.pem", 0o600)
    (store_dir / "certs" / "junk.pem").write_text("not a certificate\n")
    (store_dir / "certs" / "west.pem~").write_text("editor backup, ignored\n")
    warnings = CertStore(str(store_dir)).load()
    assert any("locked.pem: the private key is encrypted" in w for w in warnings)
    assert any(w.startswith(f"ignoring {store_dir / 'certs' / 'junk.pem'}: not a PEM or DER")
               for w in warnings)
    assert len(warnings) == 2


def test_duplicate_nickname_is_reported(store_dir: Path) -> None:
    (store_dir / "certs" / "west.der").write_bytes(der(PKI.certs.west))
    warnings = CertStore(str(store_dir)).load()
    assert warnings == [f"ignoring {store_dir / 'certs' / 'west.pem'}: nickname \"west\" is "
                        f"already used by {store_dir / 'certs' / 'west.der'}"]


def test_reload_sees_new_files(store: CertStore, store_dir: Path) -> None:
    (store_dir / "certs" / "extra.pem").write_bytes(pem(PKI.certs.ikeonly))
    assert "extra" not in store.end_certs
    assert store.reload() == []
    assert "extra" in store.end_certs


# ------------------------------------------------------------------ our credentials

def test_local_credentials_by_nickname(store: CertStore) -> None:
    creds = store.local_credentials("west", None, now=NOW)
    assert creds.cert == PKI.certs.west
    assert creds.chain == []  # issued by the root: nothing to send
    assert creds.key_description == "2048-bit RSA"
    assert creds.ckaid == ckaid_hex(PKI.keys.west)
    assert creds.nickname == "west"
    assert creds.subject_der == PKI.certs.west.subject.public_bytes()
    assert creds.issuer_dn == "C=CA, O=Libreswan, CN=Libreswan test CA for mainca"
    naive = store.local_credentials("west", None, now=NOW.replace(tzinfo=None))  # taken as UTC
    assert naive.cert == creds.cert


def test_local_chain_comes_from_cacerts_or_the_cert_file(tmp_path: Path) -> None:
    s = CertStore(str(write_store(tmp_path, inter_in_cacerts=False)))
    s.load()
    road = s.local_credentials("road", None, now=NOW)  # interca bundled in road.pem
    assert road.chain == [PKI.certs.interca]
    assert road.key_description == "P-384 ECDSA"
    assert road.chain_for("none") == [] and road.chain_for("issuer") == road.chain
    east = s.local_credentials("east", None, now=NOW)  # interca nowhere
    assert east.chain == []


def test_local_credentials_by_ckaid(store: CertStore) -> None:
    east = store.local_credentials(None, ckaid_hex(PKI.keys.east).upper(), now=NOW)
    assert east.cert == PKI.certs.east and east.nickname == "east"
    assert east.chain == [PKI.certs.interca]
    raw = store.local_credentials(None, ckaid_hex(PKI.keys.raw), now=NOW)
    assert raw.cert is None and raw.chain == []
    assert raw.key_description == "P-256 ECDSA"
    ed = store.local_credentials("ed", None, now=NOW)
    assert ed.key_description == "P-255 EDDSA"


def test_local_credentials_errors(store: CertStore, store_dir: Path) -> None:
    with pytest.raises(CertStoreError) as e:
        store.local_credentials("nobody", None)
    assert str(e.value) == f"no certificate nicknamed \"nobody\" in {store_dir / 'certs'}"
    with pytest.raises(CertStoreError) as e:
        store.local_credentials("expired", None, leftright="left", now=NOW)
    assert str(e.value) == "left certificate 'expired' has expired"
    with pytest.raises(CertStoreError) as e:
        store.local_credentials(None, "00112233", now=NOW)
    assert str(e.value) == ("private key matching CKAID \"00112233\" not found in "
                            f"{store_dir / 'private'}")
    (store_dir / "private" / "west.pem").unlink()
    store.reload()
    with pytest.raises(CertStoreError) as e:
        store.local_credentials("west", None, now=NOW)
    assert str(e.value) == ("private key matching certificate \"west\" not found in "
                            f"{store_dir / 'private'}")


def test_id_from_cert_is_the_subject_dn(store: CertStore) -> None:
    ident = store.id_from_cert(PKI.certs.west)
    assert ident.kind == ID_DER_ASN1_DN
    assert ident.display() == WEST_DN
    assert ("CN", "west.testing.libreswan.org") in ident.rdns


# ------------------------------------------------------------------ raw public keys

def test_public_key_for_raw_keys_and_cert(store: CertStore) -> None:
    _, rsakey = format_raw_pubkey(PKI.keys.west.public_key())
    end = EndConfig("right", pubkey_keyword="rsasigkey", pubkey=rsakey)
    pub, desc = store.public_key_for(end)
    assert spki_der(pub) == spki_der(PKI.keys.west.public_key()) and desc == "2048-bit RSA"
    end = EndConfig("right", ecdsakey=format_raw_pubkey(PKI.keys.east.public_key())[1])
    assert store.public_key_for(end)[1] == "P-256 ECDSA"
    end = EndConfig("right", pubkey_keyword="rsasigkey", pubkey="%cert", cert="road")
    pub, desc = store.public_key_for(end)
    assert spki_der(pub) == spki_der(PKI.keys.road.public_key()) and desc == "P-384 ECDSA"
    end = EndConfig("right", pubkey_keyword="rsasigkey", pubkey=rsakey, cert="road")
    assert store.public_key_for(end)[1] == "P-384 ECDSA"  # the certificate wins
    end = EndConfig("left", ckaid=ckaid_hex(PKI.keys.raw))
    assert store.public_key_for(end)[1] == "P-256 ECDSA"


def test_public_key_for_errors(store: CertStore) -> None:
    with pytest.raises(CertStoreError, match=r"^rightrsasigkey invalid: 2 byte raw RSA"):
        store.public_key_for(EndConfig("right", pubkey_keyword="rsasigkey", pubkey="0x0101"))
    with pytest.raises(CertStoreError, match="certificate 'nope' not found"):
        store.public_key_for(EndConfig("right", pubkey_keyword="rsasigkey", pubkey="%cert",
                                       cert="nope"))
    with pytest.raises(CertStoreError, match="no public key"):
        store.public_key_for(EndConfig("left"))


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("leaf, sent, desc", [
    ("west", [], "2048-bit RSA"),
    ("east", ["interca"], "P-256 ECDSA"),
    ("road", ["interca"], "P-384 ECDSA"),
    ("ed", [], "P-255 EDDSA"),
    ("ikeonly", [], "P-256 ECDSA"),  # EKU ipsecIKE alone is fine for IKE
])
def test_valid_chains(tmp_path: Path, leaf: str, sent: list[str], desc: str) -> None:
    s = CertStore(str(write_store(tmp_path, inter_in_cacerts=False)))
    s.load()
    cert = getattr(PKI.certs, leaf)
    peer = s.verify_peer(der(cert), [der(getattr(PKI.certs, n)) for n in sent],
                         expected_id=None, ca=None, now=NOW)
    assert peer.description == desc
    assert peer.cert == cert and peer.chain[-1] == PKI.certs.mainca
    assert peer.matched_id.kind == ID_DER_ASN1_DN and peer.log_lines == ()
    assert spki_der(peer.public_key) == spki_der(cert.public_key())


def test_intermediate_from_cacerts_need_not_be_sent(store: CertStore) -> None:
    peer = store.verify_peer(der(PKI.certs.east), [], expected_id=None, ca=None, now=NOW)
    # every CA in cacerts/ is a trust anchor, so the path ends at the intermediate
    assert [c.subject for c in peer.chain] == [PKI.certs.east.subject, PKI.certs.interca.subject]
    assert peer.issuer_dn == "C=CA, O=Libreswan, CN=Intermediate CA"


def test_the_end_cert_may_come_after_a_ca_cert(store: CertStore) -> None:
    # make_end_cert_first(): the first non-CA certificate is the end certificate
    peer = store.verify_peer(der(PKI.certs.interca), [der(PKI.certs.east)], expected_id=None,
                             ca=None, now=NOW)
    assert peer.cert == PKI.certs.east
    with pytest.raises(CertVerifyError) as e:
        store.verify_peer(der(PKI.certs.interca), [], expected_id=None, ca=None, now=NOW)
    assert e.value.reason == "X509: no EE-cert in chain!"


@pytest.mark.parametrize("leaf, sent, subject, code, text", [
    ("stranger", [], "CN=stranger", "SEC_ERROR_UNKNOWN_ISSUER",
     "Peer's Certificate issuer is not recognized."),
    ("east", [], "CN=east.testing.libreswan.org", "SEC_ERROR_UNKNOWN_ISSUER",
     "Peer's Certificate issuer is not recognized."),
    ("orphan", ["nocaint"], "CN=orphan", "SEC_ERROR_UNKNOWN_ISSUER",
     "Peer's Certificate issuer is not recognized."),
    ("forged", [], "CN=forged", "SEC_ERROR_BAD_SIGNATURE",
     "Peer's certificate has an invalid signature."),
    ("expired", [], "CN=expired", "SEC_ERROR_EXPIRED_CERTIFICATE",
     "Peer's Certificate has expired."),
    ("codesign", [], "CN=codesign", "SEC_ERROR_INADEQUATE_CERT_TYPE",
     "Certificate type not approved for application."),
    ("kusign", [], "CN=kusign", "SEC_ERROR_INADEQUATE_KEY_USAGE",
     "Certificate key usage inadequate for attempted operation."),
    ("revoked", [], MAINCA_NSS, "SEC_ERROR_REVOKED_CERTIFICATE",
     "Peer's Certificate has been revoked."),
])
def test_invalid_chains(tmp_path: Path, leaf: str, sent: list[str], subject: str, code: str,
                        text: str) -> None:
    s = CertStore(str(write_store(tmp_path, inter_in_cacerts=False)))
    s.load()
    with pytest.raises(CertVerifyError) as e:
        s.verify_peer(der(getattr(PKI.certs, leaf)), [der(getattr(PKI.certs, n)) for n in sent],
                      expected_id=None, ca=None, now=NOW)
    assert e.value.reason == nss_error(subject, code, text)
    assert e.value.code == code and str(e.value) == e.value.reason


def test_revocation_names_the_serial(store: CertStore) -> None:
    with pytest.raises(CertVerifyError) as e:
        store.verify_peer(der(PKI.certs.revoked), [], expected_id=None, ca=None, now=NOW)
    assert e.value.serial == "0x13"
    assert e.value.detail == "certificate CN=revoked SN: 0x13 was revoked on Feb 01 00:00:00 2025 UTC"


def test_without_the_crl_a_revoked_cert_passes_unless_crl_strict(tmp_path: Path) -> None:
    d = write_store(tmp_path, crl=False)
    s = CertStore(str(d))
    s.load()
    s.verify_peer(der(PKI.certs.revoked), [], expected_id=None, ca=None, now=NOW)
    strict = CertStore(str(d), crl_strict=True)
    strict.load()
    with pytest.raises(CertVerifyError) as e:
        strict.verify_peer(der(PKI.certs.west), [], expected_id=None, ca=None, now=NOW)
    assert e.value.reason == ("certificate payload rejected; crl-strict=yes and Certificate "
                              "Revocation List (CRL) is expired or missing")


def test_crl_with_a_bad_signature_is_ignored(store_dir: Path) -> None:
    bogus = (store_dir / "crls" / "mainca.crl")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    crl = (x509.CertificateRevocationListBuilder().issuer_name(PKI.certs.mainca.subject)
           .last_update(NOW).next_update(NOW)
           .sign(PKI.keys.otherca, hashes.SHA256()))
    bogus.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    warnings = CertStore(str(store_dir)).load()
    assert warnings == [f"ignoring {bogus}: CRL signature does not verify with the key of "
                        "'C=CA, O=Libreswan, CN=Libreswan test CA for mainca'"]


def test_expired_intermediate(store: CertStore) -> None:
    import datetime as dt

    from test_certstore_pki import CA_KU, cn, issue

    k, c = PKI.keys, PKI.certs
    old_ca = issue(cn("old CA"), k.otherca.public_key(), c.mainca.subject, k.mainca, serial=99,
                   ca=True, ku=CA_KU, not_after=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    leaf = issue(cn("young"), k.misc.public_key(), cn("old CA"), k.otherca, serial=100)
    with pytest.raises(CertVerifyError) as e:
        store.verify_peer(der(leaf), [der(old_ca)], expected_id=None, ca=None, now=NOW)
    assert e.value.reason == nss_error("CN=old CA", "SEC_ERROR_EXPIRED_ISSUER_CERTIFICATE",
                                       "Peer's Certificate issuer has expired.")


def test_anchor_that_is_not_a_ca(tmp_path: Path) -> None:
    d = tmp_path / "d"
    for sub in ("cacerts", "certs", "private"):
        (d / sub).mkdir(parents=True)
    (d / "cacerts" / "noca.pem").write_bytes(pem(PKI.certs.nocaint))
    s = CertStore(str(d))
    assert s.load() == [f"WARNING: {d / 'cacerts' / 'noca.pem'}: certificate \"noca\" is not a "
                        "CA certificate (basicConstraints CA:TRUE missing)"]
    with pytest.raises(CertVerifyError) as e:
        s.verify_peer(der(PKI.certs.orphan), [], expected_id=None, ca=None, now=NOW)
    assert e.value.reason == nss_error("CN=noca-int", "SEC_ERROR_CA_CERT_INVALID",
                                       "Issuer certificate is invalid.")


def test_no_ca_at_all(tmp_path: Path) -> None:
    s = CertStore(str(tmp_path))
    s.load()
    with pytest.raises(CertVerifyError) as e:
        s.verify_peer(der(PKI.certs.west), [], expected_id=None, ca=None, now=NOW)
    assert e.value.reason == ("no Certificate Authority in NSS Certificate DB! certificate "
                              "payloads discarded")


def test_garbage_certificate_payload(store: CertStore) -> None:
    with pytest.raises(CertVerifyError) as e:
        store.verify_peer(b"\x30\x03junk", [], expected_id=None, ca=None, now=NOW)
    assert e.value.code == "SEC_ERROR_BAD_DER"


@pytest.mark.parametrize("leaf, ca, ok", [
    ("east", "C=CA, O=Libreswan, CN=Intermediate CA", True),
    ("east", "C=CA, O=Libreswan, CN=Libreswan test CA for mainca", True),
    ("west", "C=CA, O=Libreswan, CN=Libreswan test CA for mainca", True),
    ("west", "C=CA, O=Libreswan, CN=Intermediate CA", False),
    ("west", "%any", True),
])
def test_ca_constraint(store: CertStore, leaf: str, ca: str, ok: bool) -> None:
    args = dict(expected_id=None, ca=ca, now=NOW)
    if ok:
        store.verify_peer(der(getattr(PKI.certs, leaf)), [], **args)  # type: ignore[arg-type]
        return
    with pytest.raises(CertVerifyError) as e:
        store.verify_peer(der(getattr(PKI.certs, leaf)), [], **args)  # type: ignore[arg-type]
    assert e.value.code == "CA_MISMATCH"
    assert e.value.reason == ("X509: peer certificate issued by 'C=CA, O=Libreswan, "
                              "CN=Libreswan test CA for mainca' is not trusted by CA "
                              "'C=CA, O=Libreswan, CN=Intermediate CA'")


# ------------------------------------------------------------------ the peer's ID

_SAN_MISMATCH = "X509: authentication failed; peer certificate subjectAltName extension does not match"


@pytest.mark.parametrize("leaf, claimed, error, matched", [
    # DN: exact, any RDN order, wildcards, case rules
    ("west", WEST_DN, None, WEST_DN),
    ("west", "E=user-west@testing.libreswan.org, CN=west.testing.libreswan.org, "
             "OU=Test Department, O=Libreswan, ST=Ontario, C=CA", None, None),
    ("west", "C=CA, ST=Ontario, O=Libreswan, OU=*, CN=*, E=*", None, WEST_DN),
    ("west", "CN=*, E=*, C=CA, ST=*, O=Libreswan, OU=Test Department", None, WEST_DN),
    ("west", "C=CA, ST=Ontario, O=LIBRESWAN, OU=Test Department, "
             "CN=west.testing.libreswan.org, E=USER-WEST@testing.libreswan.org", None, None),
    ("west", "C=CA, ST=Ontario, O=Libreswan, OU=Test Department, "
             "CN=WEST.testing.libreswan.org, E=user-west@testing.libreswan.org",
     "X509: authentication failed; peer ID DER_ASN1_DN '" + WEST_NSS + "' does not match "
     "expected 'C=CA, ST=Ontario, O=Libreswan, OU=Test Department, "
     "CN=WEST.testing.libreswan.org, E=user-west@testing.libreswan.org'", None),
    ("west", "C=CA, O=Other, CN=*",
     "X509: authentication failed; peer ID DER_ASN1_DN '" + WEST_NSS + "' does not match "
     "expected 'C=CA, O=Other, CN=*'", None),
    # Libreswan's any-order pass only needs the expected RDNs to be present
    ("west", "CN=west.testing.libreswan.org", None, None),
    # subjectAltName
    ("west", "@west.testing.libreswan.org", None, None),
    ("west", "@WEST.Testing.Libreswan.org", None, None),
    ("west", "@east.testing.libreswan.org", f"{_SAN_MISMATCH} FQDN 'east.testing.libreswan.org'",
     None),
    ("west", "user-west@testing.libreswan.org", None, None),
    ("west", "nobody@testing.libreswan.org",
     f"{_SAN_MISMATCH} USER_FQDN 'nobody@testing.libreswan.org'", None),
    ("west", "192.1.2.45", None, None),
    ("west", "2001:db8:1:2::45", None, None),
    ("west", "192.1.2.23", f"{_SAN_MISMATCH} IPV4_ADDR '192.1.2.23'", None),
    ("west", "@192.1.2.45", None, None),  # an FQDN that reads as an address matches iPAddress
    ("east", "@host.wild.example.org", None, None),
    ("east", "@wild.example.org", f"{_SAN_MISMATCH} FQDN 'wild.example.org'", None),
    ("road", "@road", "X509: authentication failed; peer certificate contains no "
                      "subjectAltName extension to match FQDN '@road'", None),
    ("west", "@#0102", "X509: authentication failed; unhandled ID type KEY_ID; cannot match "
                       "peer's certificate with expected peer ID", None),
    # %fromcert and %any adopt the subject
    ("west", "%fromcert", None, WEST_DN),
    ("west", "%any", None, WEST_DN),
])
def test_peer_id_against_certificate(store: CertStore, leaf: str, claimed: str,
                                     error: str | None, matched: str | None) -> None:
    claimed_id = parse_id(claimed)
    call = dict(expected_id=claimed_id, ca=None, now=NOW)
    cert = der(getattr(PKI.certs, leaf))
    if error is not None:
        with pytest.raises(CertVerifyError) as e:
            store.verify_peer(cert, [], **call)  # type: ignore[arg-type]
        assert e.value.reason == error and e.value.code == "ID_MISMATCH"
        return
    peer = store.verify_peer(cert, [], **call)  # type: ignore[arg-type]
    assert peer.matched_id.display() == (matched or claimed_id.display())


def test_require_id_on_certificate_no(store: CertStore) -> None:
    peer = store.verify_peer(der(PKI.certs.west), [], expected_id=parse_id("@elsewhere"),
                             ca=None, now=NOW, require_id_on_certificate=False)
    assert peer.matched_id.display() == "@elsewhere"
    assert peer.log_lines == (
        "peer certificate subjectAltName extension does not match FQDN 'elsewhere'",
        "X509: connection allows unmatched IKE ID and certificate SAN")


# ------------------------------------------------------------------ CERTREQ

def _spki_sha1(cert: object) -> bytes:
    return hashlib.sha1(spki_der(cert.public_key())).digest()  # type: ignore[attr-defined]


def test_cert_requests_name_the_trust_anchors(store: CertStore) -> None:
    c = PKI.certs
    assert sorted(store.cert_requests()) == sorted([_spki_sha1(c.mainca), _spki_sha1(c.interca)])
    assert store.cert_requests("C=CA, O=Libreswan, CN=Intermediate CA") == [_spki_sha1(c.interca)]
    assert all(len(h) == 20 for h in store.cert_requests())


def test_match_certreq(store: CertStore) -> None:
    c = PKI.certs
    assert store.match_certreq(b"")  # an empty request names any CA
    assert store.match_certreq(b"\x00" * 20 + _spki_sha1(c.mainca))
    assert not store.match_certreq([b"\x01" * 20])
    # Libreswan (NSS derPublicKey) hashes the subjectPublicKey bits instead
    from pyswan.pluto.x509ids import spki_subject_public_key
    bits = spki_subject_public_key(spki_der(c.interca.public_key()))
    assert store.match_certreq([hashlib.sha1(bits).digest()])
    # for a given certificate only its own chain counts
    assert store.match_certreq([_spki_sha1(c.interca)], cert=c.east)
    assert not store.match_certreq([_spki_sha1(c.interca)], cert=c.west)


# ------------------------------------------------------------------ listings

def test_listcerts_lines(store: CertStore) -> None:
    lines = store.list_lines("end", utc=True)
    i = lines.index('End certificate "west" - SN: 0x0081')
    assert lines[i:i + 7] == [
        'End certificate "west" - SN: 0x0081',
        f"  subject: {WEST_DN}",
        "  issuer: C=CA, O=Libreswan, CN=Libreswan test CA for mainca",
        "  not before: Mon Jan 01 00:00:00 2024",
        "  not after: Tue Jan 01 00:00:00 2030",
        "  2048 bit RSA: has private key",
        " ",  # whack's blank line
    ]
    assert "  256 bit(other): has private key" in lines  # east: NSS's wording for non-RSA
    assert "  255 bit(other): has private key" in lines  # Ed25519


def test_listcacerts_lines(store: CertStore) -> None:
    lines = store.list_lines("ca", utc=False)
    assert lines[0] == 'CA certificate "interca" - SN: 0x02'
    assert 'Root CA certificate "mainca" - SN: 0x01' in lines
    assert lines[-2:] == ["  2048 bit RSA", " "]


def test_listcrls_lines(store: CertStore) -> None:
    assert store.list_lines("crl", utc=True) == [
        "issuer: C=CA, O=Libreswan, CN=Libreswan test CA for mainca",
        "revoked certs: 1",
        "updates: this Wed Jan 01 00:00:00 2025",
        "         next Thu Jan 01 00:00:00 2026",
    ]


def test_private_key_formats(tmp_path: Path) -> None:
    d = write_store(tmp_path)
    # traditional OpenSSL "BEGIN EC PRIVATE KEY" and DER PKCS#8 both load
    trad = PKI.keys.east.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption())
    (d / "private" / "east.pem").write_bytes(trad)
    s = CertStore(str(d))
    assert s.load() == []
    assert s.local_credentials("east", None, now=NOW).ckaid == ckaid_hex(PKI.keys.east)
    assert key_pem(PKI.keys.east).startswith(b"-----BEGIN PRIVATE KEY")


# ------------------------------------------------------------------ with the AUTH code

@pytest.mark.parametrize("nick", ["west", "east", "road", "ed"])
def test_store_keys_sign_and_verify_rfc7427_auth(store: CertStore, nick: str) -> None:
    """What the engine does: sign with our Credentials, verify with the PeerCert key."""
    from pyswan.ike.auth import AuthMethod, sign, verify

    creds = store.local_credentials(nick, None, now=NOW)
    octets = b"InitiatorSignedOctets"
    data = sign(creds.private_key, AuthMethod.DIGITAL_SIGNATURE, "sha512", octets)
    assert creds.cert is not None
    peer = store.verify_peer(der(creds.cert), [der(c) for c in creds.chain_for("all")],
                             expected_id=None, ca=None, now=NOW)
    scheme = verify(peer.public_key, AuthMethod.DIGITAL_SIGNATURE, data, octets)
    assert scheme.name == {"west": "RSASSA-PSS", "ed": "EDDSA"}.get(nick, "ECDSA")


def test_path_length_constraint(tmp_path: Path) -> None:
    from test_certstore_pki import CA_KU, cn, issue

    s = CertStore(str(write_store(tmp_path, inter_in_cacerts=False)))
    s.load()
    k, c = PKI.keys, PKI.certs
    sub = issue(cn("sub CA"), k.otherca.public_key(), c.interca.subject, k.interca, serial=98,
                ca=True, ku=CA_KU)  # interca has pathlen 0: no CA may sit below it
    leaf = issue(cn("deep"), k.misc.public_key(), cn("sub CA"), k.otherca, serial=97)
    with pytest.raises(CertVerifyError) as e:
        s.verify_peer(der(leaf), [der(sub), der(c.interca)], expected_id=None, ca=None, now=NOW)
    assert e.value.code == "SEC_ERROR_PATH_LEN_CONSTRAINT_INVALID"
