"""Cryptography over `cryptography`'s primitives.

suites         the cipher suite table
key_schedule   the TLS 1.2 PRF: master secret, key block, Finished
asymmetric     ECDHE key exchange and signatures
"""
