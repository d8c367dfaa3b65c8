"""Two rows of issue #6's matrix on this host: rekeying, and DPD / delete from either side.

Each cell runs pyswan against strongSwan 5.9.8 or Libreswan 4.10, pyswan as initiator
and as responder (lifecycle.py has the sequences and what they check):

- ``rekey-pfs``: the IKE SA rekeyed once by each side, with both sides then showing one
  IKE SA (the old one gone on both), the same algorithms, and a new pair of SPIs in an
  answered exchange on the wire (equal to the one the peer shows).  Where the kernel
  holds Child SAs the Child SA is rekeyed once by each side too, with PFS (ECP-256
  under an X25519 IKE SA against strongSwan; X25519 against Libreswan 4.10, which only
  rekeys with the IKE SA's group): one Child SA with new SPIs, crossed on both sides,
  and the PFS group among its algorithms on both.  This host's kernel has no ESP, so its cells
  rekey the IKE SA only; test_interop_qemu.py runs the whole sequence on a real kernel.
- ``dpd-delete``: pyswan's liveness probes (dpddelay=1s) answered; ``ipsec whack
  --down`` on pyswan and the peer's own command (``swanctl --terminate``, ``ipsec auto
  --down``) each clear the IKE SA on both sides; the peer killed with SIGKILL is
  declared dead by pyswan (its log line is in the matrix) and, where pyswan initiated,
  the connection revives once the peer runs again.

pyswan runs with ``--kernel xfrm`` like the peers (see test_interop_matrix.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle import run_dpd, run_rekey
from matrix import cell_name
from netlab import require_peers

pytestmark = [pytest.mark.interop, pytest.mark.root]

SCENARIOS = {"rekey-pfs": run_rekey, "dpd-delete": run_dpd}
# Cells that fail because of a known pyswan bug: strict, so a fix shows up as XPASS.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}
CELLS = [
    pytest.param(row, peer, role, id=f"{row}-pyswan-{role}-{peer}",
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(row, peer, role)])]
                 if (row, peer, role) in KNOWN_BUGS else [])
    for row in SCENARIOS for peer in ("strongswan", "libreswan") for role in ("initiator", "responder")
]  # fmt: skip


@pytest.mark.parametrize(("row", "peer", "role"), CELLS)
def test_lifecycle_cell(row: str, peer: str, role: str, interop_host: bool, tmp_path: Path,
                        record_cell) -> None:  # fmt: skip
    initiator, responder = ("pyswan", peer) if role == "initiator" else (peer, "pyswan")
    require_peers(peer, "pyswan")
    res = SCENARIOS[row](tmp_path, role, peer, expect_child=interop_host, pyswan_kernel="xfrm")
    # the notes of every run (per-step SPIs and timings) are in res.notes; the matrix keeps
    # the summary and, for DPD, the dead-peer line
    extra = [n for n in res.notes if not n.startswith(("IKE", "Child", "step:"))]
    record_cell(cell_name(row, initiator, responder), "host", res, "; ".join(extra))
    assert res.ok, res.message()
