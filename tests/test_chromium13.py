"""Headless Chromium over TLS 1.3 with the post-quantum hybrid: the browser people use, against
`trio-tls serve --tls-versions 1.2,1.3 --handler inspect`.

Chromium offers X25519MLKEM768 first and sends its share (1,184-byte ML-KEM-768 encapsulation
key, then a 32-byte X25519 key), so the server must take it without a HelloRetryRequest. The
inspect JSON Chromium loads names what was negotiated; the server's handshake line says the
same. Skipped, saying why, where Chromium is missing or cannot start (test_inspect_chromium).
"""

from __future__ import annotations

import pathlib

import pytest

from .cli_server import running_server
from .test_inspect_chromium import chromium_or_skip, headless, json_report

pytestmark = pytest.mark.interop


def test_chromium_gets_tls13_with_x25519mlkem768(tmp_path: pathlib.Path) -> None:
    chromium = chromium_or_skip()
    args = ("--handler", "inspect", "--tls-versions", "1.2,1.3", "--log-level", "debug")
    with running_server(tmp_path, *args) as server:
        url = f"https://127.0.0.1:{server.port}/json"
        report = json_report(headless(chromium, tmp_path / "profile", "--dump-dom", url))
        server.wait_for_stderr(
            ": TLSv1.3 TLS_AES_128_GCM_SHA256 group=X25519MLKEM768 signature=rsa_pss_rsae_sha256", 5
        )
    negotiated = report["negotiated"]
    assert (negotiated["version"], negotiated["cipher_suite"], negotiated["group"]) == (
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "X25519MLKEM768",
    )
    shares = [
        (share["group"]["name"], share["key_length"])
        for share in report["client_hello"]["key_shares"]
        if not share["group"]["grease"]
    ]
    assert shares == [("X25519MLKEM768", 1184 + 32), ("x25519", 32)]
    key_shares = [d["choice"] for d in report["decisions"] if d["topic"] == "key share"]
    assert key_shares == ["X25519MLKEM768"]  # from its first hello: no HelloRetryRequest
    assert report["client_hello"]["fingerprints"]["ja4"].startswith("t13")
