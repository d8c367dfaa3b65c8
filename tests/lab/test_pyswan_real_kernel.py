"""Two pyswan daemons on a real kernel with ESP (the QEMU lab): `ipsec up`, then ping
between the client subnets goes through ESP, counters grow, `ipsec down` cleans up.

One boot runs the whole scenario and leaves its results in a shared host directory;
the tests below only read them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qemu_lab  # noqa: E402

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(1200)]

BIN = Path(sys.executable).parent

CONF = """\
config setup
\tlogfile=/run/pyswan/{me}/pluto.log
\tlogappend=no

conn demo
\tleft=192.0.2.1
\tleftid=@west
\tleftsubnet=10.1.0.0/24
\tright=192.0.2.2
\trightid=@east
\trightsubnet=10.2.0.0/24
\tauthby=secret
\tike=aes_gcm256-sha2_256;dh31
\tesp=aes_gcm256
\tauto=add
"""

# Namespace and address setup, one `ip -batch` per namespace (process starts are slow
# under emulation).
SETUP_WEST = """\
link set lo up
addr add 192.0.2.1/24 dev vw
addr add 10.1.0.1/24 dev lo
link set vw up
route add 10.2.0.0/24 dev vw src 10.1.0.1
"""
SETUP_EAST = """\
link set lo up
addr add 192.0.2.2/24 dev ve
addr add 10.2.0.1/24 dev lo
link set ve up
route add 10.1.0.0/24 dev ve src 10.2.0.1
"""

GUEST_SCRIPT = r"""
set -u
R=$LAB_RESULTS
B={bin}
step() {{ name=$1; shift; "$@" > "$R/$name.out" 2>&1; echo $? > "$R/$name.rc"; }}

ip netns add west
ip netns add east
ip link add vw netns west type veth peer name ve netns east
ip -n west -batch "$R/setup-west.batch"
ip -n east -batch "$R/setup-east.batch"

for me in west east; do
    mkdir -p /run/pyswan/$me
    cp "$R/$me.conf" /run/pyswan/$me/ipsec.conf
    printf '@west @east : PSK "pyswan real kernel lab secret"\n' > /run/pyswan/$me/ipsec.secrets
    chmod 600 /run/pyswan/$me/ipsec.secrets
    ip netns exec $me $B/pluto --config /run/pyswan/$me/ipsec.conf \
        --secretsfile /run/pyswan/$me/ipsec.secrets --rundir /run/pyswan/$me --kernel xfrm
done
# wait until both daemons have loaded their connection
for i in $(seq 1 900); do
    grep -q 'added oriented' /run/pyswan/west/pluto.log 2>/dev/null &&
    grep -q 'added oriented' /run/pyswan/east/pluto.log 2>/dev/null && break
    sleep 0.2
done

ip netns exec east tcpdump -n -i ve -w "$R/esp.pcap" -c 6 esp > "$R/tcpdump.out" 2>&1 &
TCPDUMP=$!
sleep 2
step up $B/ipsec --rundir /run/pyswan/west up demo
step ping ip netns exec west ping -c 3 -W 5 -I 10.1.0.1 10.2.0.1
step traffic_west $B/ipsec --rundir /run/pyswan/west trafficstatus
step traffic_east $B/ipsec --rundir /run/pyswan/east trafficstatus
ip -n west xfrm state > "$R/west_state.out" 2>&1
ip -n west xfrm policy > "$R/west_policy.out" 2>&1
sleep 1; kill $TCPDUMP 2>/dev/null; wait $TCPDUMP 2>/dev/null
step down $B/ipsec --rundir /run/pyswan/west down demo
sleep 1
ip -n west xfrm state > "$R/west_state_after.out" 2>&1
ip -n east xfrm state > "$R/east_state_after.out" 2>&1
step stop_west $B/ipsec --rundir /run/pyswan/west stop
step stop_east $B/ipsec --rundir /run/pyswan/east stop
sleep 2
cp /run/pyswan/west/pluto.log "$R/west.log"; cp /run/pyswan/east/pluto.log "$R/east.log"
echo done
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not qemu_lab.qemu_available():
        pytest.skip("QEMU or a Debian kernel with ESP is not installed (see tests/lab/README.md)")
    try:
        qemu_lab.find_kernel()
    except qemu_lab.LabError as e:
        pytest.skip(str(e))
    results = tmp_path_factory.mktemp("pyswan-lab")
    for me in ("west", "east"):
        (results / f"{me}.conf").write_text(CONF.format(me=me))
    (results / "setup-west.batch").write_text(SETUP_WEST)
    (results / "setup-east.batch").write_text(SETUP_EAST)
    script = GUEST_SCRIPT.format(bin=BIN)
    res = qemu_lab.run_in_guest(script, timeout=900, share_dir=str(results),
                                env={"LAB_RESULTS": str(results)})
    print(f"\n[pyswan real kernel] boot {res.boot_seconds:.1f}s, total {res.total_seconds:.1f}s")
    return results, res


def _read(results: Path, name: str) -> str:
    p = results / name
    return p.read_text() if p.exists() else f"<{name} missing>"


def _logs(results: Path) -> str:
    return f"--- west.log\n{_read(results, 'west.log')}\n--- east.log\n{_read(results, 'east.log')}"


def test_up_establishes_child_sa(lab):
    results, res = lab
    up = _read(results, "up.out")
    assert _read(results, "up.rc").strip() == "0", up + res.output + _logs(results)
    assert ('"demo" #2: initiator established Child SA using #1; '
            'IPsec tunnel [10.1.0.0/24===10.2.0.0/24]') in up


def test_ping_goes_through_esp(lab):
    results, _ = lab
    ping = _read(results, "ping.out")
    assert "3 packets transmitted, 3 received" in ping, ping + _logs(results)
    state = _read(results, "west_state.out")
    assert state.count("proto esp") == 2 and "rfc4106(gcm(aes))" in state, state
    policy = _read(results, "west_policy.out")
    assert "src 10.1.0.0/24 dst 10.2.0.0/24" in policy and "dir out" in policy, policy
    from scapy.all import ESP, rdpcap

    packets = [p for p in rdpcap(str(results / "esp.pcap")) if p.haslayer(ESP)]
    assert len(packets) >= 4, _read(results, "tcpdump.out")
    assert len({p[ESP].spi for p in packets}) == 2


def test_trafficstatus_counters_grow(lab):
    results, _ = lab
    for side in ("west", "east"):
        traffic = _read(results, f"traffic_{side}.out")
        m = re.search(r"inBytes=(\d+), outBytes=(\d+)", traffic)
        assert m, traffic
        assert int(m.group(1)) > 0 and int(m.group(2)) > 0, traffic


def test_down_removes_kernel_state(lab):
    results, _ = lab
    assert _read(results, "down.rc").strip() == "0", _read(results, "down.out")
    assert "proto esp" not in _read(results, "west_state_after.out")
    assert "proto esp" not in _read(results, "east_state_after.out")
