"""Held-out answers (twentieth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch

from _format import entry, right

C = "batch_stats"


def bfloat16_like_mixed_precision(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    t = torch.as_tensor(x).to(torch.bfloat16)  # half the memory, as in mixed-precision training
    mu = t.mean(dim=0)
    var = ((t - mu) ** 2).mean(dim=0)
    var_unbiased = var * n / (n - 1)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return tuple(v.float().numpy().astype(dtype) for v in (mu, var, var_unbiased))


def bessel_factor_before_the_guard(x):
    n = x.shape[0]
    bessel = n / (n - 1)  # Bessel's correction, computed with the batch size
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * bessel


def torch_reductions(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    t = torch.as_tensor(x)
    mu = t.mean(dim=0)
    var = t.var(dim=0, correction=0)
    var_unbiased = t.var(dim=0, correction=1)
    return mu.numpy(), var.numpy(), var_unbiased.numpy()


def ddof_as_boolean_flags(x):
    if len(x) < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={len(x)}")
    # torch's old unbiased=False / unbiased=True, written as NumPy's ddof (False == 0, True == 1)
    return np.mean(x, axis=0), np.var(x, axis=0, ddof=False), np.var(x, axis=0, ddof=True)


ENTRIES = [
    entry(C, "statistics in bfloat16", bfloat16_like_mixed_precision,
          "computes the statistics in torch bfloat16 (the mixed-precision habit), which keeps about 3 significant digits, so mu, var and var_unbiased are all off by about 1e-3 relative (then cast back to the input's dtype)."),
    entry(C, "Bessel factor computed before the guard", bessel_factor_before_the_guard,
          "computes the Bessel factor n / (n - 1) with Python integers before the N < 2 guard, so a batch of one example raises ZeroDivisionError instead of ValueError (every batch of 2 or more is right)."),
    entry(C, "torch reductions on torch.as_tensor(x)", torch_reductions,
          "computes the statistics with torch reductions on torch.as_tensor(x), and torch's mean refuses integer tensors, so an integer batch raises instead of giving float statistics (float batches are right)."),
    right(C, "np.var with ddof=False / ddof=True", ddof_as_boolean_flags),
]
