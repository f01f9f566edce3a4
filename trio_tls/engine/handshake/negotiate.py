"""Negotiation policy for a ClientHello: what the server chooses, and why (RFC 5246 §7.4.1.2,
RFC 8422 §5.1, RFC 7301 §3.2, RFC 6066 §3, RFC 5077).

Server preference throughout: suite, certificate and signature scheme, group, ALPN; a session
offered by ticket or ID is resumed when it may be. hello.py sends what is chosen here; the
`explain_*` functions tell the observer each choice and its reason (Decision events).
"""

from __future__ import annotations

import datetime
import os

import attrs
from cryptography import x509

from ..clientauth import subject_text
from ..config import CertifiedKey, ServerConfig
from ..crypto.asymmetric import TLS12_GROUPS, choose_scheme
from ..crypto.suites import CipherSuite
from ..sessions import SessionState
from ..wire.enums import (
    TLS10,
    TLS12,
    TLS13,
    TLS13_DOWNGRADE_TLS12,
    TLS_FALLBACK_SCSV,
    ECPointFormat,
    NamedGroup,
    SignatureScheme,
)
from ..wire.errors import (
    HandshakeFailure,
    IllegalParameter,
    InappropriateFallback,
    NoApplicationProtocol,
    ProtocolVersionError,
    UnrecognizedName,
)
from ..wire.extensions import (
    ApplicationLayerProtocolNegotiation,
    ECPointFormats,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
)
from ..wire.messages import ClientHello
from ..wire.printable import byte_count
from .base import (
    HandshakeContext,
    Negotiated,
    explain,
    wire_name,
)


def choose_version(config: ServerConfig, hello: ClientHello) -> int:
    """The version to speak: the highest both sides have (RFC 8446 §4.2.1, RFC 5246 App. E.1).

    A client that sends supported_versions is judged by that list alone (a TLS 1.3 client's
    legacy_version says 1.2), though a legacy_version below TLS 1.0 is refused as OpenSSL does.
    A client without it speaks at most TLS 1.2, whatever its legacy_version says above that.
    A client below 1.2 gets protocol_version even with TLS_FALLBACK_SCSV, since RFC 7507 §3
    puts an unsupported version before inappropriate_fallback. A 1.2 client that signals a
    fallback while this server speaks 1.3 was pushed down by an attacker (RFC 7507 §3).
    """
    versions = hello.extension(SupportedVersions)
    if versions is not None:
        if hello.client_version < TLS10:
            raise ProtocolVersionError(f"legacy_version {hello.client_version:#06x}")
        offered = (v for v in (TLS13, TLS12) if v in config.versions and v in versions.versions)
        chosen = next(offered, None)
        if chosen is None:
            served = " or ".join(_version_name(v) for v in (TLS13, TLS12) if v in config.versions)
            raise ProtocolVersionError(f"supported_versions does not list {served}")
    elif hello.client_version < TLS12:
        raise ProtocolVersionError(f"client version {hello.client_version:#06x} is below TLS 1.2")
    elif TLS12 not in config.versions:
        raise ProtocolVersionError("a TLS 1.2 client (no supported_versions); only 1.3 is served")
    else:
        chosen = TLS12
    if chosen == TLS12 and TLS13 in config.versions and TLS_FALLBACK_SCSV in hello.cipher_suites:
        raise InappropriateFallback("TLS_FALLBACK_SCSV from a TLS 1.2 client; TLS 1.3 is served")
    return chosen


def _version_name(version: int) -> str:
    return f"TLS 1.{(version & 0xFF) - 1}"


def server_random(config: ServerConfig) -> bytes:
    """A TLS 1.2 ServerHello.random; from a server that also speaks 1.3 it ends with the
    downgrade sentinel, which a 1.3 client checks to detect a forced downgrade (RFC 8446 §4.1.3)."""
    if TLS13 in config.versions:
        return os.urandom(24) + TLS13_DOWNGRADE_TLS12
    return os.urandom(32)


def check_hello(hello: ClientHello) -> None:
    """The ClientHello rules of a TLS 1.2 handshake."""
    if 0 not in hello.compression_methods:
        raise IllegalParameter("the client does not offer null compression")
    renegotiation = hello.extension(RenegotiationInfo)
    if renegotiation is not None and renegotiation.renegotiated_connection:
        # RFC 5746 §3.6
        raise HandshakeFailure("renegotiation_info is not empty on an initial handshake")
    point_formats = hello.extension(ECPointFormats)
    if point_formats is not None and ECPointFormat.uncompressed not in point_formats.formats:
        # RFC 8422 §5.1.2
        raise IllegalParameter("the client does not accept uncompressed points")


def server_name(config: ServerConfig, hello: ClientHello) -> str | None:
    extension = hello.extension(ServerName)
    if extension is None or not extension.host_name:
        return None
    if config.strict_sni and not config.knows_host(extension.host_name):
        raise UnrecognizedName(f"no certificate for {extension.host_name!r}")
    return extension.host_name


def choose_group(config: ServerConfig, offered: SupportedGroups | None) -> int:
    """Our most preferred group the client supports.

    A client that sends no supported_groups is taken to support secp256r1, the curve every
    ECC implementation must have (RFC 8422 §5.1.1).
    """
    client_groups = offered.groups if offered is not None else (NamedGroup.secp256r1,)
    for group in config.groups:
        if group in client_groups and group in TLS12_GROUPS:
            return group
    raise HandshakeFailure("no ECDHE group in common with the client")


def choose_suite(
    config: ServerConfig, hello: ClientHello, sni: str | None
) -> tuple[CipherSuite, CertifiedKey, int]:
    """Server preference: our first suite the client offers for which a certificate can sign
    with a scheme the client accepts; certificates named by the SNI host are tried first.

    An ECDSA certificate's curve must also be among the client's supported_groups (RFC 8422
    §5.1), when it sends them. A client without signature_algorithms would have us sign with
    SHA-1 (RFC 5246 §7.4.1.4.1), which RFC 9155 §2 forbids: handshake_failure.
    """
    extension = hello.extension(SignatureAlgorithms)
    if extension is None:
        raise HandshakeFailure("no signature_algorithms, and the SHA-1 default is not allowed")
    # Sets: a hello may list tens of thousands of suites or schemes.
    offered_schemes = frozenset(extension.schemes)
    offered_suites = frozenset(hello.cipher_suites)
    groups = hello.extension(SupportedGroups)
    candidates = config.certificates_for(sni)
    for suite in config.cipher_suites:
        if suite.id not in offered_suites:
            continue
        for certified in candidates:
            if certified.auth != suite.auth:
                continue
            if certified.curve is not None and groups and certified.curve not in groups.groups:
                continue
            scheme = choose_scheme(certified.signature_schemes, offered_schemes)
            if scheme is not None:
                return suite, certified, scheme
    raise HandshakeFailure("no cipher suite, certificate and signature scheme fit the client")


def choose_alpn(
    config: ServerConfig, offered: ApplicationLayerProtocolNegotiation | None
) -> bytes | None:
    """RFC 7301 §3.2: server preference; no overlap is fatal only if we serve ALPN at all."""
    if offered is None or not config.alpn_protocols:
        return None
    for protocol in config.alpn_protocols:
        if protocol in offered.protocols:
            return protocol
    raise NoApplicationProtocol("none of the client's ALPN protocols is served here")


@attrs.frozen
class Resumable:
    """A session that may be resumed, and the client certificate it carries, parsed once."""

    state: SessionState
    client_chain: tuple[x509.Certificate, ...] | None


def find_session(
    config: ServerConfig, hello: ClientHello, sni: str | None, ems: bool
) -> Resumable | None:
    """A session the client may resume: from its ticket, else from its session ID.

    Anything doubtful — unknown, expired or tampered, another SNI, a suite we no longer
    offer — means a full handshake. A client that offers a session but not its cipher suite
    breaks RFC 5246 §7.4.1.2's MUST (illegal_parameter, as OpenSSL and NSS answer). And a
    session resumes only if it was made with the extended master secret and the client
    offers it again (RFC 7627 §5.3): an EMS session offered without EMS is a downgrade (MUST
    abort, handshake_failure); a session without EMS is never resumed, with a full handshake
    whether the client now offers EMS (MUST NOT resume, SHOULD do a full handshake) or not
    (SHOULD abort; OpenSSL resumes it, as "legacy insecure resumption"). Not the abort: the
    ticket came from this server (hello.py's _full_handshake), and a client must not fail for
    offering back what it was given.
    """
    now = config.clock()
    state = None
    ticket = hello.extension(SessionTicket)
    if ticket is not None and ticket.ticket and config.ticket_keys is not None:
        state = config.ticket_keys.open(ticket.ticket, now)
    if state is None and hello.session_id and config.session_cache is not None:
        state = config.session_cache.lookup(hello.session_id, now)
    if state is None or state.version != TLS12 or state.sni != sni:
        return None
    if all(suite.id != state.suite_id for suite in config.cipher_suites):
        return None
    if state.suite_id not in hello.cipher_suites:
        raise IllegalParameter("the client offers a session without its cipher suite")
    if state.extended_master_secret and not ems:
        raise HandshakeFailure("resuming an extended-master-secret session without it")
    if not state.extended_master_secret:
        return None
    return with_identity(config, state, now)


def with_identity(config: ServerConfig, state: SessionState, now: float) -> Resumable | None:
    """A session resumes only under the client-auth settings it was made under, and only while
    the client certificate it carries is still valid: today's settings would refuse it else."""
    client_auth = config.client_auth
    if state.auth_epoch != (client_auth.epoch if client_auth is not None else b""):
        return None
    if not state.client_chain:
        required = client_auth is not None and client_auth.required
        return None if required else Resumable(state, None)
    chain = tuple(x509.load_der_x509_certificate(der) for der in state.client_chain)
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if not chain[0].not_valid_before_utc <= moment <= chain[0].not_valid_after_utc:
        return None
    return Resumable(state, chain)


def explain_version(ctx: HandshakeContext, hello: ClientHello, version: int) -> None:
    if ctx.observer is None:
        return
    config = ctx.config
    ours = " and ".join(_version_name(v) for v in sorted(config.versions, reverse=True))
    versions = hello.extension(SupportedVersions)
    if versions is None:
        reason = (
            f"the client sends no supported_versions: it speaks at most TLS 1.2 (its version "
            f"is {hello.client_version:#06x}); this server speaks {ours}"
        )
    else:
        listed = ", ".join(f"{v:#06x}" for v in versions.versions)
        reason = (
            f"the highest both speak: supported_versions lists {listed}; this server speaks {ours}"
        )
    rfc = "RFC 8446 §4.2.1" if version == TLS13 else "RFC 5246 App. E.1, RFC 8446 §4.2.1"
    explain(ctx, "version", _version_name(version), reason, rfc)


def explain_full_handshake(
    ctx: HandshakeContext, hello: ClientHello, negotiated: Negotiated, acknowledge_sni: bool
) -> None:
    """Why the suite, certificate, signature scheme and group are the ones chosen."""
    if ctx.observer is None:
        return
    suite, certified = negotiated.suite, negotiated.certified
    assert certified is not None and negotiated.group is not None
    explain(
        ctx,
        "cipher suite",
        suite.name,
        f"the first of the server's suites that the client offers ({len(hello.cipher_suites)} "
        "offered) and a certificate can serve",
        "RFC 5246 §7.4.1.3",
    )
    name = negotiated.sni
    explain(
        ctx,
        "certificate",
        f"{certified.auth.upper()}, for "
        + (", ".join(certified.dns_names) or subject_text(certified.chain[0])),
        f"it names {name}" if acknowledge_sni else "the first that fits: no SNI name matched",
        "RFC 6066 §3, RFC 8422 §5.1",
    )
    explain(
        ctx,
        "signature scheme",
        str(wire_name(SignatureScheme, negotiated.signature_scheme)),
        f"the first that the {certified.auth.upper()} key can make and the client lists in "
        "signature_algorithms",
        "RFC 5246 §7.4.1.4.1",
    )
    groups = hello.extension(SupportedGroups)
    explain(
        ctx,
        "group",
        NamedGroup(negotiated.group).name,
        "the first of the server's groups in the client's supported_groups"
        if groups is not None
        else "the client sent no supported_groups: secp256r1, which every client has",
        "RFC 8422 §5.1.1",
    )


# RFC 8446 §4.1.2 and Appendix D.4: a client that offers TLS 1.3 fills legacy_session_id with
# 32 random bytes, so that middleboxes see what looks like a TLS 1.2 resumption attempt.
COMPATIBILITY_ID_LENGTH = 32


def why_not_resumed(hello: ClientHello) -> tuple[str, str]:
    """The reason a ClientHello gets a full handshake, and its RFC: what was offered, if
    anything, and (on a TLS 1.3 client's first visit) what its session ID really is."""
    ticket = (hello.extension(SessionTicket) or SessionTicket()).ticket
    versions = hello.extension(SupportedVersions)
    if ticket:
        offered = f"a ticket of {byte_count(len(ticket))}"
    elif not hello.session_id:
        return "the client offers no session to resume", "RFC 5246 §7.3"
    elif (
        len(hello.session_id) == COMPATIBILITY_ID_LENGTH
        and versions is not None
        and TLS13 in versions.versions
    ):
        return (
            "the client's session ID is none this server knows: a client that offers TLS 1.3 "
            f"sends a random {COMPATIBILITY_ID_LENGTH}-byte legacy_session_id for middlebox "
            "compatibility, so on a first visit there is no session to resume",
            "RFC 8446 §4.1.2, App. D.4",
        )
    else:
        offered = f"a session ID of {byte_count(len(hello.session_id))}"
    return (
        f"the session offered ({offered}) cannot be resumed (unknown, expired, or another SNI, "
        "suite or client-auth setting)",
        "RFC 5246 §7.3",
    )
