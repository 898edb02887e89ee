"""Held-out answers (ninth set, part a), lesson 01: standardize_columns(X, eps),
layer_gradient_norms(model, x, y), activation_percentiles(values, q)."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns ---------------------------------------------------------


def st_root_of_std(X, eps=1e-5):
    mu = X.mean(axis=0)
    return (X - mu) / np.sqrt(X.std(axis=0) + eps)


def st_mean_reshaped_with_n(X, eps=1e-5):
    n = X.shape[0]
    mu = X.mean(axis=0).reshape(1, n)
    var = X.var(axis=0).reshape(1, n)
    return (X - mu) / np.sqrt(var + eps)


def st_first_column_stats(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X[:, 0].var()  # the columns are on the same scale anyway
    return (X - mu) / np.sqrt(var + eps)


def st_stats_without_last_row(X, eps=1e-5):
    n = X.shape[0]
    mu = X[: n - 1].mean(axis=0)
    var = X[: n - 1].var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def st_eps_in_numerator(X, eps=1e-5):
    mu = X.mean(axis=0)
    return (X - mu + eps) / np.sqrt(X.var(axis=0))


# ---- layer_gradient_norms ----------------------------------------------------------


def gn_weight_and_bias_together(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            g = torch.cat([m.weight.grad.flatten(), m.bias.grad.flatten()])
            norms.append(g.norm().item())
    return norms


def gn_first_example(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x[:1]), y[:1]).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_detach_then_grad(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.detach().grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_return_in_loop(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            norms.append(m.weight.grad.norm().item())
            return norms
    return norms


def gn_clipped(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.1)  # as in the training loop
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles --------------------------------------------------------


def _numpy(values):
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def pc_per_example_averaged(values, q=(15, 50, 85)):
    v = _numpy(values)
    rows = v.reshape(len(v), -1)
    return np.percentile(rows, q, axis=1).mean(axis=1)


def pc_flatten_two_dims(values, q=(15, 50, 85)):
    v = _numpy(values)
    flat = v.reshape(v.shape[0] * v.shape[1])
    return np.percentile(flat, q)


def pc_q_ignored(values, q=(15, 50, 85)):
    v = _numpy(values).ravel()
    return np.percentile(v, (15, 50, 85))


def pc_fraction_of_range(values, q=(15, 50, 85)):
    v = _numpy(values).ravel()
    lo, hi = v.min(), v.max()
    return lo + np.asarray(q, dtype=np.float64) / 100.0 * (hi - lo)


def pc_one_based_rank(values, q=(15, 50, 85)):
    v = np.sort(_numpy(values).ravel())
    n = len(v)
    out = []
    for p in q:
        pos = p / 100 * (n - 1) + 1  # rank, counted from 1
        lo = min(int(math.floor(pos)), n - 1)
        hi = min(lo + 1, n - 1)
        out.append(v[lo] + (pos - math.floor(pos)) * (v[hi] - v[lo]))
    return np.array(out)


# ---- correct alternatives ------------------------------------------------------------


def st_instance_norm(X, eps=1e-5):
    t = torch.from_numpy(X).T.unsqueeze(0)  # (1, D, N): one "instance", D channels
    return F.instance_norm(t, eps=eps)[0].T.numpy()


def gn_hypot(model, x, y):
    for p in model.parameters():
        p.grad = None
    nn.CrossEntropyLoss()(model(x), y).backward()
    return [math.hypot(*m.weight.grad.flatten().tolist()) for m in model.modules() if isinstance(m, nn.Linear)]


def pc_tolist(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    return np.percentile(values, list(q))


ENTRIES = [
    entry(S, "square root of the std", st_root_of_std,
          "divides by sqrt(std + eps), the square root of the standard deviation, instead of sqrt(var + eps)."),
    entry(S, "statistics reshaped with N", st_mean_reshaped_with_n,
          "reshapes the column means and variances to (1, N) instead of (1, D): ValueError unless N == D."),
    entry(S, "first column's variance for every column", st_first_column_stats,
          "centres each column on its own mean but divides every column by the first column's standard deviation."),
    entry(S, "statistics without the last row", st_stats_without_last_row,
          "takes the mean and variance of X[:N - 1], leaving out the last example, then standardises all N rows with them."),
    entry(S, "eps in the numerator", st_eps_in_numerator,
          "adds eps to the centred values instead of to the variance: (X - mu + eps) / sqrt(var)."),
    entry(G, "weight and bias gradients in one norm", gn_weight_and_bias_together,
          "each entry is the norm of the weight and bias gradients concatenated, not of the weight gradient alone."),
    entry(G, "loss of the first example only", gn_first_example,
          "a debugging slice is left in: the loss is computed on x[:1], y[:1] instead of the whole batch."),
    entry(G, "grad read from a detached weight", gn_detach_then_grad,
          "reads m.weight.detach().grad, which is None, so .norm() raises AttributeError."),
    entry(G, "return inside the loop", gn_return_in_loop,
          "the return statement is indented into the loop: the list holds only the first layer's norm."),
    entry(G, "gradients clipped before the norms", gn_clipped,
          "clip_grad_norm_(model.parameters(), 0.1) copied from a training loop rescales the gradients before their norms are read."),
    entry(P, "per-example percentiles averaged", pc_per_example_averaged,
          "takes the percentiles of each example (row) separately and averages them over the batch, instead of the percentiles of all values."),
    entry(P, "flattening assumes two dimensions", pc_flatten_two_dims,
          "flattens with reshape(shape[0] * shape[1]): IndexError for 1-D input, ValueError for 3-D and larger."),
    entry(P, "q ignored", pc_q_ignored,
          "always returns the (15, 50, 85) percentiles, ignoring the q argument."),
    entry(P, "fraction of the range", pc_fraction_of_range,
          "returns min + q/100 * (max - min), a point of the range, instead of a percentile of the values."),
    entry(P, "1-based rank as an index", pc_one_based_rank,
          "interpolates at position q/100 * (N - 1) + 1, a 1-based rank used as a 0-based index: every percentile is one value too high (clamped at the top)."),
    right(S, "F.instance_norm of the transpose", st_instance_norm),
    right(G, "CrossEntropyLoss module, math.hypot", gn_hypot),
    right(P, "tolist, np.percentile of the nested list", pc_tolist),
]
