"""Held-out answers (third set), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The solution's cache is (x_hat, std, inv_std, gamma); the backward answers below read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("need at least 2 examples")


# ---- forward -----------------------------------------------------------------


def fw_global_mean(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean()  # one number
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_beta_inside(x, gamma, beta, eps=1e-5):
    _guard(x)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) / std
    return gamma * (x_hat + beta), (x_hat, std, 1 / std, gamma)


def fw_no_sqrt(x, gamma, beta, eps=1e-5):
    _guard(x)
    var = x.var(axis=0)
    std = var + eps  # forgot the square root
    x_hat = (x - x.mean(axis=0)) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_returns_cache_first(x, gamma, beta, eps=1e-5):
    _guard(x)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) / std
    return (x_hat, std, 1 / std, gamma), gamma * x_hat + beta


def fw_gamma_column(x, gamma, beta, eps=1e-5):
    _guard(x)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) / std
    g, b = gamma.reshape(-1, 1), beta.reshape(-1, 1)  # "one per example"
    return g * x_hat + b, (x_hat, std, 1 / std, gamma)


def fw_guard_only_empty(x, gamma, beta, eps=1e-5):
    if x.shape[0] == 0:
        raise ValueError("empty batch")
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


# ---- staged backward ---------------------------------------------------------


def bw_variance_no_two(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = (-drho / std**2) / (2.0 * std)
    dxc = dxc + xc * dvar / n  # d(mean(xc**2))/dxc without the 2
    dx = dxc - dxc.sum(axis=0) / n
    return dx, dgamma, dbeta


def bw_drho_from_xhat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * x_hat).sum(axis=0)  # x_hat = xc * rho: the other factor is xc
    dxc = dx_hat * inv_std
    dvar = (-drho / std**2) / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dx = dxc - dxc.sum(axis=0) / n
    return dx, dgamma, dbeta


def bw_ds_not_squared(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std  # d(1/s)/ds is -1/s**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dx = dxc - dxc.sum(axis=0) / n
    return dx, dgamma, dbeta


def bw_variance_branch_dropped(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dxc = dout * gamma * inv_std
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_mean_branch_dropped(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = (-drho / std**2) / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    return dxc, dgamma, dbeta  # xc = x - mu: "mu is a constant"


def bw_dgamma_centred(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta, dgamma = dout.sum(axis=0), (dout * xc).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = (-drho / std**2) / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dx = dxc - dxc.sum(axis=0) / n
    return dx, dgamma, dbeta


def bw_dout_scaled_in_place(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout
    dx_hat *= gamma  # scales the caller's dout too
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    dvar = (-drho / std**2) / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dx = dxc - dxc.sum(axis=0) / n
    return dx, dgamma, dbeta


# ---- closed-form backward ----------------------------------------------------


def alt_dbeta_not_over_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_plus_dbeta(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout + dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_inverse_variance(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std**2 * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_x_hat_term_not_over_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma)
    return dx, dgamma, dbeta


def alt_dgamma_mean(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).mean(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * (dout * x_hat).sum(axis=0) / n)
    return dx, dgamma, dbeta


def alt_dout_aliased(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = dout  # no copy
    dx -= dbeta / n
    dx -= x_hat * dgamma / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def alt_cache_misread(dout, cache):
    x_hat, inv_std, std, gamma = cache  # unpacked in the wrong order
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial -------------------------------------------------------------------


@notebook
def sp_forward_same_transpose(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 2, 3, 1), cache  # "the same transpose back"


@notebook
def sp_backward_dout_not_moved(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.reshape(-1, c)  # channels not moved last
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


@notebook
def sp_forward_per_position(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    flat = x.reshape(n, -1)  # (N, C*H*W): channel-major
    g, b = np.repeat(gamma, h * w), np.repeat(beta, h * w)
    out, cache = batchnorm_forward(flat, g, b, eps)  # noqa: F821
    return out.reshape(n, c, h, w), cache


# ---- layer norm ----------------------------------------------------------------


def ln_forward_unbiased(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, ddof=1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, gamma, std)


def ln_backward_for_unbiased(dout, cache):
    # the exact backward of the (unbiased) forward above: the forward is the mistake
    x_hat, gamma, std = cache
    d = dout.shape[1]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    g = dout * gamma
    dx = (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).sum(axis=1, keepdims=True) / (d - 1)) / std
    return dx, dgamma, dbeta


@notebook
def ln_backward_gamma_after(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt(dout.T, bn_cache)  # noqa: F821
    return dx_t.T * gamma, dgamma, dbeta  # gamma applied after the row reduction


@notebook
def ln_backward_dgamma_rows(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=1)
    dgamma = (dout * x_hat).sum(axis=1)  # per example
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


@notebook
def ln_forward_affine_transposed(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    out = (gamma * x_hat_t + beta).T  # affine on the (D, N) array
    return out, (x_hat_t.T, gamma, bn_cache)


# ---- correct alternatives ------------------------------------------------------


def bw_dmu_first_branch(dout, cache):
    """dmu from the direct branch only: the variance branch adds sum(xc) * ... = 0."""
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    dxc_direct = dx_hat * inv_std
    dmu = -np.sum(dxc_direct, axis=0)
    drho = np.sum(dx_hat * xc, axis=0)
    dvar = -0.5 * drho * inv_std**3
    return dxc_direct + 2.0 * xc * dvar / n + dmu / n, dgamma, dbeta


def alt_cs231n_n_form(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / n) * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


@notebook
def sp_forward_moveaxis(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    last = np.moveaxis(x, 1, -1)  # (N, H, W, C)
    out, cache = batchnorm_forward(last.reshape(-1, c), gamma, beta, eps)  # noqa: F821
    return np.moveaxis(out.reshape(last.shape), -1, 1), cache


ENTRIES = [
    entry(FW, "mean of the whole batch", fw_global_mean,
          "centres with one mean over the whole array (all features) instead of each feature's mean over axis 0."),
    entry(FW, "beta inside the scale", fw_beta_inside,
          "adds beta before multiplying by gamma: gamma * (x_hat + beta) instead of gamma * x_hat + beta."),
    entry(FW, "no square root", fw_no_sqrt,
          "divides by var + eps instead of sqrt(var + eps)."),
    entry(FW, "returns (cache, out)", fw_returns_cache_first,
          "returns the cache first and the output second, instead of (out, cache)."),
    entry(FW, "gamma and beta as columns", fw_gamma_column,
          "reshapes gamma and beta to (D, 1), so they broadcast along the examples instead of the features (an error unless N == D)."),
    entry(FW, "guard only refuses an empty batch", fw_guard_only_empty,
          "refuses only N = 0, so a batch of one example is normalised (to beta) instead of raising ValueError."),
    entry(BW, "variance branch without the factor 2", bw_variance_no_two,
          "the variance stage's local gradient is xc / N instead of 2 * xc / N, so the variance branch is halved.", test=BW),
    entry(BW, "drho from x_hat instead of xc", bw_drho_from_xhat,
          "at x_hat = xc * rho, drho sums dx_hat * x_hat instead of dx_hat * xc.", test=BW),
    entry(BW, "ds divided by s, not s squared", bw_ds_not_squared,
          "the stage rho = 1/s uses -drho / s instead of -drho / s**2.", test=BW),
    entry(BW, "variance branch dropped", bw_variance_branch_dropped,
          "leaves out the branch through the variance: dx only has the direct and the mean terms.", test=BW),
    entry(BW, "mean branch dropped", bw_mean_branch_dropped,
          "leaves out the branch through the mean (mu treated as a constant): dx = dxc without the -sum(dxc)/N term.", test=BW),
    entry(BW, "dgamma from the centred input", bw_dgamma_centred,
          "dgamma sums dout * xc (the centred input) instead of dout * x_hat.", test=BW),
    entry(BW, "dout scaled in place", bw_dout_scaled_in_place,
          "multiplies dout by gamma in place (dx_hat = dout; dx_hat *= gamma), changing the caller's dout.", test=BW),
    entry(ALT, "dbeta term not divided by N", alt_dbeta_not_over_n,
          "subtracts dbeta instead of dbeta / N in the closed form.", test=ALT),
    entry(ALT, "sign of the dbeta term", alt_plus_dbeta,
          "adds dbeta / N instead of subtracting it in the closed form.", test=ALT),
    entry(ALT, "multiplies by 1/var", alt_inverse_variance,
          "multiplies by inv_std**2 (1/(var + eps)) instead of inv_std.", test=ALT),
    entry(ALT, "x_hat term not divided by N", alt_x_hat_term_not_over_n,
          "subtracts x_hat * dgamma instead of x_hat * dgamma / N in the closed form.", test=ALT),
    entry(ALT, "dgamma as a mean", alt_dgamma_mean,
          "returns dgamma as the mean of dout * x_hat over the batch instead of the sum (dx itself is right).", test=ALT),
    entry(ALT, "dx aliases dout", alt_dout_aliased,
          "sets dx = dout without a copy and updates it in place, so the caller's dout is overwritten with dx.", test=ALT),
    entry(ALT, "cache unpacked in the wrong order", alt_cache_misread,
          "unpacks the cache as (x_hat, inv_std, std, gamma), so it multiplies by the standard deviation instead of its inverse.", test=ALT),
    entry("spatial_batchnorm_forward", "the same transpose applied back", sp_forward_same_transpose,
          "undoes the (0, 2, 3, 1) transpose with (0, 2, 3, 1) again instead of its inverse (0, 3, 1, 2), so out has the wrong shape.",
          test=SP),
    entry("spatial_batchnorm_backward", "dout reshaped without moving channels", sp_backward_dout_not_moved,
          "reshapes dout (N, C, H, W) straight to (-1, C) without moving the channels last first, so every column mixes channels and positions.",
          test=SP),
    entry("spatial_batchnorm_forward", "statistics per channel and position", sp_forward_per_position,
          "normalises x reshaped to (N, C*H*W), so every (channel, position) gets its own statistics instead of one per channel over N, H, W.",
          test=SP),
    entry("layernorm_forward", "unbiased row variance", ln_forward_unbiased,
          "normalises each row with the unbiased variance (ddof=1) instead of the biased one.",
          test=LN, given={"layernorm_backward": ln_backward_for_unbiased}),
    entry("layernorm_backward", "gamma applied after the reduction", ln_backward_gamma_after,
          "multiplies dx by gamma after batch norm's backward instead of multiplying dout by gamma before it; gamma is per feature, and the row means must see dout * gamma.",
          test=LN),
    entry("layernorm_backward", "dgamma and dbeta per example", ln_backward_dgamma_rows,
          "sums dgamma and dbeta over axis 1 (each example's features) instead of axis 0 (the batch).",
          test=LN),
    entry("layernorm_forward", "affine on the transposed array", ln_forward_affine_transposed,
          "applies gamma and beta to the (D, N) array before transposing back, so they broadcast along the examples (an error unless N == D).",
          test=LN),
    right(BW, "dmu from the direct branch", bw_dmu_first_branch, test=BW),
    right(ALT, "CS231n form with N * dout", alt_cs231n_n_form, test=ALT),
    right("spatial_batchnorm_forward", "np.moveaxis", sp_forward_moveaxis, test=SP),
]
