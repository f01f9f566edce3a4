"""Handler discovery by entry points: the built-ins, broken plugins, and the README's example
plugin, taken from README.md, installed with pip and served over TLS as its guide says."""

from __future__ import annotations

import functools
import json
import logging
import ssl
import subprocess
import sys
import textwrap
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from trio_tls import ConnectionInfo, ServerConfig, TLSStream, serve
from trio_tls.ops.plugins import (
    ENTRY_POINT_GROUP,
    HandlerInfo,
    PluginError,
    UnknownHandlerError,
    installed_handlers,
    load_handler,
    parse_handler_options,
)
from trio_tls.server.handler import HandlerTraits

from . import readme


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
            missing-attr = trio_tls.ops.plugins:no_such_factory
            not-callable = trio_tls.ops.plugins:ENTRY_POINT_GROUP
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
        (
            "missing-attr",
            "cannot load handler 'missing-attr' (trio_tls.ops.plugins:no_such_factory)",
        ),
        (
            "not-callable",
            "handler 'not-callable' (trio_tls.ops.plugins:ENTRY_POINT_GROUP) is not a",
        ),
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


@pytest.fixture(scope="module")
def shout_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's plugin package, built and installed with pip as its reader would.

    --target keeps it out of this environment, and --no-deps because its one dependency,
    trio-tls, is the one under test (test_readme_installs_trio_tls_first covers resolving it).
    """
    package = tmp_path_factory.mktemp("plugin") / "trio-tls-shout"
    package.mkdir()
    for name, text in readme.files("Writing a handler plugin").items():
        (package / name).write_text(text)
    site = package.parent / "site"
    _pip("install", "--no-deps", "--target", str(site), str(package))
    return site


@pytest.fixture
def shout_installed(shout_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(shout_site))
    try:
        yield
    finally:
        sys.modules.pop("trio_tls_shout", None)


def _pip(*args: str) -> None:
    """Run pip offline, as the README's note says: no package index, and the build backend
    (setuptools, in the test extra) taken from this environment. A failure is a failure."""
    command = [
        sys.executable,
        "-m",
        "pip",
        *args,
        "--no-index",
        "--no-build-isolation",
        "--no-input",
        "--disable-pip-version-check",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"pip {args[0]} failed:\n{result.stdout}{result.stderr}"


async def _shout_client(
    port: int, ca: trustme.CA, alpn: list[str]
) -> trio.SSLStream[trio.SocketStream]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(alpn)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    client = trio.SSLStream(tcp, context, server_hostname="localhost")
    await client.do_handshake()
    return client


@pytest.mark.usefixtures("shout_installed")
async def test_readme_plugin_serves_with_its_alpn_and_cleans_up_at_shutdown(
    ca: trustme.CA, rsa_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    assert installed_handlers()["shout"] == HandlerInfo(
        name="shout",
        value="trio_tls_shout:make_handler",
        distribution="trio-tls-shout",
        version="1.0",
    )
    assert {"echo", "hello", "shout"} <= set(installed_handlers())
    handler = load_handler("shout", {"suffix": "!!"})
    assert HandlerTraits.of(handler).alpn_protocols == (b"shout",)
    config = attrs.evolve(rsa_config, alpn_protocols=HandlerTraits.of(handler).alpn_protocols)
    caplog.set_level(logging.INFO, logger="trio_tls_shout")
    shutdown = trio.Event()
    grace = 0.5

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "trio_tls_shout"]

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            run = functools.partial(serve, shutdown=shutdown, shutdown_grace=grace)
            listeners = await nursery.start(run, handler, config, "127.0.0.1", 0)
            client = await _shout_client(listeners[0].socket.getsockname()[1], ca, ["shout"])
            assert client.selected_alpn_protocol() == "shout"
            await client.send_all(b"hello")
            assert await client.receive_some() == b"HELLO!!"
            host, port = client.transport_stream.socket.getsockname()[:2]
            peer = f"{host}:{port}"
            assert said() == [f"{peer}: ALPN shout"]
            # The client stays, so the handler waits in receive_some until the grace runs out.
            shutdown.set()
            began = trio.current_time()
        assert trio.current_time() - began >= grace
    await client.transport_stream.aclose()
    assert said() == [f"{peer}: ALPN shout", f"{peer}: done"]


@pytest.mark.usefixtures("shout_installed")
def test_readme_plugin_refuses_an_unknown_option_as_the_readme_says() -> None:
    with pytest.raises(PluginError) as error:
        load_handler("shout", {"sufix": "?"})
    message = "cannot create handler 'shout': unknown option 'sufix'; shout takes suffix"
    assert str(error.value) == message
    guide = " ".join(readme.section("Writing a handler plugin").split())
    assert f"trio-tls: error: {message}" in guide


def test_readme_installs_trio_tls_first(tmp_path: Path) -> None:
    """trio-tls is not on the index: the guide installs it from its checkout, then the plugin,
    whose `trio-tls` requirement pip then finds satisfied (trio-tls is installed here too)."""
    (commands,) = readme.code_blocks("Writing a handler plugin", "sh")
    installs = [
        line.split("#")[0].split() for line in commands.splitlines() if "pip install" in line
    ]
    assert installs == [
        ["python3", "-m", "pip", "install", "/path/to/trio-tls"],
        ["python3", "-m", "pip", "install", "./trio-tls-shout"],
    ]
    package = tmp_path / "trio-tls-shout"
    package.mkdir()
    for name, text in readme.files("Writing a handler plugin").items():
        (package / name).write_text(text)
    report = tmp_path / "report.json"
    _pip("install", "--dry-run", "--quiet", "--report", str(report), str(package))
    to_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert to_install == ["trio-tls-shout"]


def test_stream_info_is_fully_typed() -> None:
    """What a handler reads on stream.info has precise types, so mypy --strict checks plugins."""
    hints = typing.get_type_hints(ConnectionInfo)
    assert hints["peer"] == str | None
    assert not {object, typing.Any} & set(hints.values())
    assert typing.get_type_hints(TLSStream.__init__)["peer"] == str | None


def test_every_package_directory_is_packaged() -> None:
    """A subpackage missing from pyproject's list installs fine in editable mode (as the tests
    run) and breaks `pip install .`: compare the list with the tree."""
    root = Path(__file__).parent.parent
    declared = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "trio_tls").rglob("__init__.py")
    }
    assert found <= declared, found - declared
