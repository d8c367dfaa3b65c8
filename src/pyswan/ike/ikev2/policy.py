"""What the engine needs to know about a connection, and how it finds one.

The daemon owns connections (``ConnectionConfig`` + runtime state); the engine sees each as
a :class:`Policy`: addresses, identities, authentication, parsed proposals and traffic
selectors, timers.  ``Policy.handle`` is opaque to the engine and lets the glue map
actions back to its connection.

:class:`PolicyIndex` answers the responder's questions without scanning every connection:
which policies serve this (local, remote) address pair (IKE_SA_INIT), and which of those
expect this peer ID (IKE_AUTH).  :class:`Credentials` is how secrets reach the engine
(PSK now; private and public keys are the seam for signature authentication).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from struct import Struct
from typing import Any, Protocol

from ..codec import TrafficSelector
from ..constants import IdType, TsType
from ..proposals import ProposalSet

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[IPAddress, int]

_ID_HEAD = Struct("!B3x")
_ID_TYPE_NAMES = {
    IdType.IPV4_ADDR: "IPV4_ADDR", IdType.FQDN: "FQDN", IdType.RFC822_ADDR: "USER_FQDN",
    IdType.IPV6_ADDR: "IPV6_ADDR", IdType.DER_ASN1_DN: "DER_ASN1_DN",
    IdType.DER_ASN1_GN: "DER_ASN1_GN", IdType.KEY_ID: "KEY_ID", IdType.NULL: "NULL",
}


class IdentityError(ValueError):
    """An ID payload whose data does not fit its type."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKEv2 identity: ID type and the identification data as sent on the wire.

    ``text`` is how Libreswan prints it (``@east``, ``192.0.2.1``, a DN); for received IDs
    it is derived from the data.
    """

    id_type: int
    data: bytes
    text: str = ""

    @classmethod
    def of(cls, id_type: int, data: bytes, text: str = "") -> Identity:
        """Validate ``data`` for ``id_type`` and fill in the display text."""
        if id_type == IdType.IPV4_ADDR:
            if len(data) != 4:
                raise IdentityError(f"IPV4_ADDR ID has {len(data)} octets")
            text = text or str(ipaddress.IPv4Address(data))
        elif id_type == IdType.IPV6_ADDR:
            if len(data) != 16:
                raise IdentityError(f"IPV6_ADDR ID has {len(data)} octets")
            text = text or str(ipaddress.IPv6Address(data))
        elif id_type == IdType.FQDN:
            if not data:
                raise IdentityError("FQDN ID is empty")
            text = text or "@" + data.decode("ascii", "backslashreplace")
        elif id_type == IdType.RFC822_ADDR:
            if not data:
                raise IdentityError("USER_FQDN ID is empty")
            text = text or data.decode("ascii", "backslashreplace")
        elif id_type == IdType.KEY_ID:
            text = text or "@#0x" + data.hex()
        elif id_type == IdType.NULL:
            text = text or "ID_NULL"
        elif id_type in (IdType.DER_ASN1_DN, IdType.DER_ASN1_GN):
            if not data:
                raise IdentityError(f"{_ID_TYPE_NAMES[id_type]} ID is empty")
            text = text or data.hex()
        else:
            raise IdentityError(f"ID type {id_type} is not supported")
        return cls(id_type, data, text)

    @classmethod
    def from_address(cls, addr: IPAddress) -> Identity:
        kind = IdType.IPV4_ADDR if addr.version == 4 else IdType.IPV6_ADDR
        return cls(kind, addr.packed, str(addr))

    @property
    def key(self) -> tuple[int, object]:
        """What makes two IDs the same. A DN is compared by its attributes, not by its
        DER bytes: peers encode the same DN as PrintableString or UTF8String (Libreswan's
        same_dn() ignores the string type too)."""
        if self.id_type == IdType.DER_ASN1_DN:
            return (self.id_type, _dn_key(self.data))
        return (self.id_type, self.data)

    @property
    def type_name(self) -> str:
        """Libreswan 5.3's short ID type name, as in ``FQDN '@east'``."""
        return _ID_TYPE_NAMES.get(self.id_type, str(self.id_type))

    def body(self) -> bytes:
        """RestOfIDPayload (RFC 7296 2.15): ID type, 3 reserved octets, data."""
        return _ID_HEAD.pack(self.id_type) + self.data

    def __str__(self) -> str:
        return self.text


def _dn_key(der: bytes) -> object:
    """A DN's RDNs as (OID, value) pairs, whatever string types encoded them."""
    try:
        from cryptography import x509

        name = x509.Name.from_bytes(der)
        return tuple(tuple(sorted((a.oid.dotted_string, str(a.value)) for a in rdn))
                     for rdn in name.rdns)
    except Exception:  # not a parsable DN: fall back to the bytes
        return der


@dataclass(frozen=True, slots=True)
class Selector:
    """One traffic selector: an address range, an IP protocol (0 = any) and a port range."""

    start: IPAddress
    end: IPAddress
    protocol: int = 0
    start_port: int = 0
    end_port: int = 0xFFFF
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # computed once: selectors key the glue's and the text caches, and an ipaddress
        # hash is Python code (hex() of the integer) run twice per selector otherwise
        h = self._hash
        if not h:
            h = hash((self.start, self.end, self.protocol, self.start_port, self.end_port))
            object.__setattr__(self, "_hash", h)
        return h

    @classmethod
    def from_network(cls, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                     protocol: int = 0, port: int = 0) -> Selector:
        lo, hi = (port, port) if port else (0, 0xFFFF)
        return cls(net.network_address, net.broadcast_address, protocol, lo, hi)

    @classmethod
    def from_ts(cls, ts: TrafficSelector) -> Selector:
        return cls(ts.start_addr, ts.end_addr, ts.ip_protocol, ts.start_port, ts.end_port)

    @property
    def version(self) -> int:
        return self.start.version

    def to_ts(self) -> TrafficSelector:
        kind = TsType.IPV4_ADDR_RANGE if self.start.version == 4 else TsType.IPV6_ADDR_RANGE
        return TrafficSelector(kind, self.protocol, self.start_port, self.end_port,
                               self.start, self.end)

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The CIDR this range is, or None when it is not a single prefix."""
        return _network(self.start, self.end)

    def contains(self, other: Selector) -> bool:
        return (self.start.version == other.start.version
                and self.start <= other.start and other.end <= self.end
                and (self.protocol == 0 or self.protocol == other.protocol)
                and self.start_port <= other.start_port and other.end_port <= self.end_port)

    def intersect(self, other: Selector) -> Selector | None:
        if self.start.version != other.start.version:
            return None
        if self.protocol and other.protocol and self.protocol != other.protocol:
            return None
        start, end = max(self.start, other.start), min(self.end, other.end)
        lo, hi = max(self.start_port, other.start_port), min(self.end_port, other.end_port)
        if start > end or lo > hi:
            return None
        return Selector(start, end, self.protocol or other.protocol, lo, hi)

    def __str__(self) -> str:
        """Libreswan's selector text: ``10.1.0.0/24`` (plus ``/proto/port`` when set)."""
        return _selector_text(self)


@lru_cache(maxsize=4096)
def _network(start: IPAddress, end: IPAddress
             ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if start > end:
        return None
    nets = list(ipaddress.summarize_address_range(start, end))  # type: ignore[type-var]
    return nets[0] if len(nets) == 1 else None


@lru_cache(maxsize=4096)
def _selector_text(sel: Selector) -> str:
    net = sel.network()
    text = str(net) if net is not None else f"{sel.start}-{sel.end}"
    if sel.protocol or (sel.start_port, sel.end_port) != (0, 0xFFFF):
        port = sel.start_port if sel.start_port == sel.end_port else 0
        text += f"/{sel.protocol}/{port}"
    return text


@dataclass(eq=False, slots=True)
class Policy:
    """One connection as the engine sees it.  Immutable in practice: the glue builds a new
    policy when the connection changes."""

    name: str
    handle: Any  # the glue's connection object
    local_addr: IPAddress
    remote_addr: IPAddress | None  # None: %any (a template)
    local_port: int
    remote_port: int
    local_id: Identity
    remote_id: Identity | None  # None: any ID is acceptable
    ike: ProposalSet
    esp: ProposalSet
    local_auth: str = "secret"  # secret|rsasig|ecdsa|eddsa|null
    remote_auth: str = "secret"
    local_ts: tuple[Selector, ...] = ()
    remote_ts: tuple[Selector, ...] = ()
    mode: str = "tunnel"  # tunnel|transport
    narrowing: bool = False
    esn: str = "either"  # yes|no|either
    pfs: bool = True
    fragmentation: bool = True
    initial_contact: bool = False
    send_idr: bool = True
    retransmit_interval: float = 0.5
    retransmit_timeout: float = 60.0
    ike_lifetime: float = 28800.0
    ipsec_lifetime: float = 28800.0
    rekey: bool = True
    rekey_margin: float = 540.0
    rekey_fuzz: int = 100
    reauth: bool = False  # reauth=yes: rekey the IKE SA by re-authenticating (replace)
    uniqueids: bool = True  # config setup uniqueids=: a new IKE SA replaces older ones
    replay_window: int = 128
    dpd: str = "passive"
    dpd_delay: float = 0.0  # dpddelay=: liveness probe interval (0: passive)
    local_nat_port: int = 4500  # where IKE moves when a NAT is detected (RFC 7296 2.23)
    remote_nat_port: int = 4500
    encapsulation: str = "auto"  # yes: always UDP-encapsulate ESP (and float to NAT ports)
    # public-key authentication (see authn.py)
    sig_hashes: tuple[int, ...] = (4, 3, 2)  # RFC 7427 hashes allowed, preferred first
    rsa_pss: bool = True  # RSASSA-PSS digital signatures (authby=rsasig, rsa-sha2*)
    rsa_v15: bool = True  # method 1, PKCS#1 v1.5 with SHA-1 (authby=rsasig, rsa-sha1)
    send_cert: str = "always"  # always|sendifasked|never
    # configuration payloads (RFC 7296 3.15; Libreswan's ikev2_cp.c)
    cp_request: bool = False  # send CP(CFG_REQUEST) in IKE_AUTH (modecfg client, dns/domains)
    cp_client: bool = False  # our end is a modecfg client: the reply's lease is our client
    cp_server: bool = False  # our end is a modecfg server: lease to the peer, require CP
    local_leftright: str = "left"  # which end of the connection we are (for log lines)
    modecfg_dns: tuple[IPAddress, ...] = ()  # modecfgdns=: sent in CP(CFG_REPLY)
    modecfg_domains: tuple[str, ...] = ()  # modecfgdomains=
    # derived once, used on every initiation (see prepare())
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def pair(self) -> tuple[IPAddress, IPAddress | None]:
        return (self.local_addr, self.remote_addr)

    @property
    def is_template(self) -> bool:
        return self.remote_addr is None


_SHARED: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}


def shared_cache(kind: str, proposals: Any) -> dict[str, Any]:
    """A cache attached to a parsed proposal set rather than to one connection: many
    connections share the same ``ike=``/``esp=`` (the glue hands them the same object), so
    what is derived from the proposals alone (encoded SA payloads, selection results) is
    computed once for all of them."""
    key = (kind, id(proposals))
    got = _SHARED.get(key)
    if got is None or got[0] is not proposals:
        if len(_SHARED) > 1024:
            _SHARED.clear()
        got = _SHARED[key] = (proposals, {})
    return got[1]


class Credentials(Protocol):
    """Secrets for authentication, looked up by the engine when it needs them."""

    def psk(self, local: Identity, remote: Identity | None) -> bytes | None:
        """The pre-shared key for this pair of IDs, or None."""
        ...


class NoCredentials:
    def psk(self, local: Identity, remote: Identity | None) -> bytes | None:
        return None


class LeaseError(Exception):
    """No address could be leased to the peer; the text is logged (e.g. ``address pool
    exhausted``)."""


class AddressLeases(Protocol):
    """How a responder that is a modecfg server gets addresses for its peers: an optional
    ``lease`` method of the credentials object (the daemon keeps the pools)."""

    def lease(self, policy: Policy, peer: Identity, version: int
              ) -> tuple[IPAddress, str] | None:
        """An address of IP ``version`` for the peer of ``policy`` (the same one again
        while the connection holds it) and a line to log (may be empty); None when the
        connection has no pool for that version; raises :class:`LeaseError`."""
        ...


class PolicyIndex:
    """Policies by address pair and by (address pair, peer ID), in insertion order.

    ``generation`` changes with every add/remove so that callers can cache lookups.
    """

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._by_pair: dict[tuple[IPAddress, IPAddress | None], list[Policy]] = {}
        self._by_peer: dict[tuple[IPAddress, IPAddress | None, Any], list[Policy]] = {}
        self.generation = 0
        #: the daemon's hook making an instance of a template for one peer (address, ID)
        self.instantiator: Callable[[Policy, IPAddress, Identity | None], Policy] | None = None
        for p in policies:
            self.add(p)

    def instantiate(self, policy: Policy, remote: IPAddress, peer: Identity) -> Policy:
        """Responder, IKE_AUTH: the instance of template ``policy`` for this peer, or the
        policy completed with the peer's ID when it accepted any (the policy itself when
        there is no hook, as in the in-process tests)."""
        if self.instantiator is None or not (policy.is_template or policy.remote_id is None):
            return policy
        return self.instantiator(policy, remote, peer)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_pair.values())

    def add(self, policy: Policy) -> None:
        self._by_pair.setdefault(policy.pair, []).append(policy)
        key = policy.remote_id.key if policy.remote_id is not None else None
        self._by_peer.setdefault((*policy.pair, key), []).append(policy)
        self.generation += 1

    def remove(self, policy: Policy) -> None:
        for table, key in ((self._by_pair, policy.pair),
                           (self._by_peer, (*policy.pair, policy.remote_id.key
                                            if policy.remote_id is not None else None))):
            lst = table.get(key)  # type: ignore[attr-defined]
            if lst and policy in lst:
                lst.remove(policy)
                if not lst:
                    del table[key]  # type: ignore[attr-defined]
        self.generation += 1

    def clear(self) -> None:
        self._by_pair.clear()
        self._by_peer.clear()
        self.generation += 1

    def candidates(self, local: IPAddress, remote: IPAddress) -> list[Policy]:
        """IKE_SA_INIT: policies for exactly this pair, then templates (remote %any)."""
        exact = self._by_pair.get((local, remote), [])
        templates = self._by_pair.get((local, None), [])
        if not templates:
            return exact
        return exact + templates

    def for_peer(self, local: IPAddress, remote: IPAddress, peer: Identity) -> list[Policy]:
        """IKE_AUTH: policies for this pair expecting ``peer``; then those accepting any ID;
        then templates likewise."""
        out: list[Policy] = []
        for addr in (remote, None):
            out.extend(self._by_peer.get((local, addr, peer.key), ()))
            out.extend(self._by_peer.get((local, addr, None), ()))
        return out
