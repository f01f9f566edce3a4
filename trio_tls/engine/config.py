"""ServerConfig: everything a connection needs to negotiate, validated once and shared.

A config is frozen and made once per server, so per-connection work is only lookups: the
Certificate message of each chain is encoded here, once, and reused by every handshake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import PublicKeyAlgorithmOID

from .clientauth import ClientAuth
from .crypto.asymmetric import (
    CURVE_GROUPS,
    MIN_RSA_BITS,
    PrivateKey,
    schemes_for_key,
    tls13_schemes_for_key,
)
from .crypto.keyshare import TLS13_GROUPS
from .crypto.suites import DEFAULT_SUITES, TLS13_SUITES, AuthKind, CipherSuite, Tls13Suite
from .sessions import SessionCache, TicketKeys
from .wire.enums import TLS12, TLS13
from .wire.extensions import Extensions
from .wire.messages import Certificate, encode_handshake
from .wire.messages13 import Certificate13, CertificateEntry


class CertificateError(Exception):
    """A certificate or key problem, worded as one line for the person running the server."""


def check_key_matches(certificate: x509.Certificate, key: PrivateKey) -> None:
    """Fail early if the key cannot sign for the certificate.

    Otherwise every handshake would fail at the client with an opaque decrypt or signature
    error. Comparing the encoded SubjectPublicKeyInfo covers both RSA and EC keys in one way.
    """
    spki = PublicFormat.SubjectPublicKeyInfo
    der = Encoding.DER
    if certificate.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        subject = certificate.subject.rfc4514_string() or "(empty subject)"
        raise CertificateError(f"private key does not match the certificate for {subject}")


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in san.value.get_values_for_type(x509.DNSName))


@attrs.frozen
class CertifiedKey:
    """A certificate chain (leaf first) and the private key of its leaf."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey = attrs.field(repr=False)
    auth: AuthKind = attrs.field(init=False)
    dns_names: tuple[str, ...] = attrs.field(init=False)
    # RFC 8422 §5.1: an ECDSA certificate's curve must be one the client lists.
    curve: int | None = attrs.field(init=False)
    # What the key signs with, in our preference order; every one of them works with it.
    signature_schemes: tuple[int, ...] = attrs.field(init=False)
    # The subset TLS 1.3 allows (RFC 8446 §4.2.3): RSA-PSS only, ECDSA with its curve's hash.
    tls13_signature_schemes: tuple[int, ...] = attrs.field(init=False)
    certificate: Certificate = attrs.field(init=False, repr=False)
    certificate_message: bytes = attrs.field(init=False, repr=False)
    # The TLS 1.3 form (RFC 8446 §4.4.2): an empty request context, no per-entry extensions.
    certificate13: Certificate13 = attrs.field(init=False, repr=False)
    certificate13_message: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.chain:
            raise ValueError("a certificate chain needs at least the leaf certificate")
        if not isinstance(self.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("only RSA and ECDSA keys are supported")
        if isinstance(self.key, rsa.RSAPrivateKey) and self.key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"the RSA key has {self.key.key_size} bits; use one of at least {MIN_RSA_BITS}"
            )
        if self.chain[0].public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS:
            # Such a key may only make rsa_pss_pss_* signatures (RFC 8446 §4.2.3, RFC 4055),
            # which we do not offer; signing with rsa_pss_rsae_* or PKCS#1 would be refused.
            raise ValueError(
                "the certificate's key is RSASSA-PSS only (id-RSASSA-PSS); use an RSA key "
                "of type rsaEncryption (openssl genpkey -algorithm RSA) or an ECDSA key"
            )
        check_key_matches(self.chain[0], self.key)
        der = tuple(cert.public_bytes(Encoding.DER) for cert in self.chain)
        object.__setattr__(
            self, "auth", "rsa" if isinstance(self.key, rsa.RSAPrivateKey) else "ecdsa"
        )
        object.__setattr__(self, "dns_names", _dns_names(self.chain[0]))
        curve = None
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            curve = CURVE_GROUPS.get(self.key.curve.name)
            if curve is None:
                raise ValueError(f"unsupported ECDSA curve {self.key.curve.name}")
        object.__setattr__(self, "curve", curve)
        object.__setattr__(self, "signature_schemes", schemes_for_key(self.key))
        object.__setattr__(self, "tls13_signature_schemes", tls13_schemes_for_key(self.key))
        object.__setattr__(self, "certificate", Certificate(der))
        object.__setattr__(self, "certificate_message", encode_handshake(self.certificate))
        entries = tuple(CertificateEntry(cert, Extensions.of(())) for cert in der)
        object.__setattr__(self, "certificate13", Certificate13(b"", entries))
        object.__setattr__(self, "certificate13_message", encode_handshake(self.certificate13))

    def matches(self, host_name: str) -> bool:
        """RFC 6125 §6.4: exact match, or a wildcard standing for exactly the leftmost label."""
        parent = host_name.split(".", 1)[1] if "." in host_name else None
        return any(
            name == host_name or (name.startswith("*.") and name[2:] == parent)
            for name in self.dns_names
        )


# Explicit converters, so type checkers see what the constructor accepts.
def _certificates(value: Iterable[CertifiedKey]) -> tuple[CertifiedKey, ...]:
    return tuple(value)


def _suites(value: Iterable[CipherSuite]) -> tuple[CipherSuite, ...]:
    return tuple(value)


def _tls13_suites(value: Iterable[Tls13Suite]) -> tuple[Tls13Suite, ...]:
    return tuple(value)


def _versions(value: Iterable[int]) -> frozenset[int]:
    return frozenset(value)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _protocols(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


@attrs.frozen
class ServerConfig:
    certificates: tuple[CertifiedKey, ...] = attrs.field(converter=_certificates)
    # The protocol versions served (wire values: TLS12, TLS13).
    versions: frozenset[int] = attrs.field(default=frozenset({TLS12, TLS13}), converter=_versions)
    # TLS 1.2 suites; TLS 1.3 has its own (RFC 8446 §B.4), which name no key exchange.
    cipher_suites: tuple[CipherSuite, ...] = attrs.field(default=DEFAULT_SUITES, converter=_suites)
    tls13_suites: tuple[Tls13Suite, ...] = attrs.field(
        default=TLS13_SUITES, converter=_tls13_suites
    )
    # Key exchange groups in preference order. X25519MLKEM768 exists in TLS 1.3 only; a TLS 1.2
    # handshake skips it.
    groups: tuple[int, ...] = attrs.field(default=TLS13_GROUPS, converter=_ints)
    alpn_protocols: tuple[bytes, ...] = attrs.field(default=(), converter=_protocols)
    # RFC 6066 §3: refuse (unrecognized_name) a host name no certificate is for.
    strict_sni: bool = False
    session_cache: SessionCache | None = None
    ticket_keys: TicketKeys | None = None
    # Ask clients for certificates (RFC 5246 §7.4.4); None: never.
    client_auth: ClientAuth | None = None
    # Sessions age by this clock; tests replace it to travel in time.
    clock: Callable[[], float] = time.time

    @certificates.validator
    def _check_certificates(self, _: object, value: tuple[CertifiedKey, ...]) -> None:
        if not value:
            raise ValueError("a server needs at least one certificate")

    @versions.validator
    def _check_versions(self, _: object, value: frozenset[int]) -> None:
        if not value or not value <= {TLS12, TLS13}:
            raise ValueError("versions must be TLS 1.2, TLS 1.3 or both")

    @groups.validator
    def _check_groups(self, _: object, value: tuple[int, ...]) -> None:
        unknown = set(value) - set(TLS13_GROUPS)
        if unknown or not value:
            raise ValueError(f"unsupported groups: {sorted(unknown)}")

    @cipher_suites.validator
    def _check_suites(self, _: object, value: tuple[CipherSuite, ...]) -> None:
        if TLS12 in self.versions and not value:
            raise ValueError("at least one TLS 1.2 cipher suite is needed")

    @tls13_suites.validator
    def _check_tls13_suites(self, _: object, value: tuple[Tls13Suite, ...]) -> None:
        if TLS13 in self.versions and not value:
            raise ValueError("at least one TLS 1.3 cipher suite is needed")

    def certificates_for(self, host_name: str | None) -> tuple[CertifiedKey, ...]:
        """Certificates in the order to try for this SNI host: those it names first.

        With strict SNI only those: answering a known name with another host's certificate
        would tell the client which other names live here.
        """
        if host_name is None:
            return self.certificates
        named = tuple(c for c in self.certificates if c.matches(host_name))
        if self.strict_sni:
            return named
        return named + tuple(c for c in self.certificates if c not in named)

    def knows_host(self, host_name: str) -> bool:
        return any(c.matches(host_name) for c in self.certificates)
