"""Held-out answers (third set), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")


def median_centre(x):
    _guard(x)
    n = x.shape[0]
    mu = np.median(x, axis=0)  # "robust" centre
    var = ((x - mu) ** 2).mean(axis=0)
    return x.mean(axis=0), var, var * n / (n - 1)


def bessel_n_plus_1(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n + 1) / n


def abs_deviation_squared(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    mad = np.abs(x - mu).mean(axis=0)
    var = mad**2
    return mu, var, var * n / (n - 1)


def unbiased_as_std(x):
    _guard(x)
    mu = x.mean(axis=0)
    return mu, x.var(axis=0), x.std(axis=0, ddof=1)


def guard_refuses_two(x):
    n = x.shape[0]
    if n <= 2:
        raise ValueError("need more than two examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def var_and_mu_swapped(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return var, mu, var * n / (n - 1)


def bessel_twice(x):
    _guard(x)
    n = x.shape[0]
    var = np.var(x, axis=0, ddof=1)  # "the variance"
    return x.mean(axis=0), var, var * n / (n - 1)


def keepdims_mean_only(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def not_centred(x):
    _guard(x)
    n = x.shape[0]
    var = (x**2).mean(axis=0)
    return x.mean(axis=0), var, var * n / (n - 1)


def guard_on_size(x):
    if x.size < 2:
        raise ValueError("need at least two values")
    n = x.shape[0]
    mu = x.mean(axis=0)
    ss = ((x - mu) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu, ss / n, ss / (n - 1)


def mean_over_n_minus_1(x):
    _guard(x)
    n = x.shape[0]
    mu = x.sum(axis=0) / (n - 1)
    var = ((x - x.mean(axis=0)) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def first_row_skipped(x):
    _guard(x)
    body = x[1:]  # "row 0 is a header"
    n = len(x)
    mu = body.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def ddof_two(x):
    _guard(x)
    return x.mean(axis=0), x.var(axis=0), x.var(axis=0, ddof=2)


def squared_bessel(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n / (n - 1)) ** 2


def float16_accumulator(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0, dtype=np.float16).astype(x.dtype)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ----------------------------------------------------


def cov_diagonal(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be at least 2")
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    var_unbiased = np.diag(cov).astype(x.dtype)
    return x.mean(axis=0), (var_unbiased * (n - 1) / n).astype(x.dtype), var_unbiased


def squared_std_ddof(x):
    if len(x) < 2:
        raise ValueError("N must be at least 2")
    return np.mean(x, 0), np.std(x, 0) ** 2, np.std(x, 0, ddof=1) ** 2


def sorted_sums(x):
    """Sums of the sorted values (pairwise summation order changes)."""
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be at least 2")
    xs = np.sort(x, axis=0)
    mu = xs.sum(axis=0) / n
    ss = ((xs - mu) ** 2).sum(axis=0)
    return mu, ss / n, ss / (n - 1)


ENTRIES = [
    entry(C, "centred on the median", median_centre,
          "the deviations are taken from the per-feature median instead of the mean, so both variances are too large."),
    entry(C, "Bessel factor (N + 1)/N", bessel_n_plus_1,
          "var_unbiased multiplies by (N + 1)/N instead of N/(N - 1)."),
    entry(C, "mean absolute deviation squared", abs_deviation_squared,
          "the variance is the square of the mean absolute deviation instead of the mean of the squared deviations."),
    entry(C, "unbiased standard deviation returned", unbiased_as_std,
          "the third output is the unbiased standard deviation (std with ddof=1) instead of the unbiased variance."),
    entry(C, "guard refuses N = 2", guard_refuses_two,
          "the guard raises ValueError for N <= 2 instead of N < 2, so a valid batch of two examples is refused."),
    entry(C, "var and mu swapped", var_and_mu_swapped,
          "returns (var, mu, var_unbiased): the mean and the biased variance are in each other's place."),
    entry(C, "Bessel correction applied twice", bessel_twice,
          "var is computed with ddof=1 (already unbiased) and var_unbiased multiplies it by N/(N - 1) again, so both are too large."),
    entry(C, "keepdims on the mean only", keepdims_mean_only,
          "the mean keeps the reduced axis (shape (1, D)) while the variances have shape (D,)."),
    entry(C, "variance not centred", not_centred,
          "the variance is the mean of x squared, without subtracting the mean first."),
    entry(C, "guard on x.size", guard_on_size,
          "the guard tests the number of elements (x.size) instead of the number of examples, so a (1, D) batch is not refused and gives an infinite/NaN unbiased variance."),
    entry(C, "mean divided by N - 1", mean_over_n_minus_1,
          "the mean divides the sum by N - 1 instead of N (the Bessel correction applied to the mean)."),
    entry(C, "first example skipped for the mean", first_row_skipped,
          "the mean is taken over x[1:] (the first example dropped), so the mean and both variances are off."),
    entry(C, "ddof=2", ddof_two,
          "the unbiased variance uses ddof=2 (divides by N - 2) instead of ddof=1."),
    entry(C, "Bessel factor squared", squared_bessel,
          "var_unbiased multiplies by (N/(N - 1))**2 instead of N/(N - 1)."),
    entry(C, "float16 mean", float16_accumulator,
          "the mean is accumulated in float16, so it (and the variances centred on it) loses precision."),
    right(C, "np.cov diagonal", cov_diagonal),
    right(C, "squared np.std", squared_std_ddof),
    right(C, "sums of the sorted values", sorted_sums),
]
