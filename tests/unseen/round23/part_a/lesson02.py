"""Held-out answers (twenty-third set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def _guard(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    return n


def fw_gamma_broadcast_then_in_place(x, gamma, beta, eps=1e-5):
    n = _guard(x)
    mu = x.mean(axis=0)
    x_hat = x - mu
    var = (x_hat**2).sum(axis=0) / n
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat *= inv_std
    out = np.broadcast_to(gamma, x.shape)  # gamma for every example, spelled out
    out *= x_hat  # in place: no temporary array (section 5)
    out += beta
    return out, (x_hat, std, inv_std, gamma)


def fw_one_pass_variance(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    var = (x * x).mean(axis=0) - mu * mu  # one pass: E[x^2] - E[x]^2
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_dxc_typed_for_xc(dout, cache):
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
    dxc = dxc + 2.0 * dxc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_drho_typed_for_rho(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    rho = inv_std
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # x_hat = xc * rho
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * drho
    # rho = 1 / s,  s = sqrt(var + eps)
    ds = -drho * rho**2
    dvar = ds * rho / 2.0
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_variance_branch_added_last(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc_direct = dx_hat * inv_std
    dmu = -dxc_direct.sum(axis=0)
    # the variance branch sums to 0 over the batch (xc does), so the mean stage needs none of it
    dx = dxc_direct + dmu / n + 2.0 * xc * dvar / n
    return dx, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_sum_g_taken_as_dbeta(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    g = gamma * dout  # the gradient reaching x_hat
    # dx = rho / m * (m g - sum(g) - x_hat * sum(g x_hat)), sum(g x_hat) = gamma * dgamma
    dx = inv_std / n * (n * g - dbeta - x_hat * gamma * dgamma)
    return dx, dgamma, dbeta


def alt_pytorch_kernel_with_x_hat(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dot_p = (dout * x_hat).sum(axis=0)
    dgamma = dot_p
    # as PyTorch's CPU kernel: k = dot_p * invstd^2 / N, dx = (dy - mean(dy) - (x - mean) * k) * invstd * w
    k = dot_p * inv_std * inv_std / n
    dx = (dout - dbeta / n - x_hat * k) * inv_std * gamma
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_torch_style_transpose(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(1, 3).reshape(-1, c)  # swap C and W: channels last
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, w, h, c).transpose(1, 3), cache


@notebook
def sp_backward_swapaxes(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.swapaxes(1, 3).reshape(-1, c)  # (N, W, H, C): channels last
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, w, h, c).swapaxes(1, 3), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_without_beta(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat, (x_hat, gamma, bn_cache)


def ln_backward_means_over_the_batch(dout, cache):
    x_hat, gamma, bn_cache = cache
    inv_std = bn_cache[2]  # one per row
    g = dout * gamma
    dx = inv_std[:, None] * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


ENTRIES = [
    entry(FW, "np.broadcast_to(gamma) scaled in place", fw_gamma_broadcast_then_in_place,
          "spells gamma out for every example with np.broadcast_to(gamma, x.shape), which returns a read-only view, and then scales it in place (out *= x_hat), so every call raises ValueError ('output array is read-only')."),
    entry(FW, "one-pass variance mean(x**2) - mu**2", fw_one_pass_variance,
          "computes the variance in one pass as mean(x * x) - mu * mu, which cancels the leading digits when a feature's mean is large against its spread, so for such features var, the cached std and out lose precision (about 1e-6 relative at mean 1e4 and std 0.1); the formula is otherwise right."),
    entry(BW, "dxc typed for xc in the variance branch", bw_dxc_typed_for_xc,
          "types dxc for xc in the variance branch (dxc = dxc + 2.0 * dxc * dvar / n), so the second branch into xc is built from the gradient instead of the centred input: dx is wrong; dgamma and dbeta are right.",
          test=BW),
    entry(BW, "drho typed for rho in the direct branch", bw_drho_typed_for_rho,
          "types drho for rho in the direct branch (dxc = dx_hat * drho instead of dx_hat * rho), so the first branch into xc is scaled by the summed gradient drho instead of 1/std: dx is wrong; dgamma and dbeta are right.",
          test=BW),
    right(BW, "variance branch added to dx last (its batch sum is 0)", bw_variance_branch_added_last, test=BW),
    entry(ALT, "sum of g taken as dbeta (gamma lost in the mean term)", alt_sum_g_taken_as_dbeta,
          "writes the derivation's last line with g = gamma * dout but uses dbeta for sum(g) (which is gamma * dbeta), dx = rho/m (m g - dbeta - x_hat gamma dgamma), so the mean term lacks its factor gamma: dx is wrong wherever gamma != 1; dgamma and dbeta are right.",
          test=ALT),
    entry(ALT, "PyTorch's CPU kernel ported with x_hat for x - mean", alt_pytorch_kernel_with_x_hat,
          "ports PyTorch's CPU kernel (dx = (dy - mean(dy) - (x - mean) * k) * invstd * weight, k = dot_p * invstd**2 / N) with x_hat in place of x - mean, so the x_hat term carries an extra factor 1/(var + eps): dx is wrong (right only where var + eps = 1); dgamma and dbeta are right.",
          test=ALT),
    entry("spatial_batchnorm_forward", "x.transpose(1, 3) as in PyTorch", sp_forward_torch_style_transpose,
          "moves the channels last with x.transpose(1, 3), PyTorch's Tensor.transpose(dim0, dim1) that swaps two axes; NumPy's transpose takes a whole permutation, so every call raises ValueError ('axes don't match array').",
          test=SP),
    entry("spatial_batchnorm_backward", "dout moved with swapaxes(1, 3): rows in (N, W, H) order", sp_backward_swapaxes,
          "moves dout's channels last with swapaxes(1, 3), which orders the rows (N, W, H), while the forward's cache holds x_hat in (N, H, W) order (transpose(0, 2, 3, 1)), so dout's rows do not line up with x_hat's: dx and dgamma are wrong (dbeta is right) whenever H and W are both above 1.",
          test=SP),
    entry("layernorm_forward", "beta left out of the output", ln_forward_without_beta,
          "leaves beta out of the output (returns gamma * x_hat), so out is off by beta in every row; the cache, and the gradients read from it, are right.",
          test=LN),
    entry("layernorm_backward", "closed form with batch norm's means over axis 0", ln_backward_means_over_the_batch,
          "writes layer norm's closed form with batch norm's means over the batch, g.mean(axis=0) and (g * x_hat).mean(axis=0), instead of each row's means over its features (axis=1, keepdims), so dx is wrong; dgamma and dbeta are right.",
          test=LN),
]
