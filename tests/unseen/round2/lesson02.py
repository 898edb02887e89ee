"""Held-out answers, lesson 02: batch norm forward and backward passes (NumPy),
spatial batch norm and layer norm."""

import numpy as np

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward (the solution's cache layout: x_hat, std, inv_std, gamma) ------------


def fw_unbiased(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0, ddof=1) + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_eps_outside(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0)) + eps
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_centres_input(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    x -= x.mean(axis=0)  # centre
    std = np.sqrt((x**2).mean(axis=0) + eps)
    x_hat = x / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_no_guard(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_row_stats(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_cache_aliased(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) / std
    out = x_hat  # scale and shift without another (N, D) array
    out *= gamma
    out += beta
    return out, (x_hat, std, 1.0 / std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_sign_ds(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = drho / std**2  # d(1/s)/ds
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_dmu_not_divided(dout, cache):
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
    return dxc + dmu, dgamma, dbeta


def bw_dbeta_mean(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.mean(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_var_branch_n_minus_1(dout, cache):
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
    dxc = dxc + 2.0 * xc * dvar / (n - 1)
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_dgamma_rows(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=1)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed-form backward ---------------------------------------------------------


def alt_no_gamma(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


def alt_times_std(dout, cache):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def alt_scalar_dgamma(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat)
    dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def alt_dgamma_term_n_minus_1(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / (n - 1))
    return dx, dgamma, dbeta


def alt_rho_without_eps(dout, cache):
    x_hat, std, _, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    rho = 1.0 / np.sqrt((xc**2).mean(axis=0))  # 1 / sigma of the centred input
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * rho / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


# ---- spatial ---------------------------------------------------------------------------


@notebook
def sp_reshape_only(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    out, cache = batchnorm_forward(x.reshape(-1, c), gamma, beta, eps)
    return out.reshape(n, c, h, w), cache


@notebook
def sp_back_no_transpose(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)
    return dx.reshape(n, c, h, w), dgamma, dbeta


@notebook
def sp_fw_out_not_transposed(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)
    return out.reshape(n, c, h, w), cache


# ---- layer norm ------------------------------------------------------------------------


def ln_no_keepdims(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1)
    var = x.var(axis=1)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1.0 / np.sqrt(var + eps))


@notebook
def ln_gamma_into_bn(x, gamma, beta, eps=1e-5):
    out_t, cache = batchnorm_forward(x.T, gamma, beta, eps)
    return out_t.T, cache


@notebook
def ln_back_without_gamma(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt(dout.T, bn_cache)
    return dx_t.T, dgamma, dbeta


# ---- correct alternatives ---------------------------------------------------------------


def fw_np_var(x, gamma, beta, eps=1e-5):
    """out = gamma * (x - mu) / sqrt(var + eps) + beta."""
    if len(x) < 2:
        raise ValueError("need at least 2 examples per feature to normalise a batch")
    std = np.sqrt(np.var(x, axis=0) + eps)
    x_hat = (x - np.mean(x, axis=0)) / std
    return x_hat * gamma + beta, (x_hat, std, np.reciprocal(std), gamma)


def bw_compact(dout, cache):
    x_hat, std, inv_std, gamma = cache
    dbeta = np.einsum("nd->d", dout)
    dgamma = np.einsum("nd,nd->d", dout, x_hat)
    g = dout * gamma
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def sp_fw_direct(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    g4 = gamma.reshape(1, -1, 1, 1)
    return g4 * x_hat + beta.reshape(1, -1, 1, 1), (x_hat, var, eps, g4)


def sp_bw_direct(dout, cache):
    x_hat, var, eps, g4 = cache
    axes = (0, 2, 3)
    dbeta = dout.sum(axis=axes)
    dgamma = np.einsum("nchw,nchw->c", dout, x_hat)
    g = dout * g4
    dx = (g - g.mean(axis=axes, keepdims=True)
          - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) / np.sqrt(var + eps)
    return dx, dgamma, dbeta


def ln_fw_rows(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=1, keepdims=True) + eps)
    x_hat = (x - mu) * inv
    return x_hat * gamma + beta, (x_hat, inv, gamma)


def ln_bw_rows(dout, cache):
    x_hat, inv, gamma = cache
    g = dout * gamma
    dx = inv * (g - g.mean(axis=1, keepdims=True)
                - x_hat * (g * x_hat).mean(axis=1, keepdims=True))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


ENTRIES = [
    entry(FW, "unbiased variance", fw_unbiased,
          "normalises with the unbiased variance (ddof=1) instead of the biased one."),
    entry(FW, "eps added to the standard deviation", fw_eps_outside,
          "adds eps after the square root (sqrt(var) + eps) instead of inside it."),
    entry(FW, "centres x in place", fw_centres_input,
          "subtracts the mean from x in place, changing the caller's input."),
    entry(FW, "no N = 1 guard", fw_no_guard,
          "does not raise ValueError for a batch of one example (it returns beta)."),
    entry(FW, "statistics per row", fw_row_stats,
          "takes the mean and variance over axis 1 (each example) instead of axis 0 (each feature): that is layer norm."),
    Unseen(BW, "forward scales its cached x_hat in place", {FW: fw_cache_aliased}, BW,
           "the forward pass builds out by scaling x_hat in place, so the cached x_hat is really gamma*x_hat+beta and the backward pass reads the output."),
    entry(BW, "sign of ds", bw_sign_ds,
          "drops the minus sign of d(1/s)/ds = -1/s^2, so the variance branch has the wrong sign."),
    entry(BW, "dmu not divided by N", bw_dmu_not_divided,
          "adds dmu to dx without dividing by N (the mean's local gradient is 1/N)."),
    entry(BW, "dbeta as a mean", bw_dbeta_mean,
          "dbeta averages dout over the batch instead of summing it."),
    entry(BW, "variance branch over N - 1", bw_var_branch_n_minus_1,
          "the variance branch uses 2/(N-1) instead of 2/N although the forward variance divides by N."),
    entry(BW, "dgamma summed over features", bw_dgamma_rows,
          "dgamma sums over axis 1 (features) instead of axis 0 (the batch)."),
    entry(ALT, "gamma missing from dx", alt_no_gamma,
          "the closed form leaves out the factor gamma in dx."),
    entry(ALT, "multiplies by the std", alt_times_std,
          "multiplies dx by the standard deviation instead of dividing by it."),
    entry(ALT, "dgamma summed over everything", alt_scalar_dgamma,
          "np.sum without axis makes dgamma one scalar (the sum over all features), used in dx too."),
    entry(ALT, "x_hat term over N - 1", alt_dgamma_term_n_minus_1,
          "divides the x_hat * dgamma term of the closed form by N - 1 instead of N."),
    entry(ALT, "1/sigma recomputed without eps", alt_rho_without_eps,
          "recomputes 1/sigma from the centred input without eps instead of using 1/sqrt(var + eps), so dx is slightly too large."),
    entry("spatial_batchnorm_forward", "reshape without moving channels", sp_reshape_only,
          "reshapes (N, C, H, W) straight to (-1, C) without moving C last, so each column mixes channels and positions.",
          test=SP),
    entry("spatial_batchnorm_backward", "dx reshaped without transposing back", sp_back_no_transpose,
          "reshapes dx from (N*H*W, C) straight to (N, C, H, W) instead of to (N, H, W, C) and transposing back.",
          test=SP),
    entry("spatial_batchnorm_forward", "out reshaped without transposing back", sp_fw_out_not_transposed,
          "reshapes the (N*H*W, C) output straight to (N, C, H, W) instead of undoing the transpose.",
          test=SP),
    entry("layernorm_forward", "row statistics without keepdims", ln_no_keepdims,
          "the row means have shape (N,) and broadcast along the features (crashes unless N == D): keepdims=True is missing.",
          test=LN),
    entry("layernorm_forward", "gamma passed to batch norm of x.T", ln_gamma_into_bn,
          "passes the (D,) gamma and beta to batchnorm_forward on x.T (shape (D, N)), where they broadcast over the wrong axis (crashes unless N == D)",
          test=LN),
    entry("layernorm_backward", "gamma dropped from dx", ln_back_without_gamma,
          "feeds dout.T instead of (dout * gamma).T into the batch-norm backward, so dx misses the factor gamma.",
          test=LN),
    right(FW, "np.var and np.reciprocal", fw_np_var),
    right(BW, "closed form in the staged slot", bw_compact),
    Unseen("spatial_batchnorm", "direct (N, C, H, W) formulas",
           {"spatial_batchnorm_forward": sp_fw_direct, "spatial_batchnorm_backward": sp_bw_direct},
           SP, correct=True),
    Unseen("layernorm", "row-wise formulas",
           {"layernorm_forward": ln_fw_rows, "layernorm_backward": ln_bw_rows}, LN, correct=True),
]
