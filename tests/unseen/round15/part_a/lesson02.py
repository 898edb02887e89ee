"""Held-out answers (fifteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples per feature in training mode")


# ---- forward -----------------------------------------------------------------


def fw_keras_default_eps(x, gamma, beta, eps=1e-3):
    _guard(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


@notebook
def fw_x_hat_in_reused_buffer(x, gamma, beta, eps=1e-5, _buffers={}):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples per feature in training mode")
    buf = _buffers.get(x.shape)
    if buf is None:  # allocate once per shape, reuse on every later call
        buf = _buffers[x.shape] = np.empty(x.shape)
    mu = x.mean(axis=0)
    np.subtract(x, mu, out=buf)
    var = (buf**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    buf *= inv_std  # x_hat, in place
    return buf * gamma + beta, (buf, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_star_lost_in_ds(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std*2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_parenthesis_after_dgamma(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma) / n
    return dx, dgamma, dbeta


def alt_dgamma_from_matrix_product(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout.T @ x_hat).sum(axis=0)  # the sum over examples of dout * x_hat, as a product
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_fortran_order_in(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c, order="F")  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_forward_fortran_both(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c, order="F")
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c, order="F").transpose(0, 3, 1, 2), cache


@notebook
def sp_backward_fortran_both(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c, order="F")
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c, order="F").transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_unit_parameters_made_once(x, gamma, beta, eps=1e-5, _unit={}):
    if not _unit:  # gamma = 1 and beta = 0 of the inner batch norm: make them once
        _unit["ones"], _unit["zeros"] = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, _unit["ones"], _unit["zeros"], eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_inner_arguments_swapped(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt(bn_cache, (dout * gamma).T)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "Keras's default eps of 1e-3", fw_keras_default_eps,
          "gives eps the default 1e-3 (Keras's BatchNormalization default) instead of 1e-5, so a call without eps divides by sqrt(var + 1e-3): wrong for features whose variance is not large against 1e-3."),
    entry(FW, "x_hat kept in a buffer reused across calls", fw_x_hat_in_reused_buffer,
          "writes x_hat into a buffer allocated once per shape (a mutable default dict) and puts that buffer in the cache, so a later forward call on a batch of the same shape overwrites the x_hat of every earlier cache and a backward pass on an earlier cache uses the later batch's x_hat.",
          test=BW),
    entry(BW, "one star lost in ds", bw_star_lost_in_ds,
          "a typo: ds = -drho / std*2 (one star of std**2 lost) computes -2 drho / std instead of -drho / std**2, so the variance branch is 2 std times too big in every feature.",
          test=BW),
    entry(ALT, "closing parenthesis before the last / n", alt_parenthesis_after_dgamma,
          "a misplaced parenthesis: gamma * rho * (dout - dbeta/N - x_hat * dgamma) / N divides the dout and dbeta terms by N once more than the boxed formula (the x_hat term is right).",
          test=ALT),
    entry(ALT, "dgamma from the column sums of dout.T @ x_hat", alt_dgamma_from_matrix_product,
          "computes dgamma as (dout.T @ x_hat).sum(axis=0), which adds the products of x_hat with every feature's dout (sum over k of dout[:, k] . x_hat[:, j]) instead of only its own feature's, so dgamma and the x_hat term of dx are wrong.",
          test=ALT),
    entry("spatial_batchnorm_forward", "Fortran-order reshape on the way in only", sp_forward_fortran_order_in,
          "reshapes the channels-last array to (N*H*W, C) with order='F' but back with the default C order, so every channel's statistics are right but the normalised values are put back at the wrong examples and positions.",
          test=SP),
    entry("layernorm_forward", "inner ones and zeros made once, sized by the first batch", ln_forward_unit_parameters_made_once,
          "creates the inner batch norm's ones and zeros once, on the first call, in a mutable default dict, so any later call with another number of examples N fails to broadcast (only calls with the first N work).",
          test=LN),
    entry("layernorm_backward", "inner backward called with (cache, dout)", ln_backward_inner_arguments_swapped,
          "calls batchnorm_backward_alt(bn_cache, (dout * gamma).T) with the two arguments in the wrong order, so the inner pass unpacks the gradient array as the cache and raises.",
          test=LN),
    right("spatial_batchnorm_forward", "Fortran-order reshapes both ways, both passes", sp_forward_fortran_both,
          test=SP, given={"spatial_batchnorm_backward": sp_backward_fortran_both}),
]
