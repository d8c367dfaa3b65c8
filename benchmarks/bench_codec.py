"""Micro-benchmark of the IKEv2 codec on a typical IKE_SA_INIT request.

The message: SA with 4 IKE proposals, KE with a 32-byte X25519 value, a 32-byte nonce and
4 notifies (two NAT detection hashes, fragmentation and signature hash algorithms).
Prints microseconds per operation; asserts nothing.

    .venv/bin/python benchmarks/bench_codec.py
"""

from __future__ import annotations

import os
import timeit

from pyswan.ike.codec import (
    KE,
    SA,
    Message,
    Nonce,
    Notify,
    Proposal,
    Transform,
    decode_header,
    decode_message,
    encode_message,
)
from pyswan.ike.constants import (
    EncrId,
    ExchangeType,
    HeaderFlag,
    IntegId,
    KeMethod,
    NotifyType,
    PrfId,
    ProtocolId,
    TransformType,
)


def ike_sa_init_request() -> Message:
    T = TransformType
    aead = [(EncrId.AES_GCM_16, 256), (EncrId.CHACHA20_POLY1305, None)]
    proposals = []
    for number, (encr, key_length) in enumerate(aead, start=1):
        proposals.append(
            Proposal(
                number,
                ProtocolId.IKE,
                b"",
                [
                    Transform(T.ENCR, encr, key_length),
                    Transform(T.PRF, PrfId.HMAC_SHA2_512),
                    Transform(T.PRF, PrfId.HMAC_SHA2_256),
                    Transform(T.KE, KeMethod.DH31),
                    Transform(T.KE, KeMethod.DH19),
                ],
            )
        )
    for number, key_length in enumerate((256, 128), start=3):
        proposals.append(
            Proposal(
                number,
                ProtocolId.IKE,
                b"",
                [
                    Transform(T.ENCR, EncrId.AES_CBC, key_length),
                    Transform(T.PRF, PrfId.HMAC_SHA2_512),
                    Transform(T.INTEG, IntegId.HMAC_SHA2_512_256),
                    Transform(T.INTEG, IntegId.HMAC_SHA2_256_128),
                    Transform(T.KE, KeMethod.DH31),
                    Transform(T.KE, KeMethod.MODP2048),
                ],
            )
        )
    return Message(
        os.urandom(8),
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        HeaderFlag.INITIATOR,
        0,
        [
            SA(proposals),
            KE(KeMethod.DH31, os.urandom(32)),
            Nonce(os.urandom(32)),
            Notify.of(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
            Notify.of(NotifyType.NAT_DETECTION_SOURCE_IP, os.urandom(20)),
            Notify.of(NotifyType.NAT_DETECTION_DESTINATION_IP, os.urandom(20)),
            Notify.of(NotifyType.SIGNATURE_HASH_ALGORITHMS, bytes.fromhex("0002000300040005")),
        ],
    )


def per_call_us(func, arg, number: int) -> float:
    best = min(timeit.repeat(lambda: func(arg), number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    msg = ike_sa_init_request()
    wire = encode_message(msg)
    assert decode_message(wire) == msg
    number = 2000
    print(f"IKE_SA_INIT request: {len(wire)} bytes, {len(msg.payloads)} payloads")
    print(f"decode_header   {per_call_us(decode_header, wire, number):8.2f} us")
    print(f"decode_message  {per_call_us(decode_message, wire, number):8.2f} us")
    print(f"encode_message  {per_call_us(encode_message, msg, number):8.2f} us")


if __name__ == "__main__":
    main()
