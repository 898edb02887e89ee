"""Held-out answers (twenty-second set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def axes_as_a_list(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    axes = [0]  # as in tf.nn.moments(x, axes=[0])
    mu = x.mean(axis=axes)
    var = ((x - mu) ** 2).mean(axis=axes)
    return mu, var, var * n / (n - 1)


def float_batches_only(x):
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"batch_stats expects a float batch, got {x.dtype}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def mu_typed_for_var_in_the_bessel_line(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = mu * n / (n - 1)
    return mu, var, var_unbiased


def kahan_sums_over_the_rows(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")

    def compensated_sum(rows):
        total = np.zeros(x.shape[1])
        carry = np.zeros(x.shape[1])
        for row in rows:
            y = row - carry
            t = total + y
            carry = (t - total) - y
            total = t
        return total

    xf = x.astype(np.float64)
    mu = compensated_sum(xf) / n
    squares = compensated_sum((xf - mu) ** 2)
    return mu, squares / n, squares / (n - 1)


ENTRIES = [
    entry(C, "axis given as a list, axes=[0] (tf.nn.moments)", axes_as_a_list,
          "passes the reduction axis as a list, axis=[0], as tf.nn.moments takes axes=[0], and NumPy's mean refuses a list for axis, so every call raises TypeError ('list' object cannot be interpreted as an integer)."),
    entry(C, "TypeError for a non-float batch", float_batches_only,
          "refuses every batch whose dtype is not floating point with a TypeError, so integer batches (int64, uint8 pixels) raise instead of giving their statistics; float batches are right."),
    entry(C, "mu typed for var in the Bessel line", mu_typed_for_var_in_the_bessel_line,
          "types mu for var in the Bessel line (var_unbiased = mu * n / (n - 1)), so var_unbiased is the mean scaled by N/(N-1); mu and var are right."),
    right(C, "Kahan-compensated sums over the rows (float64)", kahan_sums_over_the_rows),
]
