"""Held-out answers (twelfth set, part c), lesson 08. Learned from
solutions/08_batchnorm_across_devices.ipynb:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, cache = (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)  (this rank's share)
capstone (graded cell sync_bn_layer):
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, saved = (x, gamma, mean, invstd, count))
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)  (in place)
"""

import torch
from torch import nn

from _format import entry, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


# ---- forward ------------------------------------------------------------------------


def fw_cache_centred(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    xc = x - mean
    return gamma * xc * rho + beta, (xc, rho, gamma, count)  # rho is in the cache already


def fw_update_after_return(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                           momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))


def fw_bessel_per_rank(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        world = all_reduce(torch.ones(1, dtype=x.dtype))
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            unbiased = var * count / (count - world)  # one degree of freedom per rank's mean
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_chan_merge(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    """Correct: each rank's own biased var_mean, merged exactly (Chan):
    N var = sum_r n_r var_r + sum_r n_r (mean_r - mean)^2."""
    n_r = x.shape[0]
    var_r, mean_r = torch.var_mean(x, dim=0, unbiased=False)
    count = all_reduce(torch.full((1,), float(n_r), dtype=x.dtype))
    mean = all_reduce(n_r * mean_r) / count
    var = all_reduce(n_r * var_r + n_r * (mean_r - mean) ** 2) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.copy_((1 - momentum) * running_mean + momentum * mean)
            running_var.copy_((1 - momentum) * running_var + momentum * var * count / (count - 1))
    rho = (var + eps).rsqrt()
    x_hat = (x - mean) * rho
    return x_hat * gamma + beta, (x_hat, rho, gamma, count)


# ---- backward -------------------------------------------------------------------------


def bw_rows_reduced(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    rows = all_reduce(torch.stack([dout, dout * x_hat]))  # every rank's rows added up
    mean_dy, mean_dy_xhat = rows.sum(1) / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_dbeta_mean(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.mean(0)


def bw_mean_added(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout + mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- capstone -------------------------------------------------------------------------


def _cap_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_list(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return [dx, (dout * x_hat).sum(0), dout.sum(0), None, None]


def cap_fw_requires_grad_flag(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if x.requires_grad or gamma.requires_grad:  # training step: keep the running statistics
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_lerp_weight(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    with torch.no_grad():
        running_mean.copy_(torch.lerp(running_mean, mean, 1 - momentum))
        running_var.copy_(torch.lerp(running_var, var * count / (count - 1), 1 - momentum))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


# ---- merge ----------------------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_counter_reset(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.zero_()  # fresh statistics
    return model


def mg_between_summed_first(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = all_reduce((count - 1) * bn.running_var)
        between = all_reduce(count * (bn.running_mean - mean)) ** 2
        bn.running_mean.copy_(mean)
        bn.running_var.copy_((within + between) / (total - 1))


def mg_mean_not_written(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_var.copy_(var)


def mg_one_flat_reduce(model, all_reduce, count):
    """Correct: every layer's buffers in one flat vector, two all-reduces for the
    whole model, torch.split back to the layers."""
    layers = _bns(model)
    if not layers:
        return
    sizes = [bn.num_features for bn in layers]
    m = torch.cat([bn.running_mean.double() for bn in layers])
    v = torch.cat([bn.running_var.double() for bn in layers])
    n = float(count)
    got = all_reduce(torch.cat([torch.tensor([n], dtype=torch.float64), n * m]))
    total, mean = got[0], got[1:] / got[0]
    var = all_reduce((n - 1) * v + n * (m - mean) ** 2) / (total - 1)
    for bn, mu, s2 in zip(layers, torch.split(mean, sizes), torch.split(var, sizes)):
        bn.running_mean.copy_(mu)
        bn.running_var.copy_(s2)


ENTRIES = [
    entry(FW, "cache holds the centred input, not x_hat", fw_cache_centred,
          "puts x - mean in the cache's x_hat slot (rho being cached too) instead of "
          "x_hat = (x - mean) * rho, so the backward works with an unnormalised x_hat."),
    entry(FW, "running update placed after the return", fw_update_after_return,
          "has the running-statistics update after the return statement (dead code), so "
          "running_mean and running_var are never updated."),
    entry(FW, "Bessel factor N / (N - world size)", fw_bessel_per_rank,
          "makes the running variance unbiased with count / (count - world size) (one degree of "
          "freedom per rank) instead of count / (count - 1)."),
    entry(BW, "rows all-reduced before summing", bw_rows_reduced,
          "all-reduces the stacked per-example rows (dout, dout * x_hat) and sums them afterwards "
          "instead of all-reducing the per-rank sums: ranks' rows are added element by element "
          "(fails when ranks hold different numbers of examples, wrong otherwise)."),
    entry(BW, "dbeta as dout.mean(0)", bw_dbeta_mean,
          "returns dout.mean(0) (divided by this rank's count) as dbeta instead of dout.sum(0)."),
    entry(BW, "mean(dout) added in dx", bw_mean_added,
          "adds mean(dout) in dx (dout + mean_dy - ...) instead of subtracting it."),
    entry(CAP, "backward returns a list", cap_bw_list, replaces=CAP_BW,
          cause="returns the five gradients as a list instead of a tuple: autograd takes the list "
                "as one gradient, so the layer's backward fails (expected 5 gradients, got 1)."),
    entry(CAP, "running update only when x or gamma requires grad", cap_fw_requires_grad_flag,
          replaces=CAP_FW,
          cause="updates the running statistics only if x or gamma requires grad (as a training "
                "flag), so a call on tensors that do not require grad (the forward called directly, "
                "as the graded check and a no-grad pass do) leaves them unchanged."),
    entry(CAP, "lerp weight 1 - momentum", cap_fw_lerp_weight, replaces=CAP_FW,
          cause="updates the running statistics with torch.lerp(running, batch, 1 - momentum), "
                "which gives the batch weight 1 - momentum instead of momentum."),
    entry(MG, "num_batches_tracked reset", mg_counter_reset,
          "sets every layer's num_batches_tracked to 0 after merging, though the statistics are "
          "not new (the counter should be left alone)."),
    entry(MG, "between-rank deviations squared after the all-reduce", mg_between_summed_first,
          "all-reduces count * (running_mean - mean) and squares the sum (which is 0) instead of "
          "all-reducing count * (running_mean - mean) ** 2: the spread of the ranks' means is lost."),
    entry(MG, "merged mean never written", mg_mean_not_written,
          "computes the merged mean but forgets bn.running_mean.copy_(mean): only running_var "
          "is merged and the ranks keep different running means."),
    right(FW, "own var_mean per rank, Chan merge", fw_chan_merge),
    right(MG, "all layers in one flat vector, two all-reduces", mg_one_flat_reduce),
]
