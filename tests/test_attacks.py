"""Submissions that try to cheat or do harm, graded with honest ones.

Each attack is the untouched learner copy of lesson 02 with one added cell (or
edited metadata).  Graded in one class with an honest submission (the
solution) and the untouched copy, every attack must

* score no more than the untouched copy,
* leave every other submission's score, and every file, unchanged,
* get a reason in its row (an error, or a note for the instructor).

The harmful ones (killing processes, a fork bomb, overwriting files) run only
inside the sandbox: without bubblewrap this module is skipped, and the README
says what is then not protected.  ``.ci/run`` installs bubblewrap.
"""

from __future__ import annotations

import hashlib
import json

import nbformat
import pytest

from tools.grading import sandbox

from .conftest import ROOT, run_grader

LESSON = "02_bn_forward_backward"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sandbox.availability()[0],
        reason=f"the sandbox cannot run here: {sandbox.availability()[1]}",
    ),
]

ATTACKS = {
    "patched checks": """
from helpers import checks
for _name in list(checks.__all__):
    setattr(checks, _name, lambda *a, **k: True)
checks.batchnorm_forward = lambda *a, **k: True
""",
    "fake checks module": """
import sys, types
_fake = types.ModuleType("helpers.checks")
_fake.__getattr__ = lambda name: (lambda *a, **k: True)
sys.modules["helpers.checks"] = _fake
import helpers
helpers.checks = _fake
checks = _fake
""",
    "patched numpy and torch comparisons": """
import numpy as np, torch
np.allclose = lambda *a, **k: True
np.max = lambda *a, **k: 0.0
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
""",
    "overwrites every notebook and CSV it can find": """
import os
for _top in ("/tmp", "/work", "/root", "/home", ".."):
    for _dir, _, _files in os.walk(_top):
        for _f in _files:
            if _f.endswith((".ipynb", ".csv", ".json")):
                try:
                    open(os.path.join(_dir, _f), "w").write("02_bn_forward_backward")
                except OSError:
                    pass
""",
    "kills the grader": """
import os, signal
for _pid in (os.getppid(), 1, -1):
    try:
        os.kill(_pid, signal.SIGKILL)
    except OSError:
        pass
""",
    "fork bomb": """
import os
_children = []
while True:
    _children.append(os.fork())
""",
    "runaway memory": """
_hog = []
while True:
    _hog.append(bytearray(256 * 1024 * 1024))
""",
    "uses the network": """
import socket
socket.create_connection(("1.1.1.1", 80), timeout=5)
""",
    "rewrites the grader's result files": """
import glob, json
for _path in glob.glob("/tmp/**/result-*.json", recursive=True) + glob.glob(
    "/tmp/bncourse-grader-*/*", recursive=True
):
    open(_path, "w").write(json.dumps({"tests": {"batchnorm_forward": [99, 2]}}))
""",
}


def _digest(paths):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _with_cell(source: str):
    nb = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", 4)
    index = next(
        i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", [])
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


# In place of every answer: read the instructor's copy from the installed course
# and run the matching solution cell (graded 12/12 without the sandbox).
READ_SOLUTION = """
import json, pathlib
import helpers
_root = pathlib.Path(helpers.__file__).resolve().parents[1]
_nb = json.loads((_root / "solutions" / "02_bn_forward_backward.ipynb").read_text())
for _cell in _nb["cells"]:
    if _cell.get("metadata", {{}}).get("nbgrader", {{}}).get("grade_id") == {gid!r}:
        exec("".join(_cell["source"]))
"""


def _reading_solutions():
    nb = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", 4)
    for cell in nb.cells:
        grader = cell.metadata.get("nbgrader", {})
        if grader.get("solution") and cell.cell_type == "code":
            cell.source = READ_SOLUTION.format(gid=grader["grade_id"])
    return nb


def _inflated():
    nb = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", 4)
    for cell in nb.cells:
        grader = cell.metadata.get("nbgrader", {})
        if grader.get("grade"):
            grader["points"] = 1000
    bonus = nbformat.v4.new_code_cell("pass")
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "points": 100}
    nb.cells.append(bonus)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    paths = {}
    honest = nbformat.read(ROOT / "solutions" / f"{LESSON}.ipynb", 4)
    untouched = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", 4)
    subjects = {
        "honest": honest,
        "untouched": untouched,
        "inflated metadata": _inflated(),
        "reads the solutions and runs them": _reading_solutions(),
    }
    subjects |= {name: _with_cell(source) for name, source in ATTACKS.items()}
    for number, (name, nb) in enumerate(subjects.items()):
        path = folder / f"{LESSON}-{number:02d}.ipynb"
        nbformat.write(nb, path)
        paths[name] = path
    before = _digest(paths.values())
    course_before = _digest(sorted((ROOT / "solutions").glob("*.ipynb")))
    rows = run_grader(
        folder / "grades.csv",
        paths.values(),
        "--cell-timeout",
        "20",
        "--timeout",
        "240",
        "--memory-mb",
        "3072",
        "--sandbox",
        "on",
    )
    return {
        "paths": paths,
        "rows": {name: rows[str(path)] for name, path in paths.items()},
        "unchanged": before == _digest(paths.values())
        and course_before == _digest(sorted((ROOT / "solutions").glob("*.ipynb"))),
    }


def test_the_honest_submission_gets_full_marks_and_the_untouched_none(graded):
    honest, untouched = graded["rows"]["honest"], graded["rows"]["untouched"]
    assert honest["total"] == honest["maximum"] and float(honest["total"]) > 0, honest
    assert float(untouched["total"]) == 0, untouched
    assert not honest["notes"], honest["notes"]  # the solution is flagged for nothing


@pytest.mark.parametrize(
    "attack", ["inflated metadata", "reads the solutions and runs them", *ATTACKS]
)
def test_an_attack_gains_nothing_and_gets_a_reason(graded, attack):
    row, untouched = graded["rows"][attack], graded["rows"]["untouched"]
    assert row["total"] != "", row  # graded, not lost
    assert float(row["total"]) <= float(untouched["total"]), row
    assert row["maximum"] == graded["rows"]["honest"]["maximum"], row
    assert (row["error"] or row["notes"]).strip(), f"{attack}: no reason given: {row}"
    assert "bonus" not in json.dumps(row)


def test_no_file_changed_and_nobody_elses_score_moved(graded):
    assert graded["unchanged"], "a submission or a course file was changed on disk"
