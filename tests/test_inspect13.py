"""The inspect page and JSON of TLS 1.3 connections: the version, JA4 `t13`, the key shares each
way, the group chosen and a HelloRetryRequest when there was one; in-process against OpenSSL,
with Chromium's real hello (its X25519MLKEM768 share), and end to end behind `trio-tls serve`."""

from __future__ import annotations

import pathlib
import ssl
from typing import Any

import trustme
from trio_tls_handlers.inspect.page import render
from trio_tls_handlers.inspect.report import HandshakeReport, KeyExchange, Share, build_report

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import ConnectionInfo, MessageObserved, Observation
from trio_tls.engine.wire.enums import TLS12, TLS13, NamedGroup
from trio_tls.engine.wire.extensions import KeyShareEntry, KeyShareServer, SelectedVersion
from trio_tls.engine.wire.messages import ServerHello
from trio_tls.observe.recorder import HandshakeRecorder

from .cli_server import running_server
from .openssl_peer import OpenSSLClient
from .test_inspect import CHROMIUM, chromium_hello, get_json
from .test_tls13 import serve13, tls13_context


def inspected(config: ServerConfig, ctx: ssl.SSLContext) -> HandshakeReport:
    recorder = HandshakeRecorder()
    client = OpenSSLClient(ServerConnection(serve13(config), recorder), ctx)
    client.handshake()
    return build_report(client.server.info, recorder.record)


def test_a_tls13_handshake_names_its_shares(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    ctx = tls13_context(ca)
    ctx.set_ecdh_curve("prime256v1")
    report = inspected(rsa_config, ctx)
    assert report.negotiated is not None and report.negotiated.version == "TLSv1.3"
    assert report.negotiated.group == "secp256r1"
    assert report.client_hello is not None
    assert report.client_hello.fingerprints.ja4.startswith("t13d")
    assert report.key_exchange == KeyExchange(
        offered=(Share("secp256r1", 65),),
        hello_retry_request=None,
        offered_again=(),
        group="secp256r1",
        server_share=Share("secp256r1", 65),
    )
    flight = [(r.title, r.keys) for r in report.ladder if r.direction == "sent"]
    assert flight == [
        ("ServerHello", None),
        ("ChangeCipherSpec", None),
        ("EncryptedExtensions", "handshake"),
        ("Certificate", "handshake"),
        ("CertificateVerify", "handshake"),
        ("Finished", "handshake"),
    ]
    assert all(r.rfc.startswith("RFC 8446 ") for r in report.ladder if r.kind != "decision")
    assert report.handshake_ms is not None  # the client's Finished13 ends the handshake
    page = render(report)
    assert "<h2>Key exchange (TLS 1.3)</h2>" in page
    assert "no: one of your shares was taken (1-RTT)" in page
    assert "<dd>built into TLS 1.3 (every secret covers the transcript)</dd>" in page


def test_a_hello_retry_request_is_shown(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    # OpenSSL sends an x25519 share and lists P-256 and P-384 too.
    config = serve13(rsa_config, groups=(NamedGroup.secp384r1, NamedGroup.secp256r1))
    report = inspected(config, tls13_context(ca))
    exchange = report.key_exchange
    assert exchange is not None
    assert exchange.offered == (Share("x25519", 32),)
    assert exchange.hello_retry_request == "secp384r1"
    assert exchange.offered_again == (Share("secp384r1", 97),)
    assert exchange.group == "secp384r1"
    titles = [r.title for r in report.ladder if r.kind == "message"]
    assert titles[:3] == ["ClientHello", "HelloRetryRequest", "ChangeCipherSpec"]
    page = render(report)
    assert "yes: the server asked for a <b>secp384r1</b> share" in page


def test_chromiums_post_quantum_share_is_named() -> None:
    """Chromium's own hello (X25519MLKEM768 and x25519 shares) answered with the hybrid: the
    sizes are the draft's, 1,216 bytes from the client and 1,120 from the server."""
    share = KeyShareServer(KeyShareEntry(NamedGroup.X25519MLKEM768, bytes(1120)))
    answer = ServerHello(TLS12, bytes(32), b"", 0x1301, 0, (SelectedVersion(TLS13), share))
    record: list[tuple[float, Observation]] = [
        (0.001, MessageObserved("received", chromium_hello(), CHROMIUM[5:])),
        (0.002, MessageObserved("sent", answer, b"")),
    ]
    info = ConnectionInfo(
        "TLSv1.3", "TLS_AES_128_GCM_SHA256", None, None, False, False, "X25519MLKEM768", None
    )
    report = build_report(info, record)
    exchange = report.key_exchange
    assert exchange is not None
    assert [s.group for s in exchange.offered][-2:] == ["X25519MLKEM768", "x25519"]
    assert Share("X25519MLKEM768", 1216) in exchange.offered
    assert exchange.server_share == Share("X25519MLKEM768", 1120)
    assert report.to_json()["negotiated"]["group"] == "X25519MLKEM768"  # type: ignore[index]
    page = render(report)
    assert "<b>X25519MLKEM768</b> <small>1,216 bytes</small>" in page
    assert "<b>GREASE 0x8a8a</b> <small>1 byte</small>" in page


def test_python_ssl_gets_tls13_end_to_end(tmp_path: pathlib.Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    args = ("--handler", "inspect", "--tls-versions", "1.2,1.3", "--log-level", "debug")
    with running_server(tmp_path, *args) as server:
        report, _ = get_json(server.port, context)
        server.wait_for_stderr("closed", 5)
        server.stop()
    check_tls13_json(report)
    # The connection line keeps its format: a TLS 1.3 suite's name says the version (it names
    # no key exchange); the debug line says it in words.
    assert " alpn=- suite=TLS_AES_128_GCM_SHA256 resumed=no in=" in server.stderr
    assert ": TLSv1.3 TLS_AES_128_GCM_SHA256 group=x25519 signature=" in server.stderr


def check_tls13_json(report: Any) -> None:
    negotiated = report["negotiated"]
    assert negotiated["version"] == "TLSv1.3"
    assert negotiated["group"] == "x25519"
    assert report["client_hello"]["fingerprints"]["ja4"].startswith("t13d")
    exchange = report["key_exchange"]
    assert exchange["hello_retry_request"] is None
    assert exchange["group"] == negotiated["group"]
    assert {"group": "x25519", "length": 32} in exchange["offered"]
    keys = {step["title"]: step["keys"] for step in report["ladder"] if step["kind"] == "message"}
    assert keys["EncryptedExtensions"] == "handshake"
