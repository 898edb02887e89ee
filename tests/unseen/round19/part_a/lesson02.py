"""Held-out answers (nineteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def fw_guard_on_a_zero_variance(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    if np.any(var == 0):  # one example: its variance is 0 and it cannot be normalised
        raise ValueError("batch norm cannot normalise a feature whose batch variance is 0 (one example?)")
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_output_cast_to_float32(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    out = gamma * x_hat + beta
    return out.astype(np.float32), (x_hat, std, inv_std, gamma)  # float32, as PyTorch's layers give


# ---- staged backward -----------------------------------------------------------


def bw_batch_size_from_shape_1(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[1]  # the batch size
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


def bw_ds_divided_by_rho_squared(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    # rho = 1 / s
    ds = -drho / inv_std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_var_power_on_the_std(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    # rho = (var + eps) ** -1/2, so drho/dvar = -1/2 (var + eps) ** -3/2
    dvar = -0.5 * drho * std**-1.5
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_dbeta_einsum_subscripts_typo(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = np.einsum("ij->i", dout)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = x_hat * (-dgamma / n)
    dx += dout
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_square_maps_assumed(x, gamma, beta, eps=1e-5):
    n, c, h = x.shape[:3]
    w = h  # square feature maps
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_forward_keeps_the_channels_last_shape(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    xt = x.transpose(0, 2, 3, 1)  # (N, H, W, C)
    out, cache = batchnorm_forward(xt.reshape(-1, c), gamma, beta, eps)  # noqa: F821
    return out.reshape(xt.shape).transpose(0, 3, 1, 2), (cache, xt.shape)


@notebook
def sp_backward_shape_unpacked_as_nchw(dout, cache):
    bn_cache, shape = cache
    n, c, h, w = shape  # the shape the forward kept
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, bn_cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


@notebook
def sp_backward_through_the_transpose_of_dx(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    # rows of dx run over (n, h, w): as (C, N, H, W) after a transpose, then C back to axis 1
    return dx.T.reshape(c, n, h, w).transpose(1, 0, 2, 3), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_inner_cache_in_a_global(x, gamma, beta, eps=1e-5):
    global ln_inner_cache
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, ln_inner_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma)


@notebook
def ln_backward_inner_cache_from_the_global(dout, cache):
    x_hat, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, ln_inner_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "guard on a zero variance instead of N", fw_guard_on_a_zero_variance,
          "refuses the batch when any feature's variance is exactly 0 instead of when N < 2, so a batch of two or more examples with a constant feature (a legitimate input, whose output for that feature is beta) raises ValueError; N = 1 is refused as it should be."),
    entry(FW, "output cast to float32", fw_output_cast_to_float32,
          "returns the output cast to float32 (PyTorch's default dtype), so for float64 input it carries float32 rounding (about 1e-7 relative); the cache is right."),
    entry(BW, "batch size from dout.shape[1]", bw_batch_size_from_shape_1,
          "takes the batch size as dout.shape[1] (the number of features D) instead of dout.shape[0], so the variance branch and the mean branch are divided by D instead of N; right only when N == D (dgamma and dbeta are right).",
          test=BW),
    entry(BW, "ds divided by rho squared", bw_ds_divided_by_rho_squared,
          "at the stage rho = 1/s it divides drho by rho squared (inv_std ** 2) instead of by s squared (std ** 2), so ds and the variance branch are s^4 times what they should be (dgamma and dbeta are right).",
          test=BW),
    entry(BW, "(var + eps)^(-3/2) written on the std", bw_var_power_on_the_std,
          "merges the two stages into dvar = -1/2 drho (var + eps)^(-3/2) but puts the power on the cached std (std ** -1.5) instead of on var + eps = std ** 2 (std ** -3), so the variance branch is std^1.5 times what it should be (dgamma and dbeta are right).",
          test=BW),
    entry(ALT, "dbeta einsum subscripts 'ij->i'", alt_dbeta_einsum_subscripts_typo,
          "writes dbeta's einsum as 'ij->i' instead of 'ij->j', so dbeta sums each example's row (shape (N,)) instead of each feature's column: the dbeta term of dx fails to broadcast unless N == D, and dbeta and dx are wrong when N == D (dgamma is right).",
          test=ALT),
    entry("spatial_batchnorm_forward", "square maps assumed (W taken as H)", sp_forward_square_maps_assumed,
          "takes W equal to H (square feature maps, as in CIFAR) when reshaping the output back to 4-D, so it raises for maps with H != W; square maps are right.",
          test=SP),
    entry("spatial_batchnorm_backward", "channels-last shape unpacked as (N, C, H, W)", sp_backward_shape_unpacked_as_nchw,
          "unpacks the shape its forward kept, which is the channels-last (N, H, W, C), as n, c, h, w, so C is read as H (and H as W, W as C): the backward reshapes with the wrong channel count and raises, unless C == H == W.",
          test=SP, given={"spatial_batchnorm_forward": sp_forward_keeps_the_channels_last_shape}),
    entry("layernorm_backward", "inner cache kept in a global by the forward", ln_backward_inner_cache_from_the_global,
          "reads the inner batch-norm cache from a global that each forward call overwrites instead of from the cache it is given, so a backward pass on the cache of an earlier forward call, after a forward call on another batch, uses the other batch's statistics (or raises when its size differs).",
          test=LN, given={"layernorm_forward": ln_forward_inner_cache_in_a_global}),
    right("spatial_batchnorm_backward", "dx back through dx.T reshaped to (C, N, H, W)", sp_backward_through_the_transpose_of_dx,
          test=SP),
]
