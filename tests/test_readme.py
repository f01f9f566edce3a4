"""The README's examples as printed: "Using it from Python" serves what `trio-tls certs` makes,
and it and the plugin example pass `mypy --strict` (test_plugins.py installs and serves the
plugin); the proxy's routing example starts, and its refused route prints what is shown. Only
the example's port is changed, to a free one: 4433 may be taken.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import trustme

import trio_tls

from . import readme
from .cli_server import EXIT_TIMEOUT, STARTUP_TIMEOUT, child_env, command, end, running_server

README_PORT = "4433"
MYPY_TIMEOUT = 300.0


def _python_example() -> str:
    (code,) = readme.code_blocks("Using it from Python", "python")
    return code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _first_reply(proc: subprocess.Popen[bytes], port: int, cafile: Path, stderr: Path) -> bytes:
    """Connect once the example listens, verifying the certificate, and read until it closes."""
    context = ssl.create_default_context(cafile=str(cafile))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=EXIT_TIMEOUT) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                chunks = []
                while chunk := tls.recv(4096):
                    chunks.append(chunk)
                return b"".join(chunks)
        except ConnectionRefusedError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the example is not listening:\n{stderr.read_text()}")
            time.sleep(0.05)


def test_python_example_serves_what_trio_tls_certs_makes(tmp_path: Path) -> None:
    made = subprocess.run(
        command("certs"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    code = _python_example()
    assert code.count(README_PORT) == 1
    port = _free_port()
    (tmp_path / "example.py").write_text(code.replace(README_PORT, str(port)))
    stderr_path = tmp_path / "example.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        reply = _first_reply(proc, port, tmp_path / "certs" / "server.crt", stderr_path)
    finally:
        end(proc)  # SIGTERM: the example has no handler for it, but its coverage data is saved
    assert reply == b"hi TLS_AES_128_GCM_SHA256\n"


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(_python_example())
    plugin = readme.files("Writing a handler plugin")["trio_tls_shout.py"]
    (tmp_path / "trio_tls_shout.py").write_text(plugin)
    env = child_env()
    checkout = Path(trio_tls.__file__).resolve().parent.parent
    if checkout != Path(sysconfig.get_paths()["purelib"]).resolve():
        # An editable install is an import hook that mypy cannot follow (the README says so).
        env["MYPYPATH"] = str(checkout)
    mypy = [sys.executable, "-m", "mypy", "--strict", "--config-file=", "--follow-imports=silent"]
    mypy += ["--cache-dir", str(tmp_path / ".mypy_cache"), "example.py", "trio_tls_shout.py"]
    result = subprocess.run(
        mypy,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=MYPY_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_commands() -> None:
    """The quick start's two commands are what a newcomer runs: CI runs the test one verbatim,
    and both start in a venv, since Debian's Python refuses `pip install` outside one."""
    blocks = [block.strip() for block in readme.code_blocks("Quick start", "sh")]
    (install_and_serve,) = [block for block in blocks if "trio-tls serve" in block]
    (install_and_test,) = [block for block in blocks if "nox -s tests" in block]
    ci = (readme.README.parent / ".ci" / "run").read_text()
    assert install_and_test in ci.splitlines()
    for quick_start in (install_and_serve, install_and_test):
        assert quick_start.startswith("python3 -m venv .venv && . .venv/bin/activate && ")


def _proxy_example(lang: str) -> list[str]:
    """The proxy section's example of that language: the `trio-tls serve` arguments (and, for
    the console one, what it prints), as a shell would split them."""
    (block,) = [
        code
        for code in readme.code_blocks("Writing a handler plugin", lang)
        if "--handler proxy" in code
    ]
    return shlex.split(block.replace("\\\n", " ").removeprefix("$ "))


def _certificate_options(tmp_path: Path, leaf: trustme.LeafCert) -> list[str]:
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "proxy.crt")
    leaf.private_key_pem.write_to_path(tmp_path / "proxy.key")
    (tmp_path / "proxy.key").chmod(0o600)
    return ["--certfile", str(tmp_path / "proxy.crt"), "--keyfile", str(tmp_path / "proxy.key")]


def test_the_proxy_routing_example_starts(tmp_path: Path, rsa_leaf: trustme.LeafCert) -> None:
    argv = _proxy_example("shell")
    assert argv[:2] == ["trio-tls", "serve"]
    with running_server(tmp_path, *argv[2:], *_certificate_options(tmp_path, rsa_leaf)) as server:
        assert server.stop() == 0


def test_the_refused_proxy_route_prints_what_the_readme_says(
    tmp_path: Path, rsa_leaf: trustme.LeafCert
) -> None:
    words = _proxy_example("console")
    printed = " ".join(words[words.index("trio-tls:") :])
    argv = words[: words.index("trio-tls:")]
    assert argv[:2] == ["trio-tls", "serve"]
    refused = subprocess.run(
        command(*argv[1:], "--port", "0", *_certificate_options(tmp_path, rsa_leaf)),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    assert (refused.returncode, refused.stderr) == (1, printed + "\n")
