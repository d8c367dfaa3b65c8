"""SA lifecycle cells: rekeying and liveness/delete, pyswan against a real peer.

Two scenarios, each a `PairResult` like scenario.py's (so the matrix records them the
same way), each run from start to teardown whatever happens:

- `run_rekey()`: IKE SA rekey triggered once by pyswan (``ipsec whack --rekey-ike``)
  and once by the peer (``swanctl --rekey --ike``, Libreswan 4.10 ``whack
  --rekey-ike``), then, where the kernel holds Child SAs, the same for the Child SA
  (``--rekey-child``; swanctl ``--rekey --child``; Libreswan 4.10 ``--rekey-ipsec``)
  with PFS (against strongSwan in a group other than the IKE SA's; Libreswan 4.10 only
  rekeys with the IKE SA's group, see netlab's "rekey-pfs-ike-group").  After each rekey
  both sides must show one IKE SA (the old one deleted on both), new SPIs on the wire
  in an answered exchange (the peer's status must name the same pair where it shows
  one), the same algorithms, and after a Child rekey one Child SA with new SPIs,
  crossed on both sides, with the PFS group among its algorithms on both.
- `run_dpd()`: liveness probes (dpddelay) answered on the wire; a delete by pyswan
  (``ipsec whack --down``) and by the peer (``swanctl --terminate``, ``ipsec auto
  --down``) clears both sides; a killed peer (SIGKILL) is declared dead by pyswan,
  with its log line (after dpddelay plus its retransmissions, 0.5+1+2+4 s against
  retransmit-timeout=5s, as Libreswan does); an initiating pyswan then revives the
  connection once the peer is back.

    python tests/interop/lifecycle.py rekey --pyswan initiator --peer strongswan \\
        --workdir /tmp/x --expect-child --json /tmp/x/r.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netlab import (  # noqa: E402
    DAEMONS,
    SUITES,
    TIME_SCALE,
    Capture,
    Conn,
    Daemon,
    IkeView,
    Lab,
    LabError,
    NotReady,
    Packet,
    disagreements,
    expectation_failures,
    misdirected_responses,
)
from scenario import LABELS, PairResult  # noqa: E402

# per peer: Libreswan 4.10 cannot rekey with a PFS group other than the IKE SA's (netlab)
REKEY_SUITES = {"strongswan": "rekey-pfs", "libreswan": "rekey-pfs-ike-group"}
DPD_SUITE = "aesgcm-x25519"
DPD_DELAY, DPD_TIMEOUT = 1, 5  # seconds: pyswan dpddelay= / retransmit-timeout=


class StepFailed(AssertionError):
    """A step of the sequence went wrong; the following steps make no sense."""


class Session:
    """One lab with pyswan and one peer, and the bookkeeping of a lifecycle scenario."""

    def __init__(self, workdir: Path, pyswan_role: str, peer: str, suite: str, conn_kw: dict,
                 pyswan_kernel: str, timeout: float, peer_too: bool) -> None:  # fmt: skip
        self.initiator, self.responder = ("pyswan", peer) if pyswan_role == "initiator" else (peer, "pyswan")
        self.res = PairResult(self.initiator, self.responder, SUITES[suite].label, False)
        self.suite = SUITES[suite]
        self.conn_kw = conn_kw  # pyswan's settings, and the peer's too with peer_too
        self.peer_too = peer_too
        self.kernel = pyswan_kernel
        self.timeout = timeout
        self.start = time.monotonic()
        self.lab = Lab(workdir, tag=f"{self.initiator[:2]}{self.responder[:2]}")
        self.py: Daemon
        self.peer: Daemon
        self.init: Daemon
        self.resp: Daemon
        self.cap: Capture

    # -- bookkeeping
    def mark(self, step: str) -> None:
        self.res.timings[step] = round(time.monotonic() - self.start, 3)

    def who(self, d: Daemon) -> str:
        return f"{LABELS[d.kind]} ({'initiator' if d is self.init else 'responder'})"

    def fail(self, what: str) -> None:
        raise StepFailed(what)

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        try:
            self.lab.wait(what, predicate, timeout or self.timeout)
        except NotReady as e:
            self.fail(str(e))

    # -- setup
    def up(self, expect_child: bool) -> None:
        self.lab.build()
        base = Conn.between(self.lab.west, self.lab.east, self.suite)
        conn = replace(base, **self.conn_kw)
        conn_i = conn if self.initiator == "pyswan" or self.peer_too else base
        conn_r = conn if self.responder == "pyswan" or self.peer_too else base
        kw_i = {"kernel": self.kernel} if self.initiator == "pyswan" else {}
        kw_r = {"kernel": self.kernel} if self.responder == "pyswan" else {}
        self.resp = self.lab.start(DAEMONS[self.responder], self.lab.east, conn_r.mirrored(), **kw_r)
        self.init = self.lab.start(DAEMONS[self.initiator], self.lab.west, conn_i, **kw_i)
        self.py, self.peer = ((self.init, self.resp) if self.initiator == "pyswan"
                              else (self.resp, self.init))  # fmt: skip
        self.cap = Capture(self.lab, self.lab.west).start()
        self.mark("started")
        self.init.initiate()
        self.established(expect_child)
        self.mark("established")

    def established(self, expect_child: bool) -> tuple[IkeView, IkeView]:
        """Wait for one established IKE SA (and an installed Child SA) on both sides."""
        got: list[IkeView] = []

        def ready() -> bool:
            got[:] = []
            for d in (self.py, self.peer):
                vs = [v for v in d.all_views() if v.established]
                if len(vs) != 1 or (expect_child and not any(c.installed for c in vs[0].children)):
                    return False
                got.append(vs[0])
            return True

        self.wait("one established IKE SA" + (" with a Child SA" if expect_child else "")
                  + " on both sides", ready)  # fmt: skip
        return got[0], got[1]

    def answered_after(self, t0: float, spis: tuple[str, str] | None = None) -> list[Packet]:
        """IKE responses on the wire since wall-clock time t0 (for the SPI pair `spis`)."""
        return [p for p in self.cap.packets()
                if p.kind == "ike" and p.response and p.time >= t0 - 0.05
                and (spis is None or (p.spi_i, p.spi_r) == spis)]  # fmt: skip

    def close(self) -> None:
        if self.res.problems:
            self.res.report = self.lab.report()
        self.lab.close()
        self.res.seconds = time.monotonic() - self.start
        self.res.ok = not self.res.problems


@contextmanager
def session(workdir: Path, pyswan_role: str, peer: str, suite: str, conn_kw: dict,
            pyswan_kernel: str, timeout: float, keep_report: bool, peer_too: bool) -> Iterator[Session]:  # fmt: skip
    s = Session(workdir, pyswan_role, peer, suite, conn_kw, pyswan_kernel, timeout, peer_too)
    try:
        yield s
    except StepFailed as e:
        s.res.problems.append(str(e))
    except (LabError, NotReady, OSError) as e:
        s.res.problems.append(f"{type(e).__name__}: {e}")
    except Exception:  # noqa: BLE001 - a harness bug must still tear down and report
        s.res.problems.append("harness error:\n" + traceback.format_exc())
    finally:
        # every response goes back the way its request came (RFC 7296 2.11), all along
        wrong = misdirected_responses(s.cap.packets()) if hasattr(s, "cap") else []
        if wrong:
            s.res.problems.append(f"{len(wrong)} IKE responses not sent back the way their "
                                  f"request came, first: {wrong[0]}")  # fmt: skip
        if keep_report and not s.res.problems:
            s.res.report = s.lab.report()
        s.close()


def _spis(v: IkeView) -> tuple[str, str] | None:
    return (v.spi_i, v.spi_r) if v.spi_i and v.spi_r else None


def _child(v: IkeView) -> list:
    return [c for c in v.children if c.installed]


# ----------------------------------------------------------------------------- rekey


def _rekey_ike(s: Session, who: Daemon, expect_child: bool) -> str:
    """One IKE SA rekey started by `who`; returns a note."""
    before_py, before_peer = s.established(expect_child)
    kids_before = sorted((c.spi_in, c.spi_out) for c in _child(before_py))
    t0 = time.time()
    who.rekey_ike()
    views: dict[str, IkeView] = {}

    def settled() -> bool:
        vp, vq = s.py.all_views(), s.peer.all_views()
        if len(vp) != 1 or len(vq) != 1 or not (vp[0].established and vq[0].established):
            return False
        if vp[0].serial == before_py.serial:
            return False
        if (vq[0].serial and vq[0].serial == before_peer.serial) or (
                _spis(vq[0]) and _spis(vq[0]) == _spis(before_peer)):
            return False
        views.update(py=vp[0], peer=vq[0])
        return True

    s.wait(f"IKE SA rekeyed by {s.who(who)}: a new IKE SA and no old one on both sides", settled)
    vp, vq = views["py"], views["peer"]
    # the new SA on the wire: an exchange on a pair of SPIs not used before, answered
    old_pairs = {(p.spi_i, p.spi_r) for p in s.cap.packets() if p.kind == "ike" and p.time < t0}
    fresh: set[tuple[str, str]] = set()

    def on_wire() -> bool:
        fresh.update((p.spi_i, p.spi_r) for p in s.answered_after(t0)
                     if (p.spi_i, p.spi_r) not in old_pairs and p.exchange != "IKE_SA_INIT")  # fmt: skip
        return bool(fresh)

    s.wait("an answered exchange on the new IKE SA's SPIs on the wire", on_wire)
    problems = disagreements(vp, vq, check_children=expect_child)
    problems += expectation_failures(vp, s.suite) + expectation_failures(vq, s.suite)
    shown = _spis(vq) or _spis(vp)
    if shown and shown not in fresh:
        problems.append(f"new IKE SPIs {shown[0]}:{shown[1]} not in the answered exchanges on the "
                        f"wire after the rekey {sorted(fresh)}")  # fmt: skip
    if len(fresh) != 1:
        problems.append(f"after the rekey, exchanges on {len(fresh)} new SPI pairs: {sorted(fresh)}")
    if expect_child:
        for d, v in ((s.py, vp), (s.peer, vq)):
            kids = sorted((c.spi_in, c.spi_out) for c in _child(v))
            if d is s.py and kids != kids_before:
                problems.append(f"{s.who(d)}: the Child SA did not move unchanged to the new IKE SA "
                                f"({kids_before} -> {kids})")  # fmt: skip
    if problems:
        s.fail(f"IKE rekey by {s.who(who)}: " + "; ".join(problems))
    pair = next(iter(fresh))
    return (f"step: IKE rekey by {who.kind}: #{before_py.serial}->#{vp.serial} on pyswan, SPIs "
            f"{pair[0]}:{pair[1]}")


def _rekey_child(s: Session, who: Daemon) -> str:
    """One Child SA rekey with PFS started by `who`; returns a note."""
    before_py, _ = s.established(True)
    old = {x for c in _child(before_py) for x in (c.spi_in, c.spi_out)}
    ike_spis = None
    t0 = time.time()
    who.rekey_child()
    views: dict[str, IkeView] = {}

    def settled() -> bool:
        vp, vq = s.py.all_views(), s.peer.all_views()
        if len(vp) != 1 or len(vq) != 1:
            return False
        kp, kq = vp[0].children, vq[0].children
        if len(kp) != 1 or len(kq) != 1 or not (kp[0].installed and kq[0].installed):
            return False  # the old Child SA is still there (or the new one not yet)
        if {kp[0].spi_in, kp[0].spi_out} & old or {kq[0].spi_in, kq[0].spi_out} & old:
            return False
        views.update(py=vp[0], peer=vq[0])
        return True

    s.wait(f"Child SA rekeyed by {s.who(who)}: one new Child SA, the old one gone on both sides",
           settled)  # fmt: skip
    vp, vq = views["py"], views["peer"]
    problems = disagreements(vp, vq, check_children=True)
    problems += expectation_failures(vp, s.suite) + expectation_failures(vq, s.suite)
    for d, v in ((s.py, vp), (s.peer, vq)):
        c = v.children[0]
        if c.dh != s.suite.expect_pfs:
            problems.append(f"{s.who(d)}: rekeyed Child SA's algorithms {c.encr}/{c.integ or 'none'}/"
                            f"{c.dh or 'no PFS group'}, expected PFS group {s.suite.expect_pfs}")  # fmt: skip
    ike_spis = _spis(vq) or _spis(vp)
    ccsa = [p for p in s.answered_after(t0, ike_spis) if p.exchange == "CREATE_CHILD_SA"] \
        if ike_spis else [p for p in s.answered_after(t0) if p.exchange == "CREATE_CHILD_SA"]
    if not ccsa:
        problems.append("no answered CREATE_CHILD_SA on the IKE SA's SPIs on the wire")
    if problems:
        s.fail(f"Child rekey by {s.who(who)}: " + "; ".join(problems))
    c = vp.children[0]
    return f"step: Child rekey by {who.kind}: in={c.spi_in} out={c.spi_out} {c.encr}/{c.dh}"


def run_rekey(workdir: Path, pyswan_role: str, peer: str, *, expect_child: bool,
              pyswan_kernel: str = "xfrm", timeout: float = 20, keep_report: bool = False) -> PairResult:  # fmt: skip
    # pyswan (only) probes liveness every 2 s so the newest IKE SA shows on the wire even
    # when nothing else follows the rekey.  (Once, with both sides probing under a
    # loaded emulator, Libreswan 4.10 lost track of its message IDs and took pyswan's
    # retransmitted Child rekey request for a new one: "EXPECTATION FAILED:
    # ...responder.recv == ...responder.sent", "Add SA ...: File exists", TS_UNACCEPTABLE.)
    conn_kw = {"dpd_delay": 2, "dpd_timeout": 0}
    with session(workdir, pyswan_role, peer, REKEY_SUITES[peer], conn_kw, pyswan_kernel, timeout,
                 keep_report, peer_too=False) as s:  # fmt: skip
        s.res.expect_child = expect_child
        s.up(expect_child)
        notes = []
        for who in (s.py, s.peer):
            notes.append(_rekey_ike(s, who, expect_child))
            s.mark(f"IKE rekey by {who.kind}")
        if expect_child:
            for who in (s.py, s.peer):
                notes.append(_rekey_child(s, who))
                s.mark(f"Child rekey by {who.kind}")
            s.res.notes.append(f"IKE rekey x2 and Child rekey with PFS {s.suite.expect_pfs} x2, same SPIs "
                               "and algorithms on both sides, old SAs gone")  # fmt: skip
        else:
            s.res.notes.append("IKE rekey x2, same SPIs and algorithms on both sides, old SA gone; "
                               "Child rekey needs a kernel with ESP (qemu)")  # fmt: skip
        s.res.notes += notes
    return s.res


# ----------------------------------------------------------------------------- DPD / delete

# pyswan (as Libreswan 5): 'ESTABLISHED_IKE_SA: 5 second timeout exceeded after 3 retransmits.
# No response (or no acceptable response) to our IKEv2 message'
DEAD_LINE = re.compile(r"(?:timeout exceeded|max number of retransmissions).*No response")
REVIVAL_LINE = re.compile(r"revival attempt \d+ scheduled|must remain up per local policy")


def _log_lines_since(d: Daemon, n: int) -> list[str]:
    return [x for x in d.log_text().splitlines()[n:] if "| " not in x[:40]]


def _gone(s: Session, what: str) -> None:
    """Neither side has an IKE SA any more."""
    s.wait(f"no IKE SA on either side ({what})",
           lambda: not s.py.all_views() and not s.peer.all_views())  # fmt: skip


_DELETING = re.compile(r"initiating delete of connection's (?:IKE|Child) SA #(\d+)")


def _delete_by(s: Session, who: Daemon, expect_child: bool) -> str:
    """`who` takes the connection down; the IKE SA must be gone on both sides."""
    before_py, before_peer = s.established(expect_child)
    ours = {before_py.serial, *(int(c.name[1:]) for c in before_py.children if c.name[1:].isdigit())}
    mark = len(s.py.log_text().splitlines())
    peer_mark = len(s.peer.log_text().splitlines())
    who.down()

    def old_gone() -> bool:
        if any(v.serial == before_py.serial for v in s.py.all_views()):
            return False
        return not any((_spis(v) and _spis(v) == _spis(before_peer))
                       or (v.serial and v.serial == before_peer.serial) for v in s.peer.all_views())

    s.wait(f"the IKE SA gone on both sides after {s.who(who)} took it down", old_gone)
    lines = _log_lines_since(s.py, mark)
    # pyswan's down must delete what the connection had, not what came after it
    stray = [x for x in lines if (m := _DELETING.search(x)) and int(m.group(1)) not in ours]
    if stray:
        s.fail(f"{s.who(who)}'s down also deleted an SA set up after the command: "
               f"{_strip_time(stray[0])}")
    revived = [d.kind for d in (s.py, s.peer)
               if any(REVIVAL_LINE.search(x) or "supposed to remain up" in x
                      for x in _log_lines_since(d, mark if d is s.py else peer_mark))]  # fmt: skip
    s.mark(f"down by {who.kind}")
    if not any(v.established for v in s.init.all_views()):
        s.init.initiate()
    s.established(expect_child)
    return (f"by {who.kind} cleared both sides"
            + (f" ({', '.join(sorted(set(revived)))} revived it)" if revived else ""))


def run_dpd(workdir: Path, pyswan_role: str, peer: str, *, expect_child: bool,
            pyswan_kernel: str = "xfrm", timeout: float = 20, keep_report: bool = False) -> PairResult:  # fmt: skip
    conn_kw = {"dpd_delay": DPD_DELAY, "dpd_timeout": DPD_TIMEOUT}
    with session(workdir, pyswan_role, peer, DPD_SUITE, conn_kw, pyswan_kernel, timeout,
                 keep_report, peer_too=True) as s:  # fmt: skip
        s.res.expect_child = expect_child
        s.up(expect_child)
        res = s.res
        py_addr = s.py.host.seen_as

        # 1. liveness: pyswan's empty INFORMATIONAL requests answered by the peer
        t0 = time.time()
        s.wait("pyswan's liveness probe answered on the wire", lambda: any(
            p.exchange == "INFORMATIONAL" and p.dst == py_addr for p in s.answered_after(t0)))
        s.mark("liveness")

        # 2./3. pyswan, then the peer, takes the connection down: the SA goes on both sides
        # (a peer that must keep it up may set up a new one at once: Libreswan revives)
        notes = [_delete_by(s, d, expect_child) for d in (s.py, s.peer)]
        res.notes.append("delete " + "; ".join(notes))
        before_py, _ = s.established(expect_child)

        # 4. the peer dies: pyswan's probes go unanswered; it declares the peer dead
        mark = len(s.py.log_text().splitlines())
        killed = time.monotonic()
        s.peer.kill()
        dead: list[str] = []

        def declared() -> bool:
            dead[:] = [x for x in _log_lines_since(s.py, mark) if DEAD_LINE.search(x)]
            return bool(dead) and not any(v.established and v.serial == before_py.serial
                                          for v in s.py.all_views())  # fmt: skip

        s.wait(f"pyswan declaring the killed {s.peer.kind} dead",
               declared, timeout=DPD_DELAY + DPD_TIMEOUT + 10)  # fmt: skip
        after = time.monotonic() - killed
        res.notes.append(f"killed {s.peer.kind} declared dead by pyswan after {after:.1f}s "
                         f"(dpddelay={DPD_DELAY}s, retransmit-timeout={DPD_TIMEOUT}s): "
                         f"{res.stable_line(_strip_time(dead[0]))}")  # fmt: skip
        res.child_events = {s.who(s.py): [_strip_time(x) for x in dead]}
        s.mark("dead peer")

        # 5. the peer comes back: an initiating pyswan revives the connection
        if s.py is s.init:
            s.peer.restart()
            s.established(expect_child)
            lines = _log_lines_since(s.py, mark)
            if not any(REVIVAL_LINE.search(x) for x in lines):
                s.fail("pyswan re-established without logging a revival")
            res.notes.append("pyswan revived the connection once the peer was back")
            s.mark("revived")
    return s.res


def _strip_time(line: str) -> str:
    return re.sub(r"^(?:\w{3} \d+ )?[\d:.]+:? ", "", line).strip()


# ----------------------------------------------------------------------------- command

SCENARIOS = {"rekey": run_rekey, "dpd": run_dpd}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--pyswan", choices=["initiator", "responder"], required=True)
    ap.add_argument("--peer", choices=["strongswan", "libreswan"], required=True)
    ap.add_argument("--expect-child", action="store_true", help="the kernel holds Child SAs (ESP)")
    ap.add_argument("--pyswan-kernel", default="xfrm", choices=["memory", "xfrm", "auto"])
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--json", type=Path, help="write the PairResult here")
    ap.add_argument("--report", action="store_true", help="always include the logs")
    args = ap.parse_args(argv)
    res = SCENARIOS[args.scenario](
        args.workdir, args.pyswan, args.peer, expect_child=args.expect_child,
        pyswan_kernel=args.pyswan_kernel, timeout=args.timeout, keep_report=args.report,
    )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(asdict(res), indent=1))
    print(res.message() if not res.ok or args.report else res.summary())
    print(f"  timings: {res.timings}  (time scale {TIME_SCALE})")
    for n in res.notes:
        print(f"  note: {n}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
