"""Held-out answers (twenty-fourth set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 23.
"""

import torch
from torch import nn

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_chan_between_unweighted(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    # each rank's own moments, merged with Chan et al.'s formula (no cancellation)
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    local_var, local_mean = torch.var_mean(x, dim=0, correction=0)
    count = all_reduce(n)
    mean = all_reduce(n * local_mean) / count
    m2 = all_reduce(n * local_var + (local_mean - mean) ** 2)
    var = m2 / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_var_gets_mean(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * mean)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_eps_squared(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    # eps guards the standard deviation, so it enters the variance squared
    rho = 1.0 / torch.sqrt(var + eps ** 2)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_chan_unbiased_local_rescaled(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                    momentum=0.1):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    count = all_reduce(n)
    local_mean = x.mean(0)
    local_var = x.var(0) * (n - 1) / n  # torch's unbiased variance, made biased again
    mean = all_reduce(n * local_mean) / count
    var = all_reduce(n * local_var + n * (local_mean - mean) ** 2) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_right_new_full_sub_alpha(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                momentum=0.1):
    count = all_reduce(x.new_full((1,), x.shape[0]))
    mean = all_reduce(torch.sum(x, dim=0)) / count
    sq = all_reduce(torch.square(x - mean).sum(dim=0))
    var = sq / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.sub_(running_mean - mean, alpha=momentum)
            running_var.sub_(running_var - sq / (count - 1), alpha=momentum)
    std = torch.sqrt(var + eps)
    x_hat = (x - mean) / std
    return x_hat * gamma + beta, (x_hat, std.reciprocal(), gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_floor_division(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums // count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_local_means_then_over_n(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    means = all_reduce(torch.stack([dout.mean(0), (dout * x_hat).mean(0)]))
    mean_dy, mean_dy_xhat = means / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_half_converted_n_form(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    sum_dy, mean_dy_xhat = sums[0], sums[1] / count
    dx = gamma * rho / count * (count * dout - sum_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------

_STASH = {}


def cap_fw_stash(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * invstd
    _STASH["x_hat"] = x_hat  # kept for the backward, so it need not recompute it
    return gamma * x_hat + beta, (x, gamma, mean, invstd, count)


def cap_bw_stash(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = _STASH["x_hat"]
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_batch_norm_stats(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    # as torch/nn/modules/_functions.py: this rank's mean and invstd, then merged with the counts
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    local_mean, local_invstd = torch.batch_norm_stats(x, eps)
    local_var = 1.0 / local_invstd ** 2 - eps
    count = all_reduce(n)
    mean = all_reduce(n * local_mean) / count
    var = all_reduce(n * local_var + n * (local_mean - mean) ** 2) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_buffers_swapped_in_signature(x, gamma, beta, running_var, running_mean, all_reduce, eps=1e-5,
                                        momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_xhat_term_local_count(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy = sums[0] / count
    mean_dy_xhat = sums[1] / len(x)
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_right_scalar_count(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor(float(len(x)), dtype=x.dtype))  # a 0-d tensor
    mean = x.sum(0)
    mean = all_reduce(mean) / count
    centred = x - mean
    var = all_reduce(centred.pow(2).sum(0)) / count
    with torch.no_grad():
        running_mean.copy_(torch.lerp(running_mean, mean.to(running_mean.dtype), momentum))
        running_var.copy_(torch.lerp(running_var, (var * (count / (count - 1))).to(running_var.dtype), momentum))
    invstd = (var + eps).rsqrt()
    return centred * (invstd * gamma) + beta, (x, gamma, mean, invstd, count)


def cap_bw_right_sums_form(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    local = torch.stack([dout, dout * x_hat]).sum(1)
    total = all_reduce(local)
    dx = gamma * invstd * (dout - (total[0] + x_hat * total[1]) / count)
    return dx, local[1], local[0], None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_weights_floor_division(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    weight = count // total  # this rank's share of the data
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(weight * bn.running_mean)
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_between_from_sum(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            weighted = all_reduce(count * bn.running_mean)
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - weighted) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(weighted / total)
            bn.running_var.copy_(var)


def mg_count_before_all_reduce(model, count, all_reduce):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong, 1 correct
    entry(FW, "Chan merge, between-rank term not weighted by n_r", fw_chan_between_unweighted,
          "merges each rank's own mean and biased variance with Chan's formula but adds the squared deviation of "
          "the rank's mean from the global mean once per rank instead of n_r times, so the variance is too small "
          "(the output and running_var are wrong; the mean and running_mean are right)."),
    entry(FW, "running_var fed the batch mean (copy-pasted line)", fw_running_var_gets_mean,
          "copies the running_mean update line for running_var and changes only the buffer, so running_var is "
          "blended with the whole batch's mean instead of its unbiased variance (the output and running_mean are "
          "right)."),
    entry(FW, "eps squared (taken as a standard-deviation epsilon)", fw_eps_squared,
          "adds eps ** 2 to the variance, thinking eps guards the standard deviation, instead of eps, so the "
          "output is slightly off with eps=1e-5 and clearly off with a large eps (the running statistics are "
          "right)."),
    entry(FW, "each rank's unbiased x.var(0) rescaled by (n-1)/n", fw_chan_unbiased_local_rescaled,
          "takes each rank's variance as torch's unbiased x.var(0) times (n_r - 1) / n_r before the (right) "
          "count-weighted merge, which is NaN on a rank holding one example (0 * NaN), so with such a rank the "
          "output and running statistics of every rank are NaN; with two or more examples per rank all is right."),
    right(FW, "new_full count, square, division by the std, sub_(alpha=)", fw_right_new_full_sub_alpha),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "all-reduced sums floor-divided by the count (//)", bw_floor_division,
          "divides the all-reduced sums by the count with floor division (//) instead of true division, so both "
          "means are rounded down to whole numbers and dx is wrong (dgamma and dbeta are right)."),
    entry(BW, "each rank's means all-reduced, then divided by N again", bw_local_means_then_over_n,
          "all-reduces each rank's means (dout.mean(0), (dout * x_hat).mean(0)) instead of its sums and then "
          "divides by N as if they were sums, so both batch terms are about n_r times too small and dx is wrong "
          "(dgamma and dbeta are right)."),
    entry(BW, "N * dout form with the x_hat term divided by N twice", bw_half_converted_n_form,
          "rewrites dx in the N * dout form (gamma * rho / N * (N * dout - sum dy - x_hat * ...)) but keeps the "
          "second sum already divided by N, so the x_hat term is N times too small and dx is wrong (dgamma and "
          "dbeta are right)."),
    # sync_bn_layer: 4 wrong, 1 correct
    Unseen(CAP, "x_hat stashed in a module-level dict for the backward",
           {CAP_FW: cap_fw_stash, CAP_BW: cap_bw_stash}, CAP,
           "keeps x_hat in a module-level dict in the forward and reads it back in the backward instead of "
           "recomputing it from the saved tensors, so the backward uses whatever forward ran last (another rank's "
           "or another layer's x_hat, of another shape or values), not its own saved (x, mean, invstd)."),
    entry(CAP, "torch.batch_norm_stats copied from PyTorch's SyncBatchNorm", cap_fw_batch_norm_stats,
          replaces=CAP_FW,
          cause="takes each rank's mean and invstd from torch.batch_norm_stats, as torch.nn.SyncBatchNorm does, "
          "but that kernel has no CPU implementation, so the forward raises NotImplementedError on every rank."),
    entry(CAP, "running_var and running_mean swapped in the signature", cap_fw_buffers_swapped_in_signature,
          replaces=CAP_FW,
          cause="declares the forward as (x, gamma, beta, running_var, running_mean, ...), so the running_mean "
          "passed by the layer receives the variance update and running_var the mean update (the output and the "
          "saved tensors are right)."),
    entry(CAP, "backward's x_hat term over this rank's count", cap_bw_xhat_term_local_count, replaces=CAP_BW,
          cause="divides the all-reduced sum of dout * x_hat by this rank's len(x) instead of the global count N "
          "(the sum of dout is divided by N), so the x_hat term of dx is N / n_r times too large (dgamma and "
          "dbeta are right)."),
    Unseen(CAP, "0-d count, pow, lerp into copy_, gamma folded into invstd; stacked-rows backward",
           {CAP_FW: cap_fw_right_scalar_count, CAP_BW: cap_bw_right_sums_form}, CAP, correct=True),
    # merge_running_stats: 3 wrong
    entry(MG, "share count / N computed with floor division", mg_weights_floor_division,
          "computes this rank's share as count // total (floor division) instead of count / total, so every "
          "share is 0 and the merged running_mean is zero (and running_var is measured around zero)."),
    entry(MG, "between-rank deviations from the all-reduced sum, not the mean", mg_between_from_sum,
          "keeps the all-reduced sum of count * running_mean and divides it by N only when writing running_mean, "
          "but the between-rank term subtracts the undivided sum, so running_var is far too large "
          "(running_mean is right)."),
    entry(MG, "signature (model, count, all_reduce)", mg_count_before_all_reduce,
          "declares the function as merge_running_stats(model, count, all_reduce), swapping the last two "
          "parameters, so called as (model, all_reduce, count) it calls the integer count as the all-reduce "
          "and raises TypeError."),
]
