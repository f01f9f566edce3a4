"""ChangeCipherSpec, Finished (RFC 5246 §7.1, §7.4.9), session tickets (RFC 5077 §3.3), then
application data, with renegotiation refused (RFC 5246 §7.2.2)."""

from __future__ import annotations

import hmac

import attrs

from ..crypto.key_schedule import (
    VERIFY_DATA_LENGTH,
    TrafficKeys,
    Transcript,
    verify_data,
)
from ..sessions import SessionState
from ..wire.errors import (
    DecodeError,
    DecryptError,
)
from ..wire.messages import (
    ClientHello,
    Finished,
    HandshakeMessage,
    NewSessionTicket,
)
from .base import HandshakeContext, Negotiated, State, accepting, kept_identity


@attrs.define
class Keyed(State):
    """What exists between the key exchange and Finished: secrets, keys, the transcript."""

    negotiated: Negotiated
    transcript: Transcript
    master_secret: bytes = attrs.field(repr=False)
    keys: TrafficKeys = attrs.field(repr=False)


class ExpectChangeCipherSpec(Keyed):
    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        suite = self.negotiated.suite
        ctx.set_read_protection(suite.make_protection(self.keys.client_key, self.keys.client_iv))
        return ExpectFinished(self.negotiated, self.transcript, self.master_secret, self.keys)


class ExpectFinished(Keyed):
    accepted = accepting(Finished)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, Finished):
            return super().handle_handshake(ctx, message, raw)
        suite = self.negotiated.suite
        if len(message.verify_data) != VERIFY_DATA_LENGTH:
            raise DecodeError("Finished verify_data has the wrong length")
        expected = verify_data(
            suite.prf_hash, self.master_secret, b"client finished", self.transcript.digest()
        )
        if not hmac.compare_digest(expected, message.verify_data):
            raise DecryptError("the client's Finished does not verify")
        self.transcript.update(raw)
        if not self.negotiated.resumed:  # a resumption sent its Finished first
            self._remember_session(ctx)
            ctx.change_write_protection(
                suite.make_protection(self.keys.server_key, self.keys.server_iv)
            )
            server_verify = verify_data(
                suite.prf_hash, self.master_secret, b"server finished", self.transcript.digest()
            )
            ctx.send_handshake(Finished(server_verify))
        ctx.handshake_complete_event(self.negotiated.info())
        return Traffic()

    def _remember_session(self, ctx: HandshakeContext) -> None:
        """RFC 5077 §3.3: a ticket goes out before our ChangeCipherSpec; or cache by ID.

        A session without the extended master secret is never resumed (negotiate.py's
        find_session), so the cache does not keep one; but a client that asks for a ticket gets
        one, as RFC 5077 says, and meets a full handshake when it offers it back."""
        config = ctx.config
        negotiated = self.negotiated
        client_chain, auth_epoch = kept_identity(config, negotiated.client_chain)
        state = SessionState(
            suite_id=negotiated.suite.id,
            master_secret=self.master_secret,
            extended_master_secret=negotiated.extended_master_secret,
            sni=negotiated.sni,
            created=config.clock(),
            client_chain=client_chain,
            auth_epoch=auth_epoch,
        )
        if negotiated.issue_ticket and config.ticket_keys is not None:
            ticket = NewSessionTicket(
                int(config.ticket_keys.lifetime), config.ticket_keys.seal(state)
            )
            self.transcript.update(ctx.send_handshake(ticket))
        elif (
            negotiated.session_id
            and negotiated.extended_master_secret
            and config.session_cache is not None
        ):
            config.session_cache.store(negotiated.session_id, state)


class Traffic(State):
    """Application data flows. A new ClientHello (renegotiation) is refused with a warning and
    otherwise ignored: the connection goes on, as RFC 5246 §7.2.2 allows and OpenSSL does."""

    accepted = accepting(ClientHello)
    accepts_application_data = True

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        ctx.refuse_renegotiation()
        return self
