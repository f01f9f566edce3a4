"""Load the server's certificate chain and private key; make a self-signed dev certificate.

Everything cryptographic is `cryptography`'s: this module only reads files, tells PEM from DER
by content (a PEM file has a `-----BEGIN` armour line, whatever its extension says), and turns the
library's assorted exceptions into one CertificateError whose message a user can act on. The
dev certificate is what `trio-tls` serves when no certificate is given: valid for localhost,
127.0.0.1 and ::1, written next to its key. Its files are replaced whole (secretfiles.replace),
the key 0600 from the first byte, and the key is read back only with `follow_symlinks=False`, so
a link planted in certs/ can neither receive the key nor hand us another. An operator's own key
may be a link (Kubernetes mounts secrets as links); whether its mode is too open is the
caller's question (key_file_mode).

`trio-tls certs` makes the same certificate for the names and validity it is given, and never
replaces an existing file unless told to (`--force`): certs/ may hold a key someone still needs.
Without force each file is created with O_EXCL, so one that appears after the check is not
replaced either; with force each is replaced whole.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..engine.config import CertificateError
from ..engine.crypto.asymmetric import PrivateKey
from .secretfiles import PRIVATE, SecretFileError, create, loose_mode, read_regular, replace

_KeyLoader = Callable[[bytes, bytes | None], PrivateKeyTypes]

CERT_FILE = "server.crt"
KEY_FILE = "server.key"
DER_FILE = "server.der"

_PEM_MARKER = b"-----BEGIN"
_PUBLIC = 0o644
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_DAYS = 365
# Apple's platforms refuse a TLS server certificate valid for more than 825 days even when the
# user trusts it by hand (support.apple.com/HT210176); a longer one would pass curl and fail
# Safari, so it is refused here instead.
MAX_DAYS = 825
# A host name label (RFC 1123 §2.1): letters, digits and inner hyphens, 63 characters at most.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_MAX_DNS_NAME = 253
_MAX_COMMON_NAME = 64  # RFC 5280's ub-common-name
# Backdating absorbs clock skew between this machine and the client checking notBefore.
_BACKDATE = datetime.timedelta(hours=1)


class CertificateExistsError(CertificateError):
    """make_self_signed would write over an existing file, and was not told to replace it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists")
        self.path = path


@attrs.frozen
class DevCertificate:
    """Where the self-signed development certificate and its key live."""

    cert_path: Path
    key_path: Path
    der_path: Path


def _read(path: str | os.PathLike[str], what: str, follow_symlinks: bool = True) -> bytes:
    """Read a whole regular file (secretfiles.read_regular: a FIFO, a device or a huge file is
    refused, never waited on), mapping errors to messages that name the file and its role."""
    try:
        return read_regular(path, follow_symlinks=follow_symlinks)
    except SecretFileError as exc:
        raise CertificateError(f"cannot read {what} file {os.fspath(path)}: {exc}") from None
    except FileNotFoundError:
        raise CertificateError(f"{what} file {os.fspath(path)} not found") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CertificateError(f"cannot read {what} file {os.fspath(path)}: {reason}") from exc


def load_certificate_chain(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Load the chain to send in the Certificate message: leaf first, then intermediates.

    A PEM file may hold several certificates (and other blocks, such as the key, which are
    skipped); a DER file holds exactly one. The order is kept as written because RFC 5246
    §7.4.2 requires the sender's certificate first and we do not second-guess the operator.
    """
    data = _read(path, "certificate")
    try:
        if _PEM_MARKER in data:
            chain = x509.load_pem_x509_certificates(data)
        else:
            chain = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateError(f"no certificate found in {os.fspath(path)}") from exc
    return chain


def load_private_key(
    path: str | os.PathLike[str], password: bytes | None = None, *, follow_symlinks: bool = True
) -> PrivateKey:
    """Load an RSA or ECDSA private key (PKCS#8 or traditional, PEM or DER, maybe encrypted)."""
    data = _read(path, "key", follow_symlinks)
    load: _KeyLoader = (
        serialization.load_pem_private_key
        if _PEM_MARKER in data
        else serialization.load_der_private_key
    )
    try:
        key = _load_quietly(load, data, password)
    except TypeError as exc:
        # cryptography signals "password needed" and "password not needed" with TypeError.
        if password is None:
            message = (
                f"key file {os.fspath(path)} is encrypted; a password is needed "
                "(name the environment variable that holds it with --keyfile-password-env)"
            )
        else:
            message = f"key file {os.fspath(path)} is not encrypted, but a password was given"
        raise CertificateError(message) from exc
    except ValueError as exc:
        # Both a wrong password and a corrupt file are ValueError; loading again without the
        # password tells them apart without depending on the library's message wording.
        if password is not None and _is_encrypted(load, data):
            message = f"cannot read key file {os.fspath(path)}: wrong password"
        else:
            message = f"no private key found in {os.fspath(path)}"
        raise CertificateError(message) from exc
    except UnsupportedAlgorithm as exc:
        raise CertificateError(
            f"key in {os.fspath(path)} uses an unsupported algorithm: {exc}"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(
            f"key in {os.fspath(path)} is {_key_kind(key)}; only RSA and ECDSA keys are supported"
        )
    return key


def _load_quietly(load: _KeyLoader, data: bytes, password: bytes | None) -> PrivateKeyTypes:
    """Load a key without the warning a DSA key gives as it loads (cryptography >= 51): such a
    key is refused by name anyway, and a warning would be a second, confusing message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return load(data, password)


def _is_encrypted(load: _KeyLoader, data: bytes) -> bool:
    try:
        _load_quietly(load, data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def _key_kind(key: object) -> str:
    """A short human name for a key class, e.g. 'an Ed25519 key' for Ed25519PrivateKey."""
    name = type(key).__name__.removesuffix("PrivateKey")
    article = "an" if name[:1].upper() in "AEIOU" else "a"
    return f"{article} {name} key"


def key_file_mode(path: str | os.PathLike[str]) -> int | None:
    """The mode of a key file that the group or others may read or write, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # gone since it was read: nothing left to warn about
        return None
    return mode if loose_mode(mode) else None


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as browsers and `openssl x509 -fingerprint` print it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def parse_name(text: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address if text is one, else a DNS name.

    A DNS name must be a host name (RFC 1123 §2.1), 253 characters at most; its first label may
    be `*`, a wildcard for one label, as the server itself matches them. ValueError says why not.
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text.isascii():
        raise ValueError("not an IP address, and a DNS name must be ASCII (use its xn-- form)")
    if len(text) > _MAX_DNS_NAME:
        raise ValueError(f"a DNS name has at most {_MAX_DNS_NAME} characters")
    labels = text.split(".")
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"not an IP address, and {label!r} is not a DNS label (letters, digits and "
                "inner hyphens, at most 63)"
            )
    return x509.DNSName(text)


def make_self_signed(
    directory: str | os.PathLike[str],
    key_type: Literal["rsa", "ecdsa"] = "rsa",
    *,
    names: Sequence[str] = DEFAULT_NAMES,
    days: int = DEFAULT_DAYS,
    force: bool = False,
) -> DevCertificate:
    """Generate a fresh key and a self-signed certificate for names and write them to directory.

    The extensions are the ones modern clients insist on (SAN, not CN, names the host; serverAuth
    EKU; CA=false), so `curl --cacert server.crt https://localhost:...` works with no flags.
    An existing file is a CertificateExistsError, checked before any work, unless force.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    alt_names = [parse_name(name) for name in dict.fromkeys(names)]
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a certificate is valid for 1 to {MAX_DAYS} days, not {days}")
    target = Path(directory)
    paths = DevCertificate(
        cert_path=target / CERT_FILE, key_path=target / KEY_FILE, der_path=target / DER_FILE
    )
    if not force:
        for path in (paths.key_path, paths.cert_path, paths.der_path):
            if os.path.lexists(path):
                raise CertificateExistsError(path)

    key: PrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key type {key_type!r}; expected 'rsa' or 'ecdsa'")

    # Clients go by the SAN; the CN is the label trust stores show, so the first name if it fits.
    first = names[0] if len(names[0]) <= _MAX_COMMON_NAME else "trio-tls development certificate"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now - _BACKDATE + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                # RSA key exchange encrypts the premaster secret to this key.
                key_encipherment=key_type == "rsa",
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Key identifiers: Python 3.13's default VERIFY_X509_STRICT checks for them.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )

    target.mkdir(parents=True, exist_ok=True)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write = replace if force else _create_new
    write(paths.key_path, pem_key, PRIVATE)
    write(paths.cert_path, certificate.public_bytes(serialization.Encoding.PEM), _PUBLIC)
    write(paths.der_path, certificate.public_bytes(serialization.Encoding.DER), _PUBLIC)
    return paths


def _create_new(path: Path, data: bytes, mode: int) -> None:
    """Create path; a file that appeared since make_self_signed looked is not replaced either."""
    if not create(path, data, mode):
        raise CertificateExistsError(path)


def ensure_dev_certificate(directory: str | os.PathLike[str]) -> tuple[DevCertificate, bool]:
    """Reuse the dev certificate if there is one, so clients that trusted it keep trusting it.

    Returns the paths and whether they were just created (the CLI then says how to trust it).
    An expired one is replaced.
    """
    target = Path(directory)
    existing = DevCertificate(
        cert_path=target / CERT_FILE, key_path=target / KEY_FILE, der_path=target / DER_FILE
    )
    if existing.cert_path.is_file() and existing.key_path.is_file():
        certificate = load_certificate_chain(existing.cert_path)[0]
        if certificate.not_valid_after_utc > datetime.datetime.now(datetime.UTC):
            if not existing.der_path.is_file():
                # The DER copy is a convenience for clients that import only DER; rebuild it.
                der = certificate.public_bytes(serialization.Encoding.DER)
                replace(existing.der_path, der, _PUBLIC)
            return existing, False
        # Expired: every client would refuse it, so a new one is the only useful answer.
    # The certificate or its key is missing, or it expired: make the pair afresh.
    return make_self_signed(target, force=True), True
