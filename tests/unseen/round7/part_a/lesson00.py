"""Held-out answers (seventh set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch

from _format import entry, notebook, right

C = "batch_stats"


# ---- wrong ---------------------------------------------------------------------


def guard_returns_error(x):
    n = x.shape[0]
    if n < 2:
        return ValueError(f"need at least 2 examples, got {n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def deviations_from_first_example(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    shift = x[0]  # shifted data for stability
    var = ((x - shift) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


@notebook
def accumulates_batches(x, history=[]):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    seen = np.concatenate(history + [x], axis=0)  # all the data so far
    history.append(x)
    m = seen.shape[0]
    mu = seen.mean(axis=0)
    var = ((seen - mu) ** 2).mean(axis=0)
    return mu, var, var * m / (m - 1)


def ddof_as_divisor(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    return x.mean(axis=0), np.var(x, axis=0), np.var(x, axis=0, ddof=n - 1)


def variance_loop_off_by_one(x):
    n, d = x.shape
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    total = np.zeros(d)
    for i in range(n - 1):
        total += (x[i] - mu) ** 2
    var = total / n
    return mu, var, total / (n - 1)


def guard_on_smallest_dimension(x):
    if min(x.shape) < 2:
        raise ValueError("batch too small")
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def returns_torch_tensors(x):
    if x.shape[0] < 2:
        raise ValueError("need at least 2 examples")
    t = torch.as_tensor(x)
    var, mu = torch.var_mean(t, dim=0, correction=0)
    return mu, var, torch.var(t, dim=0, correction=1)


def float32_not_implemented(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    if x.dtype != np.float64:
        raise NotImplementedError("TODO: other dtypes")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def unbiased_ellipsis(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = ...  # TODO
    return mu, var, var_unbiased


def first_feature_dropped(x):
    n, d = x.shape
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = np.array([x[:, j].mean() for j in range(1, d)])
    var = np.array([((x[:, j] - x[:, j].mean()) ** 2).mean() for j in range(1, d)])
    return mu, var, var * n / (n - 1)


def variance_over_n_plus_1(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    ss = ((x - mu) ** 2).sum(axis=0)
    return mu, ss / (n + 1), ss / (n - 1)


def astype_without_copy(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    x = x.astype(np.float64, copy=False)
    mu = x.mean(axis=0)
    x -= mu
    var = (x**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def mean_of_half_means(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    half = n // 2
    mu = (x[:half].mean(axis=0) + x[half:].mean(axis=0)) / 2
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def unbiased_divided_by_n_minus_1(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var / (n - 1)


def sum_into_first_row(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x[0]
    for row in x[1:]:
        mu += row
    mu /= n
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives --------------------------------------------------------


def ones_vector_products(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    ones = np.ones(n)
    mu = ones @ x / n
    xc = x - mu
    ss = ones @ (xc * xc)
    return mu, ss / n, ss / (n - 1)


def chan_merge_of_halves(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    a, b = x[: n // 2].astype(np.float64), x[n // 2 :].astype(np.float64)
    na, nb = len(a), len(b)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    m2a, m2b = ((a - ma) ** 2).sum(axis=0), ((b - mb) ** 2).sum(axis=0)
    delta = mb - ma
    mu = ma + delta * nb / n
    m2 = m2a + m2b + delta**2 * na * nb / n
    return mu, m2 / n, m2 / (n - 1)


def refined_two_pass(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    x = np.asarray(x, dtype=np.float64)
    mu = x.sum(axis=0) / n
    mu = mu + (x - mu).sum(axis=0) / n  # one correction step of the mean
    xc = x - mu
    ss = (xc * xc).sum(axis=0) - xc.sum(axis=0) ** 2 / n
    return mu, ss / n, ss / (n - 1)


ENTRIES = [
    entry(C, "guard returns the ValueError", guard_returns_error,
          "for N < 2 the guard returns a ValueError object instead of raising it."),
    entry(C, "deviations from the first example", deviations_from_first_example,
          "the deviations are taken from the first example x[0] instead of the mean, so both variances are too large."),
    entry(C, "statistics of every batch seen so far", accumulates_batches,
          "keeps every batch in a mutable default list and computes the statistics of all the batches seen so far: the first call is right, later calls mix in earlier batches."),
    entry(C, "ddof taken as the divisor", ddof_as_divisor,
          "var_unbiased uses np.var(..., ddof=N - 1), which divides by N - ddof = 1, instead of ddof=1: the unbiased variance is the sum of squared deviations (right only for N = 2)."),
    entry(C, "variance loop stops one example early", variance_loop_off_by_one,
          "the loop summing the squared deviations runs over range(N - 1), so the last example is left out of both variances."),
    entry(C, "guard refuses a single feature", guard_on_smallest_dimension,
          "the guard raises when min(x.shape) < 2, so a valid batch with one feature (D = 1) is refused."),
    entry(C, "returns torch tensors", returns_torch_tensors,
          "computes with torch and returns torch tensors instead of NumPy arrays."),
    entry(C, "float32 branch left as NotImplementedError", float32_not_implemented,
          "raises NotImplementedError (a TODO) for any input that is not float64, so float32 batches are refused."),
    entry(C, "unbiased variance left as Ellipsis", unbiased_ellipsis,
          "var_unbiased is left as the placeholder ... (Ellipsis), so the third output is not an array."),
    entry(C, "first feature left out", first_feature_dropped,
          "the loop over features runs over range(1, D), so the first feature is left out and every output has shape (D - 1,)."),
    entry(C, "biased variance over N + 1", variance_over_n_plus_1,
          "the biased variance divides the sum of squared deviations by N + 1 instead of N (var_unbiased is right)."),
    entry(C, "astype without a copy, centred in place", astype_without_copy,
          "x.astype(np.float64, copy=False) returns the caller's array itself when it is already float64, and x -= mu then changes the caller's batch (float32 batches are copied and left alone)."),
    entry(C, "mean of the two halves' means", mean_of_half_means,
          "the mean is the average of the means of the two halves x[:N//2] and x[N//2:], which weighs the halves equally: wrong when N is odd (and both variances with it)."),
    entry(C, "unbiased variance divides var by N - 1", unbiased_divided_by_n_minus_1,
          "var_unbiased is var / (N - 1) instead of var * N / (N - 1)."),
    entry(C, "sum accumulated into the first row", sum_into_first_row,
          "mu = x[0] is a view of the caller's first row, so mu += row and mu /= n overwrite x[0] in place; the mean is right but the variances use the changed x and the input is changed."),
    right(C, "products with a ones vector", ones_vector_products),
    right(C, "Chan merge of two halves", chan_merge_of_halves),
    right(C, "two-pass with a corrected mean", refined_two_pass),
]
