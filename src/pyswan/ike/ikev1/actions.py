"""Actions only the IKEv1 engine emits (the rest are ``pyswan.ike.ikev2.actions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address


@dataclass(slots=True)
class ModeCfgLease:
    """The ModeCfg server gave this ISAKMP SA's client an address (and resolvers): the
    glue adds it to the interface and uses it as the source of the tunnel."""

    serial: int
    address: IPv4Address | IPv6Address
    dns: tuple[IPv4Address | IPv6Address, ...] = field(default_factory=tuple)
    domains: tuple[str, ...] = ()  # MODECFG_DOMAIN (Cisco Unity)
    banner: str = ""  # MODECFG_BANNER


@dataclass(slots=True)
class XauthPrompt:
    """An XAUTH client was challenged and has no password (no XAUTH secret, or no
    username): ask the operator, through the whack that started the negotiation, then
    call ``Engine.xauth_answer(serial, user, password, now)``."""

    serial: int
    user: str  # "" when leftusername= is unset: prompt for it too
