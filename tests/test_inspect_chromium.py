"""The inspect page as a real browser gets it: headless Chromium against `trio-tls serve`.

Chromium loads `/` (its DOM dumped, and a screenshot saved) and `/json` over two handshakes of
its own. The page must name Chromium's GREASE values and its real cipher suite list, in its
order, and the JSON's fingerprints must agree with ja4plus and Salesforce's JA3 on the very
ClientHello bytes Chromium sent. Debian's `chromium` package is what runs (`.ci/run` installs
it); where it is missing or cannot start, the test is skipped and says why. The screenshot's
path is printed and recorded as the test's `screenshot` property (`pytest -rP` shows it).
"""

from __future__ import annotations

import html
import json
import pathlib
import re
import shutil
import subprocess
from typing import Any

import pytest
from ja4plus.fingerprinters.ja4 import generate_ja4
from ja4plus.utils.tls_utils import parse_tls_handshake

from trio_tls.observe.iana import is_grease

from .cli_server import running_server
from .test_fingerprint import ja3_by_salesforce, record

pytestmark = pytest.mark.interop

CHROMIUM = shutil.which("chromium")
# Chromium's TLS cipher suites, in its order, unchanged since 2020 (the captured hello shows
# them too): three TLS 1.3 suites, then ECDHE with AES-GCM and ChaCha20, then legacy ones.
CHROMIUM_SUITES = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
]


def chromium_or_skip() -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    try:
        subprocess.run([CHROMIUM, "--version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"chromium cannot run here: {exc}")
    return CHROMIUM


def headless(chromium: str, profile: pathlib.Path, *action: str) -> str:
    """Run one headless Chromium action against the server; its stdout."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root in a container, Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--ignore-certificate-errors",  # the development certificate is self-signed
            *action,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def table_after(dom: str, heading: str) -> list[tuple[str, str]]:
    """(hex value, name) of each row of the table under the <h3> that starts with `heading`."""
    section = dom.split(f"<h3>{heading}", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<td><code>(0x[0-9a-f]{4})</code></td><td>([A-Za-z0-9_]+)", section)


def json_report(dumped: str) -> Any:
    """The inspect JSON as Chromium shows it: its DOM wraps the body in a <pre>."""
    body = re.search(r"<pre[^>]*>(.*)</pre>", dumped, re.DOTALL)
    assert body is not None, dumped[:500]
    return json.loads(html.unescape(body.group(1)))


def test_chromium_sees_its_own_hello(
    tmp_path: pathlib.Path, record_property: pytest.RecordProperty
) -> None:
    chromium = chromium_or_skip()
    screenshot = tmp_path / "inspect.png"
    with running_server(tmp_path, "--handler", "inspect") as server:
        url = f"https://127.0.0.1:{server.port}/"
        dom = headless(chromium, tmp_path / "profile", "--dump-dom", url)
        headless(
            chromium,
            tmp_path / "profile",
            f"--screenshot={screenshot}",
            "--window-size=1200,2400",
            url,
        )
        dumped = headless(chromium, tmp_path / "profile", "--dump-dom", url + "json")
        server.stop()
    record_property("screenshot", str(screenshot))
    print(f"inspect page screenshot: {screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Its real suite list, in its order, after a GREASE value.
    suites = table_after(dom, "Cipher suites")
    assert is_grease(int(suites[0][0], 16))
    assert suites[0][1] == "GREASE"
    assert [name for _, name in suites[1:]] == CHROMIUM_SUITES
    # Its GREASE values, named where they were sent.
    extensions = table_after(dom, "Extensions")
    grease_extensions = [value for value, name in extensions if name == "GREASE"]
    assert len(grease_extensions) == 2
    assert all(is_grease(int(value, 16)) for value in grease_extensions)
    for field in ("cipher_suites", "extensions", "supported_versions", "supported_groups"):
        assert re.search(rf">0x([0-9a-f])a\1a</span> in {field}\b", dom), field
    assert "X25519MLKEM768" in dom
    summary = dom.split("</h1>", 1)[1].split("<dl>")[0]
    assert "TLSv1.3 · <b>TLS_AES_128_GCM_SHA256</b> · X25519MLKEM768 ·" in summary, summary

    # The JSON, from another handshake: its fingerprints against the independent code, on
    # the exact bytes Chromium sent.
    report = json_report(dumped)
    hello = report["client_hello"]
    wire = record(bytes.fromhex(hello["encoded"]))
    assert hello["fingerprints"]["ja4"] == generate_ja4(parse_tls_handshake(wire))
    salesforce = ja3_by_salesforce(wire)
    assert (hello["fingerprints"]["ja3"], hello["fingerprints"]["ja3_md5"]) == salesforce
    assert re.fullmatch(r"t13i\d{4}h2_8daaf6152771_[0-9a-f]{12}", hello["fingerprints"]["ja4"])
    assert report["negotiated"]["resumed"] is False
