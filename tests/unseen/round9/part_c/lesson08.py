"""Held-out answers (ninth set, part c), lesson 08:

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

from _format import entry, notebook, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"

# ---- forward ------------------------------------------------------------------------


def fw_count_numel(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.numel())], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_rank_msd_averaged(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    ranks = all_reduce(torch.ones(1, dtype=x.dtype))
    var = all_reduce(((x - mean) ** 2).mean(0)) / ranks  # each rank's mean squared deviation
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_output_float32(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    out = gamma * x_hat + beta
    return out.to(torch.float32), (x_hat, rho, gamma, count)  # float32 out


def fw_gamma_beta_swapped(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return beta * x_hat + gamma, (x_hat, rho, gamma, count)


def fw_running_replaced(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.copy_(mean)
            running_var.copy_(var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_weighted_means_einsum(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    count = all_reduce(n)
    mean = all_reduce(x.mean(0) * n) / count  # n_r times this rank's mean is its sum
    dev = x - mean
    var = all_reduce(torch.einsum("nc,nc->c", dev, dev)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * count / (count - 1), alpha=momentum)
    rho = torch.rsqrt(var + eps)
    x_hat = dev * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- backward -----------------------------------------------------------------------


def bw_dbeta_forgotten(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    dgamma = (dout * x_hat).sum(0)
    return dx, dgamma


def bw_dx_all_reduced(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    dx = all_reduce(dx)  # gradients are summed over the ranks
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_scale_as_column(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    scale = (gamma * rho).view(-1, 1)  # one factor per channel
    dx = scale * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_count_from_gamma_slot(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache[0], cache[1], cache[2], cache[2]
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- capstone -----------------------------------------------------------------------


def cap_fw_section2_order(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_var_momentum_reversed(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(momentum).add_((1 - momentum) * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_invstd_without_eps(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    out = gamma * (x - mean) / torch.sqrt(var + eps) + beta
    invstd = torch.rsqrt(var)
    return out, (x, gamma, mean, invstd, count)


def cap_fw_invstd_float32(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = torch.rsqrt((var + eps).float())
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_second_sum_not_divided(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy = sums[0] / count
    mean_dy_xhat = sums[1]
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_int_count(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([x.shape[0]]))  # int64: an exact count
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * count / (count - 1), momentum)
    invstd = torch.rsqrt(var + eps)
    return torch.addcmul(beta, gamma, (x - mean) * invstd), (x, gamma, mean, invstd, count)


def cap_bw_n_dout_form(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    s1, s2 = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    dx = gamma * invstd / count * (count * dout - s1 - x_hat * s2)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


# ---- merge_running_stats ------------------------------------------------------------


@notebook
def mg_total_cached(model, all_reduce, count):
    total = getattr(mg_total_cached, "total", None)
    if total is None:  # one all-reduce fewer on later calls
        total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
        mg_total_cached.total = total
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_var_squared(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var ** 2
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_last_layer_mean(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    means = []
    for bn in layers:
        mean = all_reduce(count * bn.running_mean) / total
        means.append(mean)
    for bn, m in zip(layers, means):
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(m)
        bn.running_var.copy_(var)


def mg_half_precision(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce((count * bn.running_mean).half()).double() / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce((within + between).half()).double() / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_raw_moments_per_layer(model, all_reduce, count):
    n = torch.tensor(float(count), dtype=torch.float64)
    total = all_reduce(n.reshape(1))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mu, var = bn.running_mean.double(), bn.running_var.double()
            s1, s2 = all_reduce(torch.stack([n * mu, (n - 1) * var + n * mu * mu]))
            mean = s1 / total
            merged = (s2 - total * mean * mean) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(merged)


ENTRIES = [
    # forward
    entry(FW, "count from x.numel()", fw_count_numel,
          "counts x.numel() = n_r * C values per rank instead of n_r examples, so the mean and "
          "variance are divided by N * C"),
    entry(FW, "ranks' mean squared deviations averaged", fw_rank_msd_averaged,
          "averages each rank's mean squared deviation (around the global mean) over the ranks "
          "with equal weights instead of summing the squared deviations and dividing by N: "
          "right only for equal slices"),
    entry(FW, "output cast to float32 whatever the input", fw_output_float32,
          "casts the output to float32 ('float32 in, float32 out' read as always float32), so a "
          "float64 input gets a float32 output"),
    entry(FW, "gamma and beta swapped in the affine map", fw_gamma_beta_swapped,
          "computes beta * x_hat + gamma: the scale and the shift are swapped"),
    entry(FW, "running statistics replaced by the batch's", fw_running_replaced,
          "copies the batch mean and unbiased variance into the running statistics (copy_) "
          "instead of the momentum average: momentum is ignored"),
    right(FW, "n_r times the rank's mean, einsum deviations, add_(alpha=momentum)", fw_weighted_means_einsum),
    # backward
    entry(BW, "dbeta left out of the return", bw_dbeta_forgotten,
          "returns only (dx, dgamma): dbeta was left out of the return", replaces=BW),
    entry(BW, "dx all-reduced like a parameter gradient", bw_dx_all_reduced,
          "all-reduces dx as if it were a parameter gradient: the ranks' slices differ in size "
          "(an error), and with equal slices every rank gets the sum of all ranks' dx",
          replaces=BW),
    entry(BW, "gamma * rho reshaped to a column", bw_scale_as_column,
          "reshapes gamma * rho to a (C, 1) column, as for a (C, N) layout: it broadcasts along "
          "the examples, a shape error unless n_r == C and wrong when n_r == C", replaces=BW),
    entry(BW, "count read from the cache's gamma slot", bw_count_from_gamma_slot,
          "reads count as cache[2] (gamma's slot) instead of cache[3], so the all-reduced sums "
          "are divided by gamma instead of N", replaces=BW),
    # capstone
    entry(CAP, "section 2's argument order kept", cap_fw_section2_order,
          "sync_bn_forward keeps section 2's signature (x, gamma, beta, all_reduce, eps, "
          "running_mean, running_var, momentum), so the positional call (x, gamma, beta, "
          "running_mean, running_var, all_reduce, ...) passes running_mean as all_reduce",
          replaces=CAP_FW),
    entry(CAP, "momentum reversed in running_var's update only", cap_fw_var_momentum_reversed,
          "running_var's update weights the old value by momentum and the batch's unbiased "
          "variance by 1 - momentum (reversed for the variance only; running_mean is right)",
          replaces=CAP_FW),
    entry(CAP, "invstd saved without eps", cap_fw_invstd_without_eps,
          "saves invstd = 1/sqrt(var) without eps (eps only in the output), so the saved "
          "invstd and the backward pass are slightly off", replaces=CAP_FW),
    entry(CAP, "invstd computed in float32", cap_fw_invstd_float32,
          "computes invstd with .float() (float32), losing precision for float64 inputs: output, "
          "saved invstd and gradients off by about 1e-7 relative", replaces=CAP_FW),
    entry(CAP, "second all-reduced sum not divided by N", cap_bw_second_sum_not_divided,
          "divides only the first all-reduced sum by N: the x_hat term of dx uses the sum of "
          "dout * x_hat instead of its mean", replaces=CAP_BW),
    right(CAP, "int64 count, lerp_ running update, addcmul; N * dout backward", cap_fw_int_count,
          given={CAP_BW: cap_bw_n_dout_form}, replaces=CAP_FW),
    # merge_running_stats
    entry(MG, "total count cached across calls", mg_total_cached,
          "caches the all-reduced total count on the function after the first call, so later "
          "calls with other counts divide by the first call's total"),
    entry(MG, "running_var squared in the within-rank term", mg_var_squared,
          "squares running_var in the within-rank term, (n_r - 1) * var ** 2, as if it held a "
          "standard deviation"),
    entry(MG, "last layer's merged mean used in every layer's spread", mg_last_layer_mean,
          "the second loop's between-rank term uses `mean`, left over from the first loop (the "
          "last layer's merged mean), instead of this layer's: a shape error when layers differ "
          "in width, wrong values when they do not"),
    entry(MG, "sums all-reduced in float16", mg_half_precision,
          "sends the weighted sums through all_reduce in float16 (to save bandwidth), keeping "
          "about 3 significant digits"),
    right(MG, "(sum, sum of squares) per layer in float64, one all-reduce each", mg_raw_moments_per_layer),
]
