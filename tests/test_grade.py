"""The grader (tools/grade.py): scores, partial credit, broken submissions."""

from __future__ import annotations

import copy
import csv
import shutil

import nbformat
import pytest

from helpers import course
from tools import grade
from tools import make_student as ms
from tools.grading import plan, worker

from . import conftest
from .conftest import ROOT

FIRST = course.LESSONS[0]


def run_grader(tmp_path, paths, *extra):
    return conftest.run_grader(tmp_path / "grades.csv", paths, *extra)


def test_the_course_tests_replace_the_learners_and_deleted_ones_still_run():
    plans = plan.snapshot(ROOT / "solutions")
    tests = plans[FIRST.stem]["tests"]
    assert tests, "lesson 00 has graded cells"
    assert any(ms.BEGIN_HIDDEN in t["source"] for t in tests), "hidden tests are kept"
    learner = nbformat.read(ROOT / "notebooks" / FIRST.filename, 4)
    tampered = copy.deepcopy(learner)
    for cell in tampered.cells:
        if ms.graded(cell):
            cell.source = "pass  # the learner emptied the test"
    built = worker.runnable_cells(tampered, tests)
    assert [c["test"] for c in built if "test" in c] == [t["grade_id"] for t in tests]
    assert not any("the learner emptied" in c.get("source", "") for c in built)
    deleted = copy.deepcopy(learner)
    deleted.cells = [c for c in deleted.cells if not ms.graded(c)]
    built = worker.runnable_cells(deleted, tests)
    assert [c.get("test") for c in built[-len(tests) :]] == [
        t["grade_id"] for t in tests
    ]


def test_how_each_test_is_judged_comes_from_the_course():
    plans = plan.snapshot(ROOT / "solutions")
    modes = {
        (stem, t["grade_id"]): t["mode"]
        for stem, p in plans.items()
        for t in p["tests"]
    }
    # every test but the quiz is judged in the grader's process, classes too
    assert {mode for key, mode in modes.items() if key[0] != "06_quiz"} == {"grader"}
    assert modes[("06_quiz", "quiz")] == "answers"
    scratch = next(
        t
        for t in plans["03_inference_running_stats"]["tests"]
        if t["grade_id"] == "scratch_batchnorm"
    )
    assert scratch["functions"] == ["ScratchBatchNorm"] and not scratch["values"]
    functions = {
        t["grade_id"]: t["functions"] for t in plans["02_bn_forward_backward"]["tests"]
    }
    assert functions["batchnorm_backward"] == [
        "batchnorm_backward",
        "batchnorm_forward",
    ]


def test_lesson_is_found_from_metadata_or_file_name(tmp_path):
    nb = nbformat.v4.new_notebook()
    assert grade.lesson_of(nb, tmp_path / f"{FIRST.number}_alice.ipynb") == FIRST.stem
    assert grade.lesson_of(nb, tmp_path / "alice.ipynb") is None
    nb.metadata["bncourse"] = {"lesson": FIRST.stem}
    assert grade.lesson_of(nb, tmp_path / "alice.ipynb") == FIRST.stem


def test_csv_is_written_atomically_with_one_column_per_test(tmp_path):
    rows = [
        grade.Row("a.ipynb", "00_x", {"t1": [2, 2], "t2": [0, 1]}),
        grade.Row("b.ipynb", error="not a valid notebook"),
    ]
    out = tmp_path / "g.csv"
    grade.write_csv(rows, out)
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == [
        "file",
        "learner",
        "notebook",
        "total",
        "maximum",
        "00:t1",
        "00:t2",
        "mistakes",
        "quiz",
        "error",
        "sandbox",
        "notes",
    ]
    assert table[1][:7] == ["a.ipynb", "a", "00_x", "2", "3", "2", "0"]
    assert table[1][-3:] == ["", "on", ""]
    assert table[2][-3] == "not a valid notebook"
    assert [p.name for p in tmp_path.iterdir()] == ["g.csv"]  # no temporary left


def _answered(learner, body):
    nb = copy.deepcopy(learner)
    for cell in nb.cells:
        if cell.cell_type == "code" and "raise NotImplementedError" in cell.source:
            cell.source = body
    return nb


@pytest.mark.slow
def test_solution_full_marks_learner_zero_and_broken_ones_reported(tmp_path):
    """The foundation's batch: good, untouched, invalid, looping, killing."""
    learner = nbformat.read(ROOT / "notebooks" / FIRST.filename, 4)
    good = _answered(
        learner,
        "def batch_stats(x):\n"
        "    if len(x) < 2:\n"
        "        raise ValueError('N < 2')\n"
        "    return x.mean(0), x.var(0), x.var(0, ddof=1)\n",
    )
    looping = copy.deepcopy(good)
    looping.cells.insert(3, nbformat.v4.new_code_cell("while True:\n    pass"))
    killing = copy.deepcopy(good)
    killing.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    files = {
        "solution": ROOT / "solutions" / FIRST.filename,
        "learner": ROOT / "notebooks" / FIRST.filename,
    }
    for name, nb in {"good": good, "loop": looping, "kill": killing}.items():
        files[name] = tmp_path / f"{FIRST.number}_{name}.ipynb"
        nbformat.write(nb, files[name])
    files["invalid"] = tmp_path / f"{FIRST.number}_invalid.ipynb"
    files["invalid"].write_text('{"cells": [')
    rows = run_grader(
        tmp_path, files.values(), "--cell-timeout", "8", "--timeout", "120"
    )
    row = {name: rows[str(path)] for name, path in files.items()}
    maximum = row["solution"]["maximum"]
    assert float(maximum) > 0
    assert row["solution"]["total"] == maximum and not row["solution"]["error"]
    assert row["learner"]["total"] == "0" and row["learner"]["maximum"] == maximum
    assert row["good"]["total"] == maximum
    assert row["loop"]["total"] == maximum  # the loop costs time, not the tests
    assert "CellTimeoutError" in row["loop"]["error"]
    assert row["kill"]["total"] == "0" and "kernel died" in row["kill"]["error"]
    assert (
        row["invalid"]["total"] == ""
        and "not a valid notebook" in row["invalid"]["error"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("lesson", course.LESSONS[1:], ids=lambda lesson: lesson.number)
def test_every_lesson_solution_full_marks_and_learner_zero(lesson, tmp_path):
    solution = ROOT / "solutions" / lesson.filename
    if not lesson.has_checks:  # the quiz: scored from the answers file handed in
        solution = conftest.quiz_solution_with_answers(tmp_path)
    paths = [solution, ROOT / "notebooks" / lesson.filename]
    rows = run_grader(tmp_path, paths)
    solution, learner = (rows[str(p)] for p in paths)
    assert float(solution["maximum"]) > 0
    assert solution["total"] == solution["maximum"], solution["error"]
    assert learner["total"] == "0", learner


def test_grader_never_touches_its_own_solutions(tmp_path):
    """A submission that overwrites the hidden tests' file changes nothing.

    It runs in a temporary working directory; the grader reads the tests
    before the kernel starts and from its own solutions/ folder.
    """
    target = tmp_path / "solutions"
    shutil.copytree(ROOT / "solutions", target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    learner = nbformat.read(ROOT / "notebooks" / FIRST.filename, 4)
    evil = copy.deepcopy(learner)
    evil.cells.insert(
        3,
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "for p in Path('.').glob('*.ipynb'):\n"
            "    p.write_text('overwritten')\n"
            "Path('grades.csv').write_text('forged')\n"
        ),
    )
    sub = tmp_path / f"{FIRST.number}_evil.ipynb"
    nbformat.write(evil, sub)
    rows = run_grader(tmp_path, [sub], "--solutions", str(target))
    assert rows[str(sub)]["total"] == "0"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert nbformat.read(sub, 4).cells  # the submission itself is intact


def test_an_exercise_solved_by_the_library_is_flagged_not_failed():
    from helpers.checks import lesson02, lesson03
    from tools.grading import flags

    learner = nbformat.read(ROOT / "notebooks" / "02_bn_forward_backward.ipynb", 4)
    given = [c.source for c in learner.cells if c.cell_type == "code"]
    cheat = (
        "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    out = F.batch_norm(torch.from_numpy(x), None, None, training=True)\n"
        "    return out.numpy(), None\n"
    )
    notes = flags.notes([*given, cheat], learner, lesson02.SHORTCUTS)
    assert any("batchnorm_forward calls `F.batch_norm`" in n for n in notes), notes
    assert flags.notes(given, learner, lesson02.SHORTCUTS) == []  # given code: no
    scratch = "class ScratchBatchNorm(nn.BatchNorm2d):\n    pass\n"
    notes = flags.notes([scratch], None, lesson03.SHORTCUTS)
    assert any("ScratchBatchNorm calls `nn.BatchNorm2d`" in n for n in notes), notes


def test_the_mistakes_column_keeps_a_hint_and_drops_the_values():
    from tools.grading import report

    line = (
        "batchnorm_forward | WRONG | max rel. error 4.1e-06 (expect < 1e-10); worst "
        "at index (3, 1): got 2.5, expected 1.25. Hint: eps goes inside the sqrt"
    )
    (named,) = report.named_mistakes(line)
    assert "eps goes inside the sqrt" in named
    assert "2.5" not in named and "1.25" not in named and "(3" not in named


def test_the_assignment_not_the_file_decides_the_lesson(tmp_path):
    """A notebook's metadata never chooses its lesson where its name or the
    instructor's --lesson gives one (the third outside attack: a quiz handed
    in as lesson 08 was graded as the quiz, 42 points)."""
    from helpers import course

    quiz, last = course.lesson("06").stem, course.LESSONS[-1].stem
    nb = nbformat.v4.new_notebook()
    nb.metadata["bncourse"] = {"lesson": quiz}
    assert grade.lesson_of(nb, tmp_path / f"{last}.ipynb") == last
    assert grade.lesson_of(nb, tmp_path / f"bob_222_333_{last}.ipynb") == last
    assert grade.lesson_of(nb, tmp_path / f"{quiz}.ipynb", pinned="08") == last
    assert grade.lesson_of(nb, tmp_path / f"{last}_{quiz}.ipynb") is None  # two
    assert grade.lesson_of(nb, tmp_path / "alice.ipynb") == quiz  # nothing else
