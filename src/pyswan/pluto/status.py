"""The status family (`--status`, `--briefstatus`, ...) in Libreswan 5.x formats.

Each function returns the lines pluto sends (code 0); whack prints them without the
`NNN ` prefix. Formats follow libreswan-reference §2 (HEAD/5.3+ wording).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..whack.protocol import Request

BLANK = " "  # Libreswan's section separator is a line holding one space
MAX = "2^63"


def _fmt_seconds(v: float) -> str:
    return f"{int(v)}s" if v == int(v) else f"{v:g}s"


def _yn(v: bool) -> str:
    return "yes" if v else "no"


# -- connections ------------------------------------------------------------------------
def _client(end: Any) -> str | None:
    """The end's client (selector) text, None when it is just the host."""
    sels = list(end.subnets)
    if not sels:
        return None
    text = ",".join(str(s) for s in sels)
    if len(sels) == 1 and end.host_addr is not None:
        net = sels[0].network
        if net.num_addresses == 1 and net.network_address == end.host_addr and not sels[0].protocol:
            return None
    return text


def _host(end: Any) -> str:
    if end.host_addr is not None:
        h = str(end.host_addr)
    elif end.host_kind == "any":
        h = "%any"
    elif end.host_kind in ("oppo",):
        h = "%opportunistic"
    elif end.host_kind == "oppogroup":
        h = "%opportunisticgroup"
    elif end.host_kind == "group":
        h = "%group"
    elif end.host:
        h = f"%dns<{end.host}>" if end.host_kind == "dns" else end.host
    else:
        h = "%any"
    if end.ikeport not in (None, 500):
        h += f":{end.ikeport}"
    return h


def _id_shown(end: Any) -> str:
    ident = end.id
    if ident is None or end.id_from_host:
        return ""
    if end.host_addr is not None and getattr(ident, "addr", None) == end.host_addr:
        return ""
    return f"[{ident.display()}]"


def _end_text(end: Any, peer: Any, ours: bool) -> str:
    client = _client(end)
    host = _host(end) + _id_shown(end)
    nexthop = ""
    if end.nexthop_addr is not None and end.nexthop_addr != peer.host_addr:
        nexthop = str(end.nexthop_addr)
    if ours:
        parts = (f"{client}===" if client else "") + host + (f"---{nexthop}" if nexthop else "")
    else:
        parts = (f"{nexthop}---" if nexthop else "") + host + (f"==={client}" if client else "")
    return parts


def topology(conn: Any) -> str:
    this, that = conn.this, conn.that
    return f"{_end_text(this, that, True)}...{_end_text(that, this, False)}"


def _auth_name(auth: str) -> str:
    return {"secret": "PSK", "rsasig": "RSASIG", "ecdsa": "ECDSA", "eddsa": "EDDSA",
            "null": "AUTH_NULL", "never": "AUTH_NEVER", "eaponly": "EAPONLY"}.get(auth, auth.upper())


def policy_string(conn: Any) -> str:
    c = conn.config
    bits = [f"IKEv{c.ike_version}"]
    auths: list[str] = []
    for a in c.authby or (conn.this.auth,):
        for part in str(a).split(","):
            name = _auth_name(part.strip())
            if part.strip() == "rsasig" and c.ike_version == 2:
                for extra in ("RSASIG", "ECDSA", "RSASIG_v1_5") if not c.authby or "rsasig" in c.authby else ("RSASIG",):
                    if extra not in auths:
                        auths.append(extra)
                continue
            if name not in auths:
                auths.append(name)
    bits.extend(auths)
    if c.type in ("tunnel", "transport"):
        bits.append("AUTHENTICATE" if c.phase2 == "ah" else "ENCRYPT")
        if c.type == "tunnel":
            bits.append("TUNNEL")
        if c.compress:
            bits.append("COMPRESS")
        if c.pfs:
            bits.append("PFS")
    if not c.rekey:
        bits.append("DONT_REKEY")
    if conn.up:
        bits.append("UP")
    if c.fragmentation in ("yes", "force"):
        bits.append("IKE_FRAG_ALLOW")
    if c.fragmentation == "force":
        bits.append("IKE_FRAG_FORCE")
    if c.esn in ("no", "either"):
        bits.append("ESN_NO")
    if c.esn in ("yes", "either"):
        bits.append("ESN_YES")
    return "+".join(bits)


def _end_auth(end: Any) -> str:
    return end.auth


def _modecfg_role(end: Any) -> str:
    if end.modecfgserver:
        return "server"
    if end.modecfgclient:
        return "client"
    return "none"


def _xauth_role(end: Any) -> str:
    if end.xauthserver:
        return "server"
    if end.xauthclient:
        return "client"
    return "none"


def connection_lines(p: Any, conn: Any) -> list[str]:
    c = conn.config
    this, that = conn.this, conn.that
    n = conn.prefix + ":"
    out = []
    out.append(f"{n} {topology(conn)}; {conn.routing}; my_ip=unset; their_ip=unset;")
    if conn.oriented:
        out.append(f"{n}   host: oriented; local: {_host(this)}; remote: {_host(that)};")
    else:
        out.append(f"{n}   host: unoriented; left: {_host(c.left)}; right: {_host(c.right)};")
    updown = this.updown if this.updown is not None else "%disabled"
    out.append(f"{n}   my_updown={updown};")
    out.append(
        f"{n}   xauth us:{_xauth_role(this)}, xauth them:{_xauth_role(that)}, "
        f"my_username={this.username or '[any]'}; their_username={that.username or '[any]'}"
    )
    out.append(
        f"{n}   our auth:{_end_auth(this)}, their auth:{_end_auth(that)}, "
        f"our autheap:{this.autheap}, their autheap:{that.autheap};"
    )
    dns = ", ".join(str(a) for a in c.modecfgdns) or "unset"
    domains = ", ".join(c.modecfgdomains) or "unset"
    out.append(
        f"{n}   modecfg info: us:{_modecfg_role(this)}, them:{_modecfg_role(that)}, "
        f"modecfg policy:{'pull' if c.modecfgpull else 'push'}, dns:{dns}, domains:{domains}, "
        f"cat:{'set' if this.cat else 'unset'};"
    )
    if c.modecfgbanner:
        out.append(f"{n}   banner:{c.modecfgbanner};")
    out.append(
        f"{n}   cisco-split: {_yn(c.cisco_split)}; cisco-unity: {_yn(c.cisco_unity)}; "
        f"cisco-peer: {_yn(c.remote_peer_type == 'cisco')}; nm-configured: {_yn(c.nm_configured)};"
    )
    out.append(f"{n}   sec_label:{c.sec_label or 'unset'};")
    max_bytes = f"{MAX}B" if c.ipsec_max_bytes >= 2**63 else f"{c.ipsec_max_bytes}B"
    max_packets = MAX if c.ipsec_max_packets >= 2**63 else str(c.ipsec_max_packets)
    out.append(
        f"{n}   ike_life: {_fmt_seconds(c.ikelifetime)}; ipsec_life: {_fmt_seconds(c.ipsec_lifetime)}; "
        f"ipsec_max_bytes: {max_bytes}; ipsec_max_packets: {max_packets}; "
        f"replay_window: {c.replay_window}; rekey_margin: {_fmt_seconds(c.rekeymargin)}; "
        f"rekey_fuzz: {c.rekeyfuzz}%;"
    )
    out.append(
        f"{n}   iptfs: {_yn(c.iptfs)}; fragmentation: {c.fragmentation}; packet-size: {c.iptfs_packet_size}; "
        f"max-queue-size: {c.iptfs_max_queue_size}; drop-time: {int(c.iptfs_drop_time)}; "
        f"init-delay: {int(c.iptfs_init_delay)}; reorder-window: {c.iptfs_reorder_window};"
    )
    out.append(
        f"{n}   retransmit-interval: {c.retransmit_interval}ms; "
        f"retransmit-timeout: {_fmt_seconds(c.retransmit_timeout)}; "
        f"iketcp:{c.enable_tcp}; iketcp-port:{c.tcp_remoteport};"
    )
    out.append(
        f"{n}   initial-contact:{_yn(c.initial_contact)}; fake-strongswan:{_yn(c.fake_strongswan)}; "
        f"send-vendorid:{_yn(c.send_vendorid)}; send-no-esp-tfc:{_yn(c.send_esp_tfc_padding_not_supported)};"
    )
    out.append(f"{n}   policy: {policy_string(conn)};")
    if c.ike_version == 2 and this.auth in ("rsasig", "ecdsa", "eddsa"):
        from .pkauth import hash_policy_text

        out.append(f"{n}   v2-auth-hash-policy: {hash_policy_text(c)};")
    prio = c.priority or 0
    out.append(
        f"{n}   conn_prio: {_conn_prio(conn)}; interface: {conn.interface_name or 'unset'}; "
        f"metric: {c.metric or 0}; mtu: {c.mtu or 'unset'}; sa_prio:{prio or 'auto'}; "
        f"sa_tfc:{c.tfc or 'none'};"
    )
    out.append(
        f"{n}   nflog-group: {c.nflog_group or 'unset'}; mark: {c.mark or 'unset'}; "
        f"vti-iface:{c.vti_interface or 'unset'}; vti-routing:{_yn(c.vti_routing)}; "
        f"vti-shared:{_yn(c.vti_shared)}; nic-offload:{c.nic_offload};"
    )
    our_id = this.id.display() if this.id is not None else "(none)"
    their_id = that.id.display() if that.id is not None else "(none)"
    our_type = this.id.type_name if this.id is not None else "NONE"
    their_type = that.id.type_name if that.id is not None else "NONE"
    out.append(f"{n}   our idtype: {our_type}; our id={our_id}; their idtype: {their_type}; their id={their_id}")
    out.append(f"{n}   sendca: {c.sendca}; our sendcert: {this.sendcert}; their sendcert: {that.sendcert};")
    if c.ike_version == 2:
        out.append(
            f"{n}   liveness: {'active' if c.dpddelay else 'passive'}; dpddelay:{_fmt_seconds(c.dpddelay)}; "
            f"retransmit-timeout:{_fmt_seconds(c.retransmit_timeout)}"
        )
        out.append(
            f"{n}   nat-traversal: encapsulation:{c.encapsulation}; "
            f"keepalive:{_fmt_seconds(p.keep_alive) if c.nat_keepalive else 'no'}"
        )
    else:
        out.append(
            f"{n}   dpd: {'active' if c.dpddelay else 'passive'}; delay:{_fmt_seconds(c.dpddelay)}; "
            f"timeout:{_fmt_seconds(c.dpdtimeout)}"
        )
        out.append(
            f"{n}   nat-traversal: encapsulation:{c.encapsulation}; "
            f"keepalive:{_fmt_seconds(p.keep_alive) if c.nat_keepalive else 'no'}; ikev1-method:rfc+drafts"
        )
    routing = f"{n}   routing: {conn.routing};"
    if conn.newest_child:
        routing += f" owner: Child SA #{conn.newest_child};"
    if conn.newest_ike:
        routing += f" established IKE SA: #{conn.newest_ike};"
    if conn.newest_child:
        routing += f" established Child SA: #{conn.newest_child};"
    out.append(routing)
    out.append(f"{n}   conn serial: ${conn.serial};" + (
        f" instantiated from: ${conn.template.serial};" if conn.template is not None else ""))
    if c.ike:
        out.append(f"{n}   IKE algorithms: {_proposals(c.ike, 'ike', c)}")
    newest_ike = p.states.get(conn.newest_ike) if conn.newest_ike else None
    if newest_ike is not None and newest_ike.algorithms:
        out.append(f"{n}   IKEv{c.ike_version} algorithm newest: {newest_ike.algorithms}")
    if c.esp or c.ah:
        out.append(f"{n}   {'AH' if c.phase2 == 'ah' else 'ESP'} algorithms: "
                   f"{_proposals(c.ah if c.phase2 == 'ah' else c.esp, c.phase2, c)}")
    newest_child = p.states.get(conn.newest_child) if conn.newest_child else None
    if newest_child is not None and newest_child.algorithms:
        comp = " IPCOMP;" if _ipcomp_cpis(p, newest_child) else ""
        out.append(f"{n}   {newest_child.protocol} algorithm newest: "
                   f"{newest_child.algorithms};{comp} pfsgroup=<Phase1>")
    return out


def _ipcomp_cpis(p: Any, st: Any) -> tuple[int, int] | None:
    """(peer's CPI, our CPI) of a Child SA that agreed on IPCOMP (compress=yes), else None;
    the engine's Child SA keeps them with its keys."""
    eng = getattr(p.engine, "engine", None)
    children = getattr(eng, "children", None) or {}
    child = children.get(st.serial) if st.kind == "child" else None
    keys = getattr(child, "keys", None)
    cpi_in = getattr(keys, "cpi_in", 0)
    return (keys.cpi_out, cpi_in) if cpi_in else None


def _conn_prio(conn: Any) -> str:
    def prio(end: Any) -> int:
        sels = list(end.subnets)
        if not sels:
            return 32 if (end.host_addr is None or end.host_addr.version == 4) else 128
        return sels[0].network.prefixlen
    return f"{prio(conn.this)},{prio(conn.that)},0"


def _proposals(text: str | None, kind: str, config: Any) -> str:
    """Canonical proposal text when the proposal parser is available."""
    if not text:
        return ""
    from ..ike.proposals import ProposalError, format_proposals, parse_proposals

    try:
        return format_proposals(parse_proposals(kind, text, ike_version=config.ike_version,
                                                pfs=config.pfs))
    except ProposalError:
        return text


def connection_list(p: Any, name: str | None = None) -> list[str]:
    conns = p.conns.sorted()
    if name is not None:
        conns = [c for c in conns if c.name == name or name in c.aliases]
    out: list[str] = []
    for conn in conns:
        out.extend(connection_lines(p, conn))
    return out


# -- states -----------------------------------------------------------------------------
def _events(st: Any, now: float) -> str:
    parts = []
    for name, when in sorted(st.events.items(), key=lambda kv: kv[1]):
        parts.append(f"{name} in {max(0, int(when - now + 0.5))}s; ")
    return "".join(parts)


def state_lines(p: Any, st: Any, now: float | None = None) -> list[str]:
    now = time.monotonic() if now is None else now
    conn = st.conn
    port = st.peer[1] if st.peer else 500
    line = f"#{st.serial}: {conn.prefix}:{port} {st.story}; {_events(st, now)}"
    if st.kind == "ike":
        if conn.newest_ike == st.serial:
            line += "newest; "
        if st.ike_version == 1:
            line += "lastdpd=-1s(seq in:0 out:0); "
    else:
        if conn.newest_child == st.serial:
            line += "newest; "
            if conn.routing in ("routed-tunnel", "unrouted-tunnel"):
                line += "eroute owner; "
        if st.parent:
            line += f"{'ISAKMP' if st.ike_version == 1 else 'IKE'} SA #{st.parent}; "
    line += "idle;"
    out = [line]
    if st.kind == "child" and st.established and st.peer is not None:
        proto = st.protocol.lower()
        local = st.local[0] if st.local else conn.this.host_addr
        mode = "tun" if st.mode == "tunnel" else "tra"
        # with IPCOMP its SAIDs follow, and its counters are those of the first SA
        # (whack_showstates.c: "counts only appear in the first SA in a bundle")
        cpis = _ipcomp_cpis(p, st)
        comp = f"comp.{cpis[0]:x}@{st.peer[0]} comp.{cpis[1]:x}@{local} " if cpis else ""
        traffic = "".join(
            f"{name}in={_bytes(st.in_bytes)} {name}out={_bytes(st.out_bytes)} {name}max={MAX}B "
            for name in (st.protocol, "IPCOMP")[:2 if cpis else 1])
        out.append(
            f"#{st.serial}: {conn.prefix} {proto}.{st.spi_out:x}@{st.peer[0]} "
            f"{proto}.{st.spi_in:x}@{local} {comp}{mode}.0@{st.peer[0]} {mode}.0@{local} "
            f"Traffic: {traffic}"
        )
    return out


def _bytes(n: int) -> str:
    if n >= 10 * 1024 * 1024:
        return f"{n // (1024 * 1024)}MB"
    if n >= 10 * 1024:
        return f"{n // 1024}KB"
    return f"{n}B"


def brief_lines(p: Any) -> list[str]:
    c = p.states.counts()
    eng = getattr(p.engine, "engine", None)  # the IKE engine keeps the half-open count
    if eng is not None:
        eng.config.ddos_mode = p.ddos_mode  # whack may have changed it since the last packet
        busy = eng.cookies_required()
        full = eng.halfopen >= eng.config.max_halfopen_ike
    else:
        busy, full = p.ddos_mode == "busy", False
    cookies = "DDoS cookies REQUIRED" if busy else "DDoS cookies not required"
    accepting = ("NOT ACCEPTING new IKE connections" if full
                 else "Accepting new IKE connections" if p.listening
                 else "IGNORING new IKE connections (not listening)")
    return [
        f"State Information: {cookies}, {accepting}",
        f"IKE SAs: total({c['ike']}), half-open({c['half-open']}), open({c['open']}), "
        f"authenticated({c['authenticated']}), anonymous({c['anonymous']})",
        f"IPsec SAs: total({c['ipsec']}), authenticated({c['ipsec-authenticated']}), "
        f"anonymous({c['ipsec-anonymous']})",
    ]


# -- the commands -----------------------------------------------------------------------
def cmd_briefstatus(p: Any, req: Request) -> list[str]:
    return brief_lines(p)


def cmd_showstates(p: Any, req: Request) -> list[str]:
    now = time.monotonic()
    out: list[str] = []
    for st in p.states:
        out.extend(state_lines(p, st, now))
    return out


def cmd_connectionstatus(p: Any, req: Request) -> list[str]:
    return connection_list(p, req.name)


def cmd_briefconnectionstatus(p: Any, req: Request) -> list[str]:
    out = []
    for conn in p.conns.sorted():
        if req.name and conn.name != req.name:
            continue
        child = p.states.get(conn.newest_child) if conn.newest_child else None
        inb, outb = (child.in_bytes, child.out_bytes) if child else (0, 0)
        local = _client(conn.this) or _host(conn.this)
        remote = _client(conn.that) or _host(conn.that)
        out.append(f"{local} <==> {remote}\tfrom {_host(conn.this)} to {_host(conn.that)} "
                   f"({inb}B/{outb}B)\t{conn.prefix}")
    return out


def cmd_trafficstatus(p: Any, req: Request) -> list[str]:
    out = []
    states = [s for s in p.states if s.kind == "child" and s.established]
    states.sort(key=lambda s: (s.conn.name, s.conn.instance_no or 0, s.serial))
    for st in states:
        conn = st.conn
        if req.name and conn.name != req.name:
            continue
        line = f"#{st.serial}: {conn.prefix}"  # an instance's prefix ends with its peer
        if st.username:
            line += f", username={st.username}"
        line += (f", type={st.protocol}, add_time={int(st.add_time)}, inBytes={st.in_bytes}, "
                 f"outBytes={st.out_bytes}, maxBytes={MAX}B")
        if not st.username and st.peer_id:
            line += f", id='{st.peer_id}'"
        if st.lease:
            line += f", lease={st.lease}"
        out.append(line)
    return out


def cmd_shuntstatus(p: Any, req: Request) -> list[str]:
    from .routing import bare_shunts

    out = [BLANK, "Bare Shunt list:", BLANK]
    for shunt in bare_shunts(p):
        out.append(str(shunt))
    return out


def cmd_fipsstatus(p: Any, req: Request) -> list[str]:
    return ["FIPS mode disabled for pluto daemon"]


def cmd_processstatus(p: Any, req: Request) -> list[str]:
    out = [f"pid: {os.getpid()}", f"uptime: {int(time.time() - p.started)}s"]
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmPeak", "VmSize", "VmRSS", "VmHWM", "Threads"):
                    out.append(" ".join(line.split()))
    except OSError:
        pass
    usage = os.times()
    out.append(f"cpu: user {usage.user:.2f}s system {usage.system:.2f}s")
    return out


def cmd_addresspoolstatus(p: Any, req: Request) -> list[str]:
    from .addresspool import status_lines

    return status_lines(p)


def _setup_lines(p: Any) -> list[str]:
    o = p.opts
    s = p.setup
    def sv(name: str, default: object) -> object:
        return getattr(s, name, default) if s is not None else default
    config = o.config or "/etc/ipsec.conf"
    return [
        "config setup options:",
        BLANK,
        f"configdir={os.path.dirname(config) or '.'}, configfile={config}, secrets={o.secretsfile}, "
        f"ipsecdir={o.ipsecdir}",
        f"nhelpers={o.nhelpers}, uniqueids={_yn(o.uniqueids)}, "
        f"shuntlifetime={_fmt_seconds(sv('shuntlifetime', 900.0))}, "
        f"expire-lifetime={_fmt_seconds(sv('expire_lifetime', 30.0))}",
        f"logfile='{o.logfile or ('<stderr>' if o.stderrlog else '<syslog>')}', "
        f"logappend={_yn(o.logappend)}, logip=yes, audit-log=yes",
        f"ddos-cookies-threshold={getattr(p, 'ddos_ike_threshold', 25000)}, "
        f"ddos-max-halfopen={getattr(p, 'max_halfopen_ike', 50000)}, ddos-mode={p.ddos_mode}, "
        f"ikev1-policy={o.ikev1_policy}",
        f"ikebuf={o.ike_socket_bufsize}, msg_errqueue=yes, crl-strict=no, crlcheckinterval=0, "
        f"listen={o.listen or '<any>'}, nflog-all=0, dns-resolver=file,",
        "ocsp-enable=no, ocsp-strict=no, ocsp-timeout=2",
        "ocsp-uri=<unset>, ocsp-trust-name=<unset>",
        "ocsp-cache-size=1000, ocsp-cache-min-age=3600, ocsp-cache-max-age=86400, ocsp-method=get",
        f"global-redirect={p.global_redirect}, global-redirect-to={p.global_redirect_to or '<unset>'}",
        f"debug: {_debug(p)}",
        BLANK,
        f"nat-traversal: keep-alive={int(p.keep_alive)}, nat-ikeport={o.natikeport}",
    ]


def _debug(p: Any) -> str:
    from .debugopts import format_debug

    return format_debug(p.log.debugging)


def _algorithm_lines() -> tuple[list[str], list[str]]:
    try:
        from ..ike.algorithms import status_lines
    except Exception:
        return [], []
    try:
        return status_lines()
    except Exception:
        return [], []


def cmd_status(p: Any, req: Request) -> list[str]:
    out = [f"using kernel interface: {p.kernel.name if p.kernel is not None else 'none'}", BLANK]
    out.extend(i.status_line() for i in sorted(p.interfaces, key=lambda i: (i.device, str(i.addr), -i.port)))
    out += [BLANK, "fips mode=disabled;", "SElinux=disabled", "seccomp=OFF", BLANK]
    out.extend(_setup_lines(p))
    kernel_algs, ike_algs = _algorithm_lines()
    out += [BLANK, "Kernel algorithms supported:", BLANK, *kernel_algs, BLANK,
            "IKE algorithms supported:", BLANK, *ike_algs, BLANK,
            "stats db_ops: {curr_cnt, total_cnt, maxsz} :context={0,0,0} trans={0,0,0} attrs={0,0,0} ",
            BLANK, "Connection list:", BLANK]
    out.extend(connection_list(p))
    conns = p.conns.sorted()
    routed = sum(1 for c in conns if c.routing.startswith("routed"))
    active = sum(1 for c in conns if c.newest_child)
    out += [BLANK, f"Total IPsec connections: loaded {len(conns)}, routed {routed}, active {active}", BLANK]
    out.extend(brief_lines(p))
    out.append(BLANK)
    out.extend(cmd_showstates(p, req))
    out.extend(cmd_shuntstatus(p, req))
    return out


_STATE_NAMES = (
    "UNSECURED_R", "IKE_SA_INIT_I0", "IKE_SA_INIT_I", "IKE_SA_INIT_R", "IKE_SA_INIT_IR",
    "IKE_INTERMEDIATE_I", "IKE_INTERMEDIATE_R", "IKE_INTERMEDIATE_IR", "IKE_AUTH_EAP_R",
    "IKE_AUTH_I", "NEW_CHILD_I0", "NEW_CHILD_R0", "NEW_CHILD_I1", "REKEY_IKE_I0", "REKEY_IKE_I1",
    "REKEY_CHILD_I0", "REKEY_CHILD_I1", "REKEY_IKE_R0", "REKEY_CHILD_R0", "ESTABLISHED_IKE_SA",
    "ESTABLISHED_CHILD_SA", "ZOMBIE",
)


def cmd_globalstatus(p: Any, req: Request) -> list[str]:
    c = p.states.counts()
    s = p.stats
    out = [
        f"config.setup.ike.ddos_threshold={getattr(p, 'ddos_ike_threshold', 25000)}",
        f"config.setup.ike.max_halfopen={getattr(p, 'max_halfopen_ike', 50000)}",
        f"current.states.all={len(p.states)}",
        f"current.states.ipsec={c['ipsec']}",
        f"current.states.ike={c['ike']}",
        f"current.states.shunts={len(getattr(p, 'bare_shunts', []))}",
        f"current.states.iketype.anonymous={c['anonymous']}",
        f"current.states.iketype.authenticated={c['authenticated']}",
        f"current.states.iketype.halfopen={c['half-open']}",
        f"current.states.iketype.open={c['open']}",
    ]
    by_name: dict[str, int] = {}
    for st in p.states:
        by_name[st.name] = by_name.get(st.name, 0) + 1
    out += [f"current.states.enumerate.{n}={by_name.get(n, 0)}" for n in _STATE_NAMES]
    keys = [
        "total.ipsec.type.all", "total.ipsec.type.esp", "total.ipsec.type.ah",
        "total.ipsec.type.ipcomp", "total.ipsec.type.esn", "total.ipsec.type.tfc",
        "total.ipsec.type.encap", "total.ipsec.type.non_encap",
        "total.ipsec.traffic.in", "total.ipsec.traffic.out",
        "total.ike.ikev2.established", "total.ike.ikev2.failed", "total.ike.ikev2.completed",
        "total.ike.ikev2.redirect.completed", "total.ike.ikev2.redirect.failed",
        "total.ike.ikev1.established", "total.ike.ikev1.failed", "total.ike.ikev1.completed",
        "total.ike.ikev1.dropped",
        "total.ike.dpd.sent", "total.ike.dpd.recv", "total.ike.dpd.replied",
        "total.ike.mangled", "total.ike.traffic.in", "total.ike.traffic.out",
    ]
    eng = getattr(p.engine, "engine", None)
    if eng is not None:  # counters the IKE engine keeps (redirects, cookies sent)
        s = s.copy()
        s.update({k: s.get(k, 0) + v for k, v in eng.counters.items()})
    out += [f"{k}={s.get(k, 0)}" for k in keys]
    out += [f"{k}={v}" for k, v in sorted(s.items()) if k not in keys]
    return out


def _list_header(title: str) -> list[str]:
    return [BLANK, title, BLANK]


def cmd_listpubkeys(p: Any, req: Request) -> list[str]:
    out = _list_header("List of Public Keys:")
    for keyid, key in p.pubkeys:
        stamp = time.strftime("%b %d %H:%M:%S %Y", time.gmtime() if "utc" in req.flags else time.localtime())
        out.append(f"{stamp}, RSA key, id: {keyid}, key: {key[:12]}...")
    return out


def cmd_listcerts(p: Any, req: Request) -> list[str]:
    out = _list_header("List of X.509 End Certificates:")
    store = p.certstore
    if store is not None:
        out.extend(store.list_lines("end", utc="utc" in req.flags))
    return out


def cmd_listcacerts(p: Any, req: Request) -> list[str]:
    out = _list_header("List of X.509 CA Certificates:")
    store = p.certstore
    if store is not None:
        out.extend(store.list_lines("ca", utc="utc" in req.flags))
    return out


def cmd_listcrls(p: Any, req: Request) -> list[str]:
    out = _list_header("List of CRLs:")
    store = p.certstore
    if store is not None:
        out.extend(store.list_lines("crl", utc="utc" in req.flags))
    return out


def cmd_listpsks(p: Any, req: Request) -> list[str]:
    out = _list_header(f"List of Pre-shared secrets (from {p.opts.secretsfile})")
    if p.secrets is not None:
        for entry in p.secrets.entries:
            # indices and kinds only: never the secret itself
            ids = " ".join(i.display() for i in entry.ids) or "%any"
            out.append(f"    {entry.kind} {ids}")
    return out


def cmd_listevents(p: Any, req: Request) -> list[str]:
    now = time.monotonic()
    out = _list_header("List of events:")
    for st in p.states:
        for name, when in sorted(st.events.items(), key=lambda kv: kv[1]):
            out.append(f"{int(when - now)}s: {name}, SA #{st.serial}")
    return out


def cmd_checkpubkeys(p: Any, req: Request) -> list[str]:
    return []


def cmd_listall(p: Any, req: Request) -> list[str]:
    return (cmd_listpubkeys(p, req) + cmd_listcerts(p, req) + cmd_listcacerts(p, req)
            + cmd_listcrls(p, req))


STATUS: dict[str, Callable[[Any, Request], list[str]]] = {
    "status": cmd_status,
    "briefstatus": cmd_briefstatus,
    "showstates": cmd_showstates,
    "connectionstatus": cmd_connectionstatus,
    "briefconnectionstatus": cmd_briefconnectionstatus,
    "trafficstatus": cmd_trafficstatus,
    "shuntstatus": cmd_shuntstatus,
    "fipsstatus": cmd_fipsstatus,
    "processstatus": cmd_processstatus,
    "addresspoolstatus": cmd_addresspoolstatus,
    "globalstatus": cmd_globalstatus,
    "listpubkeys": cmd_listpubkeys,
    "listcerts": cmd_listcerts,
    "listcacerts": cmd_listcacerts,
    "listcrls": cmd_listcrls,
    "listpsks": cmd_listpsks,
    "listevents": cmd_listevents,
    "checkpubkeys": cmd_checkpubkeys,
    "listall": cmd_listall,
}
