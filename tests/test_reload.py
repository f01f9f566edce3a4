"""Reload (SIGHUP): certificates swapped under a running `trio-tls serve`, alone and with
--workers; connections kept open across it; a broken file keeps the old configuration."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import attrs
import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.sessions import SessionCache
from trio_tls.ops import reload as reload_module
from trio_tls.ops.reload import ConfigHolder

from .cli_server import Server, child_env, command, running_server
from .conftest import certified_key

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def install(leaf: trustme.LeafCert, path: Path) -> None:
    """Write key and chain to `path` whole, as a renewal tool does (rename into place)."""
    staging = path.with_suffix(".new")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(staging))
    os.replace(staging, path)


def fingerprint(leaf: trustme.LeafCert) -> str:
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return hashlib.sha256(der).hexdigest()


class Client:
    """A keep-alive HTTPS connection to `hello`; `served_by` is the certificate's SHA-256."""

    def __init__(self, port: int, version: ssl.TLSVersion | None = None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if version is not None:
            context.minimum_version = context.maximum_version = version
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
        assert version is None or self.tls.version() == version.name.replace("_", ".")
        der = self.tls.getpeercert(binary_form=True)
        assert der is not None
        self.served_by = hashlib.sha256(der).hexdigest()

    def get(self) -> None:
        self.tls.sendall(REQUEST)
        response = b""
        while not response.endswith(b"Hello from Python TLS!\n"):
            chunk = self.tls.recv(65536)
            assert chunk, response
            response += chunk

    def close(self) -> None:
        self.tls.close()


def served_by(port: int, version: ssl.TLSVersion | None = None) -> str:
    client = Client(port, version)
    client.get()
    client.close()
    return client.served_by


def reload(server: Server, pid: int, done: str, times: int) -> None:
    before = server.stderr.count(done)
    os.kill(pid, signal.SIGHUP)
    server.wait_for_stderr(done, 10, count=before + times)


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
@pytest.mark.parametrize("count", [1, 2], ids=["single", "workers"])
def test_sighup_swaps_the_certificate_for_new_handshakes_only(
    tmp_path: Path, ca: trustme.CA, count: int, version: ssl.TLSVersion
) -> None:
    old, new = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    certfile = tmp_path / "server.pem"
    install(old, certfile)
    with running_server(tmp_path, "--certfile", str(certfile), "--workers", str(count)) as server:
        kept = Client(server.port, version)
        kept.get()
        assert kept.served_by == fingerprint(old)

        install(new, certfile)
        reload(server, server.proc.pid, "reloaded: new handshakes use certificates", count)
        # Every worker reloaded: whichever takes a connection, it has the new certificate.
        assert {served_by(server.port, version) for _ in range(4 * count)} == {fingerprint(new)}
        kept.get()  # the open connection is untouched
        kept.close()

        certfile.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
        reload(server, server.proc.pid, "reload failed, still serving the previous", count)
        assert served_by(server.port, version) == fingerprint(new)
        assert server.stop() == 0
        assert "Traceback" not in server.stderr
        # Said once at start: not again by each worker, nor by a reload (its log line names them).
        assert server.stdout.count("SHA-256 fingerprint") == 1, server.stdout


def test_sighup_under_load_fails_no_request(tmp_path: Path, ca: trustme.CA) -> None:
    """Four clients make requests (a new connection each) as fast as they can while the
    certificate is swapped five times: no request fails, and both certificates were served."""
    leaves = [ca.issue_cert("localhost") for _ in range(2)]
    certfile = tmp_path / "server.pem"
    install(leaves[0], certfile)
    with running_server(tmp_path, "--certfile", str(certfile)) as server:
        stop = threading.Event()
        failures: list[BaseException] = []
        seen: set[str] = set()
        requests = [0]

        def load() -> None:
            while not stop.is_set():
                try:
                    seen.add(served_by(server.port))
                    requests[0] += 1
                except Exception as exc:  # every failure counts, whatever it is
                    failures.append(exc)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for swap in range(1, 6):
                time.sleep(0.3)  # requests under one certificate, then the next
                install(leaves[swap % 2], certfile)
                reload(server, server.proc.pid, "reloaded:", 1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=20)
        assert failures == []
        assert requests[0] > 20
        assert seen == {fingerprint(leaf) for leaf in leaves}
        assert server.stop() == 0


async def test_a_reload_that_fails_unexpectedly_keeps_the_configuration_and_its_sessions(
    rsa_config: ServerConfig, ecdsa_leaf: trustme.LeafCert, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a file the operator got wrong (those are one line, above) but a bug while building
    the new configuration: logged with its traceback, and the server serves on unchanged. A
    reload that works keeps the session cache and ticket keys, so sessions still resume."""
    holder = ConfigHolder(attrs.evolve(rsa_config, session_cache=SessionCache()))

    def broken() -> ServerConfig:
        raise RuntimeError("a bug in building the configuration")

    assert await holder.reload(broken) is False
    assert holder() is holder.current
    assert holder().certificates == rsa_config.certificates
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "reload failed, still serving the previous configuration"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)

    cache = holder().session_cache
    assert await holder.reload(lambda: ServerConfig([certified_key(ecdsa_leaf)])) is True
    assert holder().certificates[0].auth == "ecdsa"
    assert holder().session_cache is cache


async def test_the_files_are_read_off_the_event_loop_and_a_stuck_read_is_given_up(
    rsa_config: ServerConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The configuration is built on another thread, so the event loop serves meanwhile; one that
    never finishes (a hung file system) is abandoned after RELOAD_TIMEOUT and the old one kept."""
    holder = ConfigHolder(rsa_config)
    loop_thread = threading.get_ident()
    built_on: list[int] = []

    def build() -> ServerConfig:
        built_on.append(threading.get_ident())
        return rsa_config

    assert await holder.reload(build) is True
    assert built_on != [loop_thread]

    monkeypatch.setattr(reload_module, "RELOAD_TIMEOUT", 0.2)
    current = holder()
    release = threading.Event()

    def stuck() -> ServerConfig:
        release.wait(10)
        return rsa_config

    try:
        assert await holder.reload(stuck) is False
    finally:
        release.set()
    assert holder() is current
    assert "reading the files took more than 0.2 seconds" in caplog.text


def fifo_at(path: Path) -> None:
    """Swap a FIFO in where the file was: nothing will ever write to it."""
    path.unlink()
    os.mkfifo(path)


def test_a_fifo_at_the_certificate_path_is_refused_at_reload(
    tmp_path: Path, ca: trustme.CA
) -> None:
    """Read on the event loop, the FIFO froze every client and SIGTERM (the open waits for a
    writer). Now the reload refuses it, honest clients are served, and SIGTERM stops at once."""
    leaf = ca.issue_cert("localhost")
    certfile = tmp_path / "server.pem"
    install(leaf, certfile)
    with running_server(tmp_path, "--certfile", str(certfile)) as server:
        fifo_at(certfile)
        reload(server, server.proc.pid, "reload failed, still serving the previous", 1)
        assert f"cannot read certificate file {certfile}: it is a FIFO, not a regular file" in (
            server.stderr
        )
        for _ in range(3):
            assert served_by(server.port) == fingerprint(leaf)
        assert server.stop() == 0  # within EXIT_TIMEOUT; it used to hang until SIGKILL
        assert "Traceback" not in server.stderr


FIFO_AT_START = {
    "certfile": (["--certfile", "fifo"], "cannot read certificate file fifo"),
    "keyfile": (["--certfile", "server.pem", "--keyfile", "fifo"], "cannot read key file fifo"),
    "client-ca": (["--certfile", "server.pem", "--client-ca", "fifo"], "--client-ca fifo"),
    "ticket-key-file": (
        ["--certfile", "server.pem", "--ticket-key-file", "fifo"],
        "cannot read ticket key file fifo",
    ),
}


@pytest.mark.parametrize(("args", "message"), FIFO_AT_START.values(), ids=FIFO_AT_START)
def test_a_fifo_in_place_of_a_file_is_one_error_at_start(
    tmp_path: Path, rsa_leaf: trustme.LeafCert, args: list[str], message: str
) -> None:
    """Opened for reading, a FIFO used to wait for a writer forever: the server never started."""
    install(rsa_leaf, tmp_path / "server.pem")
    (tmp_path / "server.pem").chmod(0o600)
    os.mkfifo(tmp_path / "fifo")
    result = subprocess.run(
        command("serve", "--port", "0", *args),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stderr == f"trio-tls: error: {message}: it is a FIFO, not a regular file\n"
