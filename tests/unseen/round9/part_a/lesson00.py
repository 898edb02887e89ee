"""Held-out answers (ninth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import functools

import numpy as np

from _format import entry, notebook, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")


def covariance_matrix(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = xc.T @ xc / n  # "the variance" of a batch of vectors
    return mu, var, var * n / (n - 1)


def guard_more_examples_than_features(x):
    n, d = x.shape
    if n < d:
        raise ValueError(f"need at least as many examples as features, got N={n}, D={d}")
    if n < 2:
        raise ValueError("need at least two examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def integer_result_arrays(x):
    _guard(x)
    n, d = x.shape
    mu = np.array([0] * d)
    var = np.array([0] * d)
    for j in range(d):
        col = x[:, j]
        mu[j] = col.mean()
        var[j] = ((col - col.mean()) ** 2).mean()
    return mu, var, var * n / (n - 1)


def mean_given_ddof(x):
    _guard(x)
    mu = np.mean(x, axis=0, ddof=0)
    var = np.var(x, axis=0, ddof=0)
    return mu, var, np.var(x, axis=0, ddof=1)


def zero_division_as_guard(x):
    n = x.shape[0]
    factor = n / (n - 1)  # N = 1 raises ZeroDivisionError by itself
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * factor


def two_values(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    # TODO: unbiased variance
    return mu, var


def cumsum_row_early(x):
    _guard(x)
    n = x.shape[0]
    total = np.cumsum(x, axis=0)[n - 2]
    mu = total / n
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_small_samples_only(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    if n < 30:  # the correction only matters for small samples
        var_unbiased = var * n / (n - 1)
    else:
        var_unbiased = var
    return mu, var, var_unbiased


def winsorised(x):
    _guard(x)
    n = x.shape[0]
    m0, s0 = x.mean(axis=0), x.std(axis=0)
    xw = np.clip(x, m0 - 1.5 * s0, m0 + 1.5 * s0)  # tame outliers first
    mu = xw.mean(axis=0)
    var = ((xw - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def shuffles_callers_batch(x):
    _guard(x)
    np.random.default_rng(0).shuffle(x)  # order of examples should not matter
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


@notebook
def n_remembered(x):  # re-defined per run, as a fresh kernel would
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")
    if not hasattr(n_remembered, "n"):
        n_remembered.n = x.shape[0]
    n = n_remembered.n
    mu = x.sum(axis=0) / n
    var = ((x - mu) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def bessel_added(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var + 1 / (n - 1)


def results_squeezed(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu.squeeze(), var.squeeze(), (var * n / (n - 1)).squeeze()


def variance_of_the_mean(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var / n


def view_instead_of_astype(x):
    _guard(x)
    x = x.view(np.float64)  # work in double precision
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives -----------------------------------------------------------


def average_and_added_bessel(x):
    n = len(x)
    if n < 2:
        raise ValueError("need two or more examples")
    x = np.asarray(x, dtype=np.float64)
    mu = np.average(x, axis=0)
    var = np.average(np.square(x - mu), axis=0)
    return mu, var, var + var / (n - 1)


def streaming_row_sums(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need two or more examples")
    x = x.astype(np.float64)
    mu = functools.reduce(np.add, x) / n
    ss = functools.reduce(np.add, ((row - mu) ** 2 for row in x))
    return mu, ss / n, ss / (n - 1)


def var_over_one_minus_inverse_n(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need two or more examples")
    mu = np.add.reduce(x, axis=0, dtype=np.float64) / n
    dev = x - mu
    var = np.einsum("ij,ij->j", dev, dev) / n
    return mu, var, var / (1.0 - 1.0 / n)


ENTRIES = [
    entry(C, "covariance matrix instead of its diagonal", covariance_matrix,
          "the variance is the whole covariance matrix xc.T @ xc / N, shape (D, D), instead of its diagonal, shape (D,)."),
    entry(C, "guard requires N >= D", guard_more_examples_than_features,
          "the guard also raises ValueError when there are fewer examples than features, so valid batches such as (2, 3) are refused."),
    entry(C, "per-column loop into integer arrays", integer_result_arrays,
          "the result arrays are built with np.array([0] * d), an integer array, so every mean and variance is truncated to an integer."),
    entry(C, "np.mean given ddof", mean_given_ddof,
          "passes ddof=0 to np.mean, which has no such argument: TypeError for every batch."),
    entry(C, "ZeroDivisionError as the guard", zero_division_as_guard,
          "has no N < 2 guard and relies on n / (n - 1) failing: N = 1 raises ZeroDivisionError, not ValueError."),
    entry(C, "unbiased variance not returned", two_values,
          "returns only (mu, var): the unbiased variance is left as a TODO and missing from the result."),
    entry(C, "cumulative sum read one row early", cumsum_row_early,
          "takes the column sums from np.cumsum(x, axis=0)[n - 2] instead of [n - 1], leaving out the last example, then divides by N."),
    entry(C, "Bessel correction only below N = 30", bessel_small_samples_only,
          "applies N/(N - 1) only when N < 30: for larger batches the 'unbiased' variance is the biased one."),
    entry(C, "winsorised at 1.5 standard deviations", winsorised,
          "clips the values to mean +- 1.5 std before computing the statistics, so the mean and both variances are of the clipped data."),
    entry(C, "shuffles the caller's batch", shuffles_callers_batch,
          "shuffles the rows of x in place (rng.shuffle(x)): the statistics are right but the caller's array is reordered."),
    entry(C, "N remembered from the first call", n_remembered,
          "stores N as a function attribute on the first call and divides by that N on every later call, whatever the batch size."),
    entry(C, "Bessel correction added, not multiplied", bessel_added,
          "var_unbiased is var + 1/(N - 1) instead of var * N/(N - 1)."),
    entry(C, "results squeezed", results_squeezed,
          "squeezes the three results: with one feature (D = 1) they are 0-d arrays, shape (), instead of shape (1,)."),
    entry(C, "variance of the mean as var_unbiased", variance_of_the_mean,
          "the third output is var / N (the variance of the sample mean) instead of the unbiased variance var * N/(N - 1)."),
    entry(C, "view instead of astype", view_instead_of_astype,
          "x.view(np.float64) reinterprets the bytes instead of converting: float64 input is unchanged, float32 input becomes garbage of half the width."),
    right(C, "np.average, Bessel as var + var/(N - 1)", average_and_added_bessel),
    right(C, "row-by-row reduce in float64", streaming_row_sums),
    right(C, "np.add.reduce, var / (1 - 1/N)", var_over_one_minus_inverse_n),
]
