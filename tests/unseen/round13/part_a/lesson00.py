"""Held-out answers (thirteenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"batch_stats needs N >= 2, got N={x.shape[0]}")


def chained_outputs(x):
    _guard(x)
    n, d = x.shape
    mu = var = var_unbiased = np.zeros(d)  # three results, one line
    for j in range(d):
        col = x[:, j]
        mu[j] = col.mean()
        var[j] = ((col - col.mean()) ** 2).mean()
        var_unbiased[j] = var[j] * n / (n - 1)
    return mu, var, var_unbiased


def shape_for_n(x):
    _guard(x)
    n = x.shape  # the number of examples
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def loop_variable_shadows_n(x):
    _guard(x)
    n = x.shape[0]
    mu = np.empty(x.shape[1])
    var = np.empty(x.shape[1])
    for n in range(x.shape[1]):  # one feature at a time
        mu[n] = x[:, n].mean()
        var[n] = ((x[:, n] - mu[n]) ** 2).mean()
    return mu, var, var * n / (n - 1)


def column_loop_indexes_rows(x):
    _guard(x)
    n, d = x.shape
    mu, var = np.zeros(d), np.zeros(d)
    for j in range(d):
        col = x[j]  # feature j
        mu[j] = col.mean()
        var[j] = ((col - mu[j]) ** 2).mean()
    return mu, var, var * n / (n - 1)


def standardised_first(x):
    _guard(x)
    n = x.shape[0]
    x = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)  # as in standardize_columns
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bare_exception(x):
    n = x.shape[0]
    if n < 2:
        raise Exception(f"need at least two examples for the unbiased variance, got {n}")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def moving_average_mean(x):
    _guard(x)
    n = x.shape[0]
    mu = np.zeros(x.shape[1])
    for row in x:  # the running-mean update of the lesson, one example at a time
        mu = 0.9 * mu + 0.1 * row
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def chunk_sums_overwritten(x):
    _guard(x)
    n = x.shape[0]
    for start in range(0, n, 32):  # in chunks, to keep memory small
        total = x[start:start + 32].sum(axis=0)
    mu = total / n
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def zero_division_never_raised(x):
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    try:
        var_unbiased = var * n / (n - 1)
    except ZeroDivisionError:
        raise ValueError("N = 1: the unbiased variance divides by zero") from None
    return mu, var, var_unbiased


def unbiased_over_axis1(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=0)
    var_unbiased = x.var(axis=1, ddof=1)  # as in the cell that measures the bias
    return mu, var, var_unbiased


def norms_not_squared(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    ss = np.linalg.norm(x - mu, axis=0)  # sum of squared deviations
    return mu, ss / n, ss / (n - 1)


def accumulator_not_reset(x):
    _guard(x)
    n, d = x.shape
    acc = np.zeros(d)
    for row in x:
        acc += row
    mu = acc / n
    for row in x:
        acc += (row - mu) ** 2
    var = acc / n
    return mu, var, acc / (n - 1)


def guard_inside_1d_branch(x):
    if x.ndim == 1:
        x = x[:, None]
        if x.shape[0] < 2:
            raise ValueError("need at least 2 examples")
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


# ---- correct alternatives ------------------------------------------------------


def cumsum_last_row(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("at least two examples are needed (N >= 2)")
    mu = np.cumsum(x, axis=0, dtype=np.float64)[-1] / n
    ss = np.cumsum((x - mu) ** 2, axis=0, dtype=np.float64)[-1]
    return mu, ss / n, ss / (n - 1)


def vecdot_columns(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("batch_stats: N must be at least 2")
    cols = np.asarray(x, dtype=np.float64).T
    mu = np.vecdot(cols, np.full(n, 1.0 / n))
    xc = cols - mu[:, None]
    ss = np.vecdot(xc, xc)
    return mu, ss / n, ss / (n - 1)


ENTRIES = [
    entry(C, "three results from one chained assignment", chained_outputs,
          "mu = var = var_unbiased = np.zeros(d) makes the three names one array, so all three outputs are the same array holding the unbiased variance."),
    entry(C, "n = x.shape without [0]", shape_for_n,
          "takes n = x.shape (the tuple (N, D)) for the number of examples in the Bessel factor: var * n fails to broadcast unless D is 1 or 2, and n - 1 raises TypeError."),
    entry(C, "loop variable n shadows the batch size", loop_variable_shadows_n,
          "the feature loop reuses the name n, so the Bessel factor uses the last feature index D - 1 instead of N: var * (D - 1)/(D - 2)."),
    entry(C, "column loop indexes rows", column_loop_indexes_rows,
          "the loop over features takes x[j] (example j) instead of x[:, j] (feature j): it returns the statistics of the first D examples (IndexError when D > N)."),
    entry(C, "statistics of the standardised batch", standardised_first,
          "standardises x first (copied from standardize_columns) and returns the statistics of the standardised batch (mean 0, variance about 1) instead of x's."),
    entry(C, "a bare Exception for N < 2", bare_exception,
          "raises a plain Exception instead of ValueError when N < 2."),
    entry(C, "mean as a moving average over the examples", moving_average_mean,
          "computes the mean with the running-average update (0.9 * mu + 0.1 * row) over the examples instead of the plain average, so mu and both variances are wrong."),
    entry(C, "chunk sums overwritten", chunk_sums_overwritten,
          "sums the batch in chunks of 32 rows but assigns each chunk's sum instead of adding it, so for N > 32 the mean (and both variances centred on it) counts only the last chunk (right for N <= 32)."),
    entry(C, "ZeroDivisionError expected from a NumPy division", zero_division_never_raised,
          "guards N = 1 by catching ZeroDivisionError, but dividing a NumPy array by 0 does not raise, so N = 1 returns nan instead of raising ValueError."),
    entry(C, "unbiased variance over axis 1", unbiased_over_axis1,
          "copies var(axis=1, ddof=1) from the lesson's measuring cell, so the unbiased variance is per example, shape (N,), instead of per feature."),
    entry(C, "column norms not squared", norms_not_squared,
          "uses np.linalg.norm of the centred columns as the sum of squared deviations, without squaring it, so both variances are sqrt(SS)/N and sqrt(SS)/(N - 1)."),
    entry(C, "accumulator not reset between the two passes", accumulator_not_reset,
          "reuses the accumulator of the sum for the squared deviations without zeroing it, so var is the true variance plus mu (and var_unbiased likewise)."),
    entry(C, "N < 2 guard nested in the 1-D branch", guard_inside_1d_branch,
          "the N < 2 check is indented into the branch for 1-D input, so a (1, D) batch is not refused and gives a nan unbiased variance."),
    right(C, "last row of the cumulative sums", cumsum_last_row),
    right(C, "np.vecdot on the columns", vecdot_columns),
]
