"""One full handshake in memory: trio-tls's ServerConnection vs OpenSSL's server, same client.

Both servers face the same OpenSSL client over ssl.MemoryBIO, with the same RSA-2048
certificate, suite (ECDHE-RSA-AES128-GCM-SHA256) and group (P-256) as the socket benchmarks
(bench.common), interleaved run by run so machine noise hits both alike. "server" times only the
server's own calls; "total" includes the client's work. With no sockets and no event loop this
isolates the protocol engine: the difference to the socket benchmarks is what trio, TLSStream
or SSLStream, and the kernel add. Only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import datetime
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trio_tls import ServerConfig, ServerConnection
from trio_tls.engine.clientauth import ClientAuth
from trio_tls.engine.events import NEED_DATA
from trio_tls.ops.certs import make_self_signed

from .common import SUITE, client_context, stdlib_server_context, trio_tls_config

RUNS = 200
# name -> (total seconds per handshake, server-side seconds per handshake), one pair per run
Samples = dict[str, tuple[list[float], list[float]]]


def trio_tls_handshake(client_ctx: ssl.SSLContext, config: ServerConfig) -> tuple[float, float]:
    start = time.perf_counter()
    server_time = 0.0
    to_client, to_server = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, to_server)
    t = time.perf_counter()
    server = ServerConnection(config)
    server_time += time.perf_counter() - t
    client_done = False
    while server.info is None:
        # TLS 1.3's client is done before the server has read its Finished (and sent its
        # tickets): the server's last step comes after, as OpenSSL's server's does below.
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        t = time.perf_counter()
        server.receive_data(to_server.read())
        while server.next_event() is not NEED_DATA:
            pass
        to_client.write(server.data_to_send())
        server_time += time.perf_counter() - t
    return time.perf_counter() - start, server_time


def openssl_handshake(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext
) -> tuple[float, float]:
    start = time.perf_counter()
    server_time = 0.0
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    t = time.perf_counter()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    server_time += time.perf_counter() - t
    client_done = server_done = False
    while not (client_done and server_done):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            t = time.perf_counter()
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            server_time += time.perf_counter() - t
        c_in.write(s_out.read())
    return time.perf_counter() - start, server_time


def client_identity(directory: Path) -> tuple[Path, Path, Path]:
    """(CA bundle, client certificate, client key): an ECDSA P-256 CA and a client it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench client CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench client")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "client-ca.pem", directory / "client.crt", directory / "client.key")
    paths[0].write_bytes(ca.public_bytes(Encoding.PEM))
    paths[1].write_bytes(client.public_bytes(Encoding.PEM))
    paths[2].write_bytes(
        client_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    return paths


def measure(
    certfile: Path, keyfile: Path, runs: int = RUNS, client: tuple[Path, Path, Path] | None = None
) -> Samples:
    """Interleaved in-memory handshakes; keys are "trio-tls" and "openssl". With `client`
    (CA bundle, certificate, key), both servers require and verify a client certificate."""
    config = trio_tls_config(certfile, keyfile)
    server_ctx = stdlib_server_context(certfile, keyfile)
    client_ctx = client_context()
    if client is not None:
        bundle, certificate, key = client
        roots = x509.load_pem_x509_certificates(bundle.read_bytes())
        config = attrs.evolve(config, client_auth=ClientAuth(roots, "required"))
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(bundle)
        client_ctx.load_cert_chain(certificate, key)
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "trio-tls": lambda: trio_tls_handshake(client_ctx, config),
        "openssl": lambda: openssl_handshake(client_ctx, server_ctx),
    }
    samples: Samples = {name: ([], []) for name in runners}
    for run in runners.values():  # warm up
        run()
    for _ in range(runs):
        for name, run in runners.items():
            total, server = run()
            samples[name][0].append(total)
            samples[name][1].append(server)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description="one full handshake in memory, side by side")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument(
        "--client-cert",
        action="store_true",
        help="both servers require a client certificate (ECDSA P-256) and verify it",
    )
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory() as tmp:
        dev = make_self_signed(Path(tmp), "rsa")
        client = client_identity(Path(tmp)) if args.client_cert else None
        samples = measure(dev.cert_path, dev.key_path, runs, client)
    mutual = " with a verified ECDSA client certificate" if args.client_cert else ""
    print(f"full handshake in memory, {SUITE}, P-256, RSA-2048{mutual}; median of {runs} runs")
    print(f"  {'server':10} {'total':>10} {'server side':>12}")
    for name, (total, server) in samples.items():
        ms = [statistics.median(total) * 1e3, statistics.median(server) * 1e3]
        print(f"  {name:10} {ms[0]:7.3f} ms {ms[1]:9.3f} ms")
    ratio = statistics.median(samples["trio-tls"][1]) / statistics.median(samples["openssl"][1])
    print(f"  server side ratio trio-tls / openssl: {ratio:.2f}")


if __name__ == "__main__":
    main()
