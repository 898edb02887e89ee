"""Held-out answers, lesson 08: synchronised batch norm (forward, backward) and
merging running statistics across ranks.  ``all_reduce(t)`` returns the sum
over ranks as a new tensor."""

import torch
from torch import nn

from _format import entry, right

SF, SB, MR = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats"


# ---- forward (cache: x_hat, rho, gamma, count, as the given backward reads it) -----------


def fw_local_count(x, gamma, beta, all_reduce, eps=1e-5):
    n = x.shape[0]
    mean = all_reduce(x.sum(0)) / n
    var = all_reduce(((x - mean) ** 2).sum(0)) / n
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, torch.tensor([float(n)], dtype=x.dtype))


def fw_mean_of_means(x, gamma, beta, all_reduce, eps=1e-5):
    ranks = all_reduce(torch.ones(1, dtype=x.dtype))
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.mean(0)) / ranks
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_average_variances(x, gamma, beta, all_reduce, eps=1e-5):
    ranks = all_reduce(torch.ones(1, dtype=x.dtype))
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(x.var(0, unbiased=False)) / ranks
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_sum_of_squares(x, gamma, beta, all_reduce, eps=1e-5):
    stats = torch.cat([torch.tensor([float(x.shape[0])], dtype=x.dtype), x.sum(0), (x * x).sum(0)])
    total = all_reduce(stats)
    c = x.shape[1]
    count, mean = total[:1], total[1 : 1 + c] / total[:1]
    var = total[1 + c :] / count - mean**2  # one round: E[x^2] - mu^2
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_result_ignored(x, gamma, beta, all_reduce, eps=1e-5):
    count = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    total = x.sum(0)
    all_reduce(count)
    all_reduce(total)  # summed over the ranks, as dist.all_reduce does
    mean = total / count
    sq = ((x - mean) ** 2).sum(0)
    all_reduce(sq)
    var = sq / count
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_unbiased(x, gamma, beta, all_reduce, eps=1e-5):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / (count - 1)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_eps_outside(x, gamma, beta, all_reduce, eps=1e-5):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    rho = 1.0 / (torch.sqrt(var) + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_local_deviations(x, gamma, beta, all_reduce, eps=1e-5):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - x.mean(0)) ** 2).sum(0)) / count  # spread around each rank's mean
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- backward ------------------------------------------------------------------------------


def bw_local_means(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy = dout.mean(0)
    mean_dy_xhat = (dout * x_hat).mean(0)
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_one_term_reduced(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy = all_reduce(dout.sum(0)) / count
    mean_dy_xhat = (dout * x_hat).sum(0) / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_local_count(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / dout.shape[0]
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_global_param_grads(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sum_dy, sum_dy_xhat = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    dx = gamma * rho * (dout - sum_dy / count - x_hat * sum_dy_xhat / count)
    return dx, sum_dy_xhat, sum_dy


def bw_sign(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy + x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_no_gamma(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_equal_shards(dout, cache, all_reduce):
    x_hat, rho, gamma, _ = cache
    world = all_reduce(torch.ones(1, dtype=dout.dtype))
    n_total = world * dout.shape[0]  # every rank holds the same number of examples
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / n_total
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- merge_running_stats ----------------------------------------------------------------


def merge_average_only(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(all_reduce(m.running_mean) / world_size)
            m.running_var.copy_(all_reduce(m.running_var) / world_size)


def merge_spread_unbiased(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(m.running_mean) / world_size
            spread = all_reduce((m.running_mean - mean) ** 2) / (world_size - 1)
            var = all_reduce(m.running_var) / world_size + spread
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)


def merge_result_ignored(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = m.running_mean.clone()
            all_reduce(mean)
            mean /= world_size
            spread = (m.running_mean - mean) ** 2
            all_reduce(spread)
            var = m.running_var.clone()
            all_reduce(var)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var / world_size + spread / world_size)


def merge_mean_first(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(m.running_mean) / world_size
            m.running_mean.copy_(mean)
            spread = all_reduce((m.running_mean - mean) ** 2) / world_size
            m.running_var.copy_(all_reduce(m.running_var) / world_size + spread)


def merge_2d_only(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            mean = all_reduce(m.running_mean) / world_size
            spread = all_reduce((m.running_mean - mean) ** 2) / world_size
            m.running_var.copy_(all_reduce(m.running_var) / world_size + spread)
            m.running_mean.copy_(mean)


def merge_std_spread(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(m.running_mean) / world_size
            spread = all_reduce((m.running_mean - mean).abs()) / world_size
            m.running_var.copy_(all_reduce(m.running_var) / world_size + spread)
            m.running_mean.copy_(mean)


def merge_world_of_two(model, all_reduce, world_size):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(m.running_mean) / 2  # two processes, as in the demo
            spread = all_reduce((m.running_mean - mean) ** 2) / 2
            var = all_reduce(m.running_var) / 2 + spread
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)


# ---- correct alternatives --------------------------------------------------------------------


def fw_chan_float64(x, gamma, beta, all_reduce, eps=1e-5):
    """One all-reduce of (count, sum) in float64, then the squared deviations."""
    xd = x.double()
    head = torch.cat([xd.new_tensor([x.shape[0]]), xd.sum(0)])
    head = all_reduce(head)
    count, mean = head[:1], head[1:] / head[:1]
    var = all_reduce(((xd - mean) ** 2).sum(0)) / count
    rho = torch.rsqrt(var + eps).to(x.dtype)
    x_hat = (x - mean.to(x.dtype)) * rho
    return torch.addcmul(beta, x_hat, gamma), (x_hat, rho, gamma, count.to(x.dtype))


def bw_two_calls(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dbeta = dout.sum(dim=0)
    dgamma = torch.einsum("nc,nc->c", dout, x_hat)
    total_dy = all_reduce(dbeta.clone())
    total_dy_xhat = all_reduce(dgamma.clone())
    dx = (gamma * rho / count) * (count * dout - total_dy - x_hat * total_dy_xhat)
    return dx, dgamma, dbeta


def merge_raw_moments(model, all_reduce, world_size):
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_mean is not None:
            both = all_reduce(torch.stack([bn.running_mean,
                                           bn.running_var + bn.running_mean**2])) / world_size
            bn.running_mean.copy_(both[0])
            bn.running_var.copy_(both[1] - both[0] ** 2)  # E[var + mean^2] - E[mean]^2


ENTRIES = [
    entry(SF, "per-rank count", fw_local_count,
          "divides the global sums by this rank's count n_r instead of the all-reduced count N."),
    entry(SF, "mean of the ranks' means", fw_mean_of_means,
          "averages the ranks' means equally, which is wrong when the ranks hold different numbers of examples."),
    entry(SF, "average of the ranks' variances", fw_average_variances,
          "averages the per-rank variances (each around its own mean), missing the spread between rank means and weighting ranks equally."),
    entry(SF, "E[x^2] - mu^2", fw_sum_of_squares,
          "the one-round variance E[x^2] - mu^2 cancels catastrophically in float32 when the mean is large against the spread."),
    entry(SF, "all_reduce's result ignored", fw_result_ignored,
          "calls all_reduce as if it summed in place and ignores the returned sum, so every statistic is this rank's own."),
    entry(SF, "unbiased variance", fw_unbiased,
          "divides the squared deviations by N - 1 instead of N."),
    entry(SF, "eps outside the square root", fw_eps_outside,
          "adds eps to the standard deviation instead of to the variance under the square root."),
    entry(SF, "deviations from the rank's own mean", fw_local_deviations,
          "sums the squared deviations from each rank's own mean instead of the global mean, missing the spread between the ranks' means."),
    entry(SB, "local means", bw_local_means,
          "takes the two means over this rank's slice only (no all-reduce), so dx is per-rank batch norm's gradient."),
    entry(SB, "one sum not all-reduced", bw_one_term_reduced,
          "all-reduces the sum of dout but not the sum of dout * x_hat (this rank's sum divided by the global N)."),
    entry(SB, "divides by the rank's count", bw_local_count,
          "divides the all-reduced sums by this rank's n_r instead of the global N."),
    entry(SB, "global dgamma and dbeta", bw_global_param_grads,
          "returns the all-reduced dgamma and dbeta instead of this rank's share, so DDP would count them world_size times."),
    entry(SB, "sign of the x_hat term", bw_sign,
          "adds x_hat * mean(dout * x_hat) instead of subtracting it."),
    entry(SB, "gamma missing from dx", bw_no_gamma,
          "leaves the factor gamma out of dx."),
    entry(SB, "world size times the local count", bw_equal_shards,
          "takes the global N as world_size * n_r (equal shards assumed) instead of the all-reduced count, wrong when ranks hold different numbers of examples."),
    entry(MR, "variances averaged only", merge_average_only,
          "averages the running variances but leaves out the spread of the ranks' running means (law of total variance)."),
    entry(MR, "spread over world_size - 1", merge_spread_unbiased,
          "divides the spread of the means by world_size - 1 instead of world_size."),
    entry(MR, "all_reduce's result ignored", merge_result_ignored,
          "ignores all_reduce's returned sums (as if it worked in place), so each rank merges only its own statistics."),
    entry(MR, "mean overwritten before the spread", merge_mean_first,
          "copies the merged mean into running_mean before computing the spread, so every deviation is zero and the spread is lost."),
    entry(MR, "BatchNorm2d only", merge_2d_only,
          "only merges nn.BatchNorm2d layers, so BatchNorm1d (and 3d) layers keep per-rank statistics."),
    entry(MR, "absolute deviations", merge_std_spread,
          "adds the mean absolute deviation of the rank means instead of their mean squared deviation."),
    entry(MR, "world size hard-coded to 2", merge_world_of_two,
          "divides by 2 (the demo's number of processes) instead of world_size, so it is right only with two ranks."),
    right(SF, "float64 (count, sum) round", fw_chan_float64),
    right(SB, "two all-reduces, sums form", bw_two_calls),
    right(MR, "raw second moments", merge_raw_moments),
]
