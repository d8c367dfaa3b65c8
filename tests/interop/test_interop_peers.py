"""The harness proven on peers known to work: strongSwan 5.9.8 <-> Libreswan 4.10, IKEv2 PSK.

Both directions.  The IKE SA must be established on both sides with the same SPIs
(also seen in the IKE_AUTH exchange on the wire) and the same algorithms.  On this
host the kernel has no ESP, so the Child SA proposed in IKE_AUTH dies at the
responder's kernel install; what each side says about that is pinned down here:

- Libreswan as responder logs ``ERROR: "interop" #N: netlink response for Add SA
  esp.<spi>@<ip>: Function not implemented (errno 38)`` (``Protocol not supported
  (errno 93)`` for AES-CBC) and ``setup_half_ipsec_sa() hit fail:``, then answers
  TS_UNACCEPTABLE; strongSwan as initiator logs ``received TS_UNACCEPTABLE notify, no
  CHILD_SA built`` and ``failed to establish CHILD_SA, keeping IKE_SA``.
- strongSwan as responder logs ``received netlink error: Function not implemented
  (38)``, ``unable to add SAD entry with SPI <spi> (FAILED)``, ``unable to install
  inbound and outbound IPsec SA (SAD) in kernel``, then answers NO_PROPOSAL_CHOSEN;
  Libreswan as initiator logs ``IKE_AUTH response rejected Child SA with
  NO_PROPOSAL_CHOSEN``.

Where the kernel has ESP the same test expects both Child SAs installed instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from matrix import cell_name
from netlab import Suite, require_peers
from scenario import run_pair

pytestmark = [pytest.mark.interop, pytest.mark.root]

KERNEL_REFUSAL = re.compile(r"Function not implemented|Protocol not supported|errno 38|errno 93|\(38\)|\(93\)")
NOTIFY = {"libreswan": "TS_UNACCEPTABLE", "strongswan": "NO_PROPOSAL_CHOSEN"}
INITIATOR_SAYS = {
    "strongswan": re.compile(r"received (TS_UNACCEPTABLE|NO_PROPOSAL_CHOSEN) notify, no CHILD_SA built"),
    "libreswan": re.compile(r"IKE_AUTH response rejected Child SA with (TS_UNACCEPTABLE|NO_PROPOSAL_CHOSEN)"),
}


@pytest.mark.parametrize(
    ("initiator", "responder"),
    [("strongswan", "libreswan"), ("libreswan", "strongswan")],
    ids=["strongswan-to-libreswan", "libreswan-to-strongswan"],
)
def test_peers_ikev2_psk(
    initiator: str, responder: str, interop_host: bool, tmp_path: Path, record_cell
) -> None:
    require_peers(initiator, responder)
    res = run_pair(tmp_path, initiator, responder, "psk-default", expect_child=interop_host)
    (init_who, init_lines), (resp_who, resp_lines) = res.child_events.items()
    notes = []
    if not interop_host:
        refusal = next((x for x in resp_lines if KERNEL_REFUSAL.search(x)), "")
        told = next((x for x in init_lines if INITIATOR_SAYS[initiator].search(x)), "")
        notes += [f"{resp_who}: {res.stable_line(refusal)}", f"{init_who}: {res.stable_line(told)}"]
        if res.ok:
            assert refusal, f"{resp_who} did not report the kernel's refusal\n{res.message()}"
            assert told and NOTIFY[responder] in told, (
                f"{init_who} was not told {NOTIFY[responder]}\n{res.message()}"
            )
    record_cell(cell_name("psk-default", initiator, responder), "host", res, "; ".join(notes))
    assert res.ok, res.message()
    views = res.views
    assert views["initiator"]["established"] and views["responder"]["established"]
    # Both peers show their IKE SPIs: they must be the very same pair.
    assert (views["initiator"]["spi_i"], views["initiator"]["spi_r"]) == (
        views["responder"]["spi_i"], views["responder"]["spi_r"]
    )  # fmt: skip


def test_peers_nat_traversal(interop_host: bool, tmp_path: Path, record_cell) -> None:
    """strongSwan behind the masquerading namespace -> Libreswan: NAT detected, IKE on 4500."""
    require_peers("strongswan", "libreswan")
    res = run_pair(tmp_path, "strongswan", "libreswan", "psk-default", expect_child=interop_host, nat=True)
    record_cell("nat-t psk-default: strongSwan → Libreswan", "host", res)
    assert res.ok, res.message()
    log = (tmp_path / "west-strongswan" / "daemon.log").read_text()
    assert "local host is behind NAT" in log, res.message()
    assert "198.51.100.2[4500]" in log, res.message()


def test_failure_is_reported_and_torn_down(interop_host: bool, tmp_path: Path) -> None:
    """A cell that cannot work fails in bounded time, with both sides' logs, leaving nothing behind."""
    require_peers("strongswan", "libreswan")
    mismatch = Suite(
        "mismatched proposals", ike_strongswan="aes128-sha256-modp2048",
        ike_libreswan="aes256-sha2_512;dh31",
    )  # fmt: skip
    before = set(netns_names())
    res = run_pair(tmp_path, "strongswan", "libreswan", mismatch, expect_child=False, timeout=3)
    assert not res.ok
    msg = res.message()
    assert "no IKE SA established" in msg
    assert "===== strongswan in west" in msg and "===== libreswan in east" in msg, msg
    assert "NO_PROPOSAL_CHOSEN" in msg or "NO_PROP" in msg, msg
    assert set(netns_names()) <= before, "namespaces left behind"
    assert not list(Path("/tmp").glob("pyswan-interop-*/west-strongswan")), "runtime dir left behind"


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("pyswan-i-")]
