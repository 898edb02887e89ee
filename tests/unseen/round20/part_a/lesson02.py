"""Held-out answers (twentieth set, part a), lesson 02: batchnorm_forward, the staged and
closed-form backward passes, spatial batch norm, layer norm.

The cache is the solution's (x_hat, std, inv_std, gamma); the backward answers read
it as the learner's own forward (the solution's) writes it."""

import numpy as np
import torch
import torch.nn.functional as F

from _format import Unseen, entry, notebook, right

FW, BW, ALT = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"
SP, LN = "spatial_batchnorm", "layernorm"


# ---- forward -----------------------------------------------------------------


def fw_f_batch_norm_without_training(x, gamma, beta, eps=1e-5):
    n, d = x.shape
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    # the output from PyTorch, with fresh running buffers as nn.BatchNorm1d makes them
    out = F.batch_norm(torch.from_numpy(x), torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64),
                       torch.from_numpy(gamma), torch.from_numpy(beta), eps=eps).numpy()
    return out, (x_hat, std, inv_std, gamma)


def fw_x_hat_scaled_in_place_before_caching(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    x_hat = x - mu
    var = (x_hat**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat *= inv_std
    x_hat *= gamma  # scale in place, no extra array
    out = x_hat + beta
    return out, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_one_over_n_twice_in_variance_branch(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    # var = (1/N) sum(xc ** 2), so dvar carries the 1/N
    dvar = ds / (2.0 * std) / n
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


@notebook
def bw_parameter_grads_accumulated(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    # like PyTorch's .grad: parameter gradients accumulate until they are zeroed
    acc = bw_parameter_grads_accumulated.__dict__
    if acc.get("dgamma") is None or acc["dgamma"].shape != dgamma.shape:
        acc["dgamma"], acc["dbeta"] = np.zeros_like(dgamma), np.zeros_like(dbeta)
    acc["dgamma"] += dgamma
    acc["dbeta"] += dbeta
    dx_hat = dout * gamma
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, acc["dgamma"], acc["dbeta"]


# ---- closed form --------------------------------------------------------------

@notebook
def alt_dgamma_in_a_reused_buffer(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n, d = dout.shape
    dbeta = dout.sum(axis=0)
    buffers = alt_dgamma_in_a_reused_buffer.__dict__.setdefault("buffers", {})
    if d not in buffers:
        buffers[d] = np.empty(d)  # allocated once per width: the timing cell calls this a lot
    dgamma = np.einsum("ij,ij->j", dout, x_hat, out=buffers[d])
    dx = x_hat * (-dgamma / n)
    dx += dout
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def alt_keepdims_on_the_parameter_grads(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0, keepdims=True)
    dgamma = (dout * x_hat).sum(axis=0, keepdims=True)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_full_transpose(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    columns = x.T.reshape(-1, c)  # channels towards the end
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.reshape(x.T.shape).T, cache


@notebook
def sp_backward_dout_averaged_over_positions(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c) / (h * w)  # each map shares one scale
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


def ln_forward_rms(x, gamma, beta, eps=1e-5):
    inv_rms = 1.0 / np.sqrt((x**2).mean(axis=1, keepdims=True) + eps)
    x_hat = x * inv_rms
    return gamma * x_hat + beta, (x_hat, inv_rms, gamma)


def ln_backward_rms(dout, cache):
    x_hat, inv_rms, gamma = cache
    d = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    g = dout * gamma
    dx = inv_rms * (g - x_hat * (g * x_hat).sum(axis=1, keepdims=True) / d)
    return dx, dgamma, dbeta


def ln_backward_row_jacobians(dout, cache):
    x_hat, gamma, bn_cache = cache
    inv_std = bn_cache[2]  # one per row of x
    n, d = dout.shape
    eye = np.eye(d)
    # J[r] = inv_std[r] * (I - 1/D - x_hat[r] x_hat[r]^T / D), symmetric
    jac = inv_std[:, None, None] * (eye - 1.0 / d - np.einsum("ri,rj->rij", x_hat, x_hat) / d)
    dx = np.einsum("rij,rj->ri", jac, dout * gamma)
    return dx, np.einsum("ri,ri->i", dout, x_hat), dout.sum(axis=0)


ENTRIES = [
    entry(FW, "output from F.batch_norm without training=True", fw_f_batch_norm_without_training,
          "computes the output with F.batch_norm given fresh running buffers (zeros and ones) but without training=True, whose default is False, so the output is normalised with mean 0 and variance 1 (gamma * x / sqrt(1 + eps) + beta) instead of the batch's statistics; the cache is right."),
    entry(FW, "x_hat scaled by gamma in place before caching", fw_x_hat_scaled_in_place_before_caching,
          "multiplies x_hat by gamma in place before putting it in the cache, so the output is right but the cache holds gamma * x_hat instead of x_hat, and a backward pass reading it gets dgamma and dx wrong (right only when gamma is all ones)."),
    entry(BW, "1/N applied twice in the variance branch", bw_one_over_n_twice_in_variance_branch,
          "divides by N both in dvar and again in the term 2 xc dvar / N, so the variance branch of dx is N times too small (dgamma and dbeta are right).",
          test=BW),
    entry(BW, "dgamma and dbeta accumulated across calls like .grad", bw_parameter_grads_accumulated,
          "adds dgamma and dbeta into arrays kept on the function between calls (like PyTorch's .grad), so the first call with a given width is right but every later call returns the sum over all calls so far (dx is right).",
          test=BW),
    entry(ALT, "dgamma written into a buffer reused across calls", alt_dgamma_in_a_reused_buffer,
          "writes dgamma into one preallocated array per width (einsum out=) and returns that array, so a later call with the same width overwrites the dgamma an earlier call returned; each result is right when it is returned.",
          test=ALT),
    entry(ALT, "keepdims=True on dgamma and dbeta", alt_keepdims_on_the_parameter_grads,
          "sums dgamma and dbeta with keepdims=True, so they come back with shape (1, D) instead of (D,); their values and dx are right.",
          test=ALT),
    entry("spatial_batchnorm_forward", "x.T to move the channels last", sp_forward_full_transpose,
          "uses x.T (which reverses all four axes to (W, H, C, N)) to move the channels last before reshaping to (-1, C), so the columns mix channels and examples and the statistics are wrong (the shapes come out right).",
          test=SP),
    entry("spatial_batchnorm_backward", "dout divided by H * W", sp_backward_dout_averaged_over_positions,
          "divides dout by H * W before the (N, D) backward pass (as if each feature map shared one gradient), so dx, dgamma and dbeta are all H * W times too small.",
          test=SP),
    Unseen("layernorm_forward", "RMSNorm instead of layer norm",
           {"layernorm_forward": ln_forward_rms, "layernorm_backward": ln_backward_rms}, LN,
           "implements RMSNorm (forward and its consistent backward): each row is divided by its root mean square without subtracting the row mean, so the output and the gradients are wrong unless every row has mean 0."),
    right("layernorm_backward", "explicit (D, D) Jacobian per row", ln_backward_row_jacobians, test=LN),
]
