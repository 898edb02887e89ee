"""Held-out answers, lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def inverted_bessel(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (n - 1) / n


def ddof_swapped(x):
    if x.shape[0] < 2:
        raise ValueError("need N >= 2 for the unbiased variance")
    return x.mean(axis=0), np.var(x, axis=0, ddof=1), np.var(x, axis=0, ddof=0)


def over_rows(x):
    if x.shape[0] < 2:
        raise ValueError("need N >= 2")
    mu = np.mean(x, axis=1)
    var = np.var(x, axis=1)
    return mu, var, np.var(x, axis=1, ddof=1)


def no_guard(x):
    # np.var with ddof=1 on one row only warns and gives nan
    return x.mean(axis=0), x.var(axis=0), x.var(axis=0, ddof=1)


def guard_off_by_one(x):
    n = len(x)
    if n < 1:
        raise ValueError("empty batch")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)
    return mu, var, var_unbiased


def global_mean(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least two examples")
    mu = x.mean()  # one number for the whole batch
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)
    return x.mean(axis=0), var, var_unbiased


def float32_slip(x):
    if x.shape[0] < 2:
        raise ValueError("need at least two examples")
    x = x.astype(np.float32)  # "to save memory"
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def outputs_swapped(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0)
    var = np.var(x, axis=0)
    return mu, var * n / (n - 1), var


def keepdims(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=0, keepdims=True)
    return mu, var, var * n / (n - 1)


def centres_in_place(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0)
    x -= mu  # centre the batch
    var = (x**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def assert_guard(x):
    n = x.shape[0]
    assert n >= 2, "need at least 2 examples for the unbiased variance"
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def std_not_var(x):
    if x.shape[0] < 2:
        raise ValueError("need N >= 2")
    return x.mean(axis=0), np.std(x, axis=0), np.std(x, axis=0, ddof=1)


def missing_square(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0)
    var = (x**2).mean(axis=0) - mu  # E[x^2] - mu
    return mu, var, var * n / (n - 1)


def torch_keyword(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(dim=0)
    var = x.var(dim=0, unbiased=False)
    return mu, var, x.var(dim=0)


def first_order_bessel(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * (1 + 1 / n)  # N/(N-1) is about 1 + 1/N


def variance_floor(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need N >= 2")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0) + 1e-8  # never exactly zero
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ----------------------------------------------------


def welford(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch_stats: the unbiased variance needs N >= 2, got {n}")
    mean = np.zeros(x.shape[1])
    m2 = np.zeros(x.shape[1])
    for k, row in enumerate(x, start=1):
        delta = row - mean
        mean += delta / k
        m2 += delta * (row - mean)
    return mean.astype(x.dtype), (m2 / n).astype(x.dtype), (m2 / (n - 1)).astype(x.dtype)


def einsum_centred(x):
    n, _ = x.shape
    if n <= 1:
        raise ValueError("one example has no unbiased variance (N - 1 = 0)")
    mu = np.einsum("nd->d", x) / n
    c = x - mu
    ss = np.einsum("nd,nd->d", c, c)
    return mu, ss / n, ss / (n - 1)


def numpy_ddof(x):
    if x.shape[0] < 2:
        raise ValueError("N must be at least 2")
    return np.mean(x, axis=0), np.var(x, axis=0), np.var(x, axis=0, ddof=1)


ENTRIES = [
    entry(C, "inverted Bessel factor", inverted_bessel,
          "var_unbiased multiplies by (N - 1)/N instead of N/(N - 1)."),
    entry(C, "ddof swapped", ddof_swapped,
          "var and var_unbiased are swapped: var uses ddof=1 and var_unbiased ddof=0."),
    entry(C, "statistics over rows", over_rows,
          "reduces over axis 1 (each example's features) instead of axis 0, so shapes are (N,) not (D,)."),
    entry(C, "no N=1 guard", no_guard,
          "does not raise ValueError when N = 1: the unbiased variance comes out NaN."),
    entry(C, "guard off by one", guard_off_by_one,
          "the guard only refuses N < 1, so N = 1 returns an infinite/NaN unbiased variance instead of raising."),
    entry(C, "global mean for the deviations", global_mean,
          "centres with the mean of the whole batch (all features together) instead of each feature's mean, so both variances are wrong."),
    entry(C, "float32 cast", float32_slip,
          "casts the input to float32, so float64 batches lose precision (about 1e-7 relative error)."),
    entry(C, "outputs in the wrong order", outputs_swapped,
          "returns (mu, var_unbiased, var): the two variances in the wrong order."),
    entry(C, "keepdims shapes", keepdims,
          "keeps the reduced axis (keepdims=True), returning shape (1, D) instead of (D,)."),
    entry(C, "centres x in place", centres_in_place,
          "subtracts the mean from x in place, changing the caller's array."),
    entry(C, "assert instead of ValueError", assert_guard,
          "guards N < 2 with assert, which raises AssertionError, not ValueError."),
    entry(C, "standard deviations", std_not_var,
          "returns standard deviations (np.std) instead of variances."),
    entry(C, "E[x^2] - mu", missing_square,
          "the one-pass variance subtracts mu instead of mu squared."),
    entry(C, "torch keyword on NumPy", torch_keyword,
          "uses PyTorch's dim= keyword on a NumPy array, so it raises TypeError."),
    entry(C, "1 + 1/N for N/(N-1)", first_order_bessel,
          "multiplies by 1 + 1/N, an approximation of N/(N - 1), so var_unbiased is slightly too small (by a factor 1 - 1/N^2)."),
    entry(C, "1e-8 added to the variance", variance_floor,
          "adds 1e-8 to the variance \"to avoid zeros\", so both variances are off by a tiny constant."),
    right(C, "Welford loop", welford),
    right(C, "einsum on the centred batch", einsum_centred),
    right(C, "np.var with ddof", numpy_ddof),
]
