"""The ClientHello in, the server's flight out (RFC 8446 §4.1, §4.3, §4.4; §7.1 for the keys).

One flight: ServerHello, then under the handshake keys EncryptedExtensions, [CertificateRequest],
Certificate, CertificateVerify and Finished; a resumption by PSK skips the certificate and its
signature. When no offered key share fits, a HelloRetryRequest asks for one, statefully and
without a cookie (as OpenSSL does by default): the transcript then starts with the first hello's
hash (§4.4.1). A client that sent a legacy_session_id gets one ChangeCipherSpec after our first
message, for middleboxes that expect TLS 1.2 (App. D.4).
"""

from __future__ import annotations

import hashlib
import os
from functools import partial

import attrs

from ...crypto.asymmetric import sign
from ...crypto.key_schedule import Transcript
from ...crypto.key_schedule13 import (
    early_secret,
    finished_verify_data,
    handshake_secret,
    master_secret,
    message_hash,
)
from ...crypto.keyshare import exchange_key_share
from ...crypto.suites import Tls13Suite
from ...record.protection import NullProtection, RecordProtection
from ...record.protection13 import SkipEarlyData
from ...wire.enums import HELLO_RETRY_REQUEST_RANDOM, TLS12, TLS13, NamedGroup, SignatureScheme
from ...wire.errors import IllegalParameter
from ...wire.extensions import (
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    EarlyData,
    KeyShareEntry,
    KeyShareRetry,
    KeyShareServer,
    SelectedIdentity,
    SelectedVersion,
    ServerName,
    SupportedGroups,
)
from ...wire.messages import (
    CertificateVerify,
    ClientHello,
    HandshakeMessage,
    ServerHello,
)
from ...wire.messages13 import EncryptedExtensions, Finished13
from ..base import AwaitingSignature, HandshakeContext, State, accepting, explain, wire_name
from ..negotiate import choose_alpn, choose_version, server_name
from .base import HandshakeSecrets, Negotiated13, derive, observe_secret
from .client import ExpectClientCertificate, ExpectClientFinished
from .negotiate import (
    KeyShareChoice,
    Resumption,
    check_hello,
    choose_certificate,
    choose_key_share,
    choose_suite,
    find_psk,
    psk_offer,
)

# Early data a client may send before learning that we refuse it, skipped unread (§4.2.10);
# past this, unexpected_message. OpenSSL's default max_early_data is 16 KiB; some room for
# the record overhead of a client that sends it in small pieces.
MAX_SKIPPED_EARLY_DATA = 2**14 + 2**12
_SERVER_SIGNATURE_CONTEXT = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00"


def start_tls13(ctx: HandshakeContext, hello: ClientHello, raw: bytes) -> State:
    """The first ClientHello of a TLS 1.3 handshake."""
    ctx.enter_tls13()
    return _answer(ctx, hello, raw, None)


@attrs.define
class ExpectSecondClientHello(State):
    """After our HelloRetryRequest: the same ClientHello with the share we asked for (§4.1.2).
    The client's middlebox-compatibility ChangeCipherSpec may come first, and is dropped."""

    accepted = accepting(ClientHello)
    first: ClientHello
    transcript: Transcript
    retry: _Retry

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, ClientHello):
            return super().handle_handshake(ctx, message, raw)
        hello, first = message, self.first
        if choose_version(ctx.config, hello) != TLS13:
            raise IllegalParameter("the second ClientHello does not offer TLS 1.3 again")
        if hello.session_id != first.session_id:
            raise IllegalParameter("the second ClientHello changes legacy_session_id")
        if choose_suite(ctx.config, hello) is not self.retry.suite:
            raise IllegalParameter("the second ClientHello drops the suite of the retry")
        if hello.extension(EarlyData) is not None:
            raise IllegalParameter("early_data in the ClientHello after a retry")  # §4.2.10
        return _answer(ctx, hello, raw, self)

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        return self


@attrs.frozen
class _Retry:
    """What the HelloRetryRequest fixed, which the second ClientHello must keep."""

    suite: Tls13Suite
    group: int
    ccs_sent: bool


def _answer(
    ctx: HandshakeContext, hello: ClientHello, raw: bytes, retried: ExpectSecondClientHello | None
) -> State:
    config = ctx.config
    check_hello(hello)
    sni = server_name(config, hello)
    suite = choose_suite(config, hello)
    offer = psk_offer(hello)
    choice = choose_key_share(config, hello, retried.retry.group if retried else None)
    if not isinstance(choice, KeyShareChoice):
        return _retry(ctx, hello, raw, suite, choice.group)
    alpn = choose_alpn(config, hello.extension(ApplicationLayerProtocolNegotiation))
    transcript = retried.transcript if retried else Transcript(suite.hash_name)
    resumption = None
    if offer is not None:
        resumption = find_psk(config, hello, raw, offer, suite, sni, transcript)
    if resumption is None:
        certified, scheme = choose_certificate(config, hello, sni)
        negotiated = Negotiated13(
            suite, hello.random, choice.group, sni, alpn, certified=certified,
            signature_scheme=scheme,
        )  # fmt: skip
    else:
        negotiated = Negotiated13(
            suite, hello.random, choice.group, resumption.sni, alpn, resumed=True,
            client_chain=resumption.client_chain,
        )  # fmt: skip
    _explain(ctx, negotiated, offer is not None, resumption)
    server_share, shared_secret = exchange_key_share(choice.group, choice.client_share)
    transcript.update(raw)
    extensions: list[AnyExtension] = [
        SelectedVersion(TLS13),
        KeyShareServer(KeyShareEntry(choice.group, server_share)),
    ]
    if resumption is not None:
        extensions.append(SelectedIdentity(resumption.index))
    server_hello = ServerHello(TLS12, os.urandom(32), hello.session_id, suite.id, 0, extensions)
    transcript.update(ctx.send_handshake(server_hello))
    ctx.negotiated_version()
    if hello.session_id and not (retried and retried.retry.ccs_sent):
        ctx.send_change_cipher_spec()
    return _send_encrypted_flight(
        ctx, hello, negotiated, transcript, shared_secret, resumption, retried is not None
    )


def _retry(
    ctx: HandshakeContext, hello: ClientHello, raw: bytes, suite: Tls13Suite, group: int
) -> State:
    """HelloRetryRequest (§4.1.4): a ServerHello with the special random, naming the group."""
    explain(
        ctx,
        "key share",
        f"HelloRetryRequest for {_group_name(group)}",
        "the client sent no share of a group this server serves, and supports "
        f"{_group_name(group)}, the first of the server's groups it lists",
        "RFC 8446 §4.1.4, §4.2.8",
    )
    transcript = Transcript(suite.hash_name)
    transcript.update(message_hash(suite.hash_name, hashlib.new(suite.hash_name, raw).digest()))
    retry_request = ServerHello(
        TLS12,
        HELLO_RETRY_REQUEST_RANDOM,
        hello.session_id,
        suite.id,
        0,
        (SelectedVersion(TLS13), KeyShareRetry(group)),
    )
    transcript.update(ctx.send_handshake(retry_request))
    # The record version is held to 0x0303 only from our ServerHello on: §5.1 lets the second
    # ClientHello's records say 0x0301 like the first's, and OpenSSL takes them.
    if hello.session_id:
        ctx.send_change_cipher_spec()
    if hello.extension(EarlyData) is not None:
        # §4.2.10: after a retry, every encrypted record before the next hello is early data.
        ctx.set_read_protection(
            SkipEarlyData(NullProtection(), MAX_SKIPPED_EARLY_DATA, trial=False)
        )
    return ExpectSecondClientHello(hello, transcript, _Retry(suite, group, bool(hello.session_id)))


def _send_encrypted_flight(
    ctx: HandshakeContext,
    hello: ClientHello,
    negotiated: Negotiated13,
    transcript: Transcript,
    shared_secret: bytes,
    resumption: Resumption | None,
    retried: bool,
) -> State:
    """The handshake keys (§7.1), then EncryptedExtensions and the authentication messages."""
    suite = negotiated.suite
    hash_name = suite.hash_name
    early = early_secret(hash_name, resumption.psk if resumption else None)
    observe_secret(ctx, negotiated, "early secret", early)
    handshake = handshake_secret(hash_name, early, shared_secret)
    observe_secret(ctx, negotiated, "handshake secret", handshake)
    hello_hash = transcript.digest()
    client_secret = derive(
        ctx, negotiated, handshake, b"c hs traffic", hello_hash, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    )
    server_secret = derive(
        ctx, negotiated, handshake, b"s hs traffic", hello_hash, "SERVER_HANDSHAKE_TRAFFIC_SECRET"
    )
    ctx.set_write_protection(suite.make_protection(server_secret))
    read: RecordProtection = suite.make_protection(client_secret, allow_plaintext_alerts=True)
    if hello.extension(EarlyData) is not None and not retried:
        read = SkipEarlyData(read, MAX_SKIPPED_EARLY_DATA, trial=True)
    ctx.set_read_protection(read)
    transcript.update(ctx.send_handshake(_encrypted_extensions(ctx, hello, negotiated)))
    flight = _FlightKeys(handshake, client_secret, server_secret)
    if resumption is not None:
        return _send_finished(ctx, negotiated, transcript, flight)
    certified, scheme = negotiated.certified, negotiated.signature_scheme
    assert certified is not None and scheme is not None  # a full handshake chose both
    client_auth = ctx.config.client_auth
    if client_auth is not None:
        transcript.update(ctx.send_handshake(client_auth.request13))
    transcript.update(ctx.send_handshake(certified.certificate13, certified.certificate13_message))
    content = _SERVER_SIGNATURE_CONTEXT + transcript.digest()
    awaiting = AwaitCertificateVerifySignature(negotiated, transcript, flight)
    return ctx.request_signature(partial(sign, certified.key, scheme, content), awaiting)


def _encrypted_extensions(
    ctx: HandshakeContext, hello: ClientHello, negotiated: Negotiated13
) -> EncryptedExtensions:
    """ALPN, the SNI acknowledgement (only when the name chose the certificate, RFC 6066 §3),
    and our groups when we would rather have used another than the one the client's share
    made us take (§4.2.7), so that its next connection can send that share instead."""
    extensions: list[AnyExtension] = []
    certified = negotiated.certified
    if negotiated.sni is not None and certified is not None and certified.matches(negotiated.sni):
        extensions.append(ServerName())
    if negotiated.alpn is not None:
        extensions.append(ApplicationLayerProtocolNegotiation((negotiated.alpn,)))
    groups = hello.extension(SupportedGroups)
    preferred = next(g for g in ctx.config.groups if groups is None or g in groups.groups)
    if preferred != negotiated.group:
        extensions.append(SupportedGroups(ctx.config.groups))
    return EncryptedExtensions(tuple(extensions))


@attrs.frozen
class _FlightKeys:
    handshake: bytes = attrs.field(repr=False)
    client: bytes = attrs.field(repr=False)
    server: bytes = attrs.field(repr=False)


@attrs.define
class AwaitCertificateVerifySignature(AwaitingSignature):
    """The flight stops at CertificateVerify until its signature is made: at once, or on a
    worker thread (events.SignatureNeeded). The client says nothing until our Finished, but
    its ChangeCipherSpec may come, and is dropped."""

    negotiated: Negotiated13
    transcript: Transcript
    keys: _FlightKeys

    def signed(self, ctx: HandshakeContext, signature: bytes) -> State:
        scheme = self.negotiated.signature_scheme
        assert scheme is not None
        self.transcript.update(ctx.send_handshake(CertificateVerify(scheme, signature)))
        return _send_finished(ctx, self.negotiated, self.transcript, self.keys)

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        return self


def _send_finished(
    ctx: HandshakeContext, negotiated: Negotiated13, transcript: Transcript, keys: _FlightKeys
) -> State:
    """Our Finished (§4.4.4), then the application keys: we may send data from here on."""
    hash_name = negotiated.suite.hash_name
    verify_data = finished_verify_data(hash_name, keys.server, transcript.digest())
    transcript.update(ctx.send_handshake(Finished13(verify_data)))
    master = master_secret(hash_name, keys.handshake)
    observe_secret(ctx, negotiated, "master secret", master)
    flight_hash = transcript.digest()
    client_secret = derive(
        ctx, negotiated, master, b"c ap traffic", flight_hash, "CLIENT_TRAFFIC_SECRET_0"
    )
    server_secret = derive(
        ctx, negotiated, master, b"s ap traffic", flight_hash, "SERVER_TRAFFIC_SECRET_0"
    )
    if ctx.observer is not None:  # no exporter API: the secret is only ever logged
        derive(ctx, negotiated, master, b"exp master", flight_hash, "EXPORTER_SECRET")
    ctx.set_write_protection(negotiated.suite.make_protection(server_secret))
    secrets = HandshakeSecrets(keys.client, master, client_secret, server_secret)
    if ctx.config.client_auth is not None and not negotiated.resumed:
        return ExpectClientCertificate(negotiated, transcript, secrets, ctx.config.client_auth)
    return ExpectClientFinished(negotiated, transcript, secrets)


def _group_name(group: int) -> str:
    return wire_name(NamedGroup, group) or str(group)


def _explain(
    ctx: HandshakeContext,
    negotiated: Negotiated13,
    offered_psk: bool,
    resumption: Resumption | None,
) -> None:
    if ctx.observer is None:
        return
    explain(
        ctx,
        "cipher suite",
        negotiated.suite.name,
        "the first of the server's TLS 1.3 suites that the client offers",
        "RFC 8446 §4.1.1",
    )
    explain(
        ctx,
        "key share",
        _group_name(negotiated.group),
        "the first of the server's groups of which the client sent a share",
        "RFC 8446 §4.2.8",
    )
    if resumption is not None:
        explain(
            ctx,
            "resumption",
            "PSK with (EC)DHE",
            f"identity {resumption.index} is a ticket of this server, its binder verified",
            "RFC 8446 §4.2.11, §4.6.1",
        )
        return
    explain(
        ctx,
        "resumption",
        "full handshake",
        "none of the client's PSKs is a ticket this server can resume here (unknown, expired, "
        "from TLS 1.2, or of another hash, SNI or client-auth setting)"
        if offered_psk
        else "the client offers no PSK",
        "RFC 8446 §4.2.11",
    )
    certified = negotiated.certified
    assert certified is not None
    explain(
        ctx,
        "signature scheme",
        str(wire_name(SignatureScheme, negotiated.signature_scheme)),
        f"the first that the {certified.auth.upper()} key can make in TLS 1.3 and the client "
        "lists in signature_algorithms",
        "RFC 8446 §4.2.3, §4.4.3",
    )
