"""IKEv1 state names and stories (Libreswan ``ikev1_states.c``; 5.x wording for the
established ISAKMP SA).  Reuses the IKEv2 :class:`StateInfo` shape so the glue can treat
both versions' states alike (``ike`` False marks IPsec SA states)."""

from __future__ import annotations

from ..ikev2.states import ESTABLISHED, HALF_OPEN, OPEN, StateInfo


def _s(name: str, story: str, category: str, ike: bool = True) -> StateInfo:
    return StateInfo(name, story, category, ike)


MAIN_R0 = _s("STATE_MAIN_R0", "expecting Main Mode request", HALF_OPEN)
MAIN_I1 = _s("STATE_MAIN_I1", "sent Main Mode request", HALF_OPEN)
MAIN_R1 = _s("STATE_MAIN_R1", "sent Main Mode R1", HALF_OPEN)
MAIN_I2 = _s("STATE_MAIN_I2", "sent Main Mode I2", OPEN)
MAIN_R2 = _s("STATE_MAIN_R2", "sent Main Mode R2", OPEN)
MAIN_I3 = _s("STATE_MAIN_I3", "sent Main Mode I3", OPEN)
MAIN_R3 = _s("STATE_MAIN_R3", "ISAKMP SA established", ESTABLISHED)
MAIN_I4 = _s("STATE_MAIN_I4", "ISAKMP SA established", ESTABLISHED)
AGGR_R0 = _s("STATE_AGGR_R0", "expecting Aggressive Mode request", HALF_OPEN)
AGGR_I1 = _s("STATE_AGGR_I1", "sent Aggressive Mode request", HALF_OPEN)
AGGR_R1 = _s("STATE_AGGR_R1", "sent Aggressive Mode response, expecting confirmation", OPEN)
AGGR_I2 = _s("STATE_AGGR_I2", "ISAKMP SA established", ESTABLISHED)
AGGR_R2 = _s("STATE_AGGR_R2", "ISAKMP SA established", ESTABLISHED)
QUICK_R0 = _s("STATE_QUICK_R0", "expecting Quick Mode request", OPEN, ike=False)
QUICK_I1 = _s("STATE_QUICK_I1", "sent Quick Mode request", OPEN, ike=False)
QUICK_R1 = _s("STATE_QUICK_R1", "sent Quick Mode reply, inbound IPsec SA installed, "
              "expecting confirmation", OPEN, ike=False)
QUICK_I2 = _s("STATE_QUICK_I2", "IPsec SA established", ESTABLISHED, ike=False)
QUICK_R2 = _s("STATE_QUICK_R2", "IPsec SA established", ESTABLISHED, ike=False)
INFO = _s("STATE_INFO", "received unencrypted Informational Exchange message", OPEN)
INFO_PROTECTED = _s("STATE_INFO_PROTECTED",
                    "received encrypted Informational Exchange message", OPEN)

XAUTH_R0 = _s("STATE_XAUTH_R0", "XAUTH responder - optional CFG exchange", ESTABLISHED)
XAUTH_R1 = _s("STATE_XAUTH_R1", "XAUTH status sent, expecting Ack", ESTABLISHED)
XAUTH_I0 = _s("STATE_XAUTH_I0", "XAUTH client - possibly awaiting CFG_request", ESTABLISHED)
XAUTH_I1 = _s("STATE_XAUTH_I1", "XAUTH client - possibly awaiting CFG_set", ESTABLISHED)
MODE_CFG_R0 = _s("STATE_MODE_CFG_R0", "received ModeCfg request, reply sent", ESTABLISHED)
MODE_CFG_R1 = _s("STATE_MODE_CFG_R1", "sent ModeCfg reply, expecting Ack", ESTABLISHED)
MODE_CFG_R2 = _s("STATE_MODE_CFG_R2", "received ModeCfg Ack", ESTABLISHED)
MODE_CFG_I1 = _s("STATE_MODE_CFG_I1", "sent ModeCfg request", ESTABLISHED)

ESTABLISHED_IKE = (MAIN_R3, MAIN_I4, AGGR_I2, AGGR_R2)

ALL = (MAIN_R0, MAIN_I1, MAIN_R1, MAIN_I2, MAIN_R2, MAIN_I3, MAIN_R3, MAIN_I4, AGGR_R0,
       AGGR_I1, AGGR_R1, AGGR_I2, AGGR_R2, QUICK_R0, QUICK_I1, QUICK_R1, QUICK_I2, QUICK_R2,
       INFO, INFO_PROTECTED, XAUTH_R0, XAUTH_R1, XAUTH_I0, XAUTH_I1, MODE_CFG_R0,
       MODE_CFG_R1, MODE_CFG_R2, MODE_CFG_I1)
