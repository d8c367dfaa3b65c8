"""`ipsec auto`, `ipsec addconn` and the 5.x shortcuts against a running pluto."""

from __future__ import annotations

from pyswan_testlib import run

CONF = """\
config setup
\tuniqueids=yes

conn %default
\tauthby=secret
\tleftid=@west
\trightid=@east

conn base
\tleft=127.0.0.1
\tright=127.0.0.2

conn tunnel
\tleftsubnet=10.1.0.0/24
\trightsubnet=10.2.0.0/24
\tconnalias=alias1
\tauto=add
\talso=base

conn far
\tleft=192.0.2.1
\tright=192.0.2.2
\tauto=ignore
"""


def test_showonly_prints_libreswan_commands(tmp_path):
    res = run("ipsec", "auto", "--showonly", "--start", "foo")
    assert res.rc == 0
    assert res.lines == [
        "ipsec addconn --ctlsocket /run/pluto/pluto.ctl foo",
        "ipsec whack --ctlsocket /run/pluto/pluto.ctl --name foo --initiate",
    ]
    res = run("ipsec", "auto", "--showonly", "--ctlsocket", "/x/y.ctl", "--asynchronous",
              "--config", "/etc/other.conf", "--replace", "bar")
    assert res.lines == [
        "ipsec whack --ctlsocket /x/y.ctl --name bar --delete",
        "ipsec addconn --ctlsocket /x/y.ctl --config /etc/other.conf bar",
    ]
    assert run("ipsec", "auto", "--showonly", "--status").lines == [
        "ipsec whack --ctlsocket /run/pluto/pluto.ctl --status"]
    assert run("ipsec", "auto", "--showonly", "--ready").lines == [
        "ipsec whack --ctlsocket /run/pluto/pluto.ctl --listen"]
    assert run("ipsec", "auto", "--showonly", "--utc", "--listcerts").lines == [
        "ipsec whack --ctlsocket /run/pluto/pluto.ctl --utc --listcerts"]


def test_auto_usage_errors_exit_2():
    res = run("ipsec", "auto", "--up")
    assert res.rc == 2 and "--up needs exactly one connection name" in res.err
    res = run("ipsec", "auto", "--frob", "x")
    assert res.rc == 2 and 'unknown option "--frob"' in res.err
    res = run("ipsec", "auto", "--up", "a", "--down", "b")
    assert res.rc == 2


def test_auto_add_replace_delete_against_pluto(pluto, tmp_path):
    conf = tmp_path / "ipsec.conf"
    conf.write_text(CONF)
    assert pluto.whack("--listen").rc == 0
    res = run("ipsec", "auto", "--ctlsocket", pluto.ctl, "--config", str(conf), "--add", "tunnel")
    assert res.rc == 0, res
    assert res.lines == ['"tunnel": added oriented IKEv2 connection']
    status = pluto.whack("--connectionstatus", "--name", "tunnel").lines
    assert status[0] == ('"tunnel": 10.1.0.0/24===127.0.0.1[@west]...127.0.0.2[@east]===10.2.0.0/24; '
                         'unrouted; my_ip=unset; their_ip=unset;')
    # ipsec add performs a replace; the connection appears once
    res = run("ipsec", "--ctlsocket", pluto.ctl, "--config", str(conf), "add", "tunnel")
    assert res.rc == 0, res
    conn_lines = [line for line in pluto.whack("--status").lines if line.startswith('"tunnel": ')
                  and not line.startswith('"tunnel":  ')]
    assert len(conn_lines) == 1
    # aliases are found
    res = run("ipsec", "auto", "--ctlsocket", pluto.ctl, "--config", str(conf), "--replace", "tunnel")
    assert res.rc == 0, res
    res = run("ipsec", "auto", "--ctlsocket", pluto.ctl, "--config", str(conf), "--add", "nosuch")
    assert res.rc == 21
    assert "conn 'nosuch': not found (tried aliases)" in res.err
    res = run("ipsec", "auto", "--ctlsocket", pluto.ctl, "--config", str(conf), "--delete", "tunnel")
    assert res.rc == 0
    assert pluto.whack("--connectionstatus").out == ""


def test_addconn_lists_and_configsetup(tmp_path):
    conf = tmp_path / "ipsec.conf"
    conf.write_text(CONF)
    assert run("ipsec", "addconn", "--config", str(conf), "--listadd").lines == ["tunnel"]
    assert run("ipsec", "addconn", "--config", str(conf), "--listignore").lines == ["base far"]
    assert run("ipsec", "addconn", "--config", str(conf), "--configsetup=uniqueids").lines == ["yes"]


def test_bad_config_is_not_loaded(pluto, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(CONF + "\nconn broken\n\tleft=127.0.0.1\n\tfrobnicate=yes\n")
    res = run("ipsec", "auto", "--ctlsocket", pluto.ctl, "--config", str(conf), "--add", "tunnel")
    assert res.rc == 3
    assert f"cannot load config '{conf}'" in res.err and "frobnicate" in res.err
    assert pluto.whack("--connectionstatus").out == ""


def test_pluto_config_adds_auto_add_conns(pluto_factory, tmp_path):
    conf = tmp_path / "pluto.conf"
    conf.write_text(CONF)
    p = pluto_factory("cfg", extra=["--config", str(conf)]).start()
    for _ in range(100):
        out = p.whack("--connectionstatus").out
        if out:
            break
    assert out.startswith('"tunnel": 10.1.0.0/24===127.0.0.1[@west]')
    assert '"far"' not in out and '"base"' not in out


AUTO_CONF = """\
conn %default
\tauthby=secret
\tleftid=@west
\trightid=@east
\tleft={west}
\tright={east}
\tike=aes_gcm256-sha2_256;dh31
\tesp=aes_gcm256

conn od
\tleftsubnet=10.1.0.0/24
\trightsubnet=10.2.0.0/24
\tauto=ondemand

conn st
\tleftsubnet=10.1.1.0/24
\trightsubnet=10.2.1.0/24
\tauto={auto}
"""


def test_pluto_config_routes_ondemand_and_starts_up_conns(pluto_factory, tmp_path):
    secrets = '@west @east : PSK "auto-start test secret"\n'
    east_conf = tmp_path / "east.conf"
    east_conf.write_text(AUTO_CONF.format(west="127.0.0.1", east="127.0.0.2", auto="add"))
    east = pluto_factory("east", addr="127.0.0.2", secrets=secrets, extra=["--config", str(east_conf)])
    east.start()
    west_conf = tmp_path / "west.conf"
    west_conf.write_text(AUTO_CONF.format(west="127.0.0.1", east="127.0.0.2", auto="start"))
    west = pluto_factory("west", addr="127.0.0.1", ikeport=east.ikeport, secrets=secrets,
                         extra=["--config", str(west_conf)])
    west.start()
    traffic = ""
    for _ in range(200):
        traffic = west.whack("--trafficstatus").out
        if '"st"' in traffic:
            break
    assert '#2: "st", type=ESP' in traffic, west.logtext()
    conns = west.whack("--connectionstatus").lines
    assert any(line.startswith('"od": 10.1.0.0/24===') and "routed-ondemand" in line for line in conns)
    assert any(line.startswith('"st": 10.1.1.0/24===') and "routed-tunnel" in line for line in conns)
    assert "+UP+" in "\n".join(line for line in conns if line.startswith('"st":   policy:'))


def test_conf_round_trips_to_status(pluto, tmp_path):
    conf = tmp_path / "rt.conf"
    conf.write_text(
        "conn rt\n\tleft=127.0.0.1\n\tleftid=@west\n\tleftsubnet=10.1.0.0/24\n"
        "\tright=127.0.0.2\n\trightid=user@example.org\n\trightsubnets={10.2.0.0/24}\n"
        "\tauthby=secret\n\tike=aes256-sha2_256;modp2048\n\tesp=aes_gcm256\n"
        "\tikelifetime=2h\n\tsalifetime=30m\n\trekeymargin=3m\n\trekeyfuzz=50%\n"
        "\treplay-window=64\n\tretransmit-timeout=20s\n\tdpddelay=15s\n")
    assert pluto.whack("--listen").rc == 0
    res = run("ipsec", "--ctlsocket", pluto.ctl, "--config", str(conf), "add", "rt")
    assert res.rc == 0, res
    # rightsubnets= makes one connection per subnet, "rt/0x1", aliased "rt"
    assert res.lines == ['"rt/0x1": added oriented IKEv2 connection']
    lines = pluto.whack("--connectionstatus", "--name", "rt").lines
    assert lines[0].startswith('"rt/0x1": 10.1.0.0/24===127.0.0.1[@west]...127.0.0.2[user@example.org]')
    text = "\n".join(lines)
    assert ('"rt/0x1":   ike_life: 7200s; ipsec_life: 1800s; ipsec_max_bytes: 2^63B; '
            "ipsec_max_packets: 2^63; replay_window: 64; rekey_margin: 180s; rekey_fuzz: 50%;") in text
    assert '"rt/0x1":   our idtype: FQDN; our id=@west; their idtype: USER_FQDN; their id=user@example.org' in text
    assert '"rt/0x1":   IKE algorithms: AES_CBC_256-HMAC_SHA2_256-MODP2048' in text
    assert '"rt/0x1":   ESP algorithms: AES_GCM_16_256' in text
    assert '"rt/0x1":   liveness: active; dpddelay:15s; retransmit-timeout:20s' in text
