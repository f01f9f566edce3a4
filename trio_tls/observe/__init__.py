"""Read-only views of a handshake, for people and tools.

recorder      HandshakeRecorder: the observations of one connection
trace         the JSON-lines handshake trace
clienthello   any ClientHello's bytes, decoded and named
fingerprint   JA3 and JA4
iana          the IANA names of wire numbers
"""
