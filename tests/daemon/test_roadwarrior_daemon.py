"""Road warriors between real pluto daemons on loopback: a responder with right=%any and
rightaddresspool= makes one instance per peer and leases it an address through IKEv2
configuration payloads; uniqueids= decides what a reconnect with the same ID does."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from pyswan_testlib import Pluto, free_udp_port

PSK = "road warriors share this"
SERVER_SECRETS = f'@server %any : PSK "{PSK}"\n'


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _sanitize(lines: list[str], port: int) -> list[str]:
    out = []
    for line in lines:
        line = re.sub(r"0x[0-9a-f]{8}", "0xESPESP", line)
        line = re.sub(r"esp\.[0-9a-f]+@", "esp.ESPSPIi@", line)
        line = line.replace(f":UDP/{port}", ":UDP/500").replace(f":{port} ", ":500 ")
        line = re.sub(r" in \d+s;", " in XXs;", line)
        line = re.sub(r"add_time=\d+,", "add_time=1234567890,", line)
        out.append(line)
    return out


class Site:
    """A server and its road warriors, all on one IKE port of different 127.x addresses."""

    def __init__(self, root: Path, server_extra: list[str] | None = None,
                 pool: str = "10.9.0.0/24", *conn_extra: str) -> None:
        self.root = root
        self.port = free_udp_port("127.0.0.1")
        self.server = self._start("server", "127.0.0.1", SERVER_SECRETS, server_extra)
        res = self.server.whack(
            "--name", "rw", "--host", "127.0.0.1", "--id", "@server", "--client", "10.2.0.0/24",
            "--to", "--host", "%any", "--addresspool", pool,
            "--psk", "--tunnel", "--encrypt", *conn_extra)
        assert res.rc == 0 and res.lines == ['"rw": added oriented IKEv2 connection'], res
        self.plutos = [self.server]

    def _start(self, name: str, addr: str, secrets: str, extra: list[str] | None = None
               ) -> Pluto:
        d = self.root / name
        d.mkdir()
        p = Pluto(d, addr=addr, ikeport=self.port, secrets=secrets, extra=extra)
        p.start()
        assert p.whack("--listen").rc == 0
        return p

    def road(self, name: str, addr: str, ident: str, *extra: str) -> Pluto:
        p = self._start(name, addr, f'{ident} @server : PSK "{PSK}"\n')
        self.plutos.append(p)
        res = p.whack("--name", "road", "--host", addr, "--id", ident, "--modecfgclient",
                      *extra, "--to", "--host", "127.0.0.1", "--id", "@server",
                      "--client", "10.2.0.0/24", "--psk", "--tunnel", "--encrypt")
        assert res.rc == 0, res
        return p

    def up(self, road: Pluto) -> list[str]:
        res = road.whack("--name", "road", "--initiate")
        assert res.rc == 0, res
        return _sanitize(res.lines, self.port)

    def show(self, p: Pluto, *what: str) -> list[str]:
        return _sanitize(p.whack(*what).lines, self.port)

    def stop(self) -> None:
        for p in self.plutos:
            p.stop()


def _kill(p: Pluto) -> None:
    """The road warrior's machine dies: no delete reaches the server."""
    assert p.proc is not None
    p.proc.kill()
    p.proc.wait()


def test_two_road_warriors_get_instances_and_leases(tmp_path):
    site = Site(tmp_path, None, "10.9.0.0/24", "--modecfgdns", "10.2.0.53, 10.2.0.54",
                "--modecfgdomains", "corp.example")
    try:
        env = tmp_path / "updown.env"
        script = (f'echo "$PLUTO_VERB me=$PLUTO_ME source=$PLUTO_MY_SOURCEIP '
                  f'client=$PLUTO_MY_CLIENT peer=$PLUTO_PEER_CLIENT '
                  f'dns=$PLUTO_PEER_DNS_INFO domains=$PLUTO_PEER_DOMAIN_INFO '
                  f'cfg=$PLUTO_CFG_CLIENT$PLUTO_CFG_SERVER" >> {env}')
        road1 = site.road("road1", "127.0.0.2", "@road1", "--updown", script)
        road2 = site.road("road2", "127.0.0.3", "@road2")
        assert site.up(road1) == [
            '"road" #1: initiating IKEv2 connection to 127.0.0.1 using UDP',
            '"road" #1: sent IKE_SA_INIT request to 127.0.0.1:UDP/500',
            '"road" #1: processed IKE_SA_INIT response from 127.0.0.1:UDP/500 '
            "{cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_512 group=DH19}, initiating IKE_AUTH",
            "\"road\" #1: sent IKE_AUTH request to 127.0.0.1:UDP/500 with shared-key-mac and "
            "FQDN '@road1'; Child SA #2 {ESP <0xESPESP} [127.0.0.2/32===10.2.0.0/24]",
            "\"road\" #1: initiator established IKE SA; authenticated peer using authby=secret "
            "and FQDN '@server'",
            '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.0',
            '"road" #2: received INTERNAL_IP4_DNS server address 10.2.0.53',
            '"road" #2: received INTERNAL_IP4_DNS server address 10.2.0.54',
            "\"road\" #2: received INTERNAL_DNS_DOMAIN 'corp.example'",
            '"road" #2: initiator established Child SA using #1; IPsec tunnel '
            "[10.9.0.0/32===10.2.0.0/24] {ESP/ESN=>0xESPESP <0xESPESP xfrm=AES_GCM_16_256 "
            "DPD=passive}",
        ]
        assert site.up(road2)[-5] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.1'
        # updown on the road warrior: its source address and client are the lease, and it
        # learns the DNS servers and domains the server gave it
        assert env.read_text().splitlines() == [
            f"{verb} me=127.0.0.2 source=10.9.0.0 client=10.9.0.0/32 peer=10.2.0.0/24 "
            "dns=10.2.0.53 10.2.0.54 domains=corp.example cfg=10"
            for verb in ("prepare-client", "route-client", "up-client")]

        # the initiator shows the lease it was given
        assert site.show(road1, "--trafficstatus") == [
            "#2: \"road\", type=ESP, add_time=1234567890, inBytes=0, outBytes=0, "
            "maxBytes=2^63B, id='@server', lease=10.9.0.0/32"]

        # the server: one instance per peer, each with its lease
        assert site.show(site.server, "--trafficstatus") == [
            "#2: \"rw\"[1] 127.0.0.2, type=ESP, add_time=1234567890, inBytes=0, outBytes=0, "
            "maxBytes=2^63B, id='@road1', lease=10.9.0.0/32",
            "#4: \"rw\"[2] 127.0.0.3, type=ESP, add_time=1234567890, inBytes=0, outBytes=0, "
            "maxBytes=2^63B, id='@road2', lease=10.9.0.1/32",
        ]
        assert site.show(site.server, "--addresspoolstatus") == [
            " ",  # show_separator()
            "address pool 10.9.0.0/24: 256 addresses, 2 leases, 2 in-use, 0 free (0 reusable)",
            "    10.9.0.0/32 assigned to $2 ",
            '                "rw"[1] 127.0.0.2',
            "    10.9.0.1/32 assigned to $3 ",
            '                "rw"[2] 127.0.0.3',
        ]
        states = site.show(site.server, "--showstates")
        assert states[0] == ('#1: "rw"[1] 127.0.0.2:500 established IKE SA; REKEY in XXs; '
                             "REPLACE in XXs; newest; idle;")
        assert states[2] == ('#2: "rw"[1] 127.0.0.2 esp.ESPSPIi@127.0.0.2 esp.ESPSPIi@127.0.0.1 '
                             "tun.0@127.0.0.2 tun.0@127.0.0.1 Traffic: ESPin=0B ESPout=0B "
                             "ESPmax=2^63B ")
        assert states[3].startswith('#3: "rw"[2] 127.0.0.3:500 established IKE SA;')
        conns = site.show(site.server, "--connectionstatus")
        assert '"rw": 10.2.0.0/24===127.0.0.1[@server]...%any; unrouted; my_ip=unset; ' \
               "their_ip=unset;" in conns
        assert '"rw"[1] 127.0.0.2: 10.2.0.0/24===127.0.0.1[@server]...127.0.0.2[@road1]' \
               "===10.9.0.0/32; routed-tunnel; my_ip=unset; their_ip=unset;" in conns
        assert '"rw"[2] 127.0.0.3:   conn serial: $3; instantiated from: $1;' in conns
        assert '"rw"[2] 127.0.0.3:   our idtype: FQDN; our id=@server; their idtype: FQDN; ' \
               "their id=@road2" in conns

        # the road warrior goes down: its instance goes with its last SA, the lease is free
        assert road2.whack("--name", "road", "--down").rc == 0
        _wait(lambda: not any('"rw"[2]' in line for line in
                              site.show(site.server, "--connectionstatus")))
        assert not any("[2]" in line for line in site.show(site.server, "--showstates"))
        assert site.show(site.server, "--addresspoolstatus")[1:] == [
            "address pool 10.9.0.0/24: 256 addresses, 2 leases, 1 in-use, 1 free (0 reusable)",
            "    10.9.0.0/32 assigned to $2 ",
            '                "rw"[1] 127.0.0.2',
            "    10.9.0.1/32 free $0 ",
            "                connection $0 does not exist",
        ]
        # and the next road warrior gets instance [3] and the freed address
        road3 = site.road("road3", "127.0.0.4", "@road3")
        assert site.up(road3)[-5] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.1'
        assert site.show(site.server, "--trafficstatus")[-1].startswith(
            '#6: "rw"[3] 127.0.0.4, type=ESP')
        # deleting the template takes its instances, their SAs and the pool with it
        res = site.server.whack("--name", "rw", "--delete")
        assert res.rc == 0, res
        for p in (site.server,):
            assert p.whack("--trafficstatus").lines == []
            assert p.whack("--showstates").lines == []
            assert p.whack("--connectionstatus").lines == []
            assert p.whack("--addresspoolstatus").lines == [" "]
    finally:
        site.stop()


def test_uniqueids_reconnect_replaces_the_old_instance(tmp_path):
    site = Site(tmp_path)
    try:
        laptop = site.road("laptop", "127.0.0.2", "@road1")
        site.up(laptop)
        _kill(laptop)  # gone without a word: the server still has its SAs
        assert site.show(site.server, "--trafficstatus")[0].startswith('#2: "rw"[1] 127.0.0.2,')
        # the same user comes back from another address
        phone = site.road("phone", "127.0.0.3", "@road1")
        assert site.up(phone)[-2] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.0'
        # the new IKE SA replaced the old one, which went with its instance and lease
        assert site.show(site.server, "--trafficstatus") == [
            "#4: \"rw\"[2] 127.0.0.3, type=ESP, add_time=1234567890, inBytes=0, outBytes=0, "
            "maxBytes=2^63B, id='@road1', lease=10.9.0.0/32"]
        states = site.show(site.server, "--showstates")
        assert [s.split(" ", 1)[0] for s in states] == ["#3:", "#4:", "#4:"]
        log = site.server.logtext()
        assert '"rw"[1] 127.0.0.2 #1: deleting IKE SA (ESTABLISHED_IKE_SA) and sending ' \
               "notification" in log
        assert log.index('"rw"[1] 127.0.0.2 #1: deleting IKE SA') < log.index(
            '"rw"[2] 127.0.0.3 #3: assigning unused lease 10.9.0.0/32')
        assert site.show(site.server, "--addresspoolstatus")[1:4] == [
            "address pool 10.9.0.0/24: 256 addresses, 1 leases, 1 in-use, 0 free (0 reusable)",
            "    10.9.0.0/32 assigned to $3 ",
            '                "rw"[2] 127.0.0.3',
        ]
        assert not any('"rw"[1]' in line
                       for line in site.show(site.server, "--connectionstatus"))
    finally:
        site.stop()


def test_uniqueids_no_keeps_both(tmp_path):
    site = Site(tmp_path, server_extra=["--no-uniqueids"])
    try:
        laptop = site.road("laptop", "127.0.0.2", "@road1")
        site.up(laptop)
        _kill(laptop)
        phone = site.road("phone", "127.0.0.3", "@road1")
        assert site.up(phone)[-2] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.1'
        traffic = site.show(site.server, "--trafficstatus")
        assert [t.split(", type")[0] for t in traffic] == [
            '#2: "rw"[1] 127.0.0.2', '#4: "rw"[2] 127.0.0.3']
        assert traffic[1].endswith("id='@road1', lease=10.9.0.1/32")
        assert "deleting IKE SA" not in site.server.logtext()
    finally:
        site.stop()


def test_restart_from_the_same_address_keeps_instance_and_lease(tmp_path):
    site = Site(tmp_path)
    try:
        road = site.road("road1", "127.0.0.2", "@road1")
        site.up(road)
        _kill(road)
        # the same machine comes back (same address), now announcing INITIAL_CONTACT
        rundir = site.root / "road1-again"
        rundir.mkdir()
        again = Pluto(rundir, addr="127.0.0.2", ikeport=site.port,
                      secrets=f'@road1 @server : PSK "{PSK}"\n').start()
        site.plutos.append(again)
        assert again.whack("--listen").rc == 0
        res = again.whack("--name", "road", "--host", "127.0.0.2", "--id", "@road1",
                          "--modecfgclient", "--initialcontact", "--to", "--host", "127.0.0.1",
                          "--id", "@server", "--client", "10.2.0.0/24", "--psk", "--tunnel",
                          "--encrypt")
        assert res.rc == 0, res
        assert site.up(again)[-2] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.0'
        # the exact instance served the new IKE SA; INITIAL_CONTACT took the old Child SA
        # (Libreswan leaves the old IKE SA to expire)
        assert site.show(site.server, "--trafficstatus") == [
            "#4: \"rw\"[1] 127.0.0.2, type=ESP, add_time=1234567890, inBytes=0, outBytes=0, "
            "maxBytes=2^63B, id='@road1', lease=10.9.0.0/32"]
        states = site.show(site.server, "--showstates")
        assert [s.split(" ", 2)[1] for s in states] == ['"rw"[1]'] * 4
        assert [s.split(":", 1)[0] for s in states] == ["#1", "#3", "#4", "#4"]
    finally:
        site.stop()


def test_instances_pick_their_psk_by_libreswans_precedence(tmp_path):
    # a key for one road warrior beats the %any one, which beats the catch-all
    secrets = ('@server %any : PSK "for every road warrior"\n'
               ': PSK "catch-all, never used here"\n'
               '@server @vip : PSK "for the vip alone"\n')
    site = Site(tmp_path)
    try:
        (site.root / "server" / "ipsec.secrets").write_text(secrets)
        assert site.server.whack("--rereadsecrets").rc == 0
        vip = site._start("vip", "127.0.0.2", '@vip @server : PSK "for the vip alone"\n')
        crowd = site._start("crowd", "127.0.0.3", '@crowd @server : PSK "for every road warrior"\n')
        wrong = site._start("wrong", "127.0.0.4", '@wrong @server : PSK "catch-all, never used here"\n')
        site.plutos += [vip, crowd, wrong]
        for p, addr, ident in ((vip, "127.0.0.2", "@vip"), (crowd, "127.0.0.3", "@crowd"),
                               (wrong, "127.0.0.4", "@wrong")):
            assert p.whack("--name", "road", "--host", addr, "--id", ident, "--modecfgclient",
                           "--to", "--host", "127.0.0.1", "--id", "@server",
                           "--client", "10.2.0.0/24", "--psk", "--tunnel", "--encrypt").rc == 0
        assert site.up(vip)[-1].startswith('"road" #2: initiator established Child SA')
        assert site.up(crowd)[-1].startswith('"road" #2: initiator established Child SA')
        res = wrong.whack("--name", "road", "--initiate")
        assert res.rc != 0
        assert '"road" #1: IKE SA authentication request rejected by peer: ' \
               "AUTHENTICATION_FAILED" in res.lines
        assert [t.split(", type")[0] for t in site.show(site.server, "--trafficstatus")] == [
            '#2: "rw"[1] 127.0.0.2', '#4: "rw"[2] 127.0.0.3']
        # the failed peer left no instance behind
        assert not any("127.0.0.4" in line
                       for line in site.show(site.server, "--connectionstatus"))
        # taking the template down takes down each of its instances
        res = site.server.whack("--name", "rw", "--down")
        assert res.rc == 0, res
        mine = [line for line in res.lines if "initiating delete" in line or "template" in line]
        assert mine == [
            '"rw": deleting template instances',
            "\"rw\"[1] 127.0.0.2: initiating delete of connection's IKE SA #1 (and Child SA #2)",
            "\"rw\"[2] 127.0.0.3: initiating delete of connection's IKE SA #3 (and Child SA #4)",
        ]
    finally:
        site.stop()


def test_road_warrior_without_a_pool_protects_its_own_address(tmp_path):
    port = free_udp_port("127.0.0.1")
    plutos = []
    try:
        for name, addr, secrets in (("server", "127.0.0.1", SERVER_SECRETS),
                                    ("road", "127.0.0.5", f'@road5 @server : PSK "{PSK}"\n')):
            (tmp_path / name).mkdir()
            p = Pluto(tmp_path / name, addr=addr, ikeport=port, secrets=secrets).start()
            plutos.append(p)
            assert p.whack("--listen").rc == 0
        server, road = plutos
        assert server.whack("--name", "plain", "--host", "127.0.0.1", "--id", "@server",
                            "--client", "10.3.0.0/24", "--to", "--host", "%any", "--psk",
                            "--tunnel", "--encrypt").rc == 0
        assert road.whack("--name", "home", "--host", "127.0.0.5", "--id", "@road5", "--to",
                          "--host", "127.0.0.1", "--id", "@server", "--client", "10.3.0.0/24",
                          "--psk", "--tunnel", "--encrypt").rc == 0
        res = road.whack("--name", "home", "--initiate")
        assert res.rc == 0, res
        assert res.lines[-1].startswith('"home" #2: initiator established Child SA using #1; '
                                        "IPsec tunnel [127.0.0.5/32===10.3.0.0/24]")
        assert "lease=" not in road.whack("--trafficstatus").out
        traffic = _sanitize(server.whack("--trafficstatus").lines, port)
        assert traffic == ["#2: \"plain\"[1] 127.0.0.5, type=ESP, add_time=1234567890, "
                           "inBytes=0, outBytes=0, maxBytes=2^63B, id='@road5'"]
        conns = server.whack("--connectionstatus").lines
        assert '"plain"[1] 127.0.0.5: 10.3.0.0/24===127.0.0.1[@server]...127.0.0.5[@road5]; ' \
               "routed-tunnel; my_ip=unset; their_ip=unset;" in conns
        assert "responder established Child SA using #1; IPsec tunnel " \
               "[10.3.0.0/24===127.0.0.5/32]" in server.logtext()
        # the initiator deletes its SAs: the instance goes on the server
        assert road.whack("--name", "home", "--delete").rc == 0
        _wait(lambda: not any("[1]" in line for line in server.whack("--connectionstatus").lines))
        assert server.whack("--showstates").lines == []
    finally:
        for p in plutos:
            p.stop()


def test_exhausted_pool_refuses_the_child_sa(tmp_path):
    site = Site(tmp_path, pool="10.9.0.9-10.9.0.9")
    try:
        first = site.road("first", "127.0.0.2", "@road1")
        assert site.up(first)[-2] == '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.9'
        second = site.road("second", "127.0.0.3", "@road2")
        res = second.whack("--name", "road", "--initiate")
        assert '"road" #2: IKE_AUTH response rejected Child SA with INTERNAL_ADDRESS_FAILURE' \
            in res.lines
        assert '"rw"[2] 127.0.0.3 #3: leasing IPv4 address failed: address pool exhausted' \
            in site.server.logtext()
        # the second one's IKE SA is up but has no Child SA; the pool is unchanged
        assert [t.split(", type")[0] for t in site.show(site.server, "--trafficstatus")] == [
            '#2: "rw"[1] 127.0.0.2']
        assert site.show(site.server, "--addresspoolstatus")[1] == (
            "address pool 10.9.0.9/32: 1 addresses, 1 leases, 1 in-use, 0 free (0 reusable)")
    finally:
        site.stop()


def test_client_configured_with_the_pool_proposes_it(tmp_path):
    # Libreswan's addresspool-4in4-ikev2: the road warrior's end names the pool too
    site = Site(tmp_path)
    try:
        road = site.road("road", "127.0.0.2", "@road1", "--addresspool", "10.9.0.0/24")
        lines = site.up(road)
        assert lines[3].endswith("Child SA #2 {ESP <0xESPESP} [10.9.0.0/24===10.2.0.0/24]")
        assert lines[-2:] == [
            '"road" #2: received INTERNAL_IP4_ADDRESS 10.9.0.0',
            '"road" #2: initiator established Child SA using #1; IPsec tunnel '
            "[10.9.0.0/32===10.2.0.0/24] {ESP/ESN=>0xESPESP <0xESPESP xfrm=AES_GCM_16_256 "
            "DPD=passive}",
        ]
        assert site.show(road, "--trafficstatus")[0].endswith(
            "id='@server', lease=10.9.0.0/32")
    finally:
        site.stop()
