"""`--user NAME [--group NAME]`: started as root, serve as someone who cannot do much harm.

As stunnel's `setuid=` and nginx's `user` do, the server does what needs root first (bind a port
under 1024, read keys only root may read, write a pid file into /run), then switches for good:
supplementary groups (the user's, as initgroups(3) sets them), then the group, then the user,
each real, effective and saved, in that order (once the user is switched, the group no longer
can be). Then it checks that root cannot be had back.

Everything after the switch runs as the user, and nothing is kept for later: unlike nginx, no
process stays root. So a SIGHUP reload reads the certificate and key files as the user, workers
of `--workers` (started by the switched supervisor, restarted by it later) run the interpreter
and read the keys as the user, and the ticket key file is read and rotated as the user. Before
switching, `unreachable` checks those files as the user would see them (its effective ids, for
the moment); cli refuses what could never work and warns about what only a reload needs.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
from collections.abc import Iterable, Iterator

import attrs

from .settings import UsageError


@attrs.frozen
class Target:
    """Whom to become: the user, its group, and the groups it belongs to."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def resolve(user: str | None, group: str | None) -> Target | None:
    """The --user and --group given, checked (None without --user)."""
    if user is None:
        if group is not None:
            raise UsageError("--group needs --user; give the user to switch to as well")
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user on this system") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--group {group}: no such group on this system") from None
    if os.geteuid() != 0:
        raise UsageError(
            f"--user {user} needs the server started as root (it runs as uid {os.geteuid()}); "
            "start it as root, or leave out --user"
        )
    groups = tuple(dict.fromkeys([gid, *os.getgrouplist(entry.pw_name, gid)]))
    return Target(entry.pw_name, entry.pw_uid, gid, groups)


@contextlib.contextmanager
def _seen_as(target: Target) -> Iterator[None]:
    """Run as the target's effective ids for a moment; root's come back after."""
    saved = os.getgroups()
    os.setgroups(target.groups)
    os.setegid(target.gid)
    os.seteuid(target.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(saved)


def unreachable(target: Target, wanted: Iterable[tuple[str, int]]) -> list[str]:
    """The paths the target user could not access as `wanted` says (os.R_OK, W_OK, X_OK)."""
    with _seen_as(target):
        return [path for path, mode in wanted if not os.access(path, mode, effective_ids=True)]


def drop(target: Target) -> None:
    """Become the target for good, and make sure it is for good."""
    os.setgroups(target.groups)
    os.setresgid(target.gid, target.gid, target.gid)
    os.setresuid(target.uid, target.uid, target.uid)
    switched = (
        os.getresuid() == (target.uid,) * 3
        and os.getresgid() == (target.gid,) * 3
        and set(os.getgroups()) <= set(target.groups)
    )
    if not switched:
        raise UsageError(f"--user {target.user}: the switch did not take; refusing to serve")
    if target.uid != 0:
        with contextlib.suppress(PermissionError):
            os.setuid(0)
            raise UsageError(f"--user {target.user}: root could be regained; refusing to serve")
