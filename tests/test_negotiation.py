"""What gets negotiated with OpenSSL (ssl module over MemoryBIO): suites, groups, certificates,
SNI and ALPN, in the server's preference order. A client without supported_groups, which OpenSSL
never is, is tlslite-ng in test_tlslite.py."""

from __future__ import annotations

import ssl

import pytest
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import ALL_SUITES, CipherSuite
from trio_tls.engine.wire.enums import AlertDescription
from trio_tls.engine.wire.errors import RemoteProtocolError

from .conftest import certified_key
from .openssl_peer import OpenSSLClient, client_context
from .scripted_client import ScriptedClient

OPENSSL_GROUPS = {"x25519": "X25519", "secp256r1": "prime256v1", "secp384r1": "secp384r1"}


def connect(
    config: ServerConfig, ctx: ssl.SSLContext, server_hostname: str | None = "localhost"
) -> OpenSSLClient:
    client = OpenSSLClient(ServerConnection(config), ctx, server_hostname=server_hostname)
    client.handshake()
    return client


def deliver(client: OpenSSLClient) -> None:
    """Hand the alert the server queued to OpenSSL, which reports it as an SSLError."""
    client.incoming.write(bytes(client.server.data_to_send()))
    client.ssl.do_handshake()


@pytest.mark.parametrize("group", list(OPENSSL_GROUPS))
@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.openssl_name)
def test_every_suite_and_group_carries_data(
    ca: trustme.CA, full_config: ServerConfig, suite: CipherSuite, group: str
) -> None:
    ctx = client_context(ca, suite.openssl_name)
    if group != "x25519":
        ctx.set_ecdh_curve(OPENSSL_GROUPS[group])
    # else OpenSSL's default list (x25519 first, then the NIST curves an ECDSA certificate
    # needs): our preference picks x25519.
    client = connect(full_config, ctx)
    assert client.ssl.cipher()[0] == suite.openssl_name  # type: ignore[index]
    info = client.server.info
    assert info is not None
    assert (info.cipher_suite, info.group) == (suite.name, group)
    payload = bytes(range(256)) * 200  # several records each way
    client.send(payload)
    received = b"".join(e.data for e in client.events if hasattr(e, "data"))
    assert received == payload
    client.server.send(payload)
    assert client.receive(len(payload)) == payload


def test_server_preference_order(ca: trustme.CA, dual_config: ServerConfig) -> None:
    # OpenSSL's own order puts AES-256 first; ours puts AES-128-GCM with ECDSA first.
    client = connect(dual_config, client_context(ca, "ECDHE+AESGCM:ECDHE+CHACHA20"))
    assert client.ssl.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # type: ignore[index]


def test_an_x25519_only_client(ca: trustme.CA, dual_config: ServerConfig) -> None:
    ctx = client_context(ca, "ECDHE+AESGCM:ECDHE+CHACHA20")
    try:
        ctx.set_ecdh_curve("X25519")
    except ssl.SSLError:  # Python < 3.11.4's ssl takes only curves OpenSSL calls EC curves
        pytest.skip("this Python's ssl cannot offer X25519 alone")
    assert connect(dual_config, ctx).server.info.group == "x25519"  # type: ignore[union-attr]


def test_rsa_only_client_gets_the_rsa_certificate(
    ca: trustme.CA, dual_config: ServerConfig
) -> None:
    client = connect(dual_config, client_context(ca, "ECDHE-RSA-CHACHA20-POLY1305"))
    cert = client.ssl.getpeercert(binary_form=True)
    assert cert == dual_config.certificates[0].certificate.certificate_list[0]


def test_ecdsa_certificate_follows_the_client_curves(
    ca: trustme.CA, full_config: ServerConfig
) -> None:
    """RFC 8422 §5.1: a client that only has P-384 gets the P-384 certificate."""
    for curve, leaf_index, scheme in (
        ("secp384r1", 2, "ecdsa_secp384r1_sha384"),
        ("prime256v1", 1, "ecdsa_secp256r1_sha256"),
    ):
        ctx = client_context(ca, "ECDHE-ECDSA-AES256-GCM-SHA384")
        ctx.set_ecdh_curve(curve)
        client = connect(full_config, ctx)
        cert = client.ssl.getpeercert(binary_form=True)
        assert cert == full_config.certificates[leaf_index].certificate.certificate_list[0]
        assert client.server.info is not None
        assert client.server.info.signature_scheme == scheme


def test_sni_selects_between_two_certificates(ca: trustme.CA) -> None:
    a = certified_key(ca.issue_cert("a.example", key_type=trustme.KeyType.RSA))
    b = certified_key(ca.issue_cert("*.b.example", key_type=trustme.KeyType.RSA))
    config = ServerConfig([a, b])
    ctx = client_context(ca)
    for host, expected in (("a.example", a), ("www.b.example", b), ("other.example", a)):
        ctx.check_hostname = host != "other.example"
        client = connect(config, ctx, server_hostname=host)
        cert = client.ssl.getpeercert(binary_form=True)
        assert cert == expected.certificate.certificate_list[0], host
        assert client.server.info is not None and client.server.info.sni == host
    ctx.check_hostname = False
    # A wildcard covers exactly one label.
    client = connect(config, ctx, server_hostname="x.www.b.example")
    assert client.ssl.getpeercert(binary_form=True) == a.certificate.certificate_list[0]


def test_strict_sni_refuses_unknown_names(ca: trustme.CA, rsa_leaf: trustme.LeafCert) -> None:
    config = ServerConfig([certified_key(rsa_leaf)], strict_sni=True)
    ctx = client_context(ca)
    ctx.check_hostname = False
    client = OpenSSLClient(ServerConnection(config), ctx, server_hostname="unknown.example")
    with pytest.raises(RemoteProtocolError) as info:
        client.handshake()
    assert info.value.alert == AlertDescription.unrecognized_name
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        deliver(client)
    assert connect(config, ctx, server_hostname="localhost").server.info is not None


def test_strict_sni_never_answers_with_another_hosts_certificate(ca: trustme.CA) -> None:
    # a.example has only an ECDSA certificate; b.example an RSA one. An RSA-only client asking
    # for a.example must not get b.example's certificate, which would name a co-hosted site.
    a = certified_key(ca.issue_cert("a.example", key_type=trustme.KeyType.ECDSA))
    b = certified_key(ca.issue_cert("b.example", key_type=trustme.KeyType.RSA))
    ctx = client_context(ca)
    ctx.check_hostname = False  # to see what the lenient server sends
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    lenient = connect(ServerConfig([a, b]), ctx, server_hostname="a.example")
    assert lenient.ssl.getpeercert(binary_form=True) == b.certificate.certificate_list[0]
    strict = ServerConfig([a, b], strict_sni=True)
    client = OpenSSLClient(ServerConnection(strict), ctx, server_hostname="a.example")
    with pytest.raises(RemoteProtocolError) as info:
        client.handshake()
    assert info.value.alert == AlertDescription.handshake_failure
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        deliver(client)
    served = connect(strict, ctx, server_hostname="b.example")
    assert served.ssl.getpeercert(binary_form=True) == b.certificate.certificate_list[0]


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ((b"h2", b"http/1.1"), ["http/1.1", "h2"], "h2"),
        ((b"http/1.1",), ["h2", "http/1.1"], "http/1.1"),
        ((b"http/1.1",), None, None),
        ((), ["h2"], None),
    ],
)
def test_alpn(
    ca: trustme.CA,
    rsa_leaf: trustme.LeafCert,
    ours: tuple[bytes, ...],
    theirs: list[str] | None,
    expected: str | None,
) -> None:
    config = ServerConfig([certified_key(rsa_leaf)], alpn_protocols=ours)
    ctx = client_context(ca)
    if theirs is not None:
        ctx.set_alpn_protocols(theirs)
    client = connect(config, ctx)
    assert client.ssl.selected_alpn_protocol() == expected
    assert client.server.info is not None and client.server.info.alpn == expected


def test_alpn_without_overlap_is_no_application_protocol(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    config = ServerConfig([certified_key(rsa_leaf)], alpn_protocols=[b"h2"])
    ctx = client_context(ca)
    ctx.set_alpn_protocols(["http/1.1"])
    client = OpenSSLClient(ServerConnection(config), ctx)
    with pytest.raises(RemoteProtocolError) as info:
        client.handshake()
    assert info.value.alert == AlertDescription.no_application_protocol
    with pytest.raises(ssl.SSLError, match="no application protocol"):
        deliver(client)


def test_unknown_groups_only_is_handshake_failure(rsa_config: ServerConfig) -> None:
    server = ServerConnection(rsa_config)
    server.receive_data(ScriptedClient(groups=[0x0A0A, 30, 0x11EC]).client_hello())
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.alert == AlertDescription.handshake_failure


@pytest.mark.parametrize("schemes", [None, (0x0203,)], ids=["no-extension", "ecdsa_sha1-only"])
def test_an_ecdsa_key_never_signs_with_sha1(
    full_config: ServerConfig, schemes: tuple[int, ...] | None
) -> None:
    """Guards the signature scheme for ECDSA keys when the client names none we allow: without
    signature_algorithms RFC 5246 §7.4.1.4.1 would have us sign with ecdsa_sha1, which RFC 9155
    §2 forbids, so an ECDHE-ECDSA-only client gets handshake_failure, as one listing only
    ecdsa_sha1 does; never a signature made with a scheme the client did not offer. (The same
    for RSA keys is a row of test_hostile.py's table.)"""
    client = ScriptedClient(suites=(0xC02B, 0xC02C, 0xCCA9), schemes=schemes)
    server = ServerConnection(full_config)
    server.receive_data(client.client_hello())
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.alert == AlertDescription.handshake_failure
