"""XAUTH (draft-beaulieu-ike-xauth-02) and ModeCfg (draft-dukes-ike-mode-cfg-02) over the
ISAKMP Transaction exchange, ``HDR*, HASH, ATTR`` with HASH = prf(SKEYID_a, M-ID | ATTR)
both ways; a reply continues the CBC chain of its request, like Quick Mode.

Between an established ISAKMP SA and its first Quick Mode::

    server (responder)                        client (initiator)
    CFG_REQUEST(user, password)   ->
                                  <-          CFG_REPLY(user, password)
    CFG_SET(XAUTH_STATUS)         ->
                                  <-          CFG_ACK(XAUTH_STATUS)
                                  <-          CFG_REQUEST(IP4 address...)   (pull)
    CFG_REPLY(address, DNS)       ->
    or, pushed: CFG_SET(address)  ->          <- CFG_ACK

The server's decision comes from ``credentials.xauth_check(user, password, policy)``, the
client's password from ``credentials.xauth_password(user)`` (both optional methods of
the credentials object; without them XAUTH fails).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from . import crypto as C
from . import states as S
from .actions import ModeCfgLease, XauthPrompt
from .codec import Attribute, Hash, IsakmpDecodeError, Message, ModeCfgAttributes
from .constants import CfgAttr, CfgMessage, Exchange
from .policy import knob
from .proposals import AUTH_NAMES
from .sa import IsakmpSa

if TYPE_CHECKING:
    from .engine import Engine

XAUTH_TYPE_GENERIC = 0
_XAUTH_ASK = (CfgAttr.XAUTH_USER_NAME, CfgAttr.XAUTH_USER_PASSWORD)
_MODECFG_ASK = (CfgAttr.INTERNAL_IP4_ADDRESS, CfgAttr.INTERNAL_IP4_NETMASK,
                CfgAttr.INTERNAL_IP4_DNS)


# ------------------------------------------------------------------ sending


def _send(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float, *,
          reply: bool) -> None:
    """A request opens a new exchange (and is retransmitted); a reply continues the
    exchange of the message it answers."""
    assert sa.choice is not None and sa.keys is not None
    prf, a = sa.choice.prf, sa.keys.a
    if reply:
        msgid, iv = sa.cfg_msgid, sa.cfg_iv
    else:
        msgid = engine.message_id(sa)
        iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    wire, sa.cfg_iv = engine.hashed_message(sa, Exchange.MODE_CFG, msgid, [attrs], iv,
                                            lambda chain: C.info_hash(prf, a, msgid, chain))
    sa.cfg_msgid = msgid
    engine.send(sa, wire)
    if reply:
        # answer the peer's retransmissions of what we answered (a few exchanges back:
        # our ACK may be lost while we have moved on to the next exchange)
        sa.cfg_answers[sa.cfg_last_in] = wire
        while len(sa.cfg_answers) > 4:
            del sa.cfg_answers[next(iter(sa.cfg_answers))]
    else:
        engine.start_retransmit(sa, wire, now)


def _identifier(engine: Engine) -> int:
    return int.from_bytes(engine.rand(2), "big")


def server_start(engine: Engine, sa: IsakmpSa, now: float) -> bool:
    """Called when a responder's ISAKMP SA is up; True when a transaction started."""
    policy = sa.policy
    if knob(policy, "xauth_server"):
        engine.log(sa.serial, "XAUTH: Sending Username/Password request (XAUTH_R0)")
        _send(engine, sa, ModeCfgAttributes(
            CfgMessage.REQUEST, _identifier(engine),
            [Attribute(CfgAttr.XAUTH_TYPE, XAUTH_TYPE_GENERIC)]
            + [Attribute(t, b"") for t in _XAUTH_ASK]), now, reply=False)
        return True
    return _push(engine, sa, now)


def client_start(engine: Engine, sa: IsakmpSa, now: float) -> bool:
    """Called when an initiator's ISAKMP SA is up; True when Quick Mode must wait."""
    policy = sa.policy
    if knob(policy, "xauth_client"):
        return True  # (phase 1 put the SA in XAUTH_I0) the server asks first
    return _pull(engine, sa, now)


def _pull(engine: Engine, sa: IsakmpSa, now: float) -> bool:
    policy = sa.policy
    if not knob(policy, "modecfg_client"):
        return False
    if knob(policy, "modecfg_pull", True):
        engine.set_state(sa, S.MODE_CFG_I1)
        engine.log(sa.serial, "modecfg: Sending IP request (MODECFG_I1)")
        _send(engine, sa, ModeCfgAttributes(CfgMessage.REQUEST, _identifier(engine),
                                            [Attribute(t, b"") for t in _MODECFG_ASK]),
              now, reply=False)
    return True  # pushed: wait for the server's SET


def _push(engine: Engine, sa: IsakmpSa, now: float) -> bool:
    policy = sa.policy
    if not knob(policy, "modecfg_server") or knob(policy, "modecfg_pull", True):
        return False
    attrs = _lease_attributes(engine, sa)
    if attrs is None:
        return False
    engine.set_state(sa, S.MODE_CFG_R1)
    _send(engine, sa, ModeCfgAttributes(CfgMessage.SET, _identifier(engine), attrs), now,
          reply=False)
    return True


def _lease_attributes(engine: Engine, sa: IsakmpSa) -> list[Attribute] | None:
    lease = knob(sa.policy, "modecfg_lease", None)
    if not lease:
        engine.log(sa.serial, "modecfg: no address to give to the client")
        return None
    addr = ipaddress.IPv4Address(str(lease))
    attrs = [Attribute(CfgAttr.INTERNAL_IP4_ADDRESS, addr.packed),
             Attribute(CfgAttr.INTERNAL_IP4_NETMASK, b"\xff\xff\xff\xff")]
    for dns in knob(sa.policy, "modecfg_dns", ()) or ():  # type: ignore[union-attr]
        attrs.append(Attribute(CfgAttr.INTERNAL_IP4_DNS, ipaddress.IPv4Address(dns).packed))
    # Cisco Unity attributes, as Libreswan sends them: the first domain only, the banner
    domains = knob(sa.policy, "modecfg_domains", ()) or ()
    if domains:
        attrs.append(Attribute(CfgAttr.MODECFG_DOMAIN, str(domains[0]).encode()))  # type: ignore[index]
    banner = knob(sa.policy, "modecfg_banner", "") or ""
    if banner:
        attrs.append(Attribute(CfgAttr.MODECFG_BANNER, str(banner).encode()))
    engine.log(sa.serial, f"modecfg: sending IPv4 address {addr} to the client")
    return attrs


# ------------------------------------------------------------------ receiving


def receive(engine: Engine, sa: IsakmpSa, msg: Message, data: bytes, now: float) -> None:
    if not sa.established or sa.keys is None or sa.choice is None:
        engine.log(sa.serial, "dropping Transaction exchange: ISAKMP SA not established")
        return
    if not msg.encrypted:
        engine.log(sa.serial, "dropping Transaction exchange: not encrypted")
        return
    answer = sa.cfg_answers.get(data)
    if answer is not None:
        engine.log(sa.serial, f"retransmitting in response to duplicate packet; already "
                              f"{sa.state.name}")
        engine.send(sa, answer)
        return
    prf, a = sa.choice.prf, sa.keys.a
    msgid = msg.header.message_id
    if msgid == sa.cfg_msgid and sa.cfg_iv:
        # the same Message ID continues the exchange and its CBC chain: the answer to
        # our request, or (Libreswan reuses its phase 1.5 Message ID) the next request
        iv = sa.cfg_iv
    elif msgid == 0 or msgid in sa.msgids:
        engine.debug(sa.serial, f"dropping Transaction message with Message ID {msgid:08x}")
        return
    else:
        iv = C.phase2_iv(prf, sa.iv, msgid, sa.choice.encr.block_size)
    try:
        payloads, plain, next_iv = engine.unseal(sa, msg, iv)
    except (IsakmpDecodeError, C.DecryptError) as e:
        engine.log(sa.serial, f"dropping Transaction exchange message: {e}")
        return
    if len(payloads) < 2 or not isinstance(payloads[0], Hash) \
            or not isinstance(payloads[1], ModeCfgAttributes):
        engine.log(sa.serial, "dropping Transaction exchange message: expecting HASH and "
                              "attribute payloads")
        return
    rest = plain[4 + len(payloads[0].data):]
    if not hmac.compare_digest(payloads[0].data, C.info_hash(prf, a, msgid, rest)):
        engine.log(sa.serial, "received Hash Payload does not match computed value")
        return
    sa.msgids.add(msgid)
    sa.cfg_msgid, sa.cfg_iv, sa.cfg_last_in = msgid, next_iv, data
    attrs = payloads[1]
    kind = attrs.cfg_type
    if kind in (CfgMessage.REPLY, CfgMessage.ACK):
        engine.stop_retransmit(sa)
    handler = _HANDLERS.get((kind, sa.is_initiator))
    if handler is None:
        engine.log(sa.serial, f"dropping unexpected ModeCfg {CfgMessage(kind).name} in "
                              f"{sa.state.name}")
        return
    handler(engine, sa, attrs, now)


def _text(attrs: ModeCfgAttributes, kind: int) -> str:
    a = attrs.attr(kind)
    if a is None or a.basic:
        return ""
    return bytes(a.value).decode("utf-8", "replace")  # type: ignore[arg-type]


# client (initiator) side


def _client_request(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes,
                    now: float) -> None:
    if attrs.attr(CfgAttr.XAUTH_USER_NAME) is None or not knob(sa.policy, "xauth_client"):
        engine.log(sa.serial, "dropping ModeCfg request: not an XAUTH client")
        return
    user = str(knob(sa.policy, "xauth_username", ""))
    lookup = getattr(engine.credentials, "xauth_password", None)
    password = lookup(user) if lookup is not None and user else None
    if password is None:
        # ask the operator (whack's prompts); the answer comes back via xauth_answer()
        sa.xauth_request = attrs
        engine.emit(XauthPrompt(sa.serial, user))
        return
    client_answer(engine, sa, user, password, now, attrs)


def client_answer(engine: Engine, sa: IsakmpSa, user: str, password: bytes, now: float,
                  attrs: ModeCfgAttributes | None = None) -> None:
    """Answer the server's XAUTH challenge (``attrs``, else the one held for a prompt)."""
    if attrs is None:
        attrs = sa.xauth_request
        sa.xauth_request = None
    if attrs is None or sa.dying:
        return
    engine.log(sa.serial, f"XAUTH: Answering XAUTH challenge with user='{user}'")
    reply = [Attribute(CfgAttr.XAUTH_USER_NAME, user.encode()),
             Attribute(CfgAttr.XAUTH_USER_PASSWORD, bytes(password))]
    if attrs.attr(CfgAttr.XAUTH_TYPE) is not None:
        reply.insert(0, Attribute(CfgAttr.XAUTH_TYPE, XAUTH_TYPE_GENERIC))
    _send(engine, sa, ModeCfgAttributes(CfgMessage.REPLY, attrs.identifier, reply), now,
          reply=True)
    engine.set_state(sa, S.XAUTH_I1)
    assert sa.choice is not None
    engine.log(sa.serial, f"{S.XAUTH_I1.story} "
                          f"{sa.choice.story(AUTH_NAMES.get(sa.choice.auth, ''))}")


def _client_set(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float) -> None:
    status = attrs.attr(CfgAttr.XAUTH_STATUS)
    if status is not None:
        ok = status.as_int() == 1
        _send(engine, sa, ModeCfgAttributes(CfgMessage.ACK, attrs.identifier,
                                            [Attribute(CfgAttr.XAUTH_STATUS, int(ok))]),
              now, reply=True)
        if not ok:
            engine.log(sa.serial, "XAUTH: Authentication failed")
            return  # the server deletes the SA
        engine.log(sa.serial, "XAUTH: Successfully Authenticated")
        sa.xauth_ok = True
        if not _pull(engine, sa, now):
            _done(engine, sa, now)
        return
    if attrs.attr(CfgAttr.INTERNAL_IP4_ADDRESS) is not None:  # pushed ModeCfg
        _send(engine, sa, ModeCfgAttributes(CfgMessage.ACK, attrs.identifier, []), now,
              reply=True)
        _lease(engine, sa, attrs, now)
        return
    engine.log(sa.serial, "dropping ModeCfg SET without status or address")


def _client_reply(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float) -> None:
    if sa.state is not S.MODE_CFG_I1:
        engine.log(sa.serial, f"dropping unexpected ModeCfg reply in {sa.state.name}")
        return
    _lease(engine, sa, attrs, now)


def _lease(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float) -> None:
    a = attrs.attr(CfgAttr.INTERNAL_IP4_ADDRESS)
    if a is None or a.basic or len(a.value) != 4:  # type: ignore[arg-type]
        engine.log(sa.serial, "modecfg: the server gave no IPv4 address")
        return
    sa.lease = ipaddress.IPv4Address(bytes(a.value))  # type: ignore[arg-type]
    dns = tuple(ipaddress.IPv4Address(bytes(x.value)) for x in attrs.attributes  # type: ignore[arg-type]
                if x.type == CfgAttr.INTERNAL_IP4_DNS and not x.basic and len(x.value) == 4)  # type: ignore[arg-type]
    engine.log(sa.serial, f"received IPv4 lease {sa.lease}")
    domains = tuple(_text(attrs, CfgAttr.MODECFG_DOMAIN).split()) \
        if attrs.attr(CfgAttr.MODECFG_DOMAIN) is not None else ()
    banner = ""
    if attrs.attr(CfgAttr.MODECFG_BANNER) is not None:
        banner = _text(attrs, CfgAttr.MODECFG_BANNER)
        engine.log(sa.serial, f"received MODECFG_BANNER: {banner}")
    engine.emit(ModeCfgLease(sa.serial, sa.lease, dns, domains, banner))
    _done(engine, sa, now)


def _done(engine: Engine, sa: IsakmpSa, now: float) -> None:
    """The client's transactions are over: run the Quick Modes waiting for them."""
    from . import phase1

    engine.set_state(sa, S.MAIN_I4 if not sa.aggressive else S.AGGR_I2)
    phase1.start_children(engine, sa, now)


# server (responder) side


def _server_reply(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float) -> None:
    if sa.state is not S.XAUTH_R0:
        engine.log(sa.serial, f"dropping unexpected ModeCfg reply in {sa.state.name}")
        return
    user, password = _text(attrs, CfgAttr.XAUTH_USER_NAME), attrs.attr(
        CfgAttr.XAUTH_USER_PASSWORD)
    check = getattr(engine.credentials, "xauth_check", None)
    ok = bool(user and password is not None and not password.basic and check is not None
              and check(user, bytes(password.value), sa.policy))  # type: ignore[arg-type]
    sa.xauth_user, sa.xauth_ok = user, ok
    if ok:
        engine.log(sa.serial, f"XAUTH: User {user}: Authentication Successful")
    else:
        engine.log(sa.serial, f"XAUTH: User {user}: Authentication Failed: Incorrect "
                              "Username or Password")
    engine.set_state(sa, S.XAUTH_R1)
    _send(engine, sa, ModeCfgAttributes(CfgMessage.SET, _identifier(engine),
                                        [Attribute(CfgAttr.XAUTH_STATUS, int(ok))]),
          now, reply=False)


def _server_ack(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes, now: float) -> None:
    from . import informational

    if sa.state is S.XAUTH_R1:
        if not sa.xauth_ok:
            informational.delete_isakmp(engine, sa, now, notify=True)
            return
        engine.set_state(sa, S.MAIN_R3 if not sa.aggressive else S.AGGR_R2)
        _push(engine, sa, now)
    elif sa.state is S.MODE_CFG_R1:
        engine.set_state(sa, S.MODE_CFG_R2)
    else:
        engine.log(sa.serial, f"dropping unexpected ModeCfg ACK in {sa.state.name}")


def _server_request(engine: Engine, sa: IsakmpSa, attrs: ModeCfgAttributes,
                    now: float) -> None:
    if knob(sa.policy, "xauth_server") and not sa.xauth_ok:
        engine.log(sa.serial, "dropping ModeCfg request: XAUTH has not succeeded")
        return
    if not knob(sa.policy, "modecfg_server"):
        engine.log(sa.serial, "dropping ModeCfg request: not a ModeCfg server")
        return
    reply = _lease_attributes(engine, sa)
    if reply is None:
        return
    _send(engine, sa, ModeCfgAttributes(CfgMessage.REPLY, attrs.identifier, reply), now,
          reply=True)
    engine.set_state(sa, S.MODE_CFG_R0)


_HANDLERS = {
    (CfgMessage.REQUEST, True): _client_request,
    (CfgMessage.SET, True): _client_set,
    (CfgMessage.REPLY, True): _client_reply,
    (CfgMessage.REPLY, False): _server_reply,
    (CfgMessage.ACK, False): _server_ack,
    (CfgMessage.REQUEST, False): _server_request,
}
