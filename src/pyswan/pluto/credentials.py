"""What the IKE engines ask pluto for: pre-shared keys from ipsec.secrets (indexed, with
Libreswan's precedence), our keys and the peer's (``pkauth``), certificate requests, and
addresses from the pools (the glue's ``lease``)."""

from __future__ import annotations

from typing import Any

from ..ike.constants import IdType
from ..ike.ikev2 import Identity, Policy
from . import pkauth


class _Credentials:
    """PSKs from pluto's ipsec.secrets, indexed so that a lookup does not scan every
    entry: only entries naming one of the two IDs (or none, or %any) are scored, by
    ``Secrets.find`` itself, so Libreswan's precedence is kept exactly."""

    def __init__(self, pluto: Any) -> None:
        self.p = pluto
        self._secrets: Any = None
        self._by_id: dict[str, list[Any]] = {}
        self._wild: list[Any] = []
        self._order: dict[int, int] = {}
        self._cache: dict[tuple, bytes | None] = {}
        self._pairs: dict[tuple, Any] = {}  # (exact key, exact key) -> first entry naming both

    def _reindex(self, secrets: Any) -> None:
        from ..auto.secrets import _is_any

        self._secrets = secrets
        self._by_id, self._wild, self._order, self._cache = {}, [], {}, {}
        self._pairs = {}
        for n, entry in enumerate(getattr(secrets, "entries", ())):
            if entry.kind != "PSK":
                continue
            self._order[id(entry)] = n
            if not entry.ids or any(_is_any(i) for i in entry.ids):
                self._wild.append(entry)
            for i in entry.ids:
                self._by_id.setdefault(_norm(i), []).append(entry)
            # an entry naming both IDs scores highest of all (secrets.find): the first such
            # entry wins, so it can be looked up directly when the IDs compare exactly
            if any(_is_any(i) for i in entry.ids):
                continue
            keys = [_exact(i) for i in entry.ids]
            for a in keys:
                for b in keys:
                    if a is not None and b is not None and a != b:
                        self._pairs.setdefault((a, b), entry)

    # public-key authentication (pkauth.py); ``policy.handle`` is the connection
    def local_key(self, policy: Policy) -> Any:
        conn = policy.handle
        return pkauth.local_key(self.p.certstore, conn.this, conn.config)

    def peer_key(self, policy: Policy, peer: Identity, certs: list[bytes]) -> Any:
        conn = policy.handle
        return pkauth.peer_key(self.p.certstore, conn.that, conn.config, peer, certs)

    def cert_request(self, policy: Policy, initiator: bool) -> bytes | None:
        return pkauth.cert_request(self.p.certstore, policy.handle.that, initiator)

    def lease(self, policy: Policy, peer: Identity, version: int) -> tuple[Any, str] | None:
        """AddressLeases: the daemon's address pools (IkeGlue.lease)."""
        return self.p.engine.lease(policy, peer, version)

    def psk(self, local: Identity, remote: Identity | None) -> bytes | None:
        secrets = self.p.secrets
        if secrets is None:
            return None
        if secrets is not self._secrets:
            self._reindex(secrets)
        key = (local.key, remote.key if remote is not None else None)
        if key in self._cache:
            return self._cache[key]
        fast = self._pairs.get((_exact_identity(local), _exact_identity(remote))) \
            if remote is not None else None
        if fast is not None:
            value = fast.secret.reveal()
            self._cache[key] = value
            return value
        from ..auto.secrets import Secrets

        lid = _to_id(local)
        rid = _to_id(remote) if remote is not None else None
        found: dict[int, Any] = {id(e): e for e in self._wild}
        for i in (lid, rid):
            if i is not None:
                for e in self._by_id.get(_norm(i), ()):
                    found[id(e)] = e
        subset = sorted(found.values(), key=lambda e: self._order[id(e)])
        proxy = type("_Subset", (), {"entries": subset})()
        entry = Secrets.find(proxy, "PSK", lid, rid)  # type: ignore[arg-type]
        value = entry.secret.reveal() if entry is not None else None
        self._cache[key] = value
        return value


def _config_id(peer: Identity) -> Any:
    """A received ID as an ipsec.conf ID for an instance's end (simple kinds only: a DN
    stays %any there, the engine policy carries the exact ID)."""
    if peer.id_type in (IdType.FQDN, IdType.RFC822_ADDR, IdType.IPV4_ADDR, IdType.IPV6_ADDR,
                        IdType.KEY_ID):
        return _to_id(peer)
    return None


def _exact(i: Any) -> tuple | None:
    """A key that is equal exactly when secrets' same_id() says the IDs match (for the
    kinds where that is simple), else None."""
    if i.kind in (2, 3):  # FQDN, USER_FQDN: case-insensitive, trailing dot ignored
        return (i.kind, str(i.name).lower().rstrip("."))
    if i.kind in (1, 5) and i.addr is not None and i.dns_name is None:
        return (i.kind, i.addr.packed)
    return None


def _exact_identity(identity: Identity) -> tuple | None:
    kind = identity.id_type
    if kind in (IdType.FQDN, IdType.RFC822_ADDR):
        return (int(kind), identity.data.decode(errors="replace").lower().rstrip("."))
    if kind in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return (int(kind), identity.data)
    return None


def _norm(i: Any) -> str:
    """A loose key for an ID (same_id never matches IDs with different keys)."""
    name = i.dns_name or (str(i.addr) if i.addr is not None else str(i.name))
    return name.lower().rstrip(".")


_IDS: dict[tuple[int, bytes], Any] = {}


def _to_id(identity: Identity) -> Any:
    got = _IDS.get(identity.key)
    if got is None:
        if len(_IDS) > 4096:
            _IDS.clear()
        got = _IDS[identity.key] = _make_id(identity)
    return got


def _make_id(identity: Identity) -> Any:
    from ..auto.values import ID, parse_id

    if identity.id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return parse_id(identity.text)
    if identity.id_type == IdType.FQDN:
        return ID(2, identity.text, identity.data.decode(errors="replace"))
    if identity.id_type == IdType.RFC822_ADDR:
        return ID(3, identity.text, identity.data.decode(errors="replace"))
    if identity.id_type == IdType.KEY_ID:
        return ID(11, identity.text, identity.data)
    return ID(identity.id_type, identity.text, identity.text)
