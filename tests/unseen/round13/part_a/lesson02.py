"""Held-out answers (thirteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples per feature")


# ---- forward -----------------------------------------------------------------


def fw_affine_first(x, gamma, beta, eps=1e-5):
    _guard(x)
    y = gamma * x + beta  # scale and shift, then normalise
    mu = y.mean(axis=0)
    std = np.sqrt(y.var(axis=0) + eps)
    x_hat = (y - mu) / std
    return x_hat, (x_hat, std, 1.0 / std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_direct_branch_from_dout(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dout * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_drho_not_summed(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = dx_hat * xc
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_no_chain_through_sqrt(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = -drho / std**2  # d(1/s)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_dx_from_dx_hat(dout, cache):
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
    dx = dx_hat + dmu / n
    return dx, dgamma, dbeta


# ---- closed form ---------------------------------------------------------------


def alt_rho_on_dout_only(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * (dout * inv_std - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_dgamma_used_before_assignment(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    dgamma = (dout * x_hat).sum(axis=0)
    return dx, dgamma, dbeta


def alt_scale_not_assigned(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = dout - dbeta / n - x_hat * dgamma / n
    dx * gamma * inv_std  # the common factor
    return dx, dgamma, dbeta


# ---- spatial and layer norm ----------------------------------------------------


def sp_forward_per_image(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    mu = x.mean(axis=(2, 3), keepdims=True)  # each channel of each image
    std = np.sqrt(x.var(axis=(2, 3), keepdims=True) + eps)
    x_hat = (x - mu) / std
    out = gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1)
    return out, (x_hat.transpose(0, 2, 3, 1).reshape(-1, c), std, 1.0 / std, gamma)


def sp_forward_gamma_one_axis_short(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
    x_hat = (x - mu) / std
    out = gamma.reshape(1, c, 1) * x_hat + beta.reshape(1, c, 1)
    cache = (x_hat.transpose(0, 2, 3, 1).reshape(-1, c), std.ravel(), 1.0 / std.ravel(), gamma)
    return out, cache


@notebook
def sp_forward_gamma_4d_into_columns(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    gamma, beta = gamma.reshape(1, c, 1, 1), beta.reshape(1, c, 1, 1)  # one per channel
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def ln_backward_gamma_from_inner_cache(dout, cache):
    x_hat, _, bn_cache = cache
    gamma = bn_cache[3]  # the scale kept in the cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


def ln_backward_rows_over_n(dout, cache):
    x_hat, gamma, bn_cache = cache
    inv_std = bn_cache[2][:, None]  # one per example
    n = dout.shape[0]
    g = dout * gamma
    dx = inv_std * (g - g.sum(axis=1, keepdims=True) / n - x_hat * (g * x_hat).sum(axis=1, keepdims=True) / n)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# ---- correct alternatives ------------------------------------------------------


@notebook
def sp_forward_channel_loop(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    out = np.empty(x.shape)
    caches = []
    for k in range(c):
        o, cache_k = batchnorm_forward(x[:, k].reshape(-1, 1), gamma[k:k + 1], beta[k:k + 1], eps)  # noqa: F821
        out[:, k] = o.reshape(n, h, w)
        caches.append(cache_k)
    return out, caches


@notebook
def sp_backward_channel_loop(dout, cache):
    n, c, h, w = dout.shape
    dx, dgamma, dbeta = np.empty(dout.shape), np.empty(c), np.empty(c)
    for k in range(c):
        d, g, b = batchnorm_backward_alt(dout[:, k].reshape(-1, 1), cache[k])  # noqa: F821
        dx[:, k] = d.reshape(n, h, w)
        dgamma[k], dbeta[k] = g[0], b[0]
    return dx, dgamma, dbeta


def ln_forward_row_norms(x, gamma, beta, eps=1e-5):
    d = x.shape[1]
    xc = x - x.mean(axis=1, keepdims=True)
    std = np.sqrt(np.linalg.norm(xc, axis=1) ** 2 / d + eps)  # (N,)
    x_hat = xc / std[:, None]
    bn_cache = (x_hat.T.copy(), std, 1.0 / std, np.ones(x.shape[0]))
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


ENTRIES = [
    entry(FW, "scale and shift before normalising", fw_affine_first,
          "applies gamma and beta to x first and then normalises the result, so the affine step is undone (the output is about x_hat, not gamma * x_hat + beta)."),
    entry(BW, "direct branch reads dout, not dx_hat", bw_direct_branch_from_dout,
          "at x_hat = xc * rho the direct branch is dout * rho instead of dx_hat * rho, so gamma is missing from that branch only.", test=BW),
    entry(BW, "drho not summed over the batch", bw_drho_not_summed,
          "at x_hat = xc * rho, drho = dx_hat * xc is not summed over the batch (rho is one number per feature), so the variance branch is per example."),
    entry(BW, "no chain rule through the square root", bw_no_chain_through_sqrt,
          "takes dvar = -drho / s**2, the derivative of 1/s, leaving out the stage s = sqrt(var + eps) (the factor 1/(2s)).", test=BW),
    entry(BW, "last line adds the mean branch to dx_hat", bw_dx_from_dx_hat,
          "the final stage writes dx = dx_hat + dmu / N instead of dxc + dmu / N, so the direct part lacks the factor rho and the variance branch.", test=BW),
    entry(ALT, "rho only on the dout term", alt_rho_on_dout_only,
          "a bracket slip: gamma * (rho * dout - dbeta/N - x_hat * dgamma/N), so the dbeta and x_hat terms are not multiplied by rho.", test=ALT),
    entry(ALT, "dgamma used before it is computed", alt_dgamma_used_before_assignment,
          "computes dx with dgamma one line before dgamma is assigned, so the function raises UnboundLocalError.", test=ALT),
    entry(ALT, "the scaling line not assigned", alt_scale_not_assigned,
          "the line dx * gamma * inv_std is a bare expression (its result is thrown away), so dx lacks the factor gamma * rho.", test=ALT),
    entry("spatial_batchnorm_forward", "statistics per image and channel", sp_forward_per_image,
          "takes the mean and variance over (H, W) for each image and channel (instance norm) instead of over (N, H, W) per channel.", test=SP),
    entry("spatial_batchnorm_forward", "gamma reshaped to (1, C, 1)", sp_forward_gamma_one_axis_short,
          "reshapes gamma and beta to (1, C, 1), one axis short, so they broadcast against H instead of C (an error unless H == C)."
          , test=SP),
    entry("spatial_batchnorm_forward", "gamma reshaped for 4-D, then given to the (N, D) function", sp_forward_gamma_4d_into_columns,
          "reshapes gamma and beta to (1, C, 1, 1) and passes them to batchnorm_forward on the (N*H*W, C) columns, where they broadcast to 4-D and the reshape back raises ValueError.",
          test=SP),
    entry("layernorm_backward", "gamma taken from the inner batch-norm cache", ln_backward_gamma_from_inner_cache,
          "multiplies dout by the inner batch norm's gamma (the ones of length N kept in bn_cache) instead of layer norm's gamma: a broadcasting error unless N == D, and gamma missing from dx when N == D.",
          test=LN),
    entry("layernorm_backward", "row-wise closed form divided by N", ln_backward_rows_over_n,
          "writes the closed form along each row but divides the row sums by the batch size N instead of the number of features D.",
          test=LN),
    Unseen(SP, "one channel at a time with the (N, D) functions",
           {"spatial_batchnorm_forward": sp_forward_channel_loop, "spatial_batchnorm_backward": sp_backward_channel_loop},
           SP, correct=True),
    right("layernorm_forward", "row statistics from the norms of the centred rows", ln_forward_row_norms, test=LN),
]
