"""Held-out answers (twenty-fourth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

from collections import namedtuple

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"

BNCache = namedtuple("BNCache", "x_hat std inv_std gamma")


# ---- forward -----------------------------------------------------------------


def _guard(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    return n


def fw_cache_keeps_the_input(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    cache = (x, std, inv_std, gamma)  # keep the input for the backward pass, as CS231n's cache does
    return out, cache


def fw_cache_as_a_dict(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    cache = {"x_hat": x_hat, "std": std, "inv_std": inv_std, "gamma": gamma}  # named, so the order cannot slip
    return out, cache


def fw_cache_as_a_namedtuple(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.mean(xc * xc, axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, BNCache(x_hat=x_hat, std=std, inv_std=inv_std, gamma=gamma)


# ---- staged backward -----------------------------------------------------------


def bw_inv_std_as_a_column(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std[:, None]  # broadcast the scale explicitly
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_std_read_as_cache_2(dout, cache):
    x_hat, gamma = cache[0], cache[-1]
    std = cache[2]  # the second entry of (x_hat, std, inv_std, gamma)
    inv_std = 1.0 / std
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_feature_loop_over_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n, d = dout.shape
    dx = np.zeros_like(dout)
    dgamma, dbeta = np.zeros(d), np.zeros(d)
    for j in range(n):  # one feature at a time
        g, xh = dout[:, j], x_hat[:, j]
        dbeta[j] = g.sum()
        dgamma[j] = (g * xh).sum()
        dx[:, j] = gamma[j] * inv_std[j] * (g - dbeta[j] / n - xh * dgamma[j] / n)
    return dx, dgamma, dbeta


def alt_x_hat_term_mean_without_axis(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * np.mean(dout * x_hat))
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_back_with_0321(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 2, 1), cache  # channels back to axis 1


@notebook
def sp_backward_rollaxis_to_3(dout, cache):
    n, c, h, w = dout.shape
    columns = np.rollaxis(dout, 1, 3).reshape(-1, c)  # roll the channels to the end (axis 3)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return np.rollaxis(dx.reshape(n, h, w, c), 3, 1), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


def ln_forward_rms(x, gamma, beta, eps=1e-5):
    ms = (x * x).mean(axis=1, keepdims=True)  # each row's mean square, as T5's and LLaMA's norm
    std = np.sqrt(ms + eps)
    x_hat = x / std
    bn_cache = (x_hat.T, std.ravel(), 1.0 / std.ravel(), np.ones(x.shape[0]))
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


def ln_backward_row_mean_without_keepdims(dout, cache):
    x_hat, gamma, bn_cache = cache
    inv_std = bn_cache[2][:, None]  # one per row
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


ENTRIES = [
    entry(FW, "cache keeps the input x (CS231n's habit)", fw_cache_keeps_the_input,
          "puts the input x in the cache's first slot, as CS231n's batchnorm cache keeps x, where the course's backward reads x_hat, so the output is right but every backward pass built on this cache computes dgamma and dx from x instead of x_hat (wrong)."),
    entry(FW, "cache returned as a dict", fw_cache_as_a_dict,
          "returns the cache as a dict {'x_hat': ..., 'std': ..., 'inv_std': ..., 'gamma': ...} while the course's backward passes unpack it as the tuple (x_hat, std, inv_std, gamma), so unpacking it gives the four key strings and every backward pass on this cache fails; the output is right."),
    right(FW, "cache as a namedtuple (x_hat, std, inv_std, gamma)", fw_cache_as_a_namedtuple),
    entry(BW, "inv_std as a column in the direct branch", bw_inv_std_as_a_column,
          "broadcasts inv_std as a column (inv_std[:, None]) in the direct branch dxc = dx_hat * inv_std[:, None], so the per-feature scale is applied along the rows: it raises a broadcast ValueError when N != D (and D > 1), and for N = D scales example i by feature i's 1/std, so dx is wrong; dgamma and dbeta are right.",
          test=BW),
    entry(BW, "std read as cache[2] (counting from 1)", bw_std_read_as_cache_2,
          "reads std as cache[2], counting from 1, which is inv_std (std is cache[1]), and derives inv_std = 1 / cache[2] from it, so std and 1/std are swapped in every stage: dx is wrong (right only where var + eps = 1); dgamma and dbeta are right.",
          test=BW),
    entry(ALT, "feature loop bounded by the batch size", alt_feature_loop_over_n,
          "loops over the features with range(n), the batch size, instead of range(d), so when N < D the last D - N features keep zero dx, dgamma and dbeta, and when N > D it raises IndexError; right only when N = D.",
          test=ALT),
    entry(ALT, "x_hat term's mean taken without axis", alt_x_hat_term_mean_without_axis,
          "takes the x_hat term's mean as np.mean(dout * x_hat) without axis=0, one number over the whole batch and every feature, instead of each feature's mean over the batch, so dx is wrong (right only for D = 1); dgamma and dbeta are right.",
          test=ALT),
    entry("spatial_batchnorm_forward", "transposed back with (0, 3, 2, 1)", sp_forward_back_with_0321,
          "moves the channels back with transpose(0, 3, 2, 1), which also swaps H and W, instead of (0, 3, 1, 2), so out has shape (N, C, W, H) with every map transposed (wrong even when H = W); the cache, and the backward pass on it, are right.",
          test=SP),
    entry("spatial_batchnorm_backward", "np.rollaxis(dout, 1, 3): the end index is exclusive", sp_backward_rollaxis_to_3,
          "moves dout's channels with np.rollaxis(dout, 1, 3), which puts axis 1 before axis 3, giving (N, H, C, W), not channels last, so the rows of the reshaped dout do not match the cached x_hat's channels and positions: dx, dgamma and dbeta are wrong (the way back, rollaxis(..., 3, 1), is right).",
          test=SP),
    entry("layernorm_forward", "each row divided by its root mean square (RMSNorm)", ln_forward_rms,
          "divides each row by its root mean square, sqrt(mean(x**2) + eps), as T5's and LLaMA's RMSNorm do, without subtracting the row's mean first, so out (and the cached x_hat) is wrong for every row whose mean is not 0.",
          test=LN),
    entry("layernorm_backward", "row mean of g * x_hat without keepdims", ln_backward_row_mean_without_keepdims,
          "writes the row-wise closed form but takes the x_hat term's row mean (g * x_hat).mean(axis=1) without keepdims=True, so the (N,) vector broadcasts along the features: it raises ValueError when N != D, and for N = D pairs row i's mean with feature column i, so dx is wrong; dgamma and dbeta are right.",
          test=LN),
]
