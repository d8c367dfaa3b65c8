"""The single registry of IKE/IPsec algorithms.

One entry per algorithm, in Libreswan's order (lookup by name returns the
first match, and deriving an integrity algorithm from a PRF takes the first
integrity entry built on that PRF, exactly as ``lib/libswan/ike_alg.c`` does).

Each entry carries:

* ``fqn``: the canonical name Libreswan prints (``AES_GCM_16``, ``DH19``...);
* ``names``: the names accepted by the ``ike=``/``esp=``/``ah=`` parser;
* wire ids for IKEv2 and for IKEv1 (Oakley for IKE SAs, IPsec DOI for ESP/AH),
  ``None`` when the algorithm does not exist for that protocol;
* ``ike``: whether pyswan implements it in-process (usable for an IKE SA);
* ``fips``: whether it survives FIPS mode;
* sizes, and the Linux XFRM name for ESP/AH.

This module is pure data plus lookups; the crypto lives in ``dh``, ``prf``
and ``cipher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


class TransformType(IntEnum):
    """IKEv2 transform types (RFC 7296 §3.3.2, RFC 9370)."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    KE = 4
    SN = 5
    ADDKE1 = 6
    ADDKE2 = 7
    ADDKE3 = 8
    ADDKE4 = 9
    ADDKE5 = 10
    ADDKE6 = 11
    ADDKE7 = 12


class ProtocolId(IntEnum):
    """IKEv2 security protocol identifiers (RFC 7296 §3.3.1)."""

    IKE = 1
    AH = 2
    ESP = 3


@dataclass(frozen=True, eq=False)
class Alg:
    """Fields common to every algorithm.  Compared by identity."""

    kind: ClassVar[str] = ""
    story: ClassVar[str] = ""  # Libreswan's type description used in errors

    fqn: str
    names: tuple[str, ...]
    ikev2_id: int | None
    ikev1_oakley_id: int | None = None
    ikev1_ipsec_id: int | None = None
    ike: bool = True
    fips: bool = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fqn}>"

    def __str__(self) -> str:
        return self.fqn


@dataclass(frozen=True, eq=False)
class Encr(Alg):
    kind: ClassVar[str] = "encrypt"
    story: ClassVar[str] = "Encryption Algorithm (cipher)"

    cipher: str = ""  # implementation family, see cipher.py
    key_lengths: tuple[int, ...] = ()  # allowed key sizes in bits, ascending
    keydeflen: int = 0
    keylen_omitted: bool = False  # no Key Length attribute on the wire (3DES, ChaCha)
    block_size: int = 16
    pad_to_block: bool = True
    iv_size: int = 16
    salt_size: int = 0  # extra KEYMAT octets beyond the key (nonce salt)
    icv_size: int = 0  # AEAD tag size; 0 means not AEAD
    xfrm_name: str | None = None

    @property
    def aead(self) -> bool:
        return self.icv_size > 0

    @property
    def max_key_length(self) -> int:
        return self.key_lengths[-1] if self.key_lengths else 0

    def has_key_length(self, bits: int) -> bool:
        return bits in self.key_lengths

    def keymat_size(self, key_bits: int = 0) -> int:
        """KEYMAT octets for this cipher: key plus salt (RFC 4106/5282/7634)."""
        bits = key_bits or self.keydeflen
        return bits // 8 + self.salt_size

    @property
    def xfrm_icv_bits(self) -> int:
        return self.icv_size * 8


@dataclass(frozen=True, eq=False)
class Prf(Alg):
    kind: ClassVar[str] = "prf"
    story: ClassVar[str] = "Pseudorandom Function (KDF)"

    mac: str = ""  # "hmac", "xcbc" or "cmac"
    hash_name: str | None = None  # hashlib name for HMAC
    key_size: int = 0  # preferred key size: SK_d, SK_pi, SK_pr
    output_size: int = 0


@dataclass(frozen=True, eq=False)
class Integ(Alg):
    kind: ClassVar[str] = "integ"
    story: ClassVar[str] = "Integrity Algorithm"

    mac: str = ""  # "hmac", "xcbc", "cmac" or "" for NONE
    hash_name: str | None = None
    key_size: int = 0  # SK_a / ESP integrity KEYMAT octets
    icv_size: int = 0  # truncated output octets
    prf: Prf | None = None  # the PRF this integrity algorithm is built on
    xfrm_name: str | None = None

    @property
    def xfrm_trunc_bits(self) -> int:
        return self.icv_size * 8


@dataclass(frozen=True, eq=False)
class Ke(Alg):
    kind: ClassVar[str] = "ke"
    story: ClassVar[str] = "Key Exchange Method (DH)"

    family: str = ""  # "none", "modp", "ecp", "ecx", "mlkem"
    size: int = 0  # KE payload octets sent by the initiator
    responder_size: int = 0  # KE payload octets sent by the responder


@dataclass(frozen=True, eq=False)
class Sn(Alg):
    kind: ClassVar[str] = "sn"
    story: ClassVar[str] = "Sequence Number"


# ---------------------------------------------------------------- encryption

def _aes_aead(fqn: str, names: str, v1: int, v2: int, icv: int, cipher: str,
              xfrm: str, salt: int, ike: bool) -> Encr:
    return Encr(fqn, tuple(names.split(",")), v2, None, v1, ike=ike, cipher=cipher,
                key_lengths=(128, 192, 256), keydeflen=128, block_size=16,
                pad_to_block=False, iv_size=8, salt_size=salt, icv_size=icv,
                xfrm_name=xfrm)


AES_CCM_16 = _aes_aead("AES_CCM_16", "aes_ccm,aes_ccm_16,aes_ccm_c", 16, 16, 16,
                       "aes-ccm", "rfc4309(ccm(aes))", 3, False)
AES_CCM_12 = _aes_aead("AES_CCM_12", "aes_ccm_12,aes_ccm_b", 15, 15, 12,
                       "aes-ccm", "rfc4309(ccm(aes))", 3, False)
AES_CCM_8 = _aes_aead("AES_CCM_8", "aes_ccm_8,aes_ccm_a", 14, 14, 8,
                      "aes-ccm", "rfc4309(ccm(aes))", 3, False)
TDES_CBC = Encr("3DES_CBC", ("3des", "3des_cbc"), 3, 5, 3, cipher="3des-cbc",
                key_lengths=(192,), keydeflen=192, keylen_omitted=True, block_size=8,
                iv_size=8, xfrm_name="cbc(des3_ede)")
CAMELLIA_CTR = Encr("CAMELLIA_CTR", ("camellia_ctr",), 24, 24, 24, ike=False, fips=False,
                    cipher="camellia-ctr", key_lengths=(128, 192, 256), keydeflen=128,
                    pad_to_block=False, iv_size=16, xfrm_name=None)
CAMELLIA_CBC = Encr("CAMELLIA_CBC", ("camellia", "camellia_cbc"), 23, 8, 22, fips=False,
                    cipher="camellia-cbc", key_lengths=(128, 192, 256), keydeflen=128,
                    xfrm_name="cbc(camellia)")
AES_GCM_16 = _aes_aead("AES_GCM_16", "aes_gcm,aes_gcm_16,aes_gcm_c", 20, 20, 16,
                       "aes-gcm", "rfc4106(gcm(aes))", 4, True)
AES_GCM_12 = _aes_aead("AES_GCM_12", "aes_gcm_12,aes_gcm_b", 19, 19, 12,
                       "aes-gcm", "rfc4106(gcm(aes))", 4, True)
AES_GCM_8 = _aes_aead("AES_GCM_8", "aes_gcm_8,aes_gcm_a", 18, 18, 8,
                      "aes-gcm", "rfc4106(gcm(aes))", 4, True)
AES_CTR = Encr("AES_CTR", ("aesctr", "aes_ctr"), 13, 13, 13, cipher="aes-ctr",
               key_lengths=(128, 192, 256), keydeflen=128, pad_to_block=False,
               iv_size=8, salt_size=4, xfrm_name="rfc3686(ctr(aes))")
AES_CBC = Encr("AES_CBC", ("aes", "aes_cbc"), 12, 7, 12, cipher="aes-cbc",
               key_lengths=(128, 192, 256), keydeflen=128, xfrm_name="cbc(aes)")
NULL_AUTH_AES_GMAC = Encr("NULL_AUTH_AES_GMAC", ("null_auth_aes_gmac", "aes_gmac"), 21,
                          None, 23, ike=False, cipher="aes-gmac",
                          key_lengths=(128, 192, 256), keydeflen=128, pad_to_block=False,
                          iv_size=8, salt_size=4, icv_size=16,
                          xfrm_name="rfc4543(gcm(aes))")
NULL_ENCR = Encr("NULL", ("null",), 11, None, 11, ike=False, fips=False, cipher="null",
                 key_lengths=(), keydeflen=0, keylen_omitted=True, block_size=1,
                 pad_to_block=False, iv_size=0, xfrm_name="ecb(cipher_null)")
CHACHA20_POLY1305 = Encr("CHACHA20_POLY1305", ("chacha20_poly1305", "chacha20poly1305"),
                         28, None, None, fips=False, cipher="chacha20-poly1305",
                         key_lengths=(256,), keydeflen=256, keylen_omitted=True,
                         block_size=16, pad_to_block=False, iv_size=8, salt_size=4,
                         icv_size=16, xfrm_name="rfc7539esp(chacha20,poly1305)")

ENCRYPT: tuple[Encr, ...] = (
    AES_CCM_16, AES_CCM_12, AES_CCM_8, TDES_CBC, CAMELLIA_CTR, CAMELLIA_CBC,
    AES_GCM_16, AES_GCM_12, AES_GCM_8, AES_CTR, AES_CBC, NULL_AUTH_AES_GMAC,
    NULL_ENCR, CHACHA20_POLY1305,
)

# ----------------------------------------------------------------------- PRF

PRF_HMAC_MD5 = Prf("HMAC_MD5", ("md5", "hmac_md5"), 1, 1, None, fips=False,
                   mac="hmac", hash_name="md5", key_size=16, output_size=16)
PRF_HMAC_SHA1 = Prf("HMAC_SHA1", ("sha", "sha1", "hmac_sha1"), 2, 2, None,
                    mac="hmac", hash_name="sha1", key_size=20, output_size=20)
PRF_HMAC_SHA2_256 = Prf("HMAC_SHA2_256", ("sha2", "sha256", "sha2_256", "hmac_sha2_256"),
                        5, 4, None, mac="hmac", hash_name="sha256", key_size=32,
                        output_size=32)
PRF_HMAC_SHA2_384 = Prf("HMAC_SHA2_384", ("sha384", "sha2_384", "hmac_sha2_384"), 6, 5,
                        None, mac="hmac", hash_name="sha384", key_size=48, output_size=48)
PRF_HMAC_SHA2_512 = Prf("HMAC_SHA2_512", ("sha512", "sha2_512", "hmac_sha2_512"), 7, 6,
                        None, mac="hmac", hash_name="sha512", key_size=64, output_size=64)
PRF_AES_XCBC = Prf("AES_XCBC", ("aes128_xcbc", "aes_xcbc"), 4, None, None, fips=False,
                   mac="xcbc", key_size=16, output_size=16)
# Libreswan has no AES-CMAC PRF; pyswan implements it (RFC 4615) but keeps it
# out of the proposal parser (no names) so ike= behaves exactly as Libreswan.
PRF_AES_CMAC = Prf("AES_CMAC", (), 8, None, None, mac="cmac", key_size=16,
                   output_size=16)

PRFS: tuple[Prf, ...] = (
    PRF_HMAC_MD5, PRF_HMAC_SHA1, PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384,
    PRF_HMAC_SHA2_512, PRF_AES_XCBC, PRF_AES_CMAC,
)

# ----------------------------------------------------------------- integrity

INTEG_HMAC_MD5_96 = Integ("HMAC_MD5_96", ("md5", "hmac_md5", "hmac_md5_96"), 1, 1, 1,
                          fips=False, mac="hmac", hash_name="md5", key_size=16,
                          icv_size=12, prf=PRF_HMAC_MD5, xfrm_name="hmac(md5)")
INTEG_HMAC_SHA1_96 = Integ("HMAC_SHA1_96",
                           ("sha", "sha1", "sha1_96", "hmac_sha1", "hmac_sha1_96"), 2, 2, 2,
                           mac="hmac", hash_name="sha1", key_size=20, icv_size=12,
                           prf=PRF_HMAC_SHA1, xfrm_name="hmac(sha1)")
INTEG_HMAC_SHA2_512_256 = Integ("HMAC_SHA2_512_256",
                                ("sha512", "sha2_512", "sha2_512_256", "hmac_sha2_512",
                                 "hmac_sha2_512_256"), 14, 6, 7,
                                mac="hmac", hash_name="sha512", key_size=64, icv_size=32,
                                prf=PRF_HMAC_SHA2_512, xfrm_name="hmac(sha512)")
INTEG_HMAC_SHA2_384_192 = Integ("HMAC_SHA2_384_192",
                                ("sha384", "sha2_384", "sha2_384_192", "hmac_sha2_384",
                                 "hmac_sha2_384_192"), 13, 5, 6,
                                mac="hmac", hash_name="sha384", key_size=48, icv_size=24,
                                prf=PRF_HMAC_SHA2_384, xfrm_name="hmac(sha384)")
INTEG_HMAC_SHA2_256_128 = Integ("HMAC_SHA2_256_128",
                                ("sha2", "sha256", "sha2_256", "sha2_256_128",
                                 "hmac_sha2_256", "hmac_sha2_256_128"), 12, 4, 5,
                                mac="hmac", hash_name="sha256", key_size=32, icv_size=16,
                                prf=PRF_HMAC_SHA2_256, xfrm_name="hmac(sha256)")
# Pre-RFC 4868 Linux truncation (96 bits); ESP/AH only, IKEv1 only on the wire.
INTEG_HMAC_SHA2_256_TRUNCBUG = Integ("HMAC_SHA2_256_TRUNCBUG", ("hmac_sha2_256_truncbug",),
                                     None, None, 252, ike=False, fips=False, mac="hmac",
                                     hash_name="sha256", key_size=32, icv_size=12,
                                     xfrm_name="hmac(sha256)")
INTEG_AES_XCBC_96 = Integ("AES_XCBC_96",
                          ("aes_xcbc", "aes128_xcbc", "aes_xcbc_96", "aes128_xcbc_96"),
                          5, None, 9, fips=False, mac="xcbc", key_size=16, icv_size=12,
                          prf=PRF_AES_XCBC, xfrm_name="xcbc(aes)")
INTEG_AES_CMAC_96 = Integ("AES_CMAC_96", ("aes_cmac", "aes_cmac_96"), 8, None, 250,
                          ike=False, mac="cmac", key_size=16, icv_size=12,
                          xfrm_name="cmac(aes)")
INTEG_NONE = Integ("NONE", ("none", "null"), 0, None, 0, mac="", key_size=0, icv_size=0,
                   xfrm_name="digest_null")

INTEGS: tuple[Integ, ...] = (
    INTEG_HMAC_MD5_96, INTEG_HMAC_SHA1_96, INTEG_HMAC_SHA2_512_256,
    INTEG_HMAC_SHA2_384_192, INTEG_HMAC_SHA2_256_128, INTEG_HMAC_SHA2_256_TRUNCBUG,
    INTEG_AES_XCBC_96, INTEG_AES_CMAC_96, INTEG_NONE,
)

# -------------------------------------------------------------- key exchange


def _modp(bits: int, group: int, alias: str, fips: bool = True) -> Ke:
    return Ke(f"MODP{bits}", (f"modp{bits}", alias), group, group, group, fips=fips,
              family="modp", size=bits // 8, responder_size=bits // 8)


def _ecp(bits: int, group: int) -> Ke:
    coord = (bits + 7) // 8
    return Ke(f"DH{group}", (f"dh{group}", f"ecp_{bits}", f"ecp{bits}"), group, group, group,
              family="ecp", size=2 * coord, responder_size=2 * coord)


KE_NONE = Ke("NONE", ("none", "null", "dh0"), 0, None, None, family="none")
MODP1536 = _modp(1536, 5, "dh5", fips=False)
MODP2048 = _modp(2048, 14, "dh14")
MODP3072 = _modp(3072, 15, "dh15")
MODP4096 = _modp(4096, 16, "dh16")
MODP6144 = _modp(6144, 17, "dh17")
MODP8192 = _modp(8192, 18, "dh18")
DH19 = _ecp(256, 19)
DH20 = _ecp(384, 20)
DH21 = _ecp(521, 21)
DH31 = Ke("DH31", ("dh31", "curve25519"), 31, 31, 31, fips=False, family="ecx",
          size=32, responder_size=32)
# Curve448 (RFC 8031) is an extension: Libreswan 5.x does not build it.
DH32 = Ke("DH32", ("dh32", "curve448", "x448"), 32, 32, 32, fips=False, family="ecx",
          size=56, responder_size=56)
ML_KEM_768 = Ke("ML_KEM_768", ("ml_kem_768", "mlkem768"), 36, fips=False, family="mlkem",
                size=1184, responder_size=1088)
ML_KEM_1024 = Ke("ML_KEM_1024", ("ml_kem_1024", "mlkem1024"), 37, fips=False,
                 family="mlkem", size=1568, responder_size=1568)

KES: tuple[Ke, ...] = (
    KE_NONE, MODP1536, MODP2048, MODP3072, MODP4096, MODP6144, MODP8192,
    DH19, DH20, DH21, DH31, DH32, ML_KEM_768, ML_KEM_1024,
)

# ------------------------------------------------------------ sequence number

SN_32_BIT = Sn("32_BIT_SEQUENTIAL", ("32_bit_sequential", "no"), 0)
SN_PARTIAL_64_BIT = Sn("PARTIAL_64_BIT_SEQUENTIAL", ("partial_64_bit_sequential", "yes"), 1)
SN_32_BIT_UNSPECIFIED = Sn("32_BIT_UNSPECIFIED", ("32_bit_unspecified", "32bit"), 2)

SNS: tuple[Sn, ...] = (SN_32_BIT, SN_PARTIAL_64_BIT, SN_32_BIT_UNSPECIFIED)

# ----------------------------------------------------------------- registries

REGISTRY: dict[str, tuple[Alg, ...]] = {
    "encrypt": ENCRYPT,
    "prf": PRFS,
    "integ": INTEGS,
    "ke": KES,
    "sn": SNS,
}

#: Story strings by kind (used in Libreswan's error messages).
STORY: dict[str, str] = {cls.kind: cls.story for cls in (Encr, Prf, Integ, Ke, Sn)}


def _index(algs: tuple[Alg, ...]) -> dict[int, Alg]:
    table: dict[int, Alg] = {}
    for alg in algs:
        if alg.ikev2_id is not None:
            table.setdefault(alg.ikev2_id, alg)
    return table


_ENCR_BY_ID = _index(ENCRYPT)
_PRF_BY_ID = _index(PRFS)
_INTEG_BY_ID = _index(INTEGS)
_KE_BY_ID = _index(KES)
_SN_BY_ID = _index(SNS)

_BY_TRANSFORM_TYPE: dict[int, dict[int, Alg]] = {
    TransformType.ENCR: _ENCR_BY_ID,
    TransformType.PRF: _PRF_BY_ID,
    TransformType.INTEG: _INTEG_BY_ID,
    TransformType.KE: _KE_BY_ID,
    TransformType.SN: _SN_BY_ID,
    **{t: _KE_BY_ID for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1)},
}


def encr_by_id(ikev2_id: int) -> Encr | None:
    return _ENCR_BY_ID.get(ikev2_id)  # type: ignore[return-value]


def prf_by_id(ikev2_id: int) -> Prf | None:
    return _PRF_BY_ID.get(ikev2_id)  # type: ignore[return-value]


def integ_by_id(ikev2_id: int) -> Integ | None:
    return _INTEG_BY_ID.get(ikev2_id)  # type: ignore[return-value]


def ke_by_id(ikev2_id: int) -> Ke | None:
    return _KE_BY_ID.get(ikev2_id)  # type: ignore[return-value]


def sn_by_id(ikev2_id: int) -> Sn | None:
    return _SN_BY_ID.get(ikev2_id)  # type: ignore[return-value]


def by_transform(transform_type: int, transform_id: int) -> Alg | None:
    """The algorithm for an IKEv2 (type, id) pair, or None."""
    table = _BY_TRANSFORM_TYPE.get(transform_type)
    return None if table is None else table.get(transform_id)


def enabled(kind: str, fips: bool = False) -> tuple[Alg, ...]:
    """Algorithms of a kind, minus the non-FIPS ones when ``fips``."""
    algs = REGISTRY[kind]
    return tuple(a for a in algs if a.fips) if fips else algs


def by_name(kind: str, name: str, fips: bool = False) -> Alg | None:
    """First algorithm of ``kind`` one of whose names matches (case-insensitive)."""
    lname = name.lower()
    for alg in REGISTRY[kind]:
        if fips and not alg.fips:
            continue
        if lname in alg.names:
            return alg
    return None


def by_fqn(kind: str, fqn: str) -> Alg | None:
    for alg in REGISTRY[kind]:
        if alg.fqn == fqn:
            return alg
    return None


def integ_for_prf(prf: Prf, fips: bool = False) -> Integ | None:
    """The first integrity algorithm implemented with ``prf`` (Libreswan order)."""
    for integ in INTEGS:
        if fips and not integ.fips:
            continue
        if integ.prf is prf:
            return integ
    return None


# Names Libreswan knows from its IANA enum tables but does not implement.
# A lookup that fails against the registry but matches one of these is
# reported as "is not supported" instead of "is not recognized".  The names
# may also be written with the enum prefix (e.g. "ikev2_encr_des").
_KNOWN_NAMES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "encrypt": (
        ("oakley_", "ikev1_esp_", "ikev2_encr_"),
        frozenset("""
            des_cbc idea_cbc blowfish_cbc rc5_r16_b64_cbc 3des_cbc cast_cbc aes_cbc
            camellia_cbc aes_ctr aes_ccm_8 aes_ccm_12 aes_ccm_16 aes_gcm_8 aes_gcm_12
            aes_gcm_16 camellia_ctr camellia_ccm_8 camellia_ccm_12 camellia_ccm_16
            mars_cbc rc6_cbc serpent_cbc twofish_cbc twofish_cbc_ssh
            des_iv64 des 3des rc5 idea cast blowfish 3idea des_iv32 rc4 null aes
            seed_cbc camellia null_auth_aes_gmac mars rc6 kame_null serpent twofish
            chacha20_poly1305 aes_ccm_8_iiv aes_gcm_16_iiv chacha20_poly1305_iiv
            kuznyechik_mgm_ktree magma_mgm_ktree kuznyechik_mgm_mac_ktree
            magma_mgm_mac_ktree
        """.split()),
    ),
    "prf": (
        ("oakley_", "ikev2_prf_"),
        frozenset("""
            md5 sha1 tiger sha2_256 sha2_384 sha2_512 hmac_md5 hmac_sha1 hmac_tiger
            aes128_xcbc hmac_sha2_256 hmac_sha2_384 hmac_sha2_512 aes128_cmac
            hmac_streebog_512
        """.split()),
    ),
    "integ": (
        ("oakley_", "auth_algorithm_", "ikev2_integ_"),
        frozenset("""
            md5 sha1 tiger sha2_256 sha2_384 sha2_512 none hmac_md5 hmac_sha1 des_mac
            kpdk hmac_sha2_256 hmac_sha2_384 hmac_sha2_512 hmac_ripemd aes_xcbc sig_rsa
            aes_128_gmac aes_192_gmac aes_256_gmac aes_cmac_96 null_kame
            hmac_sha2_256_truncbug hmac_md5_96 hmac_sha1_96 kpdk_md5 aes_xcbc_96
            hmac_md5_128 hmac_sha1_160 hmac_sha2_256_128 hmac_sha2_384_192
            hmac_sha2_512_256
        """.split()),
    ),
    "ke": (
        ("oakley_group_", "ikev2_ke_"),
        frozenset("""
            none modp768 modp1024 gp155 gp185 modp1536 ec2n_2_1 ec2n_2_2 ec2n_2_3
            ec2n_2_4 ec2n_2_5 ec2n_2_6 ec2n_2_7 ec2n_2_8 modp2048 modp3072 modp4096
            modp6144 modp8192 ecp_256 ecp_384 ecp_521 dh22 dh23 dh24 ecp_192 ecp_224
            brainpool_p224r1 brainpool_p256r1 brainpool_p384r1 brainpool_p512r1
            curve25519 curve448 gost3410_2012_256 gost3410_2012_512 ml_kem_512
            ml_kem_768 ml_kem_1024
        """.split()),
    ),
    "sn": (
        ("ikev2_sn_",),
        frozenset("32_bit_sequential partial_64_bit_sequential 32_bit_unspecified".split()),
    ),
}


def is_known_name(kind: str, name: str) -> bool:
    """True when ``name`` is an IANA name Libreswan knows but may not implement."""
    prefixes, names = _KNOWN_NAMES[kind]
    lname = name.lower()
    if lname in names:
        return True
    return any(lname.startswith(p) and lname[len(p):] in names for p in prefixes)
