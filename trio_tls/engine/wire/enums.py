"""Wire constants from the TLS registries (RFC 5246 §7.2, §7.4, RFC 8446 §4, IANA TLS parameters).

Messages keep wire values as plain ints, so a value we do not know (GREASE, a new extension) stays
what it was on the wire; these IntEnums compare equal to those ints and name the ones we act on.
"""

from enum import IntEnum

TLS10 = 0x0301
TLS12 = 0x0303
TLS13 = 0x0304


class ContentType(IntEnum):
    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23


class HandshakeType(IntEnum):
    hello_request = 0
    client_hello = 1
    server_hello = 2
    new_session_ticket = 4
    end_of_early_data = 5
    encrypted_extensions = 8
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    finished = 20
    key_update = 24
    message_hash = 254  # RFC 8446 §4.4.1: stands for ClientHello1 in the transcript after HRR


class AlertLevel(IntEnum):
    warning = 1
    fatal = 2


class AlertDescription(IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


def alert_name(description: int) -> str:
    """An alert's RFC name (unknown_ca), or alert(N) for one we do not know."""
    try:
        return AlertDescription(description).name
    except ValueError:
        return f"alert({description})"


class ExtensionType(IntEnum):
    server_name = 0
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    application_layer_protocol_negotiation = 16
    extended_master_secret = 23
    session_ticket = 35
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    renegotiation_info = 0xFF01


class NamedGroup(IntEnum):
    secp256r1 = 23
    secp384r1 = 24
    x25519 = 29
    X25519MLKEM768 = 0x11EC


class SignatureScheme(IntEnum):
    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    # Named for the trace only: we never sign or verify with these.
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B


class ECPointFormat(IntEnum):
    uncompressed = 0


class PskKeyExchangeMode(IntEnum):
    """RFC 8446 §4.2.9: resumption alone, or resumption with a fresh (EC)DHE exchange."""

    psk_ke = 0
    psk_dhe_ke = 1


class KeyUpdateRequest(IntEnum):
    """RFC 8446 §4.6.3: whether the receiver of a KeyUpdate must answer with its own."""

    update_not_requested = 0
    update_requested = 1


# Signalling cipher suite values: not suites, flags carried in the cipher_suites list.
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746 §3.3
TLS_FALLBACK_SCSV = 0x5600  # RFC 7507 §2

CURVE_TYPE_NAMED_CURVE = 3  # RFC 8422 §5.4 ECCurveType.named_curve
COMPRESSION_NULL = 0

# RFC 8446 §4.1.3: a ServerHello whose random is SHA-256("HelloRetryRequest") is a
# HelloRetryRequest; and a TLS 1.3 server that negotiates TLS 1.2 ends its random with
# DOWNGRD\x01, which a 1.3 client checks to detect a downgrade.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
TLS13_DOWNGRADE_TLS12 = b"DOWNGRD\x01"
