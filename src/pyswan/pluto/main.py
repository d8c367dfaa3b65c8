"""`pluto`: command line, lock file, daemon fork, then the asyncio daemon.

Exit status as pluto(8): 0 all is well so far, 1 something was wrong, 10 the lock file
already exists.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import click

from .. import VERSION_STRING

DEFAULT_RUNDIR = "/run/pluto"
EXIT_OK, EXIT_FAIL, EXIT_LOCKED = 0, 1, 10


@dataclass
class PlutoOptions:
    rundir: str = DEFAULT_RUNDIR
    ctlsocket: str | None = None
    nofork: bool = False
    stderrlog: bool = False
    logfile: str | None = None
    logtime: bool = True
    logappend: bool = True
    secretsfile: str = "/etc/ipsec.secrets"
    config: str | None = None
    ikeport: int = 500
    natikeport: int = 4500
    interfaces: list[str] = field(default_factory=list)
    listen: str | None = None
    debug: set[str] = field(default_factory=set)
    uniqueids: bool = True
    force_busy: bool = False
    nhelpers: int = -1
    ipsecdir: str = "/etc/ipsec.d"
    nssdir: str = "/var/lib/ipsec/nss"
    kernel: str = "auto"
    ikev1_policy: str = "drop"
    keep_alive: int = 20
    ike_socket_bufsize: int = 0
    #: `config setup` as extracted from --config, for `--status`
    setup: object | None = None
    #: the parsed --config file (its conns are loaded after start-up)
    config_file: object | None = None
    #: which options came from the command line (they override config setup)
    given: set[str] = field(default_factory=set)

    @property
    def ctl_path(self) -> str:
        return self.ctlsocket or os.path.join(self.rundir, "pluto.ctl")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.rundir, "pluto.pid")


def _fail(message: str, code: int = EXIT_FAIL) -> None:
    sys.stderr.write(f"pluto: {message}\n")
    sys.exit(code)


def _lock(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o644)
    except FileExistsError:
        _fail(f'FATAL ERROR: lock file "{path}" already exists', EXIT_LOCKED)
    except OSError as e:
        _fail(f'FATAL ERROR: unable to create lock file "{path}" ({e.strerror})', EXIT_FAIL)
    raise AssertionError("unreachable")


def _write_pid(fd: int, pid: int) -> None:
    os.write(fd, f"{pid}\n".encode())
    os.close(fd)


@click.command(context_settings={"help_option_names": ["--help"], "max_content_width": 100})
@click.version_option(VERSION_STRING, "--version", message="%(version)s")
@click.option("--nofork", is_flag=True, help='Do not fork; print "Pluto initialized" when ready.')
@click.option("--stderrlog", is_flag=True, help="Log to stderr instead of syslog.")
@click.option("--logfile", metavar="FILE", help="Log to FILE instead of syslog.")
@click.option("--log-no-time", "log_no_time", is_flag=True, help="Omit timestamps from log lines.")
@click.option("--log-no-append", "log_no_append", is_flag=True, help="Truncate the log file.")
@click.option("--rundir", metavar="DIR", help="Directory of pluto.ctl and pluto.pid [/run/pluto].")
@click.option("--ctlsocket", "--ctlbase", "ctlsocket", metavar="PATH", help="Control socket path.")
@click.option("--secretsfile", metavar="GLOB", help="Secrets file(s) [/etc/ipsec.secrets].")
@click.option("--config", metavar="FILE", help="Read `config setup` (and conns) from FILE.")
@click.option("--ikeport", type=click.IntRange(1, 65535), help="IKE UDP port [500].")
@click.option("--natikeport", type=click.IntRange(1, 65535), help="NAT-T UDP port [4500].")
@click.option("--interface", "interfaces", multiple=True, metavar="NAME", help="Only this interface (repeatable).")
@click.option("--listen", metavar="ADDR", help="Only this address.")
@click.option("--debug", "debug", multiple=True, metavar="CLASS", help="Enable a debug class (repeatable).")
@click.option("--no-debug", "no_debug", multiple=True, metavar="CLASS", help="Disable a debug class.")
@click.option("--debug-none", is_flag=True, help="Disable all debugging.")
@click.option("--debug-all", is_flag=True, help="Enable all debugging.")
@click.option("--uniqueids/--no-uniqueids", default=None, help="Replace older IKE SAs of the same peer ID.")
@click.option("--force-busy", is_flag=True, help="Require IKEv2 cookies (DDoS busy mode).")
@click.option("--nhelpers", type=click.IntRange(-1, 64), help="Crypto helper count [-1 = CPUs-1].")
@click.option("--ipsecdir", metavar="DIR", help="Certificate and key store [/etc/ipsec.d].")
@click.option("--nssdir", metavar="DIR", help="Key/cert store directory (accepted for compatibility).")
@click.option("--kernel", type=click.Choice(["auto", "xfrm", "memory"]), help="Kernel interface [auto].")
@click.option("--keep-alive", "keep_alive", type=click.IntRange(0, 86400), help="NAT-T keepalive seconds.")
@click.option("--ike-socket-bufsize", type=click.IntRange(0, 1 << 30), help="IKE socket buffer size.")
def cli(**kw: object) -> None:
    """pluto: the IPsec IKE keying daemon (pyswan)."""
    opts = PlutoOptions()
    simple = ("rundir", "ctlsocket", "logfile", "secretsfile", "config", "ikeport", "natikeport",
              "listen", "nhelpers", "ipsecdir", "nssdir", "kernel", "keep_alive", "ike_socket_bufsize")
    for name in simple:
        if kw.get(name) is not None:
            setattr(opts, name, kw[name])
            opts.given.add(name)
    opts.nofork = bool(kw["nofork"])
    opts.stderrlog = bool(kw["stderrlog"])
    if kw["stderrlog"]:
        opts.given.add("stderrlog")
    if kw["log_no_time"]:
        opts.logtime = False
        opts.given.add("logtime")
    if kw["log_no_append"]:
        opts.logappend = False
        opts.given.add("logappend")
    opts.interfaces = list(kw["interfaces"])  # type: ignore[arg-type]
    if kw["uniqueids"] is not None:
        opts.uniqueids = bool(kw["uniqueids"])
        opts.given.add("uniqueids")
    opts.force_busy = bool(kw["force_busy"])
    from .debugopts import OptionError, apply_debug

    try:
        dbg: set[str] = set()
        if kw["debug_all"]:
            dbg = apply_debug(dbg, "all")
        for spec in kw["debug"]:  # type: ignore[union-attr]
            dbg = apply_debug(dbg, str(spec))
        for spec in kw["no_debug"]:  # type: ignore[union-attr]
            dbg = apply_debug(dbg, str(spec), enable=False)
        if kw["debug_none"]:
            dbg = set()
    except OptionError as e:
        _fail(str(e))
    if kw["debug"] or kw["debug_all"] or kw["debug_none"] or kw["no_debug"]:
        opts.given.add("debug")
    opts.debug = dbg
    start(opts)


def start(opts: PlutoOptions) -> None:
    if opts.config:
        from .setup import SetupError, apply_config_setup

        try:
            apply_config_setup(opts)
        except SetupError as e:
            _fail(str(e))
    try:
        os.makedirs(opts.rundir, mode=0o755, exist_ok=True)
    except OSError as e:
        _fail(f'FATAL ERROR: cannot create rundir "{opts.rundir}" ({e.strerror})')
    lock_fd = _lock(opts.pid_path)
    if not opts.nofork:
        pid = os.fork()
        if pid:
            _write_pid(lock_fd, pid)
            os._exit(EXIT_OK)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        if not opts.stderrlog:
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
    else:
        _write_pid(lock_fd, os.getpid())
    from .daemon import run_daemon

    try:
        code = run_daemon(opts)
    finally:
        try:
            os.unlink(opts.pid_path)
        except OSError:
            pass
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="pluto", standalone_mode=True)


if __name__ == "__main__":
    main()
