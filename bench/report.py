"""The final report: what machine this ran on, and one aligned plain-text table.

Each row shows, per server, the median over the rounds and the min..max range, then the ratio
trio-tls / trio-ssl of the medians (or, for a section comparing something else, another pair of
columns) and which direction is better for that row (context rows, which have no better
direction, get no ratio). The machine
lines name both OpenSSL builds in play, since trio-tls's primitives come from `cryptography`'s
own OpenSSL while the stdlib `ssl` module (the trio-ssl server and every Python client) and the
`openssl s_time` binary may each link another.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import ssl
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs
import cryptography
import trio
from cryptography.hazmat.backends.openssl import backend

from .common import IMPLEMENTATIONS


@attrs.frozen
class TableRow:
    label: str
    unit: str
    better: str  # "higher", "lower", or "" when the row is only context
    samples: dict[str, list[float]]  # implementation -> one value per round
    digits: int = 0
    yes_no: bool = False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _openssl_binary() -> str:
    if shutil.which("openssl") is None:
        return "not found"
    result = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, timeout=10, check=False
    )
    return result.stdout.strip()


def machine_lines(placement: str) -> list[str]:
    now = datetime.datetime.now().astimezone()
    return [
        f"date:        {now:%Y-%m-%d %H:%M %Z}",
        f"machine:     {os.cpu_count()} CPUs ({_cpu_model()}); {placement}",
        f"python:      {platform.python_version()} ({platform.python_implementation()}), "
        f"trio {trio.__version__}",
        f"stdlib ssl:  {ssl.OPENSSL_VERSION}  (trio-ssl server, Python clients)",
        f"trio-tls:    cryptography {cryptography.__version__} on {backend.openssl_version_text()}",
        f"s_time:      {_openssl_binary()}",
    ]


def plural(count: int, noun: str) -> str:
    """'1 round', '3 rounds': for the headings of the sections with rounds of their own."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _cell(values: Sequence[float], row: TableRow) -> str:
    if not values:
        return "-"
    if row.yes_no:
        passed = sum(1 for value in values if value)
        return "yes" if passed == len(values) else f"no ({passed}/{len(values)} rounds)"
    d = row.digits
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{d}f}"
    return f"{median:.{d}f} ({min(values):.{d}f}..{max(values):.{d}f})"


def _ratio(row: TableRow, ratio: tuple[str, str]) -> str:
    ours, theirs = (row.samples.get(name, []) for name in ratio)
    if not row.better or not ours or not theirs or statistics.median(theirs) == 0:
        return "-"
    return f"{statistics.median(ours) / statistics.median(theirs):.2f}"


def format_table(
    rows: Sequence[TableRow],
    columns: Sequence[str] = IMPLEMENTATIONS,
    ratio: tuple[str, str] = (IMPLEMENTATIONS[0], IMPLEMENTATIONS[1]),
) -> str:
    """The table; `columns` name the samples shown, and `ratio` is the median of which over which.

    Other columns than the two servers are for the sections that compare something else (the
    `workers` measurement: one worker against two).
    """
    header = ["metric", "unit", *columns, "ratio", "better"]
    lines = [header]
    for row in rows:
        cells = [_cell(row.samples.get(name, []), row) for name in columns]
        lines.append([row.label, row.unit, *cells, _ratio(row, ratio), row.better or "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        left = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        right = [cell.rjust(width) for cell, width in zip(line[2:], widths[2:], strict=True)]
        out.append("  ".join(left + right).rstrip())
        if number == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)
