"""The plain types and Libreswan's policy shaping in pyswan.kernel.base."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from pyswan.kernel.base import (
    AuthAlg,
    EncrAlg,
    KernelError,
    Mark,
    PolicySpec,
    SaSpec,
    Selector,
    Template,
    icmpv6_bypass_policies,
    ipsec_policies,
    reqid_for,
    shunt_policy,
    spd_priority,
    spi_range,
    trap_policy,
    verify_sa,
)

A = ipaddress.ip_address
N = ipaddress.ip_network


def esp(**kw: object) -> SaSpec:
    base: dict[str, object] = dict(src="192.0.2.1", dst="192.0.2.2", spi=0x12345678,
                                   encr=EncrAlg("cbc(aes)", bytes(16)),
                                   auth=AuthAlg("hmac(sha256)", bytes(32), 128))
    base.update(kw)
    return SaSpec(**base)  # type: ignore[arg-type]


class TestSelector:
    def test_normalises_and_prints_like_the_shunt_list(self) -> None:
        sel = Selector("192.0.1.7/24", "192.0.2.0/24")
        assert sel.src == N("192.0.1.0/24")
        assert str(sel) == "192.0.1.0/24 -0-> 192.0.2.0/24"
        assert str(Selector("10.0.0.1/32", "10.0.0.2/32", 6, 0, 80)) == \
            "10.0.0.1/32 -6-> 10.0.0.2/32:80"
        assert sel.family == 2 and Selector("::/0", "fd00::/8").family == 10

    def test_rejects_mixed_families_and_bad_ports(self) -> None:
        with pytest.raises(ValueError, match="mixes address families"):
            Selector("10.0.0.0/8", "fd00::/8")
        with pytest.raises(ValueError, match="sport"):
            Selector("10.0.0.0/8", "10.0.0.0/8", 6, 70000)
        with pytest.raises(ValueError, match="protocol"):
            Selector("10.0.0.0/8", "10.0.0.0/8", 300)

    def test_icmp_protoport_is_split_into_type_and_code(self) -> None:
        # leftprotoport=icmp/2048 is echo request: type 8 code 0 (kernel_xfrm.c)
        sel = Selector.from_protoport("10.0.0.0/8", "10.1.0.0/16", 1, 0x0800, 0)
        assert (sel.sport, sel.dport) == (8, 0)
        assert Selector.from_protoport("10.0.0.0/8", "10.1.0.0/16", 6, 22, 80).dport == 80

    def test_matches_and_reverses(self) -> None:
        sel = Selector("10.0.0.0/24", "10.1.0.0/24", 17, 0, 53)
        assert sel.matches(A("10.0.0.5"), A("10.1.0.9"), 17, 3333, 53)
        assert not sel.matches(A("10.0.0.5"), A("10.1.0.9"), 6, 3333, 53)
        assert not sel.matches(A("10.0.0.5"), A("10.1.0.9"), 17, 3333, 54)
        assert not sel.matches(A("10.0.1.5"), A("10.1.0.9"), 17, 3333, 53)
        assert sel.reversed() == Selector("10.1.0.0/24", "10.0.0.0/24", 17, 53, 0)


class TestSaSpec:
    def test_said_and_description(self) -> None:
        spec = esp()
        assert spec.said == "esp.12345678@192.0.2.2"
        assert spec.describe() == "ESP SA 0x12345678 192.0.2.1->192.0.2.2"
        assert esp(proto="comp", spi=0x300, encr=None, auth=None,
                   comp="deflate").describe().startswith("IPCOMP SA 0x00000300")

    def test_keys_stay_out_of_repr(self) -> None:
        text = repr(esp(encr=EncrAlg("cbc(aes)", b"\x41" * 16)))
        assert "AAAA" not in text and "16 byte key" in text

    @pytest.mark.parametrize("kw, message", [
        (dict(src="fd00::1"), "mixes address families"),
        (dict(proto="gre"), "esp, ah, comp"),
        (dict(mode="beet"), "tunnel or transport"),
        (dict(spi=1 << 32), "SPI"),
        (dict(direction="sideways"), "inbound or outbound"),
        (dict(encr=EncrAlg("rfc4106(gcm(aes))", bytes(20), 128)), "AEAD"),
    ])
    def test_rejects_malformed(self, kw: dict, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            esp(**kw)

    def test_kernel_checks(self) -> None:
        assert verify_sa(esp()) is None
        assert verify_sa(esp(encr=None, auth=None)).startswith(  # type: ignore[union-attr]
            "Missing required attribute for ESP")
        assert verify_sa(esp(proto="ah", encr=None)) is None
        assert "Invalid attributes for AH" in str(verify_sa(esp(proto="ah")))
        assert "Missing required attribute for COMP" in str(
            verify_sa(esp(proto="comp", encr=None, auth=None)))
        assert "SPI is too large for COMP" in str(verify_sa(
            esp(proto="comp", encr=None, auth=None, comp="deflate", spi=0x10000)))
        assert verify_sa(esp(mode="transport", tfcpad=100)) is None  # never sent: ignored
        assert "NOPMTUDISC" in str(verify_sa(esp(nopmtudisc=True, direction="inbound")))
        assert verify_sa(esp(nopmtudisc=True, direction="outbound")) is None

    def test_spi_ranges_are_plutos(self) -> None:
        assert spi_range("esp") == (0x1000, 0xFFFFFFFF)
        assert spi_range("comp") == (256, 61439)


class TestPolicySpec:
    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="direction"):
            PolicySpec("10.0.0.0/8", "10.0.0.0/8", direction="both")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="action"):
            PolicySpec("10.0.0.0/8", "10.0.0.0/8", action="drop")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="end points"):
            Template("esp", "tunnel", 1)

    def test_selector_round_trip(self) -> None:
        sel = Selector("10.0.0.0/24", "10.1.0.0/24", 6, 0, 443)
        spec = PolicySpec.for_selector(sel, direction="in", priority=7)
        assert spec.selector == sel and spec.describe() == f"in policy {sel}"


class TestPriority:
    """Values checked against ip xfrm policy output in Libreswan's own test results."""

    def test_static_connection(self) -> None:
        assert spd_priority("192.0.1.0/24", "192.0.2.0/24") == 1757393
        assert spd_priority("192.0.1.0/24", "192.0.2.0/24", instance=True) == 1757392

    def test_opportunistic_null(self) -> None:
        # testing/pluto/*: "dir out priority 3850432" (instance) / 3850449 (group, /24 remote)
        assert spd_priority("192.1.3.209/32", "192.1.2.23/32", opportunistic=True,
                            null_auth=True, instance=True) == 3850432
        assert spd_priority("192.1.3.209/32", "192.1.2.0/24", opportunistic=True,
                            null_auth=True) == 3850449

    def test_more_specific_wins(self) -> None:
        wide = spd_priority("10.0.0.0/8", "10.0.0.0/8")
        narrow = spd_priority("10.1.0.0/16", "10.2.0.0/16")
        ported = spd_priority("10.1.0.0/16", "10.2.0.0/16", remote_port=443, proto=6)
        assert ported < narrow < wide  # lower wins

    def test_override(self) -> None:
        assert spd_priority("10.0.0.0/8", "10.0.0.0/8", override=42) == 42


class TestPolicyShapes:
    def test_tunnel_child_policies(self) -> None:
        sel = Selector("192.0.1.0/24", "192.0.2.0/24")
        out, in_, fwd = ipsec_policies(sel, "192.1.2.45", "192.1.2.23", reqid=16388,
                                       priority=1757393)
        assert (out.direction, in_.direction, fwd.direction) == ("out", "in", "fwd")
        assert out.selector == sel and in_.selector == sel.reversed() == fwd.selector
        assert out.templates == (Template("esp", "tunnel", 16389, A("192.1.2.45"),
                                          A("192.1.2.23")),)
        assert in_.templates == (Template("esp", "tunnel", 16389, A("192.1.2.23"),
                                          A("192.1.2.45")),)
        assert {p.priority for p in (out, in_, fwd)} == {1757393}

    def test_ipcomp_bundle_order_and_optional(self) -> None:
        sel = Selector("10.0.1.0/24", "10.0.2.0/24")
        out, in_, _ = ipsec_policies(sel, "10.9.0.1", "10.9.0.2", reqid=16388, priority=5,
                                     protos=("esp", "comp"))
        assert [(t.proto, t.mode, t.reqid, t.optional) for t in out.templates] == [
            ("comp", "tunnel", 16390, False), ("esp", "transport", 16389, False)]
        assert [t.optional for t in in_.templates] == [True, False]

    def test_transport_has_no_fwd_and_no_addresses(self) -> None:
        sel = Selector.host_pair("10.0.0.1", "10.0.0.2")
        policies = ipsec_policies(sel, "10.0.0.1", "10.0.0.2", reqid=7, priority=9,
                                  mode="transport", mark_out=Mark(1), mark_in=Mark(2))
        assert [p.direction for p in policies] == ["out", "in"]
        assert policies[0].templates == (Template("esp", "transport", 7),)
        assert policies[0].mark == Mark(1) and policies[1].mark == Mark(2)

    def test_manual_and_automatic_reqids(self) -> None:
        assert reqid_for("esp", 100) == 100
        assert [reqid_for(p, 16388) for p in ("ah", "esp", "comp")] == [16388, 16389, 16390]

    def test_trap_and_shunts(self) -> None:
        sel = Selector("10.0.0.0/24", "10.1.0.0/24")
        trap = trap_policy(sel, reqid=16389, priority=100)
        assert trap.action == "allow" and trap.templates == (Template("esp", "transport",
                                                                       16389),)
        assert shunt_policy(sel, "pass", priority=1).templates == ()
        assert shunt_policy(sel, "drop", priority=1).action == "block"
        assert shunt_policy(sel, "hold", priority=1).templates[0].mode == "transport"
        with pytest.raises(ValueError):
            shunt_policy(sel, "nope", priority=1)  # type: ignore[arg-type]

    def test_icmpv6_holes(self) -> None:
        holes = icmpv6_bypass_policies()
        assert len(holes) == 6 and {p.priority for p in holes} == {1}
        assert {(p.sport, p.dport, p.proto) for p in holes} == {(135, 0, 58), (136, 0, 58)}
        assert {p.direction for p in holes} == {"in", "out", "fwd"}


def test_kernel_error_is_a_log_line() -> None:
    e = KernelError("add SA", "ESP SA 0x12345678 192.0.2.1->192.0.2.2", errno.EPROTONOSUPPORT,
                    "Requested type not found", "XFRM_MSG_NEWSA")
    assert str(e) == ("ESP SA 0x12345678 192.0.2.1->192.0.2.2: kernel refused add SA "
                      "(XFRM_MSG_NEWSA): Protocol not supported [EPROTONOSUPPORT]: "
                      "Requested type not found")
    assert (e.operation, e.errno, e.detail) == ("add SA", 93, "Requested type not found")
    assert str(KernelError("delete policy", "out policy x", 0)) == \
        "out policy x: kernel refused delete policy"
