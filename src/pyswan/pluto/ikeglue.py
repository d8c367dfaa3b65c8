"""The IKE glue: pluto's sockets, timers, kernel, state table and whack, around the
sans-IO IKEv2 engine (``pyswan.ike.ikev2``).

It holds no protocol logic.  It turns connections into engine policies (rebuilt only when
the connection database changes), hands datagrams to the engine, and carries out the
actions the engine returns: sending through the right interface, arming ``loop.call_at``
timers, installing and removing Child SAs through ``pluto.kernel``, keeping
``pluto.states`` and the connections' ``newest_*``/``routing`` in step, and relaying log
lines to the whack that started the negotiation.

Actions are carried out in order.  Those that need the kernel (async) run in one worker
task; while it is busy, later action batches queue behind it so the order is kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..auto.values import Selector as SubnetSelector
from ..ike import ikev1
from ..ike.constants import IdType
from ..ike.ikev1 import V1Policy
from ..ike.ikev1.actions import ModeCfgLease, XauthPrompt
from ..ike.ikev2 import (
    RC_DEBUG,
    ChildEstablished,
    ChildSaKeys,
    EndpointsChanged,
    Engine,
    Identity,
    IkeEstablished,
    InitiateDone,
    InstallChild,
    Log,
    ParentChanged,
    Policy,
    PolicyIndex,
    PolicySwitched,
    RemoveChild,
    SaCreated,
    SaDeleted,
    Selector,
    Send,
    SetTimer,
    StateChanged,
)
from ..ike.ikev2.policy import LeaseError
from ..ike.proposals import ProposalError, parse_proposals
from ..kernel.base import (
    XFRM_INF,
    AuthAlg,
    Encap,
    EncrAlg,
    ExpireEvent,
    KernelError,
    Lifetime,
    SaSpec,
    ipsec_policies,
    reqid_for,
    spd_priority,
)
from ..kernel.base import Selector as KSelector
from ..whack import rc
from . import addresspool, instances, pkauth
from .ikev1glue import Engines, V1Credentials, v1_policy
from .state import State
from .updown import run_updown

_KERNEL_ACTIONS = frozenset({InstallChild, RemoveChild})
_ID_KIND = {1: IdType.IPV4_ADDR, 2: IdType.FQDN, 3: IdType.RFC822_ADDR,
            5: IdType.IPV6_ADDR, 9: IdType.DER_ASN1_DN, 11: IdType.KEY_ID, 13: IdType.NULL}
_V1_PHASE1 = ("aggressive", "xauth_server", "xauth_client", "modecfg_server",
              "modecfg_client")
_REQID_BASE = 16384  # automatic reqids start above IPSEC_MANUAL_REQID_MAX, 4 per connection


class PolicyError(ValueError):
    """A connection the engine cannot use (its ``str()`` is the log line)."""


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


class _LongTimers:
    """Timers far in the future (SA lifetimes: hours away) kept in one-second buckets with
    one event-loop timer per bucket, so that a burst of new SAs does not create thousands
    of asyncio timer handles that are almost never due."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Any) -> None:
        self.loop, self.fire = loop, fire
        self.buckets: dict[int, dict[tuple[int, str], float]] = {}
        self.handles: dict[int, asyncio.TimerHandle] = {}
        self.where: dict[tuple[int, str], int] = {}

    def add(self, key: tuple[int, str], at: float) -> None:
        self.cancel(key)
        slot = int(at) + 1  # never early: the engine ignores callbacks before the deadline
        bucket = self.buckets.get(slot)
        if bucket is None:
            bucket = self.buckets[slot] = {}
            self.handles[slot] = self.loop.call_at(slot, self._run, slot)
        bucket[key] = at
        self.where[key] = slot

    def cancel(self, key: tuple[int, str]) -> None:
        slot = self.where.pop(key, None)
        if slot is None:
            return
        bucket = self.buckets.get(slot)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self.buckets[slot]
                self.handles.pop(slot).cancel()

    def _run(self, slot: int) -> None:
        self.handles.pop(slot, None)
        for key in list(self.buckets.pop(slot, {})):
            self.where.pop(key, None)
            self.fire(*key)

    def clear(self) -> None:
        for handle in self.handles.values():
            handle.cancel()
        self.buckets.clear()
        self.handles.clear()
        self.where.clear()


_REVIVE_DELAY = 5.0  # REVIVE_CONN_DELAY: each revival attempt waits this much longer
_REVIVE_DELAY_MAX = 300.0  # REVIVE_CONN_DELAY_MAX
_LONG = 60.0  # seconds: timers further away than this go to _LongTimers


class IkeGlue:
    def __init__(self, pluto: Any) -> None:
        self.p = pluto
        self.loop = asyncio.get_running_loop()
        self.index = PolicyIndex()
        from .spipool import SpiPool  # inbound SPIs reserved with the kernel's ALLOCSPI

        self.spis = SpiPool(pluto.kernel, log=pluto.log.debug, addresses=lambda: {
            c.this.host_addr for c in pluto.conns.all_with_instances() if c.oriented
        }) if pluto.kernel else None
        credentials = _Credentials(pluto)
        v2 = Engine(self.index, credentials, serials=pluto.states.next_serial,
                    spi_source=self.spis.take if self.spis else None)
        # IKEv1 connections have their own engine and policy index (ikev1glue.py)
        self.index1 = PolicyIndex()
        v1 = ikev1.Engine(self.index1, V1Credentials(pluto, credentials),
                          serials=pluto.states.next_serial)
        self.engine = Engines(v2, v1, lambda: pluto.opts.ikev1_policy)
        self.index.instantiator = self._instantiate  # road warriors (instances.py)
        self._fingerprint: tuple = ()
        self._policies: dict[int, tuple[Any, Policy]] = {}  # id(conn) -> (conn, policy)
        self._proposals: dict[tuple, Any] = {}
        self._timers: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self._long = _LongTimers(self.loop, self._fire)
        self._whack: dict[int, Any] = {}  # IKE SA serial -> WhackSession
        self._waiters: dict[int, list[asyncio.Future]] = {}  # serial -> futures for its end
        # IKE serial -> connections waiting for it to be established (queue Child SA)
        self._queued: dict[int, list[tuple[Any, Any, asyncio.Future]]] = {}
        self._done: dict[int, asyncio.Future] = {}  # IKE serial -> InitiateDone
        self._queue: deque[list[Any]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._ifaces: dict[tuple, Any] = {}
        self._iface_list: list[Any] | None = None
        self._addrs: dict[str, Any] = {}
        self._reqids: dict[int, int] = {}
        self._next_reqid = _REQID_BASE
        self._policy_users: dict[tuple, int] = {}  # installed kernel policy -> children
        self._specs: dict[tuple, tuple[Any, list[Any]]] = {}  # kernel policies per selectors
        self._housekeeper = self.loop.call_later(1.0, self._housekeep)
        self._closing = False  # shutting down: no revival
        self._last_sent: dict[int, float] = {}  # IKE SA serial -> when we last sent to it
        self._keepalive: asyncio.TimerHandle | None = None
        self._schedule_keepalive()
        self._handlers = {
            Send: self._send, Log: self._log, SetTimer: self._set_timer,
            StateChanged: self._state_changed, SaCreated: self._created,
            IkeEstablished: self._ike_up, ChildEstablished: self._child_up,
            SaDeleted: self._deleted, InitiateDone: self._initiate_done,
            PolicySwitched: self._switched, EndpointsChanged: self._moved,
            ParentChanged: self._reparented, ModeCfgLease: self._modecfg_lease,
            XauthPrompt: self._xauth_prompt,
        }

    # ------------------------------------------------------------------ policies

    def _sync(self) -> None:
        """Rebuild the engine's policy index when the connection database changed."""
        conns = self.p.conns
        # ConnectionDB bumps its serial on every add; a "generation" attribute, if the
        # database grows one, also counts removals and replacements
        fp = (getattr(conns, "generation", None), getattr(conns, "_serial", 0), len(conns),
              self.p.listening, len(self.p.interfaces))
        if fp == self._fingerprint:
            return
        self._fingerprint = fp
        old = self._policies
        self._policies = {}
        self.index.clear()
        self.index1.clear()
        for conn in conns.all_with_instances():
            if not conn.oriented or conn.config.never_negotiate:
                continue
            kept = old.get(id(conn))
            policy = kept[1] if kept is not None and kept[0] is conn else None
            if policy is None:
                try:
                    policy = self._build_policy(conn)
                except PolicyError as e:
                    self.p.log.log(f"{conn.prefix}: {e}")
                    continue
            self._policies[id(conn)] = (conn, policy)
            (self.index1 if isinstance(policy, V1Policy) else self.index).add(policy)

    def policy_for(self, conn: Any) -> Policy:
        self._sync()
        got = self._policies.get(id(conn))
        if got is None or got[0] is not conn:
            return self._build_policy(conn)
        return got[1]

    def _proposal(self, kind: str, text: str | None, pfs: bool) -> Any:
        key = (kind, text, pfs)
        got = self._proposals.get(key)
        if got is None:
            try:
                got = parse_proposals(kind, text, pfs=pfs)
            except ProposalError as e:
                raise PolicyError(f"{kind}={text}: {e}") from None
            self._proposals[key] = got
        return got

    def _build_policy(self, conn: Any) -> Policy:
        cfg = conn.config
        this, that = conn.this, conn.that
        if this.host_addr is None:
            raise PolicyError("cannot negotiate: local address unknown")
        default_port = self.p.opts.ikeport
        store = self.p.certstore
        local_id = pkauth.cert_identity(store, this) or \
            _identity(this.id, this.host_addr, this.id_from_host)
        remote_id = pkauth.cert_identity(store, that)
        if remote_id is None and that.id is not None and that.id.kind not in (0, -3) and not (
                that.id_from_host and that.host_addr is None):
            remote_id = _identity(that.id, that.host_addr, that.id_from_host)
        esp_text = cfg.esp if cfg.esp is not None else cfg.phase2alg
        if cfg.phase2 == "ah":
            raise PolicyError("phase2=ah is not supported by the IKEv2 engine yet")
        policy = Policy(
            name=conn.name, handle=conn, local_addr=this.host_addr,
            remote_addr=that.host_addr, local_port=this.ikeport or default_port,
            remote_port=that.ikeport or default_port, local_id=local_id, remote_id=remote_id,
            ike=self._proposal("ike", cfg.ike, True),
            esp=self._proposal("esp", esp_text, cfg.pfs),
            local_auth=_authby(this, cfg), remote_auth=_authby(that, cfg),
            local_ts=addresspool.pool_selectors(this) or _selectors(this),
            remote_ts=addresspool.pool_selectors(that) or _selectors(that),
            mode="transport" if cfg.type == "transport" else "tunnel",
            narrowing=cfg.narrowing, esn=cfg.esn, pfs=cfg.pfs,
            fragmentation=cfg.fragmentation != "no", initial_contact=cfg.initial_contact,
            retransmit_interval=cfg.retransmit_interval / 1000.0,
            retransmit_timeout=cfg.retransmit_timeout, ike_lifetime=cfg.ikelifetime,
            ipsec_lifetime=cfg.ipsec_lifetime, rekey=cfg.rekey, rekey_margin=cfg.rekeymargin,
            rekey_fuzz=cfg.rekeyfuzz, reauth=getattr(cfg, "reauth", False),
            replay_window=cfg.replay_window,
            dpd="active" if cfg.dpddelay else "passive", dpd_delay=cfg.dpddelay,
            local_nat_port=self.p.opts.natikeport, remote_nat_port=self.p.opts.natikeport,
            encapsulation=cfg.encapsulation, send_cert=this.sendcert,
            uniqueids=self.p.opts.uniqueids, **addresspool.modecfg_policy(conn),
            **pkauth.signature_policy(cfg))
        if cfg.ike_version == 1:
            try:
                return v1_policy(policy, conn)
            except ValueError as e:
                raise PolicyError(str(e)) from None
        return policy

    # ------------------------------------------------------------------ input

    def _ip(self, text: str) -> Any:
        addr = self._addrs.get(text)
        if addr is None:
            addr = self._addrs[text] = ipaddress.ip_address(text.split("%")[0])
        return addr

    def receive(self, iface: Any, data: bytes, addr: tuple) -> None:
        try:
            self._sync()
            # whack --ddos-*, --global-redirect*: the engine decides per IKE_SA_INIT request
            cfg, p = self.engine.config, self.p
            cfg.ddos_mode = p.ddos_mode
            cfg.global_redirect, cfg.global_redirect_to = p.global_redirect, p.global_redirect_to
            actions = self.engine.receive(data, (iface.addr, iface.port),
                                          (self._ip(addr[0]), addr[1]), self.loop.time())
            if actions:
                self._apply(actions)
        except Exception as e:  # noqa: BLE001 - never let a datagram take the loop down
            self.p.log.log(f"EXPECTATION FAILED: datagram from {addr[0]}:{addr[1]}: {e!r}")

    def _fire(self, serial: int, event: str) -> None:
        self._timers.pop((serial, event), None)
        try:
            if event == "RETRANSMIT":
                # the answer may be sitting unread in a socket buffer (asyncio reads one
                # datagram per readiness event while due timers all run): read first, so a
                # busy daemon does not retransmit what the peer has already answered
                self._read_pending()
            st = self.p.states.get(serial)
            if st is not None:
                st.events.pop(event, None)
            self._apply(self.engine.timer(serial, event, self.loop.time()))
        except Exception as e:  # noqa: BLE001 - a timer must not take the loop down
            self.p.log.log(f"EXPECTATION FAILED: #{serial} {event} timer: {e!r}")

    def _read_pending(self, limit: int = 64) -> None:
        for iface in list(self.p.interfaces):
            transport = iface.transport
            # the raw socket: get_extra_info("socket") is a wrapper without recvfrom()
            sock = getattr(transport, "_sock", None)
            if sock is None or transport.is_closing():
                continue
            protocol = transport.get_protocol()
            for _ in range(limit):
                try:
                    data, addr = sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                protocol.datagram_received(data, addr)

    # ------------------------------------------------------------------ carrying out actions

    def _apply(self, actions: list[Any]) -> None:
        if self._queue or not self._idle.is_set():
            self._queue.append(actions)
            if self._idle.is_set():  # a worker died with work left: start another
                self._idle.clear()
                self._worker = self.loop.create_task(self._work())
            return
        kernel = _KERNEL_ACTIONS
        handlers = self._handlers
        for i, a in enumerate(actions):
            kind = type(a)
            if kind in kernel:
                self._queue.append(actions[i:])
                self._idle.clear()
                self._worker = self.loop.create_task(self._work())
                return
            handlers[kind](a)

    async def _work(self) -> None:
        try:
            while self._queue:
                batch = self._queue.popleft()
                for i, a in enumerate(batch):
                    if isinstance(a, InstallChild):
                        try:
                            more = await self._install(a)
                        except Exception as e:  # noqa: BLE001 - report, keep going
                            self.p.log.log(f"EXPECTATION FAILED: installing #{a.serial}: {e!r}")
                            more = self.engine.child_installed(a.serial, repr(e),
                                                               self.loop.time())
                        rest = batch[i + 1:]
                        if more:
                            self._queue.appendleft(more)
                        if rest:
                            self._queue.appendleft(rest)
                        break
                    if isinstance(a, RemoveChild):
                        try:
                            await self._remove(a)
                        except Exception as e:  # noqa: BLE001 - report, keep going
                            self.p.log.log(f"EXPECTATION FAILED: removing #{a.serial}: {e!r}")
                    else:
                        try:
                            self._do(a)
                        except Exception as e:  # noqa: BLE001 - keep the queue going
                            self.p.log.log(f"EXPECTATION FAILED: {type(a).__name__}: {e!r}")
        finally:
            self._idle.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued action (kernel work included) has been carried out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass

    def _do(self, a: Any) -> None:
        self._handlers[type(a)](a)

    def _state_changed(self, a: StateChanged) -> None:
        st = self.p.states.get(a.serial)
        if st is not None:
            st.name, st.story, st.category = a.state.name, a.state.story, a.state.category

    def _initiate_done(self, a: InitiateDone) -> None:
        fut = self._done.pop(a.serial, None)
        if fut is not None and not fut.done():
            fut.set_result(a)

    def _reparented(self, a: ParentChanged) -> None:
        st = self.p.states.get(a.serial)
        if st is not None:
            st.parent = a.parent

    def _moved(self, a: EndpointsChanged) -> None:
        for st in [self.p.states.get(a.serial), *self._children(a.serial)]:
            if st is not None:
                st.local, st.peer = a.local, a.remote

    def _children(self, serial: int) -> list[State]:
        ike = self.p.states.get(serial)
        return self.p.states.children_of(ike) if ike is not None else []

    def _switched(self, a: PolicySwitched) -> None:
        st = self.p.states.get(a.serial)
        if st is not None:
            old, st.conn = st.conn, a.policy.handle
            if old is not st.conn:
                self._maybe_drop_instance(old)
            elif st.kind == "child" and a.policy.cp_client:  # narrowed to our lease (cp.py)
                st.lease = ",".join(str(s) for s in a.policy.local_ts)
                # what the server's CP(CFG_REPLY) said, for updown (st_seen_cfg_dns)
                st.seen_dns = " ".join(str(d) for d in a.policy.modecfg_dns)  # type: ignore[attr-defined]
                st.seen_domains = " ".join(a.policy.modecfg_domains)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ road warriors

    def _instantiate(self, policy: Policy, addr: Any, peer: Identity | None) -> Policy:
        """PolicyIndex hook: a new instance of a template for the peer at ``addr`` (on
        IKE_SA_INIT, as Libreswan's rw_responder_instantiate(), the ID is not known yet), or
        an instance made then, completed with the peer's ID once IKE_AUTH proved it."""
        conn = policy.handle
        if conn.instance_no is not None:
            if peer is not None and policy.remote_id is None:
                self.index.remove(policy)  # it is indexed by its peer ID
                instances.fill_id(conn, _config_id(peer))
                policy.remote_id = peer
                self.index.add(policy)
            return policy
        if not policy.is_template:
            return policy
        inst = instances.instantiate(conn, self.p.conns.next_serial(), addr,
                                     _config_id(peer) if peer is not None else None)
        try:
            new = self._build_policy(inst)
        except PolicyError as e:
            self.p.log.log(f"{inst.prefix}: {e}")
            instances.discard(inst)
            return policy
        if peer is not None:
            new.remote_id = peer
        self._policies[id(inst)] = (inst, new)
        self.index.add(new)
        return new

    def _maybe_drop_instance(self, conn: Any) -> None:
        """An instance goes away with its last SA (and gives back its leases)."""
        if conn.instance_no is None or self.p.states_of(conn) or any(
                sa.policy.handle is conn for sa in self.engine.ike_sas.values()):
            return
        addresspool.release_all(self.p, conn)
        instances.discard(conn)
        self._reqids.pop(id(conn), None)  # keyed by id(): must not outlive the object
        got = self._policies.pop(id(conn), None)
        if got is not None and got[0] is conn:
            self.index.remove(got[1])

    def lease(self, policy: Policy, peer: Identity, version: int) -> tuple[Any, str] | None:
        """An address from the peer end's pool for the connection (instance) of
        ``policy``: the one it holds already, else a new lease (Libreswan's
        assign_remote_ikev2_lease())."""
        conn = policy.handle
        held = conn.leases.get(version)
        if held is not None:
            return held, ""
        spec = next((s for s in conn.that.addresspool if s.start.version == version), None)
        if spec is None:
            return None
        pool = addresspool.pool_for(self.p, spec)
        # leases of instances whose SAs the engine has just deleted (uniqueids) are free
        alive = {id(sa.policy.handle) for sa in self.engine.ike_sas.values()}
        for other in list(conn.template.instances.values()) if conn.template else ():
            addr = other.leases.get(version)
            if addr is not None and id(other) not in alive and pool.holder(addr) == other.serial:
                pool.release(addr, other.serial)
                del other.leases[version]
        try:
            addr, line = pool.lease(conn.serial, addresspool.can_reuse(conn, self.p.opts.uniqueids))
        except addresspool.PoolError as e:
            raise LeaseError(str(e)) from None
        conn.leases[version] = addr
        if conn.instance_no is not None:
            instances.set_peer_client(conn, [
                SubnetSelector(ipaddress.ip_network(a)) for _, a in sorted(conn.leases.items())])
        return addr, line

    def _iface(self, local: tuple) -> Any:
        if self._iface_list is not self.p.interfaces or len(self._ifaces) != len(
                self.p.interfaces):
            self._iface_list = self.p.interfaces
            self._ifaces = {(i.addr, i.port): i for i in self.p.interfaces}
        return self._ifaces.get(local)

    def _send(self, a: Send) -> None:
        iface = self._iface(a.local)
        if iface is None:
            self.p.log.debug(f"no interface {a.local[0]}:{a.local[1]} to send from")
            return
        self.p.stats["total.ike.traffic.out"] += len(a.data)
        iface.sendto(a.data, (str(a.remote[0]), a.remote[1]))
        self._last_sent[a.serial] = self.loop.time()

    def _whack_for(self, serial: int) -> Any:
        w = self._whack.get(serial)
        if w is None:
            st = self.p.states.get(serial)
            if st is not None and st.parent:
                w = self._whack.get(st.parent)
        return w

    def _log(self, a: Log) -> None:
        log = self.p.log
        if a.rc == RC_DEBUG:
            if log.dbg:
                log.debug(self._prefixed(a.serial, a.text))
            return
        log.log(self._prefixed(a.serial, a.text), self._whack_for(a.serial) if a.serial else None,
                a.rc)

    def _prefixed(self, serial: int, text: str) -> str:
        if not serial:
            return text
        st = self.p.states.get(serial)
        if st is None:
            return f"#{serial}: {text}"
        return f"{st.conn.prefix} #{serial}: {text}"

    def _set_timer(self, a: SetTimer) -> None:
        key = (a.serial, a.event)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        else:
            self._long.cancel(key)
        st = self.p.states.get(a.serial)
        if a.at is None:
            if st is not None:
                st.events.pop(a.event, None)
            return
        if a.at - self.loop.time() > _LONG:
            self._long.add(key, a.at)
        else:
            self._timers[key] = self.loop.call_at(a.at, self._fire, a.serial, a.event)
        if st is not None:
            st.events[a.event] = a.at

    def _created(self, a: SaCreated) -> None:
        if a.kind == "ike" and a.role == "responder" and a.policy.is_template:
            sa = self.engine.ike_sas.get(a.serial)
            if sa is not None and sa.policy is a.policy:
                # a road warrior's IKE_SA_INIT: Libreswan puts it on a new instance at once
                sa.policy = self._instantiate(a.policy, a.remote[0], None)
                a = SaCreated(a.serial, a.kind, a.parent, sa.policy, a.role, a.local,
                              a.remote, a.state)
        st = State(a.serial, a.policy.handle, a.kind, name=a.state.name, story=a.state.story,
                   category=a.state.category, peer=a.remote, local=a.local, parent=a.parent,
                   ike_version=1 if isinstance(a.policy, V1Policy) else 2)
        if a.kind == "child":
            parent = self.p.states.get(a.parent)
            if parent is not None:
                st.peer_id = parent.peer_id
            if a.policy.cp_client:  # a rekey keeps the lease (a new one comes from CP)
                prior = self.p.states.get(st.conn.newest_child)
                st.lease = prior.lease if prior is not None else ""
            if not st.lease and parent is not None and parent.lease:
                st.lease = parent.lease  # IKEv1: ModeCfg leased it to the ISAKMP SA
            isakmp = self.engine.v1.isakmp_sas.get(a.parent)
            lease = getattr(a.policy, "modecfg_lease", None)
            if isakmp is not None and lease and getattr(a.policy, "modecfg_server", False):
                st.lease = f"{lease}/32"  # what our ModeCfg gave the peer
            if isakmp is not None:  # IKEv1 XAUTH: trafficstatus shows the user
                st.username = getattr(isakmp, "xauth_user", "") or (
                    getattr(a.policy, "xauth_username", "")
                    if getattr(a.policy, "xauth_client", False) else "")
        self.p.states.add(st)

    def _xauth_prompt(self, a: XauthPrompt) -> None:
        """IKEv1 XAUTH client without a password: ask the whack that started it, with
        Libreswan's prompts (RC_USERPROMPT echoes, RC_ENTERSECRET does not); whack answers
        from --xauthuser/--xauthpass or the terminal."""
        w = self._whack_for(a.serial)
        st = self.p.states.get(a.serial)
        prefix = f"{st.conn.prefix} #{a.serial}" if st is not None else f"#{a.serial}"
        if w is None or not hasattr(w, "prompt"):
            self.p.log.log(f"{prefix}: XAUTH: no password for user '{a.user}' and no whack "
                           "to prompt; the server will give up")
            return

        async def ask() -> None:
            user = a.user
            if not user:
                user = await w.prompt(rc.RC_USERPROMPT, f"{prefix}: prompt for Username:") \
                    or ""
            password = await w.prompt(rc.RC_ENTERSECRET, f"{prefix}: prompt for Password:")
            if not user or password is None:
                self.p.log.log(f"{prefix}: XAUTH: no answer from whack", w)
                return
            self._apply(self.engine.v1.xauth_answer(a.serial, user, password.encode(),
                                                    self.loop.time()))

        self.loop.create_task(ask())

    def _modecfg_lease(self, a: ModeCfgLease) -> None:
        """IKEv1 ModeCfg gave our ISAKMP SA an address: its IPsec SAs carry it (as
        trafficstatus ``lease=``)."""
        st = self.p.states.get(a.serial)
        if st is not None:
            st.lease = f"{a.address}/{a.address.max_prefixlen}"

    def _ike_up(self, a: IkeEstablished) -> None:
        st = self.p.states.get(a.serial)
        if st is None:
            return
        st.authenticated = True
        st.peer_id = a.peer_id
        st.algorithms = a.algorithms
        st.conn.newest_ike = a.serial
        st.conn.revival_delay = 0.0  # established: the revival backoff starts again
        st.conn.revival_attempt = 0
        self.p.stats["total.ike.ikev2.established"] += 1

    def _child_up(self, a: ChildEstablished) -> None:
        st = self.p.states.get(a.serial)
        if st is None:
            return
        k = a.keys
        parent = self.p.states.get(a.ike_serial)
        st.peer_id = parent.peer_id if parent is not None else st.peer_id
        st.authenticated = True
        st.spi_in, st.spi_out, st.mode = k.spi_in, k.spi_out, k.mode
        st.algorithms = k.algorithms
        st.add_time = time.time()
        conn = st.conn
        conn.newest_child = a.serial
        conn.routing = "routed-tunnel"
        if conn.leases:  # responder: what the peer leased (the initiator's is set already)
            st.lease = addresspool.lease_text(conn.leases.values())
        stats = self.p.stats
        stats["total.ipsec.type.all"] += 1
        stats["total.ipsec.type.esp"] += 1
        if k.esn:
            stats["total.ipsec.type.esn"] += 1
        stats["total.ipsec.type.encap" if k.encap else "total.ipsec.type.non_encap"] += 1
        if a.ike_serial in self._queued:
            self._start_queued(a.ike_serial)

    def _deleted(self, a: SaDeleted) -> None:
        st = self.p.states.get(a.serial)
        for event in ("RETRANSMIT", "DISCARD", "REKEY", "REPLACE", "EXPIRE", "LIVENESS"):
            handle = self._timers.pop((a.serial, event), None)
            if handle is not None:
                handle.cancel()
            else:
                self._long.cancel((a.serial, event))
        if st is not None:
            self.p.states.remove(st)
            conn = st.conn
            if a.kind == "ike":
                if conn.newest_ike == a.serial:
                    conn.newest_ike = 0
                outcome = "completed" if a.established else "failed"
                self.p.stats[f"total.ike.ikev2.{outcome}"] += 1
            elif conn.newest_child == a.serial:
                conn.newest_child = 0
                if conn.routing == "routed-tunnel" and not self._children_up(conn):
                    conn.routing = ("routed-ondemand" if getattr(conn, "trap_policies", None)
                                    else "unrouted")
        if st is not None:
            self._maybe_revive(st, a)
            self._maybe_drop_instance(st.conn)
        self._last_sent.pop(a.serial, None)
        if a.kind == "ike" and a.serial in self._queued:
            self._fail_queued(a.serial)
        elif a.kind == "child" and st is not None and st.parent in self._queued:
            parent = self.engine.ike_sas.get(st.parent)
            if parent is not None and parent.established:
                self._start_queued(st.parent)  # its first Child SA failed; the IKE SA is up
        self._whack.pop(a.serial, None)
        for fut in self._waiters.pop(a.serial, ()):
            if not fut.done():
                fut.set_result(a)
        done = self._done.pop(a.serial, None)
        if done is not None and not done.done():
            done.set_result(InitiateDone(a.serial, False))

    # ------------------------------------------------------------------ NAT keepalive

    def _schedule_keepalive(self) -> None:
        period = float(getattr(self.p, "keep_alive", 20) or 20)
        self._keepalive = self.loop.call_later(period, self._send_keepalives, period)

    def _send_keepalives(self, period: float) -> None:
        """RFC 3948 NAT keepalives (a lone 0xff byte on the NAT-T port) for each current,
        established IKE SA of ours behind a NAT (nat-keepalive=yes), unless it sent
        something within the period anyway, as Libreswan's event_v2_nat_keepalive()."""
        try:
            now = self.loop.time()
            for sa in self.engine.all_ike_sas():  # IKEv2 and IKEv1 alike
                conn = sa.policy.handle
                if not (sa.established and sa.nat_local) or sa.dying \
                        or not getattr(conn.config, "nat_keepalive", True) \
                        or getattr(conn, "newest_ike", 0) != sa.serial:
                    continue
                st = self.p.states.get(sa.serial)
                if st is not None:
                    st.events["NAT_KEEPALIVE"] = now + period
                if now - self._last_sent.get(sa.serial, 0.0) < period:
                    continue
                self.send_keepalive(sa.serial)
        except Exception as e:  # noqa: BLE001 - the timer must keep running
            self.p.log.debug(f"NAT keepalive: {e!r}")
        finally:
            if not self._closing:
                self._schedule_keepalive()

    def send_keepalive(self, serial: int) -> bool:
        sa = self.engine.ike_sas.get(serial) or self.engine.v1.isakmp_sas.get(serial)
        iface = self._iface(sa.local) if sa is not None else None
        if sa is None or iface is None or iface.transport is None:
            return False
        self.p.log.debug(f"#{serial}: sending NAT-T Keep Alive to {sa.remote[0]}:{sa.remote[1]}")
        # not through iface.sendto(): a keepalive has no non-ESP marker
        iface.transport.sendto(b"\xff", (str(sa.remote[0]), sa.remote[1]))
        self._last_sent[serial] = self.loop.time()
        return True

    # ------------------------------------------------------------------ revival

    def _maybe_revive(self, st: State, a: SaDeleted) -> None:
        """A connection with UP (auto=start, initiated) whose SAs went away comes back:
        Libreswan's revival, 0s first then REVIVE_CONN_DELAY (5s) more each attempt up to
        REVIVE_CONN_DELAY_MAX (300s); an established SA resets the backoff."""
        conn = st.conn
        if not getattr(conn, "up", False) or self._closing:
            return
        if a.reason in ("deleted", "rekeyed") and a.kind == "child":
            return  # a rekeyed or operator-deleted Child SA: the IKE SA's fate decides
        if any(s.serial != st.serial and (s.kind == "ike" or s.established)
               for s in self.p.states_of(conn)):
            return  # something else of the connection is still there (e.g. the new SA)
        why = {"deleted by peer": "received Delete/Notify", "dead peer": "is dead",
               "timeout": "timed out", "deleted": "was deleted"}.get(a.reason, a.reason or "went away")
        self._revive_later(conn, why, st.serial)

    def _revive_later(self, conn: Any, why: str, serial: int = 0) -> None:
        if getattr(conn, "revival_pending", None) is not None:
            return
        delay = getattr(conn, "revival_delay", 0.0)
        conn.revival_delay = min(delay + _REVIVE_DELAY, _REVIVE_DELAY_MAX)
        conn.revival_attempt = getattr(conn, "revival_attempt", 0) + 1
        where = f"{conn.prefix} #{serial}" if serial else conn.prefix
        self.p.log.log(f"{where}: connection is supposed to remain up; "
                       f"revival attempt {conn.revival_attempt} scheduled in "
                       f"{int(delay)} seconds")
        conn.revival_pending = self.loop.call_later(delay, self._revive, conn, why)

    def _cancel_revival(self, conn: Any) -> None:
        handle = getattr(conn, "revival_pending", None)
        if handle is not None:
            handle.cancel()
            conn.revival_pending = None

    def _revive(self, conn: Any, why: str) -> None:
        conn.revival_pending = None
        if not getattr(conn, "up", False) or self.p.conns.get(conn.name) is None \
                and conn.instance_no is None:
            return
        if any(s.kind == "ike" or s.established for s in self.p.states_of(conn)):
            return
        self.p.log.log(f"{conn.prefix}: initiating connection '{conn.name}' with serial "
                       f"${conn.serial} which {why} but must remain up per local policy")
        try:
            policy = self.policy_for(conn)
        except PolicyError as e:
            self.p.log.log(f"{conn.prefix}: {e}")
            return
        if policy.remote_addr is None:
            return
        self.start_initiate(conn, None, None)

    def _children_up(self, conn: Any) -> bool:
        return any(s.kind == "child" and s.established for s in self.p.states_of(conn))

    # ------------------------------------------------------------------ kernel

    def _reqid(self, conn: Any) -> int:
        """The connection's reqid: the one its trap policies use (routing.conn_reqid)."""
        got = self._reqids.get(id(conn))
        if got is None:
            try:
                from .routing import conn_reqid

                got = conn_reqid(conn)
            except ImportError:  # pragma: no cover - routing is part of pluto
                got = getattr(conn.config, "reqid", None) or self._next_reqid
                self._next_reqid += 4
            self._reqids[id(conn)] = got
        return got

    def _sa_specs(self, st: State, k: ChildSaKeys) -> tuple[SaSpec, SaSpec]:
        reqid = reqid_for("esp", self._reqid(st.conn))
        local, remote = k.local[0], k.remote[0]
        encap_in = Encap(sport=k.remote[1], dport=k.local[1]) if k.encap else None
        encap_out = Encap(sport=k.local[1], dport=k.remote[1]) if k.encap else None
        def algs(key: bytes, ikey: bytes) -> tuple[EncrAlg, AuthAlg | None]:
            encr = EncrAlg(k.encr_name, key, k.icv_bits)
            auth = AuthAlg(k.integ_name, ikey, k.trunc_bits) if k.integ_name else None
            return encr, auth
        e_in, a_in = algs(k.encr_key_in, k.integ_key_in)
        e_out, a_out = algs(k.encr_key_out, k.integ_key_out)
        mode = "transport" if k.mode == "transport" else "tunnel"
        sel_out = _kernel_selectors(k.local_ts, k.remote_ts)[0] if mode == "transport" else None
        lifetime = _byte_limits(st.conn.config)
        inbound = SaSpec(remote, local, k.spi_in, "esp", mode, reqid, e_in, a_in,  # type: ignore[arg-type]
                         replay_window=k.replay_window, esn=k.esn, encap=encap_in, lifetime=lifetime,
                         selector=sel_out.reversed() if sel_out else None, direction="inbound")
        outbound = SaSpec(local, remote, k.spi_out, "esp", mode, reqid, e_out, a_out,  # type: ignore[arg-type]
                          replay_window=k.replay_window, esn=k.esn, encap=encap_out,
                          lifetime=lifetime,
                          selector=sel_out, direction="outbound")
        return inbound, outbound

    async def _install(self, a: InstallChild) -> list[Any]:
        import errno as _errno

        st = self.p.states.get(a.serial)
        kernel = self.p.kernel
        error: str | None = None
        done: list[tuple[str, Any]] = []
        if st is None:
            error = "state vanished"
        else:
            k = a.keys
            try:
                inbound, outbound = self._sa_specs(st, k)
                # an SPI from the pool is the kernel's larval SA: fill it in (UPDSA); if the
                # kernel has dropped it meanwhile, or the SPI is the engine's own, add it
                reserved = self.spis is not None and self.spis.claim(inbound.dst, inbound.spi)
                if reserved:
                    done.append(("sa", inbound))  # ours: undo releases the reservation too
                    try:
                        await kernel.update_sa(inbound)
                    except KernelError as e:
                        if e.errno != _errno.ESRCH:
                            raise
                        done.pop()
                        reserved = False
                if not reserved:
                    await kernel.add_sa(inbound)
                    done.append(("sa", inbound))
                await kernel.add_sa(outbound)
                done.append(("sa", outbound))
                for spec in self._policy_specs(st, k):
                    key = _policy_key(spec)
                    if self._policy_users.get(key, 0) == 0:
                        await kernel.replace_policy(spec)
                    self._policy_users[key] = self._policy_users.get(key, 0) + 1
                    done.append(("policy", spec))
            except (KernelError, ValueError) as e:
                error = str(e)
                self.p.log.log(f"{st.conn.prefix} #{a.serial}: ERROR: {e}",
                               self._whack_for(a.serial))
                await self._undo(done)
            if error is None:
                st.spi_in, st.spi_out = k.spi_in, k.spi_out
                await self._updown_up(st)
        return self.engine.child_installed(a.serial, error, self.loop.time())

    async def _updown_up(self, st: State) -> None:
        """libreswan(7): prepare and route when the tunnel's clients are first routed,
        then up; a rekey of an already-up tunnel runs nothing."""
        conn = st.conn
        if conn.routing == "routed-tunnel":
            return
        w = self._whack_for(st.serial)
        if not conn.routing.startswith("routed"):
            await run_updown(self.p, conn, "prepare", st, w)
            await run_updown(self.p, conn, "route", st, w)
        await run_updown(self.p, conn, "up", st, w)

    async def _updown_down(self, st: State) -> None:
        conn = st.conn
        others = [s for s in self.p.states_of(conn)
                  if s.kind == "child" and s.established and s.serial != st.serial]
        if others:
            return
        w = self._whack_for(st.serial)
        await run_updown(self.p, conn, "down", st, w)
        if not getattr(conn, "trap_policies", None):
            await run_updown(self.p, conn, "unroute", st, w)

    def _policy_specs(self, st: State, k: ChildSaKeys) -> list[Any]:
        return self._specs_for(st.conn, k.local_ts, k.remote_ts, k.mode, k.local[0],
                               k.remote[0])

    def _specs_for(self, conn: Any, local_ts: tuple, remote_ts: tuple, mode: str,
                   local: Any, remote: Any) -> list[Any]:
        """The kernel policies of a Child SA: the same for every Child SA of a connection
        with the same selectors, so built once (ahead of time by the housekeeper)."""
        key = (id(conn), local_ts, remote_ts, mode, local, remote)
        got = self._specs.get(key)
        if got is not None and got[0] is conn:
            return got[1]
        reqid = self._reqid(conn)
        specs = []
        for sel in _kernel_selectors(local_ts, remote_ts):
            prio = spd_priority(sel.src, sel.dst, local_port=sel.sport, remote_port=sel.dport,
                                proto=sel.proto, instance=conn.instance_no is not None,
                                override=conn.config.priority or 0)
            specs.extend(ipsec_policies(sel, local, remote, reqid=reqid, priority=prio,
                                        mode="transport" if mode == "transport" else "tunnel"))
        if len(self._specs) > 10000:
            self._specs.clear()
        self._specs[key] = (conn, specs)
        return specs

    def _housekeep(self) -> None:
        """Once a second: pick up connection changes and prepare what every negotiation
        of a connection needs (engine policy, kernel policy descriptions), as Libreswan
        does when a connection is added, so that a burst of negotiations does not pay
        for it."""
        try:
            self._sync()
            for conn, policy in list(self._policies.values()):
                if policy.remote_addr is not None and policy.local_ts and policy.remote_ts:
                    try:
                        self._specs_for(conn, policy.local_ts, policy.remote_ts, policy.mode,
                                        policy.local_addr, policy.remote_addr)
                    except ValueError:
                        pass
        except Exception as e:  # noqa: BLE001 - housekeeping must never stop
            self.p.log.debug(f"IKE glue housekeeping: {e!r}")
        finally:
            self._housekeeper = self.loop.call_later(1.0, self._housekeep)

    async def _undo(self, done: list[tuple[str, Any]]) -> None:
        kernel = self.p.kernel
        for what, spec in reversed(done):
            try:
                if what == "sa":
                    await kernel.delete_sa(spec.dst, spec.spi, spec.proto, missing_ok=True)
                else:
                    key = _policy_key(spec)
                    self._policy_users[key] -= 1
                    if self._policy_users[key] <= 0:
                        del self._policy_users[key]
                        await kernel.delete_policy(spec.selector, spec.direction,
                                                   missing_ok=True)
            except KernelError as e:
                self.p.log.log(f"kernel cleanup failed: {e}")

    async def _restore_traps(self, conn: Any, removed: list[tuple[str, Any]]) -> None:
        """A routed connection's Child SA replaced its trap policies; once no Child SA
        uses the selectors any more, put the traps back (routed-ondemand again)."""
        traps = getattr(conn, "trap_policies", None)
        if not traps or any(self._policy_users.get(_policy_key(spec), 0)
                            for _, spec in removed):
            return
        for spec in traps:
            try:
                await self.p.kernel.replace_policy(spec)
            except KernelError as e:
                self.p.log.log(f"{conn.prefix}: could not restore {spec.describe()}: {e}")

    async def _remove(self, a: RemoveChild) -> None:
        st = self.p.states.get(a.serial)
        kernel = self.p.kernel
        k = a.keys
        local, remote = k.local[0], k.remote[0]
        in_bytes = out_bytes = 0
        try:
            in_bytes = (await kernel.get_sa_counters(local, k.spi_in)).bytes
            out_bytes = (await kernel.get_sa_counters(remote, k.spi_out)).bytes
        except KernelError:
            pass
        if st is not None:
            st.in_bytes, st.out_bytes = in_bytes, out_bytes
            self.p.stats["total.ipsec.traffic.in"] += in_bytes
            self.p.stats["total.ipsec.traffic.out"] += out_bytes
            self.p.log.log(f"{st.conn.prefix} #{a.serial}: ESP traffic information: "
                           f"in={_humber(in_bytes)}B out={_humber(out_bytes)}B",
                           self._whack_for(a.serial))
        specs: list[tuple[str, Any]] = []
        if st is not None:
            specs = [("policy", p) for p in self._policy_specs(st, k)]
        await self._undo(specs)
        if st is not None:
            await self._restore_traps(st.conn, specs)
        for dst, spi in ((local, k.spi_in), (remote, k.spi_out)):
            try:
                await kernel.delete_sa(dst, spi, "esp", missing_ok=True)
            except KernelError as e:
                self.p.log.log(f"kernel refused to delete SA: {e}")
        if st is not None and st.established:
            await self._updown_down(st)

    # ------------------------------------------------------------------ whack-facing

    def _states_of(self, conn: Any, kind: str) -> list[State]:
        return [s for s in self.p.states.of_connection(conn) if s.kind == kind]

    def _wait(self, serial: int) -> asyncio.Future:
        fut = self.loop.create_future()
        self._waiters.setdefault(serial, []).append(fut)
        return fut

    async def initiate(self, conn: Any, w: Any, req: Any) -> None:
        waiter = self.start_initiate(conn, w, req)
        if waiter is not None:
            await waiter

    def start_initiate(self, conn: Any, w: Any, req: Any) -> Any:
        """Start negotiating for ``conn``; returns an awaitable for the end of it (None when
        nothing was started or whack need not wait).

        As Libreswan's initiate_connection(): a viable IKE SA with the same peer (same
        addresses and IDs) gets a new Child SA by CREATE_CHILD_SA if it is established, or
        the connection is queued on it while it is still being negotiated; otherwise a new
        IKE SA is negotiated."""
        try:
            policy = self.policy_for(conn)
        except PolicyError as e:
            self.p.log.log(f"{conn.prefix}: {e}", w, rc.RC_FATAL)
            return None
        remote = None
        host = req.args.get("remote-host") if req is not None else None
        if host:
            try:
                remote = (ipaddress.ip_address(host), policy.remote_port)
            except ValueError:
                self.p.log.log(f'{conn.prefix}: remote host "{host}" is not an address', w,
                               rc.RC_NOPEERIP)
                return None
        conn.up = True
        asynchronous = req is not None and "async" in req.flags
        released = getattr(w, "released", None)
        if asynchronous and released is not None and released.done():
            w = None  # a later connection of an --asynchronous alias: whack has gone
        parent = self._viable_parent(policy) if remote is None else None
        now = self.loop.time()
        if parent is not None and not parent.established:
            pst = self.p.states.get(parent.serial)
            prefix = pst.conn.prefix if pst is not None else parent.policy.handle.prefix
            self.p.log.log(f"{conn.prefix}: queue Child SA; waiting on IKE SA {prefix} "
                           f"#{parent.serial} negotiating with {parent.remote[0]}", w)
            done = self.loop.create_future()
            self._queued.setdefault(parent.serial, []).append(
                (conn, None if asynchronous else w, done))
            return self._finish_initiate(done, None, w, asynchronous)
        if parent is not None:
            actions = self.engine.initiate_child(policy, parent.serial, now)
        else:
            actions = self.engine.initiate(policy, now, remote)
        return self._track(actions, w, asynchronous)

    def _track(self, actions: list[Any], w: Any, asynchronous: bool) -> Any:
        """Carry out the actions of a new negotiation, relaying its log to ``w``; returns
        an awaitable for its end (InitiateDone)."""
        created = next((x for x in actions if isinstance(x, SaCreated)), None)
        if created is None or w is None:  # refused before any state existed / no whack
            self._apply(actions)
            return None
        serial = created.serial
        done = self.loop.create_future()
        self._done[serial] = done
        self._whack[serial] = w
        self._apply(actions)
        return self._finish_initiate(done, serial, w, asynchronous)

    def _finish_initiate(self, done: asyncio.Future, serial: int | None, w: Any,
                         asynchronous: bool) -> Any:
        if w is None:
            return None
        if asynchronous:
            if serial is not None:
                self._whack.pop(serial, None)
                self._done.pop(serial, None)
            w.release()
            return None

        async def wait() -> None:
            got = await done
            if isinstance(got, asyncio.Future):  # queued: the Child SA's own negotiation
                got = await got
            await self.drain()
            if serial is not None:
                self._whack.pop(serial, None)

        return wait()

    def _viable_parent(self, policy: Policy) -> Any:
        """Libreswan's find_viable_parent_for_connection(): the newest IKE SA that is either
        established (and still its connection's newest) or being negotiated by us, whose
        connection has the same addresses and peer IDs."""
        best = None
        v1 = isinstance(policy, V1Policy)
        for sa in self.engine.all_ike_sas():
            if sa.dying or getattr(sa, "deleting", False) or getattr(sa, "successor", 0) \
                    or getattr(sa, "rekey_of", 0):
                continue
            other = sa.policy
            if isinstance(other, V1Policy) != v1:
                continue  # an IKE SA carries Child SAs of its own IKE version only
            if v1 and any(getattr(other, k) != getattr(policy, k) for k in _V1_PHASE1):
                continue  # XAUTH/ModeCfg happen once, in phase 1: no sharing across them
            if sa.established:
                if getattr(other.handle, "newest_ike", 0) != sa.serial:
                    continue  # being replaced, or its connection moved on
            elif not sa.is_initiator or getattr(sa, "predecessor", 0):
                continue
            if (other.local_addr, other.remote_addr) != (policy.local_addr, policy.remote_addr) \
                    or other.local_id != policy.local_id \
                    or (other.remote_id is not None and policy.remote_id is not None
                        and other.remote_id.key != policy.remote_id.key):
                continue
            if best is None or sa.serial > best.serial:
                best = sa
        return best

    def _start_queued(self, ike_serial: int) -> None:
        """The IKE SA is usable (its first Child SA is done): start the Child SAs of the
        connections queued on it, in the order they were queued."""
        queued = self._queued.pop(ike_serial, None)
        if not queued:
            return
        now = self.loop.time()
        for conn, w, done in queued:
            try:
                policy = self.policy_for(conn)
            except PolicyError as e:
                self.p.log.log(f"{conn.prefix}: {e}", w)
                done.set_result(None)
                continue
            actions = self.engine.initiate_child(policy, ike_serial, now)
            waiter = self._track(actions, w, False) if w is not None else self._apply(actions)
            if not done.done():
                done.set_result(asyncio.ensure_future(waiter) if waiter is not None else None)

    def _fail_queued(self, ike_serial: int) -> None:
        for conn, w, done in self._queued.pop(ike_serial, ()):
            self.p.log.log(f"{conn.prefix}: IKE SA #{ike_serial} failed; the queued Child SA "
                           "is abandoned", w)
            if not done.done():
                done.set_result(None)
            if conn.up and not self._closing:
                self._revive_later(conn, "failed")

    async def terminate(self, conn: Any, w: Any, delete: bool) -> None:
        now = self.loop.time()
        conn.up = False  # --down / --delete: clear UP first, so nothing revives
        self._cancel_revival(conn)
        for st in self._states_of(conn, "ike"):
            serial = st.serial
            others = [c for c in self.p.states.children_of(st) if c.conn is not conn]
            if others and not delete:
                # the IKE SA carries other connections' Child SAs: only ours go (below)
                self.p.log.log(f"{conn.prefix}: note: connection's IKE SA #{serial} will "
                               f"remain up: in-use by {others[0].conn.prefix} "
                               f"#{others[0].serial}", w)
                continue
            if delete:
                self._whack[serial] = w
                self._apply(self.engine.delete_ike(serial, now, notify=True, wait=False))
                await self.drain()
                continue
            children = [c.serial for c in self.p.states.children_of(st)]
            also = f" (and Child SA #{children[0]})" if len(children) == 1 else (
                " (and Child SAs " + ", ".join(f"#{c}" for c in children) + ")"
                if children else "")
            self.p.log.log(f"{conn.prefix}: initiating delete of connection's IKE SA "
                           f"#{serial}{also}", w)
            fut = self._wait(serial)
            self._whack[serial] = w
            self._apply(self.engine.delete_ike(serial, now, notify=True, wait=True))
            await fut
            await self.drain()
        for st in self._states_of(conn, "child"):  # on an IKE SA shared with others
            ike = self.p.states.get(st.parent)
            if ike is not None and ike.conn is not conn:
                self.p.log.log(f"{conn.prefix}: initiating delete of connection's Child SA "
                               f"#{st.serial} using IKE SA {ike.conn.prefix} #{ike.serial}", w)
                users = [c for c in self.p.states.children_of(ike)
                         if c.serial != st.serial]
                why = ["required by UP policy"] if getattr(ike.conn, "up", False) else []
                if users:
                    why.append(f"in-use by {users[0].conn.prefix} #{users[0].serial}")
                if why:
                    self.p.log.log(f"{conn.prefix}: note: IKE SA {ike.conn.prefix} "
                                   f"#{ike.serial} will remain up: {'; '.join(why)}", w)
            else:
                self.p.log.log(f"{conn.prefix}: initiating delete of connection's Child SA "
                               f"#{st.serial} using IKE SA #{st.parent}", w)
            fut = self._wait(st.serial)
            self._apply(self.engine.delete_child(st.serial, now, notify=True))
            await fut
            await self.drain()

    async def delete_state(self, st: State, w: Any, notify: bool = True) -> None:
        now = self.loop.time()
        fut = self._wait(st.serial)
        if st.kind == "ike":
            self._whack[st.serial] = w
            self._apply(self.engine.delete_ike(st.serial, now, notify=notify, wait=notify))
        else:
            parent = st.parent
            if parent and parent not in self._whack:
                self._whack[parent] = w
            self._apply(self.engine.delete_child(st.serial, now, notify=notify))
        if self.engine.sa(st.serial) is None and not fut.done():
            fut.cancel()  # the engine never knew it: just forget the state
            self.p.states.remove(st)
        else:
            await fut
        await self.drain()
        if st.kind == "child" and st.parent and self._whack.get(st.parent) is w:
            self._whack.pop(st.parent, None)

    def on_kernel_event(self, ev: Any) -> None:
        """The kernel's EXPIRE for a Child SA's byte/packet limits: soft -> rekey the newest
        Child SA of its connection, hard -> delete it (and tell the peer)."""
        if not isinstance(ev, ExpireEvent) or ev.spi == 0:
            return
        if self.p.impairments.get("ignore-hard-expire" if ev.hard else "ignore-soft-expire"):
            return
        st = next((s for s in self.p.states if s.kind == "child" and s.established
                   and ev.spi in (s.spi_in, s.spi_out)), None)
        if st is None:
            return
        kind = "hard" if ev.hard else "soft"
        self.p.log.log(f"{st.conn.prefix} #{st.serial}: kernel {kind} expire of {ev.describe()}")
        if ev.hard:
            asyncio.ensure_future(self.delete_state(st, None, notify=True))
        elif st.conn.newest_child == st.serial and st.conn.config.rekey:
            self._apply(self.engine.rekey_child(st.serial, self.loop.time()))

    async def sa_operation(self, conn: Any, op: str, w: Any, asynchronous: bool) -> None:
        ike = self.p.states.get(conn.newest_ike) if conn.newest_ike else None
        child = self.p.states.get(conn.newest_child) if conn.newest_child else None
        if ike is None and child is not None and child.parent:
            ike = self.p.states.get(child.parent)  # its Child SA rides another's IKE SA
        if op in ("rekey-ike", "rekey-child"):
            what = "IKE" if op == "rekey-ike" else "Child"
            target = ike if op == "rekey-ike" else child
            if target is None:
                w.send(rc.RC_UNKNOWN_NAME, f"{conn.prefix}: connection does not have an "
                                           f"established {what} SA")
                return
            # CREATE_CHILD_SA rekey (reauth=yes: the IKE SA is replaced, make before break)
            if op == "rekey-ike":
                actions = self.engine.rekey_ike(target.serial, self.loop.time())
            else:
                actions = self.engine.rekey_child(target.serial, self.loop.time())
            created = next((x for x in actions if isinstance(x, SaCreated)), None)
            if created is None:
                self._whack[target.parent or target.serial] = w
                self._apply(actions)
                self._whack.pop(target.parent or target.serial, None)
                return
            done = self.loop.create_future()
            self._done[created.serial] = done
            self._whack[created.serial] = w
            self._apply(actions)
            if asynchronous:
                self._whack.pop(created.serial, None)
                w.release()
                return
            await done
            await self.drain()
            self._whack.pop(created.serial, None)
            return
        target = ike if op.endswith("-ike") else child
        if target is None:
            what = "IKE" if op.endswith("-ike") else "Child"
            w.send(rc.RC_UNKNOWN_NAME, f"{conn.prefix}: connection does not have an "
                                       f"established {what} SA")
            return
        if op.startswith("down-"):
            conn.up = False  # ipsec_whack(8): --down-ike/--down-child clear UP first
        if asynchronous:
            w.release()
        await self.delete_state(target, w, notify=True)

    async def redirect(self, conn: Any, targets: str, w: Any) -> None:
        """Active redirect (``whack --name C --redirect-to GW[,GW...]``): each established
        IKE SA of the connection (and its instances) is told, by an INFORMATIONAL
        N(REDIRECT), to go to the next gateway of the list (Libreswan's
        whack_active_redirect())."""
        from ..ike.ikev2.redirect import split_targets

        dests = split_targets(targets)
        if not dests:
            w.send(rc.RC_COMMENT, f"redirect-to='{targets}' is empty")
            return
        now = self.loop.time()
        count = 0
        for inst in [conn, *getattr(conn, "instances", {}).values()]:
            for st in self._states_of(inst, "ike"):
                if not st.established:
                    continue
                actions = self.engine.redirect(st.serial, dests[count % len(dests)], now)
                if any(isinstance(a, Send) for a in actions):
                    count += 1
                self._apply(actions)
        if count:
            self.p.log.log(f'redirections sent for {count} tunnels of connection "{conn.name}"',
                           w)
        else:
            self.p.log.log(f'no active tunnels found for connection "{conn.name}"', w)

    def forget_connection(self, conn: Any, w: Any) -> None:
        now = self.loop.time()
        conn.up = False
        self._cancel_revival(conn)
        for st in self._states_of(conn, "ike"):
            self._apply(self.engine.delete_ike(st.serial, now, notify=True, wait=False))

    async def shutdown(self, leave_state: bool) -> None:
        self._closing = True
        self._housekeeper.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not leave_state:
            self._apply(self.engine.shutdown(self.loop.time(), notify=True))
            await self.drain(5.0)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._long.clear()


# ---------------------------------------------------------------------- helpers


def _identity(ident: Any, host: Any, from_host: bool) -> Identity:
    if ident is None or from_host or ident.kind == 0:
        if host is None:
            raise PolicyError("no ID and no address to take one from")
        return Identity.from_address(host)
    kind = ident.kind
    if kind in (1, 5):
        if ident.addr is None:
            raise PolicyError(f"ID {ident.display()} is a host name: not resolved")
        return Identity.from_address(ident.addr)
    if kind in (2, 3):
        return Identity(_ID_KIND[kind], str(ident.name).encode(), ident.display())
    if kind == 11:
        return Identity(IdType.KEY_ID, bytes(ident.name), ident.display())  # type: ignore[arg-type]
    if kind == 13:
        return Identity(IdType.NULL, b"", "ID_NULL")
    if kind == 9:
        return Identity(IdType.DER_ASN1_DN, _dn_der(ident), ident.display())
    raise PolicyError(f"ID {ident.display()} cannot be used with IKEv2")


_DN_OIDS = {"C": "2.5.4.6", "ST": "2.5.4.8", "L": "2.5.4.7", "O": "2.5.4.10",
            "OU": "2.5.4.11", "CN": "2.5.4.3", "E": "1.2.840.113549.1.9.1",
            "SN": "2.5.4.5", "DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
            "T": "2.5.4.12", "G": "2.5.4.42", "I": "2.5.4.43", "N": "2.5.4.41"}


def _dn_der(ident: Any) -> bytes:
    """DER of a DN ID (RDNs in the order written, as Libreswan's atodn does)."""
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    try:
        rdns = [x509.RelativeDistinguishedName([x509.NameAttribute(
            ObjectIdentifier(_DN_OIDS.get(k, k)), v)]) for k, v in ident.rdns]
        return x509.Name(rdns).public_bytes()
    except (ValueError, TypeError) as e:
        raise PolicyError(f"ID {ident.display()} cannot be encoded: {e}") from None


def _authby(end: Any, cfg: Any) -> str:
    auth = end.auth
    if auth in (None, "", "never") and cfg.authby:
        auth = str(cfg.authby[0]).split(",")[0]
    return {"psk": "secret", "rsa": "rsasig"}.get(auth, auth)


def _selectors(end: Any) -> tuple[Selector, ...]:
    sels = tuple(end.subnets) or tuple(end.subnets_list)
    if sels:
        return tuple(Selector.from_network(s.network, s.protocol, s.port) for s in sels)
    host = end.host_addr
    if host is None:
        return ()
    net = ipaddress.ip_network(host)
    pp = end.protoport
    return (Selector.from_network(net, pp.protocol if pp else 0, pp.port if pp else 0),)


def _kernel_selectors(local: Iterable[Selector], remote: Iterable[Selector]) -> list[KSelector]:
    out = []
    for ls in local:
        for rs in remote:
            lnet, rnet = ls.network(), rs.network()
            if lnet is None or rnet is None:
                raise ValueError(f"selector {ls}==={rs} is not a pair of CIDRs")
            proto = ls.protocol or rs.protocol
            out.append(KSelector.from_protoport(lnet, rnet, proto, _port(ls), _port(rs)))
    return out


def _port(s: Selector) -> int:
    if (s.start_port, s.end_port) == (0, 0xFFFF):
        return 0
    if s.start_port == s.end_port:
        return s.start_port
    raise ValueError(f"port range {s.start_port}-{s.end_port} cannot be a kernel selector")


def _policy_key(spec: Any) -> tuple:
    return (spec.src, spec.dst, spec.proto, spec.sport, spec.dport, spec.direction)


def _byte_limits(config: Any) -> Lifetime:
    """Kernel byte/packet limits from ipsec-max-bytes/-packets; soft at half, as Libreswan."""
    hard_b = config.ipsec_max_bytes if config.ipsec_max_bytes < 2**63 else XFRM_INF
    hard_p = config.ipsec_max_packets if config.ipsec_max_packets < 2**63 else XFRM_INF
    soft_b = hard_b // 2 if hard_b != XFRM_INF else XFRM_INF
    soft_p = hard_p // 2 if hard_p != XFRM_INF else XFRM_INF
    return Lifetime(soft_bytes=soft_b, hard_bytes=hard_b, soft_packets=soft_p, hard_packets=hard_p)


def _humber(n: int) -> str:
    """Libreswan's jam_humber: 84, 2Ki, 3Mi ... (binary prefixes, truncated)."""
    for power, suffix in ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"),
                          (10, "Ki")):
        if n > 1 << power:
            return f"{n >> power}{suffix}"
    return str(n)
