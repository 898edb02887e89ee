"""Held-out answers (twenty-third set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def empty_batch_tested_with_not(x):
    if not x:  # an empty batch has nothing to average
        raise ValueError("batch_stats needs a non-empty batch")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def padding_rows_dropped(x):
    x = x[np.any(x != 0, axis=1)]  # all-zero rows are padding of a masked batch, not examples
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def einsum_keeps_the_example_index(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.einsum("ij,ij->i", xc, xc) / n  # sum of squares over the batch
    return mu, var, var * n / (n - 1)


def every_axis_but_the_last(x):
    # Keras's BatchNormalization(axis=-1): reduce over every axis except the features
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    if n < 2:
        raise ValueError(f"the unbiased variance needs at least 2 examples, got N={n}")
    mu = x.mean(axis=axes)
    var = np.square(x - mu).mean(axis=axes)
    return mu, var, var / (1.0 - 1.0 / n)


ENTRIES = [
    entry(C, "empty batch tested with `if not x`", empty_batch_tested_with_not,
          "tests the batch for emptiness with `if not x`, as for a Python list, and NumPy refuses the truth value of an array of more than one element (ValueError: ambiguous), so every real batch raises before any statistic is computed."),
    entry(C, "all-zero rows dropped as padding", padding_rows_dropped,
          "drops every all-zero row as if it were the padding of a masked batch, so a batch in which an example is all zeros (ReLU outputs, say) gets the statistics of the other examples only (N one smaller: mu, var and var_unbiased wrong); batches without such a row are right."),
    entry(C, "np.einsum('ij,ij->i') for the sum of squares", einsum_keeps_the_example_index,
          "writes the sum of squared deviations as np.einsum('ij,ij->i', xc, xc), which keeps the example index i instead of the feature index j, so var and var_unbiased are each example's sum of squared deviations over the features divided by N (shape (N,), not (D,)); mu is right."),
    right(C, "every axis but the last (Keras's axis=-1), Bessel as var / (1 - 1/N)", every_axis_but_the_last),
]
