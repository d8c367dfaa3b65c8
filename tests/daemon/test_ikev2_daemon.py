"""IKEv2 between two real pluto daemons (127.0.0.1 and 127.0.0.2, same IKE port, in-memory
kernel), driven by real whack and ipsec commands."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyswan_testlib import Pluto, free_udp_port

SECRETS_WEST = ('@west @east : PSK "the shared secret"\n'
                '@west2 @east2 : PSK "west thinks this"\n'
                '@west3 @east3 : PSK "three"\n')
SECRETS_EAST = ('@west @east : PSK "the shared secret"\n'
                '@west2 @east2 : PSK "east thinks otherwise"\n'
                '@west3 @east3 : PSK "three"\n')


def _pair(root: Path) -> tuple[Pluto, Pluto]:
    port = free_udp_port("127.0.0.1")
    west = Pluto(_dir(root, "west"), addr="127.0.0.1", ikeport=port, secrets=SECRETS_WEST)
    east = Pluto(_dir(root, "east"), addr="127.0.0.2", ikeport=port, secrets=SECRETS_EAST)
    west.start()
    east.start()
    for p in (west, east):
        assert p.whack("--listen").rc == 0
    return west, east


def _dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    west, east = _pair(tmp_path_factory.mktemp("ikev2"))
    yield west, east
    west.stop()
    east.stop()


def _add(p: Pluto, name: str, n: str = "", lnet: str = "10.1.0.0/24",
         rnet: str = "10.2.0.0/24") -> None:
    res = p.whack("--name", name, "--host", "127.0.0.1", "--id", f"@west{n}", "--client", lnet,
                  "--to", "--host", "127.0.0.2", "--id", f"@east{n}", "--client", rnet,
                  "--psk", "--tunnel", "--encrypt", "--pfs")
    assert res.rc == 0, res


def _add_both(west: Pluto, east: Pluto, name: str, n: str = "", net: int = 1) -> None:
    lnet, rnet = f"10.{net}.1.0/24", f"10.{net}.2.0/24"
    _add(west, name, n, lnet, rnet)
    _add(east, name, n, lnet, rnet)


def _sanitize(lines: list[str], port: int) -> list[str]:
    out = []
    for line in lines:
        line = re.sub(r"0x[0-9a-f]{8}", "0xESPESP", line)
        line = line.replace(f":UDP/{port}", ":UDP/500").replace(f":{port} ", ":500 ")
        line = re.sub(r" in \d+s;", " in XXs;", line)
        out.append(line)
    return out


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _states(p: Pluto) -> list[str]:
    return p.whack("--showstates").lines


def test_initiate_status_and_down(pair):
    west, east = pair
    _add_both(west, east, "c")
    res = west.whack("--name", "c", "--initiate")
    assert res.rc == 0, res
    assert _sanitize(res.lines, west.ikeport) == [
        '"c" #1: initiating IKEv2 connection to 127.0.0.2 using UDP',
        '"c" #1: sent IKE_SA_INIT request to 127.0.0.2:UDP/500',
        '"c" #1: processed IKE_SA_INIT response from 127.0.0.2:UDP/500 {cipher=AES_GCM_16_256 '
        'integ=n/a prf=HMAC_SHA2_512 group=DH19}, initiating IKE_AUTH',
        '"c" #1: sent IKE_AUTH request to 127.0.0.2:UDP/500 with shared-key-mac and FQDN '
        "'@west'; Child SA #2 {ESP <0xESPESP} [10.1.1.0/24===10.1.2.0/24]",
        '"c" #1: initiator established IKE SA; authenticated peer using authby=secret and FQDN '
        "'@east'",
        '"c" #2: initiator established Child SA using #1; IPsec tunnel '
        "[10.1.1.0/24===10.1.2.0/24] {ESP/ESN=>0xESPESP <0xESPESP xfrm=AES_GCM_16_256 "
        "DPD=passive}",
    ]
    w_states, e_states = _states(west), _states(east)
    assert _sanitize(w_states, west.ikeport)[:2] == [
        '#1: "c":500 established IKE SA; REKEY in XXs; REPLACE in XXs; newest; idle;',
        '#2: "c":500 established Child SA; REKEY in XXs; REPLACE in XXs; newest; eroute '
        "owner; IKE SA #1; idle;",
    ]
    # initiator's outbound SPI is the responder's inbound one, and the other way round
    w_out, w_in = re.search(r"esp\.([0-9a-f]+)@127\.0\.0\.2 esp\.([0-9a-f]+)@127\.0\.0\.1",
                            w_states[2]).groups()
    e_out, e_in = re.search(r"esp\.([0-9a-f]+)@127\.0\.0\.1 esp\.([0-9a-f]+)@127\.0\.0\.2",
                            e_states[2]).groups()
    assert (w_out, w_in) == (e_in, e_out)
    assert w_states[2].endswith("tun.0@127.0.0.2 tun.0@127.0.0.1 Traffic: ESPin=0B ESPout=0B "
                                "ESPmax=2^63B ")
    assert "responder established Child SA using #1" in east.logtext()
    traffic = west.whack("--trafficstatus").lines
    assert re.fullmatch(r'#2: "c", type=ESP, add_time=\d+, inBytes=0, outBytes=0, '
                        r"maxBytes=2\^63B, id='@east'", traffic[0])
    assert "id='@west'" in east.whack("--trafficstatus").lines[0]
    for p in (west, east):
        assert p.whack("--briefstatus").lines[1:] == [
            "IKE SAs: total(1), half-open(0), open(0), authenticated(1), anonymous(0)",
            "IPsec SAs: total(1), authenticated(1), anonymous(0)"]
    status = west.whack("--status").lines
    assert '"c":   routing: routed-tunnel; owner: Child SA #2; established IKE SA: #1; ' \
           "established Child SA: #2;" in status
    assert '"c":   IKEv2 algorithm newest: AES_GCM_16_256-HMAC_SHA2_512-DH19' in status
    assert "Total IPsec connections: loaded 1, routed 1, active 1" in status

    res = west.whack("--name", "c", "--down")
    assert res.rc == 0, res
    assert res.lines == ['"c": initiating delete of connection\'s IKE SA #1 (and Child SA #2)',
                         '"c" #1: sent INFORMATIONAL request to delete IKE SA',
                         '"c" #2: ESP traffic information: in=0B out=0B',
                         '"c" #1: deleting IKE SA (established IKE SA)']
    assert _states(west) == []
    _wait(lambda: _states(east) == [])
    assert '"c" #1: deleting IKE SA (established IKE SA)' in east.logtext()
    assert west.whack("--connectionstatus").lines[0].endswith(
        "unrouted; my_ip=unset; their_ip=unset;")


def test_wrong_psk_fails_with_authentication_failed(pair):
    west, east = pair
    _add_both(west, east, "bad", "2", net=2)
    res = west.whack("--name", "bad", "--initiate")
    assert res.rc == 56, res
    tail = [re.sub(r"#\d+", "#N", line) for line in res.lines[-3:]]
    assert tail == ['"bad" #N: IKE SA authentication request rejected by peer: '
                    "AUTHENTICATION_FAILED",
                    '"bad" #N: encountered fatal error in state IKE_AUTH_I',
                    '"bad" #N: deleting IKE SA (sent IKE_AUTH request)']
    assert "authentication failed: computed hash does not match hash received from peer " \
           "FQDN '@west2'" in east.logtext()
    assert _states(west) == []
    _wait(lambda: _states(east) == [])


def test_delete_and_deletestate(pair):
    west, east = pair
    _add_both(west, east, "d", "3", net=3)
    assert west.whack("--name", "d", "--initiate").rc == 0
    ike, child = (int(s.split(":")[0][1:]) for s in _states(west)[:2])
    # delete the Child SA alone, then the IKE SA, each by state number
    res = west.whack("--deletestate", str(child))
    assert res.rc == 0, res
    assert f'"d" #{child}: sent INFORMATIONAL request to delete established Child SA using ' \
           f"IKE SA #{ike}" in res.lines
    assert f'"d" #{child}: ESP traffic information: in=0B out=0B' in res.lines
    _wait(lambda: len(_states(east)) == 1)
    assert len(_states(west)) == 1
    res = west.whack("--deletestate", str(ike))
    assert res.rc == 0
    assert res.lines[-1] == f'"d" #{ike}: deleting IKE SA (established IKE SA)'
    # the connection was initiated (UP): it revives (ipsec_whack(8)); --down clears UP
    _wait(lambda: any(f"#{ike}: connection is supposed to remain up; revival attempt 1 "
                      "scheduled in 0 seconds" in x for x in west.logtext().splitlines()))
    _wait(lambda: len(_states(west)) >= 2)
    assert west.whack("--name", "d", "--down").rc == 0
    _wait(lambda: _states(east) == [] and _states(west) == [])
    # --delete removes the connection and its SAs, telling the peer
    assert west.whack("--name", "d", "--initiate").rc == 0
    res = west.whack("--name", "d", "--delete")
    assert res.rc == 0, res
    assert res.lines[0] == '"d": terminating SAs using this connection'
    assert re.fullmatch(r'"d" #\d+: deleting IKE SA \(ESTABLISHED_IKE_SA\) and sending '
                        r"notification", res.lines[1])
    assert re.fullmatch(r'"d" #\d+: ESP traffic information: in=0B out=0B', res.lines[2])
    _wait(lambda: _states(east) == [])
    assert west.whack("--connectionstatus", "--name", "d").out == ""


def test_ddos_busy_responder_demands_a_cookie(pair):
    west, east = pair
    _add_both(west, east, "k", "3", net=5)
    assert east.whack("--ddos-busy").rc == 0
    try:
        res = west.whack("--name", "k", "--initiate")
    finally:
        east.whack("--ddos-auto")
    assert res.rc == 0, res
    assert re.sub(r"#\d+", "#N", res.lines[2]) == (
        '"k" #N: received anti-DDOS COOKIE response, resending IKE_SA_INIT request with '
        "COOKIE payload")
    assert "established Child SA" in res.lines[-1]
    assert west.whack("--name", "k", "--delete").rc == 0
    _wait(lambda: _states(east) == [])


def test_ipsec_add_from_config_and_asynchronous_up(pair, tmp_path):
    west, east = pair
    conf = tmp_path / "ipsec.conf"
    conf.write_text("""\
config setup

conn cfg
    left=127.0.0.1
    leftid=@west
    leftsubnet=10.4.1.0/24
    right=127.0.0.2
    rightid=@east
    rightsubnet=10.4.2.0/24
    authby=secret
    ike=aes256-sha2_256-modp2048
    esp=aes256-sha2_256
""")
    for p in (west, east):
        res = p.ipsec("--config", str(conf), "add", "cfg")
        assert res.rc == 0, res
    res = west.ipsec("--asynchronous", "up", "cfg")
    assert res.rc == 0, res
    assert res.lines[0].endswith("initiating IKEv2 connection to 127.0.0.2 using UDP")
    _wait(lambda: len(_states(west)) == 3 and len(_states(east)) == 3)
    assert "xfrm=AES_CBC_256-HMAC_SHA2_256_128" in west.logtext()
    assert "group=MODP2048" in west.logtext()
    assert west.ipsec("down", "cfg").rc == 0
    _wait(lambda: _states(east) == [])


def test_shutdown_deletes_everything_on_both_sides(tmp_path):
    west, east = _pair(tmp_path)
    try:
        _add_both(west, east, "s")
        assert west.whack("--name", "s", "--initiate").rc == 0
        assert len(_states(east)) == 3  # IKE SA, Child SA and its traffic line
        res = west.whack("--shutdown")
        assert res.rc == 0
        _wait(lambda: _states(east) == [])
        assert west.proc.wait(20) == 0
        assert '"s" #1: deleting IKE SA (ESTABLISHED_IKE_SA) and sending notification' in \
            west.logtext()
        assert '"s" #1: deleting IKE SA (established IKE SA)' in east.logtext()
    finally:
        west.stop()
        east.stop()


# --------------------------------------------------------------------------------------
# The glue in one process: two Pluto objects joined by fake UDP transports, real engine,
# real in-memory kernels (which can be told to refuse, as this host's XFRM refuses ESP).


class _Whack:
    def __init__(self) -> None:
        import asyncio

        self.lines: list[tuple[int, str]] = []
        self.released = asyncio.get_running_loop().create_future()

    def send(self, rc: int, text: str) -> None:
        self.lines.append((rc, text))

    def release(self) -> None:
        if not self.released.done():
            self.released.set_result(None)

    @property
    def text(self) -> list[str]:
        return [t for _, t in self.lines]


class _Wire:
    """A datagram transport that hands what is sent to the peer daemon."""

    def __init__(self, iface, peer) -> None:
        import asyncio

        self.iface, self.peer = iface, peer
        self.loop = asyncio.get_running_loop()

    def sendto(self, data: bytes, addr: tuple) -> None:
        peer_iface = self.peer.interfaces[0]
        self.loop.call_soon(self.peer.on_datagram, peer_iface, data,
                            (str(self.iface.addr), self.iface.port))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _daemon(tmp: Path, name: str, addr: str, **kernel_kw):
    import ipaddress

    from pyswan.auto.secrets import load_secrets
    from pyswan.kernel.memory import MemoryKernel
    from pyswan.pluto.daemon import Pluto as Daemon
    from pyswan.pluto.interfaces import Interface
    from pyswan.pluto.main import PlutoOptions

    secrets = tmp / f"{name}.secrets"
    secrets.write_text(SECRETS_WEST)
    secrets.chmod(0o600)
    opts = PlutoOptions(rundir=str(tmp), logfile=str(tmp / f"{name}.log"), ikeport=500,
                        secretsfile=str(secrets))
    p = Daemon(opts)
    p.kernel = MemoryKernel(**kernel_kw)
    p.secrets = load_secrets(str(secrets))
    p.interfaces = [Interface("lo", ipaddress.ip_address(addr), 500, False)]
    p.listening = True
    return p


async def _glued(tmp: Path, west_kernel: dict | None = None, east_kernel: dict | None = None):
    from pyswan.pluto.connadd import add_connection
    from pyswan.pluto.ikeglue import IkeGlue

    west = _daemon(tmp, "west", "127.0.0.1", **(west_kernel or {}))
    east = _daemon(tmp, "east", "127.0.0.2", **(east_kernel or {}))
    west.interfaces[0].transport = _Wire(west.interfaces[0], east)
    east.interfaces[0].transport = _Wire(east.interfaces[0], west)
    triples = [("left", "host", "127.0.0.1"), ("left", "id", "@west"),
               ("left", "subnet", "10.1.0.0/24"), ("right", "host", "127.0.0.2"),
               ("right", "id", "@east"), ("right", "subnet", "10.2.0.0/24"),
               ("", "authby", "secret")]
    for p in (west, east):
        p.engine = IkeGlue(p)
        assert add_connection(p, "c", triples, _Whack()) is not None
    return west, east


async def _settle(*daemons) -> None:
    import asyncio

    for _ in range(50):
        await asyncio.sleep(0.01)
        for d in daemons:
            await d.engine.drain()


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def test_glue_in_process_up_and_down(tmp_path):
    async def scenario():
        from pyswan.whack.protocol import Request

        west, east = await _glued(tmp_path)
        w = _Whack()
        await west.engine.initiate(west.conns.get("c"), w, Request("initiate", "c"))
        assert w.text[-1].startswith('"c" #2: initiator established Child SA using #1; IPsec '
                                     "tunnel [10.1.0.0/24===10.2.0.0/24]")
        await _settle(west, east)
        # both kernels hold exactly the Child SA's two SAs and three policies
        for p in (west, east):
            assert p.kernel.owned_counts() == (2, 3)
            assert p.conns.get("c").routing == "routed-tunnel"
        w = _Whack()
        await west.engine.terminate(west.conns.get("c"), w, delete=False)
        await _settle(west, east)
        assert w.text[-1] == '"c" #1: deleting IKE SA (established IKE SA)'
        for p in (west, east):
            assert p.kernel.owned_counts() == (0, 0)
            assert len(p.states) == 0
    _run(scenario())


def test_glue_kernel_refusal_on_responder_installs_nothing(tmp_path):
    async def scenario():
        from pyswan.whack.protocol import Request

        west, east = await _glued(tmp_path, east_kernel={"refuse_protos": ["esp"]})
        w = _Whack()
        await west.engine.initiate(west.conns.get("c"), w, Request("initiate", "c"))
        await _settle(west, east)
        assert w.text[-1] == '"c" #2: IKE_AUTH response rejected Child SA with TS_UNACCEPTABLE'
        log = (tmp_path / "east.log").read_text()
        assert re.search(r'"c" #2: ERROR: ESP SA 0x[0-9a-f]{8} 127\.0\.0\.1->127\.0\.0\.2: '
                         r"kernel refused add SA \(XFRM_MSG_NEWSA\): Protocol not supported",
                         log)
        assert east.kernel.owned_counts() == (0, 0)
        assert [s.kind for s in east.states] == ["ike"]  # the IKE SA stays up
    _run(scenario())


def test_glue_kernel_refusal_midway_rolls_back_and_tells_peer(tmp_path):
    async def scenario():
        from pyswan.whack.protocol import Request

        west, east = await _glued(tmp_path)
        west.kernel.fail_next("replace_policy")  # after both SAs went in
        w = _Whack()
        await west.engine.initiate(west.conns.get("c"), w, Request("initiate", "c"))
        await _settle(west, east)
        assert any("ERROR:" in line and "kernel refused" in line for line in w.text)
        assert w.text[-1] == ('"c" #2: sent INFORMATIONAL request to delete larval Child SA '
                              "using IKE SA #1")
        assert west.kernel.owned_counts() == (0, 0)
        assert east.kernel.owned_counts() == (0, 0)  # the peer was told and removed its own
        assert [s.kind for s in west.states] == ["ike"] == [s.kind for s in east.states]
    _run(scenario())


def test_glue_psk_index_agrees_with_secrets_find(tmp_path):
    """The glue's indexed PSK lookup must pick exactly what ipsec.secrets' own
    most-specific-match search picks."""
    import ipaddress

    from pyswan.auto.secrets import load_secrets
    from pyswan.ike.constants import IdType
    from pyswan.ike.ikev2 import Identity
    from pyswan.pluto.ikeglue import _Credentials

    path = tmp_path / "s"
    path.write_text('@west @east : PSK "a"\n'
                    '@WEST. @east : PSK "b"\n'
                    '@west %any : PSK "c"\n'
                    ': PSK "default"\n'
                    '192.0.2.1 @east : PSK "d"\n'
                    '@east @west @third : PSK "e"\n'
                    'user@example.com @east : PSK "f"\n'
                    '@solo : PSK "g"\n')
    path.chmod(0o600)
    secrets = load_secrets(str(path))

    class _P:
        pass

    p = _P()
    p.secrets = secrets
    creds = _Credentials(p)

    def ident(text: str) -> Identity:
        if text[0].isdigit():
            return Identity.from_address(ipaddress.ip_address(text))
        if text.startswith("@"):
            return Identity.of(IdType.FQDN, text[1:].encode())
        return Identity.of(IdType.RFC822_ADDR, text.encode())

    names = ["@west", "@east", "@WEST.", "@third", "@nobody", "@solo", "192.0.2.1",
             "192.0.2.9", "user@example.com"]
    for a in names:
        for b in names:
            expected = secrets.lookup_psk(a if not a[0].isdigit() else a,
                                          b if not b[0].isdigit() else b)
            assert creds.psk(ident(a), ident(b)) == expected, (a, b)


def test_glue_rekey_replaces_sas_and_keeps_kernel_consistent(tmp_path):
    async def scenario():
        from pyswan.whack.protocol import Request

        west, east = await _glued(tmp_path)
        conn = west.conns.get("c")
        await west.engine.initiate(conn, _Whack(), Request("initiate", "c"))
        await _settle(west, east)
        w = _Whack()
        await west.engine.sa_operation(conn, "rekey-ike", w, asynchronous=False)
        await _settle(west, east)
        assert w.text[0] == '"c" #3: initiating rekey to replace IKE SA #1'
        assert any(t.startswith('"c" #3: initiator rekeyed IKE SA #1 {cipher=') for t in w.text)
        for p in (west, east):
            assert sorted(s.serial for s in p.states) == [2, 3]  # the Child SA moved
            assert p.states.get(2).parent == 3
            assert p.kernel.owned_counts() == (2, 3)
        w = _Whack()
        await west.engine.sa_operation(conn, "rekey-child", w, asynchronous=False)
        await _settle(west, east)
        assert w.text[0] == '"c" #4: initiating rekey to replace Child SA #2'
        assert any(t.startswith('"c" #4: initiator rekeyed Child SA #2 using #3') for t in w.text)
        for p in (west, east):
            assert sorted(s.serial for s in p.states) == [3, 4]
            assert p.kernel.owned_counts() == (2, 3)  # old SAs gone, policies kept
            assert p.conns.get("c").newest_child == 4
            assert p.conns.get("c").routing == "routed-tunnel"
    _run(scenario())


def test_glue_kernel_expire_soft_rekeys_and_hard_deletes(tmp_path):
    """ipsec-max-bytes: the kernel's soft EXPIRE (half the limit) rekeys the Child SA, the
    hard EXPIRE deletes it on both sides."""
    async def scenario():
        from pyswan.whack.protocol import Request

        west, east = await _glued(tmp_path)
        for p in (west, east):
            p.kernel.add_event_handler(p.engine.on_kernel_event)
        conn = west.conns.get("c")
        w = _Whack()
        await west.engine.initiate(conn, w, Request("initiate", "c"))
        await _settle(west, east)
        child = west.states.get(conn.newest_child)
        # the SA spec carries the limits derived from the conn
        spec, _counters = await west.kernel.get_sa(child.peer[0], child.spi_out)
        assert spec.lifetime.hard_bytes == 2**64 - 1  # default ipsec-max-bytes: no limit
        # a conn with a byte limit
        triples = [("left", "host", "127.0.0.1"), ("left", "id", "@west"),
                   ("left", "subnet", "10.1.0.0/24"), ("right", "host", "127.0.0.2"),
                   ("right", "id", "@east"), ("right", "subnet", "10.2.0.0/24"),
                   ("", "authby", "secret"), ("", "ipsec-max-bytes", "1000")]
        from pyswan.pluto.connadd import add_connection

        for p in (west, east):
            await p.engine.terminate(p.conns.get("c"), _Whack(), delete=True)
            await _settle(west, east)
            assert add_connection(p, "c", triples, _Whack(), replace=True) is not None
        conn = west.conns.get("c")
        await west.engine.initiate(conn, _Whack(), Request("initiate", "c"))
        await _settle(west, east)
        first = west.states.get(conn.newest_child)
        west.kernel.add_traffic(first.peer[0], first.spi_out, nbytes=600)  # > soft (500)
        await _settle(west, east)
        second = conn.newest_child
        assert second != first.serial and west.states.get(second).established
        log = (tmp_path / "west.log").read_text()
        assert f'"c" #{first.serial}: kernel soft expire of' in log
        assert f'"c" #{second}: initiator rekeyed Child SA #{first.serial}' in log
        st = west.states.get(second)
        west.kernel.add_traffic(st.peer[0], st.spi_out, nbytes=1200)  # > hard (1000)
        await _settle(west, east)
        assert west.states.get(second) is None
        assert f'"c" #{second}: kernel hard expire of' in (tmp_path / "west.log").read_text()
        assert not [s for s in east.states if s.kind == "child"]
    _run(scenario())
