"""Command-line settings to a ServerConfig: certificates, suites, groups, ALPN, resumption.

Kept apart from argument parsing so that the rules (how --certfile and --keyfile pair up, which
names a suite or group may go by, where the dev certificate lives, who rotates the ticket key
file) read in one place, and so the worker processes of `--workers` build exactly the
configuration a single process would. Warnings about the files (a key others may read, a ticket
key file nobody rotates) are logged once: by the supervisor, not again by every worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs

from .certs import (
    CertificateError,
    ensure_dev_certificate,
    fingerprint_sha256,
    key_file_mode,
    load_certificate_chain,
    load_private_key,
)
from .config import CertifiedKey, ServerConfig
from .enums import NamedGroup
from .kx import SUPPORTED_GROUPS
from .sessions import SessionCache, TicketKeys
from .suites import DEFAULT_SUITES, CipherSuite, suite_by_name
from .ticketfile import FileTicketKeys, create_key_file

log = logging.getLogger("trio_tls")

DEV_CERT_DIR = Path("certs")
# A file rotated by someone else whose sealing key is older than this: is the rotation running?
STALE_TICKET_KEY = 86400.0
_GROUP_ALIASES = {
    "x25519": NamedGroup.x25519,
    "secp256r1": NamedGroup.secp256r1,
    "prime256v1": NamedGroup.secp256r1,
    "p-256": NamedGroup.secp256r1,
    "secp384r1": NamedGroup.secp384r1,
    "p-384": NamedGroup.secp384r1,
}


class UsageError(Exception):
    """A mistake on the command line or in its files; printed as one line."""


@attrs.frozen
class Settings:
    certfiles: Sequence[str] = ()
    keyfiles: Sequence[str] = ()
    keyfile_password_env: str | None = None
    ciphers: str | None = None
    groups: str | None = None
    alpn: str | None = None
    strict_sni: bool = False
    session_cache_size: int = 20_000
    tickets: bool = True
    ticket_key_file: str | None = None
    # auto: this process (the supervisor, with --workers) rotates the file; external: only reads.
    ticket_key_rotation: Literal["auto", "external"] = "auto"
    session_lifetime: float = 7200
    # A worker of --workers: its supervisor already gave every warning.
    quiet: bool = False

    @property
    def owns_ticket_key_file(self) -> bool:
        """Whether this process makes and rotates the ticket key file (ticketfile)."""
        return (
            self.tickets and self.ticket_key_file is not None and self.ticket_key_rotation == "auto"
        )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(":", ",").split(",") if part.strip()]


def parse_suites(text: str) -> list[CipherSuite]:
    """IANA or OpenSSL names, separated by ':' or ','; the order given is the preference."""
    suites = [suite_by_name(name) for name in _split(text)]
    if not suites:
        raise UsageError("--ciphers names no cipher suite")
    return suites


def parse_groups(text: str) -> list[int]:
    groups: list[int] = []
    for name in _split(text):
        group = _GROUP_ALIASES.get(name.lower())
        if group is None:
            known = ", ".join(sorted({g.name for g in _GROUP_ALIASES.values()}))
            raise UsageError(f"unknown group {name!r} (known: {known})")
        groups.append(group)
    if not groups:
        raise UsageError("--groups names no group")
    return groups


def _password(env_name: str | None) -> bytes | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise UsageError(f"environment variable {env_name} is not set")
    return value.encode()


def _certificate_pairs(settings: Settings) -> list[tuple[str | Path, str | Path]]:
    """--certfile/--keyfile pair up in order; a missing key is looked for in its cert file."""
    if not settings.certfiles:
        if settings.keyfiles:
            raise UsageError("--keyfile needs --certfile")
        dev, created = ensure_dev_certificate(DEV_CERT_DIR)
        if created:
            print(f"made a self-signed development certificate in {DEV_CERT_DIR}/")
        return [(dev.cert_path, dev.key_path)]
    if settings.keyfiles and len(settings.keyfiles) != len(settings.certfiles):
        raise UsageError("give one --keyfile per --certfile, or none")
    keyfiles = settings.keyfiles or settings.certfiles
    return list(zip(settings.certfiles, keyfiles, strict=True))


def load_certificates(settings: Settings) -> list[CertifiedKey]:
    password = _password(settings.keyfile_password_env)
    certified = []
    for certfile, keyfile in _certificate_pairs(settings):
        chain = load_certificate_chain(certfile)
        # Our own dev key is never read through a link; an operator's key may be one.
        key = load_private_key(keyfile, password, follow_symlinks=bool(settings.certfiles))
        mode = key_file_mode(keyfile)
        if mode is not None and not settings.quiet:
            # Only a warning: group-readable keys (Debian's ssl-cert) and 0644 secret mounts
            # are deliberate setups, and OpenSSL-based servers load them too.
            log.warning(
                "key file %s is open to other users (mode %04o); run: chmod 600 %s",
                keyfile,
                mode & 0o777,
                keyfile,
            )
        try:
            certified.append(CertifiedKey(tuple(chain), key))
        except CertificateError:
            raise UsageError(
                f"the key in {keyfile} does not match the certificate in {certfile}"
            ) from None
        except (ValueError, TypeError) as exc:  # e.g. an ECDSA curve TLS 1.2 cannot use here
            raise UsageError(f"{certfile}: {exc}") from None
        print(f"certificate {certfile}: SHA-256 fingerprint {fingerprint_sha256(chain[0])}")
    return certified


def ticket_keys(settings: Settings) -> TicketKeys | None:
    """Tickets sealed under keys that follow the shared file, else under our own.

    The owner of the file (`ticket_key_rotation == "auto"`) makes it if it is missing; it is
    also who runs ticketfile.keep_rotating. A reader only warns when nobody seems to rotate it.
    """
    if not settings.tickets:
        return None
    path = settings.ticket_key_file
    if path is None:
        return TicketKeys(lifetime=settings.session_lifetime)
    now = time.time()
    if settings.owns_ticket_key_file:
        create_key_file(path, now)
    keys = FileTicketKeys(path, lifetime=settings.session_lifetime, now=now)
    age = now - keys.sealing_since
    if settings.ticket_key_rotation == "external" and age > STALE_TICKET_KEY and not settings.quiet:
        log.warning(
            "the sealing key in ticket key file %s is %d hours old: is its rotation "
            "(trio-tls ticket-keys rotate %s) running?",
            path,
            age // 3600,
            path,
        )
    return keys


def build_config(settings: Settings, default_alpn: Sequence[bytes] = ()) -> ServerConfig:
    """The whole configuration; `default_alpn` is what the handler declares it speaks."""
    if settings.alpn is not None:
        alpn = [name.encode("ascii") for name in _split(settings.alpn)]
    else:
        alpn = list(default_alpn)
    cache = None
    if settings.session_cache_size > 0:
        cache = SessionCache(settings.session_cache_size, settings.session_lifetime)
    return ServerConfig(
        load_certificates(settings),
        cipher_suites=parse_suites(settings.ciphers) if settings.ciphers else DEFAULT_SUITES,
        groups=parse_groups(settings.groups) if settings.groups else SUPPORTED_GROUPS,
        alpn_protocols=alpn,
        strict_sni=settings.strict_sni,
        session_cache=cache,
        ticket_keys=ticket_keys(settings),
    )
