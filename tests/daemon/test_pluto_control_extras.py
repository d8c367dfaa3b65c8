"""More of the control surface: systemd notify, labels, secrets reload, keys, checkconfig."""

from __future__ import annotations

import os
import socket
import subprocess

from pyswan_testlib import run


def test_notify_socket_gets_ready_and_stopping(pluto_factory, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    p = pluto_factory("sd")
    env = dict(os.environ, NOTIFY_SOCKET=path)
    p.proc = subprocess.Popen(p.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.proc.stdout.readline().strip() == "Pluto initialized"
    ready = sock.recv(4096).decode()
    assert "READY=1" in ready.split("\n")
    assert p.whack("--shutdown").rc == 0
    stopping = sock.recv(4096).decode()
    assert "STOPPING=1" in stopping.split("\n")
    sock.close()


def test_label_prefixes_whack_errors(tmp_path):
    res = run("whack", "--label", "mylabel", "--rundir", str(tmp_path), "--status")
    assert res.rc == 33
    assert res.err.startswith("mylabel whack: Pluto is not running")


def test_rereadsecrets_is_atomic(pluto_factory):
    p = pluto_factory("sec", secrets='@west @east : PSK "first secret value"\n').start()
    secrets = p.rundir / "ipsec.secrets"
    res = p.whack("--rereadsecrets")
    assert res.rc == 0 and f'loading secrets from "{secrets}"' in res.out
    assert "    PSK @west @east" in p.whack("--listpsks").lines
    secrets.write_text('@west @east : PSK "ok"\n@a @b : PSK "unterminated\n')
    res = p.whack("--rereadsecrets")
    assert "keeping the previous secrets" in res.out
    assert f'"{secrets}" line 2' in res.out
    assert "first secret value" not in res.out and "first secret value" not in p.logtext()


def test_deletestate_and_crash_without_states(pluto):
    res = pluto.whack("--deletestate", "7")
    assert res.rc == 21 and res.lines == ["no state #7 to delete"]
    assert pluto.whack("--crash", "192.0.2.1").rc == 0
    assert pluto.whack("--crash", "nonsense").rc == 27


def test_pubkey_records(pluto):
    assert pluto.whack("--keyid", "@east", "--pubkeyrsa", "0sAwEAAQ==").rc == 0
    listing = pluto.whack("--listpubkeys").out
    assert "id: @east" in listing
    assert pluto.whack("--keyid", "@east", "--pubkeyrsa", "garbage").rc == 28
    assert pluto.whack("--keyid", "@east").rc == 0  # delete
    assert "id: @east" not in pluto.whack("--listpubkeys").out


def test_help_and_version_everywhere():
    for argv in (("pluto", "--help"), ("whack", "--help"), ("ipsec", "--help"),
                 ("ipsec", "auto", "--help"), ("ipsec", "addconn", "--help")):
        res = run(*argv)
        assert res.rc == 0 and "Usage" in res.out, argv
    for argv in (("pluto", "--version"), ("whack", "--version"), ("ipsec", "--version"),
                 ("ipsec", "version")):
        res = run(*argv)
        assert res.rc == 0 and "pyswan" in res.out, argv


def test_checkconfig_reports_every_problem(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("conn a\n\tleft=1.2.3.4\n\tright=5.6.7.8\n\tleftsubnet=10.0.0.0/33\n"
                    "conn b\n\tleft=1.2.3.4\n\trightid=@x\n")
    res = run("ipsec", "--config", str(conf), "checkconfig")
    assert res.rc == 3
    problems = res.err.splitlines()
    assert any(line.startswith(f"{conf}:4: error:") and "leftsubnet=10.0.0.0/33" in line for line in problems)
    assert any(line.startswith(f"{conf}:") and '"b"' in line and "right= is not set" in line for line in problems)
    good = tmp_path / "good.conf"
    good.write_text("conn a\n\tleft=1.2.3.4\n\tright=5.6.7.8\n")
    assert run("ipsec", "--config", str(good), "checkconfig").rc == 0


def test_psk_never_logged_even_with_debug_all(pluto_factory):
    psk = "very-distinctive-psk-0123456789"
    secrets = f'@west @east : PSK "{psk}"\n'
    east = pluto_factory("east", addr="127.0.0.2", secrets=secrets, extra=["--debug", "all"]).start()
    west = pluto_factory("west", addr="127.0.0.1", ikeport=east.ikeport, secrets=secrets,
                         extra=["--debug", "all"]).start()
    for p, (me, peer) in ((west, ("west", "east")), (east, ("east", "west"))):
        assert p.whack("--listen").rc == 0
        host = {"west": "127.0.0.1", "east": "127.0.0.2"}
        res = p.whack("--name", "c", "--host", host[me], "--id", f"@{me}", "--to",
                      "--host", host[peer], "--id", f"@{peer}", "--psk", "--tunnel", "--encrypt")
        assert res.rc == 0, res
    up = west.whack("--name", "c", "--initiate")
    assert up.rc == 0, up
    for p in (west, east):
        log = p.logtext()
        assert "| " in log  # debugging really was on
        assert psk not in log and psk.encode().hex() not in log
    assert psk not in up.out
