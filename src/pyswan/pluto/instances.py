"""Road-warrior instances: a template connection (peer `%any`) copied for one peer.

When a peer the template accepts authenticates, pluto makes `"name"[N] <address>` with the
peer's address and ID filled in (Libreswan's rw_responder_id_instantiate()); its SAs belong
to the instance, and the instance goes away with its last SA (and gives back its leases).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from .connections import Connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _fills_id(end: Any) -> bool:
    """The template end takes the peer's ID: none given, %any, or the (unknown) address."""
    ident = end.id
    return ident is None or ident.kind in (0, -3) or end.id_from_host


def instantiate(template: Connection, serial: int, addr: IPAddress,
                peer_id: Any | None) -> Connection:
    """A new instance of ``template`` for the peer at ``addr`` (with ``peer_id``, a
    ``pyswan.auto.values.ID``, when the template accepts any ID)."""
    cfg = template.config
    that = template.that
    changes: dict[str, Any] = {"host": str(addr), "host_kind": "addr", "host_addr": addr}
    if peer_id is not None and _fills_id(that):
        changes.update(id=peer_id, id_from_host=False)
    new_that = dataclasses.replace(that, **changes)
    config = dataclasses.replace(cfg, **{template.that_side: new_that})
    inst = Connection(config, serial)
    inst.local = template.local
    inst.interface_name = template.interface_name
    inst.template = template
    inst.instance_no = template.next_instance
    template.next_instance += 1
    template.instances[inst.instance_no] = inst
    return inst


def fill_id(inst: Connection, peer_id: Any | None) -> None:
    """IKE_AUTH told who the peer of an instance made on IKE_SA_INIT is."""
    if peer_id is not None and _fills_id(inst.that):
        that = dataclasses.replace(inst.that, id=peer_id, id_from_host=False)
        inst.config = dataclasses.replace(inst.config, **{inst.that_side: that})


def set_peer_client(inst: Connection, selectors: list[Any]) -> None:
    """The instance's peer client is now ``selectors`` (its lease: Libreswan rebuilds the
    SPDs after leasing), so status, updown and later Child SAs use it."""
    that = dataclasses.replace(inst.that, subnets=tuple(selectors))
    inst.config = dataclasses.replace(inst.config, **{inst.that_side: that})


def discard(inst: Connection) -> None:
    """Forget an instance (its template keeps counting instance numbers up)."""
    template = inst.template
    if template is not None and template.instances.get(inst.instance_no or 0) is inst:
        del template.instances[inst.instance_no]  # type: ignore[arg-type]
