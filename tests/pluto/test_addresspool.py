"""Address pools: Libreswan's lease order, reuse and recovery, exhaustion, status text."""

from __future__ import annotations

import ipaddress

import pytest

from pyswan.auto.values import parse_pool
from pyswan.pluto.addresspool import AddressPool, PoolError


def _pool(text: str) -> AddressPool:
    return AddressPool(parse_pool(text))


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_leases_grow_the_table_and_come_from_the_head_of_the_free_list():
    pool = _pool("192.0.2.0/30")
    got = [pool.lease(serial) for serial in (1, 2, 3, 4)]
    # the table doubles (1, 2, 4) and new leases are prepended: 3 comes before 2
    assert [str(a) for a, _ in got] == ["192.0.2.0", "192.0.2.1", "192.0.2.3", "192.0.2.2"]
    assert got[0][1] == ("assigning unused lease 192.0.2.0/32 from addresspool 192.0.2.0/30; "
                         "addresspool grown from 0 to 1 leases")
    assert got[2][1].endswith("; addresspool grown from 2 to 4 leases")
    assert got[3][1] == "assigning unused lease 192.0.2.2/32 from addresspool 192.0.2.0/30"
    with pytest.raises(PoolError, match="^address pool exhausted$"):
        pool.lease(5)


def test_a_released_one_time_lease_is_the_next_one_given():
    pool = _pool("10.0.0.1-10.0.0.9")
    first, _ = pool.lease(1)
    pool.lease(2)
    pool.release(first, 1)
    assert pool.in_use == 1
    again, line = pool.lease(3)
    assert again == first
    assert line == "assigning unused lease 10.0.0.1/32 from addresspool 10.0.0.1-10.0.0.9"
    # releasing for a connection that no longer holds it changes nothing
    pool.release(again, 1)
    assert pool.holder(again) == 3 and pool.in_use == 2


def test_reusable_leases_linger_for_their_id():
    pool = _pool("192.0.2.0/24")
    addr, line = pool.lease(1, "@road")
    assert line.startswith("assigning unused recoverable lease 192.0.2.0/32")
    other, _ = pool.lease(2)
    pool.release(addr, 1)
    pool.release(other, 2)
    # the one-time lease went to the head, the reusable one lingers at the tail
    assert pool.free[0] == 1 and pool.free[-1] == 0
    back, line = pool.lease(3, "@road")
    assert back == addr
    assert line == "assigning recovered recoverable lease 192.0.2.0/32 from addresspool 192.0.2.0/24"
    # a newer instance of the same ID takes over a lease still held by an older one
    again, line = pool.lease(4, "@road")
    assert again == addr and pool.holder(addr) == 4 and line.startswith("assigning recovered")


def test_a_lingering_lease_is_stolen_when_nothing_else_is_free():
    pool = _pool("192.0.2.8/32")
    addr, _ = pool.lease(1, "@a")
    pool.release(addr, 1)
    got, line = pool.lease(2, "@b")
    assert got == addr
    assert line == "assigning stolen recoverable lease 192.0.2.8/32 from addresspool 192.0.2.8/32"
    assert pool.reusable == {"@b": 0}


def test_ipv6_pool():
    pool = _pool("2001:db8:0:3::/120")
    addr, line = pool.lease(7)
    assert addr == _addr("2001:db8:0:3::")
    assert line.startswith("assigning unused lease 2001:db8:0:3::/128 from addresspool "
                           "2001:db8:0:3::/120")


def test_status_lines():
    class Conn:
        prefix = '"rw"[1] 127.0.0.2'

    pool = _pool("192.0.2.0/24")
    pool.lease(5)
    pool.lease(6, "@road")
    lines = pool.status_lines({5: Conn()}.get)
    assert lines == [
        "address pool 192.0.2.0/24: 256 addresses, 2 leases, 2 in-use, 0 free (1 reusable)",
        "    192.0.2.0/32 assigned to $5 ",
        '                 "rw"[1] 127.0.0.2',
        "    192.0.2.1/32 assigned to $6  @road",
        "                 connection $6 does not exist",
    ]
