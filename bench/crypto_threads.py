"""The `crypto-threads` measurement: `trio-tls serve --crypto-threads N` under concurrent clients.

With N > 0 the server makes each full handshake's signature (RSA-2048 here, the largest single
piece of a full handshake's crypto) on one of N worker threads, and `cryptography` releases the
GIL while it signs, so a second core can sign while the event loop serves other connections.
This measures what that buys: hello requests/s, and the handshake latency the clients see
(connect() to handshake done, every client's samples pooled, then p50 and p99), for each N of
Settings.crypto_threads, under 4 and under 16 client processes doing the `requests` load
(bench.measurements.request_load: full handshake, GET, close). The more clients, the more
handshakes wait for the event loop at once, which is when signing elsewhere should help.

One server per N, all running for the whole measurement (bench.scaling.cli_servers, the real
CLI), unpinned, since a thread needs a core the event loop is not on. Per concurrency, the
servers take turns over the rounds in alternating order, as the other measurements do, so that
the cells compared in one row are measured close together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import procs
from .measurements import CryptoThreadGrid, Settings, in_turn, p50_p99, request_load
from .report import TableRow, format_table, plural
from .scaling import cli_servers

NAME = "crypto-threads"
# "<metric>@<clients>" -> column ("N=2") -> one value per round
Results = dict[str, dict[str, list[float]]]
FOOTNOTE = (
    "Not pinned: servers and clients share every CPU. On a small machine the clients take much\n"
    "of the CPU the threads would sign on (each client's handshake costs it about as much CPU as\n"
    "the server's), so a second core is only partly free and the ratio understates what threads\n"
    "buy where clients run elsewhere. With more client processes than cores, the latency is\n"
    "largely each client waiting for a CPU to run on, not for the server."
)


def _column(threads: int) -> str:
    return f"N={threads}"


def _key(metric: str, clients: int) -> str:
    return f"{metric}@{clients}"


def run(
    settings: Settings,
    cert: tuple[Path, Path],
    placement: procs.Placement,
    notes: list[str],
    progress: Callable[[str], None],
) -> Results:
    grid = settings.crypto_threads
    options = {_column(n): ("--crypto-threads", str(n)) for n in grid.threads}
    results: Results = {}
    with cli_servers(placement, cert, options) as servers:
        for number in range(grid.rounds):
            for clients in grid.clients:
                for threads in in_turn(grid.threads, number):
                    load = request_load(servers[_column(threads)].port, settings, clients)
                    values = {"rate": load.done / load.wall, **p50_p99(load.handshakes)}
                    for metric, value in values.items():
                        cells = results.setdefault(_key(metric, clients), {})
                        cells.setdefault(_column(threads), []).append(value)
                    shown = ", ".join(f"{metric}={value:.4g}" for metric, value in values.items())
                    where = f"{_column(threads)}, {clients} clients"
                    progress(f"  {NAME} round {number + 1}/{grid.rounds} {where}: {shown}")
                    if load.errors:
                        notes.append(f"{NAME}: {load.errors} failures with {where}")
    return results


def format_section(results: Results, grid: CryptoThreadGrid) -> str:
    """Its own table: its columns are thread counts, and the ratio is the most over none."""
    columns = [_column(n) for n in grid.threads]
    rows = []
    for clients in grid.clients:
        rows += [
            TableRow(
                f"hello requests/s ({clients} clients, full hs)",
                "1/s",
                "higher",
                results[_key("rate", clients)],
            ),
            TableRow(
                "  handshake p50 (connect to done)",
                "ms",
                "lower",
                results[_key("p50", clients)],
                2,
            ),
            TableRow("  handshake p99", "ms", "lower", results[_key("p99", clients)], 2),
        ]
    most, none = columns[-1], columns[0]
    return "\n".join(
        [
            f"{NAME}: trio-tls serve --crypto-threads N, unpinned, {plural(grid.rounds, 'round')}; "
            f"ratio = {most} / {none}",
            format_table(rows, columns=columns, ratio=(most, none)),
            FOOTNOTE,
        ]
    )
