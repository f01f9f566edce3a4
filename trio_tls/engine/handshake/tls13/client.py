"""The client's flight (RFC 8446 §4.4): [Certificate, [CertificateVerify]], Finished; then our
tickets (§4.6.1).

Until the client's Finished its ChangeCipherSpec (exactly 01, unencrypted) may come and is
dropped (§5); after it, one is unexpected_message. A client that sends no certificate when one
is required gets certificate_required (§4.4.2.4); a chain we refuse gets the same alerts as in
TLS 1.2 (clientauth.py), and a signature with a scheme TLS 1.3 forbids illegal_parameter.
"""

from __future__ import annotations

import hmac
import os

import attrs

from ...clientauth import ClientAuth, client_public_key, subject_text
from ...crypto.asymmetric import verify_tls13
from ...crypto.key_schedule import Transcript
from ...crypto.key_schedule13 import finished_verify_data, hash_length, resumption_psk
from ...sessions import SessionState
from ...wire.enums import TLS13
from ...wire.errors import CertificateRequired, DecodeError, DecryptError, IllegalParameter
from ...wire.messages import CertificateVerify, HandshakeMessage
from ...wire.messages13 import Certificate13, Finished13, NewSessionTicket13
from ..base import HandshakeContext, State, accepting, explain, kept_identity
from .base import HandshakeSecrets, Negotiated13, derive
from .traffic import Traffic

_CLIENT_SIGNATURE_CONTEXT = b" " * 64 + b"TLS 1.3, client CertificateVerify\x00"
# RFC 8446 §4.6.1: a ticket lives at most seven days, whatever the ticket keys allow.
MAX_TICKET_LIFETIME = 7 * 24 * 3600


@attrs.define
class _ClientFlight(State):
    """A state of the client's flight: what every one of them holds, and the dropped CCS."""

    negotiated: Negotiated13
    transcript: Transcript
    secrets: HandshakeSecrets

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        return self


@attrs.define
class ExpectClientCertificate(_ClientFlight):
    """§4.4.2: the client's chain, with the empty request context we sent."""

    accepted = accepting(Certificate13)
    client_auth: ClientAuth

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, Certificate13):
            return super().handle_handshake(ctx, message, raw)
        if message.request_context:
            raise IllegalParameter("the client's Certificate has a request context we never sent")
        self.transcript.update(raw)
        if not message.entries:
            if self.client_auth.required:
                raise CertificateRequired("the client sent no certificate, and one is required")
            return ExpectClientFinished(self.negotiated, self.transcript, self.secrets)
        chain = self.client_auth.verify(message.certificate_list, ctx.config.clock())
        if ctx.observer is not None:
            reason = f"{subject_text(chain[0])} chains to a trusted CA"
            explain(ctx, "client certificate", "verified", reason, "RFC 8446 §4.4.2.4")
        negotiated = attrs.evolve(self.negotiated, client_chain=chain)
        return ExpectClientCertificateVerify(negotiated, self.transcript, self.secrets)


class ExpectClientCertificateVerify(_ClientFlight):
    """§4.4.3: the client's signature over the transcript through its Certificate."""

    accepted = accepting(CertificateVerify)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, CertificateVerify):
            return super().handle_handshake(ctx, message, raw)
        chain = self.negotiated.client_chain
        assert chain is not None  # this state follows a non-empty Certificate only
        content = _CLIENT_SIGNATURE_CONTEXT + self.transcript.digest()
        verify_tls13(client_public_key(chain), message.signature_scheme, content, message.signature)
        self.transcript.update(raw)
        return ExpectClientFinished(self.negotiated, self.transcript, self.secrets)


class ExpectClientFinished(_ClientFlight):
    """§4.4.4: the client's Finished, checked in constant time; then the application keys
    both ways, our tickets, and the handshake is complete."""

    accepted = accepting(Finished13)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, Finished13):
            return super().handle_handshake(ctx, message, raw)
        negotiated, secrets = self.negotiated, self.secrets
        suite = negotiated.suite
        if len(message.verify_data) != hash_length(suite.hash_name):
            raise DecodeError("Finished verify_data is not as long as the suite's hash")
        expected = finished_verify_data(
            suite.hash_name, secrets.client_handshake, self.transcript.digest()
        )
        if not hmac.compare_digest(expected, message.verify_data):
            raise DecryptError("the client's Finished does not verify")
        self.transcript.update(raw)
        ctx.set_read_protection(suite.make_protection(secrets.client_application))
        self._send_ticket(ctx)
        ctx.handshake_complete_event(negotiated.info())
        return Traffic(suite, secrets.client_application, secrets.server_application)

    def _send_ticket(self, ctx: HandshakeContext) -> None:
        """One NewSessionTicket (§4.6.1): the resumption PSK sealed with the ticket keys that
        TLS 1.2 tickets use, marked as TLS 1.3's, so that neither version resumes the other's."""
        config = ctx.config
        ticket_keys = config.ticket_keys
        if ticket_keys is None:
            return
        negotiated = self.negotiated
        hash_name = negotiated.suite.hash_name
        resumption_master = derive(
            ctx, negotiated, self.secrets.master, b"res master", self.transcript.digest()
        )
        nonce = b"\x00"  # one ticket per connection: the nonce only has to differ within it
        age_add = int.from_bytes(os.urandom(4), "big")
        client_chain, auth_epoch = kept_identity(config, negotiated.client_chain)
        state = SessionState(
            suite_id=negotiated.suite.id,
            master_secret=resumption_psk(hash_name, resumption_master, nonce),
            extended_master_secret=True,
            sni=negotiated.sni,
            created=config.clock(),
            client_chain=client_chain,
            auth_epoch=auth_epoch,
            version=TLS13,
            age_add=age_add,
        )
        ticket = ticket_keys.seal(state)
        if ticket:  # b"": the sealing key is spent (sessions.py); no ticket this time
            lifetime = min(int(ticket_keys.lifetime), MAX_TICKET_LIFETIME)
            ctx.send_handshake(NewSessionTicket13(lifetime, age_add, nonce, ticket, ()))
