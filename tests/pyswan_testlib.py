"""Test helpers: real pluto daemons, real whack/ipsec processes.

Imported as `pyswan_testlib` (a unique name: several test directories have a conftest.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "libreswan-testing"


def free_udp_port(addr: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class Cmd:
    """The result of running a command: exit status and output."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def __repr__(self) -> str:
        return f"Cmd(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def run(*argv: str, timeout: float = 60, input: str | None = None, env: dict | None = None) -> Cmd:
    exe = str(BIN / argv[0]) if (BIN / argv[0]).exists() else argv[0]
    proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                          input=input, env=env)
    return Cmd(proc)


class Pluto:
    """A real `pluto --nofork` process with its own rundir and ports."""

    def __init__(self, rundir: Path, *, addr: str = "127.0.0.1", ikeport: int | None = None,
                 natport: int | None = None, extra: list[str] | None = None, listen_addr: bool = True,
                 kernel: str = "memory", secrets: str | None = None) -> None:
        self.rundir = rundir
        self.addr = addr
        self.ikeport = ikeport or free_udp_port(addr)
        self.natport = natport or free_udp_port(addr)
        self.ctl = str(rundir / "pluto.ctl")
        self.log = rundir / "pluto.log"
        secretsfile = rundir / "ipsec.secrets"
        if secrets is not None:
            secretsfile.write_text(secrets)
            secretsfile.chmod(0o600)
        argv = [str(BIN / "pluto"), "--nofork", "--logfile", str(self.log), "--rundir", str(rundir),
                "--ikeport", str(self.ikeport), "--natikeport", str(self.natport),
                "--kernel", kernel, "--secretsfile", str(secretsfile)]
        if listen_addr:
            argv += ["--listen", addr]
        argv += extra or []
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20) -> Pluto:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if line.strip() != "Pluto initialized":
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"pluto did not start: {line!r} {err!r} {self.logtext()}")
        assert time.monotonic() < deadline
        return self

    def whack(self, *args: str, timeout: float = 60, input: str | None = None) -> Cmd:
        return run("whack", "--ctlsocket", self.ctl, *args, timeout=timeout, input=input)

    def ipsec(self, *args: str, timeout: float = 60) -> Cmd:
        return run("ipsec", "--ctlsocket", self.ctl, *args, timeout=timeout)

    def logtext(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        return self.proc.returncode


def needs_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"Libreswan test corpus not found at {CORPUS}")
    return CORPUS
