"""`python -m bench.profile_connection`: what one connection costs each server, counted, not timed.

Timings on a shared machine drift; counts do not. For each server (bench.server, trio-tls and
trio-ssl) and each kind of connection this reports, per connection:

- system calls by name (strace -c on the server process, when strace is installed);
- Python function calls, and trips through trio's scheduler (`Runner.reschedule` calls), from
  cProfile. Each server runs twice, with N connections and with none, and the difference is
  divided by N, so start-up and warm-up are not charged to the connections;
- the functions with the most calls per connection, for the breakdown in bench/README.md.

Kinds: `hello` is the `requests` load (full handshake, GET, response, close), `resumed` is
`openssl s_time -reuse` (an abbreviated handshake and a close, no request). cProfile makes
everything slower, so only its counts are used. `--quick` makes fewer connections.
"""

from __future__ import annotations

import argparse
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trio_tls.ops.certs import make_self_signed

from .common import HOST, IMPLEMENTATIONS, SUITE
from .procs import client_command, run

KINDS = ("hello", "resumed")
TOP_FUNCTIONS = 12
WARM_UP = 20


@contextmanager
def _server(
    implementation: str, cert: tuple[Path, Path], prefix: list[str]
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """bench.server under `prefix` (cProfile, or nothing); stops when its stdin closes."""
    command = [*prefix, "-m", "bench.server", implementation, "--handler", "hello"]
    command += ["--certfile", str(cert[0]), "--keyfile", str(cert[1])]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        port = int(process.stdout.readline())
        yield process, port
        process.stdin.close()
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _load(kind: str, port: int, count: int) -> int:
    """Make `count` connections of `kind` (about that many, for s_time); how many were made."""
    if kind == "hello":
        run(client_command("requests", port, "--count", count, "--max-seconds", 300), 330)
        return count
    # s_time runs for whole seconds: a rate measured first says how many seconds `count` take.
    command = ["openssl", "s_time", "-connect", f"{HOST}:{port}", "-reuse", "-tls1_2"]
    command += ["-cipher", SUITE, "-time"]
    output = run([*command, str(max(1, count // 300))], 330)
    return int(re.findall(r"(\d+) connections in \d+ real seconds", output)[-1])


def _profiled_calls(
    implementation: str, kind: str, cert: tuple[Path, Path], count: int, directory: Path
) -> tuple[int, pstats.Stats]:
    """(connections made, cProfile stats) of one server run."""
    output = directory / f"{implementation}-{kind}-{count}.prof"
    prefix = [sys.executable, "-m", "cProfile", "-o", str(output)]
    with _server(implementation, cert, prefix) as (_, port):
        _load("hello", port, WARM_UP)
        made = _load(kind, port, count) if count else 0
    return made, pstats.Stats(str(output))


def _per_connection_calls(
    implementation: str, kind: str, cert: tuple[Path, Path], count: int, directory: Path
) -> tuple[float, float, dict[str, float], list[tuple[float, str]]]:
    """(function calls, scheduler trips, calls by area, top functions by calls), per
    connection; the top functions leave out C builtins, which say little."""
    made, loaded = _profiled_calls(implementation, kind, cert, count, directory)
    _, idle = _profiled_calls(implementation, kind, cert, 0, directory)
    loaded_calls, idle_calls = _calls_by_function(loaded), _calls_by_function(idle)
    per_function = {
        name: (calls - idle_calls.get(name, 0)) / made for name, calls in loaded_calls.items()
    }
    trips = sum(calls for name, calls in per_function.items() if name.endswith("(reschedule)"))
    areas: dict[str, float] = {}
    for name, calls in per_function.items():
        area = name.split(":", 1)[0]
        areas[area] = areas.get(area, 0.0) + calls
    top = sorted(
        ((calls, name) for name, calls in per_function.items() if not name.startswith("builtins")),
        reverse=True,
    )
    return sum(per_function.values()), trips, areas, top[:TOP_FUNCTIONS]


# (area, a path fragment of its files), first match wins: the project before its libraries.
AREAS: tuple[tuple[str, str], ...] = (
    *(("trio_tls", "/trio_tls/"), ("handlers", "/handlers/"), ("h11", "/h11/")),
    *(("trio", "/trio/"), ("ssl", "/ssl.py"), ("attrs", "/attr/"), ("outcome", "/outcome/")),
)


def _area(filename: str) -> str:
    """Who a function belongs to: the project, a library, the stdlib, or C builtins."""
    if filename == "~":
        return "builtins"
    for area, marker in AREAS:
        if marker in filename:
            return area
    return "stdlib"


def _calls_by_function(stats: pstats.Stats) -> dict[str, int]:
    """Calls by "area: file:line(function)"."""
    table = stats.stats  # type: ignore[attr-defined]
    calls: dict[str, int] = {}
    for (filename, line, name), (_, total_calls, *_rest) in table.items():
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        calls[f"{_area(filename)}: {short}:{line}({name})"] = total_calls
    return calls


def _syscalls(implementation: str, kind: str, cert: tuple[Path, Path], count: int) -> str:
    """strace -c's table for `count` connections, divided per connection."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as table:
        with _server(implementation, cert, [sys.executable]) as (server, port):
            _load("hello", port, WARM_UP)
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-p", str(server.pid), "-o", table.name],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)  # strace attaches
            made = _load(kind, port, count)
            tracer.terminate()
            tracer.wait(30)
        return _per_connection_syscalls(Path(table.name).read_text(), made)


def _per_connection_syscalls(table: str, made: int) -> str:
    rows = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and not line.endswith("total"):
            calls, name = int(fields[3]), fields[-1]
            rows.append((calls / made, name))
    total = sum(calls for calls, _ in rows)
    shown = ", ".join(f"{name} {calls:.1f}" for calls, name in sorted(rows, reverse=True))
    return f"{total:.1f} ({shown})"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_connection", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer connections")
    parser.add_argument("--kind", action="append", choices=KINDS, help="default: both")
    args = parser.parse_args()
    count = 100 if args.quick else 600
    with tempfile.TemporaryDirectory(prefix="trio-tls-profile-") as tmp:
        dev = make_self_signed(tmp, "rsa")
        cert = (dev.cert_path, dev.key_path)
        for kind in args.kind or KINDS:
            print(f"\n{kind} connections ({count} each, per connection):")
            for implementation in IMPLEMENTATIONS:
                calls, trips, areas, top = _per_connection_calls(
                    implementation, kind, cert, count, Path(tmp)
                )
                print(f"  {implementation}: {calls:.0f} Python calls, {trips:.1f} scheduler trips")
                by_area = sorted(((n, area) for area, n in areas.items() if n >= 0.5), reverse=True)
                print("    calls by area: " + ", ".join(f"{area} {n:.0f}" for n, area in by_area))
                if shutil.which("strace"):
                    syscalls = _syscalls(implementation, kind, cert, count)
                    print(f"    system calls: {syscalls}")
                for per, name in top:
                    print(f"    {per:7.1f}  {name}")


if __name__ == "__main__":
    main()
