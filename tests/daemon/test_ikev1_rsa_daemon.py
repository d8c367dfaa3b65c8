"""IKEv1 with RSA signatures between two real pluto daemons (127.0.0.1 and 127.0.0.2,
in-memory kernel), each with its own certificate store (``--ipsecdir``): raw keys
(``leftrsasigkey=``/``rightrsasigkey=``) and X.509 certificates validated against
``cacerts/``, in Main and Aggressive Mode, as ``ipsec auto`` users drive them."""

from __future__ import annotations

import re
import sys
import time
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from pyswan_testlib import Pluto, free_udp_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pluto"))
from test_certstore_pki import EE_KU, MAINCA_DN, PKI, cn, issue, key_pem, pem, write_store  # noqa: E402,E501

from pyswan.ike.pubkey import format_raw_pubkey  # noqa: E402

MAINCA = "C=CA, O=Libreswan, CN=Libreswan test CA for mainca"
EAST_FQDN = "east-v1.testing.libreswan.org"


@cache
def east_key() -> rsa.RSAPrivateKey:
    """IKEv1 signs with RSA only: east gets an RSA key (the test PKI's east is P-256)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def east_cert() -> x509.Certificate:
    return issue(cn(EAST_FQDN), east_key().public_key(), MAINCA_DN, PKI.keys.mainca,
                 serial=0x401, ku=EE_KU, san=[x509.DNSName(EAST_FQDN)])


@cache
def stranger() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA certificate from a CA neither store trusts."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = issue(cn("stranger-v1.example.org"), key.public_key(), cn("Unknown CA"), ca_key,
                 serial=0x402, ku=EE_KU, san=[x509.DNSName("stranger-v1.example.org")])
    return key, cert


def _pluto(root: Path, name: str, addr: str, port: int) -> Pluto:
    d = root / name
    d.mkdir()
    ipsecdir = write_store(d / "ipsec.d")
    (ipsecdir / "certs" / "east-v1.pem").write_bytes(pem(east_cert()))
    if name == "east":
        (ipsecdir / "private" / "east-v1.pem").write_bytes(key_pem(east_key()))
    else:
        key, cert = stranger()
        (ipsecdir / "certs" / "stranger-v1.pem").write_bytes(pem(cert))
        (ipsecdir / "private" / "stranger-v1.pem").write_bytes(key_pem(key))
    conf = d / "ipsec.conf"  # read at start: ikev1-policy is a pluto option
    conf.write_text("config setup\n    ikev1-policy=accept\n")
    return Pluto(d, addr=addr, ikeport=port, secrets="",
                 extra=["--ipsecdir", str(ipsecdir), "--config", str(conf)])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("v1rsa")
    port = free_udp_port("127.0.0.1")
    west = _pluto(root, "west", "127.0.0.1", port).start()
    east = _pluto(root, "east", "127.0.0.2", port).start()
    for p in (west, east):
        assert p.whack("--listen").rc == 0
    yield west, east, root
    west.stop()
    east.stop()


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _up(west: Pluto, east: Pluto, root: Path, name: str, west_body: str, east_body: str):
    for p, body in ((west, west_body), (east, east_body)):
        conf = root / f"{p.addr}-{name}.conf"
        conf.write_text("config setup\n    ikev1-policy=accept\n\nconn " + name + body)
        res = p.ipsec("--config", str(conf), "add", name)
        assert res.rc == 0, res
        assert res.lines == [f'"{name}": added oriented IKEv1 connection'], res
    return west.ipsec("up", name)


def _san(lines: list[str]) -> list[str]:
    """SPIs out; state numbers as #N (the daemons serve every test of the module)."""
    return [re.sub(r"#\d+:", "#N:", re.sub(r"0x[0-9a-f]{8}", "0xESPESP", x))
            for x in lines]


def _down(west: Pluto, east: Pluto, name: str) -> None:
    assert west.ipsec("down", name).rc == 0
    _wait(lambda: not [x for x in east.whack("--trafficstatus").lines if f'"{name}"' in x])


RAW = """
    keyexchange=ikev1
    authby=rsasig
    left=127.0.0.1
    leftid=@west
    leftsubnet=10.31.1.0/24
    leftrsasigkey={wkey}
    right=127.0.0.2
    rightid=@east
    rightsubnet=10.31.2.0/24
    rightrsasigkey={ekey}
    ike=aes256-sha2_256-modp2048
    esp=aes128-sha1-modp2048
"""


def _raw_body(**kw: str) -> str:
    _, wkey = format_raw_pubkey(PKI.keys.west.public_key(), "rsasigkey")
    _, ekey = format_raw_pubkey(east_key().public_key(), "rsasigkey")
    body = RAW.format(wkey=wkey, ekey=ekey)
    return body + "".join(f"    {k}={v}\n" for k, v in kw.items())


def test_main_mode_raw_rsa_keys(pair):
    west, east, root = pair
    body = _raw_body()
    res = _up(west, east, root, "v1raw", body, body)
    assert res.rc == 0, res
    lines = _san(res.lines)
    assert lines[:6] == [
        '"v1raw" #N: initiating IKEv1 Main Mode connection',
        '"v1raw" #N: sent Main Mode request',
        '"v1raw" #N: sent Main Mode I2',
        '"v1raw" #N: sent Main Mode I3',
        "\"v1raw\" #N: Peer ID is FQDN: '@east'",
        "\"v1raw\" #N: authenticated peer using preloaded certificate '@east' and 2048-bit "
        "raw RSA with SHA1 signature",
    ], lines
    assert lines[6] == ('"v1raw" #N: ISAKMP SA established {auth=RSA_SIG cipher=AES_CBC_256 '
                        "integ=HMAC_SHA2_256 group=MODP2048}"), lines
    assert lines[7].startswith('"v1raw" #N: initiating Quick Mode '
                               "IKEv1+RSASIG+ENCRYPT+TUNNEL+PFS+UP"), lines
    assert lines[-1] == ('"v1raw" #N: IPsec SA established tunnel mode {ESP=>0xESPESP '
                         "<0xESPESP xfrm=AES_CBC_128-HMAC_SHA1_96 DPD=passive}"), lines
    _wait(lambda: "authenticated peer using preloaded certificate '@west' and 2048-bit raw "
                  "RSA with SHA1 signature" in east.logtext())
    _wait(lambda: len([x for x in east.whack("--trafficstatus").lines if '"v1raw"' in x])
          == 1)
    status = _san(west.whack("--showstates").lines)
    assert any(x.startswith('#N: "v1raw":') and "ISAKMP SA established" in x
               for x in status), status
    _down(west, east, "v1raw")


def test_aggressive_mode_raw_rsa_keys(pair):
    west, east, root = pair
    body = _raw_body(aggressive="yes").replace("10.31.", "10.32.")
    res = _up(west, east, root, "v1aggr", body, body)
    assert res.rc == 0, res
    lines = _san(res.lines)
    assert lines[0] == '"v1aggr" #N: initiating IKEv1 Aggressive Mode connection', lines
    assert "\"v1aggr\" #N: authenticated peer using preloaded certificate '@east' and " \
        "2048-bit raw RSA with SHA1 signature" in lines, lines
    assert any(x.startswith('"v1aggr" #N: ISAKMP SA established {auth=RSA_SIG')
               for x in lines), lines
    assert any("IPsec SA established tunnel mode" in x for x in lines), lines
    _down(west, east, "v1aggr")


CERTS = """
    keyexchange=ikev1
    authby=rsasig
    left=127.0.0.1
    leftid=@west.testing.libreswan.org
    leftsubnet=10.33.1.0/24
    right=127.0.0.2
    rightid=@east-v1.testing.libreswan.org
    rightsubnet=10.33.2.0/24
    ike=aes256-sha2_256-modp2048
    esp=aes128-sha1-modp2048
"""


def test_main_mode_certificates_from_the_store(pair):
    west, east, root = pair
    res = _up(west, east, root, "v1certs",
              CERTS + "    leftcert=west\n    rightca=%same\n",
              CERTS + "    rightcert=east-v1\n")
    assert res.rc == 0, res
    lines = _san(res.lines)
    assert lines[:6] == [
        '"v1certs" #N: initiating IKEv1 Main Mode connection',
        '"v1certs" #N: sent Main Mode request',
        '"v1certs" #N: sent Main Mode I2',
        '"v1certs" #N: I am sending my cert',
        '"v1certs" #N: I am sending a certificate request',
        '"v1certs" #N: sent Main Mode I3',
    ], lines
    assert ("\"v1certs\" #N: authenticated peer certificate '@east-v1.testing.libreswan.org' "
            f"and 2048-bit raw RSA with SHA1 signature issued by '{MAINCA}'") in lines, lines
    assert any(x.startswith('"v1certs" #N: ISAKMP SA established {auth=RSA_SIG')
               for x in lines), lines
    assert any("IPsec SA established tunnel mode" in x for x in lines), lines
    _wait(lambda: "authenticated peer certificate '@west.testing.libreswan.org' and "
                  f"2048-bit raw RSA with SHA1 signature issued by '{MAINCA}'"
                  in east.logtext())
    _down(west, east, "v1certs")


def test_wrong_raw_key_is_refused(pair):
    west, east, root = pair
    _, other = format_raw_pubkey(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        "rsasigkey")
    good = _raw_body().replace("10.31.", "10.34.")
    wrong = re.sub(r"rightrsasigkey=\S+", f"rightrsasigkey={other}", good)
    res = _up(west, east, root, "v1wrong", wrong, good)
    assert res.rc != 0, res
    assert any("authentication failed: using raw RSA with SHA1 for '@east' tried "
               "preloaded: *" in x for x in res.lines), res.lines
    assert not any("ISAKMP SA established" in x for x in res.lines)


def test_aggressive_mode_certificates_with_dn_ids(pair):
    """leftid=%fromcert: the IDs are the certificates' subject DNs, printed as Libreswan
    prints a DER_ASN1_DN; the responder takes any ID its CA vouches for."""
    west, east, root = pair
    body = CERTS.replace("10.33.", "10.35.").replace(
        "leftid=@west.testing.libreswan.org", "leftid=%fromcert").replace(
        "rightid=@east-v1.testing.libreswan.org", "rightid=%fromcert")
    res = _up(west, east, root, "v1dn",
              body + "    aggressive=yes\n    leftcert=west\n",
              body.replace("leftid=%fromcert", "leftid=%any")
              + "    aggressive=yes\n    rightcert=east-v1\n")
    assert res.rc == 0, res
    lines = _san(res.lines)
    east_dn = f"CN={EAST_FQDN}"
    assert f"\"v1dn\" #N: Peer ID is DER_ASN1_DN: '{east_dn}'" in lines, lines
    assert (f"\"v1dn\" #N: authenticated peer certificate '{east_dn}' and 2048-bit raw RSA "
            f"with SHA1 signature issued by '{MAINCA}'") in lines, lines
    assert any("IPsec SA established tunnel mode" in x for x in lines), lines
    west_dn = ("C=CA, ST=Ontario, O=Libreswan, OU=Test Department, "
               "CN=west.testing.libreswan.org, E=user-west@testing.libreswan.org")
    _wait(lambda: f"Peer ID is DER_ASN1_DN: '{west_dn}'" in east.logtext())
    _down(west, east, "v1dn")


def test_certificate_from_an_unknown_ca_is_rejected(pair):
    west, east, root = pair
    body = CERTS.replace("10.33.", "10.36.").replace(
        "leftid=@west.testing.libreswan.org", "leftid=@stranger-v1.example.org")
    res = _up(west, east, root, "v1stranger",
              body + "    leftcert=stranger-v1\n    retransmit-timeout=3s\n",
              body + "    rightcert=east-v1\n")
    assert res.rc != 0, res
    lines = _san(res.lines)
    assert '"v1stranger" #N: I am sending my cert' in lines, lines
    assert not any("ISAKMP SA established" in x for x in lines), lines
    _wait(lambda: "X509: certificate payload rejected for this connection" in east.logtext())
    assert "ISAKMP SA established" not in "\n".join(
        x for x in east.logtext().splitlines() if '"v1stranger"' in x)
