"""Running it as a service: --pid-file, --user/--group, and a port under 1024 refused.

The real program in a subprocess, as the init script or unit would start it. Switching user needs
root: those tests skip only when not run as root. Files a switched server must still reach live
in a directory of their own under /tmp (pytest's tmp_path is root's alone, mode 0700).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from trio_tls.cli.serve import _listen_error
from trio_tls.ops import pidfile, privileges
from trio_tls.ops.settings import UsageError

from .cli_server import child_env, command, running_server

COMMAND_TIMEOUT = 20.0
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="switching user needs root")
CURL = shutil.which("curl")
SETPRIV = shutil.which("setpriv")
SYSTEM_PYTHON = "/usr/bin/python3"


def _run(cwd: Path, *args: str, argv: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv or command(*args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert lines, result
    line = lines[-1]  # after any warning logged on the way
    assert "Traceback" not in result.stderr, result.stderr
    assert line.startswith("trio-tls: error: "), result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def _https_get(port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    return data


@pytest.fixture(scope="module")
def site() -> Iterator[Path]:
    """A directory anyone may enter, with a certificate and a key nobody's group can read (as
    Debian's ssl-cert group does), so a switched server can reload them."""
    directory = Path(tempfile.mkdtemp(prefix="trio-tls-test-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        leaf = trustme.CA().issue_cert("localhost", "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(directory / "site.crt"))
        leaf.private_key_pem.write_to_path(str(directory / "site.key"))
        (directory / "site.crt").chmod(0o644)
        (directory / "site.key").chmod(0o640)
        if ROOT:
            os.chown(directory / "site.key", 0, _nobody_gid())
        yield directory
    finally:
        shutil.rmtree(directory)


def _nobody_gid() -> int:
    return pwd.getpwnam("nobody").pw_gid


def _nobodys_directory(site: Path, name: str) -> Path:
    """A directory of the site's that user nobody owns, as an operator would give the server."""
    directory = site / name
    directory.mkdir()
    os.chown(directory, pwd.getpwnam("nobody").pw_uid, _nobody_gid())
    return directory


def _site_args(site: Path) -> tuple[str, ...]:
    return ("--certfile", str(site / "site.crt"), "--keyfile", str(site / "site.key"))


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# --- --pid-file ---------------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=COMMAND_TIMEOUT)
    return child.pid


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_pid_file_written_once_listening_and_removed_at_exit(
    tmp_path: Path, site: Path, signum: signal.Signals
) -> None:
    pid_path = tmp_path / "trio-tls.pid"
    with running_server(tmp_path, "--pid-file", str(pid_path), *_site_args(site)) as server:
        assert pid_path.read_text() == f"{server.proc.pid}\n"
        assert stat.S_IMODE(pid_path.stat().st_mode) == 0o644
        assert not list(tmp_path.glob(".trio-tls-pid.*")), "a temporary file was left"
        assert server.stop(signum) == 0
    assert not pid_path.exists()


def test_a_pid_file_a_running_server_holds_is_refused(tmp_path: Path, site: Path) -> None:
    pid_path = tmp_path / "trio-tls.pid"
    with running_server(tmp_path, "--pid-file", str(pid_path), *_site_args(site)) as server:
        result = _run(tmp_path, "serve", "--port", "0", "--pid-file", str(pid_path))
        _one_line_error(
            result, f"--pid-file {pid_path} is held by a running server (pid {server.proc.pid})"
        )
        assert not (tmp_path / "certs").exists()  # refused before anything else was done
        assert pid_path.read_text() == f"{server.proc.pid}\n"
        assert server.stop() == 0
    assert not pid_path.exists()


def test_a_stale_pid_file_is_taken_over(tmp_path: Path, site: Path) -> None:
    pid_path = tmp_path / "trio-tls.pid"
    dead = _dead_pid()
    pid_path.write_text(f"{dead}\n")
    with running_server(tmp_path, "--pid-file", str(pid_path), *_site_args(site)) as server:
        assert pid_path.read_text() == f"{server.proc.pid}\n"
        server.wait_for_stderr(f"took over the stale pid file {pid_path} of pid {dead}", 5)
        assert server.stop() == 0
    assert not pid_path.exists()


def test_no_pid_file_when_the_port_cannot_be_had(tmp_path: Path, site: Path) -> None:
    """Written once listening: a server that never listened leaves none."""
    pid_path = tmp_path / "trio-tls.pid"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = _run(
            tmp_path, "serve", "--port", port, "--pid-file", str(pid_path), *_site_args(site)
        )
    _one_line_error(result, "in use")
    assert not pid_path.exists()


def test_pid_file_of_workers_is_the_supervisors(tmp_path: Path, site: Path) -> None:
    pid_path = tmp_path / "trio-tls.pid"
    args = ("--workers", "2", "--pid-file", str(pid_path), *_site_args(site))
    with running_server(tmp_path, *args) as server:
        assert pid_path.read_text() == f"{server.proc.pid}\n"
        assert b"Hello from Python TLS!\n" in _https_get(server.port)
        assert server.stop() == 0
    assert not pid_path.exists()


def test_reload_by_the_pid_file(tmp_path: Path, site: Path) -> None:
    """The README's reload: kill -HUP $(cat PATH)."""
    pid_path = tmp_path / "trio-tls.pid"
    with running_server(tmp_path, "--pid-file", str(pid_path), *_site_args(site)) as server:
        subprocess.run(["sh", "-c", f'kill -HUP "$(cat {pid_path})"'], check=True, timeout=10)
        server.wait_for_stderr("reloaded: new handshakes use certificates", 10)


def test_pid_file_refuses_a_link_and_leaves_a_successors_file(tmp_path: Path) -> None:
    link = tmp_path / "link.pid"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="is a symbolic link"):
        pidfile.check(str(link))
    path = tmp_path / "server.pid"
    ours = pidfile.PidFile(str(path))
    assert path.read_text() == f"{os.getpid()}\n"
    path.unlink()
    path.write_text("12345\n")  # another server's, since
    ours.remove()
    assert path.read_text() == "12345\n"


# --- --user and --group -------------------------------------------------------------------------


def test_user_and_group_mistakes_are_one_line(tmp_path: Path) -> None:
    cases = {
        ("--user", "no-such-user-here"): "--user no-such-user-here: no such user on this system",
        ("--group", "nogroup"): "--group needs --user",
        ("--user", "nobody", "--group", "no-such-group"): "--group no-such-group: no such group",
    }
    for args, message in cases.items():
        _one_line_error(_run(tmp_path, "serve", "--port", "0", *args), message)
    assert not (tmp_path / "certs").exists()


def _as_nobody(*args: str) -> list[str]:
    """trio-tls serve as nobody, through setpriv, by the system's interpreter (this one may sit
    under /root, where nobody cannot reach) with this environment's packages."""
    packages = sysconfig.get_paths()["purelib"]
    start = f"import site, sys; site.addsitedir({packages!r}); from trio_tls.cli import main; "
    nogroup = grp.getgrgid(_nobody_gid()).gr_name
    return [
        *("setpriv", "--reuid", "nobody", "--regid", nogroup, "--clear-groups"),
        *(SYSTEM_PYTHON, "-S", "-c", start + "sys.exit(main())", *args),
    ]


def _check_nobody_can_run(site: Path) -> None:
    if not ROOT or SETPRIV is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root, setpriv and /usr/bin/python3")
    probe = _run(site, argv=_as_nobody("--version"))
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run trio-tls here: {probe.stderr.strip()[-200:]}")


def test_user_needs_root(site: Path) -> None:
    _check_nobody_can_run(site)
    result = _run(site, argv=_as_nobody("serve", "--port", "0", "--user", "nobody"))
    _one_line_error(result, "--user nobody needs the server started as root", "leave out --user")


def test_a_port_under_1024_names_the_ways_out(site: Path) -> None:
    """A real EACCES: trio-tls as nobody, without --user, on port 443."""
    _check_nobody_can_run(site)
    result = _run(site, argv=_as_nobody("serve", "--port", "443", *_site_args(site)))
    line = _one_line_error(result, "cannot listen on 127.0.0.1:443: Permission denied")
    for way in ("--user NAME", "CAP_NET_BIND_SERVICE", "AmbientCapabilities", "socket activation"):
        assert way in line


@pytest.mark.parametrize("port", [80, 8443])
def test_the_ways_out_only_for_a_privileged_port(port: int) -> None:
    error = _listen_error("127.0.0.1", port, OSError(errno.EACCES, "Permission denied"))
    assert ("CAP_NET_BIND_SERVICE" in str(error)) == (port < 1024)


@needs_root
def test_user_nobody_serves_as_nobody(site: Path) -> None:
    pid_path = site / "user.pid"  # in a directory nobody cannot write to: it stays, with a warning
    args = ("--user", "nobody", "--pid-file", str(pid_path), *_site_args(site))
    with running_server(site, *args) as server:
        status = _status(server.proc.pid)
        nobody = pwd.getpwnam("nobody")
        assert status["Uid"].split() == [str(nobody.pw_uid)] * 4  # real, effective, saved, fs
        assert status["Gid"].split() == [str(nobody.pw_gid)] * 4
        assert status["Groups"].split() == [
            str(g) for g in os.getgrouplist("nobody", nobody.pw_gid)
        ]
        assert status["CapEff"] == "0000000000000000"
        assert b"Hello from Python TLS!\n" in _https_get(server.port)
        server.wait_for_stderr("serving as user nobody", 5)
        # The key is readable by nobody's group: a reload works as nobody.
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_stderr("reloaded: new handshakes use certificates", 10)
        assert "pid file" in server.stderr and "will stay behind at exit" in server.stderr
        assert server.stop() == 0
    assert pid_path.read_text() == f"{server.proc.pid}\n"  # the next start takes it over
    pid_path.unlink()


@needs_root
def test_a_pid_file_in_the_users_directory_is_removed(site: Path) -> None:
    pid_path = _nobodys_directory(site, "run") / "trio-tls.pid"
    args = ("--user", "nobody", "--pid-file", str(pid_path), *_site_args(site))
    with running_server(site, *args) as server:
        assert pid_path.read_text() == f"{server.proc.pid}\n"
        assert server.stop() == 0
    assert "will stay behind" not in server.stderr
    assert not pid_path.exists()
    pid_path.parent.rmdir()


@needs_root
def test_a_key_only_root_reads_is_warned_about_for_reloads(tmp_path: Path) -> None:
    """The dev key is root's, mode 0600: served, and the reload's trouble said at start-up."""
    with running_server(tmp_path, "--user", "nobody") as server:
        server.wait_for_stderr("a reload (SIGHUP) reads certs/server.key as user nobody", 5)
        assert b"Hello from Python TLS!\n" in _https_get(server.port)


@needs_root
def test_workers_refuse_keys_the_user_cannot_read(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", "--port", "0", "--workers", "2", "--user", "nobody")
    _one_line_error(result, "--user nobody cannot read certs/server.", ": --workers read it")


@needs_root
def test_workers_as_nobody(site: Path) -> None:
    """The supervisor switches before it starts them: every process is nobody's, and tickets
    made by one resume on the others through the private key file nobody rotates."""
    if privileges.unreachable(
        privileges.Target("nobody", *_nobody_ids()), [(sys.executable, os.X_OK)]
    ):
        pytest.skip(f"nobody cannot run {sys.executable}")
    with running_server(site, "--user", "nobody", "--workers", "2", *_site_args(site)) as server:
        assert _status(server.proc.pid)["Uid"].split()[0] == str(pwd.getpwnam("nobody").pw_uid)
        assert b"Hello from Python TLS!\n" in _https_get(server.port)


@needs_root
def test_workers_as_nobody_keep_their_keys_where_nobody_root_stays(site: Path) -> None:
    """The private ticket key directory and the janitor that removes it are nobody's, as every
    other process is; the directory goes with a supervisor killed by SIGKILL all the same."""
    if privileges.unreachable(
        privileges.Target("nobody", *_nobody_ids()), [(sys.executable, os.X_OK)]
    ):
        pytest.skip(f"nobody cannot run {sys.executable}")
    nobody = pwd.getpwnam("nobody").pw_uid
    tmp = site / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    args = ("--user", "nobody", "--workers", "2", *_site_args(site))
    with running_server(site, *args, env=child_env(TMPDIR=str(tmp))) as server:
        (directory,) = tmp.glob("trio-tls-*")
        assert directory.stat().st_uid == nobody
        assert (directory / "tickets.keys").stat().st_uid == nobody
        (janitor,) = [
            int(proc.name)
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit()
            and _cmdline(proc)[1:3] == [b"-I", b"-S"]
            and _cmdline(proc)[-1] == bytes(directory)
        ]
        assert _status(janitor)["Uid"].split() == [str(nobody)] * 4
        server.proc.kill()
        deadline = time.monotonic() + 10
        while directory.exists():
            assert time.monotonic() < deadline, "the key directory outlived its supervisor"
            time.sleep(0.05)
    shutil.rmtree(tmp)


def _cmdline(proc: Path) -> list[bytes]:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:  # gone meanwhile
        return []


def _nobody_ids() -> tuple[int, int, tuple[int, ...]]:
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid, (nobody.pw_gid,)


@needs_root
def test_a_ticket_key_file_the_server_makes_is_the_users(site: Path) -> None:
    key_file = _nobodys_directory(site, "keys") / "tickets.keys"
    args = ("--user", "nobody", "--ticket-key-file", str(key_file), *_site_args(site))
    with running_server(site, *args) as server:
        assert key_file.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert server.stop() == 0
    shutil.rmtree(key_file.parent)


@needs_root
def test_a_ticket_key_file_the_user_cannot_rotate_is_refused(tmp_path: Path, site: Path) -> None:
    key_file = tmp_path / "tickets.keys"  # in root's 0700 directory
    args = ("--user", "nobody", "--ticket-key-file", str(key_file), *_site_args(site))
    result = _run(tmp_path, "serve", "--port", "0", *args)
    _one_line_error(result, f"--user nobody cannot read {key_file}: it is read again")


@needs_root
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_port_443_as_root_then_nobody_answers_curl(site: Path) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 443))
        except OSError:
            pytest.skip("port 443 is taken here")
    args = ("--port", "443", "--user", "nobody", *_site_args(site))
    with running_server(site, *args) as server:
        assert server.port == 443
        assert CURL is not None
        result = subprocess.run(
            [CURL, "-v", "--insecure", "https://localhost:443"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Hello from Python TLS!\n"
        assert "HTTP/1.1 200 OK" in result.stderr
        assert _status(server.proc.pid)["Uid"].split()[0] == str(pwd.getpwnam("nobody").pw_uid)
        assert server.stop() == 0
