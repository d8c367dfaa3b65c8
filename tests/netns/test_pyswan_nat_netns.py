"""Two pyswan daemons with an nftables-masquerading namespace between them (the interop
lab's topology: tests/interop/netlab.py), as root: NAT is detected on both sides, IKE
floats to port 4500, and the Child SA is UDP-encapsulated, with the same SPIs on both
ends (in-memory kernel: this host's kernel has no ESP)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab_ready() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [p for p in ("ip", "nft", "tcpdump") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"missing programs: {' '.join(missing)}")


def test_pyswan_to_pyswan_through_a_masquerading_namespace(lab_ready, tmp_path: Path) -> None:
    from scenario import run_pair

    res = run_pair(tmp_path, "pyswan", "pyswan", "psk-default", expect_child=True, nat=True,
                   pyswan_kernel="memory", keep_report=True)
    # pyswan prints no IKE SPIs, so the lab cannot compare them between two pyswans (the
    # peers' cells do, against the wire); everything else must hold
    assert [p for p in res.problems if "IKE SPIs" not in p] == [], res.message()
    assert any("installed on both sides, same SPIs" in n for n in res.notes), res.message()
    assert res.nat_t, res.message()  # IKE seen on UDP 4500 on the wire
    # the initiator is behind the NAT and says how its Child SA is carried
    assert "{ESPinUDP/ESN=>" in res.report, res.message()
    assert "NATD=198.51.100.2:4500" in res.report, res.message()
