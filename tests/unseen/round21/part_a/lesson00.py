"""Held-out answers (twenty-first set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np
import torch

from _format import entry, right

C = "batch_stats"


def float64_view_without_copy(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    x = np.array(x, dtype=np.float64, copy=False)  # NumPy 1 habit: no copy of a big batch
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def shifted_by_the_first_example(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    # shift by the first example first: the classic trick against cancellation
    shifted = x - x[0]
    m = shifted.mean(axis=0)
    var = (shifted.astype(np.float64) ** 2).mean(axis=0) - m**2
    return x[0] + m, var, var * n / (n - 1)


def torch_leaf_for_autograd(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)  # ready for autograd later
    mu = t.mean(dim=0)
    var = ((t - mu) ** 2).mean(dim=0)
    var_unbiased = var * n / (n - 1)
    return mu.detach().numpy(), var.detach().numpy(), var_unbiased.numpy()


def float64_accumulators(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.sum(axis=0, dtype=np.float64) / n
    squares = np.square(x - mu, dtype=np.float64).sum(axis=0, dtype=np.float64)
    return mu, squares / n, squares / (n - 1)


ENTRIES = [
    entry(C, "np.array(x, dtype=float64, copy=False)", float64_view_without_copy,
          "converts the batch with np.array(x, dtype=np.float64, copy=False), which NumPy 2 refuses with ValueError whenever a copy is needed, so every float32 (or integer) batch raises; float64 batches are right."),
    entry(C, "shifted by the first example in the input's dtype", shifted_by_the_first_example,
          "subtracts the first example (x - x[0]) in the input's own dtype, so for an unsigned-integer batch (uint8 pixels) the negative differences wrap around to large numbers and the mean and both variances are wrong; float and signed-integer batches are right."),
    entry(C, "torch leaf with requires_grad, one output not detached", torch_leaf_for_autograd,
          "computes with a torch tensor made with requires_grad=True and calls .numpy() on var_unbiased without .detach(), so every call raises RuntimeError (mu and var are detached, the third output is not)."),
    right(C, "sums accumulated in float64 (dtype=np.float64)", float64_accumulators),
]
