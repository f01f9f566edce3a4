"""Wireshark decrypts a curl TLS 1.3 session with nothing but the server's key log.

`dumpcap` records a real `trio-tls serve --tls-versions 1.2,1.3 --key-log-file F` on the
loopback interface while curl fetches the hello page; `tshark` then reads the capture twice:
without the key log it sees no HTTP at all, with it the request and the 200 response. So the
five TLS 1.3 lines the server wrote are the secrets of both directions, in the format Wireshark
reads. Capturing needs root (or CAP_NET_RAW): elsewhere the test is skipped and says so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from .cli_server import EXIT_TIMEOUT, running_server
from .test_interop import CURL, leaf_args

TSHARK = shutil.which("tshark")
DUMPCAP = shutil.which("dumpcap")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        TSHARK is None or DUMPCAP is None,
        reason="tshark is not installed (Debian package tshark; .ci/run installs it)",
    ),
    pytest.mark.skipif(CURL is None, reason="curl is not installed"),
]
DEADLINE = 20.0  # dumpcap's start, and its capture reaching the file


def tshark(capture: Path, *args: str) -> list[str]:
    """tshark's output lines on a capture file (which dumpcap may still be writing)."""
    assert TSHARK is not None
    result = subprocess.run(
        [TSHARK, "-r", str(capture), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.splitlines()


def poll(what: str, done: Callable[[], object]) -> None:
    """Call `done` until it is true, failing at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {DEADLINE} s")
        time.sleep(0.05)


@contextmanager
def capturing(port: int, capture: Path) -> Iterator[None]:
    """dumpcap on `lo` for TCP port `port`, from the moment it says it captures to the end of
    the block."""
    assert DUMPCAP is not None
    if os.geteuid() != 0:
        pytest.skip(
            f"capturing on lo needs root or CAP_NET_RAW; the tests run as uid {os.geteuid()}"
        )
    log = capture.with_suffix(".log")
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [DUMPCAP, "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(capture)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        poll(
            f"dumpcap capturing ({log.read_text()!r})",
            lambda: "Capturing on" in log.read_text() or proc.poll() is not None,
        )
        assert proc.poll() is None, log.read_text()
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # dumpcap writes what it has and exits
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_tshark_decrypts_curls_tls13_session_with_the_servers_key_log(
    rsa_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    assert CURL is not None
    keys, capture = tmp_path / "server.keys", tmp_path / "curl.pcapng"
    args = [*leaf_args(rsa_leaf, tmp_path, "rsa"), "--tls-versions", "1.2,1.3"]
    with (
        running_server(tmp_path, *args, "--key-log-file", str(keys)) as server,
        capturing(server.port, capture),
    ):
        result = subprocess.run(
            [CURL, "-sSv", "--insecure", f"https://localhost:{server.port}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.stdout == "Hello from Python TLS!\n", result
        assert "SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256" in result.stderr
        # Once curl has closed its socket, its FIN (or RST) is the last packet to wait for.
        poll(
            "curl's closing packet in the capture",
            lambda: tshark(
                capture,
                "-Y",
                f"tcp.dstport == {server.port} && (tcp.flags.fin == 1 || tcp.flags.reset == 1)",
            ),
        )
    assert len(keys.read_text().splitlines()) == 5  # one TLS 1.3 handshake's secrets
    server_hello = ["-Y", "tls.handshake.type == 2"]
    version = tshark(
        capture, *server_hello, "-T", "fields", "-e", "tls.handshake.extensions.supported_version"
    )
    assert version == ["0x0304"]
    assert tshark(capture, "-Y", "http") == []  # encrypted, without the key log
    with_keys = ("-o", f"tls.keylog_file:{keys}", "-Y", "http", "-T", "fields")
    assert tshark(capture, *with_keys, "-e", "http.request.method", "-e", "http.response.code") == [
        "GET\t",
        "\t200",
    ]
    assert tshark(capture, *with_keys, "-e", "http.file_data") == ["", "Hello from Python TLS!\\n"]
