"""The real-kernel lab works: ESP between two namespaces in a QEMU guest, and the venv runs there.

One boot (module-scoped fixture) runs every check and leaves its results in a
shared host directory; the tests below only read them.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# tests/lab is not a package; make the harness importable under any import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import qemu_lab  # noqa: E402

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

# Two namespaces joined by veth, a transport-mode ESP SA pair with AES-GCM, and
# policies in both directions.  The inbound policies make plain ICMP unacceptable,
# so a ping that answers must have gone through ESP.
GUEST_SCRIPT = r"""
set -u
R=$LAB_RESULTS
up() { cut -d' ' -f1 /proc/uptime; }
step() {  # step NAME CMD...: output, status and guest uptime at the end go to $R
    name=$1; shift
    "$@" > "$R/$name.out" 2>&1; echo $? > "$R/$name.rc"
    echo "$name $(up)" >> "$R/timings"
}
echo "start $(up)" > "$R/timings"

# Each process start costs a lot under emulation, so one `ip -batch` per namespace.
A=192.0.2.1 B=192.0.2.2
K1=0x0102030405060708090a0b0c0d0e0f1011121314  # 128-bit AES key + 32-bit salt
K2=0x2122232425262728292a2b2c2d2e2f3031323334
SA_AB="src $A dst $B proto esp spi 0x1000 reqid 1 mode transport aead rfc4106(gcm(aes)) $K1 128"
SA_BA="src $B dst $A proto esp spi 0x2000 reqid 2 mode transport aead rfc4106(gcm(aes)) $K2 128"
setup() (  # a subshell, so that set -e ends with it
    set -e
    ip netns add a
    ip netns add b
    ip link add va netns a type veth peer name vb netns b
    ip -n a -batch - <<EOF
link set lo up
addr add $A/24 dev va
link set va up
xfrm state add $SA_AB
xfrm state add $SA_BA
xfrm policy add src $A dst $B dir out tmpl proto esp reqid 1 mode transport
xfrm policy add src $B dst $A dir in tmpl proto esp reqid 2 mode transport
EOF
    ip -n b -batch - <<EOF
link set lo up
addr add $B/24 dev vb
link set vb up
xfrm state add $SA_AB
xfrm state add $SA_BA
xfrm policy add src $B dst $A dir out tmpl proto esp reqid 2 mode transport
xfrm policy add src $A dst $B dir in tmpl proto esp reqid 1 mode transport
EOF
)

step setup setup

# Capture on the wire (the veth in namespace a) while pinging; wait until tcpdump
# is listening, which takes a while under emulation.
ip netns exec a timeout 120 tcpdump -Z root -n -U -i va -c 4 -w "$R/esp.pcap" esp \
    2> "$R/tcpdump.err" &
TCPDUMP=$!
for i in $(seq 60); do grep -q listening "$R/tcpdump.err" && break; sleep 0.5; done

step ping ip netns exec a ping -c 3 -W 5 $B
step xfrm_a ip -n a -s xfrm state
step xfrm_b ip -n b -s xfrm state
wait $TCPDUMP; echo $? > "$R/tcpdump.rc"
step tcpdump_text tcpdump -n -r "$R/esp.pcap"

step python PYTHON -c 'import pyswan, pyroute2; print(pyswan.__file__)'
echo done
"""


@dataclass
class LabRun:
    result: qemu_lab.GuestResult
    results: Path

    def out(self, step: str) -> str:
        return (self.results / f"{step}.out").read_text()

    def rc(self, step: str) -> int:
        return int((self.results / f"{step}.rc").read_text())

    def check(self, step: str) -> str:
        """The output of a step that must have succeeded."""
        assert self.rc(step) == 0, f"step {step} failed:\n{self.out(step)}\n{self.result.output}"
        return self.out(step)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    if not qemu_lab.qemu_available():
        pytest.skip(f"{qemu_lab.QEMU} not installed (apt-get install qemu-system-x86)")
    try:
        qemu_lab.find_kernel()
    except qemu_lab.LabError as e:
        pytest.skip(str(e))
    if not qemu_lab.BUSYBOX.is_file():
        pytest.skip("busybox-static not installed")
    results = tmp_path_factory.mktemp("lab-results")
    script = GUEST_SCRIPT.replace("PYTHON", shlex.quote(str(VENV_PYTHON)))
    result = qemu_lab.run_in_guest(
        script,
        timeout=600,
        share_dir=str(results),
        venv=str(REPO / ".venv"),
        env={"LAB_RESULTS": str(results)},
        cwd=str(REPO),
    )
    assert result.returncode == 0, result.output + result.console
    return LabRun(result, results)


def test_timing(lab: LabRun, capsys: pytest.CaptureFixture[str]) -> None:
    r = lab.result
    with capsys.disabled():
        print(
            f"\n[qemu lab] shell after {r.boot_seconds:.1f} s, total {r.total_seconds:.1f} s; "
            f"modules: {' '.join(f'{m}={s}' for m, s in r.modules.items())}\n"
            f"[qemu lab] guest uptime after each step: "
            + (lab.results / "timings").read_text().replace("\n", "; ")
        )
    assert 0 < r.boot_seconds <= r.total_seconds
    assert r.modules["esp4"] in ("loaded", "builtin")
    assert r.modules["xfrm_user"] in ("loaded", "builtin")
    assert r.output.strip().endswith("done")


def test_esp_ping_between_namespaces(lab: LabRun) -> None:
    lab.check("setup")
    ping = lab.check("ping")
    assert re.search(r"\b3 (packets )?received", ping), ping
    for ns in ("a", "b"):
        state = lab.check(f"xfrm_{ns}")
        assert state.count("rfc4106(gcm(aes))") == 2, state
        packets = [int(n) for n in re.findall(r"(\d+)\(packets\)", state)]
        # Each namespace has an outbound and an inbound SA; both carried the 3 pings.
        assert len(packets) == 2 and all(n >= 3 for n in packets), state


def test_esp_on_the_wire(lab: LabRun) -> None:
    assert (lab.results / "tcpdump.rc").read_text().strip() == "0", (
        lab.results / "tcpdump.err"
    ).read_text()
    text = lab.check("tcpdump_text")
    esp_lines = [line for line in text.splitlines() if "ESP(spi=" in line]
    assert len(esp_lines) >= 2, text
    assert any("spi=0x00001000" in line for line in esp_lines), text
    assert any("spi=0x00002000" in line for line in esp_lines), text
    # The pcap came back through share_dir; read it independently on the host.
    from scapy.layers.ipsec import ESP
    from scapy.utils import rdpcap

    packets = rdpcap(str(lab.results / "esp.pcap"))
    assert sum(1 for p in packets if ESP in p) >= 2


def test_venv_python_runs_in_guest(lab: LabRun) -> None:
    out = lab.check("python")
    # editable install: src/pyswan; CI installs into the venv: .venv/.../site-packages/pyswan
    assert str(REPO / "src" / "pyswan") in out or str(REPO / ".venv") in out, out
