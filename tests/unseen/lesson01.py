"""Lesson 01: answers to ``standardize_columns``, ``activation_percentiles`` and
``layer_gradient_norms`` (held out: see ``tests/unseen``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import entry, right

# --------------------------------------------------------------------------
# standardize_columns
# --------------------------------------------------------------------------


def std_ignores_eps(X, eps=1e-5):
    mu = X.mean(axis=0)
    return (X - mu) / np.sqrt(X.var(axis=0) + 1e-5)


def std_precedence(X, eps=1e-5):
    mu = X.mean(axis=0)
    return (X - mu) / np.sqrt(X.var(axis=0)) + eps


def std_global(X, eps=1e-5):
    return (X - X.mean()) / np.sqrt(X.var() + eps)


def std_in_place(X, eps=1e-5):
    X -= X.mean(axis=0)
    X /= np.sqrt(X.var(axis=0) + eps)
    return X


def std_four_columns(X, eps=1e-5):
    out = np.zeros_like(X)
    for j in range(4):  # the example in the text has four columns
        col = X[:, j]
        out[:, j] = (col - col.mean()) / np.sqrt(col.var() + eps)
    return out[:, : X.shape[1]]


def std_eps_twice(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0) + eps
    return (X - mu) / np.sqrt(var + eps)


def std_float32(X, eps=1e-5):
    X = X.astype(np.float32)
    mu = X.mean(axis=0)
    return (X - mu) / np.sqrt(X.var(axis=0) + np.float32(eps))


def std_rsqrt_one_pass(X, eps=1e-5):
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mu = X.sum(axis=0) / n
    var = (X * X).sum(axis=0) / n - mu * mu
    return (X - mu) * (1.0 / np.sqrt(var + eps))


def std_torch(X, eps=1e-5):
    t = torch.as_tensor(X, dtype=torch.float64)
    var, mu = torch.var_mean(t, dim=0, correction=0, keepdim=True)
    return ((t - mu) * torch.rsqrt(var + eps)).numpy()


# --------------------------------------------------------------------------
# activation_percentiles
# --------------------------------------------------------------------------


def _flat(values):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float).ravel()


def pct_fixed_q(values, q=(15, 50, 85)):
    return np.percentile(_flat(values), (15, 50, 85))


def pct_index_floor(values, q=(15, 50, 85)):
    v = np.sort(_flat(values))
    return np.array([v[int(p / 100 * len(v))] for p in q])


def pct_midpoint(values, q=(15, 50, 85)):
    return np.percentile(_flat(values), q, method="midpoint")


def pct_column_average(values, q=(15, 50, 85)):
    v = values.detach().numpy() if isinstance(values, torch.Tensor) else values
    return np.percentile(v, q, axis=0).mean(axis=1)


def pct_sort_in_place(values, q=(15, 50, 85)):
    v = values.numpy() if isinstance(values, torch.Tensor) else values
    flat = v.reshape(-1)  # a view of the caller's memory
    flat.sort()
    return np.percentile(flat, q)


def pct_dict(values, q=(15, 50, 85)):
    found = np.percentile(_flat(values), q)
    return {p: float(v) for p, v in zip(q, found, strict=True)}


def pct_quantile(values, q=(15, 50, 85)):
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    return torch.quantile(t, torch.tensor(q, dtype=torch.float64) / 100).numpy()


def pct_manual_interp(values, q=(15, 50, 85)):
    v = np.sort(_flat(values))
    pos = np.asarray(q, dtype=float) / 100 * (len(v) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


# --------------------------------------------------------------------------
# layer_gradient_norms
# --------------------------------------------------------------------------


def _linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def gn_with_bias(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [
        torch.cat([m.weight.grad.flatten(), m.bias.grad]).norm().item()
        for m in _linears(model)
    ]


def gn_spectral(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [float(np.linalg.norm(m.weight.grad.numpy(), 2)) for m in _linears(model)]


def gn_squared(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [(m.weight.grad**2).sum().item() for m in _linears(model)]


def gn_softmax_first(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x).softmax(dim=1), y).backward()
    return [m.weight.grad.norm().item() for m in _linears(model)]


def gn_nll_on_logits(model, x, y):
    model.zero_grad()
    F.nll_loss(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in _linears(model)]


def gn_takes_a_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in _linears(model)]
    opt.step()
    return norms


def gn_autograd_grad(model, x, y):
    weights = [m.weight for m in _linears(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    return [g.norm().item() for g in grads]


def gn_matrix_params(model, x, y):
    for p in model.parameters():
        p.grad = None
    F.cross_entropy(model(x), y).backward()
    return [
        torch.linalg.matrix_norm(p.grad).item()
        for p in model.parameters()
        if p.dim() == 2
    ]


S, P, G = "standardize_columns", "activation_percentiles", "layer_gradient_norms"
ENTRIES = [
    entry(
        S,
        "fixed eps",
        std_ignores_eps,
        "the eps argument is ignored: a fixed 1e-5 is used",
    ),
    entry(
        S,
        "eps added to the output",
        std_precedence,
        "operator precedence: eps is added to the result instead of inside the "
        "square root",
    ),
    entry(
        S,
        "one mean and variance for the whole matrix",
        std_global,
        "the statistics are taken over every entry (no axis) instead of per column",
    ),
    entry(
        S,
        "standardises in place",
        std_in_place,
        "X -= ... and X /= ... overwrite the caller's array",
    ),
    entry(
        S,
        "loops over four columns",
        std_four_columns,
        "the loop runs over a hard-coded 4 columns, so other widths are wrong or fail",
    ),
    entry(
        S,
        "eps added twice",
        std_eps_twice,
        "eps is added to the variance twice (var + 2 eps under the square root)",
    ),
    entry(
        S,
        "computes in float32",
        std_float32,
        "the input is cast to float32, so the result loses precision",
    ),
    right(S, "one-pass variance in float64", std_rsqrt_one_pass),
    right(S, "torch.var_mean and rsqrt", std_torch),
    entry(
        P,
        "percentiles fixed at 15, 50, 85",
        pct_fixed_q,
        "the q argument is ignored: always (15, 50, 85)",
    ),
    entry(
        P,
        "index q/100 * N, no interpolation",
        pct_index_floor,
        "picks the sorted value at index int(q/100 * N): no interpolation and the "
        "wrong position (N instead of N - 1)",
    ),
    entry(
        P,
        "midpoint interpolation",
        pct_midpoint,
        "uses midpoint interpolation instead of numpy's default linear",
    ),
    entry(
        P,
        "average of per-column percentiles",
        pct_column_average,
        "takes each column's percentiles and averages them instead of the "
        "percentiles of all values",
    ),
    entry(
        P,
        "sorts the tensor in place",
        pct_sort_in_place,
        "sorting a reshape view sorts the caller's tensor in place",
    ),
    entry(
        P,
        "returns a dict",
        pct_dict,
        "returns a dict {q: value} instead of an array of numbers",
    ),
    right(P, "torch.quantile", pct_quantile),
    right(P, "hand-written linear interpolation", pct_manual_interp),
    entry(
        G,
        "bias gradient in the norm",
        gn_with_bias,
        "each norm includes the bias gradient as well as the weight gradient",
    ),
    entry(
        G,
        "spectral norm",
        gn_spectral,
        "np.linalg.norm(matrix, 2) is the spectral norm, not the Frobenius norm",
    ),
    entry(
        G,
        "squared norms",
        gn_squared,
        "returns the squared norms (sum of squares without the square root)",
    ),
    entry(
        G,
        "softmax before cross_entropy",
        gn_softmax_first,
        "softmax is applied before F.cross_entropy, which applies log-softmax itself",
    ),
    entry(
        G,
        "nll_loss on raw logits",
        gn_nll_on_logits,
        "F.nll_loss on logits is not the cross-entropy (no log-softmax)",
    ),
    entry(
        G,
        "takes an SGD step",
        gn_takes_a_step,
        "calls optimizer.step(), which changes the model's weights",
    ),
    right(G, "torch.autograd.grad", gn_autograd_grad),
    right(G, "matrix parameters, grads set to None", gn_matrix_params),
]
