"""Configuration payloads in IKE_AUTH (RFC 7296 3.15): the CP bytes, and a modecfg client
getting its address from a modecfg server's pool, between two engines."""

from __future__ import annotations

import ipaddress

from ikev2_harness import EAST, WEST, Net, Psks, make_policy

from pyswan.ike.codec import CP, TSi, decode_message
from pyswan.ike.ikev2 import Selector
from pyswan.ike.ikev2 import cp as CP_
from pyswan.ike.ikev2.message import open_sk
from pyswan.ike.ikev2.policy import LeaseError

LEASE = ipaddress.ip_address("10.9.0.7")


def _sel(text: str) -> Selector:
    return Selector.from_network(ipaddress.ip_network(text))


class Pool(Psks):
    """The responder's credentials with an address pool behind them."""

    def __init__(self, addresses: list, line: str = "assigning unused lease") -> None:
        super().__init__()
        self.addresses = addresses
        self.line = line
        self.asked: list[tuple[str, int]] = []

    def lease(self, policy, peer, version):
        self.asked.append((str(peer), version))
        for addr in self.addresses:
            if addr.version == version:
                return addr, f"{self.line} {addr}/{addr.max_prefixlen}"
        if not self.addresses:
            raise LeaseError("address pool exhausted")
        return None


def test_cfg_request_bytes():
    v4 = CP_.request((_sel("192.0.2.1/32"),))
    assert v4.encode_body() == bytes.fromhex(
        "01000000" "00010000" "00030000" "00190000")
    both = CP_.request((_sel("2001:db8::1/128"), _sel("192.0.2.1/32")))
    # IPv4 first, whatever the order of the selectors, as Libreswan's ip_families loop
    assert both.encode_body() == bytes.fromhex(
        "01000000" "00010000" "00030000" "00080000" "000a0000" "00190000")


def test_cfg_reply_bytes():
    policy = make_policy(modecfg_dns=(ipaddress.ip_address("192.0.2.53"),
                                      ipaddress.ip_address("2001:db8::53")),
                         modecfg_domains=("example.com",))
    reply = CP_.reply([ipaddress.ip_address("10.9.0.7"),
                       ipaddress.ip_address("2001:db8:9::7")], policy)
    assert reply.encode_body() == bytes.fromhex(
        "02000000"
        "00010004" "0a090007"
        "00080011" "20010db8000900000000000000000007" "80"  # address + prefix length 128
        "00030004" "c0000235"
        "000a0011" "20010db8000000000000000000000053" "80"  # Libreswan adds it to DNS too
        "0019000b") + b"example.com"
    # and it decodes back to the same attributes
    again = CP.decode_body(reply.encode_body(), 0, len(reply.encode_body()), False)
    assert again.cfg_type == 2 and again.attributes == reply.attributes


def _rw_pair(pool: Pool, client_extra: dict | None = None) -> Net:
    client = {"cp_client": True, "cp_request": True, **(client_extra or {})}
    west = make_policy(local_net=f"{WEST}/32", remote_net="10.2.0.0/24", **client)
    east = make_policy(local=EAST, remote=None, local_id="east", remote_id=None,
                       local_net="10.2.0.0/24", remote_net="0.0.0.0/0", cp_server=True,
                       local_leftright="right", narrowing=True,
                       modecfg_dns=(ipaddress.ip_address("10.2.0.53"),),
                       modecfg_domains=("corp.example",))
    return Net(west, east, east_psk=pool)


def _auth_messages(net: Net) -> tuple[list, list]:
    """The decrypted IKE_AUTH request and response payloads."""
    (req,) = [d for direction, d in net.sent if direction == "west->east" and d[18] == 35]
    (resp,) = [d for direction, d in net.sent if direction == "east->west" and d[18] == 35]
    east_sa = next(iter(net.east.engine.ike_sas.values()))
    west_sa = next(iter(net.west.engine.ike_sas.values()))
    return (open_sk(east_sa, req, decode_message(req)),
            open_sk(west_sa, resp, decode_message(resp)))


def test_client_gets_its_address_from_the_server():
    pool = Pool([LEASE])
    net = _rw_pair(pool)
    net.up()
    request, response = _auth_messages(net)
    # request: SA, CP(CFG_REQUEST), TSi, TSr; the client proposes its own address
    names = [type(p).__name__ for p in request]
    assert names.index("CP") == names.index("TSi") - 1
    cp_req = next(p for p in request if type(p) is CP)
    assert cp_req.encode_body() == bytes.fromhex("01000000000100000003000000190000")
    # response: IDr, AUTH, CP, SA, TSi, TSr (as Libreswan orders them)
    assert [p.payload_type for p in response] == [36, 39, 47, 33, 44, 45]
    cp_rep = response[2]
    assert cp_rep.encode_body() == bytes.fromhex(
        "02000000" "00010004" "0a090007" "00030004" "0a020035" "0019000c") + b"corp.example"
    tsi = next(p for p in response if type(p) is TSi)
    assert [(t.start_addr, t.end_addr) for t in tsi.selectors] == [(LEASE, LEASE)]
    assert pool.asked == [("@west", 4)]
    # the server logged its lease; the client what it received, against the Child SA
    assert f"#1: assigning unused lease {LEASE}/32" in net.east.lines()
    assert net.west.lines()[-4:-1] == [
        f"#2: received INTERNAL_IP4_ADDRESS {LEASE}",
        "#2: received INTERNAL_IP4_DNS server address 10.2.0.53",
        "#2: received INTERNAL_DNS_DOMAIN 'corp.example'",
    ]
    assert net.west.lines()[-1].startswith(
        f"#2: initiator established Child SA using #1; IPsec tunnel [{LEASE}/32===10.2.0.0/24]")
    # both kernels got the lease as the client's end
    (west_keys,) = net.west.installed.values()
    (east_keys,) = net.east.installed.values()
    assert west_keys.local_ts == (Selector(LEASE, LEASE),)
    assert east_keys.remote_ts == (Selector(LEASE, LEASE),)
    assert east_keys.local_ts == (_sel("10.2.0.0/24"),)


def test_exhausted_pool_refuses_the_child_sa_but_not_the_ike_sa():
    net = _rw_pair(Pool([]))
    net.up()
    assert "#1: leasing IPv4 address failed: address pool exhausted" in net.east.lines()
    assert "#2: IKE_AUTH response rejected Child SA with INTERNAL_ADDRESS_FAILURE" in \
        net.west.lines()
    assert not net.west.installed and not net.east.installed
    assert [sa.established for sa in net.east.engine.ike_sas.values()] == [True]


def test_server_requires_the_cp_payload():
    net = _rw_pair(Pool([LEASE]), {"cp_request": False, "cp_client": False})
    net.up()
    assert ("#1: IKE_AUTH request does not include a CP payload required by "
            "rightmodecfgserver=true; Child SA ignored") in net.east.lines()
    assert "#2: IKE_AUTH response rejected Child SA with FAILED_CP_REQUIRED" in \
        net.west.lines()


def test_client_rejects_a_reply_without_cp():
    west = make_policy(local_net=f"{WEST}/32", remote_net="10.2.0.0/24", cp_client=True,
                       cp_request=True)
    east = make_policy(local=EAST, remote=WEST, local_id="east", remote_id="west",
                       local_net="10.2.0.0/24", remote_net=f"{WEST}/32")
    net = Net(west, east)
    net.up()
    lines = net.west.lines()
    assert "#2: missing v2CP reply, not attempting to setup child SA" in lines
    assert "#1: IKE SA established but initiator rejected Child SA response" in lines
    assert not net.west.installed


def test_malformed_address_in_reply_is_refused():
    net = _rw_pair(Pool([LEASE]))
    # the server answers 0.0.0.0: Libreswan calls that invalid
    pool = net.east.engine.credentials
    pool.addresses = [ipaddress.ip_address("0.0.0.0")]
    net.up()
    assert "#2: ERROR INTERNAL_IP4_ADDRESS 0.0.0.0 is invalid" in net.west.lines()
    assert not net.west.installed



def test_ipv6_lease_inside_ipv4_ike():
    lease6 = ipaddress.ip_address("2001:db8:9::7")
    west = make_policy(local_net="2001:db8:1::1/128", remote_net="2001:db8:2::/64",
                       cp_client=True, cp_request=True)
    east = make_policy(local=EAST, remote=None, local_id="east", remote_id=None,
                       local_net="2001:db8:2::/64", remote_net="::/0", cp_server=True,
                       narrowing=True)
    pool = Pool([LEASE, lease6])
    net = Net(west, east, east_psk=pool)
    net.up()
    request, response = _auth_messages(net)
    cp_req = next(p for p in request if type(p) is CP)
    # only the IPv6 family is asked for: the client proposes IPv6 selectors
    assert cp_req.attributes == [(8, b""), (10, b""), (25, b"")]
    assert pool.asked == [("@west", 6)]
    cp_rep = next(p for p in response if type(p) is CP)
    assert cp_rep.attributes == [(8, lease6.packed + b"\x80")]
    assert f"#2: received INTERNAL_IP6_ADDRESS {lease6}" in net.west.lines()
    (west_keys,) = net.west.installed.values()
    assert west_keys.local_ts == (Selector(lease6, lease6),)
    assert str(west_keys.local_ts[0]) == f"{lease6}/128"
