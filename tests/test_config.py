"""ServerConfig and CertifiedKey refuse, when they are made, what could never complete a
handshake: the mistake surfaces once, with its reason, rather than as a handshake_failure for
every client later. (A weak RSA key, an RSASSA-PSS key and a key that does not match its
certificate: test_certs.py.)"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from trio_tls.engine.config import CertifiedKey, ServerConfig
from trio_tls.engine.wire.enums import NamedGroup

from .conftest import certified_key


def self_signed(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def no_chain(leaf: trustme.LeafCert) -> object:
    return CertifiedKey((), certified_key(leaf).key)


def ed25519_key(leaf: trustme.LeafCert) -> object:
    key = ed25519.Ed25519PrivateKey.generate()
    return CertifiedKey((self_signed(key),), key)  # type: ignore[arg-type]


def secp256k1_key(leaf: trustme.LeafCert) -> object:
    key = ec.generate_private_key(ec.SECP256K1())
    return CertifiedKey((self_signed(key),), key)


def no_certificates(leaf: trustme.LeafCert) -> object:
    return ServerConfig([])


def unknown_group(leaf: trustme.LeafCert) -> object:
    return ServerConfig([certified_key(leaf)], groups=[NamedGroup.x25519, 0x1234])


def no_groups(leaf: trustme.LeafCert) -> object:
    return ServerConfig([certified_key(leaf)], groups=[])


def no_suites(leaf: trustme.LeafCert) -> object:
    return ServerConfig([certified_key(leaf)], cipher_suites=[])


def no_tls13_suites(leaf: trustme.LeafCert) -> object:
    return ServerConfig([certified_key(leaf)], tls13_suites=[])


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (no_chain, ValueError, "a certificate chain needs at least the leaf certificate"),
        (ed25519_key, TypeError, "only RSA and ECDSA keys are supported"),
        (secp256k1_key, ValueError, "unsupported ECDSA curve secp256k1"),
        (no_certificates, ValueError, "a server needs at least one certificate"),
        (unknown_group, ValueError, "unsupported groups: [4660]"),
        (no_groups, ValueError, "unsupported groups: []"),
        (no_suites, ValueError, "at least one TLS 1.2 cipher suite is needed"),
        (no_tls13_suites, ValueError, "at least one TLS 1.3 cipher suite is needed"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_configuration_that_cannot_work_is_refused_when_made(
    rsa_leaf: trustme.LeafCert,
    make: Callable[[trustme.LeafCert], object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as refused:
        make(rsa_leaf)
    assert str(refused.value) == message


def test_what_it_refuses_differs_from_what_it_takes(rsa_leaf: trustme.LeafCert) -> None:
    """The same calls with one thing right are accepted: the refusals above are about that
    one thing."""
    key = ec.generate_private_key(ec.SECP384R1())
    assert CertifiedKey((self_signed(key),), key).curve == NamedGroup.secp384r1
    config = ServerConfig([certified_key(rsa_leaf)], groups=[NamedGroup.x25519])
    assert config.groups == (NamedGroup.x25519,)
