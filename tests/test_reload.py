"""Reload (SIGHUP): certificates swapped under a running `trio-tls serve`, alone and with
--workers; connections kept open across it; a broken file keeps the old configuration."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import attrs
import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.sessions import SessionCache
from trio_tls.ops.reload import ConfigHolder

from .cli_server import Server, running_server
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

    def __init__(self, port: int) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
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


def served_by(port: int) -> str:
    client = Client(port)
    client.get()
    client.close()
    return client.served_by


def reload(server: Server, pid: int, done: str, times: int) -> None:
    before = server.stderr.count(done)
    os.kill(pid, signal.SIGHUP)
    server.wait_for_stderr(done, 10, count=before + times)


@pytest.mark.parametrize("count", [1, 2], ids=["single", "workers"])
def test_sighup_swaps_the_certificate_for_new_handshakes_only(
    tmp_path: Path, ca: trustme.CA, count: int
) -> None:
    old, new = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    certfile = tmp_path / "server.pem"
    install(old, certfile)
    with running_server(tmp_path, "--certfile", str(certfile), "--workers", str(count)) as server:
        kept = Client(server.port)
        kept.get()
        assert kept.served_by == fingerprint(old)

        install(new, certfile)
        reload(server, server.proc.pid, "reloaded: new handshakes use certificates", count)
        # Every worker reloaded: whichever takes a connection, it has the new certificate.
        assert {served_by(server.port) for _ in range(4 * count)} == {fingerprint(new)}
        kept.get()  # the open connection is untouched
        kept.close()

        certfile.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
        reload(server, server.proc.pid, "reload failed, still serving the previous", count)
        assert served_by(server.port) == fingerprint(new)
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


def test_a_reload_that_fails_unexpectedly_keeps_the_configuration_and_its_sessions(
    rsa_config: ServerConfig, ecdsa_leaf: trustme.LeafCert, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a file the operator got wrong (those are one line, above) but a bug while building
    the new configuration: logged with its traceback, and the server serves on unchanged. A
    reload that works keeps the session cache and ticket keys, so sessions still resume."""
    holder = ConfigHolder(attrs.evolve(rsa_config, session_cache=SessionCache()))

    def broken() -> ServerConfig:
        raise RuntimeError("a bug in building the configuration")

    assert holder.reload(broken) is False
    assert holder() is holder.current
    assert holder().certificates == rsa_config.certificates
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "reload failed, still serving the previous configuration"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)

    cache = holder().session_cache
    assert holder.reload(lambda: ServerConfig([certified_key(ecdsa_leaf)])) is True
    assert holder().certificates[0].auth == "ecdsa"
    assert holder().session_cache is cache
