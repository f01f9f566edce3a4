"""The record layer.

framing      records in and out, handshake reassembly, size limits
protection   one sealer/opener per direction (AEAD nonces, sequence numbers)
"""
