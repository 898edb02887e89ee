"""Lesson 01: wrong ``standardize_columns``, ``activation_percentiles`` and
``layer_gradient_norms``."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import family


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
    model, x, y, *, zero=True, reduction="mean", reverse=False, weights=False, **kw
):
    if zero:
        model.zero_grad()
    F.cross_entropy(model(x), y, reduction=reduction, **kw).backward()
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [(m.weight if weights else m.weight.grad).norm().item() for m in layers]
    return norms[::-1] if reverse else norms


def _by_name(m, x, y):  # round 10's false ok: "10" sorts before "3.0"
    m.zero_grad()
    F.cross_entropy(m(x), y).backward()
    named = sorted((k, v) for k, v in m.named_modules() if isinstance(v, nn.Linear))
    return [v.weight.grad.norm().item() for _, v in named]


def _standardised(m, x, y):  # round 10's false ok: x standardised first
    return grad_norms(m, (x - x.mean(0)) / x.std(0), y)


def _one_hot_targets(m, x, y):  # round 15's false ok: one_hot infers C from y.max()
    m.zero_grad()
    F.cross_entropy(m(x), F.one_hot(y).to(x.dtype)).backward()
    return [
        v.weight.grad.norm().item() for v in m.modules() if isinstance(v, nn.Linear)
    ]


def _float32_logits(m, x, y):  # round 11's false ok: float32 for float64 input
    m.zero_grad()
    F.cross_entropy(m(x).float(), y).backward()
    return [
        v.weight.grad.norm().item() for v in m.modules() if isinstance(v, nn.Linear)
    ]


def _squeezed_logits(m, x, y):  # round 20's false ok: only a batch of one shows it
    m.zero_grad()
    F.cross_entropy(m(x).squeeze(), y).backward()
    return [
        v.weight.grad.norm().item() for v in m.modules() if isinstance(v, nn.Linear)
    ]


def _autocast_norms(m, x, y):  # round 20's false ok: autocast leaves float64 alone
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return grad_norms(m, x, y)


def _zero_grad_last(m, x, y):  # round 18's false ok: a fresh model hid it
    F.cross_entropy(m(x), y).backward()
    norms = [
        v.weight.grad.norm().item() for v in m.modules() if isinstance(v, nn.Linear)
    ]
    m.zero_grad()
    return norms


def _squared(m, x, y):
    return [v**2 for v in grad_norms(m, x, y)]


def _subsampled(v, q=(15, 50, 85)):
    """Percentiles of at most 1000 values, drawn at random: right for small inputs."""
    flat = (v.detach().numpy() if isinstance(v, torch.Tensor) else v).ravel()
    if flat.size > 1000:
        flat = np.random.default_rng(0).choice(flat, 1000, replace=False)
    return np.percentile(flat, q)


def _named_weight(m, x, y):
    m.zero_grad()
    F.cross_entropy(m(x), y).backward()
    return [p.grad.norm().item() for k, p in m.named_parameters() if "weight" in k]


def _every_parameter(m, x, y):
    m.zero_grad()
    F.cross_entropy(m(x), y).backward()
    return [p.grad.norm().item() for p in m.parameters()]


STANDARDIZE = {
    "rows instead of columns": (
        partial(standardize, axis=1),
        "statistics are taken over axes (1,)",
    ),
    "unbiased": (
        partial(standardize, ddof=1),
        "`x.var(axis=0, ddof=1)` where `x.var(axis=0, ddof=0)`",
    ),
    "eps outside": (
        partial(standardize, eps_out=True),
        "`np.sqrt(x.var(axis=0, ddof=0)) + eps` where",
    ),
    "only centred": (
        partial(standardize, scale=False),
        "`x - mu` where `(x - mu) / np.sqrt(",
    ),
    "only scaled": (partial(standardize, center=False), "`x` where `x - mu` belongs"),
    "returns the statistics": (lambda X, eps=1e-5: X.mean(0), "one value per column"),
    "returns None": (lambda X, eps=1e-5: None, "forget the `return`"),
    "z-scores clipped at 3": (
        lambda X, eps=1e-5: np.clip(standardize(X, eps), -3, 3),
        "standardize_columns eps=0, N=40",
    ),  # round 12's false oks
    "the result in the input's dtype": (  # round 23's false ok: integer X
        lambda X, eps=1e-5: standardize(X, eps).astype(X.dtype),
        "standardize_columns 4x6 example in int64",
    ),
    "eps=0 read as missing": (
        lambda X, eps=1e-5: standardize(X, eps or 1e-5),
        "standardize_columns eps=0, N=40",
    ),
    "eps argument ignored": (
        lambda X, eps=1e-5: standardize(X),
        "eps argument is ignored",
    ),
    "one column squeezed": (
        lambda X, eps=1e-5: np.squeeze(standardize(X, eps)),
        "standardize_columns one column",
    ),
    "another default eps": (
        lambda X, eps=1e-3: standardize(X, eps),
        "eps defaults to 0.001, the exercise's to 1e-05",
    ),
}
PERCENTILES = {
    "fractions": (partial(percentiles, fraction=True), "as a fraction"),
    "q of 1 or less read as a fraction": (
        lambda v, q=(15, 50, 85): percentiles(v, [k * 100 if k <= 1 else k for k in q]),
        "q of 1 or less | WRONG",
    ),  # round 18
    "per column": (partial(percentiles, flatten=False), "flatten"),
    "torch.quantile in the input's dtype (round 22)": (
        lambda v, q=(15, 50, 85): torch.quantile(
            torch.as_tensor(v).detach().ravel(), torch.tensor(q).double() / 100
        ).numpy(),
        "activation_percentiles integer values | ERROR",
    ),
    "nearest rank": (partial(percentiles, method="nearest"), "method='nearest'"),
    "raises": (lambda v, q=(15, 50, 85): v.nonexistent(), "raised AttributeError"),
    "tensors only": (
        lambda v, q=(15, 50, 85): np.percentile(v.detach().numpy().ravel(), q),
        "has no attribute 'detach'",
    ),
    "random subsample of large inputs": (_subsampled, "many values"),
    "flattened as two dimensions": (
        lambda v, q=(15, 50, 85): np.percentile(
            np.asarray(v.detach() if hasattr(v, "detach") else v).reshape(
                -1 if v.ndim < 3 else v.shape[0] * v.shape[1]
            ),
            q,
        ),
        "activation_percentiles 3-D values",
    ),
    "sorted largest first": (
        lambda v, q=(15, 50, 85): np.percentile(
            np.asarray(v.detach() if hasattr(v, "detach") else v), [100 - k for k in q]
        ),
        "in reverse order along axis 0",
    ),
    "rows concatenated": (
        lambda v, q=(15, 50, 85): np.percentile(
            np.concatenate(list(v.detach().numpy() if hasattr(v, "detach") else v)), q
        ),
        "activation_percentiles 1-D values",
    ),
    "result squeezed (round 19's false ok)": (
        lambda v, q=(15, 50, 85): percentiles(v, q).squeeze(),
        "activation_percentiles one q",
    ),
    "type(values) is torch.Tensor (round 20's false ok)": (
        lambda v, q=(15, 50, 85): np.percentile(
            (v.detach().numpy() if type(v) is torch.Tensor else np.asarray(v)).ravel(),
            q,
        ),
        "nn.Parameter",
    ),
    "numpy() in the graph": (
        lambda v, q=(15, 50, 85): np.percentile(
            (v.numpy() if isinstance(v, torch.Tensor) else v).ravel(), q
        ),
        "Can't call numpy() on Tensor that requires grad",
    ),
}
NORMS = {
    "layers sorted by name": (_by_name, "the right values in the wrong places"),
    "inputs standardised first": (_standardised, "| WRONG   | max rel. error"),
    "no zero_grad": (partial(grad_norms, zero=False), "zero_grad"),
    "zero_grad after the norms": (_zero_grad_last, "the model held were added in"),
    "summed loss": (partial(grad_norms, reduction="sum"), "summed"),
    "reversed": (partial(grad_norms, reverse=True), "right values in reverse order"),
    "weight norms": (partial(grad_norms, weights=True), "weights' norms"),
    "every parameter": (_every_parameter, "one norm per parameter"),
    "squared norms": (_squared, "squared norm"),
    "logits in float32": (_float32_logits, "an error of float32's rounding size"),
    "one-hot targets without num_classes": (
        _one_hot_targets,
        "one_hot(y) has y.max() + 1 columns",
    ),
    "every parameter named weight": (_named_weight, "every parameter named weight"),
    "logits squeezed (round 20's false ok)": (
        _squeezed_logits,
        "layer_gradient_norms batch of one",
    ),
    "bfloat16 autocast (round 20's false ok)": (
        _autocast_norms,
        "layer_gradient_norms float32 model",
    ),
    # rounds 17 and 18's observed: keywords of the loss, read against the course's call
    "ignore_index=0": (
        partial(grad_norms, ignore_index=0),
        "F.cross_entropy(ignore_index=0)",
    ),
    "class weights": (
        lambda m, x, y: grad_norms(
            m, x, y, weight=torch.tensor([0.3, 0.7, 1.0]).double()
        ),
        "F.cross_entropy(weight=",
    ),
}
MUTANTS = [
    *family("standardize_columns", STANDARDIZE, "standardize_columns"),
    *family("activation_percentiles", PERCENTILES, "activation_percentiles"),
    *family("layer_gradient_norms", NORMS, "layer_gradient_norms"),
]
