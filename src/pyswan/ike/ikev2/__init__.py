"""The sans-IO IKEv2 engine: feed it datagrams, timer ticks and operator requests with the
current time; carry out the actions it returns.  See ``engine.py``."""

from .actions import (
    RC_FATAL,
    RC_LOG,
    RC_NORETRANSMISSION,
    Action,
    ChildEstablished,
    ChildSaKeys,
    EndpointsChanged,
    IkeEstablished,
    InitiateDone,
    InstallChild,
    Log,
    ParentChanged,
    PolicySwitched,
    RemoveChild,
    SaCreated,
    SaDeleted,
    Send,
    SetTimer,
    StateChanged,
)
from .engine import RC_DEBUG, Engine, EngineConfig
from .policy import Credentials, Identity, IdentityError, Policy, PolicyIndex, Selector
from .states import TRANSITIONS, StateInfo, format_table

__all__ = [
    "RC_DEBUG", "RC_FATAL", "RC_LOG", "RC_NORETRANSMISSION", "TRANSITIONS", "Action",
    "ChildEstablished", "ChildSaKeys", "Credentials", "EndpointsChanged", "Engine", "EngineConfig", "Identity",
    "IdentityError", "IkeEstablished", "InitiateDone", "InstallChild", "Log", "ParentChanged", "Policy",
    "PolicyIndex", "PolicySwitched", "RemoveChild", "SaCreated", "SaDeleted", "Selector",
    "Send", "SetTimer", "StateChanged", "StateInfo", "format_table",
]
