"""Lesson 02: wrong forward and backward passes (batch norm, spatial, layer norm).

Built from small correct implementations written here (tests may hold
solutions; ``helpers`` never does).
"""

from __future__ import annotations

import numpy as np
import torch

from . import Mutant, family, raise_


def bn_forward(
    x,
    gamma,
    beta,
    eps=1e-5,
    *,
    axis=0,
    ddof=0,
    eps_out=False,
    affine=True,
    sqrt=True,
    check_n=True,
    fixed_eps=None,
    min_n=2,
):
    if check_n and x.shape[0] < min_n:
        raise ValueError("N < 2")
    eps = fixed_eps if fixed_eps is not None else eps
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    if eps_out:
        denom = np.sqrt(var) + eps
    elif sqrt:
        denom = np.sqrt(var + eps)
    else:
        denom = var + eps
    x_hat = (x - mu) / denom
    out = gamma * x_hat + beta if affine else x_hat
    return out, (x_hat, np.sqrt(var + eps), gamma)


def bn_backward(
    dout,
    cache,
    *,
    mean_branch=True,
    var_branch=True,
    gamma_factor=True,
    sum_dgamma=True,
    sum_dbeta=True,
    dgamma_from=None,
    sign=1.0,
    mean_params=False,
):
    x_hat, std, gamma = cache
    dx_hat = dout * gamma if gamma_factor else dout
    dx = dx_hat.copy()
    if mean_branch:
        dx = dx - dx_hat.mean(0)
    if var_branch:
        dx = dx - x_hat * (dx_hat * x_hat).mean(0)
    dx = sign * dx / std
    source = x_hat if dgamma_from is None else dgamma_from(x_hat, std)
    dgamma = dout * source
    reduce = np.mean if mean_params else np.sum
    dgamma = reduce(dgamma, axis=0) if sum_dgamma else dgamma
    dbeta = reduce(dout, axis=0) if sum_dbeta else dout
    return dx, dgamma, dbeta


def closed_form(dout, cache, *, count=None, var_count=None):
    """CS231n's one-line backward; ``count`` in place of N is the review's A1."""
    x_hat, std, gamma = cache
    m = dout.shape[0] if count is None else count
    v = m if var_count is None else var_count
    g = dout * gamma
    dx = (g - g.sum(0) / m - x_hat * (g * x_hat).sum(0) / v) / std
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def one_pass_forward(x, gamma, beta, eps=1e-5):
    """A correct alternative (Flax's default): var = E[x^2] - mu^2."""
    if x.shape[0] < 2:
        raise ValueError("N < 2")
    mu = x.mean(0)
    std = np.sqrt((x**2).mean(0) - mu**2 + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, gamma)


def _fwd(**kw):
    return lambda x, g, b, eps=1e-5: bn_forward(x, g, b, eps, **kw)


def _bwd(**kw):
    return lambda d, c: bn_backward(d, c, **kw)


# fmt: off
BN_FORWARD = {
    "cache in float32": (lambda x, g, b, eps=1e-5: (bn_forward(x, g, b, eps)[0], tuple(a.astype("float32") if hasattr(a, "astype") else a for a in bn_forward(x, g, b, eps)[1])), "is float32: the backward passes read it with 7 digits"),  # round 12's false ok
    "wrong axis": (_fwd(axis=1), "statistics are taken over axes (1,)"),
    "unbiased variance": (_fwd(ddof=1), "`x.var(axis=0, ddof=1)` where `x.var(axis=0, ddof=0)`"),
    "eps outside the square root": (_fwd(eps_out=True), "`np.sqrt(var) + eps` where `np.sqrt(var + eps)`"),
    "gamma and beta forgotten": (_fwd(affine=False), "not applied"),
    "missing square root": (_fwd(sqrt=False), "`var + eps` where `np.sqrt(var + eps)`"),
    "ignores eps": (_fwd(fixed_eps=1e-5), "sqrt(var + e) with e = 1e-05, not eps = 0.1"),
    "no ValueError for N=1": (_fwd(check_n=False), "did not raise ValueError"),
    "refuses N=2": (_fwd(min_n=3), "batchnorm_forward N=2 "),
    "returns out only": (lambda x, g, b, eps=1e-5: bn_forward(x, g, b, eps)[0], "expected a tuple of 2"),
    "returns None": (lambda x, g, b, eps=1e-5: None, "returned None"),
    "NaN": (lambda x, g, b, eps=1e-5: (bn_forward(x, g, b, eps)[0] * np.nan, None), "NaN"),
    "raises TypeError": (lambda x, g, b, eps=1e-5: x.mean(foo=1), "raised TypeError"),
    "mutates its input": (lambda x, g, b, eps=1e-5: (x.__isub__(x.mean(0)), bn_forward(x, g, b, eps))[1], "in place"),
    "wrong shape": (lambda x, g, b, eps=1e-5: (bn_forward(x, g, b, eps)[0].T, None), "axes are swapped"),
    # the outside review's (2026-12-06, W1): each costs the forward's points only
    "eps omitted": (_fwd(fixed_eps=0.0), "`var` where `var + eps` belongs"),
    "beta subtracted": (lambda x, g, b, eps=1e-5: bn_forward(x, g, -b, eps), "`gamma * x_hat - beta` where `gamma * x_hat + beta`"),
    # combinations and slips no catalogue lists (issue 28): read back by stage
    "unbiased and eps outside": (_fwd(ddof=1, eps_out=True), "sqrt(v) + eps (eps outside the root), v = the unbiased"),
    "gamma and beta as columns": (lambda x, g, b, eps=1e-5: bn_forward(x, g.reshape(-1, 1), b.reshape(-1, 1), eps), "an array of shape (5, 1) does not line up"),
    "computed in float32": (lambda x, g, b, eps=1e-5: bn_forward(*(a.astype(np.float32) for a in (x, g, b)), np.float32(eps)), "float32 numbers"),
    # round 7's false ok (issue 28): a visible check whose batches all fit in 32 rows
    "refuses a constant feature (round 19's false ok)": (lambda x, g, b, eps=1e-5: bn_forward(x, g, b, eps) if x.var(0).all() else raise_(ValueError("a feature of variance 0")), "batchnorm_forward N=48 "),
    "x_hat of x.T reshaped back (a layout slip)": (lambda x, g, b, eps=1e-5: (g * ((x.T - x.T.mean(1, keepdims=True)) / np.sqrt(x.T.var(1, keepdims=True) + eps)).reshape(x.shape) + b, None), "x_hat = (out - beta) / gamma holds the right values in the wrong places: they come in the order of the expected array with its axes moved to (1, 0)"),
    "statistics of the first 32 examples": (lambda x, g, b, eps=1e-5: (g * (x - x[:32].mean(0)) / np.sqrt(x[:32].var(0) + eps) + b, None), "batchnorm_forward N=48 "),
}
# fmt: on

# fmt: off
BN_BACKWARD = {
    "missing mean branch": (_bwd(mean_branch=False), "the branch through the mean is off"),
    "missing variance branch": (_bwd(var_branch=False), "the branch through the variance is off"),
    "mu and var as constants": (_bwd(mean_branch=False, var_branch=False), "what differs lies in the branches through the mean and the variance"),
    "forgets gamma": (_bwd(gamma_factor=False), "`dout` where `dout * gamma` belongs"),
    "dgamma not summed": (_bwd(sum_dgamma=False), "not summed"),
    "dbeta not summed": (_bwd(sum_dbeta=False), "not summed"),
    "dgamma and dbeta averaged": (_bwd(mean_params=True), "`(dout * x_hat).mean(axis=0)` where `(dout * x_hat).sum(axis=0)`"),
    "dgamma from the centred x": (_bwd(dgamma_from=lambda x_hat, std: x_hat * std), "`x - mu` where `(x - mu) / std` belongs"),
    "wrong sign": (_bwd(sign=-1.0), "wrong sign"),
    "returns None": (lambda d, c: None, "returned None"),
    "returns two": (lambda d, c: bn_backward(d, c)[:2], "tuple of 3"),
    "raises AttributeError": (lambda d, c: d.foo, "raised AttributeError"),
    "NaN dx": (lambda d, c: (bn_backward(d, c)[0] * np.nan,) + bn_backward(d, c)[1:], "NaN"),
    "m = dout.shape[1]": (lambda d, c: closed_form(d, c, count=d.shape[1]), "what differs lies in the branches through the mean and the variance"),
    "dgamma as dout.T @ x_hat (round 21's wrong cause)": (lambda d, c: (bn_backward(d, c)[0], d.T @ c[0], bn_backward(d, c)[2]), "the right values are its diagonal: a matrix product"),
    "dgamma and dbeta squeezed (round 21's false ok)": (lambda d, c: (bn_backward(d, c)[0], *(g.squeeze() for g in bn_backward(d, c)[1:])), "dgamma has shape (), expected (1,): an axis of size 1 dropped"),
    "N - 1 in the variance branch": (lambda d, c: closed_form(d, c, var_count=d.shape[0] - 1), "a multiple of x_hat"),
}
# fmt: on


def _refuse_one(x):  # round 10's false ok: one image has H * W values per channel
    if len(x) < 2:
        raise ValueError("batch norm needs two images")


def spatial_forward(x, gamma, beta, eps=1e-5, *, mode="right", reshape_back=True):
    n, c, h, w = x.shape
    if mode == "per position":
        flat = x.reshape(n, -1)
        mu, var = flat.mean(0), flat.var(0)
        g, b = np.repeat(gamma, h * w), np.repeat(beta, h * w)
        out = (g * (flat - mu) / np.sqrt(var + eps) + b).reshape(x.shape)
        return out, None
    if mode == "naive reshape":
        cols = x.reshape(-1, c)
    else:
        cols = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = bn_forward(cols, gamma, beta, eps)
    if not reshape_back:
        return out, cache
    if mode == "naive reshape":
        return out.reshape(x.shape), cache
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


def spatial_backward(dout, cache, *, sum_hw=True, transpose_back=True):
    n, c, h, w = dout.shape
    cols = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = bn_backward(cols, cache)
    if not transpose_back:  # the review's S3
        return dx.reshape(n, c, h, w), dgamma, dbeta
    dx = dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    if not sum_hw:  # summed over N only
        x_hat = cache[0].reshape(n, h, w, c).transpose(0, 3, 1, 2)
        dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    return dx, dgamma, dbeta


# fmt: off
SPATIAL_FORWARD = {
    "statistics per position": (lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, mode="per position"), "taken over axes (0,)"),
    "statistics over N and H only": (lambda x, g, b, eps=1e-5: (g[:, None, None] * (x - x.mean((0, 2), keepdims=True)) / np.sqrt(x.var((0, 2), keepdims=True) + eps) + b[:, None, None], None), "taken over axes (0, 2)"),
    "reshape without transpose": (lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, mode="naive reshape"), "without moving C last"),
    "not reshaped back": (lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, reshape_back=False), "reshape back"),
    "one image refused": (lambda x, g, b, eps=1e-5: _refuse_one(x) or spatial_forward(x, g, b, eps), "spatial_batchnorm_forward N=1"),
    "gamma against the last axis": (lambda x, g, b, eps=1e-5: (g * (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + eps) + b, None), "lines up with x's last axis"),
}
# fmt: on
SPATIAL_BACKWARD = {
    "dgamma summed over N only": (
        lambda d, c: spatial_backward(d, c, sum_hw=False),
        "summed over N only",
    ),
    "dx not transposed back": (
        lambda d, c: spatial_backward(d, c, transpose_back=False),
        "a reshape without the transpose",
    ),
}


def ln_forward(x, gamma, beta, eps=1e-5, *, axis=1, ddof=0, keepdims=True):
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=keepdims)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, np.sqrt(var + eps), gamma)


def ln_backward(dout, cache, *, sum_dgamma=True):
    x_hat, std, gamma = cache
    g = dout * gamma
    dx = (
        g - g.mean(1, keepdims=True) - x_hat * (g * x_hat).mean(1, keepdims=True)
    ) / std
    dgamma = (dout * x_hat).sum(0) if sum_dgamma else dout * x_hat
    return dx, dgamma, dout.sum(0)


# fmt: off
LN_FORWARD = {
    "normalises columns (batch norm)": (lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, axis=0), "taken over axes (0,)"),
    "unbiased variance": (lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, ddof=1), "ddof=1)` where `x.var(axis=1, keepdims=True, ddof=0)`"),
    "var without keepdims": (lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, keepdims=False), "keepdims=True"),
    "batch norm's N < 2 guard copied": (lambda x, g, b, eps=1e-5: _refuse_one(x) or ln_forward(x, g, b, eps), "layernorm_forward N=1"),  # round 12's false ok
    "beta not added": (lambda x, g, b, eps=1e-5: ln_forward(x, g, 0 * b, eps), "`gamma * x_hat` where `gamma * x_hat + beta` belongs"),
}
# fmt: on
def _ln_graph_forward(x, g, b, eps=1e-5):
    """A right layer norm whose cache holds its autograd graph (round 21)."""
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    mu, var = xt.mean(1, keepdim=True), xt.var(1, correction=0, keepdim=True)
    out = gt * (xt - mu) / torch.sqrt(var + eps) + bt
    return out.detach().numpy(), (xt, gt, bt, out)


def _ln_graph_backward(d, cache):
    """Round 21's false ok: backward() without retain_graph frees the cache's graph."""
    *inputs, out = cache
    for t in inputs:
        t.grad = None
    out.backward(torch.tensor(d))
    return tuple(t.grad.numpy() for t in inputs)


LN_BACKWARD = {
    "dgamma not summed": (
        lambda d, c: ln_backward(d, c, sum_dgamma=False),
        "not summed",
    ),
}


# --------------------------------------------------------------------------
# as mutants: what each replaces, its message, the test it zeroes
# --------------------------------------------------------------------------

# Graded tests that run the learner's functions beyond the ones their cells
# name: the spatial and layer-norm tests call spatial_batchnorm_forward, which
# calls the learner's batchnorm_forward and batchnorm_backward_alt.
USES = {
    "spatial_batchnorm": {"batchnorm_forward", "batchnorm_backward_alt"},
    "layernorm": {"batchnorm_forward", "batchnorm_backward_alt"},
}


def _forward(x, g, b, eps=1e-5):
    return bn_forward(x, g, b, eps)


# Each mutant replaces one name; every other exercise gets a right
# implementation written here (a wrong backward pass reads the cache, x_hat,
# std, gamma, of the right forward pass): the solution's cache layout is the
# solution's business.
RIGHT = {
    "batchnorm_forward": _forward,
    "batchnorm_backward": bn_backward,
    "batchnorm_backward_alt": bn_backward,
    "spatial_batchnorm_forward": spatial_forward,
    "spatial_batchnorm_backward": spatial_backward,
    "layernorm_forward": ln_forward,
    "layernorm_backward": ln_backward,
}

# check (the name it replaces): (its wrong versions, the graded test they zero)
FAMILIES = {
    "batchnorm_forward": (BN_FORWARD, "batchnorm_forward"),
    "batchnorm_backward": (BN_BACKWARD, "batchnorm_backward"),
    "batchnorm_backward_alt": (BN_BACKWARD, "batchnorm_backward_alt"),
    "spatial_batchnorm_forward": (SPATIAL_FORWARD, "spatial_batchnorm"),
    "spatial_batchnorm_backward": (SPATIAL_BACKWARD, "spatial_batchnorm"),
    "layernorm_forward": (LN_FORWARD, "layernorm"),
    "layernorm_backward": (LN_BACKWARD, "layernorm"),
}

MUTANTS = [
    mutant
    for check, (table, test) in FAMILIES.items()
    for mutant in family(
        check, table, test, given={k: v for k, v in RIGHT.items() if k != check}
    )
]
MUTANTS.append(  # with a forward whose cache its backward understands
    Mutant(
        "layernorm_backward",
        "a cache used up by the first call",
        {"layernorm_backward": _ln_graph_backward},
        "a second backward call on the same cache failed",
        "layernorm",
        given={**RIGHT, "layernorm_forward": _ln_graph_forward},
    )
)
