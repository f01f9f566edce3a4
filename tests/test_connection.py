"""ServerConnection against OpenSSL (the ssl module over MemoryBIO): the independent peer."""

from __future__ import annotations

import pathlib
import ssl

import pytest
import trustme

from trio_tls.config import ServerConfig
from trio_tls.connection import ServerConnection
from trio_tls.enums import AlertDescription, AlertLevel
from trio_tls.errors import LocalProtocolError
from trio_tls.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    MessageObserved,
    Observation,
    SecretsEstablished,
)
from trio_tls.messages import ServerKeyExchange

from .openssl_peer import OpenSSLClient, client_context


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
