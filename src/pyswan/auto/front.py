"""`ipsec auto`: ipsec_auto(8) operations, each turned into addconn/whack steps.

`--showonly` prints the steps, one per line, as runnable `ipsec` commands instead of
running them (the 4.x front end's behaviour).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field

from ..whack import rc
from ..whack.client import CTL_NAME, DEFAULT_RUNDIR
from ..whack.client import run as whack_run
from . import addconn

NAMED_OPS = ("up", "down", "add", "delete", "replace", "route", "unroute", "start", "ondemand",
             "rotatecert")
PLAIN_OPS = ("checkpubkeys", "fetchcrls", "listall", "listcacerts", "listcerts", "listcrls",
             "listpubkeys", "purgeocsp", "ready", "rereadall", "rereadcerts", "rereadcrls",
             "rereadsecrets", "status", "checkconfig")

USAGE = """\
Usage: ipsec auto [--showonly] [--asynchronous] [--verbose] [--config FILE]
                  [--ctlsocket FILE | --rundir DIR] [--remote-host IP] [--utc]
                  --add|--delete|--replace|--start|--up|--down|--route|--unroute|--ondemand NAME
       ipsec auto [--showonly] [--ctlsocket FILE]
                  --status|--ready|--rereadsecrets|--rereadcerts|--rereadall|--listall
                  |--listpubkeys|--listcerts|--listcacerts|--listcrls|--checkpubkeys
                  |--fetchcrls|--purgeocsp|--checkconfig
"""


class AutoUsage(Exception):
    pass


@dataclass
class AutoArgs:
    op: str = ""
    name: str | None = None
    showonly: bool = False
    asynchronous: bool = False
    verbose: bool = False
    utc: bool = False
    config: str | None = None
    ctlsocket: str | None = None
    rundir: str | None = None
    remote_host: str | None = None
    extra: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> AutoArgs:
    a = AutoArgs()
    it = iter(argv)
    positional: list[str] = []
    for tok in it:
        if tok in ("--help", "-h"):
            a.op = "help"
            continue
        if tok == "--version":
            a.op = "version"
            continue
        if tok == "--":
            positional.extend(it)
            break
        if tok.startswith("--"):
            word, eq, val = tok[2:].partition("=")

            def value(eq: str = eq, val: str = val, word: str = word) -> str:
                if eq:
                    return val
                try:
                    return next(it)
                except StopIteration:
                    raise AutoUsage(f'option "--{word}" requires an argument') from None

            if word in ("showonly", "show"):
                a.showonly = a.showonly or word == "showonly"
            elif word in ("asynchronous", "async"):
                a.asynchronous = True
            elif word == "verbose":
                a.verbose = True
            elif word == "utc":
                a.utc = True
            elif word == "config":
                a.config = value()
            elif word in ("ctlsocket", "ctlbase"):
                a.ctlsocket = value()
            elif word == "rundir":
                a.rundir = value()
            elif word == "remote-host":
                a.remote_host = value()
            elif word in NAMED_OPS or word in PLAIN_OPS:
                if a.op:
                    raise AutoUsage(f'only one operation allowed ("--{a.op}" and "--{word}")')
                a.op = word
            else:
                raise AutoUsage(f'unknown option "{tok}"')
        else:
            positional.append(tok)
    if a.op in ("help", "version"):
        return a
    if not a.op:
        # obsolete order: `ipsec auto NAME up` or `ipsec auto status`
        if len(positional) == 2 and positional[1] in NAMED_OPS:
            sys.stderr.write("ipsec auto: warning: obsolete command syntax used\n")
            a.op, positional = positional[1], positional[:1]
        elif len(positional) == 1 and positional[0] in PLAIN_OPS:
            sys.stderr.write("ipsec auto: warning: obsolete command syntax used\n")
            a.op, positional = positional[0], []
        else:
            raise AutoUsage("no operation specified")
    if a.op in NAMED_OPS:
        if len(positional) != 1:
            raise AutoUsage(f"--{a.op} needs exactly one connection name")
        a.name = positional[0]
    elif positional:
        raise AutoUsage(f"--{a.op} takes no connection name")
    if a.ctlsocket and a.rundir:
        raise AutoUsage("--ctlsocket and --rundir are mutually exclusive")
    return a


def steps(a: AutoArgs) -> list[list[str]]:
    """The addconn/whack command lines an operation runs, as Libreswan's front end does."""
    ctl = a.ctlsocket or f"{a.rundir or DEFAULT_RUNDIR}/{CTL_NAME}"
    c = ["--ctlsocket", ctl]
    addconn_cmd = ["ipsec", "addconn", *c, *(["--verbose"] if a.verbose else []),
                   *(["--config", a.config] if a.config else []), a.name or ""]
    whack = ["ipsec", "whack", *c]
    name = ["--name", a.name or ""]
    utc = ["--utc"] if a.utc else []
    asyn = ["--asynchronous"] if a.asynchronous else []
    remote = ["--remote-host", a.remote_host] if a.remote_host else []
    op = a.op
    if op == "add":
        return [addconn_cmd]
    if op == "up":
        return [[*whack, *asyn, *name, "--initiate", *remote]]
    if op == "start":
        return [addconn_cmd, [*whack, *asyn, *name, "--initiate", *remote]]
    if op == "down":
        return [[*whack, *name, "--terminate"]]
    if op == "delete":
        return [[*whack, *name, "--delete"]]
    if op == "replace":
        return [[*whack, *name, "--delete"], addconn_cmd]
    if op == "route":
        return [[*whack, *name, "--route"]]
    if op == "ondemand":
        return [addconn_cmd, [*whack, *name, "--route"]]
    if op == "unroute":
        return [[*whack, *name, "--unroute"]]
    if op == "status":
        return [[*whack, "--status"]]
    if op == "ready":
        return [[*whack, "--listen"]]
    if op in ("rereadsecrets", "rereadcerts", "rereadall", "fetchcrls", "purgeocsp"):
        return [[*whack, f"--{op}"]]
    if op in ("listpubkeys", "checkpubkeys", "listcerts", "listcacerts", "listcrls", "listall"):
        return [[*whack, *utc, f"--{op}"]]
    if op == "checkconfig":
        return [["ipsec", "addconn", *(["--config", a.config] if a.config else []), "--checkconfig"]]
    if op == "rotatecert":
        return [addconn_cmd]
    raise AutoUsage(f"unsupported operation --{op}")


def run_step(argv: list[str]) -> int:
    """Run one step in-process (no fork/exec of another interpreter)."""
    prog, *rest = argv[1:]
    if prog == "whack":
        return whack_run(rest)
    if prog == "addconn":
        return addconn_main(rest)
    raise AssertionError(prog)


def main(argv: list[str]) -> int:
    try:
        a = parse(argv)
    except AutoUsage as e:
        sys.stderr.write(f"ipsec auto: {e}\n{USAGE}")
        return 2
    if a.op == "help":
        sys.stdout.write(USAGE)
        return 0
    if a.op == "version":
        from .. import VERSION_STRING

        print(VERSION_STRING)
        return 0
    if a.op == "rereadcrls":
        print("ipsec auto --rereadcrls has been obsoleted - please see: ipsec crls")
        return 1
    status = 0
    for step in steps(a):
        if a.showonly:
            print(" ".join(shlex.quote(s) for s in step))
            continue
        code = run_step(step)
        if code and not status:
            status = code
    return status


# -- ipsec addconn ------------------------------------------------------------------------
ADDCONN_USAGE = """\
Usage: ipsec addconn [--config file] [--ctlsocket socketfile] [--verbose] [--checkconfig]
                     [--autoall] [--listall] [--listadd] [--listroute] [--liststart]
                     [--listignore] [--configsetup[=KEY]] [--varprefix prefix] [--noexport]
                     names
"""


def addconn_main(argv: list[str]) -> int:
    config = ctl = None
    rundir = None
    flags: set[str] = set()
    names: list[str] = []
    varprefix = ""
    setup_key: str | None = None
    it = iter(argv)
    for tok in it:
        word, eq, val = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
        if not tok.startswith("--"):
            names.append(tok)
        elif word in ("config", "ctlsocket", "ctlbase", "rundir", "varprefix", "name"):
            try:
                v = val if eq else next(it)
            except StopIteration:
                sys.stderr.write(ADDCONN_USAGE)
                return addconn.EXIT_USAGE
            if word == "config":
                config = v
            elif word == "rundir":
                rundir = v
            elif word == "varprefix":
                varprefix = v
            elif word == "name":
                names.append(v)
            else:
                ctl = v
        elif word == "configsetup":
            flags.add(word)
            setup_key = val or None
        elif word in ("verbose", "debug", "quiet", "checkconfig", "autoall", "addall", "listall",
                      "listadd", "listroute", "liststart", "listignore", "noexport", "liststack",
                      "defaultroute", "defaultroutenexthop"):
            flags.add("autoall" if word == "addall" else word)
        elif word == "help":
            sys.stdout.write(ADDCONN_USAGE)
            return 0
        else:
            sys.stderr.write(f"addconn: unrecognized option '{tok}'\n{ADDCONN_USAGE}")
            return addconn.EXIT_USAGE
    err = addconn._stderr
    if "verbose" in flags:
        err(f"opening file: {addconn.config_path(config)}")
    if "checkconfig" in flags:
        from .checkconfig import check

        problems = check(addconn.config_path(config))
        for pr in problems:
            err(str(pr))
        return addconn.EXIT_CONFIG if any(getattr(pr, "severity", "error") == "error" for pr in problems) else 0
    cfg = addconn.load(config, err)
    if cfg is None:
        return addconn.EXIT_CONFIG
    if "configsetup" in flags:
        return _print_setup(cfg, setup_key, varprefix, "noexport" in flags)
    for which in ("listall", "listadd", "listroute", "liststart", "listignore"):
        if which in flags:
            print(addconn.list_by_auto(cfg, which[4:]))
            return 0
    ctl_path = ctl or f"{rundir or DEFAULT_RUNDIR}/{CTL_NAME}"
    emit = _emit_quiet if "quiet" in flags else _emit
    if "autoall" in flags:
        return addconn.autoall(cfg, ctl_path, emit, err)
    if not names:
        sys.stderr.write(ADDCONN_USAGE)
        return addconn.EXIT_USAGE
    return addconn.add_conns(cfg, names, ctl_path, emit, err)


def _emit(code: int, text: str) -> None:
    print(text)


def _emit_quiet(code: int, text: str) -> None:
    if rc.is_error(code):
        print(text)


def _print_setup(cfg, key: str | None, prefix: str, noexport: bool) -> int:  # type: ignore[no-untyped-def]
    from .extract import ConnError, extract_setup

    try:
        setup = extract_setup(cfg.setup_pairs())
    except ConnError as e:
        sys.stderr.write(f"{e}\n")
        return addconn.EXIT_CONFIG
    from .keywords import SETUP_KEYWORDS

    names = [key] if key else sorted(SETUP_KEYWORDS)
    for kw in names:
        try:
            value = setup.get(kw)
        except AttributeError:
            sys.stderr.write(f"unknown config setup keyword '{kw}'\n")
            return addconn.EXIT_USAGE
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if value is None:
            continue
        if key:
            print(value)
        else:
            var = prefix + kw.replace("-", "_")
            print(f"{'' if noexport else 'export '}{var}={shlex.quote(str(value))}")
    return 0
