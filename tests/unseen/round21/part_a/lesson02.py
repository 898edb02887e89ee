"""Held-out answers (twenty-first set, part a), lesson 02: batchnorm_forward, the staged and
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


def fw_sqrt_comma_for_plus(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var, eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return gamma * x_hat + beta, (x_hat, std, inv_std, gamma)


@notebook
def fw_parameters_kept_from_the_first_call(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    # like a layer: gamma and beta are set up once, on the first call
    params = fw_parameters_kept_from_the_first_call.__dict__
    if "gamma" not in params:
        params["gamma"], params["beta"] = gamma, beta
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xc * inv_std
    return params["gamma"] * x_hat + params["beta"], (x_hat, std, inv_std, params["gamma"])


def fw_fused_scale(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"batch norm needs at least 2 examples per feature in training mode (got N={n})")
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.mean(xc * xc, axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    scale = gamma * inv_std  # gamma folded into the normalisation: one multiply per entry
    out = xc * scale + beta
    return out, (xc * inv_std, std, inv_std, gamma)


# ---- staged backward -----------------------------------------------------------


def bw_dx_hat_in_float32(dout, cache):
    x_hat, std, inv_std, gamma = cache
    n = dout.shape[0]
    xc = x_hat * std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = (dout * gamma).astype(np.float32)  # float32, as in the timing cell
    drho = (dx_hat * xc).sum(axis=0)
    dxc = dx_hat * inv_std
    ds = -drho / std**2
    dvar = ds / (2.0 * std)
    dxc = dxc + 2.0 * xc * dvar / n
    dmu = -dxc.sum(axis=0)
    return dxc + dmu / n, dgamma, dbeta


def bw_parameter_grads_squeezed(dout, cache):
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
    dx = dxc + dmu / n
    return dx, dgamma.squeeze(), dbeta.squeeze()  # back to 1-D for the caller


# ---- closed form --------------------------------------------------------------


def alt_integer_reciprocal_of_n(dout, cache):
    x_hat, _, inv_std, gamma = cache
    inv_n = np.reciprocal(dout.shape[0])  # multiply instead of divide
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta * inv_n - x_hat * dgamma * inv_n)
    return dx, dgamma, dbeta


@notebook
def alt_one_over_n_cached(dout, cache):
    x_hat, _, inv_std, gamma = cache
    consts = alt_one_over_n_cached.__dict__
    if "inv_n" not in consts:
        consts["inv_n"] = 1.0 / dout.shape[0]  # computed once: the timing cell calls this a lot
    inv_n = consts["inv_n"]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta * inv_n - x_hat * dgamma * inv_n)
    return dx, dgamma, dbeta


# ---- spatial --------------------------------------------------------------------


@notebook
def sp_backward_cached_x_hat_reshaped_to_nchw(dout, cache):
    n, c, h, w = dout.shape
    columns = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, _, _ = batchnorm_backward_alt(columns, cache)  # noqa: F821
    x_hat = cache[0].reshape(n, c, h, w)  # the normalised input, back in image layout
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def sp_backward_4d_count_n(dout, cache):
    x_cols, _, inv_std, gamma = cache
    n, c, h, w = dout.shape
    x_hat = x_cols.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    m = n  # the batch size
    k = (gamma * inv_std)[None, :, None, None]
    dx = k * (dout - dbeta[None, :, None, None] / m - x_hat * dgamma[None, :, None, None] / m)
    return dx, dgamma, dbeta


# ---- layer norm -----------------------------------------------------------------


def ln_forward_autograd_graph(x, gamma, beta, eps=1e-5):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    out = F.layer_norm(xt, (x.shape[1],), gt, bt, eps)
    return out.detach().numpy(), (xt, gt, bt, out)


def ln_backward_autograd_graph(dout, cache):
    xt, gt, bt, out = cache
    out.backward(torch.as_tensor(dout, dtype=torch.float64))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def ln_forward_eps_added_to_the_std(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    std = np.sqrt((xc**2).mean(axis=1, keepdims=True)) + eps  # as in the Annotated Transformer
    x_hat = xc / std
    # the cache batchnorm_backward_alt reads, for the transposed problem
    std_t = std[:, 0]
    bn_cache = (x_hat.T, std_t, 1.0 / std_t, np.ones(x.shape[0]))
    return gamma * x_hat + beta, (x_hat, gamma, bn_cache)


ENTRIES = [
    entry(FW, "np.sqrt(var, eps): comma typed for +", fw_sqrt_comma_for_plus,
          "types np.sqrt(var, eps) for np.sqrt(var + eps), and NumPy reads the second argument as the out= array, so every call raises TypeError ('return arrays must be of ArrayType')."),
    entry(FW, "gamma and beta kept from the first call, like a layer's", fw_parameters_kept_from_the_first_call,
          "stores gamma and beta on the function at the first call (as a layer owns its parameters) and uses those on every later call, so only the first call is right: later calls scale and shift with the first call's gamma and beta (and fail to broadcast when D changes)."),
    right(FW, "gamma folded into the scale (xc * (gamma * inv_std) + beta)", fw_fused_scale),
    entry(BW, "dx_hat cast to float32", bw_dx_hat_in_float32,
          "casts dx_hat = dout * gamma to float32 (as for the timing cell), so dx carries float32 rounding (about 1e-7 relative) for float64 inputs; dgamma and dbeta, computed before, are right.",
          test=BW),
    entry(BW, "dgamma and dbeta squeezed after keepdims", bw_parameter_grads_squeezed,
          "sums with keepdims=True and squeezes dgamma and dbeta before returning them, so with one feature (D = 1) they come back as 0-d arrays of shape () instead of (1,); values, dx and every D > 1 are right.",
          test=BW),
    entry(ALT, "1/N as np.reciprocal(N) of an integer", alt_integer_reciprocal_of_n,
          "computes 1/N as np.reciprocal(dout.shape[0]), which for a Python integer is an integer reciprocal, 0 for every N > 1, so both mean terms vanish and dx = gamma * inv_std * dout (dgamma and dbeta are right).",
          test=ALT),
    entry(ALT, "1/N computed on the first call and kept", alt_one_over_n_cached,
          "computes 1/N once, on the first call, and keeps it on the function, so every later call with another batch size uses the first call's N in both mean terms of dx (dgamma, dbeta and every call with the first N are right).",
          test=ALT),
    entry("spatial_batchnorm_backward", "cached x_hat reshaped to (N, C, H, W) without the transpose",
          sp_backward_cached_x_hat_reshaped_to_nchw,
          "computes dgamma from the cached x_hat (rows in (N, H, W) order, channels last) reshaped straight to (N, C, H, W) without moving the channels back, so x_hat's values are scrambled against dout and dgamma is wrong (dx and dbeta are right).",
          test=SP),
    entry("spatial_batchnorm_backward", "closed form in 4-D with N as the count", sp_backward_4d_count_n,
          "writes the closed form directly on (N, C, H, W) arrays but divides the two mean terms by N, the batch size, instead of N * H * W, the number of values per channel, so dx is wrong (dgamma and dbeta are right).",
          test=SP),
    Unseen("layernorm_backward", "autograd graph in the cache, backward() without retain_graph",
           {"layernorm_forward": ln_forward_autograd_graph, "layernorm_backward": ln_backward_autograd_graph}, LN,
           "keeps the autograd graph in the cache and calls out.backward(dout) without retain_graph, reading the leaves' .grad, so the first backward call on a cache is right but a second call on the same cache raises RuntimeError (the graph is freed)."),
    entry("layernorm_forward", "eps added to the row std (Annotated Transformer)", ln_forward_eps_added_to_the_std,
          "adds eps to each row's standard deviation, (x - mu) / (sqrt(var) + eps) as in the Annotated Transformer's LayerNorm, instead of inside the square root, sqrt(var + eps), so the output (and the gradients read from its cache) are slightly wrong, most for rows with a small spread.",
          test=LN),
]
