"""The IKE glue: pluto's sockets, timers, kernel, state table and whack, around the
sans-IO engines (``pyswan.ike.ikev2``, and ``pyswan.ike.ikev1`` beside it through
``ikev1glue.Engines``).  The kernel side is in ``glue_kernel``, the whack-facing side
(initiate, terminate, rekey, revival) in ``glue_control``, the engines' credentials in
``credentials``.

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
from typing import Any

from ..auto.values import Selector as SubnetSelector
from ..ike import ikev1
from ..ike.constants import IdType
from ..ike.ikev1 import V1Policy
from ..ike.ikev1.actions import ModeCfgLease, XauthPrompt
from ..ike.ikev2 import (
    RC_DEBUG,
    ChildEstablished,
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
from ..whack import rc
from . import addresspool, instances, pkauth
from .credentials import _config_id, _Credentials
from .glue_control import ControlGlue, PolicyError
from .glue_kernel import _REQID_BASE, KernelGlue
from .ikev1glue import Engines, V1Credentials, v1_policy
from .state import State

_KERNEL_ACTIONS = frozenset({InstallChild, RemoveChild})
_ID_KIND = {1: IdType.IPV4_ADDR, 2: IdType.FQDN, 3: IdType.RFC822_ADDR,
            5: IdType.IPV6_ADDR, 9: IdType.DER_ASN1_DN, 11: IdType.KEY_ID, 13: IdType.NULL}



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


_LONG = 60.0  # seconds: timers further away than this go to _LongTimers


class IkeGlue(ControlGlue, KernelGlue):
    def __init__(self, pluto: Any) -> None:
        self.p = pluto
        self.loop = asyncio.get_running_loop()
        self.index = PolicyIndex()
        from .spipool import SpiPool  # inbound SPIs reserved with the kernel's ALLOCSPI

        self._spi_addrs: tuple[tuple, set[Any]] | None = None  # (fingerprint, addresses)
        self.spis = SpiPool(pluto.kernel, log=pluto.log.debug,
                            addresses=self._spi_addresses) if pluto.kernel else None
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
        # IKE SAs by (local, remote) address, for _viable_parent (a scan of every IKE SA
        # per initiation made a burst of N setups O(N^2))
        self._ike_pairs: dict[tuple, set[int]] = {}
        self._ike_pair_of: dict[int, tuple] = {}
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
        self._prepared: dict[int, Policy] = {}  # id(policy) -> policy (housekeeper)
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

    def _spi_addresses(self) -> set[Any]:
        """The local addresses of the oriented connections (the SPI pool's sweep asks every
        second): listed again only when the connection database has changed, as ``_sync``
        sees it, not by a pass over every connection each time."""
        fp = self._fingerprint
        got = self._spi_addrs
        if got is None or got[0] != fp:
            got = self._spi_addrs = (fp, {c.this.host_addr for c in
                                          self.p.conns.all_with_instances() if c.oriented})
        return got[1]

    def _sync(self) -> None:
        """Rebuild the engine's policy index when the connection database changed."""
        conns = self.p.conns
        # the database's generation counts adds, removals and replacements (not its serial
        # counter: making a road-warrior instance takes a serial, and _instantiate indexes
        # the instance itself; a rebuild per instance made N road warriors O(N^2))
        fp = (getattr(conns, "generation", None), len(conns), self.p.listening,
              len(self.p.interfaces))
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
        # phase2=ah: the Child SA proposals are ah= (or phase2alg=); the engine takes the
        # protocol from the proposal set
        kind = "ah" if cfg.phase2 == "ah" else "esp"
        if kind == "ah" and cfg.ike_version == 1:
            raise PolicyError("phase2=ah is not supported by the IKEv1 engine yet")
        child_text = (cfg.ah if kind == "ah" else cfg.esp)
        child_text = child_text if child_text is not None else cfg.phase2alg
        child_proposals = self._proposal(kind, child_text, cfg.pfs)
        if getattr(cfg, "compress", False) and cfg.ike_version != 1:
            key = (kind + "+ipcomp", child_text, cfg.pfs)  # shared like the plain set
            got = self._proposals.get(key)
            if got is None:
                from dataclasses import replace

                got = self._proposals[key] = replace(child_proposals, ipcomp=True)
            child_proposals = got
        policy = Policy(
            name=conn.name, handle=conn, local_addr=this.host_addr,
            remote_addr=that.host_addr, local_port=this.ikeport or default_port,
            remote_port=that.ikeport or default_port, local_id=local_id, remote_id=remote_id,
            ike=self._proposal("ike", cfg.ike, True),
            esp=child_proposals,
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
        held = self.p.log.hold()  # the datagram's log lines go out in one write
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
        finally:
            if held:
                self.p.log.release()

    def _fire(self, serial: int, event: str) -> None:
        self._timers.pop((serial, event), None)
        held = self.p.log.hold()
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
        finally:
            if held:
                self.p.log.release()

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
            self.p.states.set_parent(st, a.parent)

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
            old = st.conn
            self.p.states.set_conn(st, a.policy.handle)
            if st.kind == "ike" and st.local and st.peer:
                self._index_pair(st.serial, st.local[0], st.peer[0], a.policy)
            if old is not st.conn:
                self._maybe_drop_instance(old)
            elif st.kind == "child" and a.policy.cp_client:  # narrowed to our lease (cp.py)
                st.lease = ",".join(str(s) for s in a.policy.local_ts)
                # what the server's CP(CFG_REPLY) said, for updown (st_seen_cfg_dns)
                st.seen_dns = " ".join(str(d) for d in a.policy.modecfg_dns)
                st.seen_domains = " ".join(a.policy.modecfg_domains)

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
        ike_sas = self.engine.ike_sas
        if conn.instance_no is None or self.p.states_of(conn) or any(
                ike_sas[n].policy.handle is conn for n in self.engine.v2.by_name.get(
                    conn.name, ()) if n in ike_sas):
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
        if a.kind == "ike":
            self._index_pair(a.serial, a.local[0], a.remote[0], a.policy)
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
                st.seen_dns, st.seen_domains, st.seen_banner = (
                    parent.seen_dns, parent.seen_domains, parent.seen_banner)
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
            # for updown (PLUTO_PEER_DNS_INFO, _DOMAIN_INFO, _BANNER), copied to children
            st.seen_dns = " ".join(str(d) for d in a.dns)
            st.seen_domains = " ".join(a.domains)
            st.seen_banner = a.banner

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
        stats["total.ipsec.type.ah" if k.protocol == "ah" else "total.ipsec.type.esp"] += 1
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
        self._unindex_pair(a.serial)
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
