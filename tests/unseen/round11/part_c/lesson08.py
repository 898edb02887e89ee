"""Held-out answers (eleventh set, part c), lesson 08. Learned from
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


def fw_cache_holds_output(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                          momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    x_hat = gamma * x_hat + beta  # the output
    return x_hat, (x_hat, rho, gamma, count)


def fw_floor_division(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            unbiased = var * count // (count - 1)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_variance_todo(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = torch.ones_like(mean)  # TODO: the second all-reduce
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_std(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            std = torch.sqrt(var * count / (count - 1))
            running_var.mul_(1 - momentum).add_(momentum * std)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_float32_statistics(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                          momentum=0.1):
    xs = x.float()  # half the bytes through all_reduce
    count = all_reduce(torch.tensor([float(x.shape[0])]))
    mean = all_reduce(xs.sum(0)) / count
    var = all_reduce(((xs - mean) ** 2).sum(0)) / count
    mean, var, count = mean.to(x.dtype), var.to(x.dtype), count.to(x.dtype)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_moments_addcmul(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                       momentum=0.1):
    """Correct: count and sum in one (C + 1) round, deviations with torch.square,
    buffers moved with lerp_, output with torch.addcmul."""
    n = x.new_full((1,), x.shape[0])
    first = all_reduce(torch.cat([n, x.sum(0)]))
    count, mean = first[:1], first[1:] / first[:1]
    centred = x - mean
    var = all_reduce(torch.square(centred).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * (count / (count - 1)), momentum)
    rho = torch.rsqrt(var + eps)
    x_hat = centred * rho
    return torch.addcmul(beta, x_hat, gamma), (x_hat, rho, gamma, count)


# ---- backward -------------------------------------------------------------------------


def bw_torch_distributed(dout, cache, all_reduce):
    import torch.distributed as dist

    x_hat, rho, gamma, count = cache
    sums = torch.stack([dout.sum(0), (dout * x_hat).sum(0)])
    dist.all_reduce(sums)  # as in launch.py
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_xhat_times_rho(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    xh = x_hat * rho  # normalise the cached input
    sums = all_reduce(torch.stack([dout.sum(0), (dout * xh).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - xh * mean_dy_xhat)
    return dx, (dout * xh).sum(0), dout.sum(0)


def bw_dbeta_copy_paste(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    dgamma = (dout * x_hat).sum(0)
    dbeta = (dout * x_hat).sum(0)
    return dx, dgamma, dbeta


def bw_xhat_summed(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([x_hat.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_means_first(dout, cache, all_reduce):
    """Correct: each rank sends its sums already divided by the global N; dx
    written as gamma * rho * dout minus the two broadcast terms."""
    x_hat, rho, gamma, count = cache
    dbeta_r = dout.sum(0)
    dgamma_r = torch.einsum("nc,nc->c", dout, x_hat)
    m = all_reduce(torch.stack([dbeta_r, dgamma_r]) / count)
    scale = gamma * rho
    dx = scale * dout - scale * m[0] - scale * x_hat * m[1]
    return dx, dgamma_r, dbeta_r


# ---- capstone -------------------------------------------------------------------------


def _cap_stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


def cap_fw_var_saved(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, var, count)


def cap_fw_inplace_rsqrt(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    invstd = var.add_(eps).rsqrt_()  # no extra tensor
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_x_in_sum(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_means_as_grads(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, mean_dy_xhat, mean_dy, None, None


def cap_bw_centred(saved, dout, all_reduce):
    """Correct: works with the centred input and invstd separately; sums of
    dout and dout * (x - mean), scaled by invstd after the all-reduce."""
    x, gamma, mean, invstd, count = saved
    xc = x - mean
    s = all_reduce(torch.stack([dout.sum(0), (dout * xc).sum(0)]))
    s_dy, s_dyxc = s[0], s[1]
    dgamma = (dout * xc).sum(0) * invstd
    dx = gamma * invstd * (dout - s_dy / count - xc * (invstd ** 2) * s_dyxc / count)
    return dx, dgamma, dout.sum(0), None, None


# ---- merge ----------------------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_mean_weighted_count_minus_1(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce((count - 1) * bn.running_mean) / (total - world)
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_buffers_crossed(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(var)
        bn.running_var.copy_(mean)


def mg_count_times_channels(model, all_reduce, count):
    for bn in _bns(model):
        n = count * bn.num_features  # values behind this layer's statistics
        total = all_reduce(torch.tensor([float(n)], dtype=torch.float64))
        mean = all_reduce(n * bn.running_mean) / total
        within = (n - 1) * bn.running_var
        between = n * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_var_in_between_term(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_var - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_raw_moments_float64(model, all_reduce, count):
    """Correct: per layer, all-reduce (n, n * mean, (n - 1) * var + n * mean^2) in
    float64 and recover the mean and unbiased variance; written with [...] =."""
    for bn in _bns(model):
        m = bn.running_mean.double()
        v = bn.running_var.double()
        n = torch.full_like(m, float(count))
        s = all_reduce(torch.stack([n, n * m, (n - 1) * v + n * m * m]))
        tot, s1, s2 = s[0], s[1], s[2]
        mean = s1 / tot
        var = (s2 - tot * mean * mean) / (tot - 1)
        bn.running_mean[...] = mean
        bn.running_var[...] = var


ENTRIES = [
    entry(FW, "cache's x_hat overwritten by the output", fw_cache_holds_output,
          "reuses the name x_hat for the output (gamma * x_hat + beta) before building the cache, "
          "so the cache holds the output instead of x_hat (the output itself is right)."),
    entry(FW, "floor division in the Bessel factor", fw_floor_division,
          "writes var * count // (count - 1) (floor division) in the running_var update, so the "
          "unbiased variance is rounded down to a whole number."),
    entry(FW, "variance left as a TODO (ones)", fw_variance_todo,
          "unfinished: the variance is torch.ones_like(mean) (a TODO for the second all-reduce), "
          "so the output is only centred, not divided by the standard deviation."),
    entry(FW, "running_var fed the standard deviation", fw_running_std,
          "updates running_var with the unbiased standard deviation (lesson 04's running_std) "
          "instead of the unbiased variance."),
    entry(FW, "statistics all-reduced in float32", fw_float32_statistics,
          "casts x to float32 for the sums and all-reduces (to save bandwidth), so float64 inputs "
          "get float32-accurate statistics, output and running statistics."),
    entry(BW, "torch.distributed.all_reduce instead of the given one", bw_torch_distributed,
          "calls torch.distributed.all_reduce (copied from launch.py) instead of the all_reduce "
          "argument, which raises without a process group (and would return None with one)."),
    entry(BW, "cached x_hat multiplied by rho again", bw_xhat_times_rho,
          "multiplies the cached x_hat by rho again (as if the cache held x - mean), so dx and "
          "dgamma use x_hat * rho."),
    entry(BW, "dbeta copy-pasted from dgamma", bw_dbeta_copy_paste,
          "returns sum(dout * x_hat) as dbeta too (a copy-paste of the dgamma line) instead of "
          "sum(dout)."),
    entry(BW, "x_hat summed in place of dout", bw_xhat_summed,
          "all-reduces sum(x_hat) instead of sum(dout) as the first row, so the mean(dout) term of "
          "dx is about 0."),
    entry(CAP, "variance saved in the invstd slot", cap_fw_var_saved,
          "saves var (the biased batch variance) in the invstd slot instead of 1/sqrt(var + eps); "
          "the output and running statistics are right.", replaces=CAP_FW),
    entry(CAP, "var turned into invstd in place before the running update", cap_fw_inplace_rsqrt,
          "computes invstd with var.add_(eps).rsqrt_(), which overwrites var in place, so the "
          "running_var update that follows uses invstd instead of the variance.", replaces=CAP_FW),
    entry(CAP, "x instead of x_hat in the all-reduced second sum", cap_bw_x_in_sum,
          "all-reduces sum(dout * x) (the raw input) instead of sum(dout * x_hat) for the x_hat "
          "term of dx.", replaces=CAP_BW),
    entry(CAP, "the global means returned as dgamma and dbeta", cap_bw_means_as_grads,
          "returns the all-reduced means mean(dout * x_hat) and mean(dout) as dgamma and dbeta "
          "instead of this rank's sums.", replaces=CAP_BW),
    entry(MG, "means weighted by count - 1", mg_mean_weighted_count_minus_1,
          "weights each rank's running mean by count - 1 (and divides by N - W) instead of by "
          "count (divided by N)."),
    entry(MG, "merged mean and variance written to each other's buffer", mg_buffers_crossed,
          "copies the merged variance into running_mean and the merged mean into running_var."),
    entry(MG, "count multiplied by the number of channels", mg_count_times_channels,
          "takes count * num_features as each rank's number of values instead of count (which is "
          "already per channel), so the N - 1 and n_r - 1 corrections are wrong."),
    entry(MG, "running_var in the between-rank term", mg_var_in_between_term,
          "the between-rank term uses (running_var - mean)^2 (a typo for running_mean) instead of "
          "(running_mean - mean)^2."),
    right(FW, "(C + 1) first round, torch.square, lerp_, addcmul", fw_moments_addcmul),
    right(BW, "sums divided by N before the all-reduce, einsum", bw_means_first),
    right(CAP, "centred input and invstd kept apart in the backward", cap_bw_centred, replaces=CAP_BW),
    right(MG, "raw moments per layer in float64, [...] writes", mg_raw_moments_float64),
]
