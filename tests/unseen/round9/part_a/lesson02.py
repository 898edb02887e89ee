"""Held-out answers (ninth set, part a), lesson 02: batchnorm_forward, the staged
and closed-form backward passes, spatial batch norm, layer norm.

The solution's cache is (x_hat, std, inv_std, gamma); the backward answers below read
it as the learner's own forward (the solution's) writes it."""

import numpy as np
import torch
import torch.nn.functional as F

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SPF, SPB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LNF, LNB = "layernorm_forward", "layernorm_backward"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples in training mode")


# ---- forward -----------------------------------------------------------------


def fw_gamma_matmul(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    out = x_hat @ gamma + beta
    return out, (x_hat, std, 1.0 / std, gamma)


def fw_flat_return(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, x_hat, std, 1.0 / std, gamma


def fw_variance_over_d(x, gamma, beta, eps=1e-5):
    _guard(x)
    n, d = x.shape
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0) / d
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


# ---- staged backward ------------------------------------------------------------


def bw_gamma_twice(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std * gamma
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_stops_at_x_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = dx_hat * inv_std
    # TODO: the variance and mean branches
    return dx, dgamma, dbeta


def bw_mean_branch_over_features(dout, cache):
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
    dx = dxc - dxc.mean(axis=1, keepdims=True)
    return dx, dgamma, dbeta


# ---- closed-form backward -----------------------------------------------------------


def alt_eps_added_again(dout, cache, eps=1e-5):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    inv = 1.0 / np.sqrt(std**2 + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_dict_cache(dout, cache):
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_extra_over_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / n * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial -----------------------------------------------------------------------


@notebook
def sp_same_transpose_back(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 2, 3, 1), cache


@notebook
def sp_per_position(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    rows = x.reshape(n, c * h * w)  # one column per (channel, position)
    out, cache = batchnorm_forward(rows, np.repeat(gamma, h * w), np.repeat(beta, h * w), eps)  # noqa: F821
    return out.reshape(n, c, h, w), cache


@notebook
def sp_backward_columns_returned(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx, dgamma, dbeta


# ---- layer norm ----------------------------------------------------------------------


@notebook
def ln_forward_not_transposed(x, gamma, beta, eps=1e-5):
    x_hat, bn_cache = batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]), eps)  # noqa: F821
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_forward_not_transposed_backward(dout, cache):
    x_hat, gamma, bn_cache = cache
    dx, _, _ = batchnorm_backward_alt(dout * gamma, bn_cache)  # noqa: F821
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


@notebook
def ln_backward_params_over_features(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=1)
    dgamma = (dout * x_hat).sum(axis=1)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


@notebook
def ln_backward_gamma_after(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt(dout.T, bn_cache)  # noqa: F821
    return dx_t.T * gamma, dgamma, dbeta


# ---- correct alternatives ------------------------------------------------------------


def fw_torch_batch_norm(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("need two or more examples")
    t = torch.from_numpy(np.ascontiguousarray(x))
    out = F.batch_norm(t, None, None, torch.from_numpy(gamma), torch.from_numpy(beta),
                       training=True, eps=eps).numpy()
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) / std
    return out, (x_hat, std, 1.0 / std, gamma)


def alt_diag_gram(dout, cache):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    dbeta = np.ones(n) @ dout
    dgamma = np.diag(x_hat.T @ dout).copy()
    dx = (n * dout - dbeta - x_hat * dgamma) * (gamma / (n * std))
    return dx, dgamma, dbeta


@notebook
def sp_swapaxes_forward(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    cols = x.swapaxes(1, 3).reshape(-1, c)  # (N, W, H, C) -> (N*W*H, C)
    out, cache = batchnorm_forward(cols, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, w, h, c).swapaxes(1, 3), cache


@notebook
def sp_swapaxes_backward(dout, cache):
    n, c, h, w = dout.shape
    cols = dout.swapaxes(1, 3).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward(cols, cache)  # noqa: F821
    return dx.reshape(n, w, h, c).swapaxes(1, 3), dgamma, dbeta


ENTRIES = [
    entry(FW, "gamma applied with @", fw_gamma_matmul,
          "multiplies x_hat @ gamma (a matrix product, shape (N,)) instead of x_hat * gamma: broadcasting error unless N == D, wrong values when N == D."),
    entry(FW, "cache flattened into the return", fw_flat_return,
          "returns (out, x_hat, std, inv_std, gamma), five values, instead of (out, cache)."),
    entry(FW, "variance divided by D", fw_variance_over_d,
          "divides the sum of squared deviations over the batch by D (the number of features) instead of N; right only when N == D."),
    entry(BW, "gamma applied twice", bw_gamma_twice,
          "multiplies the direct branch by gamma a second time (dxc = dx_hat * inv_std * gamma, with dx_hat = dout * gamma already).",
          test=BW),
    entry(BW, "stops after the x_hat stage", bw_stops_at_x_hat,
          "unfinished: dx is dx_hat * inv_std, the direct branch only; the variance and mean branches are a TODO.", test=BW),
    entry(BW, "mean branch over the features", bw_mean_branch_over_features,
          "the mean stage subtracts dxc's mean over the features (axis 1) instead of over the batch (axis 0).", test=BW),
    entry(ALT, "eps added again", alt_eps_added_again,
          "recomputes 1/sqrt(std**2 + eps) from the cached std, which already includes eps: eps is counted twice.", test=ALT),
    entry(ALT, "cache read as a dict", alt_dict_cache,
          "indexes the cache by name (cache['x_hat']), but the forward pass returns a tuple: TypeError.", test=ALT),
    entry(ALT, "whole closed form divided by N again", alt_extra_over_n,
          "multiplies gamma * inv_std / N by (dout - dbeta/N - x_hat*dgamma/N): mixes the two forms, so dx is N times too small.",
          test=ALT),
    entry(SPF, "the same transpose to go back", sp_same_transpose_back,
          "undoes the (0, 2, 3, 1) transpose with (0, 2, 3, 1) again instead of (0, 3, 1, 2): the output has shape (N, W, C, H).",
          test=SP),
    entry(SPF, "statistics per channel and position", sp_per_position,
          "reshapes to (N, C*H*W) and normalises each (channel, position) over N only, with gamma and beta repeated, instead of per channel over N, H and W.",
          test=SP),
    entry(SPB, "dx returned as columns", sp_backward_columns_returned,
          "returns dx in the (N*H*W, C) column layout: the reshape and transpose back to (N, C, H, W) are missing.", test=SP),
    entry(LNF, "batch norm without the transpose", ln_forward_not_transposed,
          "calls batchnorm_forward on x instead of x.T: each feature is normalised over the batch (batch norm), not each example over its features.",
          test=LN, given={LNB: ln_forward_not_transposed_backward}),
    entry(LNB, "dgamma and dbeta summed over the features", ln_backward_params_over_features,
          "sums dgamma and dbeta over axis 1 (the features, shape (N,)) instead of over the examples (axis 0, shape (D,)).", test=LN),
    entry(LNB, "gamma applied after the backward pass", ln_backward_gamma_after,
          "runs the batch-norm backward on dout.T and multiplies its result by gamma, instead of passing dout * gamma into it.",
          test=LN),
    right(FW, "F.batch_norm for the output", fw_torch_batch_norm),
    right(ALT, "diagonal of x_hat.T @ dout", alt_diag_gram, test=ALT),
    right(SPF, "swapaxes both ways", sp_swapaxes_forward, test=SP, given={SPB: sp_swapaxes_backward}),
]
