"""tlslite-ng, a second independent TLS implementation, against the engine in-process.

Every byte the server validates here was made by tlslite-ng (tlslite_peer.py): its hellos,
its ECDHE (pure-Python X25519, python-ecdsa's curves), its PRF, its AES-GCM and ChaCha20 record
protection, its Finished; and it checks the server's ServerKeyExchange signature and Finished
with its own code. First its own client (`connect`) through the ordinary paths; then the
inputs that used to come only from the scripted client, which shares the engine's encoders:
hellos without signature_algorithms or supported_groups, fragmented and coalesced flights,
renegotiation attempts, a session offered without extended master secret, a bad ECDH point.
"""

from __future__ import annotations

import math

import attrs
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from tlslite.api import TLSConnection, X509CertChain, parsePEMKey
from tlslite.constants import (
    AlertLevel,
    CertificateType,
    ContentType,
    GroupName,
    HashAlgorithm,
    SignatureAlgorithm,
    SignatureScheme,
)
from tlslite.extensions import SignatureAlgorithmsExtension, SupportedGroupsExtension
from tlslite.keyexchange import KeyExchange
from tlslite.messages import Certificate

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.asymmetric import TLS12_GROUPS
from trio_tls.engine.crypto.suites import ALL_SUITES, CipherSuite
from trio_tls.engine.events import AlertReceived, ApplicationData, ConnectionInfo, HandshakeComplete
from trio_tls.engine.sessions import SessionCache, SessionState, TicketKeys
from trio_tls.engine.wire.enums import AlertDescription

from .client_certs import ALICE, client_auth
from .tlslite_peer import (
    TLS12,
    StepClient,
    alert_name,
    connect,
    connection_data_flows,
    default_extensions,
    record_headers,
    session_ticket,
)

# tlslite-ng's HandshakeSettings.cipherNames for the AEAD part of each IANA suite name.
TLSLITE_CIPHERS = {
    "AES_128_GCM": "aes128gcm",
    "AES_256_GCM": "aes256gcm",
    "CHACHA20_POLY1305": "chacha20-poly1305",
}
GROUP_NAMES = [group.name for group in TLS12_GROUPS]


def tlslite_cipher(suite: CipherSuite) -> str:
    (name,) = [tlslite for iana, tlslite in TLSLITE_CIPHERS.items() if f"_{iana}_" in suite.name]
    return name


def handshake_info(client: StepClient) -> ConnectionInfo:
    """What the server reported in its one HandshakeComplete so far."""
    (complete,) = [e for e in client.loop.events if isinstance(e, HandshakeComplete)]
    return complete.info


# -- tlslite-ng's own client ---------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUP_NAMES)
@pytest.mark.parametrize("suite", ALL_SUITES, ids=[suite.name for suite in ALL_SUITES])
def test_every_suite_and_group(full_config: ServerConfig, suite: CipherSuite, group: str) -> None:
    # RFC 8422 §5.1: the ECDSA certificate's curve must be one the client lists too.
    certificate_curve = ["secp256r1"] if suite.auth == "ecdsa" and group == "x25519" else []
    connection, loop = connect(
        ServerConnection(full_config),
        cipherNames=[tlslite_cipher(suite)],
        keyExchangeNames=[f"ecdhe_{suite.auth}"],
        eccCurves=[group, *certificate_curve],
    )
    server = loop.server.info
    assert server is not None
    assert (server.cipher_suite, connection.session.cipherSuite) == (suite.name, suite.id)
    assert (server.group, connection.ecdhCurve) == (group, getattr(GroupName, group))
    # tlslite-ng verified the ServerKeyExchange signature under the scheme the server reports.
    assert SignatureScheme.toRepr(connection.serverSigAlg) == server.signature_scheme
    assert server.extended_master_secret and connection.extendedMasterSecret
    connection_data_flows(connection, loop)


@pytest.mark.parametrize("ems", [True, False], ids=["ems", "no-ems"])
def test_extended_master_secret_as_tlslite_asks(rsa_config: ServerConfig, ems: bool) -> None:
    """Both master secret derivations agree with an independent PRF (RFC 5246 §8.1, RFC 7627)."""
    connection, loop = connect(ServerConnection(rsa_config), useExtendedMasterSecret=ems)
    assert loop.server.info is not None
    assert loop.server.info.extended_master_secret is ems
    assert connection.extendedMasterSecret is ems
    connection_data_flows(connection, loop)


def resumable(config: ServerConfig, by: str) -> ServerConfig:
    """`config` resuming by ticket only or by session ID only."""
    if by == "ticket":
        return attrs.evolve(config, session_cache=None, ticket_keys=TicketKeys())
    return attrs.evolve(config, session_cache=SessionCache(), ticket_keys=None)


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_resumption(rsa_config: ServerConfig, by: str) -> None:
    config = resumable(rsa_config, by)
    first, _ = connect(ServerConnection(config))
    assert bool(first.session.tls_1_0_tickets) is (by == "ticket")
    assert first.session.sessionID  # a ticket's session too: RFC 5077 §3.4
    again, loop = connect(ServerConnection(config), session=first.session)
    assert again.resumed
    assert loop.server.info is not None and loop.server.info.resumed
    connection_data_flows(again, loop)


@pytest.mark.parametrize("record_size", [1, 7, 100])
def test_fragmented_client_flights(rsa_config: ServerConfig, record_size: int) -> None:
    """RFC 5246 §6.2.1: a handshake message may span any number of records; down to one byte
    per record, ClientHello and ClientKeyExchange in plaintext, Finished sealed."""
    connection, loop = connect(
        ServerConnection(rsa_config), record_size=record_size, cipherNames=["aes128gcm"]
    )
    connection_data_flows(connection, loop)
    headers = record_headers(loop.sent)
    ccs = headers.index((ContentType.change_cipher_spec, 1))
    plaintext = headers[:ccs]
    assert {t for t, _ in plaintext} == {ContentType.handshake}
    assert max(n for _, n in plaintext) == record_size
    # The 16-byte Finished, each piece sealed alone: AES-GCM adds 8 + 16 bytes to each.
    finished = [n - 24 for t, n in headers[ccs + 1 :] if t == ContentType.handshake]
    assert len(finished) == math.ceil(16 / record_size)
    assert sum(finished) == 16


# -- ClientHellos tlslite-ng's own client never sends --------------------------------------------


@pytest.mark.parametrize(
    "schemes",
    [
        None,
        [(HashAlgorithm.sha1, SignatureAlgorithm.rsa), (HashAlgorithm.md5, SignatureAlgorithm.rsa)],
    ],
    ids=["no-signature-algorithms", "only-sha1-and-md5"],
)
def test_no_usable_signature_algorithms_is_handshake_failure(
    rsa_config: ServerConfig, schemes: list[tuple[int, int]] | None
) -> None:
    """RFC 9155 §2 replaces RFC 5246 §7.4.1.4.1's SHA-1 default: without signature_algorithms
    the server MUST abort with handshake_failure, as with a list of only SHA-1 and MD5."""
    client = StepClient(ServerConnection(rsa_config))
    client.send_hello(client.hello(extensions=default_extensions(schemes=schemes)))
    alert = client.expect_alert()
    assert (alert.level, alert_name(alert)) == (AlertLevel.fatal, "handshake_failure")
    assert client.loop.error is not None
    assert client.loop.error.alert == AlertDescription.handshake_failure


@pytest.mark.parametrize(
    "minimal", [False, True], ids=["without-groups", "only-signature-algorithms"]
)
def test_no_supported_groups_means_secp256r1(rsa_config: ServerConfig, minimal: bool) -> None:
    """RFC 8422 §4: without supported_groups the server may choose any curve; it picks
    secp256r1, which every client has, and tlslite-ng's P-256 completes the handshake. With
    nothing but signature_algorithms, the ServerHello has no extensions (RFC 5246 §7.4.1.4:
    none unasked)."""
    client = StepClient(ServerConnection(rsa_config))
    schemes = [SignatureScheme.rsa_pkcs1_sha256]
    if minimal:
        extensions = [SignatureAlgorithmsExtension().create(schemes)]
    else:
        extensions = default_extensions(groups=None, schemes=schemes)
    client.send_hello(client.hello(extensions=extensions))
    server_hello = client.read_server_flight()
    ske = client.server_key_exchange
    assert ske is not None
    assert ske.named_curve == GroupName.secp256r1
    assert (ske.hashAlg, ske.signAlg) == SignatureScheme.rsa_pkcs1_sha256
    if minimal:
        assert not server_hello.extensions
    client.key_exchange_and_finished()
    client.read_server_finished()
    assert handshake_info(client).group == "secp256r1"
    client.exchange_data()


# -- records: one message over many, and many in one ---------------------------------------------


def test_hello_split_over_ssl3_version_records(rsa_config: ServerConfig) -> None:
    """The hello in 40-byte records of version 3.0, as a client that may meet an SSL 3 server
    sends it (RFC 5246 Appendix E.1): the control for the hostile table's interleaving rows,
    which split the hello at the same place and fail only for the record put in between."""
    client = StepClient(ServerConnection(rsa_config), record_size=40)
    client.send_hello(record_version=(3, 0))
    headers = record_headers(client.loop.sent)
    assert len(headers) > 2
    assert client.loop.sent[1:3] == b"\x03\x00"
    client.read_server_flight()
    client.key_exchange_and_finished()
    client.read_server_finished()
    client.exchange_data()


def test_key_exchange_split_over_records(rsa_config: ServerConfig) -> None:
    """ClientKeyExchange cut inside its own header, then CCS and a whole Finished."""
    client = StepClient(ServerConnection(rsa_config))
    client.send_hello()
    client.read_server_flight()
    client.sock.recordSize = 3
    sent_before = len(client.loop.sent)
    client.send(client.client_key_exchange())
    assert [n for _, n in record_headers(client.loop.sent[sent_before:])][:2] == [3, 3]
    client.sock.recordSize = 2**14
    client.derive_keys()
    client.finished()
    client.read_server_finished()
    client.exchange_data()


def test_certificate_key_exchange_and_verify_in_one_record(rsa_config: ServerConfig) -> None:
    """RFC 5246 §6.2.1: several handshake messages may share a record. The client's whole
    authenticated second flight in one, with tlslite-ng's own ECDSA CertificateVerify."""
    client = StepClient(ServerConnection(attrs.evolve(rsa_config, client_auth=client_auth())))
    client.send_hello()
    client.read_server_flight()
    chain = X509CertChain()
    chain.parsePemList(ALICE.certificate.public_bytes(Encoding.PEM).decode())
    key = parsePEMKey(
        ALICE.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode(),
        private=True,
    )
    sent_before = len(client.loop.sent)
    client.queue(Certificate(CertificateType.x509, TLS12).create(chain))
    client.queue(client.client_key_exchange())
    client.derive_keys()  # the extended master secret's session hash ends at ClientKeyExchange
    assert client.client_hello is not None and client.server_hello is not None
    client.queue(
        KeyExchange.makeCertificateVerify(
            TLS12,
            client.hashes,
            [SignatureScheme.ecdsa_secp256r1_sha256],
            key,
            client.certificate_request,
            client.premaster_secret,
            client.client_hello.random,
            client.server_hello.random,
        )
    )
    client.flush()
    assert [t for t, _ in record_headers(client.loop.sent[sent_before:])] == [ContentType.handshake]
    client.finished()
    client.read_server_finished()
    certificate = handshake_info(client).client_certificate
    assert certificate is not None and certificate[0] == ALICE.certificate
    client.exchange_data()


# -- a bad ECDH point ----------------------------------------------------------------------------


@pytest.mark.parametrize("group", [GroupName.secp256r1, GroupName.secp384r1])
def test_key_exchange_point_off_the_curve_is_illegal_parameter(
    rsa_config: ServerConfig, group: int
) -> None:
    """RFC 8422 §5.1.2 / SEC 1 §3.2.2: a share that is not a curve point is refused. The point
    is tlslite-ng's own share with the low bit of y flipped: (x, y ^ 1) is on the curve only if
    y ^ 1 = p - y, that is y = (p ± 1) / 2, a chance of about 2^-255."""
    client = StepClient(ServerConnection(rsa_config))
    groups = SupportedGroupsExtension().create([group])
    client.send_hello(client.hello(extensions=[groups, *default_extensions(groups=None)]))
    client.read_server_flight()
    public = bytearray(client.client_key_exchange().ecdh_Yc)
    public[-1] ^= 0x01
    client.send(client.client_key_exchange(bytes(public)))
    assert alert_name(client.expect_alert()) == "illegal_parameter"
    assert client.loop.error is not None
    assert client.loop.error.alert == AlertDescription.illegal_parameter


# -- extended master secret on resumption (RFC 7627 §5.3) ----------------------------------------


def offer_session(config: ServerConfig, first: TLSConnection, by: str, *, ems: bool) -> StepClient:
    """A StepClient that has sent a hello offering `first`'s session, by ticket or by ID."""
    session = first.session
    if by == "ticket":
        return offer(config, by, bytes(session.tls_1_0_tickets[0].ticket), ems=ems)
    return offer(config, by, bytes(session.sessionID), ems=ems)


def offer(config: ServerConfig, by: str, ticket_or_id: bytes, *, ems: bool) -> StepClient:
    """A StepClient that has sent a hello offering a session by this ticket or session ID."""
    client = StepClient(ServerConnection(config))
    extensions = default_extensions(ems=ems)
    if by == "ticket":
        client.send_hello(client.hello(extensions=[*extensions, session_ticket(ticket_or_id)]))
    else:
        client.send_hello(client.hello(extensions=extensions, session_id=ticket_or_id))
    return client


def legacy_session(config: ServerConfig, by: str) -> bytes:
    """A session without the extended master secret, as an older server made them (this one
    makes none): sealed in a ticket, or stored under a session ID."""
    state = SessionState(0xC02F, bytes(48), False, "localhost", config.clock())
    if by == "ticket":
        assert config.ticket_keys is not None
        return config.ticket_keys.seal(state)
    assert config.session_cache is not None
    config.session_cache.store(b"legacy" * 5 + b"id", state)
    return b"legacy" * 5 + b"id"


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_ems_session_offered_without_ems_is_refused(rsa_config: ServerConfig, by: str) -> None:
    """RFC 7627 §5.3: the server MUST abort, whether the session comes by ticket or by ID."""
    config = resumable(rsa_config, by)
    first, _ = connect(ServerConnection(config))
    assert first.extendedMasterSecret
    client = offer_session(config, first, by, ems=False)
    assert alert_name(client.expect_alert()) == "handshake_failure"
    assert client.loop.error is not None
    assert client.loop.error.alert == AlertDescription.handshake_failure
    # With the extension, the same session resumes.
    again, loop = connect(ServerConnection(config), session=first.session)
    assert again.resumed
    connection_data_flows(again, loop)


def test_a_handshake_without_ems_makes_no_session(rsa_config: ServerConfig) -> None:
    """RFC 7627 §5.3: such a session is never resumed, so nothing is cached under the session
    ID it names, and its next connection is a full handshake. (By ticket: tlslite-ng's client
    takes any ticket it offers as accepted, so test_resumption.py shows that with OpenSSL,
    and the test below with a ticket this server sealed.)"""
    config = resumable(rsa_config, "session_id")
    first, loop = connect(ServerConnection(config), useExtendedMasterSecret=False)
    assert not first.extendedMasterSecret
    assert config.session_cache is not None and len(config.session_cache) == 0
    connection_data_flows(first, loop)
    again, loop = connect(
        ServerConnection(config), session=first.session, useExtendedMasterSecret=False
    )
    assert not again.resumed
    connection_data_flows(again, loop)


@pytest.mark.parametrize("ems", [True, False], ids=["with-ems", "without-ems"])
@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_non_ems_session_offered_again_means_full_handshake(
    rsa_config: ServerConfig, by: str, ems: bool
) -> None:
    """RFC 7627 §5.3: a session without EMS is not resumed for a client that now asks for it
    (MUST NOT), and a full handshake follows (SHOULD). Nor for one that still does not: the
    RFC says SHOULD abort, OpenSSL resumes (legacy insecure resumption); this server gives a
    full handshake, since the session may be in a ticket it sealed itself."""
    config = resumable(rsa_config, by)
    client = offer(config, by, legacy_session(config, by), ems=ems)
    client.read_server_flight()  # Certificate and ServerKeyExchange: a full handshake
    client.key_exchange_and_finished()
    client.read_server_finished()
    assert not handshake_info(client).resumed
    assert handshake_info(client).extended_master_secret == ems


# -- renegotiation is refused with a warning, and the connection goes on (RFC 5246 §7.2.2) -----

WARNING_NO_RENEGOTIATION = (AlertLevel.warning, "no_renegotiation")


def established(config: ServerConfig) -> StepClient:
    client = StepClient(ServerConnection(config))
    client.handshake()
    client.loop.take_events()
    return client


def renegotiation_hello(client: StepClient, *, secure: bool = True) -> bytes:
    """A second ClientHello, as bytes: RFC 5746 secure (renegotiation_info carrying our last
    verify_data) or legacy (no renegotiation_info at all)."""
    verify_data = bytes(client.client_verify_data) if secure else None
    hello = client.hello(extensions=default_extensions(renegotiation_info=verify_data))
    return bytes(hello.write())


def expect_warnings(client: StepClient, count: int) -> None:
    for _ in range(count):
        alert = client.expect_alert()
        assert (alert.level, alert_name(alert)) == WARNING_NO_RENEGOTIATION
    assert not client.loop.inbox


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "legacy"])
def test_renegotiation_gets_a_warning_and_data_keeps_flowing(
    rsa_config: ServerConfig, secure: bool
) -> None:
    client = established(rsa_config)
    hello = renegotiation_hello(client, secure=secure)
    # Split over two records, and followed by data in the same read.
    with client.loop.held():
        client.send_record(ContentType.handshake, hello[:50])
        client.send_record(ContentType.handshake, hello[50:])
        client.write(b"a")
    assert client.loop.take_events() == [ApplicationData(b"a")]
    expect_warnings(client, 1)
    client.exchange_data()


def test_data_between_renegotiations_resets_the_count(rsa_config: ServerConfig) -> None:
    """Four refusals in a row are tolerated (the fifth is a flood: the hostile table's
    five-renegotiations-in-a-row); data in between starts the count again."""
    client = established(rsa_config)
    for _ in range(3):
        for _ in range(4):
            client.send_record(ContentType.handshake, renegotiation_hello(client))
        assert client.loop.take_events() == []
        expect_warnings(client, 4)
        client.exchange_data()


def test_no_signature_algorithms_in_a_renegotiation_is_still_just_refused(
    rsa_config: ServerConfig,
) -> None:
    # The ignored hello is never negotiated, so what it lacks does not matter.
    client = established(rsa_config)
    hello = client.hello(extensions=[SupportedGroupsExtension().create([GroupName.x25519])])
    client.send(hello)
    assert client.loop.take_events() == []
    expect_warnings(client, 1)
    client.exchange_data()


def test_renegotiation_after_our_close_notify_gets_no_answer(rsa_config: ServerConfig) -> None:
    client = established(rsa_config)
    client.loop.server.close()
    client.loop.pump()
    alert = client.expect_alert()
    assert (alert.level, alert_name(alert)) == (AlertLevel.warning, "close_notify")
    client.send_record(ContentType.handshake, renegotiation_hello(client))
    assert client.loop.take_events() == []
    assert not client.loop.inbox


def test_data_between_the_fragments_of_a_renegotiation_hello_is_delivered(
    rsa_config: ServerConfig,
) -> None:
    """RFC 5246 §6.2.1: other records may come between the fragments of a handshake message."""
    client = established(rsa_config)
    hello = renegotiation_hello(client)
    with client.loop.held():
        client.send_record(ContentType.handshake, hello[:3])
        client.write(b"inside")
        client.send_record(ContentType.alert, b"\x01\x5a")  # a warning (user_canceled) too
        client.send_record(ContentType.handshake, hello[3:])
    assert client.loop.take_events() == [
        ApplicationData(b"inside"),
        AlertReceived(AlertLevel.warning, AlertDescription.user_canceled),
    ]
    expect_warnings(client, 1)
    client.exchange_data()
