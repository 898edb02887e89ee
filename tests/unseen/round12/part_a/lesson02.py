"""Held-out answers (twelfth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples")


# ---- forward -----------------------------------------------------------------


def fw_inv_std_inverse_variance(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    inv_std = 1.0 / (var + eps)  # cached for the backward pass
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_cache_float32(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) / std
    out = gamma * x_hat + beta
    cache = (x_hat.astype(np.float32), std, 1.0 / std, gamma)  # half the memory
    return out, cache


def fw_eps_only_in_cache(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var)
    std = np.sqrt(var + eps)  # eps for the backward pass
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_xc_squared(dout, cache):
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
    dxc = dxc + 2.0 * xc**2 * dvar / n  # d(xc**2)
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_dvar_inv_std_squared(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = -0.5 * drho * inv_std**2  # d/dvar (var + eps)^-1/2
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_sqrt_stage_over_var(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std**2)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed form ---------------------------------------------------------------


def alt_float32_buffer(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = np.zeros(dout.shape, dtype=np.float32)
    dx += dout
    dx -= dbeta / n
    dx -= x_hat * dgamma / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def alt_dbeta_in_x_hat_term(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dbeta / n)
    return dx, dgamma, dbeta


# ---- spatial and layer norm ----------------------------------------------------


@notebook
def sp_forward_affine_twice(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    out = out.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return gamma.reshape(1, c, 1, 1) * out + beta.reshape(1, c, 1, 1), cache


@notebook
def sp_backward_unpacked_swapped(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dbeta, dgamma = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


@notebook
def ln_forward_batch_guard(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("normalisation needs at least 2 examples")
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_dout_scaled_first(dout, cache):
    x_hat, gamma, bn_cache = cache
    dout *= gamma  # the gradient reaching x_hat
    dx_t, _, _ = batchnorm_backward_alt(dout.T, bn_cache)  # noqa: F821
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    return dx_t.T, dgamma, dbeta


# ---- correct alternatives ------------------------------------------------------


def fw_standardize_inline(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("training-mode batch norm needs N >= 2")

    def standardize_columns(X, eps=1e-5):
        return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)

    x_hat = standardize_columns(x, eps)
    std = np.sqrt(x.var(axis=0) + eps)
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def alt_divides_by_std(dout, cache):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(x_hat * dout, axis=0)
    dx = (gamma / std) * (dout - (dbeta + x_hat * dgamma) / n)
    return dx, dgamma, dbeta


ENTRIES = [
    entry(FW, "inv_std cached as 1/(var + eps)", fw_inv_std_inverse_variance,
          "the output is right but the cache's inv_std is 1/(var + eps) instead of 1/sqrt(var + eps), so the backward pass gets a wrong scale.",
          test=FW),
    entry(FW, "cached x_hat in float32", fw_cache_float32,
          "stores x_hat in the cache as float32, so the backward pass loses precision (about 1e-7 relative)."),
    entry(FW, "eps only in the cached std", fw_eps_only_in_cache,
          "normalises by sqrt(var) without eps (eps only enters the cached std), so a constant feature gives nan and every output is off by the eps."),
    entry(BW, "xc squared in the variance branch", bw_xc_squared,
          "the variance stage's local gradient uses 2 * xc**2 / N instead of 2 * xc / N.", test=BW),
    entry(BW, "dvar with inv_std squared, not cubed", bw_dvar_inv_std_squared,
          "dvar = -0.5 * drho * inv_std**2 instead of inv_std**3 (the derivative of (var + eps)^-1/2 is wrong).", test=BW),
    entry(BW, "sqrt stage divides by 2(var + eps)", bw_sqrt_stage_over_var,
          "the stage s = sqrt(var + eps) uses ds / (2 * s**2) instead of ds / (2 * s).", test=BW),
    entry(ALT, "dx built in a float32 buffer", alt_float32_buffer,
          "accumulates dx in a float32 array (np.zeros(..., dtype=float32)), so dx is float32 and loses precision.", test=ALT),
    entry(ALT, "dbeta in the x_hat term", alt_dbeta_in_x_hat_term,
          "the closed form subtracts x_hat * dbeta / N instead of x_hat * dgamma / N (copy-paste).", test=ALT),
    entry("spatial_batchnorm_forward", "gamma and beta applied twice", sp_forward_affine_twice,
          "passes gamma and beta to batchnorm_forward and then applies them again outside: out = gamma * (gamma * x_hat + beta) + beta.",
          test=SP),
    entry("spatial_batchnorm_backward", "inner gradients unpacked as (dx, dbeta, dgamma)", sp_backward_unpacked_swapped,
          "unpacks batchnorm_backward_alt's result as (dx, dbeta, dgamma), so dgamma and dbeta come back swapped.",
          test=SP),
    entry("layernorm_forward", "batch norm's N < 2 guard copied", ln_forward_batch_guard,
          "copies batch norm's guard: a single example (N = 1) is refused although layer norm normalises each row on its own.",
          test=LN),
    entry("layernorm_backward", "dout scaled by gamma in place before dgamma and dbeta", ln_backward_dout_scaled_first,
          "multiplies dout by gamma in place first, so dgamma and dbeta come out multiplied by gamma (and the caller's dout is changed); dx is right.",
          test=LN),
    right(FW, "inline standardize_columns", fw_standardize_inline, test=FW),
    right(ALT, "divides by the cached std", alt_divides_by_std, test=ALT),
]
