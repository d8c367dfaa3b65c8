"""IKEv1 behaviour that real peers (tests/interop/test_interop_ikev1.py) showed wrong."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

import pytest
from ikev1_harness import LEASE, Net, Users, east_policy, make_policy

from pyswan.ike.ikev1.codec import IsakmpDecodeError, ModeCfgAttributes
from pyswan.ike.ikev1.constants import CfgAttr
from pyswan.ike.ikev2 import ChildEstablished, Selector


def _cfg_reply(attrs: bytes) -> bytes:
    return struct.pack(">BBH", 2, 0, 0xE8BB) + attrs  # ISAKMP_CFG_REPLY, identifier


# Libreswan 4.10's ModeCfg reply: address, netmask, CISCO_SPLIT_INC (14 octets), then
# 2 zero octets padding the payload to a multiple of 4 ("padding IKEv1 message with 2
# bytes ... into ISAKMP Mode Attribute").
LIBRESWAN_REPLY = _cfg_reply(
    struct.pack(">HH", 1, 4) + bytes([10, 1, 0, 100])
    + struct.pack(">HH", 2, 4) + b"\xff\xff\xff\x00"
    + struct.pack(">HH", 0x7004, 14) + bytes([10, 2, 0, 0]) + b"\xff\xff\xff\x00" + bytes(6)
    + b"\x00\x00"
)


def test_modecfg_reply_padded_by_libreswan_is_accepted() -> None:
    p = ModeCfgAttributes.parse(LIBRESWAN_REPLY)
    assert [a.type for a in p.attributes] == [CfgAttr.INTERNAL_IP4_ADDRESS,
                                              CfgAttr.INTERNAL_IP4_NETMASK, 0x7004]
    addr = p.attr(CfgAttr.INTERNAL_IP4_ADDRESS)
    assert addr is not None and addr.value == bytes([10, 1, 0, 100])


def test_modecfg_trailing_octets_that_are_not_padding_are_refused() -> None:
    with pytest.raises(IsakmpDecodeError, match="truncated attribute"):
        ModeCfgAttributes.parse(LIBRESWAN_REPLY[:-2] + b"\x00\x01")


POOL_RANGE = (Selector(ipaddress.ip_address("10.9.0.1"), ipaddress.ip_address("10.9.0.10")),)


@pytest.mark.parametrize("remote_ts", [(), POOL_RANGE], ids=["no-subnet", "pool-range"])
def test_modecfg_server_takes_the_lease_as_the_clients_side(remote_ts) -> None:
    """rightaddresspool= and no rightsubnet=: the client's Quick Mode proposes its lease
    (pyswan, Libreswan and strongSwan clients all do), which the server must take as the
    peer's side of the tunnel, as Libreswan does; not its own address, nor the pool's
    whole range (which pluto's glue makes the conn's remote selector)."""
    west = make_policy(xauth_client=True, xauth_username="xroad", modecfg_client=True,
                       modecfg_pull=True)
    east = dataclasses.replace(
        east_policy(xauth_server=True, modecfg_server=True, modecfg_pull=True,
                    modecfg_lease=LEASE), remote_ts=remote_ts)
    net = Net(west, east, west_psk=Users({"xroad": b"pw"}), east_psk=Users({"xroad": b"pw"}))
    net.up()
    east_lines = net.east.lines()
    assert not [x for x in east_lines if "no connection is known" in x], east_lines
    assert len(net.east.of(ChildEstablished)) == 1
    (e,) = net.east.installed.values()
    assert str(e.remote_ts[0]) == f"{LEASE}/32"
    assert len(net.west.of(ChildEstablished)) == 1
