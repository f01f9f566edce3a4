"""The small commands: `trio-tls certs`, `trio-tls handlers`, `trio-tls ticket-keys`."""

from __future__ import annotations

import argparse
import os
import shlex
import time
from collections.abc import Sequence

from ..ops.certs import (
    DEFAULT_NAMES,
    MAX_DAYS,
    CertificateExistsError,
    fingerprint_sha256,
    load_certificate_chain,
    make_self_signed,
    parse_name,
)
from ..ops.plugins import installed_handlers
from ..ops.settings import Settings, UsageError
from ..ops.ticketfile import create_key_file, rotate_key_file
from ..server.listen import DEFAULT_PORT
from .serve import https_url


def _url_host(names: Sequence[str]) -> str:
    """A host for a URL the certificate is good for: its first name that is not a wildcard."""
    return next((name for name in names if not name.startswith("*.")), "www" + names[0][1:])


def cmd_certs(args: argparse.Namespace) -> None:
    names = list(dict.fromkeys(args.name)) or list(DEFAULT_NAMES)
    for name in names:
        try:
            parse_name(name)
        except ValueError as exc:
            raise UsageError(f"--name {name!r}: {exc}") from None
    if not 1 <= args.days <= MAX_DAYS:
        raise UsageError(f"--days must be from 1 to {MAX_DAYS} (Apple's limit), not {args.days}")
    try:
        dev = make_self_signed(
            args.out, args.key_type, names=names, days=args.days, force=args.force
        )
    except CertificateExistsError as exc:
        path = os.path.abspath(exc.path)
        raise UsageError(f"{path} exists; use --force to replace it") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"cannot write to {os.path.abspath(args.out)}: {reason}") from None
    (certificate,) = load_certificate_chain(dev.cert_path)
    cert_path = os.path.abspath(dev.cert_path)
    print(f"wrote {os.path.abspath(dev.key_path)} (private key, mode 0600)")
    print(f"wrote {cert_path} (certificate) and {os.path.abspath(dev.der_path)} (the same, DER)")
    until = certificate.not_valid_after_utc
    print(f"for {', '.join(names)}; valid for {args.days} days, until {until:%Y-%m-%d %H:%M} UTC")
    print(f"SHA-256 fingerprint {fingerprint_sha256(certificate)}")
    url = https_url(_url_host(names), DEFAULT_PORT)
    print(f"trust it: curl --cacert {shlex.quote(cert_path)} {url}")


def cmd_handlers(args: argparse.Namespace) -> None:
    for info in installed_handlers().values():
        origin = f"{info.distribution} {info.version}" if info.distribution else "?"
        print(f"{info.name:16} {info.value:40} ({origin})")


def cmd_ticket_keys(args: argparse.Namespace) -> None:
    now = time.time()
    if create_key_file(args.file, now):
        print(f"made {args.file} (mode 0600)")
        return
    rotated = rotate_key_file(args.file, now, lifetime=Settings().session_lifetime)
    sealing = rotated.sealing.key.name.hex()
    announced = [line.key.name.hex() for line in rotated.lines if line.role == "next"][-1]
    print(f"rotated {args.file}: key {sealing} seals, key {announced} is announced")
