"""Handler discovery by entry points: the built-ins, broken plugins, a freshly installed one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_tls.plugins import (
    ENTRY_POINT_GROUP,
    HandlerInfo,
    PluginError,
    UnknownHandlerError,
    installed_handlers,
    load_handler,
    parse_handler_options,
)

# Output from pip that means "could not reach the package index", as opposed to a real failure.
NETWORK_TROUBLE = (
    "Could not find a version that satisfies the requirement",
    "No matching distribution found",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Max retries exceeded",
    "ProxyError",
)


def test_builtin_handlers_are_installed() -> None:
    handlers = installed_handlers()
    assert list(handlers) == sorted(handlers)
    for name in ("echo", "hello"):
        info = handlers[name]
        assert info.name == name
        assert info.value == f"trio_tls_handlers.{name}:make_handler"
        assert info.distribution == "trio-tls"
        assert info.version


def test_unknown_handler_lists_installed() -> None:
    with pytest.raises(UnknownHandlerError) as error:
        load_handler("nope")
    message = str(error.value)
    assert message.startswith("unknown handler 'nope'; installed: ")
    listed = message.removeprefix("unknown handler 'nope'; installed: ").split(", ")
    assert {"echo", "hello"} <= set(listed)
    assert listed == sorted(listed)
    assert isinstance(error.value, PluginError)


def test_bad_option_becomes_plugin_error() -> None:
    with pytest.raises(PluginError, match="cannot create handler 'echo'") as error:
        load_handler("echo", {"loud": "yes"})
    assert isinstance(error.value.__cause__, ValueError)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {}),
        (["body=hi"], {"body": "hi"}),
        (["a=1", "b=2", "a=3"], {"a": "3", "b": "2"}),
        (["token=abc=="], {"token": "abc=="}),
        (["empty="], {"empty": ""}),
    ],
)
def test_parse_handler_options(pairs: list[str], expected: dict[str, str]) -> None:
    assert parse_handler_options(pairs) == expected


@pytest.mark.parametrize(
    ("pair", "message"), [("body", "is not KEY=VALUE"), ("=x", "has an empty key")]
)
def test_parse_handler_options_rejects(pair: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_handler_options(["ok=1", pair])


@pytest.fixture
def broken_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution, declared only by its metadata, whose entry points all fail somehow.

    importlib.metadata finds it on sys.path exactly as it would a pip-installed one.
    """
    dist_info = tmp_path / "site" / "broken_handlers-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-handlers\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [{ENTRY_POINT_GROUP}]
            missing-module = trio_tls_no_such_module:make_handler
            missing-attr = trio_tls.plugins:no_such_factory
            not-callable = trio_tls.plugins:ENTRY_POINT_GROUP
            returns-dict = builtins:dict
            """)
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield


@pytest.mark.usefixtures("broken_plugins")
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing-module", "cannot load handler 'missing-module' (trio_tls_no_such_module:"),
        ("missing-attr", "cannot load handler 'missing-attr' (trio_tls.plugins:no_such_factory)"),
        ("not-callable", "handler 'not-callable' (trio_tls.plugins:ENTRY_POINT_GROUP) is not a"),
        ("returns-dict", "handler 'returns-dict' factory returned dict, not a callable"),
    ],
)
def test_broken_plugins(name: str, message: str) -> None:
    info = installed_handlers()[name]
    assert (info.distribution, info.version) == ("broken-handlers", "1.0")
    with pytest.raises(PluginError) as error:
        load_handler(name)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


SHOUT_PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "trio-tls-shout"
version = "0.2.0"

[project.entry-points."{ENTRY_POINT_GROUP}"]
shout = "trio_tls_shout:make_handler"

[tool.setuptools]
py-modules = ["trio_tls_shout"]
"""

SHOUT_MODULE = """\
def make_handler(options):
    suffix = options.get("suffix", "!").encode()

    async def shout(stream):
        while data := await stream.receive_some(65536):
            await stream.send_all(bytes(data).upper() + suffix)

    return shout
"""


@pytest.fixture
def shout_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Build and install a third-party handler package with pip, as a user would."""
    package = tmp_path / "trio-tls-shout"
    package.mkdir()
    (package / "pyproject.toml").write_text(SHOUT_PYPROJECT)
    (package / "trio_tls_shout.py").write_text(SHOUT_MODULE)
    site = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input"]
    command += ["--disable-pip-version-check", "--target", str(site), str(package)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        output = exc.stdout + exc.stderr
        if any(marker in output for marker in NETWORK_TROUBLE):
            pytest.skip(f"pip could not fetch the build backend: {output.strip()[-300:]}")
        raise AssertionError(f"pip install failed:\n{output}") from exc
    monkeypatch.syspath_prepend(str(site))
    try:
        yield
    finally:
        sys.modules.pop("trio_tls_shout", None)


@pytest.mark.usefixtures("shout_installed")
async def test_third_party_handler_is_discovered_and_works() -> None:
    info = installed_handlers()["shout"]
    assert info == HandlerInfo(
        name="shout",
        value="trio_tls_shout:make_handler",
        distribution="trio-tls-shout",
        version="0.2.0",
    )
    assert {"echo", "hello", "shout"} <= set(installed_handlers())

    handler = load_handler("shout", {"suffix": "!!"})
    client, server = trio.testing.memory_stream_pair()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handler, server)
            await client.send_all(b"hello")
            assert await client.receive_some() == b"HELLO!!"
            await client.send_eof()
