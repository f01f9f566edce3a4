"""The `idle-10k` measurement: 10,000 idle TLS connections held open against each server.

A server that holds many mostly-idle connections (long polling, websockets, keep-alive) is
bound by memory, and by what each idle connection costs the others. So, for each server (fresh
ones every round, as `idle` has, so that no round reuses memory another freed, and pinned like
the main table's): Settings.idle_many connections opened by several client processes in
parallel (so that the server sets the pace, not one client's sequential handshakes) and held
idle, handshake done and nothing sent; the server's RSS growth per connection; and the
handshake latency of a new client while they are open (sequential handshakes from the
`latency` client, p50 and p99) against the same with nothing else open. The "with / without"
rows are that latency's growth, each server against itself: what the idle connections cost a
new client, through the event loop's bookkeeping and the garbage collector's passes over every
live object.

The latency without them is taken both before the connections open and after they have all
closed, and the two batches pooled: whatever drifts in the machine over the minute between
(other work, the CPU's clock, the scheduler's placement) then weighs on both sides alike,
instead of on one.

RSS is user-space memory only: the kernel's socket buffers are not in it and are the same for
both servers. The project's target is trio-tls at 0.7 x trio-ssl's memory per connection or
less. Both servers cap connections at bench.common.MAX_CONNECTIONS and make sure of their file
descriptors first (bench.server --connections), as the idle clients do.
"""

from __future__ import annotations

import time

from .measurements import (
    SETTLE,
    IdleMany,
    Metric,
    Row,
    Settings,
    handshake_samples,
    idle_connections,
    p50_p99,
)
from .procs import Server, rss_bytes
from .report import plural

NAME = "idle-10k"


def measure(server: Server, settings: Settings) -> dict[str, float]:
    idle = settings.idle_many
    first = handshake_samples(server.port, idle.handshakes)
    before = rss_bytes(server.pid)
    with idle_connections(server, idle.connections, idle.processes):
        time.sleep(SETTLE)
        after = rss_bytes(server.pid)
        held_samples = handshake_samples(server.port, idle.handshakes)
    last = handshake_samples(server.port, idle.handshakes)  # once they have all closed
    alone, held = p50_p99(first.samples + last.samples), p50_p99(held_samples.samples)
    return {
        "kib": (after - before) / idle.connections / 1024,
        "p50_alone": alone["p50"],
        "p99_alone": alone["p99"],
        "p50_held": held["p50"],
        "p99_held": held["p99"],
        "p50_cost": held["p50"] / alone["p50"],
        "p99_cost": held["p99"] / alone["p99"],
        "errors": first.errors + held_samples.errors + last.errors,
    }


METRIC = Metric(
    NAME,
    "hello",
    measure,
    (
        Row("kib", "memory per idle connection (RSS)", "KiB", "lower", 1),
        Row("p50_alone", "new client's handshake p50, none idle", "ms", "lower", 3),
        Row("p99_alone", "  p99, none idle", "ms", "lower", 3),
        Row("p50_held", "  p50, with the idle ones open", "ms", "lower", 3),
        Row("p99_held", "  p99, with the idle ones open", "ms", "lower", 3),
        Row("p50_cost", "  p50 with / without", "x", "lower", 2),
        Row("p99_cost", "  p99 with / without", "x", "lower", 2),
    ),
    fresh_servers=True,
    connections=lambda settings: settings.idle_many.connections,
)


def title(idle: IdleMany) -> str:
    share = -(-idle.connections // idle.processes)
    return (
        f"{NAME}: {idle.connections:,} idle connections held open ({idle.processes} clients x "
        f"{share:,}),\nfresh pinned servers each round, {plural(idle.rounds, 'round')}; "
        "ratio = trio-tls / trio-ssl"
    )


FOOTNOTE = (
    "Latency: one more client's sequential full handshakes, connect to handshake done; none idle\n"
    "= one batch before the idle connections open and one after they close, pooled. 'with /\n"
    "without' is each server against itself: what the idle connections cost a new client. RSS\n"
    "is user-space memory only (no kernel socket buffers). Target: trio-tls <= 0.7 x trio-ssl."
)
