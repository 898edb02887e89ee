"""Courses on nbgrader can use our sources as they are.

``nbgrader generate_assignment`` on every ``solutions/`` notebook writes a
release copy equivalent to our learner copy: the same cells in the same
order, hidden tests removed, solution regions replaced by stubs.  Known, and
documented in the README, differences: nbgrader's stub is a bare
``raise NotImplementedError()`` (ours carries the hint) and its written-answer
prompt is ``YOUR ANSWER HERE``; cells we tag ``solution-only`` stay in its copy
(nbgrader has no such tag), and it keeps no Colab badge of its own (the header
written by our generator is kept as it is).  Skipped when nbgrader is absent;
``make test`` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import contract, course

from .conftest import ROOT

NBGRADER = shutil.which("nbgrader", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(NBGRADER is None, reason="nbgrader is not installed")


def _normal(source: str) -> str:
    source = re.sub(
        r"raise NotImplementedError\((?:\s*\"[^\"]*\"\s*)*\)",
        "raise NotImplementedError()",
        source,
    )
    return source.replace("_Your answer here._", "YOUR ANSWER HERE").rstrip()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    top = tmp_path_factory.mktemp("nbgrader")
    (top / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.root = "."\n'
        'c.CourseDirectory.course_id = "bncourse"\n'
    )
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    for lesson in course.LESSONS:
        folder = top / "source" / f"l{lesson.number}"
        folder.mkdir(parents=True)
        shutil.copyfile(ROOT / "solutions" / lesson.filename, folder / lesson.filename)
        done = subprocess.run(
            [NBGRADER, "generate_assignment", f"l{lesson.number}", "--force"],
            cwd=top,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return top / "release"


@pytest.mark.parametrize("lesson", course.LESSONS, ids=lambda x: x.number)
def test_nbgrader_writes_a_copy_equivalent_to_ours(lesson, released):
    theirs = nbformat.read(released / f"l{lesson.number}" / lesson.filename, 4)
    ours = nbformat.read(ROOT / "notebooks" / lesson.filename, 4)
    source = nbformat.read(ROOT / "solutions" / lesson.filename, 4)
    only = {c.id for c in source.cells if contract.SOLUTION_ONLY in contract.tags(c)}
    kept = [c for c in theirs.cells if c.id not in only]
    assert [c.cell_type for c in kept] == [c.cell_type for c in ours.cells]
    for mine, nbg in zip(ours.cells, kept, strict=True):
        if mine.id == contract.HEADER_ID:
            continue  # ours names the learner copy; nbgrader keeps the source's
        assert _normal(mine.source) == _normal(nbg.source), mine.id
    hidden = "".join(c.source for c in theirs.cells)
    assert contract.BEGIN_HIDDEN not in hidden and contract.BEGIN_SOLUTION not in hidden


def test_autograde_warns_once_per_test_cell_with_hidden_tests_and_restores_them(
    released,
):
    """nbgrader's "Attribute 'checksum' for cell X has changed!" warnings, explained.

    nbgrader keeps each locked test cell *with* its hidden tests in its
    gradebook and hands out the cell without them; at autograde it puts the
    full cell back, so the submitted cell's checksum differs from the stored
    one and it warns, once per test cell with hidden tests, even for its own
    untouched release copy.  The warning is how the hidden tests come back.
    """
    lesson = course.LESSONS[0]
    top = released.parent
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        BNCOURSE_GRADING="1",
        BNCOURSE_FAST="1",
    )
    folder = top / "submitted" / "ada" / f"l{lesson.number}"
    folder.mkdir(parents=True)
    shutil.copyfile(
        released / f"l{lesson.number}" / lesson.filename, folder / lesson.filename
    )
    for command in (
        [NBGRADER, "db", "student", "add", "ada"],
        [NBGRADER, "autograde", f"l{lesson.number}", "--force"],
    ):
        done = subprocess.run(command, cwd=top, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    warned = re.findall(r"Attribute 'checksum' for cell (\S+) has changed", done.stderr)
    source = nbformat.read(ROOT / "solutions" / lesson.filename, 4)
    with_hidden = [
        contract.grade_id(c)
        for c in contract.graded_cells(source)
        if contract.BEGIN_HIDDEN in c.source
    ]
    assert with_hidden and sorted(warned) == sorted(with_hidden), done.stderr[-3000:]
    graded = nbformat.read(
        top / "autograded" / "ada" / f"l{lesson.number}" / lesson.filename, 4
    )
    restored = [c for c in graded.cells if contract.grade_id(c) in with_hidden]
    assert restored and all(contract.BEGIN_HIDDEN in c.source for c in restored)
