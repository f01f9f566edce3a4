"""`--trace-file`: the trace as data, apart from the log, for a tool to read without filtering."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

from .cli_server import STARTUP_TIMEOUT, child_env, command, end, running_server
from .test_operating import _https_get, _one_line_error, _run

LISTENING = re.compile(r"listening on 127\.0\.0\.1 port (\d+)")


def _json_lines(text: str) -> list[dict[str, object]]:
    """Every line an object, or the test fails: no filtering."""
    return [json.loads(line) for line in text.splitlines()]


def test_trace_file_holds_json_lines_and_the_log_none(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    args = ("--trace-file", str(trace), "--trace-format", "json")  # no --trace: implied
    with running_server(tmp_path, *args) as server:
        _https_get(server.port)
        server.wait_for_stderr("closed", 5)
        assert server.stop() == 0
    assert stat.S_IMODE(trace.stat().st_mode) == 0o600
    entries = _json_lines(trace.read_text())
    assert entries[0]["message"] == "ClientHello"
    assert {entry["event"] for entry in entries} >= {"message", "decision", "key", "record"}
    assert "{" not in server.stderr  # the log is all there is on stderr
    # Appended to, never truncated: a second run adds its handshake.
    with running_server(tmp_path, *args) as server:
        _https_get(server.port)
        server.wait_for_stderr("closed", 5)
    assert len(_json_lines(trace.read_text())) == 2 * len(entries)


def test_trace_file_dash_is_stdout_and_nothing_else(tmp_path: Path) -> None:
    """Whatever the server prints for people (the certificate, "serving ...") goes to stderr."""
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as errors:
        proc = subprocess.Popen(
            command("serve", "--port", "0", "--trace-file", "-", "--trace-format", "json"),
            cwd=tmp_path,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (found := LISTENING.search(stderr.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, stderr.read_text()
            time.sleep(0.05)
        _https_get(int(found[1]))
    finally:
        end(proc)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    entries = _json_lines(out)
    assert entries and entries[0]["message"] == "ClientHello"
    assert "serving handler 'hello'" in stderr.read_text()


def test_trace_file_with_workers_gets_every_workers_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    with running_server(tmp_path, "--workers", "2", "--trace-file", str(trace)) as server:
        for _ in range(2):
            _https_get(server.port)
        server.wait_for_stderr("closed", 10, count=2)
        assert server.stop() == 0
    text = trace.read_text()
    assert text.count("C -> S ClientHello") == 2, text
    assert "\x1b[" not in text  # a file is not a terminal: no colour


def test_trace_file_with_secrets_must_be_private(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("")
    trace.chmod(0o644)
    args = ("--trace-file", str(trace), "--key-log-file", str(tmp_path / "keys"))
    result = _run(tmp_path, "serve", "--port", "0", *args)
    _one_line_error(result, f"cannot open --trace-file {trace}: other users have access to it")


def test_trace_file_that_cannot_be_opened_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "trace.txt"
    result = _run(tmp_path, "serve", "--port", "0", "--trace-file", str(path))
    _one_line_error(result, f"cannot open --trace-file {path}: No such file or directory")


def test_trace_without_file_still_goes_to_stderr(tmp_path: Path) -> None:
    with running_server(tmp_path, "--trace", "--trace-format", "json") as server:
        _https_get(server.port)
        server.wait_for_stderr('"message": "ClientHello"', 5)
    assert not any(name.startswith("trace") for name in os.listdir(tmp_path))
