"""Held-out answers (fifth set, part a), lesson 02: batchnorm_forward, the staged
and closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma)."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"
SPF, SPB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LNF, LNB = "layernorm_forward", "layernorm_backward"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")


# ---- forward -----------------------------------------------------------------


def fw_cache_std_swapped(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    return out, (x_hat, inv_std, std, gamma)


def fw_out_aliases_cached_xhat(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = x_hat  # then scale and shift, no extra array
    out *= gamma
    out += beta
    return out, (x_hat, std, inv_std, gamma)


def fw_guard_on_features(x, gamma, beta, eps=1e-5):
    if x.shape[1] < 2:
        raise ValueError("need at least two values to normalise")
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_copy_then_centre(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    x_hat = x.copy()  # do not touch the caller's x
    x_hat -= mu
    var = (x_hat**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat *= inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_beta_subtracted(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    return gamma * x_hat - beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -------------------------------------------------------------


def bw_returns_swapped(dout, cache):
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
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dbeta, dgamma


def bw_gamma_not_applied(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout  # y = gamma * x_hat + beta
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_xhat_in_variance_branch(dout, cache):
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
    dxc = dxc + 2.0 * x_hat * dvar / n  # var = mean(x_hat ** 2)?
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed-form backward ----------------------------------------------------------


def alt_dgamma_not_summed(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout * x_hat
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_xhat_squared(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat**2 * dgamma / n)
    return dx, dgamma, dbeta


def alt_upstream_form(dout, cache):
    """dx = rho * (g - mean(g) - x_hat * mean(g * x_hat)), g = gamma * dout."""
    x_hat, _, inv_std, gamma = cache
    g = gamma * dout
    dx = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# ---- spatial -------------------------------------------------------------------------


@notebook
def sp_forward_reshape_only(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.reshape(-1, c)  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, c, h, w), cache


@notebook
def sp_backward_dx_not_moved_back(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, c, h, w), dgamma, dbeta


@notebook
def sp_backward_moveaxis_staged(dout, cache):
    c = dout.shape[1]
    moved = np.moveaxis(dout, 1, -1)
    dx, dgamma, dbeta = batchnorm_backward(moved.reshape(-1, c), cache)  # noqa: F821
    return np.moveaxis(dx.reshape(moved.shape), -1, 1), dgamma, dbeta


# ---- layer norm ------------------------------------------------------------------------


@notebook
def ln_forward_affine_in_transposed_bn(x, gamma, beta, eps=1e-5):
    out_t, bn_cache = batchnorm_forward(x.T, gamma, beta, eps)  # noqa: F821
    return out_t.T, (bn_cache[0].T, gamma, bn_cache)


@notebook
def ln_backward_params_per_example(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=1)
    dgamma = (dout * x_hat).sum(axis=1)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "std and inv_std swapped in the cache", fw_cache_std_swapped, test=BW,
          cause="the forward output is right but the cache is (x_hat, inv_std, std, gamma): std and inv_std are stored in each other's slots, so the backward pass reading the cache is wrong."),
    entry(FW, "output aliases the cached x_hat", fw_out_aliases_cached_xhat, test=BW,
          cause="out = x_hat followed by out *= gamma; out += beta scales the cached x_hat in place (out is the same array), so the cache holds the output, not x_hat, and the backward pass is wrong (the forward output is right)."),
    entry(FW, "guard on the number of features", fw_guard_on_features,
          "the guard tests x.shape[1] < 2 (features) instead of N < 2: a batch of one example is not refused and a single-feature batch is."),
    entry(FW, "copy then centre in place", fw_copy_then_centre,
          "x_hat = x.copy(); x_hat -= mu keeps x's dtype, so an integer x raises a casting error (UFuncTypeError) instead of being normalised."),
    entry(FW, "beta subtracted", fw_beta_subtracted,
          "out = gamma * x_hat - beta: the shift is subtracted instead of added."),
    entry(BW, "dgamma and dbeta returned swapped", bw_returns_swapped,
          "returns (dx, dbeta, dgamma) instead of (dx, dgamma, dbeta)."),
    entry(BW, "gamma not applied to dx_hat", bw_gamma_not_applied,
          "dx_hat = dout instead of dout * gamma: the first stage forgets the scale, so dx is wrong unless gamma = 1 (dgamma and dbeta are right)."),
    entry(BW, "x_hat in the variance branch", bw_xhat_in_variance_branch,
          "the variance branch adds 2 * x_hat * dvar / N instead of 2 * xc * dvar / N (the normalised instead of the centred input)."),
    entry(ALT, "dgamma not summed", alt_dgamma_not_summed,
          "dgamma = dout * x_hat is not summed over the batch (shape (N, D) instead of (D,)), and dx, which uses it, is wrong too."),
    entry(ALT, "x_hat squared in the dgamma term", alt_xhat_squared,
          "the last term of the closed form is x_hat ** 2 * dgamma / N instead of x_hat * dgamma / N."),
    entry(SPF, "reshape without moving the channels", sp_forward_reshape_only, test=SP,
          cause="reshapes (N, C, H, W) straight to (-1, C) without moving the channel axis last, so each column mixes channels and positions (right only when H = W = 1)."),
    entry(SPB, "dx reshaped without moving the channels back", sp_backward_dx_not_moved_back, test=SP,
          cause="reshapes the (N*H*W, C) dx straight to (N, C, H, W) instead of to (N, H, W, C) then transposing, so dx's values land in the wrong places (dgamma, dbeta right)."),
    entry(LNF, "gamma and beta given to the transposed batch norm", ln_forward_affine_in_transposed_bn, test=LN,
          cause="passes gamma and beta (shape (D,)) to batchnorm_forward of x.T (shape (D, N)) instead of ones(N), zeros(N) and applying them after transposing back: a broadcasting error unless N == D (wrong values then)."),
    entry(LNB, "parameter gradients per example", ln_backward_params_per_example, test=LN,
          cause="dgamma and dbeta are summed over axis 1 (per example, shape (N,)) instead of over the batch axis 0 (per feature, shape (D,)); dx is right."),
    right(ALT, "gradient reaching x_hat, means", alt_upstream_form),
    right(SPB, "moveaxis and the staged backward", sp_backward_moveaxis_staged, test=SP),
]
