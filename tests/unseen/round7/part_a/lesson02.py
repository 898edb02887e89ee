"""Held-out answers (seventh set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The solution's cache is (x_hat, std, inv_std, gamma); the backward answers below read
it as the learner's own forward (the solution's) writes it."""

import math

import numpy as np
import torch

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -------------------------------------------------------------------


def fw_running_average(x, gamma, beta, eps=1e-5, momentum=0.1):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    running_mean = np.zeros(x.shape[1])
    running_var = np.ones(x.shape[1])
    running_mean = (1 - momentum) * running_mean + momentum * x.mean(axis=0)
    running_var = (1 - momentum) * running_var + momentum * x.var(axis=0)
    std = np.sqrt(running_var + eps)
    x_hat = (x - running_mean) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_first_32_examples(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    ghost = x[:32]  # statistics from a sub-batch, as in ghost batch norm
    mu = ghost.mean(axis=0)
    std = np.sqrt(ghost.var(axis=0) + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_math_sqrt(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = math.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_diag_gamma(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = x_hat @ np.diag(gamma) + beta
    return out, (x_hat, std, inv_std, gamma)


# ---- staged backward ------------------------------------------------------------


def bw_dmu_mean_over_n(dout, cache):
    x_hat, std, inv_std, gamma = cache
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
    dmu = -dxc.mean(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_variance_branch_not_over_n(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_cache_three_items(dout, cache):
    x_hat, std, gamma = cache
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


def bw_dxc_aliases_dx_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dxc = dx_hat
    dxc *= inv_std  # the direct branch
    drho = (dx_hat * xc).sum(axis=0)
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_dmu_from_dx_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
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
    dmu = -dx_hat.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


# ---- closed-form backward ----------------------------------------------------------


def alt_floor_division(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta // n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_x_hat_term_without_gamma(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    g = dout * gamma  # the gradient reaching x_hat
    dx = inv_std * (g - g.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


def alt_torch_autograd(dout, cache):
    x_hat, std, inv_std, gamma = cache
    xc = x_hat * std  # batch norm only sees x through x - mean(x)
    eps = std**2 - (xc**2).mean(axis=0)
    xt = torch.tensor(xc, requires_grad=True)
    mu = xt.mean(dim=0)
    var = ((xt - mu) ** 2).mean(dim=0)
    y = torch.from_numpy(np.asarray(gamma)) * (xt - mu) / torch.sqrt(var + torch.from_numpy(eps))
    y.backward(torch.from_numpy(np.ascontiguousarray(dout)))
    return xt.grad.numpy(), (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# ---- spatial -------------------------------------------------------------------


@notebook
def sp_backward_channels_last(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)
    return dx.reshape(n, h, w, c), dgamma, dbeta


@notebook
def sp_forward_wrapped_cache(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)


@notebook
def sp_backward_cache_not_unwrapped(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def sp_forward_position_variances_averaged(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("need at least 2 examples")
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=0).mean(axis=(1, 2))[None, :, None, None]  # per position, then averaged
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    g, b = gamma[None, :, None, None], beta[None, :, None, None]
    c = x.shape[1]
    cache = (x_hat.transpose(0, 2, 3, 1).reshape(-1, c), std.reshape(c), 1 / std.reshape(c), gamma)
    return g * x_hat + b, cache


@notebook
def sp_backward_not_reshaped(dout, cache):
    n, c, h, w = dout.shape
    dx, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1), cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm ---------------------------------------------------------------------


@notebook
def ln_forward_cache_transposed(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)
    return gamma * x_hat_t.T + beta, (x_hat_t, gamma, bn_cache)


@notebook
def ln_backward_gamma_column(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_t, _, _ = batchnorm_backward_alt(dout.T * gamma[:, None], bn_cache)
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "normalises with a running average", fw_running_average,
          "normalises with running statistics started at 0 and 1 and updated once with momentum 0.1 (copied from the inference-mode bookkeeping) instead of the batch mean and variance."),
    entry(FW, "statistics of the first 32 examples", fw_first_32_examples,
          "takes the mean and variance of x[:32] only (a 'ghost batch'), so batches of more than 32 examples are normalised with the wrong statistics."),
    entry(FW, "math.sqrt on an array", fw_math_sqrt,
          "uses math.sqrt on the variance array, which raises TypeError for more than one feature (np.sqrt is needed)."),
    entry(BW, "dmu as a mean, divided by N again", bw_dmu_mean_over_n,
          "dmu = -mean(dxc) (already divided by N) and then dx = dxc + dmu / N divides by N a second time, so the mean branch is N times too small."),
    entry(BW, "variance branch not divided by N", bw_variance_branch_not_over_n,
          "the variance stage adds 2 * xc * dvar instead of 2 * xc * dvar / N (var is a mean over N), so the variance branch is N times too large."),
    entry(BW, "cache unpacked into three names", bw_cache_three_items,
          "unpacks the four-item cache (x_hat, std, inv_std, gamma) into three names, which raises ValueError."),
    entry(BW, "direct branch scaled in place in dx_hat", bw_dxc_aliases_dx_hat,
          "dxc = dx_hat; dxc *= inv_std scales dx_hat in place, so drho, taken afterwards from dx_hat, is inv_std times too large (the variance branch is wrong)."),
    entry(BW, "mean stage reads dx_hat", bw_dmu_from_dx_hat,
          "dmu sums dx_hat (the gradient at x_hat) instead of dxc (the gradient at the centred input), so the mean branch lacks the factor 1/s and the variance branch's part."),
    entry(ALT, "dbeta floor-divided by N", alt_floor_division,
          "uses dbeta // N (floor division) instead of dbeta / N, so the dbeta term is rounded down to a whole number."),
    entry(ALT, "x_hat term without gamma", alt_x_hat_term_without_gamma,
          "in the form with g = dout * gamma, the last term uses mean(dout * x_hat) instead of mean(g * x_hat), so it misses the factor gamma."),
    entry("spatial_batchnorm_backward", "dx left channels last", sp_backward_channels_last,
          "reshapes dx back to (N, H, W, C) but does not transpose it to (N, C, H, W).", test=SP),
    entry("spatial_batchnorm_backward", "cache wrapped by the forward, not unwrapped", sp_backward_cache_not_unwrapped,
          "the forward returns the cache as (cache, x.shape), but the backward passes that pair on to batchnorm_backward_alt without unwrapping it, which fails.",
          test=SP, given={"spatial_batchnorm_forward": sp_forward_wrapped_cache}),
    entry("spatial_batchnorm_forward", "per-position variances averaged", sp_forward_position_variances_averaged,
          "the channel variance is the average over positions of the variance over N at each position, which misses the spread of the position means, instead of the variance over N, H and W together.",
          test=SP),
    entry("spatial_batchnorm_backward", "dout transposed but not reshaped", sp_backward_not_reshaped,
          "moves dout's channels last but does not reshape it to (N*H*W, C) before the (N, D) backward, which fails to broadcast against the cache.",
          test=SP),
    entry("layernorm_forward", "cache holds the transposed x_hat", ln_forward_cache_transposed,
          "the output is right but the cache holds x_hat of shape (D, N) (not transposed back), so the backward's dgamma = sum(dout * x_hat) fails unless N == D.",
          test=LN),
    right(FW, "gamma as a diagonal matrix", fw_diag_gamma),
    right(ALT, "torch autograd on the recovered centred input", alt_torch_autograd),
    right("layernorm_backward", "gamma as a column on the transposed gradient", ln_backward_gamma_column, test=LN),
]
