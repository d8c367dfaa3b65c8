"""Exchange tests: two sans-IO engines wired through a fake network (ikev2_harness)."""

from __future__ import annotations

import re

import pytest
from ikev2_harness import EAST, WEST, Net, Psks, make_policy

from pyswan.ike.ikev2 import (
    RC_FATAL,
    RC_NORETRANSMISSION,
    EngineConfig,
    PolicySwitched,
    RemoveChild,
    Send,
    format_table,
)
from pyswan.ike.ikev2 import states as S


def _spis(lines: list[str]) -> list[str]:
    return [re.sub(r"0x[0-9a-f]{8}", "0xESPESP", line) for line in lines]


def east_policy(**kw):
    kw.setdefault("local_net", "10.2.0.0/24")
    kw.setdefault("remote_net", "10.1.0.0/24")
    return make_policy(kw.pop("name", "c"), local=EAST, remote=WEST, local_id="east",
                       remote_id=kw.pop("remote_id", "west"), **kw)


SUITES = [
    ("aes_gcm_16_256-sha2_256-dh31", "aes_gcm_16_256",
     "{cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_256 group=DH31}", "AES_GCM_16_256"),
    ("aes256-sha2_256-modp2048", "aes256-sha2_256",
     "{cipher=AES_CBC_256 integ=HMAC_SHA2_256_128 prf=HMAC_SHA2_256 group=MODP2048}",
     "AES_CBC_256-HMAC_SHA2_256_128"),
    ("chacha20_poly1305-sha2_256-dh31", "chacha20_poly1305",
     "{cipher=CHACHA20_POLY1305_256 integ=n/a prf=HMAC_SHA2_256 group=DH31}",
     "CHACHA20_POLY1305"),
]


@pytest.mark.parametrize(("ike", "esp", "secured", "xfrm"), SUITES,
                         ids=["gcm-x25519", "cbc-modp2048", "chacha-x25519"])
def test_psk_success(ike, esp, secured, xfrm):
    net = Net(make_policy(ike=ike, esp=esp), east_policy(ike=ike, esp=esp))
    net.up()
    assert _spis(net.west.lines()) == [
        "#1: initiating IKEv2 connection to 192.0.2.2 using UDP",
        "#1: sent IKE_SA_INIT request to 192.0.2.2:UDP/500",
        f"#1: processed IKE_SA_INIT response from 192.0.2.2:UDP/500 {secured}, "
        "initiating IKE_AUTH",
        "#1: sent IKE_AUTH request to 192.0.2.2:UDP/500 with shared-key-mac and FQDN '@west'; "
        "Child SA #2 {ESP <0xESPESP} [10.1.0.0/24===10.2.0.0/24]",
        "#1: initiator established IKE SA; authenticated peer using authby=secret and FQDN "
        "'@east'",
        "#2: initiator established Child SA using #1; IPsec tunnel [10.1.0.0/24===10.2.0.0/24] "
        f"{{ESP/ESN=>0xESPESP <0xESPESP xfrm={xfrm} DPD=passive}}",
    ]
    east = net.east.lines()
    assert east[-2] == ("#1: responder established IKE SA; authenticated peer using "
                        "authby=secret and FQDN '@west'")
    assert _spis(east)[-1] == (
        "#2: responder established Child SA using #1; IPsec tunnel [10.2.0.0/24===10.1.0.0/24] "
        f"{{ESP/ESN=>0xESPESP <0xESPESP xfrm={xfrm} DPD=passive}}")
    assert [d.ok for d in net.west.done] == [True]
    w, e = net.west.installed[2], net.east.installed[2]
    assert (w.spi_out, w.spi_in) == (e.spi_in, e.spi_out)
    assert w.encr_key_out == e.encr_key_in and w.encr_key_in == e.encr_key_out
    assert w.integ_key_out == e.integ_key_in and w.integ_key_in == e.integ_key_out
    assert w.encr_key_in != w.encr_key_out
    assert w.local_ts == e.remote_ts and w.remote_ts == e.local_ts
    assert net.west.engine.sa(1).state is S.ESTABLISHED_IKE_SA
    assert net.east.engine.sa(2).state is S.ESTABLISHED_CHILD_SA
    # an established IKE SA has REKEY and REPLACE events, nothing else
    assert {k[1] for k in net.west.timers if k[0] == 1} == {"REKEY", "REPLACE"}


def test_wrong_psk_fails_on_both_sides():
    net = Net(east_psk=Psks(default=b"not the secret"))
    net.up()
    west = net.west.lines()
    assert west[-3:] == [
        "#1: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED",
        "#1: encountered fatal error in state IKE_AUTH_I",
        "#1: deleting IKE SA (sent IKE_AUTH request)",
    ]
    assert any(rc == RC_FATAL for _, _, rc in net.west.log)
    assert "#1: authentication failed: computed hash does not match hash received from peer " \
           "FQDN '@west'" in net.east.lines()
    assert net.west.states == {} and net.east.states == {}
    assert [(d.ok, d.rc) for d in net.west.done] == [(False, RC_FATAL)]


def test_no_proposal_chosen_ike_keeps_retrying_then_times_out():
    net = Net(make_policy(ike="aes_gcm_16_256-sha2_256-dh31"),
              east_policy(ike="aes256-sha2_256-modp2048"))
    net.up()
    assert any("no local proposal matches remote proposals" in line
               for line in net.east.lines())
    assert "#1: responding to IKE_SA_INIT message (ID 0) from 192.0.2.1:UDP/500 with " \
           "unencrypted notification NO_PROPOSAL_CHOSEN" in net.east.lines()
    assert net.west.lines()[-1] == (
        "#1: ignoring IKE_SA_INIT response containing NO_PROPOSAL_CHOSEN notification "
        "(Message ID 0; message payloads N(NO_PROPOSAL_CHOSEN), missing SA,KE,Ni)")
    assert net.east.states == {}
    net.advance(70)
    assert net.west.lines()[-2:] == [
        "#1: IKE_SA_INIT_I: 60 second timeout exceeded after 7 retransmits.  No response (or "
        "no acceptable response) to our first IKEv2 message",
        "#1: deleting IKE SA (sent IKE_SA_INIT request)",
    ]
    assert [(d.ok, d.rc) for d in net.west.done] == [(False, RC_NORETRANSMISSION)]


def test_no_proposal_chosen_child_keeps_ike_sa():
    net = Net(make_policy(esp="aes_gcm_16_256"), east_policy(esp="aes128-sha1"))
    net.up()
    assert net.west.lines()[-1] == \
        "#2: IKE_AUTH response rejected Child SA with NO_PROPOSAL_CHOSEN"
    assert net.west.states == {1: "ike"} and net.east.states == {1: "ike"}
    assert not net.west.installed and not net.east.installed
    assert [d.ok for d in net.west.done] == [False]


def test_initiator_rejects_a_proposal_it_did_not_offer():
    """NO_PROPOSAL_CHOSEN the other way round: the IKE_SA_INIT response 'accepts' a
    transform the initiator never proposed; the initiator refuses it."""
    from pyswan.ike.codec import SA, Transform, decode_message, encode_message

    net = Net(make_policy(ike="aes_gcm_16_256-sha2_256-dh31"),
              east_policy(ike="aes_gcm_16_256-sha2_256-dh31"))
    net.initiate()
    net.step()  # deliver the request only
    src, send = net.queue.popleft()
    msg = decode_message(send.data)
    sa = next(p for p in msg.payloads if isinstance(p, SA))
    sa.proposals[0].transforms[1] = Transform(2, 7)  # PRF=HMAC_SHA2_512: never offered
    net.inject(net.west, encode_message(msg))
    west = net.west.lines()
    assert west[-4].startswith("#1: remote accepted the invalid proposal 1:IKE:")
    assert west[-1] == "#1: deleting IKE SA (sent IKE_SA_INIT request)"
    assert net.west.states == {}


def test_invalid_ke_is_honoured_with_a_retry():
    net = Net(make_policy(ike="aes_gcm_16_256-sha2_256-dh19+dh31"),
              east_policy(ike="aes_gcm_16_256-sha2_256-dh31"))
    net.up()
    west = net.west.lines()
    assert west[2:5] == [
        "#1: Received unauthenticated INVALID_KE_PAYLOAD response to DH DH19; resending with "
        "suggested DH DH31",
        "#1: sent IKE_SA_INIT request to 192.0.2.2:UDP/500",
        "#1: processed IKE_SA_INIT response from 192.0.2.2:UDP/500 {cipher=AES_GCM_16_256 "
        "integ=n/a prf=HMAC_SHA2_256 group=DH31}, initiating IKE_AUTH",
    ]
    assert "established Child SA" in west[-1]
    # the rejected first request cost the responder a state (#1), as in Libreswan
    assert any("INVALID_KE_PAYLOAD" in line for line in net.east.lines())
    assert sorted(net.east.states) == [2, 3]


def test_invalid_ke_for_a_group_we_never_offered_is_ignored():
    net = Net(make_policy(ike="aes_gcm_16_256-sha2_256-dh19"),
              east_policy(ike="aes_gcm_16_256-sha2_256-dh31+dh19"))
    # forge: the responder asks for DH31, which west does not offer
    net.initiate()
    src, send = net.queue.popleft()
    from pyswan.ike.codec import Message, Notify, encode_message
    forged = encode_message(Message(send.data[:8], b"\0" * 8, 34, 0x20, 0,
                                    [Notify(0, b"", 17, b"\x00\x1f")]))
    net.inject(net.west, forged)
    assert "ignoring unauthenticated INVALID_KE_PAYLOAD response suggesting unacceptable DH " \
           "DH31" in net.west.lines()[-1]
    assert net.west.engine.sa(1).state is S.IKE_SA_INIT_I


def test_ts_unacceptable():
    net = Net(make_policy(), east_policy(remote_net="10.9.0.0/24"))
    net.up()
    assert net.west.lines()[-1] == \
        "#2: IKE_AUTH response rejected Child SA with TS_UNACCEPTABLE"
    assert any("TS_UNACCEPTABLE" in line for line in net.east.lines())
    assert net.east.states == {1: "ike"}


def test_narrowing_yes_lets_the_responder_narrow():
    net = Net(make_policy(remote_net="10.2.0.0/16", narrowing=True),
              east_policy(narrowing=True))
    net.up()
    assert "[10.1.0.0/24===10.2.0.0/24]" in net.west.lines()[-1]
    assert net.west.installed[2].remote_ts == net.east.installed[2].local_ts


def test_lost_packets_are_retransmitted():
    net = Net()
    dropped = {"west->east": 2, "east->west": 0}

    def drop(direction, data):
        if direction == "west->east" and dropped[direction]:
            dropped[direction] -= 1
            return True
        return False
    net.drop = drop
    net.initiate()
    net.run()
    net.advance(2)
    west = net.west.lines()
    assert west[2:4] == ["#1: IKE_SA_INIT_I: retransmission; will wait 0.5 seconds for response",
                         "#1: IKE_SA_INIT_I: retransmission; will wait 1 seconds for response"]
    assert "established Child SA" in west[-1]


def test_lost_response_gets_cached_answer():
    net = Net()
    seen = {"auth": 0}

    def drop(direction, data):  # lose the first IKE_AUTH response
        if direction == "east->west" and data[18] == 35:
            seen["auth"] += 1
            return seen["auth"] == 1
        return False
    net.drop = drop
    net.up()
    net.advance(1)
    assert "#1: IKE_AUTH_I: retransmission; will wait 0.5 seconds for response" in \
        net.west.lines()
    assert "established Child SA" in net.west.lines()[-1]
    auth_responses = [d for direction, d in net.sent if direction == "east->west" and d[18] == 35]
    assert len(auth_responses) == 2 and auth_responses[0] == auth_responses[1]
    assert sorted(net.east.states) == [1, 2]  # processed once


def test_duplicate_request_is_answered_from_cache():
    net = Net()
    net.up()
    request = next(d for direction, d in net.sent if direction == "west->east" and d[18] == 35)
    response = next(d for direction, d in net.sent if direction == "east->west" and d[18] == 35)
    actions = net.inject(net.east, request)
    assert [a.data for a in actions if isinstance(a, Send)] == [response]
    init_request = net.sent[0][1]
    actions = net.inject(net.east, init_request)
    assert [a.data for a in actions if isinstance(a, Send)] == [net.sent[1][1]]


def test_lost_forever_times_out():
    net = Net()
    net.drop = lambda direction, data: True
    net.initiate()
    net.run()
    net.advance(100)
    west = net.west.lines()
    waits = [line.split("wait ")[1] for line in west if "retransmission" in line]
    assert waits == [f"{w} seconds for response" for w in ("0.5", "1", "2", "4", "8", "16",
                                                           "32")]
    assert west[-2] == ("#1: IKE_SA_INIT_I: 60 second timeout exceeded after 7 retransmits.  "
                        "No response (or no acceptable response) to our first IKEv2 message")
    assert net.west.states == {}


def test_ike_auth_timeout_says_possible_authentication_failure():
    net = Net(make_policy(retransmit_timeout=10.0))
    net.drop = lambda direction, data: data[18] == 35  # every IKE_AUTH
    net.up()
    net.advance(30)
    assert net.west.lines()[-2] == (
        "#1: IKE_AUTH_I: 10 second timeout exceeded after 5 retransmits.  Possible "
        "authentication failure: no acceptable response to our first encrypted message")
    # the responder's half-open SA goes after the discard timeout
    assert net.east.states == {1: "ike"}
    net.advance(200)
    assert net.east.states == {}
    assert net.east.lines()[-1].startswith("#1: deleting IKE SA (sent IKE_SA_INIT response")


@pytest.mark.parametrize("who", ["west", "east"])
def test_delete_ike_from_either_side(who):
    net = Net()
    net.up()
    side = net.side(who)
    other = net.peer(side)
    net.handle(side, side.engine.delete_ike(1, net.now, wait=True))
    assert side.lines()[-1] == "#1: sent INFORMATIONAL request to delete IKE SA"
    net.run()
    assert side.lines()[-1] == "#1: deleting IKE SA (established IKE SA)"
    assert other.lines()[-1] == "#1: deleting IKE SA (established IKE SA)"
    assert side.states == {} and other.states == {}
    assert not side.installed and not other.installed
    assert len(side.of(RemoveChild)) == 1 and len(other.of(RemoveChild)) == 1


def test_delete_without_waiting_tears_down_at_once():
    net = Net()
    net.up()
    net.handle(net.west, net.west.engine.delete_ike(1, net.now, notify=True, wait=False))
    assert net.west.lines()[-1] == \
        "#1: deleting IKE SA (ESTABLISHED_IKE_SA) and sending notification"
    assert net.west.states == {}
    net.run()
    assert net.east.states == {}


@pytest.mark.parametrize("who", ["west", "east"])
def test_delete_child_from_either_side(who):
    net = Net()
    net.up()
    side = net.side(who)
    net.handle(side, side.engine.delete_child(2, net.now))
    assert side.lines()[-1] == \
        "#2: sent INFORMATIONAL request to delete established Child SA using IKE SA #1"
    net.run()
    assert net.west.states == {1: "ike"} and net.east.states == {1: "ike"}
    assert not net.west.installed and not net.east.installed


def test_liveness_probe_is_answered():
    from pyswan.ike.ikev2 import informational

    net = Net()
    net.up()
    eng = net.west.engine
    eng._out = []
    informational.request_liveness(eng, eng.sa(1), net.now)
    net.handle(net.west, eng._out)
    net.run()
    assert eng.sa(1).outstanding is None
    assert net.west.states == {1: "ike", 2: "child"}


def test_cookie_is_answered():
    net = Net(east_config=EngineConfig(require_cookies=True))
    net.up()
    assert net.west.lines()[2] == ("#1: received anti-DDOS COOKIE response, resending "
                                   "IKE_SA_INIT request with COOKIE payload")
    assert "established Child SA" in net.west.lines()[-1]
    assert sorted(net.east.states) == [1, 2]


def test_responder_switches_connection_by_ids():
    decoy = east_policy(name="decoy", remote_id="someone-else")
    real = east_policy(name="real")
    net = Net(make_policy(), [decoy, real])
    net.up()
    assert '#1: switched to "real"' in net.east.lines()
    assert [a.policy.name for a in net.east.of(PolicySwitched)] == ["real"]
    assert "established Child SA" in net.west.lines()[-1]


def test_unknown_peer_id_is_refused():
    net = Net(make_policy(), east_policy(remote_id="someone-else"))
    net.up()
    assert "#1: Peer ID '@west' mismatched on first found connection and no better " \
           "connection found" in net.east.lines()
    assert net.west.lines()[-3] == \
        "#1: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED"


def test_kernel_refusal_on_responder_answers_ts_unacceptable():
    net = Net()
    net.east.install_error = "ESP SA 0x1: kernel refused add SA: Protocol not supported"
    net.up()
    assert net.west.lines()[-1] == \
        "#2: IKE_AUTH response rejected Child SA with TS_UNACCEPTABLE"
    assert net.east.states == {1: "ike"} and not net.east.installed


def test_kernel_refusal_on_initiator_deletes_child_and_tells_peer():
    net = Net()
    net.west.install_error = "ESP SA 0x1: kernel refused add SA: Protocol not supported"
    net.up()
    assert net.west.lines()[-1] == \
        "#2: sent INFORMATIONAL request to delete larval Child SA using IKE SA #1"
    assert net.west.states == {1: "ike"} and net.east.states == {1: "ike"}
    assert not net.east.installed
    assert [d.ok for d in net.west.done] == [False]


def test_transport_mode():
    net = Net(make_policy(mode="transport", local_net="192.0.2.1/32",
                          remote_net="192.0.2.2/32"),
              east_policy(mode="transport", local_net="192.0.2.2/32",
                          remote_net="192.0.2.1/32"))
    net.up()
    assert "IPsec transport [192.0.2.1/32===192.0.2.2/32]" in net.west.lines()[-1]
    assert net.east.installed[2].mode == "transport"


def test_shutdown_deletes_everything_with_notification():
    net = Net()
    net.up()
    net.handle(net.west, net.west.engine.shutdown(net.now))
    net.run()
    assert net.west.states == {} and net.east.states == {}


def test_transition_table_is_printable():
    table = format_table()
    assert "IKE_SA_INIT_I" in table and "ike_auth.process_request" in table
    assert len(table.splitlines()) == len(S.TRANSITIONS)


def test_stale_timer_callbacks_are_ignored():
    """A RETRANSMIT callback for a deadline that has since moved (the response came, the
    next request was sent) must not retransmit early."""
    net = Net()
    net.initiate()
    first_deadline = net.west.timers[(1, "RETRANSMIT")]
    net.run()  # IKE_SA_INIT and IKE_AUTH done
    assert net.west.engine.timer(1, "RETRANSMIT", first_deadline) == []
    net2 = Net()
    net2.initiate()
    deadline = net2.west.timers[(1, "RETRANSMIT")]
    net2.now += 0.2  # the answer takes a while
    net2.step()
    net2.step()  # IKE_SA_INIT answered; IKE_AUTH request out with a new, later deadline
    assert net2.west.engine.timer(1, "RETRANSMIT", deadline) == []
    assert not any("retransmission" in line for line in net2.west.lines())


def test_garbage_to_idle_engine_changes_nothing():
    net = Net()
    for data in (b"", b"\x00" * 27, b"\xff" * 28, bytes(range(200)), b"\x00" * 16 + b"\x22\x20"
                 + b"\x22\x08" + b"\x00" * 4 + b"\x00\x00\x00\x1c"):
        actions = net.inject(net.east, data)
        assert not any(isinstance(a, Send) for a in actions)
    assert net.east.states == {}


def test_nat_traversal_floats_to_4500_and_encapsulates():
    import ipaddress

    from pyswan.ike.ikev2 import EndpointsChanged

    nat_ip = ipaddress.ip_address("198.51.100.7")
    road_warrior = make_policy(local=EAST, remote=None, local_id="east", remote_id="west",
                               local_net="10.2.0.0/24", remote_net="10.1.0.0/24")
    net = Net(make_policy(), road_warrior)
    net.nat = {(WEST, 500): (nat_ip, 40500), (WEST, 4500): (nat_ip, 44500)}
    net.up()
    assert "established Child SA" in net.west.lines()[-1]
    routes = [(d, src[1], dst[1]) for d, src, dst in net.routes]
    assert routes[:2] == [("west->east", 500, 500), ("east->west", 500, 40500)]
    assert routes[2:] == [("west->east", 4500, 4500), ("east->west", 4500, 44500)]
    west_sa, east_sa = net.west.engine.sa(1), net.east.engine.sa(1)
    assert west_sa.nat_local and not west_sa.nat_remote
    assert east_sa.nat_remote and east_sa.remote == (nat_ip, 44500)
    assert net.west.installed[2].encap and net.east.installed[2].encap
    assert "{ESPinUDP/ESN=>" in net.west.lines()[-1]
    assert net.west.of(EndpointsChanged) and net.east.of(EndpointsChanged)


def test_rekey_time_replaces_the_ike_sa_make_before_break():
    # reauth=yes: rekey by replacing (re-authenticating); the Child SA lives longer
    net = Net(make_policy(reauth=True, ipsec_lifetime=86400.0))
    net.up()
    old_spis = (net.west.installed[2].spi_in, net.west.installed[2].spi_out)
    net.advance(28800 - 540 + 1)  # past the initiator's REKEY whatever the fuzz
    west = net.west.lines()
    assert "#3: initiating IKEv2 connection (replacing established IKE SA #1) to 192.0.2.2 " \
           "using UDP" in west
    assert any(line.startswith("#4: initiator established Child SA using #3") for line in west)
    assert "#1: deleting IKE SA (ESTABLISHED_IKE_SA) and sending notification" in west
    assert net.west.states == {3: "ike", 4: "child"}
    assert sorted(net.east.states) == [3, 4]
    assert list(net.west.installed) == [4]
    assert (net.west.installed[4].spi_in, net.west.installed[4].spi_out) != old_spis
    # and again at the next REKEY: the connection stays up indefinitely
    net.advance(28800)
    assert len(net.west.states) == 2 and len(net.east.states) == 2
    assert all(d.ok for d in net.west.done)


def test_operator_rekey_replaces_now():
    net = Net(make_policy(reauth=True))
    net.up()
    actions = net.west.engine.rekey_ike(1, net.now)
    net.handle(net.west, actions)
    net.run()
    assert net.west.states == {3: "ike", 4: "child"}
    assert [d.ok for d in net.west.done][-1] is True


def test_liveness_probes_and_dead_peer():
    net = Net(make_policy(dpd_delay=10.0, retransmit_timeout=15.0))
    net.up()
    assert (1, "LIVENESS") in net.west.timers
    net.advance(11)
    assert net.west.engine.sa(1).outstanding is None  # probed and answered
    net.drop = lambda direction, data: True  # the peer dies
    net.advance(60)
    assert net.west.lines()[-2] == (
        "#1: ESTABLISHED_IKE_SA: 15 second timeout exceeded after 5 retransmits.  No response "
        "(or no acceptable response) to our IKEv2 message")
    assert net.west.lines()[-1] == "#1: deleting IKE SA (established IKE SA)"
    assert net.west.states == {}
