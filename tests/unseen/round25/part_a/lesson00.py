"""Held-out answers (twenty-fifth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import functools

import numpy as np

from _format import entry, right

C = "batch_stats"


def bessel_factor_in_float32(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    factor = np.float32(n / (n - 1))  # a small constant: single precision is plenty
    return mu, var, var * factor


def zero_variance_as_one(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0.0] = 1.0  # as sklearn's StandardScaler's scale_: no zero scale
    var = std**2
    return mu, var, var * n / (n - 1)


@functools.lru_cache(maxsize=None)
def memoised_with_lru_cache(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def sums_then_ddof_one(x):
    n = len(x)
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.sum(axis=0) / n
    var = np.square(x - mu).sum(axis=0) / n
    return mu, var, np.var(x, axis=0, ddof=1)


ENTRIES = [
    entry(C, "Bessel factor kept as np.float32", bessel_factor_in_float32,
          "rounds the Bessel factor N/(N - 1) to np.float32 before multiplying, so var_unbiased of a float64 batch carries the factor's float32 rounding (up to about 3e-8 relative); mu and var are right."),
    entry(C, "zero standard deviations replaced by 1 (StandardScaler's scale_)", zero_variance_as_one,
          "replaces a zero standard deviation by 1 before squaring it, as sklearn's StandardScaler does for its scale_, so a constant feature gets var 1 and var_unbiased N/(N - 1) instead of 0; every non-constant feature is right."),
    entry(C, "memoised with functools.lru_cache", memoised_with_lru_cache,
          "decorates the function with functools.lru_cache to avoid recomputing, but NumPy arrays are not hashable, so every call raises TypeError ('unhashable type') before anything is computed."),
    right(C, "sums over N, np.var(ddof=1) for the unbiased one", sums_then_ddof_one),
]
