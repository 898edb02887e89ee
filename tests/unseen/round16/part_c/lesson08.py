"""Held-out answers (sixteenth set, part C), lesson 08, current signatures:

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

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_skip_update_on_single_example_rank(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
                                          running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None and x.shape[0] > 1:  # "n - 1 would be 0 with one example"
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_var_made_unbiased_in_place(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                  momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            var *= count / (count - 1)  # the unbiased variance for the running estimate
            running_var.mul_(1 - momentum).add_(momentum * var)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_local_var_torch_default(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    n = x.shape[0]
    count = all_reduce(torch.tensor([float(n)], dtype=x.dtype))
    local_mean = x.mean(0)
    local_var = x.var(0)  # "the rank's own variance", as np.var(x, 0)
    mean = all_reduce(n * local_mean) / count
    var = all_reduce(n * (local_var + (local_mean - mean) ** 2)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_ones_count_alpha_addcmul(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                momentum=0.1):
    count = all_reduce(torch.ones_like(x[:, :1]).sum(0))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(torch.square(x - mean).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), alpha=momentum)
    rho = torch.rsqrt(var + eps)
    x_hat = (x - mean) * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_param_grads_times_world(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    world = all_reduce(torch.ones(1, dtype=dout.dtype))
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    # "DDP averages the gradients over the ranks: scale the share up to undo it"
    return dx, world * (dout * x_hat).sum(0), world * dout.sum(0)


def bw_sums_over_n_minus_1(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / (count - 1)
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_stacked_along_dim_1(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)], dim=1))  # np.column_stack habit
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_momentum_before_eps(x, gamma, beta, running_mean, running_var, all_reduce, momentum=0.1, eps=1e-5):
    # the order of F.batch_norm(..., training, momentum, eps)
    count, mean, var = _stats(x, all_reduce)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_running_mean_saved(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, running_mean, invstd, count)


def cap_fw_einsum_lerp(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(len(x))], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    xc = x - mean
    var = all_reduce(torch.einsum("nc,nc->c", xc, xc)) / count
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * count / (count - 1), momentum)
    invstd = torch.rsqrt(var + eps)
    return torch.addcmul(beta, xc * invstd, gamma), (x, gamma, mean, invstd, count)


def cap_bw_centred_sums(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    xc = x - mean
    sum_dy, sum_dy_xc = dout.sum(0), (dout * xc).sum(0)
    total = all_reduce(torch.stack([sum_dy, sum_dy_xc]))
    dx = gamma * invstd * (dout - total[0] / count - xc * invstd**2 * total[1] / count)
    return dx, sum_dy_xc * invstd, sum_dy, None, None


# ---- merge_running_stats ---------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_batches_tracked_as_count(model, all_reduce, count):
    for bn in _bns(model):
        n = bn.num_batches_tracked.to(torch.float64).reshape(1)  # "how much data is behind the buffers"
        total = all_reduce(n)
        mean = all_reduce(n * bn.running_mean) / total
        within = (n - 1) * bn.running_var
        between = n * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_momentum_blend(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        # "update in place, as BatchNorm does"
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * var)


ENTRIES = [
    # sync_batchnorm_forward: 3 wrong, 1 correct
    entry(FW, "running update skipped on a rank with one example", fw_skip_update_on_single_example_rank,
          "guards the running-statistics update with x.shape[0] > 1 (against a zero N - 1, but testing this "
          "rank's count instead of the global N), so a rank that holds one example never updates its running "
          "statistics and falls out of step with the others."),
    entry(FW, "var made unbiased in place in the running branch", fw_var_made_unbiased_in_place,
          "turns var into the unbiased variance in place (var *= N / (N - 1)) inside the running-statistics "
          "branch and then normalises with it, so the output is wrong whenever running statistics are given "
          "(right without them)."),
    entry(FW, "local variance from torch's unbiased x.var(0)", fw_local_var_torch_default,
          "takes each rank's own variance with x.var(0), which in torch is unbiased (n_r - 1) by default, "
          "unlike np.var's ddof=0, so the within-rank part of the all-reduced squared deviations is n_r / "
          "(n_r - 1) times too large (NaN on a rank that holds one example)."),
    right(FW, "count from ones_like, add_(alpha=), rsqrt, addcmul", fw_ones_count_alpha_addcmul),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "dgamma and dbeta multiplied by the number of ranks", bw_param_grads_times_world,
          "multiplies this rank's dgamma and dbeta by the number of ranks (to undo an average it expects DDP to "
          "take) instead of returning the plain local sums (dx is right)."),
    entry(BW, "all-reduced sums divided by N - 1", bw_sums_over_n_minus_1,
          "divides the two all-reduced sums by N - 1 (the Bessel-corrected count of the running variance) "
          "instead of N, so the two mean terms of dx are N / (N - 1) times too large."),
    entry(BW, "sums stacked along dim 1, unpacked as rows", bw_stacked_along_dim_1,
          "stacks dout.sum(0) and (dout * x_hat).sum(0) along dim 1 (a (C, 2) column stack, np.column_stack's "
          "habit) but unpacks the all-reduced result along dim 0 as if it were (2, C), so the unpacking fails "
          "unless C = 2 (and gives the wrong rows when C = 2)."),
    # sync_bn_layer: 2 wrong, 1 correct
    entry(CAP, "momentum before eps in the forward's signature", cap_fw_momentum_before_eps, replaces=CAP_FW,
          cause="declares sync_bn_forward(..., all_reduce, momentum=0.1, eps=1e-5), F.batch_norm's order, instead "
          "of (..., all_reduce, eps=1e-5, momentum=0.1), so a positional call such as the given autograd "
          "Function's passes eps as the momentum and momentum as eps."),
    entry(CAP, "running_mean saved in the mean slot", cap_fw_running_mean_saved, replaces=CAP_FW,
          cause="saves running_mean (just updated in place) instead of the batch's global mean in saved, so the "
          "backward pass recomputes x_hat around the running mean (the output and running statistics are "
          "right)."),
    Unseen(CAP, "einsum, lerp_, addcmul; centred sums with invstd squared in the backward",
           {CAP_FW: cap_fw_einsum_lerp, CAP_BW: cap_bw_centred_sums}, CAP, correct=True),
    # merge_running_stats: 2 wrong
    entry(MG, "num_batches_tracked used as the count", mg_batches_tracked_as_count,
          "weights each rank by its layer's num_batches_tracked (the number of batches it has seen) instead of "
          "the given count of values behind its statistics, so the ranks' weights are wrong."),
    entry(MG, "merged statistics blended in with the layer's momentum", mg_momentum_blend,
          "writes the merged mean and variance with BatchNorm's momentum update ((1 - m) * old + m * merged) "
          "instead of replacing the buffers by them, so every rank keeps mostly its own statistics."),
]
