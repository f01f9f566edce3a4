"""TLS 1.3 negotiation policy: what the server chooses from a ClientHello, and why
(RFC 8446 §4.1.1, §4.2.3, §4.2.8, §4.2.9, §4.2.11, §9.2).

Server preference throughout. A key share the client sent is taken over a round trip: a
HelloRetryRequest goes out only when none of the offered shares is of a group we serve. A PSK
resumes only with psk_dhe_ke, so every connection has forward secrecy, and only a ticket this
server sealed for TLS 1.3 with the same hash, for the same SNI and client-auth settings.
"""

from __future__ import annotations

import hmac

import attrs
from cryptography import x509

from ...config import CertifiedKey, ServerConfig
from ...crypto.asymmetric import choose_scheme
from ...crypto.key_schedule import Transcript
from ...crypto.key_schedule13 import binder_key, early_secret, finished_verify_data
from ...crypto.suites import TLS13_SUITES_BY_ID, Tls13Suite
from ...wire.enums import TLS13, ExtensionType, PskKeyExchangeMode
from ...wire.errors import (
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
)
from ...wire.extensions import (
    KeyShare,
    PreSharedKey,
    PskKeyExchangeModes,
    SignatureAlgorithms,
    SupportedGroups,
)
from ...wire.messages import ClientHello
from ..negotiate import with_identity


def check_hello(hello: ClientHello) -> None:
    """RFC 8446 §4.1.2: a TLS 1.3 ClientHello offers exactly null compression."""
    if hello.compression_methods != b"\x00":
        raise IllegalParameter("a TLS 1.3 ClientHello must offer exactly null compression")


def choose_suite(config: ServerConfig, hello: ClientHello) -> Tls13Suite:
    """Our first TLS 1.3 suite that the client offers. A client that offers 1.3 and none of
    its suites gets handshake_failure, not a 1.2 handshake: the version is chosen first."""
    offered = frozenset(hello.cipher_suites)
    for suite in config.tls13_suites:
        if suite.id in offered:
            return suite
    raise HandshakeFailure("no TLS 1.3 cipher suite in common with the client")


def choose_certificate(
    config: ServerConfig, hello: ClientHello, sni: str | None
) -> tuple[CertifiedKey, int]:
    """A certificate (those the SNI names first) and a scheme TLS 1.3 lets its key sign
    with that the client lists; missing_extension without signature_algorithms (§9.2)."""
    extension = hello.extension(SignatureAlgorithms)
    if extension is None:
        raise MissingExtension("a TLS 1.3 ClientHello without signature_algorithms")
    offered = frozenset(extension.schemes)
    for certified in config.certificates_for(sni):
        scheme = choose_scheme(certified.tls13_signature_schemes, offered)
        if scheme is not None:
            return certified, scheme
    raise HandshakeFailure("no certificate can sign with a scheme the client accepts in TLS 1.3")


@attrs.frozen
class KeyShareChoice:
    """A group and the client's share of it, ready to answer."""

    group: int
    client_share: bytes = attrs.field(repr=False)


@attrs.frozen
class RetryChoice:
    """A group the client supports but sent no share of: ask again (HelloRetryRequest)."""

    group: int


def choose_key_share(
    config: ServerConfig, hello: ClientHello, retry_group: int | None
) -> KeyShareChoice | RetryChoice:
    """Our most preferred group of which the client sent a share; else our most preferred
    group it supports, to retry with. After a retry the share must be of the group asked for.

    RFC 8446 §9.2: supported_groups and key_share come together (missing_extension); each
    share's group must be one the client lists (§4.2.8, illegal_parameter, as OpenSSL checks).
    """
    groups = hello.extension(SupportedGroups)
    shares = hello.extension(KeyShare)
    if groups is None or shares is None:
        raise MissingExtension("supported_groups and key_share must come together in TLS 1.3")
    supported = frozenset(groups.groups)
    offered = {}
    for entry in shares.shares:
        if entry.group not in supported:
            raise IllegalParameter(f"a key share of group {entry.group}, not in supported_groups")
        offered[entry.group] = entry.key_exchange
    if retry_group is not None:
        if len(shares.shares) != 1 or retry_group not in offered:
            raise IllegalParameter("the second ClientHello lacks the share the retry asked for")
        return KeyShareChoice(retry_group, offered[retry_group])
    for group in config.groups:
        if group in offered:
            return KeyShareChoice(group, offered[group])
    for group in config.groups:
        if group in supported:
            return RetryChoice(group)
    raise HandshakeFailure("no key exchange group in common with the client")


def psk_offer(hello: ClientHello) -> PreSharedKey | None:
    """The client's PSKs, if it offers any, after the checks that hold whatever we do with
    them: pre_shared_key is the last extension (§4.2.11, illegal_parameter), it comes with
    psk_key_exchange_modes (§4.2.9, missing_extension), and every identity has a binder."""
    offer = hello.extension(PreSharedKey)
    if offer is None:
        return None
    if hello.extensions.types()[-1] != ExtensionType.pre_shared_key:
        raise IllegalParameter("pre_shared_key is not the last extension of the ClientHello")
    if hello.extension(PskKeyExchangeModes) is None:
        raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
    if len(offer.identities) != len(offer.binders):
        raise IllegalParameter("pre_shared_key has as many binders as identities")
    return offer


@attrs.frozen
class Resumption:
    """A PSK the client proved it holds (its binder verified), and the session it resumes."""

    index: int
    psk: bytes = attrs.field(repr=False)
    sni: str | None
    client_chain: tuple[x509.Certificate, ...] | None


def find_psk(
    config: ServerConfig,
    hello: ClientHello,
    raw: bytes,
    offer: PreSharedKey,
    suite: Tls13Suite,
    sni: str | None,
    transcript: Transcript,
) -> Resumption | None:
    """The first identity that is a ticket we can resume with `suite`, its binder checked.

    A ticket that does not open, expired, was sealed for TLS 1.2, by another hash, for another
    SNI or client-auth setting, is skipped (§4.2.11: a server SHOULD ignore an unusable PSK).
    The binder of the one chosen must verify, or the handshake ends with decrypt_error; it is
    an HMAC over the transcript up to the binders (`transcript` holds any earlier
    ClientHello and HelloRetryRequest), compared in constant time.
    """
    modes = hello.extension(PskKeyExchangeModes)
    assert modes is not None  # psk_offer checked it
    if PskKeyExchangeMode.psk_dhe_ke not in modes.modes or config.ticket_keys is None:
        return None
    now = config.clock()
    for index, identity in enumerate(offer.identities):
        state = config.ticket_keys.open(identity.identity, now)
        if state is None or state.version != TLS13 or state.sni != sni:
            continue
        ticket_suite = TLS13_SUITES_BY_ID.get(state.suite_id)
        if ticket_suite is None or ticket_suite.hash_name != suite.hash_name:
            continue
        resumable = with_identity(config, state, now)
        if resumable is None:
            continue
        hash_name = suite.hash_name
        early = early_secret(hash_name, state.master_secret)
        truncated = raw[: len(raw) - offer.binders_length]
        expected = finished_verify_data(
            hash_name, binder_key(hash_name, early), transcript.digest_with(truncated)
        )
        if not hmac.compare_digest(expected, offer.binders[index]):
            raise DecryptError("the PSK binder does not verify")
        return Resumption(index, state.master_secret, state.sni, resumable.client_chain)
    return None
