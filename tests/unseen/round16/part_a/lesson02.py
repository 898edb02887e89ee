"""Held-out answers (sixteenth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np
import torch
import torch.nn.functional as F

from _format import entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def fw_eps_keyword_only(x, gamma, beta, *, eps=1e-5):  # eps only by name, as modern APIs do
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


def fw_guard_refuses_two(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n <= 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_default_eps_in_the_variance_stage(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    var = (xc**2).mean(axis=0)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / (var + 1e-5)  # s**2 = var + eps
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_cache_std_and_inv_std_swapped(dout, cache):
    x_hat, inv_std, std, gamma = cache
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


# ---- closed form --------------------------------------------------------------


def alt_degrees_of_freedom(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0] - 1  # degrees of freedom of the batch
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_columns_in_float32(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float32)  # images are big: half the memory
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_backward_dx_reshaped(dout, cache):
    x_hat, gamma, bn_cache = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)  # noqa: F821
    return dx_t.reshape(dout.shape), dgamma, dbeta


@notebook
def ln_forward_unit_parameters_as_columns(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones((x.shape[0], 1)), np.zeros((x.shape[0], 1))  # one per example
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


def ln_forward_torch(x, gamma, beta, eps=1e-5):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    out = F.layer_norm(xt, (x.shape[1],), gt, bt, eps)
    return out.detach().numpy(), (xt, gt, bt, out)


def ln_backward_autograd(dout, cache):
    xt, gt, bt, out = cache
    grads = torch.autograd.grad(out, (xt, gt, bt), torch.as_tensor(dout, dtype=torch.float64),
                                retain_graph=True)  # the cache may be used again
    return tuple(g.numpy() for g in grads)


ENTRIES = [
    entry(FW, "eps keyword-only", fw_eps_keyword_only,
          "declares eps keyword-only (def batchnorm_forward(x, gamma, beta, *, eps=1e-5)), so any call that passes eps by position, as the lesson's signature allows, raises TypeError."),
    entry(FW, "guard refuses N = 2", fw_guard_refuses_two,
          "an off-by-one guard, n <= 2 instead of n < 2, so a batch of two examples, which batch norm can normalise, raises ValueError."),
    entry(BW, "default eps in the variance stage", bw_default_eps_in_the_variance_stage,
          "recomputes s**2 as var + 1e-5 (the default eps written in) for ds instead of using the cached std, so the variance branch is wrong whenever the forward pass ran with another eps.",
          test=BW),
    entry(BW, "cache read as (x_hat, inv_std, std, gamma)", bw_cache_std_and_inv_std_swapped,
          "unpacks the cache as x_hat, inv_std, std, gamma although the forward stores (x_hat, std, inv_std, gamma), so the std and its inverse are exchanged in every stage (xc, the direct branch and the variance branch).",
          test=BW),
    entry(ALT, "N - 1 as the batch size (degrees of freedom)", alt_degrees_of_freedom,
          "sets n = N - 1 (the degrees of freedom, a variance habit), so both the dbeta and the x_hat term of dx are divided by N - 1 instead of N.",
          test=ALT),
    entry("spatial_batchnorm_forward", "columns cast to float32", sp_forward_columns_in_float32,
          "casts the (N*H*W, C) columns to float32 before the batch norm, so the output and the cache (hence the backward pass) carry float32 round-off (about 1e-7 relative) instead of float64 precision.",
          test=SP),
    entry("layernorm_backward", "dx reshaped instead of transposed back", ln_backward_dx_reshaped,
          "returns dx_t.reshape(dout.shape) instead of dx_t.T, so the (D, N) gradient is read row by row into (N, D): the values are right but put at the wrong examples and features.",
          test=LN),
    entry("layernorm_forward", "inner ones and zeros made as (N, 1) columns", ln_forward_unit_parameters_as_columns,
          "makes the inner batch norm's ones and zeros of shape (N, 1) instead of (N,), so gamma * x_hat of the transposed (D, N) batch broadcasts to (D, N) only when D == N and raises otherwise.",
          test=LN),
    right("layernorm_forward", "F.layer_norm forward, autograd backward", ln_forward_torch,
          test=LN, given={"layernorm_backward": ln_backward_autograd}),
]
