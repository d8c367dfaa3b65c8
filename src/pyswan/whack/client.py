"""The whack client: send requests to pluto's control socket, print the replies.

Exit status follows Libreswan 5.x: the first reply code in [20, 100) sticks; status
commands always exit 0; problems found by whack itself exit RC_WHACK_PROBLEM (33).
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Callable, Iterable

from .. import VERSION_STRING
from . import rc
from .options import STATUS_COMMANDS, WhackUsage, build_requests, parse_args
from .protocol import MAX_LINE, Request, encode_request, parse_line

DEFAULT_RUNDIR = "/run/pluto"
CTL_NAME = "pluto.ctl"

USAGE = """\
Usage: whack [--help] [--version]
  connection:  whack --name NAME [END-OPTIONS] --to [END-OPTIONS] [CONN-OPTIONS]
     END-OPTIONS: --host ADDR --id ID --cert NAME --ckaid HEX --ca DN --groups G
                  --sendcert yes|ifasked|no --ikeport PORT --nexthop ADDR
                  --client SUBNET --clientprotoport PROTO/PORT --sourceip ADDR
                  --interface-ip CIDR --xauthserver --xauthclient --modecfgserver
                  --modecfgclient --dnskeyondemand --updown CMD --addresspool RANGE
     CONN-OPTIONS: --ipv4 --ipv6 --tunnel --psk --rsasig --ecdsa --encrypt
                  --authenticate --compress --pfs --pfsgroup G --ike PROPOSALS
                  --esp PROPOSALS --ikelifetime S --ipseclifetime S --rekeymargin S
                  --rekeyfuzz N% --dontrekey --aggrmode --modecfgpull --modecfgdns A
                  --modecfgdomains D --modecfgbanner T --metric N --nflog-group N
                  --conn-mark M/MASK --dpddelay S --dpdtimeout S --no-keep-alive
                  --initiateontraffic --pass --drop --reject --failnone --failpass
                  --faildrop --failreject --encapsulation yes|no|auto
                  --fragmentation yes|no|force --narrowing yes|no --ikev1 --ikev2
  public key:  whack --keyid ID [--addkey] [--pubkeyrsa KEY]
  routing:     whack --name NAME --route | --unroute
  initiation:  whack --name NAME --initiate [--remote-host ADDR] [--asynchronous]
               [--xauthuser USER --xauthpass PASS]
  termination: whack --name NAME --down | --delete
  SAs:         whack --name NAME --rekey-ike | --rekey-child | --delete-ike
               | --delete-child | --down-ike | --down-child [--asynchronous]
               whack --deletestate STATE | --crash ADDR
  listening:   whack --listen | --unlisten
  DDoS:        whack --ddos-busy | --ddos-unlimited | --ddos-auto
  redirect:    whack --global-redirect yes|no|auto | --global-redirect-to ADDRS
               whack --name NAME --redirect-to ADDRS
  debug:       whack [--name NAME] --debug CLASS | --no-debug CLASS | --impair WHAT
  lists:       whack [--utc] --listall | --listpubkeys | --listcerts | --listcacerts
               | --listcrls | --checkpubkeys
  secrets:     whack --rereadsecrets | --rereadall | --fetchcrls
  status:      whack --status | --briefstatus | --globalstatus | --clearstats
               | --trafficstatus | --shuntstatus | --showstates | --fipsstatus
               | --processstatus | --addresspoolstatus | [--name NAME] --connectionstatus
  shutdown:    whack --shutdown [--leave-state]
  common:      --ctlsocket PATH | --rundir DIR, --label STRING
"""


class WhackProblem(Exception):
    """Something whack itself could not do (exit RC_WHACK_PROBLEM)."""


def ctl_path(ctlsocket: str | None, rundir: str | None) -> str:
    if ctlsocket and rundir:
        raise WhackUsage("--ctlsocket and --rundir are mutually exclusive")
    if ctlsocket:
        return ctlsocket
    return os.path.join(rundir or DEFAULT_RUNDIR, CTL_NAME)


def _connect(path: str) -> socket.socket:
    if not os.path.exists(path):
        raise WhackProblem(f'Pluto is not running (no "{path}")')
    if not os.access(path, os.R_OK | os.W_OK):
        raise WhackProblem(f'no right to communicate with pluto (access("{path}"))')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        hint = " is Pluto running? " if isinstance(e, ConnectionRefusedError) else " "
        raise WhackProblem(f'connect() for "{path}" failed:{hint}({e.errno} {e.strerror})') from e
    return s


def _answer_prompt(code: int, text: str, req: Request) -> str:
    """Answer an XAUTH prompt from the command line options or the terminal."""
    if code == rc.RC_USERPROMPT:
        if "xauthuser" in req.args:
            return req.args["xauthuser"]
        sys.stderr.write("Enter username:   ")
        sys.stderr.flush()
        return sys.stdin.readline().rstrip("\n")
    if "xauthpass" in req.args:
        return req.args["xauthpass"]
    return getpass.getpass("Enter passphrase: ")


def send_request(
    path: str, req: Request, emit: Callable[[int, str], None]
) -> int:
    """Send one request and relay its reply lines; return the sticky exit code."""
    s = _connect(path)
    status = 0
    try:
        s.sendall(encode_request(req))
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw[:MAX_LINE].decode(errors="replace")
                try:
                    code, text = parse_line(line)
                except ValueError as e:
                    raise WhackProblem(str(e)) from None
                if code in (rc.RC_USERPROMPT, rc.RC_ENTERSECRET):
                    emit(0, text)
                    answer = _answer_prompt(code, text, req)[:128]
                    s.sendall(answer.encode() + b"\n")
                    continue
                emit(code, text)
                if status == 0 and rc.is_error(code):
                    status = code
        if buf:
            raise WhackProblem(f"log line missing NNN prefix: {buf.decode(errors='replace')}")
    finally:
        s.close()
    return status


def run(argv: list[str], out: Callable[[int, str], None] | None = None) -> int:
    """whack's main, returning its exit status."""
    label = None
    try:
        args = parse_args(argv)
        label = args.label
        if args.help:
            sys.stdout.write(USAGE)
            return 0
        if args.version:
            print(f"whack {VERSION_STRING}")
            return 0
        path = ctl_path(args.ctlsocket, args.rundir)
        requests = build_requests(args)
        if not requests:
            raise WhackUsage("no action specified; try --help")
    except WhackUsage as e:
        _error(label, f"whack error: {e}")
        return rc.RC_WHACK_PROBLEM
    emit = out or _print_line
    status = 0
    try:
        for req in requests:
            code = send_request(path, req, emit)
            if req.command in STATUS_COMMANDS:
                code = 0
            if status == 0:
                status = code
    except WhackProblem as e:
        _error(label, f"whack: {e}")
        return rc.RC_WHACK_PROBLEM
    except BrokenPipeError:
        return rc.RC_WHACK_PROBLEM
    return status


def _print_line(code: int, text: str) -> None:
    sys.stdout.write(text + "\n")


def _error(label: str | None, message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write((f"{label} " if label else "") + message + "\n")


def main(argv: Iterable[str] | None = None) -> None:
    try:
        code = run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = rc.RC_WHACK_PROBLEM
    sys.exit(code)


if __name__ == "__main__":
    main()
