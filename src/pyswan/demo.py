"""`ipsec demo`: two pluto daemons on this host bring up an IKEv2 tunnel (no root needed).

West listens on 127.0.0.1 and east on 127.0.0.2 (both on lo, same UDP port); each reads
an embedded ipsec.conf/ipsec.secrets written to a temporary directory and uses the
in-memory kernel. West initiates with `ipsec up`, both sides print their state, and the
daemons are shut down. The exit status is 0 only when the tunnel came up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONF = """\
# pyswan demo: {me} ({addr})
config setup
\tlogfile={logfile}
\tlogappend=no
\tplutodebug=none

conn demo
\tleft=127.0.0.1
\tleftid=@west
\tleftsubnet=10.1.0.0/24
\tright=127.0.0.2
\trightid=@east
\trightsubnet=10.2.0.0/24
\tauthby=secret
\tike=aes_gcm256-sha2_256;dh31
\tesp=aes_gcm256
\tauto=add
"""
SECRETS = '@west @east : PSK "pyswan demo shared secret, not for production use"\n'


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    keep = "--keep" in (argv or [])
    base = Path(tempfile.mkdtemp(prefix="pyswan-demo-"))
    port, natport = _free_port(), _free_port()
    daemons: dict[str, subprocess.Popen[str]] = {}
    status = 1
    try:
        for me, addr in (("west", "127.0.0.1"), ("east", "127.0.0.2")):
            d = base / me
            d.mkdir()
            (d / "ipsec.conf").write_text(CONF.format(me=me, addr=addr, logfile=d / "pluto.log"))
            (d / "ipsec.secrets").write_text(SECRETS)
            os.chmod(d / "ipsec.secrets", 0o600)
            argv_p = [_bin("pluto"), "--nofork", "--config", str(d / "ipsec.conf"),
                      "--secretsfile", str(d / "ipsec.secrets"), "--rundir", str(d),
                      "--ikeport", str(port), "--natikeport", str(natport), "--listen", addr,
                      "--kernel", "memory"]
            _say(f"$ {' '.join(argv_p)}")
            proc = subprocess.Popen(argv_p, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            daemons[me] = proc
            line = proc.stdout.readline() if proc.stdout else ""
            if line.strip() != "Pluto initialized":
                _say(f"{me}: pluto failed to start: {line.strip()}")
                return 1
            _say(f"{me}: {line.strip()}")
        # pluto --config adds the conns in the background: wait until east has it
        for _ in range(100):
            res = _ipsec(base / "east", "connectionstatus", "demo", quiet=True)
            if res.returncode == 0 and res.stdout:
                break
            time.sleep(0.05)
        up = _ipsec(base / "west", "up", "demo")
        for me in ("west", "east"):
            _ipsec(base / me, "showstates")
            _ipsec(base / me, "trafficstatus")
        status = up.returncode
        _say("tunnel is up" if status == 0 else f"tunnel failed (whack exit status {status})")
    finally:
        for me, proc in daemons.items():
            if proc.poll() is None:
                _ipsec(base / me, "shutdown", quiet=True)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if proc.stdout:
                proc.stdout.close()
        if keep:
            _say(f"logs kept in {base}")
        else:
            subprocess.run(["rm", "-rf", str(base)], check=False)
    return status


def _ipsec(rundir: Path, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [_bin("ipsec"), "--rundir", str(rundir), *args]
    if not quiet:
        _say(f"$ ipsec --rundir {rundir.name} {' '.join(args)}")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if not quiet:
        sys.stdout.write(res.stdout)
        sys.stdout.write(res.stderr)
    return res


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
