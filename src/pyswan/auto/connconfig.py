"""Typed connection and `config setup` descriptions.

`ConnectionConfig` is what pluto and the IKE engine consume; it is built only
by `pyswan.auto.extract.extract_conn()` from `(end, keyword, value)` triples,
so defaults live in one place.  Defaults follow Libreswan 5.x
programs/pluto/extract.c where it disagrees with the man page
(initial-contact=no, vti-routing=no, metric unset, logip=yes).

Durations are float seconds, except `retransmit_interval` (int milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyswan.auto.values import (
    ID,
    AddressPool,
    IPAddress,
    IpsecInterface,
    Mark,
    ProtoPort,
    Selector,
)

__all__ = ["EndConfig", "ConnectionConfig", "SetupConfig", "Triple"]

Triple = tuple[str, str, str]
"""(end, keyword, value): end is "left", "right" or "" (connection-wide)."""


@dataclass(frozen=True, slots=True)
class EndConfig:
    """One end (left or right) of a connection."""

    leftright: str  # "left" | "right"
    # left=/right=
    host: str | None = None  # as written
    host_kind: str = "unset"  # addr|any|defaultroute|oppo|oppogroup|group|dns|iface|unset
    host_addr: IPAddress | None = None  # numeric address, when known
    iface: str | None = None  # for left=%eth0
    ikeport: int | None = None  # None: 500/4500
    nexthop: str | None = None  # as written
    nexthop_kind: str = "unset"  # addr|defaultroute|direct|unset
    nexthop_addr: IPAddress | None = None
    # what traffic this end protects
    subnet: str | None = None  # leftsubnet= as written
    subnets: tuple[Selector, ...] = ()  # parsed leftsubnet= (with protoport merged)
    subnets_list: tuple[Selector, ...] = ()  # leftsubnets={...}: one Child SA each
    virtual_subnet: str | None = None  # IKEv1 vhost:/vnet: form, unparsed
    sourceip: tuple[IPAddress, ...] = ()
    protoport: ProtoPort | None = None
    interface_ip: object = None  # ipaddress.IPv4Interface | IPv6Interface
    vti: object = None  # ipaddress.IPv4Interface | IPv6Interface
    # identity and authentication
    id: ID | None = None  # None: unset (acts as wildcard / filled in later)
    id_from_host: bool = False  # id defaulted from the host address
    auth: str = "never"  # secret|rsasig|ecdsa|eddsa|null|never|eaponly
    auth_explicit: bool = False  # leftauth= was given
    autheap: str = "none"  # none|tls
    cert: str | None = None
    ckaid: str | None = None
    ca: str | None = None  # DN, "%same" or "%any"
    sendcert: str = "always"  # always|sendifasked|never
    pubkey_keyword: str | None = None  # rsasigkey|ecdsakey|eddsakey|pubkey
    pubkey: str | None = None  # raw value (0s..., 0x..., %cert, %dns)
    rsasigkey: str | None = None
    ecdsakey: str | None = None
    eddsakey: str | None = None
    # scripts
    updown: str | None = "ipsec _updown"  # None: disabled (%disabled or "")
    updown_config: tuple[str, ...] = ()  # exec, async
    # XAUTH / ModeCfg / CP
    xauthserver: bool = False
    xauthclient: bool = False
    modecfgserver: bool = False
    modecfgclient: bool = False
    username: str | None = None
    addresspool: tuple[AddressPool, ...] = ()
    cat: bool = False
    groundhog: bool = False
    # FreeS/WAN-era group list; no ipsec.conf keyword sets it in 5.x.
    groups: tuple[str, ...] = ()

    @property
    def has_client(self) -> bool:
        """True when this end protects more than its own host address."""
        return bool(self.subnets or self.subnets_list or self.addresspool)


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """A connection as pluto sees it after `extract_conn()`."""

    name: str
    left: EndConfig
    right: EndConfig
    ike_version: int = 2
    auto: str = "ignore"  # ignore|add|ondemand|up|keep
    type: str = "tunnel"  # tunnel|transport|passthrough|drop
    kind: str = "permanent"  # permanent|template|group|labeled_template
    hostaddrfamily: int = 4  # 4|6, from the host addresses
    authby: tuple[str, ...] = ()  # as written (empty: version default)
    ike: str | None = None  # proposal strings, None = built-in defaults
    esp: str | None = None
    ah: str | None = None
    phase2: str | None = "esp"  # esp|ah; None for never-negotiate
    phase2alg: str | None = None  # the esp=/ah= string actually in use
    pfs: bool = True
    ikelifetime: float = 28800.0
    ipsec_lifetime: float = 28800.0
    ipsec_max_bytes: int = 2**63
    ipsec_max_packets: int = 2**63
    rekey: bool = True
    reauth: bool = False
    rekeymargin: float = 540.0
    rekeyfuzz: int = 100
    replay_window: int = 128
    retransmit_interval: int = 500  # milliseconds
    retransmit_timeout: float = 60.0
    dpddelay: float = 0.0
    dpdtimeout: float = 0.0
    encapsulation: str = "auto"  # yes|no|auto
    nat_keepalive: bool = True
    nat_ikev1_method: str = "both"
    fragmentation: str = "yes"  # yes|no|force
    esn: str = "either"  # yes|no|either
    compress: bool = False
    narrowing: bool = False
    mobike: bool = False
    initial_contact: bool = False
    failureshunt: str = "none"  # none|pass|drop
    negotiationshunt: str = "drop"  # pass|drop
    aggressive: bool = False
    modecfgpull: bool = False
    modecfgdns: tuple[IPAddress, ...] = ()
    modecfgdomains: tuple[str, ...] = ()
    modecfgbanner: str | None = None
    ignore_peer_dns: bool = False
    metric: int | None = None
    mtu: int | None = None
    priority: int = 0  # 0: automatic
    tfc: int = 0
    reqid: int | None = None  # None: automatic
    mark: Mark | None = None
    mark_in: Mark | None = None
    mark_out: Mark | None = None
    nflog_group: int = 0
    connalias: tuple[str, ...] = ()
    sendca: str = "all"  # none|issuer|all
    ikepad: str | None = None  # yes|no|auto (IKEv1)
    send_redirect: str | None = None  # yes|no|auto
    redirect_to: tuple[str, ...] = ()
    accept_redirect: bool = False
    accept_redirect_to: tuple[str, ...] = ()
    remote_peer_type: str = "ietf"  # ietf|cisco
    cisco_unity: bool = False
    cisco_split: bool = False
    nm_configured: bool = False
    xauthby: str = "file"  # file|pam|alwaysok
    xauthfail: str = "hard"  # hard|soft
    ppk: str | None = None  # never|permit|propose|insist
    ppk_ids: tuple[str, ...] = ()
    intermediate: bool = False
    session_resumption: bool = False
    send_supported_auth_methods: bool = False
    sec_label: str | None = None
    ipsec_interface: IpsecInterface | None = None
    vti_interface: str | None = None
    vti_routing: bool = False
    vti_shared: bool = False
    nic_offload: str = "no"  # no|crypto|packet
    enable_tcp: str = "no"  # no|yes|fallback
    tcp_remoteport: int = 4500
    clones: int | None = None
    iptfs: bool = False
    iptfs_fragmentation: bool = True
    iptfs_packet_size: int = 0
    iptfs_max_queue_size: int = 0
    iptfs_reorder_window: int = 0
    iptfs_init_delay: float = 0.0
    iptfs_drop_time: float = 0.0
    decap_dscp: bool = False
    encap_dscp: bool = True
    nopmtudisc: bool = False
    pam_authorize: bool = False
    require_id_on_certificate: bool = True
    dns_match_id: bool = False
    ms_dh_downgrade: bool = False
    pfs_rekey_workaround: bool = False
    share_lease: bool = True
    sha2_truncbug: bool = False
    overlapip: bool = False
    reject_simultaneous_ike_auth: bool = False
    send_esp_tfc_padding_not_supported: bool = False
    fake_strongswan: bool = False
    send_vendorid: bool = False
    debug: str | None = None
    keywords: tuple[tuple[str, str, str], ...] = ()  # the triples it came from
    warnings: list[str] = field(default_factory=list)  # print as `warning: "name": ...`
    notices: list[str] = field(default_factory=list)  # print as `"name": ...`

    @property
    def never_negotiate(self) -> bool:
        return self.type in ("passthrough", "drop")

    @property
    def opportunistic(self) -> bool:
        return any(e.host_kind in ("oppo", "oppogroup") for e in (self.left, self.right))

    @property
    def is_group(self) -> bool:
        return any(e.host_kind in ("group", "oppogroup") for e in (self.left, self.right))

    def end(self, leftright: str) -> EndConfig:
        return self.left if leftright == "left" else self.right


@dataclass(frozen=True, slots=True)
class SetupConfig:
    """Every `config setup` keyword, typed, with Libreswan 5.x defaults."""

    ikev1_policy: str = "drop"
    curl_iface: str | None = None
    myvendorid: str | None = "OE-Libreswan-5.4"
    plutodebug: str | None = None
    logfile: str | None = None
    loglimit: bool = True
    logtime: bool = True
    logappend: bool = True
    logip: bool = True
    audit_log: bool = True
    dnssec_enable: bool = True
    dnssec_rootkey_file: str | None = "/var/lib/unbound/root.key"
    dnssec_anchors: str | None = None
    dumpdir: str = "/run/pluto"
    ipsecdir: str = "/etc/ipsec.d"
    nssdir: str = "/var/lib/ipsec/nss"
    exampledir: str | None = None
    rundir: str = "/run/pluto"
    logstderr: str | None = None
    secretsfile: str = "/etc/ipsec.secrets"
    statsbin: str | None = None
    uniqueids: bool = True
    shuntlifetime: float = 900.0
    global_redirect: str = "no"
    global_redirect_to: str | None = None
    crl_strict: bool = False
    crlcheckinterval: float = 0.0
    crl_timeout: float = 5.0
    ocsp_strict: bool = False
    ocsp_enable: bool = False
    ocsp_uri: str | None = None
    ocsp_timeout: float = 2.0
    ocsp_trustname: str | None = None
    ocsp_cache_size: int = 1000
    ocsp_cache_min_age: float = 3600.0
    ocsp_cache_max_age: float = 86400.0
    ocsp_method: str = "get"
    seccomp: str = "disabled"
    ddos_mode: str = "auto"
    ddos_ike_threshold: int = 25000
    max_halfopen_ike: int = 50000
    ike_socket_bufsize: int | None = None
    ike_socket_errqueue: bool = True
    expire_lifetime: float = 30.0
    virtual_private: str | None = None
    seeddev: str = "/dev/random"
    seedbits: int = 0
    keep_alive: float = 20.0
    listen_tcp: bool = False
    listen_udp: bool = True
    listen: str | None = None
    protostack: str = "xfrm"
    nhelpers: int = -1
    drop_oppo_null: bool = False
    expire_shunt_interval: float = 20.0
    dns_resolver: str = "file"
    ipsec_interface_managed: bool = True
    nflog_all: int = 0
    warnings: list[str] = field(default_factory=list)
    # keyword -> value string, as given (after aliases), for `--configsetup`
    given: dict[str, str] = field(default_factory=dict)

    def get(self, keyword: str) -> object:
        """Value of a keyword by its ipsec.conf name (`ikev1-policy`)."""
        return getattr(self, keyword.replace("-", "_"))
