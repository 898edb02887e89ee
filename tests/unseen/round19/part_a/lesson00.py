"""Held-out answers (nineteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={x.shape[0]}")


def deviations_in_an_empty_like_buffer(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = np.empty_like(x)  # one buffer for the deviations, filled in place
    xc[:] = x - mu
    var = (xc**2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def unbiased_kept_as_a_float32_buffer(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    var_unbiased = (var * n / (n - 1)).astype(np.float32)  # stored like PyTorch's running_var buffer
    return mu, var, var_unbiased


def masked_array_reductions(x):
    _guard(x)
    m = np.ma.masked_invalid(x)  # habit from data with missing values: NaNs would be left out
    mu = np.ma.getdata(m.mean(axis=0))
    var = np.ma.getdata(m.var(axis=0))
    var_unbiased = np.ma.getdata(m.var(axis=0, ddof=1))
    return mu, var, var_unbiased


ENTRIES = [
    entry(C, "deviations stored in np.empty_like(x)", deviations_in_an_empty_like_buffer,
          "stores the deviations x - mu in a buffer made with np.empty_like(x), which has x's dtype, so for an integer batch the deviations are truncated to integers and both variances are wrong (mu is right; float batches are right)."),
    entry(C, "var_unbiased cast to float32 like a running buffer", unbiased_kept_as_a_float32_buffer,
          "casts var_unbiased to float32 (the dtype of PyTorch's running_var buffer), so for a float64 batch it carries float32 rounding, about 1e-8 relative; mu and var are right."),
    right(C, "numpy.ma reductions", masked_array_reductions),
]
