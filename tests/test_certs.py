"""Certificate and key loading and the generated dev certificate, against trustme and ssl."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import shutil
import ssl
import stat
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from trio_tls.engine.config import CertificateError, CertifiedKey, ServerConfig, check_key_matches
from trio_tls.engine.crypto.asymmetric import SCHEMES, sign
from trio_tls.ops.certs import (
    MAX_DAYS,
    CertificateExistsError,
    ensure_dev_certificate,
    fingerprint_sha256,
    load_certificate_chain,
    load_private_key,
    make_self_signed,
    parse_name,
)

KEY_TYPES = [trustme.KeyType.RSA, trustme.KeyType.ECDSA]


@pytest.fixture(params=KEY_TYPES, ids=["rsa", "ecdsa"])
def issued(request: pytest.FixtureRequest) -> trustme.LeafCert:
    """A leaf signed by an intermediate, so the chain has two certificates."""
    root = trustme.CA(key_type=request.param)
    intermediate = root.create_child_ca(key_type=request.param)
    return intermediate.issue_cert("localhost", key_type=request.param)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def pkcs8(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def test_pem_chain_keeps_leaf_first(tmp_path: Path, issued: trustme.LeafCert) -> None:
    pems = [blob.bytes() for blob in issued.cert_chain_pems]
    chain = load_certificate_chain(write(tmp_path / "chain.pem", b"".join(pems)))
    assert len(chain) == 2
    assert [der(c) for c in chain] == [der(x509.load_pem_x509_certificate(p)) for p in pems]
    assert chain[0].issuer == chain[1].subject


def test_pem_chain_with_key_in_same_file(tmp_path: Path, issued: trustme.LeafCert) -> None:
    path = tmp_path / "both.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(path))
    chain = load_certificate_chain(path)
    key = load_private_key(path)
    assert len(chain) == 2
    check_key_matches(chain[0], key)


def test_der_certificate_and_keys(tmp_path: Path, issued: trustme.LeafCert) -> None:
    leaf = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    # Extension deliberately says PEM: detection goes by content.
    chain = load_certificate_chain(write(tmp_path / "leaf.pem", der(leaf)))
    assert [der(c) for c in chain] == [der(leaf)]

    pem_key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        blob = pem_key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        key = load_private_key(write(tmp_path / "key.der", blob))
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        check_key_matches(leaf, key)


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_encrypted_key(
    tmp_path: Path, issued: trustme.LeafCert, encoding: serialization.Encoding
) -> None:
    plain = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    blob = plain.private_bytes(
        encoding, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3")
    )
    path = write(tmp_path / "enc.key", blob)

    key = load_private_key(path, password=b"s3")
    assert pkcs8(key) == pkcs8(plain)

    with pytest.raises(CertificateError, match="wrong password") as wrong:
        load_private_key(path, password=b"nope")
    assert str(wrong.value) == f"cannot read key file {path}: wrong password"

    with pytest.raises(CertificateError, match="is encrypted; a password is needed"):
        load_private_key(path)


def test_password_for_plain_key_is_reported(tmp_path: Path, issued: trustme.LeafCert) -> None:
    path = write(tmp_path / "plain.key", issued.private_key_pem.bytes())
    with pytest.raises(CertificateError, match="not encrypted, but a password was given"):
        load_private_key(path, password=b"x")


def test_mismatched_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    first, second = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    leaf = load_certificate_chain(write(tmp_path / "a.crt", first.cert_chain_pems[0].bytes()))[0]
    other = load_private_key(write(tmp_path / "b.key", second.private_key_pem.bytes()))
    with pytest.raises(CertificateError, match="does not match the certificate"):
        check_key_matches(leaf, other)


def _dsa_key() -> PrivateKeyTypes:
    """A DSA key, which cryptography deprecates from 51 on: the warning is expected here only
    (older releases give none), and the key is made inside the test, never at collection."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
        return dsa.generate_private_key(key_size=2048)


@pytest.mark.parametrize(
    "make_key", [ed25519.Ed25519PrivateKey.generate, _dsa_key], ids=["ed25519", "dsa"]
)
def test_unsupported_key_type(tmp_path: Path, make_key: Callable[[], PrivateKeyTypes]) -> None:
    blob = pkcs8(make_key())
    with pytest.raises(CertificateError, match="only RSA and ECDSA keys are supported"):
        load_private_key(write(tmp_path / "odd.key", blob))


def test_missing_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(CertificateError) as cert_error:
        load_certificate_chain(missing)
    assert str(cert_error.value) == f"certificate file {missing} not found"
    with pytest.raises(CertificateError, match=r"^key file .*nope\.crt not found$"):
        load_private_key(missing)
    with pytest.raises(CertificateError, match="is a directory"):
        load_certificate_chain(tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage\x00\x01",
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    ],
    ids=["empty", "binary", "bad-pem"],
)
def test_garbage_files(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "garbage", data)
    with pytest.raises(CertificateError) as cert_error:
        load_certificate_chain(path)
    assert str(cert_error.value) == f"no certificate found in {path}"
    with pytest.raises(CertificateError) as key_error:
        load_private_key(path)
    assert str(key_error.value) == f"no private key found in {path}"


def test_key_file_given_as_certificate(tmp_path: Path, issued: trustme.LeafCert) -> None:
    path = write(tmp_path / "server.key", issued.private_key_pem.bytes())
    with pytest.raises(CertificateError, match="no certificate found in"):
        load_certificate_chain(path)


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_generated_certificate(tmp_path: Path, key_type: str) -> None:
    directory = tmp_path / "new" / "certs"
    dev = make_self_signed(directory, key_type=key_type)  # type: ignore[arg-type]
    assert dev.cert_path == directory / "server.crt"
    assert dev.key_path == directory / "server.key"
    assert stat.S_IMODE(os.stat(dev.key_path).st_mode) == 0o600

    (certificate,) = load_certificate_chain(dev.cert_path)
    assert load_certificate_chain(dev.der_path) == [certificate]
    assert dev.der_path.read_bytes() == der(certificate)
    key = load_private_key(dev.key_path)
    check_key_matches(certificate, key)
    assert dev.key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    if key_type == "rsa":
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048
        assert key.private_numbers().public_numbers.e == 65537
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)

    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_encipherment == (key_type == "rsa")
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert validity.days == 365


def test_generated_key_file_is_made_private(tmp_path: Path) -> None:
    key_path = tmp_path / "server.key"
    key_path.write_bytes(b"old")
    key_path.chmod(0o644)
    make_self_signed(tmp_path, force=True)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600


@pytest.mark.parametrize("existing", ["server.key", "server.crt", "server.der"])
def test_existing_files_are_never_replaced_without_force(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"someone's")
    with pytest.raises(CertificateExistsError) as error:
        make_self_signed(tmp_path, key_type="ecdsa")
    assert error.value.path == tmp_path / existing
    assert str(error.value) == f"{tmp_path / existing} exists"
    # Checked before anything is written: no half-made pair beside the file.
    assert [path.name for path in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_bytes() == b"someone's"


def test_a_file_that_appears_meanwhile_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate = ec.generate_private_key

    def generate_while_another_writes(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
        (tmp_path / "server.crt").write_bytes(b"theirs")
        return generate(curve)

    monkeypatch.setattr(ec, "generate_private_key", generate_while_another_writes)
    with pytest.raises(CertificateExistsError):
        make_self_signed(tmp_path, key_type="ecdsa")
    assert (tmp_path / "server.crt").read_bytes() == b"theirs"


def test_a_link_is_never_followed_and_force_replaces_it(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    link = certs / "server.key"
    link.symlink_to(tmp_path / "dangling")
    with pytest.raises(CertificateExistsError):  # even a dangling link exists
        make_self_signed(certs, key_type="ecdsa")
    assert not (tmp_path / "dangling").exists()

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link.unlink()
    link.symlink_to(victim)
    dev = make_self_signed(certs, key_type="ecdsa", force=True)
    assert victim.read_bytes() == b"precious"
    assert not dev.key_path.is_symlink()
    assert stat.S_IMODE(os.stat(dev.key_path).st_mode) == 0o600
    check_key_matches(load_certificate_chain(dev.cert_path)[0], load_private_key(dev.key_path))


def test_names_and_days(tmp_path: Path) -> None:
    names = ["example.test", "*.example.test", "10.0.0.7", "2001:db8::1", "example.test"]
    dev = make_self_signed(tmp_path, key_type="ecdsa", names=names, days=30)
    (certificate,) = load_certificate_chain(dev.cert_path)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test", "*.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert certificate.subject.rfc4514_string() == "CN=example.test"
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert validity == datetime.timedelta(days=30)


@pytest.mark.parametrize(
    "name",
    ["localhost", "a-b.example", "xn--bcher-kva.de", "*.example.test", "a" * 63 + ".test", "::1"],
)
def test_parse_name_accepts(name: str) -> None:
    parsed = parse_name(name)
    expected = x509.IPAddress if ":" in name else x509.DNSName
    assert isinstance(parsed, expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "'' is not a DNS label"),
        ("a b", "'a b' is not a DNS label"),
        ("-a.test", "'-a' is not a DNS label"),
        ("a-.test", "'a-' is not a DNS label"),
        ("a..test", "'' is not a DNS label"),
        ("example.test.", "'' is not a DNS label"),
        ("a_b.test", "'a_b' is not a DNS label"),
        ("a" * 64 + ".test", "is not a DNS label"),
        ("a.*.test", "'*' is not a DNS label"),
        ("*", "'*' is not a DNS label"),
        ("[::1]", "is not a DNS label"),
        ("10.0.0.0/8", "is not a DNS label"),
        ("x." * 127, "at most 253 characters"),
        ("bücher.de", "use its xn-- form"),
    ],
)
def test_parse_name_refuses(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"not an IP address|at most 253") as error:
        parse_name(name)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "1 to 825 days, not 0"),
        ({"days": MAX_DAYS + 1}, "not 826"),
        ({"names": []}, "at least one name"),
        ({"names": ["localhost", "a b"]}, "'a b' is not a DNS label"),
    ],
)
def test_make_self_signed_refuses(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_self_signed(tmp_path, key_type="ecdsa", **kwargs)
    assert not list(tmp_path.iterdir())


def test_generated_certificate_completes_an_ssl_handshake(tmp_path: Path) -> None:
    """OpenSSL, via Python's ssl, must accept the pair as a server and trust it as a client."""
    dev = make_self_signed(tmp_path, key_type="ecdsa")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(dev.cert_path, dev.key_path)
    client_ctx = ssl.create_default_context(cafile=str(dev.cert_path))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on

    for hostname in ("localhost", "127.0.0.1", "::1"):
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        done = {client: False, server: False}
        for _ in range(10):
            for side in (client, server):
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            s_in.write(c_out.read())
            c_in.write(s_out.read())
            if all(done.values()):
                break
        assert all(done.values()), hostname


def test_ensure_dev_certificate_is_idempotent(tmp_path: Path) -> None:
    first, created = ensure_dev_certificate(tmp_path)
    assert created
    cert_bytes = first.cert_path.read_bytes()
    key_bytes = first.key_path.read_bytes()

    second, created_again = ensure_dev_certificate(tmp_path)
    assert not created_again
    assert second == first
    assert second.cert_path.read_bytes() == cert_bytes
    assert second.key_path.read_bytes() == key_bytes

    second.der_path.unlink()
    third, _ = ensure_dev_certificate(tmp_path)
    assert third.der_path.read_bytes() == der(load_certificate_chain(third.cert_path)[0])

    first.key_path.unlink()
    fourth, created_after_loss = ensure_dev_certificate(tmp_path)
    assert created_after_loss
    assert fourth.cert_path.read_bytes() != cert_bytes


def test_an_expired_dev_certificate_is_renewed(tmp_path: Path) -> None:
    dev, _ = ensure_dev_certificate(tmp_path)
    key = load_private_key(dev.key_path)
    old = load_certificate_chain(dev.cert_path)[0]
    expired = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(old.not_valid_before_utc - datetime.timedelta(days=30))
        .not_valid_after(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    dev.cert_path.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    renewed, created = ensure_dev_certificate(tmp_path)
    assert created
    leaf = load_certificate_chain(renewed.cert_path)[0]
    assert leaf.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def test_fingerprint_format(tmp_path: Path) -> None:
    dev = make_self_signed(tmp_path, key_type="ecdsa")
    (certificate,) = load_certificate_chain(dev.cert_path)
    fingerprint = fingerprint_sha256(certificate)
    digest = hashlib.sha256(dev.der_path.read_bytes()).hexdigest().upper()
    assert fingerprint == ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    assert len(fingerprint) == 32 * 3 - 1


def test_an_rsa_key_under_2048_bits_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="1024 bits; use one of at least 2048"):
        CertifiedKey((certificate,), key)


def test_every_scheme_a_key_offers_signs(full_config: ServerConfig) -> None:
    """No scheme the server may choose can fail in sign() for any key it accepted."""
    for certified in full_config.certificates:
        public = certified.key.public_key()
        for scheme in certified.signature_schemes:
            signature = sign(certified.key, scheme, b"data")
            info = SCHEMES[scheme]
            if isinstance(public, rsa.RSAPublicKey):
                pad: padding.AsymmetricPadding = (
                    padding.PSS(padding.MGF1(info.hash()), padding.PSS.DIGEST_LENGTH)
                    if info.kind == "rsa_pss"
                    else padding.PKCS1v15()
                )
                public.verify(signature, b"data", pad, info.hash())
            else:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                public.verify(signature, b"data", ec.ECDSA(info.hash()))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_an_rsassa_pss_certificate_is_refused(tmp_path: Path) -> None:
    # cryptography cannot make one; OpenSSL can, and such keys sign only rsa_pss_pss_*.
    make = "openssl req -x509 -newkey rsa-pss -pkeyopt rsa_keygen_bits:2048 -nodes"
    subprocess.run(
        [*make.split(), "-keyout", "pss.key", "-out", "pss.crt", "-subj", "/CN=localhost"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    chain = load_certificate_chain(tmp_path / "pss.crt")
    with pytest.raises(ValueError, match="RSASSA-PSS only"):
        CertifiedKey(tuple(chain), load_private_key(tmp_path / "pss.key"))
