"""``ipsec import`` (PKCS#12 into the directory store), ``newhostkey`` and ``showhostkey``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from test_certstore_pki import NOW, PKI

from pyswan.auto.importcmd import import_main, main, newhostkey_main, showhostkey_main
from pyswan.ike.pubkey import ckaid_hex, parse_raw_pubkey, spki_der
from pyswan.pluto.certstore import CertStore


def p12(tmp_path: Path, password: bytes | None, name: bytes | None = b"west") -> Path:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    data = pkcs12.serialize_key_and_certificates(name, PKI.keys.west, PKI.certs.west,
                                                 [PKI.certs.mainca], enc)
    path = tmp_path / "west.all.p12"
    path.write_bytes(data)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_import_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ipsec.d"
    rc = main([str(p12(tmp_path, b"foobar")), "--ipsecdir", str(d), "--password", "foobar"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out == [
        f"imported certificate \"west\" to {d / 'certs' / 'west.pem'}",
        f"imported private key with CKAID {ckaid_hex(PKI.keys.west)} to "
        f"{d / 'private' / 'west.pem'}",
        f"imported CA certificate \"Libreswan test CA for mainca\" to "
        f"{d / 'cacerts' / 'Libreswan test CA for mainca.pem'}",
        "ipsec import: PKCS12 IMPORT SUCCESSFUL",
    ]
    assert mode(d / "private" / "west.pem") == 0o600
    assert mode(d / "private") == 0o700
    store = CertStore(str(d))
    assert store.load() == []
    creds = store.local_credentials("west", None, now=NOW)
    assert creds.cert == PKI.certs.west and creds.key_description == "2048-bit RSA"
    store.verify_peer(PKI.certs.west.public_bytes(serialization.Encoding.DER), [],
                      expected_id=None, ca=None, now=NOW)
    # importing the same bundle again changes nothing and still succeeds
    assert import_main([str(p12(tmp_path, b"foobar")), "-d", str(d), "-W", "foobar"]) == 0
    assert len(list((d / "cacerts").iterdir())) == 1


def test_import_nickname_and_no_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    d = tmp_path / "d"
    assert import_main([str(p12(tmp_path, None, name=None)), "--nickname", "gw one",
                        "--ipsecdir", str(d)]) == 0
    assert (d / "certs" / "gw one.pem").exists() and (d / "private" / "gw one.pem").exists()
    # without a friendly name or --nickname the file name is used
    assert import_main([str(p12(tmp_path, None, name=None)), "--ipsecdir", str(d / "x")]) == 0
    assert (d / "x" / "certs" / "west.all.pem").exists()


def test_import_bad_password_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    d = tmp_path / "d"
    assert import_main([str(p12(tmp_path, b"right")), "--ipsecdir", str(d),
                        "--password", "wrong"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ipsec import: PKCS12 decode failed for {tmp_path / 'west.all.p12'}: "
                          "bad password or not a PKCS#12 file")
    assert not (d / "certs").exists()
    junk = tmp_path / "junk.p12"
    junk.write_bytes(b"\x30\x03\x02\x01\x03")
    assert import_main([str(junk), "--ipsecdir", str(d)]) == 1
    assert import_main([str(tmp_path / "missing.p12"), "--ipsecdir", str(d)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert import_main([]) == 1
    assert "the following arguments are required: FILE.p12" in capsys.readouterr().err


def test_import_refuses_to_replace_another_certificate(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "d"
    (d / "certs").mkdir(parents=True)
    (d / "certs" / "west.pem").write_bytes(
        PKI.certs.east.public_bytes(serialization.Encoding.PEM))
    assert import_main([str(p12(tmp_path, None)), "--ipsecdir", str(d)]) == 1
    assert "certificate nickname \"west\" already exists" in capsys.readouterr().err


def test_newhostkey_then_showhostkey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert newhostkey_main(["--keytype", "ecdsa", "--curve", "secp384r1", "--ipsecdir", d]) == 0
    err = capsys.readouterr().err.splitlines()
    ckaid = err[0].split("CKAID ")[1].split()[0]
    assert err == [f"Generated ECDSA key pair with CKAID {ckaid} was stored in "
                   f"{tmp_path / 'private' / (ckaid + '.pem')}",
                   f"The public key can be displayed using: ipsec showhostkey --left --ckaid "
                   f"{ckaid}"]
    assert mode(tmp_path / "private" / f"{ckaid}.pem") == 0o600
    assert showhostkey_main(["--left", "--ckaid", ckaid[:8], "--ipsecdir", d]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("\t# left keyid: ") and out[1].startswith("\tleftecdsakey=0s")
    key = parse_raw_pubkey("ecdsakey", out[1].split("=", 1)[1])
    assert ckaid_hex(key) == ckaid
    assert showhostkey_main(["--right", "--pubkey", "--ckaid", ckaid, "--ipsecdir", d]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("\trightpubkey=")
    assert spki_der(parse_raw_pubkey("pubkey", line.split("=", 1)[1])) == spki_der(key)
    assert showhostkey_main(["--list", "--ipsecdir", d]) == 0
    assert capsys.readouterr().out == f"< 1> ECDSA keyid: {out[0].split(': ')[1]} " \
                                      f"ckaid: {ckaid}\n"
    # the store uses the raw key through leftckaid=
    store = CertStore(d)
    store.load()
    assert store.local_credentials(None, ckaid).key_description == "P-384 ECDSA"


def test_newhostkey_and_showhostkey_errors(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert newhostkey_main(["--bits", "1024", "--ipsecdir", d]) == 1
    assert "requested RSA key size (1024) is too small - use 2192 or more" in \
        capsys.readouterr().err
    assert newhostkey_main(["--keytype", "eddsa", "--bits", "256", "--ipsecdir", d]) == 1
    assert newhostkey_main(["--keytype", "ecdsa", "--curve", "p999", "--ipsecdir", d]) == 1
    assert newhostkey_main(["--keytype", "eddsa", "--ipsecdir", d, "--quiet"]) == 0
    assert showhostkey_main(["--left", "--ckaid", "ffff", "--ipsecdir", d]) == 20
    assert "showhostkey: No keys found" in capsys.readouterr().err
    assert showhostkey_main(["--left", "--ipsecdir", d]) == 1
    assert showhostkey_main(["--ipsecdir", d]) == 1
