"""Files that hold secrets: never opened through a link, created exclusively, replaced whole.

The secret files the server itself opens are the NSS key log, the ticket key file and the
development private key: each one decrypts traffic. Four rules close the classic holes:

- Open with O_NOFOLLOW. A symbolic link planted where a secret file belongs could send our
  writes onto another file, or make us serve someone else's secret; a link is an error instead.
- Create with O_CREAT | O_EXCL and mode 0600. A file we create is private from its first byte;
  a file that already exists is not ours to trust, so its mode is checked.
- Replace whole: write a 0600 temporary file in the same directory, fsync it, rename it over the
  old one, fsync the directory. Readers see the old file or the new one, never half of either,
  and rename replaces a link itself, never what it points to.

- Trust only our own: a secret file we did not create must belong to the user the server runs
  as, or to root, as OpenSSH's StrictModes requires: whoever owns a file can read it and chmod
  it, whatever its mode. The server's user is this process's effective user, unless --user
  names the one it switches to (will_run_as): files read as root before the switch are then
  held to the same owner as after it.

"Loose" means any permission for the group or others (mode & 0o077): read access leaks the
secret, write access lets someone else choose it. Which files are refused and which only warned
about is the caller's decision (README, "Secret files").

Every file the server reads, certificates too, is opened as open_regular does: with O_NONBLOCK,
so that a FIFO or a device at the path cannot block the open (a reload would wait forever for a
writer), then refused unless fstat says it is a regular file, and read only up to MAX_FILE_SIZE
(a device or a mistaken path cannot fill the memory).
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import tempfile
from typing import BinaryIO

PRIVATE = 0o600
_GROUP_OR_OTHERS = 0o077
# Far above any certificate chain, key or CA bundle (Mozilla's whole bundle is about 0.2 MiB).
MAX_FILE_SIZE = 4 * 1024 * 1024
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class SecretFileError(Exception):
    """Why a secret file cannot be used, worded to follow "cannot open FILE: "."""


def loose_mode(mode: int) -> bool:
    return bool(mode & _GROUP_OR_OTHERS)


def loose_mode_advice(path: str | os.PathLike[str], mode: int) -> str:
    return (
        f"other users have access to it (mode {stat.S_IMODE(mode):04o}); "
        f"run: chmod 600 {os.fspath(path)}"
    )


class _ServerUser:
    """The user --user switches to, once it is known and until the switch (then it is ours)."""

    uid: int | None = None


def will_run_as(uid: int) -> None:
    """The server will switch to this user: its secret files are that user's from now on."""
    _ServerUser.uid = uid


def server_uid() -> int:
    return os.geteuid() if _ServerUser.uid is None else _ServerUser.uid


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (a container's arbitrary uid)
        return str(uid)


def not_regular(mode: int) -> SecretFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return SecretFileError(f"it is {kind}, not a regular file")


def open_regular(
    path: str | os.PathLike[str], flags: int, mode: int = PRIVATE, *, follow_symlinks: bool = False
) -> int:
    """os.open for a regular file only, that never blocks (see the module docstring) and, unless
    told to follow them, refuses a symbolic link as the last component, saying so."""
    nofollow = 0 if follow_symlinks else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | os.O_NOCTTY, mode)
    except OSError as exc:
        # ELOOP is also a loop among the directories; only a link at the end is ours to explain.
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(path):
            raise SecretFileError(
                "it is a symbolic link, and secret files are never opened through one"
            ) from None
        # Writing: a directory is EISDIR; a FIFO nobody reads, or a socket, is ENXIO.
        if exc.errno in {errno.EISDIR, errno.ENXIO}:
            raise not_regular(os.stat(path).st_mode) from None
        raise
    mode_found = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode_found):
        os.close(fd)
        raise not_regular(mode_found)
    os.set_blocking(fd, True)
    return fd


def read_regular(
    path: str | os.PathLike[str], *, follow_symlinks: bool = True, limit: int = MAX_FILE_SIZE
) -> bytes:
    """The whole of a regular file (open_regular) of at most `limit` bytes."""
    with os.fdopen(open_regular(path, os.O_RDONLY, follow_symlinks=follow_symlinks), "rb") as file:
        return _read_at_most(file, limit)


def _read_at_most(file: BinaryIO, limit: int) -> bytes:
    # Read to the end rather than trust st_size: /proc files say 0, and a file may grow.
    data = file.read(limit + 1)
    if len(data) > limit:
        raise SecretFileError(
            f"it is larger than {limit // 1024 // 1024} MiB, more than any file it should be"
        )
    return data


def check_private(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    """Refuse an open secret file (from open_regular) that is neither the server's user's nor
    root's, or that others may read or write."""
    status = os.fstat(fd)
    owner, user = status.st_uid, server_uid()
    if owner not in {user, 0}:
        raise SecretFileError(
            f"it belongs to {_user(owner)} (uid {owner}), and trio-tls runs as {_user(user)} "
            f"(uid {user}); run: chown {_user(user)} {os.fspath(path)}"
        )
    if loose_mode(status.st_mode):
        raise SecretFileError(loose_mode_advice(path, status.st_mode))
    return status


def read_private(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """The contents of an existing secret file and its status, after check_private."""
    fd = open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as file:
        status = check_private(fd, path)
        return _read_at_most(file, MAX_FILE_SIZE), status


def open_for_append(path: str | os.PathLike[str]) -> int:
    """A secret log: created 0600 if new, else appended to after check_private."""
    try:
        return open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        pass
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND)
    try:
        check_private(fd, path)
    except SecretFileError:
        os.close(fd)
        raise
    return fd


def create(path: str | os.PathLike[str], data: bytes, mode: int = PRIVATE) -> bool:
    """Write a new file, 0600 unless mode says otherwise; False, leaving it alone, if the path
    exists at all (a link too, even a dangling one)."""
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        if mode != PRIVATE:
            os.fchmod(fd, mode)  # as replace() does: the mode asked for, whatever the umask
        file.write(data)
        file.flush()
        os.fsync(fd)
    return True


def replace(path: str | os.PathLike[str], data: bytes, mode: int = PRIVATE) -> None:
    """Atomically make path hold data with this mode (see the module docstring)."""
    directory = os.path.dirname(os.fspath(path)) or "."
    # mkstemp creates with O_EXCL | O_NOFOLLOW, mode 0600.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if mode != PRIVATE:
                os.fchmod(fd, mode)  # e.g. a certificate: public, but replaced the same way
            file.write(data)
            file.flush()
            os.fsync(fd)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    # The rename itself must survive a crash, or the old keys come back.
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def make_private_directory(path: str | os.PathLike[str]) -> None:
    """Make the directory 0700, or take it as it is if it already is this user's, 0700.

    Anything else is refused: a directory someone else made at a name they could guess (a
    temporary directory's name is in our command lines) would receive our secrets."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        status = os.lstat(path)
        if not (
            stat.S_ISDIR(status.st_mode)
            and status.st_uid == os.geteuid()
            and not loose_mode(status.st_mode)
        ):
            raise SecretFileError(
                f"{os.fspath(path)} exists and is not a directory private to this user"
            ) from None
