"""Held-out answers (fifteenth set, part C), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written from solutions/08 only; each wrong entry has one mistake.
"""

import torch
from torch import nn

from _format import entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_rank_count_outside_all_reduce(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                     momentum=0.1):
    n = x.shape[0]
    count = all_reduce(torch.tensor([float(n)], dtype=x.dtype))
    mean = all_reduce(x.mean(0)) * n / count  # meant all_reduce(x.mean(0) * n) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_mean_line_twice(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_bessel_precedence(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            unbiased = var * count / count - 1  # meant var * count / (count - 1)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_local_moments_merged(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                            momentum=0.1):
    n = x.shape[0]
    count = all_reduce(x.new_full((1,), float(n)))
    local_mean = x.mean(0)
    mean = all_reduce(local_mean * n) / count
    # each rank's squared deviations around the global mean: n (var_r + (mean_r - mean)^2)
    local_var = torch.var(x, 0, correction=0)
    var = all_reduce(n * (local_var + (local_mean - mean) ** 2)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean += momentum * (mean - running_mean)
            running_var += momentum * (var * count / (count - 1) - running_var)
    rho = torch.rsqrt(var + eps)
    x_hat = (x - mean) * rho
    return x_hat * gamma + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_matmul_for_the_sum(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sum_dy_xhat = (x_hat.T @ dout).sum(0)  # "sum over the batch of dout * x_hat as a matrix product"
    sums = all_reduce(torch.stack([dout.sum(0), sum_dy_xhat]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, sum_dy_xhat, dout.sum(0)


def bw_cache_before_dout(cache, dout, all_reduce):  # the capstone's (saved, dout, ...) order
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_local_m2_in_running_var(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                   momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    m2 = ((x - mean) ** 2).sum(0)
    var = all_reduce(m2) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * m2 / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_sums_over_world(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    world = all_reduce(torch.ones(1, dtype=x.dtype))
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / world  # "all-reduce sums: divide by the number of ranks for the mean"
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_param_grads_last_axis(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(-1), dout.sum(-1), None, None  # axis=-1, as in TF


# ---- merge_running_stats ---------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_biased_convention(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = count * bn.running_var  # sklearn / NumPy: var with ddof=0
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / total
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_running_mean_in_within(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_mean
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_float64_addcmul(model, all_reduce, count):
    n = float(count)
    total = all_reduce(torch.full((1,), n, dtype=torch.float64))
    for m in model.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        rm, rv = m.running_mean, m.running_var
        mean = all_reduce(rm.double() * n) / total
        d = rm.double() - mean
        m2 = all_reduce(torch.addcmul(rv.double() * (n - 1), d, d, value=n))
        rm.copy_(mean.to(rm.dtype))
        rv.copy_((m2 / (total - 1)).to(rv.dtype))


ENTRIES = [
    # sync_batchnorm_forward: 3 wrong, 1 correct
    entry(FW, "rank's count multiplied outside the all-reduce", fw_rank_count_outside_all_reduce,
          "writes all_reduce(x.mean(0)) * n_r / N instead of all_reduce(x.mean(0) * n_r) / N, so each rank's "
          "mean is the sum of the ranks' means times its own share n_r / N: a different, wrong mean on every rank "
          "(right when every rank holds the same number of examples)."),
    entry(FW, "running_mean update line written twice", fw_running_mean_line_twice,
          "has the running_mean update line twice, so running_mean is decayed and moved twice per call "
          "((1 - m)^2 old + m (2 - m) mean) instead of once (running_var is right)."),
    entry(FW, "Bessel factor without parentheses", fw_bessel_precedence,
          "writes var * count / count - 1 instead of var * count / (count - 1), so running_var is fed the "
          "biased variance minus 1 instead of the unbiased variance."),
    right(FW, "n_r * local mean, local var around the global mean, rsqrt, += m * (new - old)",
          fw_local_moments_merged),
    # sync_batchnorm_backward: 2 wrong
    entry(BW, "matrix product for the sum of dout * x_hat", bw_matmul_for_the_sum,
          "computes the sum of dout * x_hat over the batch as (x_hat.T @ dout).sum(0), which mixes channels "
          "(sum over every channel of x_hat times dout), instead of (dout * x_hat).sum(0), so dx's x_hat term "
          "and dgamma are wrong (right when C = 1)."),
    entry(BW, "parameters in the capstone's order (cache, dout)", bw_cache_before_dout,
          "declares sync_batchnorm_backward(cache, dout, all_reduce), the capstone's order, instead of "
          "(dout, cache, all_reduce), so a call with the documented order unpacks dout as the cache."),
    # sync_bn_layer: 3 wrong
    entry(CAP, "running_var from this rank's squared deviations", cap_fw_local_m2_in_running_var, replaces=CAP_FW,
          cause="feeds running_var this rank's own sum of squared deviations over N - 1 (the local m2, not its "
          "all-reduce), so each rank's running_var differs and is too small (normalisation and the saved "
          "tensors are right)."),
    entry(CAP, "all-reduced sums divided by the number of ranks", cap_bw_sums_over_world, replaces=CAP_BW,
          cause="divides the all-reduced sums by the number of ranks (an all-reduce of ones) instead of by the "
          "saved count N, so the mean terms of dx are N / world times too large."),
    entry(CAP, "dgamma and dbeta summed over the last axis", cap_bw_param_grads_last_axis, replaces=CAP_BW,
          cause="sums dout * x_hat and dout over axis -1 (the channels, TensorFlow's habit) instead of axis 0 "
          "(the batch) for dgamma and dbeta, so they have one value per example instead of one per channel."),
    # merge_running_stats: 2 wrong, 1 correct
    entry(MG, "sklearn's biased (ddof=0) merge", mg_biased_convention,
          "merges as sklearn's incremental variance does, with biased variances throughout (count * running_var "
          "and a division by N), instead of PyTorch's unbiased running_var ((count - 1) * running_var and "
          "a division by N - 1)."),
    entry(MG, "running_mean in the within-rank term", mg_running_mean_in_within,
          "writes (count - 1) * bn.running_mean instead of (count - 1) * bn.running_var for the within-rank "
          "squared deviations."),
    right(MG, "float64 sums, addcmul for the between term, copy_ with a cast", mg_float64_addcmul),
]
