"""IKEv2 with certificates and raw keys between two real pluto daemons, each with its own
certificate store (``--ipsecdir``: certs/, private/, cacerts/, crls/)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pluto"))
from test_certstore_pki import PKI, pem, write_store  # noqa: E402

from pyswan.ike.pubkey import format_raw_pubkey  # noqa: E402

INTER = "C=CA, O=Libreswan, CN=Intermediate CA"
MAINCA = "C=CA, O=Libreswan, CN=Libreswan test CA for mainca"


def _pluto(root: Path, name: str, addr: str, port: int) -> Pluto:
    d = root / name
    d.mkdir()
    ipsecdir = write_store(d / "ipsec.d", inter_in_cacerts=False)
    (ipsecdir / "certs" / "east-chain.pem").write_bytes(pem(PKI.certs.east)
                                                       + pem(PKI.certs.interca))
    return Pluto(d, addr=addr, ikeport=port, secrets="",
                 extra=["--ipsecdir", str(ipsecdir)])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("certs")
    port = free_udp_port("127.0.0.1")
    west = _pluto(root, "west", "127.0.0.1", port).start()
    east = _pluto(root, "east", "127.0.0.2", port).start()
    for p in (west, east):
        assert p.whack("--listen").rc == 0
    yield west, east, root
    west.stop()
    east.stop()


def _conf(root: Path, name: str, body: str) -> Path:
    path = root / f"{name}.conf"
    path.write_text("config setup\n\nconn " + body)
    return path


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _up(west: Pluto, east: Pluto, root: Path, name: str, west_body: str, east_body: str):
    wc = _conf(root, f"w-{name}", west_body)
    ec = _conf(root, f"e-{name}", east_body)
    assert west.ipsec("--config", str(wc), "add", name).rc == 0
    assert east.ipsec("--config", str(ec), "add", name).rc == 0
    return west.whack("--name", name, "--initiate")


def test_certificates_from_ipsecdir(pair):
    west, east, root = pair
    common = """
    left=127.0.0.1
    leftid=@west.testing.libreswan.org
    leftsubnet=10.1.1.0/24
    right=127.0.0.2
    rightid=@east.testing.libreswan.org
    rightsubnet=10.1.2.0/24
"""
    res = _up(west, east, root, "certs", "certs" + common + "    leftcert=west\n",
              "certs" + common + "    rightcert=east-chain\n    rightsendcert=always\n")
    assert res.rc == 0, res
    lines = res.lines
    assert any("sent IKE_AUTH request to 127.0.0.2:UDP/" in x and "with digital-signature "
               "RSASSA-PSS with SHA2_512 and FQDN '@west.testing.libreswan.org'" in x
               for x in lines), lines
    assert ('"certs" #1: initiator established IKE SA; authenticated peer certificate '
            "'@east.testing.libreswan.org' and P-256 ECDSA with SHA2_512 digital signature "
            f"issued by '{INTER}'") in lines, lines
    assert any("initiator established Child SA using #1" in x for x in lines)
    _wait(lambda: "responder established IKE SA; authenticated peer certificate "
                  "'@west.testing.libreswan.org' and 2048-bit RSASSA-PSS with SHA2_512 "
                  f"digital signature issued by '{MAINCA}'" in east.logtext())
    status = west.whack("--status").lines
    assert any('"certs":   our auth:rsasig, their auth:rsasig' in x for x in status), status
    assert any("v2-auth-hash-policy: SHA2_256+SHA2_384+SHA2_512;" in x for x in status)
    assert west.whack("--name", "certs", "--delete").rc == 0


def test_raw_rsa_keys(pair):
    west, east, root = pair
    k = PKI.keys
    _, wkey = format_raw_pubkey(k.west.public_key(), "rsasigkey")
    _, ekey = format_raw_pubkey(k.road.public_key(), "ecdsakey")
    body = f"""raw
    left=127.0.0.1
    leftid=@west
    leftsubnet=10.2.1.0/24
    leftrsasigkey={wkey}
    right=127.0.0.2
    rightid=@east
    rightsubnet=10.2.2.0/24
    rightecdsakey={ekey}
    leftauth=rsasig
    rightauth=ecdsa
"""
    res = _up(west, east, root, "raw", body, body)
    assert res.rc == 0, res
    assert any(x.endswith(": initiator established IKE SA; authenticated peer using preloaded "
                          "certificate '@east' and P-384 ECDSA with SHA2_512 digital signature")
               for x in res.lines), res.lines
    _wait(lambda: "authenticated peer using preloaded certificate '@west' and 2048-bit "
                  "RSASSA-PSS with SHA2_512 digital signature" in east.logtext())
    assert west.whack("--name", "raw", "--delete").rc == 0


def test_unknown_ca_fails_with_authentication_failed(pair):
    west, east, root = pair
    (root / "west" / "ipsec.d" / "certs" / "stranger.pem").write_bytes(pem(PKI.certs.stranger))
    assert west.whack("--rereadcerts").rc == 0
    body = """stranger
    left=127.0.0.1
    leftid=%fromcert
    leftsubnet=10.3.1.0/24
    right=127.0.0.2
    rightid=@east.testing.libreswan.org
    rightsubnet=10.3.2.0/24
"""
    res = _up(west, east, root, "stranger", body + "    leftcert=stranger\n",
              body.replace("leftid=%fromcert", "leftid=%any") + "    rightcert=east-chain\n")
    assert res.rc != 0
    assert any("IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED" in x
               for x in res.lines), res.lines
    _wait(lambda: "X509: certificate payload rejected for this connection" in east.logtext())
