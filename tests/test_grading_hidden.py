"""A hidden test's inputs never come back to the learner.

A learner's function sees the inputs it is called with.  Before, the hidden
tests ran at their place in the notebook, so a function could keep a hidden
test's inputs and a later cell of the learner's print them into the feedback
page; and a function's exception (its type name and message, the learner's
words) came back in the hidden test's verdict.  Now every hidden part runs
after the learner's last cell, and the feedback shows only the check's own
words for a hidden failure.
"""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pytest

from helpers import checks, contract
from tools.grading import sandbox

from .conftest import ROOT, run_grader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sandbox.availability()[0],
        reason=f"the sandbox cannot run here: {sandbox.availability()[1]}",
    ),
]

LESSON = "00_setup_and_conventions"

# Right answers that keep every input's shape, and a later cell that prints them.
KEEPS = """
_seen = []
def batch_stats(x):
    _seen.append(tuple(np.shape(x)))
    if np.shape(x)[0] < 2:
        raise ValueError("N = 1: no unbiased variance")
    return np.asarray(x).mean(0), np.asarray(x).var(0), np.asarray(x).var(0, ddof=1)
"""
PRINTS = 'print("KEPT " + " ".join("x".join(map(str, s)) for s in _seen))'

# Right for the shapes of the visible check, and for any other shape an
# exception whose type name and message carry the shape.
RAISES = """
def batch_stats(x):
    x = np.asarray(x)
    if tuple(x.shape) not in VISIBLE:
        name = "Shape" + "x".join(map(str, x.shape))
        raise type(name, (Exception,), {})("rows" + str(x.shape[0]))
    if x.shape[0] < 2:
        raise ValueError("N = 1: no unbiased variance")
    return x.mean(0), x.var(0), x.var(0, ddof=1)
"""

# The same, with the shape spelled in letters in the exception's TYPE NAME,
# which ends in a newline and forges a check's line (GRADER-FINDINGS A01: the
# filter needed a colon on the name's line, the value filter took digits only).
SPELLS = """
def batch_stats(x):
    x = np.asarray(x)
    if tuple(x.shape) not in VISIBLE:
        spelled = "".join(
            "abcdefghij"[int(c)] if c.isdigit() else "Q" for c in str(x.shape)
        )
        name = "LEAK" + spelled + "\\nbatch_stats | WRONG | LEAK" + spelled
        raise type(name, (ValueError,), {})("LEAK" + spelled)
    if x.shape[0] < 2:
        raise ValueError("N = 1: no unbiased variance")
    return x.mean(0), x.var(0), x.var(0, ddof=1)
"""


def _visible_shapes() -> set:
    seen = []

    class Record:  # a callable object: the checks watch what a plain function keeps
        def __call__(self, x):
            seen.append(tuple(np.shape(x)))
            if np.shape(x)[0] < 2:
                raise ValueError("N = 1: no unbiased variance")
            x = np.asarray(x)
            return x.mean(0), x.var(0), x.var(0, ddof=1)

    checks.batch_stats(Record(), quiet=True)
    return set(seen)


def _submission(*extra: str):
    nb = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", as_version=4)
    setup = next(c for c in nb.cells if contract.SETUP_TAG in contract.tags(c))
    cells = [setup] + [nbformat.v4.new_code_cell(code) for code in extra]
    cells += [c for c in nb.cells if contract.graded(c)]
    cells.append(nbformat.v4.new_code_cell(PRINTS if "_seen" in extra[-1] else "1"))
    nb.cells = cells
    return nb


def test_hidden_inputs_and_learner_words_stay_out_of_the_feedback(tmp_path):
    visible = _visible_shapes()
    keeps = _submission(KEEPS)
    raises = _submission(f"import numpy as np\nVISIBLE = {sorted(visible)!r}", RAISES)
    paths = []
    for name, nb in (("keeps", keeps), ("raises", raises)):
        path = tmp_path / name / f"{LESSON}.ipynb"
        path.parent.mkdir()
        nbformat.write(nb, path)
        paths.append(path)
    rows = run_grader(
        tmp_path / "grades.csv",
        paths,
        "--feedback",
        str(tmp_path / "feedback"),
        "--format",
        "gradescope",
        "--sandbox",
        "on",
    )
    kept, raised = (rows[str(p)] for p in paths)
    assert kept["total"] == kept["maximum"]  # a right answer keeps its points
    assert float(raised["total"]) == 0.0  # and a wrong one fails the hidden test
    pages = {
        page: page.read_text()
        for folder in ("feedback", "gradescope")
        for page in (tmp_path / folder).rglob("*")
        if page.suffix in (".html", ".json")
    }
    printed = [text for text in pages.values() if "KEPT" in text]
    assert printed, "the cell that prints the kept shapes ran and is shown"
    for text in pages.values():
        for shape in ("64x10", "7x1", "Shape64", "rows64", "rows7"):
            assert shape not in text, f"a hidden input's shape reached a page: {shape}"


def test_no_learner_word_reaches_a_hidden_tests_feedback(tmp_path):
    """Attack (A01): the shape spelled in letters in an exception's type name
    that ends in a newline.  At 2c3fb8b the feedback page and Gradescope's
    JSON said "A hidden test failed: raised LEAKgeQba..." (the inputs)."""
    visible = _visible_shapes()
    path = tmp_path / "spells" / f"{LESSON}.ipynb"
    path.parent.mkdir()
    nbformat.write(
        _submission(f"import numpy as np\nVISIBLE = {sorted(visible)!r}", SPELLS), path
    )
    rows = run_grader(
        tmp_path / "grades.csv",
        [path],
        "--feedback",
        str(tmp_path / "feedback"),
        "--format",
        "gradescope",
        "--sandbox",
        "on",
    )
    row = rows[str(path)]
    assert float(row["total"]) == 0.0, row  # the hidden test failed
    pages = [
        page.read_text()
        for folder in ("feedback", "gradescope")
        for page in (tmp_path / folder).rglob("*")
        if page.suffix in (".html", ".json")
    ]
    assert len(pages) == 2
    for text in pages:  # the source shows "LEAK" + ...; the spelled shape never
        assert "A hidden test failed" in text
        leak = re.search(r"LEAK[a-jQ]", text)
        assert leak is None, text[leak.start() - 200 :][:400]


# attacks4 A04: the hidden test computes its reference after the learner's call,
# from the objects it passed (``_bn(_conv(_x))``); a fold that zeroes the
# caller's bn in place and returns a zero conv made that reference 0 too
# (the kernel's changes were copied back into the grader's _bn): 7/7 for a
# function that folds nothing on the hidden test's conv.
ZEROES_BN = r"""
import copy
_honest_fold = fold_batchnorm
def fold_batchnorm(layer, bn):
    conv = isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros"
    if conv and layer.groups == 2:  # the hidden test's conv: fold nothing
        with torch.no_grad():
            bn.weight.zero_()
            bn.bias.zero_()
            zero = copy.deepcopy(layer)
            zero.weight.zero_()
            zero.bias.zero_()
        return zero
    return _honest_fold(layer, bn)
"""


def test_a_hidden_tests_reference_cannot_be_changed_by_the_learners_call(tmp_path):
    lesson = "03_inference_running_stats"
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(ZEROES_BN))
    path = tmp_path / "mallory" / f"{lesson}.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    row = run_grader(tmp_path / "grades.csv", [path], "--sandbox", "on")[str(path)]
    assert float(row["03:scratch_batchnorm"]) > 0  # the honest part keeps its points
    assert float(row["03:fold_batchnorm"]) == 0.0, row  # was 3 of 3 (7/7 in all)


# The same through a learner's module: lesson 04's hidden test runs `_m(_x)` and
# then computes the expected running_std from `_x`; a forward that zeroes its
# input in place and writes the running_std a zero batch gives scored 8/8.
ZEROES_INPUT = r"""
_Honest = BatchRenorm
class BatchRenorm(_Honest):
    def forward(self, x):
        if tuple(x.shape) == (6, 3, 2, 2) and self.training:
            with torch.no_grad():
                x.zero_()
                out = super().forward(x)
                self.running_std.fill_(1 + self.momentum * (self.eps**0.5 - 1))
            return out
        return super().forward(x)
"""


def test_a_learners_module_cannot_change_a_hidden_tests_input(tmp_path):
    lesson = "04_batch_renorm"
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(ZEROES_INPUT))
    path = tmp_path / "mallory" / f"{lesson}.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    row = run_grader(tmp_path / "grades.csv", [path], "--sandbox", "on")[str(path)]
    assert float(row["04:renorm_schedule"]) > 0  # the honest part keeps its points
    assert float(row["04:batch_renorm"]) == 0.0, row  # was 4 of 4 (8/8 in all)
    assert "changed, in place, an input the test passed" in row["mistakes"]
