"""Held-out answers (fifth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import statistics

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_mean_abs_deviation(X, eps=1e-5):
    mu = X.mean(axis=0)
    spread = np.abs(X - mu).mean(axis=0)  # "the average distance from the mean"
    return (X - mu) / (spread + eps)


def std_output_like_input(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    out = np.empty_like(X)
    out[:] = (X - mu) / np.sqrt(var + eps)
    return out


def std_column_loop_off_by_one(X, eps=1e-5):
    out = X.astype(np.float64, copy=True)
    for j in range(X.shape[1] - 1):
        col = X[:, j]
        out[:, j] = (col - col.mean()) / np.sqrt(col.var() + eps)
    return out.astype(X.dtype) if np.issubdtype(X.dtype, np.floating) else out


def std_mean_after_scaling(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return X / np.sqrt(var + eps) - mu


# ---- layer_gradient_norms ------------------------------------------------------


def grad_children_only(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.children() if isinstance(m, nn.Linear)]


def grad_tensors_not_floats(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm() for m in model.modules() if isinstance(m, nn.Linear)]


def grad_softmax_before_ce(model, x, y):
    model.zero_grad()
    probs = F.softmax(model(x), dim=1)
    F.cross_entropy(probs, y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def grad_takes_a_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles ------------------------------------------------------


def pct_default_95(values, q=(15, 50, 95)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q)


def pct_sorts_in_place(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.asarray(values).ravel()
    flat.sort()  # sorted once, percentiles read off
    return np.percentile(flat, q)


def pct_subsample(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.asarray(values).ravel()
    if flat.size > 1000:  # faster on big layers
        flat = np.random.default_rng(0).choice(flat, 1000, replace=False)
    return np.percentile(flat, q)


# ---- correct alternatives ----------------------------------------------------


def std_layer_norm_on_transpose(X, eps=1e-5):
    dt = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    t = torch.from_numpy(np.ascontiguousarray(X.T, dtype=np.float64))
    return F.layer_norm(t, (X.shape[0],), eps=eps).T.numpy().astype(dt)


def grad_nll_sqrt_sumsq(model, x, y):
    model.zero_grad(set_to_none=True)
    F.nll_loss(F.log_softmax(model(x), dim=1), y).backward()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [float(m.weight.grad.double().pow(2).sum().sqrt()) for m in linears]


def pct_statistics_quantiles(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    data = np.asarray(values, dtype=np.float64).ravel().tolist()
    if len(data) == 1:
        return np.full(len(q), data[0])
    out = []
    for p in q:
        if p == 0:
            out.append(min(data))
        elif p == 100:
            out.append(max(data))
        else:
            # 10000 cut points: index p*100 - 1 is the p-th percentile (inclusive = linear)
            out.append(statistics.quantiles(data, n=10000, method="inclusive")[round(p * 100) - 1])
    return np.array(out)


ENTRIES = [
    entry(S, "divides by the mean absolute deviation", std_mean_abs_deviation,
          "divides the centred columns by the mean absolute deviation plus eps instead of sqrt(var + eps)."),
    entry(S, "output array like the input", std_output_like_input,
          "writes the result into np.empty_like(X), so an integer X gives an integer (truncated) result instead of floats."),
    entry(S, "last column skipped", std_column_loop_off_by_one,
          "the column loop runs over range(D - 1), so the last column is left as it was (not standardised)."),
    entry(S, "mean subtracted after scaling", std_mean_after_scaling,
          "computes X / sqrt(var + eps) - mu: the unscaled mean is subtracted after dividing, instead of (X - mu) / sqrt(var + eps)."),
    entry(G, "only the direct children", grad_children_only,
          "iterates model.children() instead of model.modules(), so Linear layers inside nested containers are left out."),
    entry(G, "norms as tensors", grad_tensors_not_floats,
          "returns 0-d tensors (.norm() without .item()) instead of Python floats."),
    entry(G, "softmax before cross_entropy", grad_softmax_before_ce,
          "applies softmax to the logits before F.cross_entropy (which applies log-softmax itself), so the loss and all gradient norms are wrong."),
    entry(G, "takes an SGD step", grad_takes_a_step,
          "calls optimizer.step() after backward, so the model's weights are changed as a side effect (the norms are right)."),
    entry(P, "default q ends at 95", pct_default_95,
          "the default q is (15, 50, 95) instead of (15, 50, 85)."),
    entry(P, "sorts the caller's values", pct_sorts_in_place,
          "ravel() returns a view for a contiguous array and .sort() then sorts the caller's array in place (percentiles right, input changed)."),
    entry(P, "random subsample of 1000 values", pct_subsample,
          "for more than 1000 values it takes the percentiles of a random subsample of 1000, so the results are estimates, not the percentiles of every value."),
    right(S, "layer_norm of the transpose", std_layer_norm_on_transpose),
    right(G, "nll_loss of log_softmax, sqrt of the sum of squares", grad_nll_sqrt_sumsq),
    right(P, "statistics.quantiles inclusive", pct_statistics_quantiles),
]
