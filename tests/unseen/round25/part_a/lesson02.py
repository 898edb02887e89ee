"""Held-out answers (twenty-fifth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    return n


# ---- forward -----------------------------------------------------------------


def fw_cache_list_as_a_default(x, gamma, beta, eps=1e-5, cache=[]):
    n = _guard(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).sum(axis=0) / n
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    cache.extend([x_hat, std, inv_std, gamma])  # filled here, read by the backward pass
    return gamma * x_hat + beta, cache


def fw_inv_std_without_eps(x, gamma, beta, eps=1e-5):
    n = _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0) / n
    std = np.sqrt(var + eps)
    inv_std = 1.0 / np.sqrt(var)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_xc_recovered_with_inv_std(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * inv_std  # undo the normalisation
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


def bw_dxc_scaled_in_place_before_drho(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dxc = dx_hat
    dxc *= inv_std  # the direct branch, in place to save an array
    drho = (dx_hat * xc).sum(axis=0)
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_scaled_by_gamma_over_inv_std(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (dout - dbeta / n - x_hat * dgamma / n) * (gamma / inv_std)  # gamma over the std
    return dx, dgamma, dbeta


def alt_x_hat_term_written_into_the_cache(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = np.multiply(x_hat, -dgamma / n, out=x_hat)  # reuse a buffer: one big array only
    dx += dout
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_gamma_beta_swapped(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, beta, gamma, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_forward_channel_rows(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.reshape(n, c, h * w).transpose(0, 2, 1).reshape(-1, c)  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h * w, c).transpose(0, 2, 1).reshape(n, c, h, w), cache


@notebook
def sp_backward_c_from_the_last_axis(dout, cache):
    n, h, w = dout.shape[0], dout.shape[2], dout.shape[3]
    c = dout.shape[-1]  # the channels, last as in TF
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_ones_like_gamma(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones_like(gamma), np.zeros_like(beta)
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_dbeta_from_the_inner_pass(dout, cache):
    x_hat, gamma, bn_cache = cache
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, dbeta = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "cache list as a mutable default argument", fw_cache_list_as_a_default,
          "fills a cache=[] default argument with extend, and the default list is created once, so every call appends four more entries to the same list: the first call's cache is right, from the second call on the cache has 8, 12, ... entries and the backward passes cannot unpack it (their x_hat, std... would be the first call's); the output is right."),
    entry(FW, "inv_std computed without eps", fw_inv_std_without_eps,
          "computes inv_std = 1 / sqrt(var) without eps while std = sqrt(var + eps), so out and the cached x_hat are normalised without eps (slightly too large, by sqrt(1 + eps/var)) and the cached inv_std is not 1/std."),
    entry(BW, "centred input recovered as x_hat * inv_std", bw_xc_recovered_with_inv_std,
          "recovers the centred input as x_hat * inv_std instead of x_hat * std, so xc is divided by the variance (std squared) too much, and drho and the variance branch of dx are wrong; dgamma and dbeta are right.",
          test=BW),
    entry(BW, "direct branch scaled in place on dx_hat before drho", bw_dxc_scaled_in_place_before_drho,
          "writes dxc = dx_hat; dxc *= inv_std, which scales dx_hat itself in place, and then computes drho from that dx_hat, so drho (and the variance branch of dx) is 1/std times too large; dgamma and dbeta are right.",
          test=BW),
    entry(ALT, "scaled by gamma / inv_std", alt_scaled_by_gamma_over_inv_std,
          "multiplies the bracket by gamma / inv_std (gamma times the std) instead of gamma * inv_std, so dx is var + eps times what it should be; dgamma and dbeta are right.",
          test=ALT),
    entry(ALT, "x_hat term written into the cached x_hat (out=x_hat)", alt_x_hat_term_written_into_the_cache,
          "computes the first term with np.multiply(x_hat, -dgamma / n, out=x_hat), which overwrites the cache's x_hat, so the first backward pass on a cache is right but the forward's cache is destroyed: a second backward pass on the same cache (and anything else reading it) gets wrong dx and dgamma.",
          test=ALT),
    entry("spatial_batchnorm_forward", "gamma and beta swapped in the inner call", sp_forward_gamma_beta_swapped,
          "calls batchnorm_forward(columns, beta, gamma, eps) with gamma and beta in each other's place, so out = beta * x_hat + gamma and the cache holds beta as the scale (so the backward's dx is scaled by beta); the statistics and reshapes are right.",
          test=SP),
    right("spatial_batchnorm_forward", "channels to rows through reshape(n, c, h * w)", sp_forward_channel_rows, test=SP),
    entry("spatial_batchnorm_backward", "C read from the last axis (channels-last habit)", sp_backward_c_from_the_last_axis,
          "takes the number of channels as dout.shape[-1], TF's channels-last position, which is W for an (N, C, H, W) array, so dout is reshaped into W columns instead of C: it raises (a reshape or broadcast error against the cache's C features) whenever W != C; right when W = C.",
          test=SP),
    entry("layernorm_forward", "inner ones and zeros sized like gamma (D, not N)", ln_forward_ones_like_gamma,
          "builds the inner batch norm's gamma = 1 and beta = 0 with np.ones_like(gamma), D entries, where batchnorm_forward(x.T) needs one per example (N), so it raises a broadcast ValueError whenever N != D (right only when N = D).",
          test=LN),
    entry("layernorm_backward", "dbeta taken from the inner batch-norm pass", ln_backward_dbeta_from_the_inner_pass,
          "returns the inner batchnorm_backward_alt's third output as dbeta, which is the sum over features of (dout * gamma) for each example, shape (N,), instead of dout.sum(axis=0), shape (D,); dx and dgamma are right.",
          test=LN),
]
