"""Held-out answers (twenty-fifth set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 24.
"""

import torch
from torch import nn

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_count_as_n_times_world(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    # every rank holds the same number of examples, so N = n_r * world size
    world = all_reduce(torch.ones(1, dtype=x.dtype))
    count = world * x.shape[0]
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_normalise_with_unbiased(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    # torch.var's default: the unbiased variance, used for the running buffer and the output alike
    var = all_reduce(((x - mean) ** 2).sum(0)) / (count - 1)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_eps_on_std(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / (torch.sqrt(var) + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_default_momentum_tf(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                           momentum=0.01):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_right_divide_first_lerp(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    n_total = all_reduce(x.new_ones(1) * len(x))
    mean = all_reduce(x.sum(dim=0) / n_total)  # each rank's share of the mean
    centred = x - mean
    var = all_reduce(centred.pow(2).sum(dim=0) / n_total)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.copy_(torch.lerp(running_mean, mean, momentum))
            running_var.copy_(torch.lerp(running_var, var * (n_total / (n_total - 1)), momentum))
    rho = (var + eps).rsqrt()
    x_hat = centred * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, n_total)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_xhat_term_sign(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy + x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_xhat_sum_local(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    # x_hat is already normalised with the global statistics, so only dout needs the other ranks
    mean_dy = all_reduce(dout.sum(0)) / count
    mean_dy_xhat = (dout * x_hat).sum(0) / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_dout_squeezed(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dout = dout.squeeze()
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_eps_saved(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    # the backward may need eps too, so keep it with the rest
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count, eps)


def cap_bw_eps_saved(saved, dout, all_reduce):
    x, gamma, mean, invstd, count, eps = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_no_gamma_in_dx(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_bessel_twice(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    sq = all_reduce(((x - mean) ** 2).sum(0))
    var = sq / count
    unbiased = sq / (count - 1)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * unbiased * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_local_stack_indices(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    local = torch.stack([dout.sum(0), (dout * x_hat).sum(0)])
    mean_dy, mean_dy_xhat = all_reduce(local) / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, local[0], local[1], None, None


def cap_fw_right_divided_shares(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.full((1,), x.size(0), dtype=x.dtype))
    mean = all_reduce(x.sum(0) / count)
    var = all_reduce(torch.sum((x - mean) * (x - mean), 0) / count)
    with torch.no_grad():
        running_mean.add_(momentum * (mean - running_mean))
        running_var.add_(momentum * (var * count / (count - 1) - running_var))
    invstd = torch.rsqrt(var + eps)
    return (x - mean) * (gamma * invstd) + beta, (x, gamma, mean, invstd, count)


def cap_bw_right_scaled_grad(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    g = dout * (gamma * invstd)  # gradient w.r.t. x_hat, scaled by invstd: per-channel constant
    sums = all_reduce(torch.stack([g.sum(0), (g * x_hat).sum(0)]))
    dx = g - sums[0] / count - x_hat * (sums[1] / count)
    return dx, torch.einsum("nc,nc->c", dout, x_hat), dout.sum(0), None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_batchnorm2d_only(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_mean_written_first(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            bn.running_mean.copy_(mean)
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_var.copy_(var)


def mg_all_reduce_in_place(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            weighted = count * bn.running_mean
            all_reduce(weighted)  # torch.distributed.all_reduce reduces in place
            mean = weighted / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong, 1 correct
    entry(FW, "count as n_r times the number of ranks", fw_count_as_n_times_world,
          "takes the global count as this rank's n_r times the number of ranks (all-reduce of a one), as if every "
          "rank held the same number of examples, so with unequal shards the mean, variance, output, running "
          "statistics and cached count are wrong (with equal shards all is right)."),
    entry(FW, "output normalised with the unbiased variance", fw_normalise_with_unbiased,
          "divides the all-reduced squared deviations by N - 1 (torch.var's default) and uses that one variance "
          "both for running_var (right) and for normalising the output, which must use the biased variance over "
          "N, so the output and rho are slightly wrong (the running statistics are right)."),
    entry(FW, "eps added to the standard deviation", fw_eps_on_std,
          "computes rho as 1 / (sqrt(var) + eps) instead of 1 / sqrt(var + eps), so the output is slightly off "
          "with eps=1e-5 and clearly off with a large eps or a small variance (the running statistics are "
          "right)."),
    entry(FW, "default momentum 0.01 (TF's decay 0.99 converted)", fw_default_momentum_tf,
          "sets the default momentum to 0.01 (TensorFlow's default decay 0.99 converted) instead of PyTorch's "
          "0.1, so when momentum is not passed the running statistics move ten times too slowly (the output is "
          "right, and all is right when momentum is passed)."),
    right(FW, "each rank divides by the global N before the all-reduce, torch.lerp into copy_, addcmul",
          fw_right_divide_first_lerp),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "x_hat term added instead of subtracted in dx", bw_xhat_term_sign,
          "adds x_hat * mean(dout * x_hat) in dx instead of subtracting it (sign slip), so dx is wrong (dgamma "
          "and dbeta are right)."),
    entry(BW, "sum of dout * x_hat not all-reduced", bw_xhat_sum_local,
          "all-reduces only the sum of dout and takes the sum of dout * x_hat on this rank alone (then divides by "
          "the global N), so the x_hat term of dx misses the other ranks and dx is wrong with more than one rank "
          "(dgamma and dbeta are right)."),
    entry(BW, "dout squeezed at the start", bw_dout_squeezed,
          "calls dout.squeeze() first, which is harmless for (n_r, C) with n_r > 1 and C > 1 but turns dout into "
          "(n_r,) when C = 1 (then dout * x_hat broadcasts to (n_r, n_r)) and into (C,) on a rank with one "
          "example (then dout.sum(0) sums the channels), so dx, dgamma and dbeta are wrong or it raises in those "
          "cases."),
    # sync_bn_layer: 4 wrong, 1 correct
    Unseen(CAP, "eps appended to the saved tuple",
           {CAP_FW: cap_fw_eps_saved, CAP_BW: cap_bw_eps_saved}, CAP,
           "appends the Python float eps to the saved tuple (and unpacks six values in the backward), but "
           "ctx.save_for_backward takes tensors only, so the layer's forward raises TypeError (the maths is "
           "right)."),
    entry(CAP, "gamma left out of dx", cap_bw_no_gamma_in_dx, replaces=CAP_BW,
          cause="writes dx as invstd * (dout - mean_dy - x_hat * mean_dy_xhat), leaving out the factor gamma, so "
          "dx is wrong whenever gamma is not all ones (dgamma and dbeta are right)."),
    entry(CAP, "Bessel factor applied twice to running_var", cap_fw_bessel_twice, replaces=CAP_FW,
          cause="divides the squared deviations by N - 1 for the unbiased variance and then multiplies by "
          "N / (N - 1) again in the running update, so running_var is blended with a variance N / (N - 1) too "
          "large (the output, running_mean and the saved tensors are right)."),
    entry(CAP, "parameter gradients read from the local stack with the indices swapped",
          cap_bw_local_stack_indices, replaces=CAP_BW,
          cause="returns local[0] (the sum of dout) as dgamma and local[1] (the sum of dout * x_hat) as dbeta "
          "from the stacked local sums, swapping the two parameter gradients (dx is right)."),
    Unseen(CAP, "torch.full count, shares divided before the all-reduce, += m * (new - old); scaled-gradient "
                "backward", {CAP_FW: cap_fw_right_divided_shares, CAP_BW: cap_bw_right_scaled_grad}, CAP,
           correct=True),
    # merge_running_stats: 3 wrong
    entry(MG, "only nn.BatchNorm2d layers merged", mg_batchnorm2d_only,
          "selects layers with isinstance(m, nn.BatchNorm2d) (the conv-net case) instead of every _BatchNorm, so "
          "BatchNorm1d, BatchNorm3d and SyncBatchNorm layers keep each rank's own statistics."),
    entry(MG, "running_mean written before the between-rank term", mg_mean_written_first,
          "copies the merged mean into running_mean before computing the between-rank term, which then reads "
          "the merged mean back and is zero, so running_var misses the spread of the ranks' means and is too "
          "small (running_mean is right)."),
    entry(MG, "all_reduce used as if in place for the weighted means", mg_all_reduce_in_place,
          "calls all_reduce(count * running_mean) as torch.distributed.all_reduce is called, discarding its "
          "result, so the merged mean is this rank's count * running_mean / N only and running_mean and "
          "running_var are wrong."),
]
