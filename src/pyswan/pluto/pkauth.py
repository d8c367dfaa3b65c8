"""Public-key authentication credentials for the IKEv2 engine, from pluto's store.

The engine (``pyswan.ike.ikev2.authn``) asks for our signing key and certificates, for
the key that verifies the peer and for the CERTREQ data to send; this module answers from
a connection's ends and the certificate store under ``--ipsecdir``
(:class:`pyswan.pluto.certstore.CertStore`).

* our key: ``leftcert=`` (with its private key), ``leftckaid=``, or a raw
  ``leftrsasigkey=``/``leftpubkey=``/``leftecdsakey=``/``lefteddsakey=`` whose private key
  is found in the store by CKAID;
* the peer's key: preloaded (``rightcert=``, a raw key, ``rightckaid=``), else the
  peer's CERT payloads validated against ``cacerts/`` and ``crls/`` and matched against
  the ID it claims;
* ``authby=`` decides the hashes and RSA padding allowed (``v2-auth-hash-policy``).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from pyswan.ike.constants import IdType
from pyswan.ike.ikev2.authn import CredentialError, LocalKey, PeerKey
from pyswan.ike.ikev2.policy import Identity
from pyswan.ike.pubkey import ckaid_hex
from pyswan.ike.x509dn import str_dn

from .certchain import CertVerifyError
from .certstore import CertStore, CertStoreError
from .x509ids import cert_subject_der, id_from_payload, str_id

_ALL = (4, 3, 2)  # SHA2_512, SHA2_384, SHA2_256: Libreswan's preference
_HASH_OF = {"256": 2, "384": 3, "512": 4}


def authby_tokens(cfg: Any) -> list[str]:
    out: list[str] = []
    for item in cfg.authby or ():
        out += [t for t in str(item).replace(",", " ").split() if t]
    return out


def signature_policy(cfg: Any) -> dict[str, Any]:
    """``sig_hashes``, ``rsa_pss`` and ``rsa_v15`` for the engine's Policy, from authby=."""
    toks = authby_tokens(cfg)
    if not toks:  # IKEv2 default: rsasig,ecdsa
        return {"sig_hashes": _ALL, "rsa_pss": True, "rsa_v15": True}
    hashes: set[int] = set()
    pss = v15 = False
    for t in toks:
        if t in ("rsasig", "rsa"):
            pss = v15 = True
            hashes.update(_ALL)
        elif t == "rsa-sha1":
            v15 = True
        elif t.startswith("rsa-sha2") or t.startswith("ecdsa"):
            pss = pss or t.startswith("rsa")
            suffix = t.rsplit("_", 1)[1] if "_" in t else ""
            hashes.update((_HASH_OF[suffix],) if suffix in _HASH_OF else _ALL)
        elif t == "eddsa":
            hashes.update(_ALL)
    return {"sig_hashes": tuple(h for h in _ALL if h in hashes) or _ALL,
            "rsa_pss": pss, "rsa_v15": v15}


def hash_policy_text(cfg: Any) -> str:
    """``v2-auth-hash-policy:`` of ``--status``."""
    names = {2: "SHA2_256", 3: "SHA2_384", 4: "SHA2_512"}
    hashes = signature_policy(cfg)["sig_hashes"]
    return "+".join(names[h] for h in sorted(hashes))


def _raw_key(end: Any) -> bool:
    value = end.pubkey if end.pubkey_keyword else None
    value = value or end.rsasigkey or end.ecdsakey or end.eddsakey
    return bool(value) and not str(value).startswith("%")


def cert_identity(store: CertStore | None, end: Any) -> Identity | None:
    """The DN ID of an end whose ID comes from its certificate (``%fromcert``, or no ID
    with ``leftcert=``); None when the ID is not the certificate's."""
    if store is None or not end.cert:
        return None
    ident = end.id
    if not (ident is None or end.id_from_host or ident.kind in (0, -3)):
        return None
    cert = store.find_cert(end.cert)
    if cert is None:
        return None
    der = cert_subject_der(cert)
    return Identity(IdType.DER_ASN1_DN, der, str_dn(der))


def local_key(store: CertStore | None, end: Any, cfg: Any) -> LocalKey:
    if store is None:
        raise CredentialError(["authentication failed: no certificate store loaded"])
    try:
        if end.cert or end.ckaid:
            creds = store.local_credentials(end.cert, end.ckaid, leftright=end.leftright)
        elif _raw_key(end):
            pub, _ = store.public_key_for(end)
            creds = store.local_credentials(None, ckaid_hex(pub), leftright=end.leftright)
        else:
            raise CredentialError([f"authentication failed: {end.leftright} end has no "
                                   "certificate, CKAID or public key"])
    except CertStoreError as e:
        raise CredentialError([f"authentication failed: {e}"]) from None
    certs: tuple[bytes, ...] = ()
    if creds.cert is not None:
        chain = creds.chain_for(getattr(cfg, "sendca", "all"))
        certs = tuple(c.public_bytes(Encoding.DER) for c in [creds.cert, *chain])
    return LocalKey(creds.private_key, certs)


def peer_text(peer: Identity) -> str:
    if peer.id_type == IdType.DER_ASN1_DN:
        try:
            return str_id(id_from_payload(peer.id_type, peer.data))
        except ValueError:
            return peer.text
    return peer.text


def peer_key(store: CertStore | None, end: Any, cfg: Any, peer: Identity,
             certs: list[bytes]) -> PeerKey:
    if store is None:
        raise CredentialError(["authentication failed: no certificate store loaded"])
    if end.cert or _raw_key(end) or (end.ckaid and not certs):
        try:
            pub, _ = store.public_key_for(end)
        except CertStoreError as e:
            raise CredentialError([f"authentication failed: {e}"]) from None
        return PeerKey(pub, f"using preloaded certificate '{peer_text(peer)}'")
    if not certs:
        raise CredentialError([f"authentication failed: no certificate or public key for "
                               f"{peer.type_name} '{peer_text(peer)}'"])
    try:
        expected = id_from_payload(peer.id_type, peer.data)
    except ValueError:
        expected = None
    try:
        pc = store.verify_peer(certs[0], certs[1:], expected_id=expected, ca=end.ca,
                               require_id_on_certificate=getattr(
                                   cfg, "require_id_on_certificate", True))
    except CertVerifyError as e:
        raise CredentialError([e.reason, "X509: certificate payload rejected for this "
                                         "connection"]) from None
    return PeerKey(pc.public_key, f"certificate '{str_id(pc.matched_id)}'",
                   f" issued by '{pc.issuer_dn}'", pc.log_lines)


def cert_request(store: CertStore | None, end: Any, initiator: bool) -> bytes | None:
    """CERTREQ data: the responder asks unless the peer's key is preloaded raw; the
    initiator only when ``rightca=`` names the CA."""
    if store is None or _raw_key(end):
        return None
    ca = end.ca if end.ca not in ("%same", "%any", "") else None
    if initiator and ca is None:
        return None
    hashes = store.cert_requests(ca)
    return b"".join(hashes) if hashes else None
