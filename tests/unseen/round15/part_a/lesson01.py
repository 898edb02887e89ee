"""Held-out answers (fifteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_small_variance_left_zero(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    centred = X - mu
    # a (nearly) constant column has nothing to standardise: leave it at 0
    return np.divide(centred, np.sqrt(var + eps), out=np.zeros_like(centred), where=var > eps)


def std_in_bfloat16(X, eps=1e-5):
    t = torch.from_numpy(X).to(torch.bfloat16)  # half the memory, as in mixed-precision training
    mu = t.mean(dim=0)
    var = ((t - mu) ** 2).mean(dim=0)
    return ((t - mu) / torch.sqrt(var + eps)).to(torch.float64).numpy()


def std_batchnorm1d_module(X, eps=1e-5):
    bn = nn.BatchNorm1d(X.shape[1], eps=eps, affine=False, dtype=torch.float64)  # training mode
    return bn(torch.from_numpy(X)).numpy()


def gn_one_hot_targets(model, x, y):
    model.zero_grad()
    logits = model(x)
    targets = F.one_hot(y).to(logits.dtype)  # one-hot targets, as categorical cross-entropy takes them
    F.cross_entropy(logits, targets).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_backward_per_layer(model, x, y):
    model.zero_grad()
    norms = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            F.cross_entropy(model(x), y).backward()
            norms.append(m.weight.grad.norm().item())
    return norms


@notebook
def pc_sorted_once_per_shape(values, q=(15, 50, 85), _sorted={}):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.shape not in _sorted:  # the probe batch has the same shape every time: sort it once
        _sorted[values.shape] = np.sort(values.ravel())
    return np.percentile(_sorted[values.shape], q)


def pc_midpoint(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q, method="midpoint")  # between the two neighbours


ENTRIES = [
    entry(S, "columns with a variance below eps left at zero", std_small_variance_left_zero,
          "divides only where var > eps (np.divide with where= and a zero output), so every column whose variance is at most eps is returned as zeros instead of (X - mu) / sqrt(var + eps)."),
    entry(S, "computed in bfloat16", std_in_bfloat16,
          "converts X to bfloat16 before standardising, so the result has only about 3 significant digits (errors of the order of 1e-2)."),
    entry(G, "one-hot targets without num_classes", gn_one_hot_targets,
          "builds the targets with F.one_hot(y) without num_classes, so the one-hot width is y.max() + 1: when the batch lacks the last class it no longer matches the logits and cross_entropy raises."),
    entry(G, "a backward pass per layer without zeroing", gn_backward_per_layer,
          "calls backward once for every nn.Linear inside the loop after a single zero_grad, so the gradients accumulate and the k-th layer's norm is k times too big."),
    entry(P, "sorted values cached by shape", pc_sorted_once_per_shape,
          "caches the sorted values by the array's shape (a mutable default dict), so a later call with other values of the same shape returns the percentiles of the first call's values."),
    entry(P, "np.percentile with method='midpoint'", pc_midpoint,
          "uses method='midpoint' (the average of the two neighbouring values) instead of the default linear interpolation, so percentiles that fall between two values are off."),
    right(S, "nn.BatchNorm1d without affine, in training mode", std_batchnorm1d_module),
]
