"""Session resumption against OpenSSL: session IDs (RFC 5246) and tickets (RFC 5077).

A session offered with another extended master secret setting than it was made with (RFC 7627
§5.3), which OpenSSL never sends, comes from tlslite-ng in test_tlslite.py; OpenSSL without EMS
shows that such a client is given no session at all.
"""

from __future__ import annotations

import pathlib
import ssl

import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import suite_by_name
from trio_tls.engine.events import MessageObserved, Observation, SecretsEstablished
from trio_tls.engine.sessions import SessionCache, SessionState, TicketKey, TicketKeys
from trio_tls.engine.wire.extensions import SessionTicket
from trio_tls.engine.wire.messages import Certificate, ClientHello

from .conftest import certified_key
from .openssl_peer import OpenSSLClient, client_context


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


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_without_ems_no_session_resumes(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, by: str
) -> None:
    """RFC 7627 §5.3: a session without the extended master secret never resumes (OpenSSL
    would resume one). Nothing is cached: its session ID, fresh as any, names a session the
    server did not keep. A client that asks for a ticket gets one (RFC 5077), and a full
    handshake when it offers it back."""
    if by == "ticket":
        config, ctx = (
            make_config(rsa_leaf, cache=False, tickets=TicketKeys()),
            client_context(ca, ems=False),
        )
    else:
        config, ctx = make_config(rsa_leaf), id_only_context(ca, ems=False)
    first = handshake(config, ctx)
    assert first.server.info is not None and not first.server.info.extended_master_secret
    assert first.ssl.session is not None
    assert first.ssl.session.has_ticket == (by == "ticket")
    assert config.session_cache is None or len(config.session_cache) == 0
    second = handshake(config, ctx, first.ssl.session)
    assert not second.ssl.session_reused
    assert second.server.info is not None and not second.server.info.resumed


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


TAMPERED_AT = {"name": 0, "nonce": 16, "ciphertext": 30, "tag": -1}


class TamperingTicketKeys(TicketKeys):
    """Issues every ticket with one bit flipped at `index`, as if changed on its way: a real
    client stores it and offers it back in its next ClientHello, where the real open() meets
    it. (Changing the NewSessionTicket in flight instead would break the Finished check.)"""

    def __init__(self, index: int | None) -> None:
        super().__init__()
        self.index = index
        self.issued: list[bytes] = []

    def seal(self, state: SessionState) -> bytes:
        ticket = bytearray(super().seal(state))
        if self.index is not None:
            ticket[self.index] ^= 1
        self.issued.append(bytes(ticket))
        return bytes(ticket)


def offered_ticket(seen: list[Observation]) -> bytes | None:
    """The session_ticket extension of the ClientHello the server decoded."""
    for o in seen:
        if isinstance(o, MessageObserved) and isinstance(o.message, ClientHello):
            for ext in o.message.extensions:
                if isinstance(ext, SessionTicket):
                    return ext.ticket
    return None


@pytest.mark.parametrize("where", [None, *TAMPERED_AT], ids=["untouched", *TAMPERED_AT])
def test_tampered_ticket_from_a_real_client_means_full_handshake(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, where: str | None
) -> None:
    tickets = TamperingTicketKeys(None if where is None else TAMPERED_AT[where])
    config = make_config(rsa_leaf, cache=False, tickets=tickets)
    ctx = client_context(ca)
    first = handshake(config, ctx)
    assert first.ssl.session is not None and first.ssl.session.has_ticket
    (issued,) = tickets.issued

    seen: list[Observation] = []
    second = OpenSSLClient(ServerConnection(config, seen.append), ctx)
    second.ssl = ctx.wrap_bio(
        second.incoming, second.outgoing, server_hostname="localhost", session=first.ssl.session
    )
    second.handshake()
    assert offered_ticket(seen) == issued  # OpenSSL offered exactly the ticket it was given
    assert second.server.info is not None
    if where is None:  # the control: the same path resumes when nothing was changed
        assert second.ssl.session_reused and second.server.info.resumed
        return
    # Not a session: a full handshake (our Certificate went out), never a failed one...
    assert not second.ssl.session_reused and not second.server.info.resumed
    sent = [o.message for o in seen if isinstance(o, MessageObserved) and o.direction == "sent"]
    assert any(isinstance(m, Certificate) for m in sent)
    # ...with a new session for the client: a new ticket, which it holds now.
    assert len(tickets.issued) == 2 and tickets.issued[1] != issued
    assert second.ssl.session is not None and second.ssl.session.has_ticket
    assert second.ssl.session.id != first.ssl.session.id
    second.send(b"ping")  # and keys agree both ways
    second.server.send(b"pong")
    assert second.receive(4) == b"pong"


@pytest.mark.parametrize("where", list(TAMPERED_AT))
def test_tampered_ticket_does_not_open(where: str) -> None:
    tickets = TicketKeys()
    state = SessionState(0xC02F, bytes(48), True, "localhost", 1_000_000.0)
    ticket = bytearray(tickets.seal(state))
    assert tickets.open(bytes(ticket), 1_000_000.0) == state
    ticket[TAMPERED_AT[where]] ^= 1
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


def test_the_session_cache_keeps_the_sessions_used_last(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    """Guards the cache's LRU order: a resumption refreshes its session, so when the cache is
    full the session left out is the one least recently *used*, not the oldest one stored."""
    config = ServerConfig(
        [certified_key(rsa_leaf)], session_cache=SessionCache(size=2), clock=Clock()
    )
    ctx = id_only_context(ca)
    first, second = handshake(config, ctx), handshake(config, ctx)
    assert handshake(config, ctx, first.ssl.session).ssl.session_reused  # first is fresh again
    handshake(config, ctx)  # a third session: the cache drops the least recently used
    assert handshake(config, ctx, first.ssl.session).ssl.session_reused
    assert not handshake(config, ctx, second.ssl.session).ssl.session_reused


def test_the_ticket_lifetime_hint_is_the_ticket_lifetime(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    """Guards NewSessionTicket.ticket_lifetime_hint (RFC 5077 §3.3): the client learns how long
    the ticket opens (0 would mean "unspecified", and clients keep such tickets by their own
    rules)."""
    config = make_config(rsa_leaf, cache=False, tickets=TicketKeys(lifetime=5400))
    session = handshake(config, client_context(ca)).ssl.session
    assert session is not None and session.has_ticket
    assert session.ticket_lifetime_hint == 5400


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_a_session_from_the_future_is_not_resumed(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, by: str
) -> None:
    """Guards the lower bound of a session's age: a session dated after `now` (made by a server
    whose clock runs ahead, or forged with a stolen ticket key) is not resumed, whether it comes
    by ticket or from the cache; the same session resumes once the clock has caught up."""
    tickets = TicketKeys([TicketKey.generate()]) if by == "ticket" else None
    ahead, behind = Clock(), Clock()
    ahead.now += 3600
    cache = SessionCache(size=100, lifetime=7200)

    def config(clock: Clock) -> ServerConfig:
        return ServerConfig(
            [certified_key(rsa_leaf)],
            session_cache=cache if by == "session_id" else None,
            ticket_keys=tickets,
            clock=clock,
        )

    ctx = client_context(ca) if by == "ticket" else id_only_context(ca)
    first = handshake(config(ahead), ctx)
    assert not handshake(config(behind), ctx, first.ssl.session).ssl.session_reused
    if by == "session_id":  # the refused session left the cache: make another
        first = handshake(config(ahead), ctx)
    behind.now = ahead.now
    assert handshake(config(behind), ctx, first.ssl.session).ssl.session_reused


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_a_resumption_restores_what_was_negotiated(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, tmp_path: pathlib.Path, by: str
) -> None:
    """Guards what an abbreviated handshake hands on: the session's SNI in ConnectionInfo, the
    ALPN protocol chosen again (OpenSSL sees it in the resumed ServerHello), and the master
    secret reported to the observer, which is what the key log writes (OpenSSL's own key log
    line for the resumed connection must match it)."""
    config = ServerConfig(
        [certified_key(rsa_leaf)],
        session_cache=SessionCache() if by == "session_id" else None,
        ticket_keys=TicketKeys() if by == "ticket" else None,
        alpn_protocols=[b"h2", b"http/1.1"],
        clock=Clock(),
    )
    ctx = client_context(ca) if by == "ticket" else id_only_context(ca)
    ctx.set_alpn_protocols(["http/1.1"])
    first = handshake(config, ctx)
    ctx.keylog_filename = str(tmp_path / "keys.log")
    seen: list[Observation] = []
    again = OpenSSLClient(ServerConnection(config, seen.append), ctx)
    again.ssl = ctx.wrap_bio(
        again.incoming, again.outgoing, server_hostname="localhost", session=first.ssl.session
    )
    again.handshake()
    assert again.ssl.session_reused
    info = again.server.info
    assert info is not None and info.resumed
    assert info.sni == "localhost"
    assert info.alpn == "http/1.1"
    assert again.ssl.selected_alpn_protocol() == "http/1.1"
    (secrets,) = [o for o in seen if isinstance(o, SecretsEstablished)]
    line = f"CLIENT_RANDOM {secrets.client_random.hex()} {secrets.master_secret.hex()}"
    assert line in (tmp_path / "keys.log").read_text().splitlines()


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_a_session_resumes_until_the_end_of_its_lifetime(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, by: str
) -> None:
    """Guards the upper bound of a session's age, inclusive: a session exactly `lifetime`
    seconds old still resumes (test_expired_sessions_are_not_resumed: one second more does
    not)."""
    clock = Clock()
    config = ServerConfig(
        [certified_key(rsa_leaf)],
        session_cache=SessionCache(lifetime=600) if by == "session_id" else None,
        ticket_keys=TicketKeys([TicketKey.generate()], lifetime=600) if by == "ticket" else None,
        clock=clock,
    )
    ctx = client_context(ca) if by == "ticket" else id_only_context(ca)
    first = handshake(config, ctx)
    clock.now += 600
    assert handshake(config, ctx, first.ssl.session).ssl.session_reused


def test_default_lifetimes_and_rotation() -> None:
    """Guards the documented defaults (README: sessions live 2 hours, ticket keys rotate
    hourly) and the rotation's boundary: a key seals for exactly `rotate_after` seconds."""
    assert (SessionCache().size, SessionCache().lifetime) == (20_000, 7200)
    tickets = TicketKeys(now=1000.0)
    assert tickets.lifetime == 7200
    first = tickets.seal(SessionState(0xC02F, bytes(48), True, None, 1000.0))
    same = tickets.seal(SessionState(0xC02F, bytes(48), True, None, 1000.0 + 3599.5))
    rotated = tickets.seal(SessionState(0xC02F, bytes(48), True, None, 1000.0 + 3600))
    assert first[:16] == same[:16] != rotated[:16]


def test_a_session_cache_of_one_keeps_one() -> None:
    """Guards the size check: only 0 turns the cache off; a cache of one holds the last."""
    cache = SessionCache(size=1)
    state = SessionState(0xC02F, bytes(48), True, None, 0.0)
    cache.store(b"a" * 32, state)
    cache.store(b"b" * 32, state)
    assert cache.lookup(b"a" * 32, 1.0) is None
    assert cache.lookup(b"b" * 32, 1.0) == state
    off = SessionCache(size=0)
    off.store(b"a" * 32, state)
    assert len(off) == 0


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
