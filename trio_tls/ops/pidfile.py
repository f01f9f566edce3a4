"""`--pid-file`: the server's process ID, for `kill -HUP $(cat PATH)`, written once it listens.

What a reader sees is either no file, a stale one, or our whole line: never a half-written one.
The line goes to a temporary file in the same directory first, which is then linked into place
(`link` fails if the path exists, so two servers starting at once cannot both win), or renamed
over a stale file. Whether a file is stale is decided by a lock, not by guessing from its pid
(which the kernel may have handed to another process since): the server holds an exclusive
`flock` on its pid file for as long as it runs, so a file nobody holds a lock on belongs to a
server that is gone, however it ended, and is taken over with a notice. This is the scheme of
BSD's pidfile(3) and of systemd's PIDFile= readers, made atomic for readers.

At exit the file is removed, but only if it is still ours (a successor may have replaced it).
After `--user` the directory may no longer be writable: the file then stays, harmless, since
the next start finds it unlocked and takes it over; cli warns about that at start-up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile

from .settings import UsageError

log = logging.getLogger("trio_tls")

MODE = 0o644  # readable by whoever may signal the server, as nginx's and stunnel's are


class PidFileError(UsageError):
    """The pid file cannot be used; str() is one line naming --pid-file."""


def _holder(path: str) -> int | None:
    """The fd of the file at path, locked by us, or None if there is no file; PidFileError if
    a running server holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PidFileError(
                f"--pid-file {path} is a symbolic link; give the file itself"
            ) from None
        raise PidFileError(f"cannot open --pid-file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        running = f"server (pid {pid})" if pid else "server"
        raise PidFileError(
            f"--pid-file {path} is held by a running {running}; stop it first, or give "
            "another --pid-file"
        ) from None
    return fd


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    return None


def check(path: str) -> None:
    """Refuse at once, before listening, if a running server holds the file."""
    fd = _holder(path)
    if fd is not None:
        os.close(fd)


class PidFile:
    """Our pid file, locked until `remove()`."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".trio-tls-pid.")
        except OSError as exc:
            raise PidFileError(f"cannot write --pid-file {path}: {exc.strerror}") from None
        self._fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new: nobody else can hold it
            os.fchmod(fd, MODE)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            os.fsync(fd)
            self._install(temporary)
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _install(self, temporary: str) -> None:
        while True:
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                pass
            else:
                return
            stale = _holder(self.path)  # raises if a running server holds it
            if stale is None:
                continue  # removed meanwhile: link again
            try:
                if os.fstat(stale).st_ino != os.stat(self.path, follow_symlinks=False).st_ino:
                    continue  # replaced meanwhile: look again
                pid = _read_pid(stale)
                os.rename(temporary, self.path)
            finally:
                os.close(stale)
            was = f" of pid {pid}" if pid else ""
            log.warning("took over the stale pid file %s%s (no server holds it)", self.path, was)
            return

    def remove(self) -> None:
        """Remove the file if it is still ours, and let go of it."""
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove pid file %s: %s", self.path, exc.strerror)
        finally:
            os.close(self._fd)
