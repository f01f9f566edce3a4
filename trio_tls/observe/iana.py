"""Names for the wire values a ClientHello carries, from the IANA TLS registries, for display.

The engine acts on a few values and names those in enums.py; a person reading a real
ClientHello meets many more: TLS 1.3 and CBC suites, post-quantum groups, ML-DSA signature
schemes, browser extensions. These tables name them, so that a trace or the inspect page shows
`TLS_AES_128_GCM_SHA256` rather than 4865. A value in no table is "unknown", and a GREASE value
(RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA, which clients send to keep servers tolerant of values
they do not know) is "GREASE" wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..engine.crypto.suites import ALL_SUITES

UNKNOWN = "unknown"
GREASE = "GREASE"

# RFC 8701 §2 reserves these one-byte values for PskKeyExchangeMode GREASE.
_GREASE_PSK_MODES = frozenset({0x0B, 0x2A, 0x49, 0x68, 0x87, 0xA6, 0xC5, 0xE4})


def is_grease(value: int) -> bool:
    """RFC 8701 §2: both bytes equal, each 0x?A."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


@attrs.frozen
class Code:
    """A wire value with its registry name; `grease` marks an RFC 8701 value, and `size` is
    the field's width in bytes (for the hex form, 0x002f rather than 0x2f)."""

    value: int
    name: str
    grease: bool = False
    size: int = 2

    @property
    def hex(self) -> str:
        return f"0x{self.value:0{2 * self.size}x}"


def _lookup(table: Mapping[int, str], value: int, *, grease: bool, size: int = 2) -> Code:
    return Code(value, GREASE if grease else table.get(value, UNKNOWN), grease, size)


CIPHER_SUITES: dict[int, str] = {
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x00A2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
    0x00A3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",  # RFC 5746 §3.3: a signal, not a suite
    0x1301: "TLS_AES_128_GCM_SHA256",  # TLS 1.3 suites (RFC 8446 §B.4)
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0x5600: "TLS_FALLBACK_SCSV",  # RFC 7507 §2: a signal, not a suite
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
    0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
    0xC0A0: "TLS_RSA_WITH_AES_128_CCM_8",
    0xC0A1: "TLS_RSA_WITH_AES_256_CCM_8",
    0xC0A2: "TLS_DHE_RSA_WITH_AES_128_CCM_8",
    0xC0A3: "TLS_DHE_RSA_WITH_AES_256_CCM_8",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    # The suites this server implements, named by their own table.
    **{suite.id: suite.name for suite in ALL_SUITES},
}

EXTENSIONS: dict[int, str] = {
    0: "server_name",
    1: "max_fragment_length",
    5: "status_request",
    10: "supported_groups",
    11: "ec_point_formats",
    13: "signature_algorithms",
    14: "use_srtp",
    15: "heartbeat",
    16: "application_layer_protocol_negotiation",
    17: "status_request_v2",
    18: "signed_certificate_timestamp",
    19: "client_certificate_type",
    20: "server_certificate_type",
    21: "padding",
    22: "encrypt_then_mac",
    23: "extended_master_secret",
    24: "token_binding",
    27: "compress_certificate",
    28: "record_size_limit",
    34: "delegated_credential",
    35: "session_ticket",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    44: "cookie",
    45: "psk_key_exchange_modes",
    47: "certificate_authorities",
    48: "oid_filters",
    49: "post_handshake_auth",
    50: "signature_algorithms_cert",
    51: "key_share",
    57: "quic_transport_parameters",
    0x3374: "next_protocol_negotiation",  # NPN, never registered; ALPN replaced it
    # ALPS (draft-vvv-tls-alps), Chromium's codepoints: the old one and the new one.
    0x4469: "application_settings_old",
    0x44CD: "application_settings",
    0xCA34: "trust_anchors",  # Chromium's codepoint for draft-ietf-tls-trust-anchor-ids
    0xFE0D: "encrypted_client_hello",
    0xFF01: "renegotiation_info",
}

# Where each extension is defined, for a reader who wants the whole story.
EXTENSION_SPECS: dict[int, str] = {
    0: "RFC 6066 §3",
    1: "RFC 6066 §4",
    5: "RFC 6066 §8",
    10: "RFC 8422 §5.1.1, RFC 8446 §4.2.7",
    11: "RFC 8422 §5.1.2",
    13: "RFC 5246 §7.4.1.4.1, RFC 8446 §4.2.3",
    16: "RFC 7301",
    18: "RFC 6962 §3.3.1",
    21: "RFC 7685",
    22: "RFC 7366",
    23: "RFC 7627",
    27: "RFC 8879",
    28: "RFC 8449",
    34: "RFC 9345",
    35: "RFC 5077",
    41: "RFC 8446 §4.2.11",
    42: "RFC 8446 §4.2.10",
    43: "RFC 8446 §4.2.1",
    44: "RFC 8446 §4.2.2",
    45: "RFC 8446 §4.2.9",
    49: "RFC 8446 §4.2.6",
    50: "RFC 8446 §4.2.3",
    51: "RFC 8446 §4.2.8",
    0x4469: "draft-vvv-tls-alps",
    0x44CD: "draft-vvv-tls-alps",
    0xCA34: "draft-ietf-tls-trust-anchor-ids",
    0xFE0D: "draft-ietf-tls-esni",
    0xFF01: "RFC 5746",
}

SUPPORTED_GROUPS: dict[int, str] = {
    23: "secp256r1",
    24: "secp384r1",
    25: "secp521r1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    29: "x25519",
    30: "x448",
    31: "brainpoolP256r1tls13",
    32: "brainpoolP384r1tls13",
    33: "brainpoolP512r1tls13",
    256: "ffdhe2048",
    257: "ffdhe3072",
    258: "ffdhe4096",
    259: "ffdhe6144",
    260: "ffdhe8192",
    512: "MLKEM512",
    513: "MLKEM768",
    514: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768",
    0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00",
}

SIGNATURE_SCHEMES: dict[int, str] = {
    0x0201: "rsa_pkcs1_sha1",
    0x0203: "ecdsa_sha1",
    0x0401: "rsa_pkcs1_sha256",
    0x0403: "ecdsa_secp256r1_sha256",
    0x0501: "rsa_pkcs1_sha384",
    0x0503: "ecdsa_secp384r1_sha384",
    0x0601: "rsa_pkcs1_sha512",
    0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256",
    0x0805: "rsa_pss_rsae_sha384",
    0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519",
    0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384",
    0x080B: "rsa_pss_pss_sha512",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256",
    0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
    0x0904: "mldsa44",
    0x0905: "mldsa65",
    0x0906: "mldsa87",
    # TLS 1.2 (hash, signature) pairs that no TLS 1.3 scheme took over (RFC 5246 §7.4.1.4.1).
    0x0202: "dsa_sha1",
    0x0301: "rsa_sha224",
    0x0302: "dsa_sha224",
    0x0303: "ecdsa_sha224",
    0x0402: "dsa_sha256",
    0x0502: "dsa_sha384",
    0x0602: "dsa_sha512",
}

VERSIONS: dict[int, str] = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}

COMPRESSION_METHODS: dict[int, str] = {0: "null", 1: "DEFLATE"}
EC_POINT_FORMATS: dict[int, str] = {
    0: "uncompressed",
    1: "ansiX962_compressed_prime",
    2: "ansiX962_compressed_char2",
}
PSK_KEY_EXCHANGE_MODES: dict[int, str] = {0: "psk_ke", 1: "psk_dhe_ke"}
CERTIFICATE_COMPRESSION: dict[int, str] = {1: "zlib", 2: "brotli", 3: "zstd"}


def cipher_suite(value: int) -> Code:
    return _lookup(CIPHER_SUITES, value, grease=is_grease(value))


def extension(value: int) -> Code:
    return _lookup(EXTENSIONS, value, grease=is_grease(value))


def group(value: int) -> Code:
    return _lookup(SUPPORTED_GROUPS, value, grease=is_grease(value))


def signature_scheme(value: int) -> Code:
    return _lookup(SIGNATURE_SCHEMES, value, grease=is_grease(value))


def version(value: int) -> Code:
    return _lookup(VERSIONS, value, grease=is_grease(value))


def compression_method(value: int) -> Code:
    return _lookup(COMPRESSION_METHODS, value, grease=False, size=1)


def ec_point_format(value: int) -> Code:
    return _lookup(EC_POINT_FORMATS, value, grease=False, size=1)


def psk_key_exchange_mode(value: int) -> Code:
    grease = value in _GREASE_PSK_MODES
    return _lookup(PSK_KEY_EXCHANGE_MODES, value, grease=grease, size=1)


def certificate_compression(value: int) -> Code:
    return _lookup(CERTIFICATE_COMPRESSION, value, grease=is_grease(value))
