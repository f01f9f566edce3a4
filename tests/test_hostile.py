"""Hostile input: a table of malformed, out-of-order and oversized inputs, each with its alert.

Every row drives a fresh ServerConnection with the scripted client up to a phase (nothing sent,
ClientHello answered, ClientKeyExchange sent, handshake complete), injects its bytes, and checks
the whole failure contract: `next_event()` raises RemoteProtocolError naming the alert,
`data_to_send()` holds exactly that one alert record (plaintext before the server's
ChangeCipherSpec, sealed after it), and from then on `next_event()` raises again and nothing
more is sent. Control tests show the same steps without the fault succeed, so each row fails
for the reason it names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
import pytest

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import ALL_SUITES
from trio_tls.engine.events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
)
from trio_tls.engine.sessions import SessionCache, SessionState, TicketKeys
from trio_tls.engine.wire.enums import (
    TLS12,
    TLS_FALLBACK_SCSV,
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from trio_tls.engine.wire.errors import LocalProtocolError, RemoteProtocolError

from .client_certs import (
    ALICE,
    BOB_RSA,
    ED25519,
    EXPIRED,
    NEGATIVE_SERIAL,
    NO_DIGITAL_SIGNATURE,
    OFF_CURVE,
    SERVER_ONLY,
    STRANGER,
    T61_EXPIRED,
    T61_V1,
    UNKNOWN_KEY_OID,
    VERSION_87,
    client_auth,
)
from .scripted_client import (
    DEFAULT_SUITES,
    ScriptedClient,
    alpn_extension_data,
    extension,
    handshake,
    record,
    renegotiation_scsv_suites,
    sni_extension_data,
    split_records,
    u16_vector,
)

Phase = Literal["start", "hello", "cke", "traffic"]
ConfigName = Literal["rsa", "tls12", "alpn", "resume", "client-auth", "client-auth-optional"]

A = AlertDescription
HS = ContentType.handshake
CCS = ContentType.change_cipher_spec
ALERT = ContentType.alert
APP = ContentType.application_data


def drain(server: ServerConnection) -> list[Event]:
    """Events until NEED_DATA, or up to the first ConnectionClosed (which then repeats)."""
    events: list[Event] = []
    while (event := server.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            assert server.next_event() == event
            break
    return events


def advance(server: ServerConnection, client: ScriptedClient, phase: Phase) -> None:
    """Walk a correct handshake up to `phase`, checking each step."""
    if phase == "start":
        return
    server.receive_data(client.client_hello())
    assert drain(server) == []
    client.read_server_flight(server.data_to_send())
    if phase == "hello":
        return
    server.receive_data(client.client_key_exchange())
    assert drain(server) == []
    assert server.data_to_send() == b""
    if phase == "cke":
        return
    server.receive_data(client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
    assert client.read_server_finished(server.data_to_send()) == []


def plaintext_alert(level: int, description: int) -> bytes:
    return bytes((0x15, 0x03, 0x03, 0x00, 0x02, level, description))


# -- building blocks for the rows --------------------------------------------------------------


def hello_with_extra_extension(ext_type: int, data: bytes) -> Callable[[ScriptedClient], bytes]:
    def inject(c: ScriptedClient) -> bytes:
        return c.client_hello(extensions=[*c.default_extensions(), extension(ext_type, data)])

    return inject


def hello_replacing_extension(ext_type: int, data: bytes) -> Callable[[ScriptedClient], bytes]:
    def inject(c: ScriptedClient) -> bytes:
        extensions = [(t, d) if t != ext_type else (t, data) for t, d in c.default_extensions()]
        assert (ext_type, data) in extensions
        return c.client_hello(extensions=extensions)

    return inject


def truncated_hello(keep: int) -> Callable[[ScriptedClient], bytes]:
    """The ClientHello body cut to `keep` bytes (negative: from the end), framed consistently."""

    def inject(c: ScriptedClient) -> bytes:
        return c.client_hello(body=c.client_hello_body()[:keep])

    return inject


def interleaved(content_type: int, payload: bytes) -> Callable[[ScriptedClient], bytes]:
    """The ClientHello split over two records with another record in between."""

    def inject(c: ScriptedClient) -> bytes:
        message = c.client_hello_message(c.client_hello_body())
        return (
            record(HS, message[:40])
            + record(content_type, payload)
            + record(HS, message[40:])
        )  # fmt: skip

    return inject


def key_exchange(public: bytes) -> Callable[[ScriptedClient], bytes]:
    def inject(c: ScriptedClient) -> bytes:
        return c.client_key_exchange(public)

    return inject


def wrong_verify_data(c: ScriptedClient) -> bytes:
    good = c.verify_data()
    return c.finished(verify_data=bytes((good[0] ^ 0x80,)) + good[1:])


def with_record_version(data: bytes, version: int) -> bytes:
    return data[:1] + version.to_bytes(2, "big") + data[3:]


def renegotiation(c: ScriptedClient) -> bytes:
    return c.sealed(HS, c.client_hello_message(c.client_hello_body()))


def repeat(make: Callable[[ScriptedClient], bytes], c: ScriptedClient, times: int) -> bytes:
    """`times` records from `make`, each sealed with its own sequence number."""
    return b"".join(make(c) for _ in range(times))


# An X25519 u-coordinate of order 1 (RFC 7748 §6.1 small-order points give an all-zero secret).
X25519_ORDER_ONE = (1).to_bytes(32, "little")
# (1, 1) is not on P-256: 1 != 1 - 3 + b (mod p).
P256_OFF_CURVE = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
# The P-256 generator, compressed (a valid point in a form RFC 8422 §5.1.2 lets us refuse).
P256_GENERATOR_X = bytes.fromhex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
P256_GENERATOR_COMPRESSED = b"\x03" + P256_GENERATOR_X
SSLV2_CLIENT_HELLO = bytes.fromhex("802e0103010015000000100000330000320000390000380000350a0b0c0d")
ONLY_P256: dict[str, Any] = {"groups": (NamedGroup.secp256r1,)}
ONLY_P384: dict[str, Any] = {"groups": (NamedGroup.secp384r1,)}
ONLY_X25519: dict[str, Any] = {"groups": (NamedGroup.x25519,)}


# A session the "resume" config will resume, by ID or by ticket (suite ECDHE-RSA-AES128-GCM).
RESUMABLE = SessionState(0xC02F, bytes(48), True, "localhost", time.time())
KNOWN_SESSION_ID = bytes(range(32))
TICKET_KEYS = TicketKeys()
KNOWN_TICKET = TICKET_KEYS.seal(RESUMABLE)
# One without the extended master secret, as an older server made them: never resumed.
LEGACY = SessionState(0xC02F, bytes(48), False, "localhost", time.time())
LEGACY_SESSION_ID = bytes(range(32, 64))
LEGACY_TICKET = TICKET_KEYS.seal(LEGACY)


def without_ems(c: ScriptedClient) -> list[tuple[int, bytes]]:
    return [e for e in c.default_extensions() if e[0] != ExtensionType.extended_master_secret]


@attrs.frozen
class Hostile:
    id: str
    inject: Callable[[ScriptedClient], bytes]
    alert: AlertDescription
    phase: Phase = "start"
    client: dict[str, Any] = attrs.field(factory=dict)
    config: ConfigName = "rsa"
    warnings: int = 0  # warning no_renegotiation alerts sent before the fatal one


TABLE = [
    # ---- ClientHello negotiation failures (RFC 5246 §7.4.1.2, RFC 8422, RFC 7301, RFC 5746)
    Hostile("no-common-suite", lambda c: c.client_hello(suites=(0x009C, 0x002F)),
            A.handshake_failure),
    Hostile("only-ecdsa-suites-for-rsa-cert", lambda c: c.client_hello(suites=(0xC02B, 0xCCA9)),
            A.handshake_failure),
    Hostile("no-common-group", hello_replacing_extension(
                ExtensionType.supported_groups, u16_vector((25, 0x11EC))),
            A.handshake_failure),
    Hostile("no-common-signature-scheme", hello_replacing_extension(
                ExtensionType.signature_algorithms, u16_vector((0x0201, 0x0203, 0x0807))),
            A.handshake_failure),
    Hostile("client-version-tls10", lambda c: c.client_hello(version=0x0301),
            A.protocol_version),
    Hostile("client-version-ssl3", lambda c: c.client_hello(version=0x0300),
            A.protocol_version),
    # RFC 7507 §3: an unsupported version is protocol_version even with the fallback SCSV.
    Hostile("client-version-tls11-fallback-scsv",
            lambda c: c.client_hello(version=0x0302, suites=(*DEFAULT_SUITES, TLS_FALLBACK_SCSV)),
            A.protocol_version),
    Hostile("client-version-tls10-fallback-scsv-first",
            lambda c: c.client_hello(version=0x0301, suites=(TLS_FALLBACK_SCSV, *DEFAULT_SUITES)),
            A.protocol_version),
    # RFC 8446 §4.2.1: supported_versions, when present, is the client's whole list.
    # A server of TLS 1.2 only: nothing in the list is ours.
    Hostile("supported-versions-only-tls13", hello_with_extra_extension(
                ExtensionType.supported_versions, b"\x02\x03\x04"), A.protocol_version,
            config="tls12"),
    Hostile("supported-versions-tls13-and-drafts", hello_with_extra_extension(
                ExtensionType.supported_versions, b"\x06\x03\x04\x7f\x1c\x0a\x0a"),
            A.protocol_version, config="tls12"),
    Hostile("supported-versions-only-below-tls12", hello_with_extra_extension(
                ExtensionType.supported_versions, b"\x04\x03\x02\x03\x01"),
            A.protocol_version),
    # RFC 9155 §2: no signature_algorithms means SHA-1, which is never used.
    Hostile("no-signature-algorithms", lambda c: c.client_hello(extensions=[
                e for e in c.default_extensions()
                if e[0] != ExtensionType.signature_algorithms]),
            A.handshake_failure),
    Hostile("only-signature-algorithms-cert", lambda c: c.client_hello(extensions=[
                (50, e[1]) if e[0] == ExtensionType.signature_algorithms else e
                for e in c.default_extensions()]),
            A.handshake_failure),
    Hostile("no-extensions-at-all", lambda c: c.client_hello(extensions=[]),
            A.handshake_failure),
    Hostile("only-sha1-md5-sha224-schemes", hello_replacing_extension(
                ExtensionType.signature_algorithms,
                u16_vector((0x0201, 0x0203, 0x0101, 0x0103, 0x0301, 0x0303))),
            A.handshake_failure),
    # RFC 5246 §7.4.1.2: the cipher_suites of a resumption "MUST include" the session's suite.
    Hostile("session-id-without-its-suite", lambda c: c.client_hello(
                session_id=KNOWN_SESSION_ID, suites=(0xC030, 0xCCA8)),
            A.illegal_parameter, config="resume"),
    Hostile("ticket-without-its-suite", lambda c: c.client_hello(suites=(0xC030, 0xCCA8),
                extensions=[*c.default_extensions(),
                            extension(ExtensionType.session_ticket, KNOWN_TICKET)]),
            A.illegal_parameter, config="resume"),
    # RFC 7627 §5.3: an EMS session offered without EMS MUST be refused. (A session without
    # EMS gets a full handshake, with or without EMS: test_resumption, test_tlslite.)
    Hostile("ems-session-id-offered-without-ems", lambda c: c.client_hello(
                session_id=KNOWN_SESSION_ID, extensions=without_ems(c)),
            A.handshake_failure, config="resume"),
    Hostile("ems-ticket-offered-without-ems", lambda c: c.client_hello(extensions=[
                *without_ems(c), extension(ExtensionType.session_ticket, KNOWN_TICKET)]),
            A.handshake_failure, config="resume"),
    Hostile("compression-without-null", lambda c: c.client_hello(compression=b"\x01"),
            A.illegal_parameter),
    Hostile("ec-point-formats-without-uncompressed", hello_replacing_extension(
                ExtensionType.ec_point_formats, b"\x02\x01\x02"),
            A.illegal_parameter),
    Hostile("renegotiation-info-not-empty", hello_replacing_extension(
                ExtensionType.renegotiation_info, b"\x0c" + bytes(12)),
            A.handshake_failure),
    Hostile("alpn-no-overlap", lambda c: c.client_hello(extensions=[
                *c.default_extensions(),
                extension(ExtensionType.application_layer_protocol_negotiation,
                          alpn_extension_data([b"http/1.1", b"spdy/3"]))]),
            A.no_application_protocol, config="alpn"),
    # ---- ClientHello decoding (RFC 5246 §4, §7.4.1.4)
    Hostile("truncated-hello-in-random", truncated_hello(20), A.decode_error),
    Hostile("truncated-hello-in-suites", truncated_hello(40), A.decode_error),
    Hostile("truncated-hello-in-extensions", truncated_hello(-3), A.decode_error),
    Hostile("empty-hello-body", truncated_hello(0), A.decode_error),
    Hostile("trailing-byte-after-hello",
            lambda c: c.client_hello(body=c.client_hello_body() + b"\x00"), A.decode_error),
    Hostile("trailing-byte-after-hello-without-extensions",
            lambda c: c.client_hello(body=c.client_hello_body(extensions=[]) + b"\x00"),
            A.decode_error),
    Hostile("odd-length-cipher-suites", lambda c: c.client_hello(body=c.client_hello_body(
                suites=(0xC02F,)).replace(b"\x00\x02\xc0\x2f", b"\x00\x03\xc0\x2f\x00")),
            A.decode_error),
    Hostile("session-id-of-33-bytes", lambda c: c.client_hello(session_id=bytes(33)),
            A.decode_error),
    Hostile("empty-compression-methods", lambda c: c.client_hello(compression=b""),
            A.decode_error),
    Hostile("duplicate-extension", hello_with_extra_extension(
                ExtensionType.supported_groups, u16_vector((NamedGroup.x25519,))),
            A.decode_error),
    Hostile("duplicate-unknown-extension", lambda c: c.client_hello(extensions=[
                *c.default_extensions(), (0x1A1A, b""), (0x1A1A, b"")]),
            A.decode_error),
    Hostile("sni-list-length-overruns", hello_replacing_extension(
                ExtensionType.server_name, b"\x00\x0a\x00\x00\x03abc"),
            A.decode_error),
    Hostile("sni-trailing-byte", hello_replacing_extension(
                ExtensionType.server_name, sni_extension_data(b"localhost") + b"\x00"),
            A.decode_error),
    Hostile("sni-empty-list", hello_replacing_extension(ExtensionType.server_name, b"\x00\x00"),
            A.decode_error),
    Hostile("sni-empty-host-name", hello_replacing_extension(
                ExtensionType.server_name, b"\x00\x03\x00\x00\x00"),
            A.decode_error),
    # RFC 6066 §3: a well-formed server_name with a value that is not one DNS host name.
    *[Hostile(f"sni-{name}", hello_replacing_extension(
                ExtensionType.server_name, sni_extension_data(host)), A.illegal_parameter)
      for name, host in [("nul", b"local\x00host"), ("bel", b"local\x07host"),
                         ("esc", b"\x1blocalhost"), ("space", b"local host"),
                         ("non-ascii", "bücher.example".encode()), ("trailing-dot", b"a.example."),
                         ("underscore", b"a_b.example"), ("empty-label", b"a..example"),
                         ("256-bytes", b".".join([b"a" * 63] * 3 + [b"a" * 62, b"a"])),
                         ("ipv4-literal", b"127.0.0.1"), ("ipv6-literal", b"::1"),
                         ("ipv4-short-literal", b"127.1")]],
    Hostile("sni-two-host-names", hello_replacing_extension(
                ExtensionType.server_name, b"\x00\x0e" + b"\x00\x00\x04a.bc" + b"\x00\x00\x04d.ef"),
            A.illegal_parameter),
    # Once a struct.error from the ticket code: a long name with a ticket to be issued.
    Hostile("sni-300-bytes-with-empty-ticket", lambda c: c.client_hello(extensions=[
                (t, sni_extension_data(b"a." * 150) if t == ExtensionType.server_name else d)
                for t, d in c.default_extensions()] + [(ExtensionType.session_ticket, b"")]),
            A.illegal_parameter, config="resume"),
    Hostile("supported-groups-odd-length", hello_replacing_extension(
                ExtensionType.supported_groups, b"\x00\x03\x00\x1d\x00"),
            A.decode_error),
    Hostile("extended-master-secret-not-empty", hello_replacing_extension(
                ExtensionType.extended_master_secret, b"\x00"),
            A.decode_error),
    # ---- TLS 1.3 extensions, decoded from every ClientHello (RFC 8446 §4.2)
    Hostile("key-share-group-twice", hello_with_extra_extension(
                ExtensionType.key_share, b"\x00\x0a" + b"\x00\x1d\x00\x01\x01" * 2),
            A.illegal_parameter),
    Hostile("key-share-empty-body", hello_with_extra_extension(ExtensionType.key_share, b""),
            A.decode_error),
    Hostile("key-share-empty-key", hello_with_extra_extension(
                ExtensionType.key_share, b"\x00\x04\x00\x1d\x00\x00"),
            A.decode_error),
    Hostile("pre-shared-key-two-identities-one-binder", hello_with_extra_extension(
                ExtensionType.pre_shared_key,
                b"\x00\x0e" + (b"\x00\x01t" + bytes(4)) * 2 + b"\x00\x21\x20" + bytes(32)),
            A.illegal_parameter),
    Hostile("psk-key-exchange-modes-empty", hello_with_extra_extension(
                ExtensionType.psk_key_exchange_modes, b"\x00"),
            A.decode_error),
    Hostile("cookie-empty", hello_with_extra_extension(ExtensionType.cookie, b"\x00\x00"),
            A.decode_error),
    Hostile("extension-length-overruns-block", lambda c: c.client_hello(
                body=c.client_hello_body(extensions=[])
                + b"\x00\x06" + b"\x00\x0a\x00\x08\x00\x02"),
            A.decode_error),
    # ---- handshake framing and order before ClientHello (RFC 5246 §7.4, §6.2.1)
    Hostile("server-hello-from-client",
            lambda c: record(HS, handshake(HandshakeType.server_hello, bytes(38))),
            A.unexpected_message),
    Hostile("unknown-handshake-type-99", lambda c: record(HS, handshake(99, b"\x00" * 4)),
            A.unexpected_message),
    Hostile("hello-request-from-client",
            lambda c: record(HS, handshake(HandshakeType.hello_request, b"")),
            A.unexpected_message),
    Hostile("client-hello-length-131397",
            lambda c: record(HS, handshake(HandshakeType.client_hello, b"", length=131_397)),
            A.decode_error),
    Hostile("handshake-length-2**24-1",
            lambda c: record(HS, handshake(HandshakeType.client_hello, b"", length=2**24 - 1)),
            A.decode_error),
    Hostile("empty-handshake-record", lambda c: record(HS, b""), A.unexpected_message),
    Hostile("client-key-exchange-first",
            lambda c: record(HS, handshake(HandshakeType.client_key_exchange, b"\x01\x04")),
            A.unexpected_message),
    Hostile("finished-first", lambda c: record(HS, handshake(HandshakeType.finished, bytes(12))),
            A.unexpected_message),
    # Order before content: the type is judged against the state before any body is decoded.
    Hostile("undecodable-key-exchange-first",
            lambda c: record(HS, handshake(HandshakeType.client_key_exchange, b"\xff")),
            A.unexpected_message),
    Hostile("oversized-key-exchange-header-first",
            lambda c: record(HS, handshake(HandshakeType.client_key_exchange, b"", 2**24 - 1)),
            A.unexpected_message),
    Hostile("garbage-message-first", lambda c: record(HS, bytes(range(0xAB, 0xFF))),
            A.unexpected_message),
    Hostile("certificate-from-client-first",
            lambda c: record(HS, handshake(HandshakeType.certificate, b"\x00\x00")),
            A.unexpected_message),
    Hostile("lone-type-byte-of-key-exchange", lambda c: record(HS, b"\x10"),
            A.unexpected_message),
    Hostile("application-data-first", lambda c: record(APP, b"GET / HTTP/1.1\r\n\r\n"),
            A.unexpected_message),
    Hostile("empty-application-data-first", lambda c: record(APP, b""), A.unexpected_message),
    Hostile("change-cipher-spec-first", lambda c: record(CCS, b"\x01"), A.unexpected_message),
    # ---- the record layer (RFC 5246 §6.2)
    Hostile("unknown-content-type-99", lambda c: record(99, b"\x01\x00"), A.unexpected_message),
    Hostile("heartbeat-content-type-24", lambda c: record(24, b"\x01\x00\x10"),
            A.unexpected_message),
    Hostile("record-version-0x0200", lambda c: c.client_hello(record_version=0x0200),
            A.protocol_version),
    Hostile("record-version-0x0403", lambda c: c.client_hello(record_version=0x0403),
            A.protocol_version),
    Hostile("record-length-2**14+2049", lambda c: bytes((HS, 3, 3)) + (2**14 + 2049).to_bytes(2),
            A.record_overflow),
    Hostile("record-length-0xffff", lambda c: b"\x16\x03\x03\xff\xff", A.record_overflow),
    Hostile("plaintext-record-2**14+1", lambda c: record(HS, bytes(2**14 + 1)),
            A.record_overflow),
    Hostile("alert-of-3-bytes", lambda c: record(ALERT, b"\x01\x00\x00"), A.decode_error),
    Hostile("alert-of-1-byte", lambda c: record(ALERT, b"\x01"), A.decode_error),
    Hostile("empty-alert-record", lambda c: record(ALERT, b""), A.decode_error),
    Hostile("alert-level-3", lambda c: record(ALERT, b"\x03\x00"), A.illegal_parameter),
    Hostile("alert-level-0", lambda c: record(ALERT, b"\x00\x0a"), A.illegal_parameter),
    Hostile("ccs-inside-split-hello", interleaved(CCS, b"\x01"), A.unexpected_message),
    Hostile("app-data-inside-split-hello", interleaved(APP, b"x"), A.unexpected_message),
    # Not TLS at all: plain HTTP ('G' = 71) and an SSLv2 CLIENT-HELLO (0x80) fail on the first
    # byte as an unknown content type, before any body is buffered.
    Hostile("plain-http", lambda c: b"GET / HTTP/1.1\r\n\r\n", A.unexpected_message),
    Hostile("sslv2-client-hello", lambda c: SSLV2_CLIENT_HELLO, A.unexpected_message),
    # ---- after the server's first flight, before ClientKeyExchange
    Hostile("application-data-after-hello", lambda c: record(APP, b"GET / HTTP/1.1\r\n\r\n"),
            A.unexpected_message, phase="hello"),
    Hostile("change-cipher-spec-before-key-exchange", lambda c: record(CCS, b"\x01"),
            A.unexpected_message, phase="hello"),
    Hostile("finished-instead-of-key-exchange",
            lambda c: record(HS, handshake(HandshakeType.finished, bytes(12))),
            A.unexpected_message, phase="hello"),
    Hostile("second-client-hello-during-handshake", lambda c: record(HS, c.client_hello_message(
                c.client_hello_body())), A.unexpected_message, phase="hello"),
    Hostile("undecodable-client-hello-during-handshake",
            lambda c: record(HS, handshake(HandshakeType.client_hello, b"\xff" * 7)),
            A.unexpected_message, phase="hello"),
    Hostile("key-exchange-of-257-bytes",
            lambda c: record(HS, handshake(HandshakeType.client_key_exchange, bytes(257))),
            A.decode_error, phase="hello"),
    Hostile("five-warning-alerts-after-hello", lambda c: plaintext_alert(1, 46) * 5,
            A.unexpected_message, phase="hello"),
    Hostile("five-unknown-warning-alerts-after-hello", lambda c: plaintext_alert(1, 255) * 5,
            A.unexpected_message, phase="hello"),
    Hostile("record-version-tls10-after-server-hello",
            lambda c: with_record_version(c.client_key_exchange(), 0x0301),
            A.protocol_version, phase="hello"),
    # ---- ClientKeyExchange (RFC 8422 §5.7, §5.1.2; RFC 7748 §6.1)
    Hostile("p256-off-curve-point", key_exchange(P256_OFF_CURVE), A.illegal_parameter,
            phase="hello", client=ONLY_P256),
    Hostile("p256-compressed-point", key_exchange(P256_GENERATOR_COMPRESSED),
            A.illegal_parameter, phase="hello", client=ONLY_P256),
    Hostile("p256-point-without-format-byte", key_exchange(bytes(64)), A.illegal_parameter,
            phase="hello", client=ONLY_P256),
    Hostile("p256-hybrid-format-point", key_exchange(b"\x06" + bytes(64)), A.illegal_parameter,
            phase="hello", client=ONLY_P256),
    Hostile("p256-point-at-infinity", key_exchange(b"\x00"), A.illegal_parameter,
            phase="hello", client=ONLY_P256),
    Hostile("p384-point-of-p256-length", key_exchange(P256_OFF_CURVE), A.illegal_parameter,
            phase="hello", client=ONLY_P384),
    Hostile("x25519-all-zero", key_exchange(bytes(32)), A.illegal_parameter, phase="hello",
            client=ONLY_X25519),
    Hostile("x25519-order-one", key_exchange(X25519_ORDER_ONE), A.illegal_parameter,
            phase="hello", client=ONLY_X25519),
    Hostile("x25519-31-bytes", key_exchange(bytes(range(1, 32))), A.illegal_parameter,
            phase="hello", client=ONLY_X25519),
    Hostile("x25519-33-bytes", key_exchange(bytes(range(1, 34))), A.illegal_parameter,
            phase="hello", client=ONLY_X25519),
    Hostile("empty-key-exchange",
            lambda c: record(HS, handshake(HandshakeType.client_key_exchange, b"\x00")),
            A.decode_error, phase="hello"),
    Hostile("key-exchange-trailing-byte", lambda c: record(HS, handshake(
                HandshakeType.client_key_exchange, b"\x20" + bytes(range(1, 33)) + b"\x00")),
            A.decode_error, phase="hello"),
    # ---- ChangeCipherSpec and Finished (RFC 5246 §7.1, §7.4.9)
    # RFC 5246 §7.1: a ChangeCipherSpec is the single byte 1, or no ChangeCipherSpec at all.
    Hostile("change-cipher-spec-payload-2", lambda c: record(CCS, b"\x02"), A.unexpected_message,
            phase="cke"),
    Hostile("change-cipher-spec-payload-0", lambda c: record(CCS, b"\x00"), A.unexpected_message,
            phase="cke"),
    Hostile("change-cipher-spec-payload-1-1", lambda c: record(CCS, b"\x01\x01"),
            A.unexpected_message, phase="cke"),
    Hostile("change-cipher-spec-empty", lambda c: record(CCS, b""), A.unexpected_message,
            phase="cke"),
    Hostile("change-cipher-spec-payload-2-first", lambda c: record(CCS, b"\x02"),
            A.unexpected_message),
    Hostile("finished-without-change-cipher-spec",
            lambda c: record(HS, handshake(HandshakeType.finished, c.verify_data())),
            A.unexpected_message, phase="cke"),
    Hostile("second-key-exchange", lambda c: c.client_key_exchange(), A.unexpected_message,
            phase="cke"),
    Hostile("wrong-verify-data", wrong_verify_data, A.decrypt_error, phase="cke"),
    Hostile("zero-verify-data", lambda c: c.finished(verify_data=bytes(12)), A.decrypt_error,
            phase="cke"),
    Hostile("verify-data-of-11-bytes", lambda c: c.finished(verify_data=c.verify_data()[:11]),
            A.decode_error, phase="cke"),
    Hostile("verify-data-of-13-bytes",
            lambda c: c.finished(verify_data=c.verify_data() + b"\x00"),
            A.decode_error, phase="cke"),
    Hostile("flipped-bit-in-sealed-finished", lambda c: c.finished(tamper=True),
            A.bad_record_mac, phase="cke"),
    Hostile("plaintext-finished-after-change-cipher-spec", lambda c: c.change_cipher_spec()
            + record(HS, handshake(HandshakeType.finished, c.verify_data())),
            A.bad_record_mac, phase="cke"),
    Hostile("application-data-before-finished",
            lambda c: c.change_cipher_spec() + c.application_data(b"early"),
            A.unexpected_message, phase="cke"),
    Hostile("second-change-cipher-spec",
            lambda c: c.change_cipher_spec() + c.sealed(CCS, b"\x01"),
            A.unexpected_message, phase="cke"),
    # ---- client certificates (RFC 5246 §7.4.6, §7.4.8): the alert names what is wrong
    Hostile("client-certificate-required-but-empty", lambda c: c.client_certificate([]),
            A.handshake_failure, phase="hello", config="client-auth"),
    Hostile("client-certificate-from-another-ca", lambda c: c.client_certificate(STRANGER.chain),
            A.unknown_ca, phase="hello", config="client-auth"),
    Hostile("client-certificate-expired", lambda c: c.client_certificate(EXPIRED.chain),
            A.certificate_expired, phase="hello", config="client-auth"),
    Hostile("client-certificate-not-for-clients",
            lambda c: c.client_certificate(SERVER_ONLY.chain),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-unparseable",
            lambda c: c.client_certificate([b"\x30\x03\x02\x01\x00"]),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-ed25519-key", lambda c: c.client_certificate(ED25519.chain),
            A.unsupported_certificate, phase="hello", config="client-auth"),
    # Certificates cryptography parses lazily: each failure must be an alert, not a traceback.
    Hostile("client-certificate-unknown-key-oid", lambda c: c.client_certificate(UNKNOWN_KEY_OID),
            A.unsupported_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-ec-point-off-the-curve",
            lambda c: c.client_certificate(OFF_CURVE),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-negative-serial",
            lambda c: c.client_certificate(NEGATIVE_SERIAL),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-version-87", lambda c: c.client_certificate(VERSION_87),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-expired-with-an-undecodable-subject",
            lambda c: c.client_certificate(T61_EXPIRED.chain),
            A.bad_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-v1-with-a-t61string-subject",
            lambda c: c.client_certificate(T61_V1.chain),
            A.bad_certificate, phase="hello", config="client-auth"),
    # RFC 5280 §4.2.1.3: a key limited to other uses cannot sign CertificateVerify; OpenSSL's
    # X509_V_ERR_INVALID_PURPOSE is unsupported_certificate.
    Hostile("client-certificate-without-digital-signature",
            lambda c: c.client_certificate(NO_DIGITAL_SIGNATURE.chain),
            A.unsupported_certificate, phase="hello", config="client-auth"),
    Hostile("client-certificate-list-overruns", lambda c: record(HS, handshake(
                HandshakeType.certificate, b"\x00\x00\x09\x00\x00\x10" + bytes(6))),
            A.decode_error, phase="hello", config="client-auth"),
    Hostile("client-certificate-of-100-kib-and-1",
            lambda c: record(HS, handshake(HandshakeType.certificate, b"", 100 * 1024 + 1)),
            A.decode_error, phase="hello", config="client-auth"),
    Hostile("key-exchange-instead-of-the-certificate", lambda c: c.client_key_exchange(),
            A.unexpected_message, phase="hello", config="client-auth"),
    Hostile("certificate-verify-that-does-not-verify", lambda c: c.client_certificate(
                ALICE.chain) + c.client_key_exchange() + c.certificate_verify(
                ALICE.key, 0x0403, tamper=True),
            A.decrypt_error, phase="hello", config="client-auth"),
    Hostile("certificate-verify-with-an-empty-signature", lambda c: c.client_certificate(
                ALICE.chain) + c.client_key_exchange() + record(HS, handshake(
                HandshakeType.certificate_verify, b"\x04\x03\x00\x00")),
            A.decrypt_error, phase="hello", config="client-auth"),
    Hostile("certificate-verify-with-sha1", lambda c: c.client_certificate(ALICE.chain)
            + c.client_key_exchange() + c.certificate_verify(ALICE.key, 0x0403, claim=0x0203),
            A.illegal_parameter, phase="hello", config="client-auth"),
    Hostile("certificate-verify-with-an-rsa-scheme-for-an-ec-key", lambda c: c.client_certificate(
                ALICE.chain) + c.client_key_exchange() + c.certificate_verify(BOB_RSA.key, 0x0804),
            A.illegal_parameter, phase="hello", config="client-auth"),
    Hostile("certificate-verify-missing", lambda c: c.client_certificate(ALICE.chain)
            + c.client_key_exchange() + c.change_cipher_spec(),
            A.unexpected_message, phase="hello", config="client-auth"),
    Hostile("certificate-verify-after-an-empty-certificate", lambda c: c.client_certificate([])
            + c.client_key_exchange() + c.certificate_verify(ALICE.key, 0x0403),
            A.unexpected_message, phase="hello", config="client-auth-optional"),
    # ---- after the handshake: alerts are sealed under the server's keys
    # Each refused renegotiation is answered with a warning no_renegotiation (checked by the
    # tests below the table); the fifth in a row is a flood.
    Hostile("five-renegotiations-in-a-row", lambda c: repeat(renegotiation, c, 5),
            A.unexpected_message, phase="traffic", warnings=4),
    Hostile("five-warning-alerts-after-handshake",
            lambda c: repeat(lambda c: c.sealed(ALERT, b"\x01\x5a"), c, 5),
            A.unexpected_message, phase="traffic"),
    Hostile("33-empty-application-records",
            lambda c: repeat(lambda c: c.application_data(b""), c, 33),
            A.unexpected_message, phase="traffic"),
    Hostile("undecodable-renegotiation-hello",
            lambda c: c.sealed(HS, handshake(HandshakeType.client_hello, b"\x03\x03")),
            A.decode_error, phase="traffic"),
    Hostile("key-exchange-after-handshake",
            lambda c: c.sealed(HS, handshake(HandshakeType.client_key_exchange, b"\xff")),
            A.unexpected_message, phase="traffic"),
    Hostile("flipped-bit-in-application-data",
            lambda c: c.application_data(b"hello", tamper=True),
            A.bad_record_mac, phase="traffic"),
    Hostile("plaintext-application-data-after-handshake", lambda c: record(APP, bytes(40)),
            A.bad_record_mac, phase="traffic"),
    Hostile("record-too-short-for-nonce-and-tag", lambda c: record(APP, bytes(23)),
            A.bad_record_mac, phase="traffic"),
    Hostile("sealed-record-over-2**14", lambda c: record(APP, bytes(8 + 2**14 + 1 + 16)),
            A.record_overflow, phase="traffic"),
    Hostile("record-version-tls10-after-handshake",
            lambda c: with_record_version(c.application_data(b"x"), 0x0301),
            A.protocol_version, phase="traffic"),
    Hostile("change-cipher-spec-after-handshake", lambda c: c.sealed(CCS, b"\x01"),
            A.unexpected_message, phase="traffic"),
    Hostile("finished-after-handshake",
            lambda c: c.sealed(HS, handshake(HandshakeType.finished, bytes(12))),
            A.unexpected_message, phase="traffic"),
    Hostile("sealed-empty-handshake-record", lambda c: c.sealed(HS, b""),
            A.unexpected_message, phase="traffic"),
    Hostile("sealed-alert-of-3-bytes", lambda c: c.sealed(ALERT, b"\x01\x00\x00"),
            A.decode_error, phase="traffic"),
    Hostile("sealed-alert-level-3", lambda c: c.sealed(ALERT, b"\x03\x00"),
            A.illegal_parameter, phase="traffic"),
]  # fmt: skip


@pytest.fixture(scope="session")
def configs(rsa_config: ServerConfig) -> dict[ConfigName, ServerConfig]:
    cache = SessionCache()
    cache.store(KNOWN_SESSION_ID, RESUMABLE)
    cache.store(LEGACY_SESSION_ID, LEGACY)
    return {
        "rsa": rsa_config,
        "tls12": attrs.evolve(rsa_config, versions={TLS12}),
        "alpn": attrs.evolve(rsa_config, alpn_protocols=(b"h2",)),
        "resume": attrs.evolve(rsa_config, session_cache=cache, ticket_keys=TICKET_KEYS),
        "client-auth": attrs.evolve(rsa_config, client_auth=client_auth("required")),
        "client-auth-optional": attrs.evolve(rsa_config, client_auth=client_auth("optional")),
    }


def test_table_ids_are_unique() -> None:
    ids = [row.id for row in TABLE]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_hostile_input(row: Hostile, configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs[row.config])
    client = ScriptedClient(**row.client)
    advance(server, client, row.phase)

    server.receive_data(row.inject(client))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(server)
    assert type(failure.value) is RemoteProtocolError
    assert failure.value.alert == row.alert
    assert server.errored

    sent = bytes(server.data_to_send())
    warning = (ContentType.alert, bytes((AlertLevel.warning, A.no_renegotiation)))
    expected = [warning] * row.warnings + [(ContentType.alert, bytes((2, row.alert)))]
    if row.phase == "traffic":
        # Sealed under the server's write keys (AES-128-GCM here): 2 + explicit nonce + tag.
        assert client.suite is not None
        assert client.suite.name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        assert sent[:5] == bytes.fromhex("150303001a")
        assert client.read(sent) == expected
    else:
        assert sent == plaintext_alert(AlertLevel.fatal, row.alert)

    # The connection is dead: it raises again, with no new alert, and sends nothing more.
    for more in (b"", b"\x16\x03\x03\x00\x00"):
        if more:
            server.receive_data(more)
        with pytest.raises(RemoteProtocolError) as again:
            server.next_event()
        assert type(again.value) is RemoteProtocolError
        assert again.value.alert is None
        assert server.data_to_send() == b""


# -- controls: the same steps without the fault succeed -----------------------------------------


def full_handshake(server: ServerConnection, client: ScriptedClient) -> list[tuple[int, bytes]]:
    advance(server, client, "cke")
    server.receive_data(client.finished())
    events = drain(server)
    assert [type(e) for e in events] == [HandshakeComplete]
    return client.read_server_finished(server.data_to_send())


RSA_SUITES = [suite for suite in ALL_SUITES if suite.auth == "rsa"]
ECDSA_SUITES = [suite for suite in ALL_SUITES if suite.auth == "ecdsa"]


@pytest.mark.parametrize("ems", [True, False], ids=["ems", "no-ems"])
@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1])
@pytest.mark.parametrize("suite", RSA_SUITES, ids=[suite.name for suite in RSA_SUITES])
def test_scripted_handshake_completes(
    rsa_config: ServerConfig, suite: Any, group: NamedGroup, ems: bool
) -> None:
    """The scripted client (with its own key schedule) is a correct peer in every combination."""
    server = ServerConnection(rsa_config)
    client = ScriptedClient(suites=(suite.id,), groups=(group,), ems=ems)
    assert full_handshake(server, client) == []
    assert client.flight is not None
    assert client.flight.server_key_exchange.named_curve == group
    client.verify_server_key_exchange()
    assert server.info is not None
    assert server.info.cipher_suite == suite.name
    assert server.info.extended_master_secret is ems

    server.receive_data(client.application_data(b"ping") + client.application_data(b""))
    assert drain(server) == [ApplicationData(b"ping")]
    server.send(b"pong")
    assert client.read(server.data_to_send()) == [(APP, b"pong")]
    server.receive_data(client.alert(AlertDescription.close_notify, AlertLevel.warning))
    assert drain(server) == [
        AlertReceived(AlertLevel.warning, AlertDescription.close_notify),
        ConnectionClosed(close_notify=True),
    ]


@pytest.mark.parametrize("suite", ECDSA_SUITES, ids=[suite.name for suite in ECDSA_SUITES])
def test_scripted_handshake_with_ecdsa(dual_config: ServerConfig, suite: Any) -> None:
    server = ServerConnection(dual_config)
    client = ScriptedClient(suites=(suite.id,))
    assert full_handshake(server, client) == []
    client.verify_server_key_exchange()
    assert server.info is not None
    assert server.info.cipher_suite == suite.name


@pytest.mark.parametrize(
    ("alpn", "chosen"), [(None, None), ([b"http/1.1", b"h2"], "h2"), ([b"h2"], "h2")]
)
def test_alpn_overlap_is_chosen(
    configs: dict[ConfigName, ServerConfig], alpn: list[bytes] | None, chosen: str | None
) -> None:
    server = ServerConnection(configs["alpn"])
    full_handshake(server, ScriptedClient(alpn=alpn))
    assert server.info is not None
    assert server.info.alpn == chosen


def test_alpn_without_server_protocols_is_ignored(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["rsa"])
    full_handshake(server, ScriptedClient(alpn=[b"http/1.1"]))
    assert server.info is not None
    assert server.info.alpn is None


@pytest.mark.parametrize("version", [0x0303, 0x0304, 0x7F1C])
@pytest.mark.parametrize("record_version", [0x0300, 0x0301, 0x0303])
def test_versions_at_or_above_tls12_get_tls12(
    rsa_config: ServerConfig, version: int, record_version: int
) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    server.receive_data(client.client_hello(version=version, record_version=record_version))
    assert drain(server) == []
    flight = client.read_server_flight(server.data_to_send())
    assert flight.server_hello.server_version == 0x0303
    assert set(flight.record_versions) == {0x0303}


def test_tls12_with_fallback_scsv_is_fine(rsa_config: ServerConfig) -> None:
    """Fine when 1.2 is our highest version (with 1.3 served it is inappropriate_fallback)."""
    server = ServerConnection(attrs.evolve(rsa_config, versions={TLS12}))
    client = ScriptedClient(suites=(*DEFAULT_SUITES, TLS_FALLBACK_SCSV))
    assert full_handshake(server, client) == []


def test_renegotiation_scsv_gets_renegotiation_info(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient(suites=renegotiation_scsv_suites(), renegotiation_info=False)
    server.receive_data(client.client_hello())
    drain(server)
    flight = client.read_server_flight(server.data_to_send())
    assert flight.server_hello.extension(ExtensionType.renegotiation_info) == b"\x00"


# The controls for other rows, where only the fault differs from what a real client sends — a
# hello without supported_groups, a hello split over SSL 3.0-version records at the interleaving
# rows' split point, a ClientKeyExchange split over records — are driven by tlslite-ng in
# test_tlslite.py, so that they do not share the engine's encoders.

# -- EOF ---------------------------------------------------------------------------------------


def eof_fresh(server: ServerConnection, client: ScriptedClient) -> None:
    pass


def eof_mid_header(server: ServerConnection, client: ScriptedClient) -> None:
    server.receive_data(client.client_hello()[:3])


def eof_mid_record(server: ServerConnection, client: ScriptedClient) -> None:
    server.receive_data(client.client_hello()[:-1])


def eof_mid_handshake_message(server: ServerConnection, client: ScriptedClient) -> None:
    server.receive_data(record(HS, client.client_hello_message(client.client_hello_body())[:50]))


def eof_after_first_flight(server: ServerConnection, client: ScriptedClient) -> None:
    advance(server, client, "hello")


def eof_after_change_cipher_spec(server: ServerConnection, client: ScriptedClient) -> None:
    advance(server, client, "cke")
    server.receive_data(client.change_cipher_spec())


def eof_mid_record_after_the_handshake(server: ServerConnection, client: ScriptedClient) -> None:
    full_handshake(server, client)
    server.receive_data(client.application_data(b"truncated")[:-5])


def eof_mid_handshake_message_after_the_handshake(
    server: ServerConnection, client: ScriptedClient
) -> None:
    """A partial handshake message is a truncation even when every record was whole."""
    full_handshake(server, client)
    server.receive_data(client.sealed(HS, b"\x01\x00"))


@pytest.mark.parametrize(
    "before",
    [
        eof_fresh,
        eof_mid_header,
        eof_mid_record,
        eof_mid_handshake_message,
        eof_after_first_flight,
        eof_after_change_cipher_spec,
        eof_mid_record_after_the_handshake,
        eof_mid_handshake_message_after_the_handshake,
    ],
)
def test_eof_mid_way_is_an_error_without_alert(
    rsa_config: ServerConfig, before: Callable[[ServerConnection, ScriptedClient], None]
) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    before(server, client)
    assert drain(server) == []
    server.data_to_send()
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as failure:
        server.next_event()
    assert type(failure.value) is RemoteProtocolError
    assert failure.value.alert is None
    assert server.data_to_send() == b""
    with pytest.raises(RemoteProtocolError) as again:
        server.next_event()
    assert again.value.alert is None
    assert server.data_to_send() == b""


def test_eof_after_the_handshake_is_a_close_without_close_notify(
    rsa_config: ServerConfig,
) -> None:
    server = ServerConnection(rsa_config)
    full_handshake(server, ScriptedClient())
    server.receive_data(b"")
    assert server.next_event() == ConnectionClosed(close_notify=False)
    assert server.data_to_send() == b""


# -- send / close misuse -----------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["start", "hello", "cke"])
def test_send_before_the_handshake_is_refused_and_harmless(
    rsa_config: ServerConfig, phase: Phase
) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    advance(server, client, phase)
    with pytest.raises(LocalProtocolError) as refused:
        server.send(b"too early")
    assert not isinstance(refused.value, RemoteProtocolError)
    assert refused.value.alert is None
    assert server.data_to_send() == b""
    assert not server.errored

    # The connection is not poisoned: the handshake carries on and data flows.
    if phase == "start":
        advance(server, client, "cke")
    elif phase == "hello":
        server.receive_data(client.client_key_exchange())
        assert drain(server) == []
    server.receive_data(client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
    assert client.read_server_finished(server.data_to_send()) == []
    server.send(b"now")
    assert client.read(server.data_to_send()) == [(APP, b"now")]


def test_close_is_idempotent_and_stops_send(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    full_handshake(server, client)
    server.close()
    server.close()
    assert client.read(server.data_to_send()) == [
        (ALERT, bytes((AlertLevel.warning, AlertDescription.close_notify)))
    ]
    with pytest.raises(LocalProtocolError) as refused:
        server.send(b"after close")
    assert refused.value.alert is None
    assert server.data_to_send() == b""
    # Reading still works after our close: the peer's data and close_notify arrive.
    server.receive_data(
        client.application_data(b"late")
        + client.alert(AlertDescription.close_notify, AlertLevel.warning)
    )
    assert drain(server) == [
        ApplicationData(b"late"),
        AlertReceived(AlertLevel.warning, AlertDescription.close_notify),
        ConnectionClosed(close_notify=True),
    ]


def test_close_before_the_handshake_sends_plaintext_close_notify(
    rsa_config: ServerConfig,
) -> None:
    server = ServerConnection(rsa_config)
    server.close()
    assert server.data_to_send() == plaintext_alert(
        AlertLevel.warning, AlertDescription.close_notify
    )
    with pytest.raises(LocalProtocolError):
        server.send(b"x")


def test_send_and_close_after_a_protocol_error(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    full_handshake(server, client)
    server.receive_data(client.application_data(b"x", tamper=True))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(server)
    assert failure.value.alert == AlertDescription.bad_record_mac
    assert client.read(server.data_to_send()) == [
        (ALERT, bytes((AlertLevel.fatal, AlertDescription.bad_record_mac)))
    ]
    with pytest.raises(LocalProtocolError) as refused:
        server.send(b"x")
    assert not isinstance(refused.value, RemoteProtocolError)
    server.close()
    assert server.data_to_send() == b""


def test_error_drops_a_pending_flight(rsa_config: ServerConfig) -> None:
    """A bad message after ClientHello in the same record: no ServerHello, only the alert."""
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    hello = client.client_hello_message(client.client_hello_body())
    server.receive_data(record(HS, hello + handshake(HandshakeType.finished, bytes(12))))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(server)
    assert failure.value.alert == AlertDescription.unexpected_message
    assert server.data_to_send() == plaintext_alert(
        AlertLevel.fatal, AlertDescription.unexpected_message
    )


def test_split_record_row_is_sane() -> None:
    """The interleaving helper puts exactly one foreign record between two handshake records."""
    client = ScriptedClient()
    records = split_records(interleaved(ALERT, b"\x01\x00")(client))
    assert [r.content_type for r in records] == [HS, ALERT, HS]


@pytest.mark.parametrize("before_handshake", [True, False])
def test_fatal_alert_from_the_peer_is_never_a_clean_close(
    rsa_config: ServerConfig, before_handshake: bool
) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    if before_handshake:
        server.receive_data(client.client_hello())
        drain(server)
        server.data_to_send()  # the first flight
        alert = plaintext_alert(AlertLevel.fatal, AlertDescription.handshake_failure)
    else:
        full_handshake(server, client)
        alert = client.alert(AlertDescription.handshake_failure)
    server.receive_data(alert)
    assert drain(server) == [
        AlertReceived(AlertLevel.fatal, AlertDescription.handshake_failure),
        ConnectionClosed(close_notify=False),
    ]
    assert server.data_to_send() == b""  # no reply to a fatal alert
