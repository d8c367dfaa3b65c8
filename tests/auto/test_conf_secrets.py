"""ipsec.secrets parsing and lookup (pyswan.auto.secrets)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from pyswan.auto.secrets import (
    Secret,
    SecretsError,
    load_secrets,
    parse_secrets_text,
)
from pyswan.auto.values import parse_id

EXAMPLE = """\
# sample ipsec.secrets file for 10.1.0.1:
10.1.0.1 10.2.0.1 : PSK "secret shared by two hosts"
# same for IPv6
"10::1:0:1" "10::2:0:1" : PSK "secret shared by two IPv6 hosts"

# sample roadwarrior
%any gateway.corp.com : PSK "shared secret with many roadwarriors"

# sample server for roadwarriors
myip %any : PSK "shared secret with many roadwarriors"

# an entry may be split across lines,
# but indentation matters

www.xs4all.nl @www.kremvax.ru
\t      10.6.0.1 10.7.0.1 1.8.0.1 : PSK "secret shared by 5 systems"

# sample entry for static PPK
10.1.0.1 10.2.0.1 : PPKS "PPK_ID_1" "post-quantum preshared key for extra security"

# XAUTH password, used with leftusername=username
@username : XAUTH "password"
"""


def test_example_file() -> None:
    s = parse_secrets_text(EXAMPLE)
    assert [e.kind for e in s.entries] == ["PSK"] * 5 + ["PPKS", "XAUTH"]
    assert [len(e.ids) for e in s.entries] == [2, 2, 2, 2, 5, 2, 1]
    assert s.entries[4].line == 15  # a record starts where its first index is
    assert s.lookup_psk("10.1.0.1", "10.2.0.1") == b"secret shared by two hosts"
    assert s.lookup_psk("10::2:0:1", "10::1:0:1") == b"secret shared by two IPv6 hosts"
    assert s.lookup_psk("@www.kremvax.ru", "1.8.0.1") == b"secret shared by 5 systems"
    assert s.lookup_ppk("PPK_ID_1") == b"post-quantum preshared key for extra security"
    assert s.lookup_ppk(b"PPK_ID_2") is None
    assert s.lookup_xauth("username") == b"password"
    assert s.lookup_xauth("nobody") is None
    assert s.warnings == []


def test_most_specific_wins() -> None:
    s = parse_secrets_text(
        ': PSK "default-default"\n'
        '%any : PSK "any-any-any-any"\n'
        '@west %any : PSK "west-and-any"\n'
        '@west : PSK "west-only-entry"\n'
        '@west @east : PSK "west-and-east!"\n'
        '@west @north : PSK "west-and-north"\n')
    assert s.lookup_psk("@west", "@east") == b"west-and-east!"
    assert s.lookup_psk("@west", "@north") == b"west-and-north"
    assert s.lookup_psk("@west", "@road") == b"west-and-any"  # local+any > local alone
    assert s.lookup_psk("@road", "@road2") == b"any-any-any-any"
    # remote + %any counts too
    assert s.lookup_psk("@road", "@west") == b"west-and-any"
    only_default = parse_secrets_text(': PSK "default-default"\n')
    assert only_default.lookup_psk("@a", "@b") == b"default-default"


def test_first_of_equals_wins_and_remote_alone_does_not_match() -> None:
    s = parse_secrets_text('@a @b : PSK "first-secret"\n@b @a : PSK "second-secret"\n')
    assert s.lookup_psk("@a", "@b") == b"first-secret"
    s = parse_secrets_text('@east : PSK "east-only-entry"\n')
    assert s.lookup_psk("@west", "@east") is None  # only {remote}: not a match
    assert s.lookup_psk("@east", "@west") == b"east-only-entry"  # {local} single index


def test_id_matching_is_case_insensitive_for_fqdn() -> None:
    s = parse_secrets_text('@West.Example @east : PSK "mixed-case!"\n')
    assert s.lookup_psk(parse_id("@west.example"), parse_id("@EAST")) == b"mixed-case!"


@pytest.mark.parametrize("text,secret", [
    ('a : PSK "double quoted"', b"double quoted"),
    ("a : PSK 'single quoted'", b"single quoted"),
    ("a : PSK 0x0102_0304_0506_0708", bytes(range(1, 9))),
    ("a : PSK 0s" + base64.b64encode(b"base64 secret!").decode(), b"base64 secret!"),
    ("a : PSK 0tsome text with spaces", b"some text with spaces"),
])
def test_secret_encodings(text: str, secret: bytes) -> None:
    assert parse_secrets_text(text).entries[0].secret.reveal() == secret


def test_warnings_rsa_and_weak_psk() -> None:
    s = parse_secrets_text(': RSA {\n\tModulus: 0x00\n\t}\n@a @b : PSK "short"\n', "x.secrets")
    assert s.warnings == ['"x.secrets" line 1: WARNING: ignored unrecognized keyword: RSA',
                          '"x.secrets" line 4: WARNING: using a weak secret (PSK)']
    assert len(s.entries) == 1


def test_errors_name_file_and_line_and_never_the_secret() -> None:
    with pytest.raises(SecretsError) as e:
        parse_secrets_text("@a : PIN %smartcard 1234\n", "s.secrets")
    assert str(e.value) == ('"s.secrets" line 1: ERROR: keyword \'pin\' obsoleted, please use '
                            "NSS for smartcard support")
    with pytest.raises(SecretsError) as e:
        parse_secrets_text("@a : PSK 0xZZtopsecret\n", "s.secrets")
    assert str(e.value) == '"s.secrets" line 1: PSK data malformed (non-hex digit in hex number)'
    assert "topsecret" not in str(e.value)
    s = parse_secrets_text('@a @b\n\n@c : PSK "abcdefghij" extra\n', "s.secrets", strict=False)
    assert [str(d) for d in s.errors] == ['"s.secrets" line 1: unexpected end of id list',
                                          '"s.secrets" line 3: expected record boundary in key']
    assert "abcdefghij" not in " ".join(s.warnings)
    with pytest.raises(SecretsError, match="no quotation marks found"):
        parse_secrets_text("a : PPKS PPK_ID 0x0102\n")


def test_secrets_never_in_repr() -> None:
    s = parse_secrets_text('@a @b : PSK "my-super-secret"\n')
    for text in (repr(s), str(s), repr(s.entries), repr(s.entries[0].secret),
                 str(s.entries[0].secret)):
        assert "my-super-secret" not in text
    assert repr(Secret(b"abc")) == "Secret(<hidden, 3 bytes>)"
    assert bytes(s.entries[0].secret) == b"my-super-secret"


def test_continuation_and_comments() -> None:
    s = parse_secrets_text('# comment\n@a # trailing comment\n   @b : PSK "abcdefgh#x"\n')
    assert [i.display() for i in s.entries[0].ids] == ["@a", "@b"]
    assert s.entries[0].secret.reveal() == b"abcdefgh#x"
    s = parse_secrets_text('   @x : PSK "indented-first"\n@a@b : PSK "abcdefgh"\n',
                           "f", strict=False)
    assert s.warnings == ['"f" line 1: file starts with indentation (continuation notation)']


def test_indices_any_any6_hostnames_dns() -> None:
    s = parse_secrets_text('%any %any6 host.example.com "C=CA, CN=x" user@example.com '
                           ': PSK "abcdefghij"\n')
    kinds = [i.type_name for i in s.entries[0].ids]
    assert kinds == ["NONE", "IPV6_ADDR", "IPV4_ADDR", "DER_ASN1_DN", "USER_FQDN"]
    assert s.entries[0].ids[2].dns_name == "host.example.com"


def test_include_glob_relative_and_permissions(tmp_path: Path) -> None:
    d = tmp_path / "ipsec.d"
    d.mkdir()
    (d / "a.secrets").write_text('@a @b : PSK "secret-a-b"\n')
    (d / "b.secrets").write_text('@c @d : PSK "secret-c-d"\n')
    main = tmp_path / "ipsec.secrets"
    main.write_text("include ipsec.d/*.secrets\ninclude /nonexistent/*.secrets\n")
    for p in (main, d / "a.secrets", d / "b.secrets"):
        os.chmod(p, 0o600)
    s = load_secrets(str(main))
    assert s.lookup_psk("@c", "@d") == b"secret-c-d"
    assert s.files == [str(main), str(d / "a.secrets"), str(d / "b.secrets")]
    assert s.warnings == []
    os.chmod(d / "a.secrets", 0o644)
    s = load_secrets(str(main))
    assert s.warnings == [f'"{d / "a.secrets"}" line 0: WARNING: secrets file is accessible '
                          "by group or others (mode 0644); use chmod 600"]


def test_include_depth_limit(tmp_path: Path) -> None:
    loop = tmp_path / "loop.secrets"
    loop.write_text("include loop.secrets\n")
    os.chmod(loop, 0o600)
    with pytest.raises(SecretsError, match="nested too deeply"):
        load_secrets(str(loop))


def test_no_match_top_level(tmp_path: Path) -> None:
    s = load_secrets(str(tmp_path / "*.secrets"))
    assert len(s) == 0 and s.warnings == [f'no secrets filename matched "{tmp_path}/*.secrets"']
