"""Client certificates against real clients: curl, `openssl s_client`, over real sockets to a
`trio-tls serve --client-ca` process whose hello handler names the client it sees."""

from __future__ import annotations

import contextlib
import datetime
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .cli_server import Server, running_server
from .client_certs import ALICE, BOB_RSA, CLIENT_CA, EXPIRED, NOW, STRANGER, ClientCert
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
    # curl gets TLS 1.3, where a missing certificate is certificate_required (RFC 8446 §4.4.2.4).
    assert "alert certificate required" in refused.stderr, refused.stderr


def openssl_t61_client(files: Path, name: str, *, version3: bool) -> list[str]:
    """A client certificate for CN=café made as stock OpenSSL makes it: `openssl req` with its
    default string mask writes the name as a T61String of Latin-1 bytes (cryptography cannot
    decode it), and `openssl x509 -req` signs it with the client CA, as version 3 with -extfile
    or as version 1 without."""
    assert OPENSSL is not None
    CLIENT_CA.private_key_pem.write_to_path(files / "client-ca.key")
    config = files / f"{name}.cnf"
    config.write_bytes(
        b"[req]\ndistinguished_name=dn\nprompt=no\nstring_mask=default\nutf8=no\n[dn]\nCN=caf\xe9\n"
    )
    extensions = files / f"{name}.ext"
    extensions.write_text("keyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    csr, key, crt = (str(files / f"{name}.{kind}") for kind in ("csr", "key", "crt"))
    ca = ["-CA", str(files / "client-ca.pem"), "-CAkey", str(files / "client-ca.key")]
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    extfile = ["-extfile", str(extensions)] if version3 else []
    for argv in (
        ["req", "-new", *new_key, "-keyout", key, "-out", csr, "-config", str(config)],
        ["x509", "-req", "-in", csr, *ca, "-days", "2", "-out", crt, *extfile],
    ):
        subprocess.run([OPENSSL, *argv], capture_output=True, timeout=30, check=True)
    return ["-cert", crt, "-key", key]


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize("handler", ["hello", "echo"])
def test_a_subject_cryptography_cannot_decode_stops_nothing(
    files: Path, rsa_leaf: trustme.LeafCert, handler: str
) -> None:
    """The version 3 certificate verifies and is served, its subject shown as hex DER; the
    version 1 one is refused with bad_certificate. The server serves on either way."""
    accepted = openssl_t61_client(files, "cafe3", version3=True)
    refused = openssl_t61_client(files, "cafe1", version3=False)
    args = [*leaf_args(rsa_leaf, files, "server"), "--client-ca", str(files / "client-ca.pem")]
    # A short idle timeout ends s_client's echo connection, which waits for the server.
    with running_server(files, *args, "--handler", handler, "--idle-timeout", "1") as server:
        output = s_client(server.port, *accepted, request=b"GET / HTTP/1.0\r\n\r\n")
        if handler == "hello":
            assert "Client certificate: der:300f310d300b06035504031404636166e9" in output, output
        else:
            assert "GET / HTTP/1.0" in output.split("---")[-1], output
        server.wait_for_stderr("client='der:300f310d300b06035504031404636166e9'", 5)
        assert "alert bad certificate" in s_client(server.port, *refused)
        server.wait_for_stderr("failed: bad_certificate", 5)
        again = s_client(server.port, *identity(files, "alice"))
        assert ("Client certificate: CN=alice" if handler == "hello" else "GET /") in again
        assert server.proc.poll() is None
        assert "Traceback" not in server.stderr, server.stderr


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_a_forged_subject_forges_no_log_line_and_drives_no_terminal(
    files: Path, rsa_leaf: trustme.LeafCert
) -> None:
    """An expired self-signed certificate, which anyone can make, with a subject that holds a
    log line of its own and terminal escapes: stderr (log, debug lines, trace) shows it
    escaped, on the connection's own lines."""
    forged = "x\n2026-12-07 10:00:00 INFO 1.2.3.4:5 forged\x1b]0;pwn\x07\x1b[2J\x9b1m"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, forged)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=30))
        .not_valid_after(NOW - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    ClientCert(certificate, key).write(files, "forger")
    args = [*leaf_args(rsa_leaf, files, "server"), "--client-ca", str(files / "client-ca.pem")]
    with running_server(files, *args, "--log-level", "debug", "--trace") as server:
        assert "alert" in s_client(server.port, *identity(files, "forger"))
        server.wait_for_stderr(": failed: ", 5)
        assert "Client certificate: CN=alice" in s_client(server.port, *identity(files, "alice"))
        server.wait_for_stderr("client='CN=alice'", 5)
    raw = server.stderr_path.read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw and "\x9b".encode() not in raw
    for line in raw.decode().splitlines():
        assert "forged" not in line or not line.startswith("2026-12-07 10:00:00"), line
    assert "\\x0a2026-12-07 10:00:00 INFO" in raw.decode()  # there, escaped
