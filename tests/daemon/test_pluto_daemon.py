"""pluto as a process: start-up, lock file, control socket, signals, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading

from pyswan.whack.protocol import HEADER, MAGIC, VERSION
from pyswan_testlib import run


def test_nofork_prints_initialized_and_writes_pid(pluto):
    pid_file = pluto.rundir / "pluto.pid"
    assert int(pid_file.read_text()) == pluto.proc.pid
    mode = stat.S_IMODE(os.stat(pluto.ctl).st_mode)
    assert stat.S_ISSOCK(os.stat(pluto.ctl).st_mode)
    assert mode == 0o600


def test_second_pluto_on_same_rundir_exits_10(pluto, pluto_factory):
    res = run("pluto", "--nofork", "--stderrlog", "--rundir", str(pluto.rundir), "--kernel", "memory")
    assert res.rc == 10
    assert f'lock file "{pluto.rundir}/pluto.pid" already exists' in res.err
    # the first daemon is unharmed
    assert pluto.whack("--briefstatus").rc == 0


def test_sigterm_removes_socket_and_pid_file(pluto):
    assert pluto.whack("--listen").rc == 0
    pluto.proc.send_signal(signal.SIGTERM)
    assert pluto.proc.wait(20) == 0
    assert not (pluto.rundir / "pluto.pid").exists()
    assert not os.path.exists(pluto.ctl)
    assert "shutting down" in pluto.logtext()


def test_whack_shutdown(pluto):
    res = pluto.whack("--shutdown")
    assert res.rc == 0
    assert "Pluto is shutting down" in res.out
    assert pluto.proc.wait(20) == 0
    assert not os.path.exists(pluto.ctl)


def test_sighup_suggests_listen(pluto):
    pluto.proc.send_signal(signal.SIGHUP)
    assert pluto.whack("--briefstatus").rc == 0
    assert 'perhaps you want "whack --listen"' in pluto.logtext()


def test_fork_mode_daemonizes(pluto_factory, tmp_path):
    p = pluto_factory("bg")
    argv = [a for a in p.argv if a != "--nofork"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert "Pluto initialized" not in res.stdout
    pid = int((p.rundir / "pluto.pid").read_text())
    try:
        for _ in range(100):
            if os.path.exists(p.ctl):
                break
            threading.Event().wait(0.05)
        assert p.whack("--briefstatus").rc == 0
    finally:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not (p.rundir / "pluto.pid").exists():
                break
            threading.Event().wait(0.05)
    assert not (p.rundir / "pluto.pid").exists()


def _raw_request(path: str, data: bytes) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_garbled_requests_get_rc_error_and_daemon_keeps_serving(pluto):
    bad_magic = HEADER.pack(b"XXXX", VERSION, 0, 0)
    assert _raw_request(pluto.ctl, bad_magic).startswith("050 ignoring message from whack with bad magic")
    runt = _raw_request(pluto.ctl, b"PSW")
    assert runt.startswith("050 ignoring runt message from whack: got 3 bytes")
    oversized = HEADER.pack(MAGIC, VERSION, 0, 1 << 30)
    assert _raw_request(pluto.ctl, oversized).startswith("050 ignoring oversized message")
    truncated = HEADER.pack(MAGIC, VERSION, 0, 100) + b"\x01\x00\x00"
    assert _raw_request(pluto.ctl, truncated).startswith("050 ignoring truncated message")
    garbage_body = b"\x09\x00\x00\x00\x02hi"
    reply = _raw_request(pluto.ctl, HEADER.pack(MAGIC, VERSION, 0, len(garbage_body)) + garbage_body)
    assert reply.startswith("050 unknown record type 9")
    # a client that connects and says nothing does not block others
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(pluto.ctl)
        res = pluto.whack("--status")
        assert res.rc == 0 and "Connection list:" in res.out
    assert pluto.proc.poll() is None


def test_200_concurrent_whacks_all_answered(pluto):
    procs = [
        subprocess.Popen([str(__import__("pyswan_testlib").BIN / "whack"), "--ctlsocket", pluto.ctl,
                          "--briefstatus"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(200)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(o.startswith("State Information: DDoS cookies not required") for o, _ in outs)


def test_whack_without_pluto_exits_33(tmp_path):
    res = run("whack", "--rundir", str(tmp_path), "--status")
    assert res.rc == 33
    assert res.err.strip() == f'whack: Pluto is not running (no "{tmp_path}/pluto.ctl")'
