"""An independent reading of a Main Mode + Quick Mode run from the wire: every key, IV
and hash is recomputed here from RFC 2409 with ``cryptography``/``hashlib`` (none of
pyswan's IKEv1 crypto), each encrypted message is decrypted with it, and the KEYMAT
handed to the kernel must be what this second computation gets."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from ikev1_harness import Net

from pyswan.ike.ikev1.codec import KE, SA, Hash, Nonce, decode_message, decode_payloads

PSK = b"secret"  # the harness's default


def H(key: bytes, data: bytes) -> bytes:  # HMAC_SHA2_256: the default ike= suite's PRF
    return hmac.new(key, data, "sha256").digest()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def chain_end(plain: bytes) -> int:
    pos, np = 0, 1
    while np:
        np = plain[pos]
        pos += int.from_bytes(plain[pos + 2:pos + 4], "big")
    return pos


def test_independent_decryption_and_keymat() -> None:
    net = Net()
    net.up()
    wires = [d for _, d in net.sent]
    mm1, mm3, mm4 = (decode_message(wires[i]) for i in (0, 2, 3))
    cky_i, cky_r = mm3.header.icookie, mm3.header.rcookie
    sai_b = wires[0][32:28 + int.from_bytes(wires[0][30:32], "big")]
    assert sai_b == mm1.payloads[0].body()
    gxi = next(p.data for p in mm3.payloads if isinstance(p, KE))
    ni = next(p.data for p in mm3.payloads if isinstance(p, Nonce))
    gxr = next(p.data for p in mm4.payloads if isinstance(p, KE))
    nr = next(p.data for p in mm4.payloads if isinstance(p, Nonce))
    west = net.west.engine.isakmp_sas[1]
    gxy = west.ke.shared_secret(gxr)

    skeyid = H(PSK, ni + nr)
    d = H(skeyid, gxy + cky_i + cky_r + b"\0")
    a = H(skeyid, d + gxy + cky_i + cky_r + b"\1")
    e = H(skeyid, a + gxy + cky_i + cky_r + b"\2")
    key = e[:32]  # AES_CBC_256: SKEYID_e is long enough, no expansion

    # MM5 and MM6: the phase 1 IV, then CBC chaining across messages
    iv = hashlib.sha256(gxi + gxr).digest()[:16]
    plain5 = cbc_decrypt(key, iv, wires[4][28:])
    id_len = int.from_bytes(plain5[2:4], "big")
    idii_b = plain5[4:id_len]
    hash_i = plain5[id_len + 4:int.from_bytes(plain5[id_len + 2:id_len + 4], "big") + id_len]
    assert hash_i == H(skeyid, gxi + gxr + cky_i + cky_r + sai_b + idii_b)
    assert idii_b == b"\x02\0\0\0west"  # ID_FQDN, protocol 0, port 0
    iv = wires[4][-16:]
    plain6 = cbc_decrypt(key, iv, wires[5][28:])
    id_len = int.from_bytes(plain6[2:4], "big")
    idir_b = plain6[4:id_len]
    hash_r = plain6[id_len + 4:int.from_bytes(plain6[id_len + 2:id_len + 4], "big") + id_len]
    assert hash_r == H(skeyid, gxr + gxi + cky_r + cky_i + sai_b + idir_b)
    p1_last = wires[5][-16:]

    # Quick Mode: a fresh IV from the last phase 1 block and the message ID
    msgid = wires[6][20:24]
    iv = hashlib.sha256(p1_last + msgid).digest()[:16]
    plain = cbc_decrypt(key, iv, wires[6][28:])
    hlen = int.from_bytes(plain[2:4], "big")
    assert plain[4:hlen] == H(a, msgid + plain[hlen:chain_end(plain)])  # HASH(1)
    qm1 = decode_payloads(wires[6][16], plain, padded=True)
    ni2 = next(p.data for p in qm1 if isinstance(p, Nonce))
    spi_w = int.from_bytes(next(p for p in qm1 if isinstance(p, SA)).proposals[0].spi, "big")
    iv = wires[6][-16:]
    plain = cbc_decrypt(key, iv, wires[7][28:])
    hlen = int.from_bytes(plain[2:4], "big")
    assert plain[4:hlen] == H(a, msgid + ni2 + plain[hlen:chain_end(plain)])  # HASH(2)
    qm2 = decode_payloads(wires[7][16], plain, padded=True)
    nr2 = next(p.data for p in qm2 if isinstance(p, Nonce))
    spi_e = int.from_bytes(next(p for p in qm2 if isinstance(p, SA)).proposals[0].spi, "big")
    ke_r = next(p.data for p in qm2 if isinstance(p, KE))
    iv = wires[7][-16:]
    plain = cbc_decrypt(key, iv, wires[8][28:])
    qm3 = decode_payloads(wires[8][16], plain, padded=True)
    assert qm3 == [Hash(H(a, b"\0" + msgid + ni2 + nr2))]  # HASH(3)

    # KEYMAT with PFS, one per direction (the receiver's SPI)
    (child,) = net.west.engine.children.values()
    gqm = child.ke.shared_secret(ke_r)

    def keymat(spi: int) -> bytes:
        seed = gqm + b"\x03" + spi.to_bytes(4, "big") + ni2 + nr2
        k1 = H(d, seed)
        return k1 + H(d, k1 + seed)

    (w,) = net.west.installed.values()
    (east_keys,) = net.east.installed.values()
    assert (w.spi_in, w.spi_out) == (spi_w, spi_e)
    km_in, km_out = keymat(spi_w), keymat(spi_e)
    assert (w.encr_key_in, w.integ_key_in) == (km_in[:16], km_in[16:36])
    assert (w.encr_key_out, w.integ_key_out) == (km_out[:16], km_out[16:36])
    assert east_keys.encr_key_in == km_out[:16]
