"""ISAKMP / IKEv1 numbers: RFC 2408 (ISAKMP), RFC 2407 (IPsec DOI), RFC 2409 (IKE),
RFC 3947 (NAT-T), RFC 3706 (DPD), draft-beaulieu-ike-xauth / draft-dukes-ike-mode-cfg."""

from __future__ import annotations

from enum import IntEnum, IntFlag

ISAKMP_VERSION = 0x10  # major 1, minor 0
DOI_IPSEC = 1
SIT_IDENTITY_ONLY = 1


class Flag(IntFlag):
    ENCRYPTION = 0x01  # E
    COMMIT = 0x02  # C
    AUTH_ONLY = 0x04  # A


class Exchange(IntEnum):
    BASE = 1
    MAIN = 2  # Identity Protection
    AUTH_ONLY = 3
    AGGRESSIVE = 4
    INFO = 5
    MODE_CFG = 6  # ISAKMP_XCHG_TRANSACTION (XAUTH, ModeCfg)
    QUICK = 32
    NEW_GROUP = 33


class Payload(IntEnum):
    NONE = 0
    SA = 1
    P = 2
    T = 3
    KE = 4
    ID = 5
    CERT = 6
    CR = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    N = 11
    D = 12
    VID = 13
    ATTR = 14  # ModeCfg / XAUTH attribute payload
    NAT_D = 20  # RFC 3947
    NAT_OA = 21
    NAT_D_DRAFTS = 130  # draft-ietf-ipsec-nat-t-ike-0[1-3]
    NAT_OA_DRAFTS = 131
    IKE_FRAGMENTATION = 132


class ProtocolId(IntEnum):
    ISAKMP = 1
    AH = 2
    ESP = 3
    IPCOMP = 4


KEY_IKE = 1  # the one transform ID of PROTO_ISAKMP


class NotifyType(IntEnum):
    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    R_U_THERE = 36136  # RFC 3706
    R_U_THERE_ACK = 36137


class IdType(IntEnum):
    """RFC 2407 4.6.2.1."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class IkeAttr(IntEnum):
    """Phase 1 SA attributes (RFC 2409 appendix A); B = basic only, V = variable."""

    ENCRYPTION = 1  # B
    HASH = 2  # B
    AUTH_METHOD = 3  # B
    GROUP_DESCRIPTION = 4  # B
    GROUP_TYPE = 5  # B
    GROUP_PRIME = 6  # V
    GROUP_GENERATOR_ONE = 7  # V
    GROUP_GENERATOR_TWO = 8  # V
    GROUP_CURVE_A = 9  # V
    GROUP_CURVE_B = 10  # V
    LIFE_TYPE = 11  # B
    LIFE_DURATION = 12  # V
    PRF = 13  # B
    KEY_LENGTH = 14  # B
    FIELD_SIZE = 15  # B
    GROUP_ORDER = 16  # V


IKE_BASIC_ONLY = frozenset({1, 2, 3, 4, 5, 11, 13, 14, 15})


class IpsecAttr(IntEnum):
    """Phase 2 SA attributes (RFC 2407 4.5)."""

    LIFE_TYPE = 1  # B
    LIFE_DURATION = 2  # V
    GROUP_DESCRIPTION = 3  # B
    ENCAPSULATION_MODE = 4  # B
    AUTH_ALGORITHM = 5  # B
    KEY_LENGTH = 6  # B
    KEY_ROUNDS = 7  # B
    COMPRESS_DICT_SIZE = 8  # B
    COMPRESS_PRIVATE_ALG = 9  # V
    ECN_TUNNEL = 10  # B
    ESN = 11  # B (RFC 4304)


IPSEC_BASIC_ONLY = frozenset({1, 3, 4, 5, 6, 7, 8, 10, 11})


class AuthMethod(IntEnum):
    PRESHARED_KEY = 1
    DSS_SIG = 2
    RSA_SIG = 3
    RSA_ENC = 4
    RSA_REVISED_ENC = 5
    ECDSA_P256_SHA256 = 9
    ECDSA_P384_SHA384 = 10
    ECDSA_P521_SHA512 = 11
    XAUTH_INIT_PRESHARED = 65001
    XAUTH_RESP_PRESHARED = 65002
    XAUTH_INIT_RSA = 65005
    XAUTH_RESP_RSA = 65006


class LifeType(IntEnum):
    SECONDS = 1
    KILOBYTES = 2


class EncapMode(IntEnum):
    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3  # RFC 3947
    UDP_TRANSPORT = 4
    UDP_TUNNEL_DRAFTS = 61443
    UDP_TRANSPORT_DRAFTS = 61444


class CfgMessage(IntEnum):
    """ISAKMP_CFG message types of the attribute payload."""

    REQUEST = 1
    REPLY = 2
    SET = 3
    ACK = 4


class CfgAttr(IntEnum):
    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_ADDRESS_EXPIRY = 5
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_NETMASK = 9
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_NBNS = 11
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    XAUTH_TYPE = 16520
    XAUTH_USER_NAME = 16521
    XAUTH_USER_PASSWORD = 16522
    XAUTH_PASSCODE = 16523
    XAUTH_MESSAGE = 16524
    XAUTH_CHALLENGE = 16525
    XAUTH_DOMAIN = 16526
    XAUTH_STATUS = 16527
    XAUTH_NEXT_PIN = 16528
    XAUTH_ANSWER = 16529
    MODECFG_DOMAIN = 28674  # Cisco Unity
    MODECFG_BANNER = 28672


class CertEncoding(IntEnum):
    PKCS7 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    X509_KEY_EXCHANGE = 5
    KERBEROS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10


# Vendor IDs Libreswan sends and recognises (lib/libswan/vendorid.c)
VID_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")  # "RFC 3947" MD5
VID_NATT_DRAFT_02N = bytes.fromhex("90cb80913ebb696e086381b5ec427b1f")  # ...-02\n
VID_NATT_DRAFT_03 = bytes.fromhex("7d9419a65310ca6f2c179d9215529d56")
VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")  # RFC 3706
VID_XAUTH = bytes.fromhex("09002689dfd6b712")
VID_FRAGMENTATION = bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3")  # Cisco/IKE frag
VID_CISCO_UNITY = bytes.fromhex("12f5f28c457168a9702d9fe274cc0100")


def name_of(enum_cls: type[IntEnum], value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)
