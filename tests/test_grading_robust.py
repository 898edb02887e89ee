"""Grading you can trust: a class of broken and correct submissions, end to end.

A class with one submission of every kind, broken ones included, goes through
``tools/grade.py``: every submission gets its row, the deserved points, the CSV
appears atomically and the grader's files are untouched.
``benchmarks/bench_grading.py`` grades the full class of 30.  (Wrong
implementations of every exercise go through the checks and the grader's tests
in ``tests/test_mutants.py``.)
"""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import ROOT, run_grader


def _digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
    }


@pytest.mark.slow
def test_a_class_with_every_kind_of_submission(tmp_path):
    from tools import make_class

    klass = tmp_path / "class"
    out = klass / "grades.csv"
    # the evil submission also overwrites this run's CSV by its absolute path
    roster = make_class.make_class(
        klass, size=len(make_class.ALL_KINDS), extra_targets=[out]
    )
    solutions_before = _digest(ROOT / "solutions")
    rows = run_grader(
        out,
        [r["file"] for r in roster],
        "--cell-timeout",
        "6",
        "--timeout",
        "180",
        "--memory-mb",
        "3072",
    )
    assert set(rows) == {r["file"] for r in roster}, "every submission has its row"
    for entry in roster:
        row = rows[entry["file"]]
        if entry["points"] is None:
            assert row["total"] == "" and entry["note"] in row["error"], row
            continue
        for test, points in entry["points"].items():
            assert float(row[f"02:{test}"]) == points, (entry["kind"], test, row)
        assert entry["note"] in row["error"], (entry["kind"], row["error"])
    assert _digest(ROOT / "solutions") == solutions_before, "the grader's tests changed"
    assert not list(klass.glob(".grades-*")), "no temporary CSV left behind"
    assert json.loads((klass / "expected.json").read_text())


@pytest.mark.slow
def test_a_memory_hog_costs_only_its_own_cell(tmp_path):
    """After a cell's MemoryError the next cells and tests run as in a fresh
    kernel: IPython's references to the failed frames (kept for %debug) would
    keep the hoard allocated, and with the default limit the backward test's
    calls then killed the kernel (2 of 12 points instead of 12)."""
    import nbformat

    from tools import make_class

    lesson = "02_bn_forward_backward"
    learner = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4)
    answers = make_class._answers(
        nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", 4)
    )
    nb, full, note = make_class.build("memory", learner, answers)
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(nb, path)
    # the grader's default memory limit, no sandbox: the set-up that failed
    row = run_grader(tmp_path / "grades.csv", [path], "--sandbox", "off")[str(path)]
    assert note in row["error"], row
    assert row["error"].count("raised") == 1, row["error"]
    assert float(row["total"]) == float(row["maximum"]), row
