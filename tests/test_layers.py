"""The package's layers, held: every import in trio_tls/ and handlers/, read with `ast`.

engine/ -> observe/ -> server/ -> ops/ -> cli/: a module may import only from its own layer or
those before it. Inside the engine: wire, record, crypto, the rest, handshake, connection. The
engine never reaches trio, sockets, files or logging. Handlers use the public face, server/,
observe/ and the engine's data types, and nothing in the package imports a handler. A
subpackage's __init__.py is its folder's map: a docstring and nothing else (cli/'s also holds
`main`, the `trio-tls` entry point).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_tls"
HANDLERS = ROOT / "handlers"

LAYERS = ("engine", "observe", "server", "ops", "cli")
ENGINE_ORDER = {
    "wire": 0,
    "record": 1,
    "crypto": 2,
    "sessions": 3,
    "clientauth": 3,
    "config": 3,
    "events": 3,
    "handshake": 4,
    "connection": 5,
}
# What the engine must never import: an event loop, the network, processes, files, logging.
ENGINE_FORBIDDEN = frozenset(
    {
        *("trio", "h11", "asyncio", "socket", "ssl", "select", "selectors", "threading"),
        *("subprocess", "multiprocessing", "concurrent", "signal", "resource", "fcntl"),
        *("logging", "io", "pathlib", "tempfile", "shutil", "sys", "mmap"),
    }
)
ENGINE_FORBIDDEN_CALLS = frozenset({"open", "print", "input"})
# The engine's data types a handler may use; never its machinery (connection, handshake,
# records, key schedule, key exchange, sessions).
HANDLER_ENGINE_MODULES = ("trio_tls.engine.events", "trio_tls.engine.config")
HANDLER_ENGINE_PACKAGES = ("trio_tls.engine.wire.", "trio_tls.engine.crypto.suites")


def _module_name(path: Path) -> str:
    if path.is_relative_to(HANDLERS):
        parts = ["trio_tls_handlers", *path.relative_to(HANDLERS).with_suffix("").parts]
    else:
        parts = ["trio_tls", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *HANDLERS.rglob("*.py")])


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the file, relative ones resolved; for
    `from package import name` both the package and package.name (which may be a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "trio_tls" and len(parts) > 1 and parts[1] in LAYERS else None


def _engine_rank(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["trio_tls", "engine"] or len(parts) < 3:
        return None
    return ENGINE_ORDER.get(parts[2])


def _is_module(module: str) -> bool:
    """Whether a dotted name is one of ours that exists as a module or package."""
    if module.startswith("trio_tls_handlers"):
        relative = Path(HANDLERS, *module.split(".")[1:])
    elif module.startswith("trio_tls"):
        relative = Path(PACKAGE, *module.split(".")[1:])
    else:
        return False
    return relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()


def _violations(path: Path) -> Iterator[str]:
    name = _module_name(path)
    where = f"{path.relative_to(ROOT)}"
    own_layer, own_rank = _layer(name), _engine_rank(name)
    for line, target in _imports(path):
        top = target.split(".")[0]
        ours = top in ("trio_tls", "trio_tls_handlers") and _is_module(target)
        if name.startswith("trio_tls_handlers"):
            if ours and top == "trio_tls":
                yield from _handler_rule(where, line, target)
            continue
        if ours and top == "trio_tls_handlers":
            yield f"{where}:{line}: the package imports a handler ({target})"
        if not ours or top != "trio_tls":
            if own_layer == "engine" and top in ENGINE_FORBIDDEN:
                yield f"{where}:{line}: the engine imports {target}"
            continue
        target_layer = _layer(target)
        if own_layer is None or target_layer is None:
            if own_layer is not None and target != "trio_tls":
                yield f"{where}:{line}: {target} is outside every layer"
            elif own_layer is not None:
                yield f"{where}:{line}: a layer imports the public face (trio_tls)"
            continue
        if LAYERS.index(target_layer) > LAYERS.index(own_layer):
            yield f"{where}:{line}: {own_layer}/ imports {target} from {target_layer}/, above it"
        target_rank = _engine_rank(target)
        if own_rank is not None and target_rank is not None and target_rank > own_rank:
            yield f"{where}:{line}: {name} imports {target}, later in the engine's order"


def _handler_rule(where: str, line: int, target: str) -> Iterator[str]:
    if target == "trio_tls" or _layer(target) in ("server", "observe"):
        return
    if target in HANDLER_ENGINE_MODULES or target.startswith(HANDLER_ENGINE_PACKAGES):
        return
    if target in ("trio_tls.engine", "trio_tls.engine.wire", "trio_tls.engine.crypto"):
        return  # the package part of `from trio_tls.engine.wire import x`
    yield f"{where}:{line}: a handler imports {target}"


def _engine_io(path: Path) -> Iterator[str]:
    """File I/O and printing by call, and `os` beyond its random bytes."""
    where = f"{path.relative_to(ROOT)}"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ENGINE_FORBIDDEN_CALLS
        ):
            yield f"{where}:{node.lineno}: the engine calls {node.func.id}()"
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr != "urandom"
        ):
            yield f"{where}:{node.lineno}: the engine uses os.{node.attr}"


def test_every_import_respects_the_layers() -> None:
    found = [problem for path in _modules() for problem in _violations(path)]
    assert found == []


def test_the_engine_does_no_io() -> None:
    found = [
        problem
        for path in sorted((PACKAGE / "engine").rglob("*.py"))
        for problem in _engine_io(path)
    ]
    assert found == []


def test_a_subpackage_init_is_its_map() -> None:
    inits = sorted(path for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE)
    assert inits
    for path in inits:
        if path.parent == PACKAGE / "cli":
            continue  # also the entry point's home: trio_tls.cli:main
        body = ast.parse(path.read_text()).body
        assert len(body) == 1, f"{path.relative_to(ROOT)} holds more than its docstring"
        assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def test_at_most_eight_entries_at_the_top() -> None:
    entries = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    assert len(entries) <= 8, sorted(entries)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ...server.stream import TLSStream\n", "imports trio_tls.server.stream from server/"),
        ("from ..handshake.hello import ExpectClientHello\n", "later in the engine's order"),
        ("import trio\n", "the engine imports trio"),
        ("from trio_tls_handlers import hello\n", "the package imports a handler"),
    ],
)
def test_the_rules_catch_what_they_name(
    source: str, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A rule that never fires proves nothing: each one, on a module that breaks it."""
    fake_root = tmp_path
    (fake_root / "trio_tls" / "engine" / "wire").mkdir(parents=True)
    for layer in LAYERS:
        (fake_root / "trio_tls" / layer).mkdir(exist_ok=True)
    for real in _modules():
        if real.is_relative_to(PACKAGE):
            copy = fake_root / real.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.touch()
    (fake_root / "handlers").mkdir()
    (fake_root / "handlers" / "hello.py").touch()
    module = fake_root / "trio_tls" / "engine" / "wire" / "bad.py"
    module.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake_root / "trio_tls")
    monkeypatch.setattr(sys.modules[__name__], "HANDLERS", fake_root / "handlers")
    problems = list(_violations(module))
    assert any(expected in problem for problem in problems), problems


def test_importing_the_engine_does_not_load_trio() -> None:
    """The public face is lazy (PEP 562): the engine alone, in a fresh interpreter, brings no
    event loop, no HTTP and no logging handlers."""
    code = (
        "import sys, trio_tls.engine.connection\n"
        "print(sorted({'trio', 'h11', 'logging.handlers'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_public_face_is_unchanged() -> None:
    import trio_tls  # noqa: PLC0415

    assert sorted(trio_tls.__all__) == sorted(
        [
            *("NEED_DATA", "AlertReceived", "ApplicationData", "CertifiedKey", "ClientAuth"),
            *("ClientHelloReport", "ConnectionClosed", "ConnectionInfo", "Handler"),
            *("HandshakeComplete", "LocalProtocolError", "RemoteProtocolError", "ServerConfig"),
            *("ServerConnection", "TLSError", "TLSStream", "inspect_client_hello", "serve"),
        ]
    )
    for name in trio_tls.__all__:
        assert getattr(trio_tls, name) is not None
    assert [name for name in dir(trio_tls) if not name.startswith("_")] == sorted(trio_tls.__all__)
