"""Held-out answers (sixth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import statistics
import warnings

import numpy as np
import torch

from _format import entry, notebook, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")


def welford_old_delta_squared(x):
    _guard(x)
    n = x.shape[0]
    mean = np.zeros(x.shape[1])
    m2 = np.zeros(x.shape[1])
    for k, row in enumerate(x, start=1):
        delta = row - mean
        mean = mean + delta / k
        m2 = m2 + delta**2  # Welford: should be delta * (row - new mean)
    var = m2 / n
    return mean, var, m2 / (n - 1)


def pairs_not_halved(x):
    _guard(x)
    n = x.shape[0]
    diffs = x[:, None, :] - x[None, :, :]
    pairs = n * (n - 1) / 2
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    var_unbiased = (diffs[upper] ** 2).sum(axis=0) / pairs  # mean squared difference over pairs
    return x.mean(axis=0), var_unbiased * (n - 1) / n, var_unbiased


def warns_for_one_example(x):
    n = x.shape[0]
    if n < 2:
        warnings.warn("batch_stats: the unbiased variance needs at least 2 examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu, var, var * n / (n - 1)


def trimmed_mean(x):
    _guard(x)
    n = x.shape[0]
    k = int(0.1 * n)  # drop the 10% most extreme values at each end
    xs = np.sort(x, axis=0)
    mu = xs[k:n - k].mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


@notebook
def memo_by_shape(x, _memo={}):  # noqa: B006
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")
    if x.shape not in _memo:  # the statistics of a batch shape are computed once
        n = x.shape[0]
        mu = x.mean(axis=0)
        var = ((x - mu) ** 2).mean(axis=0)
        _memo[x.shape] = (mu, var, var * n / (n - 1))
    return _memo[x.shape]


def torch_var_default(x):
    _guard(x)
    t = torch.from_numpy(x)
    mu = t.mean(dim=0)
    var = torch.var(t, dim=0)  # "the variance"
    var_unbiased = torch.var(t, dim=0, correction=1)
    return mu.numpy(), var.numpy(), var_unbiased.numpy()


def mean_rounded(x):
    _guard(x)
    n = x.shape[0]
    mu = np.round(x.mean(axis=0), 4)  # tidy numbers
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_in_place_alias(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var
    var_unbiased *= n / (n - 1)
    return mu, var, var_unbiased


def removed_np_float(x):
    n = np.float(x.shape[0])  # noqa: NPY001
    if n < 2:
        raise ValueError("need at least two examples")
    mu = x.sum(axis=0) / n
    var = ((x - mu) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def bessel_square_root(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * np.sqrt(n / (n - 1))


def successive_differences(x):
    _guard(x)
    n = x.shape[0]
    var_unbiased = (np.diff(x, axis=0) ** 2).sum(axis=0) / (2 * (n - 1))
    return x.mean(axis=0), var_unbiased * (n - 1) / n, var_unbiased


def nonzero_count(x):
    _guard(x)
    count = np.count_nonzero(x, axis=0)  # the number of values in each column
    mu = x.sum(axis=0) / count
    ss = ((x - mu) ** 2).sum(axis=0)
    return mu, ss / count, ss / (count - 1)


def guard_message_format(x):
    if x.shape[0] < 2:
        raise ValueError("need at least 2 examples, got %d" % x.shape)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def running_average_copied(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var * n / (n - 1)
    momentum = 0.1
    return (
        (1 - momentum) * 0.0 + momentum * mu,
        (1 - momentum) * 1.0 + momentum * var,
        (1 - momentum) * 1.0 + momentum * var_unbiased,
    )


def squeeze_then_atleast_2d(x):
    _guard(x)
    n = x.shape[0]
    x = np.atleast_2d(np.squeeze(x))  # accept (N,), (N, 1) and (N, D) alike
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ----------------------------------------------------


def statistics_module(x):
    if x.shape[0] < 2:
        raise ValueError("N must be at least 2")
    cols = [x[:, j].tolist() for j in range(x.shape[1])]
    mu = np.array([statistics.fmean(c) for c in cols])
    var = np.array([statistics.pvariance(c) for c in cols])
    var_unbiased = np.array([statistics.variance(c) for c in cols])
    return mu, var, var_unbiased


def pairwise_differences(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be at least 2")
    diffs = x[:, None, :].astype(np.float64) - x[None, :, :]
    var_unbiased = (diffs**2).sum(axis=(0, 1)) / (2 * n * (n - 1))  # E[(X - Y)^2] / 2 over i != j
    return x.mean(axis=0), var_unbiased * (n - 1) / n, var_unbiased


def equal_weight_averages(x):
    n = len(x)
    if n < 2:
        raise ValueError("N must be at least 2")
    w = np.full(n, 1.0)
    mu = np.average(x, axis=0, weights=w)
    ss = np.average((x - mu) ** 2, axis=0, weights=w) * n
    return mu, ss / n, ss / (n - 1)


ENTRIES = [
    entry(C, "Welford update with the old deviation squared", welford_old_delta_squared,
          "the Welford loop adds (x - old mean)**2 to M2 instead of (x - old mean) * (x - new mean), so both variances are too large."),
    entry(C, "pairwise differences not halved", pairs_not_halved,
          "the unbiased variance is the mean squared difference over pairs without the factor 1/2 (E[(X - Y)^2] = 2 var), so both variances are doubled."),
    entry(C, "warns instead of raising", warns_for_one_example,
          "for N < 2 it issues a warning and returns (an infinite/NaN unbiased variance) instead of raising ValueError."),
    entry(C, "10% trimmed mean", trimmed_mean,
          "the mean drops the 10% smallest and largest values of each feature (a trimmed mean), so for N >= 10 the mean and both variances are off."),
    entry(C, "memoised by batch shape", memo_by_shape,
          "results are cached by x.shape (a mutable default dict), so a second batch of the same shape gets the first batch's statistics."),
    entry(C, "torch.var's default correction for the biased variance", torch_var_default,
          "torch.var(t, dim=0) is unbiased by default, so the biased variance slot holds the unbiased variance (var is too large)."),
    entry(C, "mean rounded to 4 decimals", mean_rounded,
          "the mean is rounded to 4 decimals (and the variances are centred on the rounded mean), so it is off by up to 5e-5."),
    entry(C, "Bessel factor applied in place to var", bessel_in_place_alias,
          "var_unbiased = var is the same array, so `var_unbiased *= n / (n - 1)` also changes var: the biased variance returned is the unbiased one."),
    entry(C, "np.float (removed from NumPy)", removed_np_float,
          "uses np.float, which NumPy removed (AttributeError): the function never runs."),
    entry(C, "Bessel factor square-rooted", bessel_square_root,
          "var_unbiased multiplies by sqrt(N/(N - 1)) (the factor for a standard deviation) instead of N/(N - 1)."),
    entry(C, "mean squared successive difference", successive_differences,
          "the unbiased variance is estimated from successive differences x[i+1] - x[i] (von Neumann) instead of deviations from the mean: right only for N = 2."),
    entry(C, "non-zero entries counted as N", nonzero_count,
          "N is taken as the number of non-zero entries of each column (np.count_nonzero), so columns with exact zeros (ReLU outputs) get the wrong mean and variances."),
    entry(C, "guard's message formatting fails", guard_message_format,
          "the guard formats x.shape (a tuple) with %d, so for N < 2 it raises TypeError instead of ValueError."),
    entry(C, "running-average update copied", running_average_copied,
          "returns the running-average update of BatchNorm1d (0.1 * mu, 0.9 + 0.1 * var, ...) instead of the batch statistics themselves."),
    entry(C, "squeezed then made 2-D", squeeze_then_atleast_2d,
          "np.atleast_2d(np.squeeze(x)) turns an (N, 1) batch into (1, N), so with one feature it returns N 'means' (the values) and zero variances."),
    right(C, "statistics module per column", statistics_module),
    right(C, "pairwise differences over i != j", pairwise_differences),
    right(C, "equal-weight np.average", equal_weight_averages),
]
