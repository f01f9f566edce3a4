"""The real command against real clients on sockets: openssl s_client and curl.

What the in-memory OpenSSL tests cannot reach: signature schemes chosen through `-sigalgs`,
session resumption with `-reconnect` / `-sess_out` / `-sess_in` (also across two server
processes sharing a ticket key file), the fallback SCSV, SNI and ALPN as the tools see them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from trio_tls.engine.config import CertifiedKey

from .cli_server import Server, running_server
from .conftest import issue_p384

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


def write_pair(certified: CertifiedKey, directory: Path, name: str) -> list[str]:
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    cert.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certified.chain))
    key.write_bytes(certified.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return ["--certfile", str(cert), "--keyfile", str(key)]


def leaf_args(leaf: trustme.LeafCert, directory: Path, name: str) -> list[str]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return ["--certfile", str(cert), "--keyfile", str(key)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="module")
def server(
    workdir: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert, ecdsa_leaf: trustme.LeafCert
) -> Iterator[Server]:
    """RSA, ECDSA P-256 and ECDSA P-384 certificates for localhost; tickets and IDs on."""
    args = [
        *leaf_args(rsa_leaf, workdir, "rsa"),
        *leaf_args(ecdsa_leaf, workdir, "ecdsa"),
        *write_pair(issue_p384(ca), workdir, "p384"),
    ]
    with running_server(workdir, *args) as running:
        yield running


def s_client(port: int, *args: str, version: str = "-tls1_2", request: bytes = b"") -> str:
    """s_client's output; with a `request` it reads until the server closes (-ign_eof), so
    what the server sends after the handshake (a TLS 1.3 ticket, say) is read too."""
    assert OPENSSL is not None
    stay = ["-ign_eof"] if request else []
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", version, *stay, *args],
        input=request,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return (result.stdout + result.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("sigalgs", "cipher", "expected"),
    [
        ("rsa_pss_rsae_sha256", "ECDHE-RSA-AES128-GCM-SHA256", ("RSA-PSS", "SHA256")),
        ("rsa_pss_rsae_sha384", "ECDHE-RSA-AES128-GCM-SHA256", ("RSA-PSS", "SHA384")),
        ("rsa_pss_rsae_sha512", "ECDHE-RSA-AES128-GCM-SHA256", ("RSA-PSS", "SHA512")),
        ("RSA+SHA256", "ECDHE-RSA-AES128-GCM-SHA256", ("RSA", "SHA256")),
        ("RSA+SHA384", "ECDHE-RSA-AES256-GCM-SHA384", ("RSA", "SHA384")),
        ("RSA+SHA512", "ECDHE-RSA-CHACHA20-POLY1305", ("RSA", "SHA512")),
        ("ECDSA+SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", ("ECDSA", "SHA256")),
        ("ECDSA+SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", ("ECDSA", "SHA384")),
        # A P-256 key signing with SHA-512: the hash is not bound to the curve in TLS 1.2.
        ("ECDSA+SHA512", "ECDHE-ECDSA-AES128-GCM-SHA256", ("ECDSA", "SHA512")),
    ],
)
def test_signature_schemes(
    server: Server, sigalgs: str, cipher: str, expected: tuple[str, str]
) -> None:
    output = s_client(server.port, "-sigalgs", sigalgs, "-cipher", cipher)
    assert f"Cipher is {cipher}" in output, output
    signature_type, digest = expected
    assert f"Peer signature type: {signature_type}\n" in output, output
    assert f"Peer signing digest: {digest}\n" in output, output


def test_ecdsa_p384_certificate_for_a_p384_only_client(server: Server) -> None:
    output = s_client(server.port, "-groups", "P-384", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "Server Temp Key: ECDH, secp384r1, 384 bits" in output, output
    assert "Peer signing digest: SHA384" in output


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "session-id"])
def test_reconnect_resumes(server: Server, tickets: bool) -> None:
    output = s_client(server.port, "-reconnect", *([] if tickets else ["-no_ticket"]))
    assert output.count("New, TLSv1.2") == 1, output
    assert output.count("Reused, TLSv1.2") == 5, output


def test_ticket_resumes_on_another_process_sharing_the_key_file(
    workdir: Path, rsa_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    cert_args = leaf_args(rsa_leaf, tmp_path, "rsa")
    shared = ["--ticket-key-file", str(tmp_path / "tickets.keys"), "--session-cache-size", "0"]
    session = tmp_path / "session.pem"
    with running_server(tmp_path, *cert_args, *shared) as first:
        output = s_client(first.port, "-sess_out", str(session))
        assert "New, TLSv1.2" in output
    assert (tmp_path / "tickets.keys").stat().st_mode & 0o777 == 0o600
    with running_server(tmp_path, *cert_args, *shared) as second:
        assert "Reused, TLSv1.2" in s_client(second.port, "-sess_in", str(session))
    with running_server(tmp_path, *cert_args, "--session-cache-size", "0") as stranger:
        assert "New, TLSv1.2" in s_client(stranger.port, "-sess_in", str(session))


def test_fallback_scsv(server: Server) -> None:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_1", "-fallback_scsv"],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    # RFC 7507 §3: TLS 1.1 is unsupported, which comes before inappropriate_fallback.
    assert b"alert protocol version" in result.stdout + result.stderr
    # The same SCSV at TLS 1.2 is a fallback now that TLS 1.3 is served (RFC 7507 §3).
    assert "alert inappropriate fallback" in s_client(server.port, "-fallback_scsv")


def test_sni_selects_the_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    a = ca.issue_cert("a.example", common_name="a.example", key_type=trustme.KeyType.RSA)
    b = ca.issue_cert("*.b.example", common_name="b", key_type=trustme.KeyType.RSA)
    args = [*leaf_args(a, tmp_path, "a"), *leaf_args(b, tmp_path, "b")]
    with running_server(tmp_path, *args) as running:
        output = s_client(running.port, "-servername", "a.example")
        assert "CN = a.example\n" in output, output
        output = s_client(running.port, "-servername", "www.b.example")
        assert "CN = b\n" in output, output


def test_alpn(server: Server, workdir: Path, rsa_leaf: trustme.LeafCert, tmp_path: Path) -> None:
    assert "ALPN protocol: http/1.1" in s_client(server.port, "-alpn", "h2,http/1.1")
    # echo declares no protocol, so it may be offered as any; hello would refuse --alpn h2.
    args = (*leaf_args(rsa_leaf, tmp_path, "rsa"), "--handler", "echo", "--alpn", "h2")
    with running_server(tmp_path, *args) as h2:
        output = s_client(h2.port, "-alpn", "http/1.1")
        assert "alert no application protocol" in output, output


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_reports_alpn_accepted(server: Server) -> None:
    assert CURL is not None
    result = subprocess.run(
        [CURL, "-sv", "--insecure", f"https://localhost:{server.port}/"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == b"Hello from Python TLS!\n"
    assert b"ALPN: server accepted http/1.1" in result.stderr, result.stderr


def test_renegotiation_gets_a_warning(server: Server) -> None:
    # s_client's "R" command renegotiates; we answer with a warning and ignore the hello.
    # OpenSSL as a client then gives up itself (handshake_failure): that is its choice.
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2", "-msg"],
        input=b"R\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert "RENEGOTIATING" in output, output
    assert "<<< TLS 1.2, Alert [length 0002], warning no_renegotiation" in output, output


@pytest.mark.parametrize(("name", "acknowledged"), [("localhost", True), ("other.example", False)])
def test_sni_is_acknowledged_only_for_a_name_we_have(
    server: Server, name: str, acknowledged: bool
) -> None:
    # RFC 6066 §3: the empty server_name in ServerHello says the name was used.
    output = s_client(server.port, "-servername", name, "-tlsextdebug")
    assert "New, TLSv1.2" in output, output
    assert ('TLS server extension "server name"' in output) is acknowledged, output


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3"])
def test_an_ip_address_as_sni_is_refused(server: Server, address: str) -> None:
    # RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName". Browsers
    # and Python's ssl send no SNI for an address; s_client sends whatever it is told.
    output = s_client(server.port, "-servername", address)
    assert "alert illegal parameter" in output, output
    server.wait_for_stderr(f"{address!r} is an IP address", 5)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_trace_shows_curls_handshake_and_a_resumption(
    workdir: Path, rsa_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    assert CURL is not None
    args = (*leaf_args(rsa_leaf, tmp_path, "rsa"), "--trace")
    with running_server(tmp_path, *args) as traced:
        url = f"https://localhost:{traced.port}/"
        curl = [CURL, "-s", "--insecure", "--tls-max", "1.2", url]  # the TLS 1.2 ladder
        subprocess.run(curl, capture_output=True, timeout=30, check=True)
        for line in (
            "C -> S ClientHello",
            "why    cipher suite: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "C <- S ServerKeyExchange",
            "key    extended master secret, over the session hash: hidden",
            "record first application record received",
            "C <- S Finished",
        ):
            traced.wait_for_stderr(line, 5)
        s_client(traced.port, "-reconnect")
        traced.wait_for_stderr("why    resumption: abbreviated handshake", 5)
