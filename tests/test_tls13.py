"""TLS 1.3 in the engine, against OpenSSL (the ssl module over MemoryBIO): the independent peer.

Every secret is checked against OpenSSL's own key log, so a wrong derivation anywhere in the key
schedule fails here even where both sides would happen to agree on the bytes of a record.
"""

from __future__ import annotations

import pathlib
import ssl
from typing import TypeVar

import attrs
import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import TLS13_SUITES
from trio_tls.engine.events import (
    ApplicationData,
    HandshakeComplete,
    MessageObserved,
    Observation,
    SecretsEstablished,
)
from trio_tls.engine.record import protection13
from trio_tls.engine.sessions import SessionState, TicketKeys
from trio_tls.engine.wire.enums import (
    TLS12,
    TLS13,
    TLS13_DOWNGRADE_TLS12,
    KeyUpdateRequest,
    NamedGroup,
)
from trio_tls.engine.wire.messages import ServerHello
from trio_tls.engine.wire.messages13 import Certificate13, KeyUpdate, NewSessionTicket13

from .openssl_peer import OpenSSLClient

M = TypeVar("M")

BOTH = frozenset({TLS12, TLS13})


def tls13_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def serve13(config: ServerConfig, **changes: object) -> ServerConfig:
    return attrs.evolve(config, versions=BOTH, **changes)  # type: ignore[arg-type]


def connect(
    config: ServerConfig,
    ctx: ssl.SSLContext,
    observed: list[Observation] | None = None,
    session: ssl.SSLSession | None = None,
) -> OpenSSLClient:
    server = ServerConnection(config, observed.append if observed is not None else None)
    client = OpenSSLClient(server, ctx)
    if session is not None:
        client.ssl = ctx.wrap_bio(
            client.incoming, client.outgoing, server_hostname="localhost", session=session
        )
    events = client.handshake()
    assert [type(e) for e in events] == [HandshakeComplete]
    return client


def sent(observed: list[Observation], cls: type[M]) -> list[M]:
    return [
        o.message
        for o in observed
        if isinstance(o, MessageObserved) and o.direction == "sent" and isinstance(o.message, cls)
    ]


def keylog(path: pathlib.Path) -> dict[str, str]:
    lines = [line.split() for line in path.read_text().splitlines() if line and line[0] != "#"]
    return {label: secret for label, _random, secret in lines}


def test_openssl_gets_tls13_by_default_when_both_are_served(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    client = connect(serve13(rsa_config), ctx)
    assert client.ssl.version() == "TLSv1.3"
    assert client.ssl.cipher()[0] == "TLS_AES_128_GCM_SHA256"
    info = client.server.info
    assert info is not None
    assert (info.version, info.cipher_suite, info.group) == (
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "x25519",
    )
    assert info.signature_scheme == "rsa_pss_rsae_sha256"


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=lambda s: s.name)
def test_each_suite_carries_data_both_ways(
    ca: trustme.CA, rsa_config: ServerConfig, suite: object
) -> None:
    client = connect(serve13(rsa_config, tls13_suites=(suite,)), tls13_context(ca))
    assert client.ssl.cipher()[0] == suite.name  # type: ignore[attr-defined]
    payload = bytes(range(256)) * 200  # several records each way
    client.ssl.write(payload)
    client.pump()
    got = b"".join(e.data for e in client.events if isinstance(e, ApplicationData))
    assert got == payload
    client.server.send(payload[::-1])
    client.pump()
    echoed = b""
    while len(echoed) < len(payload):
        echoed += client.ssl.read(65536)
    assert echoed == payload[::-1]


def test_every_secret_matches_openssls_key_log(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: pathlib.Path
) -> None:
    ctx = tls13_context(ca)
    ctx.keylog_filename = str(tmp_path / "client.keys")
    observed: list[Observation] = []
    connect(serve13(rsa_config), ctx, observed)
    ours = {o.label: o.master_secret.hex() for o in observed if isinstance(o, SecretsEstablished)}
    assert ours == keylog(tmp_path / "client.keys")
    assert set(ours) == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    }


@pytest.mark.parametrize(
    ("curve", "group"),
    [("prime256v1", "secp256r1"), ("secp384r1", "secp384r1"), ("X25519", "x25519")],
)
def test_each_classic_group_is_taken_from_the_clients_share(
    ca: trustme.CA, rsa_config: ServerConfig, curve: str, group: str
) -> None:
    ctx = tls13_context(ca)
    try:
        ctx.set_ecdh_curve(curve)  # OpenSSL then offers this group alone, and its share
    except ssl.SSLError:  # Python < 3.11.4's ssl takes only curves OpenSSL calls EC curves
        pytest.skip("this Python's ssl cannot offer X25519 alone")
    observed: list[Observation] = []
    client = connect(serve13(rsa_config), ctx, observed)
    info = client.server.info
    assert info is not None and info.group == group
    assert len(sent(observed, ServerHello)) == 1  # the share was used: no HelloRetryRequest


def test_a_group_without_a_share_gets_a_hello_retry_request(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    # OpenSSL sends an X25519 share and lists P-384 too; a server that serves only P-384
    # must ask again, and the second hello completes.
    observed: list[Observation] = []
    config = serve13(rsa_config, groups=(NamedGroup.secp384r1,))
    client = connect(config, tls13_context(ca), observed)
    info = client.server.info
    assert info is not None and info.group == "secp384r1"
    assert len(sent(observed, ServerHello)) == 2  # the HelloRetryRequest, then the ServerHello


def test_tls13_ticket_resumes_with_openssl(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    config = serve13(rsa_config, ticket_keys=TicketKeys())
    ctx = tls13_context(ca)
    observed: list[Observation] = []
    first = connect(config, ctx, observed)
    assert len(sent(observed, NewSessionTicket13)) == 1
    first.ssl.write(b"x")  # OpenSSL reads the ticket while it waits for data
    first.pump()
    first.server.send(b"y")
    first.pump()
    assert first.ssl.read(1) == b"y"
    session = first.ssl.session
    assert session is not None
    observed.clear()
    second = connect(config, ctx, observed, session=session)
    assert second.ssl.session_reused
    info = second.server.info
    assert info is not None and info.resumed and info.version == "TLSv1.3"
    assert not sent(observed, Certificate13)


def test_a_tls12_client_sees_the_downgrade_sentinel(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    ctx = tls13_context(ca)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    observed: list[Observation] = []
    client = connect(serve13(rsa_config), ctx, observed)
    assert client.ssl.version() == "TLSv1.2"
    assert sent(observed, ServerHello)[0].random.endswith(TLS13_DOWNGRADE_TLS12)


def test_a_tls12_only_server_sends_no_sentinel(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    ctx = tls13_context(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    observed: list[Observation] = []
    client = connect(attrs.evolve(rsa_config, versions={TLS12}), ctx, observed)
    assert client.ssl.version() == "TLSv1.2"
    assert not sent(observed, ServerHello)[0].random.endswith(TLS13_DOWNGRADE_TLS12)


def test_a_ticket_sealed_before_tls13_still_opens_as_a_tls12_session() -> None:
    """Tickets a server sealed before TLS 1.3 existed (format 2: no version, a 48-byte master
    secret) open after an upgrade as TLS 1.2 sessions, so clients keep resuming."""
    old = b"".join(
        (
            b"\x02",  # the format
            (0xC02F).to_bytes(2, "big"),
            (1_700_000_000).to_bytes(4, "big"),
            b"\x01",  # extended master secret
            bytes(range(48)),
            b"\x09localhost",
            b"\x00",  # no client-auth epoch
        )
    )
    state = SessionState.decode(old)
    assert state is not None
    assert (state.version, state.suite_id, state.sni) == (TLS12, 0xC02F, "localhost")
    assert state.master_secret == bytes(range(48)) and state.extended_master_secret


def test_a_session_keeps_its_version_and_secret_length() -> None:
    state = SessionState(0x1302, bytes(48), True, None, 1.0, version=TLS13, age_add=7)
    assert SessionState.decode(state.encode()) == state
    short = attrs.evolve(state, suite_id=0x1301, master_secret=bytes(32))
    assert SessionState.decode(short.encode()) == short


def test_our_keys_update_before_the_aead_limit_and_openssl_follows(
    ca: trustme.CA, rsa_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8446 §5.5: before AES-GCM's record limit our side sends KeyUpdate and moves to the
    next traffic secret; OpenSSL reads on under the new keys (here the limit is 3 records)."""
    monkeypatch.setattr(protection13, "AES_GCM_RECORD_LIMIT", 3)
    observed: list[Observation] = []
    client = connect(serve13(rsa_config), tls13_context(ca), observed)
    chunks = [bytes([n]) * 1000 for n in range(8)]
    for chunk in chunks:
        client.server.send(chunk)
        client.pump()
    got = b""
    while len(got) < 8000:
        got += client.ssl.read(65536)
    assert got == b"".join(chunks)
    updates = sent(observed, KeyUpdate)
    assert len(updates) == 2  # at records 3 and 6 of the new keys' sequence: 8 sent
    assert all(u.request_update == KeyUpdateRequest.update_not_requested for u in updates)
