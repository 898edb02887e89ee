"""Held-out answers (fourth set, part a), lesson 02: batchnorm_forward, the staged
and closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma)."""

import numpy as np

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"
SPF, SPB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LNF, LNB = "layernorm_forward", "layernorm_backward"


def _guard(x):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs N >= 2 in training mode")


# ---- forward -----------------------------------------------------------------


def fw_var_over_size(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).sum(axis=0) / x.size  # "the number of values"
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_default_eps_tiny(x, gamma, beta, eps=1e-8):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, 1 / std, gamma)


def fw_affine_todo(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    x_hat = (x - mu) / std
    out = x_hat  # TODO: gamma and beta
    return out, (x_hat, std, 1 / std, gamma)


def fw_gamma_scaled_in_place(x, gamma, beta, eps=1e-5):
    _guard(x)
    mu = x.mean(axis=0)
    std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    inv_std = 1 / std
    scale = gamma
    scale *= inv_std  # one multiply per feature instead of per value
    x_hat = (x - mu) * inv_std
    out = (x - mu) * scale + beta
    return out, (x_hat, std, inv_std, gamma)


def fw_cache_centred(x, gamma, beta, eps=1e-5):
    _guard(x)
    xc = x - x.mean(axis=0)
    std = np.sqrt((xc**2).mean(axis=0) + eps)
    out = gamma * xc / std + beta
    return out, (xc, std, 1 / std, gamma)  # the "x_hat" slot holds x - mu


# ---- staged backward ------------------------------------------------------------


def bw_branch_overwritten(dout, cache):
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
    dxc = 2.0 * xc * dvar / n  # the variance branch into xc
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_dmu_sign(dout, cache):
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
    dmu = dxc.sum(axis=0)  # d(x - mu)/dmu ... = 1
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def bw_xc_divided(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat / std  # "undo the normalisation"
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


def bw_drho_scalar(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = np.sum(dx_hat * xc)  # rho is one number... per feature
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_keepdims_params(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0, keepdims=True)
    dgamma = (dout * x_hat).sum(axis=0, keepdims=True)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0, keepdims=True)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0, keepdims=True)
    return dxc + dmu / n, dgamma, dbeta


def bw_sqrt_chain_inverted(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds * 2.0 * std  # s = sqrt(v): ds/dv ... = 2 s
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_n_from_size(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.size
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


# ---- closed-form backward -----------------------------------------------------------


def alt_means_over_features(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dout.mean(axis=1, keepdims=True)
                            - x_hat * (dout * x_hat).mean(axis=1, keepdims=True))
    return dx, dgamma, dbeta


def alt_gamma_on_dout_only(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = inv_std * (gamma * dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_dgamma_from_scaled(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    g = dout * gamma  # gradient reaching x_hat
    dbeta = dout.sum(axis=0)
    dgamma = (g * x_hat).sum(axis=0)
    dx = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


def alt_n_from_features(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = x_hat.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_cache_scaled_in_place(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = x_hat  # reuse the buffer
    dx *= -dgamma / n
    dx += dout
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def alt_negated(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dbeta / n + x_hat * dgamma / n - dout)
    return dx, dgamma, dbeta


# ---- spatial -------------------------------------------------------------------------


@notebook
def sp_forward_channel_major(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 3, 2, 1).reshape(-1, c)  # (N*W*H, C): channels last
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, w, h, c).transpose(0, 3, 2, 1), cache


@notebook
def sp_backward_channels_last(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


@notebook
def sp_backward_param_shape(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    dx = dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return dx, dgamma.reshape(1, c, 1, 1), dbeta.reshape(1, c, 1, 1)  # "like x"


@notebook
def sp_forward_channels_last_unpack(x, gamma, beta, eps=1e-5):
    n, h, w, c = x.shape  # images are (N, H, W, C)...
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


@notebook
def sp_forward_eps_dropped(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(columns, gamma, beta)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


# ---- layer norm ------------------------------------------------------------------------


@notebook
def ln_forward_is_batchnorm(x, gamma, beta, eps=1e-5):
    return batchnorm_forward(x, gamma, beta, eps)  # noqa: F821


@notebook
def ln_backward_is_batchnorm(dout, cache):
    return batchnorm_backward_alt(dout, cache)  # noqa: F821


@notebook
def ln_backward_dx_transposed(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t, dgamma, dbeta


@notebook
def ln_forward_caches_output(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    out = gamma * x_hat_t.T + beta
    return out, (out, gamma, bn_cache)


@notebook
def ln_backward_gamma_after_transpose(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt(dout.T * gamma, bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


# ---- correct alternatives ---------------------------------------------------------------


def fw_keepdims(x, gamma, beta, eps=1e-5):
    """Statistics kept as (1, D) rows; the cache holds (1, D) std and inv_std."""
    if len(x) < 2:
        raise ValueError("need N >= 2")
    mu = np.mean(x, axis=0, keepdims=True)
    var = np.mean(np.square(x - mu), axis=0, keepdims=True)
    std = np.sqrt(var + eps)
    inv_std = np.reciprocal(std)
    x_hat = (x - mu) * inv_std
    return x_hat * gamma + beta, (x_hat, std, inv_std, gamma)


def alt_jacobian(dout, cache):
    """The per-feature Jacobian d x_hat / d x, built and applied with einsum."""
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    eye = np.eye(n)
    # J[d, i, j] = d x_hat[i, d] / d x[j, d]
    jac = inv_std[:, None, None] * (eye[None] - 1.0 / n
                                    - np.einsum("id,jd->dij", x_hat, x_hat) / n)
    g = dout * gamma
    dx = np.einsum("id,dij->jd", g, jac)
    return dx, np.einsum("nd,nd->d", dout, x_hat), dout.sum(axis=0)


@notebook
def ln_backward_staged(dout, cache):
    x_hat, gamma, bn_cache = cache
    dgamma = np.einsum("nd,nd->d", dout, x_hat)
    dbeta = np.add.reduce(dout, axis=0)
    dx_t, _, _ = batchnorm_backward(np.ascontiguousarray((dout * gamma).T), bn_cache)  # noqa: F821
    return dx_t.T, dgamma, dbeta


ENTRIES = [
    entry(FW, "variance divided by x.size", fw_var_over_size,
          "the variance divides the sum of squared deviations by x.size (N*D values) instead of N."),
    entry(FW, "default eps of 1e-8", fw_default_eps_tiny,
          "the default eps is 1e-8 instead of 1e-5, so calls without eps get the wrong eps."),
    entry(FW, "gamma and beta left as a TODO", fw_affine_todo,
          "returns x_hat as the output (the affine step gamma * x_hat + beta is left as a TODO)."),
    entry(FW, "gamma scaled in place", fw_gamma_scaled_in_place,
          "scale = gamma; scale *= inv_std multiplies the caller's gamma in place (scale is not a copy), so gamma changes and the cache holds the changed gamma."),
    entry(FW, "cache holds the centred input", fw_cache_centred, test=BW,
          cause="the forward output is right but the cache's x_hat slot holds x - mu (not divided by the standard deviation), so the backward pass reading the cache is wrong."),
    entry(BW, "variance branch overwrites the direct one", bw_branch_overwritten,
          "dxc = 2 * xc * dvar / N replaces the direct branch's dxc instead of adding to it (dxc = dxc + ...), so the direct gradient dx_hat * rho is lost."),
    entry(BW, "sign of the mean branch", bw_dmu_sign,
          "dmu = +sum(dxc) instead of -sum(dxc): the local gradient of xc = x - mu with respect to mu is -1."),
    entry(BW, "xc recovered by dividing", bw_xc_divided,
          "recovers the centred input from the cache as x_hat / std instead of x_hat * std."),
    entry(BW, "drho summed over everything", bw_drho_scalar,
          "drho sums over all axes (one number) instead of over the batch axis (one per feature)."),
    entry(BW, "keepdims on dgamma and dbeta", bw_keepdims_params,
          "sums with keepdims=True, so dgamma and dbeta come back with shape (1, D) instead of (D,) (dx is right)."),
    entry(BW, "sqrt stage multiplies by 2s", bw_sqrt_chain_inverted,
          "the stage s = sqrt(var + eps) multiplies by 2 * s instead of dividing by it (ds/dvar = 1/(2s))."),
    entry(BW, "N taken as dout.size", bw_n_from_size,
          "uses n = dout.size (N*D) instead of N in the variance and mean stages."),
    entry(ALT, "means over the features", alt_means_over_features,
          "the two means in the closed form are taken over axis 1 (each example's features) instead of axis 0 (the batch)."),
    entry(ALT, "gamma only on dout", alt_gamma_on_dout_only,
          "multiplies only the dout term by gamma: dx = rho * (gamma*dout - dbeta/N - x_hat*dgamma/N) instead of gamma * rho * (dout - dbeta/N - x_hat*dgamma/N)."),
    entry(ALT, "dgamma from dout * gamma", alt_dgamma_from_scaled,
          "dgamma sums (dout * gamma) * x_hat instead of dout * x_hat, so it is gamma times too large (dx is right)."),
    entry(ALT, "N taken from the features", alt_n_from_features,
          "takes n = x_hat.shape[1] (the number of features D) instead of the batch size N."),
    entry(ALT, "cached x_hat overwritten", alt_cache_scaled_in_place,
          "dx = x_hat (no copy) and then dx *= ... overwrites the cached x_hat in place: the first call is right, a second backward pass on the same cache is wrong."),
    entry(ALT, "dx negated", alt_negated,
          "the bracket is (dbeta/N + x_hat*dgamma/N - dout) instead of (dout - dbeta/N - x_hat*dgamma/N), so dx has the wrong sign."),
    Unseen(SPB, "forward and backward flatten in different orders",
           {SPF: sp_forward_channel_major, SPB: sp_backward_channels_last}, SP,
           "the forward flattens x with transpose(0, 3, 2, 1) (rows in (N, W, H) order) but the backward flattens dout with transpose(0, 2, 3, 1) (rows in (N, H, W) order), so dout's rows do not line up with the cached x_hat rows; both must flatten the same way."),
    entry(SPB, "dgamma and dbeta shaped like x", sp_backward_param_shape, test=SP,
          cause="returns dgamma and dbeta reshaped to (1, C, 1, 1) instead of (C,)."),
    entry(SPF, "channels-last unpacking", sp_forward_channels_last_unpack, test=SP,
          cause="unpacks x.shape as (N, H, W, C) although x is (N, C, H, W), so c is W and the columns mix channels and positions (an error unless W == C)."),
    entry(SPF, "eps not passed on", sp_forward_eps_dropped, test=SP,
          cause="calls batchnorm_forward(columns, gamma, beta) without eps, so the eps argument is ignored (always 1e-5)."),
    Unseen(LNF, "batch norm instead of layer norm",
           {LNF: ln_forward_is_batchnorm, LNB: ln_backward_is_batchnorm}, LN,
           "calls batchnorm_forward / batchnorm_backward_alt on x itself (no transposes), which normalises each feature over the batch instead of each example over its features."),
    entry(LNB, "dx left transposed", ln_backward_dx_transposed, test=LN,
          cause="returns batch norm's (D, N) gradient of x.T without transposing it back to (N, D)."),
    entry(LNF, "cache holds the output", ln_forward_caches_output, test=LN,
          cause="stores out = gamma * x_hat + beta in the cache's x_hat slot, so the backward's dgamma sums dout * out instead of dout * x_hat."),
    entry(LNB, "gamma applied after transposing", ln_backward_gamma_after_transpose, test=LN,
          cause="multiplies dout.T (D, N) by gamma (D,), which broadcasts along the examples instead of the features (an error unless N == D): it must be (dout * gamma).T."),
    right(FW, "keepdims statistics", fw_keepdims),
    right(ALT, "per-feature Jacobian with einsum", alt_jacobian),
    right(LNB, "staged batch-norm backward, einsum", ln_backward_staged, test=LN),
]
