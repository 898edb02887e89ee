"""Held-out answers (eighteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={x.shape[0]}")


def bessel_factor_one_too_high(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n + 1) / n  # one more than N over N


def mean_kept_with_keepdims(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0, keepdims=True)  # keepdims so that x - mu broadcasts
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def variances_returned_in_the_other_order(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var * n / (n - 1)
    return mu, var_unbiased, var


def welford_over_the_rows(x):
    n, d = x.shape
    if n < 2:
        raise ValueError(f"need N >= 2 for the unbiased variance (got N={n})")
    dtype = np.result_type(x.dtype, np.float32)  # float32 stays float32, integers become float64
    mean, m2 = np.zeros(d, dtype=dtype), np.zeros(d, dtype=dtype)
    for k, row in enumerate(x, start=1):  # Welford's online update, one example at a time
        delta = row - mean
        mean = mean + delta / k
        m2 = m2 + delta * (row - mean)
    return mean, m2 / n, m2 / (n - 1)


ENTRIES = [
    entry(C, "Bessel factor (N + 1) / N", bessel_factor_one_too_high,
          "multiplies the biased variance by (N + 1) / N instead of N / (N - 1) (the factor shifted by one), so var_unbiased is too small; mu and var are right."),
    entry(C, "mean returned with keepdims=True", mean_kept_with_keepdims,
          "takes the mean with keepdims=True (for the broadcast) and returns it like that, so mu has shape (1, D) instead of (D,); its values and both variances are right."),
    entry(C, "variances returned as (mu, var_unbiased, var)", variances_returned_in_the_other_order,
          "returns the two variances in the wrong order, (mu, var_unbiased, var), so the second output is the unbiased variance and the third the biased one."),
    right(C, "Welford's online update over the rows", welford_over_the_rows),
]
