"""Every graded test compares strictly (GRADER-FINDINGS A02).

``helpers.expect.expect`` is the one comparison a graded test's own code may
make: these tests show what it refuses (an empty, broadcast, listed, scalar or
wrong-dtype answer, NaN where the reference is finite) and what it accepts
(round-off, float32 for float64, an ``int`` for a float), and read every graded
cell of every lesson, visible and hidden parts, so that a bare ``allclose``,
``==`` or ``assert`` cannot come back.  What the grader does with these
answers end to end: ``tests/test_grading_strict.py``.

The checks the tests call (``helpers/checks``) compare on their own: the tests
at the end give them the answers they once accepted (booleans or complex
numbers for floats, a list for an array, a fractional epoch, a tensor for a
count, 0-d tensors for numbers) and expect a refusal.
"""

from __future__ import annotations

import ast

import nbformat
import numpy as np
import pytest
import torch

from helpers import contract
from helpers.expect import Mismatch, expect
from tools.grading import plan
from tools.grading.worker import split_test

from .conftest import ROOT

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))

# --------------------------------------------------------------------------
# expect() itself
# --------------------------------------------------------------------------

REF = np.array([0.5, 0.5, 0.5])

REFUSED = {
    "empty (0, 1): broadcasts to anything": (np.empty((0, 1)), REF),
    "empty (0,)": (np.empty(0), np.array([0.5])),
    "an extra leading axis": (REF[None], REF),
    "a column (N, 1)": (REF[:, None], REF),
    "one value for all": (np.array([0.5]), REF),
    "a list of the right values": (REF.tolist(), REF),
    "a scalar of the right value": (0.5, REF),
    "a complex array of the right values": (REF.astype(complex), REF),
    "an integer array for floats": (np.ones(3, dtype=int), np.ones(3)),
    "a boolean array for floats": (np.ones(3, dtype=bool), np.ones(3)),
    "a float array for integers": (np.ones(3), np.ones(3, dtype=int)),
    "NaN where the reference is finite": (np.array([0.5, np.nan, 0.5]), REF),
    "a number where the reference is NaN": (np.array([0.0]), np.array([np.nan])),
    "the other infinity": (np.array([-np.inf]), np.array([np.inf])),
    "a tensor for an array": (torch.tensor(REF), REF),
    "an array for a tensor": (REF, torch.tensor(REF)),
    "a tensor with a leading axis": (torch.zeros(1, 3), torch.zeros(3)),
    "an empty tensor (0, 1, 1)": (torch.empty(0, 1, 1), torch.zeros(2, 3)),
    "a complex tensor": (torch.zeros(3, dtype=torch.complex128), torch.zeros(3)),
    "an integer tensor for floats": (torch.zeros(3, dtype=torch.long), torch.zeros(3)),
    "a float tensor for a count": (torch.tensor(7.0), torch.tensor(7)),
    "a float for an int": (24.0, 24),
    "a one-element array for an int": (np.array([24]), 24),
    "a 0-d array for an int": (np.array(24), 24),
    "a tensor for an int": (torch.tensor(24), 24),
    "True for 1": (True, 1),
    "a 0-d tensor for a float": (torch.tensor(0.2), 0.2),
    "a list for a tuple": ([1.5, 1.0], (1.5, 1.0)),
    "an array for a tuple": (np.array([1.5, 1.0]), (1.5, 1.0)),
    "a tuple of one-element arrays": ((np.array([1.5]), np.array([1.0])), (1.5, 1.0)),
    "a shorter tuple": ((1.5,), (1.5, 1.0)),
    "a tuple for None": ((0, 0.0), None),
    "None for a tuple": (None, (1, 1.0)),
    "a value off by more than the tolerance": (np.array([0.5, 0.5, 0.51]), REF),
    "a wrong integer": (23, 24),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_expect_refuses(case):
    got, want = REFUSED[case]
    with pytest.raises(Mismatch):
        expect(got, want)


ACCEPTED = {
    "the same array": (REF.copy(), REF),
    "float32 for float64, within the tolerance": (REF.astype(np.float32), REF),
    "round-off": (REF + 1e-12, REF),
    "an int32 array for int64": (np.arange(3, dtype=np.int32), np.arange(3)),
    "NaN where the reference is NaN": (
        np.array([np.nan, 1.0]),
        np.array([np.nan, 1.0]),
    ),
    "a tensor": (torch.ones(2, 3, dtype=torch.float32), torch.ones(2, 3).double()),
    "a bfloat16 tensor, within its tolerance": (
        torch.ones(4, dtype=torch.bfloat16),
        torch.ones(4),
    ),
    "a count as a 0-d long tensor": (
        torch.tensor(7, dtype=torch.int32),
        torch.tensor(7),
    ),
    "an int": (24, 24),
    "a NumPy integer": (np.int64(24), 24),
    "a float": (0.2, 0.2),
    "a NumPy float": (np.float32(0.5), 0.5),
    "an int where a float is expected": (1, 1.0),
    "a tuple": ((1, 1.0), (1, 1.0)),
    "None": (None, None),
    "an empty array for an empty reference": (np.empty((0, 3)), np.empty((0, 3))),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_expect_accepts(case):
    got, want = ACCEPTED[case]
    assert expect(got, want) is None


def test_expect_says_what_differs_without_the_values():
    secret = np.array([123.456, 789.125])
    for got in (secret[None], secret.tolist(), secret + 1, secret.astype(complex)):
        with pytest.raises(Mismatch) as caught:
            expect(got, secret, what="the percentiles")
        text = str(caught.value)
        assert text.startswith("the percentiles")
        assert "123" not in text and "789" not in text, text


def test_expect_raises_under_python_O():
    """It is a function that raises, not an ``assert`` that -O would remove."""
    import subprocess
    import sys

    code = "import numpy as np\nfrom helpers.expect import expect\n"
    code += "expect([1.0], np.ones(1))"
    done = subprocess.run(
        [sys.executable, "-O", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0 and "Mismatch" in done.stderr, done.stderr[-500:]


def test_expect_refuses_a_reference_it_cannot_judge():
    with pytest.raises(TypeError):
        expect("text", "text")
    with pytest.raises(TypeError):
        expect(np.array(["a"]), np.array(["a"]))


# --------------------------------------------------------------------------
# the lint: every graded cell of every lesson
# --------------------------------------------------------------------------

# calls that compare with broadcasting, or without shape and dtype kind
BANNED_CALLS = {
    "allclose",
    "isclose",
    "array_equal",
    "array_equiv",
    "equal",
    "eq",
    "assert_allclose",
    "assert_array_equal",
    "assert_array_almost_equal",
    "assert_almost_equal",
    "assert_equal",
    "assert_close",
    "testing",
}


def problems(source: str) -> list[str]:
    """What in a graded cell's code compares other than through expect()."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Assert):
            found.append(
                f"line {line}: an assert statement (use expect(); -O removes asserts)"
            )
        elif isinstance(node, ast.Compare):
            found.append(f"line {line}: a comparison operator (use expect())")
        elif isinstance(node, (ast.Attribute, ast.Name)):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name in BANNED_CALLS:
                found.append(f"line {line}: {name} (use expect())")
    return found


def _graded_cells():
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        for cell in contract.graded_cells(nb):
            if contract.ANSWERS_TAG in contract.tags(cell):
                continue  # the quiz: scored by the grader's bank, no comparison
            yield f"{path.stem}:{contract.grade_id(cell)}", cell.source


GRADED = dict(_graded_cells())


def test_the_lint_finds_what_a02_used():
    for bare in (
        "assert np.allclose(f(x), [10.0, 90.0])",
        "assert torch.allclose(m(x), ref(x), atol=1e-10)",
        "assert count(m) == 24",
        "ok = np.isclose(f(1), 0.5).all()",
        "np.testing.assert_allclose(f(x), want)",
        "if f(x) != want: raise AssertionError",
        "assert f(h, 0.9) is None",
    ):
        assert problems(bare), bare
    assert not problems("from helpers.expect import expect\nexpect(f(x), want)")


def test_there_are_graded_cells_to_lint():
    assert len(GRADED) >= 20
    assert sum("BEGIN HIDDEN" in source for source in GRADED.values()) >= 20


@pytest.mark.parametrize("test_id", sorted(GRADED))
def test_a_graded_cell_compares_only_through_expect(test_id):
    source = GRADED[test_id]
    visible, hidden = split_test(source)
    for part, code in (("visible", visible), ("hidden", hidden)):
        found = problems(code)
        assert not found, f"{test_id}, {part} part: " + "; ".join(found)
        if "expect(" in code:
            # imported in the part that uses it, from the course: never a name
            # the grader would fetch from the learner's kernel
            assert "from helpers.expect import expect" in code, (test_id, part)


def test_expect_is_never_fetched_from_the_kernel():
    for lesson in plan.snapshot(ROOT / "solutions").values():
        for test in lesson["tests"]:
            assert "expect" not in test["values"] + test["functions"], test["grade_id"]


# --------------------------------------------------------------------------
# the checks the tests call refuse what they once accepted (each of these
# passed a wrong answer before _core.real and the stricter _core.to_numpy)
# --------------------------------------------------------------------------


def test_compare_refuses_a_boolean_array_for_floats():
    from helpers.checks import _core

    assert not _core.compare("x", np.ones(3, dtype=bool), np.ones(3), tol=1e-8).passed


def test_renorm_schedule_check_refuses_tensors_for_numbers():
    from helpers import checks

    def right(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        def progress(length):
            if length <= 0:
                return 1.0 if step > warmup else 0.0
            return min(1.0, max(0.0, (step - warmup) / length))

        return (
            1.0 + (rmax_final - 1.0) * progress(r_steps),
            dmax_final * progress(d_steps),
        )

    def tensors(*args, **kwargs):
        return tuple(
            torch.tensor(v, dtype=torch.float64) for v in right(*args, **kwargs)
        )

    assert checks.renorm_schedule(right, quiet=True, strict=False).passed
    assert not checks.renorm_schedule(tensors, quiet=True, strict=False).passed


def test_time_to_accuracy_check_refuses_a_fractional_epoch():
    from helpers import checks

    def right(history, target):
        for epoch, accuracy, seconds in zip(
            history["epoch"], history["test_accuracy"], history["seconds"], strict=True
        ):
            if accuracy >= target:
                return epoch, seconds
        return None

    def fractional(history, target):
        found = right(history, target)
        return None if found is None else (found[0] + 0.7, found[1])

    assert checks.time_to_accuracy(right, quiet=True, strict=False).passed
    assert not checks.time_to_accuracy(fractional, quiet=True, strict=False).passed


def test_activation_percentiles_check_refuses_a_list():
    from helpers import checks

    def as_list(values, q=(15, 50, 85)):
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        return np.percentile(np.asarray(values).ravel(), q).tolist()

    assert not checks.activation_percentiles(as_list, quiet=True, strict=False).passed


def test_count_parameters_check_refuses_a_tensor_of_shape_1_1():
    from helpers import checks

    def boxed(model):
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return torch.tensor([[n]])

    assert not checks.count_parameters(boxed, quiet=True, strict=False).passed


def _solution(stem: str, *answers: str) -> dict:
    """The namespace of a lesson's setup and the given solution cells."""
    import contextlib
    import io

    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    space: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(plan.setup_source(nb), space)
        for cell in nb.cells:
            if contract.grade_id(cell) in answers:
                exec(cell.source, space)
    return space


def test_tensor_checks_refuse_a_complex_answer():
    import warnings

    from helpers import checks

    space = _solution(
        "08_batchnorm_across_devices", "sync_forward_answer", "sync_backward_answer"
    )
    forward, backward = (
        space["sync_batchnorm_forward"],
        space["sync_batchnorm_backward"],
    )

    def complex_forward(*args, **kwargs):
        out, cache = forward(*args, **kwargs)
        return out + 1j * torch.ones_like(out), cache

    def complex_backward(*args, **kwargs):
        dx, dgamma, dbeta = backward(*args, **kwargs)
        return dx + 1j * torch.ones_like(dx), dgamma, dbeta

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert checks.sync_batchnorm_forward(forward, quiet=True, strict=False).passed
        assert not checks.sync_batchnorm_forward(
            complex_forward, quiet=True, strict=False
        ).passed
        assert not checks.sync_batchnorm_backward(
            forward, complex_backward, quiet=True, strict=False
        ).passed


def test_layer_gradient_norms_check_refuses_a_complex_array():
    import warnings

    from helpers import checks

    norms = _solution("01_covariate_shift", "gradnorms_answer")["layer_gradient_norms"]

    def complex_norms(*args):
        return np.asarray(norms(*args)) + 1j

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert checks.layer_gradient_norms(norms, quiet=True, strict=False).passed
        assert not checks.layer_gradient_norms(
            complex_norms, quiet=True, strict=False
        ).passed
