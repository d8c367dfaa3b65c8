"""Per-operation cost of the IKE crypto and proposal hot paths (figures only).

Run: ``python benchmarks/bench_crypto.py``.  Best of 5 runs, in microseconds
of CPU time (``time.process_time``), so that other load on a shared machine
skews the figures less.
"""

from __future__ import annotations

import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from pyswan.ike import algorithms as A  # noqa: E402
from pyswan.ike.auth import psk_auth, sign, signed_octets, verify  # noqa: E402
from pyswan.ike.cipher import SkCrypto  # noqa: E402
from pyswan.ike.dh import key_exchange, respond  # noqa: E402
from pyswan.ike.kdf import child_keymat, derive_ike_keys  # noqa: E402
from pyswan.ike.proposals import (  # noqa: E402
    _parse_cached,
    parse_proposals,
    select_proposal,
    to_wire_proposals,
)


def bench(name: str, fn: Callable[[], object]) -> None:
    timer = timeit.Timer(fn, timer=time.process_time)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=5, number=number)) / number
    print(f"{name:<44} {best * 1e6:10.1f} us")


def full_exchange(group: int) -> Callable[[], bytes]:
    def run() -> bytes:
        init = key_exchange(group)
        pub, secret = respond(group, init.public_bytes)
        assert init.shared_secret(pub) == secret
        return secret
    return run


def main() -> None:
    print(f"pyswan IKE crypto, CPU time per op, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    bench("X25519 full exchange (both sides)", full_exchange(31))
    bench("ECP-256 full exchange (both sides)", full_exchange(19))
    bench("MODP-2048 full exchange (both sides)", full_exchange(14))
    bench("ML-KEM-768 full exchange (both sides)", full_exchange(36))

    ni, nr, g = os.urandom(32), os.urandom(32), os.urandom(32)
    spi_i, spi_r = os.urandom(8), os.urandom(8)
    gcm_keys = A.AES_GCM_16.keymat_size(256)
    bench("derive_ike_keys (HMAC-SHA2-256, AES-GCM-256)",
          lambda: derive_ike_keys(A.PRF_HMAC_SHA2_256, gcm_keys, 0, g, ni, nr, spi_i, spi_r))
    bench("derive_ike_keys (HMAC-SHA2-512, AES-CBC+SHA2)",
          lambda: derive_ike_keys(A.PRF_HMAC_SHA2_512, 32, 32, g, ni, nr, spi_i, spi_r))
    sk_d = os.urandom(32)
    bench("child_keymat (SHA2-256, AES-GCM-256)",
          lambda: child_keymat(A.PRF_HMAC_SHA2_256, sk_d, ni, nr, gcm_keys, 0))

    prefix = os.urandom(32)
    pt = os.urandom(300)
    for label, sk in (("AES-GCM-16-256", SkCrypto(A.AES_GCM_16, 256)),
                      ("AES-CBC-256+HMAC-SHA2-256-128",
                       SkCrypto(A.AES_CBC, 256, A.INTEG_HMAC_SHA2_256_128))):
        bound = sk.bind(os.urandom(sk.encr_key_bytes),
                        os.urandom(sk.integ_key_bytes) or None)
        body = bound.seal(prefix, pt)
        bench(f"SK seal 300 B {label}", lambda b=bound: b.seal(prefix, pt))
        bench(f"SK open 300 B {label}", lambda b=bound, x=body: b.open(prefix, x))
        bench(f"SK bind (per SA) {label}",
              lambda s=sk: s.bind(bytes(s.encr_key_bytes), bytes(s.integ_key_bytes) or None))

    octets = signed_octets(os.urandom(400), ni, A.PRF_HMAC_SHA2_256, sk_d, b"\x02\0\0\0east")
    bench("PSK AUTH (HMAC-SHA2-256)", lambda: psk_auth(A.PRF_HMAC_SHA2_256, b"secret", octets))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sig = sign(rsa_key, 14, "sha256", octets)
    bench("RSA-2048 RSASSA-PSS sign", lambda: sign(rsa_key, 14, "sha256", octets))
    rsa_pub = rsa_key.public_key()
    bench("RSA-2048 RSASSA-PSS verify", lambda: verify(rsa_pub, 14, sig, octets))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_sig = sign(ec_key, 14, "sha256", octets)
    bench("ECDSA P-256 sign (RFC 7427)", lambda: sign(ec_key, 14, "sha256", octets))
    ec_pub = ec_key.public_key()
    bench("ECDSA P-256 verify (RFC 7427)", lambda: verify(ec_pub, 14, ec_sig, octets))

    ike = parse_proposals("ike", None)
    offered = to_wire_proposals(ike)
    bench("parse_proposals ike=<default> (cached)", lambda: parse_proposals("ike", None))
    uncached = _parse_cached.__wrapped__
    bench("parse ike=<default> (uncached)", lambda: uncached("IKE", None, 2, True, False))
    bench("select_proposal default vs default", lambda: select_proposal(ike, offered))
    last = to_wire_proposals(parse_proposals("ike", "aes128-sha2;modp2048"))
    bench("select_proposal default vs last-choice", lambda: select_proposal(ike, last))


if __name__ == "__main__":
    main()
