"""Notebook 01's checks: right answers pass, stubs are "not yet".

Each plausible mistake's message: tests/mutants/lesson01.py, via test_mutants.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import checks

from .mutants import lesson01 as m

CHECKS = {
    "standardize": checks.standardize_columns,
    "percentiles": checks.activation_percentiles,
    "gradient norms": checks.layer_gradient_norms,
}


def test_right_answers_pass(learner_mode):
    assert checks.standardize_columns(m.standardize, quiet=True)
    assert checks.activation_percentiles(m.percentiles, quiet=True)
    assert checks.layer_gradient_norms(m.grad_norms, quiet=True)


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_stub_says_not_yet(kind, learner_mode):
    def stub(*args, **kwargs):
        raise NotImplementedError("stub")

    assert CHECKS[kind](stub, quiet=True).verdicts == ["not yet"]


def test_percentiles_without_interpolation_are_observed_as_such(learner_mode):
    """Sorted values at rank int(n q / 100): no numpy method gives it in every
    case, so none is named; what is observed is said (each value is a datum)."""
    import numpy as np

    def by_index(values, q=(15, 50, 85)):
        v = values.detach().numpy() if hasattr(values, "detach") else values
        v = np.sort(np.ravel(v))
        return np.array([v[min(int(p / 100 * len(v)), len(v) - 1)] for p in q])

    text = checks.activation_percentiles(by_index, quiet=True).lines()
    assert "one of the data's own values" in text and "method=" not in text


def test_a_factor_of_the_batch_size_is_recognised_either_way(learner_mode):
    import torch
    import torch.nn.functional as F

    def divided_twice(model, x, y):
        model.zero_grad()
        (F.cross_entropy(model(x), y) / len(x)).backward()
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        return [m.weight.grad.norm().item() for m in linear]

    text = checks.layer_gradient_norms(divided_twice, quiet=True).lines()
    assert "0.07692 = 1/(N)" in text and "summed" not in text  # N = 13


def test_a_signature_without_a_default_eps_is_not_told_to_return(learner_mode):
    """standardize_columns(X, eps) with no default: the call without eps raises a
    TypeError; `problem or compare(...)` (a failed Result is falsy) read the
    missing value as 'did you forget the return statement?'."""

    def standardize(x, eps):
        return (x - x.mean(0)) / np.sqrt(x.var(0) + eps)

    report = checks.standardize_columns(standardize, quiet=True)
    seen = report.lines()
    assert "eps has no default, the exercise's 1e-05" in seen, seen
    assert "forget the `return`" not in seen, seen


def test_gradients_accumulated_over_chunks_are_caught(learner_mode):
    """Unseen round 17's false ok: the batch cut in chunks of 8, each chunk's mean
    loss backpropagated and the gradients averaged. With batch norm in the model
    a chunk's statistics are not the batch's; the check's batch (8) was one chunk.
    A prime batch size (13) splits into chunks for every chunk size but 13."""
    import torch
    import torch.nn.functional as F

    def chunked(model, x, y):
        model.zero_grad()
        for xs, ys in zip(x.split(8), y.split(8), strict=True):
            (F.cross_entropy(model(xs), ys) * len(xs) / len(x)).backward()
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        return [m.weight.grad.norm().item() for m in linear]

    report = checks.layer_gradient_norms(chunked, quiet=True)
    assert list(report.verdicts) == ["WRONG"], report.lines()
