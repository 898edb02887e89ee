"""Held-out answers (seventeenth set, part C), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written from solutions/08 only; each wrong entry has one mistake.
"""

import copy

import torch
from torch import nn

from _format import entry, notebook, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_keras_eps_default(x, gamma, beta, all_reduce, eps=1e-3, running_mean=None, running_var=None,
                         momentum=0.1):
    # eps as in keras.layers.BatchNormalization(epsilon=0.001)
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_input_centred_in_place(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    x -= mean  # centre once, no extra (n, C) tensor
    var = all_reduce((x**2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = x * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_bessel_plus_one(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                       momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count + 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_gamma_over_rho(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma / rho * (dout - mean_dy - x_hat * mean_dy_xhat)  # the formula's gamma / sigma
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_bf16_compressed_sums(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    stacked = torch.stack([dout.sum(0), (dout * x_hat).sum(0)])
    # half the bytes on the wire, as DDP's bf16_compress_hook does for gradients
    sums = all_reduce(stacked.to(torch.bfloat16)).to(dout.dtype)
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_cat_view_addcmul(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    c = dout.shape[1]
    local_dbeta = dout.sum(0)
    local_dgamma = torch.einsum("nc,nc->c", dout, x_hat)
    total = all_reduce(torch.cat([local_dbeta, local_dgamma])).view(2, c) / count
    centred = torch.addcmul(dout - total[0], x_hat, total[1], value=-1.0)
    return centred * (gamma * rho), local_dgamma, local_dbeta


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_mean_scaled_in_place(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    invstd = 1.0 / torch.sqrt(var + eps)
    out = gamma * (x - mean) * invstd + beta
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(mean.mul_(momentum))  # chained in place
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    return out, (x, gamma, mean, invstd, count)


@notebook
def sync_bn_backward(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    # section 3 already does the rest
    return sync_batchnorm_backward(dout, (x_hat, invstd, gamma, count), all_reduce)  # noqa: F821


CAP_BW_SECTION3 = sync_bn_backward


def cap_bw_native_unpack_order(saved, dout, all_reduce):
    # torch.batch_norm_backward_elemt(grad_out, input, mean, invstd, weight, ...)
    x, mean, invstd, gamma, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


# ---- merge_running_stats ---------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_batches_tracked_summed(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        # the merged statistics stand for every rank's batches
        bn.num_batches_tracked.copy_(all_reduce(bn.num_batches_tracked))


def mg_merged_copy_returned(model, all_reduce, count):
    # Flax style: the state is not mutated, the merged state is returned
    merged = copy.deepcopy(model)
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(merged):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return merged


def mg_named_modules_addcmul(model, all_reduce, count):
    n = torch.full((1,), float(count), dtype=torch.float64)
    total = all_reduce(n)
    for _, m in model.named_modules():
        if not isinstance(m, nn.modules.batchnorm._NormBase) or m.running_mean is None:
            continue
        rm, rv = m.running_mean, m.running_var
        merged_mean = all_reduce(rm * n.to(rm.dtype)) / total.to(rm.dtype)
        delta = rm - merged_mean
        m2 = torch.addcmul(rv * (count - 1), delta, delta, value=float(count))
        rv.copy_(all_reduce(m2) / (total.to(rv.dtype) - 1))
        rm.copy_(merged_mean)


ENTRIES = [
    # sync_batchnorm_forward: 3 wrong
    entry(FW, "eps default 1e-3 (Keras)", fw_keras_eps_default,
          "declares eps=1e-3, keras.layers.BatchNormalization's default epsilon, instead of eps=1e-5, so every "
          "call that relies on the default normalises with sqrt(var + 0.001)."),
    entry(FW, "input centred in place (x -= mean)", fw_input_centred_in_place,
          "centres the input in place with x -= mean to save a tensor, so the caller's x is overwritten by "
          "x - mean (and a leaf x that requires grad makes it raise); the output, cache and running statistics "
          "are right."),
    entry(FW, "Bessel factor N / (N + 1)", fw_bessel_plus_one,
          "multiplies the variance by count / (count + 1) instead of count / (count - 1) in the running_var "
          "update (a sign typo), so the running variance gets a shrunk, not the unbiased, variance."),
    # sync_batchnorm_backward: 2 wrong, 1 correct
    entry(BW, "gamma / rho (rho read as sigma)", bw_gamma_over_rho,
          "reads the formula's gamma / sigma with the cache's rho taken for sigma and writes gamma / rho, but "
          "rho is 1 / sqrt(var + eps), so dx is (var + eps) times too large per channel (dgamma and dbeta are "
          "right)."),
    entry(BW, "sums all-reduced in bfloat16", bw_bf16_compressed_sums,
          "casts the stacked sums to bfloat16 for the all-reduce (as DDP's bf16_compress_hook does for "
          "gradients), so the two global sums keep about 3 significant digits and dx is off by about 1e-2 "
          "relative."),
    right(BW, "cat and view(2, C), einsum, addcmul", bw_cat_view_addcmul),
    # sync_bn_layer: 3 wrong
    entry(CAP, "mean scaled in place in the running update", cap_fw_mean_scaled_in_place, replaces=CAP_FW,
          cause="chains mean.mul_(momentum) into the running-mean update, which scales the batch mean itself in "
          "place, so saved holds momentum * mean instead of the mean and the backward pass centres x on it (the "
          "output and the running statistics are right)."),
    entry(CAP, "backward returns section 3's three gradients", CAP_BW_SECTION3, replaces=CAP_BW,
          cause="returns section 3's sync_batchnorm_backward result as it is, (dx, dgamma, dbeta), without the two "
          "None for running_mean and running_var, so the autograd Function gets 3 gradients for its 5 inputs."),
    entry(CAP, "saved unpacked in torch's (x, mean, invstd, weight) order", cap_bw_native_unpack_order,
          replaces=CAP_BW,
          cause="unpacks saved as (x, mean, invstd, gamma, count), the argument order of torch's "
          "batch_norm_backward_elemt, instead of (x, gamma, mean, invstd, count), so gamma, mean and invstd "
          "each get another's value."),
    # merge_running_stats: 2 wrong, 1 correct
    entry(MG, "num_batches_tracked summed over the ranks", mg_batches_tracked_summed,
          "all-reduces num_batches_tracked (summing the ranks' batch counts, 'the merged statistics stand for "
          "all of them') instead of leaving it alone, so the counter changes."),
    entry(MG, "merged statistics written into a copy and returned", mg_merged_copy_returned,
          "merges into a deep copy of the model and returns it (Flax's functional habit: new state, nothing "
          "mutated) instead of replacing the buffers of the given model in place, so the caller's layers keep "
          "their own statistics."),
    right(MG, "named_modules, _NormBase, addcmul", mg_named_modules_addcmul),
]
