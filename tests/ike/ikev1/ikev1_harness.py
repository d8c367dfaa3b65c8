"""Two IKEv1 engines through the IKEv2 harness's fake network and clock.

The IKEv1 engine returns the same action types as the IKEv2 one, so ``Net`` from
``tests/ike/ikev2_harness.py`` drives it unchanged; only the engines and the policies
(``ike=``/``esp=`` parsed for IKEv1) differ.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ikev2_harness as v2  # noqa: E402

from pyswan.ike.ikev1 import Engine, EngineConfig, V1Policy  # noqa: E402
from pyswan.ike.ikev2 import PolicyIndex, Selector  # noqa: E402
from pyswan.ike.proposals import parse_proposals  # noqa: E402

WEST, EAST = v2.WEST, v2.EAST
Psks = v2.Psks
RC_DEBUG = v2.RC_DEBUG


def make_policy(name: str = "c", *, local=WEST, remote=EAST, local_id="west",
                remote_id: str | None = "east", ike: str | None = None,
                esp: str | None = None, local_net="10.1.0.0/24", remote_net="10.2.0.0/24",
                port: int = 500, pfs: bool = True, **kw) -> V1Policy:
    return V1Policy(
        name=name, handle=name, local_addr=local, remote_addr=remote, local_port=port,
        remote_port=port, local_id=v2.fqdn(local_id),
        remote_id=v2.fqdn(remote_id) if remote_id is not None else None,
        ike=parse_proposals("ike", ike, ike_version=1),
        esp=parse_proposals("esp", esp, ike_version=1, pfs=pfs), pfs=pfs,
        local_ts=(Selector.from_network(ipaddress.ip_network(local_net)),),
        remote_ts=(Selector.from_network(ipaddress.ip_network(remote_net)),), **kw)


def east_policy(**kw) -> V1Policy:
    args = dict(local=EAST, remote=WEST, local_id="east", remote_id="west",
                local_net="10.2.0.0/24", remote_net="10.1.0.0/24")
    return make_policy(**(args | kw))


class Net(v2.Net):
    def __init__(self, west=None, east=None, **kw) -> None:
        super().__init__(west if west is not None else make_policy(),
                         east if east is not None else east_policy(), **kw)

    def _engine(self, policies, psks, config, serials) -> Engine:  # type: ignore[override]
        plist = policies if isinstance(policies, list) else [policies]
        return Engine(PolicyIndex(plist), psks or Psks(), rng=self.rng.randbytes,
                      serials=serials, key_exchange=v2.deterministic_ke(self.rng),
                      config=config if isinstance(config, EngineConfig) else None)


class RawKeys(Psks):
    """Raw RSA keys for ``authby=rsasig`` without a certificate store: our private key
    and the peer's preloaded public key, in the shapes pluto's credentials return."""

    def __init__(self, mine, theirs, peer_text: str) -> None:
        super().__init__(default=None)
        self.mine, self.theirs, self.peer_text = mine, theirs, peer_text

    def local_key(self, policy):
        from pyswan.ike.ikev2.authn import LocalKey

        return LocalKey(self.mine)

    def peer_key(self, policy, peer, certs):
        from pyswan.ike.ikev2.authn import PeerKey

        return PeerKey(self.theirs.public_key(),
                       f"using preloaded certificate '{self.peer_text}'")


def rsa_net(**kw) -> Net:
    """west and east with raw RSA keys (fixed test keys, made once)."""
    wkey, ekey = rsa_keys()
    rsa = {"local_auth": "rsasig", "remote_auth": "rsasig", "peer_preloaded": True,
           "local_cert": False} | kw
    return Net(make_policy(**rsa), east_policy(**rsa),
               west_psk=RawKeys(wkey, ekey, "@east"), east_psk=RawKeys(ekey, wkey, "@west"))


_KEYS: list = []


def rsa_keys() -> tuple:
    if not _KEYS:
        from cryptography.hazmat.primitives.asymmetric import rsa

        _KEYS.extend(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                     for _ in range(2))
    return _KEYS[0], _KEYS[1]


LEASE = "10.9.0.5"


class Users(Psks):
    """PSKs plus XAUTH users: the client's password lookup and the server's check."""

    def __init__(self, users: dict[str, bytes], **kw) -> None:
        super().__init__(**kw)
        self.users = users

    def xauth_password(self, user: str) -> bytes | None:
        return self.users.get(user)

    def xauth_check(self, user: str, password: bytes, policy: object = None) -> bool:
        return self.users.get(user) == password


def xauth_net(client_password: bytes = b"pw", *, modecfg: bool = False,
              pull: bool = True, xauth: bool = True) -> Net:
    """A road warrior (west, XAUTH user "xroad") and its server (east, lease LEASE)."""
    west = make_policy(xauth_client=xauth, xauth_username="xroad", modecfg_client=modecfg,
                       modecfg_pull=pull)
    east = east_policy(xauth_server=xauth, modecfg_server=modecfg, modecfg_pull=pull,
                       modecfg_lease=LEASE, modecfg_dns=("192.0.2.53",),
                       remote_net=f"{LEASE}/32" if modecfg else "10.1.0.0/24")
    return Net(west, east, west_psk=Users({"xroad": client_password}),
               east_psk=Users({"xroad": b"pw"}))


__all__ = ["EAST", "LEASE", "WEST", "Net", "Psks", "RC_DEBUG", "RawKeys", "Users",
           "east_policy", "make_policy", "rsa_keys", "rsa_net", "xauth_net"]
