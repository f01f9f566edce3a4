"""Developer sessions: tests, tests-lowest, lint, typecheck, coverage, bench, fuzz, mutation.

No python= pins: each session runs on the interpreter nox itself runs on, so a machine with a
single Python (CI included) never fails on a missing interpreter.
"""

import pathlib
import shutil
import tomllib

import nox
from packaging.requirements import Requirement

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


def lowest_constraints() -> list[str]:
    """`name==floor` for every dependency pyproject.toml declares with a `>=` floor.

    Made from pyproject.toml itself, so a floor raised there is tested at once and a constraints
    file can never drift from the declaration. Only direct dependencies are pinned: what they
    need in turn resolves as a user's pip would resolve it."""
    project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    pins = []
    for text in declared:
        requirement = Requirement(text)
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if floors:
            pins.append(f"{requirement.name}=={floors[0]}")
    return pins


@nox.session(name="tests-lowest")
def tests_lowest(session: nox.Session) -> None:
    """The test suite on the lowest version of each dependency pyproject.toml declares.

    A floor that is too low shows up here, not on a user's machine with an old package."""
    constraints = pathlib.Path(session.create_tmp()) / "lowest-constraints.txt"
    constraints.write_text("\n".join(lowest_constraints()) + "\n")
    session.log("constraints: " + ", ".join(constraints.read_text().split()))
    session.install("-c", str(constraints), "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, check them with twine, then serve every built-in handler from
    a venv that holds only the wheel, in a directory outside the checkout (tests/package_smoke.py).

    The suite runs on an editable install, which sees the whole tree; only this shows that the
    wheel carries every module, the entry points and the package data."""
    session.install("build", "twine")
    dist = pathlib.Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)  # only this build's files
    session.run("python", "-m", "build", "--outdir", str(dist), ".")
    built = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *built)
    (wheel,) = (path for path in built if path.endswith(".whl"))
    venv = dist.parent / "wheel-only"
    session.run("python", "-m", "venv", "--clear", str(venv))
    session.run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", wheel, external=True)
    session.run("python", "tests/package_smoke.py", str(venv / "bin" / "trio-tls"))


@nox.session
def coverage(session: nox.Session) -> None:
    """The test suite under coverage, subprocesses included ([tool.coverage] in pyproject.toml).

    Not a default session: it is the tests again, slower. Lines and branches of trio_tls/ and
    handlers/, measured in pytest and in every `trio-tls` process the tests start (the command
    line and workers run nowhere else); `coverage report` prints the table, htmlcov/ has the
    annotated source. Posargs go to pytest: `nox -s coverage -- tests/test_cli.py`.
    """
    session.install("-e", ".[test]", "coverage>=7.10")
    session.run("coverage", "erase")
    try:
        session.run("coverage", "run", "-m", "pytest", *session.posargs)
    finally:  # the report, even when a test failed (the session still fails)
        session.run("coverage", "combine", "--quiet")
        session.run("coverage", "html", "--quiet")
        session.run("coverage", "report")


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


@nox.session
def mutation(session: nox.Session) -> None:
    """Time-boxed mutmut run over the protocol engine (mutation/run.py, [tool.mutmut]).

    Not a default session: it takes long and its verdict depends on how long it ran. Prints the
    score of each engine module; verdicts stay in mutants/ (git-ignored), so the next run goes on
    where this one stopped. Posargs go to the script: `nox -s mutation -- --minutes 90`,
    `-- --fresh`, `-- --report`, or mutant names to re-check. MUTATION_MINUTES sets the default.
    """
    session.install("-e", ".[test]", "mutmut>=3.8,<4")
    session.run("python", "mutation/run.py", *session.posargs)
