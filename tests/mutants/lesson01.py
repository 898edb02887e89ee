"""Lesson 01: wrong ``standardize_columns``, ``activation_percentiles`` and
``layer_gradient_norms``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


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


def _standardize(name, fn, message):
    return Mutant(
        "standardize_columns",
        name,
        {"standardize_columns": fn},
        message,
        "standardize_columns",
    )


def _percentiles(name, fn, message):
    return Mutant(
        "activation_percentiles",
        name,
        {"activation_percentiles": fn},
        message,
        "activation_percentiles",
    )


def _norms(name, fn, message):
    return Mutant(
        "layer_gradient_norms",
        name,
        {"layer_gradient_norms": fn},
        message,
        "layer_gradient_norms",
    )


def _every_parameter(m, x, y):
    m.zero_grad()
    F.cross_entropy(m(x), y).backward()
    return [p.grad.norm().item() for p in m.parameters()]


MUTANTS = [
    _standardize(
        "rows instead of columns",
        lambda X, eps=1e-5: standardize(X, eps, axis=1),
        "each row is normalised",
    ),
    _standardize(
        "unbiased", lambda X, eps=1e-5: standardize(X, eps, ddof=1), "unbiased"
    ),
    _standardize(
        "eps outside",
        lambda X, eps=1e-5: standardize(X, eps, eps_out=True),
        "outside the square root",
    ),
    _standardize(
        "only centred",
        lambda X, eps=1e-5: standardize(X, eps, scale=False),
        "only centred",
    ),
    _standardize(
        "only scaled",
        lambda X, eps=1e-5: standardize(X, eps, center=False),
        "only scaled",
    ),
    _standardize(
        "returns the statistics", lambda X, eps=1e-5: X.mean(0), "one value per column"
    ),
    _standardize("returns None", lambda X, eps=1e-5: None, "forget the `return`"),
    _percentiles(
        "fractions",
        lambda v, q=(15, 50, 85): percentiles(v, q, fraction=True),
        "as a fraction",
    ),
    _percentiles(
        "per column",
        lambda v, q=(15, 50, 85): percentiles(v, q, flatten=False),
        "flatten",
    ),
    _percentiles(
        "nearest rank",
        lambda v, q=(15, 50, 85): percentiles(v, q, method="nearest"),
        "nearest-rank",
    ),
    _percentiles(
        "raises", lambda v, q=(15, 50, 85): v.nonexistent(), "raised AttributeError"
    ),
    _norms(
        "no zero_grad", lambda m, x, y: grad_norms(m, x, y, zero=False), "zero_grad"
    ),
    _norms(
        "summed loss", lambda m, x, y: grad_norms(m, x, y, reduction="sum"), "summed"
    ),
    _norms(
        "reversed", lambda m, x, y: grad_norms(m, x, y, reverse=True), "reverse order"
    ),
    _norms(
        "weight norms",
        lambda m, x, y: grad_norms(m, x, y, weights=True),
        "weights' norms",
    ),
    _norms("every parameter", _every_parameter, "one norm per parameter"),
]
