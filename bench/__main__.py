"""`python -m bench` (or `nox -s bench`): trio-tls side by side with trio.SSLStream over stdlib ssl.

Both servers run the same handler plugin behind the same serve() loop shape, with the same
certificate, suite, group and resumption settings (bench.common), each in a subprocess of its
own pinned to one CPU while the clients use the others. Every measurement runs for both servers
interleaved over several rounds, alternating which goes first, so that drift in the machine
(thermal, other tenants) lands on both; the report gives the median and range over rounds and
the ratio trio-tls / trio-ssl. Then three measurements with tables of their own after the main
one: `workers` (bench.scaling) and `crypto-threads` (bench.crypto_threads), trio-tls alone,
requests/s from `trio-tls serve --workers N` and `--crypto-threads N`, unpinned; and `idle-10k`
(bench.idle_many), both servers holding 10,000 idle connections. Last come the in-memory
handshake (no sockets, no event loop) and the crypto floor, the time of the `cryptography`
calls a full handshake cannot avoid. bench/README.md says what each measures.

Progress goes to stderr, the report to stdout. `--quick` is a smoke run of under two minutes;
`--only NAME` (repeatable) picks measurements. Absolute numbers depend on the machine and its
load; only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from trio_tls.ops.certs import load_private_key, make_self_signed

from . import common, crypto_floor, crypto_threads, idle_many, memory_handshake, procs, scaling
from .common import IMPLEMENTATIONS, raise_descriptor_limit
from .measurements import METRICS, Metric, Row, Settings, in_turn, warm_up
from .report import TableRow, format_table, machine_lines

IN_MEMORY = "in-memory"
IN_MEMORY_ROWS = (
    Row("server_ms", "in-memory handshake, server side", "ms", "lower", 3),
    Row("floor_ms", "  crypto floor (same process)", "ms", "", 3),
    Row("server_ms", "  in-memory server side / floor", "x", "lower", 2, divide_by="floor_ms"),
)
NAMES = [metric.name for metric in METRICS]
NAMES += [scaling.NAME, crypto_threads.NAME, idle_many.NAME, IN_MEMORY]
# metric name -> row key -> implementation -> one value per round
Results = dict[str, dict[str, dict[str, list[float]]]]


def _exit_on_sigterm(signum: int, _: object) -> None:
    # SystemExit runs every `finally`, so the servers and clients are stopped, not orphaned.
    raise SystemExit(128 + signum)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_rounds(
    metric: Metric,
    settings: Settings,
    cert: tuple[Path, Path],
    placement: procs.Placement,
    rounds: range,
    results: dict[str, dict[str, list[float]]],
    notes: list[str],
) -> None:
    with ExitStack() as stack:
        connections = metric.connections(settings)
        servers = {
            name: stack.enter_context(
                procs.server(name, metric.handler, cert, placement, connections)
            )
            for name in IMPLEMENTATIONS
        }
        for server in servers.values():
            warm_up(server)
        for number in rounds:
            for name in in_turn(IMPLEMENTATIONS, number):
                values = metric.measure(servers[name], settings)
                shown = ", ".join(f"{key}={value:.4g}" for key, value in values.items())
                _progress(f"  {metric.name} round {number + 1}/{settings.rounds} {name}: {shown}")
                for key, value in values.items():
                    results.setdefault(key, {}).setdefault(name, []).append(value)
                if values.get("errors"):
                    notes.append(f"{metric.name}: {values['errors']:.0f} failures with {name}")


def run_metric(
    metric: Metric,
    settings: Settings,
    cert: tuple[Path, Path],
    placement: procs.Placement,
    notes: list[str],
) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    if metric.fresh_servers:
        for number in range(settings.rounds):
            _run_rounds(
                metric, settings, cert, placement, range(number, number + 1), results, notes
            )
    else:
        _run_rounds(metric, settings, cert, placement, range(settings.rounds), results, notes)
    return results


def run_in_memory(settings: Settings, cert: tuple[Path, Path]) -> dict[str, dict[str, list[float]]]:
    """In-process: the ServerConnection vs OpenSSL handshake, and the crypto floor.

    The "trio-ssl" column here is OpenSSL's own server over memory BIOs, no trio involved.
    """
    key = load_private_key(cert[1])
    assert isinstance(key, rsa.RSAPrivateKey)
    results: dict[str, dict[str, list[float]]] = {
        key: {name: [] for name in IMPLEMENTATIONS} for key in ("server_ms", "floor_ms")
    }
    for number in range(settings.rounds):
        samples = memory_handshake.measure(*cert, runs=settings.in_memory_runs)
        floor = statistics.median(crypto_floor.measure(key, settings.in_memory_runs)) * 1e3
        for name, engine in zip(IMPLEMENTATIONS, ("trio-tls", "openssl"), strict=True):
            server = statistics.median(samples[engine][1]) * 1e3
            results["server_ms"][name].append(server)
            results["floor_ms"][name].append(floor)
        shown = ", ".join(f"{name}={v[-1]:.3f} ms" for name, v in results["server_ms"].items())
        _progress(
            f"  {IN_MEMORY} round {number + 1}/{settings.rounds}: {shown}, floor={floor:.3f} ms"
        )
    return results


def _samples(results: dict[str, dict[str, list[float]]], row: Row) -> dict[str, list[float]]:
    samples = results[row.key]
    if row.divide_by is None:
        return samples
    pooled = statistics.median(v for values in results[row.divide_by].values() for v in values)
    return {name: [value / pooled for value in values] for name, values in samples.items()}


def build_rows(results: Results, sections: Sequence[tuple[str, Sequence[Row]]]) -> list[TableRow]:
    """The table rows of these measurements (name, rows) that ran."""
    return [
        TableRow(
            row.label, row.unit, row.better, _samples(results[name], row), row.digits, row.yes_no
        )
        for name, rows in sections
        for row in rows
        if row.key in results.get(name, {})
    ]


def _own_sections(results: Results, settings: Settings) -> list[str]:
    """The measurements with tables of their own, after the main one: title, table, footnote."""
    sections = []
    if scaling.NAME in results:
        sections.append(scaling.format_section(results[scaling.NAME]))
    if crypto_threads.NAME in results:
        grid = settings.crypto_threads
        sections.append(crypto_threads.format_section(results[crypto_threads.NAME], grid))
    if idle_many.NAME in results:
        rows = build_rows(results, [(idle_many.NAME, idle_many.METRIC.rows)])
        table = format_table(rows)
        sections.append("\n".join([idle_many.title(settings.idle_many), table, idle_many.FOOTNOTE]))
    return sections


def run_selected(
    selected: Sequence[str], settings: Settings, placement: procs.Placement, notes: list[str]
) -> Results:
    """Every selected measurement, in the report's order, with one fresh certificate."""
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="trio-tls-bench-") as tmp:
        dev = make_self_signed(tmp, "rsa")
        cert = (dev.cert_path, dev.key_path)
        for metric in METRICS:
            if metric.name not in selected:
                continue
            if metric.name in {"full", "resumed"} and shutil.which("openssl") is None:
                notes.append(f"{metric.name}: skipped, no openssl binary for s_time")
                continue
            _progress(f"{metric.name} ({metric.handler} handler)")
            results[metric.name] = run_metric(metric, settings, cert, placement, notes)
        if scaling.NAME in selected:
            _progress(f"{scaling.NAME} (trio-tls serve --workers 1 and 2, unpinned)")
            results[scaling.NAME] = scaling.run(settings, cert, placement, notes, _progress)
        if crypto_threads.NAME in selected:
            _progress(f"{crypto_threads.NAME} (trio-tls serve --crypto-threads N, unpinned)")
            results[crypto_threads.NAME] = crypto_threads.run(
                settings, cert, placement, notes, _progress
            )
        if idle_many.NAME in selected:
            _progress(f"{idle_many.NAME} ({settings.idle_many.connections:,} idle connections)")
            # Its own number of rounds: each one opens the idle connections anew, twice.
            own = attrs.evolve(settings, rounds=settings.idle_many.rounds)
            results[idle_many.NAME] = run_metric(idle_many.METRIC, own, cert, placement, notes)
        if IN_MEMORY in selected:
            _progress(IN_MEMORY)
            results[IN_MEMORY] = run_in_memory(settings, cert)
    return results


def print_tables(results: Results, settings: Settings, notes: Sequence[str]) -> None:
    main_sections = [(metric.name, metric.rows) for metric in METRICS]
    rows = build_rows(results, [*main_sections, (IN_MEMORY, IN_MEMORY_ROWS)])
    if rows:  # not when only the measurements with tables of their own ran
        print()
        print(format_table(rows))
    for section in _own_sections(results, settings):
        print()
        print(section)
    print()
    for note in notes:
        print(f"note: {note}")
    if rows:
        print(
            "Each cell: median over rounds (min..max). ratio = trio-tls / trio-ssl medians; "
            "'better' says\nwhich way is better. s_time is one connection at a time, so its rate "
            "includes the client's\nwork; CPU rows are the server's own. Only ratios within one "
            "run mean anything."
        )
    else:
        print("Each cell: median over rounds (min..max). Only ratios within one run mean anything.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of under two minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this measurement (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--tls13",
        action="store_true",
        help="both servers and every client speak TLS 1.3 only (default: TLS 1.2 only)",
    )
    args = parser.parse_args(argv)
    if args.tls13 and not common.USE_TLS13:
        # Every process reads the version from its environment (bench.common): start afresh.
        os.environ[common.VERSION_VARIABLE] = "1.3"
        os.execv(sys.executable, [sys.executable, "-m", "bench", *(argv or sys.argv[1:])])
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = Settings.quick() if args.quick else Settings.full()
    placement = procs.Placement.pin()
    if placement.server_cpu is None:
        where = "one CPU: servers and clients share it"
    else:
        where = f"server on CPU {placement.server_cpu}, clients on {sorted(placement.client_cpus)}"
    selected = args.only or NAMES
    if idle_many.NAME in selected:
        # Fail now rather than after the other measurements if that many will not fit.
        raise_descriptor_limit(settings.idle_many.connections)
    notes: list[str] = []
    started = time.monotonic()
    results = run_selected(selected, settings, placement, notes)
    elapsed = time.monotonic() - started
    print()
    print("\n".join(machine_lines(where)))
    mode = "quick" if args.quick else "full"
    print(f"run:         {mode}, {settings.rounds} rounds interleaved, {elapsed:.0f} s")
    print(f"protocol:    TLS {'1.3' if common.USE_TLS13 else '1.2'}, {common.SUITE}, P-256")
    print_tables(results, settings, notes)


if __name__ == "__main__":
    main()
