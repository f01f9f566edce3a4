"""Hostile input under TLS 1.3: test_hostile.py's table, for the rules RFC 8446 adds.

Every row drives a fresh ServerConnection with tlslite-ng's parts (tlslite13_peer.Client13) up to
a phase — nothing sent ("start"), the first ClientHello answered and the handshake keys derived
("flight"), the handshake complete ("traffic") — injects its bytes, and checks the whole
failure contract: `next_event()` raises RemoteProtocolError naming the alert, `data_to_send()`
holds exactly that one alert (in clear before our encrypted flight, sealed under our current
key after it), and from then on the connection raises again and sends nothing. The controls at
the end show the same steps without the fault succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tlslite.constants import GroupName

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
)
from trio_tls.engine.sessions import SessionState, TicketKeys
from trio_tls.engine.wire.enums import TLS12, TLS13, TLS_FALLBACK_SCSV, AlertDescription
from trio_tls.engine.wire.errors import RemoteProtocolError

from .client_certs import ALICE, client_auth
from .tlslite13_peer import (
    ALERT,
    APPLICATION_DATA,
    CCS,
    HANDSHAKE,
    X25519MLKEM768,
    Client13,
    KeyShare,
    handshake,
    raw_extension,
    record,
)

A = AlertDescription
Phase = Literal["start", "flight", "traffic"]
ConfigName = Literal["tls13", "client-auth"]
P256, X25519 = GroupName.secp256r1, GroupName.x25519

TICKET_KEYS = TicketKeys()
PSK = bytes(range(32))


def ticket(version: int = TLS13, suite: int = 0x1301) -> bytes:
    """A ticket this server sealed, as its NewSessionTicket would hold it."""
    return TICKET_KEYS.seal(
        SessionState(suite, PSK, True, "localhost", time.time(), version=version, age_add=7)
    )


def drain(server: ServerConnection) -> list[Event]:
    events: list[Event] = []
    while (event := server.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return events


def advance(server: ServerConnection, client: Client13, phase: Phase) -> None:
    if phase == "start":
        return
    server.receive_data(client.hello_record())
    assert drain(server) == []
    assert client.read_flight(server.data_to_send()) == "flight"
    if phase == "flight":
        return
    server.receive_data(client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
    assert [t for t, _ in client.read(server.data_to_send())] == [HANDSHAKE]  # the ticket


# -- building blocks ----------------------------------------------------------------------------


def hello(**changes: Any) -> Callable[[Client13, ServerConnection], bytes]:
    """A first ClientHello with `changes` (Client13.extensions() keywords go to extensions)."""
    names = {"versions", "schemes", "groups", "shares", "server_name", "key_share"}

    def inject(c: Client13, s: ServerConnection) -> bytes:
        ext = {k: v for k, v in changes.items() if k in names}
        rest = {k: v for k, v in changes.items() if k not in names}
        extra = rest.pop("extra", [])
        return c.hello_record(c.hello(extensions=[*c.extensions(**ext), *extra], **rest))

    return inject


def share(group: int, key: bytes) -> Callable[[Client13, ServerConnection], bytes]:
    return hello(groups=(group,), shares=[(group, key)])


def mlkem_share(encapsulation_key: bytes) -> bytes:
    return encapsulation_key + KeyShare(X25519, fast=True).public


def with_psk(
    identity: bytes, *, modes: tuple[int, ...] = (1,), tamper: bool = False
) -> Callable[[Client13, ServerConnection], bytes]:
    def inject(c: Client13, s: ServerConnection) -> bytes:
        extensions = [*c.extensions(), *c.psk_extensions(identity, PSK, "sha256", modes)]
        return c.hello_record(c.bind(c.hello(extensions=extensions), tamper=tamper))

    return inject


def psk_not_last(c: Client13, s: ServerConnection) -> bytes:
    modes, offer = c.psk_extensions(ticket(), PSK, "sha256")
    return c.hello_record(c.hello(extensions=[*c.extensions(), offer, modes]))


def psk_without_modes(c: Client13, s: ServerConnection) -> bytes:
    _, offer = c.psk_extensions(ticket(), PSK, "sha256")
    return c.hello_record(c.bind(c.hello(extensions=[*c.extensions(), offer])))


def psk_two_identities_one_binder(c: Client13, s: ServerConnection) -> bytes:
    modes, offer = c.psk_extensions(ticket(), PSK, "sha256")
    offer.identities = offer.identities * 2
    return c.hello_record(c.hello(extensions=[*c.extensions(), modes, offer]))


def retried(
    record_version: int = 0x0303, **changes: Any
) -> Callable[[Client13, ServerConnection], bytes]:
    """A first hello with no share (we serve x25519 first: a retry for it), then the second
    hello with `changes`; by default it is what the retry asked for."""

    def inject(c: Client13, s: ServerConnection) -> bytes:
        first = c.hello(extensions=c.extensions(groups=(X25519, P256), shares=()))
        s.receive_data(c.hello_record(first))
        assert drain(s) == []
        assert c.read_flight(s.data_to_send()) == "retry"
        assert c.retry_group == X25519
        c.shares = {X25519: KeyShare(X25519, fast=True)}
        ext = {"groups": (X25519, P256), "shares": [(X25519, c.shares[X25519].public)]}
        ext.update({k: v for k, v in changes.items() if k in ("shares",)})
        extra = changes.get("extra", [])
        second = c.hello(
            extensions=[*c.extensions(**ext), *extra],
            **{k: v for k, v in changes.items() if k in ("suites", "session_id")},
        )
        return c.hello_record(second, version=record_version)

    return inject


def early_data_extension() -> Any:
    return raw_extension(42, b"")


def sealed(content_type: int, payload: bytes, **kw: Any) -> Callable[..., bytes]:
    return lambda c, s: c.sealed(content_type, payload, **kw)


def wrong_finished(c: Client13, s: ServerConnection) -> bytes:
    good = c.verify_data()
    return c.sealed(HANDSHAKE, handshake(20, bytes((good[0] ^ 1,)) + good[1:]))


def interleaved_finished(c: Client13, s: ServerConnection) -> bytes:
    message = c.finished_message()
    return (
        c.sealed(HANDSHAKE, message[:10])
        + c.sealed(APPLICATION_DATA, b"x")
        + c.sealed(HANDSHAKE, message[10:])
    )


def key_updates(count: int) -> Callable[[Client13, ServerConnection], bytes]:
    return lambda c, s: b"".join(c.key_update(0) for _ in range(count))


def data_under_old_key(c: Client13, s: ServerConnection) -> bytes:
    old = c.write_dir
    out = c.key_update(0)
    c.write_dir = old
    return out + c.application_data(b"stale")


def early_data(size: int) -> Callable[[Client13, ServerConnection], bytes]:
    """A hello with early_data, answered; then `size` bytes of 0-RTT records (ciphertext
    length, which is what the budget counts), which no key of ours opens."""

    def inject(c: Client13, s: ServerConnection) -> bytes:
        s.receive_data(
            c.hello_record(c.hello(extensions=[*c.extensions(), early_data_extension()]))
        )
        assert drain(s) == []
        assert c.read_flight(s.data_to_send()) == "flight"
        pieces = [2**14] * (size // 2**14) + [size % 2**14]
        return b"".join(record(APPLICATION_DATA, bytes(n)) for n in pieces if n)

    return inject


CLIENT_SIGNATURE_CONTEXT = b" " * 64 + b"TLS 1.3, client CertificateVerify\x00"


def client_certificate(chain: tuple[bytes, ...], context: bytes = b"") -> bytes:
    entries = b"".join(len(d).to_bytes(3, "big") + d + b"\x00\x00" for d in chain)
    body = bytes((len(context),)) + context + len(entries).to_bytes(3, "big") + entries
    return handshake(11, body)


def certificate_and_verify(
    scheme: int = 0x0403, *, tamper: bool = False
) -> Callable[[Client13, ServerConnection], bytes]:
    def inject(c: Client13, s: ServerConnection) -> bytes:
        certificate = client_certificate(ALICE.chain)
        c.messages.append(certificate)
        key = ALICE.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(CLIENT_SIGNATURE_CONTEXT + c._hash(), ec.ECDSA(hashes.SHA256()))
        if tamper:
            signature = signature[:-1] + bytes((signature[-1] ^ 1,))
        length = len(signature).to_bytes(2, "big")
        verify = handshake(15, scheme.to_bytes(2, "big") + length + signature)
        c.messages.append(verify)
        return c.sealed(HANDSHAKE, certificate + verify)

    return inject


@attrs.frozen
class Hostile13:
    id: str
    inject: Callable[[Client13, ServerConnection], bytes]
    alert: AlertDescription
    phase: Phase = "start"
    client: dict[str, Any] = attrs.field(factory=dict)
    config: ConfigName = "tls13"


TABLE = [
    # ---- versions (RFC 8446 §4.1.2, §4.2.1, §D.5; RFC 7507)
    Hostile13("legacy-version-ssl3-with-supported-versions", hello(version=(3, 0)),
              A.protocol_version),
    Hostile13("tls13-hello-with-only-tls12-suites", hello(suites=(0xC02F, 0xC030)),
              A.handshake_failure),
    Hostile13("fallback-scsv-in-tls12-hello", hello(
                  versions=(), key_share=False, suites=(0xC02F, TLS_FALLBACK_SCSV)),
              A.inappropriate_fallback),
    # ---- the hello's extensions (§4.1.2, §9.2, §4.2.8)
    Hostile13("compression-null-and-deflate", hello(compression=(0, 1)), A.illegal_parameter),
    Hostile13("compression-deflate-only", hello(compression=(1,)), A.illegal_parameter),
    Hostile13("no-signature-algorithms", hello(schemes=None), A.missing_extension),
    Hostile13("supported-groups-without-key-share", hello(key_share=False),
              A.missing_extension),
    Hostile13("key-share-without-supported-groups", hello(groups=()), A.missing_extension),
    Hostile13("share-of-a-group-not-supported", hello(
                  groups=(X25519,), shares=[(P256, KeyShare(P256, fast=True).public)]),
              A.illegal_parameter),
    # ---- bad key shares (RFC 7748 §6.1, RFC 8446 §4.2.8.2, draft-ietf-tls-ecdhe-mlkem §6)
    Hostile13("x25519-31-bytes", share(X25519, bytes(range(1, 32))), A.illegal_parameter),
    Hostile13("x25519-33-bytes", share(X25519, bytes(range(1, 34))), A.illegal_parameter),
    Hostile13("x25519-all-zero", share(X25519, bytes(32)), A.illegal_parameter),
    Hostile13("x25519-order-one", share(X25519, (1).to_bytes(32, "little")),
              A.illegal_parameter),
    Hostile13("p256-off-curve", share(P256, b"\x04" + (1).to_bytes(32) + (1).to_bytes(32)),
              A.illegal_parameter),
    Hostile13("p256-compressed", share(P256, b"\x03" + bytes.fromhex(
                  "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")),
              A.illegal_parameter),
    Hostile13("p384-share-of-p256-length",
              share(GroupName.secp384r1, KeyShare(P256, fast=True).public), A.illegal_parameter),
    Hostile13("p256-64-bytes", share(P256, bytes(64)), A.illegal_parameter),
    Hostile13("mlkem-share-one-byte-short", share(X25519MLKEM768, bytes(1184 + 31)),
              A.illegal_parameter),
    Hostile13("mlkem-share-one-byte-long", share(X25519MLKEM768, bytes(1184 + 33)),
              A.illegal_parameter),
    # FIPS 203 §7.2: every 12-bit coefficient of the encapsulation key is below q = 3329.
    Hostile13("mlkem-encapsulation-key-over-modulus",
              share(X25519MLKEM768, mlkem_share(b"\xff" * 1152 + bytes(32))),
              A.illegal_parameter),
    # ---- HelloRetryRequest (§4.1.2, §4.1.4, §4.2.10)
    Hostile13("retry-answered-without-the-share",
              retried(shares=[(P256, KeyShare(P256, fast=True).public)]), A.illegal_parameter),
    Hostile13("retry-answered-with-no-share-gets-no-second-retry", retried(shares=()),
              A.illegal_parameter),
    Hostile13("retry-answered-with-two-shares", retried(shares=[
                  (X25519, KeyShare(X25519, fast=True).public),
                  (P256, KeyShare(P256, fast=True).public)]), A.illegal_parameter),
    Hostile13("retry-answered-with-another-session-id", retried(session_id=b"\x01" * 32),
              A.illegal_parameter),
    Hostile13("retry-answered-without-the-suite", retried(suites=(0x1302,)),
              A.illegal_parameter),
    Hostile13("retry-answered-with-early-data", retried(extra=[early_data_extension()]),
              A.illegal_parameter),
    # ---- pre_shared_key (§4.2.9, §4.2.11)
    Hostile13("pre-shared-key-not-last", psk_not_last, A.illegal_parameter),
    Hostile13("pre-shared-key-without-modes", psk_without_modes, A.missing_extension),
    Hostile13("pre-shared-key-two-identities-one-binder", psk_two_identities_one_binder,
              A.illegal_parameter),
    Hostile13("ticket-with-a-wrong-binder", with_psk(ticket(), tamper=True), A.decrypt_error),
    # ---- records during the client's flight (§5)
    Hostile13("ccs-of-two-bytes", lambda c, s: record(CCS, b"\x01\x01"), A.unexpected_message,
              phase="flight"),
    Hostile13("ccs-not-01", lambda c, s: record(CCS, b"\x02"), A.unexpected_message,
              phase="flight"),
    Hostile13("encrypted-ccs", sealed(CCS, b"\x01"), A.unexpected_message, phase="flight"),
    Hostile13("application-data-before-finished", sealed(APPLICATION_DATA, b"GET /"),
              A.unexpected_message, phase="flight"),
    Hostile13("plaintext-application-data-before-finished",
              lambda c, s: record(APPLICATION_DATA, b"")[:3] + b"\x00\x01x",
              A.bad_record_mac, phase="flight"),
    Hostile13("record-between-the-fragments-of-finished", interleaved_finished,
              A.unexpected_message, phase="flight"),
    Hostile13("finished-and-more-in-one-record",
              lambda c, s: c.sealed(HANDSHAKE, c.finished_message() + b"\x18\x00"),
              A.unexpected_message, phase="flight"),
    Hostile13("all-padding-record", lambda c, s: c.sealed_inner(bytes(20)),
              A.unexpected_message, phase="flight"),
    Hostile13("empty-encrypted-alert", sealed(ALERT, b""), A.unexpected_message,
              phase="flight"),
    Hostile13("ciphertext-over-2**14+256",
              lambda c, s: record(APPLICATION_DATA, bytes(2**14 + 257)), A.record_overflow,
              phase="flight"),
    Hostile13("inner-plaintext-over-2**14+1", sealed(HANDSHAKE, bytes(2**14 + 1)),
              A.record_overflow, phase="flight"),
    Hostile13("bad-tag", sealed(HANDSHAKE, b"\x14\x00\x00\x20", tamper=True),
              A.bad_record_mac, phase="flight"),
    Hostile13("plaintext-finished-after-the-encrypted-flight",
              lambda c, s: record(HANDSHAKE, c.finished_message()), A.unexpected_message,
              phase="flight"),
    Hostile13("second-client-hello-encrypted",
              lambda c, s: c.sealed(HANDSHAKE, bytes(c.hello().write())), A.unexpected_message,
              phase="flight"),
    # ---- the client's Finished (§4.4.4)
    Hostile13("finished-wrong", wrong_finished, A.decrypt_error, phase="flight"),
    Hostile13("finished-too-short", sealed(HANDSHAKE, handshake(20, bytes(31))),
              A.decode_error, phase="flight"),
    Hostile13("finished-too-long-for-sha256", sealed(HANDSHAKE, handshake(20, bytes(48))),
              A.decode_error, phase="flight"),
    # ---- after the handshake (§4.6.3, §5)
    Hostile13("ccs-after-finished", lambda c, s: record(CCS, b"\x01"), A.unexpected_message,
              phase="traffic"),
    Hostile13("encrypted-ccs-after-finished", sealed(CCS, b"\x01"), A.unexpected_message,
              phase="traffic"),
    Hostile13("key-update-request-2", lambda c, s: c.key_update(2), A.illegal_parameter,
              phase="traffic"),
    Hostile13("key-update-empty", lambda c, s: c.key_update(body=b""), A.decode_error,
              phase="traffic"),
    Hostile13("key-update-two-bytes", lambda c, s: c.key_update(body=b"\x00\x00"),
              A.decode_error, phase="traffic"),
    Hostile13("33-key-updates-in-a-row", key_updates(33), A.unexpected_message,
              phase="traffic"),
    Hostile13("data-under-the-key-before-an-update", data_under_old_key, A.bad_record_mac,
              phase="traffic"),
    Hostile13("client-hello-after-the-handshake",
              lambda c, s: c.sealed(HANDSHAKE, bytes(c.hello().write())), A.unexpected_message,
              phase="traffic"),
    Hostile13("empty-alert-after-the-handshake", sealed(ALERT, b""), A.unexpected_message,
              phase="traffic"),
    Hostile13("all-padding-record-after-the-handshake", lambda c, s: c.sealed_inner(bytes(5)),
              A.unexpected_message, phase="traffic"),
    # ---- client certificates (§4.4.2, §4.4.3)
    Hostile13("client-certificate-empty-when-required",
              sealed(HANDSHAKE, client_certificate(())), A.certificate_required,
              phase="flight", config="client-auth"),
    Hostile13("client-certificate-with-a-request-context",
              sealed(HANDSHAKE, client_certificate(ALICE.chain, b"\x01")), A.illegal_parameter,
              phase="flight", config="client-auth"),
    Hostile13("client-certificate-verify-pkcs1", certificate_and_verify(0x0401),
              A.illegal_parameter, phase="flight", config="client-auth"),
    Hostile13("client-certificate-verify-bad-signature", certificate_and_verify(tamper=True),
              A.decrypt_error, phase="flight", config="client-auth"),
    # ---- early data (§4.2.10)
    Hostile13("early-data-over-the-budget", early_data(2**14 + 2**12 + 1), A.unexpected_message),
]  # fmt: skip


@pytest.fixture(scope="module")
def configs(rsa_config: ServerConfig) -> dict[ConfigName, ServerConfig]:
    tls13 = attrs.evolve(rsa_config, versions=frozenset({TLS12, TLS13}), ticket_keys=TICKET_KEYS)
    return {"tls13": tls13, "client-auth": attrs.evolve(tls13, client_auth=client_auth())}


def test_table_ids_are_unique() -> None:
    ids = [row.id for row in TABLE]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_hostile_input(row: Hostile13, configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs[row.config])
    client = Client13(**row.client)
    advance(server, client, row.phase)

    server.receive_data(row.inject(client, server))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(server)
    assert type(failure.value) is RemoteProtocolError
    assert failure.value.alert == row.alert, failure.value
    assert server.errored

    sent = bytes(server.data_to_send())
    fatal = bytes((2, row.alert))
    if client.read_dir is None:  # before our encrypted flight: in clear
        assert sent == record(ALERT, fatal)
    else:
        assert client.read(sent) == [(ALERT, fatal)]

    for more in (b"", b"\x17\x03\x03\x00\x00"):
        if more:
            server.receive_data(more)
        with pytest.raises(RemoteProtocolError) as again:
            server.next_event()
        assert again.value.alert is None
        assert server.data_to_send() == b""


# -- controls and the rules that end in no alert ------------------------------------------------


def complete(server: ServerConnection, client: Client13) -> list[Event]:
    server.receive_data(client.finished())
    events = drain(server)
    assert [type(e) for e in events] == [HandshakeComplete]
    client.read(server.data_to_send())
    return events


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
@pytest.mark.parametrize("group", [X25519, P256, GroupName.secp384r1, X25519MLKEM768])
def test_tlslite_client_completes(
    configs: dict[ConfigName, ServerConfig], suite: int, group: int
) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13(suites=(suite,), groups=(group,))
    advance(server, client, "flight")
    (done,) = complete(server, client)
    assert isinstance(done, HandshakeComplete)
    assert done.info.version == "TLSv1.3"
    server.receive_data(client.application_data(b"ping"))
    assert drain(server) == [ApplicationData(b"ping")]


@pytest.mark.parametrize("record_version", [0x0303, 0x0301])
def test_the_retry_completes(configs: dict[ConfigName, ServerConfig], record_version: int) -> None:
    """RFC 8446 §5.1: legacy_record_version is ignored; OpenSSL 3.0 takes a second hello in
    0x0301 records too (a client should only send them before the retry)."""
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(retried(record_version)(client, server))
    assert drain(server) == []
    assert client.read_flight(server.data_to_send()) == "flight"
    complete(server, client)


def test_tls12_hello_sees_the_downgrade_sentinel(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(hello(versions=(), key_share=False, suites=(0xC02F,))(client, server))
    assert drain(server) == []
    server_hello = bytes(server.data_to_send())[5:]
    assert server_hello[0] == 2
    assert server_hello[4:6] == b"\x03\x03"
    assert server_hello[6 + 24 : 6 + 32] == b"DOWNGRD\x01"  # RFC 8446 §4.1.3


def test_fallback_scsv_with_tls13_offered_is_fine(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(hello(suites=(0x1301, TLS_FALLBACK_SCSV))(client, server))
    assert drain(server) == []
    assert client.read_flight(server.data_to_send()) == "flight"


@pytest.mark.parametrize(
    ("identity", "modes"),
    [(ticket(), (0,)), (ticket(version=TLS12), (1,)), (b"garbage" * 5, (1,))],
    ids=["psk_ke-only", "tls12-ticket", "unknown-identity"],
)
def test_unusable_psk_gets_a_full_handshake(
    configs: dict[ConfigName, ServerConfig], identity: bytes, modes: tuple[int, ...]
) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(with_psk(identity, modes=modes)(client, server))
    assert drain(server) == []
    assert client.read_flight(server.data_to_send()) == "flight"
    assert client.server_sent(11)  # a Certificate: not resumed
    (done,) = complete(server, client)
    assert isinstance(done, HandshakeComplete)
    assert not done.info.resumed


def test_valid_ticket_resumes(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(with_psk(ticket())(client, server))
    assert drain(server) == []
    assert client.read_flight(server.data_to_send()) == "flight"
    assert not client.server_sent(11)
    (done,) = complete(server, client)
    assert isinstance(done, HandshakeComplete)
    assert done.info.resumed


def test_ccs_before_finished_is_dropped(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13(session_id=bytes(32))
    advance(server, client, "flight")
    server.receive_data(record(CCS, b"\x01"))
    assert drain(server) == []
    complete(server, client)


def test_plaintext_fatal_alert_during_the_handshake_is_taken(
    configs: dict[ConfigName, ServerConfig],
) -> None:
    """A client that cannot read our encrypted flight may say so in clear (as OpenSSL lets it)."""
    server = ServerConnection(configs["tls13"])
    client = Client13()
    advance(server, client, "flight")
    server.receive_data(record(ALERT, bytes((2, A.bad_certificate))))
    assert drain(server) == [
        AlertReceived(2, A.bad_certificate),
        ConnectionClosed(close_notify=False),
    ]
    assert server.data_to_send() == b""


@pytest.mark.parametrize("description", [A.handshake_failure, A.no_renegotiation, 200])
def test_warning_alerts_are_fatal_in_tls13(
    configs: dict[ConfigName, ServerConfig], description: int
) -> None:
    """RFC 8446 §6: whatever its level, an alert other than close_notify and user_canceled
    ends the connection; nothing is answered."""
    server = ServerConnection(configs["tls13"])
    client = Client13()
    advance(server, client, "traffic")
    server.receive_data(client.sealed(ALERT, bytes((1, description))))
    assert drain(server) == [
        AlertReceived(1, description),
        ConnectionClosed(close_notify=False),
    ]
    assert server.data_to_send() == b""


@pytest.mark.parametrize("requests", [1, 3])
def test_each_update_request_is_answered_once(
    configs: dict[ConfigName, ServerConfig], requests: int
) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    advance(server, client, "traffic")
    data = b"".join(client.key_update(1) for _ in range(requests)) + client.key_update(0)
    server.receive_data(data + client.application_data(b"x"))
    assert drain(server) == [ApplicationData(b"x")]
    server.send(b"y")
    records = client.read(server.data_to_send())
    assert client.key_updates_received == requests
    assert records[-1] == (APPLICATION_DATA, b"y")
    assert records[:-1] == [(HANDSHAKE, b"\x18\x00\x00\x01\x00")] * requests


def test_32_key_updates_in_a_row_are_fine(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    advance(server, client, "traffic")
    server.receive_data(key_updates(32)(client, server) + client.application_data(b"x"))
    assert drain(server) == [ApplicationData(b"x")]


def test_client_certificate_is_taken(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["client-auth"])
    client = Client13()
    advance(server, client, "flight")
    server.receive_data(certificate_and_verify()(client, server))
    assert drain(server) == []
    (done,) = complete(server, client)
    assert isinstance(done, HandshakeComplete)
    assert done.info.client_certificate is not None


def test_early_data_within_the_budget_is_skipped(configs: dict[ConfigName, ServerConfig]) -> None:
    server = ServerConnection(configs["tls13"])
    client = Client13()
    server.receive_data(early_data(2**14 + 2**12)(client, server))
    assert drain(server) == []
    complete(server, client)
