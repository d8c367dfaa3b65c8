"""ipsec.conf syntax, include, %default and also= (pyswan.auto.parser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyswan.auto.keywords import KeywordError, lookup_conn, lookup_setup
from pyswan.auto.parser import ConfigError, ConnLoadError, load_config, parse_text

BASE = """\
config setup
\tlogfile=/tmp/pluto.log
\tplutodebug=all

conn west
\tleft=192.1.2.45
\tright=192.1.2.23
"""


def parse(text: str, **kw: object):  # type: ignore[no-untyped-def]
    return parse_text(text, "ipsec.conf", **kw)  # type: ignore[arg-type]


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text)
    return str(e.value)


# --- keyword lookup -----------------------------------------------------------


def test_lookup_left_right_forms() -> None:
    m = lookup_conn("leftsubnet")
    assert (m.end, m.keyword.name, m.spelled) == ("left", "subnet", "leftsubnet")  # type: ignore[union-attr]
    m = lookup_conn("right")
    assert (m.end, m.keyword.name, m.spelled) == ("right", "host", "right")  # type: ignore[union-attr]
    m = lookup_conn("left-updown")
    assert (m.end, m.keyword.name) == ("left", "updown")  # type: ignore[union-attr]
    m = lookup_conn("RIGHTID")
    assert (m.end, m.keyword.name) == ("right", "id")  # type: ignore[union-attr]
    m = lookup_conn("leftxauthusername")
    assert (m.end, m.keyword.name, m.alias) == ("left", "username", "xauthusername")  # type: ignore[union-attr]


@pytest.mark.parametrize("alias,canonical", [
    ("salifetime", "ipsec-lifetime"), ("keylife", "ipsec-lifetime"),
    ("lifetime", "ipsec-lifetime"), ("aggrmode", "aggressive"), ("nflog", "nflog-group"),
    ("policy-label", "sec-label"), ("remote_peer_type", "remote-peer-type"),
    ("send-no-esp-tfc", "send-esp-tfc-padding-not-supported"),
    ("ikev1-dpdtimeout", "dpdtimeout"),
])
def test_conn_aliases(alias: str, canonical: str) -> None:
    m = lookup_conn(alias)
    assert m.keyword is not None and m.keyword.name == canonical and m.alias == alias


def test_setup_aliases_and_obsolete() -> None:
    assert lookup_setup("xfrmlifetime").keyword.name == "expire-lifetime"  # type: ignore[union-attr]
    assert lookup_setup("curl-timeout").keyword.name == "crl-timeout"  # type: ignore[union-attr]
    for obsolete in ("plutostderrlog", "virtual_private", "interfaces", "syslog"):
        assert lookup_setup(obsolete).obsolete
    for obsolete in ("dpdaction", "keyingtries", "clientaddrfamily"):
        assert lookup_conn(obsolete).obsolete


@pytest.mark.parametrize("key,msg", [
    ("unknown", "unrecognized 'conn' keyword 'unknown'"),
    ("subnet", 'keyword "subnet" requires "left" or "right" prefix'),
    ("host", "unrecognized 'conn' keyword 'host'"),
])
def test_lookup_errors(key: str, msg: str) -> None:
    with pytest.raises(KeywordError, match="^" + msg.replace("(", r"\(") + "$"):
        lookup_conn(key)


def test_setup_command_line_only_keyword() -> None:
    with pytest.raises(KeywordError) as e:
        lookup_setup("rundir")
    assert str(e.value) == "'config setup' keyword 'rundir' invalid; use command line option"


# --- file syntax --------------------------------------------------------------


def test_basic_file_and_positions() -> None:
    cfg = parse("version 2\n\n" + BASE)
    assert cfg.conn_names == ["west"]
    assert cfg.triples("west") == [("left", "host", "192.1.2.45"), ("right", "host", "192.1.2.23")]
    assert cfg.conns["west"][0].file == "ipsec.conf" and cfg.conns["west"][0].line == 8
    assert cfg.setup_pairs() == [("logfile", "/tmp/pluto.log", "ipsec.conf", 4),
                                 ("plutodebug", "all", "ipsec.conf", 5)]
    assert cfg.warnings == []


def test_quoting_braces_comments_and_spaces() -> None:
    cfg = parse('conn c\n'
                '\tleftid="C=CA, O=Libreswan, CN=west"\n'
                '\trightsubnets={10.0.1.0/24 10.0.2.0/24}\n'
                '\tdpdtimeout=10s # needs dpddelay=\n'
                '\tleftupdown = "ipsec _updown --route yes"\n'
                '\t# a comment line\n'
                '   rightid=@east#not-a-comment\n'
                '\tleft=\n')
    t = dict(((e, k), v) for e, k, v in cfg.triples("c"))
    assert t[("left", "id")] == "C=CA, O=Libreswan, CN=west"
    assert t[("right", "subnets")] == "10.0.1.0/24 10.0.2.0/24"
    assert t[("", "dpdtimeout")] == "10s"
    assert t[("left", "updown")] == "ipsec _updown --route yes"
    assert t[("right", "id")] == "@east#not-a-comment"
    assert t[("left", "host")] == ""  # KEYWORD= is the empty string


def test_column_zero_keyword_is_a_syntax_error() -> None:
    assert error_of("config setup\nikev1-policy=accept\n") == \
        "ipsec.conf:2: syntax error, unexpected KEYWORD [ikev1-policy]"


def test_body_line_outside_section_is_a_syntax_error() -> None:
    assert error_of("\tleft=1.2.3.4\n") == "ipsec.conf:1: syntax error, unexpected FIRST_SPACES"


def test_missing_equals_is_a_syntax_error() -> None:
    assert error_of("conn c\n\tleft 1.2.3.4\n") == \
        "ipsec.conf:2: syntax error, unexpected KEYWORD [1.2.3.4], expecting EQUAL [left]"


def test_trailing_junk_after_value() -> None:
    assert error_of("conn c\n\tleftid=foo bar\n") == \
        "ipsec.conf:2: syntax error, unexpected KEYWORD [bar], expecting EOL"


def test_unknown_keywords_fail_the_whole_file() -> None:
    assert error_of(BASE + "\tfrobnicate=yes\n") == \
        "ipsec.conf:8: unrecognized 'conn' keyword 'frobnicate'"
    assert error_of("config setup\n\tunknown=no\n") == \
        "ipsec.conf:2: unrecognized 'config setup' keyword 'unknown'"
    assert error_of("conn c\n\tsubnet=1.2.3.0/24\n") == \
        'ipsec.conf:2: keyword "subnet" requires "left" or "right" prefix'


def test_all_errors_collected_when_not_strict() -> None:
    cfg = parse("conn a\n\tfoo=1\nconn b\n\tbar=2\n", strict=False)
    assert [str(d) for d in cfg.errors] == [
        "ipsec.conf:2: unrecognized 'conn' keyword 'foo'",
        "ipsec.conf:4: unrecognized 'conn' keyword 'bar'"]


def test_obsolete_keywords_are_warned_and_dropped() -> None:
    cfg = parse("config setup\n\tvirtual_private=1.2.3.4\nconn c\n\tdpdaction=drop\n"
                "\tleft=1.2.3.4\n")
    assert cfg.warnings == [
        "warning: ipsec.conf:4: obsolete keyword ignored: dpdaction=drop",
        "warning: ipsec.conf:2: obsolete keyword ignored: virtual_private=1.2.3.4",
    ]
    assert cfg.triples("c") == [("left", "host", "1.2.3.4")]
    assert cfg.setup_pairs() == []


def test_x_comments_are_ignored_with_a_warning() -> None:
    # addconn-43-x-comment (Libreswan reports some of these one line late)
    cfg = parse("config setup\n     X-something\n     X_something=\n"
                "     x-something = ...\n     x_something=  \n\nconn ignore\n")
    assert cfg.warnings == [
        "warning: ipsec.conf:2: X- style comment ignored: X-something",
        "warning: ipsec.conf:3: X- style comment ignored: X_something=",
        "warning: ipsec.conf:4: X- style comment ignored: x-something= ...",
        "warning: ipsec.conf:5: X- style comment ignored: x_something=  ",
    ]


def test_duplicate_conn_key_keeps_first() -> None:
    # addconn-10-duplicate-key
    cfg = parse(BASE.replace("\tright=", "\tleft=192.1.2.46\n\tright="))
    assert cfg.warnings == ["warning: ipsec.conf:7: ignoring duplicate conn keyword: "
                            "left=192.1.2.46"]
    assert ("left", "host", "192.1.2.45") in cfg.triples("west")


def test_duplicate_setup_key_overrides_with_warning() -> None:
    cfg = parse("config setup\n\tlogtime=no\nconfig setup\n\tlogtime=yes\n")
    assert cfg.warnings == ["warning: ipsec.conf:4: overriding earlier 'config setup' "
                            "keyword with new value: logtime=yes"]
    assert cfg.setup_pairs() == [("logtime", "yes", "ipsec.conf", 4)]


# --- %default and also= -------------------------------------------------------


def test_conn_default_fills_in_and_last_default_wins() -> None:
    cfg = parse("conn %default\n\tike=3des-sha1\n\tesp=3des-sha1\n"
                "conn first\n\tleft=1.2.3.4\n\tike=aes-sha2\n"
                "conn second\n\tleft=2.3.4.5\n"
                "conn %default\n\tesp=aes-sha1\n")
    assert dict(((e, k), v) for e, k, v in cfg.triples("first"))[("", "ike")] == "aes-sha2"
    second = dict(((e, k), v) for e, k, v in cfg.triples("second"))
    assert second[("", "ike")] == "3des-sha1" and second[("", "esp")] == "aes-sha1"
    assert "%default" not in cfg.conn_names


def test_also_in_default_is_unrecognized() -> None:
    assert error_of("conn %default\n\talso=x\n") == \
        "ipsec.conf:2: unrecognized 'conn %default' keyword 'also'"


def test_also_expands_inline_first_definition_wins() -> None:
    cfg = parse("conn base\n\tleft=1.1.1.1\n\tleftid=@base\n\tauthby=secret\n"
                "conn c\n\tleftid=@mine\n\talso=base\n\tright=2.2.2.2\n", strict=False)
    # leftid conflicts: Libreswan refuses to change a value (confread.c)
    assert "c" in cfg.conn_errors
    assert str(cfg.conn_errors["c"]) == ("ipsec.conf:3: duplicate key 'leftid' in conn c "
                                         "while processing def base")
    with pytest.raises(ConnLoadError):
        cfg.triples("c")
    cfg = parse("conn base\n\tleft=1.1.1.1\n\tauthby=secret\n"
                "conn c\n\tleftid=@mine\n\talso=base\n\tright=2.2.2.2\n")
    assert cfg.triples("c") == [("left", "id", "@mine"), ("left", "host", "1.1.1.1"),
                                ("", "authby", "secret"), ("right", "host", "2.2.2.2")]


def test_also_same_value_twice_is_a_warning() -> None:
    cfg = parse("conn a\n\tleft=1.1.1.1\nconn c\n\tleft=1.1.1.1\n\talso=a\n\tright=2.2.2.2\n")
    assert cfg.warnings == ["warning: ipsec.conf:2: duplicate key 'left' in conn c while "
                            "processing def a"]


def test_also_nested_duplicates_and_cycles() -> None:
    cfg = parse("conn a\n\talso=b\n\talso=c\n\tleft=1.1.1.1\n"
                "conn b\n\talso=d\n\tright=2.2.2.2\n"
                "conn c\n\talso=d\n"
                "conn d\n\tauthby=secret\n\talso=a\n")
    # inline expansion: a -> b -> d (-> a: loop, ignored), then b's own, c -> d (done)
    assert cfg.triples("a") == [("", "authby", "secret"), ("right", "host", "2.2.2.2"),
                                ("left", "host", "1.1.1.1")]
    assert any("loops back" in w for w in cfg.warnings)


def test_also_missing_target() -> None:
    cfg = parse("conn c\n\talso=nowhere\n", strict=False)
    assert str(cfg.conn_errors["c"]) == \
        "ipsec.conf:2: cannot find conn 'nowhere' needed by conn 'c'"


def test_connalias_find() -> None:
    cfg = parse("conn a\n\tconnalias=\"x y\"\nconn b\n\tconnalias=y\n")
    assert cfg.find("a") == ["a"]
    assert cfg.find("x") == ["a"]
    assert cfg.find("y") == ["a", "b"]
    assert cfg.find("z") == []


def test_argv_conn_gets_default_and_also() -> None:
    cfg = parse("conn %default\n\tleft=1.2.3.4\nconn base\n\tauthby=secret\n")
    assert cfg.add_argv_conn("c", ["right=5.6.7.8", "also=base"]) == [
        ("right", "host", "5.6.7.8"), ("", "authby", "secret"), ("left", "host", "1.2.3.4")]
    with pytest.raises(ConfigError, match="missing '=' in oops"):
        cfg.add_argv_conn("d", ["oops"])


# --- include ------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_include_relative_glob_and_positions(tmp_path: Path) -> None:
    (tmp_path / "ipsec.d").mkdir()
    write(tmp_path / "ipsec.d" / "b.conf", "conn b\n\tleft=2.2.2.2\n")
    write(tmp_path / "ipsec.d" / "a.conf", "conn a\n\tleft=1.1.1.1\n")
    main = write(tmp_path / "ipsec.conf", "config setup\n\tlogtime=no\n"
                 "include ipsec.d/*.conf\ninclude /nonexistent/*.conf\n")
    cfg = load_config(main)
    assert cfg.conn_names == ["a", "b"]
    assert cfg.conns["b"][0].file == os.path.join(str(tmp_path), "ipsec.d/b.conf")
    assert cfg.conns["b"][0].line == 2
    assert cfg.warnings == []  # a glob matching nothing is fine


def test_include_missing_file_warns(tmp_path: Path) -> None:
    main = write(tmp_path / "ipsec.conf", "conn a\n\tleft=1.1.1.1\ninclude /etc/file-not-found.conf\n")
    assert load_config(main).warnings == [
        f"warning: {main}:3: could not open include filename: '/etc/file-not-found.conf'"]


def test_include_recursion_stops_at_depth_ten(tmp_path: Path) -> None:
    # addconn-19-include-recursive
    main = write(tmp_path / "ipsec.conf", "config setup\n\tlogtime=no\n"
                 "conn west\n\tleft=1.1.1.1\ninclude ipsec.conf\n")
    cfg = load_config(main)
    w = cfg.warnings
    assert w[0] == f"warning: {main}:5: including '{main}' exceeds max inclusion depth of 10"
    assert w[1:] == [f"warning: {main}:2: overriding earlier 'config setup' keyword with new "
                     "value: logtime=no"] * 9
    assert cfg.conn_names == ["west"]


def test_include_root_map(tmp_path: Path) -> None:
    (tmp_path / "testing").mkdir()
    write(tmp_path / "testing" / "x.conf", "conn x\n\tleft=1.1.1.1\n")
    main = write(tmp_path / "ipsec.conf", "include /testing/x.conf\n")
    cfg = load_config(main, root_map={"/testing/": str(tmp_path / "testing") + "/"})
    assert cfg.conns["x"][0].file == "/testing/x.conf"


def test_missing_top_level_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_config(str(tmp_path / "dne.conf"))
