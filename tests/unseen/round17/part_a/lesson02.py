"""Held-out answers (seventeenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def fw_runtime_error_for_one_example(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:  # as PyTorch's kernels complain
        raise RuntimeError(f"Expected more than 1 value per channel when training, got N={n}")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_divides_by_inv_std(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc / inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_floor_division_in_the_variance_branch(dout, cache):
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
    dxc = dxc + 2.0 * xc * dvar // n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_gamma_as_a_column(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma[:, None]  # one scale per feature
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_dbeta_after_the_scaling(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = x_hat * (-dgamma / n)
    dx += dout
    dx *= gamma * inv_std
    dx -= dbeta / n
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_backward_parameters_summed_again(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    # gamma and beta are shared by every image and position: sum their gradients
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma.sum(), dbeta.sum()


@notebook
def sp_forward_through_positions(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.reshape(n, c, h * w).transpose(0, 2, 1).reshape(-1, c)  # (N*H*W, C)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h * w, c).transpose(0, 2, 1).reshape(n, c, h, w), cache


@notebook
def sp_backward_through_positions(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.reshape(n, c, h * w).transpose(0, 2, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h * w, c).transpose(0, 2, 1).reshape(n, c, h, w), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_zeros_left_out(x, gamma, beta, eps=1e-5):
    ones = np.ones(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_forward_bert_eps(x, gamma, beta, eps=1e-12):  # layer_norm_eps of BERT's config
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


ENTRIES = [
    entry(FW, "RuntimeError for N = 1", fw_runtime_error_for_one_example,
          "raises RuntimeError (as PyTorch's kernels do for many errors) instead of the ValueError the exercise asks for when the batch has one example."),
    entry(FW, "x_hat divided by inv_std", fw_divides_by_inv_std,
          "divides the centred input by inv_std instead of multiplying by it (x_hat = xc / inv_std), so x_hat and the output are the centred input times the standard deviation, not divided by it."),
    entry(BW, "floor division in the variance branch", bw_floor_division_in_the_variance_branch,
          "types // for / in the variance branch (2.0 * xc * dvar // n), so the branch is floored to whole numbers instead of divided by N.",
          test=BW),
    entry(BW, "gamma as a column in dx_hat", bw_gamma_as_a_column,
          "multiplies dout by gamma[:, None] (a column) instead of gamma, so dx_hat broadcasts only when N == D (then each example is scaled by a feature's gamma) and raises otherwise.",
          test=BW),
    entry(ALT, "dbeta subtracted after the scaling line", alt_dbeta_after_the_scaling,
          "subtracts dbeta / N after the in-place line that multiplies by gamma * inv_std, so the dbeta term of dx is not scaled by gamma * inv_std.",
          test=ALT),
    entry("spatial_batchnorm_backward", "dgamma and dbeta summed again to scalars", sp_backward_parameters_summed_again,
          "sums the inner backward's dgamma and dbeta once more (over the channels), so they come back as two scalars, the totals over all channels, instead of one value per channel.",
          test=SP),
    entry("layernorm_forward", "zeros left out of the inner call (eps lands in beta)", ln_forward_zeros_left_out,
          "leaves the zeros out of batchnorm_forward(x.T, ones, eps), so eps is taken as the inner beta (every x_hat shifted by eps) and the inner batch norm runs with its default eps whatever eps is given.",
          test=LN),
    entry("layernorm_forward", "BERT's layer_norm_eps 1e-12 as the default eps", ln_forward_bert_eps,
          "gives eps the default 1e-12 (BERT's layer_norm_eps) instead of 1e-5, so a call without eps normalises with sqrt(var + 1e-12).",
          test=LN),
    right("spatial_batchnorm_forward", "through (N, C, H*W) and back, both passes", sp_forward_through_positions,
          test=SP, given={"spatial_batchnorm_backward": sp_backward_through_positions}),
]
