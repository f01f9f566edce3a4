"""The README's code blocks, read from README.md so that tests run the examples as printed.

A block whose first line is a comment naming a file (`# pyproject.toml`, `# trio_tls_shout.py`)
is that file, comment line included; the others are found by their language and section.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
_FILE_COMMENT = re.compile(r"# (?P<name>[\w.-]+)\n")


def section(title: str) -> str:
    """The text under the `## title` heading, up to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(title: str, lang: str) -> list[str]:
    return [m["code"] for m in _FENCE.finditer(section(title)) if m["lang"] == lang]


def files(title: str) -> dict[str, str]:
    """The section's blocks that name their file, by that name."""
    found = {}
    for match in _FENCE.finditer(section(title)):
        if named := _FILE_COMMENT.match(match["code"]):
            found[named["name"]] = match["code"]
    return found
