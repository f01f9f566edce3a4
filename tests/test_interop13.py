"""TLS 1.3 from a real `trio-tls serve --tls-versions 1.2,1.3` to the independent clients on this
machine, over sockets: curl, `openssl s_client`, GnuTLS's gnutls-cli and Python's `ssl`.

Every test reads both ends of the same connection: the version, suite, group, signature or
resumption the client says it got, and the server's DEBUG handshake line (and `--trace`) for
that connection, so a client quietly falling back to TLS 1.2 fails here.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import trustme

from trio_tls.engine.crypto.suites import TLS13_SUITES

from .cli_server import Server, running_server
from .client_certs import ALICE, BOB_RSA, CLIENT_CA, ClientCert
from .conftest import issue_p384
from .test_gnutls import GNUTLS_CLI, HELLO_REQUEST, Seen, gnutls_cli, log_mark, server_saw
from .test_interop import CURL, OPENSSL, leaf_args, s_client, write_pair

pytestmark = pytest.mark.interop

T = TypeVar("T")
BOTH_VERSIONS = ("--tls-versions", "1.2,1.3")
HELLO_BODY = "Hello from Python TLS!\n"
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
needs_gnutls = pytest.mark.skipif(GNUTLS_CLI is None, reason="gnutls-cli is not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop13")


@pytest.fixture(scope="module")
def ca_file(workdir: Path, ca: trustme.CA) -> Path:
    path = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def server_keys(workdir: Path) -> Path:
    return workdir / "server.keys"


@pytest.fixture(scope="module")
def server(
    workdir: Path,
    ca: trustme.CA,
    rsa_leaf: trustme.LeafCert,
    ecdsa_leaf: trustme.LeafCert,
    server_keys: Path,
) -> Iterator[Server]:
    """Both versions; RSA, ECDSA P-256 and P-384 certificates; every handshake logged, traced
    and its secrets in a key log."""
    args = [
        *leaf_args(rsa_leaf, workdir, "rsa"),
        *leaf_args(ecdsa_leaf, workdir, "ecdsa"),
        *write_pair(issue_p384(ca), workdir, "p384"),
        *BOTH_VERSIONS,
        *("--log-level", "debug", "--trace", "--key-log-file", str(server_keys)),
    ]
    with running_server(workdir, *args) as running:
        yield running


def observed(server: Server, client: Callable[[], T], count: int = 1) -> tuple[T, list[Seen]]:
    """Run a client; what it returned and the server's record of its `count` connections."""
    mark = log_mark(server)
    result = client()
    return result, server_saw(server, mark, count)


def handshake13(seen: Seen) -> dict[str, str]:
    """The server's handshake line for a connection, which must say TLS 1.3."""
    assert seen.handshake is not None, seen.lines
    assert seen.handshake["version"] == "TLSv1.3", seen.lines
    return seen.handshake


# -- curl -----------------------------------------------------------------------------------------


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "-sSv", "--insecure", *args, url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@needs_curl
def test_curl_gets_tls13_by_default(server: Server) -> None:
    result, (seen,) = observed(server, lambda: curl(f"https://localhost:{server.port}/"))
    assert result.stdout == HELLO_BODY, result
    assert "SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256" in result.stderr, result.stderr
    handshake = handshake13(seen)
    assert (handshake["suite"], handshake["alpn"]) == ("TLS_AES_128_GCM_SHA256", "http/1.1")
    assert any(f'{seen.peer} "GET / HTTP/1.1" 200' in line for line in seen.lines), seen.lines


@pytest.fixture(scope="module")
def mtls(workdir: Path, rsa_leaf: trustme.LeafCert) -> Iterator[Server]:
    """Both versions, a client certificate from CLIENT_CA required."""
    CLIENT_CA.cert_pem.write_to_path(workdir / "client-ca.pem")
    args = [*leaf_args(rsa_leaf, workdir, "server"), "--client-ca", str(workdir / "client-ca.pem")]
    with running_server(workdir, *args, *BOTH_VERSIONS, "--client-auth", "required") as running:
        yield running


@needs_curl
@pytest.mark.parametrize(("who", "name"), [(BOB_RSA, "bob"), (ALICE, "alice")], ids=["rsa", "ec"])
def test_curl_with_a_client_certificate_over_tls13(
    mtls: Server, workdir: Path, who: ClientCert, name: str
) -> None:
    cert, key = who.write(workdir, name)
    result = curl(f"https://localhost:{mtls.port}/", "--cert", cert, "--key", key)
    assert "SSL connection using TLSv1.3 / TLS_AES_128_GCM_SHA256" in result.stderr, result.stderr
    assert result.stdout == f"{HELLO_BODY}Client certificate: CN={name}\n", result
    # The connection log names the client as it does in TLS 1.2, on a TLS 1.3 suite's line.
    mtls.wait_for_stderr(f"suite=TLS_AES_128_GCM_SHA256 resumed=no client='CN={name}'", 5)


@needs_curl
def test_curl_without_a_client_certificate_is_refused_over_tls13(mtls: Server) -> None:
    result = curl(f"https://localhost:{mtls.port}/")
    assert "SSL connection using TLSv1.3" in result.stderr, result.stderr
    assert result.returncode != 0, result
    # RFC 8446 §4.4.2.4: a required certificate that is missing is certificate_required.
    assert "alert certificate required" in result.stderr, result.stderr
    assert HELLO_BODY not in result.stdout


# -- openssl s_client -----------------------------------------------------------------------------


def s_client13(server: Server, *args: str, request: bytes = b"") -> tuple[str, Seen]:
    """One `openssl s_client -tls1_3` connection and the server's record of it."""
    output, (seen,) = observed(
        server, lambda: s_client(server.port, *args, version="-tls1_3", request=request)
    )
    return output, seen


@needs_openssl
@pytest.mark.parametrize("suite", [suite.name for suite in TLS13_SUITES])
def test_s_client_with_each_suite(server: Server, suite: str) -> None:
    output, seen = s_client13(server, "-ciphersuites", suite)
    assert f"New, TLSv1.3, Cipher is {suite}\n" in output, output
    assert handshake13(seen)["suite"] == suite


@needs_openssl
@pytest.mark.parametrize(
    ("openssl_group", "group", "temp_key"),
    [
        ("X25519", "x25519", "X25519, 253 bits"),
        ("P-256", "secp256r1", "ECDH, prime256v1, 256 bits"),
        ("P-384", "secp384r1", "ECDH, secp384r1, 384 bits"),
    ],
)
def test_s_client_with_each_group(
    server: Server, openssl_group: str, group: str, temp_key: str
) -> None:
    output, seen = s_client13(server, "-groups", openssl_group, "-msg")
    assert "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256\n" in output, output
    assert f"Server Temp Key: {temp_key}\n" in output, output
    assert output.count(", ClientHello\n") == 1, output  # its share was taken: no retry
    assert handshake13(seen)["group"] == group


@needs_openssl
@pytest.mark.parametrize(
    ("sigalgs", "expected"),
    [
        ("rsa_pss_rsae_sha256", ("RSA-PSS", "SHA256")),
        ("rsa_pss_rsae_sha384", ("RSA-PSS", "SHA384")),
        ("rsa_pss_rsae_sha512", ("RSA-PSS", "SHA512")),
        ("ecdsa_secp256r1_sha256", ("ECDSA", "SHA256")),
        ("ecdsa_secp384r1_sha384", ("ECDSA", "SHA384")),
    ],
)
def test_s_client_signature_schemes(
    server: Server, sigalgs: str, expected: tuple[str, str]
) -> None:
    # In TLS 1.3 an ECDSA scheme names its curve: P-384's only with the P-384 certificate.
    output, seen = s_client13(server, "-sigalgs", sigalgs)
    assert "New, TLSv1.3" in output, output
    signature_type, digest = expected
    assert f"Peer signature type: {signature_type}\n" in output, output
    assert f"Peer signing digest: {digest}\n" in output, output
    assert handshake13(seen)["signature"] == sigalgs


@needs_openssl
def test_s_client_offering_only_pkcs1_is_refused(server: Server) -> None:
    # RFC 8446 §4.4.3: RSASSA-PKCS1-v1_5 never signs a TLS 1.3 CertificateVerify.
    output, seen = s_client13(server, "-sigalgs", "rsa_pkcs1_sha256")
    assert "alert handshake failure" in output, output
    assert seen.handshake is None
    assert "handshake_failure" in seen.outcome, seen.lines


@needs_openssl
def test_s_client_gets_a_hello_retry_request(
    workdir: Path, rsa_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    # s_client sends a share for its first group only: P-384, which this server does not
    # serve; X25519, which it does, is listed second, so the server must ask for it.
    args = [*leaf_args(rsa_leaf, tmp_path, "rsa"), *BOTH_VERSIONS, "--groups", "x25519"]
    with running_server(tmp_path, *args, "--log-level", "debug", "--trace") as running:
        output, seen = s_client13(running, "-groups", "P-384:X25519", "-msg")
    assert "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256\n" in output, output
    assert "Server Temp Key: X25519, 253 bits\n" in output, output
    assert output.count(", ClientHello\n") == 2, output
    assert seen.matching("why    key share: HelloRetryRequest for x25519"), seen.trace
    assert handshake13(seen)["group"] == "x25519"


@needs_openssl
def test_s_client_resumes_with_a_ticket(server: Server, tmp_path: Path) -> None:
    session = str(tmp_path / "session.pem")
    # A request keeps s_client reading until the server closes, so it gets the ticket, which
    # a TLS 1.3 server sends after the handshake.
    request = b"GET / HTTP/1.0\r\n\r\n"
    first, seen = s_client13(server, "-sess_out", session, request=request)
    assert "New, TLSv1.3" in first, first
    assert HELLO_BODY in first, first
    assert handshake13(seen)["resumed"] == "False"
    again, seen = s_client13(server, "-sess_in", session, request=request)
    assert "Reused, TLSv1.3" in again, again
    assert HELLO_BODY in again, again
    resumed = handshake13(seen)
    assert (resumed["resumed"], resumed["signature"]) == ("True", "-")
    assert seen.matching("why    resumption: PSK with (EC)DHE"), seen.trace


def key_log_lines(path: Path, client_random: str | None = None) -> set[str]:
    """A key log's lines (comments left out), those for one client random if given."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {line for line in lines if client_random is None or line.split()[1] == client_random}


@needs_openssl
def test_s_client_key_log_equals_the_servers(
    server: Server, server_keys: Path, tmp_path: Path
) -> None:
    client_keys = tmp_path / "client.keys"
    output, _ = s_client13(server, "-keylogfile", str(client_keys))
    assert "New, TLSv1.3" in output, output
    client = key_log_lines(client_keys)
    labels = {line.split()[0] for line in client}
    assert labels == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    }
    (client_random,) = {line.split()[1] for line in client}
    # The server wrote its lines during the handshake, before its connection line was logged.
    assert key_log_lines(server_keys, client_random) == client


# -- gnutls-cli -----------------------------------------------------------------------------------

TLS13_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.3"


@needs_gnutls
def test_gnutls_cli_gets_tls13(server: Server, ca_file: Path) -> None:
    run, (seen,) = observed(
        server,
        lambda: gnutls_cli(
            server.port,
            ca_file,
            "--priority",
            TLS13_ONLY,
            "--alpn",
            "http/1.1",
            request=HELLO_REQUEST,
        ),
    )
    assert "HTTP/1.1 200 OK" in run.output, run.output
    assert run.values("Status") == ["The certificate is trusted."]
    (description,) = run.values("Description")
    assert description.startswith("(TLS1.3-X.509)-(ECDHE-X25519)-"), description
    assert description.endswith("-(AES-128-GCM)"), description
    handshake = handshake13(seen)
    assert (handshake["suite"], handshake["group"]) == ("TLS_AES_128_GCM_SHA256", "x25519")


@needs_gnutls
def test_gnutls_cli_resumes(server: Server, ca_file: Path) -> None:
    run, (first, second) = observed(
        server, lambda: gnutls_cli(server.port, ca_file, "--priority", TLS13_ONLY, "--resume"), 2
    )
    assert run.returncode == 0, run.output
    assert [d.split(")-", 1)[0] for d in run.values("Description")] == ["(TLS1.3-X.509"] * 2
    assert "This is a resumed session" in run.output, run.output
    assert handshake13(first)["resumed"] == "False"
    # psk_dhe_ke: a fresh x25519 exchange, and no certificate or signature (RFC 8446 §2.2).
    resumed = handshake13(second)
    assert (resumed["resumed"], resumed["group"], resumed["signature"]) == ("True", "x25519", "-")


# -- Python's ssl ---------------------------------------------------------------------------------


def test_python_ssl_over_a_socket(server: Server, ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3

    def fetch() -> tuple[str | None, tuple[str, str, int] | None, bytes]:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(HELLO_REQUEST)
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
            return tls.version(), tls.cipher(), response

    (version, cipher, response), (seen,) = observed(server, fetch)
    assert cipher is not None
    assert (version, cipher[0]) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
    assert response.endswith(HELLO_BODY.encode()), response
    assert handshake13(seen)["suite"] == cipher[0]
