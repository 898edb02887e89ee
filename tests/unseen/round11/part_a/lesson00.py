"""Held-out answers (eleventh set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 examples, got N={x.shape[0]}")


def mean_after_centring(x):
    _guard(x)
    n = x.shape[0]
    x = x - x.mean(axis=0)  # centre once, reuse the name
    mu = x.mean(axis=0)
    var = (x**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def cov_rows_as_variables(x):
    _guard(x)
    n = x.shape[0]
    var_unbiased = np.diag(np.cov(x))  # np.cov: unbiased, one variable per ... row
    var = var_unbiased * (n - 1) / n
    return x.mean(axis=0), var, var_unbiased


def covariance_column_sums(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc.T @ xc).sum(axis=0) / n  # "sum of squares per column" via a matrix product
    return mu, var, var * n / (n - 1)


def one_example_falls_back(x):
    n = x.shape[0]
    if n == 0:
        raise ValueError("empty batch")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    factor = n / (n - 1) if n > 1 else 1.0  # avoid dividing by zero
    return mu, var, var * factor


def mean_stored_float32(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu.astype(np.float32), var, var * n / (n - 1)  # float32 is enough for a mean


def ddof_positional(x):
    _guard(x)
    mu = np.mean(x, 0)
    var = np.var(x, 0)
    var_unbiased = np.var(x, 0, 1)  # axis 0, ddof 1
    return mu, var, var_unbiased


def np_var_read_as_unbiased(x):
    _guard(x)
    n = x.shape[0]
    var_unbiased = np.var(x, axis=0)  # like torch.var: N - 1
    var = var_unbiased * (n - 1) / n
    return x.mean(axis=0), var, var_unbiased


def sum_of_squares_as_var(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    ss = ((x - mu) ** 2).sum(axis=0)
    var = ss
    var_unbiased = ss / (n - 1)
    return mu, var, var_unbiased


def one_pass_unbiased_without_n(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    sq = (x**2).sum(axis=0)
    var = sq / n - mu**2
    var_unbiased = (sq - mu**2) / (n - 1)
    return mu, var, var_unbiased


def variances_paired(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, (var, var * n / (n - 1))


def bessel_left_todo(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var  # TODO: Bessel's correction
    return mu, var, var_unbiased


# ---- correct alternatives -------------------------------------------------------


def apply_along_axis(x):
    _guard(x)
    mu = np.apply_along_axis(np.mean, 0, x)
    var = np.apply_along_axis(lambda col: np.mean((col - col.mean()) ** 2), 0, x)
    var_unbiased = np.apply_along_axis(lambda col: np.var(col, ddof=1), 0, x)
    return mu, var, var_unbiased


def nan_functions(x):
    if len(x) < 2:
        raise ValueError("the unbiased variance needs two examples")
    return np.nanmean(x, axis=0), np.nanvar(x, axis=0), np.nanvar(x, axis=0, ddof=1)


ENTRIES = [
    entry(C, "mean taken after centring", mean_after_centring,
          "reassigns x to the centred batch before taking the mean, so mu is the mean of the centred data (about 0) instead of the batch mean (the variances are right)."),
    entry(C, "np.cov without rowvar=False", cov_rows_as_variables,
          "np.cov(x) treats each row (example) as a variable, so its diagonal holds one variance per example, shape (N,), instead of per feature (rowvar=False is missing)."),
    entry(C, "sums of the covariance columns", covariance_column_sums,
          "sums the columns of xc.T @ xc (the whole covariance matrix, cross products included) instead of taking its diagonal, so both variances are wrong."),
    entry(C, "N = 1 falls back to the biased variance", one_example_falls_back,
          "for N = 1 it uses a Bessel factor of 1 and returns zeros instead of raising ValueError."),
    entry(C, "mean cast to float32", mean_stored_float32,
          "returns the mean cast to float32, so for float64 batches mu carries float32 rounding (about 1e-7 relative); the variances are right."),
    entry(C, "ddof passed positionally", ddof_positional,
          "np.var(x, 0, 1) passes 1 as the third positional argument, which is dtype, not ddof: NumPy raises TypeError."),
    entry(C, "np.var taken as unbiased", np_var_read_as_unbiased,
          "takes np.var's default (ddof=0, biased) for the unbiased variance, as torch.var would be, and scales it by (N - 1)/N for the biased one: var is too small and var_unbiased is the biased variance."),
    entry(C, "sum of squares as the biased variance", sum_of_squares_as_var,
          "the biased variance is the sum of squared deviations, not divided by N (N times too large); var_unbiased is right."),
    entry(C, "one-pass unbiased variance without N on mu squared", one_pass_unbiased_without_n,
          "the one-pass unbiased variance is (sum x^2 - mu^2)/(N - 1) instead of (sum x^2 - N mu^2)/(N - 1); mu and var are right."),
    entry(C, "variances returned as a pair", variances_paired,
          "returns (mu, (var, var_unbiased)): two values, the variances nested in a pair, instead of three arrays."),
    entry(C, "Bessel correction left as a TODO", bessel_left_todo,
          "var_unbiased = var is left unfinished (TODO), so the unbiased variance equals the biased one."),
    right(C, "np.apply_along_axis per column", apply_along_axis),
    right(C, "nan-aware NumPy reductions", nan_functions),
]
