"""The pyswan cells of issue #6's matrix, on this host: pyswan against strongSwan and Libreswan.

Suites: IKEv2 PSK with default proposals, AES-CBC-256/SHA2-256/MODP2048, and
ChaCha20-Poly1305/X25519; IKEv2 with RSA certificates (RSASSA-PSS in RFC 7427's
method 14, and PKCS#1 v1.5 in RFC 7296's method 1) and with ECDSA P-256 certificates
(pki.py), where both sides must also log that they authenticated the peer with the
suite's method; pyswan as initiator and as responder against each peer.

pyswan runs with ``--kernel xfrm``, like the peers, so all three meet the same
kernel: on this host (no ESP) the responder's Child SA install is refused inside
IKE_AUTH and the initiator is told so (pyswan answers TS_UNACCEPTABLE, as Libreswan
does; strongSwan answers NO_PROPOSAL_CHOSEN).  A cell passes when the IKE SA is
established on both sides with the same SPIs (pyswan does not print its IKE SPIs,
so the peer's pair is checked against the IKE_AUTH exchange captured on the wire)
and the same algorithms, equal to the suite's where it names them, and the side
that installs the Child SA reports the kernel's refusal.  Where the kernel has ESP
the Child SAs must be installed on both sides with the same SPIs instead; the
QEMU test (test_interop_qemu.py) does that on a real kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from matrix import cell_name
from netlab import iter_cells, require_peers
from scenario import run_pair

pytestmark = [pytest.mark.interop, pytest.mark.root]

KERNEL_REFUSAL = re.compile(
    r"Function not implemented|Protocol not supported|errno 38|errno 93|\(38\)|\(93\)|ENOSYS|EPROTONOSUPPORT"
)
# Cells that fail because of a known pyswan bug: strict, so a fix shows up as XPASS.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}
CELLS = [
    pytest.param(*c, id=f"{c[0]}-pyswan-{c[2]}-{c[1]}",
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c])] if c in KNOWN_BUGS else [])
    for c in iter_cells()
]  # fmt: skip


@pytest.mark.parametrize(("suite", "peer", "role"), CELLS)
def test_pyswan_cell(
    suite: str, peer: str, role: str, interop_host: bool, tmp_path: Path, record_cell
) -> None:
    initiator, responder = ("pyswan", peer) if role == "initiator" else (peer, "pyswan")
    cell = cell_name(suite, initiator, responder)
    require_peers(peer, "pyswan")
    res = run_pair(tmp_path, initiator, responder, suite, expect_child=interop_host,
                   pyswan_kernel="xfrm")  # fmt: skip
    notes = ""
    if not interop_host and res.ok:
        resp_who, resp_lines = list(res.child_events.items())[1]
        refusal = next((x for x in resp_lines if KERNEL_REFUSAL.search(x)), "")
        notes = f"{resp_who}: {res.stable_line(refusal)}" if refusal else ""
        record_cell(cell, "host", res, notes)
        assert refusal, f"{resp_who} did not report the kernel's refusal of the Child SA\n{res.message()}"
    record_cell(cell, "host", res, notes)
    assert res.ok, res.message()


NAT_CELLS = [
    pytest.param(peer, role, id=f"nat-t-pyswan-{role}-{peer}")
    for peer in ("strongswan", "libreswan") for role in ("initiator", "responder")
]  # fmt: skip


@pytest.mark.parametrize(("peer", "role"), NAT_CELLS)
def test_pyswan_nat_cell(peer: str, role: str, interop_host: bool, tmp_path: Path, record_cell) -> None:
    """The initiator sits behind a masquerading namespace: NAT detected, IKE floats to 4500.

    (RFC 7296 2.23: once NAT is detected the initiator sends IKE_AUTH to port 4500.)
    """
    initiator, responder = ("pyswan", peer) if role == "initiator" else (peer, "pyswan")
    require_peers(peer, "pyswan")
    res = run_pair(tmp_path, initiator, responder, "psk-default", expect_child=interop_host,
                   nat=True, pyswan_kernel="xfrm")  # fmt: skip
    record_cell("nat-t " + cell_name("psk-default", initiator, responder), "host", res)
    assert res.ok, res.message()
    assert res.nat_t, f"IKE did not move to port 4500 behind the NAT\n{res.message()}"
