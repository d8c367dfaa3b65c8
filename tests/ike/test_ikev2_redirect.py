"""RFC 5685 redirect between three engines: west (the initiator), east (the gateway that
redirects) and north (where it redirects to)."""

from __future__ import annotations

import ipaddress

from ikev2_harness import EAST, WEST, Net, Side, make_policy

from pyswan.ike.codec import Notify, decode_message, encode_message
from pyswan.ike.constants import ExchangeType, NotifyType
from pyswan.ike.ikev2 import EngineConfig
from pyswan.ike.ikev2.redirect import MAX_REDIRECTS, RedirectSettings, gw_data, parse_gw

NORTH = ipaddress.ip_address("192.0.2.3")
ACCEPT = RedirectSettings(accept=True)
NOTHING = RedirectSettings()


class Net3(Net):
    """The two-engine harness plus north; datagrams go where they are addressed."""

    def __init__(self, *, east_config: EngineConfig | None = None,
                 north_config: EngineConfig | None = None,
                 west_redirect: RedirectSettings = ACCEPT,
                 east_redirect: RedirectSettings = NOTHING,
                 north_redirect: RedirectSettings = NOTHING) -> None:
        super().__init__(make_policy(), _gateway(EAST), east_config=east_config)
        serials = iter(range(1, 10**6)).__next__
        self.north = Side("north", NORTH, self._engine(_gateway(NORTH), None, north_config,
                                                        serials))
        for side, rs in ((self.west, west_redirect), (self.east, east_redirect),
                         (self.north, north_redirect)):
            side.engine.config.redirect_settings = lambda policy, rs=rs: rs

    def sides(self) -> tuple[Side, ...]:
        return (self.west, self.east, self.north)

    def step(self) -> None:
        src, send = self.queue.popleft()
        dst = next(s for s in self.sides() if s.addr == send.remote[0])
        direction = f"{src.name}->{dst.name}"
        self.sent.append((direction, send.data))
        if self.drop(direction, send.data):
            return
        self.handle(dst, dst.engine.receive(send.data, send.remote, send.local, self.now))


def _gateway(addr) -> object:
    return make_policy("c", local=addr, remote=WEST, local_id="east", remote_id="west",
                       local_net="10.2.0.0/24", remote_net="10.1.0.0/24")


def _init_requests(net: Net3, to: str) -> list:
    return [decode_message(d) for direction, d in net.sent
            if direction == f"west->{to}" and d[18] == ExchangeType.IKE_SA_INIT]


def _notes(msg) -> dict[int, bytes]:
    return {p.type: p.data for p in msg.payloads if type(p) is Notify}


def _established_with(side: Side, addr) -> bool:
    eng = side.engine
    return any(sa.established and sa.remote[0] == addr and sa.children
               and all(c.established for c in sa.children.values())
               for sa in eng.ike_sas.values())


def test_global_redirect_in_ike_sa_init():
    net = Net3(east_config=EngineConfig(global_redirect="yes",
                                        global_redirect_to="192.0.2.3"))
    net.up()
    first = _init_requests(net, "east")[0]
    assert NotifyType.REDIRECT_SUPPORTED in _notes(first)
    answer = next(decode_message(d) for direction, d in net.sent if direction == "east->west")
    ni = next(p.data for p in first.payloads if p.payload_type == 40)
    # GW Ident Type IPv4, length 4, the address, then our nonce (RFC 5685 8)
    assert [type(p) for p in answer.payloads] == [Notify]
    assert answer.payloads[0].type == NotifyType.REDIRECT
    assert answer.payloads[0].data == b"\x01\x04" + NORTH.packed + ni
    west = net.west.lines()
    assert west[2:6] == [
        "#1: IKE_SA_INIT response redirects to new gateway 192.0.2.3",
        "#1: scheduling redirect 1 to 192.0.2.3",
        "#2: initiating IKEv2 connection to 192.0.2.3 using UDP",
        "#2: sent IKE_SA_INIT request to 192.0.2.3:UDP/500",
    ]
    assert west[6] == "#1: deleting IKE SA (sent IKE_SA_INIT request)"
    # the new gateway hears where we come from
    again = _init_requests(net, "north")[0]
    assert _notes(again)[NotifyType.REDIRECTED_FROM] == b"\x01\x04" + EAST.packed
    assert NotifyType.REDIRECT_SUPPORTED not in _notes(again)
    assert _established_with(net.west, NORTH)
    assert net.east.states == {} and sorted(net.north.states) == [1, 2]
    assert net.east.engine.counters == {"total.ike.ikev2.redirect.completed": 1}


def test_global_redirect_drops_peers_without_support():
    net = Net3(east_config=EngineConfig(global_redirect="yes",
                                        global_redirect_to="192.0.2.3"),
               west_redirect=RedirectSettings(accept=False))
    net.initiate()
    net.run()
    assert NotifyType.REDIRECT_SUPPORTED not in _notes(_init_requests(net, "east")[0])
    assert not [d for direction, d in net.sent if direction == "east->west"]
    assert net.east.engine.counters == {"total.ike.ikev2.redirect.failed": 1}


def test_global_redirect_auto_only_under_ddos():
    calm = Net3(east_config=EngineConfig(global_redirect="auto",
                                         global_redirect_to="192.0.2.3"))
    calm.up()
    assert _established_with(calm.west, EAST) and not calm.north.states
    busy = Net3(east_config=EngineConfig(global_redirect="auto", ddos_mode="busy",
                                         global_redirect_to="192.0.2.3"))
    busy.up()
    # the cookie round first, then the redirect
    lines = busy.west.lines()
    assert lines[2] == ("#1: received anti-DDOS COOKIE response, resending IKE_SA_INIT "
                        "request with COOKIE payload")
    assert lines[3] == "#1: IKE_SA_INIT response redirects to new gateway 192.0.2.3"
    assert _established_with(busy.west, NORTH)


def test_redirect_to_a_gateway_not_in_accept_redirect_to_is_ignored():
    net = Net3(east_config=EngineConfig(global_redirect="yes",
                                        global_redirect_to="192.0.2.3"),
               west_redirect=RedirectSettings(accept=True, accept_to=("192.0.2.9",)))
    net.initiate()
    net.run()
    assert net.west.lines()[-1] == (
        "#1: WARNING: parsing of v2N_REDIRECT payload failed: received GW Identity is not "
        "listed in accept-redirect-to conn option")
    assert net.west.engine.sa(1).state.name == "IKE_SA_INIT_I"  # still waiting
    assert not net.north.states


def test_spoofed_redirect_with_another_nonce_is_ignored():
    net = Net3()
    net.initiate()
    _src, send = net.queue.popleft()
    req = decode_message(send.data)
    forged = type(req)(req.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, 0x20, 0,
                       [Notify(0, b"", NotifyType.REDIRECT, gw_data("192.0.2.3", b"x" * 32))])
    net.inject(net.west, encode_message(forged))
    assert net.west.lines()[-1] == (
        "#1: WARNING: parsing of v2N_REDIRECT payload failed: received nonce does not match "
        "our expected nonce Ni (spoofed packet?)")
    assert net.west.engine.sa(1) is not None and not net.queue


def test_redirect_not_accepted_without_accept_redirect():
    net = Net3(west_redirect=RedirectSettings(accept=False))
    net.initiate()
    _src, send = net.queue.popleft()
    req = decode_message(send.data)
    ni = next(p.data for p in req.payloads if p.payload_type == 40)
    answer = type(req)(req.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, 0x20, 0,
                       [Notify(0, b"", NotifyType.REDIRECT, gw_data("192.0.2.3", ni))])
    net.inject(net.west, encode_message(answer))
    assert net.west.lines()[-1] == ("#1: ignoring v2N_REDIRECT, we don't accept being "
                                    "redirected")
    assert not net.queue


def test_send_redirect_in_ike_auth():
    net = Net3(east_redirect=RedirectSettings(send="yes", to=("192.0.2.3",)))
    net.up()
    west = net.west.lines()
    i = west.index("#1: IKE_AUTH response redirects to new gateway 192.0.2.3")
    assert west[i - 1].startswith("#1: initiator established IKE SA;")
    assert west[i + 1] == "#2: scheduling redirect 1 to 192.0.2.3"
    assert "#1: deleting IKE SA (ESTABLISHED_IKE_SA) and sending notification" in west
    assert _established_with(net.west, NORTH)
    # east established the IKE SA without a Child SA, then the initiator deleted it
    assert not net.east.installed and net.east.states == {}
    assert "#1: responder established IKE SA; authenticated peer using authby=secret and " \
           "FQDN '@west'" in net.east.lines()


def test_send_redirect_auto_only_under_ddos():
    net = Net3(east_redirect=RedirectSettings(to=("192.0.2.3",)))
    net.up()
    assert _established_with(net.west, EAST) and not net.north.states
    net = Net3(east_redirect=RedirectSettings(send="no", to=("192.0.2.3",)),
               east_config=EngineConfig(ddos_mode="busy"))
    net.up()
    assert _established_with(net.west, EAST)
    net = Net3(east_redirect=RedirectSettings(to=("192.0.2.3",)),
               east_config=EngineConfig(ddos_mode="busy"))
    net.up()
    assert _established_with(net.west, NORTH)


def test_active_redirect_by_informational():
    net = Net3()
    net.up()
    assert _established_with(net.west, EAST)
    net.handle(net.east, net.east.engine.redirect(1, "192.0.2.3", net.now))
    assert net.east.lines()[-1] == "#1: redirecting to: 192.0.2.3"
    net.run()
    west = net.west.lines()
    assert "#1: INFORMATIONAL response redirects to new gateway 192.0.2.3" in west
    assert "#2: scheduling redirect 1 to 192.0.2.3" in west
    assert _established_with(net.west, NORTH)
    assert net.east.states == {} and not net.east.installed
    again = _init_requests(net, "north")[0]
    assert _notes(again)[NotifyType.REDIRECTED_FROM] == b"\x01\x04" + EAST.packed


def test_redirect_loop_is_cut_after_the_limit():
    net = Net3(east_config=EngineConfig(global_redirect="yes",
                                        global_redirect_to="192.0.2.3"),
               north_config=EngineConfig(global_redirect="yes",
                                         global_redirect_to="192.0.2.2"))
    net.initiate()
    net.run()
    west = net.west.lines()
    hops = [line.split(": ", 1)[1] for line in west if ": scheduling redirect" in line]
    assert hops == [f"scheduling redirect {n} to {'192.0.2.3' if n % 2 else '192.0.2.2'}"
                    for n in range(1, MAX_REDIRECTS + 1)]
    assert west[-2].endswith(": IKE_SA_INIT redirect exceeds limit; assuming redirect loop")
    assert net.west.states == {} and not net.west.engine.redirects
    # a fresh initiation starts from the configured gateway and from scratch
    net.initiate()
    assert decode_message(net.queue[0][1].data) and net.queue[0][1].remote[0] == EAST
    assert NotifyType.REDIRECT_SUPPORTED in _notes(decode_message(net.queue[0][1].data))


def test_gateway_identity_encoding():
    assert gw_data("2001:db8::1") == b"\x02\x10" + ipaddress.ip_address("2001:db8::1").packed
    assert gw_data("gw.example.org") == b"\x03\x0egw.example.org"
    assert parse_gw(b"\x03\x09192.0.2.3", (), None) == NORTH
    assert parse_gw(b"\x01\x04" + NORTH.packed + b"extra", (), None).startswith(
        "unexpected extra bytes")
    assert parse_gw(b"\x01\x02\xc0\x00", (), None) == \
        "transferred GW Identity Length is too small for an IP address"
    assert parse_gw(b"\x07\x00", (), None) == "bad GW Ident Type"
    assert parse_gw(b"\x01", (), None) == "received malformed REDIRECT payload"
    assert parse_gw(b"\x01\x04" + NORTH.packed, ("%any",), None) == NORTH


def test_redirect_to_another_address_family_is_ignored():
    net = Net3()
    net.initiate()
    _src, send = net.queue.popleft()
    req = decode_message(send.data)
    ni = next(p.data for p in req.payloads if p.payload_type == 40)
    answer = type(req)(req.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, 0x20, 0,
                       [Notify(0, b"", NotifyType.REDIRECT, gw_data("2001:db8::1", ni))])
    net.inject(net.west, encode_message(answer))
    assert net.west.lines()[-1] == ("#1: IKE_SA_INIT redirect to 2001:db8::1 ignored: the "
                                    "connection is IPv4")
    assert net.west.engine.sa(1).state.name == "IKE_SA_INIT_I"
    assert (1, "RETRANSMIT") in net.west.timers  # still retransmitting to east
    assert not net.queue
