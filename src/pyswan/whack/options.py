"""whack's order-sensitive command line.

whack uses getopt_long: `--opt value`, `--opt=value` and unique-prefix abbreviations all
work. Options before `--to` describe the left end of a connection, options after it the
right end; every end option may appear once per end. click cannot express this, so the
`ipsec` dispatcher hands whack's arguments to this table-driven parser unchanged.

The parser turns the command line into a list of `Request`s, sent in order: debug and
impair options, then a connection add (Libreswan's "connection form"), then the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import Request

# option kinds
GLOBAL = "global"  # consumed by whack itself
CMD = "cmd"  # a command
MOD = "mod"  # a modifier of the command (--name, --asynchronous, ...)
END = "end"  # per-end connection option
CONN = "conn"  # connection-wide option
AUTH = "auth"  # --psk/--rsasig/...: accumulate into authby=
TO = "to"
REPEAT = "repeat"  # --debug/--impair: repeatable, order kept


class WhackUsage(Exception):
    """A command-line problem found by whack itself (exit RC_WHACK_PROBLEM)."""


@dataclass(frozen=True)
class Opt:
    kind: str
    arg: bool = False
    key: str = ""  # keyword, command or modifier name
    value: str | None = None  # fixed value for flag options


def _end(key: str, value: str | None = None, arg: bool | None = None) -> Opt:
    return Opt(END, value is None if arg is None else arg, key, value)


def _conn(key: str, value: str | None = None) -> Opt:
    return Opt(CONN, value is None, key, value)


def _cmd(name: str, arg: bool = False) -> Opt:
    return Opt(CMD, arg, name)


OPTIONS: dict[str, Opt] = {
    # client-side
    "help": Opt(GLOBAL),
    "version": Opt(GLOBAL),
    "label": Opt(GLOBAL, True),
    "ctlsocket": Opt(GLOBAL, True),
    "ctlbase": Opt(GLOBAL, True),
    "rundir": Opt(GLOBAL, True),
    "magic": Opt(GLOBAL, True),
    "optionsfrom": Opt(GLOBAL, True),
    # modifiers
    "name": Opt(MOD, True, "name"),
    "asynchronous": Opt(MOD, False, "async"),
    "utc": Opt(MOD, False, "utc"),
    "leave-state": Opt(MOD, False, "leave-state"),
    "remote-host": Opt(MOD, True, "remote-host"),
    "xauthuser": Opt(MOD, True, "xauthuser"),
    "xauthname": Opt(MOD, True, "xauthuser"),
    "xauthpass": Opt(MOD, True, "xauthpass"),
    "keyid": Opt(MOD, True, "keyid"),
    "pubkeyrsa": Opt(MOD, True, "pubkeyrsa"),
    "addkey": Opt(MOD, False, "addkey"),
    "connalias": _conn("connalias"),
    # repeatable
    "debug": Opt(REPEAT, True, "debug"),
    "no-debug": Opt(REPEAT, True, "no-debug"),
    "debug-none": Opt(REPEAT, False, "debug", "none"),
    "debug-all": Opt(REPEAT, False, "debug", "all"),
    "impair": Opt(REPEAT, True, "impair"),
    "no-impair": Opt(REPEAT, True, "no-impair"),
    # status family
    "status": _cmd("status"),
    "globalstatus": _cmd("globalstatus"),
    "clearstats": _cmd("clearstats"),
    "trafficstatus": _cmd("trafficstatus"),
    "shuntstatus": _cmd("shuntstatus"),
    "addresspoolstatus": _cmd("addresspoolstatus"),
    "fipsstatus": _cmd("fipsstatus"),
    "briefstatus": _cmd("briefstatus"),
    "processstatus": _cmd("processstatus"),
    "showstates": _cmd("showstates"),
    "statestatus": _cmd("showstates"),
    "connectionstatus": _cmd("connectionstatus"),
    "briefconnectionstatus": _cmd("briefconnectionstatus"),
    # lists
    "listpubkeys": _cmd("listpubkeys"),
    "listcerts": _cmd("listcerts"),
    "listcacerts": _cmd("listcacerts"),
    "listcrls": _cmd("listcrls"),
    "listpsks": _cmd("listpsks"),
    "listevents": _cmd("listevents"),
    "listall": _cmd("listall"),
    "checkpubkeys": _cmd("checkpubkeys"),
    # daemon control
    "listen": _cmd("listen"),
    "unlisten": _cmd("unlisten"),
    "ddos-busy": Opt(CMD, False, "ddos", "busy"),
    "ddos-unlimited": Opt(CMD, False, "ddos", "unlimited"),
    "ddos-auto": Opt(CMD, False, "ddos", "auto"),
    "ddns": _cmd("ddns"),
    "rereadsecrets": _cmd("rereadsecrets"),
    "rereadcrls": _cmd("rereadcrls"),
    "rereadcerts": _cmd("rereadcerts"),
    "fetchcrls": _cmd("fetchcrls"),
    "rereadall": _cmd("rereadall"),
    "purgeocsp": _cmd("purgeocsp"),
    "global-redirect": _cmd("global-redirect", True),
    "global-redirect-to": _cmd("global-redirect-to", True),
    "ike-socket-bufsize": _cmd("ike-socket-bufsize", True),
    "ike-socket-errqueue-toggle": _cmd("ike-socket-errqueue-toggle"),
    "shutdown": _cmd("shutdown"),
    # connection and state operations
    "route": _cmd("route"),
    "ondemand": _cmd("route"),
    "unroute": _cmd("unroute"),
    "initiate": _cmd("initiate"),
    "terminate": _cmd("down"),
    "down": _cmd("down"),
    "suspend": _cmd("suspend"),
    "delete": _cmd("delete"),
    "deleteid": _cmd("deleteid"),
    "deleteuser": _cmd("deleteuser"),
    "deletestate": _cmd("deletestate", True),
    "crash": _cmd("crash", True),
    "rekey-ike": _cmd("rekey-ike"),
    "rekey-child": _cmd("rekey-child"),
    "rekey-ipsec": _cmd("rekey-child"),
    "delete-ike": _cmd("delete-ike"),
    "delete-child": _cmd("delete-child"),
    "down-ike": _cmd("down-ike"),
    "down-child": _cmd("down-child"),
    "redirect-to": Opt(CMD, True, "redirect"),
    # the connection form: per-end options
    "to": Opt(TO),
    "host": _end("host"),
    "id": _end("id"),
    "cert": _end("cert"),
    "ckaid": _end("ckaid"),
    "ca": _end("ca"),
    "groups": _end("groups"),
    "sendcert": _end("sendcert"),
    "certtype": _end("certtype"),
    "ikeport": _end("ikeport"),
    "nexthop": _end("nexthop"),
    "client": _end("subnet"),
    "subnet": _end("subnet"),
    "clientprotoport": _end("protoport"),
    "sourceip": _end("sourceip"),
    "srcip": _end("sourceip"),
    "interface-ip": _end("interface-ip"),
    "vtiip": _end("vti"),
    "xauthserver": _end("xauthserver", "yes"),
    "xauthclient": _end("xauthclient", "yes"),
    "modecfgserver": _end("modecfgserver", "yes"),
    "modeconfigserver": _end("modecfgserver", "yes"),
    "modecfgclient": _end("modecfgclient", "yes"),
    "modeconfigclient": _end("modecfgclient", "yes"),
    "dnskeyondemand": _end("rsasigkey", "%dnsondemand"),
    "updown": _end("updown"),
    "addresspool": _end("addresspool"),
    "username": _end("username"),
    "authby": _end("auth"),
    "autheap": _end("autheap"),
    "cat": _end("cat", "yes"),
    # the connection form: connection-wide options
    "ipv4": _conn("hostaddrfamily", "ipv4"),
    "ipv6": _conn("hostaddrfamily", "ipv6"),
    "tunnelipv4": Opt(CONN, False, "", None),  # obsolete client address family: accepted
    "tunnelipv6": Opt(CONN, False, "", None),
    "tunnel": _conn("type", "tunnel"),
    "transport": _conn("type", "transport"),
    "pass": _conn("type", "passthrough"),
    "drop": _conn("type", "drop"),
    "reject": _conn("type", "reject"),
    "psk": Opt(AUTH, False, "secret"),
    "rsasig": Opt(AUTH, False, "rsasig"),
    "ecdsa": Opt(AUTH, False, "ecdsa"),
    "eddsa": Opt(AUTH, False, "eddsa"),
    "null": Opt(AUTH, False, "null"),
    "auth-never": Opt(AUTH, False, "never"),
    "encrypt": _conn("phase2", "esp"),
    "authenticate": _conn("phase2", "ah"),
    "compress": _conn("compress", "yes"),
    "pfs": _conn("pfs", "yes"),
    "pfsgroup": _conn("pfsgroup"),
    "ikelifetime": _conn("ikelifetime"),
    "ipseclifetime": _conn("ipsec-lifetime"),
    "ipsec-lifetime": _conn("ipsec-lifetime"),
    "ipsec-max-bytes": _conn("ipsec-max-bytes"),
    "ipsec-max-packets": _conn("ipsec-max-packets"),
    "rekeymargin": _conn("rekeymargin"),
    "rekeyfuzz": _conn("rekeyfuzz"),
    "keyingtries": _conn("keyingtries"),
    "replay-window": _conn("replay-window"),
    "retransmit-timeout": _conn("retransmit-timeout"),
    "retransmit-interval": _conn("retransmit-interval"),
    "esp": _conn("esp"),
    "ike": _conn("ike"),
    "ikealg": _conn("ike"),
    "dontrekey": _conn("rekey", "no"),
    "aggrmode": _conn("aggressive", "yes"),
    "aggressive": _conn("aggressive", "yes"),
    "modecfgpull": _conn("modecfgpull", "yes"),
    "modecfgdns": _conn("modecfgdns"),
    "modecfgdomains": _conn("modecfgdomains"),
    "modecfgbanner": _conn("modecfgbanner"),
    "metric": _conn("metric"),
    "mtu": _conn("mtu"),
    "priority": _conn("priority"),
    "tfc": _conn("tfc"),
    "reqid": _conn("reqid"),
    "nflog-group": _conn("nflog-group"),
    "conn-mark": _conn("mark"),
    "conn-mark-in": _conn("mark-in"),
    "conn-mark-out": _conn("mark-out"),
    "vti-iface": _conn("vti-interface"),
    "ipsec-interface": _conn("ipsec-interface"),
    "dpddelay": _conn("dpddelay"),
    "dpdtimeout": _conn("dpdtimeout"),
    "dpdaction": _conn("dpdaction"),
    "no-keep-alive": _conn("nat-keepalive", "no"),
    "initiateontraffic": _conn("auto", "ondemand"),
    "failnone": _conn("failureshunt", "none"),
    "failpass": _conn("failureshunt", "passthrough"),
    "faildrop": _conn("failureshunt", "drop"),
    "failreject": _conn("failureshunt", "reject"),
    "negopass": _conn("negotiationshunt", "passthrough"),
    "encapsulation": _conn("encapsulation"),
    "encaps": _conn("encapsulation"),
    "forceencaps": _conn("encapsulation", "yes"),
    "ikev1": _conn("keyexchange", "ikev1"),
    "ikev1-allow": _conn("keyexchange", "ikev1"),
    "ikev2": _conn("keyexchange", "ikev2"),
    "ikev2-allow": _conn("keyexchange", "ikev2"),
    "ikev2-propose": _conn("keyexchange", "ikev2"),
    "narrowing": _conn("narrowing"),
    "fragmentation": _conn("fragmentation"),
    "sendca": _conn("sendca"),
    "remote-peer-type": _conn("remote-peer-type"),
    "nm-configured": _conn("nm-configured", "yes"),
    "cisco-unity": _conn("cisco-unity", "yes"),
    "fake-strongswan": _conn("fake-strongswan", "yes"),
    "initialcontact": _conn("initial-contact", "yes"),
    "send-redirect": _conn("send-redirect"),
    "accept-redirect": _conn("accept-redirect"),
    "accept-redirect-to": _conn("accept-redirect-to"),
    "xauthby": _conn("xauthby"),
    "xauthfail": _conn("xauthfail"),
    "nic-offload": _conn("nic-offload"),
    "tcp": _conn("enable-tcp"),
    "tcp-remote-port": _conn("tcp-remoteport"),
    "mobike": _conn("mobike", "yes"),
    "esn": _conn("esn"),
    "ppk": _conn("ppk"),
    "intermediate": _conn("intermediate"),
    "session-resumption": _conn("session-resumption"),
    "policylabel": _conn("sec-label"),
    "sec-label": _conn("sec-label"),
    "send-no-esp-tfc": _conn("send-esp-tfc-padding-not-supported", "yes"),
    "priority-auto": _conn("priority", "0"),
}

#: Commands that print status; their invocations always exit 0 (4.x `ignore_errors`).
STATUS_COMMANDS = frozenset(
    {
        "status",
        "globalstatus",
        "trafficstatus",
        "shuntstatus",
        "addresspoolstatus",
        "fipsstatus",
        "briefstatus",
        "processstatus",
        "showstates",
        "connectionstatus",
        "briefconnectionstatus",
    }
)

#: Commands that act on a connection and need --name.
NAMED_COMMANDS = frozenset(
    {
        "route",
        "unroute",
        "initiate",
        "down",
        "suspend",
        "delete",
        "deleteuser",
        "rekey-ike",
        "rekey-child",
        "delete-ike",
        "delete-child",
        "down-ike",
        "down-child",
    }
)


@dataclass
class WhackArgs:
    """What the command line asked for, before it becomes requests."""

    ctlsocket: str | None = None
    rundir: str | None = None
    label: str | None = None
    help: bool = False
    version: bool = False
    name: str | None = None
    mods: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    repeat: list[tuple[str, str]] = field(default_factory=list)
    command: str | None = None
    command_arg: str | None = None
    command_option: str = ""
    left: dict[str, str] = field(default_factory=dict)
    right: dict[str, str] = field(default_factory=dict)
    conn: dict[str, str] = field(default_factory=dict)
    authby: list[str] = field(default_factory=list)
    seen_to: bool = False

    @property
    def is_connection(self) -> bool:
        return bool(self.left or self.right or self.conn or self.authby or self.seen_to)


def lookup(word: str) -> str:
    """Resolve an option name as getopt_long does: exact, else a unique prefix."""
    if word in OPTIONS:
        return word
    matches = [o for o in OPTIONS if o.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise WhackUsage(f'unknown option "--{word}"')
    # aliases resolving to the same option are not ambiguous
    if len({OPTIONS[m] for m in matches}) == 1:
        return matches[0]
    raise WhackUsage(f'option "--{word}" is ambiguous ({", ".join("--" + m for m in sorted(matches))})')


def parse_args(argv: list[str]) -> WhackArgs:
    args = WhackArgs()
    end = args.left
    it = iter(argv)
    for tok in it:
        if not tok.startswith("--") or tok == "--":
            raise WhackUsage(f'unexpected argument "{tok}"')
        word, eq, val = tok[2:].partition("=")
        name = lookup(word)
        opt = OPTIONS[name]
        if opt.arg:
            if not eq:
                try:
                    val = next(it)
                except StopIteration:
                    raise WhackUsage(f'option "--{name}" requires an argument') from None
        elif eq:
            raise WhackUsage(f'option "--{name}" does not take an argument')
        _apply(args, name, opt, val, end)
        if opt.kind == TO:
            end = args.right
    if args.seen_to and "host" not in args.right:
        raise WhackUsage("connection missing --host after --to")
    return args


def _apply(args: WhackArgs, name: str, opt: Opt, val: str, end: dict[str, str]) -> None:
    kind = opt.kind
    if kind == GLOBAL:
        if name in ("ctlsocket", "ctlbase"):
            args.ctlsocket = val
        elif name == "rundir":
            args.rundir = val
        elif name == "label":
            args.label = val
        elif name == "help":
            args.help = True
        elif name == "version":
            args.version = True
        elif name == "optionsfrom":
            raise WhackUsage("--optionsfrom is not supported")
        # --magic is accepted and ignored: our protocol carries its own version
    elif kind == MOD:
        if name == "name":
            if args.name is not None:
                raise WhackUsage("duplicated flag --name")
            args.name = val
        elif opt.arg:
            if opt.key in args.mods:
                raise WhackUsage(f"duplicated flag --{name}")
            args.mods[opt.key] = val
        else:
            args.flags.add(opt.key)
    elif kind == REPEAT:
        args.repeat.append((opt.key, opt.value if opt.value is not None else val))
    elif kind == CMD:
        if args.command is not None and args.command != opt.key:
            raise WhackUsage(
                f"conflicting command options '--{args.command_option}' and '--{name}'"
            )
        if args.command is not None:
            raise WhackUsage(f"duplicated flag --{name}")
        args.command = opt.key
        args.command_option = name
        args.command_arg = opt.value if opt.value is not None else (val if opt.arg else None)
    elif kind == TO:
        if args.seen_to:
            raise WhackUsage("connection has more than one --to")
        if "host" not in end:
            raise WhackUsage("connection missing --host before --to")
        args.seen_to = True
    elif kind == END:
        if opt.key in end:
            raise WhackUsage(f"duplicated flag --{name}")
        end[opt.key] = opt.value if opt.value is not None else val
    elif kind == CONN:
        if not opt.key:
            return
        if opt.key in args.conn:
            raise WhackUsage(f"duplicated flag --{name}")
        args.conn[opt.key] = opt.value if opt.value is not None else val
    elif kind == AUTH:
        if opt.key in args.authby:
            raise WhackUsage(f"duplicated flag --{name}")
        args.authby.append(opt.key)


def connection_triples(args: WhackArgs) -> list[tuple[str, str, str]]:
    """The connection form as (end, keyword, value) triples."""
    triples: list[tuple[str, str, str]] = []
    for side, end in (("left", args.left), ("right", args.right)):
        triples.extend((side, k, v) for k, v in end.items())
    conn = dict(args.conn)
    # whack's connection form sets policy bits explicitly: no --tunnel means transport,
    # no --pfs means no PFS (unlike ipsec.conf, whose defaults are tunnel and pfs=yes).
    conn.setdefault("type", "transport")
    conn.setdefault("pfs", "no")
    if args.authby:
        conn["authby"] = ",".join(args.authby)
    if "pfsgroup" in conn:
        group = conn.pop("pfsgroup")
        conn["esp"] = f"{conn['esp']};{group}" if "esp" in conn else f"aes-sha2;{group}"
    triples.extend(("", k, v) for k, v in conn.items())
    return triples


def build_requests(args: WhackArgs) -> list[Request]:
    """Turn parsed arguments into the requests whack sends, in order."""
    requests: list[Request] = []
    flags = set(args.flags)
    if args.repeat:
        requests.append(Request("options", name=args.name, options=list(args.repeat)))
    if args.is_connection:
        if args.name is None:
            raise WhackUsage("missing --name <connection_name>")
        if not args.seen_to:
            raise WhackUsage("connection description lacks --to")
        requests.append(Request("add", name=args.name, conn=connection_triples(args)))
    elif "keyid" in args.mods or "pubkeyrsa" in args.mods:
        if "keyid" not in args.mods:
            raise WhackUsage("--pubkeyrsa requires --keyid")
        r = Request("pubkey", args={"keyid": args.mods["keyid"]})
        if "pubkeyrsa" in args.mods:
            r.args["pubkeyrsa"] = args.mods["pubkeyrsa"]
        if "addkey" in flags:
            r.flags.add("addkey")
        requests.append(r)
    cmd = args.command
    if cmd is not None:
        if cmd == "redirect" and args.name is None and not args.is_connection:
            raise WhackUsage("--redirect-to requires --name (or use --global-redirect-to)")
        if cmd in NAMED_COMMANDS and args.name is None:
            raise WhackUsage(f"missing --name <connection_name> for --{args.command_option}")
        if cmd == "deletestate":
            if not (args.command_arg or "").isdigit():
                raise WhackUsage(f'invalid state number "{args.command_arg}"')
        if cmd == "redirect" and args.is_connection:
            # inside a connection description --redirect-to is the connection keyword
            requests[-1].conn.append(("", "redirect-to", args.command_arg or ""))
        else:
            r = Request(cmd, name=args.name, flags=flags)
            if args.command_arg is not None:
                r.args["arg"] = args.command_arg
            for k in ("remote-host", "xauthuser", "xauthpass"):
                if k in args.mods:
                    r.args[k] = args.mods[k]
            requests.append(r)
    elif "leave-state" in flags:
        raise WhackUsage("--leave-state requires --shutdown")
    if not requests and args.name is not None:
        # `whack --name c` alone: Libreswan treats it as a (useless) no-op request
        raise WhackUsage("no action specified for --name")
    return requests
