"""Held-out answers (fifteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch
import torch.nn.functional as F

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={x.shape[0]}")


def var_mean_unpacked_as_mean_var(x):
    _guard(x)
    n = x.shape[0]
    mu, var = torch.var_mean(torch.from_numpy(x), dim=0, correction=0)
    mu, var = mu.numpy(), var.numpy()
    return mu, var, var * n / (n - 1)


def zero_variance_set_to_one(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var[var == 0.0] = 1.0  # as a scaler does: a constant feature must not divide by zero later
    return mu, var, var * n / (n - 1)


def batch_is_the_longer_side(x):
    _guard(x)
    n = max(x.shape)  # a batch has more examples than features
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_floor_division(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n // (n - 1)


def batch_norm_running_buffers(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 examples for the unbiased variance, got N={n}")
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    running_mean = torch.zeros(t.shape[1], dtype=torch.float64)
    running_var = torch.ones(t.shape[1], dtype=torch.float64)
    # momentum=1: the running buffers become this batch's mean and unbiased variance
    F.batch_norm(t, running_mean, running_var, training=True, momentum=1.0)
    var_unbiased = running_var.numpy()
    var = var_unbiased * (n - 1) / n
    return running_mean.numpy().astype(x.dtype), var.astype(x.dtype), var_unbiased.astype(x.dtype)


ENTRIES = [
    entry(C, "torch.var_mean unpacked as (mean, var)", var_mean_unpacked_as_mean_var,
          "unpacks torch.var_mean's result as mu, var although it returns (var, mean), so mu holds the variances, var the means, and var_unbiased is the means times N / (N - 1)."),
    entry(C, "zero variances replaced by 1", zero_variance_set_to_one,
          "replaces the variance of a constant feature by 1 (a scaler's habit), so for a constant feature var is 1 and var_unbiased N / (N - 1) instead of 0."),
    entry(C, "N taken as the longer side of x", batch_is_the_longer_side,
          "takes N = max(x.shape) for the Bessel factor, so whenever there are more features than examples the factor is D / (D - 1) instead of N / (N - 1)."),
    entry(C, "Bessel factor with // for /", bessel_floor_division,
          "a typo: var * n // (n - 1) floor-divides, so var_unbiased is rounded down to a whole number instead of var * N / (N - 1)."),
    right(C, "running buffers of F.batch_norm with momentum 1", batch_norm_running_buffers),
]
