"""ClientHello in, the server's first flight out (RFC 5246 §7.4.1, §7.3; RFC 8422; RFC 7627).

What is chosen, and why, is negotiate.py's: server preference throughout. A session offered by
ticket or ID is resumed when it may be (abbreviated handshake).
"""

from __future__ import annotations

import os
from functools import partial

import attrs

from ..crypto.asymmetric import EphemeralKey, sign
from ..crypto.key_schedule import (
    Transcript,
    verify_data,
)
from ..crypto.suites import SUITES_BY_ID
from ..events import SecretsEstablished
from ..wire.enums import (
    TLS12,
    TLS13,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    ECPointFormat,
)
from ..wire.extensions import (
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    ECPointFormats,
    ExtendedMasterSecret,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SupportedGroups,
)
from ..wire.messages import (
    ClientHello,
    Finished,
    HandshakeMessage,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
)
from .base import (
    AwaitingSignature,
    HandshakeContext,
    Negotiated,
    State,
    accepting,
    explain,
    traffic_keys,
)
from .finish import ExpectChangeCipherSpec
from .keyexchange import ExpectClientCertificate, ExpectClientKeyExchange
from .negotiate import (
    Resumable,
    check_hello,
    choose_alpn,
    choose_group,
    choose_suite,
    choose_version,
    explain_full_handshake,
    explain_version,
    find_session,
    server_name,
    server_random,
    why_not_resumed,
)
from .tls13.hello import start_tls13


def _server_hello_extensions(
    hello: ClientHello, negotiated: Negotiated, *, acknowledge_sni: bool
) -> tuple[AnyExtension, ...]:
    extensions: list[AnyExtension] = []
    if (
        hello.extension(RenegotiationInfo) is not None
        or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
    ):
        extensions.append(RenegotiationInfo())
    if negotiated.extended_master_secret:
        extensions.append(ExtendedMasterSecret())
    if hello.extension(ECPointFormats) is not None:
        extensions.append(ECPointFormats((ECPointFormat.uncompressed,)))
    if acknowledge_sni:  # RFC 6066 §3: never when resuming
        extensions.append(ServerName())
    if negotiated.alpn is not None:
        extensions.append(ApplicationLayerProtocolNegotiation((negotiated.alpn,)))
    if negotiated.issue_ticket:
        extensions.append(SessionTicket())
    return tuple(extensions)


def _send_server_hello(
    ctx: HandshakeContext,
    hello: ClientHello,
    raw: bytes,
    negotiated: Negotiated,
    session_id: bytes,
    *,
    acknowledge_sni: bool,
) -> Transcript:
    """Start the transcript with ClientHello and our ServerHello; the version is now fixed.

    A client that will sign the transcript (CertificateVerify) needs its messages kept."""
    keep = ctx.config.client_auth is not None and not negotiated.resumed
    transcript = Transcript(negotiated.suite.prf_hash, keep_messages=keep)
    transcript.update(raw)
    server_hello = ServerHello(
        server_version=TLS12,
        random=negotiated.server_random,
        session_id=session_id,
        cipher_suite=negotiated.suite.id,
        extensions=_server_hello_extensions(hello, negotiated, acknowledge_sni=acknowledge_sni),
    )
    transcript.update(ctx.send_handshake(server_hello))
    ctx.negotiated_version()
    return transcript


class ExpectClientHello(State):
    accepted = accepting(ClientHello)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, ClientHello):
            return super().handle_handshake(ctx, message, raw)
        hello = message
        config = ctx.config
        version = choose_version(config, hello)
        explain_version(ctx, hello, version)
        if version == TLS13:
            return start_tls13(ctx, hello, raw)
        check_hello(hello)
        sni = server_name(config, hello)
        ems = hello.extension(ExtendedMasterSecret) is not None
        alpn = choose_alpn(config, hello.extension(ApplicationLayerProtocolNegotiation))
        if alpn is not None:
            reason = "the first of the server's protocols that the client offers"
            explain(ctx, "ALPN", alpn.decode("ascii", "replace"), reason, "RFC 7301 §3.2")
        explain(
            ctx,
            "master secret",
            "extended (session hash)" if ems else "classic (randoms only)",
            "the client offers extended_master_secret"
            if ems
            else "the client does not offer extended_master_secret",
            "RFC 7627 §5.1",
        )
        session = find_session(config, hello, sni, ems)
        if session is not None:
            how = "its ticket opened" if hello.extension(SessionTicket) else "its session ID"
            reason = f"the client's session is resumable: {how}, same SNI, suite still offered"
            explain(ctx, "resumption", "abbreviated handshake", reason, "RFC 5246 §7.3")
            return self._resume(ctx, hello, raw, session, alpn)
        if ctx.observer is not None:
            reason, rfc = why_not_resumed(hello)
            explain(ctx, "resumption", "full handshake", reason, rfc)
        return self._full_handshake(ctx, hello, raw, sni, ems, alpn)

    def _full_handshake(
        self,
        ctx: HandshakeContext,
        hello: ClientHello,
        raw: bytes,
        sni: str | None,
        ems: bool,
        alpn: bytes | None,
    ) -> State:
        config = ctx.config
        suite, certified, scheme = choose_suite(config, hello, sni)
        group = choose_group(config, hello.extension(SupportedGroups))
        # A server that resumes names a fresh session ID in every full handshake, kept in the
        # cache only when the session goes there (finish.py: not when a ticket carries it, nor
        # without the extended master secret, RFC 7627 §5.3). A client offering a ticket can
        # then tell a full handshake from a resumption by the ID (RFC 5077 §3.4; an empty ID
        # echoed back reads as one to tlslite-ng), and no two ServerHellos share an ID (one
        # empty ID, repeated, reads as a broken random source: tlsfuzzer's
        # test-ecdhe-rsa-key-share-random).
        issue_ticket = config.ticket_keys is not None and hello.extension(SessionTicket) is not None
        negotiated = Negotiated(
            suite=suite,
            client_random=hello.random,
            server_random=server_random(config),
            extended_master_secret=ems,
            sni=sni,
            alpn=alpn,
            session_id=os.urandom(32) if issue_ticket or config.session_cache is not None else b"",
            issue_ticket=issue_ticket,
            certified=certified,
            group=group,
            signature_scheme=scheme,
        )
        # RFC 6066 §3: acknowledge the name only if it chose the certificate.
        acknowledge_sni = sni is not None and certified.matches(sni)
        explain_full_handshake(ctx, hello, negotiated, acknowledge_sni)
        transcript = _send_server_hello(
            ctx, hello, raw, negotiated, negotiated.session_id, acknowledge_sni=acknowledge_sni
        )
        transcript.update(ctx.send_handshake(certified.certificate, certified.certificate_message))

        ephemeral = EphemeralKey(group)
        params = ServerKeyExchange.encode_params(group, ephemeral.public)
        signed = hello.random + negotiated.server_random + params  # RFC 5246 §7.4.3
        awaiting = AwaitServerKeyExchangeSignature(negotiated, transcript, ephemeral)
        return ctx.request_signature(partial(sign, certified.key, scheme, signed), awaiting)

    def _resume(
        self,
        ctx: HandshakeContext,
        hello: ClientHello,
        raw: bytes,
        resumable: Resumable,
        alpn: bytes | None,
    ) -> State:
        """RFC 5246 §7.3 abbreviated handshake: ServerHello, ChangeCipherSpec, Finished."""
        session = resumable.state
        negotiated = Negotiated(
            suite=SUITES_BY_ID[session.suite_id],
            client_random=hello.random,
            server_random=server_random(ctx.config),
            extended_master_secret=session.extended_master_secret,
            sni=session.sni,
            alpn=alpn,
            resumed=True,
            client_chain=resumable.client_chain,
        )
        suite = negotiated.suite
        # RFC 5077 §3.4 / RFC 5246 §7.4.1.3: echoing the ID tells the client it resumed.
        transcript = _send_server_hello(
            ctx, hello, raw, negotiated, hello.session_id, acknowledge_sni=False
        )
        master = session.master_secret
        if ctx.observer is not None:
            ctx.observer(SecretsEstablished(hello.random, master))
        keys = traffic_keys(ctx, negotiated, master)
        ctx.change_write_protection(suite.make_protection(keys.server_key, keys.server_iv))
        server_verify = verify_data(suite.prf_hash, master, b"server finished", transcript.digest())
        transcript.update(ctx.send_handshake(Finished(server_verify)))
        return ExpectChangeCipherSpec(negotiated, transcript, master, keys)


@attrs.define
class AwaitServerKeyExchangeSignature(AwaitingSignature):
    """The first flight stops at ServerKeyExchange until its signature is made: at once, or on
    a worker thread (events.SignatureNeeded). The client says nothing until ServerHelloDone, so
    this state accepts no message."""

    negotiated: Negotiated
    transcript: Transcript
    ephemeral: EphemeralKey

    def signed(self, ctx: HandshakeContext, signature: bytes) -> State:
        """The rest of the first flight: ServerKeyExchange, [CertificateRequest], Done."""
        negotiated, transcript, ephemeral = self.negotiated, self.transcript, self.ephemeral
        group, scheme = negotiated.group, negotiated.signature_scheme
        assert group is not None and scheme is not None  # a full handshake chose both
        key_exchange = ServerKeyExchange(group, ephemeral.public, scheme, signature)
        transcript.update(ctx.send_handshake(key_exchange))
        client_auth = ctx.config.client_auth
        if client_auth is not None:  # RFC 5246 §7.4.4
            transcript.update(ctx.send_handshake(client_auth.request))
        transcript.update(ctx.send_handshake(ServerHelloDone()))
        if client_auth is not None:
            return ExpectClientCertificate(negotiated, transcript, ephemeral, client_auth)
        return ExpectClientKeyExchange(negotiated, transcript, ephemeral)
