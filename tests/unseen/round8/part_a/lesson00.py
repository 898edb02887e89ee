"""Held-out answers (eighth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

from collections import namedtuple

import numpy as np

from _format import entry, notebook, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("the unbiased variance needs at least two examples")


# ---- wrong ------------------------------------------------------------------


def midrange_centre(x):
    _guard(x)
    n = x.shape[0]
    mu = (x.max(axis=0) + x.min(axis=0)) / 2  # the centre of each column
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def xor_for_power(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ^ 2).mean(axis=0)  # "squared"
    return mu, var, var * n / (n - 1)


def guard_by_isinf(x):
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_unbiased = var * n / (n - 1)
    if np.isinf(var_unbiased).any():  # N = 1 divides by zero
        raise ValueError("need at least two examples for the unbiased variance")
    return mu, var, var_unbiased


def transposed_when_wide(x):
    if x.shape[0] < x.shape[1]:  # examples should outnumber features: fix the layout
        x = x.T
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def cov_diagonal(x):
    _guard(x)
    n = x.shape[0]
    var_unbiased = np.diag(np.cov(x, rowvar=False))  # the diagonal of the covariance matrix
    return x.mean(axis=0), var_unbiased * (n - 1) / n, var_unbiased


def unbiased_sum_of_squares(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    ss = ((x - mu) ** 2).sum(axis=0)
    var = ss / n
    var_unbiased = ss * n / (n - 1)
    return mu, var, var_unbiased


def mean_over_axis_1(x):
    _guard(x)
    return x.mean(axis=1), x.var(axis=0), x.var(axis=0, ddof=1)


def times_two_for_square(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) * 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def np_matrix(x):
    _guard(x)
    m = np.matrix(x)
    n = m.shape[0]
    mu = m.mean(axis=0)
    var = np.square(m - mu).mean(axis=0)
    return mu, var, var * n / (n - 1)


def guard_shape_tuple(x):
    if x.shape < 2:
        raise ValueError("need at least two examples")
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def errstate_raise(x):
    with np.errstate(all="raise"):  # N = 1: 0 / 0 raises
        n = x.shape[0]
        mu = x.mean(axis=0)
        var = ((x - mu) ** 2).mean(axis=0)
        var_unbiased = var * n / (n - 1)
    return mu, var, var_unbiased


@notebook
def first_mean_kept(x, _state={}):
    if x.shape[0] < 2:
        raise ValueError("the unbiased variance needs at least two examples")
    n = x.shape[0]
    if "mu" not in _state:  # compute the mean once
        _state["mu"] = x.mean(axis=0)
    mu = _state["mu"]
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def columns_d_by_1(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)[:, None]
    var = ((x - mu.T) ** 2).mean(axis=0)[:, None]
    return mu, var, var * n / (n - 1)


def n_is_16(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * 16 / 15  # the check's batch has 16 examples


def centred_twice(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = ((xc - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives -----------------------------------------------------

Stats = namedtuple("Stats", "mu var var_unbiased")


def as_namedtuple(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs N >= 2, got N={n}")
    mu = np.mean(x, axis=0)
    d = x - mu
    var = np.mean(d * d, axis=0)
    return Stats(mu, var, var * (n / (n - 1)))


def biased_from_unbiased(x):
    n = len(x)
    if n < 2:
        raise ValueError("one example has no unbiased variance")
    var_unbiased = np.var(x, axis=0, ddof=1)
    return np.mean(x, axis=0), var_unbiased * (n - 1) / n, var_unbiased


def longdouble(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("at least 2 examples are needed")
    xl = x.astype(np.longdouble)
    mu = xl.sum(axis=0) / n
    ss = ((xl - mu) ** 2).sum(axis=0)
    return (mu.astype(np.float64), (ss / n).astype(np.float64), (ss / (n - 1)).astype(np.float64))


ENTRIES = [
    entry(C, "midrange centre", midrange_centre,
          "the mean is (max + min) / 2 of each column, not the average, so mu and both variances are wrong."),
    entry(C, "^ for the square", xor_for_power,
          "writes (x - mu) ^ 2 (bitwise XOR) for the square; NumPy raises a TypeError on float arrays."),
    entry(C, "N = 1 detected by isinf", guard_by_isinf,
          "no ValueError for N = 1: the guard looks for inf in var * N/(N - 1), but with N = 1 it is 0/0 = nan, so nan is returned."),
    entry(C, "transposed when N < D", transposed_when_wide,
          "transposes x whenever it has fewer rows than columns, so for N < D it returns statistics per example, of shape (N,)."),
    entry(C, "np.cov with one feature", cov_diagonal,
          "np.cov returns a 0-d array for a single feature (D = 1) and np.diag of it raises ValueError; right for D >= 2."),
    entry(C, "unbiased from the undivided sum", unbiased_sum_of_squares,
          "var_unbiased is the sum of squared deviations times N/(N - 1), missing the division by N (it is N times too large)."),
    entry(C, "mean over axis 1", mean_over_axis_1,
          "the mean is taken over axis 1 (per example, shape (N,)) while both variances are per feature."),
    entry(C, "* 2 instead of ** 2", times_two_for_square,
          "the deviations are doubled ((x - mu) * 2) instead of squared, so both variances are 0."),
    entry(C, "np.matrix", np_matrix,
          "computes on np.matrix, whose reductions stay 2-D: the three results have shape (1, D) instead of (D,)."),
    entry(C, "guard compares the shape tuple", guard_shape_tuple,
          "the guard compares x.shape (a tuple) with 2, which raises TypeError on every call."),
    entry(C, "N = 1 left to np.errstate", errstate_raise,
          "relies on np.errstate(all='raise') for N = 1, which raises FloatingPointError, not the ValueError asked for."),
    entry(C, "mean kept from the first call", first_mean_kept,
          "caches the mean of the first batch in a mutable default and reuses it on later calls: only the first call is right."),
    entry(C, "statistics as (D, 1) columns", columns_d_by_1,
          "returns each statistic as a (D, 1) column instead of shape (D,)."),
    entry(C, "N hard-coded to 16", n_is_16,
          "the Bessel factor is 16/15 (the check's batch size), not N/(N - 1) of the batch given."),
    entry(C, "mean subtracted twice", centred_twice,
          "the variance is taken of (x - mu) - mu: the mean is subtracted twice, so both variances are too large by mu**2."),
    right(C, "namedtuple of three", as_namedtuple),
    right(C, "biased from np.var(ddof=1)", biased_from_unbiased),
    right(C, "long double accumulation", longdouble),
]
