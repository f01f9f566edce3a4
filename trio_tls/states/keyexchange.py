"""The client's key exchange flight (RFC 5246 §7.4.6-§7.4.8, RFC 8422 §5.7, RFC 7627 §4):
its Certificate when asked for one, ClientKeyExchange, and CertificateVerify."""

from __future__ import annotations

import attrs

from ..events import SecretsEstablished
from ..keys import (
    Transcript,
    extended_master_secret,
    master_secret,
)
from ..kx import EphemeralKey
from ..messages import (
    ClientKeyExchange,
    HandshakeMessage,
)
from .base import HandshakeContext, Negotiated, State, accepting, traffic_keys
from .finish import ExpectChangeCipherSpec


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
            ctx.observer(SecretsEstablished(negotiated.client_random, master))
        keys = traffic_keys(negotiated, master)
        return ExpectChangeCipherSpec(negotiated, self.transcript, master, keys)
