"""The socket measurements: each one run against one server, returning named numbers.

A measurement takes a running server (bench.procs.Server) and the run's Settings and returns a
dict of values; the Metric table below says which handler the servers need, what each value is
called in the report, its unit and which direction is better. The server's CPU time is read
from /proc before and after, so "per handshake" numbers are the server's own cost, whatever
the client spent.

`openssl s_time` makes one connection at a time: its rate is 1 / (client + server + kernel time
per connection), so the server sits idle while the client works and the ratio of rates
understates the difference in server cost — that is what the CPU-per-handshake row is for, and
the many-client `requests` measurement is the one that keeps the server busy. Without `-www`
s_time sends no request at all: it handshakes and closes the socket (no close_notify), so those
rows time handshakes only. Its "N connections in T real seconds" counts whole seconds of
time(), up to one second more than it ran; the rate here divides N by the wall time measured
around the s_time process instead.

Echo throughput counts the payload once, though it crosses the server twice (in and out); the
rate of one 64 MiB transfer swings by a third from one connection to the next on the same
server (how records happen to batch per read), so each round takes the median of a few.
Memory per idle connection is the growth of the server's RSS, so user-space memory only: the
kernel's socket buffers are not in it, and they are the same for both servers.

The helpers the other measurements share live here too: request_load (the `requests` load, also
run by `workers` and `crypto-threads`), handshake_latency and idle_connections (also run by
`idle-10k`), and in_turn, the alternating order of every round.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs

from .common import HOST, SUITE, USE_TLS13
from .procs import (
    Server,
    client_command,
    cpu_seconds,
    held_clients,
    open_descriptors,
    rss_bytes,
    run,
    run_client,
    run_clients,
    wait_for_descriptors,
)

MIB = 1 << 20
REQUEST_PROCESSES = 4
FLOOR_RUNS = 300
ECHO_TRANSFERS = 3
# For the request processes to start and be ready to go together: at least this long, and
# longer with many processes, which all start on the same few CPUs.
CLIENT_START_DELAY = 2.0
CLIENT_START_PER_PROCESS = 0.2
SETTLE = 0.5  # for the server to finish the last handshakes before RSS is read
# Time allowed to open idle connections: a full handshake each, one server CPU doing them all.
OPEN_SECONDS = 30.0
OPEN_SECONDS_PER_CONNECTION = 0.02
HOLD_SECONDS = 300.0  # after opening, for the measurement to run; they are released before
# Descriptors a server may still hold once it has closed the idle connections (lazily opened
# ones of its own), without being counted as still closing them.
DESCRIPTOR_SLACK = 8

T = TypeVar("T")


@attrs.frozen
class CryptoThreadGrid:
    """`crypto-threads`: which --crypto-threads values, under how many client processes."""

    threads: tuple[int, ...]  # the first is the baseline of the ratio, the last its numerator
    clients: tuple[int, ...]
    rounds: int  # each runs every (threads, clients) cell, so fewer than the others


@attrs.frozen
class IdleMany:
    """`idle-10k`: how many idle connections, opened by how many client processes in parallel."""

    connections: int
    processes: int
    handshakes: int  # per batch, sequential: before, while and after they are open
    rounds: int  # each makes 2 x connections full handshakes, so fewer than the others


@attrs.frozen(kw_only=True)
class Settings:
    rounds: int
    s_time_seconds: int
    requests_per_process: int
    latency_handshakes: int
    echo_bytes: int
    idle_connections: int
    in_memory_runs: int
    crypto_threads: CryptoThreadGrid
    idle_many: IdleMany

    @classmethod
    def full(cls) -> Settings:
        return cls(
            rounds=5,
            s_time_seconds=8,
            requests_per_process=400,
            latency_handshakes=300,
            echo_bytes=64 * MIB,
            idle_connections=500,
            in_memory_runs=200,
            crypto_threads=CryptoThreadGrid(threads=(0, 1, 2, 4), clients=(4, 16), rounds=3),
            idle_many=IdleMany(connections=10_000, processes=4, handshakes=100, rounds=3),
        )

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            rounds=2,
            s_time_seconds=2,
            requests_per_process=50,
            latency_handshakes=100,
            echo_bytes=16 * MIB,
            idle_connections=200,
            in_memory_runs=50,
            crypto_threads=CryptoThreadGrid(threads=(0, 2), clients=(4,), rounds=1),
            idle_many=IdleMany(connections=1_000, processes=4, handshakes=50, rounds=1),
        )


def in_turn(items: Sequence[T], number: int) -> Sequence[T]:
    """The order for round `number`: alternately forwards and backwards, so that no server
    always runs on another's heels (or always first, on a machine still settling)."""
    return items if number % 2 == 0 else items[::-1]


def warm_up(server: Server) -> None:
    """A few handshakes first, so imports and caches are not charged to the first round."""
    run_client("latency", server.port, "--count", 20, timeout=60)


def _s_time(server: Server, mode: str, seconds: int) -> dict[str, float]:
    command = ["openssl", "s_time", "-connect", f"{HOST}:{server.port}", f"-{mode}"]
    if USE_TLS13:
        command += ["-tls1_3", "-ciphersuites", SUITE, "-time", str(seconds)]
        if mode == "reuse":
            # A TLS 1.3 ticket comes after the handshake: s_time reads it only if it reads
            # something, so each connection fetches the page (from both servers alike).
            command += ["-www", "/"]
    else:
        command += ["-tls1_2", "-cipher", SUITE, "-time", str(seconds)]
    cpu = cpu_seconds(server.pid)
    start = time.monotonic()
    output = run(command, timeout=seconds + 30)
    wall = time.monotonic() - start
    cpu = cpu_seconds(server.pid) - cpu
    counts = re.findall(r"(\d+) connections in \d+ real seconds", output)
    if not counts or int(counts[-1]) == 0:
        raise RuntimeError(f"s_time made no connection: {output[-300:]!r}")
    connections = int(counts[-1])
    # One character per connection: "r" when the session was resumed, "*" when not.
    progress = "".join(re.findall(r"^[r*t3]+$", output, re.MULTILINE))
    return {
        "rate": connections / wall,
        "cpu_ms": cpu / connections * 1e3,
        "busy": cpu / wall * 100,
        "resumed": progress.count("r") / max(1, len(progress)) * 100,
    }


def full_handshakes(server: Server, settings: Settings) -> dict[str, float]:
    """s_time -new, then the crypto floor on the server's CPU, paired with this round."""
    values = _s_time(server, "new", settings.s_time_seconds)
    command = [sys.executable, "-m", "bench.crypto_floor", "--runs", str(FLOOR_RUNS)]
    command += ["--cpu", str(min(os.sched_getaffinity(server.pid)))]
    values["floor_ms"] = json.loads(run(command, timeout=60))["floor_ms"]
    return values


def resumed_handshakes(server: Server, settings: Settings) -> dict[str, float]:
    return _s_time(server, "reuse", settings.s_time_seconds)


@attrs.frozen
class RequestLoad:
    done: int
    errors: int
    wall: float  # from the first client's start to the last one's end
    handshakes: list[float]  # seconds, connect() to handshake done, every client's pooled


def request_load(port: int, settings: Settings, processes: int = REQUEST_PROCESSES) -> RequestLoad:
    """`processes` request clients at once; shared with `workers` and `crypto-threads`.

    They make settings.requests_per_process x REQUEST_PROCESSES requests in all, whatever their
    number, so that a run under 16 clients takes about as long as one under 4.
    """
    start_at = time.monotonic() + max(CLIENT_START_DELAY, CLIENT_START_PER_PROCESS * processes)
    count = -(-settings.requests_per_process * REQUEST_PROCESSES // processes)
    max_seconds = 30
    command = client_command(
        "requests",
        port,
        "--count",
        count,
        "--start-at",
        start_at,
        "--max-seconds",
        max_seconds,
    )
    results = run_clients([command] * processes, timeout=max_seconds + 30)
    done = sum(result["done"] for result in results)
    if done == 0:
        raise RuntimeError(f"no request succeeded: {results}")
    wall = max(result["end"] for result in results) - min(r["start"] for r in results)
    handshakes = [sample for result in results for sample in result["handshakes"]]
    return RequestLoad(done, sum(result["errors"] for result in results), wall, handshakes)


def p50_p99(samples: Sequence[float]) -> dict[str, float]:
    """The median and 99th percentile of times in seconds, in ms.

    Of one pool of samples: quantiles of several clients cannot be averaged into one.
    """
    if len(samples) < 2:
        raise RuntimeError(f"{len(samples)} timed handshake(s): too few for percentiles")
    percentiles = statistics.quantiles(samples, n=100)
    return {"p50": percentiles[49] * 1e3, "p99": percentiles[98] * 1e3}


def requests(server: Server, settings: Settings) -> dict[str, float]:
    cpu = cpu_seconds(server.pid)  # the server is idle until the clients' start_at
    load = request_load(server.port, settings)
    cpu = cpu_seconds(server.pid) - cpu
    return {
        "rate": load.done / load.wall,
        "cpu_ms": cpu / load.done * 1e3,
        "busy": cpu / load.wall * 100,
        "errors": load.errors,
    }


@attrs.frozen
class Latencies:
    samples: list[float]  # seconds, connect() to handshake done
    errors: int


def handshake_samples(port: int, count: int) -> Latencies:
    """`count` sequential handshakes from one client (the `latency` client)."""
    result = run_client("latency", port, "--count", count, timeout=120)
    return Latencies(result["samples"], result["errors"])


def handshake_latency(port: int, count: int) -> dict[str, float]:
    """`count` sequential handshakes from one client: p50 and p99 in ms, and the failures."""
    latencies = handshake_samples(port, count)
    return {**p50_p99(latencies.samples), "errors": latencies.errors}


def latency(server: Server, settings: Settings) -> dict[str, float]:
    return handshake_latency(server.port, settings.latency_handshakes)


def echo(server: Server, settings: Settings) -> dict[str, float]:
    """The median of a few transfers, each on a new connection: one alone is too noisy."""
    rates = []
    mebibytes = 0.0
    cpu = cpu_seconds(server.pid)
    for _ in range(ECHO_TRANSFERS):
        result = run_client(
            "echo", server.port, "--size", settings.echo_bytes, "--record", 16384, timeout=120
        )
        rates.append(result["bytes"] / MIB / result["seconds"])
        mebibytes += result["bytes"] / MIB
    cpu = cpu_seconds(server.pid) - cpu
    return {"rate": statistics.median(rates), "cpu_ms": cpu / mebibytes * 1e3}


@contextmanager
def idle_connections(server: Server, count: int, processes: int = 1) -> Iterator[None]:
    """Hold `count` idle connections (handshake done, nothing sent) open until the block ends.

    Opened by `processes` clients in parallel, so that the server, not one client's sequential
    handshakes, sets the pace. Raises unless every one of them opened. On leaving, waits for the
    server to have closed them all, so that closing them is not charged to what comes next (the
    other server, pinned to the same CPU).
    """
    shares = [count // processes + (number < count % processes) for number in range(processes)]
    timeout = OPEN_SECONDS + OPEN_SECONDS_PER_CONNECTION * count
    commands = [
        client_command(
            "idle", server.port, "--count", share, "--max-seconds", timeout + HOLD_SECONDS
        )
        for share in shares
    ]
    before = open_descriptors(server.pid)
    with held_clients(commands, timeout) as reports:
        opened = sum(report["open"] for report in reports)
        if opened != count:
            raise RuntimeError(f"only {opened} of {count} connections opened")
        yield
    wait_for_descriptors(server.pid, before + DESCRIPTOR_SLACK, timeout)


def idle_memory(server: Server, settings: Settings) -> dict[str, float]:
    count = settings.idle_connections
    before = rss_bytes(server.pid)
    with idle_connections(server, count):
        time.sleep(SETTLE)
        after = rss_bytes(server.pid)
        probe = run_client("requests", server.port, "--count", 1, "--max-seconds", 10, timeout=30)
    return {"kib": (after - before) / count / 1024, "served": float(probe["done"] == 1)}


@attrs.frozen
class Row:
    key: str  # in the dict the measurement returns
    label: str
    unit: str
    better: str  # "higher", "lower", or "" when the row is only context
    digits: int = 0
    yes_no: bool = False
    # Divide by the median of this other key over every round of both servers: the floor
    # drifts with the machine from one round to the next as much as the servers differ.
    divide_by: str | None = None


@attrs.frozen
class Metric:
    name: str  # for --only
    handler: str
    measure: Callable[[Server, Settings], dict[str, Any]]
    rows: tuple[Row, ...]
    # A new pair of servers every round: for memory, so no round reuses another's freed memory.
    fresh_servers: bool = False
    # How many connections it holds open at once, so that the servers can make sure of the
    # file descriptors for them (bench.server --connections).
    connections: Callable[[Settings], int] = lambda settings: 0


METRICS = (
    Metric(
        "full",
        "hello",
        full_handshakes,
        (
            Row("rate", "full handshakes/s (s_time -new)", "1/s", "higher"),
            Row("cpu_ms", "  server CPU per full handshake", "ms", "lower", 3),
            Row("busy", "  server CPU busy during s_time", "%", "", 0),
            Row("floor_ms", "  crypto floor, on the server CPU", "ms", "", 3),
            Row(
                "cpu_ms",
                "  server CPU per full handshake / floor",
                "x",
                "lower",
                2,
                divide_by="floor_ms",
            ),
        ),
    ),
    Metric(
        "resumed",
        "hello",
        resumed_handshakes,
        (
            Row("rate", "resumed handshakes/s (s_time -reuse)", "1/s", "higher"),
            Row("cpu_ms", "  server CPU per resumed handshake", "ms", "lower", 3),
            Row("resumed", "  connections resumed", "%", "", 0),
        ),
    ),
    Metric(
        "requests",
        "hello",
        requests,
        (
            Row(
                "rate", f"hello requests/s ({REQUEST_PROCESSES} clients, full hs)", "1/s", "higher"
            ),
            Row("cpu_ms", "  server CPU per request", "ms", "lower", 3),
            Row("busy", "  server CPU busy", "%", ""),
        ),
    ),
    Metric(
        "latency",
        "hello",
        latency,
        (
            Row("p50", "handshake latency p50 (sequential)", "ms", "lower", 3),
            Row("p99", "handshake latency p99", "ms", "lower", 3),
        ),
    ),
    Metric(
        "echo",
        "echo",
        echo,
        (
            Row("rate", "echo throughput (1 conn, 16 KiB records)", "MiB/s", "higher", 1),
            Row("cpu_ms", "  server CPU per MiB echoed", "ms", "lower", 2),
        ),
    ),
    Metric(
        "idle",
        "hello",
        idle_memory,
        (
            Row("kib", "memory per idle connection (RSS)", "KiB", "lower", 1),
            Row("served", "  new request served meanwhile", "", "", yes_no=True),
        ),
        fresh_servers=True,
        connections=lambda settings: settings.idle_connections,
    ),
)
