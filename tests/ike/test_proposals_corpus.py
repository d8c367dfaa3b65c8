"""``algparse()`` against Libreswan's own ``ipsec algparse --tp`` output.

The corpus (testing/pluto/algparse-01 and algparse-02-fips) holds every
hard-wired parser test, run for IKEv1/IKEv2, with and without PFS, in normal
and FIPS mode, with the expected console text.  Each case is replayed
through ``algparse()`` and compared line by line.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pyswan.ike.proposals import algparse

CORPUS = (Path(__file__).resolve().parents[3] / "shared" / "corpus" / "libreswan-testing"
          / "testing" / "pluto")
TESTS = ("algparse-01", "algparse-02-fips")
_CASE = re.compile(r"^(algparse .*) \(expect (SUCCESS|ERROR)\)$")


def _cases(test: str) -> list[tuple[str, str, list[str]]]:
    """(command line, expectation, expected output lines) per case."""
    lines = (CORPUS / test / "west.console.txt").read_text().split("\n")
    cases = []
    i = 0
    while i < len(lines):
        m = _CASE.match(lines[i])
        i += 1
        if not m:
            continue
        out = []
        while i < len(lines) and not lines[i].startswith(("algparse ", "west #")):
            out.append(lines[i])
            i += 1
        cases.append((m.group(1), m.group(2), out))
    return cases


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Libreswan test corpus not found at {CORPUS}")
@pytest.mark.parametrize("test", TESTS)
def test_algparse_corpus(test: str, capsys: pytest.CaptureFixture[str]) -> None:
    cases = _cases(test)
    assert len(cases) > 900
    matched = {1: 0, 2: 0}
    totals = {1: 0, 2: 0}
    mismatches = []
    for command, expect, expected in cases:
        argv = shlex.split(command)[1:]
        version = 1 if "--ikev1" in argv else 2
        totals[version] += 1
        lines, status = algparse(argv)
        ok = (lines[0] == command and lines[1:] == expected
              and (status == 0) == (expect == "SUCCESS"))
        if ok:
            matched[version] += 1
        else:
            mismatches.append((command, expected, lines[1:]))
    with capsys.disabled():
        print(f"\n{test}: IKEv2 {matched[2]}/{totals[2]}, IKEv1 {matched[1]}/{totals[1]} "
              "algparse cases match exactly")
    detail = "\n".join(f"{c}\n  want {w}\n  got  {g}" for c, w, g in mismatches[:5])
    # floors we actually reach: every case, IKEv2 and IKEv1 alike
    assert matched[2] == totals[2], detail
    assert matched[1] == totals[1], detail
