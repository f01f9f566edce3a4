"""The `workers` measurement: hello requests/s from `trio-tls serve --workers 1` and `--workers 2`.

Python runs one core per process, so `--workers` is how trio-tls uses more than one core; this
checks that a second worker buys throughput, and how much. The load is the `requests`
measurement's (the same client processes and counts, full handshakes), against the real CLI
(bench.procs.trio_tls_serve), since its supervisor and shared socket are part of what is
measured. Both servers run for the whole measurement and take turns over the rounds, alternating
which goes first, as the other measurements do.

Nothing is pinned here: a server pinned to one CPU could not scale whatever its worker count, so
the benchmark lifts its own pinning while this runs and the servers and the clients all share
every CPU. The clients' work then takes CPU the workers could have used, so on a machine with
few cores the ratio understates how the workers scale. Only requests/s is reported: the CPU time
/proc gives for the supervisor does not include its workers' until they exit.

cli_servers, the unpinned and warmed-up `trio-tls serve` processes, is shared with
`crypto-threads` (bench.crypto_threads), which compares command lines the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import procs
from .common import HOST, SUITE
from .measurements import REQUEST_PROCESSES, Settings, in_turn, request_load
from .report import TableRow, format_table

NAME = "workers"
WORKER_COUNTS = (1, 2)
COLUMNS = {1: "1 worker", 2: "2 workers"}
GROUP = "secp256r1"  # trio-tls's name for common.CURVE
WARM_UP_REQUESTS = 10  # per client process
WARM_UP_TIMEOUT = 60.0
# metric key -> column -> one value per round
Results = dict[str, dict[str, list[float]]]


def warm_up(server: procs.Server) -> None:
    """Concurrent clients, so that every worker (not only the first to accept) is warmed up,
    and every crypto thread started."""
    command = procs.client_command(
        "requests", server.port, "--count", WARM_UP_REQUESTS, "--max-seconds", WARM_UP_TIMEOUT
    )
    procs.run_clients([command] * REQUEST_PROCESSES, timeout=WARM_UP_TIMEOUT + 30)


@contextmanager
def cli_servers(
    placement: procs.Placement, cert: tuple[Path, Path], options: Mapping[str, Sequence[str]]
) -> Iterator[dict[str, procs.Server]]:
    """One `trio-tls serve` per entry of `options` (column -> its command-line options), all
    unpinned and warmed up, running until the block ends; yields them by column."""
    with placement.unpinned(), ExitStack() as stack:
        servers = {
            column: stack.enter_context(procs.trio_tls_serve(cert, HOST, SUITE, GROUP, extra))
            for column, extra in options.items()
        }
        for server in servers.values():
            warm_up(server)
        yield servers


def run(
    settings: Settings,
    cert: tuple[Path, Path],
    placement: procs.Placement,
    notes: list[str],
    progress: Callable[[str], None],
) -> Results:
    rates: dict[str, list[float]] = {column: [] for column in COLUMNS.values()}
    options = {COLUMNS[count]: ("--workers", str(count)) for count in WORKER_COUNTS}
    with cli_servers(placement, cert, options) as servers:
        for number in range(settings.rounds):
            for count in in_turn(WORKER_COUNTS, number):
                load = request_load(servers[COLUMNS[count]].port, settings)
                rate = load.done / load.wall
                rates[COLUMNS[count]].append(rate)
                progress(
                    f"  {NAME} round {number + 1}/{settings.rounds} {COLUMNS[count]}: "
                    f"rate={rate:.4g}, errors={load.errors}"
                )
                if load.errors:
                    notes.append(f"{NAME}: {load.errors} failures with {COLUMNS[count]}")
    return {"rate": rates}


def format_section(results: Results) -> str:
    """Its own table, since its columns are worker counts, not the two servers."""
    one, two = (COLUMNS[count] for count in WORKER_COUNTS)
    label = f"hello requests/s ({REQUEST_PROCESSES} clients, full hs)"
    rows = [TableRow(label, "1/s", "higher", results["rate"])]
    return "\n".join(
        [
            f"{NAME}: trio-tls serve --workers N, ratio = {two} / {one}",
            format_table(rows, columns=(one, two), ratio=(two, one)),
            "Not pinned: the workers and the clients share every CPU, so the clients' work takes"
            "\ntime the workers could use and the ratio understates how the workers scale.",
        ]
    )
