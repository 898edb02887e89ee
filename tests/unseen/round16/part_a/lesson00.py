"""Held-out answers (sixteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={x.shape[0]}")


def torch_tensor_constructor(x):
    _guard(x)
    t = torch.Tensor(x)  # a tensor from the array, to use torch's reductions
    n = t.shape[0]
    mu = t.mean(dim=0)
    var = ((t - mu) ** 2).mean(dim=0)
    return mu.numpy(), var.numpy(), (var * n / (n - 1)).numpy()


def matlab_var_flag(x):
    _guard(x)
    n = x.shape[0]
    mu = np.mean(x, 0)
    var = np.var(x, 1)  # as MATLAB's var(x, 1): normalise by N
    return mu, var, var * n / (n - 1)


def mean_divided_by_n_twice(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0) / n
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def column_loop_one_based_index(x):
    _guard(x)
    n, d = x.shape
    mu, var = np.zeros(d), np.zeros(d)
    for j in range(d):
        col = x[:, j - 1]  # column j (1-based, as in the formula)
        mu[j] = col.mean()
        var[j] = ((col - mu[j]) ** 2).mean()
    return mu, var, var * n / (n - 1)


def least_squares_on_ones(x):
    x = np.asarray(x)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 examples for the unbiased variance, got N={n}")
    # the mean is the least-squares fit of a constant; the residual sum of squares is N * var
    coef, residuals, _, _ = np.linalg.lstsq(np.ones((n, 1)), x, rcond=None)
    mu = coef[0]
    var = residuals / n
    out = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return mu.astype(out), var.astype(out), (residuals / (n - 1)).astype(out)


ENTRIES = [
    entry(C, "torch.Tensor(x) for a tensor", torch_tensor_constructor,
          "builds the tensor with the torch.Tensor constructor, which always makes float32, so every statistic is computed and returned in float32 (errors of the order of 1e-7 relative on float64 batches)."),
    entry(C, "MATLAB's var(x, 1) flag", matlab_var_flag,
          "writes np.var(x, 1) for MATLAB's var(x, 1) (normalise by N), but NumPy's second argument is the axis, so var (and var_unbiased from it) is each example's variance over the features, shape (N,)."),
    entry(C, "mean divided by N twice", mean_divided_by_n_twice,
          "writes x.mean(axis=0) / n (a mean and the division of a sum), so mu is the mean divided by N, and var, taken about that wrong centre, is too large by (mean - mean/N)^2."),
    entry(C, "column loop with a 1-based index", column_loop_one_based_index,
          "reads column j - 1 in a loop over j = 0..D-1 (a 1-based index kept from the formula), so every statistic belongs to the previous column (the first to the last): the results are rotated by one feature."),
    right(C, "least squares on a column of ones", least_squares_on_ones),
]
