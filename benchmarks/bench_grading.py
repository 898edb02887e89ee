"""Grading throughput: 30 submissions of notebook 02, with and without workers.

    python benchmarks/bench_grading.py [--size 30] [--cell-timeout 10]

Generates the class with ``tools/make_class.py`` (correct, partly correct,
untouched and every kind of broken notebook, among them one that loops until
its cell times out) and grades it with ``tools/grade.py`` twice: one worker,
then one worker per core.  Prints the wall time and seconds per submission of
each, and checks that both runs give the same scores.  Goal: the class in
under 90 s on 2 cores.  The looping submission costs at least the cell time
limit, so the figure depends on ``--cell-timeout`` (10 s here; the grader's
default is 120 s).  Compare runs within one session: the machine is shared.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import make_class  # noqa: E402


def grade(files, out, jobs, cell_timeout):
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "grade.py"),
            "--out",
            str(out),
            "--quiet",
            "--jobs",
            str(jobs),
            "--cell-timeout",
            str(cell_timeout),
            *map(str, files),
        ],
        check=True,
    )
    elapsed = time.perf_counter() - start
    with open(out, newline="") as f:
        scores = {
            row["file"]: (row["total"], row["error"][:40]) for row in csv.DictReader(f)
        }
    return elapsed, scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--cell-timeout", type=int, default=10)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bncourse-class-") as tmp:
        roster = make_class.make_class(Path(tmp) / "class", args.size)
        files = [entry["file"] for entry in roster]
        kinds = sorted({entry["kind"] for entry in roster})
        print(
            f"grading {len(files)} submissions of notebook 02 ({len(kinds)} kinds: "
            f"{', '.join(kinds)}), cell time limit {args.cell_timeout} s, "
            f"{cores} CPU core(s)",
            flush=True,
        )
        results = {}
        for jobs in sorted({1, cores}):
            elapsed, scores = grade(
                files, Path(tmp) / f"grades-{jobs}.csv", jobs, args.cell_timeout
            )
            results[jobs] = scores
            print(
                f"  {jobs} worker(s): {elapsed:6.1f} s for the class, "
                f"{elapsed / len(files):5.2f} s per submission",
                flush=True,
            )
        first, *others = results.values()
        same = all(scores == first for scores in others)
        print(f"  same scores with every number of workers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
