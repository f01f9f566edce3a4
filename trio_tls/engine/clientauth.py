"""Client certificates (RFC 5246 §7.4.4, §7.4.6, §7.4.8; RFC 8446 §4.3.2, §4.4.2): whom to ask,
and checking the answer.

A ClientAuth holds what the CertificateRequest says (certificate types, the signature schemes we
verify, the distinguished names of the CAs we trust, unless configured to send none: a large
bundle's names overflow some clients' buffers) and what the chain is checked against. Path
building and checking is cryptography's (x509.verification, the client verifier): CA
certificates follow the Web PKI profile; the client's own certificate may carry any extensions,
as client certificates in the wild do, but if it names key purposes, clientAuth must be one.

Each failure is the alert RFC 5246 §7.2.2 names for it: a certificate out of its validity
period is certificate_expired, a chain to no trusted CA unknown_ca, a key we cannot verify
with unsupported_certificate, anything unparseable or otherwise refused bad_certificate.
`epoch` digests the settings that decide who gets in: a session made under other settings is
never resumed (sessions.py), so a changed CA bundle cannot be bypassed with an old ticket.
"""

from __future__ import annotations

import datetime
import hashlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, PublicKeyAlgorithmOID

from .crypto.asymmetric import CLIENT_SCHEMES, MIN_RSA_BITS, TLS13_CLIENT_SCHEMES, PublicKey
from .wire.errors import BadCertificate, CertificateExpired, UnknownCA, UnsupportedCertificate
from .wire.extensions import AnyExtension, CertificateAuthorities, SignatureAlgorithms
from .wire.messages import CertificateRequest
from .wire.messages13 import CertificateRequest13
from .wire.printable import printable

RSA_SIGN = 1  # ClientCertificateType (RFC 5246 §7.4.4)
ECDSA_SIGN = 64  # RFC 8422 §5.5
MAX_CHAIN_DEPTH = 8
_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_PURPOSES = frozenset({ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})

Mode = Literal["optional", "required"]


def _check_purpose(
    policy: verification.Policy, certificate: x509.Certificate, usage: x509.ExtendedKeyUsage | None
) -> None:
    if usage is not None and not _PURPOSES.intersection(usage):
        raise ValueError("the certificate's extended key usage does not include clientAuth")


def _client_policy() -> verification.ExtensionPolicy:
    return verification.ExtensionPolicy.permit_all().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _check_purpose
    )


def _certificates(value: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    return tuple(value)


@attrs.frozen
class ClientAuth:
    """Ask clients for a certificate and check it against `roots`."""

    roots: tuple[x509.Certificate, ...] = attrs.field(converter=_certificates)
    mode: Mode = "required"
    send_ca_names: bool = True
    request: CertificateRequest = attrs.field(init=False)
    # The TLS 1.3 form (RFC 8446 §4.3.2): the same schemes less PKCS#1 v1.5, the same names.
    request13: CertificateRequest13 = attrs.field(init=False)
    epoch: bytes = attrs.field(init=False)
    _store: verification.Store = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.roots:
            raise ValueError("client authentication needs at least one CA certificate")
        names = tuple(root.subject.public_bytes() for root in self.roots)
        request = CertificateRequest(
            (RSA_SIGN, ECDSA_SIGN), CLIENT_SCHEMES, names if self.send_ca_names else ()
        )
        extensions: list[AnyExtension] = [SignatureAlgorithms(TLS13_CLIENT_SCHEMES)]
        if self.send_ca_names:
            extensions.append(CertificateAuthorities(names))
        object.__setattr__(self, "request13", CertificateRequest13(b"", tuple(extensions)))
        digest = hashlib.sha256(self.mode.encode())
        for root in self.roots:
            digest.update(root.public_bytes(Encoding.DER))
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "epoch", digest.digest()[:16])
        object.__setattr__(self, "_store", verification.Store(list(self.roots)))

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def verify(self, chain: Sequence[bytes], now: float) -> tuple[x509.Certificate, ...]:
        """The verified chain, leaf first and root last, for the client's DER chain.

        Until it is verified the chain is hostile input, and cryptography parses some of it
        lazily: a subject, a key or a version it cannot read raises ValueError,
        UnsupportedAlgorithm or InvalidVersion at whichever step first touches it (loading,
        `public_key()`, path building). Each becomes an alert: a key of a type we do not know
        is unsupported_certificate, anything else unreadable bad_certificate (RFC 5246 §7.2.2;
        OpenSSL answers a certificate it cannot decode with bad_certificate too)."""
        try:
            with warnings.catch_warnings():
                # A certificate cryptography still loads but warns of (a serial number that
                # is not positive, against RFC 5280 §4.1.2.2) is refused, not printed.
                warnings.simplefilter("error", CryptographyDeprecationWarning)
                return self._verify(chain, now)
        except CryptographyDeprecationWarning as exc:
            raise BadCertificate(f"the client's certificate is malformed: {exc}") from None
        except UnsupportedAlgorithm as exc:
            raise UnsupportedCertificate(f"the client's certificate uses {exc}") from None
        except (ValueError, x509.InvalidVersion) as exc:
            raise BadCertificate(f"the client's certificate does not parse: {exc}") from None

    def _verify(self, chain: Sequence[bytes], now: float) -> tuple[x509.Certificate, ...]:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
        leaf, intermediates = certificates[0], certificates[1:]
        # The key's type is its OID's, read before the key: a type we do not know is then
        # unsupported_certificate whatever cryptography raises for it (ValueError in older
        # releases, UnsupportedAlgorithm in newer). An RSASSA-PSS-only key (RFC 4055), which
        # cryptography loads as a plain RSA key, may sign rsa_pss_pss_* only: not offered.
        algorithm = leaf.public_key_algorithm_oid
        if algorithm not in _KEY_ALGORITHMS:
            raise UnsupportedCertificate(f"the client's key is of type {algorithm.dotted_string}")
        key = leaf.public_key()
        if not _acceptable(key):
            raise UnsupportedCertificate(f"the client's key is a {type(key).__name__}")
        moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(moment)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=_client_policy(),
            )
            .build_client_verifier()
        )
        try:
            verified = tuple(verifier.verify(leaf, intermediates).chain)
        except verification.VerificationError as exc:
            # Validity is the path's: an expired certificate the path does not use is no
            # reason to refuse (the verifier checks the time on the certificates it chains).
            if "not valid at validation time" in str(exc):
                raise CertificateExpired(str(exc)) from None
            if "candidates exhausted" in str(exc):
                raise UnknownCA("the client's chain leads to no trusted CA") from None
            raise BadCertificate(f"the client's certificate is refused: {exc}") from None
        _check_key_usage(leaf)
        return verified


def _check_key_usage(leaf: x509.Certificate) -> None:
    """The client signs CertificateVerify with its key (RFC 5246 §7.4.8), so a leaf that limits
    its key's usage must allow digitalSignature (RFC 5280 §4.2.1.3). OpenSSL's sslclient purpose
    refuses it the same way, as X509_V_ERR_INVALID_PURPOSE: unsupported_certificate."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise UnsupportedCertificate("the client's certificate does not allow digitalSignature")


# Key types a client certificate may have: RSA (PKCS#1 v1.5 and PSS signatures alike) and ECDSA.
_KEY_ALGORITHMS = frozenset(
    {PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5, PublicKeyAlgorithmOID.EC_PUBLIC_KEY}
)


def _acceptable(key: object) -> bool:
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size >= MIN_RSA_BITS
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES


def client_public_key(chain: Sequence[x509.Certificate]) -> PublicKey:
    key = chain[0].public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UnsupportedCertificate(f"the client's key is a {type(key).__name__}")
    return key


MAX_SUBJECT_DER_SHOWN = 128  # bytes of an undecodable subject shown, as hex


def subject_text(certificate: x509.Certificate) -> str:
    """The subject as people read it: RFC 4514 text, escaped for logs and terminals
    (wire/printable.py), or `der:` and the hex of its DER when cryptography cannot decode it (a
    T61String that is not UTF-8, as `openssl req` writes with its default string mask).

    Computed once per connection (ConnectionInfo.client_subject) and shown everywhere a
    client's identity is: the log line, the handlers' pages, the trace. It never raises."""
    try:
        return printable(certificate.subject.rfc4514_string())
    except ValueError:
        der = _subject_der(certificate.tbs_certificate_bytes)
        shown = der[:MAX_SUBJECT_DER_SHOWN].hex()
        return f"der:{shown}…" if len(der) > MAX_SUBJECT_DER_SHOWN else f"der:{shown}"


def _subject_der(tbs: bytes) -> bytes:
    """The subject Name's DER inside a TBSCertificate (RFC 5280 §4.1): the sixth element, or
    the fifth when the optional [0] version is absent (b"" if the structure is not there)."""
    try:
        _, body = _element(tbs, 0)  # the TBSCertificate SEQUENCE
        offset = body[0]
        if tbs[offset] == 0xA0:  # [0] EXPLICIT version
            offset = _element(tbs, offset)[1][1]
        for _ in range(4):  # serialNumber, signature, issuer, validity
            offset = _element(tbs, offset)[1][1]
        start, (_, end) = offset, _element(tbs, offset)[1]
    except IndexError:
        return b""
    return tbs[start:end]


def _element(der: bytes, offset: int) -> tuple[int, tuple[int, int]]:
    """The tag of the DER element at `offset`, and where its contents start and it ends."""
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[start : start + size])
        start += size
    if start + length > len(der):
        raise IndexError("a DER element runs past its container")
    return tag, (start, start + length)
