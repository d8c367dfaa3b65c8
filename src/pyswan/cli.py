"""`ipsec`: the front end that dispatches to pluto, whack, auto and the 5.x shortcuts.

`ipsec whack ...`, `ipsec pluto ...`, `ipsec auto ...` and `ipsec addconn ...` pass their
arguments through untouched (whack's grammar is order-sensitive); the Libreswan 5.x
shortcuts (`ipsec up NAME`, `ipsec status`, ...) map onto whack requests.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable

import click

from . import VERSION_STRING

DEFAULT_RUNDIR = "/run/pluto"

# shortcut -> (whack option, takes a connection name: "required" | "optional" | None)
WHACK_SHORTCUTS: dict[str, tuple[str, str | None]] = {
    "up": ("--initiate", "required"),
    "initiate": ("--initiate", "required"),
    "down": ("--terminate", "required"),
    "terminate": ("--terminate", "required"),
    "delete": ("--delete", "required"),
    "route": ("--route", "required"),
    "unroute": ("--unroute", "required"),
    "status": ("--status", None),
    "briefstatus": ("--briefstatus", None),
    "globalstatus": ("--globalstatus", None),
    "shuntstatus": ("--shuntstatus", None),
    "fipsstatus": ("--fipsstatus", None),
    "fips": ("--fipsstatus", None),
    "showstates": ("--showstates", None),
    "statestatus": ("--showstates", None),
    "processstatus": ("--processstatus", None),
    "addresspoolstatus": ("--addresspoolstatus", None),
    "trafficstatus": ("--trafficstatus", "optional"),
    "traffic": ("--trafficstatus", "optional"),
    "connectionstatus": ("--connectionstatus", "optional"),
    "briefconnectionstatus": ("--briefconnectionstatus", "optional"),
    "listall": ("--listall", None),
    "listcacerts": ("--listcacerts", None),
    "listcerts": ("--listcerts", None),
    "listcrls": ("--listcrls", None),
    "listpubkeys": ("--listpubkeys", None),
    "checkpubkeys": ("--checkpubkeys", None),
    "purgeocsp": ("--purgeocsp", None),
    "rereadall": ("--rereadall", None),
    "rereadcerts": ("--rereadcerts", None),
    "rereadsecrets": ("--rereadsecrets", None),
    "secrets": ("--rereadsecrets", None),
    "fetchcrls": ("--fetchcrls", None),
    "crls": ("--fetchcrls", None),
    "listen": ("--listen", None),
    "ready": ("--listen", None),
    "unlisten": ("--unlisten", None),
    "shutdown": ("--shutdown", None),
    "stop": ("--shutdown", None),
}
ADD_SHORTCUTS = {"add", "replace", "start", "ondemand"}
HELP_TEXT = """\
Usage: ipsec [--rundir DIR | --ctlsocket FILE] [--config FILE] COMMAND [ARGS]

pyswan: Libreswan-compatible IKE daemon and tools.

Connections:  add|replace|start|ondemand NAME, up|down|delete|route|unroute NAME
Status:       status, briefstatus, globalstatus, trafficstatus [NAME],
              connectionstatus [NAME], briefconnectionstatus [NAME], showstates,
              shuntstatus, fipsstatus, processstatus, addresspoolstatus
Lists:        listall, listpubkeys, listcerts, listcacerts, listcrls, checkpubkeys
Control:      start, stop, restart, listen, unlisten, rereadsecrets, rereadall,
              fetchcrls, purgeocsp, shutdown, checkconfig
Programs:     pluto, whack, auto, addconn
Keys:         import FILE.p12, newhostkey, showhostkey
Other:        version, help, demo (two local daemons bring up an IKEv2 tunnel)
Global options: --rundir DIR, --ctlsocket FILE, --config FILE, --asynchronous,
                --remote-host IP, --dry-run|-n, --utc
"""


class Env:
    def __init__(self, rundir: str | None, ctlsocket: str | None, config: str | None,
                 asynchronous: bool, remote_host: str | None, dry_run: bool, utc: bool) -> None:
        self.rundir = rundir or os.environ.get("IPSEC_RUNDIR") or DEFAULT_RUNDIR
        self.ctlsocket = ctlsocket or os.path.join(self.rundir, "pluto.ctl")
        self.config_given = bool(config or os.environ.get("IPSEC_CONF"))
        self.config = config or os.environ.get("IPSEC_CONF") or "/etc/ipsec.conf"
        self.asynchronous = asynchronous
        self.remote_host = remote_host
        self.dry_run = dry_run
        self.utc = utc

    def run(self, argv: list[str], fn: Callable[[list[str]], int]) -> int:
        if self.dry_run:
            print(" ".join(shlex.quote(a) for a in argv))
            return 0
        return fn(argv[2:])


def _whack(env: Env, args: list[str]) -> int:
    from .whack.client import run

    if not any(a.split("=")[0] in ("--ctlsocket", "--ctlbase", "--rundir") for a in args):
        args = ["--ctlsocket", env.ctlsocket, *args]
    return env.run(["ipsec", "whack", *args], run)


def _addconn(env: Env, args: list[str]) -> int:
    from .auto.front import addconn_main

    if not any(a.split("=")[0] in ("--ctlsocket", "--ctlbase", "--rundir") for a in args):
        args = ["--ctlsocket", env.ctlsocket, *args]
    if not any(a.split("=")[0] == "--config" for a in args):
        args = ["--config", env.config, *args]
    return env.run(["ipsec", "addconn", *args], addconn_main)


def _usage(cmd: str, arg: str) -> int:
    sys.stderr.write(f"Usage: ipsec {cmd} {arg}\n")
    return 2


def _shortcut(env: Env, cmd: str, args: list[str]) -> int:
    option, takes = WHACK_SHORTCUTS[cmd]
    names: list[str] = []
    extra: list[str] = []
    it = iter(args)
    for a in it:
        if a in ("--asynchronous", "--async", "--bg"):
            env.asynchronous = True
        elif a == "--remote-host":
            env.remote_host = next(it, None)
        elif a == "--utc":
            env.utc = True
        elif a.startswith("-"):
            sys.stderr.write(f'ipsec {cmd}: unknown option "{a}"\n')
            return 2
        else:
            names.append(a)
    if takes == "required" and len(names) != 1:
        return _usage(cmd, "[--asynchronous] connectionname" if cmd in ("up", "initiate") else "connectionname")
    if takes is None and names:
        return _usage(cmd, "")
    if takes == "optional" and len(names) > 1:
        return _usage(cmd, "[connectionname]")
    if names:
        extra += ["--name", names[0]]
    if env.asynchronous and option == "--initiate":
        extra.append("--asynchronous")
    if env.remote_host and option == "--initiate":
        extra += ["--remote-host", env.remote_host]
    if env.utc and option.startswith("--list"):
        extra.append("--utc")
    return _whack(env, [*extra, option])


def _add_family(env: Env, cmd: str, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    opts = [a for a in args if a.startswith("-")]
    if cmd == "start" and not names:
        return _start_daemon(env, opts)
    if len(names) != 1:
        return _usage(cmd, "connectionname")
    status = _addconn(env, [*opts, names[0]])
    if status:
        return status
    if cmd == "start":
        return _shortcut(env, "up", names)
    if cmd == "ondemand":
        return _shortcut(env, "route", names)
    return status


def _start_daemon(env: Env, opts: list[str]) -> int:
    argv = ["ipsec", "pluto", "--config", env.config, "--rundir", env.rundir, *opts]
    if env.dry_run:
        print(" ".join(shlex.quote(a) for a in argv))
        return 0
    from .pluto.main import main as pluto_main

    pid = os.fork()
    if pid == 0:
        try:
            pluto_main(argv[2:])
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _restart(env: Env, args: list[str]) -> int:
    _shortcut(env, "stop", [])
    for _ in range(100):
        if not os.path.exists(os.path.join(env.rundir, "pluto.pid")):
            break
        time.sleep(0.1)
    return _start_daemon(env, args)


def _checkconfig(env: Env, args: list[str]) -> int:
    return _addconn(env, [*args, "--checkconfig"])


class IpsecGroup(click.Group):
    """Resolves every `ipsec` sub-command to a pass-through command taking raw args."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({"pluto", "whack", "auto", "addconn", "restart", "checkconfig",
                       "version", "help", "demo", "import", "newhostkey", "showhostkey", *WHACK_SHORTCUTS, *ADD_SHORTCUTS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.list_commands(ctx):
            return None

        @click.command(name=name, add_help_option=False,
                       context_settings={"ignore_unknown_options": True,
                                         "allow_interspersed_args": False})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        @click.pass_obj
        def sub(env: Env, args: tuple[str, ...]) -> None:
            sys.exit(dispatch(env, name, list(args)))

        return sub

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        cmd = self.get_command(ctx, args[0])
        if cmd is None:
            sys.stderr.write(f'unknown IPsec command "{args[0]}" ("ipsec help" for list)\n')
            sys.exit(2)
        return args[0], cmd, args[1:]


def dispatch(env: Env, name: str, args: list[str]) -> int:
    if name == "pluto":
        from .pluto.main import main as pluto_main

        if env.dry_run:
            print(" ".join(shlex.quote(a) for a in ["ipsec", "pluto", *args]))
            return 0
        pluto_main(args)
        return 0
    if name == "whack":
        return _whack(env, args)
    if name == "auto":
        from .auto.front import main as auto_main

        extra = []
        if not any(a.split("=")[0] in ("--ctlsocket", "--ctlbase", "--rundir") for a in args):
            extra += ["--ctlsocket", env.ctlsocket]
        if env.config_given and not any(a.split("=")[0] == "--config" for a in args):
            extra += ["--config", env.config]
        return auto_main([*extra, *args])
    if name == "addconn":
        return _addconn(env, args)
    if name in ADD_SHORTCUTS:
        return _add_family(env, name, args)
    if name == "restart":
        return _restart(env, args)
    if name == "checkconfig":
        return _checkconfig(env, args)
    if name in ("import", "newhostkey", "showhostkey"):
        from .auto import importcmd

        fn = {"import": importcmd.main, "newhostkey": importcmd.newhostkey_main,
              "showhostkey": importcmd.showhostkey_main}[name]
        return fn(args)
    if name == "demo":
        from .demo import main as demo_main

        return demo_main(args)
    if name == "version":
        print(VERSION_STRING)
        return 0
    if name == "help":
        sys.stdout.write(HELP_TEXT)
        return 0
    return _shortcut(env, name, args)


@click.group(cls=IpsecGroup, invoke_without_command=True, add_help_option=False,
             context_settings={"max_content_width": 100})
@click.option("--rundir", metavar="DIR")
@click.option("--ctlsocket", "--ctlbase", "ctlsocket", metavar="FILE")
@click.option("--config", metavar="FILE")
@click.option("--asynchronous", "--async", "asynchronous", is_flag=True)
@click.option("--remote-host", metavar="IP")
@click.option("--dry-run", "-n", "dry_run", is_flag=True)
@click.option("--utc", is_flag=True)
@click.option("--help", "show_help", is_flag=True)
@click.option("--version", "show_version", is_flag=True)
@click.option("--directory", "show_directory", is_flag=True, hidden=True)
@click.pass_context
def ipsec(ctx: click.Context, rundir: str | None, ctlsocket: str | None, config: str | None,
          asynchronous: bool, remote_host: str | None, dry_run: bool, utc: bool,
          show_help: bool, show_version: bool, show_directory: bool) -> None:
    if rundir and ctlsocket:
        raise click.UsageError("--rundir and --ctlsocket are mutually exclusive")
    ctx.obj = Env(rundir, ctlsocket, config, asynchronous, remote_host, dry_run, utc)
    if show_version:
        click.echo(VERSION_STRING)
        ctx.exit(0)
    if show_directory:
        click.echo(os.path.dirname(os.path.abspath(__file__)))
        ctx.exit(0)
    if show_help or ctx.invoked_subcommand is None:
        click.echo(HELP_TEXT, nl=False)
        ctx.exit(0 if show_help else 2)


def main(argv: list[str] | None = None) -> None:
    ipsec.main(args=argv, prog_name="ipsec")


if __name__ == "__main__":
    main()
