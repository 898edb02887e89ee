"""Held-out answers (sixteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_eps_typed_10e5(X, eps=10e-5):  # 1e-5 typed as ten to the minus five
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def std_half_power_without_parentheses(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / (var + eps) ** 1 / 2  # the square root as a power


def std_group_norm_of_transpose(X, eps=1e-5):
    X = np.asarray(X)
    dtype = np.result_type(X.dtype, 1.0)  # float32 stays float32, integers become float64
    t = torch.from_numpy(X.astype(dtype)).T.unsqueeze(0)  # (1, D, N): one group per feature
    return F.group_norm(t, num_groups=X.shape[1], eps=eps).squeeze(0).T.numpy()


def gn_every_module_with_a_weight(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if getattr(m, "weight", None) is not None]


def gn_summed_loss_over_classes(model, x, y):
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, y, reduction="sum") / logits.shape[1]  # the mean over the batch
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def pc_nearest_like_tfp(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    # tfp.stats.percentile's default interpolation is "nearest"
    return np.percentile(np.asarray(values).ravel(), q, method="nearest")


def pc_interpolation_without_the_difference(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    out = []
    for p in np.atleast_1d(q):
        pos = p / 100 * (v.size - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, v.size - 1)
        frac = pos - lo
        out.append(v[lo] + frac * v[hi])  # linear interpolation between the two neighbours
    return np.array(out) if np.ndim(q) else out[0]


ENTRIES = [
    entry(S, "default eps typed 10e-5", std_eps_typed_10e5,
          "types the default eps as 10e-5, which is 1e-4, not 1e-5, so a call without eps divides by sqrt(var + 1e-4)."),
    entry(S, "** 1/2 without parentheses", std_half_power_without_parentheses,
          "writes (var + eps) ** 1 / 2 for the square root, which is (var + eps) / 2 by precedence, so each column is divided by half its variance (plus eps) instead of the square root."),
    entry(G, "every module with a weight, BatchNorm included", gn_every_module_with_a_weight,
          "keeps every module that has a weight instead of only the nn.Linear layers, so in a network with BatchNorm layers their gamma gradients are listed too (between the linear layers)."),
    entry(G, "summed loss divided by the number of classes", gn_summed_loss_over_classes,
          "divides the summed loss by logits.shape[1] (the number of classes) instead of shape[0] (the batch size), so every norm is N / C times too big."),
    entry(P, "method='nearest' (TensorFlow Probability's default)", pc_nearest_like_tfp,
          "passes method='nearest' (tfp.stats.percentile's default), so a percentile between two values is the nearer value instead of the linear interpolation."),
    entry(P, "interpolation without the difference", pc_interpolation_without_the_difference,
          "interpolates as v[lo] + frac * v[hi] instead of v[lo] + frac * (v[hi] - v[lo]), so a percentile that falls between two values is off by frac * v[lo]."),
    right(S, "F.group_norm of the transpose, one group per feature", std_group_norm_of_transpose),
]
