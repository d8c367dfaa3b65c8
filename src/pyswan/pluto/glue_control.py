"""The IKE glue's whack-facing side: initiating (on a new IKE SA, on a viable one, or
queued on one being negotiated), terminating, deleting and rekeying SAs, redirect, and
revival of connections that must stay up.  A mixin of ``IkeGlue``."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from ..ike.ikev1 import V1Policy
from ..ike.ikev2 import Policy, SaCreated, SaDeleted, Send
from ..kernel.base import ExpireEvent
from ..whack import rc
from .state import State


class PolicyError(ValueError):
    """A connection the engine cannot use (its ``str()`` is the log line)."""


_REVIVE_DELAY = 5.0  # REVIVE_CONN_DELAY: each revival attempt waits this much longer
_REVIVE_DELAY_MAX = 300.0  # REVIVE_CONN_DELAY_MAX
_V1_PHASE1 = ("aggressive", "xauth_server", "xauth_client", "modecfg_server",
              "modecfg_client")


class ControlGlue:
    """What whack asks of ``IkeGlue`` (which holds the state), and revival."""

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
        for serial in self._ike_pairs.get(_pair_key(policy.local_addr, policy.remote_addr,
                                                    policy), ()):
            sa = self.engine.owner(serial).ike_sas.get(serial)
            if sa is None or sa.dying or getattr(sa, "deleting", False) or getattr(sa, "successor", 0) \
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

    def _index_pair(self, serial: int, local: Any, remote: Any, policy: Policy) -> None:
        self._unindex_pair(serial)
        key = self._ike_pair_of[serial] = _pair_key(local, remote, policy)
        self._ike_pairs.setdefault(key, set()).add(serial)

    def _unindex_pair(self, serial: int) -> None:
        key = self._ike_pair_of.pop(serial, None)
        if key is not None:
            serials = self._ike_pairs[key]
            serials.discard(serial)
            if not serials:
                del self._ike_pairs[key]

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
        # only what exists now: while we wait for the deletes, a peer may already be
        # setting up new SAs for the connection (its revival), which are not ours to touch
        children = [st.serial for st in self._states_of(conn, "child")]
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
        for st in [s for s in map(self.p.states.get, children) if s is not None]:
            # on an IKE SA shared with others
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


def _pair_key(local: Any, remote: Any, policy: Policy) -> tuple:
    """What an IKE SA and a connection that could share it have in common: the addresses
    and our ID (the peer's ID is compared by _viable_parent, it may be %any)."""
    return (local, remote, policy.local_id.key)
