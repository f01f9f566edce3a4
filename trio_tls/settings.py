"""Command-line settings to a ServerConfig: certificates, suites, groups, ALPN, resumption.

Kept apart from argument parsing so that the rules (how --certfile and --keyfile pair up, which
names a suite or group may go by, where the dev certificate lives) read in one place, and so the
worker processes of `--workers` build exactly the configuration a single process would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from .certs import (
    CertificateError,
    ensure_dev_certificate,
    fingerprint_sha256,
    load_certificate_chain,
    load_private_key,
)
from .config import CertifiedKey, ServerConfig
from .enums import NamedGroup
from .kx import SUPPORTED_GROUPS
from .sessions import (
    SessionCache,
    TicketKey,
    TicketKeys,
    load_ticket_keys,
    write_ticket_key_file,
)
from .suites import DEFAULT_SUITES, CipherSuite, suite_by_name

DEV_CERT_DIR = Path("certs")
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
    session_lifetime: float = 7200


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
        key = load_private_key(keyfile, password)
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
    """Tickets sealed under keys from the shared file (made 0600 if missing), else our own."""
    if not settings.tickets:
        return None
    if settings.ticket_key_file is None:
        return TicketKeys(lifetime=settings.session_lifetime)
    if not os.path.exists(settings.ticket_key_file):
        write_ticket_key_file(settings.ticket_key_file, [TicketKey.generate()])
    return TicketKeys(
        load_ticket_keys(settings.ticket_key_file), lifetime=settings.session_lifetime
    )


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
