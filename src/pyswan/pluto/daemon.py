"""The pluto daemon: the asyncio loop that ties sockets, whack, connections and SAs."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections import Counter
from typing import Any

from .. import VERSION_STRING
from ..whack import rc
from ..whack.protocol import Request
from .connections import Connection, ConnectionDB
from .control import ControlServer, WhackSession
from .interfaces import Interface
from .log import Logger, sd_notify
from .main import PlutoOptions
from .state import State, StateTable


class Pluto:
    def __init__(self, opts: PlutoOptions) -> None:
        self.opts = opts
        self.log = Logger(
            stderr=opts.stderrlog,
            logfile=opts.logfile,
            logtime=opts.logtime,
            logappend=opts.logappend,
        )
        self.log.debugging = set(opts.debug)
        self.conns = ConnectionDB()
        self.states = StateTable()
        self.interfaces: list[Interface] = []
        self.listening = False
        self.kernel: Any = None
        self.secrets: Any = None
        self.certstore: Any = None
        self.secrets_files: list[str] = []
        self.pubkeys: list[Any] = []
        self.impairments: dict[str, int] = {}
        setup = opts.setup
        # config setup ddos-mode=, ddos-ike-threshold=, max-halfopen-ike= (--force-busy wins)
        self.ddos_mode = "busy" if opts.force_busy else (getattr(setup, "ddos_mode", None)
                                                         or "auto")
        self.ddos_ike_threshold = int(getattr(setup, "ddos_ike_threshold", 25000))
        self.max_halfopen_ike = int(getattr(setup, "max_halfopen_ike", 50000))
        self.global_redirect = getattr(setup, "global_redirect", None) or "no"
        self.global_redirect_to = getattr(setup, "global_redirect_to", None) or ""
        self.stats: Counter[str] = Counter()
        self.started = time.time()
        self.control: ControlServer | None = None
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.leave_state = False
        self.setup = opts.setup
        self.engine: Any = None  # the IKE glue
        self.keep_alive = opts.keep_alive
        self.bare_shunts: list[Any] = []  # routing.BareShunt: failure shunts in force

    def on_datagram(self, iface: Interface, data: bytes, addr: tuple) -> None:
        """A datagram on an IKE port; the engine glue demultiplexes it."""
        self.stats["total.ike.traffic.in"] += len(data)
        if self.engine is not None:
            self.engine.receive(iface, data, addr)
        else:
            self.log.debug(f"dropping {len(data)}-byte datagram from {addr[0]}:{addr[1]}: no IKE")

    # -- lifecycle -------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.log.log(f"Starting Pluto ({VERSION_STRING}) pid:{os.getpid()}")
        self.kernel = await self._open_kernel()
        from . import routing
        from .ikeglue import IkeGlue

        self.engine = IkeGlue(self)
        self._configure_ike()
        self.kernel.add_event_handler(self.engine.on_kernel_event)
        if getattr(self.engine, "spis", None) is not None:
            self.kernel.add_event_handler(self.engine.spis.on_kernel_event)

        self.kernel.add_event_handler(lambda ev: routing.on_kernel_event(self, ev))
        self.control = ControlServer(self.opts.ctl_path, self.handle, self.log.log)
        try:
            await self.control.start()
        except OSError as e:
            self.log.error(f'FATAL ERROR: cannot create control socket "{self.opts.ctl_path}": {e.strerror}')
            return 1
        self.load_secrets(None)
        self.load_certs(None)
        loop.add_signal_handler(signal.SIGTERM, self.request_shutdown)
        loop.add_signal_handler(signal.SIGINT, self.request_shutdown)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        if self.opts.nofork:
            print("Pluto initialized", flush=True)
        self.log.log("Pluto initialized")
        sd_notify(f"READY=1\nSTATUS=Startup completed.\nMAINPID={os.getpid()}")
        if self.opts.config:
            from .startup import load_config_conns

            await load_config_conns(self)
        await self.stopping.wait()
        await self.shutdown()
        return self.exit_code

    def _configure_ike(self) -> None:
        """Hand config setup's DDoS and redirect settings to the IKE engine (the mode and
        global redirect follow whack at every packet, see IkeGlue.receive)."""
        from ..ike.ikev2 import redirect

        cfg = self.engine.engine.config
        cfg.ddos_ike_threshold = self.ddos_ike_threshold
        cfg.max_halfopen_ike = self.max_halfopen_ike
        cfg.redirect_settings = lambda policy: redirect.from_config(
            getattr(policy.handle, "config", None))
        # init_global_redirect(): a redirect with nowhere to go is switched off
        if self.global_redirect != "no":
            if not redirect.split_targets(self.global_redirect_to):
                self.log.log(f"WARNING: ignoring global-redirect={self.global_redirect} as "
                             "global-redirect-to= is empty")
                self.global_redirect = "no"
            else:
                self.log.log("all IKE_SA_INIT requests will from now on be redirected to: "
                             f"{self.global_redirect_to}")
        elif self.global_redirect_to:
            self.log.log(f"WARNING: ignoring global-redirect-to='{self.global_redirect_to}' "
                         "as global-redirect=no")
            self.global_redirect_to = ""

    async def _open_kernel(self) -> Any:
        from .kernelglue import open_kernel

        return await open_kernel(self)

    def _sighup(self) -> None:
        self.log.log("Pluto ignores SIGHUP -- perhaps you want \"whack --listen\"")
        self.log.reopen()

    def request_shutdown(self) -> None:
        self.stopping.set()

    async def shutdown(self) -> None:
        sd_notify(f"STOPPING=1\nSTATUS=PLUTO_EXIT={self.exit_code}")
        self.log.log("shutting down")
        if self.engine is not None:
            await self.engine.shutdown(leave_state=self.leave_state)
            if getattr(self.engine, "spis", None) is not None:
                await self.engine.spis.close()  # unused reserved SPIs go
        for st in list(self.states):
            self.states.remove(st)
        if self.kernel is not None:
            if not self.leave_state:
                try:
                    await self.kernel.flush_owned()
                except Exception as e:  # the kernel may refuse; shutdown goes on
                    self.log.log(f"kernel cleanup failed: {e}")
            await self.kernel.close()
        self.close_interfaces()
        if self.control is not None:
            await self.control.close()
        self.log.log("leak detective found no leaks")
        self.log.log("exiting pluto")
        self.log.close()

    def close_interfaces(self) -> None:
        for iface in self.interfaces:
            if iface.transport is not None:
                iface.transport.close()
        self.interfaces = []
        self.listening = False

    # -- whack -----------------------------------------------------------------------
    async def handle(self, req: Request, w: WhackSession) -> None:
        from .commands import COMMANDS

        handler = COMMANDS.get(req.command)
        if handler is None:
            w.send(rc.RC_BADWHACKMESSAGE, f'ignoring unknown whack command "{req.command}"')
            return
        self.log.debug(f"whack: {req.command} name={req.name!r}")
        await handler(self, req, w)

    # -- secrets ---------------------------------------------------------------------
    def load_secrets(self, w: WhackSession | None) -> bool:
        """(Re)load ipsec.secrets; on error the old secrets stay in force."""
        from .secretsglue import reload_secrets

        return reload_secrets(self, w)

    def load_certs(self, w: WhackSession | None) -> None:
        """(Re)load the certificate and key store under --ipsecdir."""
        from .certstore import CertStore

        store = CertStore(self.opts.ipsecdir)
        try:
            warnings = store.load()
        except OSError as e:
            self.log.log(f'cannot read certificate store "{self.opts.ipsecdir}": {e.strerror}', w)
            return
        for warning in warnings:
            self.log.log(warning, w)
        self.certstore = store

    # -- connections -----------------------------------------------------------------
    def local_addresses(self) -> set:
        return {i.addr for i in self.interfaces}

    def orient(self, conn: Connection) -> bool:
        ok = conn.orient(self.local_addresses()) if self.listening else False
        if ok:
            for i in self.interfaces:
                if i.addr == conn.this.host_addr:
                    conn.interface_name = i.device
                    break
        elif not self.listening:
            conn.orient_problem = "not listening"
        return ok

    def states_of(self, conn: Connection) -> list[State]:
        return self.states.of_connection(conn)


def run_daemon(opts: PlutoOptions) -> int:
    # The cyclic GC's default thresholds (700, 10, 10) make a burst of setups pay for
    # hundreds of young collections and several full ones over every connection and SA
    # (~0.15 ms per setup at N=1000); pluto's garbage is mostly acyclic, so collect rarely.
    gc.set_threshold(20000, 20, 20)
    pluto_box: list[Pluto] = []

    async def main() -> int:
        p = Pluto(opts)
        pluto_box.append(p)
        return await p.run()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
