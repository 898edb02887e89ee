"""Held-out answers (twelfth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 examples, got N={x.shape[0]}")


def sorted_along_features(x):
    _guard(x)
    xs = np.sort(x, axis=1)  # sorted values add up more accurately
    n = xs.shape[0]
    mu = xs.mean(axis=0)
    var = ((xs - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def unbiased_returned_twice(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var * n / (n - 1)
    return mu, var_unbiased, var_unbiased


def input_dtype_accumulator(x):
    _guard(x)
    n = x.shape[0]
    mu = np.mean(x, axis=0, dtype=x.dtype)  # keep the caller's dtype
    var = np.mean((x - mu) ** 2, axis=0, dtype=x.dtype)
    return mu, var, var * n / (n - 1)


def sum_returned_as_mean(x):
    _guard(x)
    n = x.shape[0]
    total = x.sum(axis=0)
    var = ((x - total / n) ** 2).mean(axis=0)
    return total, var, var * n / (n - 1)


def prints_instead_of_returning(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    print("mu", mu, "var", var, "var_unbiased", var * n / (n - 1))


def one_table(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return np.stack([mu, var, var * n / (n - 1)], axis=1)  # one row per feature


_MEMO = {}


def memoised_by_id(x):
    key = id(x)
    if key in _MEMO:
        return _MEMO[key]
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    _MEMO[key] = (mu, var, var * n / (n - 1))
    return _MEMO[key]


def small_batch_zeros(x):
    n, d = x.shape
    if n < 2:
        return np.zeros(d), np.zeros(d), np.zeros(d)  # TODO raise a ValueError here
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def reshape_for_transpose(x):
    _guard(x)
    n, d = x.shape
    rows = x.reshape(d, n)  # one row per feature
    mu = rows.mean(axis=1)
    var = ((rows - mu[:, None]) ** 2).mean(axis=1)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ------------------------------------------------------


def transposed_rows(x):
    if len(x) < 2:
        raise ValueError("batch_stats needs two examples or more")
    xt = np.asarray(x, dtype=np.float64).T  # (D, N): one row per feature
    mu = xt.mean(axis=1)
    return mu, xt.var(axis=1), xt.var(axis=1, ddof=1)


def var_given_mean(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be at least 2")
    mu = np.mean(x, axis=0)
    return mu, np.var(x, axis=0, mean=mu), np.var(x, axis=0, ddof=1, mean=mu)


ENTRIES = [
    entry(C, "sorted along the feature axis", sorted_along_features,
          "sorts each example's values (np.sort along axis 1), which mixes values of different features before the per-feature statistics."),
    entry(C, "var_unbiased returned twice", unbiased_returned_twice,
          "returns (mu, var_unbiased, var_unbiased): the biased variance is replaced by the unbiased one."),
    entry(C, "mean accumulated in the input's dtype", input_dtype_accumulator,
          "passes dtype=x.dtype to np.mean, so for integer input the mean and variance are truncated to integers."),
    entry(C, "sum returned as the mean", sum_returned_as_mean,
          "returns the column sums in place of the mean (the variance itself is right)."),
    entry(C, "prints instead of returning", prints_instead_of_returning,
          "prints the three statistics and returns None."),
    entry(C, "statistics stacked into one (D, 3) table", one_table,
          "returns one (D, 3) array (a row per feature) instead of three arrays of shape (D,)."),
    entry(C, "memoised by id(x)", memoised_by_id,
          "caches results by id(x): a batch changed in place, or a new batch at a reused address, gets the old statistics."),
    entry(C, "N < 2 branch returns zeros (TODO)", small_batch_zeros,
          "for N < 2 returns three arrays of zeros (a TODO left) instead of raising ValueError."),
    entry(C, "reshape instead of a transpose", reshape_for_transpose,
          "turns x into one row per feature with x.reshape(D, N) instead of x.T, which regroups the values so a row is not a feature."),
    right(C, "statistics of x.T along axis 1", transposed_rows),
    right(C, "np.var with the mean passed in", var_given_mean),
]
