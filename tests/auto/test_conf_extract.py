"""extract_conn()/extract_setup(): defaults, diagnostics (exact text), round trip."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswan.auto.connconfig import ConnectionConfig, SetupConfig
from pyswan.auto.extract import ConnError, SetupError, extract_conn, extract_setup
from pyswan.auto.parser import parse_text
from pyswan.auto.values import ID_FQDN, ID_IPV4_ADDR

HOSTS = [("left", "host", "192.1.2.45"), ("right", "host", "192.1.2.23")]
ACCEPT = SetupConfig(ikev1_policy="accept")


def conn(*extra: tuple[str, str, str], setup: SetupConfig | None = None) -> ConnectionConfig:
    return extract_conn("c", HOSTS + list(extra), setup)


def kv(text: str) -> list[tuple[str, str, str]]:
    """`leftsubnet=1.2.3.0/24 ike=aes` -> triples."""
    from pyswan.auto.keywords import lookup_conn
    out = []
    for item in text.split():
        k, _, v = item.partition("=")
        m = lookup_conn(k)
        assert m.keyword is not None
        out.append((m.end, m.keyword.name, v))
    return out


def fail(text: str, setup: SetupConfig | None = None, hosts: bool = True) -> str:
    with pytest.raises(ConnError) as e:
        extract_conn("c", (HOSTS if hosts else []) + kv(text), setup)
    assert str(e.value) == f'"c": failed to add connection: {e.value.reason}'
    return e.value.reason


def test_defaults_follow_extract_c() -> None:
    c = conn()
    assert (c.ike_version, c.auto, c.type, c.phase2, c.pfs) == (2, "ignore", "tunnel", "esp", True)
    assert (c.ikelifetime, c.ipsec_lifetime, c.rekeymargin, c.rekeyfuzz) == \
        (28800.0, 28800.0, 540.0, 100)
    assert (c.retransmit_interval, c.retransmit_timeout, c.replay_window) == (500, 60.0, 128)
    assert (c.ipsec_max_bytes, c.ipsec_max_packets) == (2**63, 2**63)
    assert (c.initial_contact, c.vti_routing, c.metric, c.sendca) == (False, False, None, "all")
    assert (c.encapsulation, c.fragmentation, c.esn, c.nat_keepalive) == \
        ("auto", "yes", "either", True)
    assert (c.negotiationshunt, c.failureshunt, c.nic_offload) == ("drop", "none", "no")
    assert (c.dpddelay, c.dpdtimeout, c.mobike, c.narrowing) == (0.0, 0.0, False, False)
    assert c.left.updown == "ipsec _updown" and c.left.sendcert == "always"
    assert c.left.auth == "rsasig" and c.right.auth == "rsasig"
    # the ID defaults to the host address
    assert c.left.id is not None and c.left.id.kind == ID_IPV4_ADDR
    assert str(c.left.id) == "192.1.2.45" and c.left.id_from_host
    assert c.left.host_kind == "addr" and c.left.host_addr == ipaddress.ip_address("192.1.2.45")
    assert c.kind == "permanent" and c.hostaddrfamily == 4
    assert c.warnings == [] and c.notices == []


def test_round_trip_from_file() -> None:
    cfg = parse_text("""\
conn %default
\tkeyexchange=ikev2
conn westnet-eastnet-ipv4-psk-ikev2
\tleft=192.1.2.45
\tleftid=@west
\tleftsubnet=192.0.1.0/24
\tright=192.1.2.23
\trightid=@east
\trightsubnet=192.0.2.0/24
\tauthby=secret
\tike=aes256-sha2_256;dh19
\tesp=aes_gcm256
\tsalifetime=1h
\trekeymargin=3m
\trekeyfuzz=50%
\tretransmit-interval=250
\tdpddelay=10s
\tauto=start
\ttype=transport
\tconnalias="a b"
\tmark=0x10/0xff
\treplay-window=64
""", "ipsec.conf")
    name = "westnet-eastnet-ipv4-psk-ikev2"
    c = extract_conn(name, cfg.triples(name))
    assert c.name == name and c.keywords == tuple(cfg.triples(name))
    assert (c.ike_version, c.auto, c.type, c.authby) == (2, "up", "transport", ("secret",))
    assert (c.ike, c.esp, c.phase2, c.phase2alg) == \
        ("aes256-sha2_256;dh19", "aes_gcm256", "esp", "aes_gcm256")
    assert (c.ipsec_lifetime, c.rekeymargin, c.rekeyfuzz) == (3600.0, 180.0, 50)
    assert (c.retransmit_interval, c.dpddelay, c.replay_window) == (250, 10.0, 64)
    assert c.connalias == ("a", "b")
    assert c.mark is not None and (c.mark.value, c.mark.mask) == (0x10, 0xFF)
    assert c.mark_in == c.mark == c.mark_out
    assert c.left.id is not None and (c.left.id.kind, str(c.left.id)) == (ID_FQDN, "@west")
    assert c.left.id.type_name == "FQDN"
    assert [str(s) for s in c.left.subnets] == ["192.0.1.0/24"]
    assert [str(s) for s in c.right.subnets] == ["192.0.2.0/24"]
    assert (c.left.auth, c.right.auth) == ("secret", "secret")


def test_ike_version_selection() -> None:
    assert conn(("", "keyexchange", "ikev1"), setup=ACCEPT).ike_version == 1
    c = conn(("", "ikev2", "no"), setup=ACCEPT)
    assert c.ike_version == 1 and c.notices == ["ikev2=no has been replaced by keyexchange=ikev1"]
    c = conn(("", "ikev2", "insist"))
    assert c.ike_version == 2 and c.notices == ["ikev2=yes has been replaced by keyexchange=ikev2"]
    c = conn(("", "keyexchange", "ikev2"), ("", "ikev2", "no"))
    assert c.ike_version == 2
    assert c.notices == ["ignoring ikev2=no which conflicts with keyexchange=ikev2"]


@pytest.mark.parametrize("text,msg", [
    ("leftsubnet=10.0.0.0/33", "leftsubnet=10.0.0.0/33 invalid, 10.0.0.0/33 invalid, too large"),
    ("rightsubnet=", "rightsubnet= invalid, empty field"),
    ("rekeyfuzz=10foo", '"rekeyfuzz=10foo" invalid, expecting % character'),
    ("rekeymargin=0xA", '"rekeymargin=0xA" invalid, unrecognized duration multiplier "xA"'),
    ("narrowing=--encrypt", '"narrowing=--encrypt" is invalid, valid options are "yes", and "no"'),
    ("nic-offload=x", '"nic-offload=x" is invalid, valid options are "no", "crypto", and "packet"'),
    ("keyexchange=ikev1", "global ikev1-policy=drop does not allow IKEv1 connections"),
    ("authby=ecdsa-sha1", "authby=ecdsa cannot use sha1, only sha2"),
    ("authby=bogus", "authby=bogus is unknown"),
    ("authby=never", "connection with authby=never must specify shunt type via type="),
    ("leftid=%fromcert authby=secret",
     "ID cannot be specified as %fromcert if PSK or AUTH-NULL is used"),
    ("nic-offload=packet", "nic-offload=packet restricted to type=transport"),
    ("type=transport iptfs=yes",
     "IPTFS is not compatible with type=transport, either omit option or specify type=tunnel"),
    ("mobike=yes type=transport", "MOBIKE requires tunnel mode"),
    ("aggressive=yes", "cannot specify aggressive mode with IKEv2"),
    ("esp=aes ah=sha1", 'esp="aes" conficts with ah="sha1"'),
    ("phase2=ah ah=sha1 esp=aes", 'ah="sha1" conficts with esp="aes"'),
    ("leftsourceip=1.0.0.1 leftsubnet=2.0.0.0/24",
     "leftsourceip=1.0.0.1 invalid, address 1.0.0.1 is not within leftsubnet=2.0.0.0/24"),
    ("leftsourceip=192.1.2.46", "leftsourceip=192.1.2.46 invalid, address 192.1.2.46 does not "
     "match left=192.1.2.45 and leftsubnet= was not specified"),
    ("leftsubnet=1.2.3.0/24 rightsubnet=::/0",
     "address family of leftsubnet=1.2.3.0/24 conflicts with rightsubnet=::/0"),
    ("leftaddresspool=192.168.1.0/24 leftsubnet=10.0.0.0/8",
     "cannot specify both leftaddresspool= and leftsubnet="),
    ("leftaddresspool=0.0.0.0/24", "leftaddresspool=0.0.0.0/24 invalid, address pool "
     "0.0.0.0/24 starts at address zero"),
    ("leftaddresspool=1.0.0.0/24 rightaddresspool=2.0.0.0/24",
     "both leftaddresspool= and rightaddresspool= defined"),
    ("narrowing=no leftaddresspool=192.168.1.0/24",
     "narrowing=no conflicts with leftaddresspool=192.168.1.0/24"),
    ("leftmodecfgserver=yes leftaddresspool=10.0.0.0/24",
     "leftmodecfgserver=yes does not expect leftaddresspool="),
    ("leftsubnet=2.2.2.1/32,2.2.2.2/32 rightsubnets=1.1.1.1/32",
     'multi-selector leftsubnet="2.2.2.1/32,2.2.2.2/32" combined with rightsubnets="1.1.1.1/32"'),
    ("leftsubnet= rightsubnets=1.1.1.1/32", "leftsubnet= invalid, empty string"),
    ("leftprotoport=tcp/%any rightprotoport=udp/%any",
     "cannot have protoports with wildcard (%any) ports on both sides"),
    ("leftprotoport=bogus/1", "leftprotoport=bogus/1 invalid, protocol 'bogus' unknown"),
    ("leftikeport=0", '"leftikeport=0" invalid, must be in range 1-65535'),
    ("reqid=99999", "reqid=99999 invalid, must be in the range 1-16383"),
    ("mark=0x100/0xff", 'mark="0x100/0xff" invalid, value 0x000100 has bits outside mask 0x0000ff'),
    ("leftauth=eaponly", "leftauth/rightauth can only be 'eaponly' when using "
     "leftautheap/rightautheap is not 'none'"),
    ("leftauth=secret rightauth=null",
     "cannot mix PSK and NULL authentication (leftauth=secret and rightauth=null)"),
    ("enable-tcp=yes tcp-remoteport=500", "tcp-remoteport cannot be 500"),
    ("leftrsasigkey=0sAAAA leftecdsakey=0sAAAA", "duplicate key fields rsasigkey= and ecdsakey="),
    ("leftid=XX=y", "leftid=XX=y invalid, unknown OID in ID_DER_ASN1_DN"),
    ("ms-dh-downgrade=yes pfs-rekey-workaround=yes",
     "cannot specify both ms-dh-downgrade=yes and pfs-rekey-workaround=yes"),
])
def test_errors(text: str, msg: str) -> None:
    assert fail(text) == msg


def test_ikev1_only_and_ikev2_only_options() -> None:
    assert fail("keyexchange=ikev1 authby=rsa-sha2", ACCEPT) == \
        "authby=rsa-sha2 is not valid for IKEv1"
    assert fail("keyexchange=ikev1 leftauth=secret", ACCEPT) == \
        "leftauth= is not supported by IKEv1"
    assert fail("keyexchange=ikev1 intermediate=yes", ACCEPT) == "intermediate requires IKEv2"
    assert fail("keyexchange=ikev1 narrowing=yes", ACCEPT) == "narrowing=yes requires IKEv2"
    assert fail("keyexchange=ikev1 mobike=yes", ACCEPT) == "MOBIKE requires IKEv2"
    assert fail("keyexchange=ikev1 enable-tcp=yes", ACCEPT) == "enable-tcp= requires IKEv2"
    assert fail("keyexchange=ikev1 aggressive=yes", ACCEPT) == \
        "cannot specify aggressive mode without ike= to set algorithm"
    assert conn(*kv("keyexchange=ikev1 aggrmode=yes ike=aes-sha1"), setup=ACCEPT).aggressive
    assert fail("keyexchange=ikev1 leftsubnet=1.0.0.0/8,2.0.0.0/8", ACCEPT) == \
        ("IKEv1 does not support leftsubnet= with multiple selectors without cisco-split=yes "
         "and leftmodecfgserver=yes")
    assert fail("keyexchange=ikev1 authby=secret,rsasig", ACCEPT) == \
        "additional PSK in authby=PSK+RSASIG is not supported by IKEv1"
    assert fail("sec-label=system_u:x keyexchange=ikev1", ACCEPT) == \
        "IKEv1 does not support Labeled IPsec"


@pytest.mark.parametrize("hosts,msg", [
    ([("right", "host", "%any")], "left= is not set"),
    ([("left", "host", "%any")], "right= is not set"),
    ([("left", "host", "%any"), ("right", "host", "%any")],
     "neither 'left=%any' nor 'right=%any' specify the local host's IP address"),
    ([("left", "host", "%defaultroute6"), ("right", "host", "192.1.2.23")],
     "host address family IPv6 from left=%defaultroute6 conflicts with right=192.1.2.23"),
    ([("left", "host", "%direct"), ("right", "host", "1.2.3.4")], "left=%direct invalid"),
    ([("left", "host", "1.2.3.4"), ("right", "host", "%any"), ("left", "nexthop", "%any")],
     "leftnexthop=%any invalid"),
])
def test_host_errors(hosts: list[tuple[str, str, str]], msg: str) -> None:
    with pytest.raises(ConnError) as e:
        extract_conn("c", hosts)
    assert e.value.reason == msg


def test_host_kinds_and_templates() -> None:
    c = extract_conn("rw", [("left", "host", "192.1.2.23"), ("right", "host", "%any"),
                            ("right", "addresspool", "192.0.2.100-192.0.2.199")])
    assert c.right.host_kind == "any" and c.kind == "template"
    assert c.right.modecfgclient and c.left.modecfgserver and c.narrowing
    assert c.right.addresspool[0].size == 100
    c = extract_conn("dns", [("left", "host", "%defaultroute"), ("right", "host", "vpn.example.net")])
    assert (c.left.host_kind, c.left.nexthop_kind, c.right.host_kind) == \
        ("defaultroute", "defaultroute", "dns")
    assert c.right.id is None  # a DNS host leaves the ID unset until resolved
    oe = extract_conn("oe", [("left", "host", "%defaultroute"),
                             ("right", "host", "%opportunisticgroup"), ("", "authby", "null")])
    assert oe.opportunistic and oe.is_group and oe.kind == "group"
    with pytest.raises(ConnError) as e:
        extract_conn("x", [("left", "host", "%bogus1"), ("right", "host", "%any")],
                     iface_exists=lambda name: False)
    assert e.value.reason == "left=%bogus1 does not appear to be an interface"


def test_passthrough_needs_no_auth_and_warns_about_ignored_options() -> None:
    c = conn(*kv("type=passthrough pfs=no compress=yes leftsubnet=10.0.0.0/8"))
    assert c.never_negotiate and c.type == "passthrough" and c.phase2 is None
    assert (c.left.auth, c.right.auth) == ("never", "never")
    assert c.left.id is None
    assert c.warnings == [
        '"pfs=no" ignored for never-negotiate ("type=passthrough") connection',
        '"compress=yes" ignored for never-negotiate ("type=passthrough") connection',
    ]
    # as in Libreswan, leftauth= of a never-negotiate conn is ignored, not refused
    assert conn(*kv("type=drop leftauth=secret")).warnings == \
        ['"leftauth=secret" ignored for never-negotiate ("type=drop") connection']


def test_implemented_as_and_other_warnings() -> None:
    assert conn(("", "type", "reject")).warnings == ['"type=reject" implemented as "drop"']
    assert conn(("", "failureshunt", "hold")).warnings == \
        ['"failureshunt=hold" implemented as "drop"']
    assert conn(("", "fragmentation", "force")).warnings == \
        ["IKEv1 only fragmentation=force ignored; using fragmentation=yes"]
    assert conn(("", "dpdtimeout", "10s")).warnings == \
        ["IKEv2 ignores dpdtimeout==; use dpddelay= and retransmit-timeout="]
    assert conn(("", "ikepad", "yes")).warnings == ["IKEv2 connection ignores ikepad=yes"]
    assert conn(("left", "xauthclient", "yes")).warnings == \
        ['IKEv2 connection ignores "leftxauthclient=yes"']
    assert conn(*kv("keyexchange=ikev1 dpddelay=10s"), setup=ACCEPT).warnings == \
        ["IKEv1 dpd settings are ignored unless both dpdtimeout= and dpddelay= are set"]
    assert conn(("", "vti-interface", "very-very-very-very-long-name")).warnings == \
        ["length of vti-interface 'very-very-very-very-long-name' exceeds IFNAMSIZ (16)"]
    assert conn(("", "replay-window", "0"), ("", "esn", "yes")).warnings == \
        ["forcing esn=no as replay-window=0"]
    assert conn(("left", "id", "E=a,,b@x,CN=c")).warnings == \
        ["changing legacy ',,' to '\\,' in leftid=E=a,,b@x,CN=c"]


def test_lifetimes_are_clamped_with_a_notice() -> None:
    c = conn(("", "ikelifetime", "2d"))
    assert c.ikelifetime == 86400.0
    assert c.notices == ["ikelifetime=172800 seconds exceeds maximum of 86400 seconds, "
                         "setting to the maximum allowed"]
    c = conn(("", "salifetime", "60s"))
    assert c.ipsec_lifetime == 1080.0  # rekeymargin * (100 + fuzz) / 100


def test_auth_and_authby() -> None:
    c = conn(*kv("leftauth=secret rightauth=rsasig"))
    assert (c.left.auth, c.right.auth) == ("secret", "rsasig")
    assert conn(("", "authby", "null")).left.auth == "null"
    c = conn(("", "authby", "rsasig,ecdsa"))
    assert c.authby == ("rsasig", "ecdsa") and c.left.auth == "rsasig"
    assert fail("authby=secret leftauth=rsasig") == \
        "leftauth=rsasig expects authby=RSASIG+RSASIG_v1_5"


def test_subnets_and_protoport() -> None:
    c = conn(*kv("leftsubnet=10.0.0.0/8 leftprotoport=udp/l2tp rightsubnets=1.1.1.0/24,2.2.2.0/24"))
    assert [str(s) for s in c.left.subnets] == ["10.0.0.0/8/udp/1701"]
    assert [str(s) for s in c.right.subnets_list] == ["1.1.1.0/24", "2.2.2.0/24"]
    assert c.left.protoport is not None and c.left.protoport.port == 1701
    c = conn(("left", "subnet", "192.0.1.1/24"))
    assert c.notices == ["zeroing non-zero address identifier 192.0.1.1 in leftsubnet=192.0.1.1/24"]


def test_setup_defaults_and_values() -> None:
    s = extract_setup([])
    assert (s.ikev1_policy, s.logtime, s.logip, s.uniqueids) == ("drop", True, True, True)
    assert (s.shuntlifetime, s.crl_timeout, s.expire_lifetime, s.keep_alive) == \
        (900.0, 5.0, 30.0, 20.0)
    assert (s.ddos_ike_threshold, s.max_halfopen_ike, s.nhelpers) == (25000, 50000, -1)
    assert (s.secretsfile, s.dumpdir, s.ipsecdir) == \
        ("/etc/ipsec.secrets", "/run/pluto", "/etc/ipsec.d")
    s = extract_setup([("ikev1-policy", "accept"), ("logtime", "no"), ("xfrmlifetime", "10"),
                       ("curl-timeout", "1m"), ("ocsp-cache-size", "5")])
    assert (s.ikev1_policy, s.logtime, s.expire_lifetime, s.crl_timeout, s.ocsp_cache_size) == \
        ("accept", False, 10.0, 60.0, 5)
    assert s.get("ikev1-policy") == "accept"


def test_setup_errors_and_warnings() -> None:
    with pytest.raises(SetupError) as e:
        extract_setup([("ikev1-policy", "maybe", "ipsec.conf", 3)])
    assert str(e.value) == ('ipsec.conf:3: error: "ikev1-policy=maybe" is invalid, valid '
                            'options are "accept", "reject", and "drop"')
    with pytest.raises(SetupError) as e:
        extract_setup([("seedbits", "XXX", "ipsec.conf", 12)])
    assert str(e.value) == "ipsec.conf:12: error: seedbits=XXX invalid, first decimal digit invalid"
    s = extract_setup([("plutodebug", "aksdfjasd;fklj")])
    assert s.warnings == ["plutodebug='aksdfjasd;fklj' invalid, keyword ignored"]
    assert s.plutodebug is None
    assert isinstance(SetupError("x", keyword="k"), ConnError)


def test_unknown_wire_keyword() -> None:
    with pytest.raises(ConnError) as e:
        extract_conn("c", HOSTS + [("", "frobnicate", "1")])
    assert str(e.value) == "\"c\": failed to add connection: unrecognized 'conn' keyword 'frobnicate'"


# --- property: file -> triples -> ConnectionConfig keeps what the file says ----

_nets = st.builds(lambda a, b, n: ipaddress.ip_network(f"10.{a}.{b}.0/{n}", strict=False),
                  st.integers(0, 255), st.integers(0, 255), st.integers(8, 32))
_names = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(name=_names, lnet=_nets, rnet=_nets, lid=_names, rid=_names,
       life=st.integers(1, 24), fuzz=st.integers(0, 100), auto=st.sampled_from(
           ["add", "ondemand", "route", "up", "start", "keep", "ignore"]),
       tunnel=st.booleans(), quoted=st.booleans())
def test_round_trip_property(name: str, lnet: ipaddress.IPv4Network,
                             rnet: ipaddress.IPv4Network, lid: str, rid: str, life: int,
                             fuzz: int, auto: str, tunnel: bool, quoted: bool) -> None:
    q = '"' if quoted else ""
    text = (f"conn {name}\n\tleft=192.0.2.1\n\tright=%any\n\tleftsubnet={q}{lnet}{q}\n"
            f"\trightsubnet={rnet} # peer\n\tleftid=@{lid}\n\trightid={q}{rid}@example.net{q}\n"
            f"\tauthby=secret\n\tikelifetime={life}h\n\trekeyfuzz={fuzz}%\n\tauto={auto}\n"
            f"\ttype={'tunnel' if tunnel else 'transport'}\n")
    cfg = parse_text(text, "p.conf")
    c = extract_conn(name, cfg.triples(name))
    assert [s.network for s in c.left.subnets] == [lnet]
    assert [s.network for s in c.right.subnets] == [rnet]
    assert str(c.left.id) == f"@{lid}" and str(c.right.id) == f"{rid}@example.net"
    assert c.ikelifetime == life * 3600.0 and c.rekeyfuzz == fuzz
    assert c.auto == {"route": "ondemand", "start": "up"}.get(auto, auto)
    assert c.type == ("tunnel" if tunnel else "transport")
    assert c.right.host_kind == "any" and c.kind == "template"
