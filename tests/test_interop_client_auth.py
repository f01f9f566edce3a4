"""Client certificates against real clients: curl, `openssl s_client`, over real sockets to a
`trio-tls serve --client-ca` process whose hello handler names the client it sees."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .cli_server import Server, running_server
from .client_certs import ALICE, BOB_RSA, CLIENT_CA, EXPIRED, STRANGER
from .test_interop import CURL, OPENSSL, leaf_args

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("client-auth")
    CLIENT_CA.cert_pem.write_to_path(directory / "client-ca.pem")
    for name, who in (
        ("alice", ALICE),
        ("bob", BOB_RSA),
        ("mallory", STRANGER),
        ("carol", EXPIRED),
    ):
        who.write(directory, name)
    return directory


def serve(
    files: Path, rsa_leaf: trustme.LeafCert, mode: str
) -> contextlib.AbstractContextManager[Server]:
    args = [*leaf_args(rsa_leaf, files, "server"), "--client-ca", str(files / "client-ca.pem")]
    return running_server(files, *args, "--client-auth", mode)


@pytest.fixture(scope="module")
def required(files: Path, rsa_leaf: trustme.LeafCert) -> Iterator[Server]:
    with serve(files, rsa_leaf, "required") as server:
        yield server


@pytest.fixture(scope="module")
def optional(files: Path, rsa_leaf: trustme.LeafCert) -> Iterator[Server]:
    with serve(files, rsa_leaf, "optional") as server:
        yield server


def s_client(port: int, *args: str, request: bytes = b"GET / HTTP/1.0\r\n\r\n") -> str:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-ign_eof", *args],
        input=request,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return (result.stdout + result.stderr).decode("utf-8", "replace")


def identity(files: Path, name: str) -> list[str]:
    return ["-cert", str(files / f"{name}.crt"), "-key", str(files / f"{name}.key")]


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize(("name", "subject"), [("alice", "CN=alice"), ("bob", "CN=bob")])
def test_s_client_with_rsa_and_ecdsa_certificates(
    required: Server, files: Path, name: str, subject: str
) -> None:
    output = s_client(required.port, *identity(files, name))
    assert f"Client certificate: {subject}" in output, output
    required.wait_for_stderr(f"client='{subject}'", 5)  # the connection log names the client


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize(
    ("args", "alert"),
    [
        ((), "alert handshake failure"),
        (("mallory",), "alert unknown ca"),
        (("carol",), "alert certificate expired"),
    ],
    ids=["no-certificate", "another-ca", "expired"],
)
def test_s_client_refused(required: Server, files: Path, args: tuple[str, ...], alert: str) -> None:
    extra = identity(files, args[0]) if args else []
    output = s_client(required.port, *extra)
    assert alert in output, output
    assert "Client certificate:" not in output


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_optional_serves_a_client_without_a_certificate(optional: Server, files: Path) -> None:
    output = s_client(optional.port)
    assert "Hello from Python TLS!" in output, output
    assert "Client certificate:" not in output
    assert "Client certificate: CN=alice" in s_client(optional.port, *identity(files, "alice"))


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_resumption_keeps_the_identity(required: Server, files: Path, tmp_path: Path) -> None:
    session = tmp_path / "session.pem"
    first = s_client(required.port, *identity(files, "alice"), "-sess_out", str(session))
    assert "Client certificate: CN=alice" in first
    # Resuming, the client sends no certificate at all; the session still names it.
    again = s_client(required.port, "-sess_in", str(session))
    assert "Reused, TLSv1.2" in again, again
    assert "Client certificate: CN=alice" in again, again


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_with_a_client_certificate(required: Server, files: Path) -> None:
    assert CURL is not None
    url = f"https://localhost:{required.port}/"
    result = subprocess.run(
        [CURL, "-sS", "--insecure", "--cert", f"{files}/bob.crt", "--key", f"{files}/bob.key", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == "Hello from Python TLS!\nClient certificate: CN=bob\n", result
    refused = subprocess.run(
        [CURL, "-sS", "--insecure", url], capture_output=True, text=True, timeout=30, check=False
    )
    assert refused.returncode != 0
    assert "alert handshake failure" in refused.stderr, refused.stderr
