"""Lesson 00: answers to ``batch_stats`` (held out: see ``tests/unseen``)."""

from __future__ import annotations

import numpy as np

from . import entry, right


def _need_two(x):
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")


def integer_bessel(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n // (n - 1))


def inverted_bessel(x):
    _need_two(x)
    n = x.shape[0]
    var = x.var(axis=0)
    return x.mean(axis=0), var, var * (n - 1) / n


def bessel_of_features(x):
    _need_two(x)
    d = x.shape[1]
    var = x.var(axis=0)
    return x.mean(axis=0), var, var * d / (d - 1)


def guard_on_features(x):
    if x.shape[1] < 2:
        raise ValueError("need at least two examples")
    n = x.shape[0]
    var = x.var(axis=0)
    return x.mean(axis=0), var, var * n / (n - 1)


def assert_guard(x):
    n = x.shape[0]
    assert n >= 2, "need at least two examples"
    var = x.var(axis=0)
    return x.mean(axis=0), var, var * n / (n - 1)


def float32_work(x):
    _need_two(x)
    x = x.astype(np.float32)
    return x.mean(axis=0), x.var(axis=0), x.var(axis=0, ddof=1)


def pooled_variance(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.mean((x - mu) ** 2)  # no axis: one number for every feature
    return mu, var, var * n / (n - 1)


def global_centre(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - x.mean()) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def centres_in_place(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    x -= mu
    var = (x**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def wide_means_transposed(x):
    if x.shape[0] < x.shape[1]:  # "examples are the longer axis"
        x = x.T
    _need_two(x)
    return x.mean(axis=0), x.var(axis=0), x.var(axis=0, ddof=1)


def squared_mean_of_squares(x):
    _need_two(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = (x**2).mean(axis=0) - mu  # forgot to square the mean
    return mu, var, var * n / (n - 1)


def one_pass_float64(x):
    """E[x^2] - E[x]^2, accumulated in float64 (Flax's formulation)."""
    _need_two(x)
    x64 = np.asarray(x, dtype=np.float64)
    n = x64.shape[0]
    mu = x64.sum(axis=0) / n
    var = np.maximum((x64 * x64).sum(axis=0) / n - mu * mu, 0.0)
    return mu, var, var * (n / (n - 1))


def with_torch(x):
    import torch

    _need_two(x)
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    var_u, mu = torch.var_mean(t, dim=0, correction=1)
    return mu.numpy(), t.var(dim=0, correction=0).numpy(), var_u.numpy()


def einsum_stats(x):
    _need_two(x)
    n = x.shape[0]
    mu = np.einsum("ij->j", x) / n
    xc = x - mu
    ss = np.einsum("ij,ij->j", xc, xc)
    return mu, ss / n, ss / (n - 1)


C = "batch_stats"
ENTRIES = [
    entry(
        C,
        "integer division in the Bessel factor",
        integer_bessel,
        "n // (n - 1) is integer division, so the unbiased variance equals the "
        "biased one for every N > 2",
    ),
    entry(
        C,
        "Bessel factor inverted",
        inverted_bessel,
        "the unbiased variance multiplies by (N - 1) / N instead of N / (N - 1)",
    ),
    entry(
        C,
        "Bessel factor from the features",
        bessel_of_features,
        "the unbiased factor uses the number of features D instead of the batch size N",
    ),
    entry(
        C,
        "guard tests the features",
        guard_on_features,
        "the N < 2 guard tests x.shape[1] (features) instead of x.shape[0]",
    ),
    entry(
        C,
        "assert instead of ValueError",
        assert_guard,
        "a batch of one raises AssertionError, not ValueError",
    ),
    entry(
        C,
        "computes in float32",
        float32_work,
        "the input is cast to float32, so the statistics lose precision",
    ),
    entry(
        C,
        "variance pooled over every feature",
        pooled_variance,
        "the variance is taken over all entries (no axis), one number for all features",
    ),
    entry(
        C,
        "centred on the overall mean",
        global_centre,
        "the variance is taken around the mean of the whole array instead of "
        "each feature's mean",
    ),
    entry(
        C,
        "centres its input in place",
        centres_in_place,
        "x -= mu changes the caller's array in place",
    ),
    entry(
        C,
        "transposes wide batches",
        wide_means_transposed,
        "a batch with fewer examples than features is transposed, so it is "
        "reduced over the wrong axis",
    ),
    entry(
        C,
        "mean not squared",
        squared_mean_of_squares,
        "the variance is E[x^2] - mu instead of E[x^2] - mu^2",
    ),
    right(C, "one-pass variance in float64", one_pass_float64),
    right(C, "torch.var_mean", with_torch),
    right(C, "einsum sums", einsum_stats),
]
