"""Developer sessions: tests, lint, typecheck, bench, fuzz.

No python= pins: each session runs on the interpreter nox itself runs on, so a machine with a
single Python (CI included) never fails on a missing interpreter.
"""

import pathlib

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "-m", "bench", *session.posargs)


# libFuzzer flags for `nox -s fuzz`; a posarg naming the same flag replaces the default.
FUZZ_DEFAULTS = {
    "-max_total_time": "300",
    "-max_len": "8192",
    "-timeout": "10",
    "-dict": "fuzz/tls.dict",
    "-artifact_prefix": ".fuzz-artifacts/",
    "-print_final_stats": "1",
}


@nox.session
def fuzz(session: nox.Session) -> None:
    """Time-boxed atheris campaign over ServerConnection (fuzz/fuzz_connection.py).

    Not a default session: its verdict depends on how long it ran. Seeds in fuzz/corpus are only
    read; new inputs go to .fuzz-corpus/ and crashes to .fuzz-artifacts/ (both git-ignored).
    Posargs are passed on: `nox -s fuzz -- -max_total_time=3600 --keep-going`.
    """
    session.install("-e", ".[test]", "atheris")
    given = {arg.split("=", 1)[0] for arg in session.posargs}
    flags = [f"{flag}={value}" for flag, value in FUZZ_DEFAULTS.items() if flag not in given]
    pathlib.Path(".fuzz-corpus").mkdir(exist_ok=True)
    session.run(
        "python", "fuzz/fuzz_connection.py", ".fuzz-corpus", "fuzz/corpus", *flags, *session.posargs
    )
