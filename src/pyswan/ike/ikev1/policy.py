"""IKEv1 connection knobs on top of the IKEv2 engine's :class:`Policy`.

The engine reads these with ``getattr`` and defaults, so a plain IKEv2 ``Policy`` (with
``ike=``/``esp=`` parsed for IKEv1) works too; ``V1Policy`` just names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ikev2.policy import Policy


@dataclass(eq=False, slots=True)
class V1Policy(Policy):
    aggressive: bool = False  # aggressive=yes: Aggressive Mode instead of Main Mode
    dpd_timeout: float = 120.0  # dpdtimeout=: declare the peer dead after this silence
    nat_keepalive: bool = True
    # XAUTH (draft-beaulieu-ike-xauth) and ModeCfg (draft-dukes-ike-mode-cfg)
    xauth_server: bool = False  # leftxauthserver=yes: ask the peer for user and password
    xauth_client: bool = False  # leftxauthclient=yes: answer with xauth_username
    xauth_username: str = ""  # leftusername=
    modecfg_server: bool = False  # hand out modecfg_lease (and DNS) to the client
    modecfg_client: bool = False  # ask for (pull) or accept (push) an address
    modecfg_pull: bool = True  # modecfgpull=yes: the client requests
    modecfg_lease: str | None = None  # the address given to the peer (rightaddresspool=)
    modecfg_dns: tuple[str, ...] = ()  # modecfgdns=
    modecfg_banner: str = ""  # modecfgbanner=: sent by a ModeCfg server
    # RSA signatures (authby=rsasig): is the peer's key preloaded (rightrsasigkey=,
    # rightcert=)?  Then no CR is sent.  peer_ca: rightca='s DER DN, named in our CRs;
    # None is %same (the default): the issuer of our own certificate; b"" is %any
    peer_preloaded: bool = False
    peer_ca: bytes | None = None
    local_cert: bool = True  # leftcert=/leftckaid=: a certificate of ours may be sent


def aggressive(policy: Policy) -> bool:
    return bool(getattr(policy, "aggressive", False))


def dpd_timeout(policy: Policy) -> float:
    return float(getattr(policy, "dpd_timeout", 120.0))


def knob(policy: Policy, name: str, default: object = False) -> object:
    """An IKEv1-only setting (its default for a plain IKEv2 ``Policy``)."""
    return getattr(policy, name, default)
