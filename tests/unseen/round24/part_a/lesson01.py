"""Held-out answers (twenty-fourth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_math_sqrt(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / math.sqrt(var + eps)


def std_longer_side_as_examples(X, eps=1e-5):
    transposed = X.shape[0] < X.shape[1]
    if transposed:  # more features than examples: the data came in as (D, N)
        X = X.T
    out = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)
    return out.T if transposed else out


def gn_labels_squeezed(model, x, y):
    model.zero_grad()
    y = y.squeeze()  # labels may come as an (N, 1) column from a loader
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_labels_as_a_column(model, x, y):
    model.zero_grad()
    labels = y.view(-1, 1)  # one label per row, as sparse_categorical_crossentropy takes them
    F.cross_entropy(model(x), labels).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def pc_excel_percentile_exc(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    # as Excel's PERCENTILE.EXC, which the spreadsheet of the lab uses
    return np.percentile(np.asarray(values).ravel(), q, method="weibull")


def pc_interp_on_the_cdf_grid(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    grid = np.linspace(0.0, 1.0, len(v))  # the k-th smallest value sits at k / (n - 1)
    return np.interp(np.asarray(q, dtype=np.float64) / 100.0, grid, v)


ENTRIES = [
    entry(S, "math.sqrt for the scale", std_math_sqrt,
          "takes the square root with math.sqrt, which accepts only a single number, so every call raises TypeError (NumPy converts only a 0-d array to a Python float) before anything is returned."),
    entry(S, "the longer side taken as the examples (X.T when N < D)", std_longer_side_as_examples,
          "transposes X whenever it has fewer rows than columns, taking the longer side for the examples, so a batch with N < D is standardised along its rows (each row to mean 0 and variance 1) instead of its columns; batches with N >= D are right."),
    entry(G, "labels squeezed, y.squeeze()", gn_labels_squeezed,
          "squeezes the labels with y.squeeze() (for loaders that give an (N, 1) column), which turns the labels of a batch of one example into a 0-d tensor, so cross_entropy raises ValueError (batch size 1 against 0) for N = 1; larger batches are right."),
    entry(G, "labels as an (N, 1) column (Keras's sparse labels)", gn_labels_as_a_column,
          "passes the labels as an (N, 1) column, y.view(-1, 1), as Keras's sparse_categorical_crossentropy takes them, and F.cross_entropy wants a 1-D vector of class indices, so every call raises RuntimeError ('0D or 1D target tensor expected, multi-target not supported')."),
    entry(P, "method='weibull' (Excel's PERCENTILE.EXC)", pc_excel_percentile_exc,
          "uses np.percentile(..., method='weibull'), Excel's PERCENTILE.EXC, which places the k-th smallest value at k/(n + 1) instead of (k - 1)/(n - 1) (the default 'linear'), so every percentile but the median of a symmetric sample is pulled outwards (q = 10 of 0..100 gives 9.2, not 10)."),
    right(P, "np.interp on the empirical grid np.linspace(0, 1, n)", pc_interp_on_the_cdf_grid),
]
