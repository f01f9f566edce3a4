"""Application data, and KeyUpdate both ways (RFC 8446 §4.6.3, §7.2, §5.5).

A client's KeyUpdate moves its direction to the next traffic secret; when it asks
(update_requested), we answer with our own update_not_requested before our next record, one
answer per request. Our keys also move before the AEAD's safety limit (§5.5), which the
connection watches. A ClientHello now is unexpected_message: TLS 1.3 has no renegotiation.
"""

from __future__ import annotations

import attrs

from ...crypto.key_schedule13 import next_traffic_secret
from ...crypto.suites import Tls13Suite
from ...wire.enums import KeyUpdateRequest
from ...wire.messages import HandshakeMessage
from ...wire.messages13 import KeyUpdate
from ..base import HandshakeContext, State, accepting


@attrs.define
class Traffic(State):
    """Holds the two application traffic secrets, each replaced as its keys update."""

    accepted = accepting(KeyUpdate)
    accepts_application_data = True
    suite: Tls13Suite
    client_secret: bytes = attrs.field(repr=False)
    server_secret: bytes = attrs.field(repr=False)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, KeyUpdate):
            return super().handle_handshake(ctx, message, raw)
        ctx.count_key_update()
        self.client_secret = next_traffic_secret(self.suite.hash_name, self.client_secret)
        ctx.set_read_protection(self.suite.make_protection(self.client_secret))
        if message.request_update == KeyUpdateRequest.update_requested:
            self.update_own_keys(ctx)
        return self

    def update_own_keys(self, ctx: HandshakeContext) -> State:
        """Our KeyUpdate goes out under the old keys, and every later record under the new."""
        self.server_secret = next_traffic_secret(self.suite.hash_name, self.server_secret)
        protection = self.suite.make_protection(self.server_secret)
        ctx.update_write_keys(KeyUpdate(KeyUpdateRequest.update_not_requested), protection)
        return self
