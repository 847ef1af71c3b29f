"""`make mutate`: mutation testing of the modules that run in Lambda, with mutmut.

mutmut names a mutant after its file's path and strips only a leading `src.`, while the
tests import the package as `vpcflow_partitioner`: so it runs in `.mutmut/`, where `src`
links to `functions/` (and `tests`, `events`, `pyproject.toml` to the project's own).
Each mutant runs only the tests that reached its function during mutmut's stats run.

    python scripts/mutate.py                  # every mutant, fresh
    python scripts/mutate.py --sample 5       # one mutant in five (those numbered *0, *5)
    python scripts/mutate.py --module cache   # one module
    python scripts/mutate.py --table          # the table of the last run, nothing run
    python scripts/mutate.py --survivors      # and the diff of each surviving mutant
    python scripts/mutate.py --compare DIR    # before/after over the mutants both runs ran

A surviving mutant judged equivalent (no test a user would care about can tell it from the
original) is listed, with one line of why, in scripts/equivalent-mutants.txt; the score leaves
those out: killed / (run - equivalent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut"
PACKAGE = "vpcflow_partitioner"
# The modules that run in Lambda (the folder walk lives in sources).
MODULES = ("keys", "scheme", "envelopes", "cache", "catalog", "pipeline", "sources", "backfill", "inventory")
LINKS = {"src": "functions", "functions": "functions", "tests": "tests", "events": "events"}
# Which last digits of a mutant's number a sample of one in N keeps (fnmatch classes).
SAMPLES = {1: "", 2: "[02468]", 5: "[05]", 10: "0", 20: "[02468]0"}

EQUIVALENT = ROOT / "scripts" / "equivalent-mutants.txt"
KILLED = {1, 3, 24, -24, 36, 152, 255, 37}  # killed, pytest internal error, timeouts, type check
SURVIVED = {0}
NO_TESTS = {5, 33}


def prepare(fresh: bool) -> None:
    WORK.mkdir(exist_ok=True)
    for name, target in LINKS.items():
        link = WORK / name
        if not link.is_symlink():
            link.symlink_to(Path("..") / target)
    # A copy, not a link: mutmut copies it into mutants/ and pytest reads its rootdir there.
    shutil.copy2(ROOT / "pyproject.toml", WORK / "pyproject.toml")
    if fresh:
        shutil.rmtree(WORK / "mutants", ignore_errors=True)


def patterns(modules: list[str], sample: int) -> list[str]:
    if sample not in SAMPLES:
        raise SystemExit(f"--sample must be one of {sorted(SAMPLES)}")
    digit = SAMPLES[sample]
    if not digit and set(modules) == set(MODULES):
        return []  # everything
    return [f"{PACKAGE}.{module}.*__mutmut_*{digit}" for module in modules]


def results(folder: Path | None = None) -> dict[str, dict[str, int | None]]:
    """module -> mutant name -> exit code (None: not run), from mutmut's .meta files."""
    out: dict[str, dict[str, int | None]] = {}
    for module in MODULES:
        meta = (folder or WORK / "mutants" / "src" / PACKAGE) / f"{module}.py.meta"
        if meta.exists():
            out[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return out


def equivalents() -> dict[str, str]:
    """Mutant name -> why it is equivalent."""
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            name, _, why = line.partition(" ")
            if name and not name.startswith("#"):
                out[name] = why.strip()
    return out


def table(data: dict[str, dict[str, int | None]]) -> tuple[str, bool]:
    rows = [
        "| module | mutants run | killed | not killed | of which equivalent | no tests | other | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    equivalent = equivalents()
    total: Counter[str] = Counter()
    for module, codes in data.items():
        c: Counter[str] = Counter()
        for name, code in codes.items():
            if code is None:
                continue
            c["run"] += 1
            if code not in KILLED and name in equivalent:
                c["equivalent"] += 1
            c[
                "killed"
                if code in KILLED
                else "survived"
                if code in SURVIVED
                else "no tests"
                if code in NO_TESTS
                else "other"
            ] += 1
        total.update(c)
        rows.append(_row(module, c))
    rows.append(_row("**all**", total))
    return "\n".join(rows), total["run"] > 0


def _row(name: str, c: Counter[str]) -> str:
    counted = c["run"] - c["equivalent"]
    score = f"{100 * c['killed'] / counted:.1f} %" if counted else "-"
    return (
        f"| {name} | {c['run']} | {c['killed']} | {c['survived'] + c['no tests'] + c['other']} "
        f"| {c['equivalent']} | {c['no tests']} | {c['other']} | {score} |"
    )


def survivors(data: dict[str, dict[str, int | None]], show_diff: bool) -> None:
    equivalent = equivalents()
    for codes in data.values():
        for name, code in sorted(codes.items()):
            if code is not None and code not in KILLED and name not in equivalent:
                print(f"\n## {name} (exit {code})")
                if show_diff:
                    subprocess.run([_mutmut(), "show", name], cwd=WORK, check=False)


def _mutmut() -> str:
    return str(Path(sys.executable).with_name("mutmut"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=int, default=1, help="run one mutant in N (1, 2, 5, 10 or 20)")
    parser.add_argument("--module", action="append", choices=MODULES, help="only this module (repeatable)")
    parser.add_argument("--keep", action="store_true", help="reuse the last run's stats and results")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MUTATE_WORKERS", "2")))
    parser.add_argument("--table", action="store_true", help="print the last run's table only")
    parser.add_argument(
        "--survivors", action="store_true", help="print the last run's survivors (with diffs)"
    )
    parser.add_argument(
        "--compare", type=Path, help="a folder of another run's .meta files: both tables, same mutants"
    )
    args = parser.parse_args()

    if args.compare:
        # Both runs, over the mutants both ran: a before/after on the same mutants.
        before, after = results(args.compare), results()
        both = {
            m: {n for n, c in after.get(m, {}).items() if c is not None and before[m].get(n) is not None}
            for m in before
        }
        print("before\n" + table({m: {n: before[m][n] for n in both[m]} for m in before})[0])
        print("\nafter\n" + table({m: {n: after[m][n] for n in both[m]} for m in before})[0])
        return 0
    if args.table or args.survivors:
        data = results()
        print(table(data)[0])
        if args.survivors:
            survivors(data, show_diff=True)
        return 0

    modules = args.module or list(MODULES)
    prepare(fresh=not args.keep)
    started = time.monotonic()
    command = [_mutmut(), "run", "--max-children", str(args.workers), *patterns(modules, args.sample)]
    run = subprocess.run(command, cwd=WORK, check=False)
    elapsed = time.monotonic() - started
    data = {m: c for m, c in results().items() if m in modules}
    text, any_run = table(data)
    print(
        f"\n{text}\n\n{len(modules)} module(s), sample 1/{args.sample}, {args.workers} workers: {elapsed / 60:.1f} min"
    )
    survivors(data, show_diff=False)
    return run.returncode if not any_run else 0


if __name__ == "__main__":
    sys.exit(main())
