"""Produce the reference records shipped in ``data/reference/``.

    python tools/make_reference.py solutions/04_batch_renorm.ipynb [--timeout 1800]
        [--only 04_renorm ...]
    python tools/make_reference.py --timings [solutions/NN_topic.ipynb ...]
        [--modes fast full]

**Results.** Runs the notebook top to bottom in **full** mode, with a scratch
cache, and writes every experiment result it cached or saved
(``helpers.runs``) to ``data/reference/<name>.json`` (only the names given
with ``--only``, if any).  Each file keeps the provenance recorded when it was
made: mode, device, library versions and date.

**Timings.** ``--timings`` runs each solution notebook (default: all) in each
mode with a cold cache, as a learner's first run would, and records in
``data/reference/timings.json`` the wall time of the whole notebook (kernel
start included) and of each ``helpers.timing.long_cell``, with the machine,
its load and the calibration time ``helpers.timing`` scales by.  The
generator writes the lesson headers' times from this file.

Both refresh ``data/SHA256SUMS``.  Run on an idle machine of the kind the
lesson should quote (a 2-core CPU for the headers), and commit the files.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import course, runs, timing  # noqa: E402
from tools import make_data  # noqa: E402

TIMINGS = ROOT / "data" / "reference" / timing.TIMINGS_FILE


def run_notebook(path: Path, mode: str, cache: Path, timeout: int) -> float:
    """Run ``path`` in ``mode`` with the cache ``cache``; its wall time in seconds."""
    os.environ.update(BNCOURSE_FAST="1" if mode == "fast" else "0")
    os.environ["BNCOURSE_CACHE"] = str(cache)
    os.environ.pop("MPLBACKEND", None)
    os.environ.pop("OMP_NUM_THREADS", None)  # each lesson's setup() decides
    nb = nbformat.read(path, as_version=4)
    start = time.monotonic()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    ).execute()
    return time.monotonic() - start


def ship_results(args) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bncourse-reference-"))
    seconds = run_notebook(args.notebook, "full", scratch, args.timeout)
    print(f"ran {args.notebook} in full mode in {seconds:.0f} s")
    target = ROOT / "data" / "reference"
    made = runs.records(mode="full")  # the scratch cache, set above
    if not made:
        print("no cached results were produced", file=sys.stderr)
        return 1
    for stored in made:
        if args.only and stored["name"] not in args.only:
            continue
        out = target / f"{stored['name']}.json"
        runs.write_json(out, stored)
        print(f"wrote {out.relative_to(ROOT)} ({stored['provenance']})")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def ship_timings(args) -> int:
    import json

    paths = [Path(p).resolve() for p in args.paths] or [
        ROOT / "solutions" / lesson.filename for lesson in course.LESSONS
    ]
    try:
        record = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        record = {}
    lessons, cells = record.get("lessons", {}), record.get("cells", {})
    # each lesson's own provenance (machine, calibration, date, load): lessons
    # are re-timed one at a time, not always on the machine of the first run
    measured = record.get("measured", {})
    loads = [os.getloadavg()[0]]

    first = record.get(
        "provenance"
    )  # the record's first run: every lesson not re-timed

    def record() -> dict:
        return {
            "provenance": first
            or {
                "machine": machine(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "date": datetime.date.today().isoformat(),
                "calibration_seconds": round(timing.calibration_seconds(), 4),
                "load_average_max": round(max(loads), 2),
                "command": "python tools/make_reference.py --timings "
                + " ".join(str(Path(p).relative_to(ROOT)) for p in paths)
                + " --modes "
                + " ".join(args.modes),
                "what": "wall seconds of each solution notebook (kernel start "
                "included, cold cache) and of each long cell, per mode",
            },
            "lessons": dict(sorted(lessons.items())),
            "measured": dict(sorted(measured.items())),
            "cells": dict(sorted(cells.items())),
        }

    for path in paths:
        stem = Path(path).stem
        for mode in args.modes:
            scratch = Path(tempfile.mkdtemp(prefix="bncourse-timing-"))
            seconds = run_notebook(Path(path), mode, scratch, args.timeout)
            lessons.setdefault(stem, {})[mode] = round(seconds, 1)
            measured.setdefault(stem, {})[mode] = {  # this run's own provenance
                "date": datetime.date.today().isoformat(),
                "load_average": round(os.getloadavg()[0], 2),
                "machine": machine(),
                "calibration_seconds": round(timing.calibration_seconds(), 4),
            }
            for key, cell_seconds in timing.recorded(mode).items():
                cells.setdefault(key, {})[mode] = cell_seconds
            loads.append(os.getloadavg()[0])
            print(f"{stem} {mode}: {seconds:.1f} s (load {loads[-1]:.1f})", flush=True)
            shutil.rmtree(scratch, ignore_errors=True)
            runs.write_json(TIMINGS, record())  # after each run: nothing is lost
    print(f"wrote {TIMINGS.relative_to(ROOT)}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--only", nargs="*", help="experiment names to ship")
    parser.add_argument("--timings", action="store_true", help="record wall times")
    parser.add_argument("--modes", nargs="+", default=["fast", "full"])
    args = parser.parse_args(argv)
    if args.timings:
        code = ship_timings(args)
    else:
        if len(args.paths) != 1:
            parser.error("give one notebook (or --timings)")
        args.notebook = args.paths[0]
        code = ship_results(args)
    make_data.write_sums()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
