"""Command-line settings to a ServerConfig: certificates, suites, groups, ALPN, resumption.

Kept apart from argument parsing so that the rules (how --certfile and --keyfile pair up, which
names a suite or group may go by, where the dev certificate lives, who rotates the ticket key
file) read in one place, and so the worker processes of `--workers` build exactly the
configuration a single process would. What the operator should read about the files (each
certificate's fingerprint, a key others may read, a ticket key file nobody rotates) comes back as
notices rather than being printed here: the caller says it once, so neither a SIGHUP reload nor
every worker of `--workers` repeats it.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
from cryptography import x509

from ..engine.clientauth import ClientAuth
from ..engine.config import CertificateError, CertifiedKey, ServerConfig
from ..engine.crypto.keyshare import TLS13_GROUPS
from ..engine.crypto.suites import (
    ALL_SUITES,
    DEFAULT_SUITES,
    TLS13_SUITES,
    CipherSuite,
    Tls13Suite,
    suite_by_name,
)
from ..engine.sessions import SessionCache, TicketKeys
from ..engine.wire.enums import TLS12, TLS13, NamedGroup
from .certs import (
    ensure_dev_certificate,
    fingerprint_sha256,
    key_file_mode,
    load_certificate_chain,
    load_private_key,
)
from .secretfiles import SecretFileError, read_regular
from .ticketfile import FileTicketKeys, create_key_file

DEV_CERT_DIR = Path("certs")
EXPIRY_WARNING = datetime.timedelta(days=30)
# A file rotated by someone else whose sealing key is older than this: is the rotation running?
STALE_TICKET_KEY = 86400.0
_GROUP_ALIASES = {
    "x25519": NamedGroup.x25519,
    "secp256r1": NamedGroup.secp256r1,
    "prime256v1": NamedGroup.secp256r1,
    "p-256": NamedGroup.secp256r1,
    "secp384r1": NamedGroup.secp384r1,
    "p-384": NamedGroup.secp384r1,
    "x25519mlkem768": NamedGroup.X25519MLKEM768,
}


class UsageError(Exception):
    """A mistake on the command line or in its files; printed as one line."""


@attrs.frozen
class Notice:
    """A line for the operator: a warning (logged), or news for stdout (a fingerprint)."""

    text: str
    warning: bool = True


@attrs.frozen
class Settings:
    certfiles: Sequence[str] = ()
    keyfiles: Sequence[str] = ()
    keyfile_password_env: str | None = None
    tls_versions: str | None = None
    ciphers: str | None = None
    groups: str | None = None
    alpn: str | None = None
    strict_sni: bool = False
    client_ca: str | None = None
    client_auth: Literal["none", "optional", "required"] | None = None  # None: by --client-ca
    client_ca_names: bool = True
    session_cache_size: int = 20_000
    tickets: bool = True
    ticket_key_file: str | None = None
    # auto: this process (the supervisor, with --workers) rotates the file; external: only reads.
    ticket_key_rotation: Literal["auto", "external"] = "auto"
    # The file's directory is the supervisor's private one (workers.private_directory): if it
    # vanishes, the supervisor makes it again.
    ticket_key_dir_ours: bool = False
    session_lifetime: float = 7200

    @property
    def owns_ticket_key_file(self) -> bool:
        """Whether this process makes and rotates the ticket key file (ticketfile)."""
        return (
            self.tickets and self.ticket_key_file is not None and self.ticket_key_rotation == "auto"
        )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(":", ",").split(",") if part.strip()]


_TLS13_SUITES_BY_NAME = {suite.name: suite for suite in TLS13_SUITES}


def parse_suites(text: str) -> tuple[list[CipherSuite], list[Tls13Suite]]:
    """--ciphers: TLS 1.2 and TLS 1.3 suites together, IANA or OpenSSL names (the same for 1.3),
    separated by ':' or ','; within each version the order given is the preference."""
    suites: list[CipherSuite] = []
    suites13: list[Tls13Suite] = []
    for name in _split(text):
        if name in _TLS13_SUITES_BY_NAME:
            suites13.append(_TLS13_SUITES_BY_NAME[name])
            continue
        try:
            suites.append(suite_by_name(name))
        except ValueError:
            known12 = ", ".join(suite.openssl_name for suite in ALL_SUITES)
            known13 = ", ".join(_TLS13_SUITES_BY_NAME)
            raise UsageError(
                f"--ciphers: unknown or unsupported cipher suite {name!r} "
                f"(TLS 1.2: {known12}; TLS 1.3: {known13})"
            ) from None
    if not suites and not suites13:
        raise UsageError("--ciphers names no cipher suite; leave it out for the defaults")
    return suites, suites13


_VERSIONS = {"1.2": TLS12, "1.3": TLS13}
_VERSION_NAMES = {TLS12: "1.2", TLS13: "1.3"}
DEFAULT_VERSIONS = frozenset({TLS12, TLS13})


def parse_versions(text: str) -> frozenset[int]:
    """--tls-versions: "1.2", "1.3" or both, in any order."""
    versions = set()
    for name in _split(text):
        version = _VERSIONS.get(name.removeprefix("TLSv").removeprefix("tls"))
        if version is None:
            raise UsageError(
                f"--tls-versions: version {name!r} is not served (known: 1.2, 1.3); "
                "give 1.2, 1.3 or 1.2,1.3"
            )
        versions.add(version)
    if not versions:
        raise UsageError("--tls-versions names no version; leave it out for the defaults")
    return frozenset(versions)


def _only(versions: frozenset[int]) -> str:
    return " and ".join(_VERSION_NAMES[v] for v in sorted(versions))


def _check_suites_versions(
    suites: Sequence[CipherSuite], suites13: Sequence[Tls13Suite], versions: frozenset[int]
) -> None:
    """A suite of a version not served would never be used: the operator meant something else."""
    for version, given in ((TLS12, suites), (TLS13, suites13)):
        if given and version not in versions:
            name = _VERSION_NAMES[version]
            raise UsageError(
                f"--ciphers {given[0].openssl_name} is a TLS {name} suite, and --tls-versions "
                f"serves only {_only(versions)}: add {name} to --tls-versions, or leave the "
                f"TLS {name} suites out of --ciphers"
            )


def _check_groups_versions(groups: Sequence[int], versions: frozenset[int]) -> None:
    """X25519MLKEM768 exists in TLS 1.3 only: with 1.2 alone it is a dead entry, and 1.2
    needs a classical group to have any key exchange at all."""
    hybrid = NamedGroup.X25519MLKEM768
    if TLS13 not in versions and hybrid in groups:
        raise UsageError(
            "--groups X25519MLKEM768 is a TLS 1.3 group, and --tls-versions serves only 1.2: "
            "add 1.3 to --tls-versions, or leave X25519MLKEM768 out of --groups"
        )
    if TLS12 in versions and all(group == hybrid for group in groups):
        raise UsageError(
            "--groups X25519MLKEM768 alone leaves TLS 1.2 no key exchange: add x25519 (or "
            "secp256r1, secp384r1) to --groups, or serve only 1.3 with --tls-versions 1.3"
        )


def parse_groups(text: str) -> list[int]:
    groups: list[int] = []
    for name in _split(text):
        group = _GROUP_ALIASES.get(name.lower())
        if group is None:
            known = ", ".join(sorted({g.name for g in _GROUP_ALIASES.values()}))
            raise UsageError(f"--groups: unknown group {name!r} (known: {known})")
        groups.append(group)
    if not groups:
        raise UsageError("--groups names no group; leave it out for the defaults")
    return groups


def _password(env_name: str | None) -> bytes | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise UsageError(f"environment variable {env_name} is not set")
    return value.encode()


def _certificate_pairs(
    settings: Settings, notices: list[Notice]
) -> list[tuple[str | Path, str | Path]]:
    """--certfile/--keyfile pair up in order; a missing key is looked for in its cert file."""
    if not settings.certfiles:
        if settings.keyfiles:
            raise UsageError("--keyfile needs --certfile")
        try:
            dev, created = ensure_dev_certificate(DEV_CERT_DIR)
        except OSError as exc:
            raise UsageError(
                f"cannot make a development certificate in {os.path.abspath(DEV_CERT_DIR)}: "
                f"{exc.strerror or exc}; give --certfile, or start where certs/ can be made"
            ) from None
        if created:
            text = f"made a self-signed development certificate in {DEV_CERT_DIR}/"
            notices.append(Notice(text, warning=False))
        return [(dev.cert_path, dev.key_path)]
    if settings.keyfiles and len(settings.keyfiles) != len(settings.certfiles):
        raise UsageError("give one --keyfile per --certfile, or none")
    keyfiles = settings.keyfiles or settings.certfiles
    return list(zip(settings.certfiles, keyfiles, strict=True))


def load_certificates(settings: Settings, notices: list[Notice]) -> list[CertifiedKey]:
    password = _password(settings.keyfile_password_env)
    certified = []
    for certfile, keyfile in _certificate_pairs(settings, notices):
        chain = load_certificate_chain(certfile)
        # Our own dev key is never read through a link; an operator's key may be one.
        key = load_private_key(keyfile, password, follow_symlinks=bool(settings.certfiles))
        mode = key_file_mode(keyfile)
        if mode is not None:
            # Only a warning: group-readable keys (Debian's ssl-cert) and 0644 secret mounts
            # are deliberate setups, and OpenSSL-based servers load them too.
            notices.append(
                Notice(
                    f"key file {keyfile} is open to other users (mode {mode & 0o777:04o}); "
                    f"run: chmod 600 {keyfile}"
                )
            )
        try:
            certified.append(CertifiedKey(tuple(chain), key))
        except CertificateError:
            raise UsageError(
                f"the key in {keyfile} does not match the certificate in {certfile}"
            ) from None
        except (ValueError, TypeError) as exc:  # e.g. an ECDSA curve TLS 1.2 cannot use here
            raise UsageError(f"{certfile}: {exc}") from None
        fingerprint = fingerprint_sha256(chain[0])
        notices.append(Notice(f"certificate {certfile}: SHA-256 fingerprint {fingerprint}", False))
        notices.extend(_validity(certfile, chain[0]))
    return certified


def _validity(certfile: str | Path, leaf: x509.Certificate) -> list[Notice]:
    """Clients refuse a certificate outside its validity: say so while there is time."""
    now = datetime.datetime.now(datetime.UTC)
    expires = leaf.not_valid_after_utc
    found = []
    if expires <= now:
        found.append(
            Notice(f"certificate {certfile} expired on {expires}: clients will refuse it; renew it")
        )
    elif expires - now < EXPIRY_WARNING:
        days = (expires - now).days
        found.append(
            Notice(f"certificate {certfile} expires on {expires}, in {days} days: renew it")
        )
    if leaf.not_valid_before_utc > now:
        found.append(
            Notice(
                f"certificate {certfile} is not valid until {leaf.not_valid_before_utc}: "
                "check this machine's clock"
            )
        )
    return found


def ticket_keys(settings: Settings, notices: list[Notice]) -> TicketKeys | None:
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
    if settings.ticket_key_rotation == "external" and age > STALE_TICKET_KEY:
        notices.append(
            Notice(
                f"the sealing key in ticket key file {path} is {age // 3600:.0f} hours old: is "
                f"its rotation (trio-tls ticket-keys rotate {path}) running?"
            )
        )
    return keys


def parse_alpn(text: str, handler_speaks: Sequence[bytes]) -> list[bytes]:
    """--alpn: names of 1 to 255 printable ASCII bytes (RFC 7301 §3.1), each one the handler
    speaks if it says what it speaks: a protocol it cannot serve would fail every client."""
    protocols = []
    for name in _split(text):
        if not (name.isascii() and name.isprintable() and len(name) <= 255):
            raise UsageError(
                f"--alpn {name!r}: a protocol name is 1 to 255 printable ASCII characters, "
                "such as h2 or http/1.1"
            )
        protocols.append(name.encode("ascii"))
    if not protocols:
        raise UsageError("--alpn names no protocol; leave it out to offer what the handler speaks")
    unserved = [p for p in protocols if handler_speaks and p not in handler_speaks]
    if unserved:
        speaks = ", ".join(p.decode() for p in handler_speaks)
        raise UsageError(
            f"--alpn {unserved[0].decode()}: the handler speaks only {speaks}; "
            "choose among those, or leave --alpn out"
        )
    return protocols


def _check_suites_fit(
    suites: Sequence[CipherSuite], certified: Sequence[CertifiedKey], notices: list[Notice]
) -> None:
    """--ciphers: every suite needs a certificate of its kind; with none, no handshake works."""
    have = {c.auth for c in certified}
    unserved = [suite for suite in suites if suite.auth not in have]
    if len(unserved) == len(suites):
        needed = " or ".join(sorted({suite.auth.upper() for suite in suites}))
        kinds = " and ".join(sorted(kind.upper() for kind in have))
        raise UsageError(
            f"--ciphers: every suite given needs an {needed} certificate, and the certificates "
            f"are {kinds}; add such a certificate, or choose ECDHE-{kinds.split()[0]} suites"
        )
    notices.extend(
        Notice(
            f"--ciphers: {suite.openssl_name} needs an {suite.auth.upper()} certificate, "
            "and none is given"
        )
        for suite in unserved
    )


def build_config(
    settings: Settings, default_alpn: Sequence[bytes] = ()
) -> tuple[ServerConfig, list[Notice]]:
    """The whole configuration, and what the operator should read about it; `default_alpn` is
    what the handler declares it speaks.

    Every setting that could never work fails here, before the first accept, as one line
    naming the option and the fix."""
    notices: list[Notice] = []
    if settings.alpn is not None:
        alpn = parse_alpn(settings.alpn, default_alpn)
    else:
        alpn = list(default_alpn)
    if settings.session_cache_size < 0:
        raise UsageError(
            f"--session-cache-size {settings.session_cache_size}: give 0 (no cache) or more"
        )
    cache = None
    if settings.session_cache_size > 0:
        cache = SessionCache(settings.session_cache_size, settings.session_lifetime)
    certified = load_certificates(settings, notices)
    versions = DEFAULT_VERSIONS
    if settings.tls_versions is not None:
        versions = parse_versions(settings.tls_versions)
    # Each version keeps its default suites unless --ciphers names some of its own.
    suites, suites13 = DEFAULT_SUITES, TLS13_SUITES  # these serve any kind of certificate
    if settings.ciphers is not None:
        given, given13 = parse_suites(settings.ciphers)
        _check_suites_versions(given, given13, versions)
        if given:
            suites = tuple(given)
            _check_suites_fit(suites, certified, notices)
        suites13 = tuple(given13) or suites13
    groups = TLS13_GROUPS
    if settings.groups is not None:
        groups = tuple(parse_groups(settings.groups))
        _check_groups_versions(groups, versions)
    config = ServerConfig(
        certified,
        versions=versions,
        cipher_suites=suites,
        tls13_suites=suites13,
        groups=groups,
        alpn_protocols=alpn,
        strict_sni=settings.strict_sni,
        session_cache=cache,
        ticket_keys=ticket_keys(settings, notices),
        client_auth=load_client_auth(settings),
    )
    return config, notices


def load_client_auth(settings: Settings) -> ClientAuth | None:
    """--client-ca and --client-auth: required by default once a CA bundle is given."""
    mode = settings.client_auth or ("required" if settings.client_ca else "none")
    if mode == "none":
        if settings.client_ca is not None and settings.client_auth == "none":
            raise UsageError("--client-auth none with --client-ca: leave one of them out")
        return None
    if settings.client_ca is None:
        raise UsageError(f"--client-auth {mode} needs --client-ca FILE, the CAs to trust")
    try:
        roots = x509.load_pem_x509_certificates(read_regular(settings.client_ca))
    except SecretFileError as exc:
        raise UsageError(f"--client-ca {settings.client_ca}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--client-ca {settings.client_ca}: {exc.strerror or exc}") from None
    except ValueError:
        raise UsageError(
            f"--client-ca {settings.client_ca}: no PEM certificate in it (a bundle of "
            "-----BEGIN CERTIFICATE----- blocks is expected)"
        ) from None
    return ClientAuth(roots, mode, send_ca_names=settings.client_ca_names)
