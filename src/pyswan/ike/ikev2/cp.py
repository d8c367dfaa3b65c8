"""Configuration payloads in IKE_AUTH (RFC 7296 3.15, RFC 8598), as Libreswan's
ikev2_cp.c does them.

* Initiator (modecfg client, or a connection with modecfgdns=/modecfgdomains=): asks with
  CP(CFG_REQUEST) {INTERNAL_IPn_ADDRESS, INTERNAL_IPn_DNS per family it proposes,
  INTERNAL_DNS_DOMAIN}, all empty; a modecfg client then requires the CP(CFG_REPLY) and
  uses the address it got as its end of the Child SA ("CP scribbling on end").
* Responder (modecfg server: our end is modecfgserver=yes or the peer's end has an
  addresspool=): requires CP(CFG_REQUEST), leases an address per family asked for through
  the daemon (``AddressLeases``), uses the lease as the peer's selector instead of its TSi,
  and answers CP(CFG_REPLY) {addresses, modecfgdns=, modecfgdomains=}.  Like Libreswan,
  IPv6 addresses carry a prefix-length octet (128) in the reply.  modecfgbanner= is
  IKEv1-only (Libreswan sends no banner in IKEv2).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import TYPE_CHECKING

from ..codec import CP, Payload, TSi
from ..constants import CfgType, ConfigAttribute, NotifyType
from .actions import PolicySwitched
from .policy import LeaseError, Policy, Selector

if TYPE_CHECKING:
    from .engine import Engine
    from .sa import ChildSa, IkeSa

A = ConfigAttribute
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ADDRESS = {4: A.INTERNAL_IP4_ADDRESS, 6: A.INTERNAL_IP6_ADDRESS}
_DNS = {4: A.INTERNAL_IP4_DNS, 6: A.INTERNAL_IP6_DNS}
_IPV6_PREFIX_LEN = b"\x80"  # IKEv2_INTERNAL_IP6_PREFIX_LEN (128)


def _cfg_name(kind: int) -> str:
    try:
        return f"IKEv2_CP_{CfgType(kind).name}"
    except ValueError:
        return str(kind)


def _attr_name(kind: int) -> str:
    try:
        return A(kind).name
    except ValueError:
        return str(kind)


def request(local_ts: tuple[Selector, ...]) -> CP:
    """CP(CFG_REQUEST): address and DNS for each family we propose, then the domain."""
    attrs: list[tuple[int, bytes]] = []
    for version in (4, 6):
        if any(s.version == version for s in local_ts):
            attrs += [(_ADDRESS[version], b""), (_DNS[version], b"")]
    attrs.append((A.INTERNAL_DNS_DOMAIN, b""))
    return CP(CfgType.CFG_REQUEST, attrs)


def reply(leases: list[IPAddress], policy: Policy) -> CP:
    """CP(CFG_REPLY) with the peer's leases, then modecfgdns= and modecfgdomains=."""
    attrs: list[tuple[int, bytes]] = []
    for addr in leases:
        extra = _IPV6_PREFIX_LEN if addr.version == 6 else b""
        attrs.append((_ADDRESS[addr.version], addr.packed + extra))
    for dns in policy.modecfg_dns:
        extra = _IPV6_PREFIX_LEN if dns.version == 6 else b""
        attrs.append((_DNS[dns.version], dns.packed + extra))
    for domain in policy.modecfg_domains:
        attrs.append((A.INTERNAL_DNS_DOMAIN, domain.encode()))
    return CP(CfgType.CFG_REPLY, attrs)


def lease_for_request(eng: Engine, sa: IkeSa, payloads: list[Payload]
                      ) -> tuple[CP, list[Payload], tuple[Selector, ...]] | int:
    """Responder: lease what the CP(CFG_REQUEST) asks for.  Returns the reply, the request
    payloads with TSi replaced by the leases (Libreswan ignores the peer's TSi then) and
    the leases as selectors; or the notification to answer the Child SA with."""
    policy = sa.policy
    cp = next((p for p in payloads if type(p) is CP), None)
    if cp is None:
        eng.log(sa.serial, "IKE_AUTH request does not include a CP payload required by "
                           f"{policy.local_leftright}modecfgserver=true; Child SA ignored")
        return NotifyType.FAILED_CP_REQUIRED
    if cp.cfg_type != CfgType.CFG_REQUEST:
        eng.log(sa.serial, f"ERROR: expected IKEv2_CP_CFG_REQUEST got a "
                           f"{_cfg_name(cp.cfg_type)}")
        return NotifyType.INTERNAL_ADDRESS_FAILURE
    leases: dict[int, IPAddress] = {}
    lessor = getattr(eng.credentials, "lease", None)
    for kind, _value in cp.attributes:
        version = 4 if kind == A.INTERNAL_IP4_ADDRESS else 6 \
            if kind == A.INTERNAL_IP6_ADDRESS else 0
        if not version or version in leases:
            continue
        if lessor is None:
            continue  # no pools at all: nothing to lease
        try:
            got = lessor(policy, sa.peer_id, version)
        except LeaseError as e:
            eng.log(sa.serial, f"leasing IPv{version} address failed: {e}")
            return NotifyType.INTERNAL_ADDRESS_FAILURE
        if got is None:
            eng.debug(sa.serial, f"ignoring IPv{version} address request, no pool")
            continue
        addr, line = got
        if line:
            eng.log(sa.serial, line)
        leases[version] = addr
    if not leases:
        eng.log(sa.serial, "ERROR: no valid internal address request")
        return NotifyType.INTERNAL_ADDRESS_FAILURE
    addrs = [leases[v] for v in sorted(leases)]
    sels = tuple(Selector(a, a) for a in addrs)
    tsi = TSi([s.to_ts() for s in sels])  # type: ignore[arg-type]
    rest = [tsi if type(p) is TSi else p for p in payloads]
    return reply(addrs, policy), rest, sels


def process_reply(eng: Engine, child: ChildSa, payloads: list[Payload]) -> bool:
    """Initiator (modecfg client): take the CP(CFG_REPLY); on success the Child SA's local
    selectors are the addresses received.  Problems are logged; False rejects the Child
    SA (Libreswan answers them with TS_UNACCEPTABLE)."""
    cp = next((p for p in payloads if type(p) is CP), None)
    if cp is None:
        eng.log(child.serial, "missing v2CP reply, not attempting to setup child SA")
        return False
    if cp.cfg_type != CfgType.CFG_REPLY:
        eng.log(child.serial, f"ERROR expected IKEv2_CP_CFG_REPLY got a "
                              f"{_cfg_name(cp.cfg_type)}")
        return False
    leases: dict[int, IPAddress] = {}
    dns: list[IPAddress] = []
    domains: list[str] = []
    for kind, value in cp.attributes:
        if kind in (A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP6_ADDRESS):
            version = 4 if kind == A.INTERNAL_IP4_ADDRESS else 6
            size = 4 if version == 4 else 16
            if len(value) < size:
                eng.log(child.serial, f"ERROR malformed INTERNAL_IP{version}_ADDRESS "
                                      "attribute")
                return False
            addr = ipaddress.ip_address(value[:size])
            if addr.is_unspecified:
                eng.log(child.serial, f"ERROR INTERNAL_IP{version}_ADDRESS {addr} is invalid")
                eng.log(child.serial, f"ERROR malformed INTERNAL_IP{version}_ADDRESS "
                                      "attribute")
                return False
            dup = version in leases
            eng.log(child.serial, f"received INTERNAL_IP{version}_ADDRESS {addr}"
                                  f"{'; discarded' if dup else ''}")
            if not dup:
                leases[version] = addr
        elif kind in (A.INTERNAL_IP4_DNS, A.INTERNAL_IP6_DNS):
            version = 4 if kind == A.INTERNAL_IP4_DNS else 6
            size = 4 if version == 4 else 16
            if len(value) < size:
                eng.log(child.serial, f"ERROR invalid INTERNAL_IP{version}_DNS server "
                                      "address payload")
                return False
            server = ipaddress.ip_address(value[:size])
            if server.is_unspecified:
                eng.log(child.serial, f"ERROR invalid INTERNAL_IP{version}_DNS server "
                                      f"address {server}, unspecified")
                return False
            eng.log(child.serial, f"received INTERNAL_IP{version}_DNS server address {server}")
            dns.append(server)
        elif kind == A.INTERNAL_DNS_DOMAIN:
            domain = _printable(value)
            eng.log(child.serial, f"received INTERNAL_DNS_DOMAIN '{domain}'")
            domains.append(domain)
        else:
            eng.log(child.serial, f"unknown attribute {_attr_name(kind)} length {len(value)}")
    if leases:
        sels = tuple(Selector(a, a) for a in (leases[v] for v in sorted(leases)))
        child.local_ts = sels
        # the Child SA's copy of the policy: our end is the lease, and modecfg_dns/_domains
        # are what the server told us (updown's PLUTO_PEER_DNS_INFO/_DOMAIN_INFO)
        child.policy = replace(child.policy, local_ts=sels, modecfg_dns=tuple(dns),
                               modecfg_domains=tuple(domains), cache={})
        # tell the daemon before the kernel install: updown needs the lease (SOURCEIP)
        eng.emit(PolicySwitched(child.serial, child.policy))
    return True


def _printable(value: bytes) -> str:
    """A received domain as Libreswan logs it: ' is poison for the shell, so '?';
    vertical space becomes a blank, other unprintables \\ooo."""
    out = []
    for b in value:
        if b == 0:
            break
        c = chr(b)
        if c == "'":
            out.append("?")
        elif c in "\r\n":
            out.append(" ")
        elif c != "\\" and 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)
