"""The server handshake as a chain of states (RFC 5246 §7.3), one module per flight.

    ExpectClientHello -> [ExpectClientCertificate] -> ExpectClientKeyExchange
    -> [ExpectCertificateVerify] -> ExpectChangeCipherSpec -> ExpectFinished -> Traffic

(the bracketed states only when client certificates are asked for). A resumed session skips
from ExpectClientHello to ExpectChangeCipherSpec. The code reads top to bottom as the RFC does:
ClientHello in, the server's first flight out, and so on.
"""

from .base import AwaitingSignature, HandshakeContext, Negotiated, State
from .finish import ExpectChangeCipherSpec, ExpectFinished, Traffic
from .hello import ExpectClientHello
from .keyexchange import ExpectClientKeyExchange

__all__ = [
    "AwaitingSignature",
    "ExpectChangeCipherSpec",
    "ExpectClientHello",
    "ExpectClientKeyExchange",
    "ExpectFinished",
    "HandshakeContext",
    "Negotiated",
    "State",
    "Traffic",
]
