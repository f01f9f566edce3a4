"""The one escaping rule for peer text (engine/wire/printable.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tls.engine.wire.printable import printable


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("example.com", "example.com"),
        ("CN=café,O=Zürich", "CN=café,O=Zürich"),  # printable non-ASCII stays as it is
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),  # a forged log line
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),  # terminal control
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),  # DEL; C1: NEL, CSI
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("abc\u202edef", "abc\\u202edef"),  # a bidi override reorders what is read
        ("\udce9", "\\udce9"),  # a lone surrogate, as surrogateescape makes
        (b"h2\x00\xff", "h2\\x00\\xff"),  # bytes: UTF-8, else \xNN
        ("caf\N{LATIN SMALL LETTER E WITH ACUTE}".encode(), "café"),
    ],
)
def test_what_is_escaped(value: str | bytes, shown: str) -> None:
    assert printable(value) == shown


def test_printable_text_is_returned_as_it_is() -> None:
    text = "x" * 100
    assert printable(text) is text


@given(st.one_of(st.text(), st.binary()))
def test_the_result_is_one_printable_line_and_escaping_again_changes_nothing(
    value: str | bytes,
) -> None:
    shown = printable(value)
    assert shown.isprintable()
    assert printable(shown) == shown
