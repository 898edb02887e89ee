"""Notebook 01's checks: right answers pass, each plausible mistake is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import checks


def standardize(X, eps=1e-5, *, axis=0, ddof=0, eps_out=False, center=True, scale=True):
    mu = X.mean(axis=axis, keepdims=True) if center else 0.0
    var = X.var(axis=axis, ddof=ddof, keepdims=True)
    denom = np.sqrt(var) + eps if eps_out else np.sqrt(var + eps)
    return (X - mu) / denom if scale else X - mu


def percentiles(
    values, q=(15, 50, 85), *, fraction=False, flatten=True, method="linear"
):
    v = values.detach().numpy() if isinstance(values, torch.Tensor) else values
    v = v.ravel() if flatten else v
    qs = np.asarray(q) / 100 if fraction else q
    return np.percentile(v, qs, axis=None if flatten else 0, method=method)


def grad_norms(
    model, x, y, *, zero=True, reduction="mean", reverse=False, weights=False
):
    if zero:
        model.zero_grad()
    F.cross_entropy(model(x), y, reduction=reduction).backward()
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [(m.weight if weights else m.weight.grad).norm().item() for m in layers]
    return norms[::-1] if reverse else norms


CASES = {
    "standardize": {
        "rows instead of columns": (
            lambda X, eps=1e-5: standardize(X, eps, axis=1),
            "each row is normalised",
        ),
        "unbiased": (lambda X, eps=1e-5: standardize(X, eps, ddof=1), "unbiased"),
        "eps outside": (
            lambda X, eps=1e-5: standardize(X, eps, eps_out=True),
            "outside the square root",
        ),
        "only centred": (
            lambda X, eps=1e-5: standardize(X, eps, scale=False),
            "only centred",
        ),
        "only scaled": (
            lambda X, eps=1e-5: standardize(X, eps, center=False),
            "only scaled",
        ),
        "returns the statistics": (
            lambda X, eps=1e-5: X.mean(0),
            "one value per column",
        ),
        "returns None": (lambda X, eps=1e-5: None, "forget the `return`"),
    },
    "percentiles": {
        "fractions": (
            lambda v, q=(15, 50, 85): percentiles(v, q, fraction=True),
            "as a fraction",
        ),
        "per column": (
            lambda v, q=(15, 50, 85): percentiles(v, q, flatten=False),
            "flatten",
        ),
        "nearest rank": (
            lambda v, q=(15, 50, 85): percentiles(v, q, method="nearest"),
            "nearest-rank",
        ),
        "raises": (lambda v, q=(15, 50, 85): v.nonexistent(), "raised AttributeError"),
    },
    "gradient norms": {
        "no zero_grad": (lambda m, x, y: grad_norms(m, x, y, zero=False), "zero_grad"),
        "summed loss": (lambda m, x, y: grad_norms(m, x, y, reduction="sum"), "summed"),
        "reversed": (
            lambda m, x, y: grad_norms(m, x, y, reverse=True),
            "reverse order",
        ),
        "weight norms": (
            lambda m, x, y: grad_norms(m, x, y, weights=True),
            "weights' norms",
        ),
        "every parameter": (
            lambda m, x, y: (
                m.zero_grad(),
                F.cross_entropy(m(x), y).backward(),
                [p.grad.norm().item() for p in m.parameters()],
            )[2],
            "one norm per parameter",
        ),
    },
}
CHECKS = {
    "standardize": checks.standardize_columns,
    "percentiles": checks.activation_percentiles,
    "gradient norms": checks.layer_gradient_norms,
}
FLAT = [
    (kind, name, case) for kind, cases in CASES.items() for name, case in cases.items()
]
IDS = [f"{kind}: {name}" for kind, name, _ in FLAT]


def test_right_answers_pass(learner_mode):
    assert checks.standardize_columns(standardize, quiet=True)
    assert checks.activation_percentiles(percentiles, quiet=True)
    assert checks.layer_gradient_norms(grad_norms, quiet=True)


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_stub_says_not_yet(kind, learner_mode):
    def stub(*args, **kwargs):
        raise NotImplementedError("stub")

    assert CHECKS[kind](stub, quiet=True).verdicts == ["not yet"]


@pytest.mark.parametrize("kind, name, case", FLAT, ids=IDS)
def test_mistake_gets_its_specific_message(kind, name, case, learner_mode):
    fn, expected = case
    report = CHECKS[kind](fn, quiet=True)
    assert not report, f"{name} passed"
    assert expected in report.lines(), report.lines()


@pytest.mark.parametrize("kind, name, case", FLAT, ids=IDS)
def test_mistake_fails_while_grading(kind, name, case, grading_mode):
    with pytest.raises(checks.CheckFailed):
        CHECKS[kind](case[0], quiet=True)
