"""Held-out answers (fourth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _need_two(x):
    if x.shape[0] < 2:
        raise ValueError("batch_stats needs N >= 2")


def squeezed(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=0, keepdims=True)
    # "drop the kept axis again"
    return mu.squeeze(), var.squeeze(), (var * n / (n - 1)).squeeze()


def mean_over_features_count(x):
    _need_two(x)
    n, d = x.shape
    mu = x.sum(axis=0) / d  # the number of values summed... per row
    var = ((x - x.mean(axis=0)) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def square_of_mean_deviation(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.mean(x - mu, axis=0) ** 2  # squared after averaging
    return mu, var, var * n / (n - 1)


def returns_none_for_one(x):
    n = x.shape[0]
    if n < 2:
        print("warning: need at least two examples")
        return None
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def guard_on_ndim(x):
    if x.ndim < 2:  # "N < 2"
        raise ValueError("x must be (N, D)")
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu, var, var * n / (n - 1)


def precedence_minus_one(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = var * n / n - 1
    return mu, var, var_unbiased


def floor_division_mean(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.sum(axis=0) // n
    var = ((x - mu) ** 2).sum(axis=0) / n
    return mu, var, var * n / (n - 1)


def mean_as_column(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu[:, None]  # one mean per feature, as a column
    var = (xc**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def scalar_mean_returned(x):
    _need_two(x)
    return np.mean(x), np.var(x, axis=0), np.var(x, axis=0, ddof=1)


def dict_result(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return {"mu": mu, "var": var, "var_unbiased": var * n / (n - 1)}


def bessel_from_size(x):
    _need_two(x)
    m = x.size
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * m / (m - 1)


def unbiased_todo(x):
    _need_two(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = np.zeros_like(var)  # TODO
    return mu, var, var_unbiased


def guard_not_implemented(x):
    n = x.shape[0]
    if n < 2:
        raise NotImplementedError("TODO: what to do with one example?")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def float32_reciprocal(x):
    _need_two(x)
    n = x.shape[0]
    inv_n = np.float32(1.0 / n)  # "save memory"
    mu = x.sum(axis=0) * inv_n
    var = ((x - mu) ** 2).sum(axis=0) * inv_n
    return mu.astype(x.dtype), var.astype(x.dtype), (var * n / (n - 1)).astype(x.dtype)


def mean_of_first_feature(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu[0]) ** 2).mean(axis=0)  # mu[0]: "the mean"
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ----------------------------------------------------


def shifted_one_pass(x):
    """One pass on data shifted by the first example (stable), in float64."""
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be >= 2")
    x64 = x.astype(np.float64)
    k = x64[0]
    s = (x64 - k).sum(axis=0)
    ss = ((x64 - k) ** 2).sum(axis=0)
    mu = k + s / n
    m2 = ss - s * s / n
    return mu.astype(x.dtype), (m2 / n).astype(x.dtype), (m2 / (n - 1)).astype(x.dtype)


def centring_matrix(x):
    """var = diag(X^T H X) / N with H = I - 11^T / N."""
    n = x.shape[0]
    if n < 2:
        raise ValueError("N must be >= 2")
    h = np.eye(n, dtype=x.dtype) - np.full((n, n), 1.0 / n, dtype=x.dtype)
    hx = h @ x
    ss = np.einsum("ij,ij->j", hx, hx)
    return x.mean(axis=0), ss / n, ss / (n - 1)


def torch_std_mean(x):
    import torch

    if len(x) < 2:
        raise ValueError("N must be >= 2")
    t = torch.from_numpy(x)
    std_b, mu = torch.std_mean(t, dim=0, correction=0)
    std_u = torch.std(t, dim=0, correction=1)
    return mu.numpy(), (std_b**2).numpy(), (std_u**2).numpy()


ENTRIES = [
    entry(C, "kept axis squeezed away", squeezed,
          "computes with keepdims and then calls .squeeze(), which also removes the feature axis when D = 1, so a (N, 1) batch gives 0-d arrays instead of shape (1,)."),
    entry(C, "mean divided by the number of features", mean_over_features_count,
          "the mean divides the column sums by D (x.shape[1]) instead of N (the variances are right)."),
    entry(C, "square of the mean deviation", square_of_mean_deviation,
          "the variance squares the mean of the deviations, np.mean(x - mu) ** 2 (which is 0), instead of averaging the squared deviations."),
    entry(C, "returns None for N = 1", returns_none_for_one,
          "for N < 2 it prints a warning and returns None instead of raising ValueError."),
    entry(C, "guard tests the number of dimensions", guard_on_ndim,
          "the guard tests x.ndim < 2 instead of N < 2, so a (1, D) batch is not refused and gives an infinite/NaN unbiased variance."),
    entry(C, "precedence in the Bessel factor", precedence_minus_one,
          "var * n / n - 1 parses as (var * n / n) - 1, so the unbiased variance is var - 1 instead of var * N/(N - 1)."),
    entry(C, "floor division in the mean", floor_division_mean,
          "the mean uses floor division (x.sum(0) // n), so it is rounded down to a whole number and both variances are centred on it."),
    entry(C, "mean broadcast as a column", mean_as_column,
          "subtracts mu[:, None] (shape (D, 1)), which broadcasts along the examples: a broadcasting error unless N == D (and wrong values when N == D), right only when D = 1."),
    entry(C, "mean of the whole array returned", scalar_mean_returned,
          "returns np.mean(x) (one number over all features) as mu; the two variances are per feature and right."),
    entry(C, "returns a dict", dict_result,
          "returns a dict {'mu', 'var', 'var_unbiased'} instead of the tuple (mu, var, var_unbiased), so unpacking gives the keys."),
    entry(C, "Bessel factor from all values", bessel_from_size,
          "the unbiased factor is x.size/(x.size - 1) (all N*D values) instead of N/(N - 1)."),
    entry(C, "unbiased variance left as a TODO", unbiased_todo,
          "var_unbiased is left as np.zeros_like(var) (a TODO), so the third output is all zeros."),
    entry(C, "NotImplementedError left in the guard", guard_not_implemented,
          "the N < 2 branch raises the placeholder NotImplementedError instead of ValueError."),
    entry(C, "1/N rounded to float32", float32_reciprocal,
          "multiplies by np.float32(1/N) instead of dividing by N, so 1/N (and the mean and variances) carry float32 rounding (about 1e-8 relative) in float64 batches."),
    entry(C, "deviations from the first feature's mean", mean_of_first_feature,
          "the deviations are taken from mu[0] (the first feature's mean) for every feature instead of each feature's own mean, so both variances are wrong except for feature 0."),
    right(C, "one pass on shifted data", shifted_one_pass),
    right(C, "centring matrix", centring_matrix),
    right(C, "torch.std_mean squared", torch_std_mean),
]
