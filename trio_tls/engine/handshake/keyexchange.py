"""The client's key exchange flight (RFC 5246 §7.4.6-§7.4.8, RFC 8422 §5.7, RFC 7627 §4):
its Certificate when asked for one, ClientKeyExchange, and CertificateVerify."""

from __future__ import annotations

import attrs

from ..clientauth import ClientAuth, client_public_key, subject_text
from ..crypto.asymmetric import EphemeralKey, verify
from ..crypto.key_schedule import (
    Transcript,
    extended_master_secret,
    master_secret,
)
from ..events import KeyDerived, SecretsEstablished
from ..wire.errors import HandshakeFailure
from ..wire.messages import (
    Certificate,
    CertificateVerify,
    ClientKeyExchange,
    HandshakeMessage,
)
from .base import HandshakeContext, Negotiated, State, accepting, explain, traffic_keys
from .finish import ExpectChangeCipherSpec, Keyed


@attrs.define
class ExpectClientCertificate(State):
    """RFC 5246 §7.4.6: the client's chain, checked here, before anything else is done."""

    accepted = accepting(Certificate)
    negotiated: Negotiated
    transcript: Transcript
    ephemeral: EphemeralKey
    client_auth: ClientAuth

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, Certificate):
            return super().handle_handshake(ctx, message, raw)
        self.transcript.update(raw)
        negotiated = self.negotiated
        if message.certificate_list:
            chain = self.client_auth.verify(message.certificate_list, ctx.config.clock())
            negotiated = attrs.evolve(negotiated, client_chain=chain)
            if ctx.observer is not None:
                subject = subject_text(chain[0])
                reason = f"{subject} chains to a trusted CA"
                explain(ctx, "client certificate", "verified", reason, "RFC 5246 §7.4.6")
        elif self.client_auth.required:
            # RFC 5246 §7.4.6: the server may answer a missing certificate with this alert.
            raise HandshakeFailure("the client sent no certificate, and one is required")
        return ExpectClientKeyExchange(negotiated, self.transcript, self.ephemeral)


@attrs.define
class ExpectClientKeyExchange(State):
    accepted = accepting(ClientKeyExchange)
    negotiated: Negotiated
    transcript: Transcript
    ephemeral: EphemeralKey

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, ClientKeyExchange):
            return super().handle_handshake(ctx, message, raw)
        negotiated = self.negotiated
        suite = negotiated.suite
        self.transcript.update(raw)
        pre_master_secret = self.ephemeral.exchange(message.public)
        if negotiated.extended_master_secret:
            master = extended_master_secret(
                suite.prf_hash, pre_master_secret, self.transcript.digest()
            )
        else:
            master = master_secret(
                suite.prf_hash,
                pre_master_secret,
                negotiated.client_random,
                negotiated.server_random,
            )
        if ctx.observer is not None:
            ctx.observer(KeyDerived("pre-master secret", "RFC 8422 §5.10", pre_master_secret))
            if negotiated.extended_master_secret:
                name = "extended master secret, over the session hash"
                ctx.observer(KeyDerived(name, "RFC 7627 §4", master))
            else:
                name = "master secret, over the randoms"
                ctx.observer(KeyDerived(name, "RFC 5246 §8.1", master))
            ctx.observer(SecretsEstablished(negotiated.client_random, master))
        keys = traffic_keys(ctx, negotiated, master)
        if negotiated.client_chain is not None:
            return ExpectCertificateVerify(negotiated, self.transcript, master, keys)
        return ExpectChangeCipherSpec(negotiated, self.transcript, master, keys)


class ExpectCertificateVerify(Keyed):
    """RFC 5246 §7.4.8: proof that the client holds its certificate's key. The signature covers
    every handshake message so far; without it (a ChangeCipherSpec instead) the state refuses."""

    accepted = accepting(CertificateVerify)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, CertificateVerify):
            return super().handle_handshake(ctx, message, raw)
        chain = self.negotiated.client_chain
        assert chain is not None  # this state follows a non-empty Certificate only
        verify(
            client_public_key(chain),
            message.signature_scheme,
            self.transcript.messages(),
            message.signature,
        )
        self.transcript.update(raw)
        return ExpectChangeCipherSpec(
            self.negotiated, self.transcript, self.master_secret, self.keys
        )
