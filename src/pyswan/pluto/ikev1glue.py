"""IKEv1 beside IKEv2 in pluto.

The IKEv1 engine (``pyswan.ike.ikev1``) has the IKEv2 engine's entry points and returns
the same actions, so the IKE glue drives both through :class:`Engines`: a datagram goes
to the engine its ISAKMP header's major version names, a timer or request to the engine
that owns the SA's serial (pluto numbers states once for both), anything else to the
IKEv2 engine.  This module also turns a ``keyexchange=ikev1`` connection into the
engine's :class:`V1Policy` and answers the engine's XAUTH questions from pluto's
secrets and ``xauthby=``.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..ike.ikev1 import Engine as V1Engine
from ..ike.ikev1 import V1Policy
from ..ike.ikev2 import Engine as V2Engine
from ..ike.ikev2 import Policy
from ..ike.proposals import ProposalError, parse_proposals

_POLICY_FIELDS = tuple(f.name for f in fields(Policy))
_INVALID_MAJOR_VERSION = 5  # RFC 2408 notify


class Engines:
    """The IKEv2 engine with the IKEv1 engine beside it, routed per datagram/serial."""

    def __init__(self, v2: V2Engine, v1: V1Engine, ikev1_policy: Any = lambda: "accept"
                 ) -> None:
        self.v2, self.v1 = v2, v1
        self.ikev1_policy = ikev1_policy  # config setup ikev1-policy=, read per packet

    def __getattr__(self, name: str) -> Any:  # config, cookies, redirect, ...: IKEv2's
        return getattr(self.v2, name)

    # read per datagram / per SA event: direct, not through __getattr__'s failed lookup
    @property
    def config(self) -> Any:
        return self.v2.config

    @property
    def ike_sas(self) -> Any:
        return self.v2.ike_sas

    def owner(self, serial: int) -> Any:
        v1 = self.v1
        return v1 if serial in v1.isakmp_sas or serial in v1.children else self.v2

    def all_ike_sas(self) -> list[Any]:
        return [*self.v2.ike_sas.values(), *self.v1.isakmp_sas.values()]

    # -- entry points ------------------------------------------------------------------
    def receive(self, data: bytes, local: Any, remote: Any, now: float) -> list[Any]:
        # byte 17 of both headers is the version: major 1 (ISAKMP) or 2
        if len(data) > 17 and data[17] >> 4 == 1:
            policy = self.ikev1_policy()
            if policy == "accept":
                return self.v1.receive(data, local, remote, now)
            return self._refuse_v1(policy, data, local, remote, now)
        return self.v2.receive(data, local, remote, now)

    def _refuse_v1(self, policy: str, data: bytes, local: Any, remote: Any, now: float
                   ) -> list[Any]:
        """ikev1-policy=drop: ignore IKEv1 silently; reject: answer
        INVALID_MAJOR_VERSION in the clear (as Libreswan's demux does), both logged with
        the unauthenticated-packet rate limit."""
        out = self.v2.note_unsecured(
            f"packet from {remote[0]}:{remote[1]}: " + (
                "ignoring IKEv1 packet as global policy is set to silently drop all IKEv1 "
                "packets" if policy != "reject" else
                "rejecting IKEv1 packet as global policy is set to reject all IKEv1 packets"),
            now)
        if policy == "reject" and len(data) >= 28:
            out += self.v1.clear_notify(local, remote, data[0:8], data[8:16],
                                        _INVALID_MAJOR_VERSION)
        return out

    def initiate(self, policy: Policy, now: float, remote: Any = None) -> list[Any]:
        engine = self.v1 if isinstance(policy, V1Policy) else self.v2
        return engine.initiate(policy, now, remote)

    def initiate_child(self, policy: Policy, ike_serial: int, now: float) -> list[Any]:
        return self.owner(ike_serial).initiate_child(policy, ike_serial, now)

    def timer(self, serial: int, event: str, now: float) -> list[Any]:
        return self.owner(serial).timer(serial, event, now)

    def child_installed(self, serial: int, error: str | None, now: float) -> list[Any]:
        return self.owner(serial).child_installed(serial, error, now)

    def delete_ike(self, serial: int, now: float, *, notify: bool = True,
                   wait: bool = False) -> list[Any]:
        return self.owner(serial).delete_ike(serial, now, notify=notify, wait=wait)

    def delete_child(self, serial: int, now: float, *, notify: bool = True) -> list[Any]:
        return self.owner(serial).delete_child(serial, now, notify=notify)

    def rekey_child(self, serial: int, now: float) -> list[Any]:
        return self.owner(serial).rekey_child(serial, now)

    def rekey_ike(self, serial: int, now: float) -> list[Any]:
        return self.owner(serial).rekey_ike(serial, now)

    def shutdown(self, now: float, *, notify: bool = True) -> list[Any]:
        return [*self.v2.shutdown(now, notify=notify), *self.v1.shutdown(now, notify=notify)]

    def sa(self, serial: int) -> Any:
        return self.v2.sa(serial) or self.v1.sa(serial)


def v1_policy(base: Policy, conn: Any, pools: Any = None) -> V1Policy:
    """The IKEv1 engine's view of a connection: the IKEv2 policy's fields with ike=/esp=
    parsed for IKEv1 (its defaults differ) and the IKEv1-only settings."""
    cfg = conn.config
    this, that = conn.this, conn.that
    esp_text = cfg.esp if cfg.esp is not None else cfg.phase2alg
    try:
        ike = parse_proposals("ike", cfg.ike, ike_version=1)
        esp = parse_proposals("esp", esp_text, ike_version=1, pfs=cfg.pfs)
    except ProposalError as e:
        raise ValueError(str(e)) from None
    values = {name: getattr(base, name) for name in _POLICY_FIELDS}
    values.update(ike=ike, esp=esp)
    lease = None
    pool = getattr(that, "addresspool", None)
    if pool and getattr(this, "modecfgserver", False):
        lease = _first_address(pool)
    values.update(
        aggressive=bool(getattr(cfg, "aggressive", False)),
        dpd_timeout=float(getattr(cfg, "dpdtimeout", 0.0) or 120.0),
        nat_keepalive=bool(getattr(cfg, "nat_keepalive", True)),
        xauth_server=bool(getattr(this, "xauthserver", False)),
        xauth_client=bool(getattr(this, "xauthclient", False)),
        xauth_username=str(getattr(this, "username", None) or ""),
        modecfg_server=bool(getattr(this, "modecfgserver", False)),
        modecfg_client=bool(getattr(this, "modecfgclient", False)),
        modecfg_pull=bool(getattr(cfg, "modecfgpull", False)),
        modecfg_lease=lease,
        modecfg_dns=tuple(str(a) for a in getattr(cfg, "modecfgdns", ()) or ()),
        modecfg_domains=tuple(getattr(cfg, "modecfgdomains", ()) or ()),
        modecfg_banner=str(getattr(cfg, "modecfgbanner", None) or ""),
        # RSA signatures: CERT/CR decisions Libreswan makes from the ends (ikev1/phase1.py)
        peer_preloaded=_preloaded(that),
        peer_ca=_ca_der(getattr(that, "ca", None)),
        local_cert=bool(getattr(this, "cert", None) or getattr(this, "ckaid", None)),
    )
    del pools
    return V1Policy(**values)


def _preloaded(end: Any) -> bool:
    """Is the peer's key known without its CERT payloads (``rightcert=``, a raw
    ``rightrsasigkey=``, ``rightckaid=``)?  Then Libreswan sends it no CR."""
    if getattr(end, "cert", None) or getattr(end, "ckaid", None):
        return True
    raw = getattr(end, "pubkey", None) if getattr(end, "pubkey_keyword", None) else None
    raw = raw or getattr(end, "rsasigkey", None)
    return bool(raw) and not str(raw).startswith("%")


def _ca_der(ca: Any) -> bytes | None:
    """``rightca=`` as the DER DN a CR names: None for %same (also implied when unset:
    the engine names our certificate's issuer), b"" for %any."""
    if not isinstance(ca, str) or ca in ("", "%same"):
        return None
    if ca == "%any":
        return b""
    from ..ike.x509dn import atodn

    try:
        return atodn(ca)
    except ValueError:
        return b""


def _first_address(pool: Any) -> str | None:
    """The address an IKEv1 ModeCfg server hands out from ``rightaddresspool=`` (one
    peer per connection instance, as a permanent IKEv1 connection has)."""
    first = pool[0] if isinstance(pool, (list, tuple)) else pool
    start = getattr(first, "start", None) or getattr(first, "first", None)
    if start is not None:
        return str(start)
    text = str(first).split("-")[0].split("/")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class V1Credentials:
    """The IKEv1 engine's credentials: pluto's (PSKs, keys) plus XAUTH: a client's password from ipsec.secrets
    (``@user : XAUTH "password"``), a server's check per the connection's ``xauthby=``:
    ``alwaysok``, or
    ``file`` (``<ipsecdir>/passwd``: ``user:password[:connection]`` lines, the password
    in the clear or crypt(3)-hashed)."""

    def __init__(self, pluto: Any, base: Any) -> None:
        self.p = pluto
        self.base = base  # PSKs and keys: the IKEv2 engine's credentials

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def xauth_password(self, user: str) -> bytes | None:
        secrets = self.p.secrets
        if secrets is None or not user:
            return None
        try:
            entry = secrets.find("XAUTH", user if user.startswith("@") else f"@{user}")
        except ValueError:
            return None
        return entry.secret.reveal() if entry is not None else None

    def xauth_check(self, user: str, password: bytes, policy: Any = None) -> bool:
        conn = getattr(policy, "handle", None)
        method = str(getattr(getattr(conn, "config", None), "xauthby", "file") or "file")
        if method == "alwaysok":
            return True
        if method != "file":
            self.p.log.log(f"XAUTH: xauthby={method} is not supported; refusing '{user}'")
            return False
        path = Path(getattr(self.p.opts, "ipsecdir", "/etc/ipsec.d") or "/etc/ipsec.d") / "passwd"
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            self.p.log.log(f"XAUTH: cannot read {path}: {e.strerror}")
            return False
        for line in lines:
            parts = line.strip().split(":")
            if len(parts) < 2 or parts[0] != user or line.lstrip().startswith("#"):
                continue
            return _password_matches(parts[1], password)
        return False


def _password_matches(stored: str, given: bytes) -> bool:
    text = given.decode(errors="replace")
    if stored.startswith("$"):
        try:
            import crypt  # noqa: PLC0415 - deprecated module, only for hashed entries
        except ImportError:
            return False
        return hmac.compare_digest(crypt.crypt(text, stored) or "", stored)
    return hmac.compare_digest(stored, text)
