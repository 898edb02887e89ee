"""Held-out answers (twenty-first set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_keras_default_epsilon(X, eps=1e-3):  # Keras BatchNormalization(epsilon=0.001)
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def gn_input_requires_grad(model, x, y):
    x.requires_grad_()  # so that the graph reaches back to the input
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_input_cast_to_float64(model, x, y):
    model.zero_grad()
    # the check's network is float64 ("a tiny network in float64")
    F.cross_entropy(model(x.double()), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_collected_with_apply(model, x, y):
    weights = []
    model.apply(lambda m: weights.append(m.weight) if isinstance(m, nn.Linear) else None)
    for w in weights:
        w.grad = None
    F.cross_entropy(model(x), y).backward()
    return [torch.sqrt((w.grad**2).sum()).item() for w in weights]


def pc_overwrite_input(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    # no copy of a big activation array: NumPy may work in place
    return np.percentile(np.asarray(values).ravel(), q, overwrite_input=True)


def pc_arguments_swapped(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.asarray(values).ravel()
    return np.percentile(q, flat)


ENTRIES = [
    entry(S, "default eps of 1e-3 (Keras's epsilon)", std_keras_default_epsilon,
          "gives eps the default 1e-3 (Keras BatchNormalization's epsilon) instead of 1e-5, so every call that does not pass eps divides by sqrt(var + 1e-3); calls that pass eps are right."),
    entry(G, "x.requires_grad_() on the caller's input", gn_input_requires_grad,
          "calls x.requires_grad_() on the caller's input tensor (thinking the graph needs it), so the norms are right but the caller's x is changed: it now requires grad (x.numpy() and later uses of x then fail or build graphs)."),
    entry(G, "input cast to float64 for the check's network", gn_input_cast_to_float64,
          "casts the input to float64 (x.double()) to match the check's float64 network, so a float32 model raises a dtype-mismatch RuntimeError; float64 models are right."),
    entry(P, "np.percentile(..., overwrite_input=True)", pc_overwrite_input,
          "passes overwrite_input=True to np.percentile on a view of the caller's values (ravel of a contiguous array, or the shared memory of a tensor), so the percentiles are right but the caller's array or tensor is left partly sorted."),
    entry(P, "np.percentile(q, values): arguments swapped", pc_arguments_swapped,
          "calls np.percentile(q, values) with the two arguments swapped, so q is taken as the data and the values as the percents: it raises ValueError when a value lies outside [0, 100], and otherwise returns percentiles of q."),
    right(G, "Linear weights collected with model.apply", gn_collected_with_apply),
]
