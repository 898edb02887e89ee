"""Held-out answers (seventeenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={x.shape[0]}")


def from_numpy_centred_in_place(x):
    _guard(x)
    n = x.shape[0]
    t = torch.from_numpy(x)  # no copy: cheap
    if not t.is_floating_point():
        t = t.double()
    mu = t.mean(dim=0)
    t.sub_(mu)  # centre in place, no second (N, D) array
    var = (t * t).mean(dim=0)
    return mu.numpy(), var.numpy(), (var * n / (n - 1)).numpy()


def torch_float_for_the_unbiased_variance(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    # torch's var divides by N - 1 by default: exactly the unbiased one
    var_unbiased = torch.tensor(x, dtype=torch.float).var(dim=0).numpy()
    return mu, var, var_unbiased


def integer_batch_to_float32(x):
    _guard(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)  # integers to torch's default float type
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def centred_variance_minus_mean_squared(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0) - mu**2  # Var = E[(x - mu)^2] - mu^2
    return mu, var, var * n / (n - 1)


def average_with_returned_counts(x):
    if len(x) < 2:
        raise ValueError(f"need two examples or more for the unbiased variance, got {len(x)}")
    mu, counts = np.average(x, axis=0, returned=True)  # counts: the number of examples, per feature
    var = np.average((x - mu) ** 2, axis=0)
    return mu, var, var * counts / (counts - 1)


ENTRIES = [
    entry(C, "torch.from_numpy, centred with sub_", from_numpy_centred_in_place,
          "centres the tensor from torch.from_numpy in place (t.sub_(mu)), but from_numpy shares the array's memory, so the caller's batch x is left centred (the statistics themselves are right)."),
    entry(C, "torch.float for the unbiased variance", torch_float_for_the_unbiased_variance,
          "computes var_unbiased with torch.tensor(x, dtype=torch.float), but torch.float is float32, so on a float64 batch var_unbiased alone is a float32 result with float32 round-off (about 1e-7 relative)."),
    entry(C, "integer batch converted to float32", integer_batch_to_float32,
          "converts an integer batch to float32 (torch's default) before the statistics, so on integer input every result is float32 with float32 round-off instead of exact float64 values (float batches are right)."),
    entry(C, "centred variance minus the mean squared", centred_variance_minus_mean_squared,
          "subtracts mu**2 from the already centred mean of squares (mixing the two variance formulas), so var and var_unbiased are too small by mu**2 (times N/(N-1) for the unbiased one), negative for features with a large mean."),
    right(C, "np.average with returned=True for the counts", average_with_returned_counts),
]
