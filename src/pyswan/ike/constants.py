"""IKEv2 protocol numbers (RFC 7296 and the IANA "IKEv2 Parameters" registry).

Member names are the short names Libreswan prints in its logs: ``ExchangeType.IKE_SA_INIT``
prints as ``IKE_SA_INIT``, ``NotifyType.AUTHENTICATION_FAILED`` as ``AUTHENTICATION_FAILED``
(Libreswan strips its ``v2N_`` prefix) and ``PayloadType.N`` as ``N``, so a log line can be built
from ``.name`` alone.  Readable aliases (``PayloadType.NOTIFY``, ``TransformType.DH``, ...) are
provided where the Libreswan name is terse; an alias never changes ``.name``.

This module imports nothing outside the standard library so that the whack client can use it
without paying for the rest of the engine.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

IKEV2_MAJOR_VERSION = 2
IKEV2_MINOR_VERSION = 0
IKE_HEADER_SIZE = 28
GENERIC_PAYLOAD_HEADER_SIZE = 4
NONCE_MIN_SIZE = 16  # RFC 7296 3.9
NONCE_MAX_SIZE = 256
NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948: prefixes IKE on UDP 4500

# Transform attributes (RFC 7296 3.3.5): the Attribute Format bit selects TV (AF=1, value in
# the length field) or TLV (AF=0); Key Length is the only attribute IKEv2 defines.
ATTRIBUTE_FORMAT_TV = 0x8000
TRANSFORM_ATTR_KEY_LENGTH = 14

# "Last Substruc" values (RFC 7296 3.3.1 / 3.3.2).
LAST_SUBSTRUCTURE = 0
MORE_PROPOSALS = 2
MORE_TRANSFORMS = 3


class HeaderFlag(IntFlag):
    """Flags octet of the IKE header (RFC 7296 3.1)."""

    NONE = 0
    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


FLAG_INITIATOR = HeaderFlag.INITIATOR
FLAG_VERSION = HeaderFlag.VERSION
FLAG_RESPONSE = HeaderFlag.RESPONSE


class ExchangeType(IntEnum):
    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38  # RFC 5723
    GSA_AUTH = 39  # G-IKEv2
    GSA_REGISTRATION = 40
    GSA_REKEY = 41
    IKE_INTERMEDIATE = 43  # RFC 9242
    IKE_FOLLOWUP_KE = 44  # RFC 9370


class PayloadType(IntEnum):
    """Next Payload values; the names are Libreswan's short payload names."""

    NONE = 0
    SA = 33
    KE = 34
    IDi = 35
    IDr = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    Ni = 40  # Libreswan prints the nonce as "Ni" in both directions
    N = 41
    D = 42
    V = 43
    TSi = 44
    TSr = 45
    SK = 46
    CP = 47
    EAP = 48
    GSPM = 49  # RFC 6467
    IDG = 50  # G-IKEv2
    GSA = 51
    KD = 52
    SKF = 53  # RFC 7383
    PS = 54  # RFC 8019 puzzle solution
    # readable aliases
    NONCE = 40
    Nr = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    ENCRYPTED = 46
    ENCRYPTED_FRAGMENT = 53


class TransformType(IntEnum):
    ENCR = 1
    PRF = 2
    INTEG = 3
    KE = 4
    ESN = 5
    ADDKE1 = 6  # RFC 9370
    ADDKE2 = 7
    ADDKE3 = 8
    ADDKE4 = 9
    ADDKE5 = 10
    ADDKE6 = 11
    ADDKE7 = 12
    DH = 4  # the RFC 7296 name
    SN = 5  # draft-ietf-ipsecme-ikev2-rename-esn, as Libreswan 5 calls it


class ProtocolId(IntEnum):
    NONE = 0  # Notify about no particular SA
    IKE = 1
    AH = 2
    ESP = 3


class EncrId(IntEnum):
    DES_IV64 = 1
    DES = 2
    TRIPLE_DES = 3  # "3DES"
    RC5 = 4
    IDEA = 5
    CAST = 6
    BLOWFISH = 7
    THREE_IDEA = 8
    DES_IV32 = 9
    NULL = 11
    AES_CBC = 12
    AES_CTR = 13
    AES_CCM_8 = 14
    AES_CCM_12 = 15
    AES_CCM_16 = 16
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    NULL_AUTH_AES_GMAC = 21
    CAMELLIA_CBC = 23
    CAMELLIA_CTR = 24
    CAMELLIA_CCM_8 = 25
    CAMELLIA_CCM_12 = 26
    CAMELLIA_CCM_16 = 27
    CHACHA20_POLY1305 = 28
    AES_CCM_8_IIV = 29  # RFC 8750
    AES_GCM_16_IIV = 30
    CHACHA20_POLY1305_IIV = 31


class PrfId(IntEnum):
    HMAC_MD5 = 1
    HMAC_SHA1 = 2
    HMAC_TIGER = 3
    AES128_XCBC = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    AES128_CMAC = 8


class IntegId(IntEnum):
    NONE = 0
    HMAC_MD5_96 = 1
    HMAC_SHA1_96 = 2
    DES_MAC = 3
    KPDK_MD5 = 4
    AES_XCBC_96 = 5
    HMAC_MD5_128 = 6
    HMAC_SHA1_160 = 7
    AES_CMAC_96 = 8
    AES_128_GMAC = 9
    AES_192_GMAC = 10
    AES_256_GMAC = 11
    HMAC_SHA2_256_128 = 12
    HMAC_SHA2_384_192 = 13
    HMAC_SHA2_512_256 = 14


class KeMethod(IntEnum):
    """Transform type 4 IDs (Diffie-Hellman groups and KEMs)."""

    NONE = 0
    MODP768 = 1
    MODP1024 = 2
    MODP1536 = 5
    MODP2048 = 14
    MODP3072 = 15
    MODP4096 = 16
    MODP6144 = 17
    MODP8192 = 18
    DH19 = 19  # 256-bit random ECP (RFC 5903)
    DH20 = 20
    DH21 = 21
    MODP1024_S160 = 22  # RFC 5114
    MODP2048_S224 = 23
    MODP2048_S256 = 24
    DH25 = 25
    DH26 = 26
    BRAINPOOL_P224R1 = 27  # RFC 6954
    BRAINPOOL_P256R1 = 28
    BRAINPOOL_P384R1 = 29
    BRAINPOOL_P512R1 = 30
    DH31 = 31  # Curve25519 (RFC 8031)
    DH32 = 32  # Curve448
    ML_KEM_512 = 35
    ML_KEM_768 = 36
    ML_KEM_1024 = 37
    # readable aliases
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    CURVE25519 = 31
    CURVE448 = 32


DhGroup = KeMethod


class EsnId(IntEnum):
    NO = 0
    YES = 1


class IdType(IntEnum):
    IPV4_ADDR = 1
    FQDN = 2
    RFC822_ADDR = 3
    IPV6_ADDR = 5
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11
    FC_NAME = 12  # RFC 4595
    NULL = 13  # RFC 7619


class AuthMethod(IntEnum):
    RSA = 1  # RSA digital signature (PKCS#1 v1.5 over SHA-1)
    PSK = 2  # shared key message integrity code
    DSS = 3
    ECDSA_256 = 9  # RFC 4754
    ECDSA_384 = 10
    ECDSA_521 = 11
    GSPAM = 12  # RFC 6467 generic secure password
    NULL = 13  # RFC 7619
    DIGITAL_SIGNATURE = 14  # RFC 7427
    # IANA names
    RSA_DIGITAL_SIGNATURE = 1
    SHARED_KEY_MAC = 2


class NotifyType(IntEnum):
    # error types (1..16383)
    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    UNACCEPTABLE_ADDRESSES = 40  # RFC 4555
    UNEXPECTED_NAT_DETECTED = 41  # RFC 4555
    USE_ASSIGNED_HoA = 42  # RFC 5026
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INVALID_GROUP_ID = 45  # G-IKEv2
    AUTHORIZATION_FAILED = 46  # G-IKEv2
    STATE_NOT_FOUND = 47  # RFC 9370
    TS_MAX_QUEUE = 48  # RFC 9611
    # status types (16384..)
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396  # RFC 4555
    ADDITIONAL_IP4_ADDRESS = 16397
    ADDITIONAL_IP6_ADDRESS = 16398
    NO_ADDITIONAL_ADDRESSES = 16399
    UPDATE_SA_ADDRESSES = 16400
    COOKIE2 = 16401
    NO_NATS_ALLOWED = 16402
    AUTH_LIFETIME = 16403  # RFC 4478
    MULTIPLE_AUTH_SUPPORTED = 16404  # RFC 4739
    ANOTHER_AUTH_FOLLOWS = 16405
    REDIRECT_SUPPORTED = 16406  # RFC 5685
    REDIRECT = 16407
    REDIRECTED_FROM = 16408
    TICKET_LT_OPAQUE = 16409  # RFC 5723
    TICKET_REQUEST = 16410
    TICKET_ACK = 16411
    TICKET_NACK = 16412
    TICKET_OPAQUE = 16413
    LINK_ID = 16414
    USE_WESP_MODE = 16415
    ROHC_SUPPORTED = 16416
    EAP_ONLY_AUTHENTICATION = 16417  # RFC 5998
    CHILDLESS_IKEV2_SUPPORTED = 16418  # RFC 6023
    QUICK_CRASH_DETECTION = 16419
    IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420  # RFC 6311
    IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421
    IKEV2_MESSAGE_ID_SYNC = 16422
    IPSEC_REPLAY_COUNTER_SYNC = 16423
    SECURE_PASSWORD_METHODS = 16424
    PSK_PERSIST = 16425
    PSK_CONFIRM = 16426
    ERX_SUPPORTED = 16427
    IFOM_CAPABILITY = 16428
    SENDER_REQUEST_ID = 16429
    IKEV2_FRAGMENTATION_SUPPORTED = 16430  # RFC 7383
    SIGNATURE_HASH_ALGORITHMS = 16431  # RFC 7427
    CLONE_IKE_SA_SUPPORTED = 16432
    CLONE_IKE_SA = 16433
    PUZZLE = 16434  # RFC 8019
    USE_PPK = 16435  # RFC 8784
    PPK_IDENTITY = 16436
    NO_PPK_AUTH = 16437
    INTERMEDIATE_EXCHANGE_SUPPORTED = 16438  # RFC 9242
    IP4_ALLOWED = 16439  # RFC 8983
    IP6_ALLOWED = 16440
    ADDITIONAL_KEY_EXCHANGE = 16441  # RFC 9370
    USE_AGGFRAG = 16442  # RFC 9347
    SUPPORTED_AUTH_METHODS = 16443
    SA_RESOURCE_INFO = 16444  # RFC 9611
    # private use, as Libreswan assigns it
    NULL_AUTH = 40960

    @property
    def is_error(self) -> bool:
        return notify_is_error(self)


def notify_is_error(value: int) -> bool:
    """Types below 16384 report errors (RFC 7296 3.10.1)."""
    return 0 < value < 16384


class TsType(IntEnum):
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    FC_ADDR_RANGE = 9  # RFC 4595
    SECLABEL = 10  # RFC 9478


class CfgType(IntEnum):
    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


class ConfigAttribute(IntEnum):
    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    MIP6_HOME_PREFIX = 16
    INTERNAL_IP6_LINK = 17
    INTERNAL_IP6_PREFIX = 18
    HOME_AGENT_ADDRESS = 19
    P_CSCF_IP4_ADDRESS = 20
    P_CSCF_IP6_ADDRESS = 21
    FTT_KAT = 22
    EXTERNAL_SOURCE_IP4_NAT_INFO = 23
    TIMEOUT_PERIOD_FOR_LIVENESS_CHECK = 24
    INTERNAL_DNS_DOMAIN = 25  # RFC 8598
    INTERNAL_DNSSEC_TA = 26


class CertEncoding(IntEnum):
    PKCS7_X509 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIG = 4
    KERBEROS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10
    RAW_RSA = 11
    HASH_URL_X509_CERT = 12
    HASH_URL_X509_BUNDLE = 13
    OCSP_CONTENT = 14  # RFC 4806
    RAW_PUBLIC_KEY = 15  # RFC 7670


# --- names for logs --------------------------------------------------------------------------


def enum_name(enum_cls: type[IntEnum], value: int) -> str:
    """Libreswan-style short name of ``value``, or ``"<value>?"`` when it has none."""
    member = enum_cls._value2member_map_.get(value)
    return member.name if member is not None else f"{value}?"


def exchange_name(value: int) -> str:
    return enum_name(ExchangeType, value)


def payload_name(value: int) -> str:
    return enum_name(PayloadType, value)


def notify_name(value: int) -> str:
    return enum_name(NotifyType, value)


def transform_id_name(transform_type: int, transform_id: int) -> str:
    """Name of a transform ID within its type (e.g. ``AES_GCM_16``, ``DH19``)."""
    table = _TRANSFORM_ID_ENUMS.get(transform_type)
    if table is None:
        return str(transform_id)
    return enum_name(table, transform_id)


_TRANSFORM_ID_ENUMS: dict[int, type[IntEnum]] = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.KE: KeMethod,
    TransformType.ESN: EsnId,
    **{t: KeMethod for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1)},
}
