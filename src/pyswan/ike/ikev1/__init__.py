"""The sans-IO IKEv1 (ISAKMP) engine, beside the IKEv2 one and with the same shape: feed
it datagrams, timer ticks and operator requests with the current time; carry out the
actions (``pyswan.ike.ikev2.actions``) it returns.  See ``engine.py``."""

from .actions import ModeCfgLease
from .engine import RC_DEBUG, Engine, EngineConfig
from .policy import V1Policy

__all__ = ["RC_DEBUG", "Engine", "EngineConfig", "ModeCfgLease", "V1Policy"]
