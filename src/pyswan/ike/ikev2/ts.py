"""Traffic selector negotiation with Libreswan's fit rules (``ikev2_ts.c``).

An "end" is what the connection is configured with; a "TS" is what the peer sent.

* responder, ``narrowing=no``: END must EQUAL a TS;
* responder, ``narrowing=yes``: an instance uses its END, which must fit within the TS
  (END narrower); a template uses the TS, which must fit within its END (END wider);
* initiator checking the response: EQUAL, or with ``narrowing=yes`` the TS must fit within
  the END (END wider).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from ..codec import RawTrafficSelector, TrafficSelector
from .policy import Selector

EQUALS = "equals"
END_NARROWER = "end-narrower"  # use END, but it must fit within TS
END_WIDER = "end-wider"  # use TS, but it must fit within END


def selectors(ts_list: Sequence[object]) -> list[Selector]:
    """The address-range selectors of a TS payload; other kinds, and ranges that end
    before they start, are ignored (they can match nothing)."""
    return [Selector.from_ts(t) for t in ts_list
            if type(t) is TrafficSelector and t.start_addr <= t.end_addr
            and t.start_port <= t.end_port]


def has_unknown(ts_list: Sequence[object]) -> bool:
    return any(type(t) is RawTrafficSelector for t in ts_list)


def _fit(end: Selector, ts: Selector, rule: str) -> Selector | None:
    if rule == EQUALS:
        return end if end == ts else None
    if rule == END_NARROWER:
        return end if ts.contains(end) else None
    return ts if end.contains(ts) else None


def narrow(ends: Sequence[Selector], proposed: Sequence[Selector], rule: str
           ) -> tuple[Selector, ...] | None:
    """The selectors to use for one side, or None when nothing fits.

    Every END must be satisfied by some TS (an END that nothing covers means the peer
    does not want all the traffic we were configured for)."""
    out: list[Selector] = []
    for end in ends:
        for ts in proposed:
            got = _fit(end, ts, rule)
            if got is not None:
                if got not in out:
                    out.append(got)
                break
        else:
            return None
    if not out:
        return None
    # keep the connection's own tuple when nothing was narrowed (cheap to compare later)
    return ends if tuple(out) == tuple(ends) and isinstance(ends, tuple) else tuple(out)


def responder_rule(narrowing: bool, template: bool) -> str:
    if not narrowing:
        return EQUALS
    return END_WIDER if template else END_NARROWER


def initiator_rule(narrowing: bool) -> str:
    return END_WIDER if narrowing else EQUALS


@lru_cache(maxsize=1024)
def describe_pairs(local: tuple[Selector, ...], remote: tuple[Selector, ...]) -> str:
    """``[10.1.0.0/24===10.2.0.0/24]`` per local/remote pair, as Libreswan logs them."""
    return " ".join(f"[{ls}==={rs}]" for ls in local for rs in remote)
