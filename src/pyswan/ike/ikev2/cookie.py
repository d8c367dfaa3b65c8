"""Stateless IKEv2 cookies (RFC 7296 2.6) and the DDoS policy deciding when to demand them.

Cookie = <VersionIDofSecret> | HMAC-SHA2-256(<secret>, Ni | IPi | SPIi).  Libreswan hashes
the same three inputs with SHA2-256 but omits the version ID, so a cookie handed out just
before its hourly secret refresh fails; RFC 7296 suggests the version ID exactly so that
the previous secret can still be honoured for a while, and that is what is done here.

The secret is refreshed every :data:`SECRET_LIFETIME` seconds of the engine's clock (Libreswan's
``EVENT_REINIT_SECRET_DELAY``), lazily when a cookie is made or checked: the engine needs
no timer of its own.  A cookie made with the previous secret is accepted for
:data:`PREVIOUS_GRACE` seconds after the refresh (long enough for the initiator's
retransmissions, whose default timeout is 60s).

DDoS modes (``whack --ddos-busy|--ddos-auto|--ddos-unlimited``, ``ddos-mode=``): busy always
demands a cookie, unlimited never does, auto does once the half-open IKE SAs reach
``ddos-ike-threshold``.  Whatever the mode, new IKE_SA_INIT requests are dropped once
``max-halfopen-ike`` half-open IKE SAs exist (Libreswan's ``drop_new_exchanges()``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from .policy import Endpoint

SECRET_LIFETIME = 3600.0  # EVENT_REINIT_SECRET_DELAY (secs_per_hour)
PREVIOUS_GRACE = 120.0  # how long a cookie of the replaced secret is still good
SECRET_SIZE = 32
MAX_COOKIE = 64  # RFC 7296 2.6: 1..64 octets
COOKIE_SIZE = 1 + 32  # ours: version ID and an HMAC-SHA2-256

BUSY, AUTO, UNLIMITED = "busy", "auto", "unlimited"
DDOS_MODES = (BUSY, AUTO, UNLIMITED)
DEFAULT_THRESHOLD = 25000  # DEFAULT_IKE_SA_DDOS_THRESHOLD
DEFAULT_MAX_HALFOPEN = 50000  # DEFAULT_MAXIMUM_HALFOPEN_IKE_SA


@dataclass(slots=True)
class CookieSecrets:
    """The current secret (with its one-octet version ID) and the one it replaced."""

    rand: Callable[[int], bytes]
    secret: bytes = b""
    version: int = 0
    previous: bytes = b""
    refreshed: float | None = None  # engine time of the last refresh (None: not yet)
    _by_version: dict[int, bytes] = field(default_factory=dict)

    def seed(self, secret: bytes) -> None:
        """Use ``secret`` as the current secret (EngineConfig.cookie_secret)."""
        self.secret = secret
        self._by_version = {self.version: secret}

    def refresh(self, now: float) -> None:
        """Start a new secret now; the old one stays valid for PREVIOUS_GRACE seconds."""
        self.previous = self.secret
        self.version = (self.version + 1) & 0xFF
        self.secret = self.rand(SECRET_SIZE)
        self._by_version = {self.version: self.secret, (self.version - 1) & 0xFF: self.previous}
        self.refreshed = now

    def _tick(self, now: float) -> None:
        if not self.secret:
            self.seed(self.rand(SECRET_SIZE))
        if self.refreshed is None:
            self.refreshed = now
        elif now - self.refreshed >= SECRET_LIFETIME:
            self.refresh(now)

    def make(self, now: float, ni: bytes, addr: Endpoint, spi_i: bytes) -> bytes:
        self._tick(now)
        return bytes((self.version,)) + _mac(self.secret, ni, addr, spi_i)

    def check(self, now: float, cookie: bytes, ni: bytes, addr: Endpoint, spi_i: bytes) -> bool:
        """Is ``cookie`` one we made for this (Ni, IPi, SPIi) with a secret still honoured?"""
        self._tick(now)
        if len(cookie) != COOKIE_SIZE:
            return False
        version = cookie[0]
        secret = self._by_version.get(version)
        if secret is None:
            return False
        if version != self.version and (self.refreshed is None
                                        or now - self.refreshed >= PREVIOUS_GRACE):
            return False  # the replaced secret has had its grace period
        return hmac.compare_digest(cookie[1:], _mac(secret, ni, addr, spi_i))


@dataclass(slots=True)
class LogLimiter:
    """Libreswan's "unsecured message" log limiter: the first RATE_LIMIT lines about
    unauthenticated packets are logged, then only debugging sees them, until the hourly
    reset (a flood must not fill the disk)."""

    limit: int = 1000  # RATE_LIMIT
    period: float = 3600.0  # RESET_LOG_LIMITER_FREQUENCY
    what: str = "unsecured message"
    count: int = 0
    since: float | None = None

    def admit(self, now: float) -> tuple[bool, list[str]]:
        """May this line be logged?  Plus any limiter lines to log first."""
        notes: list[str] = []
        if self.since is None:
            self.since = now
        elif now - self.since >= self.period:
            if self.count >= self.limit:
                notes.append(f"{self.what} rate limited log reset")
            self.count, self.since = 0, now
        if self.count >= self.limit:
            return False, notes
        self.count += 1
        if self.count == self.limit:
            notes.append(f"{self.what} rate limited log reached limit of {self.limit} entries")
        return True, notes


def _mac(secret: bytes, ni: bytes, addr: Endpoint, spi_i: bytes) -> bytes:
    # IPi only, not the port: an initiator behind a NAT may come back from another port
    return hmac.digest(secret, ni + addr[0].packed + spi_i, hashlib.sha256)


def cookies_required(mode: str, halfopen: int, threshold: int) -> bool:
    """Libreswan's ``require_ddos_cookies()``."""
    if mode == BUSY:
        return True
    return mode == AUTO and halfopen >= threshold


__all__ = ["AUTO", "BUSY", "COOKIE_SIZE", "CookieSecrets", "DDOS_MODES", "LogLimiter", "DEFAULT_MAX_HALFOPEN",
           "DEFAULT_THRESHOLD", "MAX_COOKIE", "PREVIOUS_GRACE", "SECRET_LIFETIME", "UNLIMITED",
           "cookies_required"]
