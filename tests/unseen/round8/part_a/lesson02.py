"""Held-out answers (eighth set, part a), lesson 02: batchnorm_forward, the staged
and closed-form backward passes, spatial batch norm, layer norm.

The solution's cache is (x_hat, std, inv_std, gamma); the backward answers below read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SPF, SPB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LNF, LNB = "layernorm_forward", "layernorm_backward"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples in training mode")


# ---- forward -----------------------------------------------------------------


def fw_eps_twice(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0) + eps  # var + eps
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_out_only(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    x_hat = (x - mu) / std
    out = gamma * x_hat + beta
    cache = (x_hat, std, 1.0 / std, gamma)  # noqa: F841 - TODO return it for the backward pass
    return out


def fw_scale_before_centring(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    x_hat = (x - mu) / std
    out = (gamma * x - mu) / std + beta
    return out, (x_hat, std, 1.0 / std, gamma)


def fw_float32(x, gamma, beta, eps=1e-5):
    _guard(x)
    x32 = x.astype(np.float32)  # as PyTorch does
    mu = x32.mean(axis=0)
    std = np.sqrt(((x32 - mu) ** 2).mean(axis=0) + np.float32(eps))
    x_hat = (x32 - mu) / std
    return gamma.astype(np.float32) * x_hat + beta.astype(np.float32), (x_hat, std, 1 / std, gamma.astype(np.float32))


# ---- staged backward ---------------------------------------------------------


def bw_drho_mean(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).mean(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_std_squared_in_place(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    var_eps = std
    var_eps **= 2  # s**2 = var + eps
    ds = -drho / var_eps
    dvar = ds / (2.0 * np.sqrt(var_eps))
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_sqrt_of_s(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * np.sqrt(std))  # d sqrt(v) = 1 / (2 sqrt(.))
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_params_from_dx_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dx_hat = dout * gamma
    dbeta = dx_hat.sum(axis=0)
    dgamma = (dx_hat * x_hat).sum(axis=0)
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed-form backward -------------------------------------------------------


def alt_n_form_without_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / n) * (dout - dbeta - x_hat * dgamma)  # N * dout - ...
    return dx, dgamma, dbeta


def alt_dbeta_todo(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = None  # TODO
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_xc_in_dgamma_term(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - xc * dgamma / n)
    return dx, dgamma, dbeta


def alt_centred_form(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n) - gamma * xc * inv_std**3 * (dout * xc).sum(axis=0) / n
    return dx, dgamma, dbeta


# ---- spatial -----------------------------------------------------------------------


@notebook
def sp_forward_4d_gamma(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    if n * h * w < 2:
        raise ValueError("need at least 2 values per channel")
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    out = gamma * x_hat + beta
    cols = x_hat.transpose(0, 2, 3, 1).reshape(-1, c)
    s = std.reshape(c)
    return out, (cols, s, 1.0 / s, gamma)


@notebook
def sp_backward_per_position(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma / (h * w), dbeta / (h * w)


@notebook
def sp_forward_channels_first(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    rows = x.transpose(1, 0, 2, 3).reshape(c, -1).T  # (N*H*W, C)
    out, cache = batchnorm_forward(rows, gamma, beta, eps)  # noqa: F821
    return out.T.reshape(c, n, h, w).transpose(1, 0, 2, 3), cache


@notebook
def sp_backward_channels_first(dout, cache):
    n, c, h, w = dout.shape
    rows = dout.transpose(1, 0, 2, 3).reshape(c, -1).T
    dx, dgamma, dbeta = batchnorm_backward(rows, cache)  # noqa: F821
    return dx.T.reshape(c, n, h, w).transpose(1, 0, 2, 3), dgamma, dbeta


# ---- layer norm ----------------------------------------------------------------------


@notebook
def ln_forward_reshape_back(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.reshape(x.shape)
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_forward_keeps_x(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x, x_hat, gamma, bn_cache)


@notebook
def ln_backward_dgamma_raw_x(dout, cache):
    x, x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


def ln_forward_rows(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps)
    x_hat = xc * inv
    return x_hat * gamma + beta, (x_hat, inv, gamma)


def ln_backward_rows(dout, cache):
    x_hat, inv, gamma = cache
    d = x_hat.shape[1]
    g = dout * gamma
    dx = inv * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).sum(axis=1, keepdims=True) / d)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


ENTRIES = [
    entry(FW, "eps added twice", fw_eps_twice,
          "adds eps to the variance and again inside the square root: it divides by sqrt(var + 2 eps)."),
    entry(FW, "returns out only", fw_out_only,
          "builds the cache but returns only out, not (out, cache)."),
    entry(FW, "gamma applied before centring", fw_scale_before_centring,
          "computes (gamma * x - mu) / std + beta: gamma multiplies x before the mean is subtracted, so the mean is not scaled."),
    entry(FW, "computed in float32", fw_float32,
          "casts x to float32 and computes everything in single precision, returning float32 results for float64 input."),
    entry(BW, "drho as a mean", bw_drho_mean,
          "drho is the mean of dx_hat * xc over the batch instead of the sum, so the variance branch is N times too small.",
          test=BW),
    entry(BW, "cached std squared in place", bw_std_squared_in_place,
          "squares the cache's std in place (var_eps = std; var_eps **= 2): the first call is right, a second call on the same cache is wrong.",
          test=BW),
    entry(BW, "sqrt stage divides by 2 sqrt(s)", bw_sqrt_of_s,
          "the stage s = sqrt(var + eps) uses ds / (2 sqrt(s)) instead of ds / (2 s)."),
    entry(BW, "dbeta and dgamma from dx_hat", bw_params_from_dx_hat,
          "sums dx_hat (= gamma * dout) instead of dout for dbeta and dgamma, so both are multiplied by gamma; dx is right.",
          test=BW),
    entry(ALT, "N * dout written as dout", alt_n_form_without_n,
          "uses the (1/N) (N dout - dbeta - x_hat dgamma) form but writes dout for N * dout, so the direct term is N times too small.",
          test=ALT),
    entry(ALT, "dbeta left as a TODO", alt_dbeta_todo,
          "returns None for dbeta (left as a TODO); dx and dgamma are right.", test=ALT),
    entry(ALT, "centred input in the dgamma term", alt_xc_in_dgamma_term,
          "the closed form subtracts xc * dgamma / N (the centred input) instead of x_hat * dgamma / N.", test=ALT),
    entry(SPF, "gamma broadcast on the last axis in 4-D", sp_forward_4d_gamma,
          "normalises in 4-D but multiplies by gamma and adds beta of shape (C,), which broadcast along W, not C: an error unless W == C.",
          test=SP),
    entry(SPB, "dgamma and dbeta averaged over positions", sp_backward_per_position,
          "divides dgamma and dbeta by H * W (a mean over positions) instead of summing over N, H and W.", test=SP),
    entry(LNF, "transposed back with reshape", ln_forward_reshape_back,
          "turns the (D, N) batch-norm output back into (N, D) with reshape instead of a transpose, scrambling the values.",
          test=LN),
    entry(LNB, "dgamma from the raw input", ln_backward_dgamma_raw_x,
          "dgamma sums dout * x (the raw input) instead of dout * x_hat.", test=LN,
          given={LNF: ln_forward_keeps_x}),
    right(ALT, "centred input and inv_std cubed", alt_centred_form, test=ALT),
    right(SPF, "channels first, then transposed", sp_forward_channels_first, test=SP,
          given={SPB: sp_backward_channels_first}),
    right(LNF, "row-wise formulas, forward and backward", ln_forward_rows, test=LN,
          given={LNB: ln_backward_rows}),
]
