"""Held-out answers (twenty-second set, part a), lesson 02: batchnorm_forward, the staged and
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


def fw_momentum_before_eps(x, gamma, beta, momentum=0.1, eps=1e-5):
    # the order of F.batch_norm(..., training, momentum, eps): momentum is for lesson 03
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


def fw_output_from_x(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    out = gamma * (x * inv_std) + beta
    return out, (x_hat, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_mean_stage_before_the_variance_branch(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dxc = dx_hat * inv_std
    # xc = x - mu, mu = mean(x): two branches into x
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    # rho = 1 / s, s = sqrt(var + eps), var = mean(xc ** 2)
    drho = (dx_hat * xc).sum(axis=0)
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    return dx, dgamma, dbeta


def bw_drho_from_a_matrix_product(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    drho = (dx_hat.T @ xc).sum(axis=0)  # sum over the batch as a matrix product
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


# ---- closed form --------------------------------------------------------------


def alt_scale_with_np_dot(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    scale = np.dot(gamma, inv_std)  # gamma times rho
    dx = scale * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_cache_first(cache, dout):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / n - x_hat * dgamma / n)
    return dx, dgamma, dbeta


def alt_dout_centred_first(dout, cache):
    x_hat, _, inv_std, gamma = cache
    n = dout.shape[0]
    dout = dout - dout.mean(axis=0)  # the boxed formula's first two terms (a new array)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - x_hat * dgamma / n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_forward_channels_first(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    columns = x.transpose(1, 0, 2, 3).reshape(c, -1).T  # (N*H*W, C), rows in (N, H, W) order
    out, cache = batchnorm_forward(columns, gamma, beta, eps)  # noqa: F821
    return out.T.reshape(c, n, h, w).transpose(1, 0, 2, 3), cache


@notebook
def sp_backward_inverse_permutation(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 3, 1, 2).reshape(-1, c)  # channels last
    dx, dgamma, dbeta = batchnorm_backward_alt(columns, cache)  # noqa: F821
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


@notebook
def ln_forward_one_plus_gamma(x, gamma, beta, eps=1e-5):
    ones, zeros = np.ones(x.shape[0]), np.zeros(x.shape[0])
    x_hat_t, bn_cache = batchnorm_forward(x.T, ones, zeros, eps)  # noqa: F821
    x_hat = x_hat_t.T
    scale = 1.0 + gamma  # zero-centred scale, as Gemma's norms store it
    return scale * x_hat + beta, (x_hat, scale, bn_cache)


def ln_backward_autograd_from_x_hat(dout, cache):
    x_hat, gamma, _ = cache
    # the cache has no x: x_hat stands in for it, autograd does the rest
    xt = torch.tensor(x_hat, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(len(gamma), dtype=torch.float64, requires_grad=True)
    out = F.layer_norm(xt, (x_hat.shape[1],), gt, bt, 1e-5)
    out.backward(torch.as_tensor(dout, dtype=torch.float64))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


ENTRIES = [
    entry(FW, "momentum before eps in the signature (F.batch_norm's order)", fw_momentum_before_eps,
          "puts a momentum parameter before eps in the signature, batchnorm_forward(x, gamma, beta, momentum=0.1, eps=1e-5), as in F.batch_norm, so an eps passed as the fourth positional argument lands in the unused momentum and the default 1e-5 is used; calls with eps by keyword or without eps are right."),
    entry(FW, "output scaled from x, not from the centred x", fw_output_from_x,
          "writes the output as gamma * (x * inv_std) + beta, from the raw input instead of the centred one, so out is off by -gamma * mu / std per feature; the cache (x_hat, std, inv_std, gamma) is right."),
    entry(BW, "mean stage written before the variance branch is added", bw_mean_stage_before_the_variance_branch,
          "computes dmu and dx = dxc + dmu / N before the variance branch is added to dxc (the later dxc update is never used), so dx lacks the variance branch; dgamma and dbeta are right.",
          test=BW),
    entry(BW, "drho as the column sums of dx_hat.T @ xc", bw_drho_from_a_matrix_product,
          "computes drho as (dx_hat.T @ xc).sum(axis=0), the column sums of a (D, D) matrix product, instead of the per-feature sums (dx_hat * xc).sum(axis=0), so drho mixes the features and dx is wrong whenever D > 1 (dgamma and dbeta are right).",
          test=BW),
    entry(ALT, "gamma * inv_std written as np.dot(gamma, inv_std)", alt_scale_with_np_dot,
          "multiplies gamma by inv_std with np.dot, which for two (D,) vectors is their dot product, one number, so dx is scaled by sum(gamma * inv_std) instead of each feature's gamma * inv_std (right only for D = 1; dgamma and dbeta are right).",
          test=ALT),
    entry(ALT, "arguments in the order (cache, dout)", alt_cache_first,
          "declares the parameters in the order (cache, dout), so a call batchnorm_backward_alt(dout, cache) unpacks the dout array as the cache and raises (ValueError, or AttributeError on the tuple's .shape) on every call.",
          test=ALT),
    entry(ALT, "dbeta summed from the centred dout", alt_dout_centred_first,
          "centres dout first (dout - dout.mean(0), for the formula's first two terms) and then sums that for dbeta, so dbeta comes back as zeros (round-off); dx and dgamma are right.",
          test=ALT),
    right("spatial_batchnorm_forward", "channels first: x.transpose(1, 0, 2, 3).reshape(C, -1).T",
          sp_forward_channels_first, test=SP),
    entry("spatial_batchnorm_backward", "dout moved with the inverse permutation (0, 3, 1, 2)",
          sp_backward_inverse_permutation,
          "moves dout's channels with transpose(0, 3, 1, 2), the inverse of the forward's (0, 2, 3, 1), before reshaping to (-1, C), so the columns mix channels and positions and dx, dgamma and dbeta are wrong.",
          test=SP),
    entry("layernorm_forward", "scale 1 + gamma (Gemma's zero-centred scale)", ln_forward_one_plus_gamma,
          "scales by 1 + gamma (the zero-centred scale Gemma's norms store) instead of gamma, so the output is off by x_hat for every feature, and the gradients read from its cache are those of the wrong scale.",
          test=LN),
    entry("layernorm_backward", "autograd on x_hat standing in for x", ln_backward_autograd_from_x_hat,
          "runs autograd through F.layer_norm on the cached x_hat in place of the input x (the cache has no x), so dx lacks each row's 1/std factor (and dgamma is slightly off: x_hat renormalised with eps again); dbeta is right.",
          test=LN),
]
