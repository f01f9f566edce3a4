"""Shared fixtures: certificates from trustme and a server config built on them."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from trio_tls.engine.config import CertifiedKey, ServerConfig
from trio_tls.engine.crypto.asymmetric import PrivateKey


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


def certified_key(cert: trustme.LeafCert) -> CertifiedKey:
    chain = tuple(x509.load_pem_x509_certificate(pem.bytes()) for pem in cert.cert_chain_pems)
    key = load_pem_private_key(cert.private_key_pem.bytes(), None)
    assert isinstance(key, PrivateKey)
    return CertifiedKey(chain, key)


@pytest.fixture(scope="session")
def rsa_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)


@pytest.fixture(scope="session")
def ecdsa_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)


@pytest.fixture(scope="session")
def rsa_config(rsa_leaf: trustme.LeafCert) -> ServerConfig:
    return ServerConfig([certified_key(rsa_leaf)])


@pytest.fixture(scope="session")
def dual_config(rsa_leaf: trustme.LeafCert, ecdsa_leaf: trustme.LeafCert) -> ServerConfig:
    return ServerConfig([certified_key(rsa_leaf), certified_key(ecdsa_leaf)])


def issue_p384(ca: trustme.CA, host: str = "localhost") -> CertifiedKey:
    """An ECDSA P-384 leaf signed by the trustme CA (trustme itself only makes P-256 leaves)."""
    ca_key = load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return CertifiedKey((cert,), key)


@pytest.fixture(scope="session")
def full_config(
    ca: trustme.CA, rsa_leaf: trustme.LeafCert, ecdsa_leaf: trustme.LeafCert
) -> ServerConfig:
    """RSA, ECDSA P-256 and ECDSA P-384 certificates for the same name."""
    return ServerConfig([certified_key(rsa_leaf), certified_key(ecdsa_leaf), issue_p384(ca)])


@pytest.fixture
async def server_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for servers a test starts; cancelled when the test ends."""
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()
