"""Grading throughput: 30 submissions of notebook 02, without and with the sandbox.

    python benchmarks/bench_grading.py [--size 30] [--cell-timeout 10] [--one-worker]
    python benchmarks/bench_grading.py --against REV [--rounds 2]

``--against REV`` (a git revision of this repository, e.g. ``3fd9a5f``) times
this grader against REV's on one class, in one run: the notebook-02 class
plus the solution and the untouched copy of every lesson whose tests call a
learner-defined class or lesson 08's ranks (03, 04, 07, 08: the tests that ran
in the kernel before and run in the grader now), graded by each grader in
turn, ``--rounds`` times, alternating, so that a busy machine slows both
alike.  It prints submissions per minute for each and the ratio (the issue's
budget: judging everything outside the kernel may cost at most 1.5x).

Generates the class with ``tools/make_class.py`` (correct, partly correct,
untouched and every kind of broken notebook, among them one that loops until
its cell times out) and grades it with ``tools/grade.py``, one worker per
core: with ``--sandbox off``, then (where bubblewrap runs) ``--sandbox on``,
then the same with ``--feedback`` and ``--report`` (the instructor's outputs);
``--one-worker`` adds a run with one worker.  Prints the wall time and seconds
per submission of each and their ratio, and checks that every run gives the
same scores.  Goal: the class in under 90 s on 2 cores, the sandbox costing at
most ~20%.  The looping submission costs at least the cell time
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


def grade(files, out, jobs, cell_timeout, box, extra=(), root=ROOT):
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(Path(root) / "tools" / "grade.py"),
            "--out",
            str(out),
            "--quiet",
            "--jobs",
            str(jobs),
            "--cell-timeout",
            str(cell_timeout),
            "--sandbox",
            box,
            *extra,
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


MIXED = (
    "03_inference_running_stats",
    "04_batch_renorm",
    "07_why_batchnorm_works",
    "08_batchnorm_across_devices",
)


def against(rev: str, size: int, cell_timeout: int, rounds: int) -> int:
    """This grader against revision ``rev``'s, one class, alternating."""
    import shutil

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bncourse-against-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "worktree",
                "add",
                "-q",
                "--detach",
                str(old),
                rev,
            ],
            check=True,
        )
        try:
            roster = make_class.make_class(Path(tmp) / "class", size)
            files = [Path(entry["file"]) for entry in roster]
            for stem in MIXED:
                for kind in ("solutions", "notebooks"):
                    target = Path(tmp) / "class" / kind / f"{stem}.ipynb"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(ROOT / kind / f"{stem}.ipynb", target)
                    files.append(target)
            print(
                f"{len(files)} submissions ({len(roster)} of notebook 02, the "
                f"solution and learner copy of {', '.join(s[:2] for s in MIXED)}), "
                f"{cores} core(s), {rounds} round(s), this grader against {rev}",
                flush=True,
            )
            times: dict = {"old": [], "new": []}
            scores: dict = {}
            for round_ in range(rounds):
                for name, root in (("old", old), ("new", ROOT)):
                    out = Path(tmp) / f"{name}-{round_}.csv"
                    elapsed, scores[name] = grade(
                        files, out, cores, cell_timeout, "on", root=root
                    )
                    times[name].append(elapsed)
                    print(
                        f"  round {round_ + 1}, {name} grader: {elapsed:6.1f} s, "
                        f"{60 * len(files) / elapsed:5.1f} submissions/min",
                        flush=True,
                    )
            best = {k: min(v) for k, v in times.items()}
            print(
                f"  best of {rounds}: old {60 * len(files) / best['old']:.1f}, new "
                f"{60 * len(files) / best['new']:.1f} submissions/min; new/old time "
                f"{best['new'] / best['old']:.2f}x"
            )
            for key in sorted(scores["new"]):
                if scores["new"][key][0] != scores["old"].get(key, ("",))[0]:
                    print(
                        f"    {Path(key).parent.name}/{Path(key).name}: old "
                        f"{scores['old'].get(key)} new {scores['new'][key]}"
                    )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                check=False,
            )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--cell-timeout", type=int, default=10)
    parser.add_argument("--one-worker", action="store_true")
    parser.add_argument("--against", help="a git revision whose grader to time too")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.against:
        return against(args.against, args.size, args.cell_timeout, args.rounds)
    from tools.grading import sandbox

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
        runs = [(cores, "off")]
        if sandbox.availability()[0]:
            runs.append((cores, "on"))
        else:
            print(f"  (no sandbox run: {sandbox.availability()[1]})")
        if args.one_worker:
            runs.append((1, "off"))
        results, seconds = {}, {}
        for jobs, box in runs:
            out = Path(tmp) / f"grades-{jobs}-{box}.csv"
            elapsed, scores = grade(files, out, jobs, args.cell_timeout, box)
            results[jobs, box], seconds[jobs, box] = scores, elapsed
            print(
                f"  {jobs} worker(s), sandbox {box:>3}: {elapsed:6.1f} s for the "
                f"class, {elapsed / len(files):5.2f} s per submission",
                flush=True,
            )
        if (cores, "on") in seconds:
            ratio = seconds[cores, "on"] / seconds[cores, "off"]
            print(f"  sandbox / no sandbox: {ratio:.2f}x")
        box = "on" if (cores, "on") in seconds else "off"
        extra = ["--feedback", f"{tmp}/feedback", "--report", f"{tmp}/report"]
        out = Path(tmp) / "grades-outputs.csv"
        elapsed, scores = grade(files, out, cores, args.cell_timeout, box, extra)
        results[cores, box, "outputs"] = scores
        ratio = elapsed / seconds[cores, box]
        print(
            f"  {cores} worker(s), sandbox {box:>3}, with feedback and report: "
            f"{elapsed:6.1f} s ({ratio:.2f}x the same run without them)",
            flush=True,
        )
        first, *others = results.values()
        same = all(
            {k: v[0] for k, v in scores.items()} == {k: v[0] for k, v in first.items()}
            for scores in others
        )
        print(f"  same scores in every run: {same}")
        for scores in others:
            for key in sorted(first):
                if scores.get(key) != first[key]:
                    print(f"    {Path(key).name}: {first[key]} vs {scores.get(key)}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
