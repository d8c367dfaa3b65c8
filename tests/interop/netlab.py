"""Interoperability lab: IKE daemons in network namespaces, talking to each other.

A `Lab` builds a private topology (two namespaces, "west" and "east", joined by a
veth pair; optionally a third, masquerading "nat" namespace between them), starts
daemons there (strongSwan's charon, Libreswan's pluto, pyswan's pluto), and always
takes everything down again: every process it started is killed and every namespace
it created is deleted, whatever happened in between.

    with Lab(workdir) as lab:
        conn = Conn.between(lab.west, lab.east, suite=SUITES["psk-default"])
        west = lab.start(StrongSwan, lab.west, conn)
        east = lab.start(Libreswan, lab.east, conn.mirrored())
        west.initiate()
        lab.wait_established(west, east)

Topology (all addresses are inside namespaces this module creates):

    west  veth0 192.0.2.1/24  <---->  veth0 192.0.2.2/24  east
          lo    10.1.0.1/32                 lo    10.2.0.1/32
          (client subnet 10.1.0.0/24)       (client subnet 10.2.0.0/24)

With ``nat=True``:

    west veth0 192.0.2.1/24 -- veth0 192.0.2.254 [nat, masquerade] veth1 198.51.100.254 -- veth0 198.51.100.2/24 east

Every daemon reads only files under the lab's work directory (its own
strongswan.conf, vici socket, ipsec.conf, ipsec.secrets, NSS database, rundir), and
logs to a file there; `Lab.report()` gathers them for assertion messages.

Each daemon also presents its negotiated state the same way (`IkeView`,
`ChildView`: SPIs and algorithms in one canonical spelling), so a test can check
that both ends agree on what they negotiated.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, TypeVar

from pki import CA_NICK, P12_PASSWORD, Credential, lab_pki, write_private

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ.get("PYSWAN_BIN", str(REPO / ".venv" / "bin")))

# Peer programs, from Debian's packages.
CHARON = Path("/usr/sbin/charon-systemd")
SWANCTL = Path("/usr/sbin/swanctl")
LIBRESWAN_IPSEC = Path("/usr/sbin/ipsec")
LIBRESWAN_LIBEXEC = Path("/usr/libexec/ipsec")

# Under software emulation (the QEMU lab) everything is several times slower.
TIME_SCALE = float(os.environ.get("PYSWAN_INTEROP_TIME_SCALE", "1"))

PYCACHE = Path("/var/tmp/pyswan-interop/pycache")

NS_PREFIX = "pyswan-i-"  # every namespace this module creates starts with this
_counter = itertools.count(1)

PR_SET_PDEATHSIG = 1


class LabError(RuntimeError):
    """Something in the lab itself (not the daemons under test) went wrong."""


class NotReady(AssertionError):
    """A wait ran out: the daemons did not reach the expected state in time."""


# ----------------------------------------------------------------------------- utilities


def _die_with_parent() -> None:
    """In the child between fork and exec: get SIGKILL if the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def sh(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise LabError with the output if check fails."""
    args = [str(a) for a in argv]
    timeout *= TIME_SCALE
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, input=input
        )
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(args)}") from e
    if check and proc.returncode != 0:
        raise LabError(
            f"exit {proc.returncode}: {' '.join(args)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


def missing_programs(*paths: Path) -> list[str]:
    return [str(p) for p in paths if not (p.exists() and os.access(p, os.X_OK))]


def strongswan_missing() -> list[str]:
    missing = missing_programs(CHARON, SWANCTL)
    if not Path("/usr/lib/ipsec/plugins/libstrongswan-openssl.so").exists():
        missing.append("libstrongswan-openssl.so (libstrongswan-standard-plugins)")
    return missing


def libreswan_missing() -> list[str]:
    return missing_programs(LIBRESWAN_IPSEC, LIBRESWAN_LIBEXEC / "pluto")


def pyswan_missing() -> list[str]:
    return missing_programs(VENV_BIN / "pluto", VENV_BIN / "ipsec")


def missing_peers(*kinds: str) -> str | None:
    """Why the given implementations cannot run here, or None."""
    checks: dict[str, Callable[[], list[str]]] = {
        "strongswan": strongswan_missing, "libreswan": libreswan_missing, "pyswan": pyswan_missing,
    }  # fmt: skip
    for kind in kinds:
        missing = checks[kind]()
        if missing:
            return f"{kind} not installed ({', '.join(missing)}): bash tests/interop/install-peers.sh"
    return None


def require_peers(*kinds: str) -> None:
    """In a test: skip, with the reason, when a peer's packages are not installed."""
    reason = missing_peers(*kinds)
    if reason:
        import pytest

        pytest.skip(reason)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_namespaces() -> list[str]:
    """Delete namespaces left behind by lab runs whose process no longer exists.

    Names are ``pyswan-i-<pid>-<n>-<role>``; only those whose <pid> is gone are touched.
    """
    removed = []
    out = sh(["ip", "netns", "list"], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{re.escape(NS_PREFIX)}(\d+)-", name)
        if m and not _pid_alive(int(m.group(1))):
            for pid in sh(["ip", "netns", "pids", name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


# ----------------------------------------------------------------------------- topology


@dataclass
class Netns:
    name: str

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(
        self, argv: Sequence[str | os.PathLike[str]], **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return sh([*self.prefix(), *[str(a) for a in argv]], **kw)  # type: ignore[arg-type]

    def ip(self, *args: str) -> None:
        sh(["ip", "-n", self.name, *args])


@dataclass
class Host:
    """One end of the topology: a namespace with a public address and a client subnet."""

    role: str  # "west" or "east"
    ns: Netns
    addr: str  # the address its IKE daemon uses
    subnet: str  # the client subnet behind it (TS)
    client: str  # an address in that subnet, for ping
    iface: str = "veth0"
    nat_addr: str = ""  # the address the other side sees, when it differs (behind NAT)
    gateway: str = ""  # next hop towards the other side, when not on-link

    @property
    def seen_as(self) -> str:
        return self.nat_addr or self.addr


@dataclass
class Process:
    """A daemon started in a namespace, with its log file."""

    label: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 3.0) -> int | None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        return self.popen.returncode


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Suite:
    """One scenario's algorithms, spelled for each implementation, and what must come out.

    `None` proposals mean "the implementation's defaults".  `expect_*` name the
    negotiated algorithms in the canonical spelling of `canon_*` below; `None` there
    means "whatever both agree on".
    """

    label: str
    ike_libreswan: str | None = None
    esp_libreswan: str | None = None
    ike_strongswan: str | None = None
    esp_strongswan: str | None = None
    expect_ike: tuple[str, str | None, str, str] | None = None  # encr, integ, prf, dh
    expect_esp: tuple[str, str | None] | None = None  # encr, integ
    expect_pfs: str | None = None  # the group of a Child SA rekeyed with PFS (canonical)
    # "psk", or certificates from pki.py: "rsa-pss", "rsa-pkcs1", "ecdsa"
    auth: str = "psk"
    # kind -> regex the line in which that daemon authenticated its peer must match;
    # "{peer}" and "{ca}" are replaced by the peer's ID and the CA's DN (escaped).
    expect_auth: tuple[tuple[str, str], ...] = ()

    @property
    def cert_kind(self) -> str | None:
        """Which certificates of pki.py the ends use ("rsa", "ecdsa"), None with PSK."""
        return None if self.auth == "psk" else self.auth.split("-")[0]


SUITES: dict[str, Suite] = {
    "psk-default": Suite("IKEv2 PSK, default proposals"),
    "aes256-sha256-modp2048": Suite(
        "IKEv2 AES-CBC-256/SHA2-256/MODP2048",
        ike_libreswan="aes256-sha2_256;modp2048",
        esp_libreswan="aes256-sha2_256",
        ike_strongswan="aes256-sha256-modp2048",
        esp_strongswan="aes256-sha256",
        expect_ike=("AES_CBC_256", "HMAC_SHA2_256_128", "HMAC_SHA2_256", "MODP2048"),
        expect_esp=("AES_CBC_256", "HMAC_SHA2_256_128"),
    ),
    "chacha20poly1305-x25519": Suite(
        "IKEv2 ChaCha20-Poly1305/X25519",
        ike_libreswan="chacha20_poly1305-sha2_256;dh31",
        esp_libreswan="chacha20_poly1305",
        ike_strongswan="chacha20poly1305-prfsha256-x25519",
        esp_strongswan="chacha20poly1305",
        expect_ike=("CHACHA20_POLY1305", None, "HMAC_SHA2_256", "DH31"),
        expect_esp=("CHACHA20_POLY1305", None),
    ),
    # Fast under software emulation (QEMU), and what kernel-lab.md saw working there.
    "aesgcm-x25519": Suite(
        "IKEv2 AES-GCM-256/X25519",
        ike_libreswan="aes_gcm256-sha2_256;dh31",
        esp_libreswan="aes_gcm256",
        ike_strongswan="aes256gcm16-prfsha256-x25519",
        esp_strongswan="aes256gcm16",
        expect_ike=("AES_GCM_16_256", None, "HMAC_SHA2_256", "DH31"),
        expect_esp=("AES_GCM_16_256", None),
    ),
    # Rekeying (lifecycle.py): a Child SA PFS group (ECP-256) other than the IKE SA's
    # (X25519), so a rekey that reuses the IKE SA's group shows.
    "rekey-pfs": Suite(
        "IKEv2 rekey, AES-GCM-256/X25519, Child PFS ECP-256",
        ike_libreswan="aes_gcm256-sha2_256;dh31",
        esp_libreswan="aes_gcm256;dh19",
        ike_strongswan="aes256gcm16-prfsha256-x25519",
        esp_strongswan="aes256gcm16-ecp256",
        expect_ike=("AES_GCM_16_256", None, "HMAC_SHA2_256", "DH31"),
        expect_esp=("AES_GCM_16_256", None),
        expect_pfs="DH19",
    ),
    # Libreswan 4.10 rekeys a Child SA with the IKE SA's group whatever esp= names, and
    # refuses a CREATE_CHILD_SA with esp='s group (libreswan#1265; seen in the QEMU lab:
    # "rekeying Child SA with PFS ... CURVE25519", then "no local proposal matches remote
    # proposals 1:ESP:ENCR=AES_GCM_C_256;DH=ECP_256"): against it PFS uses the IKE group.
    "rekey-pfs-ike-group": Suite(
        "IKEv2 rekey, AES-GCM-256/X25519, Child PFS X25519",
        ike_libreswan="aes_gcm256-sha2_256;dh31",
        esp_libreswan="aes_gcm256;dh31",
        ike_strongswan="aes256gcm16-prfsha256-x25519",
        esp_strongswan="aes256gcm16-x25519",
        expect_ike=("AES_GCM_16_256", None, "HMAC_SHA2_256", "DH31"),
        expect_esp=("AES_GCM_16_256", None),
        expect_pfs="DH31",
    ),
    # Certificates (pki.py).  RSA: RFC 7427 digital signature with RSASSA-PSS (strongSwan
    # needs charon.rsa_pss=yes; by default it puts PKCS#1 v1.5 inside method 14, which
    # pyswan and Libreswan refuse), and RFC 7296 method 1 (PKCS#1 v1.5 with SHA-1): pyswan
    # with authby=rsa-sha1 sends no SIGNATURE_HASH_ALGORITHMS, so both peers fall back
    # to it.  ECDSA P-256 in method 14.
    "cert-rsa-pss": Suite(
        "IKEv2 RSA certificates, RSASSA-PSS (RFC 7427)",
        ike_libreswan="aes256-sha2_256;modp2048",
        ike_strongswan="aes256-sha256-modp2048",
        expect_ike=("AES_CBC_256", "HMAC_SHA2_256_128", "HMAC_SHA2_256", "MODP2048"),
        auth="rsa-pss",
        expect_auth=(
            ("pyswan", r"authenticated peer certificate '{peer}' and 2048-bit RSASSA-PSS with "
                       r"SHA2_(256|384|512) digital signature issued by '{ca}'"),
            ("strongswan", r"authentication of '{peer}' with RSA_EMSA_PSS_SHA2_(256|384|512)(_SALT_\d+)? successful"),
            ("libreswan", r"authenticated peer '2048-bit RSASSA-PSS with SHA2_(256|384|512)' digital "
                          r"signature using peer certificate '{peer}' issued by CA '{ca}'"),
        ),
    ),
    "cert-rsa-pkcs1": Suite(
        "IKEv2 RSA certificates, PKCS#1 v1.5 (RFC 7296 method 1)",
        ike_libreswan="aes256-sha2_256;modp2048",
        ike_strongswan="aes256-sha256-modp2048",
        expect_ike=("AES_CBC_256", "HMAC_SHA2_256_128", "HMAC_SHA2_256", "MODP2048"),
        auth="rsa-pkcs1",
        expect_auth=(
            ("pyswan", r"authenticated peer certificate '{peer}' and 2048-bit PKCS#1 1.5 RSA with "
                       r"SHA1 digital signature issued by '{ca}'"),
            ("strongswan", r"authentication of '{peer}' with RSA signature successful"),
            ("libreswan", r"authenticated peer '2048-bit PKCS#1 1.5 RSA with SHA1' signature using "
                          r"peer certificate '{peer}' issued by CA '{ca}'"),
        ),
    ),
    "cert-ecdsa": Suite(
        "IKEv2 ECDSA P-256 certificates",
        ike_libreswan="aes_gcm256-sha2_256;dh19",
        ike_strongswan="aes256gcm16-prfsha256-ecp256",
        expect_ike=("AES_GCM_16_256", None, "HMAC_SHA2_256", "DH19"),
        auth="ecdsa",
        expect_auth=(
            ("pyswan", r"authenticated peer certificate '{peer}' and P-256 ECDSA with "
                       r"SHA2_(256|384|512) digital signature issued by '{ca}'"),
            ("strongswan", r"authentication of '{peer}' with ECDSA_WITH_SHA(256|384|512)_DER successful"),
            ("libreswan", r"authenticated peer 'P-256 ECDSA with SHA2_(256|384|512)' digital signature "
                          r"using peer certificate '{peer}' issued by CA '{ca}'"),
        ),
    ),
}

CERT_SUITES = ("cert-rsa-pss", "cert-rsa-pkcs1", "cert-ecdsa")


@dataclass(frozen=True)
class Conn:
    """A connection as seen from one end ("local"), independent of the implementation."""

    local: Host
    remote: Host
    suite: Suite
    name: str = "interop"
    local_id: str = ""
    remote_id: str = ""
    psk: str = "interop lab shared secret, not for production"
    ike_version: int = 2
    # Liveness (lifecycle.py): probe every dpd_delay seconds, a peer silent for dpd_timeout
    # seconds is dead (pyswan and Libreswan 5: retransmit-timeout=; Libreswan 4.10:
    # dpdtimeout=; strongSwan: its retransmission schedule); 0 = passive.
    dpd_delay: int = 0
    dpd_timeout: int = 0
    # A peer that is declared dead: "clear" (forget it) or "restart" (initiate again).
    dpd_action: str = "clear"

    @classmethod
    def between(cls, local: Host, remote: Host, suite: Suite, name: str = "interop") -> Conn:
        kind = suite.cert_kind
        if kind is None:
            return cls(local, remote, suite, name, f"@{local.role}", f"@{remote.role}")
        pki = lab_pki()
        return cls(local, remote, suite, name, pki.cred(local.role, kind).ident,
                   pki.cred(remote.role, kind).ident)  # fmt: skip

    @property
    def local_cred(self) -> Credential:
        assert self.suite.cert_kind is not None
        return lab_pki().cred(self.local.role, self.suite.cert_kind)

    @property
    def remote_cred(self) -> Credential:
        assert self.suite.cert_kind is not None
        return lab_pki().cred(self.remote.role, self.suite.cert_kind)

    def auth_expectation(self, kind: str) -> re.Pattern[str] | None:
        """What `kind`'s log line that authenticated the remote end must match (or None)."""
        regex = dict(self.suite.expect_auth).get(kind)
        if regex is None:
            return None
        peer = self.remote_id if kind != "strongswan" else self.remote_id.removeprefix("@")
        return re.compile(regex.replace("{peer}", re.escape(peer))
                          .replace("{ca}", re.escape(lab_pki().ca_dn)))  # fmt: skip

    def mirrored(self) -> Conn:
        return replace(
            self, local=self.remote, remote=self.local,
            local_id=self.remote_id, remote_id=self.local_id,
        )  # fmt: skip

    @property
    def remote_addr(self) -> str:
        """Where the local end sends IKE: a remote behind NAT is seen at the NAT's address."""
        return self.remote.seen_as


# ----------------------------------------------------------------------------- views


@dataclass
class ChildView:
    name: str
    state: str
    installed: bool
    spi_in: str = ""  # 8 hex digits, lower case
    spi_out: str = ""
    encr: str = ""
    integ: str | None = None
    dh: str = ""  # the PFS group of a Child SA made by CREATE_CHILD_SA with KE ("" without)


@dataclass
class IkeView:
    """An IKE SA as one daemon reports it, in canonical spelling."""

    name: str
    state: str
    established: bool
    spi_i: str = ""  # 16 hex digits, lower case ("" if the daemon does not show it)
    spi_r: str = ""
    encr: str = ""
    integ: str | None = None
    prf: str = ""
    dh: str = ""
    children: list[ChildView] = field(default_factory=list)
    raw: str = ""  # the status text it came from
    serial: int = 0  # pluto's state number (#N), where there is one

    def algorithms(self) -> tuple[str, str | None, str, str]:
        return (self.encr, self.integ, self.prf, self.dh)

    def brief(self) -> str:
        kids = ", ".join(
            f"{c.name}:{c.state} in={c.spi_in} out={c.spi_out} {c.encr}/{c.integ}"
            for c in self.children
        )
        return (
            f"{self.name} {self.state} spis={self.spi_i}:{self.spi_r} "
            f"{self.encr}/{self.integ}/{self.prf}/{self.dh} [{kids}]"
        )


def _hex(value: str, width: int) -> str:
    v = value.lower().removeprefix("0x")
    return v.zfill(width) if v else ""


# Canonical algorithm names: Libreswan's spelling (pyswan copies it).
_SS_ENCR = {"AES_CBC": "AES_CBC", "AES_GCM_16": "AES_GCM_16", "AES_GCM_12": "AES_GCM_12",
            "AES_GCM_8": "AES_GCM_8", "CHACHA20_POLY1305": "CHACHA20_POLY1305",
            "AES_CTR": "AES_CTR", "3DES_CBC": "3DES_CBC", "CAMELLIA_CBC": "CAMELLIA_CBC"}  # fmt: skip
_SS_DH = {"MODP_1024": "MODP1024", "MODP_1536": "MODP1536", "MODP_2048": "MODP2048",
          "MODP_3072": "MODP3072", "MODP_4096": "MODP4096", "MODP_6144": "MODP6144",
          "MODP_8192": "MODP8192", "ECP_256": "DH19", "ECP_384": "DH20", "ECP_521": "DH21",
          "CURVE_25519": "DH31", "CURVE_448": "DH32"}  # fmt: skip
_LS_DH = {"DH19": "DH19", "DH20": "DH20", "DH21": "DH21", "DH31": "DH31", "DH32": "DH32",
          "ECP_256": "DH19", "ECP_384": "DH20", "ECP_521": "DH21", "CURVE25519": "DH31"}  # fmt: skip


def canon_encr(name: str, keysize: int | str | None = None) -> str:
    """AES_CBC + 256 -> AES_CBC_256; AES_GCM_16 + 256 -> AES_GCM_16_256; CHACHA20_POLY1305."""
    n = name.upper().replace("-", "_")
    n = _SS_ENCR.get(n, n)
    if n == "AES_GCM_C" or n == "AES_GCM":
        n = "AES_GCM_16"
    if n.startswith("CHACHA20"):
        return "CHACHA20_POLY1305"
    if keysize and not re.search(r"_\d{3}$", n):
        n = f"{n}_{keysize}"
    return n


def canon_integ(name: str | None) -> str | None:
    if not name or name.upper() in {"NONE", "NULL", "N/A"}:
        return None
    return name.upper().replace("-", "_")


def canon_prf(name: str) -> str:
    n = name.upper().replace("-", "_").removeprefix("PRF_")
    return n


def canon_dh(name: str) -> str:
    n = name.upper().replace("-", "_")
    return _SS_DH.get(n) or _LS_DH.get(n) or n.replace("_", "")


def is_aead(encr: str) -> bool:
    return "GCM" in encr or "CCM" in encr or "CHACHA20" in encr


# ----------------------------------------------------------------------------- daemons


class Daemon(ABC):
    """One IKE daemon in one namespace; subclasses speak one implementation's dialect."""

    kind: ClassVar[str]  # "strongswan", "libreswan", "pyswan"
    label: ClassVar[str]  # for tables

    def __init__(self, lab: Lab, host: Host, conn: Conn) -> None:
        self.lab = lab
        self.host = host
        self.conn = conn
        self.dir = lab.workdir / f"{host.role}-{self.kind}"  # configs and logs
        self.dir.mkdir(parents=True, exist_ok=True)
        # Sockets and databases: on a local file system (unix sockets cannot live on 9p).
        self.rt = lab.rundir / f"{host.role}-{self.kind}"
        self.rt.mkdir(parents=True, exist_ok=True)
        self.proc: Process | None = None
        self.commands: list[str] = []  # transcript of control commands, for reports

    # -- lifecycle
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def load(self) -> None:
        """Load/add the connection (after start)."""

    @abstractmethod
    def initiate(self) -> None:
        """Start negotiating the connection (asynchronously)."""

    @abstractmethod
    def status_text(self) -> str: ...

    @abstractmethod
    def view(self) -> IkeView | None:
        """The newest IKE SA of the connection, or None."""

    def final_view(self) -> IkeView | None:
        """Like view(), through the user-facing status command where it differs."""
        return self.view()

    # -- the SA lifecycle (lifecycle.py); each daemon with the commands its users type
    def all_views(self) -> list[IkeView]:
        """Every IKE SA of the connection (during a rekey there are two), oldest first."""
        v = self.final_view()
        return [v] if v is not None else []

    def rekey_ike(self) -> None:
        raise NotImplementedError

    def rekey_child(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        """Take the connection down: the IKE SA and its Child SAs, the peer told."""
        raise NotImplementedError

    def kill(self) -> None:
        """The daemon dies without a word (SIGKILL): its peer must notice by itself."""
        if self.proc is not None and self.proc.alive():
            self.proc.popen.kill()
            self.proc.popen.wait(5)
        self.proc = None  # meant to be gone: waits must not stop for it (teardown still has it)

    def restart(self) -> None:
        """Start again after kill(), with the same configuration."""
        self.start()
        self.load()

    # Log lines that tell how a Child SA ended up (kernel refusal, notify from the peer).
    CHILD_EVENTS: ClassVar[re.Pattern[str]] = re.compile(
        r"errno|netlink error|unable to (?:add|install)|SAD entry|rejected Child SA|TS_UNACCEPT"
        r"|NO_PROP|no CHILD_SA built|failed to establish CHILD_SA|CHILD_SA \S+ established"
        r"|established Child SA|Requested type not found|Function not implemented|in kernel"
        r"|hit fail|Child SA.*fail",
        re.IGNORECASE,
    )

    def log_path(self) -> Path:
        return self.dir / "daemon.log"

    # The line in which a daemon says it authenticated its peer (not the one about itself).
    AUTH_LINE: ClassVar[re.Pattern[str]] = re.compile(
        r"authenticated peer|authenticated using|authentication of '.*' with .* successful"
    )

    def auth_lines(self) -> list[str]:
        """Log lines about the peer's authentication, without timestamps and debug lines."""
        out = []
        for line in self.log_text().splitlines():
            if "| " in line[:40] or "(myself)" in line:
                continue
            if self.AUTH_LINE.search(line):
                out.append(re.sub(r"^(?:\w{3} \d+ )?[\d:.]+:? (?:\d\d\[\w+\] )?", "", line).strip())
        return out

    def child_events(self) -> list[str]:
        """The log lines about Child SA outcomes, without timestamps and debug lines."""
        out = []
        for line in self.log_text().splitlines():
            if "| " in line[:40] or "[CFG]" in line or "using kernel interface" in line:
                continue  # debug output and configuration dumps
            if self.CHILD_EVENTS.search(line):
                line = re.sub(r"^(?:\w{3} \d+ )?[\d:.]+:? (?:\d\d\[\w+\] )?", "", line)
                out.append(line.strip())
        return out

    def log_text(self, tail: int | None = None) -> str:
        p = self.log_path()
        if not p.exists():
            return "(no log)"
        text = p.read_text(errors="replace")
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def run(
        self, argv: Sequence[str | os.PathLike[str]], check: bool = True, timeout: float = 30,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        full = [*self.host.ns.prefix(), *[str(a) for a in argv]]
        self.commands.append(" ".join(full))
        return sh(full, check=check, timeout=timeout, env=env)

    def spawn(self, argv: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None) -> None:
        log = self.log_path()
        out = open(log, "ab")  # noqa: SIM115 - the child keeps it
        full = [*self.host.ns.prefix(), *[str(a) for a in argv]]
        self.commands.append(" ".join(full))
        popen = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        out.close()
        self.proc = Process(f"{self.host.role}-{self.kind}", popen, log)
        self.lab._processes.append(self.proc)

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 15) -> None:
        timeout *= TIME_SCALE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and not self.proc.alive():
                raise NotReady(f"{self.kind} in {self.host.role} exited "
                               f"({self.proc.popen.returncode}) while waiting for {what}")
            if predicate():
                return
            time.sleep(0.1)
        raise NotReady(f"{self.kind} in {self.host.role}: no {what} after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def status_brief(self) -> str:
        """The part of the status that matters for a report (overridden per dialect)."""
        return self.status_text()

    # Log lines left out of reports: debug output, config dumps, control-socket chatter.
    REPORT_NOISE = re.compile(r"^.{0,40}?\|[\] ]|\[CFG\]\s{2,}|vici client|whack: status")

    def report(self, tail: int = 80) -> str:
        try:
            status = self.status_brief()
        except Exception as e:  # noqa: BLE001 - a report must not fail
            status = f"(status failed: {e})"
        lines = [x for x in self.log_text().splitlines() if not self.REPORT_NOISE.search(x)]
        return (
            f"===== {self.kind} in {self.host.role} ({self.host.ns.name}) =====\n"
            "--- commands ---\n" + "\n".join(self.commands[-8:]) + "\n"
            f"--- status ---\n{status.rstrip()}\n"
            f"--- log: last {tail} lines of {self.log_path()} without debug lines ---\n"
            + "\n".join(lines[-tail:]) + "\n"
        )


# --------------------------------------------------------------- strongSwan (charon + vici)


class StrongSwan(Daemon):
    kind = "strongswan"
    label = "strongSwan 5.9.8"

    # Plugins: openssl carries AES-GCM, ChaCha20-Poly1305, X25519 and MODP here.
    PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints "
               "aes sha1 sha2 hmac kdf gmp kernel-netlink socket-default vici")  # fmt: skip

    def __init__(self, lab: Lab, host: Host, conn: Conn) -> None:
        super().__init__(lab, host, conn)
        self.vici = self.rt / "charon.vici"
        self.conf = self.dir / "strongswan.conf"
        self.swanctl_conf = self.dir / "swanctl.conf"
        # SWANCTL_DIR: where swanctl --load-all finds x509/, x509ca/, private/.
        self.env = {**os.environ, "STRONGSWAN_CONF": str(self.conf), "SWANCTL_DIR": str(self.dir)}

    def write_credentials(self) -> None:
        """The end's certificate and key, and the CA, in swanctl's directories."""
        cred = self.conn.local_cred
        for sub in ("x509", "x509ca", "private"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "x509" / f"{cred.nick}.pem").write_bytes(cred.cert_pem())
        (self.dir / "x509ca" / f"{CA_NICK}.pem").write_bytes(lab_pki().ca_pem())
        write_private(self.dir / "private" / f"{cred.nick}.pem", cred.key_pem())

    def _auth_sections(self) -> tuple[str, str, str]:
        """(local, remote, secrets) parts of swanctl.conf for the suite's authentication."""
        c, ind = self.conn, "\n            "
        if c.suite.cert_kind is None:
            secrets = "\n".join([
                "secrets {", f"    ike-{c.name} {{", f"        id-a = {c.local_id}",
                f"        id-b = {c.remote_id}", f'        secret = "{c.psk}"', "    }", "}", "",
            ])  # fmt: skip
            return (f"auth = psk{ind}id = {c.local_id}", f"auth = psk{ind}id = {c.remote_id}", secrets)
        return (f'auth = pubkey{ind}id = "{c.local_id}"{ind}certs = {c.local_cred.nick}.pem',
                f'auth = pubkey{ind}id = "{c.remote_id}"', "")  # fmt: skip

    def write_config(self) -> None:
        # With rsa_pss = no (the default) charon signs PKCS#1 v1.5 inside RFC 7427's method 14.
        rsa_pss = "\n    rsa_pss = yes" if self.conn.suite.auth == "rsa-pss" else ""
        self.conf.write_text(
            f"""# strongswan.conf for the interop lab ({self.host.role})
charon-systemd {{
    load = {self.PLUGINS}
    dos_protection = no
    install_routes = yes{rsa_pss}
    retransmit_timeout = {2.0 * TIME_SCALE}
    retransmit_base = 1.4
    retransmit_tries = 3
    plugins {{
        vici {{
            socket = unix://{self.vici}
        }}
    }}
    journal {{
        default = -1
    }}
    filelog {{
        lab {{
            path = {self.log_path()}
            time_format = %H:%M:%S
            ike_name = yes
            append = yes
            flush_line = yes
            default = 1
            ike = 2
            cfg = 2
            knl = 2
            enc = 1
        }}
    }}
}}
swanctl {{
    socket = unix://{self.vici}
    load = pem pkcs1 pkcs8 x509 pubkey random openssl
}}
"""
        )
        c, s = self.conn, self.conn.suite
        ike_props = f"\n            proposals = {s.ike_strongswan}" if s.ike_strongswan else ""
        esp_props = f"\n                    esp_proposals = {s.esp_strongswan}" if s.esp_strongswan else ""
        # send_cert = always: the default (ifasked) sends none to an initiator that sent no
        # CERTREQ, which is what pluto does without rightca=.
        send_cert = "\n        send_cert = always" if s.cert_kind else ""
        dpd = f"\n        dpd_delay = {c.dpd_delay}s" if c.dpd_delay else ""
        dpd_action = f"\n                dpd_action = {c.dpd_action}" if c.dpd_delay else ""
        local_auth, remote_auth, secrets = self._auth_sections()
        self.swanctl_conf.write_text(
            f"""connections {{
    {c.name} {{
        version = {c.ike_version}
        local_addrs = {c.local.addr}
        remote_addrs = {c.remote_addr}{ike_props}{send_cert}{dpd}
        local {{
            {local_auth}
        }}
        remote {{
            {remote_auth}
        }}
        children {{
            {c.name} {{
                local_ts = {c.local.subnet}
                remote_ts = {c.remote.subnet}{esp_props}
                mode = tunnel
                start_action = none{dpd_action}
            }}
        }}
    }}
}}
{secrets}"""
        )

    def swanctl(self, command: str, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        # swanctl wants its command first, then the options.
        return self.run([SWANCTL, command, "--uri", f"unix://{self.vici}", *args], check=check,
                        timeout=timeout, env=self.env)  # fmt: skip

    def start(self) -> None:
        self.write_config()
        if self.conn.suite.cert_kind:
            self.write_credentials()
        self.spawn([CHARON], env=self.env)
        self.wait_for("vici socket", self.vici.exists, timeout=15)
        # The socket appears before vici answers; the version query is the real check.
        self.wait_for("vici answer", lambda: self.swanctl("--version", "--daemon", check=False).returncode == 0)

    def load(self) -> None:
        self.swanctl("--load-all", "--noprompt", "--file", str(self.swanctl_conf))

    def initiate(self) -> None:
        # --timeout 0 returns at once; progress is followed with --list-sas.
        self.swanctl("--initiate", "--child", self.conn.name, "--timeout", "1", check=False)

    def terminate(self) -> None:
        self.swanctl("--terminate", "--ike", self.conn.name, "--timeout", "5", check=False)

    def rekey_ike(self) -> None:
        self.swanctl("--rekey", "--ike", self.conn.name)

    def rekey_child(self) -> None:
        self.swanctl("--rekey", "--child", self.conn.name)

    def down(self) -> None:
        self.swanctl("--terminate", "--ike", self.conn.name, "--timeout", "10")

    def restart(self) -> None:
        self.vici.unlink(missing_ok=True)
        super().restart()

    def all_views(self) -> list[IkeView]:
        try:
            r = self.swanctl("--list-sas", "--raw", check=False, timeout=10)
        except LabError:
            return []
        out = []
        for line in r.stdout.splitlines():
            m = re.match(r"list-sa event (.*)$", line)
            ike = parse_vici_raw(m.group(1)).get(self.conn.name) if m else None
            if isinstance(ike, dict):
                out.append(strongswan_view(self.conn.name, ike, raw=line))
        return out

    def status_text(self) -> str:
        r = self.swanctl("--list-sas", check=False, timeout=10)
        return r.stdout + r.stderr

    def raw_sas(self) -> dict[str, object]:
        try:
            r = self.swanctl("--list-sas", "--raw", check=False, timeout=10)
        except LabError:  # slow to answer (under QEMU): not ready yet
            return {}
        result: dict[str, object] = {}
        for line in r.stdout.splitlines():
            m = re.match(r"list-sa event (.*)$", line)
            if m:
                parsed = parse_vici_raw(m.group(1))
                result.update(parsed)
        return result

    def view(self) -> IkeView | None:
        sas = self.raw_sas()
        ike = sas.get(self.conn.name)
        if not isinstance(ike, dict):
            return None
        return strongswan_view(self.conn.name, ike, raw=json.dumps(sas, indent=1))


def parse_vici_raw(text: str) -> dict[str, object]:
    """Parse swanctl's --raw rendering of a vici message: ``{k=v k=[a b] sec {..}}``."""
    tokens = re.findall(r"\{|\}|\[|\]|[^\s{}\[\]=]+=|[^\s{}\[\]]+", text)
    pos = 0

    def section() -> dict[str, object]:
        nonlocal pos
        out: dict[str, object] = {}
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == "}":
                return out
            if tok.endswith("="):
                key = tok[:-1]
                if pos < len(tokens) and tokens[pos] == "[":
                    pos += 1
                    items = []
                    while pos < len(tokens) and tokens[pos] != "]":
                        items.append(tokens[pos])
                        pos += 1
                    pos += 1
                    out[key] = items
                else:
                    out[key] = tokens[pos] if pos < len(tokens) else ""
                    pos += 1
            elif pos < len(tokens) and tokens[pos] == "{":
                pos += 1
                out[tok] = section()
        return out

    if tokens and tokens[0] == "{":
        pos = 1
    return section()


def strongswan_view(name: str, ike: dict[str, object], raw: str = "") -> IkeView:
    def g(d: dict[str, object], k: str) -> str:
        v = d.get(k, "")
        return v if isinstance(v, str) else ""

    encr = canon_encr(g(ike, "encr-alg"), g(ike, "encr-keysize"))
    view = IkeView(
        name=name,
        state=g(ike, "state"),
        established=g(ike, "state") == "ESTABLISHED",
        spi_i=_hex(g(ike, "initiator-spi"), 16),
        spi_r=_hex(g(ike, "responder-spi"), 16),
        encr=encr,
        integ=canon_integ(g(ike, "integ-alg")),
        prf=canon_prf(g(ike, "prf-alg")),
        dh=canon_dh(g(ike, "dh-group")),
        raw=raw,
    )
    kids = ike.get("child-sas")
    if isinstance(kids, dict):
        for child in kids.values():
            if not isinstance(child, dict):
                continue
            view.children.append(
                ChildView(
                    name=g(child, "name"),
                    state=g(child, "state"),
                    installed=g(child, "state") == "INSTALLED",
                    spi_in=_hex(g(child, "spi-in"), 8),
                    spi_out=_hex(g(child, "spi-out"), 8),
                    encr=canon_encr(g(child, "encr-alg"), g(child, "encr-keysize")),
                    integ=canon_integ(g(child, "integ-alg")),
                    dh=canon_dh(g(child, "dh-group")) if g(child, "dh-group") else "",
                )
            )
    return view


# --------------------------------------------------------------- Libreswan-style (pluto/whack)


# pyswan does not announce IKEV2_FRAGMENTATION_SUPPORTED until it implements RFC 7383, so
# peers send it whole messages; PYSWAN_INTEROP_FRAGMENTATION=no also sets fragmentation=no.
PYSWAN_NO_FRAGMENTATION = os.environ.get("PYSWAN_INTEROP_FRAGMENTATION", "yes") == "no"


def _pluto_id(ident: str) -> str:
    return f'"{ident}"' if not ident.startswith("@") else ident


def pluto_auth_lines(conn: Conn, kind: str) -> list[str]:
    """authby= and the certificate lines of a conn, for Libreswan or pyswan (`kind`)."""
    auth = conn.suite.auth
    if auth == "psk":
        return ["\tauthby=secret"]
    # pyswan, like Libreswan, refuses PKCS#1 v1.5 inside method 14: authby=rsa-sha1 makes
    # it offer no RFC 7427 hashes, so both ends use method 1.  Libreswan keeps rsasig
    # (which allows method 1) to show that it follows.
    authby = {"rsa-pss": "rsasig", "rsa-pkcs1": "rsa-sha1" if kind == "pyswan" else "rsasig",
              "ecdsa": "ecdsa"}[auth]  # fmt: skip
    # sendcert=always: pluto's sendifasked sends nothing to a peer that sent no CERTREQ.
    lines = [f"\tauthby={authby}", f"\tleftcert={conn.local_cred.nick}", "\tleftsendcert=always"]
    if kind == "pyswan" and PYSWAN_NO_FRAGMENTATION:
        lines.append("\tfragmentation=no")
    return lines


def libreswan_conf(conn: Conn, setup: str = "", kind: str = "libreswan") -> str:
    """An ipsec.conf for Libreswan or pyswan (they share the dialect)."""
    s = conn.suite
    local_id = conn.local_id
    if s.cert_kind is not None and conn.local_cred.id_is_dn:
        local_id = "%fromcert"
    lines = [
        "config setup",
        "\tuniqueids=yes",
        *(f"\t{x}" for x in setup.splitlines() if x.strip()),
        "",
        f"conn {conn.name}",
        f"\tleft={conn.local.addr}",
        f"\tleftid={local_id}",
        f"\tleftsubnet={conn.local.subnet}",
        f"\tright={conn.remote_addr}",
        f"\trightid={_pluto_id(conn.remote_id)}",
        f"\trightsubnet={conn.remote.subnet}",
        *pluto_auth_lines(conn, kind),
        f"\tikev2={'yes' if conn.ike_version == 2 else 'no'}",
        "\tauto=add",
    ]
    if conn.dpd_delay:
        lines.append(f"\tdpddelay={conn.dpd_delay}")
        if kind == "libreswan":  # 4.10 still has them; pyswan follows 5.x (retransmit-timeout)
            lines += [f"\tdpdtimeout={conn.dpd_timeout}", f"\tdpdaction={conn.dpd_action}"]
    if TIME_SCALE != 1:  # under emulation an answer can take many seconds
        lines.append(f"\tretransmit-interval={int(500 * TIME_SCALE)}")
        lines.append(f"\tretransmit-timeout={int((conn.dpd_timeout or 60) * TIME_SCALE)}s")
    elif conn.dpd_timeout:
        lines.append(f"\tretransmit-timeout={conn.dpd_timeout}s")
    if s.ike_libreswan:
        lines.append(f"\tike={s.ike_libreswan}")
    if s.esp_libreswan:
        lines.append(f"\tesp={s.esp_libreswan}")
    return "\n".join(lines) + "\n"


def libreswan_secrets(conn: Conn) -> str:
    if conn.suite.cert_kind:
        return ""  # private keys: Libreswan's NSS database, pyswan's ipsecdir/private/
    return f'{conn.local_id} {conn.remote_id} : PSK "{conn.psk}"\n'


# Libreswan 4.10: '#1: "interop":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in ...'
# Libreswan 5 / pyswan: '#1: "interop":500 established IKE SA; REKEY in ...'
# A Child SA's line names its parent: '...; IKE SA #1; idle;'
_STATE_RE = re.compile(r'^#(\d+): "([^"]+)"(?:\[\d+\])?:\d+ (?:(STATE_\w+) \(([^)]*)\)|([^;]*));?(.*)$')
_ESP_RE = re.compile(r'^#(\d+): "([^"]+)"\S* .*?esp\.([0-9a-f]+)@(\S+) esp\.([0-9a-f]+)@(\S+)')
# '"interop":   IKEv2 algorithm newest: AES_GCM_16_256-HMAC_SHA2_512-DH19'
_IKE_ALG_RE = re.compile(r'^"([^"]+)"\S*:\s+IKE(?:v2)? algorithms? newest: (\S+)')
_ESP_ALG_RE = re.compile(r'^"([^"]+)"\S*:\s+ESP algorithms? newest: (\S+?)(?:;|\s|$)')


def parse_pluto_status(name: str, text: str, host_addr: str, want: int | None = None) -> IkeView | None:
    """The newest IKE SA of `name` (or the one numbered `want`), with its children,
    from `whack --status` text.

    Works for Libreswan 4.10 and pyswan (same format).  IKE SPIs are not shown
    there; `spis_from_log` adds them where the log has them.
    """
    ike: dict[int, tuple[str, str]] = {}
    child: dict[int, tuple[str, str, int | None]] = {}
    esp: dict[int, tuple[str, str]] = {}
    ike_alg = esp_alg = ""
    for line in text.splitlines():
        line = line.strip()
        # whack prefixes status lines with "000 " in some versions
        line = re.sub(r"^\d{3} ", "", line)
        m = _STATE_RE.match(line)
        if m and m.group(2) == name:
            serial = int(m.group(1))
            st = m.group(3) or m.group(5).strip()
            desc = m.group(4) or m.group(5).strip()
            parent = re.search(r"(?:IKE|ISAKMP) SA #(\d+)", m.group(6))
            if parent:
                child[serial] = (st, desc, int(parent.group(1)))
            else:
                ike[serial] = (st, desc)
            continue
        m = _ESP_RE.match(line)
        if m and m.group(2) == name:
            # One SA per direction, each as <spi>@<its destination>; ours is inbound.
            a_spi, a_dst, b_spi = m.group(3), m.group(4), m.group(5)
            if a_dst == host_addr:
                esp[int(m.group(1))] = (a_spi, b_spi)  # (in, out)
            else:
                esp[int(m.group(1))] = (b_spi, a_spi)
            continue
        m = _IKE_ALG_RE.match(line)
        if m and m.group(1) == name:
            ike_alg = m.group(2)
            continue
        m = _ESP_ALG_RE.match(line)
        if m and m.group(1) == name:
            esp_alg = m.group(2)
    if not ike or (want is not None and want not in ike):
        return None
    serial = max(ike) if want is None else want
    st, desc = ike[serial]
    encr, integ, prf, dh = split_libreswan_ike_alg(ike_alg)
    view = IkeView(
        name=name, state=st,
        established=_established(st, desc),
        encr=encr, integ=integ, prf=prf, dh=dh, raw=text, serial=serial,
    )  # fmt: skip
    c_encr, c_integ = split_libreswan_esp_alg(esp_alg)
    for cs, (cst, cdesc, parent) in sorted(child.items()):
        if parent not in (None, serial):
            continue
        spi_in, spi_out = esp.get(cs, ("", ""))
        installed = _established(cst, cdesc)
        view.children.append(ChildView(
            name=f"#{cs}", state=cst, installed=installed,
            spi_in=_hex(spi_in, 8), spi_out=_hex(spi_out, 8), encr=c_encr, integ=c_integ,
        ))  # fmt: skip
    return view


def pluto_ike_serials(name: str, text: str) -> list[int]:
    """The state numbers of every IKE SA of `name` in `whack --status`/--showstates text."""
    out = []
    for line in text.splitlines():
        m = _STATE_RE.match(re.sub(r"^\d{3} ", "", line.strip()))
        if m and m.group(2) == name and not re.search(r"(?:IKE|ISAKMP) SA #(\d+)", m.group(6)):
            out.append(int(m.group(1)))
    return sorted(out)


def _established(st: str, desc: str) -> bool:
    return "ESTABLISHED" in st or desc.startswith("established")


def split_libreswan_ike_alg(text: str) -> tuple[str, str | None, str, str]:
    """'AES_CBC_256-HMAC_SHA2_256-MODP2048' -> (AES_CBC_256, HMAC_SHA2_256_128, HMAC_SHA2_256, MODP2048).

    Libreswan prints encr-prf-dh for IKE; with a non-AEAD cipher the integrity is
    the PRF's HMAC truncated to half (all it negotiates by default).
    """
    if not text:
        return ("", None, "", "")
    parts = text.split("-")
    encr = canon_encr(parts[0])
    prf = canon_prf(parts[1]) if len(parts) > 1 else ""
    dh = canon_dh(parts[-1]) if len(parts) > 2 else ""
    integ = None if is_aead(encr) else _integ_for_prf(prf)
    return (encr, integ, prf, dh)


def _integ_for_prf(prf: str) -> str | None:
    return {
        "HMAC_SHA2_256": "HMAC_SHA2_256_128", "HMAC_SHA2_384": "HMAC_SHA2_384_192",
        "HMAC_SHA2_512": "HMAC_SHA2_512_256", "HMAC_SHA1": "HMAC_SHA1_96",
    }.get(prf)  # fmt: skip


def _is_dh(name: str) -> bool:
    return re.fullmatch(r"(?:DH|MODP|ECP_?|CURVE)\w*?\d+", name.upper()) is not None


def esp_alg_dh(text: str) -> str:
    """The PFS group at the end of an ESP algorithm text ('AES_GCM_16_256-NONE-DH19'), or ""."""
    parts = text.split("-")
    return canon_dh(parts[-1]) if len(parts) > 1 and _is_dh(parts[-1]) else ""


def split_libreswan_esp_alg(text: str) -> tuple[str, str | None]:
    """'AES_CBC_256-HMAC_SHA2_256_128' -> (AES_CBC_256, HMAC_SHA2_256_128); AEAD '...-NONE'."""
    if not text:
        return ("", None)
    parts = text.split("-")
    if len(parts) > 1 and _is_dh(parts[-1]):
        parts = parts[:-1]
    return (canon_encr(parts[0]), canon_integ(parts[1]) if len(parts) > 1 else None)


# plutodebug=base: '| entry state hash_table_entries.ike_spis@0x.. "interop" #2: 72 f1 .. 8d added to hash table ...'
_LOG_SPIS_RE = re.compile(
    r'ike_spis@\S+ "([^"]+)"\S* #(\d+): ((?:[0-9a-f]{2}\s+){15}[0-9a-f]{2}) added to hash table'
)
_LOG_ALGS_RE = re.compile(r"\{cipher=(\S+) integ=(\S+) prf=(\S+) group=(\S+)\}")
_LOG_CHILD_RE = re.compile(r"\{ESP(?:/\S+)?=>0x([0-9a-f]+) <0x([0-9a-f]+) xfrm=(\S+)")


def enrich_from_pluto_log(view: IkeView, log: str) -> IkeView:
    """Fill what `--status` lacks from the log's 'established' lines.

    '#1: established IKE SA; ... {cipher=AES_CBC_256 integ=HMAC_SHA2_256_128 prf=HMAC_SHA2_256 group=MODP2048}'
    '#2: ... established Child SA ... {ESP=>0x1234abcd <0x5678ef01 xfrm=AES_CBC_256-HMAC_SHA2_256_128 ...}'
    """
    serial = view.serial
    for m in _LOG_SPIS_RE.finditer(log):
        if m.group(1) == view.name and int(m.group(2)) == serial:
            spis = "".join(m.group(3).split())
            if spis[16:] != "0" * 16:
                view.spi_i, view.spi_r = spis[:16], spis[16:]
    for m in _LOG_ALGS_RE.finditer(log):
        cipher, integ, prf, group = m.groups()
        view.encr = view.encr or canon_encr(cipher)
        view.integ = view.integ or canon_integ(integ)
        view.prf = view.prf or canon_prf(prf)
        view.dh = view.dh or canon_dh(group)
    for m in _LOG_CHILD_RE.finditer(log):
        out_spi, in_spi, xfrm = m.groups()
        encr, integ = split_libreswan_esp_alg(xfrm)
        for c in view.children:
            if not c.spi_in and not c.spi_out:
                c.spi_in, c.spi_out = _hex(in_spi, 8), _hex(out_spi, 8)
            if c.spi_out == _hex(out_spi, 8):
                c.encr = c.encr or encr
                c.integ = c.integ if c.encr != encr or c.integ else integ
                c.dh = c.dh or esp_alg_dh(xfrm)
    return view


_LOG_EST_RE = re.compile(
    r'"([^"]+)"\S* #(\d+): (?:initiator|responder) established (IKE|Child) SA(?: using #(\d+))?(.*)$'
)
_LOG_DELETE_RE = re.compile(r'"([^"]+)"\S* #(\d+): deleting ')


def view_from_pluto_log(name: str, log: str) -> IkeView | None:
    """The newest established IKE SA and its Child SAs, from pluto's 'established' log lines."""
    ike: dict[int, IkeView] = {}
    deleted: set[int] = set()
    for line in log.splitlines():
        if "| " in line[:40]:
            continue
        m = _LOG_EST_RE.search(line)
        if m and m.group(1) == name:
            serial = int(m.group(2))
            if m.group(3) == "IKE":
                ike[serial] = IkeView(name, "established IKE SA", True, serial=serial)
            elif m.group(4) and int(m.group(4)) in ike:
                c = ChildView(f"#{serial}", "established Child SA", True)
                cm = _LOG_CHILD_RE.search(m.group(5))
                if cm:
                    c.spi_out, c.spi_in = _hex(cm.group(1), 8), _hex(cm.group(2), 8)
                    c.encr, c.integ = split_libreswan_esp_alg(cm.group(3))
                    c.dh = esp_alg_dh(cm.group(3))
                ike[int(m.group(4))].children.append(c)
            continue
        m = _LOG_DELETE_RE.search(line)
        if m and m.group(1) == name:
            deleted.add(int(m.group(2)))
    for v in ike.values():
        v.children = [c for c in v.children if int(c.name[1:]) not in deleted]
    alive = [s for s in ike if s not in deleted]
    if not alive:
        return None
    v = ike[max(alive)]
    return enrich_from_pluto_log(v, log)


class PlutoFamily(Daemon):
    """Shared by Libreswan and pyswan: ipsec.conf, ipsec.secrets, a rundir and whack."""

    def __init__(self, lab: Lab, host: Host, conn: Conn) -> None:
        super().__init__(lab, host, conn)
        self.rundir = self.rt
        self.ctl = self.rundir / "pluto.ctl"
        self.config = self.dir / "ipsec.conf"
        self.secrets = self.dir / "ipsec.secrets"

    setup_lines: ClassVar[str] = ""

    def write_config(self) -> None:
        self.config.write_text(libreswan_conf(self.conn, self.setup_lines, self.kind))
        self.secrets.write_text(libreswan_secrets(self.conn))
        self.secrets.chmod(0o600)

    @abstractmethod
    def whack(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]: ...

    def status_text(self) -> str:
        r = self.whack("--status", check=False, timeout=10)
        return r.stdout + r.stderr

    def trafficstatus(self) -> str:
        r = self.whack("--trafficstatus", check=False, timeout=10)
        return r.stdout + r.stderr

    def status_brief(self) -> str:
        keep = []
        for line in self.status_text().splitlines():
            line = re.sub(r"^\d{3} ", "", line)
            if line.startswith(("#", f'"{self.conn.name}"', "State Information", "IKE SAs", "IPsec SAs")):
                keep.append(line)
        return "\n".join(keep)

    def initiate(self) -> None:
        self.whack("--name", self.conn.name, "--initiate", "--asynchronous", check=False)

    def terminate(self) -> None:
        self.whack("--name", self.conn.name, "--terminate", check=False)

    def final_view(self) -> IkeView | None:
        v = parse_pluto_status(self.conn.name, self.status_text(), self.host.addr)
        if v is not None:
            enrich_from_pluto_log(v, self.log_text())
        return v

    def all_views(self) -> list[IkeView]:
        text, log = self.status_text(), self.log_text()
        out = []
        for serial in pluto_ike_serials(self.conn.name, text):
            v = parse_pluto_status(self.conn.name, text, self.host.addr, serial)
            if v is not None:
                out.append(enrich_from_pluto_log(v, log))
        return out

    def restart(self) -> None:
        # what the killed pluto left behind: its lock file and control socket
        for stale in ("pluto.pid", "pluto.ctl"):
            (self.rundir / stale).unlink(missing_ok=True)
        super().restart()

    def view(self) -> IkeView | None:
        """While waiting: the state lines only (the full status is long and slow under QEMU)."""
        try:
            r = self.whack("--showstates", check=False, timeout=10)
        except LabError:
            return None
        v = parse_pluto_status(self.conn.name, r.stdout, self.host.addr)
        if v is not None:
            enrich_from_pluto_log(v, self.log_text())
        return v


class Libreswan(PlutoFamily):
    kind = "libreswan"
    label = "Libreswan 4.10"

    setup_lines = "dnssec-enable=no\nikev1-policy=accept\nplutodebug=base"

    def __init__(self, lab: Lab, host: Host, conn: Conn) -> None:
        super().__init__(lab, host, conn)
        self.nssdir = self.rt / "nss"

    def whack(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run([LIBRESWAN_IPSEC, "whack", "--ctlsocket", str(self.ctl), *args],
                        check=check, timeout=timeout)  # fmt: skip

    def start(self) -> None:
        self.write_config()
        self.nssdir.mkdir(exist_ok=True)
        if not (self.nssdir / "cert9.db").exists():
            self.run([LIBRESWAN_IPSEC, "initnss", "--nssdir", str(self.nssdir)])
        if self.conn.suite.cert_kind:
            self.write_credentials()
        self.spawn([
            LIBRESWAN_IPSEC, "pluto", "--nofork", "--stderrlog",
            "--config", self.config, "--secretsfile", self.secrets,
            "--rundir", self.rundir, "--nssdir", self.nssdir, "--ipsecdir", self.dir,
        ])  # fmt: skip
        self.wait_for("control socket", self.ctl.exists)
        self.whack("--listen")

    def write_credentials(self) -> None:
        """The end's key and certificate (PKCS#12) and the trusted CA into the NSS database."""
        cred, db = self.conn.local_cred, f"sql:{self.nssdir}"
        p12 = self.dir / f"{cred.nick}.p12"
        write_private(p12, cred.p12(lab_pki().ca))
        ca = self.dir / f"{CA_NICK}.pem"
        ca.write_bytes(lab_pki().ca_pem())
        self.run(["certutil", "-A", "-d", db, "-n", CA_NICK, "-t", "CT,,", "-i", ca])
        self.run(["pk12util", "-i", p12, "-d", db, "-W", P12_PASSWORD, "-K", ""])

    def load(self) -> None:
        self.run([LIBRESWAN_IPSEC, "auto", "--ctlsocket", str(self.ctl), "--config",
                  str(self.config), "--add", self.conn.name])  # fmt: skip

    def rekey_ike(self) -> None:
        self.whack("--name", self.conn.name, "--rekey-ike")

    def rekey_child(self) -> None:
        self.whack("--name", self.conn.name, "--rekey-ipsec")  # 4.10's name for --rekey-child

    def down(self) -> None:
        self.run([LIBRESWAN_IPSEC, "auto", "--ctlsocket", str(self.ctl), "--config",
                  str(self.config), "--down", self.conn.name])  # fmt: skip


def pyswan_env() -> dict[str, str]:
    """The environment for pyswan's programs: bytecode cached outside the repository.

    Without a cache every pluto/whack/ipsec start compiles pyswan from source, which
    costs about a second here and many under QEMU; the guest sees the host's cache.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.environ.get("PYSWAN_INTEROP_PYCACHE", str(PYCACHE)))
    return env


class PySwan(PlutoFamily):
    kind = "pyswan"
    label = "pyswan"

    setup_lines = "plutodebug=base"

    def __init__(self, lab: Lab, host: Host, conn: Conn, kernel: str = "memory") -> None:
        super().__init__(lab, host, conn)
        self.kernel = kernel

    def whack(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run([VENV_BIN / "whack", "--ctlsocket", str(self.ctl), *args],
                        check=check, timeout=timeout, env=pyswan_env())  # fmt: skip

    def ipsec(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run([VENV_BIN / "ipsec", "--rundir", str(self.rundir), *args],
                        check=check, timeout=timeout, env=pyswan_env())  # fmt: skip

    def write_credentials(self) -> None:
        """The end's certificate and key, and the CA, in the store under --ipsecdir."""
        cred = self.conn.local_cred
        for sub in ("certs", "cacerts", "private", "crls"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "certs" / f"{cred.nick}.pem").write_bytes(cred.cert_pem())
        (self.dir / "cacerts" / f"{CA_NICK}.pem").write_bytes(lab_pki().ca_pem())
        write_private(self.dir / "private" / f"{cred.nick}.pem", cred.key_pem())

    def start(self) -> None:
        self.write_config()
        if self.conn.suite.cert_kind:
            self.write_credentials()
        self.spawn([
            VENV_BIN / "pluto", "--nofork", "--config", self.config, "--secretsfile", self.secrets,
            "--rundir", self.rundir, "--kernel", self.kernel, "--logfile", self.log_path(),
            "--ipsecdir", self.dir,
        ], env=pyswan_env())  # fmt: skip
        self.wait_for("control socket", self.ctl.exists, timeout=20)

    def load(self) -> None:
        self.ipsec("--config", str(self.config), "add", self.conn.name)

    def initiate(self) -> None:
        self.ipsec("--asynchronous", "up", self.conn.name, check=False)

    def rekey_ike(self) -> None:
        self.ipsec("whack", "--name", self.conn.name, "--rekey-ike")

    def rekey_child(self) -> None:
        self.ipsec("whack", "--name", self.conn.name, "--rekey-child")

    def down(self) -> None:
        self.ipsec("whack", "--name", self.conn.name, "--down")

    # Polling uses whack --status (inherited: stdlib-only, quick to start); the final
    # look goes through the `ipsec` front end, as a user would type it.
    def final_status(self) -> str:
        r = self.ipsec("status", check=False, timeout=30)
        return r.stdout + r.stderr

    def trafficstatus(self) -> str:
        r = self.ipsec("trafficstatus", check=False, timeout=30)
        return r.stdout + r.stderr

    def final_view(self) -> IkeView | None:
        v = parse_pluto_status(self.conn.name, self.final_status(), self.host.addr)
        if v is not None:
            enrich_from_pluto_log(v, self.log_text())
        return v

    def view(self) -> IkeView | None:
        """While waiting: read the log instead of starting a status client every time.

        Each Python start costs seconds under QEMU; the verdict uses final_view().
        """
        return view_from_pluto_log(self.conn.name, self.log_text())


DAEMONS: dict[str, type[Daemon]] = {"strongswan": StrongSwan, "libreswan": Libreswan, "pyswan": PySwan}


# ----------------------------------------------------------------------------- the wire

IKE_EXCHANGES = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL",
                 2: "MAIN", 4: "AGGRESSIVE", 5: "INFO_V1", 32: "QUICK"}  # fmt: skip


@dataclass
class Packet:
    """One IKE or ESP datagram seen on the wire (from a pcap)."""

    time: float
    src: str
    dst: str
    kind: str  # "ike" or "esp"
    sport: int = 0
    dport: int = 0
    spi_i: str = ""  # IKE: initiator/responder SPIs, 16 hex digits
    spi_r: str = ""
    exchange: str = ""
    response: bool = False
    esp_spi: str = ""  # ESP: 8 hex digits
    msgid: int = -1  # IKE: the Message ID

    def __str__(self) -> str:
        if self.kind == "esp":
            return f"{self.src}->{self.dst} ESP spi={self.esp_spi}"
        return (f"{self.src}:{self.sport}->{self.dst}:{self.dport} {self.exchange} "
                f"{'response' if self.response else 'request'} {self.spi_i}:{self.spi_r}")  # fmt: skip


def read_pcap(path: Path) -> list[Packet]:
    """IKE and ESP packets from a classic pcap file (Ethernet or Linux cooked capture)."""
    import struct

    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    offset, packets = 24, []
    while offset + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        t = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked v1
            ip = frame[16:] if frame[14:16] == b"\x08\x00" else b""
        elif linktype == 276:  # Linux cooked v2
            ip = frame[20:] if frame[0:2] == b"\x08\x00" else b""
        elif linktype == 101:  # raw IP
            ip = frame
        else:
            continue
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0x0F) * 4
        proto = ip[9]
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        body = ip[ihl:]
        if proto == 50 and len(body) >= 4:
            packets.append(Packet(t, src, dst, "esp", esp_spi=body[:4].hex()))
            continue
        if proto != 17 or len(body) < 8:
            continue
        sport, dport = struct.unpack(">HH", body[:4])
        payload = body[8:]
        if 4500 in (sport, dport):
            if payload == b"\xff":  # NAT-T keepalive
                continue
            if payload[:4] != b"\x00\x00\x00\x00":  # UDP-encapsulated ESP
                if len(payload) >= 4:
                    packets.append(Packet(t, src, dst, "esp", sport, dport, esp_spi=payload[:4].hex()))
                continue
            payload = payload[4:]
        if len(payload) < 28:
            continue
        packets.append(Packet(
            t, src, dst, "ike", sport, dport,
            spi_i=payload[0:8].hex(), spi_r=payload[8:16].hex(),
            exchange=IKE_EXCHANGES.get(payload[18], str(payload[18])),
            response=bool(payload[19] & 0x20), msgid=struct.unpack(">I", payload[20:24])[0],
        ))  # fmt: skip
    return packets


class Capture:
    """tcpdump on one namespace's interface, writing a pcap while a scenario runs."""

    def __init__(self, lab: Lab, host: Host, name: str = "wire",
                 filter: str = "udp port 500 or udp port 4500 or esp") -> None:  # fmt: skip
        self.lab = lab
        self.host = host
        self.pcap = lab.workdir / f"{name}-{host.role}.pcap"
        self.log = lab.workdir / f"{name}-{host.role}.tcpdump.log"
        self.filter = filter
        self.proc: Process | None = None

    def start(self) -> Capture:
        out = open(self.log, "wb")  # noqa: SIM115 - the child keeps it
        argv = [*self.host.ns.prefix(), "tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "512", "-i", self.host.iface,
                "-w", str(self.pcap), self.filter]  # fmt: skip
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 preexec_fn=_die_with_parent)  # fmt: skip
        out.close()
        self.proc = Process(f"tcpdump-{self.host.role}", popen, self.log)
        self.lab._processes.append(self.proc)
        deadline = time.monotonic() + 10
        while b"listening on" not in (self.log.read_bytes() if self.log.exists() else b""):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise LabError(f"tcpdump did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        return self

    def stop(self) -> list[Packet]:
        if self.proc is not None and self.proc.alive():
            self.proc.popen.send_signal(signal.SIGINT)
            try:
                self.proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.popen.kill()
        return self.packets()

    def packets(self) -> list[Packet]:
        return read_pcap(self.pcap)


def misdirected_responses(packets: Sequence[Packet]) -> list[str]:
    """IKE responses that do not go back the way their request came (RFC 7296 2.11: to
    the address and port the request came from, from those it was sent to)."""
    out = []
    for i, r in enumerate(packets):
        if r.kind != "ike" or not r.response:
            continue
        # the request: the other way between the same hosts (each end numbers its own)
        want = (r.dst, r.src, r.spi_i, r.spi_r if r.exchange != "IKE_SA_INIT" else "0" * 16,
                r.msgid, r.exchange)
        req = next((q for q in reversed(packets[:i]) if q.kind == "ike" and not q.response
                    and (q.src, q.dst, q.spi_i, q.spi_r, q.msgid, q.exchange) == want), None)  # fmt: skip
        if req is not None and ((r.src, r.sport, r.dst, r.dport)
                                != (req.dst, req.dport, req.src, req.sport)):  # fmt: skip
            out.append(f"{r.exchange} response {r.src}:{r.sport}->{r.dst}:{r.dport} to the request "
                       f"{req.src}:{req.sport}->{req.dst}:{req.dport}")  # fmt: skip
    return out


def ike_auth_spis(packets: Sequence[Packet]) -> set[tuple[str, str]]:
    """(SPIi, SPIr) of every IKEv2 SA whose IKE_AUTH got a response."""
    return {(p.spi_i, p.spi_r) for p in packets
            if p.kind == "ike" and p.response and p.exchange == "IKE_AUTH"}  # fmt: skip


# ----------------------------------------------------------------------------- the lab

D = TypeVar("D", bound=Daemon)


class Lab:
    """Namespaces, daemons and their teardown.  Use as a context manager."""

    def __init__(self, workdir: Path, *, nat: bool = False, tag: str = "") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nat = nat
        self.id = f"{NS_PREFIX}{os.getpid()}-{next(_counter)}{('-' + tag) if tag else ''}"
        self._namespaces: list[Netns] = []
        self._processes: list[Process] = []
        self.daemons: list[Daemon] = []
        # Runtime files (control sockets, NSS databases), removed by close().
        self.rundir = Path(tempfile.mkdtemp(prefix="pyswan-interop-"))
        self.west: Host
        self.east: Host
        self.middle: Netns | None = None

    # -- topology
    def _netns(self, role: str) -> Netns:
        ns = Netns(f"{self.id}-{role}"[:60])
        sh(["ip", "netns", "add", ns.name])
        self._namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def build(self) -> Lab:
        west_ns, east_ns = self._netns("west"), self._netns("east")
        self.west = Host("west", west_ns, "192.0.2.1", "10.1.0.0/24", "10.1.0.1")
        if not self.nat:
            self.east = Host("east", east_ns, "192.0.2.2", "10.2.0.0/24", "10.2.0.1")
            west_ns.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
                       "netns", east_ns.name)  # fmt: skip
        else:
            mid = self.middle = self._netns("nat")
            self.east = Host("east", east_ns, "198.51.100.2", "10.2.0.0/24", "10.2.0.1")
            self.west.nat_addr = "198.51.100.254"
            self.west.gateway = "192.0.2.254"
            west_ns.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
                       "netns", mid.name)  # fmt: skip
            mid.ip("link", "add", "veth1", "type", "veth", "peer", "name", "veth0",
                   "netns", east_ns.name)  # fmt: skip
            mid.ip("addr", "add", "192.0.2.254/24", "dev", "veth0")
            mid.ip("addr", "add", "198.51.100.254/24", "dev", "veth1")
            mid.ip("link", "set", "veth0", "up")
            mid.ip("link", "set", "veth1", "up")
            mid.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
            mid.run(["nft", "-f", "-"], input=(
                "table ip lab {\n"
                " chain post { type nat hook postrouting priority srcnat; policy accept;\n"
                '  oifname "veth1" masquerade\n }\n}\n'
            ))  # fmt: skip
        for h, prefix in ((self.west, 24), (self.east, 24)):
            h.ns.ip("addr", "add", f"{h.addr}/{prefix}", "dev", h.iface)
            h.ns.ip("link", "set", h.iface, "up")
            # The client subnet: an address on lo (the host kernel has no dummy driver).
            h.ns.ip("addr", "add", f"{h.client}/32", "dev", "lo")
        if self.nat:
            self.west.ns.ip("route", "add", "default", "via", self.west.gateway)
        return self

    def __enter__(self) -> Lab:
        try:
            return self.build()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- daemons
    def start(self, cls: type[D], host: Host, conn: Conn, **kw: object) -> D:
        d = cls(self, host, conn, **kw)  # type: ignore[arg-type]
        self.daemons.append(d)
        d.start()
        d.load()
        return d

    def report(self, tail: int = 120) -> str:
        return "\n".join(d.report(tail) for d in self.daemons)

    def close(self) -> None:
        """Kill every process and delete every namespace; never raises."""
        for d in reversed(self.daemons):  # the initiator (started last) says goodbye first
            try:
                d.stop()
            except Exception:  # noqa: BLE001
                pass
        for p in self._processes:
            if p.alive():
                p.popen.kill()
                try:
                    p.popen.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self._namespaces):
            # Anything still inside (a helper a daemon forked) was started by this lab.
            for pid in sh(["ip", "netns", "pids", ns.name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(["ip", "netns", "del", ns.name], check=False)
        self._namespaces.clear()
        shutil.rmtree(self.rundir, ignore_errors=True)

    # -- waiting
    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 20) -> None:
        timeout *= TIME_SCALE
        deadline = time.monotonic() + timeout
        while True:
            for d in self.daemons:
                if d.proc is not None and not d.proc.alive():
                    raise NotReady(f"{d.kind} in {d.host.role} exited ({d.proc.popen.returncode}) "
                                   f"while waiting for {what}")  # fmt: skip
            if predicate():
                return
            if time.monotonic() > deadline:
                raise NotReady(f"no {what} after {timeout}s")
            time.sleep(0.2)

    def wait_established(self, *daemons: Daemon, timeout: float = 20) -> list[IkeView]:
        views: list[IkeView | None] = [None] * len(daemons)

        def ready() -> bool:
            for i, d in enumerate(daemons):
                views[i] = d.view()
            return all(v is not None and v.established for v in views)

        self.wait("IKE SA established on " + " and ".join(d.kind for d in daemons), ready, timeout)
        return [v for v in views if v is not None]

    def wait_settled(self, daemons: Sequence[Daemon], predicate: Callable[[list[IkeView]], bool],
                     what: str, timeout: float = 10) -> list[IkeView]:  # fmt: skip
        views: list[IkeView] = []

        def ready() -> bool:
            nonlocal views
            vs = [d.view() for d in daemons]
            if any(v is None for v in vs):
                return False
            views = [v for v in vs if v is not None]
            return predicate(views)

        self.wait(what, ready, timeout)
        return views


# ----------------------------------------------------------------------------- agreement


def disagreements(a: IkeView, b: IkeView, *, check_children: bool = True) -> list[str]:
    """What two ends of one IKE SA see differently (empty when they agree)."""
    problems = []
    if a.spi_i and b.spi_i and (a.spi_i, a.spi_r) != (b.spi_i, b.spi_r):
        problems.append(f"IKE SPIs differ: {a.spi_i}:{a.spi_r} vs {b.spi_i}:{b.spi_r}")
    for attr in ("encr", "integ", "prf", "dh"):
        va, vb = getattr(a, attr), getattr(b, attr)
        if va and vb and va != vb:
            problems.append(f"IKE {attr} differs: {va} vs {vb}")
    if check_children:
        ca = [c for c in a.children if c.installed]
        cb = [c for c in b.children if c.installed]
        if len(ca) != len(cb):
            problems.append(f"installed Child SAs: {len(ca)} vs {len(cb)}")
        for x in ca:
            match = [y for y in cb if y.spi_in == x.spi_out and y.spi_out == x.spi_in]
            if not match:
                problems.append(f"no Child SA matching in={x.spi_in} out={x.spi_out} on the other side")
                continue
            y = match[0]
            if (x.encr, x.integ) != (y.encr, y.integ):
                problems.append(f"Child algorithms differ: {x.encr}/{x.integ} vs {y.encr}/{y.integ}")
    return problems


def expectation_failures(view: IkeView, suite: Suite) -> list[str]:
    problems = []
    if suite.expect_ike and view.algorithms() != suite.expect_ike:
        problems.append(f"{view.name}: IKE algorithms {view.algorithms()} != {suite.expect_ike}")
    if suite.expect_esp:
        for c in view.children:
            if c.installed and (c.encr, c.integ) != suite.expect_esp:
                problems.append(f"{view.name} child {c.name}: {(c.encr, c.integ)} != {suite.expect_esp}")
    return problems


def iter_cells() -> Iterator[tuple[str, str, str]]:
    """(suite, peer, pyswan role) for every pyswan cell of the matrix."""
    for suite in ("psk-default", "aes256-sha256-modp2048", "chacha20poly1305-x25519", *CERT_SUITES):
        for peer in ("strongswan", "libreswan"):
            for role in ("initiator", "responder"):
                yield suite, peer, role
