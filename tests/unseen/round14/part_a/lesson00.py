"""Held-out answers (fourteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"batch_stats needs N >= 2, got N={x.shape[0]}")


def bessel_double_star(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var ** n / (n - 1)
    return mu, var, var_unbiased


def std_product_mixed_ddof(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    var_unbiased = x.std(axis=0, ddof=1) * x.std(axis=0)  # std squared
    return mu, var, var_unbiased


def outlier_rows_dropped(x):
    _guard(x)
    # clean the batch first: drop examples more than 2 standard deviations out
    z = np.abs(x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)
    x = x[(z < 2).all(axis=1)] if (z < 2).all(axis=1).sum() >= 2 else x
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def results_through_map(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return map(np.asarray, (mu, var, var * n / (n - 1)))  # make sure all three are arrays


def guard_without_raise(x):
    n = x.shape[0]
    if n < 2:
        ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def var_with_given_mean(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need N >= 2, got {n}")
    mu = x.mean(axis=0, keepdims=True)
    var = np.var(x, axis=0, mean=mu)  # NumPy 2: reuse the mean
    var_unbiased = np.var(x, axis=0, ddof=1, mean=mu)
    return mu[0], var, var_unbiased


ENTRIES = [
    entry(C, "Bessel factor typed with a double star", bessel_double_star,
          "a typo: var ** n / (n - 1) instead of var * n / (n - 1), so var_unbiased is the biased variance raised to the power N, divided by N - 1."),
    entry(C, "unbiased variance as a product of two different stds", std_product_mixed_ddof,
          "squares the standard deviation as std(ddof=1) * std(ddof=0), so var_unbiased is off by sqrt(N / (N - 1)) (it is the geometric mean of the biased and unbiased variances)."),
    entry(C, "outlying examples dropped before the statistics", outlier_rows_dropped,
          "removes the examples that lie more than 2 standard deviations from the mean in any feature before computing the statistics, so mu and both variances are those of a smaller, trimmed batch."),
    entry(C, "three results returned through map", results_through_map,
          "returns map(np.asarray, (mu, var, var_unbiased)), a one-shot map iterator, not a tuple of three arrays: it can be unpacked once but has no len(), no indexing, and is empty the second time it is read."),
    entry(C, "guard builds the ValueError but does not raise it", guard_without_raise,
          "the N < 2 guard writes ValueError(...) without raise, so for N = 1 nothing is raised and the function returns var_unbiased = 0 / 0 (nan, with a RuntimeWarning)."),
    right(C, "np.var with the mean given (NumPy 2)", var_with_given_mean),
]
