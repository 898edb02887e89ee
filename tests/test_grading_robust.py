"""Grading you can trust: wrong answers and broken submissions (issue: grading).

1. Every plausible wrong implementation in ``tests/mutants.py`` is substituted
   into the solution's namespace and the grader's own test cells (visible and
   hidden, read from ``solutions/`` as ``tools/grade.py`` reads them) are run
   in grading mode.  The tests that depend on the mutated function must score
   zero and every other test full marks.  (The learner-facing messages for the
   same mutants are asserted in ``test_lesson0N.py``.)  The counts of
   mutations tried and caught are reported in the test output as a warning.
2. A class with one submission of every kind, broken ones included, goes
   through ``tools/grade.py`` end to end: every submission gets its row, the
   deserved points, the CSV appears atomically and the grader's files are
   untouched.  ``benchmarks/bench_grading.py`` grades the full class of 30.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import subprocess
import sys
import warnings

import nbformat
import pytest

from tools import grade
from tools import make_student as ms

from . import mutants as m
from .conftest import ROOT


class MutationReport(UserWarning):
    """Carries the counts of mutations tried and caught into the test output."""


# --------------------------------------------------------------------------
# the grader's tests against each mutant
# --------------------------------------------------------------------------


def _is_definitions(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    kinds = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return bool(tree.body) and all(isinstance(node, kinds) for node in tree.body)


def solution_code(stem: str) -> list:
    """The solution's setup, exercise cells and given definitions, compiled."""
    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    code = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        if ms.SETUP_TAG in ms.tags(cell):
            source = source.split(ms.COLAB_END, 1)[-1]  # no Colab magics
        elif not (
            cell.metadata.get("nbgrader", {}).get("solution") or _is_definitions(source)
        ):
            continue
        code.append(compile(source, f"{stem}.ipynb", "exec"))
    return code


_CODE: dict = {}
_TESTS: dict = {}


def learner_namespace(stem: str, substitutions: dict) -> dict:
    """Like a kernel after running the notebook, with some answers replaced.

    Executed afresh each time: the functions' globals are this namespace, so a
    replaced function is the one every other function calls, as in a kernel.
    """
    namespace: dict = {}
    for code in _CODE[stem]:
        exec(code, namespace)
    namespace.update(substitutions)
    return namespace


def run_grader_tests(stem: str, substitutions: dict, monkeypatch) -> dict:
    """grade_id -> passed, with ``substitutions`` in the learner's namespace."""
    if stem not in _CODE:
        _CODE[stem] = solution_code(stem)
        _TESTS[stem] = grade.test_cells(ROOT / "solutions" / f"{stem}.ipynb")
    monkeypatch.setenv("BNCOURSE_GRADING", "1")
    outcome = {}
    for cell in _TESTS[stem]:
        namespace = learner_namespace(stem, substitutions)
        try:
            exec(compile(cell.source, "graded cell", "exec"), namespace)
        except Exception:  # exactly what the grader scores as zero
            outcome[ms.grade_id(cell)] = False
        else:
            outcome[ms.grade_id(cell)] = True
    return outcome


def _solution_cache(fn):
    """Adapt a mutant written for (x_hat, std, gamma) to the solution's cache."""
    return lambda dout, cache: fn(dout, (cache[0], cache[1], cache[3]))


L02, L03, L04 = (
    "02_bn_forward_backward",
    "03_inference_running_stats",
    "04_batch_renorm",
)
DEPENDS_02 = {
    "batchnorm_forward": {"batchnorm_forward"},
    "batchnorm_backward": {"batchnorm_forward", "batchnorm_backward"},
    "batchnorm_backward_alt": {"batchnorm_forward", "batchnorm_backward_alt"},
    "spatial_batchnorm": {
        "spatial_batchnorm_forward",
        "spatial_batchnorm_backward",
        "batchnorm_forward",
        "batchnorm_backward_alt",
    },
    "layernorm": {
        "layernorm_forward",
        "layernorm_backward",
        "batchnorm_forward",
        "batchnorm_backward_alt",
    },
}


def _dependents(depends, mutated):
    return {test for test, names in depends.items() if names & mutated}


def _cases():
    """(stem, name, substitutions, tests that must fail, tests that may fail).

    A test that uses a mutated function may still deserve full marks when the
    mutation does not reach what it checks (layer norm uses only the dx of
    batchnorm_backward_alt, so a wrong dgamma there leaves it right); a test
    that does not use it must always get full marks.
    """
    cases = []

    def add(stem, name, subs, direct, depends=None):
        possible = _dependents(depends, set(subs)) if depends else set(direct)
        cases.append((stem, name, subs, set(direct), possible | set(direct)))

    for name, (fn, _) in m.BN_FORWARD.items():
        add(
            L02,
            f"forward: {name}",
            {"batchnorm_forward": fn},
            {"batchnorm_forward"},
            DEPENDS_02,
        )
    for name, (fn, _) in m.BN_BACKWARD.items():
        add(
            L02,
            f"backward: {name}",
            {"batchnorm_backward": _solution_cache(fn)},
            {"batchnorm_backward"},
        )
        add(
            L02,
            f"backward_alt: {name}",
            {"batchnorm_backward_alt": _solution_cache(fn)},
            {"batchnorm_backward_alt"},
            DEPENDS_02,
        )
    for name, (fn, _) in m.SPATIAL_FORWARD.items():
        add(
            L02,
            f"spatial: {name}",
            {
                "spatial_batchnorm_forward": fn,
                "spatial_batchnorm_backward": m.spatial_backward,
            },
            {"spatial_batchnorm"},
        )
    for name, (fn, _) in m.SPATIAL_BACKWARD.items():
        add(
            L02,
            f"spatial: {name}",
            {
                "spatial_batchnorm_forward": m.spatial_forward,
                "spatial_batchnorm_backward": fn,
            },
            {"spatial_batchnorm"},
        )
    for name, (fn, _) in m.LN_FORWARD.items():
        add(
            L02,
            f"layernorm: {name}",
            {"layernorm_forward": fn, "layernorm_backward": m.ln_backward},
            {"layernorm"},
        )
    for name, (fn, _) in m.LN_BACKWARD.items():
        add(
            L02,
            f"layernorm: {name}",
            {"layernorm_forward": m.ln_forward, "layernorm_backward": fn},
            {"layernorm"},
        )
    for name, (cls, _) in m.SCRATCH.items():
        add(
            L03,
            f"ScratchBatchNorm: {name}",
            {"ScratchBatchNorm": cls},
            {"scratch_batchnorm"},
        )
    for name, (fn, _) in m.FOLD.items():
        add(L03, f"fold: {name}", {"fold_batchnorm": fn}, {"fold_batchnorm"})
    for name, (fn, _) in m.RENORM_BACKWARD.items():
        add(
            L04,
            f"renorm backward: {name}",
            {"batch_renorm_backward": fn},
            {"batch_renorm_backward"},
        )
    for name, (cls, _) in m.RENORM.items():
        add(L04, f"BatchRenorm: {name}", {"BatchRenorm": cls}, {"batch_renorm"})
    for name, (fn, _) in m.SCHEDULE.items():
        add(L04, f"schedule: {name}", {"renorm_schedule": fn}, {"renorm_schedule"})
    return cases


CASES = _cases()
CAUGHT: dict[str, bool] = {}


def test_the_solutions_pass_every_grader_test(monkeypatch):
    for stem in (L02, L03, L04):
        outcome = run_grader_tests(stem, {}, monkeypatch)
        assert outcome and all(outcome.values()), (stem, outcome)


@pytest.mark.parametrize(
    "stem, name, substitutions, direct, possible", CASES, ids=[c[1] for c in CASES]
)
def test_the_grader_zeroes_the_mutated_test_and_only_what_depends_on_it(
    stem, name, substitutions, direct, possible, monkeypatch
):
    outcome = run_grader_tests(stem, substitutions, monkeypatch)
    zeroed = {test for test, passed in outcome.items() if not passed}
    CAUGHT[name] = direct <= zeroed <= possible
    assert direct <= zeroed, f"{name}: {sorted(direct - zeroed)} still got full marks"
    assert zeroed <= possible, (
        f"{name}: {sorted(zeroed - possible)} scored zero without using the mutation"
    )


def test_report_how_many_mutations_were_tried_and_caught():
    """Runs after the cases above (same file, same worker): the summary."""
    per_exercise = {}
    for _, name, _, _, _ in CASES:
        exercise = name.split(":")[0]
        per_exercise[exercise] = per_exercise.get(exercise, 0) + 1
    core = [
        "forward",
        "backward",
        "backward_alt",
        "ScratchBatchNorm",
        "fold",
        "renorm backward",
        "BatchRenorm",
        "schedule",
    ]
    for exercise in core:
        assert per_exercise[exercise] >= 8, f"{exercise}: only {per_exercise[exercise]}"
    tried, caught = len(CASES), sum(CAUGHT.values())
    warnings.warn(
        MutationReport(
            f"mutations tried: {tried}, zeroed by the grader's tests (and nothing "
            f"independent of them): {caught} "
            f"(per exercise: {per_exercise})"
        ),
        stacklevel=1,
    )
    if CAUGHT:  # when the cases ran (not deselected), every one was caught
        assert caught == len(CAUGHT)


# --------------------------------------------------------------------------
# a class of broken and correct submissions, end to end
# --------------------------------------------------------------------------


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
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "grade.py"),
            "--out",
            str(out),
            "--cell-timeout",
            "6",
            "--timeout",
            "180",
            "--memory-mb",
            "3072",
            *[r["file"] for r in roster],
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, newline="") as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
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
