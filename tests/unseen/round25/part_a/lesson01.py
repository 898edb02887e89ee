"""Held-out answers (twenty-fifth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_single_row_returned_as_is(X, eps=1e-5):
    if X.shape[0] == 1:  # one example: nothing to standardise against
        return X
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def std_first_row_as_header(X, eps=1e-5):
    data = X[1:]  # skip the header row, as when the table was read from a CSV
    mu = data.mean(axis=0)
    var = data.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def gn_labels_as_int32(model, x, y):
    model.zero_grad()
    y = y.to(torch.int32)  # TF's default integer labels
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_input_flattened_to_784(model, x, y):
    model.zero_grad()
    x = x.view(-1, 784)  # flatten the images, as in the MNIST cells
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_autograd_grad_on_the_weights(model, x, y):
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    return [float(torch.linalg.vector_norm(g)) for g in grads]


def pc_torch_quantile_float32_q(values, q=(15, 50, 85)):
    t = torch.as_tensor(values).detach().flatten()
    return torch.quantile(t, torch.tensor(q) / 100).numpy()  # q from percents to fractions


ENTRIES = [
    entry(S, "a single row returned unchanged", std_single_row_returned_as_is,
          "returns X unchanged when it has one row, thinking a single example cannot be standardised, where (X - mu) / sqrt(var + eps) gives zeros (the row is its own mean); every batch of two or more rows is right."),
    entry(S, "first row skipped as a CSV header for the statistics", std_first_row_as_header,
          "computes the column means and variances from X[1:], skipping the first row as if it were a header, so the statistics come from N - 1 examples and the output is off (not mean 0 and variance 1); the formula is right."),
    entry(G, "labels cast to int32 (TF's default)", gn_labels_as_int32,
          "casts the labels to torch.int32, TensorFlow's usual label dtype, and F.cross_entropy requires int64 (Long) class indices, so every call raises RuntimeError ('expected target dtype to be Long')."),
    entry(G, "input flattened to 784 features (MNIST habit)", gn_input_flattened_to_784,
          "flattens the input with x.view(-1, 784), copied from the MNIST cells, so any model whose input width is not 784 gets the wrong shape (a size error, or a regrouped batch) instead of x as given."),
    right(G, "torch.autograd.grad on the Linear weights", gn_autograd_grad_on_the_weights),
    entry(P, "torch.quantile with q as a float32 tensor", pc_torch_quantile_float32_q,
          "builds the fractions as torch.tensor(q) / 100, a float32 tensor, and torch.quantile needs q of the input's dtype, so float64 activations (and NumPy float64 arrays) raise RuntimeError; float32 values are right."),
]
