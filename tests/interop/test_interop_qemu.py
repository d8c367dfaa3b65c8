"""The interop lab on a real kernel: the same scenarios inside the QEMU guest, with ESP.

One guest boot (tests/lab/qemu_lab.py) runs, one after the other, scenario.py for:

- strongSwan -> Libreswan (proves the lab: both real peers, kernel ESP on both sides);
- pyswan (``--kernel xfrm``) -> strongSwan, and Libreswan -> pyswan;
- with PYSWAN_INTEROP_QEMU_ALL=1 also pyswan -> Libreswan and strongSwan -> pyswan.

Each must end with both Child SAs installed with the same SPIs and algorithms, a
``ping`` from 10.1.0.1 to 10.2.0.1 answered, and ESP with those SPIs captured on the
veth.  AES-GCM/X25519 keeps the IKE exchange fast under software emulation.

The same boot then runs the ``rekey-pfs`` row (lifecycle.py) with Child SAs: pyswan
as initiator and as responder against each peer, the IKE SA and then the Child SA
rekeyed once by each side, the Child SA with PFS (see test_interop_lifecycle.py).
Results (JSON, logs, pcaps) come back through a share directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from matrix import cell_name
from netlab import require_peers
from scenario import PairResult

LAB_DIR = Path(__file__).resolve().parents[1] / "lab"
sys.path.insert(0, str(LAB_DIR))
import qemu_lab  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SUITE = "aesgcm-x25519"

pytestmark = [pytest.mark.interop, pytest.mark.qemu, pytest.mark.slow, pytest.mark.root,
              pytest.mark.timeout(2400)]  # fmt: skip

# name -> (initiator, responder); run in this order.  Under emulation a scenario with
# pyswan takes about a minute (each Python start costs seconds), so CI runs pyswan once
# as initiator and once as responder, one peer each; PYSWAN_INTEROP_QEMU_ALL=1 adds the
# other two.
ALL_SCENARIOS = {
    "strongswan-libreswan": ("strongswan", "libreswan"),
    "pyswan-strongswan": ("pyswan", "strongswan"),
    "libreswan-pyswan": ("libreswan", "pyswan"),
    "pyswan-libreswan": ("pyswan", "libreswan"),
    "strongswan-pyswan": ("strongswan", "pyswan"),
}
SCENARIOS = dict(list(ALL_SCENARIOS.items())[: 5 if os.environ.get("PYSWAN_INTEROP_QEMU_ALL") else 3])
# name -> (pyswan's role, peer): the rekey row with Child SAs, all four cells (about a
# minute each under emulation; PYSWAN_INTEROP_QEMU_REKEY=0 leaves them out).
LIFECYCLE = {} if os.environ.get("PYSWAN_INTEROP_QEMU_REKEY") == "0" else {
    f"rekey-pyswan-{role}-{peer}": (role, peer)
    for peer in ("strongswan", "libreswan") for role in ("initiator", "responder")
}  # fmt: skip

GUEST_SCRIPT = """
set -u
R=$LAB_RESULTS
# Everything is several times slower under emulation: stretch the lab's waits.
export PYSWAN_INTEROP_TIME_SCALE=5
run() {{
    name=$1; shift
    start=$(cut -d' ' -f1 /proc/uptime)
    python {scenario} --suite {suite} --expect-child --ping --pyswan-kernel xfrm \\
        --workdir "$R/$name" --json "$R/$name.json" "$@" > "$R/$name.out" 2>&1
    echo "$name rc=$? start=$start end=$(cut -d' ' -f1 /proc/uptime)" >> "$R/done"
}}
{runs}
rekey() {{
    name=$1; shift
    start=$(cut -d' ' -f1 /proc/uptime)
    python {lifecycle} rekey --expect-child --pyswan-kernel xfrm \\
        --workdir "$R/$name" --json "$R/$name.json" "$@" > "$R/$name.out" 2>&1
    echo "$name rc=$? start=$start end=$(cut -d' ' -f1 /proc/uptime)" >> "$R/done"
}}
{rekeys}
echo done
"""


def guest_script() -> str:
    runs = "\n".join(
        f"run {name} --initiator {a} --responder {b}" for name, (a, b) in SCENARIOS.items()
    )
    rekeys = "\n".join(
        f"rekey {name} --pyswan {role} --peer {peer}" for name, (role, peer) in LIFECYCLE.items()
    )
    return GUEST_SCRIPT.format(
        scenario=shlex.quote(str(Path(__file__).with_name("scenario.py"))), suite=SUITE, runs=runs,
        lifecycle=shlex.quote(str(Path(__file__).with_name("lifecycle.py"))), rekeys=rekeys,
    )  # fmt: skip


class GuestRun:
    def __init__(self, result: qemu_lab.GuestResult, results: Path) -> None:
        self.result = result
        self.results = results

    def scenario(self, name: str) -> dict:
        path = self.results / f"{name}.json"
        out = self.results / f"{name}.out"
        if not path.exists():
            text = out.read_text() if out.exists() else "(no output)"
            raise AssertionError(f"scenario {name} left no result:\n{text}\n{self.result.output}")
        return json.loads(path.read_text())


@pytest.fixture(scope="module")
def guest(interop_host: bool, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    if not qemu_lab.qemu_available():
        pytest.skip(f"{qemu_lab.QEMU} not installed (apt-get install qemu-system-x86)")
    try:
        qemu_lab.find_kernel()
    except qemu_lab.LabError as e:
        pytest.skip(str(e))
    if not qemu_lab.BUSYBOX.is_file():
        pytest.skip("busybox-static not installed")
    require_peers("strongswan", "libreswan", "pyswan")
    results = tmp_path_factory.mktemp("interop-qemu")
    result = qemu_lab.run_in_guest(
        guest_script(), timeout=600 + 300 * len(LIFECYCLE), share_dir=str(results), venv=str(REPO / ".venv"),
        env={"LAB_RESULTS": str(results)}, cwd=str(REPO),
    )  # fmt: skip
    assert result.returncode == 0, result.output + result.console[-3000:]
    sys.stdout.write(
        f"\n[interop qemu] shell after {result.boot_seconds:.1f}s, total {result.total_seconds:.1f}s; "
        + (results / "done").read_text().replace("\n", "; ")
    )
    return GuestRun(result, results)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_qemu_cell(name: str, guest: GuestRun, record_cell) -> None:
    res = guest.scenario(name)
    initiator, responder = SCENARIOS[name]
    record_cell(cell_name(SUITE, initiator, responder), "qemu", PairResult(**res))
    message = "\n".join([*res["problems"], *res["notes"], res["report"]])
    assert res["ok"], message
    assert " 0% packet loss" in res["ping"], message
    assert res["esp_packets"] >= 2, message
    init, resp = res["views"]["initiator"], res["views"]["responder"]
    ci = [c for c in init["children"] if c["installed"]]
    cr = [c for c in resp["children"] if c["installed"]]
    assert ci and cr, message
    assert (ci[0]["spi_in"], ci[0]["spi_out"]) == (cr[0]["spi_out"], cr[0]["spi_in"]), message
    assert (ci[0]["encr"], ci[0]["integ"]) == (cr[0]["encr"], cr[0]["integ"]) == ("AES_GCM_16_256", None)
    # Both sides' traffic counters saw the pings (pyswan's and Libreswan's trafficstatus,
    # strongSwan's list-sas).
    for note in (n for n in res["notes"] if " traffic:" in n):
        counts = [int(x) for x in re.findall(r"(?:inBytes=|outBytes=|,\s+)(\d+)(?: bytes|,)", note)]
        assert len(counts) >= 2 and all(counts), f"no traffic counted: {note}\n{message}"


# Known pyswan bugs (strict: a fix shows as XPASS).
QEMU_KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=QEMU_KNOWN_BUGS[n])]
                 if n in QEMU_KNOWN_BUGS else []) for n in LIFECYCLE
])  # fmt: skip
def test_qemu_rekey_cell(name: str, guest: GuestRun, record_cell) -> None:
    """IKE and Child SA rekeyed by each side, the Child SA with PFS, on a real kernel."""
    res = guest.scenario(name)
    role, peer = LIFECYCLE[name]
    initiator, responder = ("pyswan", peer) if role == "initiator" else (peer, "pyswan")
    record_cell(cell_name("rekey-pfs", initiator, responder), "qemu", PairResult(**res))
    message = "\n".join([*res["problems"], *res["notes"], res["report"]])
    assert res["ok"], message
    # four rekeys done, the Child SA ones included (not the IKE-only sequence of the host)
    steps = [n for n in res["notes"] if n.startswith("step: ")]
    assert [x.split(":")[1].split(" by ")[0].strip() for x in steps] == \
        ["IKE rekey", "IKE rekey", "Child rekey", "Child rekey"], message
