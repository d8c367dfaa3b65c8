"""The IKE glue's kernel side: a negotiated Child SA becomes two kernel SAs and its
policies (shared by Child SAs with the same selectors), updown runs when a tunnel goes up
or down, and removal reads the traffic counters first.  A mixin of ``IkeGlue``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..ike.ikev2 import ChildSaKeys, InstallChild, RemoveChild, Selector
from ..kernel.base import (
    XFRM_INF,
    AuthAlg,
    Encap,
    EncrAlg,
    KernelError,
    Lifetime,
    SaSpec,
    ipsec_policies,
    reqid_for,
    spd_priority,
)
from ..kernel.base import Selector as KSelector
from .state import State
from .updown import run_updown

_REQID_BASE = 16384  # automatic reqids start above IPSEC_MANUAL_REQID_MAX, 4 per connection


class KernelGlue:
    """Kernel installs and removals for ``IkeGlue`` (which holds the state)."""

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
        """The ESP (or AH) SA of each direction."""
        proto = "ah" if k.protocol == "ah" else "esp"
        reqid = reqid_for(proto, self._reqid(st.conn))
        local, remote = k.local[0], k.remote[0]
        # AH has no UDP encapsulation (it authenticates the outer header NAT rewrites)
        encap_in = Encap(sport=k.remote[1], dport=k.local[1]) if k.encap and proto == "esp" \
            else None
        encap_out = Encap(sport=k.local[1], dport=k.remote[1]) if k.encap and proto == "esp" \
            else None
        def algs(key: bytes, ikey: bytes) -> tuple[EncrAlg | None, AuthAlg | None]:
            encr = EncrAlg(k.encr_name, key, k.icv_bits) if proto == "esp" else None
            auth = AuthAlg(k.integ_name, ikey, k.trunc_bits) if k.integ_name else None
            return encr, auth
        e_in, a_in = algs(k.encr_key_in, k.integ_key_in)
        e_out, a_out = algs(k.encr_key_out, k.integ_key_out)
        mode = "transport" if k.mode == "transport" else "tunnel"
        sel_out = _kernel_selectors(k.local_ts, k.remote_ts)[0] if mode == "transport" else None
        # only the innermost SA of a bundle carries tunnel mode: with IPCOMP that is the
        # IPCOMP SA (kernel_xfrm.c), matching the policy's templates
        sa_mode = "transport" if k.cpi_in else mode
        lifetime = _byte_limits(st.conn.config)
        inbound = SaSpec(remote, local, k.spi_in, proto, sa_mode, reqid, e_in, a_in,  # type: ignore[arg-type]
                         replay_window=k.replay_window, esn=k.esn, encap=encap_in, lifetime=lifetime,
                         selector=sel_out.reversed() if sel_out else None, direction="inbound")
        outbound = SaSpec(local, remote, k.spi_out, proto, sa_mode, reqid, e_out, a_out,  # type: ignore[arg-type]
                          replay_window=k.replay_window, esn=k.esn, encap=encap_out,
                          lifetime=lifetime,
                          selector=sel_out, direction="outbound")
        return inbound, outbound

    def _comp_specs(self, st: State, k: ChildSaKeys) -> tuple[SaSpec, SaSpec] | None:
        """The IPCOMP SAs (DEFLATE, CPI as SPI) of a Child SA that agreed on compression."""
        if not k.cpi_in:
            return None
        reqid = reqid_for("comp", self._reqid(st.conn))
        local, remote = k.local[0], k.remote[0]
        mode = "transport" if k.mode == "transport" else "tunnel"
        sel_out = _kernel_selectors(k.local_ts, k.remote_ts)[0] if mode == "transport" else None
        lifetime = _byte_limits(st.conn.config)
        inbound = SaSpec(remote, local, k.cpi_in, "comp", mode, reqid, comp="deflate",
                         replay_window=0, lifetime=lifetime,
                         selector=sel_out.reversed() if sel_out else None, direction="inbound")
        outbound = SaSpec(local, remote, k.cpi_out, "comp", mode, reqid, comp="deflate",
                          replay_window=0, lifetime=lifetime, selector=sel_out,
                          direction="outbound")
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
                for comp in self._comp_specs(st, k) or ():  # innermost first, as Libreswan
                    await kernel.add_sa(comp)
                    done.append(("sa", comp))
                # an SPI from the pool is the kernel's larval SA: fill it in (UPDSA); if the
                # kernel has dropped it meanwhile, or the SPI is the engine's own, add it
                reserved = self.spis is not None and self.spis.claim(inbound.dst, inbound.spi)
                # the pool reserves ESP SPIs: an AH SA is added beside the larval one
                reserved = reserved and inbound.proto == "esp"
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
                st.protocol = "AH" if k.protocol == "ah" else "ESP"  # status, trafficstatus
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
                               k.remote[0], _protos(k.protocol, bool(k.cpi_in)))

    def _specs_for(self, conn: Any, local_ts: tuple, remote_ts: tuple, mode: str,
                   local: Any, remote: Any, protos: tuple[str, ...] = ("esp",)) -> list[Any]:
        """The kernel policies of a Child SA: the same for every Child SA of a connection
        with the same selectors, so built once (ahead of time by the housekeeper).
        ``protos``: the bundle's templates (IPCOMP before ESP or AH)."""
        key = (id(conn), local_ts, remote_ts, mode, local, remote, protos)
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
                                        mode="transport" if mode == "transport" else "tunnel",
                                        protos=protos))  # type: ignore[arg-type]
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
            # policies prepared before are skipped: looking their specs up again would hash
            # every connection's selectors each second (O(N) ipaddress hashing for nothing)
            prepared = self._prepared if len(self._specs) >= len(self._prepared) else {}
            self._prepared = {}
            for conn, policy in list(self._policies.values()):
                if prepared.get(id(policy)) is policy:
                    self._prepared[id(policy)] = policy
                    continue
                if policy.remote_addr is not None and policy.local_ts and policy.remote_ts:
                    try:
                        self._specs_for(conn, policy.local_ts, policy.remote_ts, policy.mode,
                                        policy.local_addr, policy.remote_addr,
                                        _protos(policy.esp.protocol.lower(),
                                                getattr(policy.esp, "ipcomp", False)))
                    except ValueError:
                        pass
                self._prepared[id(policy)] = policy
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
        proto = "ah" if k.protocol == "ah" else "esp"
        sas = [(proto, k.spi_in, k.spi_out)]
        if k.cpi_in:
            sas.append(("comp", k.cpi_in, k.cpi_out))
        for i, (what, spi_in, spi_out) in enumerate(sas):
            in_bytes = out_bytes = 0
            try:
                in_bytes = (await kernel.get_sa_counters(local, spi_in, what)).bytes  # type: ignore[arg-type]
                out_bytes = (await kernel.get_sa_counters(remote, spi_out, what)).bytes  # type: ignore[arg-type]
            except KernelError:
                pass
            if st is None:
                continue
            if i == 0:  # the Child SA's own counters (status, stats)
                st.in_bytes, st.out_bytes = in_bytes, out_bytes
                self.p.stats["total.ipsec.traffic.in"] += in_bytes
                self.p.stats["total.ipsec.traffic.out"] += out_bytes
            name = {"esp": "ESP", "ah": "AH", "comp": "IPCOMP"}[what]
            self.p.log.log(f"{st.conn.prefix} #{a.serial}: {name} traffic information: "
                           f"in={_humber(in_bytes)}B out={_humber(out_bytes)}B",
                           self._whack_for(a.serial))
        specs: list[tuple[str, Any]] = []
        if st is not None:
            specs = [("policy", p) for p in self._policy_specs(st, k)]
        await self._undo(specs)
        if st is not None:
            await self._restore_traps(st.conn, specs)
        for what, spi_in, spi_out in sas:
            for dst, spi in ((local, spi_in), (remote, spi_out)):
                try:
                    await kernel.delete_sa(dst, spi, what, missing_ok=True)  # type: ignore[arg-type]
                except KernelError as e:
                    self.p.log.log(f"kernel refused to delete SA: {e}")
        if st is not None and st.established:
            await self._updown_down(st)


def _protos(protocol: str, ipcomp: bool) -> tuple[str, ...]:
    """A Child SA's policy templates: IPCOMP (compress=yes, agreed) then ESP or AH."""
    main = "ah" if protocol == "ah" else "esp"
    return ("comp", main) if ipcomp else (main,)


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
