"""Shared fixtures: certificates from trustme and a server config built on them."""

from __future__ import annotations

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from trio_tls.config import CertifiedKey, ServerConfig
from trio_tls.kx import PrivateKey


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
