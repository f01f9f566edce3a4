"""--trace: the ladder of a scripted handshake and of a resumed one, pinned in golden files;
the JSON form; secrets only with key logging; the record a handler may ask for."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import attrs
import pytest

from trio_tls.engine.config import CertifiedKey, ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import KeyDerived, Observation, SecretsEstablished
from trio_tls.engine.sessions import SessionCache
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.enums import ExtensionType
from trio_tls.engine.wire.extensions import UnknownExtension
from trio_tls.engine.wire.messages import ClientHello, encode_handshake
from trio_tls.observe.recorder import HandshakeRecorder, combine
from trio_tls.observe.trace import HandshakeTrace, describe_message

from .client_certs import T61_V3
from .scripted_client import ScriptedClient, extension
from .test_hostile import drain, full_handshake

GOLDEN = Path(__file__).parent / "golden"


class Ticks:
    """A clock that moves 0.1 ms a reading, so the times in a ladder are reproducible."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.0001
        return self.now


def normalise(ladder: str) -> str:
    """Hide what differs from run to run: key bytes, nonces, certificate lengths."""
    ladder = re.sub(r"\b[0-9a-f]{20,}\b", "<hex>", ladder)
    return re.sub(
        r"Certificate \(\d+ bytes\): 1 certificate\(s\), \d+ bytes", "Certificate", ladder
    )


def traced_handshake(config: ServerConfig, client: ScriptedClient, **trace: bool) -> str:
    out = io.StringIO()
    observer = HandshakeTrace("127.0.0.1:5555", out, colour=False, clock=Ticks(), **trace)
    server = ServerConnection(config, observer)
    full_handshake(server, client)
    server.receive_data(client.application_data(b"GET / HTTP/1.1\r\n\r\n"))
    drain(server)
    server.send(b"HTTP/1.1 200 OK\r\n\r\n")
    client.read(server.data_to_send())
    server.close()
    return out.getvalue()


def check_golden(name: str, ladder: str) -> None:
    path = GOLDEN / name
    text = normalise(ladder)
    if not path.exists():  # delete the file to regenerate it; then read it and commit it
        path.write_text(text)
        pytest.fail(f"wrote {path}: check it by eye and commit it")
    assert text == path.read_text()


def test_the_ladder_of_a_full_handshake(rsa_config: ServerConfig) -> None:
    client = ScriptedClient(groups=(29,), schemes=(0x0804,), alpn=None)
    check_golden("trace-full.txt", traced_handshake(rsa_config, client))


def test_the_ladder_of_a_resumed_handshake(rsa_config: ServerConfig) -> None:
    config = attrs.evolve(rsa_config, session_cache=SessionCache())
    first = ScriptedClient(groups=(29,), schemes=(0x0804,))
    server = ServerConnection(config)
    full_handshake(server, first)
    assert first.flight is not None
    session_id = first.flight.server_hello.session_id
    out = io.StringIO()
    observer = HandshakeTrace("127.0.0.1:5556", out, colour=False, clock=Ticks())
    again = ServerConnection(config, observer)
    client = ScriptedClient(groups=(29,), schemes=(0x0804,))
    again.receive_data(client.client_hello(session_id=session_id))
    drain(again)
    check_golden("trace-resumed.txt", out.getvalue())
    assert "resumption: abbreviated handshake" in out.getvalue()


def test_secrets_show_only_with_key_logging(rsa_config: ServerConfig) -> None:
    hidden = traced_handshake(rsa_config, ScriptedClient())
    assert "master secret, over the session hash: hidden (shown with --key-log-file)" in hidden
    shown = traced_handshake(rsa_config, ScriptedClient(), reveal_secrets=True)
    assert re.search(r"client write key: [0-9a-f]{32}  \[RFC 5246 §6\.3\]", shown), shown


def test_json_lines(rsa_config: ServerConfig) -> None:
    out = io.StringIO()
    server = ServerConnection(rsa_config, HandshakeTrace("p", out, json_lines=True))
    client = ScriptedClient(suites=(0xCCA8,))  # ChaCha20: the nonce is iv xor seq
    full_handshake(server, client)
    server.send(b"x")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {e["event"] for e in events} == {"message", "decision", "key", "record"}
    assert all(e["peer"] == "p" and isinstance(e["ms"], float) for e in events)
    (record,) = [e for e in events if e["event"] == "record"]
    assert record["explicit_nonce"] == "" and record["rfc"] == "RFC 7905 §2"
    suite = next(e for e in events if e.get("topic") == "cipher suite")
    assert suite["choice"] == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert all(e["value"] is None for e in events if e["event"] == "key")


def test_an_alert_names_its_rule(rsa_config: ServerConfig) -> None:
    out = io.StringIO()
    server = ServerConnection(rsa_config, HandshakeTrace("p", out, colour=False))
    client = ScriptedClient()
    bad = client.client_hello(
        extensions=[*client.default_extensions(), extension(ExtensionType.supported_groups, b"")]
    )
    server.receive_data(bad)
    with pytest.raises(Exception, match=r"duplicate|twice"):
        drain(server)
    assert "alert  sent fatal decode_error (an extension appears twice)" in out.getvalue()


def test_a_handshake_record_holds_no_secret(rsa_config: ServerConfig) -> None:
    recorder = HandshakeRecorder()
    seen: list[Observation] = []
    server = ServerConnection(rsa_config, combine(recorder, seen.append))
    full_handshake(server, ScriptedClient())
    assert any(isinstance(o, SecretsEstablished) for o in seen)
    assert not any(isinstance(o, SecretsEstablished) for _, o in recorder.record)
    keys = [o for _, o in recorder.record if isinstance(o, KeyDerived)]
    assert keys and all(k.value is None for k in keys)
    times = [t for t, _ in recorder.record]
    assert times == sorted(times)


HOSTILE_ALPN = b"h2\x1b]0;pwn\x07\n2026-12-07 10:00:00 INFO forged\x9b\xff"


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_what_the_client_sent_is_escaped(rsa_config: ServerConfig, json_lines: bool) -> None:
    """A hostile ALPN list reaches the trace as text: neither form may carry a control
    character, start a line of its own or hold bytes that are not UTF-8."""
    ladder = traced_handshake(
        rsa_config, ScriptedClient(alpn=(HOSTILE_ALPN,)), json_lines=json_lines
    )
    assert all(char == "\n" or char.isprintable() for char in ladder)
    lines = ladder.splitlines()
    assert all(line.startswith('{"peer"' if json_lines else "127.0.0.1:5555 ") for line in lines)
    shown = "ALPN h2\\x1b]0;pwn\\x07\\x0a2026-12-07 10:00:00 INFO forged\\x9b\\xff"
    if json_lines:
        (hello,) = [json.loads(line) for line in lines if "ClientHello" in line]
        assert shown in hello["details"]
    else:
        assert shown in ladder


def test_a_certificate_named_only_by_an_undecodable_subject_is_traced() -> None:
    """A certificate without DNS names is named by its subject, in the one safe form
    (clientauth.subject_text): hex for a name cryptography cannot decode, never an error."""
    config = ServerConfig([CertifiedKey((T61_V3.certificate,), T61_V3.key)])
    ladder = traced_handshake(config, ScriptedClient(suites=(0xC02B,)))
    assert "why    certificate: ECDSA, for der:300f310d300b06035504031404636166e9" in ladder


def test_a_hostile_hello_is_traced_in_a_line_of_bounded_length() -> None:
    # 32,000 suites and 16,000 extensions: the trace names the first 64 of each list.
    hello = ClientHello(
        0x0303,
        bytes(32),
        b"",
        tuple(range(0x1000, 0x1000 + 32000)),
        b"\x00",
        tuple(UnknownExtension(0x4000 + i, b"") for i in range(16000)),
    )
    decoded = ClientHello.decode(Reader(encode_handshake(hello)[4:]))
    line = describe_message(decoded)
    assert "... and 31936 more; extensions: " in line
    assert line.endswith("... and 15936 more")
    assert len(line) < 2000
