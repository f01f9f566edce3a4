"""Time-boxed mutation testing of the protocol engine with mutmut 3 (`nox -s mutation`).

mutmut copies the package to mutants/, rewrites every function of the modules that
[tool.mutmut] `only_mutate` names (pyproject.toml) into a trampoline over its mutants, runs the
engine tests once to learn which tests reach which function, then runs, for each mutant, only
those tests (`-x`: the first failure kills it). This script runs it under a deadline and then
prints the score of each module:

    score = killed / (killed + survived)

where "killed" counts mutants a test failed on, timed out on or crashed on, and "survived" the
ones every selected test passed with. Mutants no test reaches ("no tests") are listed but left out
of the score, and so are the ones the deadline left unchecked. mutmut keeps its verdicts in
mutants/, so a second run goes on where the first stopped (`--fresh` starts over).

    python mutation/run.py [--minutes 30] [--max-children 1] [--fresh] [--survivors] [MUTANT ...]
    python mutation/run.py --report            # the scores of what was run so far

MUTATION_MINUTES sets the default deadline. Mutant names (as `mutmut results` prints them,
globs allowed) restrict the run to those mutants and re-check them even if they have a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
# The modules in scope, as reported: a folder groups its modules under one score.
MODULES = (
    "trio_tls/engine/connection.py",
    "trio_tls/engine/handshake/",
    "trio_tls/engine/record/framing.py",
    "trio_tls/engine/record/protection.py",
    "trio_tls/engine/sessions.py",
)
# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into what a score needs.
# Killed: a test failed (1), pytest failed inside (3), a time limit (36, 24, -24, 152, 255), a
# crash (-11, -9) or the type checker (37).
KILLED = {1, 3, 36, 24, -24, 152, 255, -11, -9, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}  # no test reaches the function
# A worker stopped by the deadline (SIGTERM from mutmut, or SIGINT) leaves one of these: not a
# verdict, so it is forgotten before the next run, which then checks that mutant again.
INTERRUPTED = {2, -2, -15, 143}
GRACE_SECONDS = 60  # after the deadline: for mutmut to stop its worker and save its verdicts


def run_mutmut(minutes: float, max_children: int, names: list[str]) -> int:
    """Run `mutmut run` until it ends or the deadline passes; its exit status (0 if stopped)."""
    MUTANTS.mkdir(exist_ok=True)
    log_path = MUTANTS / "run.log"
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    print(f"$ {' '.join(command)}   (deadline {minutes:g} min, output in {log_path})", flush=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            print("deadline reached: stopping mutmut (unchecked mutants stay unchecked)")
        except KeyboardInterrupt:
            print("interrupted: stopping mutmut")
        # SIGINT to mutmut alone: it stops its workers and saves what it has (a worker that is
        # interrupted leaves its mutant unchecked, never "killed").
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return 0


def forget_interrupted() -> None:
    for meta in MUTANTS.rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        verdicts = data["exit_code_by_key"]
        stale = [name for name, code in verdicts.items() if code in INTERRUPTED]
        if stale:
            verdicts.update(dict.fromkeys(stale))
            meta.write_text(json.dumps(data, indent=4))


def module_of(source: str) -> str:
    for module in MODULES:
        if source == module or (module.endswith("/") and source.startswith(module)):
            return module
    return source


def report() -> bool:
    """Print each module's score and its surviving mutants; False if nothing was run."""
    verdicts: dict[str, Counter[str]] = {}
    survivors: dict[str, list[str]] = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = meta.relative_to(MUTANTS).as_posix().removesuffix(".meta")
        module = module_of(source)
        counts = verdicts.setdefault(module, Counter())
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code in KILLED:
                counts["killed"] += 1
            elif code in SURVIVED:
                counts["survived"] += 1
                survivors.setdefault(module, []).append(name)
            elif code in NO_TESTS:
                counts["no tests"] += 1
                survivors.setdefault(module, []).append(f"{name} (no tests)")
            elif code is None:
                counts["unchecked"] += 1
            else:
                counts["other"] += 1
                survivors.setdefault(module, []).append(f"{name} (exit code {code})")
    if not verdicts:
        print("no mutmut results in mutants/: run first")
        return False
    for module in MODULES:
        for name in survivors.get(module, ()):
            print(f"  survived: {name}")
    print()
    header = f"{'module':<26} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8}"
    print(f"{header} {'unchecked':>9} {'score':>7}")
    total: Counter[str] = Counter()
    for module in MODULES:
        counts = verdicts.get(module, Counter())
        total += counts
        print(line(module, counts))
    print(line("all", total))
    return True


def line(module: str, counts: Counter[str]) -> str:
    checked = counts["killed"] + counts["survived"]
    score = f"{100 * counts['killed'] / checked:6.1f}%" if checked else "     - "
    return (
        f"{module:<26} {counts.total():>7} {counts['killed']:>6} {counts['survived']:>8} "
        f"{counts['no tests']:>8} {counts['unchecked'] + counts['other']:>9} {score:>7}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=float(os.environ.get("MUTATION_MINUTES", "30")),
        help="stop mutmut after this long (default: $MUTATION_MINUTES or 30)",
    )
    parser.add_argument(
        "--max-children", type=int, default=1, help="mutmut worker processes (default 1)"
    )
    parser.add_argument("--fresh", action="store_true", help="forget earlier verdicts first")
    parser.add_argument("--report", action="store_true", help="only print the scores so far")
    parser.add_argument("mutants", nargs="*", help="only these mutants (names or globs)")
    args = parser.parse_args()
    if not args.report:
        if args.fresh and MUTANTS.exists():
            shutil.rmtree(MUTANTS)
        forget_interrupted()
        started = time.monotonic()
        status = run_mutmut(args.minutes, args.max_children, args.mutants)
        print(f"mutmut ran {(time.monotonic() - started) / 60:.1f} min, exit status {status}")
        if status not in (0,):
            print(f"mutmut failed: see {MUTANTS / 'run.log'}")
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())
