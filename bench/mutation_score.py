"""Mutation score of the money core, per file, from mutmut's results in ``mutants/``.

``make mutation`` runs mutmut 3 on ``commerce/services/{claim_sql,stock,claims,orders}.py``
(configured under ``[tool.mutmut]`` in pyproject.toml) and then this script, which reads
the ``*.meta`` files mutmut writes next to each mutated file and prints, per file, the
mutants killed out of all generated, and the survivors. A mutant that made the tests time
out counts as killed (the tests noticed); one never checked (an interrupted run) counts as
not killed and is reported, so a partial run never looks better than it is.

Not a test. Run ``.venv/bin/python -m bench.mutation_score`` after ``mutmut run``;
``--min 90`` exits 1 when any file scores below 90 %; ``--survivors`` lists them (show
one with ``.venv/bin/mutmut show NAME``; never ``mutmut apply``, which edits the source).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

FILES = (
    "commerce/services/claim_sql.py",
    "commerce/services/stock.py",
    "commerce/services/claims.py",
    "commerce/services/orders.py",
)
DETECTED = ("killed", "timeout")  # a test failed, or the tests hung and were stopped


def status(exit_code: int | None) -> str:
    """mutmut's name for a mutant's exit code: killed, timeout, survived, not checked, …"""
    return str(status_by_exit_code[exit_code])


def load(root: Path, source: str) -> dict[str, int | None]:
    meta = root / "mutants" / f"{source}.meta"
    if not meta.exists():
        return {}
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return exit_codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    parser.add_argument("--min", type=float, default=None, help="fail below this % per file")
    parser.add_argument("--survivors", action="store_true", help="list every survivor")
    args = parser.parse_args(argv)

    below = False
    total_killed = total_all = 0
    print(f"{'file':<34} {'killed':>7} {'total':>6} {'score':>7}   other")
    for source in FILES:
        results = load(args.root, source)
        if not results:
            print(f"{source:<34} no mutmut results (run `make mutation`)")
            below = True
            continue
        by_status = Counter(status(code) for code in results.values())
        killed = sum(by_status[name] for name in DETECTED)
        score = 100.0 * killed / len(results)
        other = ", ".join(
            f"{n} {name}" for name, n in sorted(by_status.items()) if name not in ("killed",)
        )
        print(f"{source:<34} {killed:>7} {len(results):>6} {score:>6.1f}%   {other}")
        total_killed += killed
        total_all += len(results)
        if args.min is not None and score < args.min:
            below = True
        if args.survivors:
            for name, code in sorted(results.items()):
                if status(code) not in DETECTED:
                    print(f"    {status(code):<12} {name}")
    if total_all:
        overall = 100.0 * total_killed / total_all
        print(f"{'all four':<34} {total_killed:>7} {total_all:>6} {overall:>6.1f}%")
    return 1 if below and args.min is not None else 0


if __name__ == "__main__":
    sys.exit(main())
