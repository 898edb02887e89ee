"""Held-out answers (eleventh set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_row_mean_column_var(X, eps=1e-5):
    mu = X.mean(axis=1, keepdims=True)
    var = X.var(axis=0, keepdims=True)
    return (X - mu) / np.sqrt(var + eps)


@notebook
def std_with_batch_stats(X, eps=1e-5):
    mu, var, _ = batch_stats(X)  # noqa: F821  (lesson 00's function)
    return (X - mu) / np.sqrt(var + eps)


def std_eps_in_sum(X, eps=1e-5):
    n = X.shape[0]
    Xc = X - X.mean(axis=0)
    return Xc / np.sqrt(((Xc**2).sum(axis=0) + eps) / n)


def std_nan_to_num(X, eps=1e-5):
    mu = X.mean(axis=0)
    std = X.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num((X - mu) / std)  # constant columns give 0, no eps needed


def std_hypot(X, eps=1e-5):
    return (X - X.mean(axis=0)) / np.hypot(X.std(axis=0), np.sqrt(eps))


# ---- layer_gradient_norms ------------------------------------------------------


def gn_arguments_swapped(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(y, model(x))
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_rms(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.pow(2).mean().sqrt().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_set(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)}


def gn_logits_float32(model, x, y):
    model.zero_grad()
    logits = model(x).float()
    F.cross_entropy(logits, y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_log_softmax_first(model, x, y):
    for p in model.parameters():
        p.grad = None
    logp = torch.log_softmax(model(x), dim=1)
    F.cross_entropy(logp, y).backward()  # log_softmax of log-probabilities changes nothing
    return [math.sqrt(float((m.weight.grad**2).sum())) for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles ------------------------------------------------------


def _flat(values):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def pc_weights_swapped(values, q=(15, 50, 85)):
    s = np.sort(_flat(values))
    out = []
    for p in q:
        pos = p / 100 * (len(s) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(s) - 1)
        frac = pos - lo
        out.append(s[lo] * frac + s[hi] * (1 - frac))
    return np.array(out)


def pc_q_times_100(values, q=(15, 50, 85)):
    return np.percentile(_flat(values), np.asarray(q) * 100)  # percent


def pc_extremes_dropped(values, q=(15, 50, 85)):
    s = np.sort(_flat(values))[1:-1]  # drop the two outliers
    return np.percentile(s, q)


def pc_unsorted(values, q=(15, 50, 85)):
    v = _flat(values)
    out = []
    for p in q:
        pos = p / 100 * (len(v) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(v) - 1)
        out.append(v[lo] + (pos - lo) * (v[hi] - v[lo]))
    return np.array(out)


ENTRIES = [
    entry(S, "row means, column variances", std_row_mean_column_var,
          "subtracts each row's mean (axis 1) instead of each column's mean, while dividing by the columns' variances."),
    entry(S, "batch_stats from lesson 00", std_with_batch_stats,
          "calls batch_stats, which is lesson 00's function and not defined in this notebook: NameError."),
    entry(S, "eps added to the sum of squares", std_eps_in_sum,
          "adds eps to the sum of squared deviations before dividing by N, so the variance gets eps / N instead of eps."),
    entry(S, "eps replaced by nan_to_num", std_nan_to_num,
          "divides by the standard deviation without eps (nan_to_num only patches constant columns), so the eps argument is never used."),
    entry(G, "cross_entropy arguments swapped", gn_arguments_swapped,
          "calls F.cross_entropy(y, logits) with the targets first: it raises (integer targets as the input)."),
    entry(G, "root mean square of the gradient", gn_rms,
          "returns the root mean square of each weight gradient's entries (norm / sqrt(number of entries)) instead of the Frobenius norm."),
    entry(G, "set comprehension", gn_set,
          "builds the norms with braces, a set, instead of a list: the order is lost (and equal norms merge)."),
    entry(G, "logits cast to float32", gn_logits_float32,
          "casts the logits to float32 (.float()) before the loss, so a float64 model's gradients carry float32 rounding (about 1e-7 relative)."),
    entry(P, "interpolation weights swapped", pc_weights_swapped,
          "hand-written linear interpolation weights the lower value by the fraction and the upper by 1 - fraction, instead of the other way round."),
    entry(P, "q multiplied by 100", pc_q_times_100,
          "multiplies q by 100 as if it were given in fractions, so np.percentile gets 1500, 5000, ... and raises ValueError."),
    entry(P, "smallest and largest values dropped", pc_extremes_dropped,
          "drops the smallest and the largest value as outliers before taking the percentiles, so the percentiles are of N - 2 values."),
    entry(P, "interpolates in the unsorted values", pc_unsorted,
          "hand-written interpolation at position q/100 * (N - 1) in the flattened values without sorting them first."),
    right(S, "np.hypot of the std and sqrt(eps)", std_hypot),
    right(G, "log_softmax before cross_entropy (idempotent)", gn_log_softmax_first),
]
