"""One interop scenario from start to teardown, as a function and as a command.

`run_pair()` puts the initiator in "west" and the responder in "east", brings the
connection up, compares what both ends (and the wire) say, and returns a
`PairResult`; it never raises for a misbehaving daemon (that is a problem in the
result) and always tears the lab down.  The QEMU test runs the same code inside
the guest through the command line:

    python tests/interop/scenario.py --initiator strongswan --responder libreswan \\
        --suite aesgcm-x25519 --expect-child --ping --workdir DIR --json DIR/result.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netlab import (  # noqa: E402
    DAEMONS,
    NS_PREFIX,
    SUITES,
    Capture,
    Conn,
    Daemon,
    IkeView,
    Lab,
    LabError,
    NotReady,
    PlutoFamily,
    PySwan,
    StrongSwan,
    Suite,
    disagreements,
    expectation_failures,
    ike_auth_spis,
    sh,
)

LABELS = {"strongswan": "strongSwan", "libreswan": "Libreswan", "pyswan": "pyswan"}


@dataclass
class PairResult:
    initiator: str
    responder: str
    suite: str
    expect_child: bool
    ok: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    child_events: dict[str, list[str]] = field(default_factory=dict)  # "<kind> (<role>)" -> lines
    views: dict[str, dict[str, object]] = field(default_factory=dict)
    wire_ike_spis: list[str] = field(default_factory=list)
    ike_spis: str = ""  # "spi_i:spi_r" as the daemons report them
    nat_t: bool = False  # IKE seen on UDP 4500 (after NAT detection)
    child_spis: str = ""  # "in=.. out=.." of the initiator's Child SA
    auth: dict[str, str] = field(default_factory=dict)  # "<kind> (<role>)" -> how it authenticated its peer
    esp_packets: int = 0
    ping: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds since start
    report: str = ""  # both sides' status and logs (filled on failure, or always with keep_report)

    def stable_line(self, line: str) -> str:
        """A log line without what changes from run to run (SPIs, state numbers)."""
        line = re.sub(r"\b(?:0x)?[0-9a-f]{8}\b", "<spi>", line)
        line = re.sub(r"<interop\|\d+>|#\d+: ", "", line)
        return line.strip()

    def summary(self) -> str:
        head = "ok" if self.ok else "FAILED: " + "; ".join(self.problems)
        return f"{self.initiator} -> {self.responder} [{self.suite}] {head} ({self.seconds:.1f}s)"

    def message(self) -> str:
        """An assertion message: the problems, the notes, then both sides' logs."""
        return "\n".join([
            self.summary(), *(f"  problem: {p}" for p in self.problems),
            *(f"  note: {n}" for n in self.notes),
            *(f"  {who}: {line}" for who, lines in self.child_events.items() for line in lines[-8:]),
            self.report,
        ])  # fmt: skip


def kernel_has_esp() -> bool:
    """Can this kernel hold an ESP SA?  Tried in a scratch namespace, then removed."""
    ns = f"{NS_PREFIX}{os.getpid()}-esp-probe"
    sh(["ip", "netns", "add", ns])
    try:
        r = sh(["ip", "-n", ns, "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2",
                "proto", "esp", "spi", "0x100", "mode", "tunnel",
                "aead", "rfc4106(gcm(aes))", "0x" + "11" * 20, "128"], check=False)  # fmt: skip
        return r.returncode == 0
    finally:
        sh(["ip", "netns", "del", ns], check=False)


def _who(d: Daemon, role: str) -> str:
    return f"{LABELS[d.kind]} ({role})"


def _routes_for_ping(lab: Lab) -> None:
    """Client subnet routes through the veth, with the client address as source."""
    for h, other in ((lab.west, lab.east), (lab.east, lab.west)):
        sh(["ip", "-n", h.ns.name, "route", "replace", other.subnet, "dev", h.iface,
            "src", h.client])  # fmt: skip


def _traffic(d: Daemon) -> str:
    if isinstance(d, PlutoFamily):
        return d.trafficstatus().strip()
    if isinstance(d, StrongSwan):
        return "\n".join(line for line in d.status_text().splitlines() if " in " in line or " out " in line)
    return ""


def _auth_summary(line: str) -> str:
    """The method part of an authentication line, for the matrix's notes."""
    m = re.search(r"authentication of '.*' with (.*) successful", line)
    if m:
        return m.group(1)
    m = re.search(r" and (.*?) digital signature", line) or re.search(r"authenticated peer '([^']*)'", line)
    return m.group(1) if m else line


def _check_auth(res: PairResult, daemons: Sequence[tuple[str, Daemon]]) -> None:
    """Each side logged that it authenticated its peer, with the suite's method."""
    seen = []
    for who, d in daemons:
        lines = d.auth_lines()
        want = d.conn.auth_expectation(d.kind)
        hit = next((x for x in lines if want is None or want.search(x)), "")
        if not hit:
            res.problems.append(f"{who}: no log line authenticating the peer"
                                + (f" matching /{want.pattern}/" if want else "")
                                + (f"; saw: {lines}" if lines else ""))  # fmt: skip
            continue
        res.auth[who] = hit
        seen.append(f"{who.split()[0]} verified {_auth_summary(hit)}")
    if seen:
        res.notes.append("auth: " + ", ".join(seen))


def run_pair(
    workdir: Path,
    initiator: str,
    responder: str,
    suite_key: str | Suite,
    *,
    expect_child: bool,
    nat: bool = False,
    ping: bool = False,
    pyswan_kernel: str = "memory",
    timeout: float = 20,
    keep_report: bool = False,
) -> PairResult:
    suite = SUITES[suite_key] if isinstance(suite_key, str) else suite_key
    res = PairResult(initiator, responder, suite.label, expect_child)
    start = time.monotonic()
    lab = Lab(workdir, nat=nat, tag=f"{initiator[:2]}{responder[:2]}")
    views: dict[str, IkeView | None] = {}

    def mark(step: str) -> None:
        res.timings[step] = round(time.monotonic() - start, 3)

    try:
        lab.build()
        conn = Conn.between(lab.west, lab.east, suite)
        kw_i = {"kernel": pyswan_kernel} if initiator == "pyswan" else {}
        kw_r = {"kernel": pyswan_kernel} if responder == "pyswan" else {}
        mark("topology")
        resp = lab.start(DAEMONS[responder], lab.east, conn.mirrored(), **kw_r)
        mark("responder started")
        init = lab.start(DAEMONS[initiator], lab.west, conn, **kw_i)
        mark("initiator started")
        wi, wr = _who(init, "initiator"), _who(resp, "responder")
        cap = Capture(lab, lab.west).start()
        init.initiate()
        try:
            lab.wait_established(init, resp, timeout=timeout)
        except NotReady as e:
            res.problems.append(str(e))
        mark("IKE established")
        if expect_child:
            try:
                lab.wait_settled(
                    [init, resp],
                    lambda vs: all(any(c.installed for c in v.children) for v in vs),
                    "Child SA installed on both sides", timeout=timeout,
                )  # fmt: skip
            except NotReady as e:
                res.problems.append(str(e))
        else:
            # The Child SA's fate (kernel refusal here, a notify there) is logged right
            # after IKE_AUTH; give both sides a moment to write it down.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not (init.child_events() and resp.child_events()):
                time.sleep(0.1)
        mark("Child settled")
        if ping and not res.problems:
            _routes_for_ping(lab)
            r = lab.west.ns.run(["ping", "-c", "3", "-W", "2", "-I", lab.west.client, lab.east.client],
                                check=False, timeout=30)  # fmt: skip
            res.ping = r.stdout.strip().splitlines()[-2] if r.stdout.strip() else r.stderr.strip()
            if r.returncode != 0:
                res.problems.append(f"ping {lab.west.client} -> {lab.east.client} failed: {r.stdout}{r.stderr}")
            res.notes.append(f"{wi} traffic: {_traffic(init)}")
            res.notes.append(f"{wr} traffic: {_traffic(resp)}")
            mark("ping")
        packets = cap.stop()
        views = {"initiator": init.final_view(), "responder": resp.final_view()}
        for role, v in views.items():
            if v is not None:
                res.views[role] = {k: val for k, val in asdict(v).items() if k != "raw"}
        vi, vr = views["initiator"], views["responder"]
        res.child_events = {wi: init.child_events(), wr: resp.child_events()}
        if suite.cert_kind:
            _check_auth(res, ((wi, init), (wr, resp)))
        wire = ike_auth_spis(packets)
        res.wire_ike_spis = sorted(f"{a}:{b}" for a, b in wire)
        esp = [p for p in packets if p.kind == "esp"]
        res.nat_t = any(p.kind == "ike" and 4500 in (p.sport, p.dport) for p in packets)
        res.esp_packets = len(esp)
        if vi is None or vr is None:
            res.problems.append(f"no IKE SA in status: initiator={vi is not None} responder={vr is not None}")
        else:
            res.problems += disagreements(vi, vr, check_children=expect_child)
            res.problems += [f"{wi}: {p}" for p in expectation_failures(vi, suite)]
            res.problems += [f"{wr}: {p}" for p in expectation_failures(vr, suite)]
            for who, v in ((wi, vi), (wr, vr)):
                if v.spi_i:
                    if (v.spi_i, v.spi_r) not in wire:
                        res.problems.append(f"{who} IKE SPIs {v.spi_i}:{v.spi_r} not seen in an IKE_AUTH "
                                            f"exchange on the wire {sorted(wire)}")  # fmt: skip
                else:
                    res.notes.append(f"{who} does not show IKE SPIs (status/log); compared via the wire")
            if not (vi.spi_i or vr.spi_i):
                res.problems.append("neither side shows its IKE SPIs")
            res.notes.append(f"IKE {vi.encr}/{vi.integ or 'none'}/{vi.prf}/{vi.dh}, same SPIs on both "
                             "sides and on the wire" if not res.problems else
                             f"IKE {vi.encr}/{vi.integ}/{vi.prf}/{vi.dh}")  # fmt: skip
            res.ike_spis = f"{vi.spi_i or vr.spi_i}:{vi.spi_r or vr.spi_r}"
            if expect_child:
                kids = [c for c in vi.children if c.installed]
                if kids:
                    c = kids[0]
                    res.notes.append(f"Child {c.encr}/{c.integ or 'none'} installed on both sides, "
                                     "same SPIs")
                    res.child_spis = f"in={c.spi_in} out={c.spi_out}"
                    spis = {c.spi_in, c.spi_out}
                    seen = {p.esp_spi for p in esp}
                    if ping and not spis & seen:
                        res.problems.append(f"no ESP with SPIs {sorted(spis)} on the wire (saw {sorted(seen)})")
                    if ping:
                        res.notes.append(f"ping {res.ping}; {len(esp)} ESP packets on the wire")
    except (LabError, NotReady, OSError) as e:
        res.problems.append(f"{type(e).__name__}: {e}")
    except Exception:  # noqa: BLE001 - a harness bug must still tear down and report
        res.problems.append("harness error:\n" + traceback.format_exc())
    finally:
        res.report = lab.report() if (res.problems or keep_report) else ""
        mark("checked")
        lab.close()
        mark("torn down")
        res.seconds = time.monotonic() - start
    res.ok = not res.problems
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--initiator", choices=sorted(DAEMONS), required=True)
    ap.add_argument("--responder", choices=sorted(DAEMONS), required=True)
    ap.add_argument("--suite", choices=sorted(SUITES), default="psk-default")
    ap.add_argument("--expect-child", action="store_true", help="both Child SAs must be installed")
    ap.add_argument("--ping", action="store_true", help="ping between the client subnets")
    ap.add_argument("--nat", action="store_true", help="initiator behind a masquerading namespace")
    ap.add_argument("--pyswan-kernel", default="memory", choices=["memory", "xfrm", "auto"])
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--json", type=Path, help="write the PairResult here")
    ap.add_argument("--report", action="store_true", help="always include the logs")
    args = ap.parse_args(argv)
    res = run_pair(
        args.workdir, args.initiator, args.responder, args.suite, expect_child=args.expect_child,
        ping=args.ping, nat=args.nat, pyswan_kernel=args.pyswan_kernel, timeout=args.timeout,
        keep_report=args.report,
    )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(asdict(res), indent=1))
    print(res.message() if not res.ok or args.report else res.summary())
    print(f"  timings: {res.timings}")
    for n in res.notes:
        print(f"  note: {n}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PairResult", "run_pair", "kernel_has_esp", "PySwan"]
