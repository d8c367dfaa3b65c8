"""RFC 5685 redirect, as Libreswan 5.x does it (``ikev2_redirect.c``).

Responder (gateway):
- ``global-redirect=yes`` (``auto``: only while DDoS cookies are required) answers every
  IKE_SA_INIT request that announced N(REDIRECT_SUPPORTED) or N(REDIRECTED_FROM) with
  N(REDIRECT) naming the next ``global-redirect-to`` gateway (round robin) and the
  initiator's nonce; requests that did not announce support are dropped;
- ``send-redirect=yes`` (``auto``/unset: only under DDoS) with ``redirect-to=`` puts
  N(REDIRECT) in the IKE_AUTH response instead of a Child SA;
- ``whack --name C --redirect-to GW`` sends an INFORMATIONAL request with N(REDIRECT) to
  the peer of each established IKE SA of C.

Initiator: with ``accept-redirect=yes`` IKE_SA_INIT carries N(REDIRECT_SUPPORTED) (or
N(REDIRECTED_FROM) naming the previous gateway once redirected).  A REDIRECT whose gateway
``accept-redirect-to`` allows (and, in IKE_SA_INIT, that carries our nonce) makes us start
again at the new gateway and drop the SA with the old one; more than
:data:`MAX_REDIRECTS` in a row is taken for a loop.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from struct import Struct
from typing import TYPE_CHECKING, Any

from ..codec import Notify, Payload
from ..constants import ExchangeType, NotifyType
from .message import build_sk, endpoint_text, notifies_of, notify
from .policy import Endpoint, IPAddress, Policy

if TYPE_CHECKING:
    from .engine import Engine, Inbound
    from .sa import IkeSa

MAX_REDIRECTS = 5  # ietf_constants.h
REDIRECT_LOOP_DETECT_PERIOD = 300  # seconds (the revival delay after a loop)
GW_IPV4, GW_IPV6, GW_FQDN = 1, 2, 3  # RFC 5685 8: gateway identity types
_GW = Struct("!BB")
_GLOBAL = 0  # key of the global-redirect-to rotation in Engine.redirects


@dataclass(frozen=True, slots=True)
class RedirectSettings:
    """A connection's ``send-redirect=``, ``redirect-to=``, ``accept-redirect=``,
    ``accept-redirect-to=``."""

    send: str = "auto"  # yes|no|auto (unset is auto)
    to: tuple[str, ...] = ()
    accept: bool = False
    accept_to: tuple[str, ...] = ()


NO_REDIRECT = RedirectSettings()


def from_config(cfg: Any) -> RedirectSettings:
    """The settings of a connection config (``ConnectionConfig`` attributes)."""
    return RedirectSettings(getattr(cfg, "send_redirect", None) or "auto",
                            tuple(getattr(cfg, "redirect_to", ()) or ()),
                            bool(getattr(cfg, "accept_redirect", False)),
                            tuple(getattr(cfg, "accept_redirect_to", ()) or ()))


def settings(eng: Engine, policy: Policy) -> RedirectSettings:
    fn = eng.config.redirect_settings
    got = fn(policy) if fn is not None else None
    return got if isinstance(got, RedirectSettings) else NO_REDIRECT


@dataclass(slots=True)
class Attempt:
    """A connection being redirected (Libreswan's ``c->redirect``)."""

    handle: Any
    count: int
    to: IPAddress
    old_gw: IPAddress


def split_targets(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.replace(",", " ").split() if t)


# ------------------------------------------------------------------ encoding


def gw_data(dest: str, nonce: bytes = b"") -> bytes | None:
    """REDIRECT / REDIRECTED_FROM data: GW Ident Type, Len, identity, [Nonce Data]."""
    try:
        addr = ipaddress.ip_address(dest)
    except ValueError:
        ident, kind = dest.encode("ascii", "replace"), GW_FQDN
    else:
        ident, kind = addr.packed, (GW_IPV4 if addr.version == 4 else GW_IPV6)
    if len(ident) > 0xFF:
        return None  # "redirect destination longer than 255 octets; ignoring"
    return _GW.pack(kind, len(ident)) + ident + nonce


def parse_gw(data: bytes, accept_to: tuple[str, ...], nonce: bytes | None
             ) -> IPAddress | str:
    """The gateway address of a REDIRECT notification, or why it is refused
    (Libreswan's ``parse_redirect_payload()``)."""
    if len(data) < 2:
        return "received malformed REDIRECT payload"
    kind, length = _GW.unpack_from(data)
    ident, rest = data[2:2 + length], data[2 + length:]
    if len(ident) != length:
        return "variable part of payload does not match transferred GW Identity Length"
    if kind in (GW_IPV4, GW_IPV6):
        size = 4 if kind == GW_IPV4 else 16
        if length < size:
            return "transferred GW Identity Length is too small for an IP address"
        addr: IPAddress = ipaddress.ip_address(ident[:size])
        rest = ident[size:] + rest
    elif kind == GW_FQDN:
        # the engine does no DNS: only a name that is an address literal can be followed
        try:
            addr = ipaddress.ip_address(ident.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return f"cannot resolve GW Identity '{ident.decode('ascii', 'replace')}'"
    else:
        return "bad GW Ident Type"
    if accept_to and "%any" not in accept_to and not any(_same(t, addr) for t in accept_to):
        return "received GW Identity is not listed in accept-redirect-to conn option"
    if nonce is None:
        if rest:
            return ("unexpected extra bytes in Notify data after GW data - nonce should have "
                    "been omitted")
    elif rest != nonce:
        return "received nonce does not match our expected nonce Ni (spoofed packet?)"
    return addr


def _same(text: str, addr: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(text) == addr
    except ValueError:
        return False


def _next_dest(eng: Engine, key: int, targets: tuple[str, ...]) -> str:
    """Round robin over ``targets`` (``next_redirect_dest()``)."""
    i = eng.redirects.get(key, 0)
    if not isinstance(i, int) or i >= len(targets):
        i = 0
    eng.redirects[key] = i + 1
    return targets[i]


# ------------------------------------------------------------------ responder


def global_redirect(eng: Engine, notes: dict[int, Notify], ni: bytes | None, spi_i: bytes,
                    local: Endpoint, remote: Endpoint) -> bool:
    """``redirect_global()``: True when the IKE_SA_INIT request was answered with
    N(REDIRECT) or dropped for want of redirect support; False to go on."""
    mode = eng.config.global_redirect
    if mode == "no" or (mode == "auto" and not eng.cookies_required()):
        return False
    peer = endpoint_text(remote)
    if not ni:
        eng.debug(0, f"packet from {peer}: Ni payload required for REDIRECT is missing")
        eng.count("total.ike.ikev2.redirect.failed")
        return True
    if NotifyType.REDIRECTED_FROM not in notes and NotifyType.REDIRECT_SUPPORTED not in notes:
        eng.debug(0, f"packet from {peer}: peer didn't indicate support for redirection")
        eng.count("total.ike.ikev2.redirect.failed")
        return True
    targets = split_targets(eng.config.global_redirect_to)
    data = gw_data(_next_dest(eng, _GLOBAL, targets), ni) if targets else None
    if data is None:
        eng.debug(0, f"packet from {peer}: no (meaningful) destination for global "
                     "redirection has been specified")
        eng.count("total.ike.ikev2.redirect.failed")
        return True
    from .ike_sa_init import stateless_response  # noqa: PLC0415 - it imports us

    stateless_response(eng, spi_i, local, remote, [notify(NotifyType.REDIRECT, data)])
    eng.debug(0, f"packet from {peer}: responding to IKE_SA_INIT request with N(REDIRECT)")
    eng.count("total.ike.ikev2.redirect.completed")
    return True


def auth_redirect(eng: Engine, sa: IkeSa) -> Payload | None:
    """The N(REDIRECT) to put in our IKE_AUTH response instead of a Child SA, if any
    (``v2_ike_sa_auth_responder_establish()``)."""
    rs = settings(eng, sa.policy)
    if rs.send == "no" or (rs.send != "yes" and not eng.cookies_required()):
        return None
    if not peer_supports(sa):
        return None
    if not rs.to:
        eng.log(sa.serial, "redirect-to is not specified, can't redirect requests")
        return None
    data = gw_data(rs.to[0])
    if data is None:
        eng.log(sa.serial, "redirect destination longer than 255 octets; ignoring")
        return None
    return notify(NotifyType.REDIRECT, data)


def peer_supports(sa: IkeSa) -> bool:
    """Did the initiator's IKE_SA_INIT announce redirect support (``st_seen_redirect_sup``)?
    Found again in the recorded request rather than kept for every SA."""
    from ..codec import IkeDecodeError, decode_message  # noqa: PLC0415

    try:
        notes = notifies_of(decode_message(sa.init_request).payloads)
    except IkeDecodeError:
        return False
    return NotifyType.REDIRECT_SUPPORTED in notes or NotifyType.REDIRECTED_FROM in notes


def request_informational(eng: Engine, sa: IkeSa, to: str, now: float) -> bool:
    """Active redirect: INFORMATIONAL request with N(REDIRECT) (no nonce)."""
    if not sa.established or sa.dying or sa.deleting or sa.seal is None:
        return False
    data = gw_data(to)
    if data is None:
        eng.log(sa.serial, "redirect destination longer than 255 octets; ignoring")
        return False
    eng.log(sa.serial, f"redirecting to: {to}")

    def build(msgid: int) -> bytes:
        iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
        return build_sk(sa, ExchangeType.INFORMATIONAL, msgid,
                        [notify(NotifyType.REDIRECT, data)], False, iv)

    eng.start_request(sa, ExchangeType.INFORMATIONAL, build, "redirect", now)
    return True


# ------------------------------------------------------------------ initiator


def initiator_notify(eng: Engine, policy: Policy) -> Payload | None:
    """N(REDIRECTED_FROM) when this initiation follows a redirect, else
    N(REDIRECT_SUPPORTED) with ``accept-redirect=yes``."""
    attempt = eng.redirects.get(id(policy.handle))
    if isinstance(attempt, Attempt) and attempt.handle is policy.handle:
        data = gw_data(str(attempt.old_gw))
        if data is not None:
            return notify(NotifyType.REDIRECTED_FROM, data)
    if settings(eng, policy).accept:
        return notify(NotifyType.REDIRECT_SUPPORTED)
    return None


def process_init_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> bool:
    """IKE_SA_INIT answered with N(REDIRECT) (``process_v2_IKE_SA_INIT_response_v2N_
    REDIRECT()``).  False: not acceptable, ignore it (retransmission goes on)."""
    rs = settings(eng, sa.policy)
    if not rs.accept:
        eng.log(sa.serial, "ignoring v2N_REDIRECT, we don't accept being redirected")
        return False
    got = parse_gw(notifies_of(inb.payloads)[NotifyType.REDIRECT].data, rs.accept_to, sa.ni)
    if isinstance(got, str):
        eng.log(sa.serial, f"WARNING: parsing of v2N_REDIRECT payload failed: {got}")
        return False
    return _follow(eng, sa, "IKE_SA_INIT", got, now, sa.serial)


def process_auth_response(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> bool:
    """``redirect_ike_auth()``: True when the established IKE SA is being left for another
    gateway (the caller stops there)."""
    note = notifies_of(inb.payloads).get(NotifyType.REDIRECT)
    if note is None:
        return False
    rs = settings(eng, sa.policy)
    if not rs.accept:
        eng.debug(sa.serial, "ignoring v2N_REDIRECT, we don't accept being redirected")
        return False
    got = parse_gw(note.data, rs.accept_to, None)
    if isinstance(got, str):
        eng.debug(sa.serial, f"redirect: warning: parsing of v2N_REDIRECT payload failed: {got}")
        return False
    child = sa.first_child
    return _follow(eng, sa, "IKE_AUTH", got, now,
                   child.serial if child is not None else sa.serial)


def process_informational(eng: Engine, sa: IkeSa, inb: Inbound, now: float) -> bool:
    """An INFORMATIONAL request with N(REDIRECT) from the gateway we are connected to
    (``process_v2_INFORMATIONAL_v2N_REDIRECT_request()``): answer (always empty) and, when
    the gateway is acceptable, move there."""
    note = notifies_of(inb.payloads).get(NotifyType.REDIRECT)
    if note is None:
        return False
    iv = eng.rand(sa.seal.suite.iv_size)  # type: ignore[union-attr]
    eng.send_response(sa, inb.message_id,
                      build_sk(sa, ExchangeType.INFORMATIONAL, inb.message_id, [], True, iv))
    if not sa.is_initiator:
        eng.log(sa.serial, "ignoring v2N_REDIRECT from the initiator of this IKE SA")
        return True
    got = parse_gw(note.data, settings(eng, sa.policy).accept_to, None)
    if isinstance(got, str):
        eng.log(sa.serial, f"WARNING: parsing of v2N_REDIRECT payload failed: {got}")
        return True
    child = next(iter(sa.children.values()), None)
    _follow(eng, sa, "INFORMATIONAL", got, now, child.serial if child is not None else sa.serial)
    return True


def _follow(eng: Engine, sa: IkeSa, exchange: str, to: IPAddress, now: float,
            serial: int) -> bool:
    """``save_redirect()`` and the redirect's revival: count the attempt, start a new IKE
    SA at ``to`` (announcing where we come from) and let the old one go."""
    from . import ike_sa_init  # noqa: PLC0415 - it imports us

    policy = sa.policy
    key = id(policy.handle)
    prev = eng.redirects.get(key)
    count = prev.count if isinstance(prev, Attempt) and prev.handle is policy.handle else 0
    count += 1
    if to.version != policy.local_addr.version:
        eng.log(sa.serial, f"{exchange} redirect to {to} ignored: the connection is "
                           f"IPv{policy.local_addr.version}")
        return False
    if count > MAX_REDIRECTS:
        eng.redirects.pop(key, None)
        eng.log(sa.serial, f"{exchange} redirect exceeds limit; assuming redirect loop")
        _drop(eng, sa, now)
        return True
    eng.redirects[key] = Attempt(policy.handle, count, to, sa.remote[0])
    eng.log(sa.serial, f"{exchange} response redirects to new gateway {to}")
    eng.log(serial, f"scheduling redirect {count} to {to}")
    # the new IKE SA exists before the old one goes, so the daemon sees the connection
    # still has an IKE SA and does not revive it towards the old gateway
    new = ike_sa_init.initiate(eng, policy, now, (to, policy.remote_port), redirected=True)
    if new is None:
        eng.redirects.pop(key, None)
    _drop(eng, sa, now)
    return True


def _drop(eng: Engine, sa: IkeSa, now: float) -> None:
    if sa.established:
        eng._delete_ike(sa, now, notify=True, wait=False)  # noqa: SLF001 - mid-exchange
        return
    eng.teardown_ike(sa, "redirected", f"deleting IKE SA ({sa.state.story})")


def redirected_gateway(eng: Engine, policy: Policy) -> IPAddress | None:
    """Where the connection was last redirected to: its later initiations (a reauth
    replacement) go there, not to the configured peer (Libreswan's ``c->redirect.ip``)."""
    attempt = eng.redirects.get(id(policy.handle))
    if isinstance(attempt, Attempt) and attempt.handle is policy.handle:
        return attempt.to
    return None


def forget(eng: Engine, policy: Policy) -> None:
    """A fresh initiation (operator, revival): redirects start from scratch."""
    attempt = eng.redirects.get(id(policy.handle))
    if isinstance(attempt, Attempt) and attempt.handle is policy.handle:
        del eng.redirects[id(policy.handle)]


__all__ = ["MAX_REDIRECTS", "NO_REDIRECT", "RedirectSettings", "auth_redirect", "from_config",
           "global_redirect", "gw_data", "initiator_notify", "parse_gw", "settings"]
