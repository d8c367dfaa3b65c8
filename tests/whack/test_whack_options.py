"""whack's order-sensitive grammar, checked without a daemon."""

from __future__ import annotations

import pytest

from pyswan.whack.options import WhackUsage, build_requests, parse_args
from pyswan.whack.protocol import ProtocolError, Request, decode_body, decode_header, encode_request


def test_ends_split_at_to():
    a = parse_args("--name westnet-eastnet --host 192.1.2.45 --client 192.0.1.0/24 --to "
                   "--host=192.1.2.23 --client 192.0.2.0/24 --encrypt --tunnel --ikev2 "
                   "--debug all --impair none --debug crypt".split())
    assert a.left == {"host": "192.1.2.45", "subnet": "192.0.1.0/24"}
    assert a.right == {"host": "192.1.2.23", "subnet": "192.0.2.0/24"}
    assert a.conn == {"phase2": "esp", "type": "tunnel", "keyexchange": "ikev2"}
    assert a.repeat == [("debug", "all"), ("impair", "none"), ("debug", "crypt")]
    reqs = build_requests(a)
    assert [r.command for r in reqs] == ["options", "add"]
    assert ("left", "host", "192.1.2.45") in reqs[1].conn
    assert ("right", "subnet", "192.0.2.0/24") in reqs[1].conn


def test_unique_prefixes_resolve_and_ambiguous_ones_fail():
    assert parse_args(["--trafficst"]).command == "trafficstatus"
    assert parse_args(["--shut"]).command == "shutdown"
    with pytest.raises(WhackUsage, match="ambiguous"):
        parse_args(["--de"])
    with pytest.raises(WhackUsage, match='unknown option "--frobnicate"'):
        parse_args(["--frobnicate"])


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--to --host 1.2.3.4", "connection missing --host before --to"),
        ("--host a --host b", "duplicated flag --host"),
        ("--name c --host a --to --id @x", "connection missing --host after --to"),
        ("--status --listen", "conflicting command options '--status' and '--listen'"),
        ("--initiate", "missing --name"),
        ("--deletestate abc", 'invalid state number "abc"'),
        ("--name", 'option "--name" requires an argument'),
        ("--status=yes", 'option "--status" does not take an argument'),
    ],
)
def test_usage_errors(argv, message):
    with pytest.raises(WhackUsage, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_requests(parse_args(argv.split()))


def test_whack_connection_form_defaults_follow_policy_flags():
    reqs = build_requests(parse_args("--name c --host 1.1.1.1 --to --host 2.2.2.2 --psk".split()))
    conn = dict(((e, k), v) for e, k, v in reqs[0].conn)
    assert conn[("", "type")] == "transport"  # no --tunnel
    assert conn[("", "pfs")] == "no"  # no --pfs
    assert conn[("", "authby")] == "secret"


def test_request_codec_round_trip_and_strictness():
    req = Request("add", name="c", flags={"replace"}, args={"remote-host": "1.2.3.4"},
                  options=[("debug", "all")], conn=[("left", "host", "1.1.1.1"), ("", "esp", "aes")])
    data = encode_request(req)
    length = decode_header(data[:12])
    assert length == len(data) - 12
    assert decode_body(data[12:]) == req
    with pytest.raises(ProtocolError, match="record overruns"):
        decode_body(data[12:-1])
    with pytest.raises(ProtocolError, match="bad magic"):
        decode_header(b"XXXX" + data[4:12])
