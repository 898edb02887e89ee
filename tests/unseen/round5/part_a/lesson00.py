"""Held-out answers (fifth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import math

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need N >= 2")


def as_lists(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu.tolist(), var.tolist(), (var * n / (n - 1)).tolist()


def guard_type_error(x):
    n = x.shape[0]
    if n < 2:
        raise TypeError(f"x must hold at least two rows, got {n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_from_features(x):
    _guard(x)
    d = x.shape[-1]  # "the last axis is the sample axis"
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * d / (d - 1)


def unbiased_without_axis(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, np.var(x, ddof=1)


def four_outputs(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1), n


def integer_bessel(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n // (n - 1))


def guard_only_one(x):
    n = x.shape[0]
    if n == 1:
        raise ValueError("one example has no unbiased variance")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def pooled_variance(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.mean((x - mu) ** 2)  # axis forgotten on the second reduction
    return mu, var, var * n / (n - 1)


def cast_to_input_dtype(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    vu = var * n / (n - 1)
    return mu.astype(x.dtype), var.astype(x.dtype), vu.astype(x.dtype)


def welford_count_off(x):
    _guard(x)
    n = x.shape[0]
    mean = np.zeros(x.shape[1])
    m2 = np.zeros(x.shape[1])
    for k in range(n):
        delta = x[k] - mean
        mean = mean + delta / (k + 2)  # count starts at 1 "after the first update"
        m2 = m2 + delta * (x[k] - mean)
    return mean, m2 / n, m2 / (n - 1)


def sorts_in_place(x):
    _guard(x)
    n = x.shape[0]
    x.sort(axis=0)  # sorted sums are more accurate
    mu = x.sum(axis=0) / n
    var = ((x - mu) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def fsum_columns(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be >= 2")
    cols = x.T.astype(np.float64)
    mu = np.array([math.fsum(c) / n for c in cols])
    ss = np.array([math.fsum((c - m) ** 2) for c, m in zip(cols, mu)])
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return mu.astype(dt), (ss / n).astype(dt), (ss / (n - 1)).astype(dt)


def column_norms(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be >= 2")
    mu = x.mean(axis=0)
    ss = np.linalg.norm(x - mu, axis=0) ** 2
    return mu, ss / n, ss / (n - 1)


ENTRIES = [
    entry(C, "returns Python lists", as_lists,
          "returns the three results as Python lists (.tolist()) instead of NumPy arrays of shape (D,)."),
    entry(C, "TypeError for N < 2", guard_type_error,
          "raises TypeError instead of ValueError when N < 2."),
    entry(C, "Bessel factor from the number of features", bessel_from_features,
          "the unbiased factor uses D = x.shape[-1] instead of N: var * D/(D - 1) (and D = 1 divides by zero)."),
    entry(C, "unbiased variance without axis", unbiased_without_axis,
          "var_unbiased is np.var(x, ddof=1) with no axis, one number over all N*D values, instead of per feature."),
    entry(C, "N returned as a fourth output", four_outputs,
          "returns a 4-tuple (mu, var, var_unbiased, n) instead of the three arrays."),
    entry(C, "integer division in the Bessel factor", integer_bessel,
          "the factor is n // (n - 1) (floor division: 2 for N = 2, 1 for N > 2) instead of n / (n - 1), so var_unbiased equals var for N > 2."),
    entry(C, "guard only for exactly one example", guard_only_one,
          "the guard tests n == 1 instead of n < 2, so an empty batch (N = 0) is not refused and returns NaNs."),
    entry(C, "pooled variance", pooled_variance,
          "the variance is np.mean((x - mu) ** 2) without axis=0: one number pooled over all features instead of one per feature."),
    entry(C, "results cast to the input dtype", cast_to_input_dtype,
          "casts the results back to x.dtype, so integer batches get truncated (whole-number) means and variances."),
    entry(C, "Welford count off by one", welford_count_off,
          "the running-mean update divides by k + 2 instead of k + 1 (the count is one ahead), so the mean and both variances are wrong."),
    entry(C, "sorts the caller's batch", sorts_in_place,
          "calls x.sort(axis=0), which sorts the caller's array in place (the statistics are right, the input is changed)."),
    right(C, "math.fsum per column", fsum_columns),
    right(C, "norms of the centred columns", column_norms),
]
