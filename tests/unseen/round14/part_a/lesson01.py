"""Held-out answers (fourteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

_FITTED = {}


def std_fitted_once(X, eps=1e-5):
    # fit once, transform afterwards (as a scaler does)
    if "mu" not in _FITTED:
        _FITTED["mu"] = X.mean(axis=0)
        _FITTED["var"] = X.var(axis=0)
    return (X - _FITTED["mu"]) / np.sqrt(_FITTED["var"] + eps)


def std_unbiased_for_small_batches(X, eps=1e-5):
    n = X.shape[0]
    ddof = 1 if n < 30 else 0  # small samples: use the unbiased estimate
    mu = X.mean(axis=0)
    var = X.var(axis=0, ddof=ddof)
    return (X - mu) / np.sqrt(var + eps)


def std_diagonal_matrix(X, eps=1e-5):
    centred = X - X.mean(axis=0)
    scale = np.diag(1.0 / np.sqrt((centred**2).mean(axis=0) + eps))
    return centred @ scale


def gn_shares_of_total(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    total = sum(norms)
    return [v / total for v in norms]  # each layer's share, easier to compare


def gn_first_layer_zero_grad_only(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    linears[0].zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in linears]


def pc_q_as_int(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    q = np.asarray(q, dtype=int)  # percentiles are whole numbers
    return np.percentile(np.asarray(values).ravel(), q)


def pc_cast_to_input_dtype(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    return np.percentile(values.ravel(), q).astype(values.dtype)  # keep the activations' dtype


ENTRIES = [
    entry(S, "statistics fitted on the first call and reused", std_fitted_once,
          "keeps the mean and variance of the first call in a module-level dict and reuses them on every later call, so any second matrix is standardised with the first one's statistics."),
    entry(S, "unbiased variance for batches under 30", std_unbiased_for_small_batches,
          "switches to the unbiased variance (ddof=1) when N < 30, so small batches are divided by the wrong variance (only batches of 30 or more are right)."),
    entry(G, "each layer's share of the total", gn_shares_of_total,
          "divides every norm by the sum of all the layers' norms, so it returns fractions that add up to 1 instead of the gradient norms."),
    entry(G, "zero_grad on the first layer only", gn_first_layer_zero_grad_only,
          "zeroes only the first nn.Linear's gradients before backward, so the other layers' gradients accumulate across calls (right on the first call, too big on the next)."),
    entry(P, "q cast to integers", pc_q_as_int,
          "converts q to an integer array, so fractional percentiles such as 2.5 or 97.5 are truncated to 2 and 97."),
    entry(P, "result cast to the input's dtype", pc_cast_to_input_dtype,
          "casts the percentiles to the values' dtype, so for integer activations the interpolated percentiles are truncated to integers."),
    right(S, "scaled by a diagonal matrix", std_diagonal_matrix),
]
