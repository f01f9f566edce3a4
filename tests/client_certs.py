"""Client certificates for the tests: a client CA, another CA, and leaves good and bad.

Leaves are made with cryptography, signed by the trustme CA's key, so that validity and key type
can be bent (an expired one, an Ed25519 one) where trustme's own leaves cannot.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trio_tls.engine.clientauth import ClientAuth, Mode

NOW = datetime.datetime.now(datetime.UTC)


@attrs.frozen
class ClientCert:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    @property
    def chain(self) -> tuple[bytes, ...]:
        return (self.certificate.public_bytes(Encoding.DER),)

    def write(self, base: Path, name: str) -> tuple[str, str]:
        """PEM files (certificate, key) for curl, s_client and ssl.load_cert_chain."""
        cert_path, key_path = base / f"{name}.crt", base / f"{name}.key"
        cert_path.write_bytes(self.certificate.public_bytes(Encoding.PEM))
        key_path.write_bytes(
            self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
        key_path.chmod(0o600)
        return str(cert_path), str(key_path)


def issue(
    ca: trustme.CA,
    name: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    *,
    not_after: datetime.datetime | None = None,
    purposes: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
) -> ClientCert:
    ca_key = load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(ca_key, CertificateIssuerPrivateKeyTypes)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=2))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ClientCert(certificate, key)


CLIENT_CA = trustme.CA(key_type=trustme.KeyType.ECDSA)
OTHER_CA = trustme.CA(key_type=trustme.KeyType.ECDSA)
ALICE = issue(CLIENT_CA, "alice", ec.generate_private_key(ec.SECP256R1()))
BOB_RSA = issue(CLIENT_CA, "bob", rsa.generate_private_key(public_exponent=65537, key_size=2048))
STRANGER = issue(OTHER_CA, "mallory", ec.generate_private_key(ec.SECP256R1()))
EXPIRED = issue(
    CLIENT_CA,
    "carol",
    ec.generate_private_key(ec.SECP256R1()),
    not_after=NOW - datetime.timedelta(days=1),
)
ED25519 = issue(CLIENT_CA, "dave", ed25519.Ed25519PrivateKey.generate())
SERVER_ONLY = issue(
    CLIENT_CA,
    "erin",
    ec.generate_private_key(ec.SECP256R1()),
    purposes=(ExtendedKeyUsageOID.SERVER_AUTH,),
)


def client_auth(mode: Mode = "required", *, send_ca_names: bool = True) -> ClientAuth:
    return ClientAuth(
        (x509.load_pem_x509_certificate(CLIENT_CA.cert_pem.bytes()),),
        mode,
        send_ca_names=send_ca_names,
    )
