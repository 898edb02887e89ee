"""Held-out answers (sixth set, part a), lesson 02: batchnorm_forward, the staged
and closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np
import torch

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"
SPF, SPB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LNF, LNB = "layernorm_forward", "layernorm_backward"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need at least 2 examples")


# ---- forward -----------------------------------------------------------------


def fw_eps_hard_coded(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + 1e-5)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_gamma_beta_swapped(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return beta * x_hat + gamma, (x_hat, std, 1.0 / std, gamma)


def fw_cache_std_without_eps(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var)  # the standard deviation, for the cache
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward ---------------------------------------------------------


def bw_sqrt_stage_without_half(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / std  # d sqrt(v) / dv
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_n_from_cache(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = len(cache)
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
    return dxc + dmu / n, dgamma, dbeta


def bw_xc_in_cached_x_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    xc = x_hat
    xc *= std  # the centred input, recovered
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_drho_without_gamma(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dout * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_precedence_in_dvar(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / 2 * std
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed-form backward ----------------------------------------------------


def alt_dbeta_divided_in_place(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta /= n  # the mean of dout, for the formula
    dx = gamma * inv_std * (dout - dbeta - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_root_of_std(dout, cache):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    inv = 1.0 / np.sqrt(std)  # 1 / sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_dgamma_matrix_product(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout.T @ x_hat  # sum over the batch
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial -------------------------------------------------------------------


@notebook
def sp_forward_h_w_swapped(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 3, 2, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_forward_affine_outside(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    x_hat, cache = batchnorm_forward(columns, np.ones(c), np.zeros(c), eps)  # noqa: F821
    x_hat = x_hat.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1), cache


# ---- layer norm ----------------------------------------------------------------


@notebook
def ln_forward_ones_by_features(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[1]), np.zeros(x.shape[1])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_whole_cache(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


# ---- correct alternatives ----------------------------------------------------


def fw_torch_var_mean(x, gamma, beta, eps=1e-5):
    if len(x) < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    t = torch.from_numpy(x)
    var, mu = torch.var_mean(t, dim=0, correction=0)
    std = torch.sqrt(var + eps)
    x_hat = ((t - mu) / std).numpy()
    std = std.numpy()
    return x_hat * gamma + beta, (x_hat, std, 1.0 / std, gamma)


def bw_direct_dvar(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    var_eps = std**2
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * var_eps**-1.5
    dmu = np.sum(-dx_hat * inv_std, axis=0) + dvar * np.mean(-2.0 * xc, axis=0)
    dx = dx_hat * inv_std + dvar * 2.0 * xc / n + dmu / n
    return dx, dgamma, dbeta


@notebook
def sp_forward_swapaxes(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.swapaxes(0, 1).reshape(c, -1).T  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.T.reshape(c, n, h, w).swapaxes(0, 1), cache


@notebook
def sp_backward_swapaxes(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.swapaxes(0, 1).reshape(c, -1).T
    dx, dgamma, dbeta = batchnorm_backward(columns, cache)  # noqa: F821
    return dx.T.reshape(c, n, h, w).swapaxes(0, 1), dgamma, dbeta


ENTRIES = [
    entry(FW, "eps keyword ignored", fw_eps_hard_coded,
          "normalises with a hard-coded 1e-5 instead of the eps argument, so any other eps is ignored."),
    entry(FW, "gamma and beta swapped", fw_gamma_beta_swapped,
          "returns beta * x_hat + gamma instead of gamma * x_hat + beta."),
    entry(FW, "cache holds the std without eps", fw_cache_std_without_eps, test=BW,
          cause="the output is right, but the cache's std is sqrt(var) without eps (inv_std has it), so the staged backward, which uses std, is slightly wrong."),
    entry(BW, "sqrt stage without the 1/2", bw_sqrt_stage_without_half,
          "the stage s = sqrt(var + eps) uses dvar = ds / s instead of ds / (2 s), so the variance branch is doubled."),
    entry(BW, "N taken as the cache's length", bw_n_from_cache,
          "n = len(cache) (4, the number of items in the cache) instead of the batch size dout.shape[0]."),
    entry(BW, "xc recovered in place in the cached x_hat", bw_xc_in_cached_x_hat,
          "`xc = x_hat; xc *= std` scales the cached x_hat in place: the first call is right, but the cache now holds xc, so a second backward on the same cache is wrong."),
    entry(BW, "drho without gamma", bw_drho_without_gamma,
          "at x_hat = xc * rho, drho sums dout * xc instead of dx_hat * xc (gamma missing from the variance branch only)."),
    entry(BW, "precedence in dvar", bw_precedence_in_dvar,
          "dvar = ds / 2 * std multiplies by std instead of dividing by 2 * std."),
    entry(ALT, "dbeta divided by N in place", alt_dbeta_divided_in_place,
          "divides dbeta by N in place for the formula and returns that, so dbeta is the mean of dout instead of its sum (dx is right)."),
    entry(ALT, "inverse of the root of the std", alt_root_of_std,
          "takes the cache's std for the variance and multiplies by 1/sqrt(std) instead of 1/std (inv_std)."),
    entry(ALT, "dgamma as dout.T @ x_hat", alt_dgamma_matrix_product,
          "dgamma = dout.T @ x_hat is a (D, D) matrix (its diagonal is the right dgamma), so dgamma has the wrong shape and dx fails to broadcast unless N == D."),
    entry(SPF, "H and W swapped in the transpose", sp_forward_h_w_swapped, test=SP,
          cause="flattens with transpose(0, 3, 2, 1) (rows in (N, W, H) order) but reshapes back as (N, H, W, C), so when H != W the output's positions are scrambled."),
    entry(SPF, "affine applied outside, cache has gamma = 1", sp_forward_affine_outside, test=SP,
          cause="calls batchnorm_forward with gamma = 1 and beta = 0 and applies gamma, beta in 4-D: the output is right but the cache holds gamma = 1, so the backward's dx misses gamma."),
    entry(LNF, "ones and zeros sized by the features", ln_forward_ones_by_features, test=LN,
          cause="batch norm of x.T needs gamma = 1, beta = 0 of length N (the examples), but they have length D, so it fails to broadcast unless N == D."),
    entry(LNB, "whole layer-norm cache passed on", ln_backward_whole_cache, test=LN,
          cause="passes the layer-norm cache (x_hat, gamma, bn_cache) to batchnorm_backward_alt instead of bn_cache."),
    right(FW, "torch.var_mean", fw_torch_var_mean),
    right(BW, "dvar from (var + eps)^-3/2", bw_direct_dvar, test=BW),
    Unseen(SPF, "swapaxes flattening", {SPF: sp_forward_swapaxes, SPB: sp_backward_swapaxes}, SP, correct=True),
]
