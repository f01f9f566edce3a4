"""Peer strings made safe for a log line, a trace or a terminal: the one escaping rule.

Everything a client chooses (SNI, ALPN, certificate subjects, the reasons quoted in alerts,
PROXY addresses and TLVs, an HTTP request line) is hostile text. Written raw, a newline starts a
forged log line (`...\\n2026-01-01 INFO trio_tls 10.0.0.1:1 ...: closed`), an ESC sequence
drives the operator's terminal (moves the cursor, rewrites the line above, sets the window
title), and a bidirectional override reorders what the reader sees. So every such string passes
through `printable()` before it is written anywhere a person or a log parser reads it.

The rule is Python's own, `str.isprintable()`: C0 and C1 controls, DEL, line and paragraph
separators, format characters (bidi overrides, zero-width joiners), lone surrogates and
unassigned code points are written as `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`; the ordinary
space and every printable character, ASCII or not, stay as they are. Printable text is returned
unchanged without a copy, so the common case costs one C-level scan, and escaping twice
changes nothing. JSON output needs none of this: `json.dumps` escapes controls itself.
"""

from __future__ import annotations


def printable(value: str | bytes) -> str:
    """`value` with every non-printable character escaped; bytes are read as UTF-8, and bytes
    that are not UTF-8 are written as `\\xNN`."""
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def byte_count(count: int) -> str:
    """A size as a sentence says it: "1 byte", "32 bytes" (the trace and the decisions both
    name sizes a peer chose, a one-byte session ID or ChangeCipherSpec among them)."""
    return f"{count} byte" if count == 1 else f"{count} bytes"
