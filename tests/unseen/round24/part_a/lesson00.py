"""Held-out answers (twenty-fourth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def ddof_minus_one(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = np.var(x, axis=0)
    var_unbiased = np.var(x, axis=0, ddof=-1)  # "N minus one"
    return mu, var, var_unbiased


def n_from_len_of_shape(x):
    n = len(x.shape)  # the number of examples
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def contiguous_copy_centred_in_place(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    xc = np.ascontiguousarray(x, dtype=np.float64)  # our own contiguous float64 copy
    mu = xc.mean(axis=0)
    xc -= mu
    var = (xc * xc).mean(axis=0)
    return mu, var, var * n / (n - 1)


def apply_over_axes(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    total = np.apply_over_axes(np.sum, x.astype(np.float64), [0])  # (1, D)
    mu = (total / n).ravel()
    squares = np.apply_over_axes(np.sum, (x - mu) ** 2, [0]).ravel()
    return mu, squares / n, squares / (n - 1)


ENTRIES = [
    entry(C, "ddof=-1 for 'N minus one'", ddof_minus_one,
          "passes ddof=-1 to np.var for the unbiased variance, reading 'N - 1' as 'ddof minus one', so var_unbiased divides the sum of squares by N + 1 instead of N - 1 (too small by the factor (N - 1)/(N + 1)); mu and var are right."),
    entry(C, "N taken as len(x.shape)", n_from_len_of_shape,
          "takes the number of examples as len(x.shape), which is the number of dimensions (2) rather than x.shape[0], so var is the sum of squares over 2 and var_unbiased over 1 (right only when N = 2), and a batch of one example is not refused; mu is right."),
    entry(C, "np.ascontiguousarray taken for a copy, centred in place", contiguous_copy_centred_in_place,
          "takes np.ascontiguousarray(x, dtype=np.float64) for a private copy, but it returns x itself when x is already a contiguous float64 array, so xc -= mu centres the caller's batch in place; the statistics returned are right."),
    right(C, "np.apply_over_axes sums, raveled", apply_over_axes),
]
