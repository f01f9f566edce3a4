"""ServerConnection against OpenSSL (the ssl module over MemoryBIO): the independent peer."""

from __future__ import annotations

import hashlib
import pathlib
import ssl

import attrs
import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import (
    NEED_DATA,
    AlertObserved,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyDerived,
    MessageObserved,
    Observation,
    RecordObserved,
    SecretsEstablished,
    SignatureNeeded,
)
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.enums import AlertDescription, AlertLevel, ContentType, ExtensionType
from trio_tls.engine.wire.errors import LocalProtocolError, RemoteProtocolError
from trio_tls.engine.wire.messages import ChangeCipherSpec, ClientKeyExchange, ServerKeyExchange

from .openssl_peer import OpenSSLClient, client_context
from .scripted_client import ParsedServerHello, ScriptedClient, derive_keys


def connect(config: ServerConfig, ctx: ssl.SSLContext, **kwargs: object) -> OpenSSLClient:
    client = OpenSSLClient(ServerConnection(config, **kwargs), ctx)  # type: ignore[arg-type]
    events = client.handshake()
    assert [type(e) for e in events] == [HandshakeComplete]
    return client


def received(client: OpenSSLClient) -> bytes:
    return b"".join(e.data for e in client.events if isinstance(e, ApplicationData))


def test_handshake_negotiates_what_openssl_sees(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    client = connect(rsa_config, client_context(ca))
    assert client.ssl.version() == "TLSv1.2"
    assert client.ssl.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    info = client.server.info
    assert info is not None
    assert info.cipher_suite == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert info.sni == "localhost"
    assert info.extended_master_secret


@pytest.mark.parametrize("size", [1, 16 * 1024, 1024 * 1024])
def test_data_both_ways(ca: trustme.CA, rsa_config: ServerConfig, size: int) -> None:
    client = connect(rsa_config, client_context(ca))
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    client.send(payload)
    assert received(client) == payload
    client.server.send(payload[::-1])
    assert client.receive(size) == payload[::-1]


def test_secp256r1_is_used_when_the_client_prefers_it(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    ctx = client_context(ca)
    ctx.set_ecdh_curve("prime256v1")
    client = connect(rsa_config, ctx)
    assert client.server.info is not None
    assert client.server.info.group == "secp256r1"


@pytest.mark.parametrize("ems", [True, False])
def test_extended_master_secret_on_and_off(
    ca: trustme.CA, rsa_config: ServerConfig, ems: bool
) -> None:
    client = connect(rsa_config, client_context(ca, ems=ems))
    assert client.server.info is not None
    assert client.server.info.extended_master_secret is ems
    client.send(b"ping")
    client.server.send(b"pong")
    assert client.receive(4) == b"pong"


def test_client_close_notify_ends_the_stream(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    client = connect(rsa_config, client_context(ca))
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.unwrap()
    events = client.pump()
    assert events == [
        AlertReceived(AlertLevel.warning, AlertDescription.close_notify),
        ConnectionClosed(close_notify=True),
    ]
    client.server.close()
    client.pump()
    client.ssl.unwrap()  # OpenSSL accepts our close_notify: a clean bidirectional shutdown


def test_server_close_notify_is_seen_by_openssl(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    client = connect(rsa_config, client_context(ca))
    client.server.close()
    client.pump()
    assert client.ssl.read(10) == b""  # a clean EOF: close_notify arrived and verified
    with pytest.raises(LocalProtocolError):
        client.server.send(b"too late")


def test_eof_without_close_notify_is_reported(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    client = connect(rsa_config, client_context(ca))
    client.server.receive_data(b"")
    assert client.server.next_event() == ConnectionClosed(close_notify=False)


def test_pss_signature_chosen_and_valid(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    seen: list[Observation] = []
    client = connect(rsa_config, client_context(ca), observer=seen.append)
    assert client.server.info is not None
    assert client.server.info.signature_scheme == "rsa_pss_rsae_sha256"
    sent = [o.message for o in seen if isinstance(o, MessageObserved) and o.direction == "sent"]
    assert any(isinstance(m, ServerKeyExchange) for m in sent)


def test_ec_point_formats_is_answered_when_offered(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """Guards ec_point_formats in ServerHello (RFC 8422 §5.2): OpenSSL offers the extension, so
    the ServerHello that negotiates an ECDHE suite carries ours, listing uncompressed (0); a
    client that does not send it gets none (RFC 5246 §7.4.1.4: never unsolicited)."""
    seen: list[Observation] = []
    connect(rsa_config, client_context(ca), observer=seen.append)
    (hello,) = [
        o.encoded
        for o in seen
        if isinstance(o, MessageObserved) and o.direction == "sent" and o.encoded[0] == 2
    ]
    reader = Reader(hello)
    reader.raw(4)
    parsed = ParsedServerHello.decode(reader)
    assert parsed.extension(ExtensionType.ec_point_formats) == b"\x01\x00"

    client = ScriptedClient()
    server = ServerConnection(rsa_config)
    server.receive_data(
        client.client_hello(
            extensions=[
                e for e in client.default_extensions() if e[0] != ExtensionType.ec_point_formats
            ]
        )
    )
    assert server.next_event() is NEED_DATA
    flight = client.read_server_flight(server.data_to_send())
    assert flight.server_hello.extension(ExtensionType.ec_point_formats) is None


def test_observer_sees_secrets_matching_openssl_keylog(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: pathlib.Path
) -> None:
    keylog = tmp_path / "keys.log"
    ctx = client_context(ca)
    ctx.keylog_filename = str(keylog)
    seen: list[Observation] = []
    connect(rsa_config, ctx, observer=seen.append)
    secrets = [o for o in seen if isinstance(o, SecretsEstablished)]
    assert len(secrets) == 1
    line = f"CLIENT_RANDOM {secrets[0].client_random.hex()} {secrets[0].master_secret.hex()}"
    assert line in keylog.read_text().splitlines()


# -- what the engine reports: error messages, alerts' reasons, observations ---------------------
# An operator reads these (the log line names the error, `--trace` the alerts' reasons), so
# their words are part of the contract.


def sent_alerts(seen: list[Observation]) -> list[AlertObserved]:
    return [o for o in seen if isinstance(o, AlertObserved) and o.direction == "sent"]


def test_errors_without_an_alert_say_what_happened(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """Guards the messages of the errors that send no alert: send() out of turn, and the
    transport's EOF during the handshake or in the middle of a record."""
    server = ServerConnection(rsa_config)
    with pytest.raises(LocalProtocolError, match=r"^cannot send application data now$"):
        server.send(b"too early")

    client = OpenSSLClient(ServerConnection(rsa_config), client_context(ca))
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.do_handshake()
    client.pump()  # ClientHello in, the first flight out
    client.server.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=r"^the transport closed during the handshake$"):
        client.server.next_event()

    client = connect(rsa_config, client_context(ca))
    client.server.receive_data(b"\x17\x03\x03\x00\x20" + bytes(10))
    client.server.receive_data(b"")
    with pytest.raises(
        RemoteProtocolError, match=r"^the transport closed in the middle of a record$"
    ):
        client.server.next_event()
    with pytest.raises(RemoteProtocolError, match=r"^the connection has failed$") as again:
        client.server.next_event()
    assert again.value.alert is None


def test_an_interrupted_connection_refuses_further_work(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """Guards h11's rule for what is not a protocol error (a bug, or the caller's
    KeyboardInterrupt in the middle of next_event): it propagates as it is, and the
    connection, in a state nobody can vouch for, fails every later call, naming the
    interruption as the cause, without an alert (none was sent)."""

    class Bug(Exception):
        pass

    def observer(observation: Observation) -> None:
        if isinstance(observation, MessageObserved) and observation.direction == "received":
            raise Bug("the observer broke")

    client = OpenSSLClient(ServerConnection(rsa_config, observer), client_context(ca))
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.do_handshake()
    client.server.receive_data(client.outgoing.read())
    with pytest.raises(Bug):
        client.server.next_event()
    with pytest.raises(RemoteProtocolError, match=r"^the connection has failed$") as again:
        client.server.next_event()
    cause = again.value.__cause__
    assert isinstance(cause, LocalProtocolError)
    assert str(cause) == "interrupted by Bug('the observer broke')"
    assert cause.alert is None
    assert client.server.data_to_send() == b""


def test_the_handshake_waits_for_a_deferred_signature(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """Guards the message of the error for a caller that asks for the next event while the
    ServerKeyExchange signature it was handed (defer_signatures) is still outstanding."""
    server = ServerConnection(rsa_config, defer_signatures=True)
    client = OpenSSLClient(server, client_context(ca))
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.do_handshake()
    server.receive_data(client.outgoing.read())
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    with pytest.raises(RuntimeError, match=r"^the handshake waits for complete_signature\(\)$"):
        server.next_event()
    server.complete_signature(event.sign())
    assert server.next_event() is NEED_DATA
    with pytest.raises(RuntimeError, match=r"^no signature is awaited$"):
        server.complete_signature(event.sign())


def test_a_message_in_the_client_hellos_record_is_handled_once_signed(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """Guards the handshake going on after complete_signature() with what is already buffered:
    a message that shared the ClientHello's record (RFC 5246 §6.2.1 allows it) is handled at
    the next call, as without deferral, not left waiting for more bytes from the peer. (A
    ClientKeyExchange sent blind, whose point is not on the curve: illegal_parameter.)"""
    server = ServerConnection(rsa_config, defer_signatures=True)
    client = OpenSSLClient(server, client_context(ca))
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.do_handshake()
    hello = client.outgoing.read()
    assert int.from_bytes(hello[3:5], "big") + 5 == len(hello)  # one record
    point = bytes([4]) + bytes(64)
    fragment = hello[5:] + bytes([16, 0, 0, 1 + len(point), len(point)]) + point
    server.receive_data(hello[:3] + len(fragment).to_bytes(2, "big") + fragment)
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    server.complete_signature(event.sign())
    with pytest.raises(RemoteProtocolError) as failure:
        server.next_event()
    assert failure.value.alert == AlertDescription.illegal_parameter


def test_abort_and_refused_renegotiation_give_their_reasons(rsa_config: ServerConfig) -> None:
    """Guards the reasons the observer (and so the trace) gets for the alerts we send on our
    own initiative: no_renegotiation for a ClientHello after the handshake, internal_error for
    abort(); and the message of the error a renegotiation flood ends with."""
    seen: list[Observation] = []
    server = ServerConnection(rsa_config, seen.append)
    client = ScriptedClient()
    server.receive_data(client.client_hello())
    assert server.next_event() is NEED_DATA
    client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    assert isinstance(server.next_event(), HandshakeComplete)
    client.read_server_finished(server.data_to_send())

    def renegotiation() -> bytes:
        return client.sealed(
            ContentType.handshake, client.client_hello_message(client.client_hello_body())
        )

    server.receive_data(renegotiation())
    assert server.next_event() is NEED_DATA
    assert sent_alerts(seen) == [
        AlertObserved(
            "sent",
            AlertLevel.warning,
            AlertDescription.no_renegotiation,
            "a ClientHello after the handshake: renegotiation is refused",
        )
    ]
    server.receive_data(b"".join(renegotiation() for _ in range(4)))
    with pytest.raises(RemoteProtocolError, match=r"^too many renegotiation attempts in a row$"):
        while server.next_event() is not NEED_DATA:
            pass


def test_abort_gives_its_reason(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    """Guards the reason of abort()'s internal_error, as the trace shows it."""
    seen: list[Observation] = []
    client = connect(rsa_config, client_context(ca), observer=seen.append)
    client.server.abort()
    assert sent_alerts(seen) == [
        AlertObserved(
            "sent",
            AlertLevel.fatal,
            AlertDescription.internal_error,
            "the server aborted the connection",
        )
    ]


def test_the_observer_sees_the_handshake_in_order(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    """Guards what the observer is told and in which direction: every handshake message and
    both ChangeCipherSpecs (RFC 5246 §7.3's order), then the protection of the first
    application record each way, once, however many records follow."""
    seen: list[Observation] = []
    client = connect(rsa_config, client_context(ca), observer=seen.append)
    for _ in range(3):  # the server speaks first: each direction is reported on its own
        client.server.send(b"ping")
        assert client.receive(4) == b"ping"
        client.send(b"pong")
    messages = [
        (o.direction, type(o.message).__name__) for o in seen if isinstance(o, MessageObserved)
    ]
    assert messages == [
        ("received", "ClientHello"),
        ("sent", "ServerHello"),
        ("sent", "Certificate"),
        ("sent", "ServerKeyExchange"),
        ("sent", "ServerHelloDone"),
        ("received", "ClientKeyExchange"),
        ("received", "ChangeCipherSpec"),
        ("received", "Finished"),
        ("sent", "ChangeCipherSpec"),
        ("sent", "Finished"),
    ]
    records = [(o.direction, o.sequence) for o in seen if isinstance(o, RecordObserved)]
    assert sorted(records) == [("received", 1), ("sent", 1)]  # after each side's Finished
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.unwrap()
    client.pump()
    alerts = [o for o in seen if isinstance(o, AlertObserved)]
    assert alerts == [
        AlertObserved("received", AlertLevel.warning, AlertDescription.close_notify),
        AlertObserved("sent", AlertLevel.warning, AlertDescription.close_notify),
    ]


@pytest.mark.parametrize("ems", [True, False], ids=["ems", "no-ems"])
def test_the_key_schedule_reported_is_the_peers(rsa_config: ServerConfig, ems: bool) -> None:
    """Guards each KeyDerived the observer gets (what `--trace` with key logging shows): its
    name, its RFC section and its value, checked against the scripted client's own key schedule
    (written out from RFC 5246 and RFC 7627 apart from the engine's): the pre-master secret
    gives the client's master secret, and the four keys and IVs are the client's."""
    seen: list[Observation] = []
    server = ServerConnection(rsa_config, seen.append)
    client = ScriptedClient(ems=ems)
    server.receive_data(client.client_hello())
    assert server.next_event() is NEED_DATA
    flight = client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    assert isinstance(server.next_event(), HandshakeComplete)
    keys = client.keys
    assert keys is not None and client.suite is not None
    derived = [o for o in seen if isinstance(o, KeyDerived)]
    master_name = (
        ("extended master secret, over the session hash", "RFC 7627 §4")
        if ems
        else ("master secret, over the randoms", "RFC 5246 §8.1")
    )
    assert [(d.name, d.rfc) for d in derived] == [
        ("pre-master secret", "RFC 8422 §5.10"),
        master_name,
        ("client write key", "RFC 5246 §6.3"),
        ("server write key", "RFC 5246 §6.3"),
        ("client write IV", "RFC 5246 §6.3"),
        ("server write IV", "RFC 5246 §6.3"),
    ]
    pre_master, master, *block = (d.value for d in derived)
    assert pre_master is not None
    session_hash = hashlib.new(
        client.suite.prf_hash,
        b"".join(m for m in client_transcript_to_key_exchange(seen)),
    ).digest()
    again = derive_keys(
        client.suite,
        pre_master,
        client.client_random,
        flight.server_hello.random,
        session_hash if ems else None,
    )
    assert again == keys
    assert master == keys.master_secret
    assert block == [keys.client_key, keys.server_key, keys.client_iv, keys.server_iv]


def client_transcript_to_key_exchange(seen: list[Observation]) -> list[bytes]:
    """The handshake messages up to and including ClientKeyExchange, as the wire carried them."""
    messages = []
    for o in seen:
        if isinstance(o, MessageObserved) and not isinstance(o.message, ChangeCipherSpec):
            messages.append(o.encoded)
            if isinstance(o.message, ClientKeyExchange):
                break
    return messages


def test_nothing_is_sent_after_the_peers_fatal_alert(rsa_config: ServerConfig) -> None:
    """Guards RFC 5246 §7.2.2 after a fatal alert from the peer: the connection is over, so a
    later close() sends no close_notify (nothing at all) and send() is refused."""
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    server.receive_data(client.client_hello())
    assert server.next_event() is NEED_DATA
    client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    assert isinstance(server.next_event(), HandshakeComplete)
    client.read_server_finished(server.data_to_send())
    server.receive_data(client.alert(AlertDescription.internal_error))
    assert server.next_event() == AlertReceived(AlertLevel.fatal, AlertDescription.internal_error)
    assert server.next_event() == ConnectionClosed(close_notify=False)
    server.close()
    assert server.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        server.send(b"after the end")


def test_a_protocol_name_outside_ascii_is_reported_replaced(
    full_config: ServerConfig,
) -> None:
    """Guards ConnectionInfo.alpn for a protocol name that is not ASCII (RFC 7301 §3.1 allows
    any bytes): the bytes that cannot be decoded are replaced, the handshake never fails."""
    config = attrs.evolve(full_config, alpn_protocols=[b"caf\xc3\xa9"])
    client = ScriptedClient(alpn=[b"caf\xc3\xa9"])
    server = ServerConnection(config)
    server.receive_data(client.client_hello())
    assert server.next_event() is NEED_DATA
    client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    assert isinstance(server.next_event(), HandshakeComplete)
    assert server.info is not None
    assert server.info.alpn == "caf\ufffd\ufffd"
