"""Key derivation cross-checked with independent oracles.

The IKE SA and Child SA keys of a real exchange are re-derived here from scratch (X25519
with ``cryptography`` directly, SKEYSEED and prf+ written out with ``hmac``) and compared
with the engine's; tshark then decrypts the captured IKE_AUTH messages with the
independently derived keys and must find the IDs inside and call the ICVs correct.
scapy decodes the IKE_SA_INIT messages as a second, independent parser.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from ikev2_harness import EAST, WEST, Net, make_policy

from pyswan.ike import dh
from pyswan.ike.codec import KE, Nonce, decode_message


def _prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.digest(key, t + seed + bytes((i,)), hashlib.sha256)
        out += t
        i += 1
    return out[:length]


def _exchange(ike: str, esp: str) -> tuple[Net, list[bytes]]:
    east = make_policy(local=EAST, remote=WEST, local_id="east", remote_id="west",
                       local_net="10.2.0.0/24", remote_net="10.1.0.0/24", ike=ike, esp=esp)
    net = Net(make_policy(ike=ike, esp=esp), east)
    privates: list[bytes] = []

    def recording_ke(group):  # west's X25519 private values, for the oracle
        raw = net.rng.randbytes(32)
        privates.append(raw)
        return dh.key_exchange(31, raw)
    net.west.engine.key_exchange = recording_ke
    net.up()
    return net, privates


SUITES = [
    # ike=, esp=, SK_e octets, SK_a octets, tshark encryption name, tshark integrity name
    ("aes256-sha2_256-dh31", "aes256-sha2_256", 32, 32, "AES-CBC-256 [RFC3602]",
     "HMAC_SHA2_256_128 [RFC4868]"),
    ("aes_gcm_16_256-sha2_256-dh31", "aes_gcm_16_256", 36, 0,
     "AES-GCM-256 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"),
]


@pytest.mark.parametrize(("ike", "esp", "ekb", "akb", "tenc", "tint"), SUITES,
                         ids=["cbc", "gcm"])
def test_keys_match_an_independent_derivation(ike, esp, ekb, akb, tenc, tint, tmp_path):
    net, privates = _exchange(ike, esp)
    init_req = decode_message(net.sent[0][1])
    init_resp = decode_message(net.sent[1][1])
    ni = next(p for p in init_req.payloads if isinstance(p, Nonce)).data
    nr = next(p for p in init_resp.payloads if isinstance(p, Nonce)).data
    ker = next(p for p in init_resp.payloads if isinstance(p, KE)).data
    spi_i, spi_r = init_resp.spi_i, init_resp.spi_r
    shared = x25519.X25519PrivateKey.from_private_bytes(privates[-1]).exchange(
        x25519.X25519PublicKey.from_public_bytes(ker))
    skeyseed = hmac.digest(ni + nr, shared, hashlib.sha256)
    km = _prf_plus(skeyseed, ni + nr + spi_i + spi_r, 3 * 32 + 2 * akb + 2 * ekb)
    sk_d, rest = km[:32], km[32:]
    sk_ai, sk_ar, rest = rest[:akb], rest[akb:2 * akb], rest[2 * akb:]
    sk_ei, sk_er = rest[:ekb], rest[ekb:2 * ekb]
    keys = net.west.engine.sa(1).ike_keys
    assert (keys.sk_d, keys.sk_ai, keys.sk_ar, keys.sk_ei, keys.sk_er) == \
        (sk_d, sk_ai, sk_ar, sk_ei, sk_er)
    # Child SA KEYMAT = prf+(SK_d, Ni | Nr): encr_i | integ_i | encr_r | integ_r
    child = net.west.installed[2]
    e, a = len(child.encr_key_out), len(child.integ_key_out)
    keymat = _prf_plus(sk_d, ni + nr, 2 * (e + a))
    assert child.encr_key_out == keymat[:e] and child.integ_key_out == keymat[e:e + a]
    assert child.encr_key_in == keymat[e + a:2 * e + a]

    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    scapy = pytest.importorskip("scapy.all")
    pcap = tmp_path / "ike.pcap"
    packets = []
    for direction, data in net.sent:
        src, dst = (WEST, EAST) if direction == "west->east" else (EAST, WEST)
        packets.append(scapy.IP(src=str(src), dst=str(dst)) / scapy.UDP(sport=500, dport=500)
                       / scapy.Raw(data))
    scapy.wrpcap(str(pcap), packets)
    table = (f"{spi_i.hex()},{spi_r.hex()},{sk_ei.hex()},{sk_er.hex()},\"{tenc}\","
             f"{sk_ai.hex()},{sk_ar.hex()},\"{tint}\"")
    out = subprocess.run([tshark, "-r", str(pcap), "-o", f"uat:ikev2_decryption_table:{table}",
                          "-V"], capture_output=True, text=True, timeout=60).stdout
    assert "Identification Data:west" in out and "Identification Data:east" in out
    assert out.count("[correct]") == 2
    assert "Starting Addr: 10.1.0.0" in out


def test_scapy_decodes_ike_sa_init_as_we_sent_it():
    scapy_ikev2 = pytest.importorskip("scapy.contrib.ikev2")
    net, _ = _exchange("aes_gcm_16_256-sha2_256-dh31", "aes_gcm_16_256")
    request = scapy_ikev2.IKEv2(net.sent[0][1])
    assert request.exch_type == 34 and request.flags == 0x08
    ke = request[scapy_ikev2.IKEv2_KE]
    assert ke.group == 31 and len(ke.ke) == 32
    assert len(request[scapy_ikev2.IKEv2_Nonce].nonce) == 32
    notifies = []
    n = request.getlayer(scapy_ikev2.IKEv2_Notify)
    while n is not None:
        notifies.append(n.type)
        n = n.payload.getlayer(scapy_ikev2.IKEv2_Notify)
    # IKEV2_FRAGMENTATION_SUPPORTED, NAT_DETECTION_SOURCE_IP, NAT_DETECTION_DESTINATION_IP
    assert notifies == [16430, 16388, 16389]
    response = scapy_ikev2.IKEv2(net.sent[1][1])
    assert response.flags == 0x20 and response.resp_SPI == decode_message(net.sent[1][1]).spi_r
    transforms = response[scapy_ikev2.IKEv2_Proposal].trans
    ids = []
    while transforms is not None and hasattr(transforms, "transform_id"):
        ids.append((transforms.transform_type, transforms.transform_id))
        transforms = transforms.payload if transforms.payload else None
    assert (1, 20) in ids and (2, 5) in ids and (4, 31) in ids


def test_scapy_decodes_every_message_of_a_whole_lifetime():
    """Every datagram both engines emit (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA rekeys,
    INFORMATIONAL deletes) decodes with scapy's IKEv2 layer to the header we meant, and
    scapy rebuilds exactly our bytes."""
    scapy_ikev2 = pytest.importorskip("scapy.contrib.ikev2")
    net, _ = _exchange("aes256-sha2_256-dh31", "aes256-sha2_256")
    net.handle(net.west, net.west.engine.rekey_child(2, net.now))
    net.run()
    ike = next(s for s, kind in net.west.states.items() if kind == "ike")
    net.handle(net.west, net.west.engine.rekey_ike(ike, net.now))
    net.run()
    ike = max(s for s, kind in net.west.states.items() if kind == "ike")
    net.handle(net.west, net.west.engine.delete_ike(ike, net.now))
    net.run()
    exchanges = set()
    for _direction, data in net.sent:
        ours = decode_message(data)
        theirs = scapy_ikev2.IKEv2(data)
        assert (theirs.init_SPI, theirs.resp_SPI) == (ours.spi_i, ours.spi_r)
        assert theirs.exch_type == ours.exchange and theirs.flags == ours.flags
        assert theirs.id == ours.message_id and theirs.length == len(data)
        if ours.exchange != 34:  # everything after IKE_SA_INIT is inside SK
            assert theirs.next_payload == 46 and theirs.haslayer(scapy_ikev2.IKEv2_Encrypted)
        assert bytes(theirs) == data
        exchanges.add(ours.exchange)
    assert exchanges == {34, 35, 36, 37}  # INIT, AUTH, CREATE_CHILD_SA, INFORMATIONAL
