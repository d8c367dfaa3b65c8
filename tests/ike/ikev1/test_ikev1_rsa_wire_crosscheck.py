"""An independent reading of a Main Mode exchange authenticated with RSA signatures: the
signature-mode SKEYID (RFC 2409 5: prf(Ni_b | Nr_b, g^xy)), the keys and IVs are
recomputed here with ``hmac``/``hashlib``/``cryptography`` (none of pyswan's IKEv1 crypto),
I3 and R3 are decrypted with them, and each SIG payload is opened with the signer's
public key by plain modular exponentiation: it must be PKCS#1 type 1 padding around
exactly HASH_I / HASH_R, with no DigestInfo."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from ikev1_harness import rsa_keys, rsa_net

from pyswan.ike.ikev1.codec import KE, SA, Nonce, decode_message, decode_payloads


def H(key: bytes, data: bytes) -> bytes:  # HMAC_SHA2_256: the default ike= suite's PRF
    return hmac.new(key, data, "sha256").digest()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def open_signature(public_key, sig: bytes) -> bytes:
    """s^e mod n, checked for 00 01 FF..FF 00 and returned without the padding."""
    nums = public_key.public_numbers()
    k = (nums.n.bit_length() + 7) // 8
    em = pow(int.from_bytes(sig, "big"), nums.e, nums.n).to_bytes(k, "big")
    assert em[:2] == b"\x00\x01"
    sep = em.index(b"\x00", 2)
    assert set(em[2:sep]) == {0xFF} and sep >= 10
    return em[sep + 1:]


def test_independent_reading_of_signature_main_mode() -> None:
    net = rsa_net()
    net.up()
    wires = [d for _, d in net.sent]
    mm1, mm3, mm4, mm5, mm6 = (decode_message(wires[i]) for i in (0, 2, 3, 4, 5))
    cky_i, cky_r = wires[1][:8], wires[1][8:16]
    sa_len = int.from_bytes(wires[0][30:32], "big")
    assert isinstance(mm1.payloads[0], SA)
    sai_b = wires[0][32:28 + sa_len]
    (gxi,) = [p.data for p in mm3.payloads if isinstance(p, KE)]
    (ni,) = [p.data for p in mm3.payloads if isinstance(p, Nonce)]
    (gxr,) = [p.data for p in mm4.payloads if isinstance(p, KE)]
    (nr,) = [p.data for p in mm4.payloads if isinstance(p, Nonce)]
    west_sa = next(iter(net.west.engine.isakmp_sas.values()))
    gxy = west_sa.ke.shared_secret(gxr)  # the DH result itself is not IKEv1's business

    skeyid = H(ni + nr, gxy)  # signature authentication: no PSK anywhere
    d = H(skeyid, gxy + cky_i + cky_r + b"\x00")
    a = H(skeyid, d + gxy + cky_i + cky_r + b"\x01")
    e = H(skeyid, a + gxy + cky_i + cky_r + b"\x02")
    key = e[:32]  # AES_CBC_256: 32 octets of a 32-octet SKEYID_e
    iv = hashlib.sha256(gxi + gxr).digest()[:16]

    plain5 = cbc_decrypt(key, iv, mm5.ciphertext)
    i3 = decode_payloads(mm5.header.next_payload, plain5, padded=True)
    plain6 = cbc_decrypt(key, mm5.ciphertext[-16:], mm6.ciphertext)
    r3 = decode_payloads(mm6.header.next_payload, plain6, padded=True)
    assert [type(p).__name__ for p in i3] == [type(p).__name__ for p in r3] == ["ID", "Sig"]

    hash_i = H(skeyid, gxi + gxr + cky_i + cky_r + sai_b + i3[0].body())
    hash_r = H(skeyid, gxr + gxi + cky_r + cky_i + sai_b + r3[0].body())
    wkey, ekey = rsa_keys()
    assert open_signature(wkey.public_key(), i3[1].data) == hash_i
    assert open_signature(ekey.public_key(), r3[1].data) == hash_r
    # and what the engine keeps is what was derived here
    assert (west_sa.keys.skeyid, west_sa.keys.d, west_sa.keys.a, west_sa.keys.e) == \
        (skeyid, d, a, e)
