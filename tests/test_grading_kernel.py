"""Attacks from inside the learner's kernel: no test runs there any more.

Before, tests of learner-defined classes (lessons 03, 04, 07) and lesson 08's
tests ran in the learner's kernel; three lines that register an IPython input
transformer turned them into ``pass`` and an untouched copy scored their
points.  Now every test runs in the grader's process and calls the learner's
code in the kernel through proxies (tools/grading/remote.py): whatever the
kernel does to code, libraries or the interpreter, a test it cannot answer
fails, with its reason, and the hooks it reports are noted.

Each submission here is cut to what the tests need (the setup cell, the
exercise cells, an attack) so that it grades in seconds; the grader runs the
course's tests at the end of a notebook that lacks them.
"""

from __future__ import annotations

import nbformat
import pytest

from helpers import contract
from tools.grading import sandbox

from .conftest import ROOT, run_grader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sandbox.availability()[0],
        reason=f"the sandbox cannot run here: {sandbox.availability()[1]}",
    ),
]

LESSONS = {
    "03": "03_inference_running_stats",
    "04": "04_batch_renorm",
    "07": "07_why_batchnorm_works",
    "08": "08_batchnorm_across_devices",
}

# Turns the grader's cells that run a test in the kernel into `pass` (the
# outside red team's attack scored 4/7, 4/8, 3/7 and 8/8 with untouched
# copies of lessons 03, 04, 07 and 08 this way).
SKIP_TESTS = """
def _skip(lines):
    text = "".join(lines)
    if "__bnc_test" in text or "graded test" in text:
        return ["pass\\n"]
    return lines
get_ipython().input_transformers_post.append(_skip)
"""

# The same through the AST, plus a trace function and patched comparisons.
REWRITE_AND_PATCH = """
import ast, sys, numpy as np, torch
class _Nothing(ast.NodeTransformer):
    def visit_Module(self, node):
        names = [getattr(n, "name", "") for n in node.body]
        if any(str(n).startswith("__bnc_test") for n in names):
            node.body = [ast.Pass()]
        return node
get_ipython().ast_transformers.append(_Nothing())
sys.settrace(lambda *a: None)
torch.allclose = lambda *a, **k: True
np.allclose = lambda *a, **k: True
"""

# Answers every request of the grader's channel with a made-up "ok" reply.
FORGE_REPLIES = """
import json, re
from IPython.display import display
def _forge(lines):
    text = "".join(lines)
    found = re.search(r"serve\\([^,]+, '([0-9a-f]+)'\\)", text)
    if "__bnc_test" in text:
        return ["pass\\n"]
    if not found:
        return lines
    reply = {"nonce": found.group(1), "results": [{"value": None}] * 64,
             "value": None, "state": {}, "log": []}
    mime = "application/vnd.bncourse.call+json"
    text = json.dumps(json.dumps(reply))
    return [f"display({{{mime!r}: {text}}}, raw=True)\\n"]
get_ipython().input_transformers_post.append(_forge)
"""

# Prints what the kernel saw of the grader's work, after the tests ran.
SHOW_HISTORY = """
for _entry in [e for e in list(In) + list(_ih) if "HISTORY" not in e]:
    for _word in ("strict=True", "__bnc", "seed=7"):
        _at = _entry.find(_word)
        if _at >= 0:
            print("SE" + "EN:", _entry[max(0, _at - 200):_at + 200])
print("HISTORY SHOWN")
"""


def _slim(nb, attack: str | None = None, at_end: bool = False):
    """Setup, exercise and graded cells only (plus an attack cell)."""
    keep = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = contract.tags(cell)
        if contract.SETUP_TAG in tags or contract.is_solution(cell):
            keep.append(cell)
        elif contract.graded(cell):
            keep.append(cell)
    if attack is not None:
        new = nbformat.v4.new_code_cell(attack)
        keep.insert(len(keep) if at_end else 1, new)
    nb.cells = keep
    return nb


def _copy(kind: str, number: str):
    folder = "solutions" if kind == "solution" else "notebooks"
    return nbformat.read(ROOT / folder / f"{LESSONS[number]}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernel-attacks")
    subjects = {}
    for number in LESSONS:
        subjects[f"{number} untouched"] = _slim(_copy("learner", number))
        subjects[f"{number} skips the tests"] = _slim(
            _copy("learner", number), SKIP_TESTS
        )
    subjects["03 rewrites the AST and patches"] = _slim(
        _copy("learner", "03"), REWRITE_AND_PATCH
    )
    subjects["08 forges the channel's replies"] = _slim(
        _copy("learner", "08"), FORGE_REPLIES
    )
    subjects["03 honest"] = _slim(_copy("solution", "03"))
    subjects["03 honest, then shows its history"] = _slim(
        _copy("solution", "03"), SHOW_HISTORY, at_end=True
    )
    subjects["08 honest"] = _slim(_copy("solution", "08"))
    paths = {}
    for index, (name, nb) in enumerate(subjects.items()):
        number = name[:2]
        path = folder / f"s{index:02d}" / f"{LESSONS[number]}.ipynb"
        path.parent.mkdir()
        nbformat.write(nb, path)
        paths[name] = path
    rows = run_grader(
        folder / "grades.csv",
        paths.values(),
        "--feedback",
        str(folder / "feedback"),
        "--cell-timeout",
        "60",
        "--sandbox",
        "on",
    )
    pages = [p.read_text() for p in (folder / "feedback").rglob("*.html")]
    return {
        "rows": {name: rows[str(path)] for name, path in paths.items()},
        "pages": pages,
    }


@pytest.mark.parametrize(
    "attack",
    [
        *(f"{n} skips the tests" for n in LESSONS),
        "03 rewrites the AST and patches",
        "08 forges the channel's replies",
    ],
)
def test_a_kernel_hook_turns_no_test_into_a_pass(graded, attack):
    row = graded["rows"][attack]
    untouched = graded["rows"][f"{attack[:2]} untouched"]
    assert row["total"] != "" and float(row["total"]) == 0.0, row
    assert float(untouched["total"]) == 0.0, untouched
    assert row["maximum"] == untouched["maximum"]
    # the instructor reads why: the hook is noted, or the tests' failures say
    # the kernel did not answer
    assert row["notes"] or row["mistakes"], row


def test_honest_submissions_score_full_marks_through_the_proxies(graded):
    for name in ("03 honest", "08 honest", "03 honest, then shows its history"):
        row = graded["rows"][name]
        assert row["total"] == row["maximum"] and float(row["total"]) > 0, row


def test_no_test_code_reaches_the_kernel(graded):
    """A cell after the tests that prints IPython's history shows no test."""
    shown = [page for page in graded["pages"] if "HISTORY SHOWN" in page]
    assert len(shown) == 1  # the cell ran, and its output is on its page
    pages = shown[0]
    solution = _copy("solution", "03")
    hidden = []
    for cell in contract.graded_cells(solution):
        for lines in contract.regions(
            cell.source, contract.BEGIN_HIDDEN, contract.END_HIDDEN
        ):
            hidden += [ln.strip() for ln in lines if len(ln.strip()) > 12]
    assert hidden
    for line in hidden:
        assert line not in pages, f"a hidden test's line reached a page: {line}"
    # the grader's own requests are not in the history either
    assert "SEEN:" not in pages
