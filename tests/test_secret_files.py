"""Secret files: never through a link, created exclusively, refused or warned about when open.

The policy under test (README, "Secret files"): the key log and the ticket key file are refused
when the group or others have any access; a TLS private key is loaded with a warning. A link in
place of the key log, the ticket key file or the development key is an error, and nothing is
ever written through one.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from pathlib import Path

import pytest
import trustme

from trio_tls.engine.config import CertificateError
from trio_tls.ops import secretfiles
from trio_tls.ops.certs import load_private_key, make_self_signed
from trio_tls.ops.keylog import KeyLogFile
from trio_tls.ops.secretfiles import (
    MAX_FILE_SIZE,
    SecretFileError,
    create,
    make_private_directory,
    open_for_append,
    read_regular,
    replace,
    will_run_as,
)
from trio_tls.ops.settings import Settings, ticket_keys
from trio_tls.ops.ticketfile import KeyFile, TicketKeyFileError, read_key_file, write_key_file

from .cli_server import child_env, command, running_server
from .test_workers import worker_pids

VICTIM = b"someone else's file\n"
NOBODY = 65534


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(VICTIM)
    path.chmod(0o600)
    return path


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def serve_and_exit(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A `serve` expected to fail at start-up."""
    return subprocess.run(
        command("serve", "--port", "0", *args),
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trio-tls: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def key_files(tmp_path: Path, rsa_leaf: trustme.LeafCert) -> tuple[Path, Path]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    rsa_leaf.cert_chain_pems[0].write_to_path(str(cert))
    rsa_leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return cert, key


# --- the primitives ---------------------------------------------------------------------------


def test_create_is_exclusive_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    old_umask = os.umask(0)
    try:
        assert create(path, b"one")
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert not create(path, b"two")
    assert path.read_bytes() == b"one"
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert not create(link, b"three")  # O_EXCL: not even a dangling link is followed
    assert not (tmp_path / "nowhere").exists()


def test_replace_swaps_the_link_not_its_target(tmp_path: Path) -> None:
    target = victim(tmp_path)
    link = tmp_path / "secret"
    link.symlink_to(target)
    replace(link, b"new")
    assert target.read_bytes() == VICTIM
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"
    assert mode(link) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret", "victim"]


def special_file(tmp_path: Path, kind: str) -> Path:
    """A path that is not a regular file: each of them once made a read block or never end."""
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()  # the socket file stays
    else:
        path.symlink_to("/dev/zero")  # endless: read_bytes() would fill the memory
    return path


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("fifo", "a FIFO"),
        ("directory", "a directory"),
        ("socket", "a socket"),
        ("device", "a character device"),
    ],
)
def test_only_regular_files_are_read_and_never_waited_on(
    tmp_path: Path, kind: str, named: str
) -> None:
    path = special_file(tmp_path, kind)
    with pytest.raises(SecretFileError, match=f"^it is {named}, not a regular file$"):
        read_regular(path)
    with pytest.raises(SecretFileError, match=f"^it is {named}, not a regular file$"):
        # For writing, too: a FIFO without a reader would block. (A link is refused anyway.)
        open_for_append(path.resolve())


def test_a_file_too_large_to_be_what_it_should_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.pem"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_SIZE + 1)
    with pytest.raises(SecretFileError, match="larger than 4 MiB"):
        read_regular(path)
    with path.open("r+b") as file:
        file.truncate(MAX_FILE_SIZE)
    assert len(read_regular(path)) == MAX_FILE_SIZE


def test_a_private_directory_is_made_or_taken_only_if_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "private"
    make_private_directory(path)
    assert mode(path) == 0o700
    make_private_directory(path)  # already ours
    path.chmod(0o755)
    with pytest.raises(SecretFileError, match="not a directory private to this user"):
        make_private_directory(path)
    path.chmod(0o700)
    os.chown(path, NOBODY, -1)
    with pytest.raises(SecretFileError, match="not a directory private to this user"):
        make_private_directory(path)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "ours")
    (tmp_path / "ours").mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="not a directory private to this user"):
        make_private_directory(link)


# --- the key log ------------------------------------------------------------------------------


def test_key_log_is_never_opened_through_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path)
    link = tmp_path / "keys.log"
    link.symlink_to(target)
    with pytest.raises(SecretFileError, match="symbolic link"):
        KeyLogFile(link)
    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(tmp_path / "made-through-the-link")
    with pytest.raises(SecretFileError, match="symbolic link"):
        KeyLogFile(dangling)
    assert target.read_bytes() == VICTIM
    assert not (tmp_path / "made-through-the-link").exists()


def test_key_log_refuses_an_existing_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "keys.log"
    path.write_text("CLIENT_RANDOM from a browser\n")
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match=f"mode 0644\\); run: chmod 600 {path}"):
        KeyLogFile(path)
    path.chmod(0o600)
    KeyLogFile(path).close()  # appended to, as before


def test_serve_refuses_a_key_log_link(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    cert, key = key_files
    (tmp_path / "keys.log").symlink_to(victim(tmp_path))
    result = serve_and_exit(
        tmp_path, "--certfile", str(cert), "--keyfile", str(key), "--key-log-file", "keys.log"
    )
    assert_one_line_error(result, "cannot open key log file keys.log", "symbolic link")


def test_sslkeylogfile_prints_a_banner_naming_the_file(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    cert, key = key_files
    args = ("--certfile", str(cert), "--keyfile", str(key))
    env = child_env(SSLKEYLOGFILE="inherited.keys")
    with running_server(tmp_path, *args, env=env) as server:
        assert server.stop() == 0
    text = server.stderr
    assert "WARNING: the SSLKEYLOGFILE environment variable is set" in text
    assert f"writing TLS secrets to inherited.keys ({tmp_path / 'inherited.keys'})" in text
    assert "unset SSLKEYLOGFILE" in text
    assert sum(line.startswith("*****") for line in text.splitlines()) == 2

    with running_server(tmp_path, *args, "--key-log-file", "chosen.keys") as server:
        assert server.stop() == 0
    assert "writing TLS secrets to chosen.keys" in server.stderr
    assert "SSLKEYLOGFILE" not in server.stderr  # asked for explicitly: one line is enough


# --- the ticket key file ----------------------------------------------------------------------


def test_ticket_key_file_is_never_read_through_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.keys"
    write_key_file(real, KeyFile.fresh(1_700_000_000))
    link = tmp_path / "tickets.keys"
    link.symlink_to(real)
    with pytest.raises(TicketKeyFileError, match="symbolic link"):
        read_key_file(link)


def test_the_owner_never_makes_the_file_through_a_dangling_link(tmp_path: Path) -> None:
    link = tmp_path / "tickets.keys"
    link.symlink_to(tmp_path / "elsewhere.keys")
    with pytest.raises(TicketKeyFileError, match="symbolic link"):
        ticket_keys(Settings(ticket_key_file=str(link)), [])
    assert not (tmp_path / "elsewhere.keys").exists()


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o620])
def test_ticket_key_file_others_can_reach_is_refused(tmp_path: Path, loose: int) -> None:
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(1_700_000_000))
    path.chmod(loose)
    with pytest.raises(TicketKeyFileError, match=f"mode {loose:04o}\\); run: chmod 600"):
        read_key_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
def test_a_ticket_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    """As OpenSSH's StrictModes: whoever owns the file can read and chmod it, 0600 or not; only
    the server's user and root are trusted."""
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(1_700_000_000))
    os.chown(path, NOBODY, -1)
    owner = pwd.getpwuid(NOBODY).pw_name
    with pytest.raises(TicketKeyFileError) as caught:
        read_key_file(path)
    assert str(caught.value) == (
        f"cannot read ticket key file {path}: it belongs to {owner} (uid {NOBODY}), and "
        f"trio-tls runs as root (uid 0); run: chown root {path}"
    )
    with pytest.raises(SecretFileError, match=f"belongs to {owner}"):
        KeyLogFile(path)  # the key log: its owner would read every secret written to it
    os.chown(path, 0, -1)
    read_key_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
def test_secret_files_are_the_users_that_user_switches_to_before_the_switch_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--user nobody: read as root first, the file the server made and gave to nobody loads,
    one of another user does not, and root's still does."""
    monkeypatch.setattr(secretfiles._ServerUser, "uid", None)
    will_run_as(NOBODY)
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(1_700_000_000))
    os.chown(path, NOBODY, -1)
    read_key_file(path)
    os.chown(path, NOBODY - 1, -1)
    with pytest.raises(TicketKeyFileError, match=f"run: chown {pwd.getpwuid(NOBODY).pw_name}"):
        read_key_file(path)
    os.chown(path, 0, -1)
    read_key_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
def test_serve_refuses_a_ticket_key_file_of_another_user(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    cert, key = key_files
    path = tmp_path / "tickets.keys"
    write_key_file(path, KeyFile.fresh(1_700_000_000))
    os.chown(path, NOBODY, -1)
    result = serve_and_exit(
        tmp_path, "--certfile", str(cert), "--keyfile", str(key), "--ticket-key-file", str(path)
    )
    assert_one_line_error(result, f"ticket key file {path}", f"run: chown root {path}")


def test_serve_refuses_an_open_ticket_key_file(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    cert, key = key_files
    path = tmp_path / "tickets.keys"
    path.write_text("00" * 48 + "\n")  # a file of the first format, as someone wrote it
    path.chmod(0o644)
    result = serve_and_exit(
        tmp_path, "--certfile", str(cert), "--keyfile", str(key), "--ticket-key-file", str(path)
    )
    assert_one_line_error(result, f"ticket key file {path}", f"chmod 600 {path}")


# --- private keys -----------------------------------------------------------------------------


def test_the_dev_key_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path)
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("server.key", "server.crt"):
        (certs / name).symlink_to(target)
    dev = make_self_signed(certs, force=True)  # replaces the links themselves
    assert target.read_bytes() == VICTIM
    assert not dev.key_path.is_symlink() and not dev.cert_path.is_symlink()
    assert mode(dev.key_path) == 0o600
    assert mode(dev.cert_path) == 0o644


def test_the_dev_key_is_never_read_through_a_link(tmp_path: Path) -> None:
    dev = make_self_signed(tmp_path / "elsewhere")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "server.crt").symlink_to(dev.cert_path)
    (certs / "server.key").symlink_to(dev.key_path)
    with pytest.raises(CertificateError, match=r"server\.key: it is a symbolic link"):
        load_private_key(certs / "server.key", follow_symlinks=False)
    load_private_key(certs / "server.key")  # an operator's key may be a link
    result = serve_and_exit(tmp_path)
    assert_one_line_error(result, "cannot read key file certs/server.key", "symbolic link")


def test_serve_warns_about_a_key_others_can_read(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    cert, key = key_files
    args = ("--certfile", str(cert), "--keyfile", str(key))
    with running_server(tmp_path, *args) as server:
        assert server.stop() == 0
    assert "open to other users" not in server.stderr
    key.chmod(0o640)
    with running_server(tmp_path, *args, "--workers", "2") as server:
        worker_pids(server, 2)
        assert server.stop() == 0
    warning = f"key file {key} is open to other users (mode 0640); run: chmod 600 {key}"
    assert server.stderr.count(warning) == 1, server.stderr  # the supervisor's, not every worker's
