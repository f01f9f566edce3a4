"""The ticket key file: RFC 5077 ticket keys shared by processes and machines, rotated in place.

One key per line; blank lines and `#` comments are ignored:

    next <96 hex digits> <Unix time>   announced then; opens tickets, seals after the next rotation
    seal <96 hex digits> <Unix time>   exactly one: seals new tickets, since then
    open <96 hex digits> <Unix time>   retired then: opens the tickets it sealed until they expire

The 96 hex digits are the key name (16 bytes, sent in the clear in every ticket) and the
AES-256-GCM key (32 bytes). The first format, bare 96-hex-digit lines, still loads: its first key
seals, the others open, and the file's mtime stands in for the times.

A rotation (RFC 5077 §5.5: keys should change regularly) promotes the first `next` key to `seal`,
retires the sealing key to `open`, drops `open` keys retired more than a ticket lifetime plus
RELOAD_SLACK ago (nothing they sealed is still valid), and announces a fresh `next` key. Every
reader holds a key before anyone seals with it, so a process that reloads a moment later (another
worker, another machine) opens the tickets of the one that reloaded first, and the retired key
opens what the laggard still seals meanwhile: a fleet never rejects a fresh ticket.

The file is replaced whole (secretfiles.replace: temporary 0600 file, fsync, rename), so a reader
sees the old file or the new one. Whether a rotation is due is read from the file (the sealing
key's time), not from a timer: a restarted owner keeps the schedule, and two rotators racing over
one file promote the same `next` key (at worst an announced key nobody used yet is lost). The
owner runs keep_rotating; FileTicketKeys follows the file in every process that seals.

A file that vanishes (a cleaner of /tmp, a hand) is made again by its owner at its next check,
with the keys it last saw there, so that the tickets already issued still open and a worker that
starts meanwhile finds its keys; readers pick it up as they would a rotation. The directory is
made again only when it is the supervisor's own private one (workers.private_directory), and
only as a 0700 directory of this user: an operator's missing directory is theirs to restore.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Literal

import attrs
import trio

from ..engine.sessions import KEY_NAME_LENGTH, SEAL_LIMIT, TICKET_KEY_LENGTH, TicketKey, TicketKeys
from .secretfiles import (
    SecretFileError,
    create,
    make_private_directory,
    read_private,
    replace,
)

log = logging.getLogger("trio_tls")

ROTATE_AFTER = 3600.0
# How long every machine may take to pick up a new file, on top of the ticket lifetime, before
# an old key goes: a laggard may still seal with it until then.
RELOAD_SLACK = 600.0
RELOAD_INTERVAL = 1.0  # a reader looks at the file at most this often
CHECK_INTERVAL = 10.0  # the owner looks whether a rotation is due this often

Role = Literal["next", "seal", "open"]
_ROLES: dict[str, Role] = {"next": "next", "seal": "seal", "open": "open"}
_HEADER = (
    "# trio-tls ticket keys, replaced whole at every rotation (README: Ticket keys)\n"
    "# role  key name and AES-256 key (hex)  since (Unix time)\n"
)
Identity = tuple[int, int, int, int]


class TicketKeyFileError(ValueError):
    """The ticket key file is missing, unreadable, unwritable or malformed; str() is one line."""


@attrs.frozen
class KeyLine:
    role: Role
    key: TicketKey
    since: int  # next: when announced; seal: sealing since; open: when retired


@attrs.frozen
class KeyFile:
    """A key file's contents: exactly one `seal` line, names unique (checked by `parse`)."""

    lines: tuple[KeyLine, ...]

    @classmethod
    def fresh(cls, now: float) -> KeyFile:
        since = int(now)
        announced = KeyLine("next", TicketKey.generate(), since)
        return cls((announced, KeyLine("seal", TicketKey.generate(), since)))

    @property
    def sealing(self) -> KeyLine:
        return next(line for line in self.lines if line.role == "seal")

    def keys(self) -> list[TicketKey]:
        """The sealing key first, as TicketKeys wants them."""
        sealing = self.sealing
        return [sealing.key, *(line.key for line in self.lines if line is not sealing)]

    def rotated(self, now: float, lifetime: float) -> KeyFile:
        since = int(now)
        announced = [line for line in self.lines if line.role == "next"]
        # A file without a `next` line (the first format) gets an unannounced key, once.
        promoted = announced[0].key if announced else TicketKey.generate()
        still_open = [
            line
            for line in self.lines
            if line.role == "open" and now - line.since <= lifetime + RELOAD_SLACK
        ]
        return KeyFile(
            (
                *announced[1:],
                KeyLine("next", TicketKey.generate(), since),
                KeyLine("seal", promoted, since),
                KeyLine("open", self.sealing.key, since),
                *still_open,
            )
        )

    def encode(self) -> bytes:
        body = "".join(
            f"{line.role} {(line.key.name + line.key.secret).hex()} {line.since}\n"
            for line in self.lines
        )
        return (_HEADER + body).encode("ascii")

    @classmethod
    def parse(cls, text: str, where: str, mtime: int) -> KeyFile:
        lines: list[KeyLine] = []
        bare: bool | None = None  # the first format: keys without role or time
        for number, raw in enumerate(text.splitlines(), 1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            if bare is None:
                bare = len(fields) == 1
            role: Role
            if bare:
                role = "open" if lines else "seal"
                digits, since = (fields[0] if len(fields) == 1 else ""), mtime
            elif len(fields) == 3 and fields[0] in _ROLES and fields[2].isdigit():
                role, digits, since = _ROLES[fields[0]], fields[1], int(fields[2])
            else:
                raise TicketKeyFileError(
                    f"{where}:{number}: expected 'next|seal|open <96 hex digits> <Unix time>'"
                )
            lines.append(KeyLine(role, _key(digits, f"{where}:{number}"), since))
        if not lines:
            raise TicketKeyFileError(f"ticket key file {where} holds no key")
        sealing = sum(line.role == "seal" for line in lines)
        if sealing != 1:
            raise TicketKeyFileError(f"{where} has {sealing} 'seal' lines; exactly one seals")
        if len({line.key.name for line in lines}) != len(lines):
            raise TicketKeyFileError(f"{where} holds two keys with the same name")
        return cls(tuple(lines))


def _key(digits: str, where: str) -> TicketKey:
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != KEY_NAME_LENGTH + TICKET_KEY_LENGTH:
        raise TicketKeyFileError(f"{where}: expected 96 hex digits")
    return TicketKey(raw[:KEY_NAME_LENGTH], raw[KEY_NAME_LENGTH:])


def _identity(status: os.stat_result) -> Identity:
    """What changes whenever the file does: a rename brings a new inode, an edit a new mtime."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _error(action: str, path: str | os.PathLike[str], exc: Exception) -> TicketKeyFileError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return TicketKeyFileError(f"cannot {action} ticket key file {os.fspath(path)}: {reason}")


def read_key_file(path: str | os.PathLike[str]) -> tuple[KeyFile, Identity]:
    """Load a key file (never through a link, refused if others may read or write it)."""
    try:
        data, status = read_private(path)
        text = data.decode("ascii")
    except (OSError, SecretFileError, UnicodeDecodeError) as exc:
        raise _error("read", path, exc) from None
    return KeyFile.parse(text, os.fspath(path), int(status.st_mtime)), _identity(status)


def create_key_file(path: str | os.PathLike[str], now: float) -> bool:
    """Make a fresh key file (O_EXCL, 0600) unless one exists; True if it was made."""
    try:
        return create(path, KeyFile.fresh(now).encode())
    except (OSError, SecretFileError) as exc:
        raise _error("write", path, exc) from None


def write_key_file(path: str | os.PathLike[str], key_file: KeyFile) -> None:
    """Replace the file whole, mode 0600 (secretfiles.replace)."""
    try:
        replace(path, key_file.encode())
    except OSError as exc:
        raise _error("write", path, exc) from None


def rotate_key_file(path: str | os.PathLike[str], now: float, *, lifetime: float) -> KeyFile:
    """Rotate the file now; its new contents."""
    key_file, _ = read_key_file(path)
    rotated = key_file.rotated(now, lifetime)
    write_key_file(path, rotated)
    return rotated


def _rotate_if_due(
    path: str | os.PathLike[str],
    now: float,
    lifetime: float,
    rotate_after: float,
    early: bool,
    last: KeyFile | None,
    make_directory: bool,
) -> KeyFile:
    """One check of the owner's: put back a vanished file (the module docstring), rotate it if
    due; what the file holds now."""
    if not os.path.lexists(path):
        _restore(path, last, now, make_directory)
    key_file, _ = read_key_file(path)
    if early or now - key_file.sealing.since >= rotate_after:
        key_file = key_file.rotated(now, lifetime)
        write_key_file(path, key_file)
    return key_file


def _restore(
    path: str | os.PathLike[str], last: KeyFile | None, now: float, make_directory: bool
) -> None:
    key_file = last or KeyFile.fresh(now)
    try:
        if make_directory:
            make_private_directory(os.path.dirname(os.fspath(path)))
        made = create(path, key_file.encode())
    except (OSError, SecretFileError) as exc:
        raise _error("write", path, exc) from None
    if made:
        keys = "the keys it held" if last else "new keys"
        log.warning("ticket key file %s had vanished: made it again, with %s", path, keys)


class FileTicketKeys(TicketKeys):
    """TicketKeys that follow a key file: its `seal` line seals, every line opens.

    At most once per RELOAD_INTERVAL, by the clock seal/open are given (the engine's), one
    lstat tells whether the file changed; only then is it read again. A file that fails to load
    is logged once and the keys already loaded stay in use. This process never rewrites the file:
    at SEAL_LIMIT seals under one key it sends empty tickets until the owner rotates.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lifetime: float = 7200,
        now: float | None = None,
        seal_limit: int = SEAL_LIMIT,
    ) -> None:
        self.path = os.fspath(path)
        key_file, self._identity = read_key_file(self.path)
        super().__init__(key_file.keys(), lifetime=lifetime, now=now, seal_limit=seal_limit)
        self.sealing_since = key_file.sealing.since
        self._checked_at = time.time() if now is None else now
        self._problem: str | None = None

    @property
    def worn(self) -> bool:
        """Half the sealing key's limit is spent here: its owner should rotate it early."""
        return self._seals[self._sealing] >= self._seal_limit // 2

    def _refresh(self, now: float) -> None:
        # Either way: a test's clock may travel back in time.
        if abs(now - self._checked_at) < RELOAD_INTERVAL:
            return
        self._checked_at = now
        try:
            identity = _identity(os.stat(self.path, follow_symlinks=False))
        except OSError as exc:
            self._report(str(_error("read", self.path, exc)))
            return
        if identity == self._identity:
            return
        self._identity = identity  # a bad file is reported once, not once a second
        try:
            key_file, self._identity = read_key_file(self.path)
        except TicketKeyFileError as exc:
            self._report(str(exc))
            return
        self._install(key_file.keys())
        self.sealing_since = key_file.sealing.since
        if self._problem is not None:
            log.info("ticket key file %s loads again", self.path)
            self._problem = None

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("%s; keeping the ticket keys loaded before", problem)
            self._problem = problem


async def keep_rotating(
    path: str | os.PathLike[str],
    *,
    lifetime: float,
    rotate_after: float = ROTATE_AFTER,
    keys: FileTicketKeys | None = None,
    make_directory: bool = False,
) -> None:
    """The owner's task: rotate the file when it is due, or early when `keys` wore its key;
    make it again if it vanishes, and its directory too if `make_directory`."""
    last: KeyFile | None = None
    while True:
        early = keys is not None and keys.worn
        try:
            last = await trio.to_thread.run_sync(
                _rotate_if_due,
                path,
                time.time(),
                lifetime,
                rotate_after,
                early,
                last,
                make_directory,
            )
        except TicketKeyFileError as exc:
            log.warning("%s; trying again in %d seconds", exc, CHECK_INTERVAL)
        await trio.sleep(CHECK_INTERVAL)
