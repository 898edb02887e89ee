"""Held-out answers (eighteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def fw_keras_training_flag(x, gamma, beta, eps=1e-5, training=False):
    # as a Keras layer's call(inputs, training=None): inference unless told otherwise
    d = x.shape[1]
    if training:
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
        mu = x.mean(axis=0)
        var = ((x - mu) ** 2).mean(axis=0)
    else:
        mu, var = np.zeros(d), np.ones(d)  # the moving statistics as they start
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_variance_einsum_on_x(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.einsum("ij,ij->j", x, x) / n  # biased: divide by N
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_drho_from_dxc(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # x_hat = xc * rho
    dxc = dx_hat * inv_std
    drho = (dxc * xc).sum(axis=0)
    # rho = 1 / s,  s = sqrt(var + eps)
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_xc_not_recovered(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat  # the centred input
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


# ---- closed form --------------------------------------------------------------


def alt_plus_equals_typed_equals_plus(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = x_hat * (-dgamma / n)
    dx =+ dout  # noqa: E225
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def alt_cs231n_form_without_one_over_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def alt_centring_matrix(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    g = dout * gamma  # the gradient reaching x_hat
    centre = np.eye(n) - 1.0 / n  # I - 11^T / N: subtracts the batch mean
    dx = inv_std * (centre @ g - x_hat * (g * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# ---- spatial --------------------------------------------------------------------


def sp_forward_mean_without_keepdims(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    mu = x.mean(axis=(0, 2, 3))
    xc = x - mu
    var = (xc**2).mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    out = gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1)
    # the (N, D) backward's cache: columns of x_hat, one std per channel
    cache = (x_hat.transpose(0, 2, 3, 1).reshape(-1, c), std.ravel(), 1.0 / std.ravel(), gamma)
    return out, cache


@notebook
def sp_forward_shape_in_a_global(x, gamma, beta, eps=1e-5):
    global spatial_shape
    spatial_shape = x.shape  # the backward needs it to undo the reshape
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_backward_shape_from_the_global(dout, cache):
    n, c, h, w = spatial_shape  # noqa: F821  (set by the last forward call)
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_backward_cache_unpacked_gamma_first(dout, cache):
    gamma, x_hat, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


@notebook
def ln_forward_ones_and_zeros_swapped(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, zeros, ones, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


ENTRIES = [
    entry(FW, "Keras-style training flag, False by default", fw_keras_training_flag,
          "adds a training argument that defaults to False (as a Keras layer runs in inference mode unless told), so called as the exercise calls it, it normalises with the moving statistics' initial values (mean 0, variance 1) instead of the batch's, and does not refuse N = 1."),
    entry(FW, "variance einsum on x instead of the centred x", fw_variance_einsum_on_x,
          "computes the variance as einsum('ij,ij->j', x, x) / N on the raw input instead of the centred one, so var is the mean of squares E[x^2] (too large by mu^2) and the output is shrunk wherever the mean is not 0."),
    entry(BW, "drho taken from dxc (already times rho)", bw_drho_from_dxc,
          "at x_hat = xc * rho it sums dxc * xc (the gradient after the multiplication by rho) instead of dx_hat * xc for drho, so the variance branch is rho = 1/sqrt(var + eps) times what it should be.",
          test=BW),
    entry(BW, "xc not recovered: the cached x_hat used as the centred input", bw_xc_not_recovered,
          "takes the cached x_hat as the centred input (xc = x_hat) instead of recovering xc = x_hat * std, so drho and the variance branch each lack a factor std: the variance branch is 1/std^2 times what it should be.",
          test=BW),
    entry(ALT, "=+ typed for += (dx =+ dout)", alt_plus_equals_typed_equals_plus,
          "a typo: `dx =+ dout` instead of `dx += dout` rebinds dx to +dout, throwing away the x_hat * dgamma / N term computed just before, so dx lacks that term (dgamma and dbeta are right).",
          test=ALT),
    entry(ALT, "CS231n form without its 1/N", alt_cs231n_form_without_one_over_n,
          "writes the form gamma * rho * (N dout - dbeta - x_hat dgamma) but leaves out its leading 1/N, so dx is N times too large (dgamma and dbeta are right).",
          test=ALT),
    entry("spatial_batchnorm_forward", "channel means without keepdims (4-D formulas)", sp_forward_mean_without_keepdims,
          "takes the channel means with x.mean(axis=(0, 2, 3)) without keepdims=True (shape (C,)), so x - mu broadcasts the means along W instead of C: it raises unless W == C (or C == 1), and gives wrong values when W == C.",
          test=SP),
    entry("spatial_batchnorm_backward", "shape kept in a global by the forward", sp_backward_shape_from_the_global,
          "reads N, C, H, W from a global that the forward sets on each call instead of from dout, so a backward pass on the cache of an earlier forward call, after a forward call on a batch of another shape, reshapes with the wrong shape (it raises or scrambles).",
          test=SP, given={"spatial_batchnorm_forward": sp_forward_shape_in_a_global}),
    entry("layernorm_backward", "cache unpacked as (gamma, x_hat, bn_cache)", ln_backward_cache_unpacked_gamma_first,
          "unpacks the layer-norm cache as gamma, x_hat, bn_cache although the forward stores (x_hat, gamma, bn_cache), so dgamma sums dout * gamma and the gradient passed to the inner backward is dout * x_hat (dbeta is right).",
          test=LN),
    entry("layernorm_forward", "inner ones and zeros passed in the other order", ln_forward_ones_and_zeros_swapped,
          "passes (zeros, ones) instead of (ones, zeros) as the inner batch norm's gamma and beta, so the inner output, taken as x_hat, is all ones: the output is gamma + beta whatever x is (and the inner cache holds gamma = 0).",
          test=LN),
    right(ALT, "centring matrix I - 11^T/N", alt_centring_matrix, test=ALT),
]
