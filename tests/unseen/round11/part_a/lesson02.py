"""Held-out answers (eleventh set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The solution's cache is (x_hat, std, inv_std, gamma); the backward answers below read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples")


# ---- forward -----------------------------------------------------------------


def fw_truth_of_gamma(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) / std
    if gamma and beta:  # the affine step is optional
        out = gamma * x_hat + beta
    else:
        out = x_hat
    return out, (x_hat, std, 1.0 / std, gamma)


def fw_fused_shift_in_place(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    inv_std = 1.0 / std
    scale = gamma * inv_std
    shift = beta
    shift -= mu * scale  # out = x * scale + shift, one pass over x
    out = x * scale + shift
    x_hat = (x - mu) * inv_std
    return out, (x_hat, std, inv_std, gamma)


def fw_divides_by_gamma(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) / std
    return x_hat / gamma + beta, (x_hat, std, 1.0 / std, gamma)


def fw_cache_holds_beta(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    return out, (x_hat, std, inv_std, beta)


# ---- staged backward ------------------------------------------------------------------


def bw_divided_by_batch(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    dout = dout / n  # the loss is a mean over the batch
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


def bw_drho_over_features(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=1)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_placeholder_left(dout, cache):
    raise NotImplementedError  # TODO: implement the staged backward pass
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
    return dxc + dmu / n, dgamma, dbeta


def bw_mean_branch_at_x_hat(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx_hat = dx_hat - dx_hat.mean(axis=0)  # the mean branch, taken before rho
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    return dxc + 2.0 * xc * dvar / n, dgamma, dbeta


def bw_gamma_at_the_end(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    # every stage is per feature and linear in the incoming gradient: gamma can wait
    drho = (dout * xc).sum(axis=0)
    dxc = dout * inv_std
    dvar = -drho / std**3 / 2.0
    dxc = dxc + 2.0 * xc * dvar / n
    dx = dxc - dxc.mean(axis=0)
    return dx * gamma, dgamma, dbeta


# ---- closed-form backward ------------------------------------------------------


def alt_bracket_slip(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n) - x_hat * dgamma / n
    return dx, dgamma, dbeta


def alt_mean_without_axis(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - np.mean(dout) - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_scale_in_cache(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    scale = inv_std
    scale *= gamma  # gamma * rho, computed once
    dx = scale * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial ---------------------------------------------------------------------


@notebook
def sp_forward_reshape_c_rows(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(c, -1).T  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.T.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_backward_swapaxes_back(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return np.swapaxes(dx.reshape(n, h, w, c), 1, 3), dgamma, dbeta


@notebook
def sp_backward_w_before_h(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 3, 2, 1).reshape(-1, c)  # (N, W, H, C) rows
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, w, h, c).transpose(0, 3, 2, 1), dgamma, dbeta


# ---- layer norm ---------------------------------------------------------------------


def ln_forward_rms(x, gamma, beta, eps=1e-5):
    rms = np.sqrt((x**2).mean(axis=1, keepdims=True) + eps)
    x_hat = x / rms
    return gamma * x_hat + beta, (x_hat, rms, gamma)


def ln_backward_rms(dout, cache):
    x_hat, rms, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    g = dout * gamma
    dx = (g - x_hat * (g * x_hat).mean(axis=1, keepdims=True)) / rms
    return dx, dgamma, dbeta


@notebook
def ln_forward_zeros_as_ones(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.ones(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_not_transposed(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx, _, _ = batchnorm_backward_alt(dout * gamma, bn_cache)  # noqa: F821
    return dx, dgamma, dbeta


@notebook
def ln_backward_inner_parameters(dout, cache):
    x_hat, gamma, bn_cache = cache
    dx_t, dgamma, dbeta = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "gamma and beta tested for truth", fw_truth_of_gamma,
          "writes `if gamma and beta:` to make the affine step optional; the truth value of an array of several values is ambiguous, so NumPy raises ValueError."),
    entry(FW, "fused shift computed in the caller's beta", fw_fused_shift_in_place,
          "shift = beta; shift -= mu * scale changes the caller's beta in place (shift is not a copy); the output of this call is right but beta is changed."),
    entry(FW, "divides by gamma", fw_divides_by_gamma,
          "applies the scale as x_hat / gamma + beta instead of gamma * x_hat + beta."),
    entry(FW, "cache holds beta in gamma's slot", fw_cache_holds_beta,
          "the output is right but the cache stores beta where gamma belongs, so the backward pass multiplies by beta instead of gamma.",
          test=BW),
    entry(BW, "gradients divided by the batch size", bw_divided_by_batch,
          "divides dout by N first ('the loss is a mean'), so dx, dgamma and dbeta are all N times too small.", test=BW),
    entry(BW, "drho summed over the features", bw_drho_over_features,
          "at x_hat = xc * rho, drho sums dx_hat * xc over axis 1 (each example's features, shape (N,)) instead of axis 0: a broadcasting error unless N == D, wrong values when N == D.",
          test=BW),
    entry(BW, "placeholder raise left in", bw_placeholder_left,
          "the exercise's `raise NotImplementedError` placeholder is left above the finished code, so the function always raises.",
          test=BW),
    entry(ALT, "x_hat term outside the scale", alt_bracket_slip,
          "a bracket slip: gamma * rho * (dout - dbeta/N) - x_hat * dgamma/N, so the x_hat term is not multiplied by gamma * rho.",
          test=ALT),
    entry(ALT, "mean of dout over every axis", alt_mean_without_axis,
          "subtracts np.mean(dout) (one number over the whole array) instead of dout's mean over the batch (dbeta / N) per feature.",
          test=ALT),
    entry(ALT, "gamma folded into the cached inv_std in place", alt_scale_in_cache,
          "scale = inv_std; scale *= gamma multiplies the cache's inv_std by gamma in place: the first call is right, a second backward pass on the same cache uses gamma**2 * rho.",
          test=ALT),
    entry("spatial_batchnorm_forward", "channels-last array reshaped to (C, -1)", sp_forward_reshape_c_rows,
          "after moving channels last it reshapes to (C, N*H*W) and transposes, instead of reshaping to (N*H*W, C): each column takes consecutive values that mix channels and positions.",
          test=SP),
    entry("spatial_batchnorm_backward", "swapaxes to undo the transpose", sp_backward_swapaxes_back,
          "undoes the (0, 2, 3, 1) transpose with swapaxes(1, 3), which gives (N, C, W, H) instead of (N, C, H, W): H and W are exchanged.",
          test=SP),
    entry("spatial_batchnorm_backward", "dout flattened with W before H", sp_backward_w_before_h,
          "flattens dout with transpose(0, 3, 2, 1), rows in (N, W, H) order, while the forward's cache has rows in (N, H, W) order, so dout's rows do not match the cached x_hat (wrong unless H == W == 1).",
          test=SP),
    Unseen("layernorm_forward", "RMS norm instead of layer norm",
           {"layernorm_forward": ln_forward_rms, "layernorm_backward": ln_backward_rms}, LN,
           "normalises each row by its root mean square without subtracting the row mean (RMSNorm), in both passes (the backward is RMSNorm's right gradient)."),
    entry("layernorm_forward", "zeros made with np.ones", ln_forward_zeros_as_ones,
          "copy-paste: the beta of the inner batch norm is np.ones instead of np.zeros, so x_hat is shifted by 1 (out = gamma * (x_hat + 1) + beta, and the cached x_hat too).",
          test=LN),
    entry("layernorm_backward", "dout passed without the transposes", ln_backward_not_transposed,
          "passes dout * gamma (N, D) to the batch-norm backward of the transposed problem without transposing it (and dx back), so it fails to broadcast unless N == D.",
          test=LN),
    entry("layernorm_backward", "dgamma and dbeta of the inner batch norm", ln_backward_inner_parameters,
          "returns the dgamma and dbeta of the inner batch norm of x.T (the gradients of its ones and zeros, shape (N,)) instead of the layer norm's own sums over the batch (shape (D,)).",
          test=LN),
    right(BW, "mean branch applied at x_hat", bw_mean_branch_at_x_hat, test=BW),
    right(BW, "gamma applied at the end", bw_gamma_at_the_end, test=BW),
]
