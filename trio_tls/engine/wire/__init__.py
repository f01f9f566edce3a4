"""The bytes on the wire.

enums      the registries' numbers (unknown values kept)
codec      bounded Reader, length-prefixed Writer
errors     the one error->alert map
extensions one frozen class per extension struct, and the Extensions block that holds them
messages   one frozen class per RFC 5246 struct, with its encode and decode
messages13 the TLS 1.3 messages TLS 1.2 lacks or shapes differently (RFC 8446 §4)
printable  peer text escaped for a log line, a trace or a terminal
"""
