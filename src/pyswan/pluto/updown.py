"""Running the updown command (`leftupdown=`, whack `--updown`).

pluto runs the command with /bin/sh for the verbs of libreswan(7): prepare, route, up,
down, unroute, each suffixed -host or -client and -v6 for IPv6. What the script needs
(connection name, IDs, addresses, SPIs ...) reaches it only through PLUTO_* environment
variables, never by interpolation into the command line: a connection named
`$(reboot)` is harmless. Output is logged line by line; a non-zero exit is logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from importlib import resources
from typing import Any

DEFAULT = "ipsec _updown"
TIMEOUT = 60.0


def default_script() -> str:
    return str(resources.files("pyswan") / "data" / "_updown")


def _client(end: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if end.subnets:
        return end.subnets[0].network
    addr = end.host_addr
    return ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")


def _my_lease(this: Any, st: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The address our end was leased by the peer's CP(CFG_REPLY) (Libreswan's
    spd_end_sourceip()), when this end is a modecfg client."""
    text = getattr(st, "lease", "") if st is not None else ""
    if not text or not (this.modecfgclient or this.addresspool) or this.cat:
        return None
    return ipaddress.ip_network(text.split(",")[0])


def verb_for(conn: Any, base: str) -> str:
    """`up` -> `up-client`, `up-host-v6`, ... as libreswan(7) describes."""
    this, that = conn.this, conn.that
    host_to_host = not this.subnets and not that.subnets
    verb = f"{base}-{'host' if host_to_host else 'client'}"
    if this.host_addr is not None and this.host_addr.version == 6:
        verb += "-v6"
    return verb


def environment(pluto: Any, conn: Any, verb: str, st: Any = None) -> dict[str, str]:
    c = conn.config
    this, that = conn.this, conn.that
    mine, peers = _client(this), _client(that)
    lease = _my_lease(this, st)
    if lease is not None:  # a modecfg client's end is the address it was given
        mine = lease
    my_proto = this.subnets[0].protocol if this.subnets else (this.protoport.protocol if this.protoport else 0)
    peer_proto = that.subnets[0].protocol if that.subnets else (that.protoport.protocol if that.protoport else 0)
    my_port = this.subnets[0].port if this.subnets else (this.protoport.port if this.protoport else 0)
    peer_port = that.subnets[0].port if that.subnets else (that.protoport.port if that.protoport else 0)
    peer_addr = st.peer[0] if st is not None and st.peer else that.host_addr
    nexthop = this.nexthop_addr or peer_addr
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PLUTO_VERSION": "2.0",
        "PLUTO_VERB": verb,
        "PLUTO_CONNECTION": conn.name,
        "PLUTO_CONNECTION_TYPE": c.type,
        "PLUTO_CONN_KIND": "CK_INSTANCE" if conn.instance_no is not None else "CK_PERMANENT",
        "PLUTO_CONN_ADDRFAMILY": "ipv6" if mine.version == 6 else "ipv4",
        "PLUTO_VIRT_INTERFACE": "NULL",
        "PLUTO_INTERFACE": conn.interface_name or "NULL",
        "PLUTO_XFRMI_ROUTE": "",
        "PLUTO_NEXT_HOP": str(nexthop) if nexthop is not None else "",
        "PLUTO_ME": str(this.host_addr) if this.host_addr is not None else "",
        "PLUTO_MY_ID": this.id.display() if this.id is not None else "",
        "PLUTO_MY_CLIENT": str(mine),
        "PLUTO_MY_CLIENT_NET": str(mine.network_address),
        "PLUTO_MY_CLIENT_MASK": str(mine.netmask),
        "PLUTO_MY_PORT": str(my_port),
        "PLUTO_MY_PROTOCOL": str(my_proto),
        "PLUTO_PEER": str(peer_addr) if peer_addr is not None else "",
        "PLUTO_PEER_ID": (st.peer_id if st is not None and st.peer_id else
                          (that.id.display() if that.id is not None else "")),
        "PLUTO_PEER_CLIENT": str(peers),
        "PLUTO_PEER_CLIENT_NET": str(peers.network_address),
        "PLUTO_PEER_CLIENT_MASK": str(peers.netmask),
        "PLUTO_PEER_PORT": str(peer_port),
        "PLUTO_PEER_PROTOCOL": str(peer_proto),
        "PLUTO_PEER_CA": that.ca or "",
        "PLUTO_STACK": getattr(pluto.kernel, "name", "xfrm"),
        "PLUTO_CONN_POLICY": _policy(conn),
        "PLUTO_IS_PEER_CISCO": "1" if c.remote_peer_type == "cisco" else "0",
        "PLUTO_NM_CONFIGURED": "1" if c.nm_configured else "0",
        # an end with an addresspool= is a modecfg client, its peer the server (extract.c)
        "PLUTO_CFG_SERVER": "1" if this.modecfgserver or that.addresspool else "0",
        "PLUTO_CFG_CLIENT": "1" if this.modecfgclient or this.addresspool else "0",
        # what the peer's configuration payload said (Libreswan: st_seen_cfg_*)
        "PLUTO_PEER_BANNER": getattr(st, "seen_banner", "") if st is not None else "",
        "PLUTO_PEER_DNS_INFO": getattr(st, "seen_dns", "") if st is not None else "",
        "PLUTO_PEER_DOMAIN_INFO": getattr(st, "seen_domains", "") if st is not None else "",
        "PLUTO_NFLOG_GROUP": str(c.nflog_group or ""),
        "PLUTO_METRIC": str(c.metric or ""),
        "PLUTO_MTU": str(c.mtu or ""),
        "PLUTO_MY_SOURCEIP": str(this.sourceip[0]) if this.sourceip else (
            str(lease.network_address) if lease is not None else ""),
        "CAT": "YES" if this.cat else "",
        "VTI_IFACE": c.vti_interface or "",
        "VTI_ROUTING": "yes" if c.vti_routing else "no",
        "VTI_SHARED": "yes" if c.vti_shared else "no",
    }
    if c.mark_in is not None:
        env["PLUTO_MARK_IN"] = str(c.mark_in)
    if c.mark_out is not None:
        env["PLUTO_MARK_OUT"] = str(c.mark_out)
    if st is not None:
        env.update({
            "PLUTO_SA_REQID": str(getattr(st, "reqid", 0) or ""),
            "PLUTO_SA_TYPE": st.protocol,
            "SPI_IN": f"0x{st.spi_in:x}",
            "SPI_OUT": f"0x{st.spi_out:x}",
            "PLUTO_INBYTES": str(st.in_bytes),
            "PLUTO_OUTBYTES": str(st.out_bytes),
            "PLUTO_ADDTIME": str(int(st.add_time)),
            "PLUTO_PEER_USERNAME": st.username or "",
        })
    return env


def _policy(conn: Any) -> str:
    from .status import policy_string

    return policy_string(conn)


async def run_updown(pluto: Any, conn: Any, base: str, st: Any = None, whack: Any = None) -> bool:
    """Run the updown command for `base` (prepare/route/up/down/unroute); True on success."""
    command = conn.this.updown
    if not command or command in ("%disabled",):
        return True
    if command == DEFAULT:
        if getattr(pluto.kernel, "name", "") != "xfrm":
            # the default script edits real routes: nothing to do for the in-memory kernel
            # (the line is formatted only when debugging: this runs thrice per tunnel up)
            if pluto.log.dbg:
                pluto.log.debug(f"{conn.prefix}: skipping default updown "
                                f"{verb_for(conn, base)} (kernel {pluto.kernel.name})")
            return True
    verb = verb_for(conn, base)
    if command == DEFAULT:
        command = f"/bin/sh {default_script()}"
    env = environment(pluto, conn, verb, st)
    if "updown" in pluto.log.debugging:
        command = f"set -v -x; {command}"
    serial = f" #{st.serial}" if st is not None else ""
    try:
        proc = await asyncio.create_subprocess_shell(
            command, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as e:
        pluto.log.log(f"{conn.prefix}{serial}: {verb} command failed to start: {e.strerror}", whack)
        return False
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pluto.log.log(f"{conn.prefix}{serial}: {verb} command timed out after {TIMEOUT:g}s", whack)
        return False
    for line in out.decode(errors="replace").splitlines():
        pluto.log.log(f"{conn.prefix}{serial}: {verb} output: {line}")
    if proc.returncode != 0:
        pluto.log.log(f"{conn.prefix}{serial}: {verb} command exited with status {proc.returncode}", whack)
        return False
    return True
