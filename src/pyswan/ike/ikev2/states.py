"""IKEv2 state names and the transition table, as data.

Names, stories and categories are Libreswan 5.3's (``ikev2_states.c`` and the
``V2_EXCHANGE``/``V2_STATE`` declarations of each exchange).  The category drives
``--briefstatus`` (half-open / open / established) and ``--globalstatus``.

:data:`TRANSITIONS` lists, for every state, which message it accepts, what must be in it,
which function processes it and where it leads; the engine dispatches through
:func:`lookup`, and :func:`format_table` prints it (``python -m pyswan.ike.ikev2.states``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..constants import ExchangeType as X
from ..constants import NotifyType as N
from ..constants import PayloadType as P
from ..constants import exchange_name, notify_name, payload_name

HALF_OPEN = "half-open"
OPEN = "open"
ESTABLISHED = "established"
IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class StateInfo:
    name: str
    story: str
    category: str
    ike: bool = True  # an IKE SA state (else a Child SA state)

    def __str__(self) -> str:
        return self.name


def _s(name: str, story: str, category: str, ike: bool = True) -> StateInfo:
    return StateInfo(name, story, category, ike)


UNSECURED_R = _s("UNSECURED_R", "larval unsecured IKE SA responder", HALF_OPEN)
IKE_SA_INIT_I0 = _s("IKE_SA_INIT_I0", "waiting for KE to finish", IGNORE)
IKE_SA_INIT_I = _s("IKE_SA_INIT_I", "sent IKE_SA_INIT request", HALF_OPEN)
IKE_SA_INIT_IR = _s("IKE_SA_INIT_IR", "processed IKE_SA_INIT response, preparing "
                    "IKE_INTERMEDIATE or IKE_AUTH request", OPEN)
IKE_SA_INIT_R = _s("IKE_SA_INIT_R", "sent IKE_SA_INIT response, waiting for "
                   "IKE_INTERMEDIATE or IKE_AUTH request", HALF_OPEN)
IKE_AUTH_I = _s("IKE_AUTH_I", "sent IKE_AUTH request", OPEN)
ESTABLISHED_IKE_SA = _s("ESTABLISHED_IKE_SA", "established IKE SA", ESTABLISHED)
NEW_CHILD_I0 = _s("NEW_CHILD_I0", "STATE_V2_NEW_CHILD_I0", IGNORE, ike=False)
NEW_CHILD_R0 = _s("NEW_CHILD_R0", "STATE_V2_NEW_CHILD_R0", OPEN, ike=False)
ESTABLISHED_CHILD_SA = _s("ESTABLISHED_CHILD_SA", "established Child SA", ESTABLISHED,
                          ike=False)
NEW_CHILD_I1 = _s("NEW_CHILD_I1", "sent CREATE_CHILD_SA request for new IPsec SA", OPEN,
                   ike=False)
REKEY_CHILD_I1 = _s("REKEY_CHILD_I1", "sent CREATE_CHILD_SA request to rekey IPsec SA", OPEN,
                    ike=False)
REKEY_IKE_I1 = _s("REKEY_IKE_I1", "sent CREATE_CHILD_SA request to rekey IKE SA", OPEN)
ZOMBIE = _s("ZOMBIE", "deleted state", ESTABLISHED)

ALL_STATES = (UNSECURED_R, IKE_SA_INIT_I0, IKE_SA_INIT_I, IKE_SA_INIT_IR, IKE_SA_INIT_R,
              IKE_AUTH_I, NEW_CHILD_I0, NEW_CHILD_R0, ESTABLISHED_IKE_SA,
              ESTABLISHED_CHILD_SA, NEW_CHILD_I1, REKEY_CHILD_I1, REKEY_IKE_I1, ZOMBIE)


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table.

    A message matches when it is of ``exchange``, a request or response as ``response``
    says, arrives in state ``src``, carries every ``required`` payload (inside SK for
    encrypted exchanges) and, when ``notify`` is set, that notification.  Rows are tried in
    order, so notify-specific rows come before the general one.  ``processor`` names a
    function of the exchange module; ``dst`` is the state on success.
    """

    src: StateInfo
    exchange: int
    response: bool
    required: tuple[int, ...]
    processor: str
    dst: StateInfo
    story: str
    notify: int = 0
    encrypted: bool = True

    def describe(self) -> str:
        kind = "response" if self.response else "request"
        names = [payload_name(p) for p in self.required if not (self.notify and p == P.N)]
        if self.notify:
            names.append(f"N({notify_name(self.notify)})")
        need = ",".join(names) or "-"
        if self.encrypted:
            need = f"SK{{{need}}}"
        return (f"{self.src.name:<19} {exchange_name(self.exchange):<15} {kind:<8} "
                f"{need:<22} -> {self.dst.name:<19} {self.processor}: {self.story}")


T = Transition
TRANSITIONS: tuple[Transition, ...] = (
    # IKE_SA_INIT: requests create a new SA (handled before any state exists)
    T(UNSECURED_R, X.IKE_SA_INIT, False, (P.SA, P.KE, P.Ni), "ike_sa_init.process_request",
      IKE_SA_INIT_R, "Respond to IKE_SA_INIT", encrypted=False),
    T(IKE_SA_INIT_I, X.IKE_SA_INIT, True, (P.N,), "ike_sa_init.process_cookie",
      IKE_SA_INIT_I, "received anti-DDOS COOKIE response; resending IKE_SA_INIT request "
      "with cookie payload added", notify=N.COOKIE, encrypted=False),
    T(IKE_SA_INIT_I, X.IKE_SA_INIT, True, (P.N,), "ike_sa_init.process_invalid_ke",
      IKE_SA_INIT_I, "received INVALID_KE_PAYLOAD response; resending IKE_SA_INIT with "
      "new KE payload", notify=N.INVALID_KE_PAYLOAD, encrypted=False),
    T(IKE_SA_INIT_I, X.IKE_SA_INIT, True, (P.N,), "ike_sa_init.process_redirect",
      IKE_SA_INIT_I, "received REDIRECT response; initiating IKE_SA_INIT to the new gateway",
      notify=N.REDIRECT, encrypted=False),
    T(IKE_SA_INIT_I, X.IKE_SA_INIT, True, (P.SA, P.KE, P.Ni), "ike_sa_init.process_response",
      IKE_AUTH_I, "Initiator: process IKE_SA_INIT reply, initiate IKE_AUTH",
      encrypted=False),
    T(IKE_SA_INIT_I, X.IKE_SA_INIT, True, (), "ike_sa_init.process_error_response",
      IKE_SA_INIT_I, "ignore unauthenticated IKE_SA_INIT error response", encrypted=False),
    # IKE_AUTH
    T(IKE_SA_INIT_R, X.IKE_AUTH, False, (P.IDi, P.AUTH), "ike_auth.process_request",
      ESTABLISHED_IKE_SA, "Responder: process IKE_AUTH request"),
    T(IKE_AUTH_I, X.IKE_AUTH, True, (P.IDr, P.AUTH), "ike_auth.process_response",
      ESTABLISHED_IKE_SA, "Initiator: process IKE_AUTH response"),
    T(IKE_AUTH_I, X.IKE_AUTH, True, (), "ike_auth.process_failure_response",
      ZOMBIE, "Initiator: process IKE_AUTH failure response"),
    # CREATE_CHILD_SA (responder: new Child SA, rekey Child SA, rekey IKE SA)
    T(ESTABLISHED_IKE_SA, X.CREATE_CHILD_SA, False, (P.SA, P.Ni),
      "create_child_sa.process_request", ESTABLISHED_IKE_SA,
      "Respond to CREATE_CHILD_SA (new or rekeyed Child SA, rekeyed IKE SA)"),
    T(ESTABLISHED_IKE_SA, X.CREATE_CHILD_SA, True, (), "create_child_sa.process_response",
      ESTABLISHED_IKE_SA, "Process CREATE_CHILD_SA response (new Child SA, Child or IKE rekey)"),
    # INFORMATIONAL
    T(ESTABLISHED_IKE_SA, X.INFORMATIONAL, False, (), "informational.process_request",
      ESTABLISHED_IKE_SA, "Informational Request (liveness, delete, notify)"),
    T(ESTABLISHED_IKE_SA, X.INFORMATIONAL, True, (), "informational.process_response",
      ESTABLISHED_IKE_SA, "Informational Response"),
)

_INDEX: dict[tuple[str, int, bool], tuple[Transition, ...]] = {}
for _t in TRANSITIONS:
    _key = (_t.src.name, _t.exchange, _t.response)
    _INDEX[_key] = _INDEX.get(_key, ()) + (_t,)


def candidates(state: StateInfo, exchange: int, response: bool) -> tuple[Transition, ...]:
    """The rows for a message in ``state`` (empty: the message is unexpected)."""
    return _INDEX.get((state.name, exchange, response), ())


def lookup(state: StateInfo, exchange: int, response: bool, present: set[int],
           notifies: set[int]) -> Transition | None:
    """The first row whose required payloads and notification the message carries."""
    for t in _INDEX.get((state.name, exchange, response), ()):
        if t.notify and t.notify not in notifies:
            continue
        if all(p in present for p in t.required):
            return t
    return None


def format_table() -> str:
    return "\n".join(t.describe() for t in TRANSITIONS)


if __name__ == "__main__":  # pragma: no cover
    print(format_table())
