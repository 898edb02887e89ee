"""Shared fixtures.  Tests run in fast mode (``make test`` sets it; so do we)."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("BNCOURSE_FAST", "1")
# A fresh cache for every test session: notebooks cache experiment results
# (helpers.runs), and a test must run the experiment, not load an old result.
os.environ["BNCOURSE_CACHE"] = tempfile.mkdtemp(prefix="bncourse-test-cache-")
# The quiz notebook saves its answers file; in tests, not into the repository.
os.environ["BNCOURSE_QUIZ_DIR"] = tempfile.mkdtemp(prefix="bncourse-test-quiz-")
for _scratch in (os.environ["BNCOURSE_CACHE"], os.environ["BNCOURSE_QUIZ_DIR"]):
    atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
# No MPLBACKEND here: notebook kernels inherit this environment and must keep
# the inline backend, so that nbval really renders every figure.


@pytest.fixture
def learner_mode(monkeypatch):
    """A learner's session: checks print and never raise."""
    monkeypatch.delenv("BNCOURSE_GRADING", raising=False)


@pytest.fixture
def grading_mode(monkeypatch):
    """The grader's session: a failed check raises CheckFailed."""
    monkeypatch.setenv("BNCOURSE_GRADING", "1")


def run_grader(out: Path, paths, *extra: str, env: dict | None = None) -> dict:
    """Run tools/grade.py on ``paths``, writing ``out``; the CSV rows by file.

    ``env``: the grader's environment (default: this one).  The grader refuses
    to run without its sandbox unless told ``--sandbox off``: where bubblewrap
    cannot run (macOS, a container without user namespaces) the tests that do
    not ask for the sandbox say so; CI installs bubblewrap.
    """
    from tools.grading import sandbox

    if "--sandbox" not in extra and not sandbox.availability()[0]:
        extra = (*extra, "--sandbox", "off")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "grade.py"),
            "--out",
            str(out),
            "--quiet",
            *extra,
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def quiz_solution_with_answers(folder: Path) -> Path:
    """The quiz's solution copy handed in with an answers file: every answer right.

    The grader scores the answers file handed in (never what the notebook
    writes while it is graded), so a submission without one scores zero.
    """
    import shutil

    from helpers import quiz

    path = folder / "06_quiz_key.ipynb"
    shutil.copyfile(ROOT / "solutions" / "06_quiz.ipynb", path)
    key = quiz.Quiz(answers_file=folder / "06_quiz_key.answers.json", verbose=False)
    for question in key.questions:
        key.answer(question.id, sorted(question.correct))
    return path
