"""pluto's handlers for whack requests, one function per command."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from ..whack import rc
from ..whack.protocol import Request
from . import routing, status, traffic
from .connections import Connection
from .control import WhackSession
from .debugopts import OptionError, apply_debug, debug_help, parse_impair

Handler = Callable[[Any, Request, WhackSession], Awaitable[None]]
COMMANDS: dict[str, Handler] = {}


def command(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            COMMANDS[n] = fn
        return fn

    return register


def _lookup(p: Any, req: Request, w: WhackSession) -> list[Connection]:
    """The connections a --name refers to (aliases included), or an RC error."""
    if not req.name:
        w.send(rc.RC_UNKNOWN_NAME, "missing --name")
        return []
    conns = p.conns.find(req.name)
    if not conns:
        w.send(rc.RC_UNKNOWN_NAME, f'no connection or alias named "{req.name}"')
    return conns


# -- debug and impair -------------------------------------------------------------------
@command("options", "debug", "impair")
async def cmd_options(p: Any, req: Request, w: WhackSession) -> None:
    for key, value in req.options:
        try:
            if key in ("debug", "no-debug"):
                if value in ("help", "list", "?"):
                    for line in debug_help():
                        w.send(rc.RC_COMMENT, line)
                    continue
                p.log.debugging = apply_debug(p.log.debugging, value, enable=key == "debug")
            elif key in ("impair", "no-impair"):
                spec = value if key == "impair" else f"no-{value}"
                what, lines = parse_impair(spec, p.impairments)
                for line in lines:
                    w.send(rc.RC_COMMENT, line)
                if what in _IMPAIR_ACTIONS and what in p.impairments:
                    # an action, not a setting: carry it out now
                    _IMPAIR_ACTIONS[what](p, p.impairments.pop(what), w)
                    continue
                if what not in ("help", "list", "none") and what in p.impairments:
                    p.log.log(f"IMPAIR: {what}: {p.impairments[what]}")
                if p.engine is not None:  # the IKE engine's own impairments
                    p.engine.engine.config.impair_ddos_cookie = p.impairments.get(
                        "ddos-cookie", 0)
        except OptionError as e:
            w.send(rc.RC_BADWHACKMESSAGE, str(e))
            return


def _impair_keepalive(p: Any, serial: int, w: WhackSession) -> None:
    if p.engine is None or not p.engine.send_keepalive(serial):
        w.send(rc.RC_UNKNOWN_NAME, f"IMPAIR: no IKE SA #{serial} to send a NAT keepalive for")
        return
    p.log.log(f"IMPAIR: sent NAT keepalive for #{serial}", w)


def _impair_rekey(p: Any, serial: int, w: WhackSession) -> None:
    st = p.states.get(serial)
    if p.engine is None or st is None:
        w.send(rc.RC_UNKNOWN_NAME, f"IMPAIR: no SA #{serial} to rekey")
        return
    op = p.engine.engine.rekey_ike if st.kind == "ike" else p.engine.engine.rekey_child
    p.log.log(f"IMPAIR: {st.conn.prefix} #{serial}: triggering rekey", w)
    p.engine._apply(op(serial, p.engine.loop.time()))  # noqa: SLF001 - pluto's own glue


_IMPAIR_ACTIONS: dict[str, Callable[[Any, int, WhackSession], None]] = {
    "send-keepalive": _impair_keepalive,
    "trigger-v2-rekey": _impair_rekey,
}


# -- connections ------------------------------------------------------------------------
@command("add")
async def cmd_add(p: Any, req: Request, w: WhackSession) -> None:
    from .connadd import add_connection

    add_connection(p, req.name or "", req.conn, w, replace="replace" in req.flags)


@command("delete")
async def cmd_delete(p: Any, req: Request, w: WhackSession) -> None:
    for conn in _lookup(p, req, w):
        await delete_connection(p, conn, w)


async def delete_connection(p: Any, conn: Connection, w: WhackSession | None) -> None:
    # out of the database first: a peer coming back while its SAs are being deleted must
    # find neither the connection nor (a template) a way to make a new instance of it
    p.conns.remove(conn)
    for inst in [conn, *conn.instances.values()]:
        if p.states_of(inst):
            p.log.log(f"{inst.prefix}: terminating SAs using this connection", w)
            if p.engine is not None:
                await p.engine.terminate(inst, w, delete=True)
        if inst.routing.startswith("routed") and inst.routing != "routed-tunnel":
            await routing.unroute(p, inst, w)


@command("pubkey")
async def cmd_pubkey(p: Any, req: Request, w: WhackSession) -> None:
    keyid = req.args.get("keyid", "")
    key = req.args.get("pubkeyrsa")
    if key is None:
        before = len(p.pubkeys)
        p.pubkeys = [k for k in p.pubkeys if k[0] != keyid]
        if len(p.pubkeys) == before:
            w.send(rc.RC_NOKEY, f"no public key for ID {keyid} to delete")
        return
    if not key.startswith(("0s", "0x")):
        w.send(rc.RC_NOKEY, f"malformed RSA public key for ID {keyid}: must start with 0s or 0x")
        return
    if "addkey" not in req.flags:
        p.pubkeys = [k for k in p.pubkeys if k[0] != keyid]
    p.pubkeys.append((keyid, key))


# -- routing and negotiation ------------------------------------------------------------
def _usable(p: Any, conn: Connection, w: WhackSession, verb: str) -> bool:
    if not p.listening:
        w.send(rc.RC_DEAF, f"need --listen before --{verb}")
        return False
    if not conn.oriented and not p.orient(conn):
        w.send(
            rc.RC_ORIENT,
            f"{conn.prefix}: we cannot identify ourselves with either end of this connection.  "
            f"{conn.config.left.host} or {conn.config.right.host} are not usable",
        )
        return False
    return True


@command("route")
async def cmd_route(p: Any, req: Request, w: WhackSession) -> None:
    for conn in _lookup(p, req, w):
        if not _usable(p, conn, w, "route"):
            continue
        await routing.route(p, conn, w)


@command("unroute")
async def cmd_unroute(p: Any, req: Request, w: WhackSession) -> None:
    for conn in _lookup(p, req, w):
        await routing.unroute(p, conn, w)


@command("initiate")
async def cmd_initiate(p: Any, req: Request, w: WhackSession) -> None:
    conns = _lookup(p, req, w)
    alias = bool(conns) and p.conns.get(req.name) is None
    if alias:
        w.send(rc.RC_COMMENT, f'initiating all connections with alias "{req.name}"')
    waiters = []
    started = 0
    for conn in conns:
        if not _usable(p, conn, w, "initiate"):
            continue
        if p.engine is None:
            w.send(rc.RC_FATAL, f"{conn.prefix}: IKE is not available in this pluto")
            continue
        # all of an alias's connections start at once (the later ones share the IKE SA
        # of the first, queued on it), then whack waits for them all
        waiter = p.engine.start_initiate(conn, w, req)
        started += 1
        if waiter is not None:
            waiters.append(waiter)
    if alias:
        w.send(rc.RC_COMMENT, f"initiating {started} connection{'s' if started != 1 else ''}")
    for waiter in waiters:
        await waiter


@command("down")
async def cmd_down(p: Any, req: Request, w: WhackSession) -> None:
    conns = _lookup(p, req, w)
    alias = bool(conns) and p.conns.get(req.name) is None
    if alias:
        w.send(rc.RC_COMMENT, f'terminating all connections with alias "{req.name}"')
    for conn in conns:
        conn.up = False
        targets = [conn]
        if conn.instances:  # a road-warrior template: down goes to each of its instances
            p.log.log(f"{conn.prefix}: deleting template instances", w)
            targets = list(conn.instances.values())
        for target in targets:
            target.up = False
            if p.engine is not None:
                await p.engine.terminate(target, w, delete=False)
    if alias:
        n = len(conns)
        w.send(rc.RC_COMMENT, f"terminated {n} connection{'s' if n != 1 else ''}")


@command("suspend")
async def cmd_suspend(p: Any, req: Request, w: WhackSession) -> None:
    await cmd_down(p, req, w)


@command("rekey-ike", "rekey-child", "delete-ike", "delete-child", "down-ike", "down-child")
async def cmd_sa_op(p: Any, req: Request, w: WhackSession) -> None:
    for conn in _lookup(p, req, w):
        if p.engine is None:
            w.send(rc.RC_UNKNOWN_NAME, f"{conn.prefix}: no established SA")
            continue
        await p.engine.sa_operation(conn, req.command, w, asynchronous="async" in req.flags)


@command("deletestate")
async def cmd_deletestate(p: Any, req: Request, w: WhackSession) -> None:
    serial = int(req.args.get("arg", "0"))
    st = p.states.get(serial)
    if st is None:
        w.send(rc.RC_UNKNOWN_NAME, f"no state #{serial} to delete")
        return
    if p.engine is not None:
        await p.engine.delete_state(st, w)
    else:
        p.log.log(f"{st.conn.prefix} #{serial}: deleting state ({st.story})", w)
        p.states.remove(st)


@command("deleteuser", "deleteid")
async def cmd_deleteuser(p: Any, req: Request, w: WhackSession) -> None:
    who = req.name or ""
    matched = [s for s in p.states if s.kind == "ike" and who in (s.username, s.peer_id)]
    for st in matched:
        await cmd_deletestate(p, Request("deletestate", args={"arg": str(st.serial)}), w)


@command("crash")
async def cmd_crash(p: Any, req: Request, w: WhackSession) -> None:
    arg = req.args.get("arg", "")
    try:
        addr = ipaddress.ip_address(arg)
    except ValueError:
        w.send(rc.RC_BADID, f'crash: invalid address "{arg}"')
        return
    for st in [s for s in p.states if s.peer and s.peer[0] == addr and s.kind == "ike"]:
        p.log.log(f"{st.conn.prefix} #{st.serial}: peer {addr} crashed; deleting", w)
        if p.engine is not None:
            await p.engine.delete_state(st, w, notify=False)
        else:
            p.states.remove(st)


# -- interfaces -------------------------------------------------------------------------
@command("listen")
async def cmd_listen(p: Any, req: Request, w: WhackSession) -> None:
    from .listen import listen

    await listen(p, w)


@command("unlisten")
async def cmd_unlisten(p: Any, req: Request, w: WhackSession) -> None:
    for iface in p.interfaces:
        p.log.log(f"shutting down interface {iface.device} {iface.addr}:{iface.port}", w)
    p.close_interfaces()
    for conn in p.conns.all_with_instances():
        conn.local = None


@command("ddos")
async def cmd_ddos(p: Any, req: Request, w: WhackSession) -> None:
    mode = req.args.get("arg", "auto")
    if mode not in ("busy", "unlimited", "auto"):
        w.send(rc.RC_BADWHACKMESSAGE, f'invalid DDoS mode "{mode}"')
        return
    # ddos.c set_ddos_mode()
    if mode == p.ddos_mode:
        p.log.log(f"pluto DDoS protection remains in {mode} mode", w)
        return
    p.ddos_mode = mode
    p.log.log(f"pluto DDoS protection mode set to {mode}", w)


@command("global-redirect")
async def cmd_global_redirect(p: Any, req: Request, w: WhackSession) -> None:
    mode = req.args.get("arg", "")
    if mode not in ("yes", "no", "auto"):
        w.send(rc.RC_BADWHACKMESSAGE, f'invalid --global-redirect value "{mode}"; expecting yes, no or auto')
        return
    # ikev2_redirect.c set_global_redirect(): nowhere to redirect to means no
    if mode == "no":
        p.global_redirect = "no"
        p.log.log("set global redirect to 'no'", w)
    elif not p.global_redirect_to:
        p.global_redirect = "no"
        p.log.log("ipsec whack: --global-redirect set to no as there are no active redirect "
                  "targets", w)
    else:
        p.global_redirect = mode
        p.log.log(f"set global redirect to {mode}", w)


@command("global-redirect-to")
async def cmd_global_redirect_to(p: Any, req: Request, w: WhackSession) -> None:
    targets = req.args.get("arg", "")
    for t in filter(None, (x.strip() for x in targets.split(","))):
        try:
            ipaddress.ip_address(t)
        except ValueError:
            if not all(part.isalnum() or part == "-" for part in t.replace(".", " ").split()):
                w.send(rc.RC_BADWHACKMESSAGE, f'invalid --global-redirect-to address "{t}"')
                return
    if any(x.strip() for x in targets.split(",")):
        p.global_redirect_to = targets
        p.log.log(f"set global redirect target to {targets}", w)
    else:
        p.global_redirect_to = ""
        p.global_redirect = "no"
        p.log.log("cleared global redirect targets and disabled global redirects", w)


@command("redirect")
async def cmd_redirect(p: Any, req: Request, w: WhackSession) -> None:
    for conn in _lookup(p, req, w):
        if p.engine is None:
            p.log.log(f'no active tunnels found for connection "{conn.name}"', w)
            continue
        await p.engine.redirect(conn, req.args.get("arg", ""), w)


@command("ike-socket-bufsize")
async def cmd_bufsize(p: Any, req: Request, w: WhackSession) -> None:
    try:
        size = int(req.args.get("arg", ""))
    except ValueError:
        w.send(rc.RC_BADWHACKMESSAGE, "--ike-socket-bufsize needs a number")
        return
    p.opts.ike_socket_bufsize = size
    import socket

    for iface in p.interfaces:
        sock = iface.transport.get_extra_info("socket") if iface.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    p.log.log(f"set IKE socket buffer to {size}", w)


@command("ike-socket-errqueue-toggle", "ddns", "rereadcrls", "fetchcrls", "purgeocsp")
async def cmd_noop(p: Any, req: Request, w: WhackSession) -> None:
    if req.command == "rereadcrls":
        w.send(rc.RC_COMMENT, "ipsec whack --rereadcrls has been obsoleted - please see: ipsec crls")


@command("rereadsecrets")
async def cmd_rereadsecrets(p: Any, req: Request, w: WhackSession) -> None:
    p.load_secrets(w)


@command("rereadcerts")
async def cmd_rereadcerts(p: Any, req: Request, w: WhackSession) -> None:
    p.load_certs(w)


@command("rereadall")
async def cmd_rereadall(p: Any, req: Request, w: WhackSession) -> None:
    p.load_secrets(w)
    await cmd_rereadcerts(p, req, w)


@command("shutdown")
async def cmd_shutdown(p: Any, req: Request, w: WhackSession) -> None:
    p.leave_state = "leave-state" in req.flags
    w.send(rc.RC_COMMENT, "Pluto is shutting down")
    w.release()
    await asyncio.sleep(0)
    p.request_shutdown()


@command("clearstats")
async def cmd_clearstats(p: Any, req: Request, w: WhackSession) -> None:
    p.stats.clear()


# -- status family ----------------------------------------------------------------------
TRAFFIC_COMMANDS = {"status", "trafficstatus", "showstates", "briefconnectionstatus"}


def _status_command(name: str, fn: Callable[[Any, Request], list[str]]) -> Handler:
    async def handler(p: Any, req: Request, w: WhackSession) -> None:
        if name in TRAFFIC_COMMANDS:
            await traffic.refresh(p)
        for line in fn(p, req):
            w.send(rc.RC_COMMENT, line)

    return handler


for _name, _fn in status.STATUS.items():
    COMMANDS[_name] = _status_command(_name, _fn)
