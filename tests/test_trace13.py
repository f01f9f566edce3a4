"""--trace of TLS 1.3 handshakes against OpenSSL (in-process): the 1-RTT ladder and the one with a
HelloRetryRequest pinned in golden files, every line with its RFC 8446 section, the encrypted
flight marked with its keys, secrets only with key logging, and the rungs OpenSSL cannot make."""

from __future__ import annotations

import io
import json
import re
import ssl
from pathlib import Path

import attrs
import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.sessions import TicketKeys
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.enums import TLS13, KeyUpdateRequest, NamedGroup
from trio_tls.engine.wire.extensions import KeyShare, KeyShareEntry, SupportedVersions
from trio_tls.engine.wire.messages import ClientHello, encode_handshake
from trio_tls.engine.wire.messages13 import KeyUpdate
from trio_tls.observe.trace import HandshakeTrace, describe_message

from .client_certs import ALICE, client_auth
from .openssl_peer import OpenSSLClient
from .test_tls13 import serve13, tls13_context
from .test_trace import Ticks, check_golden

# OpenSSL's lists (suites, extensions, groups, schemes) change with its version; the rest of
# its hello (versions, key shares, PSK modes, SNI, session_id) is what the 1.3 ladder is about.
_CLIENT_LISTS = re.compile(r"; (\d+ suites|extensions|groups|signature schemes): [^;]*")


def traced13(config: ServerConfig, ctx: ssl.SSLContext, **trace: bool) -> str:
    """A whole 1.3 connection, traced: handshake, a request and an answer, close."""
    out = io.StringIO()
    observer = HandshakeTrace("127.0.0.1:5555", out, colour=False, clock=Ticks(), **trace)
    client = OpenSSLClient(ServerConnection(serve13(config), observer), ctx)
    client.handshake()
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    client.server.send(b"HTTP/1.1 200 OK\r\n\r\n")
    assert client.receive(8) == b"HTTP/1.1"
    client.server.close()
    client.pump()
    return out.getvalue()


def stable(ladder: str) -> str:
    """What may differ between OpenSSL versions and certificates goes; the rest is pinned."""
    ladder = _CLIENT_LISTS.sub(r"; \1: <OpenSSL's>", ladder)
    ladder = re.sub(r"ClientHello \(\d+ bytes\)", "ClientHello (<n> bytes)", ladder)
    return re.sub(
        r"Certificate \(\d+ bytes(.*?)\), \d+ bytes",
        r"Certificate (<n> bytes\1), <n> bytes",
        ladder,
    )


def test_the_ladder_of_a_tls13_handshake(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    config = serve13(rsa_config, ticket_keys=TicketKeys())
    ladder = traced13(config, tls13_context(ca))  # OpenSSL 3.0's share: x25519
    check_golden("trace13-full.txt", stable(ladder))
    lines = ladder.splitlines()
    assert all("[RFC 8446 " in line for line in lines), ladder
    flight = [line for line in lines if "C <- S" in line][2:6]  # after ServerHello and CCS
    assert [line.split()[5] for line in flight] == [
        "EncryptedExtensions",
        "Certificate",
        "CertificateVerify",
        "Finished",
    ]
    assert all("encrypted with the handshake keys" in line for line in flight)
    assert "NewSessionTicket (120 bytes, encrypted with the application keys)" in ladder


def test_the_ladder_of_a_hello_retry_request(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    # OpenSSL sends an x25519 share and lists P-384: a server of P-384 alone must ask again.
    config = serve13(rsa_config, groups=(NamedGroup.secp384r1,))
    ladder = traced13(config, tls13_context(ca))
    check_golden("trace13-retry.txt", stable(ladder))
    assert "key shares: x25519 (32 bytes)" in ladder
    assert "C <- S HelloRetryRequest (88 bytes): TLS_AES_128_GCM_SHA256; asks for a secp384r1" in (
        ladder
    )
    assert "key shares: secp384r1 (97 bytes)" in ladder
    assert ladder.count("C <- S ChangeCipherSpec") == 1  # after the first of the two hellos


def test_tls13_secrets_show_only_with_key_logging(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    hidden = traced13(rsa_config, tls13_context(ca))
    assert 'Derive-Secret(Handshake, "c hs traffic", ClientHello..ServerHello): hidden' in hidden
    shown = traced13(rsa_config, tls13_context(ca), reveal_secrets=True)
    assert re.search(r'"s ap traffic", [^:]*: [0-9a-f]{64}  \[RFC 8446 §7\.1\]', shown), shown


def test_tls13_json_lines_name_the_keys(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    out = io.StringIO()
    server = ServerConnection(serve13(rsa_config), HandshakeTrace("p", out, json_lines=True))
    OpenSSLClient(server, tls13_context(ca)).handshake()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    messages = [(e["arrow"], e["message"], e.get("keys")) for e in events if "message" in e]
    assert messages == [
        ("C -> S", "ClientHello", None),
        ("C <- S", "ServerHello", None),
        ("C <- S", "ChangeCipherSpec", None),
        ("C <- S", "EncryptedExtensions", "handshake"),
        ("C <- S", "Certificate", "handshake"),
        ("C <- S", "CertificateVerify", "handshake"),
        ("C <- S", "Finished", "handshake"),
        ("C -> S", "ChangeCipherSpec", None),
        ("C -> S", "Finished", "handshake"),
    ]
    keys = [e["name"] for e in events if e["event"] == "key"]
    assert keys == [
        "early secret",
        "handshake secret",
        "c hs traffic",
        "s hs traffic",
        "master secret",
        "c ap traffic",
        "s ap traffic",
        "exp master",
    ]


def test_our_key_update_is_traced(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    """At the AEAD record limit (§5.5) the server rotates its keys: the KeyUpdate goes out under
    the application keys, and OpenSSL reads what follows under the next ones."""
    out = io.StringIO()
    server = ServerConnection(serve13(rsa_config), HandshakeTrace("p", out, colour=False))
    client = OpenSSLClient(server, tls13_context(ca))
    client.handshake()
    rekey = server._rekey  # the limit is 2^24.5 records for AES-GCM: move it here instead
    assert rekey is not None
    rekey.record_limit = rekey.next_sequence
    server.send(b"after")
    assert client.receive(5) == b"after"
    assert (
        "C <- S KeyUpdate (5 bytes, encrypted with the application keys): update_not_requested: "
        "the sender's next records use the next traffic secret (§7.2)  [RFC 8446 §4.6.3]"
    ) in out.getvalue()


@pytest.mark.parametrize(
    ("request_update", "said"),
    [
        (KeyUpdateRequest.update_requested, "update_requested: "),
        (KeyUpdateRequest.update_not_requested, "update_not_requested: "),
    ],
)
def test_a_key_update_is_described(request_update: int, said: str) -> None:
    line = describe_message(KeyUpdate(request_update), tls13=True)
    assert line.startswith(said) and "next traffic secret" in line


def test_client_authentication_in_tls13(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    ctx = tls13_context(ca)
    ctx.load_cert_chain(*ALICE.write(tmp_path, "client"))
    ladder = traced13(config, ctx)
    assert re.search(
        r"C <- S CertificateRequest \(\d+ bytes, encrypted with the handshake keys\): "
        r"\d+ signature schemes; 1 CA name\(s\)  \[RFC 8446 §4\.3\.2\]",
        ladder,
    ), ladder
    assert re.search(
        r"C -> S Certificate \(\d+ bytes, encrypted with the handshake keys\): "
        r"1 certificate\(s\), \d+ bytes  \[RFC 8446 §4\.4\.2\]",
        ladder,
    ), ladder
    assert re.search(
        r"C -> S CertificateVerify \(\d+ bytes, encrypted with the handshake keys\): "
        r"ecdsa_secp256r1_sha256 signature over the transcript hash, in the client's context",
        ladder,
    ), ladder


def test_a_hello_with_thousands_of_key_shares_is_traced_in_a_bounded_line() -> None:
    shares = tuple(KeyShareEntry(0x2000 + i, b"k") for i in range(5000))
    hello = ClientHello(
        0x0303,
        bytes(32),
        b"",
        (0x1301,),
        b"\x00",
        (SupportedVersions((TLS13,)), KeyShare(shares)),
    )
    decoded = ClientHello.decode(Reader(encode_handshake(hello)[4:]))
    line = describe_message(decoded)
    assert "(1 byte), ... and 4936 more" in line
    assert len(line) < 3000
