"""Held-out answers (sixth set, part a), lesson 01: standardize_columns(X, eps),
layer_gradient_norms(model, x, y), activation_percentiles(values, q)."""

import statistics

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns -------------------------------------------------------


def s_eps_subtracted(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var - eps)


def s_trailing_comma(X, eps=1e-5):
    mu = X.mean(axis=0)
    std = np.sqrt(X.var(axis=0) + eps)
    return (X - mu) / std,


def s_returns_tensor(X, eps=1e-5):
    return F.batch_norm(torch.from_numpy(X), None, None, training=True, eps=eps)


def s_custom_eps_not_implemented(X, eps=1e-5):
    if eps != 1e-5:
        raise NotImplementedError("TODO: other values of eps")
    mu = X.mean(axis=0)
    return (X - mu) / np.sqrt(X.var(axis=0) + 1e-5)


def s_column_loop_over_rows(X, eps=1e-5):
    out = np.zeros_like(X, dtype=float)
    for j in range(X.shape[0]):  # one column at a time
        col = X[:, j]
        out[:, j] = (col - col.mean()) / np.sqrt(col.var() + eps)
    return out


# ---- layer_gradient_norms ----------------------------------------------------


def g_spectral_norm(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [torch.linalg.norm(m.weight.grad, ord=2).item()
            for m in model.modules() if isinstance(m, nn.Linear)]


def g_label_smoothing(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y, label_smoothing=0.1).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def g_binary_cross_entropy(model, x, y):
    model.zero_grad()
    logits = model(x)
    targets = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    F.binary_cross_entropy_with_logits(logits, targets).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def g_input_float32(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x.float()), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def g_parameters_named_weight(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.norm().item() for name, p in model.named_parameters() if name.endswith("weight")]


def g_dict_by_name(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {name: m.weight.grad.norm().item()
            for name, m in model.named_modules() if isinstance(m, nn.Linear)}


# ---- activation_percentiles ----------------------------------------------------


def _flat(values):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def p_statistics_exclusive(values, q=(15, 50, 85)):
    cuts = statistics.quantiles(_flat(values).tolist(), n=100)  # 99 cut points
    return np.array([cuts[int(p) - 1] for p in q])


def p_position_over_n(values, q=(15, 50, 85)):
    v = np.sort(_flat(values))
    n = len(v)
    out = []
    for p in q:
        pos = p / 100 * n
        i = int(np.floor(pos))
        j = min(i + 1, n - 1)
        i = min(i, n - 1)
        out.append(v[i] + (pos - np.floor(pos)) * (v[j] - v[i]))
    return np.array(out)


def p_zeros_excluded(values, q=(15, 50, 85)):
    v = _flat(values)
    return np.percentile(v[v != 0], q)  # dead units left out


def p_dict_by_q(values, q=(15, 50, 85)):
    v = _flat(values)
    return {p: float(np.percentile(v, p)) for p in q}


# ---- correct alternatives ----------------------------------------------------


def s_apply_along_axis(X, eps=1e-5):
    def one(col):
        centred = col - col.mean()
        return centred / np.sqrt(np.mean(centred * centred) + eps)

    return np.apply_along_axis(one, 0, X)


def g_one_hot_probabilities(model, x, y):
    for p in model.parameters():
        p.grad = None
    logits = model(x)
    probs = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    F.cross_entropy(logits, probs).backward()  # class-probability targets
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [float(torch.sqrt((m.weight.grad**2).sum())) for m in linears]


def p_nanpercentile(values, q=(15, 50, 85)):
    if torch.is_tensor(values):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.nanpercentile(np.reshape(values, -1), np.asarray(q, dtype=float))


ENTRIES = [
    entry(S, "eps subtracted", s_eps_subtracted,
          "divides by sqrt(var - eps) instead of sqrt(var + eps) (NaN where var < eps)."),
    entry(S, "trailing comma returns a tuple", s_trailing_comma,
          "a trailing comma after the return expression returns a 1-tuple containing the array instead of the array."),
    entry(S, "returns a torch tensor", s_returns_tensor,
          "returns the torch tensor of F.batch_norm instead of a NumPy array (no .numpy())."),
    entry(S, "other eps not implemented", s_custom_eps_not_implemented,
          "raises NotImplementedError for any eps other than the default 1e-5 (a TODO left in)."),
    entry(S, "column loop bounded by the number of rows", s_column_loop_over_rows,
          "the loop over columns runs over range(X.shape[0]) (rows) instead of range(X.shape[1]): with fewer rows than columns the last columns stay 0, with more it raises IndexError."),
    entry(G, "spectral norm (ord=2)", g_spectral_norm,
          "torch.linalg.norm(grad, ord=2) of a matrix is its largest singular value, not the Frobenius norm of the gradient."),
    entry(G, "label smoothing", g_label_smoothing,
          "the loss uses label_smoothing=0.1, so the gradients are not those of the plain cross-entropy."),
    entry(G, "binary cross-entropy copied from fit_logistic", g_binary_cross_entropy,
          "uses binary_cross_entropy_with_logits on one-hot targets (from the logistic-regression cell) instead of cross_entropy."),
    entry(G, "input cast to float32", g_input_float32,
          "casts x to float32 (x.float()) before a float64 model, which raises a dtype mismatch RuntimeError."),
    entry(G, "every parameter named weight", g_parameters_named_weight,
          "takes every parameter whose name ends in 'weight', so batch-norm (and other) layers' weights are included, not only the nn.Linear weights."),
    entry(G, "dict by module name", g_dict_by_name,
          "returns a dict {module name: norm} instead of a list in order."),
    entry(P, "statistics.quantiles, exclusive method", p_statistics_exclusive,
          "statistics.quantiles' default method is 'exclusive' (positions q/100 * (N + 1)), not the linear interpolation of np.percentile."),
    entry(P, "interpolation position q/100 * N", p_position_over_n,
          "interpolates the sorted values at position q/100 * N instead of q/100 * (N - 1), so every percentile is shifted up."),
    entry(P, "zeros excluded", p_zeros_excluded,
          "leaves out the values equal to 0 (as dead units) before taking the percentiles."),
    entry(P, "dict keyed by q", p_dict_by_q,
          "returns a dict {q: value} instead of an array of the percentiles."),
    right(S, "np.apply_along_axis per column", s_apply_along_axis),
    right(G, "one-hot probability targets", g_one_hot_probabilities),
    right(P, "np.nanpercentile", p_nanpercentile),
]
