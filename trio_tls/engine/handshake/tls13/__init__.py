"""The TLS 1.3 server handshake (RFC 8446 §2, §4), as a chain of states beside TLS 1.2's.

    ExpectClientHello (handshake/hello.py picks the version) -> start_tls13
    -> [HelloRetryRequest, ExpectSecondClientHello]
    -> ServerHello, {EncryptedExtensions, [CertificateRequest], Certificate, CertificateVerify,
       Finished} -> [ExpectClientCertificate -> [ExpectClientCertificateVerify]]
    -> ExpectClientFinished -> NewSessionTicket -> Traffic

(a resumption by PSK sends neither Certificate nor CertificateVerify, and asks for no client
certificate). Each state holds only the secrets that exist at that point of RFC 8446 §7.1's key
schedule: the client's handshake secret until its Finished, the application secrets after.

    base        Negotiated13, the secrets between the flights, observing each derivation
    negotiate   the policy: suite, key share (or a retry), certificate, PSK and its binder
    hello       the ClientHello(s) in, the server's flight out
    client      the client's Certificate, CertificateVerify and Finished; tickets
    traffic     application data, KeyUpdate both ways
"""
