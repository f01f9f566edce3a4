"""What the TLS 1.3 states share: the negotiated parameters, and reporting the key schedule.

Every secret the schedule derives is reported to the observer (a trace shows each step with its
RFC 8446 §7.1 name; only a trace with key logging on shows values), and the traffic secrets a
key log needs go out as SecretsEstablished under their NSS labels, which is what Wireshark reads.
"""

from __future__ import annotations

import attrs
from cryptography import x509

from ...config import CertifiedKey
from ...crypto.key_schedule13 import derive_secret
from ...crypto.suites import Tls13Suite
from ...events import ConnectionInfo, KeyDerived, SecretsEstablished
from ..base import HandshakeContext, describe


@attrs.frozen
class Negotiated13:
    """The parameters fixed by the ClientHello and our ServerHello."""

    suite: Tls13Suite
    client_random: bytes
    group: int
    sni: str | None
    alpn: bytes | None
    resumed: bool = False
    # Full handshakes only: a resumption proves itself with the PSK.
    certified: CertifiedKey | None = None
    signature_scheme: int | None = None
    # The client's verified chain, once it has sent one (on resumption: what was kept of it).
    client_chain: tuple[x509.Certificate, ...] | None = None

    def info(self) -> ConnectionInfo:
        # TLS 1.3 binds every secret to the whole handshake (RFC 8446 §7.1), which is what
        # the extended master secret brought to TLS 1.2 (RFC 7627).
        return describe(
            "TLSv1.3",
            self.suite.name,
            self.sni,
            self.alpn,
            resumed=self.resumed,
            extended_master_secret=True,
            group=self.group,
            signature_scheme=self.signature_scheme,
            client_chain=self.client_chain,
        )


def derive(
    ctx: HandshakeContext,
    negotiated: Negotiated13,
    secret: bytes,
    label: bytes,
    transcript_hash: bytes,
    keylog_label: str | None = None,
) -> bytes:
    """Derive-Secret(secret, label, transcript) (RFC 8446 §7.1), reported to the observer."""
    derived = derive_secret(negotiated.suite.hash_name, secret, label, transcript_hash)
    observe_secret(ctx, negotiated, label.decode("ascii"), derived, keylog_label)
    return derived


def observe_secret(
    ctx: HandshakeContext,
    negotiated: Negotiated13,
    name: str,
    secret: bytes,
    keylog_label: str | None = None,
) -> None:
    if ctx.observer is None:
        return
    ctx.observer(KeyDerived(name, "RFC 8446 §7.1", secret))
    if keylog_label is not None:
        ctx.observer(SecretsEstablished(negotiated.client_random, secret, keylog_label))


@attrs.frozen
class HandshakeSecrets:
    """What the client's flight is checked and keyed with: its handshake traffic secret (its
    Finished), the master secret (tickets) and the client's application traffic secret."""

    client_handshake: bytes = attrs.field(repr=False)
    master: bytes = attrs.field(repr=False)
    client_application: bytes = attrs.field(repr=False)
    server_application: bytes = attrs.field(repr=False)
