"""Lesson 02: answers to the NumPy forward and backward passes (batch norm,
spatial batch norm, layer norm); held out, see ``tests/unseen``.

Every entry brings right implementations of the other exercises (``given``),
written here, whose caches its own functions read: the solution's cache layout
is not assumed anywhere.
"""

from __future__ import annotations

import numpy as np

from . import Unseen

# --------------------------------------------------------------------------
# batch norm forward: cache = (x, xc, var, std, inv_std, x_hat, gamma, eps)
# --------------------------------------------------------------------------


def bn_forward(
    x,
    gamma,
    beta,
    eps=1e-5,
    *,
    beta_sign=1.0,
    swap_affine=False,
    fixed_eps=None,
    float32=False,
    min_n=2,
    one_pass=False,
    folded=False,
    alias=False,
):
    n = x.shape[0]
    if n < min_n:
        raise ValueError(f"batch norm needs at least {min_n} examples, got {n}")
    if float32:
        x, gamma, beta = (np.asarray(a, dtype=np.float32) for a in (x, gamma, beta))
    eps = eps if fixed_eps is None else fixed_eps
    mu = x.mean(axis=0)
    xc = x - mu
    if one_pass:
        var = (x * x).mean(axis=0) - mu * mu
    else:
        var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    if swap_affine:
        gamma, beta = beta, gamma
    if folded:
        scale = gamma * inv_std
        out = x * scale + (beta - mu * scale)
    elif alias:
        out = x_hat  # the same array: the lines below overwrite x_hat too
        out *= gamma
        out += beta
    else:
        out = gamma * x_hat + beta_sign * beta
    return out, (x, xc, var, std, inv_std, x_hat, gamma, eps)


def _fwd(**kw):
    def forward(x, gamma, beta, eps=1e-5):
        return bn_forward(x, gamma, beta, eps, **kw)

    return forward


def right_forward(x, gamma, beta, eps=1e-5):
    return bn_forward(x, gamma, beta, eps)


# --------------------------------------------------------------------------
# batch norm backward, staged (the lesson's table) and closed form
# --------------------------------------------------------------------------


def staged(dout, cache, *, half=True, mean_div=True, var_count=None, rho_sign=-1.0):
    x, xc, var, std, inv_std, x_hat, gamma, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = rho_sign * drho / std**2
    dvar = ds / (2.0 * std) if half else ds / std
    dxc = dxc + 2.0 * xc * dvar / (n if var_count is None else var_count(n))
    dmu = -dxc.sum(axis=0)
    dx = dxc + (dmu / n if mean_div else dmu)
    return dx, dgamma, dbeta


def _staged(**kw):
    def backward(dout, cache):
        return staged(dout, cache, **kw)

    return backward


def right_backward(dout, cache):
    return staged(dout, cache)


def staged_cs231n(dout, cache):
    """The other classic staging: through var and mu directly (CS231n's notes)."""
    x, xc, var, std, inv_std, x_hat, gamma, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = -(dx_hat * inv_std).sum(axis=0) + dvar * (-2.0 * xc).mean(axis=0)
    dx = dx_hat * inv_std + dvar * 2.0 * xc / n + dmu / n
    return dx, dgamma, dbeta


def closed(dout, cache, *, count=None, std_power=-1, swap_terms=False, order="dgb"):
    x, xc, var, std, inv_std, x_hat, gamma, eps = cache
    n = dout.shape[0]
    m = n if count is None else count(n)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    a, b = (dgamma, dbeta) if swap_terms else (dbeta, dgamma)
    dx = gamma * std**std_power * (dout - a / n - x_hat * b / m)
    return (dx, dbeta, dgamma) if order == "dbg" else (dx, dgamma, dbeta)


def _closed(**kw):
    def backward(dout, cache):
        return closed(dout, cache, **kw)

    return backward


def right_alt(dout, cache):
    return closed(dout, cache)


def closed_cs231n(dout, cache):
    """dx = gamma / (N std) (N dout - sum dout - x_hat sum(dout x_hat))."""
    x, xc, var, std, inv_std, x_hat, gamma, eps = cache
    n = dout.shape[0]
    dbeta = np.einsum("ij->j", dout)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = (gamma * inv_std / n) * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------
# spatial batch norm: cache = (bn cache of the (N*H*W, C) columns, layout)
# --------------------------------------------------------------------------


def spatial_forward(x, gamma, beta, eps=1e-5, *, back="right", perm=(0, 2, 3, 1)):
    n, c, h, w = x.shape
    moved = x.transpose(*perm)
    cols = moved.reshape(-1, c)
    out, cache = bn_forward(cols, gamma, beta, eps, min_n=1)
    if back == "reshape only":
        return out.reshape(n, c, h, w), (cache, perm, moved.shape)
    inverse = np.argsort(perm)
    return out.reshape(moved.shape).transpose(*inverse), (cache, perm, moved.shape)


def spatial_backward(dout, cache, *, back="right", average=False):
    bn_cache, perm, moved_shape = cache
    n, c, h, w = dout.shape
    cols = dout.transpose(*perm).reshape(-1, c)
    dx, dgamma, dbeta = closed(cols, bn_cache)
    if average:
        dgamma, dbeta = dgamma / (h * w), dbeta / (h * w)
    if back == "reshape only":
        return dx.reshape(n, c, h, w), dgamma, dbeta
    return dx.reshape(moved_shape).transpose(*np.argsort(perm)), dgamma, dbeta


def right_spatial_forward(x, gamma, beta, eps=1e-5):
    return spatial_forward(x, gamma, beta, eps)


def right_spatial_backward(dout, cache):
    return spatial_backward(dout, cache)


def spatial_keepdims_forward(x, gamma, beta, eps=1e-5, *, axes=(0, 2, 3), view=True):
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv_std
    g, b = (
        (gamma[None, :, None, None], beta[None, :, None, None])
        if view
        else (
            gamma,
            beta,
        )
    )
    return g * x_hat + b, (x_hat, inv_std, gamma)


def spatial_keepdims_backward(dout, cache):
    x_hat, inv_std, gamma = cache
    axes = (0, 2, 3)
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    g = gamma[None, :, None, None]
    dx = (g * inv_std / m) * (
        m * dout - dbeta[None, :, None, None] - x_hat * dgamma[None, :, None, None]
    )
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------
# layer norm: cache = (x_hat, std, gamma), std of shape (N, 1)
# --------------------------------------------------------------------------


def ln_forward(
    x, gamma, beta, eps=1e-5, *, keepdims=True, everything=False, out_eps=False
):
    if everything:
        mu, var = x.mean(), x.var()
    else:
        mu = x.mean(axis=1, keepdims=keepdims)
        var = x.var(axis=1, keepdims=keepdims)
    std = np.sqrt(var) + eps if out_eps else np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, gamma)


def ln_backward(dout, cache, *, param_axis=0, with_gamma=True):
    x_hat, std, gamma = cache
    d = dout.shape[1]
    g = dout * gamma if with_gamma else dout
    dx = (
        g
        - g.sum(axis=1, keepdims=True) / d
        - x_hat * (g * x_hat).sum(axis=1, keepdims=True) / d
    ) / std
    dgamma = (dout * x_hat).sum(axis=param_axis)
    dbeta = dout.sum(axis=param_axis)
    return dx, dgamma, dbeta


def right_ln_forward(x, gamma, beta, eps=1e-5):
    return ln_forward(x, gamma, beta, eps)


def right_ln_backward(dout, cache):
    return ln_backward(dout, cache)


def ln_via_transpose_forward(x, gamma, beta, eps=1e-5):
    """Rows normalised as the columns of x.T, written with einsum."""
    xt = x.T  # (D, N): one column per example
    d = xt.shape[0]
    mu = np.einsum("dn->n", xt) / d
    xc = xt - mu
    var = np.einsum("dn,dn->n", xc, xc) / d
    std = np.sqrt(var + eps)[:, None]
    x_hat = xc.T / std
    return x_hat * gamma + beta, (x_hat, std, gamma)


# --------------------------------------------------------------------------
# the entries
# --------------------------------------------------------------------------

RIGHT = {
    "batchnorm_forward": right_forward,
    "batchnorm_backward": right_backward,
    "batchnorm_backward_alt": right_alt,
    "spatial_batchnorm_forward": right_spatial_forward,
    "spatial_batchnorm_backward": right_spatial_backward,
    "layernorm_forward": right_ln_forward,
    "layernorm_backward": right_ln_backward,
}

# graded test of each check (the cell whose visible part calls it)
TEST = {
    "batchnorm_forward": "batchnorm_forward",
    "batchnorm_backward": "batchnorm_backward",
    "batchnorm_backward_alt": "batchnorm_backward_alt",
    "spatial_batchnorm_forward": "spatial_batchnorm",
    "spatial_batchnorm_backward": "spatial_batchnorm",
    "layernorm_forward": "layernorm",
    "layernorm_backward": "layernorm",
}


def _entry(check, name, replaced: dict, cause="", correct=False) -> Unseen:
    given = {k: v for k, v in RIGHT.items() if k not in replaced}
    return Unseen(check, name, replaced, TEST[check], cause, given, correct)


def _one(check, name, fn, cause="", correct=False) -> Unseen:
    return _entry(check, name, {check: fn}, cause, correct)


F_, B_, A_ = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SF, SB = "spatial_batchnorm_forward", "spatial_batchnorm_backward"
LF, LB = "layernorm_forward", "layernorm_backward"

ENTRIES = [
    _one(F_, "beta subtracted", _fwd(beta_sign=-1.0), "beta is subtracted, not added"),
    _one(
        F_,
        "gamma and beta swapped",
        _fwd(swap_affine=True),
        "gamma and beta are swapped: out = beta * x_hat + gamma",
    ),
    _one(
        F_,
        "Keras' eps 1e-3",
        _fwd(fixed_eps=1e-3),
        "a fixed eps of 1e-3 (Keras' default) replaces the eps argument",
    ),
    _one(
        F_,
        "computes in float32",
        _fwd(float32=True),
        "the inputs are cast to float32, so the output loses precision",
    ),
    _one(
        F_,
        "refuses N = 2",
        _fwd(min_n=3),
        "the guard is off by one: it refuses N = 2, which batch norm handles",
    ),
    _one(F_, "one-pass variance in float64", _fwd(one_pass=True), correct=True),
    _one(F_, "affine folded into one scale and shift", _fwd(folded=True), correct=True),
    _one(
        B_,
        "derivative of sqrt without its 1/2",
        _staged(half=False),
        "dvar = ds / std: the derivative of sqrt(v) is 1 / (2 sqrt(v)), the 1/2 "
        "is missing, so the variance branch is doubled",
    ),
    _one(
        B_,
        "gradient of the mean not divided by N",
        _staged(mean_div=False),
        "dx = dxc + dmu: the mean's gradient is not divided by N",
    ),
    _one(
        B_,
        "variance branch divides by N - 1",
        _staged(var_count=lambda n: n - 1),
        "the branch through the variance divides by N - 1 although the forward "
        "pass divides by N",
    ),
    _one(
        B_,
        "sign of d(1/s) dropped",
        _staged(rho_sign=1.0),
        "ds = drho / s^2: the derivative of 1/s is -1/s^2, the minus sign is "
        "missing, so the variance branch has the wrong sign",
    ),
    _entry(
        B_,
        "cache aliases the output",
        {"batchnorm_forward": _fwd(alias=True)},
        "the forward pass scales x_hat in place (out = x_hat; out *= gamma), so "
        "the cached x_hat is the output: the backward pass reads the wrong array",
    ),
    _one(B_, "staged through var and mu (CS231n)", staged_cs231n, correct=True),
    _one(
        A_,
        "N - 1 in the x_hat term",
        _closed(count=lambda n: n - 1),
        "the x_hat * dgamma term is divided by N - 1 instead of N",
    ),
    _one(
        A_,
        "multiplies by std",
        _closed(std_power=1),
        "dx is multiplied by the standard deviation instead of divided by it",
    ),
    _one(
        A_,
        "returns (dx, dbeta, dgamma)",
        _closed(order="dbg"),
        "dgamma and dbeta are returned in swapped order",
    ),
    _one(
        A_,
        "dgamma and dbeta swapped inside dx",
        _closed(swap_terms=True),
        "dx subtracts dgamma / N and x_hat * dbeta / N: the two sums are swapped",
    ),
    _one(A_, "CS231n's one-line form with einsum", closed_cs231n, correct=True),
    _one(
        SF,
        "transposed in, not back",
        lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, back="reshape only"),
        "the output is reshaped straight to (N, C, H, W) without moving the "
        "channels back, which scrambles the values",
    ),
    _entry(
        SF,
        "statistics over N and H only",
        {
            SF: lambda x, g, b, eps=1e-5: spatial_keepdims_forward(
                x, g, b, eps, axes=(0, 2)
            ),
            SB: spatial_keepdims_backward,
        },
        "the statistics are taken over axes (0, 2) only, so each column w gets "
        "its own mean and variance",
    ),
    _entry(
        SF,
        "gamma broadcast against W",
        {
            SF: lambda x, g, b, eps=1e-5: spatial_keepdims_forward(
                x, g, b, eps, view=False
            ),
            SB: spatial_keepdims_backward,
        },
        "gamma and beta of shape (C,) are broadcast against the last axis (W) "
        "instead of the channels",
    ),
    _entry(
        SF,
        "keepdims over (0, 2, 3)",
        {SF: spatial_keepdims_forward, SB: spatial_keepdims_backward},
        correct=True,
    ),
    _entry(
        SF,
        "channels last with H and W swapped",
        {
            SF: lambda x, g, b, eps=1e-5: spatial_forward(
                x, g, b, eps, perm=(0, 3, 2, 1)
            ),
            SB: lambda d, c: spatial_backward(d, c),
        },
        correct=True,
    ),
    _one(
        SB,
        "dx not transposed back",
        lambda d, c: spatial_backward(d, c, back="reshape only"),
        "dx is reshaped straight to (N, C, H, W) without moving the channels back",
    ),
    _one(
        SB,
        "dgamma and dbeta averaged over H*W",
        lambda d, c: spatial_backward(d, c, average=True),
        "dgamma and dbeta are divided by H*W (averaged over positions) instead of "
        "summed",
    ),
    _one(
        LF,
        "no keepdims",
        lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, keepdims=False),
        "the row statistics lose their axis (no keepdims), so they broadcast "
        "against the columns",
    ),
    _one(
        LF,
        "statistics of the whole batch",
        lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, everything=True),
        "one mean and variance over the whole array instead of one per example",
    ),
    _one(
        LF,
        "eps outside the square root",
        lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, out_eps=True),
        "eps is added to the standard deviation instead of to the variance",
    ),
    _one(LF, "rows as columns of x.T, einsum", ln_via_transpose_forward, correct=True),
    _one(
        LB,
        "dgamma and dbeta summed per example",
        lambda d, c: ln_backward(d, c, param_axis=1),
        "dgamma and dbeta are summed over axis 1 (per example) instead of over "
        "the batch",
    ),
    _one(
        LB,
        "forgets gamma in dx",
        lambda d, c: ln_backward(d, c, with_gamma=False),
        "dx is computed from dout instead of dout * gamma",
    ),
]
