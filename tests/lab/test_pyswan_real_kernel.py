"""Two pyswan daemons on a real kernel with ESP (the QEMU lab): `ipsec up`, then ping
between the client subnets goes through ESP, counters grow, `ipsec down` cleans up.  Then
on demand: `ipsec route`, a ping hits the trap, the kernel's ACQUIRE brings the tunnel up,
only ESP crosses the wire, and each inbound SA fills in an SPI reserved with ALLOCSPI.

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

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(2400)]

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

# On demand: --route installs the trap; the first ping makes the kernel send an ACQUIRE,
# pluto negotiates, the Child SA carries the rest.  Both kernels' SA tables are sampled all
# along, to see the reserved (larval) SPIs the Child SA then uses.
step route $B/ipsec --rundir /run/pyswan/west route demo
ip -n west xfrm policy > "$R/od_trap.out" 2>&1
( while [ ! -e "$R/od.stop" ]; do
      for me in west east; do ip -n $me xfrm state >> "$R/od_states_$me.out" 2>&1; done
      sleep 0.2
  done ) &
SAMPLER=$!
# what each side sends on the wire (-Q out: decrypted packets coming in show up on the
# receiving interface too, so incoming packets say nothing about the wire)
ip netns exec west tcpdump -n -Q out -i vw -w "$R/od_west.pcap" \
    'ip and not (udp port 500 or udp port 4500)' > "$R/od_tcpdump_west.out" 2>&1 &
TCPDUMP=$!
ip netns exec east tcpdump -n -Q out -i ve -w "$R/od_east.pcap" \
    'ip and not (udp port 500 or udp port 4500)' > "$R/od_tcpdump_east.out" 2>&1 &
TCPDUMP2=$!
sleep 2
step od_ping1 ip netns exec west ping -c 12 -i 0.5 -W 1 -I 10.1.0.1 10.2.0.1
touch "$R/od.stop"; wait $SAMPLER  # the Child SA is up: the reservations it used are seen
for i in $(seq 1 100); do
    $B/ipsec --rundir /run/pyswan/west trafficstatus | grep -q inBytes && break
    sleep 0.2
done
step od_ping2 ip netns exec west ping -c 3 -W 5 -I 10.1.0.1 10.2.0.1
step od_traffic_west $B/ipsec --rundir /run/pyswan/west trafficstatus
step od_traffic_east $B/ipsec --rundir /run/pyswan/east trafficstatus
step od_status_west $B/ipsec --rundir /run/pyswan/west status
ip -n west xfrm state > "$R/od_state_west.out" 2>&1
ip -n east xfrm state > "$R/od_state_east.out" 2>&1
sleep 1; kill $TCPDUMP $TCPDUMP2 2>/dev/null; wait $TCPDUMP $TCPDUMP2 2>/dev/null
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
    # one boot for both scenarios; under emulation on a busy 2-core host it can take long
    res = qemu_lab.run_in_guest(script, timeout=2000, share_dir=str(results),
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
    # (the other ESP states are inbound SPIs reserved ahead: larval, without keys)
    assert sum(keyed for *_, keyed in _esp_states(state)) == 2, state
    assert "rfc4106(gcm(aes))" in state, state
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
    for side in ("west", "east"):  # no SA left; only reserved SPIs (no keys) remain
        after = _esp_states(_read(results, f"{side}_state_after.out"))
        assert [s for s in after if s[3]] == [], after
        assert all(src == "0.0.0.0" for src, *_ in after), after


# -- on demand: --route, ACQUIRE, tunnel -------------------------------------------------------

def _esp_states(text: str) -> list[tuple[str, str, int, bool]]:
    """(src, dst, spi, keyed) of each ESP SA in `ip xfrm state` output."""
    out = []
    for block in re.split(r"\n(?=src )", text):
        m = re.match(r"src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)", block)
        if m:
            out.append((m[1], m[2], int(m[3], 16), "aead" in block or "enc " in block))
    return out


def test_route_installs_the_trap(lab):
    results, _ = lab
    assert _read(results, "route.rc").strip() == "0", _read(results, "route.out")
    trap = _read(results, "od_trap.out")
    assert "src 10.1.0.0/24 dst 10.2.0.0/24" in trap and "dir out" in trap, trap
    assert "proto esp" in trap and "mode transport" in trap, trap  # the %trap template


def test_acquire_brings_the_tunnel_up_and_ping_goes_through(lab):
    results, _ = lab
    west = _read(results, "west.log")
    assert '"demo": initiating on demand: acquire for 10.1.0.1/32' in west, _logs(results)
    after = west.split("initiating on demand", 1)[1]
    assert re.search(r'"demo" #\d+: initiator established Child SA using #\d+; IPsec tunnel '
                     r"\[10\.1\.0\.0/24===10\.2\.0\.0/24\]", after), _logs(results)
    ping = _read(results, "od_ping2.out")
    assert "3 packets transmitted, 3 received" in ping, ping + _read(results, "od_ping1.out")
    assert "ROUTED_TUNNEL" in _read(results, "od_status_west.out").upper().replace("-", "_")


def test_only_esp_on_the_wire(lab):
    results, _ = lab
    from scapy.all import ESP, IP, rdpcap

    for side in ("west", "east"):  # requests leave west, replies leave east: as ESP only
        packets = [p for p in rdpcap(str(results / f"od_{side}.pcap")) if p.haslayer(IP)]
        assert len(packets) >= 3, _read(results, f"od_tcpdump_{side}.out")  # od_ping2
        assert all(p[IP].proto == 50 and p.haslayer(ESP) for p in packets), [
            p.summary() for p in packets if p[IP].proto != 50]


def test_on_demand_counters_grow(lab):
    results, _ = lab
    for side in ("west", "east"):
        traffic = _read(results, f"od_traffic_{side}.out")
        m = re.search(r"inBytes=(\d+), outBytes=(\d+)", traffic)
        assert m, traffic
        assert int(m.group(1)) > 0 and int(m.group(2)) > 0, traffic


def test_inbound_spis_were_reserved_with_allocspi(lab):
    """Each side's inbound SA sits on an SPI the kernel handed out (ALLOCSPI) beforehand:
    it was seen as a larval SA (no keys, from 0.0.0.0) before the Child SA filled it in."""
    results, _ = lab
    for side, us in (("west", "192.0.2.1"), ("east", "192.0.2.2")):
        seen = _esp_states(_read(results, f"od_states_{side}.out"))
        larval = {spi for src, dst, spi, keyed in seen
                  if dst == us and src == "0.0.0.0" and not keyed}
        final = [spi for src, dst, spi, keyed in _esp_states(_read(results,
                                                                   f"od_state_{side}.out"))
                 if dst == us and keyed]
        assert len(final) == 1, _read(results, f"od_state_{side}.out")
        assert final[0] in larval, (side, hex(final[0]), sorted(map(hex, larval)))
