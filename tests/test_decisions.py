"""What the engine says it decided and why (the Decision observations `--trace` and the inspect
handler show), for the ClientHellos that lead to each kind of answer.

These are the TLS 1.2 decisions (the configs serve 1.2 only). Each reason is pinned word for
word: it is what a person reads to learn why the server chose a
suite, a certificate, a group or a full handshake.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trio_tls.engine.config import CertifiedKey, ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import NEED_DATA, Decision, Observation
from trio_tls.engine.sessions import SessionCache, SessionState, TicketKey, TicketKeys
from trio_tls.engine.wire.enums import TLS12, ExtensionType

from .conftest import certified_key
from .scripted_client import ScriptedClient, extension

NOW = 1_000_000_000.0
SESSION_ID = b"i" * 32
STATE = SessionState(0xC02B, bytes(48), True, None, NOW)
TICKET_KEYS = TicketKeys([TicketKey.generate()])

# The section that governs each decision, as the trace cites it.
RFCS = {
    "version": "RFC 5246 App. E.1, RFC 8446 §4.2.1",
    "ALPN": "RFC 7301 §3.2",
    "master secret": "RFC 7627 §5.1",
    "resumption": "RFC 5246 §7.3",
    "cipher suite": "RFC 5246 §7.4.1.3",
    "certificate": "RFC 6066 §3, RFC 8422 §5.1",
    "signature scheme": "RFC 5246 §7.4.1.4.1",
    "group": "RFC 8422 §5.1.1",
}
VERSION = (
    "version",
    "TLS 1.2",
    "the client sends no supported_versions: it speaks at most TLS 1.2 (its version is 0x0303); "
    "this server speaks TLS 1.2",
)
EMS = ("master secret", "extended (session hash)", "the client offers extended_master_secret")
NO_EMS = (
    "master secret",
    "classic (randoms only)",
    "the client does not offer extended_master_secret",
)
NO_SESSION = ("resumption", "full handshake", "the client offers no session to resume")
SUITE = (
    "the first of the server's suites that the client offers (6 offered) and a certificate "
    "can serve"
)
RSA_SCHEME = (
    "signature scheme",
    "rsa_pss_rsae_sha256",
    "the first that the RSA key can make and the client lists in signature_algorithms",
)
ECDSA_SCHEME = (
    "signature scheme",
    "ecdsa_secp256r1_sha256",
    "the first that the ECDSA key can make and the client lists in signature_algorithms",
)
X25519 = ("group", "x25519", "the first of the server's groups in the client's supported_groups")
NO_SNI_MATCH = "the first that fits: no SNI name matched"


def unnamed_certificate() -> CertifiedKey:
    """A self-signed ECDSA certificate without subjectAltName: the subject has to name it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no names here")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return CertifiedKey((cert,), key)


@pytest.fixture(scope="module")
def two_names(ca: trustme.CA) -> ServerConfig:
    leaf = ca.issue_cert("a.example", "b.example", key_type=trustme.KeyType.RSA)
    return ServerConfig([certified_key(leaf)], versions={TLS12}, alpn_protocols=[b"h2"])


@pytest.fixture(scope="module")
def unnamed() -> ServerConfig:
    cache = SessionCache()
    cache.store(SESSION_ID, STATE)
    return ServerConfig(
        [unnamed_certificate()],
        versions={TLS12},
        session_cache=cache,
        ticket_keys=TICKET_KEYS,
        clock=lambda: NOW,
    )


def decisions(
    config: ServerConfig, hello: Callable[[ScriptedClient], bytes], **client: Any
) -> list[tuple[str, str, str]]:
    """(topic, choice, reason) of each Decision the server reports for that ClientHello."""
    seen: list[Observation] = []
    server = ServerConnection(config, seen.append)
    server.receive_data(hello(ScriptedClient(**client)))
    assert server.next_event() is NEED_DATA
    made = [o for o in seen if isinstance(o, Decision)]
    assert [(o.topic, o.rfc) for o in made] == [(o.topic, RFCS[o.topic]) for o in made]
    return [(o.topic, o.choice, o.reason) for o in made]


def test_a_full_handshake_explained(two_names: ServerConfig) -> None:
    """Guards the reasons of a full handshake where every choice is the first that fits: SNI
    names the certificate (listed by its DNS names), ALPN, EMS and supported_groups present."""
    assert decisions(two_names, lambda c: c.client_hello(), sni="b.example", alpn=[b"h2"]) == [
        VERSION,
        ("ALPN", "h2", "the first of the server's protocols that the client offers"),
        EMS,
        NO_SESSION,
        ("cipher suite", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", SUITE),
        ("certificate", "RSA, for a.example, b.example", "it names b.example"),
        RSA_SCHEME,
        X25519,
    ]


def test_a_full_handshake_on_defaults_explained(two_names: ServerConfig) -> None:
    """Guards the reasons where the client leaves the server to its defaults: an SNI name no
    certificate has, no supported_groups (secp256r1, RFC 8422 §5.1.1), no EMS."""
    assert decisions(
        two_names, lambda c: c.client_hello(), sni="c.example", groups=None, ems=False
    ) == [
        VERSION,
        NO_EMS,
        NO_SESSION,
        ("cipher suite", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", SUITE),
        ("certificate", "RSA, for a.example, b.example", NO_SNI_MATCH),
        RSA_SCHEME,
        (
            "group",
            "secp256r1",
            "the client sent no supported_groups: secp256r1, which every client has",
        ),
    ]


def test_supported_versions_and_an_unnamed_certificate_explained(unnamed: ServerConfig) -> None:
    """Guards the version reason for a client that lists supported_versions, and a
    certificate without DNS names described by its subject."""

    def hello(c: ScriptedClient) -> bytes:
        versions = extension(ExtensionType.supported_versions, b"\x04\x03\x04\x03\x03")
        return c.client_hello(extensions=[*c.default_extensions(), versions])

    assert decisions(unnamed, hello, sni=None) == [
        (
            "version",
            "TLS 1.2",
            "the highest both speak: supported_versions lists 0x0304, 0x0303; this server speaks "
            "TLS 1.2",
        ),
        EMS,
        NO_SESSION,
        ("cipher suite", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", SUITE),
        ("certificate", "ECDSA, for CN=no names here", NO_SNI_MATCH),
        ECDSA_SCHEME,
        X25519,
    ]


@pytest.mark.parametrize(
    ("offer", "resumption"),
    [
        (
            "unknown-id",
            (
                "full handshake",
                "the session offered (a session ID of 32 bytes) cannot be resumed (unknown, "
                "expired, or another SNI, suite or client-auth setting)",
            ),
        ),
        (
            "one-byte-id",
            (
                "full handshake",
                "the session offered (a session ID of 1 byte) cannot be resumed (unknown, "
                "expired, or another SNI, suite or client-auth setting)",
            ),
        ),
        (
            "unknown-ticket",
            (
                "full handshake",
                "the session offered (a ticket of 100 bytes) cannot be resumed (unknown, "
                "expired, or another SNI, suite or client-auth setting)",
            ),
        ),
        (
            "id",
            (
                "abbreviated handshake",
                "the client's session is resumable: its session ID, same SNI, suite still offered",
            ),
        ),
        (
            "ticket",
            (
                "abbreviated handshake",
                "the client's session is resumable: its ticket opened, same SNI, suite still "
                "offered",
            ),
        ),
    ],
)
def test_resumption_explained(
    unnamed: ServerConfig, offer: str, resumption: tuple[str, str]
) -> None:
    """Guards the resumption reasons: a session that cannot be resumed (by ID or by ticket, and
    a ticket without a session ID is an offer too), and one resumed by its session ID or by its
    ticket."""

    def hello(c: ScriptedClient) -> bytes:
        if offer.endswith("ticket"):
            sealed = TICKET_KEYS.seal(STATE) if offer == "ticket" else bytes(100)
            ticket = extension(ExtensionType.session_ticket, sealed)
            return c.client_hello(extensions=[*c.default_extensions(), ticket])
        unknown = b"u" if offer == "one-byte-id" else b"u" * 32
        return c.client_hello(session_id=SESSION_ID if offer == "id" else unknown)

    made = decisions(unnamed, hello, sni=None)
    assert made[:3] == [VERSION, EMS, ("resumption", *resumption)]


def test_a_tls13_clients_compatibility_session_id_is_explained(unnamed: ServerConfig) -> None:
    """A first visit from a client that offers TLS 1.3: its 32 random bytes of
    legacy_session_id are no failed resumption, and the note says what they are."""
    seen: list[Observation] = []
    server = ServerConnection(unnamed, seen.append)
    client = ScriptedClient(sni=None)
    versions = extension(ExtensionType.supported_versions, bytes.fromhex("0403040303"))
    server.receive_data(
        client.client_hello(
            session_id=bytes(range(32)), extensions=[*client.default_extensions(), versions]
        )
    )
    assert server.next_event() is NEED_DATA
    (resumption,) = [o for o in seen if isinstance(o, Decision) and o.topic == "resumption"]
    assert resumption.choice == "full handshake"
    assert "a client that offers TLS 1.3 sends a random 32-byte legacy_session_id for " in (
        resumption.reason
    )
    assert "middlebox compatibility, so on a first visit there is no session to resume" in (
        resumption.reason
    )
    assert resumption.rfc == "RFC 8446 §4.1.2, App. D.4"
