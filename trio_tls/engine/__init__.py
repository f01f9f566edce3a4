"""The sans-IO TLS engine: bytes in, events out. It never touches trio, sockets, files or
logging handlers.

    wire/        the bytes on the wire: enums, codec, errors (the one error->alert map), messages
    record/      framing (records, reassembly, size limits), protection (one sealer/opener per
                 direction)
    crypto/      suites, key_schedule (the TLS 1.2 PRF), asymmetric (ECDHE, signatures)
    sessions     the session cache and session tickets
    clientauth   client-certificate policy and path validation
    config       ServerConfig, CertifiedKey
    events       what the engine tells its caller
    handshake/   one class per expected message, and the negotiation policy
    connection   ServerConnection, the public sans-IO object

Each module imports only from the rows above it (tests/test_layers.py holds the rule).
"""
