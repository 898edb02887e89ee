"""Held-out answers (twelfth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_max_abs(X, eps=1e-5):
    xc = X - X.mean(axis=0)
    return xc / (np.abs(xc).max(axis=0) + eps)


def std_clipped(X, eps=1e-5):
    z = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)
    return np.clip(z, -3.0, 3.0)  # outliers beyond 3 sigma are noise


def std_exponent_precedence(X, eps=1e-5):
    return (X - X.mean(axis=0)) * (X.var(axis=0) + eps) ** -1 / 2


def std_eps_or_default(X, eps=None):
    eps = eps or 1e-5
    return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)


# ---- layer_gradient_norms ----------------------------------------------------


def gn_read_before_backward(model, x, y):
    model.zero_grad()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [m.weight.grad.norm().item() for m in linears]
    F.cross_entropy(model(x), y).backward()
    return norms


def gn_update_size(model, x, y):
    lr = 0.1
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [(lr * m.weight.grad).norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_strings(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [f"{m.weight.grad.norm().item():.4f}" for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles --------------------------------------------------


def pc_lower(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q, method="lower")


def pc_view(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().view(-1).cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q)


def pc_loop_over_q(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.asarray(values).ravel()
    return [np.percentile(flat, p) for p in q]


def pc_no_ravel(values, q=(15, 50, 85)):
    if torch.is_tensor(values):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.percentile(values, q)  # axis=None: every number


ENTRIES = [
    entry(S, "divides by the largest absolute deviation", std_max_abs,
          "scales each centred column by its largest absolute deviation (max-abs scaling) instead of sqrt(var + eps)."),
    entry(S, "z-scores clipped at 3", std_clipped,
          "clips the standardised values to [-3, 3], so outlying entries are not standardised."),
    entry(S, "exponent -1/2 without parentheses", std_exponent_precedence,
          "writes (var + eps) ** -1 / 2, which is (var + eps)^-1 / 2, not (var + eps)^(-1/2)."),
    entry(S, "eps = eps or 1e-5", std_eps_or_default,
          "replaces a given eps of 0 by 1e-5 (eps = eps or 1e-5), so eps=0 is not honoured."),
    entry(G, "norms read before backward", gn_read_before_backward,
          "reads the weight gradients before calling backward: after zero_grad they are None (an AttributeError in the learner's code)."),
    entry(G, "norms of the update lr * grad", gn_update_size,
          "returns the norms of 0.1 * grad (the size of an SGD step) instead of the gradient norms."),
    entry(G, "norms formatted as strings", gn_strings,
          "returns the norms as strings formatted to 4 decimals instead of numbers."),
    entry(P, "np.percentile method='lower'", pc_lower,
          "uses method='lower' (the data point below) instead of linear interpolation."),
    entry(P, "tensor flattened with view(-1)", pc_view,
          "flattens tensors with .view(-1), which raises for a non-contiguous tensor (a transposed or sliced one)."),
    entry(P, "list comprehension over q", pc_loop_over_q,
          "loops over q to build a list: a single number q raises TypeError, and the result is a list, not an array."),
    right(P, "np.percentile without ravel", pc_no_ravel),
]
