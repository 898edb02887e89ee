"""Held-out answers (tenth set, part a), lesson 02: batchnorm_forward,
batchnorm_backward (staged), batchnorm_backward_alt (closed form),
spatial_batchnorm_forward/backward, layernorm_forward/backward."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(n):
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples, got N={n}")


# ---- batchnorm_forward ----------------------------------------------------------


def fw_scalar_gamma(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    _guard(n)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    out = gamma[0] * x_hat + beta  # gamma read as one scale
    return out, (x_hat, std, 1.0 / std, gamma)


def fw_einsum_batch_index(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    _guard(n)
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.einsum("ij,ij->i", xc, xc) / n  # meant "ij,ij->j"
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_squared_in_place(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    _guard(n)
    mu = x.mean(axis=0)
    xc = x - mu
    sq = xc
    sq **= 2  # squares xc itself: sq is the same array
    var = sq.mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


# ---- batchnorm_backward (staged) ---------------------------------------------------


def bw_direct_branch_times_s(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * std  # local gradient of xc * rho taken as s
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_mean_branch_n_minus_1(dout, cache):
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
    return dxc + dmu / (n - 1), dgamma, dbeta


def bw_gamma_averaged(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma.mean()  # one scale for the layer
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_cache_std_as_var(dout, cache, eps=1e-5):
    x_hat, var, inv_std, gamma = cache  # second entry read as the variance
    std = np.sqrt(var + eps)
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


# ---- batchnorm_backward_alt (closed form) ------------------------------------------


def alt_dout_centred_in_place(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dout -= dout.mean(axis=0)  # the mean term first, in place
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_loop_misses_last_feature(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n, d = dout.shape
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = np.zeros_like(dout)
    for j in range(d - 1):
        dx[:, j] = gamma[j] * inv_std[j] * (dout[:, j] - dbeta[j] / n - x_hat[:, j] * dgamma[j] / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


def sp_forward_per_width(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    _guard(n)
    mu = x.mean(axis=(0, 2), keepdims=True)  # meant (0, 2, 3)
    var = ((x - mu) ** 2).mean(axis=(0, 2), keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    g, b = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
    return g * x_hat + b, (x_hat, std, 1.0 / std, gamma)


@notebook
def sp_forward_refuses_one_image(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples, got N={n}")
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_backward_reshaped_w_h(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, w, h, c).transpose(0, 3, 2, 1), dgamma, dbeta


@notebook
def sp_backward_param_grads_4d(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    dx = dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return dx, dgamma.reshape(1, c, 1, 1), dbeta.reshape(1, c, 1, 1)  # like x's layout


# ---- layer norm -----------------------------------------------------------------


def ln_forward_whole_batch(x, gamma, beta, eps=1e-5):
    mu = x.mean()
    std = np.sqrt(x.var() + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, gamma, std)


def ln_backward_for_whole_batch(dout, cache):
    # the exact backward of the forward above: the forward is the mistake
    x_hat, gamma, std = cache
    g = dout * gamma
    dx = (g - g.mean() - x_hat * (g * x_hat).mean()) / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def ln_backward_x_hat_from_bn_cache(dout, cache):
    x_hat, gamma, bn_cache = cache
    x_hat = bn_cache[0]  # the normalised values, straight from batch norm's cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ln_backward_x_hat_from_bn_cache = notebook(ln_backward_x_hat_from_bn_cache)


# ---- correct alternatives ---------------------------------------------------------


def bw_dmu_with_zero_term(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dxc_direct = dx_hat * inv_std
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * inv_std**3
    # mu reaches var too: dvar * mean(-2 xc), which is 0 but belongs to the graph
    dmu = -dxc_direct.sum(axis=0) + dvar * (-2.0 * xc).mean(axis=0)
    dx = dxc_direct + dvar * 2.0 * xc / n + dmu / n
    return dx, dgamma, dbeta


def alt_mean_form(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def sp_forward_axes(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    g = gamma[None, :, None, None]
    return g * x_hat + beta[None, :, None, None], (x_hat, inv_std, g)


def sp_backward_axes(dout, cache):
    x_hat, inv_std, g = cache
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx = g * inv_std * (dout - dbeta[None, :, None, None] / m
                        - x_hat * dgamma[None, :, None, None] / m)
    return dx, dgamma, dbeta


ENTRIES = [
    entry(FW, "gamma read as one scale", fw_scalar_gamma,
          "multiplies every feature by gamma[0] instead of by its own gamma (beta is right)."),
    entry(FW, "einsum keeps the batch index", fw_einsum_batch_index,
          "writes np.einsum('ij,ij->i', ...) instead of 'ij,ij->j', so the variance is per example (shape (N,)) instead of per feature; it raises unless N == D."),
    entry(FW, "centred array squared in place", fw_squared_in_place,
          "squares the centred array in place (sq = xc; sq **= 2) to get the variance, then normalises the squared values instead of the centred ones."),
    entry(BW, "direct branch multiplied by s", bw_direct_branch_times_s,
          "at x_hat = xc * rho, the direct branch dxc is dx_hat * s (the standard deviation) instead of dx_hat * rho (its inverse).", test=BW),
    entry(BW, "mean branch over N - 1", bw_mean_branch_n_minus_1,
          "the mean stage adds dmu / (N - 1) instead of dmu / N.", test=BW),
    entry(BW, "gamma averaged over the features", bw_gamma_averaged,
          "dx_hat is dout * gamma.mean() (one scale) instead of dout * gamma per feature.", test=BW),
    entry(BW, "cached std read as the variance", bw_cache_std_as_var,
          "reads the cache's second entry (the standard deviation) as the variance and recomputes s = sqrt(that + eps), so xc and the variance stages use a wrong s (the direct branch uses the cached 1/s).", test=BW),
    entry(ALT, "dout centred in place", alt_dout_centred_in_place,
          "subtracts dout's mean from dout in place: the caller's dout is changed and dbeta, summed afterwards, is 0 (dx and dgamma are right).", test=ALT),
    entry(ALT, "feature loop stops one early", alt_loop_misses_last_feature,
          "the per-feature loop runs over range(D - 1), so the last feature's dx stays 0.", test=ALT),
    entry("spatial_batchnorm_forward", "statistics per channel and width", sp_forward_per_width,
          "takes the mean and variance over axes (0, 2) (N and H) instead of (0, 2, 3), so every (channel, width column) gets its own statistics.",
          test=SP),
    entry("spatial_batchnorm_forward", "single image refused", sp_forward_refuses_one_image,
          "raises ValueError when N = 1, though one image has H * W values per channel and batch norm over N, H, W is defined.",
          test=SP),
    entry("spatial_batchnorm_backward", "dx reshaped as (N, W, H, C)", sp_backward_reshaped_w_h,
          "reshapes the dx columns to (N, W, H, C) and transposes with (0, 3, 2, 1) instead of reshaping to (N, H, W, C) and transposing with (0, 3, 1, 2), so the positions are scrambled when H != W.",
          test=SP),
    entry("spatial_batchnorm_backward", "dgamma and dbeta as (1, C, 1, 1)", sp_backward_param_grads_4d,
          "returns dgamma and dbeta reshaped to (1, C, 1, 1) instead of shape (C,) like gamma and beta.",
          test=SP),
    entry("layernorm_forward", "statistics of the whole batch", ln_forward_whole_batch,
          "normalises with one mean and variance over the whole batch (all rows and features) instead of each row's own.",
          test=LN, given={"layernorm_backward": ln_backward_for_whole_batch}),
    entry("layernorm_backward", "x_hat taken from batch norm's cache", ln_backward_x_hat_from_bn_cache,
          "computes dgamma with the x_hat stored in batch norm's cache, which is the transposed (D, N) array, instead of the (N, D) x_hat of the layer-norm cache; it raises unless N == D.",
          test=LN),
    right(BW, "dmu with the variance's zero term", bw_dmu_with_zero_term, test=BW),
    right(ALT, "means instead of sums over N", alt_mean_form, test=ALT),
    right("spatial_batchnorm_forward", "axis formulas for both passes", sp_forward_axes, test=SP,
          given={"spatial_batchnorm_backward": sp_backward_axes}),
]
