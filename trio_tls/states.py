"""The server handshake as a chain of states (RFC 5246 §7.3, full handshake).

    ExpectClientHello -> ExpectClientKeyExchange -> ExpectChangeCipherSpec -> ExpectFinished
    -> Traffic

Each state holds only what exists at that point of the handshake (no ephemeral key after the
key exchange, no handshake secrets once traffic flows) and answers the one message it expects;
anything else is unexpected_message. `handle_*` returns the next state. The code reads top to
bottom as the RFC does: ClientHello in, the server's first flight out, and so on.
"""

from __future__ import annotations

import hmac
import os
from typing import Protocol

import attrs

from .config import CertifiedKey, ServerConfig
from .enums import (
    TLS12,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    TLS_FALLBACK_SCSV,
    ECPointFormat,
    NamedGroup,
    SignatureScheme,
)
from .errors import (
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InappropriateFallback,
    NoApplicationProtocol,
    NoRenegotiation,
    ProtocolVersionError,
    UnexpectedMessage,
)
from .events import ConnectionInfo, Observer, SecretsEstablished
from .keys import (
    VERIFY_DATA_LENGTH,
    TrafficKeys,
    Transcript,
    extended_master_secret,
    key_block,
    master_secret,
    verify_data,
)
from .kx import EphemeralKey, choose_scheme, sign
from .messages import (
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    ClientHello,
    ClientKeyExchange,
    ECPointFormats,
    ExtendedMasterSecret,
    Finished,
    HandshakeMessage,
    RenegotiationInfo,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    ServerName,
    SignatureAlgorithms,
    SupportedGroups,
)
from .protection import RecordProtection
from .suites import CipherSuite


class HandshakeContext(Protocol):
    """What a state may do to its connection: the connection implements this."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def observer(self) -> Observer | None: ...

    def send_handshake(self, message: HandshakeMessage, encoded: bytes | None = None) -> bytes:
        """Queue a handshake message (or its pre-encoded bytes); return the bytes queued."""
        ...

    def negotiated_version(self) -> None:
        """From now on every record must carry version TLS 1.2."""
        ...

    def set_read_protection(self, protection: RecordProtection) -> None: ...

    def change_write_protection(self, protection: RecordProtection) -> None:
        """Send ChangeCipherSpec, then protect every later record with `protection`."""
        ...

    def handshake_complete_event(self, info: ConnectionInfo) -> None: ...


class State:
    """A state refuses every message; subclasses accept the one they expect."""

    accepts_application_data = False

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        raise UnexpectedMessage(f"{type(message).__name__} in state {type(self).__name__}")

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        raise UnexpectedMessage(f"ChangeCipherSpec in state {type(self).__name__}")


@attrs.frozen
class Negotiated:
    """The parameters fixed by ClientHello / ServerHello."""

    suite: CipherSuite
    certified: CertifiedKey
    group: int
    signature_scheme: int
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    sni: str | None
    alpn: bytes | None

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            version="TLSv1.2",
            cipher_suite=self.suite.name,
            sni=self.sni,
            alpn=self.alpn.decode("ascii", "replace") if self.alpn is not None else None,
            resumed=False,
            extended_master_secret=self.extended_master_secret,
            group=_name(NamedGroup, self.group),
            signature_scheme=_name(SignatureScheme, self.signature_scheme),
        )


def _name(enum: type[NamedGroup] | type[SignatureScheme], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _check_version(hello: ClientHello) -> None:
    """RFC 5246 App. E.1, RFC 7507 §3. A TLS 1.3 client has legacy_version 0x0303: it gets 1.2."""
    if hello.client_version >= TLS12:
        return
    if TLS_FALLBACK_SCSV in hello.cipher_suites:
        raise InappropriateFallback("fallback below TLS 1.2, which this server supports")
    raise ProtocolVersionError(f"client version {hello.client_version:#06x} is below TLS 1.2")


def _choose_group(config: ServerConfig, offered: SupportedGroups | None) -> int:
    """Our most preferred group the client supports.

    A client that sends no supported_groups is taken to support secp256r1, the curve every
    ECC implementation must have (RFC 8422 §5.1.1).
    """
    client_groups = offered.groups if offered is not None else (NamedGroup.secp256r1,)
    for group in config.groups:
        if group in client_groups:
            return group
    raise HandshakeFailure("no ECDHE group in common with the client")


def _choose_suite(
    config: ServerConfig, hello: ClientHello, sni: str | None
) -> tuple[CipherSuite, CertifiedKey]:
    """Server preference: the first of our suites the client offers that a certificate serves."""
    for suite in config.cipher_suites:
        if suite.id in hello.cipher_suites:
            certified = config.certificate_for(suite.auth, sni)
            if certified is not None:
                return suite, certified
    raise HandshakeFailure("no cipher suite in common with the client")


def _choose_alpn(
    config: ServerConfig, offered: ApplicationLayerProtocolNegotiation | None
) -> bytes | None:
    """RFC 7301 §3.2: server preference; no overlap is fatal only if we serve ALPN at all."""
    if offered is None or not config.alpn_protocols:
        return None
    for protocol in config.alpn_protocols:
        if protocol in offered.protocols:
            return protocol
    raise NoApplicationProtocol("none of the client's ALPN protocols is served here")


class ExpectClientHello(State):
    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, ClientHello):
            return super().handle_handshake(ctx, message, raw)
        hello = message
        config = ctx.config
        _check_version(hello)
        if 0 not in hello.compression_methods:
            raise IllegalParameter("the client does not offer null compression")
        renegotiation = hello.extension(RenegotiationInfo)
        if renegotiation is not None and renegotiation.renegotiated_connection:
            raise HandshakeFailure("renegotiation_info is not empty on an initial handshake")
        point_formats = hello.extension(ECPointFormats)
        if point_formats is not None and ECPointFormat.uncompressed not in point_formats.formats:
            raise IllegalParameter("the client does not accept uncompressed points")
        server_name = hello.extension(ServerName)
        sni = server_name.host_name if server_name is not None and server_name.host_name else None
        suite, certified = _choose_suite(config, hello, sni)
        group = _choose_group(config, hello.extension(SupportedGroups))
        signature_algorithms = hello.extension(SignatureAlgorithms)
        scheme = choose_scheme(
            certified.key,
            signature_algorithms.schemes if signature_algorithms is not None else None,
        )
        alpn = _choose_alpn(config, hello.extension(ApplicationLayerProtocolNegotiation))

        negotiated = Negotiated(
            suite=suite,
            certified=certified,
            group=group,
            signature_scheme=scheme,
            client_random=hello.random,
            server_random=os.urandom(32),
            extended_master_secret=hello.extension(ExtendedMasterSecret) is not None,
            sni=sni,
            alpn=alpn,
        )
        extensions: list[AnyExtension] = []
        if renegotiation is not None or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites:
            extensions.append(RenegotiationInfo())
        if negotiated.extended_master_secret:
            extensions.append(ExtendedMasterSecret())
        if point_formats is not None:
            extensions.append(ECPointFormats((ECPointFormat.uncompressed,)))
        if sni is not None:
            extensions.append(ServerName())
        if alpn is not None:
            extensions.append(ApplicationLayerProtocolNegotiation((alpn,)))

        transcript = Transcript(suite.prf_hash)
        transcript.update(raw)
        server_hello = ServerHello(
            server_version=TLS12,
            random=negotiated.server_random,
            session_id=b"",
            cipher_suite=suite.id,
            extensions=tuple(extensions),
        )
        transcript.update(ctx.send_handshake(server_hello))
        ctx.negotiated_version()
        transcript.update(ctx.send_handshake(certified.certificate, certified.certificate_message))

        ephemeral = EphemeralKey(group)
        params = ServerKeyExchange.encode_params(group, ephemeral.public)
        signature = sign(
            certified.key, scheme, negotiated.client_random + negotiated.server_random + params
        )
        key_exchange = ServerKeyExchange(group, ephemeral.public, scheme, signature)
        transcript.update(ctx.send_handshake(key_exchange))
        transcript.update(ctx.send_handshake(ServerHelloDone()))
        return ExpectClientKeyExchange(negotiated, transcript, ephemeral)


@attrs.define
class ExpectClientKeyExchange(State):
    negotiated: Negotiated
    transcript: Transcript
    ephemeral: EphemeralKey

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, ClientKeyExchange):
            return super().handle_handshake(ctx, message, raw)
        negotiated = self.negotiated
        suite = negotiated.suite
        self.transcript.update(raw)
        pre_master_secret = self.ephemeral.exchange(message.public)
        if negotiated.extended_master_secret:
            master = extended_master_secret(
                suite.prf_hash, pre_master_secret, self.transcript.digest()
            )
        else:
            master = master_secret(
                suite.prf_hash,
                pre_master_secret,
                negotiated.client_random,
                negotiated.server_random,
            )
        if ctx.observer is not None:
            ctx.observer(SecretsEstablished(negotiated.client_random, master))
        keys = key_block(
            suite.prf_hash,
            master,
            negotiated.client_random,
            negotiated.server_random,
            suite.key_length,
            suite.iv_length,
        )
        return ExpectChangeCipherSpec(negotiated, self.transcript, master, keys)


@attrs.define
class ExpectChangeCipherSpec(State):
    negotiated: Negotiated
    transcript: Transcript
    master_secret: bytes = attrs.field(repr=False)
    keys: TrafficKeys = attrs.field(repr=False)

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        suite = self.negotiated.suite
        ctx.set_read_protection(suite.make_protection(self.keys.client_key, self.keys.client_iv))
        return ExpectFinished(self.negotiated, self.transcript, self.master_secret, self.keys)


@attrs.define
class ExpectFinished(State):
    negotiated: Negotiated
    transcript: Transcript
    master_secret: bytes = attrs.field(repr=False)
    keys: TrafficKeys = attrs.field(repr=False)

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if not isinstance(message, Finished):
            return super().handle_handshake(ctx, message, raw)
        suite = self.negotiated.suite
        if len(message.verify_data) != VERIFY_DATA_LENGTH:
            raise DecodeError("Finished verify_data has the wrong length")
        expected = verify_data(
            suite.prf_hash, self.master_secret, b"client finished", self.transcript.digest()
        )
        if not hmac.compare_digest(expected, message.verify_data):
            raise DecryptError("the client's Finished does not verify")
        self.transcript.update(raw)

        ctx.change_write_protection(
            suite.make_protection(self.keys.server_key, self.keys.server_iv)
        )
        server_verify = verify_data(
            suite.prf_hash, self.master_secret, b"server finished", self.transcript.digest()
        )
        ctx.send_handshake(Finished(server_verify))
        ctx.handshake_complete_event(self.negotiated.info())
        return Traffic()


class Traffic(State):
    """Application data flows; a new ClientHello (renegotiation) is refused."""

    accepts_application_data = True

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        if isinstance(message, ClientHello):
            raise NoRenegotiation("renegotiation is not supported")
        return super().handle_handshake(ctx, message, raw)
