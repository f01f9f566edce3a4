"""What the server tolerates, up to where: the largest hellos, warning alerts and empty records
below their flood limits.

The hostile table (test_hostile.py) has the other side of each rule: the input just past the
limit and the alert it gets. Here the inputs are legal, however odd, and the handshake or the
connection must go on. Refused renegotiations below their limit are sent by tlslite-ng, real
second hellos (RFC 5746 and legacy), in test_tlslite.py.
"""

from __future__ import annotations

import pytest

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import AlertReceived, ApplicationData, HandshakeComplete
from trio_tls.engine.wire.enums import (
    TLS12,
    TLS_FALLBACK_SCSV,
    AlertDescription,
    AlertLevel,
    ContentType,
    SignatureScheme,
)
from trio_tls.engine.wire.messages import ClientHello

from .scripted_client import (
    DEFAULT_SUITES,
    ScriptedClient,
    extension,
    fragmented,
    record,
    u16_vector,
)
from .test_hostile import advance, drain, full_handshake

HS = ContentType.handshake
APP = ContentType.application_data
ALERT = ContentType.alert
PADDING = 21  # RFC 7685


def finish(server: ServerConnection, client: ScriptedClient, hello: bytes) -> None:
    """Feed `hello`, then complete the handshake and move data both ways."""
    server.receive_data(hello)
    assert drain(server) == []
    client.read_server_flight(server.data_to_send())
    client.verify_server_key_exchange()
    server.receive_data(client.client_key_exchange() + client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
    assert client.read_server_finished(server.data_to_send()) == []
    check_data_flows(server, client)


def check_data_flows(server: ServerConnection, client: ScriptedClient) -> None:
    server.receive_data(client.application_data(b"ping"))
    assert drain(server) == [ApplicationData(b"ping")]
    server.send(b"pong")
    assert client.read(server.data_to_send()) == [(APP, b"pong")]


# -- sizes (RFC 5246 §7.4.1.2: every vector at its maximum) -------------------------------------


def maximal_hello_body(client: ScriptedClient) -> bytes:
    """A ClientHello body of 131,396 bytes: the most the wire format allows."""
    # Not TLS_FALLBACK_SCSV either: with TLS 1.3 served it is inappropriate_fallback.
    ours = {*DEFAULT_SUITES, TLS_FALLBACK_SCSV}
    fillers = [value for value in range(0x1000, 0x10000) if value not in ours]
    suites = (*fillers[: 32767 - len(DEFAULT_SUITES)], *DEFAULT_SUITES)
    extensions = client.default_extensions()
    used = sum(4 + len(data) for _, data in extensions)
    extensions.append(extension(PADDING, bytes(0xFFFF - used - 4)))
    body = client.client_hello_body(
        suites=suites,
        session_id=bytes(range(32)),
        compression=bytes(range(255)),
        extensions=extensions,
    )
    assert len(body) == ClientHello.max_length == 131_396
    return body


@pytest.mark.parametrize("record_size", [2**14, 1000, 7])
def test_a_maximal_client_hello_in_any_fragmentation_completes(
    rsa_config: ServerConfig, record_size: int
) -> None:
    client = ScriptedClient()
    message = client.client_hello_message(maximal_hello_body(client))
    hello = fragmented(HS, message, 0x0301, size=record_size)
    finish(ServerConnection(rsa_config), client, hello)


def test_a_maximal_client_hello_fed_byte_by_byte_is_read(rsa_config: ServerConfig) -> None:
    client = ScriptedClient()
    hello = client.client_hello(body=maximal_hello_body(client))
    server = ServerConnection(rsa_config)
    for i in range(0, len(hello), 1):
        server.receive_data(hello[i : i + 1])
        assert drain(server) == []
    assert client.read_server_flight(server.data_to_send()).server_hello.server_version == TLS12


@pytest.mark.parametrize("duplicated", [False, True])
def test_tens_of_thousands_of_signature_schemes(rsa_config: ServerConfig, duplicated: bool) -> None:
    # As many schemes as the extensions block holds, ours last (and, once, others repeated).
    client = ScriptedClient(groups=(29,), sni=None)
    others = [(t, d) for t, d in client.default_extensions() if t != 13]
    room = (0xFFFF - sum(4 + len(d) for _, d in others) - 4 - 2) // 2
    fillers = [0x0201, 0x0203] * (room // 2) if duplicated else list(range(0x0A00, 0x0A00 + room))
    schemes = (*fillers[: room - 1], SignatureScheme.rsa_pkcs1_sha384)
    assert len(schemes) > 32_700
    hello = client.client_hello(extensions=[*others, (13, u16_vector(schemes))])
    finish(ServerConnection(rsa_config), client, hello)
    assert client.flight is not None
    assert client.flight.server_key_exchange.signature_scheme == 0x0501


def test_sixteen_thousand_extensions(rsa_config: ServerConfig) -> None:
    client = ScriptedClient()
    extensions = client.default_extensions()
    used = sum(4 + len(data) for _, data in extensions)
    count = (0xFFFF - used) // 4
    extensions += [extension(0x4000 + i, b"") for i in range(count)]
    assert count > 16_000
    finish(ServerConnection(rsa_config), client, client.client_hello(extensions=extensions))


# -- warning alerts and empty records, below the flood limits -----------------------------------


def test_four_warning_alerts_during_the_handshake_are_tolerated(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    advance(server, client, "hello")
    server.receive_data(record(ALERT, b"\x01\x2e") * 4)
    assert drain(server) == [AlertReceived(AlertLevel.warning, 46)] * 4
    server.receive_data(client.client_key_exchange() + client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
    client.read_server_finished(server.data_to_send())
    check_data_flows(server, client)


def test_four_warning_alerts_before_the_client_hello_are_tolerated(
    rsa_config: ServerConfig,
) -> None:
    """Guards the warning count from the very first record: four warnings before anything else
    are below the limit, as four anywhere else are (the count starts at zero)."""
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    server.receive_data(record(ALERT, b"\x01\x2e") * 4)
    assert drain(server) == [AlertReceived(AlertLevel.warning, 46)] * 4
    full_handshake(server, client)
    check_data_flows(server, client)


def test_warning_alerts_separated_by_data_never_add_up(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    full_handshake(server, client)
    for _ in range(10):
        alerts = b"".join(client.sealed(ALERT, b"\x01\xff") for _ in range(4))
        server.receive_data(alerts + client.application_data(b"x"))
        assert drain(server) == [AlertReceived(AlertLevel.warning, 255)] * 4 + [
            ApplicationData(b"x")
        ]


def test_empty_records_up_to_the_limit_then_data(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    client = ScriptedClient()
    full_handshake(server, client)
    for _ in range(5):
        empties = b"".join(client.application_data(b"") for _ in range(32))
        server.receive_data(empties + client.application_data(b"y"))
        assert drain(server) == [ApplicationData(b"y")]


# -- ECDSA: in TLS 1.2 the hash is not bound to the curve (RFC 8422 §5.1.3) --------------------


@pytest.mark.parametrize(
    "scheme",
    [
        SignatureScheme.ecdsa_secp256r1_sha256,
        SignatureScheme.ecdsa_secp384r1_sha384,
        SignatureScheme.ecdsa_secp521r1_sha512,
    ],
)
def test_a_p256_key_signs_with_any_ecdsa_hash(dual_config: ServerConfig, scheme: int) -> None:
    client = ScriptedClient(suites=(0xC02B,), schemes=(scheme,))
    finish(ServerConnection(dual_config), client, client.client_hello())
    assert client.flight is not None
    assert client.flight.server_key_exchange.signature_scheme == scheme


# -- RFC 5246 §6.2.1: other records may come between the fragments of a handshake message ------


def test_a_warning_alert_between_the_fragments_of_the_client_hello(
    rsa_config: ServerConfig,
) -> None:
    client = ScriptedClient()
    message = client.client_hello_message(client.client_hello_body())
    hello = record(HS, message[:40]) + record(ALERT, b"\x01\x5a") + record(HS, message[40:])
    server = ServerConnection(rsa_config)
    server.receive_data(hello)
    assert drain(server) == [AlertReceived(AlertLevel.warning, AlertDescription.user_canceled)]
    client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    assert [type(e) for e in drain(server)] == [HandshakeComplete]
