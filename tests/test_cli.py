"""The `trio-tls` command end to end: the real program in a subprocess, real sockets and clients.

Every server runs with `--port 0` in its own temporary directory (so `certs/` lands there) and
announces its port on the flushed "serving handler ... on https://127.0.0.1:PORT/" line, which a
reader thread picks up with a deadline. Every subprocess has a timeout, and a server still
running at the end is stopped in a `finally` (cli_server.end). curl and openssl are optional:
only the parts that need them skip.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .cli_server import EXIT_TIMEOUT, Server, child_env, command, running_server

COMMAND_TIMEOUT = 20.0
CLIENT_TIMEOUT = 10.0

SERVING_ANY = re.compile(r"serving handler")
FINGERPRINT = re.compile(r"SHA-256 fingerprint (?P<fp>(?:[0-9A-F]{2}:){31}[0-9A-F]{2})")
HELLO_BODY = b"Hello from Python TLS!\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
PASSWORD = "correct horse battery staple"


def _run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        cwd=cwd,
        env=child_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _client_context(ca: trustme.CA | None = None, keylog: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2-only client; it verifies against ca, or verifies nothing when ca is None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca.configure_trust(ctx)
    if keylog is not None:
        ctx.keylog_filename = os.fspath(keylog)
    return ctx


@dataclasses.dataclass(frozen=True)
class Response:
    raw: bytes
    cipher: str
    version: str | None

    @property
    def status_line(self) -> bytes:
        return self.raw.split(b"\r\n", 1)[0]

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


def _read_to_eof(tls: ssl.SSLSocket) -> bytes:
    chunks = []
    while chunk := tls.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _https_get(port: int, ctx: ssl.SSLContext) -> Response:
    """One GET with Connection: close over a blocking socket; the server closes after it."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(REQUEST)
        data = _read_to_eof(tls)
        cipher = tls.cipher()
        assert cipher is not None
        return Response(data, cipher[0], tls.version())


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("trio-tls: error: "), line
    for fragment in fragments:
        assert fragment in line
    return line


# --- certificate files from trustme ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertFiles:
    rsa_cert: Path  # leaf first, then the (empty here) intermediates, PEM
    rsa_key: Path
    rsa_combined: Path  # certificate and key in one PEM file
    rsa_der_cert: Path
    rsa_der_key: Path
    rsa_encrypted_key: Path
    ecdsa_cert: Path
    ecdsa_key: Path
    garbage: Path
    weak_rsa_combined: Path  # an RSA-1024 certificate and its key
    rsa_fingerprint: str
    ecdsa_fingerprint: str


def _write_chain(leaf: trustme.LeafCert, path: Path) -> None:
    leaf.cert_chain_pems[0].write_to_path(path)
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(path, append=True)


@pytest.fixture(scope="module")
def cert_files(
    tmp_path_factory: pytest.TempPathFactory,
    rsa_leaf: trustme.LeafCert,
    ecdsa_leaf: trustme.LeafCert,
) -> CertFiles:
    directory = tmp_path_factory.mktemp("cli-certs")
    files = CertFiles(
        rsa_cert=directory / "rsa.crt",
        rsa_key=directory / "rsa.key",
        rsa_combined=directory / "rsa-combined.pem",
        rsa_der_cert=directory / "rsa-cert.der",
        rsa_der_key=directory / "rsa-key.der",
        rsa_encrypted_key=directory / "rsa-encrypted.key",
        ecdsa_cert=directory / "ecdsa.crt",
        ecdsa_key=directory / "ecdsa.key",
        garbage=directory / "garbage.crt",
        weak_rsa_combined=directory / "weak-rsa.pem",
        rsa_fingerprint=_fingerprint(
            x509.load_pem_x509_certificate(rsa_leaf.cert_chain_pems[0].bytes())
        ),
        ecdsa_fingerprint=_fingerprint(
            x509.load_pem_x509_certificate(ecdsa_leaf.cert_chain_pems[0].bytes())
        ),
    )
    _write_chain(rsa_leaf, files.rsa_cert)
    rsa_leaf.private_key_pem.write_to_path(files.rsa_key)
    _write_chain(ecdsa_leaf, files.ecdsa_cert)
    ecdsa_leaf.private_key_pem.write_to_path(files.ecdsa_key)
    _write_chain(rsa_leaf, files.rsa_combined)
    rsa_leaf.private_key_pem.write_to_path(files.rsa_combined, append=True)

    certificate = x509.load_pem_x509_certificate(rsa_leaf.cert_chain_pems[0].bytes())
    files.rsa_der_cert.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    key = serialization.load_pem_private_key(rsa_leaf.private_key_pem.bytes(), None)
    files.rsa_der_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.rsa_encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    files.garbage.write_bytes(b"this is not a certificate\n\x00\xff\x10garbage")
    _write_weak_rsa(files.weak_rsa_combined)
    # Private, as keys should be: a key others may read is served with a warning on stderr.
    for key_file in (
        files.rsa_key,
        files.rsa_combined,
        files.rsa_der_key,
        files.rsa_encrypted_key,
        files.ecdsa_key,
        files.weak_rsa_combined,
    ):
        key_file.chmod(0o600)
    return files


def _write_weak_rsa(path: Path) -> None:
    _write_self_signed(path, 1024, datetime.timedelta(days=1))


def _write_self_signed(
    path: Path,
    bits: int,
    lifetime: datetime.timedelta,
    starts: datetime.timedelta = datetime.timedelta(days=-400),
) -> None:
    """A self-signed RSA certificate and its key in one file, valid from now + starts until
    now + lifetime."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + starts)
        .not_valid_after(now + lifetime)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


# --- serve with the development certificate ----------------------------------------------------


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """One server on a fresh dev certificate, shared by the read-only client tests."""
    cwd = tmp_path_factory.mktemp("cli-dev-server")
    with running_server(cwd) as server:
        yield server, cwd


def test_serve_makes_dev_certificate(dev_server: tuple[Server, Path]) -> None:
    server, cwd = dev_server
    certs = cwd / "certs"
    cert_path, key_path, der_path = certs / "server.crt", certs / "server.key", certs / "server.der"
    for path in (cert_path, key_path, der_path):
        assert path.is_file(), path
    assert _mode(key_path) == 0o600

    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert x509.load_der_x509_certificate(der_path.read_bytes()) == certificate
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key() == certificate.public_key()

    assert "made a self-signed development certificate in certs/" in server.stdout
    match = FINGERPRINT.search(server.stdout)
    assert match is not None, server.stdout
    assert match["fp"] == _fingerprint(certificate)
    assert server.proc.poll() is None


def test_serve_answers_python_client(dev_server: tuple[Server, Path]) -> None:
    server, _ = dev_server
    response = _https_get(server.port, _client_context())
    assert response.version == "TLSv1.2"
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.body == HELLO_BODY


def test_serve_answers_curl(dev_server: tuple[Server, Path]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server, _ = dev_server
    url = f"https://127.0.0.1:{server.port}/"
    quiet = subprocess.run(
        ["curl", "-sS", "--insecure", "--max-time", "10", url],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == HELLO_BODY

    verbose = subprocess.run(
        ["curl", "-v", "-sS", "--insecure", "--max-time", "10", url],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "HTTP/1.1 200 OK" in verbose.stderr
    assert "TLSv1.3 / TLS_AES_128_GCM_SHA256" in verbose.stderr
    assert verbose.stdout == HELLO_BODY.decode()


def test_serve_answers_openssl_s_client(dev_server: tuple[Server, Path]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    server, _ = dev_server
    result = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2", "-brief"],
        input=b"",
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert "ECDHE-RSA-AES128-GCM-SHA256" in output, output
    assert "TLSv1.2" in output


def test_serve_reuses_existing_dev_certificate(tmp_path: Path) -> None:
    made = _run(tmp_path, "certs")
    assert made.returncode == 0, made.stderr
    certificate = x509.load_pem_x509_certificate((tmp_path / "certs/server.crt").read_bytes())
    (tmp_path / "certs/server.der").unlink()  # a missing DER copy is rebuilt, not a new key

    with running_server(tmp_path) as server:
        assert "made a self-signed" not in server.stdout
        match = FINGERPRINT.search(server.stdout)
        assert match is not None
        assert match["fp"] == _fingerprint(certificate)
        der = (tmp_path / "certs/server.der").read_bytes()
        assert x509.load_der_x509_certificate(der) == certificate
        assert server.stop() == 0


# --- shutdown ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_shuts_down_gracefully(
    tmp_path: Path, cert_files: CertFiles, signum: signal.Signals
) -> None:
    args = ("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key))
    with running_server(tmp_path, *args) as server:
        started = time.monotonic()
        assert server.stop(signum) == 0
        assert time.monotonic() - started < EXIT_TIMEOUT
        assert f"received {signum.name}: shutting down" in server.stderr
        assert "Traceback" not in server.stderr


def test_sigterm_lets_open_connection_finish(
    tmp_path: Path, cert_files: CertFiles, ca: trustme.CA
) -> None:
    args = ("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key))
    with (
        running_server(tmp_path, *args) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as raw,
        _client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_stderr("shutting down: 1 connection(s) open", timeout=EXIT_TIMEOUT)
        with pytest.raises(ConnectionRefusedError):  # the listener is closed
            socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)
        # The connection opened before the signal is still served...
        tls.sendall(REQUEST)
        response = _read_to_eof(tls)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(HELLO_BODY)
        # ...and once it is closed the server exits, well before the 5 s grace period.
        assert server.proc.wait(timeout=4) == 0
        server.finish_output()
        assert "Traceback" not in server.stderr


# --- serve with given certificate files --------------------------------------------------------


@pytest.mark.parametrize(
    ("cert", "key", "fingerprint", "suite"),
    [
        ("rsa_cert", "rsa_key", "rsa_fingerprint", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("ecdsa_cert", "ecdsa_key", "ecdsa_fingerprint", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("rsa_der_cert", "rsa_der_key", "rsa_fingerprint", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("rsa_combined", None, "rsa_fingerprint", "ECDHE-RSA-AES128-GCM-SHA256"),
    ],
    ids=["pem-rsa", "pem-ecdsa", "der", "pem-cert-and-key-in-one-file"],
)
def test_serve_with_certificate_files(
    tmp_path: Path,
    cert_files: CertFiles,
    ca: trustme.CA,
    cert: str,
    key: str | None,
    fingerprint: str,
    suite: str,
) -> None:
    cert_path: Path = getattr(cert_files, cert)
    args = ["--certfile", str(cert_path)]
    if key is not None:
        args += ["--keyfile", str(getattr(cert_files, key))]
    with running_server(tmp_path, *args) as server:
        assert (
            f"certificate {cert_path}: SHA-256 fingerprint {getattr(cert_files, fingerprint)}"
            in (server.stdout)
        )
        response = _https_get(server.port, _client_context(ca))  # verified against the CA
        assert response.cipher == suite
        assert response.body == HELLO_BODY
        assert server.stop() == 0
    assert not (tmp_path / "certs").exists()  # no dev certificate when one is given


def test_serve_with_encrypted_key(tmp_path: Path, cert_files: CertFiles, ca: trustme.CA) -> None:
    args = (
        "--certfile",
        str(cert_files.rsa_cert),
        "--keyfile",
        str(cert_files.rsa_encrypted_key),
        "--keyfile-password-env",
        "TRIO_TLS_TEST_PASSWORD",
    )
    with running_server(tmp_path, *args, env=child_env(TRIO_TLS_TEST_PASSWORD=PASSWORD)) as server:
        assert _https_get(server.port, _client_context(ca)).body == HELLO_BODY
        assert server.stop() == 0

    wrong = _run(tmp_path, "serve", *args, env=child_env(TRIO_TLS_TEST_PASSWORD="not it"))
    _assert_one_line_error(wrong, "wrong password", str(cert_files.rsa_encrypted_key))


def test_groups_ciphers_and_no_tickets_shape_the_handshake(
    tmp_path: Path, cert_files: CertFiles, ca: trustme.CA
) -> None:
    """--groups and --ciphers choose what is negotiated; a suite no certificate can serve is
    warned about and left out; --no-tickets issues none, and sessions still resume by ID."""
    args = [
        *("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key)),
        *("--groups", "secp384r1"),
        *("--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"),
        "--no-tickets",
        *("--log-level", "debug"),
    ]
    with running_server(tmp_path, *args) as server:
        assert (
            "WARNING --ciphers: ECDHE-ECDSA-AES256-GCM-SHA384 needs an ECDSA certificate, and "
            "none is given" in server.stderr
        )
        ctx = _client_context(ca)  # offers x25519 and P-256 first, and every suite
        sessions = []
        for _ in range(2):
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
                ctx.wrap_socket(
                    raw, server_hostname="localhost", session=sessions[-1] if sessions else None
                ) as tls,
            ):
                tls.sendall(REQUEST)
                assert _read_to_eof(tls).endswith(HELLO_BODY)
                assert tls.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"  # type: ignore[index]
                assert tls.session is not None and not tls.session.has_ticket
                assert tls.session_reused == bool(sessions)
                sessions.append(tls.session)
        server.wait_for_stderr(" resumed=True ", 5)
        (full,) = [line for line in server.stderr.splitlines() if " handshake in " in line][:1]
        assert "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 group=secp384r1 " in full, full
        assert server.stop() == 0


# --- user errors: one line on stderr, no traceback, non-zero exit ------------------------------

ENCRYPTED_KEY_ARGS = ["--certfile", "{rsa_cert}", "--keyfile", "{rsa_encrypted_key}"]
ERROR_CASES: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    # id: (arguments with {placeholders} from CertFiles, environment additions, expected fragments)
    "missing-certificate": (["--certfile", "{missing}"], {}, ["not found", "missing.crt"]),
    "certificate-is-a-directory": (["--certfile", "{directory}"], {}, ["is a directory"]),
    "garbage-certificate": (["--certfile", "{garbage}"], {}, ["no certificate found"]),
    "garbage-key": (
        ["--certfile", "{rsa_cert}", "--keyfile", "{garbage}"],
        {},
        ["no private key found"],
    ),
    "missing-key": (
        ["--certfile", "{rsa_cert}", "--keyfile", "{missing}"],
        {},
        ["not found"],
    ),
    # A wrong password: test_serve_with_encrypted_key.
    "encrypted-key-without-password": (
        ENCRYPTED_KEY_ARGS,
        {},
        ["is encrypted; a password is needed", "--keyfile-password-env"],
    ),
    "password-variable-unset": (
        [*ENCRYPTED_KEY_ARGS, "--keyfile-password-env", "TRIO_TLS_TEST_UNSET_VARIABLE"],
        {},
        ["TRIO_TLS_TEST_UNSET_VARIABLE is not set"],
    ),
    "key-does-not-match": (
        ["--certfile", "{rsa_cert}", "--keyfile", "{ecdsa_key}"],
        {},
        ["does not match"],
    ),
    "rsa-key-under-2048-bits": (
        ["--certfile", "{weak_rsa_combined}"],
        {},
        ["weak-rsa.pem", "RSA key has 1024 bits", "at least 2048"],
    ),
    "keyfile-without-certfile": (["--keyfile", "{rsa_key}"], {}, ["--keyfile needs --certfile"]),
    "unknown-handler": (["--handler", "nope"], {}, ["unknown handler 'nope'", "echo", "hello"]),
    "malformed-handler-option": (["--handler-opt", "nope"], {}, ["'nope' is not KEY=VALUE"]),
    "unknown-handler-option": (["--handler-opt", "nope=1"], {}, ["unknown option 'nope'"]),
    "key-log-file-unwritable": (
        ["--key-log-file", "{missing}/keys.log"],
        {},
        ["cannot open key log file"],
    ),
    "ticket-key-file-unreadable": (
        ["--ticket-key-file", "{garbage}"],
        {},
        ["cannot read ticket key file", "garbage.crt"],
    ),
    "external-rotation-without-file": (
        ["--ticket-key-rotation", "external"],
        {},
        ["--ticket-key-rotation external needs --ticket-key-file"],
    ),
    "unknown-cipher": (
        ["--ciphers", "RC4-MD5"],
        {},
        ["--ciphers: unknown or unsupported cipher suite", "ECDHE-RSA-AES128-GCM-SHA256"],
    ),
    "unknown-group": (["--groups", "x448"], {}, ["--groups: unknown group 'x448'", "x25519"]),
    "unknown-tls13-cipher": (
        ["--ciphers", "TLS_AES_128_CCM_SHA256"],
        {},
        ["unknown or unsupported cipher suite 'TLS_AES_128_CCM_SHA256'", "TLS_AES_256_GCM_SHA384"],
    ),
    "unknown-version": (
        ["--tls-versions", "1.1"],
        {},
        ["--tls-versions: version '1.1' is not served", "give 1.2, 1.3 or 1.2,1.3"],
    ),
    "empty-versions": (["--tls-versions", ","], {}, ["--tls-versions names no version"]),
    "tls13-suite-with-only-tls12": (
        ["--tls-versions", "1.2", "--ciphers", "TLS_AES_128_GCM_SHA256"],
        {},
        ["--ciphers TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite", "add 1.3 to --tls-versions"],
    ),
    "tls12-suite-with-only-tls13": (
        [
            "--tls-versions",
            "1.3",
            "--ciphers",
            "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        ],
        {},
        ["--ciphers ECDHE-RSA-AES128-GCM-SHA256 is a TLS 1.2 suite", "serves only 1.3"],
    ),
    "hybrid-group-with-only-tls12": (
        ["--tls-versions", "1.2", "--groups", "x25519mlkem768"],
        {},
        ["--groups X25519MLKEM768 is a TLS 1.3 group", "add 1.3 to --tls-versions"],
    ),
    "only-the-hybrid-group-with-tls12": (
        ["--tls-versions", "1.3,1.2", "--groups", "X25519MLKEM768"],
        {},
        ["leaves TLS 1.2 no key exchange", "add x25519", "--tls-versions 1.3"],
    ),
    "empty-ciphers": (["--ciphers", ""], {}, ["--ciphers names no cipher suite"]),
    "empty-groups": (["--groups", ":"], {}, ["--groups names no group"]),
    "empty-alpn": (["--alpn", ""], {}, ["--alpn names no protocol"]),
    "non-ascii-alpn": (["--alpn", "hé"], {}, ["--alpn 'hé'", "printable ASCII"]),
    "alpn-name-over-255": (["--alpn", "x" * 256], {}, ["--alpn 'xxx", "1 to 255"]),
    "alpn-the-handler-cannot-speak": (
        ["--alpn", "h2"],
        {},
        ["--alpn h2: the handler speaks only http/1.1"],
    ),
    "only-ecdsa-suites-for-an-rsa-certificate": (
        ["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        {},
        ["--ciphers: every suite given needs an ECDSA certificate", "are RSA"],
    ),
    "negative-session-cache": (["--session-cache-size", "-1"], {}, ["--session-cache-size -1"]),
    "client-auth-without-client-ca": (
        ["--client-auth", "optional"],
        {},
        ["--client-auth optional needs --client-ca FILE"],
    ),
    "client-ca-missing": (["--client-ca", "{missing}"], {}, ["--client-ca", "No such file"]),
    "client-ca-not-pem": (["--client-ca", "{garbage}"], {}, ["--client-ca", "no PEM certificate"]),
    "unknown-handler-option-lists-the-known": (
        ["--handler-opt", "colour=red"],
        {},
        ["unknown option 'colour'", "body, max-requests, request-timeout"],
    ),
    "proxy-alpn-route-not-offered": (
        ["--handler", "proxy", "--handler-opt", "alpn-route=h2=127.0.0.1:9"],
        {},
        ["proxy: alpn-route=h2=127.0.0.1:9 could never match", "add h2 to --alpn"],
    ),
    "proxy-sni-route-no-certificate-is-for": (
        ["--handler", "proxy", "--strict-sni", "--handler-opt", "sni-route=b.example=127.0.0.1:9"],
        {},
        ["proxy: sni-route=b.example=127.0.0.1:9 could never match", "--strict-sni"],
    ),
    "proxy-sni-route-shadowed": (
        [
            "--handler",
            "proxy",
            "--handler-opt",
            "sni-route=a.example=127.0.0.1:8",
            "--handler-opt",
            "sni-route=A.example=127.0.0.1:9",
        ],
        {},
        ["sni-route='A.example=127.0.0.1:9' could never match: an earlier sni-route"],
    ),
    "fewer-keyfiles-than-certfiles": (
        ["--certfile", "{rsa_cert}", "--certfile", "{ecdsa_cert}", "--keyfile", "{rsa_key}"],
        {},
        ["give one --keyfile per --certfile, or none"],
    ),
    "client-auth-none-with-client-ca": (
        ["--client-ca", "{rsa_cert}", "--client-auth", "none"],
        {},
        ["--client-auth none with --client-ca: leave one of them out"],
    ),
    "workers-0": (["--workers", "0"], {}, ["--workers must be at least 1"]),
    "workers-on-two-hosts": (
        ["--workers", "2", "--host", "127.0.0.1", "--host", "::1"],
        {},
        ["--workers serves one --host; run one server per address instead"],
    ),
}


@pytest.mark.parametrize(("args", "env", "fragments"), ERROR_CASES.values(), ids=ERROR_CASES)
def test_serve_user_error(
    tmp_path: Path,
    cert_files: CertFiles,
    args: list[str],
    env: dict[str, str],
    fragments: list[str],
) -> None:
    paths = {field.name: getattr(cert_files, field.name) for field in dataclasses.fields(CertFiles)}
    paths |= {"missing": tmp_path / "missing.crt", "directory": tmp_path}
    argv = [arg.format_map(paths) for arg in args]
    if "--certfile" not in argv and "--keyfile" not in argv:
        # Handler and key log mistakes need a certificate that loads, without making one.
        argv += ["--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key)]
    result = _run(tmp_path, "serve", "--port", "0", *argv, env=child_env(**env))
    _assert_one_line_error(result, *fragments)
    assert not (tmp_path / "certs").exists()


@pytest.mark.parametrize("workers", ["1", "2"], ids=["single", "workers"])
def test_serve_port_in_use(tmp_path: Path, cert_files: CertFiles, workers: str) -> None:
    """Whether the server binds (one process) or the supervisor does (--workers)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key))
        result = _run(tmp_path, "serve", "--port", str(port), "--workers", workers, *args)
    _assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "in use")
    assert not SERVING_ANY.search(result.stdout)


def test_a_later_host_that_cannot_listen_is_one_error(
    tmp_path: Path, cert_files: CertFiles
) -> None:
    """The second --host fails after the first listens (the same address twice, on the port
    the first one picked): one line naming it, not a traceback from inside trio."""
    args = ("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key))
    result = _run(
        tmp_path, "serve", "--port", "0", "--host", "127.0.0.1", "--host", "127.0.0.1", *args
    )
    message = _assert_one_line_error(result, "cannot listen on 127.0.0.1:", "in use")
    assert not message.endswith("127.0.0.1:0: Address already in use"), message
    assert not SERVING_ANY.search(result.stdout)


ARGUMENT_ERRORS = {
    # getaddrinfo would quietly take 99999 modulo 65536 and serve on port 34463.
    "port-out-of-range": (["--port", "99999"], "port 99999 is out of range 0-65535"),
    "port-by-name": (["--port", "https"], "invalid port 'https'"),
    "max-connections-text": (["--max-connections", "many"], "invalid number 'many'"),
    "max-connections-0": (["--max-connections", "0"], "--max-connections: 0 is not 1 or more"),
    "max-connections-negative": (["--max-connections", "-5"], "-5 is not 1 or more"),
    "handshake-timeout-0": (["--handshake-timeout", "0"], "0 is not a positive number"),
    "handshake-timeout-negative": (["--handshake-timeout=-1"], "-1 is not a positive number"),
    "handshake-timeout-nan": (["--handshake-timeout", "nan"], "nan is not a positive number"),
    "idle-timeout-inf": (["--idle-timeout", "inf"], "inf is not a positive number"),
    "write-timeout-text": (["--write-timeout", "soon"], "invalid number of seconds 'soon'"),
    "record-timeout-0": (["--record-timeout", "0"], "0 is not a positive number"),
    "per-ip-negative": (["--max-connections-per-ip=-1"], "-1 is not 0 or more"),
    "unknown-option": (["--colour", "red"], "unrecognized arguments: --colour red"),
    "crypto-threads-negative": (["--crypto-threads=-1"], "-1 is not between 0 and 64"),
    "crypto-threads-too-many": (["--crypto-threads", "65"], "65 is not between 0 and 64"),
}


@pytest.mark.parametrize(("args", "message"), ARGUMENT_ERRORS.values(), ids=ARGUMENT_ERRORS)
def test_serve_argument_errors_are_one_line_and_status_1(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(tmp_path, "serve", *args)
    assert result.returncode == 1  # as for every other mistake (README)
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "--help" in result.stderr
    assert not (tmp_path / "certs").exists()


DAYS = datetime.timedelta(days=1)


@pytest.mark.parametrize(
    ("starts", "lifetime", "warning", "advice"),
    [
        (-400 * DAYS, -2 * DAYS, "expired on", "renew it"),
        (-400 * DAYS, 10 * DAYS, "expires on", "renew it"),
        (2 * DAYS, 30 * DAYS, "is not valid until", "check this machine's clock"),
    ],
    ids=["expired", "expiring-in-10-days", "not-yet-valid"],
)
def test_a_certificate_near_or_past_its_end_is_warned_about(
    tmp_path: Path,
    starts: datetime.timedelta,
    lifetime: datetime.timedelta,
    warning: str,
    advice: str,
) -> None:
    combined = tmp_path / "server.pem"
    _write_self_signed(combined, 2048, lifetime, starts)
    combined.chmod(0o600)
    with running_server(tmp_path, "--certfile", str(combined)) as server:
        server.wait_for_stderr(f"certificate {combined} {warning}", 5)
        assert advice in server.stderr


def test_version(tmp_path: Path) -> None:
    result = _run(tmp_path, "--version")
    assert result.returncode == 0
    assert re.fullmatch(r"trio-tls \d+\.\d+\.\d+\n", result.stdout), result.stdout


def test_serve_help_shows_defaults(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", "--help")
    text = " ".join(result.stdout.split())
    for default in ("(default: 4433)", "(default: hello)", "(default: 60.0)", "(default: 1000)"):
        assert default in text, result.stdout


def test_dual_stack_and_ipv6_url(tmp_path: Path, cert_files: CertFiles, ca: trustme.CA) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    args = ("--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key))
    with running_server(tmp_path, "--host", "127.0.0.1", "--host", "::1", *args) as server:
        assert re.search(r"on https://127\.0\.0\.1:\d+/ and https://\[::1\]:\d+/", server.stdout)
        for family, address in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
            with socket.socket(family) as raw:
                raw.settimeout(CLIENT_TIMEOUT)
                raw.connect((address, server.port))
                with _client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(REQUEST)
                    assert _read_to_eof(tls).endswith(HELLO_BODY)


# --- certs and handlers ------------------------------------------------------------------------


def test_certs_ecdsa(tmp_path: Path) -> None:
    result = _run(tmp_path, "certs", "--out", "dev", "--key-type", "ecdsa")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "dev"
    cert_path, key_path, der_path = out / "server.crt", out / "server.key", out / "server.der"
    assert _mode(key_path) == 0o600
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert x509.load_der_x509_certificate(der_path.read_bytes()) == certificate
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key() == certificate.public_key()
    match = FINGERPRINT.search(result.stdout)
    assert match is not None, result.stdout
    assert match["fp"] == _fingerprint(certificate)
    assert "0600" in result.stdout


def test_certs_default_is_rsa_2048_in_certs(tmp_path: Path) -> None:
    result = _run(tmp_path, "certs")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "certs"
    assert {path.name for path in out.iterdir()} >= {"server.crt", "server.key", "server.der"}
    assert _mode(out / "server.key") == 0o600
    key = serialization.load_pem_private_key((out / "server.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    certificate = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert key.public_key() == certificate.public_key()


def test_certs_never_replaces_files_without_force(tmp_path: Path) -> None:
    assert _run(tmp_path, "certs", "--key-type", "ecdsa").returncode == 0
    key_path = (tmp_path / "certs" / "server.key").resolve()
    key = key_path.read_bytes()

    again = _run(tmp_path, "certs", "--key-type", "ecdsa")
    assert again.returncode == 1
    _assert_one_line_error(again, f"{key_path} exists; use --force to replace it")
    assert key_path.read_bytes() == key

    forced = _run(tmp_path, "certs", "--key-type", "ecdsa", "--force")
    assert forced.returncode == 0, forced.stderr
    assert key_path.read_bytes() != key
    assert _mode(key_path) == 0o600
    certificate = x509.load_pem_x509_certificate((key_path.parent / "server.crt").read_bytes())
    new_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert new_key.public_key() == certificate.public_key()


def test_certs_names_days_and_absolute_paths(tmp_path: Path) -> None:
    names = ["--name", "example.test", "--name", "10.0.0.7", "--name", "::1"]
    result = _run(tmp_path, "certs", "--out", "dev", "--key-type", "ecdsa", *names, "--days", "30")
    assert result.returncode == 0, result.stderr
    out = (tmp_path / "dev").resolve()
    lines = result.stdout.splitlines()
    assert f"wrote {out / 'server.key'} (private key, mode 0600)" in lines
    pair = f"wrote {out / 'server.crt'} (certificate) and {out / 'server.der'} (the same, DER)"
    assert pair in lines
    assert lines[-1] == f"trust it: curl --cacert {out / 'server.crt'} https://example.test:4433/"
    certificate = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("::1"),
    ]
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert validity == datetime.timedelta(days=30)


def test_certs_prints_the_curl_line_that_trusts_it(tmp_path: Path) -> None:
    made = _run(tmp_path, "certs")
    assert made.returncode == 0, made.stderr
    cert_path = (tmp_path / "certs" / "server.crt").resolve()
    prefix, _, line = made.stdout.splitlines()[-1].partition("curl ")
    assert prefix == "trust it: "
    argv = shlex.split("curl " + line)
    assert argv == ["curl", "--cacert", str(cert_path), "https://localhost:4433/"]
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    with running_server(tmp_path) as server:  # serves the certs/ just made
        url = argv[-1].replace(":4433/", f":{server.port}/")
        result = subprocess.run(
            [*argv[:-1], "-sS", "--max-time", "10", url],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == HELLO_BODY


def test_certs_into_a_directory_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / "certs"
    result = _run(tmp_path, "certs", "--out", str(out))
    assert result.returncode == 1
    _assert_one_line_error(result, f"cannot write to {out}: Not a directory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "a b"], "--name 'a b': not an IP address, and 'a b' is not a DNS label"),
        (["--name", "localhost", "--name", "bücher.de"], "--name 'bücher.de': "),
        (["--name", ""], "--name '': "),
        (["--days", "0"], "--days must be from 1 to 825"),
        (["--days", "826"], "not 826"),
    ],
    ids=["space", "non-ascii", "empty", "days-0", "days-826"],
)
def test_certs_refuses_bad_names_and_days(tmp_path: Path, args: list[str], message: str) -> None:
    result = _run(tmp_path, "certs", *args)
    assert result.returncode == 1
    _assert_one_line_error(result, message)
    assert not (tmp_path / "certs").exists()


def test_handlers_lists_builtins(tmp_path: Path) -> None:
    result = _run(tmp_path, "handlers")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    for name in ("echo", "hello"):
        assert re.fullmatch(
            rf"{name}\s+trio_tls_handlers\.{name}:make_handler\s+\(trio-tls \S+\)", rows[name]
        ), rows[name]


# --- the NSS key log ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_key_log_matches_client(tmp_path: Path, cert_files: CertFiles, how: str) -> None:
    server_log, client_log = tmp_path / "server.keys", tmp_path / "client.keys"
    args = ["--certfile", str(cert_files.rsa_cert), "--keyfile", str(cert_files.rsa_key)]
    if how == "option":
        args += ["--key-log-file", "server.keys"]  # relative to the server's directory
        server_env = child_env()
    else:
        server_env = child_env(SSLKEYLOGFILE="server.keys")
    with running_server(tmp_path, *args, env=server_env) as server:
        response = _https_get(server.port, _client_context(keylog=client_log))
        assert response.body == HELLO_BODY
        assert server.stop() == 0

    assert _mode(server_log) == 0o600
    server_lines = server_log.read_text().splitlines()
    assert len(server_lines) == 1, server_lines
    assert re.fullmatch(r"CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}", server_lines[0])
    assert server_lines[0] in client_log.read_text().splitlines()
    output = server.stdout + server.stderr
    assert "writing TLS secrets to server.keys" in output
