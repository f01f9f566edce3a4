"""GnuTLS's gnutls-cli against the real `trio-tls serve`: a live client that is not OpenSSL.

Every test reads both ends of the same connection: what gnutls-cli says it negotiated (its
"- Description:", "- Options:", "- Application protocol:" and "- Status:" lines, "This is a
resumed session", the alerts it got) and what the server logged (`--log-level debug`: the
handshake line and the connection line with its outcome; `--trace`: the hellos' extensions,
why each choice was made, the alerts either side sent), and checks them against what was asked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

from trio_tls.engine.crypto.asymmetric import TLS12_GROUPS
from trio_tls.engine.crypto.suites import ALL_SUITES, CipherSuite

from .cli_server import Server, running_server
from .conftest import issue_p384
from .test_interop import leaf_args, write_pair

GNUTLS_CLI = shutil.which("gnutls-cli")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(GNUTLS_CLI is None, reason="gnutls-cli is not installed (gnutls-bin)"),
]

TLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
# GnuTLS's names, in priority strings and in its "- Description:" line.
GNUTLS_CIPHERS = {
    "AES_128_GCM": "AES-128-GCM",
    "AES_256_GCM": "AES-256-GCM",
    "CHACHA20_POLY1305": "CHACHA20-POLY1305",
}
GNUTLS_GROUPS = {"x25519": "X25519", "secp256r1": "SECP256R1", "secp384r1": "SECP384R1"}
GNUTLS_SIGNATURES = {
    "rsa_pkcs1_sha256": "RSA-SHA256",
    "rsa_pkcs1_sha384": "RSA-SHA384",
    "rsa_pkcs1_sha512": "RSA-SHA512",
    "rsa_pss_rsae_sha256": "RSA-PSS-RSAE-SHA256",
    "rsa_pss_rsae_sha384": "RSA-PSS-RSAE-SHA384",
    "rsa_pss_rsae_sha512": "RSA-PSS-RSAE-SHA512",
    # TLS 1.2 does not bind the hash to the curve (RFC 8422 §5.1.3): GnuTLS names the hash only.
    "ecdsa_secp256r1_sha256": "ECDSA-SHA256",
    "ecdsa_secp384r1_sha384": "ECDSA-SHA384",
    "ecdsa_secp521r1_sha512": "ECDSA-SHA512",
}
DESCRIPTION = re.compile(
    r"^\(TLS1\.2-X\.509\)-\((?P<kx>[^)]+)\)-(?:\((?P<signature>[^)]+)\)-)?\((?P<cipher>[^)]+)\)$"
)
HELLO_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


# -- the client -----------------------------------------------------------------------------------


@attrs.frozen
class Run:
    """What one gnutls-cli process printed (stdout and stderr together) and its exit status."""

    output: str
    returncode: int

    def values(self, label: str) -> list[str]:
        """The value of every `- label: value` line, one per handshake."""
        return re.findall(rf"^- {re.escape(label)}: (.*?)\s*$", self.output, re.MULTILINE)

    def description(self, index: int = 0) -> re.Match[str]:
        """The `index`th handshake's "- Description:" line, parsed."""
        match = DESCRIPTION.match(self.values("Description")[index])
        assert match is not None, self.output
        return match

    def options(self) -> set[str]:
        """The "- Options:" flags, e.g. {"extended master secret", "safe renegotiation"}."""
        (options,) = self.values("Options")
        return {flag.strip() for flag in options.split(",") if flag.strip()}


def gnutls_cli(
    port: int,
    ca_file: Path,
    *args: str,
    sni: str | None = "localhost",
    verify: str = "localhost",
    request: bytes | None = None,
) -> Run:
    """gnutls-cli to 127.0.0.1:`port`, trusting `ca_file`, checking the name `verify`.

    With a `request`, stdin stays open until the server closes the connection, so that
    gnutls-cli's close_notify cannot overtake the response; without one it sees EOF at once and
    closes right after the handshake(s).
    """
    assert GNUTLS_CLI is not None
    argv = [GNUTLS_CLI, "--port", str(port), "--x509cafile", str(ca_file)]
    argv += ["--disable-sni"] if sni is None else ["--sni-hostname", sni]
    argv += ["--verify-hostname", verify, *args, "127.0.0.1"]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        assert proc.stdin is not None
        try:
            if request is not None:
                proc.stdin.write(request)
                proc.stdin.flush()
            else:
                proc.stdin.close()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
        out.seek(0)
        run = Run(out.read().decode("utf-8", "replace"), proc.returncode)
    assert "Syntax error" not in run.output, run.output  # a priority string gnutls rejected
    return run


def priority(
    *, auth: str, cipher: str = "", groups: tuple[str, ...] = (), signature: str = ""
) -> str:
    """A TLS 1.2 priority string narrowed to one key exchange and what else is given."""
    text = f"{TLS12}:-KX-ALL:+ECDHE-{auth.upper()}"
    if cipher:
        text += f":-CIPHER-ALL:+{cipher}"
    if groups:
        text += ":-GROUP-ALL" + "".join(f":+GROUP-{g}" for g in groups)
    if signature:
        text += f":-SIGN-ALL:+SIGN-{signature}"
    return text


# -- the server's side of the same connection -------------------------------------------------

HANDSHAKE_LINE = re.compile(
    r" DEBUG (?P<peer>\S+) handshake in \S+: (?P<version>TLSv1\.[23]) (?P<suite>\S+) "
    r"group=(?P<group>\S+) "
    r"signature=(?P<signature>\S+) sni=(?P<sni>\S+) alpn=(?P<alpn>\S+) resumed=(?P<resumed>\w+) "
    r"extended_master_secret=(?P<ems>\w+)$"
)
CONNECTION_LINE = re.compile(
    r" INFO (?P<peer>\S+) sni=\S+ alpn=\S+ suite=\S+ resumed=\S+ in=\d+ out=\d+ time=\S+: "
    r"(?P<outcome>.*)$"
)
TRACE_LINE = re.compile(r"^(?P<peer>[\d.]+:\d+) \+[\d.]+ms (?P<text>.*)$")


@attrs.frozen
class Seen:
    """One connection as the server logged it."""

    peer: str
    outcome: str
    handshake: dict[str, str] | None  # the DEBUG handshake line's fields, if it completed
    trace: tuple[str, ...]
    lines: tuple[str, ...]

    def traced(self, prefix: str) -> str:
        """The one trace line that starts with the words `prefix`, e.g. "C <- S ServerHello"."""
        (line,) = self.matching(prefix)
        return line

    def matching(self, prefix: str) -> list[str]:
        return [text for text in self.trace if text.startswith(prefix + " ")]

    def extensions(self, message: str) -> list[str]:
        """The extensions the trace lists for a hello, e.g. "C <- S ServerHello"."""
        match = re.search(r"extensions: ([^;\[]*)", self.traced(message))
        assert match is not None, self.traced(message)
        return [name.strip() for name in match.group(1).split(",")]


def log_mark(server: Server) -> int:
    return server.stderr_path.stat().st_size


def server_saw(server: Server, mark: int, count: int = 1, timeout: float = 10) -> list[Seen]:
    """The `count` connections logged after `mark`, in the order they began; waits until each
    has its connection line (logged once the connection is over)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server.stderr_path.read_bytes()[mark:].decode("utf-8", "replace").splitlines()
        outcomes = {
            m["peer"]: m["outcome"] for line in lines if (m := CONNECTION_LINE.search(line))
        }
        if len(outcomes) >= count:
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"{count} connection(s) not logged within {timeout} s:\n" + "\n".join(lines)
            )
        time.sleep(0.02)
    assert len(outcomes) == count, lines
    first_line = {
        peer: next(i for i, line in enumerate(lines) if mentions(line, peer)) for peer in outcomes
    }
    return [
        connection(peer, outcomes[peer], lines) for peer in sorted(outcomes, key=first_line.get)
    ]


def mentions(line: str, peer: str) -> bool:
    """Whether a log line is about `peer` ("127.0.0.1:5000" is not "127.0.0.1:50001")."""
    return f" {peer} " in f" {line} "


def connection(peer: str, outcome: str, lines: list[str]) -> Seen:
    mine = tuple(line for line in lines if mentions(line, peer))
    handshakes = [m.groupdict() for line in mine if (m := HANDSHAKE_LINE.search(line))]
    trace = tuple(m["text"] for line in mine if (m := TRACE_LINE.match(line)))
    return Seen(peer, outcome, handshakes[0] if handshakes else None, trace, mine)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gnutls")


@pytest.fixture(scope="module")
def ca_file(workdir: Path, ca: trustme.CA) -> Path:
    path = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def server(
    workdir: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert, ecdsa_leaf: trustme.LeafCert
) -> Iterator[Server]:
    """RSA, ECDSA P-256 and ECDSA P-384 certificates for localhost; tickets and IDs on; every
    handshake logged and traced."""
    args = [
        *leaf_args(rsa_leaf, workdir, "rsa"),
        *leaf_args(ecdsa_leaf, workdir, "ecdsa"),
        *write_pair(issue_p384(ca), workdir, "p384"),
        "--log-level",
        "debug",
        "--trace",
    ]
    with running_server(workdir, *args) as running:
        yield running


def connect(server: Server, ca_file: Path, *args: str, **kwargs: Any) -> tuple[Run, Seen]:
    """One gnutls-cli connection (`kwargs` as gnutls_cli takes them) and the server's record."""
    mark = log_mark(server)
    run = gnutls_cli(server.port, ca_file, *args, **kwargs)
    (seen,) = server_saw(server, mark)
    return run, seen


# -- the handshake and an HTTP request ------------------------------------------------------------


def test_http_request_through_the_hello_handler(server: Server, ca_file: Path) -> None:
    run, seen = connect(server, ca_file, "--alpn", "http/1.1", request=HELLO_REQUEST)
    assert "HTTP/1.1 200 OK" in run.output, run.output
    assert "\nHello from Python TLS!" in run.output, run.output
    assert run.values("Status") == ["The certificate is trusted."]
    # GnuTLS's default priority offers TLS 1.3, and gets it: AES-128-GCM and x25519 first.
    assert run.values("Description") == [
        "(TLS1.3-X.509)-(ECDHE-X25519)-(RSA-PSS-RSAE-SHA256)-(AES-128-GCM)"
    ]
    assert run.values("Application protocol") == ["http/1.1"]
    assert "TLS 1.3 — the highest both speak: supported_versions lists 0x0304, 0x0303" in (
        seen.traced("why    version:")
    )
    assert seen.handshake is not None
    assert seen.handshake["version"] == "TLSv1.3"
    assert seen.handshake["suite"] == "TLS_AES_128_GCM_SHA256"
    assert (seen.handshake["sni"], seen.handshake["alpn"]) == ("localhost", "http/1.1")
    assert any(f'{seen.peer} "GET / HTTP/1.1" 200' in line for line in seen.lines), seen.lines
    assert seen.outcome == "closed"


# -- what gets negotiated -------------------------------------------------------------------------


def gnutls_cipher(suite: CipherSuite) -> str:
    (name,) = [gnutls for iana, gnutls in GNUTLS_CIPHERS.items() if f"_{iana}_" in suite.name]
    return name


@pytest.mark.parametrize("group", [group.name for group in TLS12_GROUPS])
@pytest.mark.parametrize("suite", ALL_SUITES, ids=[suite.name for suite in ALL_SUITES])
def test_every_suite_and_group(
    server: Server, ca_file: Path, suite: CipherSuite, group: str
) -> None:
    # RFC 8422 §5.1: an ECDSA certificate's curve must be one the client lists; for x25519 only
    # that is P-256 too (the server still prefers x25519 for the key exchange).
    certificate_curve = ("SECP256R1",) if suite.auth == "ecdsa" and group == "x25519" else ()
    run, seen = connect(
        server,
        ca_file,
        "--priority",
        priority(
            auth=suite.auth,
            cipher=gnutls_cipher(suite),
            groups=(GNUTLS_GROUPS[group], *certificate_curve),
        ),
    )
    assert seen.handshake is not None, run.output
    assert (seen.handshake["suite"], seen.handshake["group"]) == (suite.name, group)
    description = run.description()
    assert description["kx"] == f"ECDHE-{GNUTLS_GROUPS[group]}"
    assert description["cipher"] == gnutls_cipher(suite)
    assert description["signature"] == GNUTLS_SIGNATURES[seen.handshake["signature"]]
    # The certificate follows the suite and, for ECDSA, the client's curves (RFC 8422 §5.1).
    key = {"rsa": "RSA key 2048 bits", "ecdsa": "EC/ECDSA key 256 bits"}[suite.auth]
    if suite.auth == "ecdsa" and group == "secp384r1":
        key = "EC/ECDSA key 384 bits"
    assert f", {key}," in run.output, run.output
    assert run.values("Status") == ["The certificate is trusted."]


@pytest.mark.parametrize("scheme", list(GNUTLS_SIGNATURES), ids=list(GNUTLS_SIGNATURES.values()))
def test_signature_schemes(server: Server, ca_file: Path, scheme: str) -> None:
    """Each scheme GnuTLS offers alone is the one the server signs with (a P-256 key signing
    with SHA-384 or SHA-512 included: TLS 1.2 allows it, RFC 8422 §5.1.3)."""
    name = GNUTLS_SIGNATURES[scheme]
    auth = "ecdsa" if scheme.startswith("ecdsa") else "rsa"
    run, seen = connect(server, ca_file, "--priority", priority(auth=auth, signature=name))
    assert seen.handshake is not None, run.output
    assert seen.handshake["signature"] == scheme
    assert run.description()["signature"] == name


# -- resumption -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("by", "extra", "how"),
    [("ticket", "", "its ticket opened"), ("session-id", ":%NO_TICKETS", "its session ID")],
)
def test_resumption(server: Server, ca_file: Path, by: str, extra: str, how: str) -> None:
    """gnutls-cli --resume reconnects offering the session: by RFC 5077 ticket (GnuTLS's
    default), or by session ID with %NO_TICKETS."""
    mark = log_mark(server)
    run = gnutls_cli(server.port, ca_file, "--resume", "--priority", TLS12 + extra)
    first, second = server_saw(server, mark, count=2)
    assert "*** This is a resumed session" in run.output, run.output
    assert run.output.count("- Resume Handshake was completed") == 1
    # No certificate and no signature in the abbreviated handshake.
    assert run.description(1)["signature"] is None
    assert run.description(1)["cipher"] == run.description(0)["cipher"]
    session_ids = run.values("Session ID")
    assert len(session_ids) == 2 and session_ids[0] == session_ids[1], session_ids
    assert first.handshake is not None and second.handshake is not None
    assert (first.handshake["resumed"], second.handshake["resumed"]) == ("False", "True")
    assert second.handshake["suite"] == first.handshake["suite"]
    reason = second.traced("why    resumption:")
    assert f"abbreviated handshake — the client's session is resumable: {how}," in reason
    assert len(first.matching("C <- S NewSessionTicket")) == (by == "ticket")


# -- ALPN and SNI ---------------------------------------------------------------------------------


def test_alpn(server: Server, ca_file: Path) -> None:
    run, seen = connect(server, ca_file, "--alpn", "h2", "--alpn", "http/1.1")
    assert run.values("Application protocol") == ["http/1.1"]
    assert seen.handshake is not None and seen.handshake["alpn"] == "http/1.1"


def test_alpn_without_a_common_protocol_is_refused(server: Server, ca_file: Path) -> None:
    """RFC 7301 §3.2: hello speaks only http/1.1; a client offering only h2 is refused."""
    run, seen = connect(server, ca_file, "--alpn", "h2")
    assert "*** Received alert [120]: No supported application protocol" in run.output, run.output
    assert seen.handshake is None
    assert seen.outcome.startswith("failed: no_application_protocol ("), seen.outcome


@pytest.fixture(scope="module")
def names_server(workdir: Path, ca: trustme.CA) -> Iterator[Server]:
    """A certificate for a.example (served first) and one for *.b.example."""
    a = ca.issue_cert("a.example", common_name="a.example", key_type=trustme.KeyType.RSA)
    b = ca.issue_cert("*.b.example", common_name="b", key_type=trustme.KeyType.RSA)
    args = [*leaf_args(a, workdir, "a"), *leaf_args(b, workdir, "b")]
    with running_server(workdir, *args, "--log-level", "debug", "--trace") as running:
        yield running


@pytest.mark.parametrize(
    ("sni", "verify", "subject"),
    [
        ("a.example", "a.example", "CN=a.example"),
        ("www.b.example", "www.b.example", "CN=b"),
        (None, "a.example", "CN=a.example"),  # no SNI: the first certificate
    ],
)
def test_sni_selects_the_certificate(
    names_server: Server, ca_file: Path, sni: str | None, verify: str, subject: str
) -> None:
    run, seen = connect(names_server, ca_file, "--priority", TLS12, sni=sni, verify=verify)
    assert f"subject `{subject}," in run.output, run.output
    assert run.values("Status") == ["The certificate is trusted."]
    assert seen.handshake is not None
    assert seen.handshake["sni"] == (sni or "-")
    # RFC 6066 §3: the server acknowledges the name only when it chose the certificate (in the
    # TLS 1.2 ServerHello here: the trace does not describe EncryptedExtensions yet).
    assert ("server_name" in seen.extensions("C <- S ServerHello")) is (sni is not None)


# -- extended master secret and secure renegotiation ---------------------------------------------


@pytest.mark.parametrize(
    ("extra", "options"),
    [
        ("", {"extended master secret", "safe renegotiation"}),
        # GnuTLS then refuses a server without RFC 5746 (it would still talk to one otherwise).
        (":%SAFE_RENEGOTIATION", {"extended master secret", "safe renegotiation"}),
        (":%NO_SESSION_HASH", {"safe renegotiation"}),
        (":%DISABLE_SAFE_RENEGOTIATION", {"extended master secret"}),
    ],
    ids=["default", "safe-renegotiation-required", "no-ems", "no-renegotiation-info"],
)
def test_extended_master_secret_and_renegotiation_info(
    server: Server, ca_file: Path, extra: str, options: set[str]
) -> None:
    """RFC 7627 and RFC 5746 as GnuTLS negotiates them; the server answers each extension only
    when the client sent it."""
    run, seen = connect(server, ca_file, "--priority", TLS12 + extra)
    assert run.options() == options, run.output
    assert seen.handshake is not None
    ems = "extended master secret" in options
    assert seen.handshake["ems"] == str(ems)
    offered = seen.traced("C -> S ClientHello")
    answered = seen.extensions("C <- S ServerHello")
    assert ("extended_master_secret" in answered) is ems
    assert ("offers extended_master_secret" in offered) is ems
    safe = "safe renegotiation" in options
    assert ("renegotiation_info" in seen.extensions("C -> S ClientHello")) is safe
    assert ("renegotiation_info" in answered) is safe


# -- what GnuTLS refuses --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_ca_file(workdir: Path) -> Path:
    path = workdir / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.mark.parametrize(
    ("wrong", "status"),
    [
        ("issuer", "The certificate is NOT trusted. The certificate issuer is unknown."),
        (
            "name",
            "The certificate is NOT trusted. "
            "The name in the certificate does not match the expected.",
        ),
    ],
)
def test_a_rejected_certificate_is_a_fatal_alert_the_server_reports(
    server: Server, ca_file: Path, other_ca_file: Path, wrong: str, status: str
) -> None:
    """GnuTLS rejects the certificate with a fatal bad_certificate alert (3.7 sends that one
    for an unknown issuer and for a wrong name alike); the server's log names it."""
    mark = log_mark(server)
    if wrong == "issuer":
        run = gnutls_cli(server.port, other_ca_file)
    else:
        run = gnutls_cli(server.port, ca_file, verify="other.example")
    (seen,) = server_saw(server, mark)
    assert run.values("Status") == [status], run.output
    assert "*** PKI verification of server certificate failed" in run.output
    assert run.returncode != 0
    assert seen.handshake is None
    assert seen.outcome == "failed: the peer sent a fatal bad_certificate alert"
    assert len(seen.matching("alert  received fatal bad_certificate")) == 1


def test_renegotiation_is_refused_and_gnutls_cli_keeps_asking(
    server: Server, ca_file: Path
) -> None:
    """gnutls-cli --rehandshake: each second ClientHello gets a warning no_renegotiation
    (RFC 5246 §7.2.2). gnutls-cli retries the handshake after every non-fatal alert, so it
    sends hello after hello; the fifth in a row is a flood to the server (the hostile table's
    five-renegotiations-in-a-row), which ends the connection with unexpected_message."""
    run, seen = connect(server, ca_file, "--rehandshake", "--priority", TLS12)
    assert run.output.count("*** Received alert [100]: No renegotiation is allowed") == 4
    assert "*** Received alert [10]: Unexpected message" in run.output
    assert "*** ReHandshake has failed" in run.output
    assert seen.handshake is not None  # the first handshake completed
    assert len(seen.matching("alert  sent warning no_renegotiation")) == 4
    assert seen.outcome == "failed: unexpected_message (too many renegotiation attempts in a row)"
