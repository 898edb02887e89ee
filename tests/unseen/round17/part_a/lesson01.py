"""Held-out answers (seventeenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_eps_positional_only(X, eps=1e-5, /):  # signature as the Python docs print them
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def std_mean_tiled_by_features(X, eps=1e-5):
    mu = np.tile(X.mean(axis=0), (X.shape[1], 1))  # one row of means per example
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def std_vmap_over_columns(X, eps=1e-5):
    X = np.asarray(X)
    t = torch.from_numpy(X.astype(np.result_type(X.dtype, 1.0)))

    def one_column(c):
        return (c - c.mean()) / torch.sqrt(c.var(correction=0) + eps)

    return torch.func.vmap(one_column, in_dims=1, out_dims=1)(t).numpy()


def gn_ignore_index_zero(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y, ignore_index=0).backward()  # as in the sequence models' training code
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_accumulated_over_chunks(model, x, y):
    model.zero_grad()
    chunks = list(zip(torch.split(x, 8), torch.split(y, 8)))  # gradient accumulation, 8 at a time
    for xb, yb in chunks:
        (F.cross_entropy(model(xb), yb) / len(chunks)).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def pc_matlab_prctile(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    # as MATLAB's prctile: the sorted values sit at 100 * (i - 0.5) / n percent
    return np.percentile(np.asarray(values).ravel(), q, method="hazen")


def pc_interpolation_keyword(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q, interpolation="linear")


ENTRIES = [
    entry(S, "eps positional-only (/ in the signature)", std_eps_positional_only,
          "declares eps positional-only (def standardize_columns(X, eps=1e-5, /)), so a call that passes eps by name (eps=0.1) raises TypeError."),
    entry(S, "mean tiled by the number of features", std_mean_tiled_by_features,
          "tiles the column means X.shape[1] times (the number of features) instead of X.shape[0] (the number of examples), so the (D, D) array of means does not broadcast against X (N, D) unless N == D, and it raises."),
    entry(G, "ignore_index=0 in cross_entropy", gn_ignore_index_zero,
          "passes ignore_index=0 (the padding habit of sequence models), so the examples of class 0 are left out of the loss and the mean is over the others only."),
    entry(G, "gradient accumulation over chunks of 8", gn_accumulated_over_chunks,
          "accumulates the gradient over chunks of 8 examples, each chunk's mean loss divided by the number of chunks, so a smaller last chunk weighs as much as a full one (wrong unless N is a multiple of 8) and a network with batch norm normalises chunks of 8, not the batch."),
    entry(P, "MATLAB's prctile convention (method='hazen')", pc_matlab_prctile,
          "uses method='hazen', MATLAB's prctile convention (the i-th sorted value at 100 (i - 0.5) / n percent), instead of NumPy's default linear interpolation between positions 0..n-1."),
    entry(P, "interpolation= keyword of old NumPy", pc_interpolation_keyword,
          "passes interpolation='linear', a keyword NumPy deprecated in 1.22 and has since removed (it is method= now), so every call raises TypeError."),
    right(S, "torch.func.vmap over the columns", std_vmap_over_columns),
]
