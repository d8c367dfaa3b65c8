"""`ipsec checkconfig`: every problem with file and line (pyswan.auto.checkconfig)."""

from __future__ import annotations

from pathlib import Path

from pyswan.auto.checkconfig import Problem, check

CONF = """\
config setup
\tikev1-policy=sometimes
\tlogtime=no
\tplutodebug=bogus-class

conn base
\tauthby=secret

conn good
\tleft=192.1.2.45
\tright=192.1.2.23
\talso=base

conn bad-subnet
\tleft=192.1.2.45
\tright=192.1.2.23
\tleftsubnet=10.0.0.0/33

conn bad-fuzz
\tleft=192.1.2.45
\tright=192.1.2.23
\trekeyfuzz=10
\tdpdaction=hold

conn needs-also
\talso=missing
"""


def test_check_reports_every_problem_with_positions(tmp_path: Path) -> None:
    path = tmp_path / "ipsec.conf"
    path.write_text(CONF)
    p = str(path)
    problems = check(p)
    assert problems == [
        Problem(p, 23, "warning", "obsolete keyword ignored: dpdaction=hold"),
        Problem(p, 26, "error", "cannot find conn 'missing' needed by conn 'needs-also'"),
        Problem(p, 2, "error", '"ikev1-policy=sometimes" is invalid, valid options are '
                               '"accept", "reject", and "drop"'),
        Problem(p, 4, "warning", "plutodebug='bogus-class' invalid, keyword ignored"),
        Problem(p, 17, "error", '"bad-subnet": failed to add connection: leftsubnet=10.0.0.0/33 '
                                "invalid, 10.0.0.0/33 invalid, too large"),
        Problem(p, 22, "error", '"bad-fuzz": failed to add connection: "rekeyfuzz=10" invalid, '
                                "expecting % character"),
    ]
    assert str(problems[1]) == f"{p}:26: error: cannot find conn 'missing' needed by conn " \
                               "'needs-also'"


def test_check_syntax_errors_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "ipsec.conf"
    path.write_text("conn a\n\tfoo=1\nbar=2\nconn b\n\tleft=1.2.3.4\n\tright=5.6.7.8\n")
    msgs = [(x.line, x.severity, x.message) for x in check(str(path))]
    assert msgs == [(2, "error", "unrecognized 'conn' keyword 'foo'"),
                    (3, "error", "syntax error, unexpected KEYWORD [bar]")]


def test_check_missing_file(tmp_path: Path) -> None:
    p = str(tmp_path / "dne.conf")
    assert check(p) == [Problem(p, None, "error",
                                f"could not open '{p}': No such file or directory")]


def test_check_clean_file(tmp_path: Path) -> None:
    path = tmp_path / "ipsec.conf"
    path.write_text("conn c\n\tleft=1.2.3.4\n\tright=%any\n\tauthby=secret\n\tauto=add\n")
    assert check(str(path)) == []


def test_fragments_are_checked_only_on_request(tmp_path: Path) -> None:
    path = tmp_path / "ipsec.conf"
    path.write_text("conn ids\n\tleftid=@a\nconn c\n\tleft=1.2.3.4\n\tright=5.6.7.8\n\talso=ids\n")
    assert check(str(path)) == []
    assert [x.message for x in check(str(path), fragments=True)] == \
        ['"ids": failed to add connection: left= is not set']
