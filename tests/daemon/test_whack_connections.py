"""The connection database through whack: add, list, duplicate, unknown, orientation."""

from __future__ import annotations


def _add(p, name="c", left="127.0.0.1", right="127.0.0.2", *extra):
    return p.whack("--name", name, "--host", left, "--id", "@west", "--client", "10.1.0.0/24",
                   "--to", "--host", right, "--id", "@east", "--client", "10.2.0.0/24",
                   "--psk", "--tunnel", "--encrypt", "--pfs", *extra)


def test_add_then_status_lists_connection_once(pluto):
    pluto.whack("--listen")
    res = _add(pluto)
    assert res.rc == 0, res
    assert res.lines == ['"c": added oriented IKEv2 connection']
    status = pluto.whack("--status")
    topo = [line for line in status.lines if line.startswith('"c": ') and not line.startswith('"c":  ')]
    assert topo == ['"c": 10.1.0.0/24===127.0.0.1[@west]...127.0.0.2[@east]===10.2.0.0/24; '
                    'unrouted; my_ip=unset; their_ip=unset;']
    assert '"c":   policy: IKEv2+PSK+ENCRYPT+TUNNEL+PFS+IKE_FRAG_ALLOW+ESN_NO+ESN_YES;' in status.lines
    assert '"c":   our idtype: FQDN; our id=@west; their idtype: FQDN; their id=@east' in status.lines
    assert "Total IPsec connections: loaded 1, routed 0, active 0" in status.lines


def test_duplicate_name_is_rc_dupname(pluto):
    assert _add(pluto).rc == 0
    res = _add(pluto)
    assert res.rc == 20
    assert res.lines == ['attempt to redefine connection "c"']


def test_unknown_name_is_rc_unknown_name(pluto):
    res = pluto.whack("--name", "nope", "--initiate")
    assert res.rc == 21
    assert res.lines == ['no connection or alias named "nope"']
    assert pluto.whack("--name", "nope", "--delete").rc == 21


def test_initiate_before_listen_needs_listen(pluto):
    assert _add(pluto).rc == 0
    res = pluto.whack("--name", "c", "--initiate")
    assert res.rc == 24
    assert res.lines == ["need --listen before --initiate"]


def test_unoriented_connection_cannot_be_initiated(pluto):
    pluto.whack("--listen")
    res = _add(pluto, "far", "192.0.2.1", "192.0.2.2")
    assert res.rc == 0
    assert res.lines == ['"far": added unoriented IKEv2 connection '
                         '(neither left=192.0.2.1 nor right=192.0.2.2 match an interface)']
    res = pluto.whack("--name", "far", "--initiate")
    assert res.rc == 22
    assert "we cannot identify ourselves with either end of this connection" in res.out


def test_bad_value_names_option_and_adds_nothing(pluto):
    res = pluto.whack("--name", "bad", "--host", "127.0.0.1", "--client", "10.0.0.0/33",
                      "--to", "--host", "127.0.0.2", "--psk")
    assert res.rc == 56, res
    assert '"bad"' in res.out and "10.0.0.0/33" in res.out and "subnet" in res.out
    assert pluto.whack("--connectionstatus").out == ""


def test_delete_removes_connection(pluto):
    assert _add(pluto).rc == 0
    assert pluto.whack("--name", "c", "--delete").rc == 0
    assert pluto.whack("--connectionstatus").out == ""


def test_status_commands_exit_zero_and_have_libreswan_shape(pluto):
    brief = pluto.whack("--briefstatus")
    assert brief.rc == 0
    assert brief.lines == [
        "State Information: DDoS cookies not required, IGNORING new IKE connections (not listening)",
        "IKE SAs: total(0), half-open(0), open(0), authenticated(0), anonymous(0)",
        "IPsec SAs: total(0), authenticated(0), anonymous(0)",
    ]
    g = pluto.whack("--globalstatus")
    assert g.lines[:3] == ["config.setup.ike.ddos_threshold=25000",
                           "config.setup.ike.max_halfopen=50000", "current.states.all=0"]
    assert all("=" in line for line in g.lines)
    assert pluto.whack("--shuntstatus").lines == [" ", "Bare Shunt list:", " "]
    for cmd in ("--trafficstatus", "--showstates", "--fipsstatus", "--processstatus",
                "--addresspoolstatus", "--listall", "--listpubkeys", "--listcerts",
                "--listcacerts", "--listcrls", "--checkpubkeys"):
        assert pluto.whack(cmd).rc == 0, cmd


def test_listen_binds_ports_and_status_shows_interfaces(pluto):
    res = pluto.whack("--listen")
    assert res.rc == 0
    assert f"adding UDP interface lo 127.0.0.1:{pluto.ikeport}" in res.lines
    assert f"adding UDP interface lo 127.0.0.1:{pluto.natport}" in res.lines
    status = pluto.whack("--status").lines
    assert f"interface lo 127.0.0.1:UDP/{pluto.ikeport}" in status
    assert f"interface lo 127.0.0.1:UDP/{pluto.natport} (NAT)" in status
    assert pluto.whack("--unlisten").rc == 0
    assert not any(line.startswith("interface ") for line in pluto.whack("--status").lines)


def test_debug_and_impair_at_runtime(pluto):
    assert pluto.whack("--debug", "base").rc == 0
    assert "debug: routing+base" in pluto.whack("--status").lines
    help_lines = pluto.whack("--debug", "help").lines
    assert "  private: displays private information: DANGER!" in help_lines
    assert pluto.whack("--debug", "none").rc == 0
    assert "debug: none" in pluto.whack("--status").lines
    assert pluto.whack("--debug", "frob").rc == 50
    assert any(line.startswith("suppress-retransmits:") for line in pluto.whack("--impair", "help").lines)
    assert pluto.whack("--impair", "suppress-retransmits").rc == 0
    assert pluto.whack("--impair", "list").lines == ["suppress-retransmits: 1"]
    assert pluto.whack("--impair", "none").rc == 0
    assert pluto.whack("--impair", "list").lines == []


def test_ddos_and_redirect_modes(pluto):
    assert pluto.whack("--ddos-busy").rc == 0
    assert pluto.whack("--briefstatus").lines[0].startswith("State Information: DDoS cookies REQUIRED")
    assert pluto.whack("--ddos-auto").rc == 0
    assert pluto.whack("--global-redirect-to", "192.0.2.9").rc == 0
    assert pluto.whack("--global-redirect", "yes").rc == 0
    assert "global-redirect=yes, global-redirect-to=192.0.2.9" in pluto.whack("--status").lines
    assert pluto.whack("--global-redirect", "maybe").rc == 50


def test_ipsec_shortcuts_reach_pluto(pluto):
    assert pluto.ipsec("briefstatus").lines[1].startswith("IKE SAs: total(0)")
    assert pluto.ipsec("listen").rc == 0
    assert _add(pluto).rc == 0
    res = pluto.ipsec("connectionstatus", "c")
    assert res.rc == 0 and res.lines[0].startswith('"c": 10.1.0.0/24===127.0.0.1[@west]')
    assert pluto.ipsec("up", "nope").rc == 21
    assert pluto.ipsec("delete", "c").rc == 0
