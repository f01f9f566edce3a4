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
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.name import _ASN1Type
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
    key_usage: x509.KeyUsage | None = None,
    subject: x509.Name | None = None,
) -> ClientCert:
    """A leaf for `name` (or `subject`), with an extended key usage unless `purposes` is
    empty, and a key usage when one is given."""
    ca_key = _ca_key(ca)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=2))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
    )
    if purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return ClientCert(builder.sign(ca_key, hashes.SHA256()), key)


def _ca_key(ca: trustme.CA) -> CertificateIssuerPrivateKeyTypes:
    ca_key = load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(ca_key, CertificateIssuerPrivateKeyTypes)
    return ca_key


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8)
    return bytes((tag, 0x80 | len(octets))) + octets + body


_ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_T61_PLACEHOLDER = b"\x14\x04cafX"  # CN T61String "cafX", as the builder writes it
_T61_CAFE = b"\x14\x04caf\xe9"  # ... and as `openssl req` writes café by default: Latin-1


def t61_client(
    ca: trustme.CA, *, version1: bool = False, not_after: datetime.datetime | None = None
) -> ClientCert:
    """A leaf whose subject is CN=café in a T61String of Latin-1 bytes, which cryptography
    cannot decode: what stock `openssl req` (default string_mask, no -utf8) then `openssl x509
    -req` make, as version 3 with extensions (-extfile) or version 1 without. cryptography's
    builder writes neither, so the TBSCertificate is edited and signed again with the CA key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cn = x509.NameAttribute(NameOID.COMMON_NAME, "cafX", _type=_ASN1Type.T61String)
    made = issue(
        ca,
        "",
        key,
        not_after=not_after,
        purposes=() if version1 else (ExtendedKeyUsageOID.CLIENT_AUTH,),
        subject=x509.Name([cn]),
    )
    tbs = made.certificate.tbs_certificate_bytes
    assert tbs.count(_T61_PLACEHOLDER) == 1
    tbs = tbs.replace(_T61_PLACEHOLDER, _T61_CAFE)
    if version1:  # without the [0] version: v1 is its DEFAULT (made without extensions)
        body = _contents(tbs)
        tbs = _der(0x30, body[len(_first_element(body)) :])
    return ClientCert(resigned(ca, tbs), key)


def resigned(ca: trustme.CA, tbs: bytes) -> x509.Certificate:
    """The certificate made of this TBSCertificate, signed by the CA's ECDSA P-256 key."""
    ca_key = _ca_key(ca)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return x509.load_der_x509_certificate(
        _der(0x30, tbs + _ECDSA_WITH_SHA256 + _der(0x03, b"\x00" + signature))
    )


def _contents(der: bytes) -> bytes:
    """The contents of the DER element `der` (whose length fits what _der writes)."""
    size = der[1]
    start = 2 + (size & 0x7F if size & 0x80 else 0)
    return der[start:]


def _first_element(body: bytes) -> bytes:
    size = body[1]
    if size & 0x80:
        count = size & 0x7F
        return body[: 2 + count + int.from_bytes(body[2 : 2 + count])]
    return body[: 2 + size]


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


def edited(who: ClientCert, old: bytes, new: bytes) -> tuple[bytes, ...]:
    """The DER of `who`'s certificate with one run of bytes replaced (its signature then fails,
    but what is wrong is found before the signature is checked)."""
    der = who.chain[0]
    assert der.count(old) == 1
    return (der.replace(old, new),)


def _off_curve(who: ClientCert) -> tuple[bytes, ...]:
    point = who.certificate.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return edited(who, point, point[:-1] + bytes((point[-1] ^ 1,)))


def _negative_serial(who: ClientCert) -> tuple[bytes, ...]:
    serial = who.certificate.serial_number
    content = serial.to_bytes(serial.bit_length() // 8 + 1)  # DER: a leading 0 bit
    encoded = bytes((0x02, len(content))) + content
    return edited(who, encoded, encoded[:2] + bytes((content[0] | 0x80,)) + content[1:])


# Hostile chains: what each must not do is escape verification as anything but an alert.
UNKNOWN_KEY_OID = edited(
    ALICE, bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209")
)
OFF_CURVE = _off_curve(ALICE)
NEGATIVE_SERIAL = _negative_serial(ALICE)
VERSION_87 = edited(ALICE, bytes.fromhex("a003020102"), bytes.fromhex("a003020157"))
T61_V3 = t61_client(CLIENT_CA)
T61_V1 = t61_client(CLIENT_CA, version1=True)
T61_EXPIRED = t61_client(CLIENT_CA, not_after=NOW - datetime.timedelta(days=1))
NO_DIGITAL_SIGNATURE = issue(
    CLIENT_CA,
    "frank",
    ec.generate_private_key(ec.SECP256R1()),
    key_usage=x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    ),
)
