"""DDoS protection: stateless cookies (RFC 7296 2.6), half-open accounting, the auto
threshold, the half-open ceiling, secret rotation (two engines, see ikev2_harness)."""

from __future__ import annotations

import hashlib
import hmac

from ikev2_harness import WEST, Net, make_policy
from test_ikev2_exchange import east_policy

from pyswan.ike.codec import KE, Nonce, Notify, decode_message, encode_message
from pyswan.ike.constants import ExchangeType, NotifyType
from pyswan.ike.ikev2 import EngineConfig
from pyswan.ike.ikev2.cookie import PREVIOUS_GRACE, SECRET_LIFETIME


def _requests(net: Net) -> list:
    return [decode_message(d) for direction, d in net.sent
            if direction == "west->east" and d[18] == ExchangeType.IKE_SA_INIT]


def _answers(net: Net) -> list:
    return [decode_message(d) for direction, d in net.sent
            if direction == "east->west" and d[18] == ExchangeType.IKE_SA_INIT]


def _cookie_of(msg) -> bytes | None:
    first = msg.payloads[0] if msg.payloads else None
    if type(first) is Notify and first.type == NotifyType.COOKIE:
        return first.data
    return None


def _nonce(msg) -> bytes:
    return next(p for p in msg.payloads if type(p) is Nonce).data


def test_busy_cookie_round_trip_bytes():
    net = Net(east_config=EngineConfig(ddos_mode="busy"))
    net.up()
    first, second = _requests(net)[:2]
    answer = _answers(net)[0]
    # the COOKIE answer: SPIr zero, a response, nothing but the notification
    assert answer.spi_i == first.spi_i and answer.spi_r == bytes(8)
    assert answer.flags & 0x20 and answer.message_id == 0
    assert [type(p) for p in answer.payloads] == [Notify]
    cookie = answer.payloads[0].data
    # version ID of the secret, then HMAC-SHA2-256(secret, Ni | IPi | SPIi)
    secret = net.east.engine.cookies.secret
    expected = hmac.digest(secret, _nonce(first) + WEST.packed + first.spi_i, hashlib.sha256)
    assert cookie == bytes((net.east.engine.cookies.version,)) + expected
    # the retry: same SPIi and nonce, the cookie as the first payload
    assert second.spi_i == first.spi_i and _nonce(second) == _nonce(first)
    assert _cookie_of(second) == cookie
    assert net.west.lines()[2] == ("#1: received anti-DDOS COOKIE response, resending "
                                   "IKE_SA_INIT request with COOKIE payload")
    assert "established Child SA" in net.west.lines()[-1]
    # no state was spent on the cookieless request
    assert sorted(net.east.states) == [1, 2]


def test_unlimited_never_asks_for_cookies():
    net = Net(east_config=EngineConfig(ddos_mode="unlimited", ddos_ike_threshold=0))
    net.up()
    assert all(_cookie_of(m) is None for m in _answers(net) + _requests(net))
    assert "established Child SA" in net.west.lines()[-1]


def _flood(net: Net, n: int) -> None:
    """``n`` initiations whose answers are lost: east keeps them half-open."""
    net.drop = lambda direction, data: direction == "east->west"
    for _ in range(n):
        net.initiate()
    net.run()


def test_half_open_count_follows_states():
    net = Net()
    eng = net.east.engine
    _flood(net, 3)
    assert eng.halfopen == 3
    assert net.west.engine.halfopen == 3  # initiators in IKE_SA_INIT_I are half-open too
    net.drop = lambda direction, data: False
    net.initiate()
    net.run()
    assert eng.halfopen == 3  # the completed one is established, not half-open
    # the responder forgets its half-open SAs at the DISCARD timeout
    net.advance(eng.config.halfopen_timeout + 1)
    assert eng.halfopen == 0


def test_auto_mode_demands_cookies_at_the_threshold():
    net = Net(east_config=EngineConfig(ddos_ike_threshold=3))
    eng = net.east.engine
    _flood(net, 2)
    assert eng.halfopen == 2 and not eng.cookies_required()
    assert all(_cookie_of(m) is None for m in _answers(net))
    _flood(net, 1)
    assert eng.halfopen == 3 and eng.cookies_required()
    # a legitimate initiator now goes through the cookie exchange and gets up
    net.drop = lambda direction, data: False
    serial = net.initiate()
    net.run()
    lines = [line for line in net.west.lines() if line.startswith(f"#{serial}:")]
    assert f"#{serial}: received anti-DDOS COOKIE response, resending IKE_SA_INIT request " \
           "with COOKIE payload" in lines
    assert any("established Child SA" in line for line in net.west.lines())
    assert eng.halfopen == 3  # the cookie round cost no state
    # once the half-open SAs time out, no cookie is needed any more
    net.advance(eng.config.halfopen_timeout + 1)
    assert eng.halfopen == 0 and not eng.cookies_required()


def test_max_halfopen_drops_new_requests_with_a_limited_log():
    net = Net(east_config=EngineConfig(ddos_mode="unlimited", max_halfopen_ike=2))
    eng = net.east.engine
    eng.unsecured_log.limit = 3
    _flood(net, 2)
    answered = len(_answers(net))
    _flood(net, 5)
    assert eng.halfopen == 2
    assert len(_answers(net)) == answered  # dropped: no answer, no state
    drops = [line for line in net.east.lines()
             if "dropping IKE_SA_INIT request, too many half open IKE SAs (2)" in line]
    assert len(drops) == 3  # the rate limit
    assert "unsecured message rate limited log reached limit of 3 entries" in net.east.lines()
    assert len([line for line in net.east.lines(debug=True)
                if "too many half open IKE SAs" in line]) == 5


def test_rotated_secret_is_still_accepted_for_a_while():
    net = Net(east_config=EngineConfig(ddos_mode="busy"))
    net.initiate()
    net.step()  # the request; east answers with a cookie of the current secret
    old = net.east.engine.cookies.version
    net.east.engine.cookies.refresh(net.now)
    assert net.east.engine.cookies.version != old
    net.run()
    assert _cookie_of(_requests(net)[1])[0] == old
    assert "established Child SA" in net.west.lines()[-1]


def test_replaced_secret_expires_after_its_grace():
    net = Net(east_config=EngineConfig(ddos_mode="busy"))
    net.initiate()
    net.step()
    net.east.engine.cookies.refresh(net.now)
    net.now += PREVIOUS_GRACE + 1
    net.step()  # west gets the cookie and resends with it
    net.step()
    assert any(line.endswith("DOS cookies do not match - dropping message")
               for line in net.east.lines())
    assert net.east.states == {}


def test_secret_refreshes_itself_hourly():
    cookies = Net().east.engine.cookies
    ni, spi = b"n" * 32, b"s" * 8
    first = cookies.make(0.0, ni, (WEST, 500), spi)
    assert cookies.make(SECRET_LIFETIME - 1, ni, (WEST, 500), spi) == first
    later = cookies.make(SECRET_LIFETIME, ni, (WEST, 500), spi)
    assert later[0] == (first[0] + 1) & 0xFF and later != first
    # a port change does not matter (NAT), the address does
    assert cookies.check(SECRET_LIFETIME, later, ni, (WEST, 4500), spi)
    assert not cookies.check(SECRET_LIFETIME, later, ni, (WEST, 500), b"t" * 8)


def _request_with(net: Net, cookie: bytes | None, first: bool = True) -> bytes:
    """West's IKE_SA_INIT request, with a COOKIE added (first or last)."""
    net.initiate()
    src, send = net.queue.popleft()
    msg = decode_message(send.data)
    if cookie is not None:
        note = Notify(0, b"", NotifyType.COOKIE, cookie)
        msg.payloads = [note, *msg.payloads] if first else [*msg.payloads, note]
    return encode_message(msg)


def test_bad_cookie_is_dropped_even_when_not_busy():
    net = Net()
    data = _request_with(net, b"\x00" + bytes(32))
    actions = net.inject(net.east, data)
    assert not actions or all(type(a).__name__ == "Log" for a in actions)
    assert net.east.lines()[-1].endswith("DOS cookies do not match - dropping message")
    assert net.east.states == {}


def test_cookie_not_first_does_not_count():
    net = Net(east_config=EngineConfig(ddos_mode="busy"))
    good = net.east.engine.cookies  # a correct cookie, but in the wrong place
    data = _request_with(net, None)
    msg = decode_message(data)
    cookie = good.make(net.now, _nonce(msg), (WEST, 500), msg.spi_i)
    msg.payloads = [*msg.payloads, Notify(0, b"", NotifyType.COOKIE, cookie)]
    net.inject(net.east, encode_message(msg))
    sends = [a for a in net.east.actions if type(a).__name__ == "Send"]
    assert len(sends) == 1 and _cookie_of(decode_message(sends[0].data)) is not None
    assert net.east.states == {}


def test_cookie_then_invalid_ke_keeps_cookie_and_nonce():
    net = Net(make_policy(ike="aes_gcm_16_256-sha2_256-dh19+dh31"),
              east_policy(ike="aes_gcm_16_256-sha2_256-dh31"),
              east_config=EngineConfig(ddos_mode="busy"))
    net.up()
    reqs = _requests(net)
    assert len(reqs) == 3
    assert _cookie_of(reqs[0]) is None
    assert _cookie_of(reqs[1]) == _cookie_of(reqs[2]) is not None
    assert len({_nonce(r) for r in reqs}) == 1  # the cookie covers Ni: it must not change
    groups = [next(p for p in r.payloads if type(p) is KE).group for r in reqs]
    assert groups == [19, 19, 31]
    west = net.west.lines()
    assert west[2] == ("#1: received anti-DDOS COOKIE response, resending IKE_SA_INIT "
                       "request with COOKIE payload")
    assert west[3].startswith("#1: Received unauthenticated INVALID_KE_PAYLOAD response")
    assert "established Child SA" in west[-1]


def test_impair_ddos_cookie_add_and_mangle():
    net = Net()
    net.west.engine.config.impair_ddos_cookie = 1  # add an unsolicited bogus cookie
    net.initiate()
    net.run()
    assert net.west.lines()[1] == "#1: IMPAIR: adding unsolicited and mangled DDOS cookie"
    assert _cookie_of(_requests(net)[0]) == b"\xa5"
    assert net.east.lines()[-1].endswith(
        "DOS cookie notification corrupt, or invalid - dropping message")
    assert net.east.states == {}
    net = Net(east_config=EngineConfig(ddos_mode="busy"))
    net.west.engine.config.impair_ddos_cookie = 2  # mangle the cookie the responder sent
    net.initiate()
    net.run()
    assert "#1: IMPAIR: mangling DDOS cookie sent by peer" in net.west.lines()
    assert [_cookie_of(r) for r in _requests(net)] == [None, b"\xa5"]
    assert net.east.lines()[-1].endswith(
        "DOS cookie notification corrupt, or invalid - dropping message")
