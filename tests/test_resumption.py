"""Session resumption against OpenSSL: session IDs (RFC 5246) and tickets (RFC 5077)."""

from __future__ import annotations

import ssl

import pytest
import trustme

from trio_tls.config import ServerConfig
from trio_tls.connection import ServerConnection
from trio_tls.enums import AlertDescription, ExtensionType, HandshakeType
from trio_tls.errors import RemoteProtocolError
from trio_tls.events import NEED_DATA, MessageObserved, Observation
from trio_tls.messages import NewSessionTicket
from trio_tls.sessions import SessionCache, SessionState, TicketKey, TicketKeys
from trio_tls.suites import suite_by_name

from .conftest import certified_key
from .openssl_peer import OpenSSLClient, client_context
from .scripted_client import ScriptedClient, extension, split_handshake, split_records


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_config(
    leaf: trustme.LeafCert,
    *,
    cache: bool = True,
    tickets: TicketKeys | None = None,
    clock: Clock | None = None,
) -> ServerConfig:
    return ServerConfig(
        [certified_key(leaf)],
        session_cache=SessionCache(size=100, lifetime=600) if cache else None,
        ticket_keys=tickets,
        clock=clock or Clock(),
    )


def handshake(
    config: ServerConfig,
    ctx: ssl.SSLContext,
    session: ssl.SSLSession | None = None,
    server_hostname: str = "localhost",
) -> OpenSSLClient:
    client = OpenSSLClient(ServerConnection(config), ctx, server_hostname=server_hostname)
    if session is not None:
        client.ssl = ctx.wrap_bio(
            client.incoming, client.outgoing, server_hostname=server_hostname, session=session
        )
    client.handshake()
    client.send(b"ping")  # make sure keys agree both ways after resuming
    client.server.send(b"pong")
    assert client.receive(4) == b"pong"
    return client


def id_only_context(ca: trustme.CA, **kwargs: bool) -> ssl.SSLContext:
    ctx = client_context(ca, **kwargs)
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def test_session_id_resumption(ca: trustme.CA, rsa_leaf: trustme.LeafCert) -> None:
    config = make_config(rsa_leaf)
    ctx = id_only_context(ca)
    first = handshake(config, ctx)
    assert not first.ssl.session_reused
    assert first.ssl.session is not None and first.ssl.session.id
    assert config.session_cache is not None and len(config.session_cache) == 1
    second = handshake(config, ctx, first.ssl.session)
    assert second.ssl.session_reused
    assert second.server.info is not None and second.server.info.resumed
    assert second.server.info.cipher_suite == first.server.info.cipher_suite  # type: ignore[union-attr]


def test_ticket_resumption(ca: trustme.CA, rsa_leaf: trustme.LeafCert) -> None:
    config = make_config(rsa_leaf, cache=False, tickets=TicketKeys())
    ctx = client_context(ca)
    first = handshake(config, ctx)
    assert first.ssl.session is not None and first.ssl.session.has_ticket
    second = handshake(config, ctx, first.ssl.session)
    assert second.ssl.session_reused
    assert second.server.info is not None and second.server.info.resumed


def test_ticket_opens_in_another_server_sharing_the_keys(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    keys = [TicketKey.generate()]
    ctx = client_context(ca)
    first = handshake(make_config(rsa_leaf, cache=False, tickets=TicketKeys(keys)), ctx)
    other = make_config(rsa_leaf, cache=False, tickets=TicketKeys(keys))
    assert handshake(other, ctx, first.ssl.session).ssl.session_reused
    stranger = make_config(rsa_leaf, cache=False, tickets=TicketKeys())
    assert not handshake(stranger, ctx, first.ssl.session).ssl.session_reused


@pytest.mark.parametrize("where", ["name", "nonce", "ciphertext", "tag"])
def test_tampered_ticket_means_full_handshake(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, where: str
) -> None:
    tickets = TicketKeys()
    state = SessionState(0xC02F, bytes(48), True, "localhost", 1_000_000.0)
    ticket = bytearray(tickets.seal(state))
    assert tickets.open(bytes(ticket), 1_000_000.0) == state
    index = {"name": 0, "nonce": 16, "ciphertext": 30, "tag": len(ticket) - 1}[where]
    ticket[index] ^= 1
    assert tickets.open(bytes(ticket), 1_000_000.0) is None
    assert tickets.open(b"", 1_000_000.0) is None
    assert tickets.open(bytes(ticket[:20]), 1_000_000.0) is None


def test_expired_sessions_are_not_resumed(ca: trustme.CA, rsa_leaf: trustme.LeafCert) -> None:
    clock = Clock()
    config = make_config(rsa_leaf, tickets=TicketKeys(lifetime=600), clock=clock)
    for ctx in (client_context(ca), id_only_context(ca)):
        first = handshake(config, ctx)
        clock.now += 601
        assert not handshake(config, ctx, first.ssl.session).ssl.session_reused
        clock.now += 1


def test_ticket_keys_rotate_and_old_tickets_still_open() -> None:
    tickets = TicketKeys(lifetime=600, rotate_after=300, now=1000.0)
    old = SessionState(0xC02F, bytes(48), True, None, 1000.0)
    old_ticket = tickets.seal(old)
    new = SessionState(0xC02F, bytes(48), True, None, old.created + 400)
    new_ticket = tickets.seal(new)  # sealing at t+400 rotates the key first
    assert new_ticket[:16] != old_ticket[:16]
    assert tickets.open(old_ticket, 1500.0) == old
    assert tickets.open(new_ticket, 1500.0) == new


def test_session_cache_is_bounded() -> None:
    cache = SessionCache(size=3, lifetime=100)
    for i in range(5):
        cache.store(bytes([i]) * 32, SessionState(0xC02F, bytes(48), True, None, 0.0))
    assert len(cache) == 3
    assert cache.lookup(bytes([0]) * 32, 1.0) is None
    assert cache.lookup(bytes([4]) * 32, 1.0) is not None
    assert cache.lookup(bytes([4]) * 32, 101.0) is None


def test_sni_mismatch_means_full_handshake(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("a.example", "b.example", key_type=trustme.KeyType.RSA)
    config = make_config(leaf, tickets=TicketKeys())
    for ctx in (client_context(ca), id_only_context(ca)):
        first = handshake(config, ctx, server_hostname="a.example")
        # OpenSSL would not offer a session for another host; force it to, as an attacker could.
        second = handshake(config, ctx, first.ssl.session, server_hostname="b.example")
        assert not second.ssl.session_reused


def test_unavailable_suite_means_full_handshake(ca: trustme.CA, rsa_leaf: trustme.LeafCert) -> None:
    tickets, cache = TicketKeys(), SessionCache()
    ctx = client_context(ca, "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    old, new = (
        suite_by_name("ECDHE-RSA-AES256-GCM-SHA384"),
        suite_by_name("ECDHE-RSA-AES128-GCM-SHA256"),
    )
    first_config = ServerConfig(
        [certified_key(rsa_leaf)], cipher_suites=[old], ticket_keys=tickets, session_cache=cache
    )
    later_config = ServerConfig(
        [certified_key(rsa_leaf)], cipher_suites=[new], ticket_keys=tickets, session_cache=cache
    )
    first = handshake(first_config, ctx)
    assert handshake(first_config, ctx, first.ssl.session).ssl.session_reused
    second = handshake(later_config, ctx, first.ssl.session)
    assert not second.ssl.session_reused
    assert second.ssl.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"  # type: ignore[index]


def first_session(config: ServerConfig, ctx: ssl.SSLContext) -> tuple[bytes, bytes | None]:
    """A full handshake with OpenSSL; returns (session ID, ticket) as the client may offer them."""
    seen: list[Observation] = []
    client = OpenSSLClient(ServerConnection(config, seen.append), ctx)
    client.handshake()
    assert client.ssl.session is not None
    tickets = [
        o.message.ticket
        for o in seen
        if isinstance(o, MessageObserved) and isinstance(o.message, NewSessionTicket)
    ]
    return client.ssl.session.id, tickets[0] if tickets else None


def offer(config: ServerConfig, *, ems: bool, session_id: bytes, ticket: bytes | None) -> bytes:
    """A scripted ClientHello offering that session; returns what the server answers."""
    client = ScriptedClient(ems=ems)
    extensions = client.default_extensions()
    if ticket is not None:
        extensions.append(extension(ExtensionType.session_ticket, ticket))
    server = ServerConnection(config)
    server.receive_data(client.client_hello(session_id=session_id, extensions=extensions))
    assert server.next_event() is NEED_DATA
    return bytes(server.data_to_send())


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_ems_session_offered_without_ems_is_refused(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, by: str
) -> None:
    """RFC 7627 §5.3: the server MUST abort, whether the session comes by ticket or by ID."""
    config = make_config(rsa_leaf, tickets=TicketKeys() if by == "ticket" else None)
    session_id, ticket = first_session(config, client_context(ca))
    assert (ticket is not None) == (by == "ticket")
    with pytest.raises(RemoteProtocolError) as info:
        offer(config, ems=False, session_id=session_id, ticket=ticket)
    assert info.value.alert == AlertDescription.handshake_failure
    # With the extension, the same offer resumes: ServerHello, then ChangeCipherSpec at once.
    answer = offer(config, ems=True, session_id=session_id, ticket=ticket)
    assert [r.content_type for r in split_records(answer)] == [22, 20, 22]


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_non_ems_session_offered_with_ems_means_full_handshake(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, by: str
) -> None:
    config = make_config(rsa_leaf, tickets=TicketKeys() if by == "ticket" else None)
    session_id, ticket = first_session(config, client_context(ca, ems=False))
    answer = offer(config, ems=True, session_id=session_id, ticket=ticket)
    types = [t for r in split_records(answer) for t, _ in split_handshake(r.fragment)]
    assert HandshakeType.certificate in types  # a full handshake
    answer = offer(config, ems=False, session_id=session_id, ticket=ticket)
    assert [r.content_type for r in split_records(answer)] == [22, 20, 22]  # resumed
