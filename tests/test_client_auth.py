"""Client certificates with OpenSSL as the client (ssl module over MemoryBIO): what the
CertificateRequest says, who gets in, what the handler learns, and resumption keeping it.

The refusals, each with its alert, are rows of the hostile table (test_hostile.py).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import attrs
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_tls.engine.clientauth import subject_text
from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.asymmetric import CLIENT_SCHEMES
from trio_tls.engine.events import NEED_DATA, Decision, MessageObserved, Observation
from trio_tls.engine.sessions import SessionCache, SessionState, TicketKey, TicketKeys
from trio_tls.engine.wire.enums import AlertDescription, ExtensionType, HandshakeType
from trio_tls.engine.wire.errors import RemoteProtocolError, TLSError, UnsupportedCertificate
from trio_tls.engine.wire.messages import CertificateRequest

from .client_certs import (
    ALICE,
    BOB_RSA,
    CLIENT_CA,
    EXPIRED,
    STRANGER,
    T61_V3,
    ClientCert,
    client_auth,
    issue,
)
from .openssl_peer import OpenSSLClient, client_context
from .scripted_client import ScriptedClient


def context(ca: trustme.CA, tmp_path: Path, who: ClientCert | None) -> ssl.SSLContext:
    ctx = client_context(ca)
    if who is not None:
        ctx.load_cert_chain(*who.write(tmp_path, "client"))
    return ctx


def connect(
    config: ServerConfig, ctx: ssl.SSLContext, seen: list[Observation] | None = None
) -> OpenSSLClient:
    client = OpenSSLClient(ServerConnection(config, None if seen is None else seen.append), ctx)
    client.handshake()
    client.send(b"ping")
    client.server.send(b"pong")
    assert client.receive(4) == b"pong"
    return client


@pytest.mark.parametrize("who", [ALICE, BOB_RSA], ids=["ecdsa", "rsa"])
def test_a_client_certificate_reaches_the_handler(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path, who: ClientCert
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    client = connect(config, context(ca, tmp_path, who))
    info = client.server.info
    assert info is not None and info.client_certificate is not None
    leaf, root = info.client_certificate
    assert leaf == who.certificate
    assert root == x509.load_pem_x509_certificate(CLIENT_CA.cert_pem.bytes())


@pytest.mark.parametrize("send_ca_names", [True, False])
def test_the_certificate_request(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path, send_ca_names: bool
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth(send_ca_names=send_ca_names))
    seen: list[Observation] = []
    connect(config, context(ca, tmp_path, ALICE), seen)
    (request,) = [
        o.message
        for o in seen
        if isinstance(o, MessageObserved) and isinstance(o.message, CertificateRequest)
    ]
    assert request.certificate_types == (1, 64)  # rsa_sign, ecdsa_sign
    assert request.supported_signature_algorithms == CLIENT_SCHEMES
    assert not {0x0201, 0x0203, 0x0101, 0x0301, 0x0303} & set(CLIENT_SCHEMES)  # no SHA-1/MD5/224
    names = request.certificate_authorities
    ca_subject = x509.load_pem_x509_certificate(CLIENT_CA.cert_pem.bytes()).subject
    assert names == ((ca_subject.public_bytes(),) if send_ca_names else ())


def test_optional_lets_a_client_without_a_certificate_in(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth("optional"))
    client = connect(config, context(ca, tmp_path, None))
    assert client.server.info is not None
    assert client.server.info.client_certificate is None


@pytest.mark.parametrize(
    ("who", "alert", "openssl_says"),
    [
        (None, AlertDescription.handshake_failure, "HANDSHAKE_FAILURE"),
        (STRANGER, AlertDescription.unknown_ca, "UNKNOWN_CA"),
    ],
    ids=["no-certificate", "another-ca"],
)
def test_required_refuses(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    tmp_path: Path,
    who: ClientCert | None,
    alert: AlertDescription,
    openssl_says: str,
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    client = OpenSSLClient(ServerConnection(config), context(ca, tmp_path, who))
    with pytest.raises(RemoteProtocolError) as refused:
        client.handshake()
    assert refused.value.alert == alert
    client.incoming.write(bytes(client.server.data_to_send()))
    with pytest.raises(ssl.SSLError, match=openssl_says):
        client.ssl.do_handshake()


@pytest.mark.parametrize("by", ["ticket", "session-id"])
def test_resumption_keeps_the_identity_and_obeys_todays_settings(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path, by: str
) -> None:
    config = attrs.evolve(
        rsa_config,
        client_auth=client_auth("required"),
        session_cache=SessionCache(),
        ticket_keys=TicketKeys() if by == "ticket" else None,
    )
    ctx = context(ca, tmp_path, ALICE)
    if by == "session-id":
        ctx.options |= ssl.OP_NO_TICKET
    first = connect(config, ctx)
    session = first.ssl.session
    again = OpenSSLClient(ServerConnection(config), ctx)
    again.ssl = ctx.wrap_bio(
        again.incoming, again.outgoing, server_hostname="localhost", session=session
    )
    again.handshake()
    info = again.server.info
    assert info is not None and info.resumed
    assert info.client_certificate == (ALICE.certificate,)  # the leaf names the client
    # The same session under another client CA bundle: a full handshake, never a resumption.
    other = attrs.evolve(config, client_auth=attrs.evolve(config.client_auth, mode="optional"))
    later = OpenSSLClient(ServerConnection(other), ctx)
    later.ssl = ctx.wrap_bio(
        later.incoming, later.outgoing, server_hostname="localhost", session=session
    )
    later.handshake()
    assert later.server.info is not None and not later.server.info.resumed
    assert later.server.info.client_certificate is not None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_an_rsassa_pss_only_client_key_is_unsupported(tmp_path: Path) -> None:
    # Such a key may sign rsa_pss_pss_* only (RFC 4055, RFC 8446 §4.2.3), which we do not
    # offer; cryptography loads it as a plain RSA key, so the certificate's OID must decide.
    make = "openssl req -x509 -newkey rsa-pss -pkeyopt rsa_keygen_bits:2048 -nodes"
    subprocess.run(
        [*make.split(), "-keyout", "pss.key", "-out", "pss.crt", "-subj", "/CN=pss"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    leaf = x509.load_pem_x509_certificate((tmp_path / "pss.crt").read_bytes())
    with pytest.raises(UnsupportedCertificate):
        client_auth().verify([leaf.public_bytes(Encoding.DER)], time.time())


def test_a_missing_certificate_says_so(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path
) -> None:
    """Guards the message of the handshake_failure for a client that sends no certificate when
    one is required: the log line says why the client was refused."""
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    client = OpenSSLClient(ServerConnection(config), context(ca, tmp_path, None))
    with pytest.raises(
        RemoteProtocolError, match=r"^the client sent no certificate, and one is required$"
    ):
        client.handshake()


@pytest.mark.parametrize("edge", ["not_valid_before", "not_valid_after"])
def test_a_session_resumes_within_its_certificate_to_the_second(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path, edge: str
) -> None:
    """Guards the validity check on resumption, inclusive at both ends (RFC 5280 §4.1.2.5: the
    validity period includes both dates): a session whose client certificate is valid at that
    very second resumes."""
    moment = getattr(ALICE.certificate, f"{edge}_utc").timestamp()
    clock = Clock(moment if edge == "not_valid_before" else moment - 60)
    config = attrs.evolve(
        rsa_config, client_auth=client_auth("required"), ticket_keys=TicketKeys(), clock=clock
    )
    ctx = context(ca, tmp_path, ALICE)
    first = connect(config, ctx)
    clock.now = moment
    again = OpenSSLClient(ServerConnection(config), ctx)
    again.ssl = ctx.wrap_bio(
        again.incoming, again.outgoing, server_hostname="localhost", session=first.ssl.session
    )
    again.handshake()
    assert again.server.info is not None and again.server.info.resumed
    clock.now = moment - 1 if edge == "not_valid_before" else moment + 1  # one second out
    late = OpenSSLClient(ServerConnection(config), ctx)
    late.ssl = ctx.wrap_bio(
        late.incoming, late.outgoing, server_hostname="localhost", session=first.ssl.session
    )
    with pytest.raises(RemoteProtocolError):  # a full handshake, and the certificate fails it
        late.handshake()


def test_a_session_without_a_certificate_never_resumes_where_one_is_required(
    rsa_config: ServerConfig,
) -> None:
    """Guards the identity check on resumption against a session that carries no client
    certificate but the required-mode settings (which no handshake of ours makes: one sealed
    with a stolen ticket key, or a bug elsewhere): it means a full handshake, with a
    CertificateRequest, never a resumption without a certificate."""
    auth = client_auth("required")
    keys = TicketKeys([TicketKey.generate()])
    config = attrs.evolve(rsa_config, client_auth=auth, ticket_keys=keys, clock=Clock(1e9))
    state = SessionState(0xC02F, bytes(48), True, "localhost", 1e9, (), auth.epoch)
    client = ScriptedClient()
    extensions = [*client.default_extensions(), (ExtensionType.session_ticket, keys.seal(state))]
    server = ServerConnection(config)
    server.receive_data(client.client_hello(extensions=extensions))
    assert server.next_event() is NEED_DATA
    flight = client.read_server_flight(server.data_to_send())
    assert HandshakeType.certificate_request in flight.message_types


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_expired_certificate_off_the_path_is_no_reason_to_refuse() -> None:
    """Validity is checked on the verified path only: a stray expired certificate after a
    good chain (a client's bundle with an old intermediate, say) changes nothing."""
    chain = client_auth().verify(ALICE.chain + EXPIRED.chain, time.time())
    assert chain[0] == ALICE.certificate


def test_a_t61string_subject_is_shown_as_hex(
    ca: trustme.CA, rsa_config: ServerConfig, tmp_path: Path
) -> None:
    """The certificate `openssl req` + `openssl x509 -req` make for CN=café by default verifies,
    but cryptography cannot decode its subject: everything shows its DER instead."""
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    seen: list[Observation] = []
    info = connect(config, context(ca, tmp_path, T61_V3), seen).server.info
    assert info is not None
    assert info.client_subject == "der:300f310d300b06035504031404636166e9"
    repr(info)  # does not raise, as the certificate's own repr does
    assert any(
        isinstance(o, Decision) and o.reason.startswith("der:300f") and "trusted CA" in o.reason
        for o in seen
    )


def test_a_subject_is_escaped_for_display() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = "x\n2026-12-07 10:00:00,000 INFO forged\x1b[2J\x9b\u202e"
    leaf = issue(CLIENT_CA, name, key).certificate
    shown = subject_text(leaf)
    assert shown.isprintable()
    assert shown == "CN=x\\x0a2026-12-07 10:00:00\\,000 INFO forged\\x1b[2J\\x9b\\u202e"


# The byte positions of a certificate worth flipping: all of them.
FLIPS = st.tuples(st.integers(0, len(ALICE.chain[0]) - 1), st.integers(1, 255))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FLIPS, min_size=1, max_size=3, unique_by=lambda flip: flip[0]))
def test_a_byte_flipped_certificate_is_refused_with_an_alert(
    flips: list[tuple[int, int]],
) -> None:
    """Whatever cryptography makes of a damaged certificate, the verifier's answer is a
    protocol error with an alert (about 8% once escaped as ValueError and the like). A flip
    may be accepted only where it leaves what the CA signed untouched (the encoding around the
    signature, read leniently to the same value): then it is the same certificate."""
    der = bytearray(ALICE.chain[0])
    for position, mask in flips:
        der[position] ^= mask
    try:
        client_auth().verify([bytes(der)], time.time())
    except TLSError as refused:
        assert refused.alert is not None
    else:
        accepted = x509.load_der_x509_certificate(bytes(der))
        original = x509.load_der_x509_certificate(ALICE.chain[0])
        assert accepted.tbs_certificate_bytes == original.tbs_certificate_bytes
