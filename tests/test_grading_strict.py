"""A hidden test gives no points for an answer that is only "close" by accident.

The outside review (GRADER-FINDINGS A02) earned hidden tests' points with
answers that ``np.allclose`` or ``torch.allclose`` broadcast to the reference
(an empty array of shape (0, 1), the answer with an extra leading axis), that
``==`` accepts (``np.array([24])`` or ``24.0`` for 24), a list, a scalar where
the reference's values are all equal, or the right values in a complex array.
Every graded test now compares through ``helpers.expect.expect`` (same kind,
shape and dtype kind, finite where the reference is).

Each submission here is the solution with the functions that a hidden part
compares itself wrapped: right on the visible calls, and, once the learner's
last cell has run (the hidden parts run after it, ``worker.judge_hidden``),
one of those wrong answers.  The test of every wrapped function scores 0; the
lesson's other tests keep their points, so the 0 is the hidden comparison's.
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
    "01": "01_covariate_shift",
    "03": "03_inference_running_stats",
    "04": "04_batch_renorm",
    "05": "05_cifar10_comparison",
}

# The wrong answers, made from the right one in the learner's kernel.
BAD = r"""
import numpy as _np, torch as _torch
_BNC_AFTER = False  # the learner's last cell sets it: the hidden parts run later
_HOW = {how!r}

def _bad(value):
    if value is None:
        return value
    if isinstance(value, _torch.Tensor):
        v = value.detach()
        return {{
            "empty": lambda: _torch.empty((0,) + (1,) * max(v.dim(), 1), dtype=v.dtype),
            "broadcast": lambda: v[None],
            "list": lambda: v.tolist(),
            "scalar": lambda: float(v.reshape(-1)[0]),
            "dtype": lambda: v.to(_torch.complex128),
        }}[_HOW]()
    a = _np.asarray(value)
    return {{
        "empty": lambda: _np.empty((0,) + (1,) * max(a.ndim, 1)),
        "broadcast": lambda: a[None],
        "list": lambda: a.reshape(-1).tolist(),
        "scalar": lambda: float(a.reshape(-1)[0]),
        "dtype": lambda: a.astype(complex),
    }}[_HOW]()
"""

FUNCTION = """
_real_{name} = {name}
def {name}(*args, **kwargs):
    out = _real_{name}(*args, **kwargs)
    return _bad(out) if _BNC_AFTER else out
"""

# Lesson 03: the module's output on the hidden part's own (N, 3, 2, 5) inputs
# (the check it calls first uses 4 channels: it sees right answers), and a
# folded layer whose output is wrong for the hidden part's zero-padded grouped
# conv (the check's is reflect-padded).
LESSON03 = """
class ScratchBatchNorm(ScratchBatchNorm):
    def forward(self, x):
        out = super().forward(x)
        if _BNC_AFTER and x.dim() == 4 and tuple(x.shape[1:]) == (3, 2, 5):
            return _bad(out)
        return out

class _Folded(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return _bad(self.inner(x))

_real_fold_batchnorm = fold_batchnorm
def fold_batchnorm(layer, bn):
    out = _real_fold_batchnorm(layer, bn)
    grouped = getattr(layer, "groups", 1) == 2 and layer.padding_mode == "zeros"
    if _BNC_AFTER and grouped:
        return _Folded(out)
    return out
"""

# Lesson 04: BatchRenorm(3, momentum=0.2, ...) as the hidden part builds it (the
# check it calls first builds 5 features): its running_std after the hidden
# part's (6, 3, 2, 2) batch, or, where a buffer cannot be a list or a number,
# its momentum as a list or a 0-d tensor.
LESSON04 = """
class BatchRenorm(BatchRenorm):
    def __init__(self, num_features, *args, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        self._bnc_bad = _BNC_AFTER and num_features == 3 and self.momentum == 0.2
        if self._bnc_bad and _HOW == "list":
            self.momentum = [0.2]
        elif self._bnc_bad and _HOW == "scalar":
            self.momentum = _torch.tensor(0.2, dtype=_torch.float64)

    def forward(self, x):
        out = super().forward(x)
        if self._bnc_bad and _HOW not in ("list", "scalar"):
            with _torch.no_grad():
                self.running_std = _bad(self.running_std)
        return out
"""

# lesson -> (the code that wraps, the tests that must score 0)
TARGETS = {
    "01": (FUNCTION.format(name="activation_percentiles"), ["activation_percentiles"]),
    "03": (LESSON03, ["scratch_batchnorm", "fold_batchnorm"]),
    "04": (
        FUNCTION.format(name="renorm_schedule") + LESSON04,
        ["renorm_schedule", "batch_renorm"],
    ),
    "05": (
        "".join(
            FUNCTION.format(name=n)
            for n in ("count_parameters", "time_to_accuracy", "active_fraction")
        ),
        ["count_parameters", "time_to_accuracy", "active_fraction"],
    ),
}
HOWS = ("empty", "broadcast", "list", "scalar", "dtype")


def _slim(number: str, how: str | None):
    """Setup, solutions, given definitions and graded cells; then the
    wrappers; the flag last."""
    nb = nbformat.read(ROOT / "solutions" / f"{LESSONS[number]}.ipynb", as_version=4)
    keep = [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and (
            contract.SETUP_TAG in contract.tags(c)
            or contract.is_solution(c)
            or contract.graded(c)
            or c.source.lstrip().startswith(("def ", "class "))
        )
    ]
    if how is not None:
        keep.append(nbformat.v4.new_code_cell(BAD.format(how=how) + TARGETS[number][0]))
        keep.append(nbformat.v4.new_code_cell("_BNC_AFTER = True"))
    nb.cells = keep
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strict")
    subjects = {(n, how): _slim(n, how) for n in LESSONS for how in HOWS}
    subjects.update({(n, "honest"): _slim(n, None) for n in LESSONS})
    paths = {}
    for index, (key, nb) in enumerate(subjects.items()):
        path = folder / f"s{index:02d}" / f"{LESSONS[key[0]]}.ipynb"
        path.parent.mkdir()
        nbformat.write(nb, path)
        paths[key] = path
    rows = run_grader(
        folder / "grades.csv",
        paths.values(),
        "--cell-timeout",
        "120",
        "--sandbox",
        "on",
    )
    return {key: rows[str(path)] for key, path in paths.items()}


def _scores(row: dict, number: str) -> dict:
    prefix = f"{number}:"
    return {k[len(prefix) :]: float(v) for k, v in row.items() if k.startswith(prefix)}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("number", sorted(LESSONS))
def test_a_wrong_answer_on_the_hidden_calls_scores_nothing(graded, number, how):
    row = graded[(number, how)]
    scores = _scores(row, number)
    assert scores, row
    targets = TARGETS[number][1]
    earned = {gid: scores[gid] for gid in targets}
    assert earned == dict.fromkeys(targets, 0.0), (how, earned, row["mistakes"])
    # the lesson's other tests are untouched by the wrapper: full points
    others = {gid: s for gid, s in scores.items() if gid not in targets}
    assert others == {gid: _points(number)[gid] for gid in others}, row


def _points(number: str) -> dict:
    nb = nbformat.read(ROOT / "solutions" / f"{LESSONS[number]}.ipynb", as_version=4)
    return {contract.grade_id(c): contract.points(c) for c in contract.graded_cells(nb)}


def test_the_solutions_keep_full_marks_under_the_strict_comparison(graded):
    for number in LESSONS:
        row = graded[(number, "honest")]
        assert float(row["total"]) == float(row["maximum"]) > 0, row
