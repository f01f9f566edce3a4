"""Files that hold secrets: never opened through a link, created exclusively, replaced whole.

The secret files the server itself opens are the NSS key log, the ticket key file and the
development private key: each one decrypts traffic. Three rules close the classic holes:

- Open with O_NOFOLLOW. A symbolic link planted where a secret file belongs could send our
  writes onto another file, or make us serve someone else's secret; a link is an error instead.
- Create with O_CREAT | O_EXCL and mode 0600. A file we create is private from its first byte;
  a file that already exists is not ours to trust, so its mode is checked.
- Replace whole: write a 0600 temporary file in the same directory, fsync it, rename it over the
  old one, fsync the directory. Readers see the old file or the new one, never half of either,
  and rename replaces a link itself, never what it points to.

"Loose" means any permission for the group or others (mode & 0o077): read access leaks the
secret, write access lets someone else choose it. Which files are refused and which only warned
about is the caller's decision (README, "Secret files").
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

PRIVATE = 0o600
_GROUP_OR_OTHERS = 0o077


class SecretFileError(Exception):
    """Why a secret file cannot be used, worded to follow "cannot open FILE: "."""


def loose_mode(mode: int) -> bool:
    return bool(mode & _GROUP_OR_OTHERS)


def loose_mode_advice(path: str | os.PathLike[str], mode: int) -> str:
    return (
        f"other users have access to it (mode {stat.S_IMODE(mode):04o}); "
        f"run: chmod 600 {os.fspath(path)}"
    )


def open_nofollow(path: str | os.PathLike[str], flags: int, mode: int = PRIVATE) -> int:
    """os.open that refuses a symbolic link as the last component, with a message saying so."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as exc:
        # ELOOP is also a loop among the directories; only a link at the end is ours to explain.
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise SecretFileError(
                "it is a symbolic link, and secret files are never opened through one"
            ) from None
        raise


def check_private(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    """Refuse an open secret file that is not a regular file or that others may read or write."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise SecretFileError("it is not a regular file")
    if loose_mode(status.st_mode):
        raise SecretFileError(loose_mode_advice(path, status.st_mode))
    return status


def read_private(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """The contents of an existing secret file and its status, after check_private."""
    fd = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as file:
        status = check_private(fd, path)
        return file.read(), status


def open_for_append(path: str | os.PathLike[str]) -> int:
    """A secret log: created 0600 if new, else appended to after check_private."""
    try:
        return open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        pass
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND)
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
        fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
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
