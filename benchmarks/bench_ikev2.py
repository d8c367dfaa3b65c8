"""IKE+Child SA setups per second between two pyswan daemons, and CPU per setup.

Two ``pluto --nofork --kernel memory`` daemons on 127.0.0.1 and 127.0.0.2 (same IKE port),
N connections with distinct names, IDs and subnets, PSK, IKEv2, IKE_AUTH carrying a Child
SA.  All N are initiated in one burst from this one process over the control protocol:
by default one ``--asynchronous`` initiate of an alias covering them all (as the
Libreswan anchor was measured), or one asynchronous initiate per connection
(``--per-conn``).  The clock runs from the first initiate until the initiator has logged N
established Child SAs; CPU is utime+stime of each daemon over the same interval.

Figures are printed, never asserted.  Compare: Libreswan <-> Libreswan on this kind of
machine, 852 IKE SA/s and about 0.92 / 1.03 ms CPU per SA (initiator / responder) with
AES-GCM + X25519 (reference/performance-anchors.md).

    .venv/bin/python benchmarks/bench_ikev2.py [-n 200] [--runs 3] [--suite gcm-x25519]
                                               [--per-conn] [--profile DIR]

``--profile DIR`` runs both daemons under cProfile and prints their top functions;
``--py-spy DIR`` samples them with py-spy during the burst only (less overhead) and prints
the functions where the samples landed (self and inclusive).

``--compare SRC`` alternates each run with one whose daemons import pyswan from the source
tree SRC (e.g. ``git archive <commit> src | tar -x -C /tmp/old``): on a machine shared with
other work, only runs interleaved under the same load say whether a change helped.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pyswan.whack.client import send_request  # noqa: E402
from pyswan.whack.protocol import Request  # noqa: E402

BIN = Path(sys.executable).parent
SUITES = {
    "gcm-x25519": ("aes_gcm_16_256-sha2_256-dh31", "aes_gcm_16_256"),
    "cbc-modp2048": ("aes256-sha2_256-modp2048", "aes256-sha2_256"),
    "chacha-x25519": ("chacha20_poly1305-sha2_256-dh31", "chacha20_poly1305"),
}
TICK = os.sysconf("SC_CLK_TCK")
ENV: dict[str, str] | None = None  # the daemons' environment (--compare: another tree)


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Daemon:
    def __init__(self, root: Path, name: str, addr: str, port: int, secrets: str,
                 profile: Path | None) -> None:
        self.dir = root / name
        self.dir.mkdir()
        self.addr = addr
        self.ctl = str(self.dir / "pluto.ctl")
        self.log = self.dir / "pluto.log"
        secretsfile = self.dir / "ipsec.secrets"
        secretsfile.write_text(secrets)
        secretsfile.chmod(0o600)
        argv = [str(BIN / "pluto"), "--nofork", "--logfile", str(self.log), "--rundir",
                str(self.dir), "--ikeport", str(port), "--natikeport", str(free_port(addr)),
                "--kernel", "memory", "--secretsfile", str(secretsfile), "--listen", addr]
        self.profile = profile / f"{name}.prof" if profile else None
        if self.profile:
            argv = [sys.executable, "-m", "cProfile", "-o", str(self.profile), *argv]
        self.stderr = open(self.dir / "stderr", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, env=ENV)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "Pluto initialized":
            raise SystemExit(f"{name}: pluto did not start: {line!r} "
                             f"{(self.dir / 'stderr').read_text()}")

    def request(self, req: Request) -> tuple[int, list[str]]:
        lines: list[str] = []
        code = send_request(self.ctl, req, lambda rc, text: lines.append(text))
        return code, lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def conn_triples(i: int, ike: str, esp: str, alias: bool) -> list[tuple[str, str, str]]:
    triples = [("left", "host", "127.0.0.1"), ("left", "id", f"@west{i}"),
               ("left", "subnet", f"10.{i // 250}.{i % 250}.0/24"),
               ("right", "host", "127.0.0.2"), ("right", "id", f"@east{i}"),
               ("right", "subnet", f"10.{100 + i // 250}.{i % 250}.0/24"),
               ("", "type", "tunnel"), ("", "phase2", "esp"), ("", "pfs", "yes"),
               ("", "ike", ike), ("", "esp", esp), ("", "authby", "secret")]
    if alias:
        triples.append(("", "connalias", "bench"))
    return triples


def count(path: Path, needle: str) -> int:
    try:
        return path.read_text().count(needle)
    except FileNotFoundError:
        return 0


class Tail:
    """Counts lines containing ``needle`` in a growing file, reading only what is new
    (the benchmark must not steal the daemons' CPU)."""

    def __init__(self, path: Path, needle: str) -> None:
        self.path, self.needle = path, needle.encode()
        self.pos, self.count, self.rest = 0, 0, b""

    def poll(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
        self.pos += len(chunk)
        data = self.rest + chunk
        cut = data.rfind(b"\n") + 1
        self.count += data[:cut].count(self.needle)
        self.rest = data[cut:]
        return self.count


def start_pyspy(daemons: list[Daemon], out: Path | None) -> list[subprocess.Popen]:
    if out is None:
        return []
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    procs = []
    for d in daemons:
        procs.append(subprocess.Popen([spy, "record", "-r", "1000", "-f", "raw", "-o",
                                       str(out / f"{d.dir.name}.txt"), "-p",
                                       str(d.proc.pid)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # let py-spy attach
    return procs


def stop_pyspy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def report_pyspy(path: Path, top: int = 30) -> None:
    """Aggregate py-spy's collapsed stacks: self and inclusive samples per function."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    print(f"\n=== {path.stem}: {total} samples; self% / inclusive% ===")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * n / total:5.1f}% {100 * incl[f] / total:5.1f}%  {f}")
    print("--- where the time goes (inclusive) ---")
    for label, names in _AREAS:
        n = max((incl.get(name, 0) for name in names), default=0)
        print(f"{100 * n / total:5.1f}%  {label}")


_AREAS = [
    ("engine: datagrams (decode, crypto, exchanges)", ["Engine.receive (engine.py)"]),
    ("engine: initiations", ["Engine.initiate (engine.py)"]),
    ("engine: after kernel install", ["Engine.child_installed (engine.py)"]),
    ("engine: timers", ["Engine.timer (engine.py)"]),
    ("glue: carrying out actions", ["IkeGlue._apply (ikeglue.py)"]),
    ("glue: kernel install/remove worker", ["IkeGlue._work (ikeglue.py)"]),
    ("glue: log lines (formatting + file)", ["IkeGlue._log (ikeglue.py)"]),
    ("pluto log writes", ["Logger._emit (log.py)"]),
    ("asyncio: UDP sendto", ["_SelectorDatagramTransport.sendto (selector_events.py)"]),
    ("asyncio: timers (call_at)", ["BaseEventLoop.call_at (base_events.py)"]),
    ("asyncio: epoll", ["EpollSelector.select (selectors.py)"]),
    ("whack/control socket", ["ControlServer._serve (control.py)"]),
    ("X25519 (keygen + exchange)", ["X25519PrivateKey.generate (x25519.py)"]),
]


def run_once(n: int, suite: str, per_conn: bool, profile: Path | None,
             pyspy: Path | None = None) -> dict[str, float]:
    ike, esp = SUITES[suite]
    root = Path(tempfile.mkdtemp(prefix="bench-ikev2-"))
    secrets = "".join(f'@west{i} @east{i} : PSK "secret number {i}"\n' for i in range(n))
    port = free_port("127.0.0.1")
    west = Daemon(root, "west", "127.0.0.1", port, secrets, profile)
    east = Daemon(root, "east", "127.0.0.2", port, secrets, profile)
    try:
        for d in (west, east):
            d.request(Request("listen"))
            for i in range(n):
                code, lines = d.request(Request("add", f"bench{i}",
                                                conn=conn_triples(i, ike, esp, not per_conn)))
                if code:
                    raise SystemExit(f"add failed: {lines}")
        # the connections are loaded; let the daemons finish preparing them (pluto's glue
        # does per-connection work once a second, as Libreswan does it at --add)
        time.sleep(1.5)
        spies = start_pyspy([west, east], pyspy)
        Tail(west.log, "").poll()  # warm the page cache
        cpu_w, cpu_e = cpu_seconds(west.proc.pid), cpu_seconds(east.proc.pid)
        start = time.perf_counter()
        if per_conn:
            for i in range(n):
                west.request(Request("initiate", f"bench{i}", flags={"async"}))
        else:
            west.request(Request("initiate", "bench", flags={"async"}))
        tail = Tail(west.log, "initiator established Child SA")
        deadline = start + 120
        established = 0
        while time.perf_counter() < deadline:
            established = tail.poll()
            if established >= n:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        used_w = cpu_seconds(west.proc.pid) - cpu_w
        used_e = cpu_seconds(east.proc.pid) - cpu_e
        stop_pyspy(spies)
        retransmits = count(west.log, "retransmission; will wait")
        failed = n - established
    finally:
        west.stop()
        east.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return {"sa_per_s": established / elapsed, "elapsed": elapsed,
            "cpu_ms_init": used_w * 1000 / max(established, 1),
            "cpu_ms_resp": used_e * 1000 / max(established, 1),
            "retransmits": retransmits, "failed": failed}


def main() -> None:
    global ENV
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--suite", choices=sorted(SUITES), default="gcm-x25519")
    ap.add_argument("--per-conn", action="store_true",
                    help="one asynchronous initiate per connection instead of one alias")
    ap.add_argument("--profile", type=Path, help="write cProfile output of both daemons here")
    ap.add_argument("--py-spy", dest="pyspy", type=Path,
                    help="sample both daemons with py-spy during the burst; write here")
    ap.add_argument("--compare", type=Path, metavar="SRC",
                    help="interleave each run with one of the pyswan source tree SRC")
    args = ap.parse_args()
    for d in (args.profile, args.pyspy):
        if d:
            d.mkdir(parents=True, exist_ok=True)
            args.runs = 1
    load_before = os.getloadavg()
    results, others = [], []
    for _ in range(args.runs):
        if args.compare:
            ENV = {**os.environ, "PYTHONPATH": str(args.compare.resolve())}
            others.append(run_once(args.n, args.suite, args.per_conn, None))
            ENV = None
        results.append(run_once(args.n, args.suite, args.per_conn, args.profile, args.pyspy))
    if others:
        print(f"--- {args.compare} (interleaved with the runs below) ---")
        _summary(others, args)
        print("--- this tree ---")
    _summary(results, args)
    print("load average before / after: " + " ".join(f"{x:.2f}" for x in load_before)
          + " / " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("Libreswan <-> Libreswan anchor (AES-GCM/X25519): 852 SA/s; 0.92 ms / 1.03 ms "
          "CPU per SA")
    if args.pyspy:
        for side in ("west", "east"):
            if (args.pyspy / f"{side}.txt").exists():
                report_pyspy(args.pyspy / f"{side}.txt")
    if args.profile:
        for side in ("west", "east"):
            prof = args.profile / f"{side}.prof"
            if prof.exists():
                print(f"\n=== {side} (cumulative, top 25) ===")
                pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)


def _summary(results: list[dict[str, float]], args: argparse.Namespace) -> None:
    for r in results:
        print(f"run: {r['sa_per_s']:7.1f} SA/s  {r['elapsed']:.3f}s  CPU/SA initiator "
              f"{r['cpu_ms_init']:.2f} ms responder {r['cpu_ms_resp']:.2f} ms  "
              f"retransmits {r['retransmits']:.0f}  failed {r['failed']:.0f}")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    mode = "one request per connection" if args.per_conn else "one alias request"
    print(f"pyswan <-> pyswan, {args.suite}, PSK, N={args.n}, {mode}, median of "
          f"{len(results)}: {med['sa_per_s']:.0f} IKE+Child SA/s; CPU per SA: initiator "
          f"{med['cpu_ms_init']:.2f} ms, responder {med['cpu_ms_resp']:.2f} ms")
    if len(results) > 1:
        print(f"best of {len(results)} (least disturbed by other load): "
              f"{max(r['sa_per_s'] for r in results):.0f} SA/s; CPU per SA: initiator "
              f"{min(r['cpu_ms_init'] for r in results):.2f} ms, responder "
              f"{min(r['cpu_ms_resp'] for r in results):.2f} ms")


if __name__ == "__main__":
    main()
