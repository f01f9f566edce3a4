"""The server handshake as a chain of states (RFC 5246 §7.3), one module per flight.

    ExpectClientHello -> [ExpectClientCertificate] -> ExpectClientKeyExchange
    -> [ExpectCertificateVerify] -> ExpectChangeCipherSpec -> ExpectFinished -> Traffic

(the bracketed states only when client certificates are asked for). A resumed session skips
from ExpectClientHello to ExpectChangeCipherSpec. The code reads top to bottom as the RFC does:
ClientHello in, the server's first flight out, and so on.

    base          State, the context a state acts through, Negotiated, the traffic keys
    negotiate     the policy: what the server chooses from a ClientHello, and why
    hello         ExpectClientHello: the server's first flight (or the abbreviated handshake)
    keyexchange   the client's Certificate, ClientKeyExchange and CertificateVerify
    finish        ChangeCipherSpec, Finished, and Traffic
"""
