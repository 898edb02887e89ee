"""Held-out answers (tenth set, part a), lesson 00: batch_stats(x) -> (mu, var, var_unbiased)."""

import numpy as np

from _format import entry, right

C = "batch_stats"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 examples, got N={x.shape[0]}")


def var_precedence(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = (x - mu) * (x - mu).mean(axis=0)  # meant ((x - mu) * (x - mu)).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_rounded(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    factor = round(n / (n - 1), 2)  # "1.02 is close enough"
    return mu, var, var * factor


def two_example_shortcut(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    if n == 2:
        # for two values the variance is the squared difference over two
        var = (x[1] - x[0]) ** 2 / 2
    else:
        var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def refuses_constant_feature(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    if np.any(var == 0):
        raise ValueError("a feature is constant: its variance is 0")
    return mu, var, var * n / (n - 1)


_BUFFERS = {}


def reused_buffers(x):
    _guard(x)
    n, d = x.shape
    if d not in _BUFFERS:  # allocate once per width, "for speed"
        _BUFFERS[d] = (np.empty(d), np.empty(d), np.empty(d))
    mu, var, var_u = _BUFFERS[d]
    np.mean(x, axis=0, out=mu)
    np.mean((x - mu) ** 2, axis=0, out=var)
    np.multiply(var, n / (n - 1), out=var_u)
    return mu, var, var_u


def whole_batch_variance(x):
    _guard(x)
    n, d = x.shape
    mu = x.mean(axis=0)
    var = np.full(d, x.var())  # one variance for the batch, repeated per feature
    return mu, var, var * n / (n - 1)


def n_minus_one_examples(x):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    var_unbiased = x[:-1].var(axis=0)  # "N - 1": leave one example out
    return mu, var, var_unbiased


def mean_item(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0).item()  # a plain Python number
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def corrcoef_diagonal(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.diag(np.atleast_2d(np.corrcoef(x, rowvar=False))) * 1.0
    return mu, var, var * n / (n - 1)


def variance_floor(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.maximum(((x - mu) ** 2).mean(axis=0), 1e-8)  # never exactly 0
    return mu, var, var * n / (n - 1)


def return_in_loop(x):
    _guard(x)
    n, d = x.shape
    mu, var, var_u = np.zeros(d), np.zeros(d), np.zeros(d)
    for j in range(d):
        col = x[:, j]
        mu[j] = col.mean()
        var[j] = ((col - mu[j]) ** 2).mean()
        var_u[j] = var[j] * n / (n - 1)
        return mu, var, var_u


def mean_square_over_n_again(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = np.mean((x - mu) ** 2, axis=0) / n
    return mu, var, var * n / (n - 1)


def float64_only(x):
    if x.dtype != np.float64:
        raise TypeError(f"batch_stats expects float64, got {x.dtype}")
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def shift_not_restored(x):
    _guard(x)
    n = x.shape[0]
    shift = x.min(axis=0)  # shifted data for a stable variance
    z = x - shift
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    return mu, var, var * n / (n - 1)


def bessel_on_mean_square(x):
    _guard(x)
    n = x.shape[0]
    mu = x.mean(axis=0)
    mean_sq = (x**2).mean(axis=0)
    var = mean_sq - mu**2
    var_unbiased = mean_sq * n / (n - 1) - mu**2
    return mu, var, var_unbiased


# ---- correct alternatives ---------------------------------------------------


def pairwise_all_pairs(x):
    _guard(x)
    n = x.shape[0]
    diff = x[:, None, :] - x[None, :, :]  # (N, N, D)
    var = (diff**2).sum(axis=(0, 1)) / (2 * n * n)
    return x.mean(axis=0), var, var * n / (n - 1)


def builtin_sum_rows(x):
    _guard(x)
    n = x.shape[0]
    x = x.astype(np.float64)
    mu = sum(x) / n  # Python's sum adds the rows
    var = sum((row - mu) ** 2 for row in x) / n
    return mu, var, var * n / (n - 1)


def np_var_correction(x):
    _guard(x)
    return x.mean(axis=0), np.var(x, axis=0, correction=0), np.var(x, axis=0, correction=1)


ENTRIES = [
    entry(C, "precedence in the squared deviations", var_precedence,
          "writes (x - mu) * (x - mu).mean(axis=0) instead of ((x - mu) * (x - mu)).mean(axis=0), so var is an (N, D) array of products, not the mean of the squares."),
    entry(C, "Bessel factor rounded to two decimals", bessel_rounded,
          "rounds the factor N/(N - 1) to two decimals, so var_unbiased is off for most N (e.g. 1.02 instead of 64/63)."),
    entry(C, "shortcut for two examples", two_example_shortcut,
          "for N = 2 the biased variance is taken as (x1 - x0)**2 / 2 (the unbiased one) instead of (x1 - x0)**2 / 4, so var and var_unbiased are twice too large when N = 2 only."),
    entry(C, "constant feature refused", refuses_constant_feature,
          "raises ValueError when a feature is constant (variance 0), though a constant feature has valid statistics (var 0); only N < 2 must be refused."),
    entry(C, "output buffers reused between calls", reused_buffers,
          "writes the results into arrays allocated once per width and returns them, so a second call with the same D overwrites the arrays returned by the first call."),
    entry(C, "one variance for the whole batch", whole_batch_variance,
          "takes the variance of all the numbers of the batch (x.var() without an axis) and repeats it for every feature instead of each feature's own variance."),
    entry(C, "N - 1 examples for the unbiased variance", n_minus_one_examples,
          "computes var_unbiased as the biased variance of the first N - 1 examples (x[:-1]) instead of dividing the sum of squares of all N by N - 1."),
    entry(C, "mean converted with .item()", mean_item,
          "converts the mean to a Python number with .item(), which raises for more than one feature (and returns a scalar, not shape (1,), for one)."),
    entry(C, "correlation diagonal", corrcoef_diagonal,
          "takes the diagonal of np.corrcoef (the correlation matrix, all ones) instead of the variances."),
    entry(C, "variance floored at 1e-8", variance_floor,
          "clips the variance below at 1e-8, so a constant feature gets var 1e-8 instead of 0."),
    entry(C, "return inside the column loop", return_in_loop,
          "the return statement is indented into the per-column loop, so only the first feature is computed and the others stay 0."),
    entry(C, "mean of the squares divided by N again", mean_square_over_n_again,
          "divides np.mean of the squared deviations by N again, so var (and var_unbiased) are N times too small."),
    entry(C, "refuses non-float64 input", float64_only,
          "raises TypeError for any input that is not float64, so a valid float32 batch is refused."),
    entry(C, "shifted mean not shifted back", shift_not_restored,
          "subtracts each feature's minimum for stability and returns the mean of the shifted data without adding the minimum back (the variances are right)."),
    entry(C, "Bessel factor on the mean of squares only", bessel_on_mean_square,
          "var_unbiased applies N/(N - 1) to E[x^2] only and then subtracts mu^2, instead of scaling the whole variance E[x^2] - mu^2."),
    right(C, "half the mean squared pairwise difference", pairwise_all_pairs),
    right(C, "built-in sum over the rows", builtin_sum_rows),
    right(C, "np.var with correction", np_var_correction),
]
