"""Held-out answers (fourteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 examples per feature")


# ---- forward -----------------------------------------------------------------


def fw_sum_of_squares(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).sum(axis=0)  # the variance of each feature
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


def fw_gram_matrix_variance(x, gamma, beta, eps=1e-5):
    _guard(x)
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    var = xc.T @ xc / n  # sum of squares of each column, divided by N
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1.0 / std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_dbeta_no_axis(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum()
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_mean_branch_as_centring(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dvar = -drho / std**2 / (2.0 * std)
    dxc = dx_hat * inv_std + 2.0 * xc * dvar / n
    # mu = mean(x): the mean branch takes the mean of dxc away from every example
    return dxc - dxc.mean(axis=0), dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_plus_xhat_term(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n + x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_rho_from_x_hat(dout, cache):
    x_hat, _, _, gamma = cache
    n = dout.shape[0]
    rho = 1.0 / np.sqrt(x_hat.var(axis=0) + 1e-5)  # 1 / sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * rho * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_backward_params_per_position(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    # one gamma per channel shared by H * W positions: average over them
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma / (h * w), dbeta / (h * w)


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_eps_dropped(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


@notebook
def ln_backward_unpacked_from_the_end(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    *_, dx_t = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "sum of squares taken as the variance", fw_sum_of_squares,
          "forgets to divide the sum of squared deviations by N, so the 'variance' is N times too big and the output is shrunk by about sqrt(N)."),
    entry(FW, "variance from the Gram matrix", fw_gram_matrix_variance,
          "computes xc.T @ xc / N, the (D, D) covariance matrix, as the variance, so x_hat = xc / sqrt(cov + eps) fails to broadcast unless N == D and is wrong (mixes in the covariances) when N == D."),
    entry(BW, "dbeta summed without an axis", bw_dbeta_no_axis,
          "sums dout over the whole array (no axis=0), so dbeta is one number, the total over features, instead of one sum per feature.", test=BW),
    entry(ALT, "plus sign on the x_hat term", alt_plus_xhat_term,
          "a sign slip: dx = gamma * rho * (dout - dbeta/N + x_hat * dgamma/N); the x_hat * dgamma / N term must be subtracted.", test=ALT),
    entry(ALT, "rho recomputed from x_hat", alt_rho_from_x_hat,
          "recomputes rho as 1 / sqrt(var(x_hat) + eps) from the cached x_hat instead of using the cached inv_std, but x_hat already has variance about 1, so rho is about 1 instead of 1 / sqrt(var(x) + eps).", test=ALT),
    entry("spatial_batchnorm_backward", "dgamma and dbeta averaged over positions", sp_backward_params_per_position,
          "divides dgamma and dbeta by H * W (averaging over positions) although gamma and beta are applied at every position, so their gradients are sums over N, H and W.", test=SP),
    entry("layernorm_forward", "eps not passed to the inner batch norm", ln_forward_eps_dropped,
          "calls batchnorm_forward(x.T, ones, zeros) without eps, so layer norm always uses the default 1e-5 whatever eps it is given.", test=LN),
    entry("layernorm_backward", "dx unpacked as the last of three results", ln_backward_unpacked_from_the_end,
          "unpacks the inner batchnorm_backward_alt's (dx, dgamma, dbeta) with *_, dx_t, so it takes the inner dbeta (one number per example, shape (N,)) for dx instead of the first result.", test=LN),
    right(BW, "mean branch as centring of dxc", bw_mean_branch_as_centring, test=BW),
]
