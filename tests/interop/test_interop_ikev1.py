"""The IKEv1 rows of issue #6's matrix: pyswan against strongSwan 5.9.8 and Libreswan 4.10.

Two suites, pyswan as initiator and as responder against each peer, on this host:

- ``ikev1-main-psk-pfs``: Main Mode with a pre-shared key (AES-CBC-256, SHA2-256,
  MODP2048), then Quick Mode with PFS (ESP AES-CBC-128/HMAC-SHA1, MODP2048).
- ``ikev1-aggr-xauth-modecfg``: Aggressive Mode with a pre-shared key, then XAUTH and
  ModeCfg (the initiator is the client: it answers the XAUTH challenge and pulls an
  address from the responder's pool), then Quick Mode.

A cell passes when the ISAKMP SA is established on both sides with the same
algorithms (the suite's), with the cookies the peer shows (strongSwan's vici,
Libreswan's debug log) answered on the wire in the Phase 1 exchange and used by
the Quick Mode exchange there; with XAUTH the client's user authenticated on both
sides and an address leased from the pool; and Quick Mode reaching the kernel: this
host has no ESP, so the side that installs the IPsec SA first refuses, and that
refusal must be logged cleanly (or, with ESP, both IPsec SAs installed).

Each daemon is configured as its users would: strongSwan through swanctl.conf
(``version = 1``, ``aggressive = yes``, a second ``auth = xauth`` round, ``pools``),
Libreswan 4.10 and pyswan through ipsec.conf (``ikev2=no`` / ``keyexchange=ikev1``,
``aggressive=yes``, ``leftxauthserver``/``rightxauthclient``, ``leftmodecfgserver``/
``rightmodecfgclient``, ``rightaddresspool=``, ``modecfgpull=yes``,
``xauthby=alwaysok``), with ``config setup ikev1-policy=accept`` (both drop IKEv1
without it: Debian's Libreswan 4.10 then refuses to add the conn, "global ikev1-policy
does not allow IKEv1 connections").
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matrix import cell_name  # noqa: E402
from netlab import (  # noqa: E402
    Capture,
    Conn,
    Daemon,
    IkeView,
    Lab,
    LabError,
    Libreswan,
    NotReady,
    Packet,
    PySwan,
    StrongSwan,
    Suite,
    enrich_from_pluto_log,
    require_peers,
    split_libreswan_ike_alg,
)

pytestmark = [pytest.mark.interop, pytest.mark.root]

XAUTH_USER = "xroad"
XAUTH_PASSWORD = "interop xauth password"
POOL = ("10.1.0.100", "10.1.0.110")  # the client's lease comes from its own subnet


@dataclass(frozen=True)
class V1Suite:
    suite: Suite
    aggressive: bool = False
    xauth: bool = False
    pfs: bool = True


V1_SUITES: dict[str, V1Suite] = {
    "ikev1-main-psk-pfs": V1Suite(Suite(
        "IKEv1 Main Mode PSK + Quick Mode PFS",
        ike_libreswan="aes256-sha2_256-modp2048", esp_libreswan="aes128-sha1-modp2048",
        ike_strongswan="aes256-sha256-modp2048", esp_strongswan="aes128-sha1-modp2048",
        expect_ike=("AES_CBC_256", "HMAC_SHA2_256_128", "HMAC_SHA2_256", "MODP2048"),
        expect_esp=("AES_CBC_128", "HMAC_SHA1_96"),
    )),  # fmt: skip
    "ikev1-aggr-xauth-modecfg": V1Suite(Suite(
        "IKEv1 Aggressive Mode PSK + XAUTH + ModeCfg",
        ike_libreswan="aes256-sha2_256-modp2048", esp_libreswan="aes128-sha1-modp2048",
        ike_strongswan="aes256-sha256-modp2048", esp_strongswan="aes128-sha1-modp2048",
        expect_ike=("AES_CBC_256", "HMAC_SHA2_256_128", "HMAC_SHA2_256", "MODP2048"),
        expect_esp=("AES_CBC_128", "HMAC_SHA1_96"),
    ), aggressive=True, xauth=True),  # fmt: skip
}


# ----------------------------------------------------------------------------- configs


def v1_pluto_conf(conn: Conn, v1: V1Suite, *, client: bool, kind: str) -> str:
    """ipsec.conf of an IKEv1 conn for Libreswan 4.10 or pyswan (`kind`).

    With XAUTH the initiator is the client: it has no subnet of its own (its lease is
    its subnet); the server pushes nothing and leases from rightaddresspool=.
    """
    s = v1.suite
    lines = [
        "config setup", "\tuniqueids=yes", "\tikev1-policy=accept", "\tplutodebug=base",
        *(["\tdnssec-enable=no"] if kind == "libreswan" else []), "",
        f"conn {conn.name}",
        "\tkeyexchange=ikev1" if kind == "pyswan" else "\tikev2=no",
        f"\tleft={conn.local.addr}", f"\tleftid={conn.local_id}",
        f"\tright={conn.remote_addr}", f"\trightid={conn.remote_id}",
        "\tauthby=secret", "\tauto=add",
        f"\tike={s.ike_libreswan}", f"\tesp={s.esp_libreswan}",
        f"\tpfs={'yes' if v1.pfs else 'no'}",
    ]  # fmt: skip
    if v1.aggressive:
        lines.append("\taggressive=yes")
    if not v1.xauth:
        lines += [f"\tleftsubnet={conn.local.subnet}", f"\trightsubnet={conn.remote.subnet}"]
    elif client:
        lines += [f"\trightsubnet={conn.remote.subnet}", "\tleftxauthclient=yes",
                  f"\tleftusername={XAUTH_USER}", "\tleftmodecfgclient=yes",
                  "\trightxauthserver=yes", "\trightmodecfgserver=yes", "\tmodecfgpull=yes"]  # fmt: skip
    else:
        lines += [f"\tleftsubnet={conn.local.subnet}", "\trightxauthclient=yes",
                  "\trightmodecfgclient=yes", "\tleftxauthserver=yes", "\tleftmodecfgserver=yes",
                  f"\trightaddresspool={POOL[0]}-{POOL[1]}", "\tmodecfgpull=yes",
                  "\txauthby=alwaysok"]  # fmt: skip
    return "\n".join(lines) + "\n"


def v1_pluto_secrets(conn: Conn, v1: V1Suite, *, client: bool) -> str:
    out = f'{conn.local_id} {conn.remote_id} : PSK "{conn.psk}"\n'
    if v1.xauth and client:
        out += f'@{XAUTH_USER} : XAUTH "{XAUTH_PASSWORD}"\n'
    return out


def v1_swanctl_conf(conn: Conn, v1: V1Suite, *, client: bool) -> str:
    s, c = v1.suite, conn
    local = [f"local-1 {{\n            auth = psk\n            id = {c.local_id}\n        }}"]
    remote = [f"remote-1 {{\n            auth = psk\n            id = {c.remote_id}\n        }}"]
    extra, secrets = "", [
        f"    ike-{c.name} {{\n        id-a = {c.local_id}\n        id-b = {c.remote_id}\n"
        f'        secret = "{c.psk}"\n    }}'
    ]
    local_ts, remote_ts = c.local.subnet, c.remote.subnet
    if v1.xauth:  # the client answers with it, strongSwan's server checks against it
        secrets.append(f'    xauth-{XAUTH_USER} {{\n        id = {XAUTH_USER}\n        secret = "{XAUTH_PASSWORD}"\n    }}')
    if v1.xauth and client:
        local.append(f"local-2 {{\n            auth = xauth\n            xauth_id = {XAUTH_USER}\n        }}")
        extra = "\n        vips = 0.0.0.0"
        local_ts = "dynamic"
    elif v1.xauth:
        remote.append("remote-2 {\n            auth = xauth\n        }")
        extra = f"\n        pools = {c.name}-pool"
        remote_ts = "dynamic"
    pools = (f"pools {{\n    {c.name}-pool {{\n        addrs = {POOL[0]}-{POOL[1]}\n    }}\n}}\n"
             if v1.xauth and not client else "")  # fmt: skip
    nl = "\n        "
    return f"""connections {{
    {c.name} {{
        version = 1
        aggressive = {'yes' if v1.aggressive else 'no'}
        local_addrs = {c.local.addr}
        remote_addrs = {c.remote_addr}
        proposals = {s.ike_strongswan}{extra}
        {nl.join(local)}
        {nl.join(remote)}
        children {{
            {c.name} {{
                local_ts = {local_ts}
                remote_ts = {remote_ts}
                esp_proposals = {s.esp_strongswan}
                mode = tunnel
                start_action = none
            }}
        }}
    }}
}}
{pools}secrets {{
{chr(10).join(secrets)}
}}
"""


# ----------------------------------------------------------------------------- daemons


class V1StrongSwan(StrongSwan):
    v1: V1Suite
    client: bool
    # xauth-generic answers and checks XAUTH from swanctl's secrets; attr serves pools.
    PLUGINS = StrongSwan.PLUGINS + " xauth-generic attr"

    def write_config(self) -> None:
        super().write_config()
        # Aggressive Mode with PSK is refused by charon as responder unless told otherwise.
        text = self.conf.read_text().replace(
            "    dos_protection = no\n",
            "    dos_protection = no\n    i_dont_care_about_security_and_use_aggressive_mode_psk = yes\n",
        )  # fmt: skip
        self.conf.write_text(text)
        self.swanctl_conf.write_text(v1_swanctl_conf(self.conn, self.v1, client=self.client))

    def initiate(self) -> None:
        self.swanctl("--initiate", "--child", self.conn.name, "--timeout", "1", check=False)


_V1_STATE_RE = re.compile(r'^#(\d+): "([^"]+)"\S*? (?:(STATE_\w+) \(([^)]*)\)|([^;]*));?(.*)$')
_V1_ALG_RE = re.compile(r'^"([^"]+)"\S*:\s+IKE(?:v1)? algorithms? newest: (\S+)')
# Once the ISAKMP SA is keyed, Libreswan 4.10 and pyswan append its details to a line
# ("IKE SA established {auth=...}", "XAUTH responder - optional CFG exchange {auth=...}").
_V1_KEYED_RE = re.compile(r'"([^"\n]+)"\S* #(\d+): .*\{auth=(\S+) cipher=(\S+) integ=(\S+) group=(\S+)\}')


def pluto_v1_view(d: Libreswan | PySwan, status: str) -> IkeView | None:
    """The newest ISAKMP SA of the conn: its state from pluto's status (Libreswan 4.10
    and pyswan), established when the log printed its keyed details, its algorithms
    from status or those details, its cookies (Libreswan) from the debug log."""
    name, log, states, alg = d.conn.name, d.log_text(), {}, ""
    for line in status.splitlines():
        line = re.sub(r"^\d{3} ", "", line.strip())
        m = _V1_STATE_RE.match(line)
        # ISAKMP SAs only: a Quick Mode state names its ISAKMP SA (pyswan) or is STATE_QUICK_*
        if m and m.group(2) == name and not re.search(r"ISAKMP SA #\d+|STATE_QUICK|Quick Mode", line):
            states[int(m.group(1))] = (m.group(3) or m.group(5) or "").strip()
        m = _V1_ALG_RE.match(line)
        if m and m.group(1) == name:
            alg = m.group(2)
    keyed = {int(m.group(2)): m for m in _V1_KEYED_RE.finditer(log)
             if m.group(1) == name and "| " not in m.group(0)[:3]}  # fmt: skip
    live = [n for n in states if n in keyed]
    if not live:
        return None
    serial = max(live)
    encr, integ, prf, dh = split_libreswan_ike_alg(alg)
    if not encr:
        m = keyed[serial]
        encr, integ, prf, dh = split_libreswan_ike_alg(f"{m.group(4)}-{m.group(5)}-{m.group(6)}")
    view = IkeView(name, states[serial], True, encr=encr, integ=integ, prf=prf, dh=dh,
                   raw=status, serial=serial)  # fmt: skip
    enrich_from_pluto_log(view, log)  # cookies (Libreswan's debug log)
    return view


class V1Libreswan(Libreswan):
    v1: V1Suite
    client: bool

    def write_config(self) -> None:
        self.config.write_text(v1_pluto_conf(self.conn, self.v1, client=self.client, kind=self.kind))
        self.secrets.write_text(v1_pluto_secrets(self.conn, self.v1, client=self.client))
        self.secrets.chmod(0o600)

    def view(self) -> IkeView | None:
        return pluto_v1_view(self, self.whack("--showstates", check=False, timeout=10).stdout)

    def final_view(self) -> IkeView | None:
        return pluto_v1_view(self, self.status_text())


class V1PySwan(PySwan):
    v1: V1Suite
    client: bool

    def write_config(self) -> None:
        self.config.write_text(v1_pluto_conf(self.conn, self.v1, client=self.client, kind=self.kind))
        self.secrets.write_text(v1_pluto_secrets(self.conn, self.v1, client=self.client))
        self.secrets.chmod(0o600)

    def view(self) -> IkeView | None:
        return pluto_v1_view(self, self.whack("--showstates", check=False, timeout=10).stdout)

    def final_view(self) -> IkeView | None:
        return pluto_v1_view(self, self.final_status())


V1_DAEMONS: dict[str, type[Daemon]] = {"strongswan": V1StrongSwan, "libreswan": V1Libreswan,
                                       "pyswan": V1PySwan}  # fmt: skip


# ----------------------------------------------------------------------------- a scenario


@dataclass
class V1Result:
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    views: dict[str, IkeView | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # role -> log text
    wire: list[Packet] = field(default_factory=list)
    report: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        return "\n".join(["FAILED" if self.problems else "ok", *(f"  problem: {p}" for p in self.problems),
                          *(f"  note: {n}" for n in self.notes), *(f"  wire: {p}" for p in self.wire),
                          self.report])  # fmt: skip


def run_v1_pair(workdir: Path, initiator: str, responder: str, key: str, *, timeout: float = 20,
                keep_report: bool = False) -> V1Result:  # fmt: skip
    v1 = V1_SUITES[key]
    res = V1Result()
    start = time.monotonic()
    lab = Lab(workdir, tag=f"v1{initiator[:2]}{responder[:2]}")
    try:
        lab.build()
        conn = Conn.between(lab.west, lab.east, v1.suite)
        daemons = {}
        for role, kind, c, host in (("responder", responder, conn.mirrored(), lab.east),
                                    ("initiator", initiator, conn, lab.west)):
            cls = V1_DAEMONS[kind]
            kw = {"kernel": "xfrm"} if kind == "pyswan" else {}
            d = cls(lab, host, c, **kw)  # type: ignore[call-arg]
            d.v1, d.client = v1, role == "initiator"  # type: ignore[attr-defined]
            lab.daemons.append(d)
            d.start()
            d.load()
            daemons[role] = d
        init, resp = daemons["initiator"], daemons["responder"]
        cap = Capture(lab, lab.west).start()
        init.initiate()
        try:
            lab.wait_established(init, resp, timeout=timeout)
        except NotReady as e:
            res.problems.append(str(e))
        # Quick Mode follows (after XAUTH/ModeCfg); its end (kernel refusal here) is logged
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (init.child_events() or resp.child_events()):
            time.sleep(0.2)
        time.sleep(0.5)
        res.wire = cap.stop()
        res.views = {"initiator": init.final_view(), "responder": resp.final_view()}
        res.logs = {"initiator": init.log_text(), "responder": resp.log_text()}
    except (LabError, NotReady, OSError) as e:
        res.problems.append(f"{type(e).__name__}: {e}")
    finally:
        res.report = lab.report() if (res.problems or keep_report) else ""
        lab.close()
        res.seconds = time.monotonic() - start
    return res


# ----------------------------------------------------------------------------- checks

KERNEL_REFUSAL = re.compile(
    r"Function not implemented|Protocol not supported|errno 38|errno 93|\(38\)|\(93\)|ENOSYS|EPROTONOSUPPORT"
)
# kind -> (XAUTH client succeeded, ModeCfg client got the pool's first address)
CLIENT_SAYS = {
    "pyswan": (r"XAUTH: Successfully Authenticated", r"received IPv4 lease {lease}$"),
    "libreswan": (r"XAUTH: Successfully Authenticated", r"Received IPv4 address: {lease}/32"),
    "strongswan": (r"XAuth authentication of '{user}' \(myself\) successful", r"installing new virtual IP {lease}$"),
}
# kind -> (XAUTH server accepted the user, ModeCfg server handed out the address)
SERVER_SAYS = {
    "pyswan": (r"XAUTH: User {user}: Authentication Successful", r"modecfg: sending IPv4 address {lease} to the client"),
    "libreswan": (r"XAUTH: User {user}: Authentication Successful", r"lease {lease} .*assign .*lease"),
    "strongswan": (r"XAuth authentication of '{user}' successful", r"assigning virtual IP {lease} to peer '{user}'"),
}  # fmt: skip


def _log_hit(log: str, regex: str) -> str:
    pat = re.compile(regex.format(user=XAUTH_USER, lease=re.escape(POOL[0])))
    return next((x.strip() for x in log.splitlines() if pat.search(x)), "")


def check_v1(res: V1Result, key: str, initiator: str, responder: str, esp_kernel: bool) -> list[str]:
    """What the cell must show (see the module's docstring); the notes go to the matrix."""
    v1, problems = V1_SUITES[key], list(res.problems)
    vi, vr = res.views.get("initiator"), res.views.get("responder")
    if vi is None or vr is None:
        return [*problems, f"ISAKMP SA not established: initiator={vi is not None} responder={vr is not None}"]
    for who, v in (("initiator", vi), ("responder", vr)):
        if v.algorithms() != v1.suite.expect_ike:
            problems.append(f"{who} ISAKMP SA algorithms {v.algorithms()} != {v1.suite.expect_ike}")
    # Cookies: whoever shows them (strongSwan's vici, Libreswan's debug log); pyswan's are
    # the same by construction of the wire: one Phase 1 exchange on one cookie pair.
    shown = {(v.spi_i, v.spi_r) for v in (vi, vr) if v.spi_i}
    phase1 = "AGGRESSIVE" if v1.aggressive else "MAIN"
    answered = {(p.spi_i, p.spi_r) for p in res.wire if p.kind == "ike" and p.exchange == phase1
                and p.src == "192.0.2.2" and p.spi_r != "0" * 16}  # fmt: skip
    quick = {(p.spi_i, p.spi_r) for p in res.wire if p.kind == "ike" and p.exchange == "QUICK"}
    if not shown:
        problems.append("neither side shows its ISAKMP cookies")
    if len(answered) != 1 or shown - answered:
        problems.append(f"cookies shown {sorted(shown)} vs answered {phase1} Mode on the wire {sorted(answered)}")
    if not answered & quick:
        problems.append(f"no Quick Mode on the ISAKMP SA's cookies on the wire (saw {sorted(quick)})")
    res.notes.append(f"ISAKMP {vi.encr}/{vi.integ}/{vi.prf}/{vi.dh} on both sides, cookies "
                     f"{'/'.join(sorted(shown)[0]) if shown else '?'} answered in {phase1} Mode")
    if v1.xauth:
        for role, kind, says in (("initiator", initiator, CLIENT_SAYS), ("responder", responder, SERVER_SAYS)):
            for what, regex in zip(("XAUTH", "ModeCfg"), says[kind], strict=True):
                hit = _log_hit(res.logs.get(role, ""), regex)
                if not hit:
                    problems.append(f"{kind} ({role}) logged no {what} line matching /{regex}/")
        res.notes.append(f"XAUTH user {XAUTH_USER} accepted, ModeCfg lease {POOL[0]}")
    if esp_kernel:
        for role in ("initiator", "responder"):
            if not re.search(r"IPsec SA established|CHILD_SA \S+ established", res.logs.get(role, "")):
                problems.append(f"{role}: no IPsec SA established")
    else:
        refusals = [(role, x) for role in ("initiator", "responder") for x in res.logs.get(role, "").splitlines()
                    if "| " not in x[:40] and KERNEL_REFUSAL.search(x)]  # fmt: skip
        if not refusals:
            problems.append("Quick Mode did not reach the kernel: no refusal of the IPsec SA logged")
        else:
            role, line = refusals[0]
            kind = initiator if role == "initiator" else responder
            line = re.sub(r"^(?:\w{3} \d+ )?[\d:.]+:? (?:\d\d\[\w+\] )?", "", line.strip())
            line = re.sub(r"\b(?:0x)?[0-9a-f]{8}\b", "<spi>", re.sub(r"#\d+: ", "", line))
            res.notes.append(f"Quick Mode: {kind} ({role}): {line}")
    return problems


CELLS = [
    pytest.param(key, peer, role, id=f"{key}-pyswan-{role}-{peer}")
    for key in V1_SUITES for peer in ("strongswan", "libreswan") for role in ("initiator", "responder")
]  # fmt: skip


@pytest.mark.parametrize(("key", "peer", "role"), CELLS)
def test_pyswan_ikev1_cell(key: str, peer: str, role: str, interop_host: bool, tmp_path: Path,
                           record_cell) -> None:  # fmt: skip
    initiator, responder = ("pyswan", peer) if role == "initiator" else (peer, "pyswan")
    require_peers(peer, "pyswan")
    if peer == "strongswan" and not Path("/usr/lib/ipsec/plugins/libstrongswan-xauth-generic.so").exists():
        pytest.skip("strongSwan's xauth-generic plugin is missing (apt-get install libcharon-extauth-plugins)")
    res = run_v1_pair(tmp_path, initiator, responder, key)
    problems = check_v1(res, key, initiator, responder, interop_host)
    record_cell(cell_name(key, initiator, responder), "host",
                None, "; ".join(res.notes))  # fmt: skip
    assert not problems, "\n".join([*problems, res.message() if res.problems else
                                    (res.report or _report_again(res))])


def _report_again(res: V1Result) -> str:
    return "\n".join(f"--- {role} log (last 60 lines) ---\n" + "\n".join(
        [x for x in log.splitlines() if "| " not in x[:40]][-60:]) for role, log in res.logs.items())


if __name__ == "__main__":
    r = run_v1_pair(Path(sys.argv[4]), sys.argv[1], sys.argv[2], sys.argv[3], keep_report=True)
    print(r.message())
    for role, log in r.logs.items():
        print(role, "EVENTS", [x for x in log.splitlines() if "| " not in x[:40] and re.search(r"XAUTH|ModeCfg|Mode Config|virtual IP|lease|errno|netlink|refused|established|Quick|fail|error|ERROR", x)])
    for role, v in r.views.items():
        print(role, v.brief() if v else None)
