"""Held-out answers (seventh set, part c), lesson 08:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, cache = (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)  (this rank's share)
merge_running_stats(model, all_reduce, count)  (in place)
capstone (graded cell sync_bn_layer):
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, saved = (x, gamma, mean, invstd, count))
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
"""

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"

# ---- forward ------------------------------------------------------------------------


def fw_count_of_ranks(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.ones(1, dtype=x.dtype))  # every rank adds one
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_batch_term_unweighted(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean)
            running_var.mul_(1 - momentum).add_(var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_deviations_over_channels(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(1)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_sums_float32(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    # float32 on the wire: half the bytes of float64
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=torch.float32)).to(x.dtype)
    mean = all_reduce(x.sum(0).float()).to(x.dtype) / count
    var = all_reduce(((x - mean) ** 2).sum(0).float()).to(x.dtype) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_affine_reduced(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    gamma, beta = all_reduce(gamma), all_reduce(beta)  # every rank must use the same parameters
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_divide_by_std(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    n = all_reduce(x.new_tensor([x.shape[0]]))
    mu = all_reduce(x.sum(dim=0)) / n
    sigma2 = all_reduce(torch.square(x - mu).sum(dim=0)) / n
    std = torch.sqrt(sigma2 + eps)
    x_hat = torch.div(x - mu, std)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.copy_((1 - momentum) * running_mean + momentum * mu)
            running_var.copy_((1 - momentum) * running_var + momentum * sigma2 * (n / (n - 1)))
    rho = std.reciprocal()
    return x_hat * gamma + beta, (x_hat, rho, gamma, n)


# ---- backward -----------------------------------------------------------------------


def bw_xhat_term_outside(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy) - x_hat * mean_dy_xhat
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_n_form_unscaled(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sum_dy, sum_dy_xhat = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    dx = gamma * rho * (count * dout - sum_dy - x_hat * sum_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_stacked_dim1(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)], dim=1))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_rho_squared(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho ** 2 * (dout - mean_dy - x_hat * mean_dy_xhat)  # divided by the variance
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_einsum_addcmul(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    local = torch.stack([torch.einsum("nc->c", dout), torch.einsum("nc,nc->c", dout, x_hat)])
    mean_dy, mean_dy_xhat = all_reduce(local).div(count).unbind(0)
    inner = torch.addcmul(dout - mean_dy, x_hat, mean_dy_xhat, value=-1.0)
    return (gamma * rho) * inner, local[1].clone(), local[0].clone()


# ---- merge_running_stats --------------------------------------------------------------


def mg_sync_left_out(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_between_local(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = all_reduce((count - 1) * bn.running_var)
            between = count * (bn.running_mean - mean) ** 2
            var = (within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_mean_counts_left_out(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(bn.running_mean.clone()) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_deviations_not_squared(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean)
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_total_accumulated(model, all_reduce, count):
    total = 0
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            total += all_reduce(torch.tensor([float(count)], dtype=torch.float64))
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


# ---- capstone -------------------------------------------------------------------------


def cap_fw_mean_keepdim(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0, keepdim=True)) / count  # (1, C): broadcasts against x
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean.squeeze(0))
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_var_made_unbiased(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        var *= count / (count - 1)  # PyTorch stores the unbiased variance
        running_var.mul_(1 - momentum).add_(momentum * var)
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_six_gradients(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    # inputs: x, gamma, beta, running_mean, running_var, all_reduce
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None, None


def cap_fw_chain_alias(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    batch_mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - batch_mean) ** 2).sum(0)) / count
    with torch.no_grad():
        mean = running_mean.mul_(1 - momentum).add_(momentum * batch_mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_dgamma_raw_x(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x).sum(0), dout.sum(0), None, None


def cap_fw_beta_saved(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, beta, mean, invstd, count)


def cap_fw_total_variance(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    n = x.shape[0]
    local_var, local_mean = torch.var_mean(x, dim=0, unbiased=False)
    count = all_reduce(x.new_tensor([float(n)]))
    mean = all_reduce(n * local_mean) / count
    m2 = all_reduce(n * local_var + n * (local_mean - mean) ** 2)  # within + between, no cancellation
    var = m2 / count
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(m2 / (count - 1), momentum)
    invstd = torch.rsqrt(var + eps)
    return (x - mean) * invstd * gamma + beta, (x, gamma, mean, invstd, count)


ENTRIES = [
    entry(FW, "count of ranks instead of examples", fw_count_of_ranks,
          "all-reduces a 1 per rank, so the count is the number of ranks W instead of the number of examples N."),
    entry(FW, "batch term not weighted by momentum", fw_batch_term_unweighted,
          "updates the running statistics as (1 - m) * old + batch, leaving out the factor m on the batch term."),
    entry(FW, "squared deviations summed over the channels", fw_deviations_over_channels,
          "sums the squared deviations over dim 1 (each example's channels) instead of dim 0, a vector of n_r "
          "values that the ranks cannot add (their slices differ in size) and that is not per channel."),
    entry(FW, "sums all-reduced in float32", fw_sums_float32,
          "casts the count and the sums to float32 before all-reducing them (to send fewer bytes), so a float64 "
          "input's statistics have float32 precision (about 1e-7 relative)."),
    entry(FW, "gamma and beta all-reduced", fw_affine_reduced,
          "all-reduces gamma and beta as well (to make the ranks agree), so the output uses W * gamma and "
          "W * beta."),
    entry(BW, "x_hat term outside the factor gamma * rho", bw_xhat_term_outside,
          "writes dx = gamma * rho * (dout - mean(dout)) - x_hat * mean(dout * x_hat): the last term is left "
          "outside the factor gamma * rho."),
    entry(BW, "N * dout form without the 1/N", bw_n_form_unscaled,
          "uses the N * dout - sum - x_hat * sum form of dx without dividing by N, so dx is N times too large."),
    entry(BW, "sums stacked along dim 1", bw_stacked_dim1,
          "stacks the two sums with dim=1 (shape (C, 2)) and then unpacks the first dimension as the two rows, "
          "which raises (too many values to unpack) unless C = 2."),
    entry(BW, "divides by the variance, not the standard deviation", bw_rho_squared,
          "multiplies dx by rho ** 2 = 1/(var + eps) instead of rho = 1/sqrt(var + eps)."),
    entry(MG, "SyncBatchNorm left out", mg_sync_left_out,
          "merges only nn.BatchNorm1d/2d/3d layers (isinstance of the three), so SyncBatchNorm layers keep "
          "their per-rank statistics."),
    entry(MG, "between-rank term not all-reduced", mg_between_local,
          "all-reduces the within-rank squared deviations but adds only this rank's own between-rank term "
          "count * (mean_r - mean)^2, so each rank's merged variance differs and misses the other ranks' spread."),
    entry(MG, "counts left out of the mean's sum", mg_mean_counts_left_out,
          "all-reduces the running means without multiplying them by count, then divides by the total count, "
          "so the merged mean is sum(mean_r) / N instead of sum(n_r mean_r) / N."),
    entry(MG, "deviations of the means not squared", mg_deviations_not_squared,
          "adds count * (mean_r - mean) instead of count * (mean_r - mean)^2 as the between-rank term; summed "
          "over the ranks it is zero, so the spread of the means is lost."),
    entry(MG, "total count accumulated over the layers", mg_total_accumulated,
          "adds the all-reduced count to a running total once per layer, so the k-th batch-norm layer is merged "
          "with k * N as the total (only the first layer is right)."),
    entry(CAP, "mean saved with keepdim", cap_fw_mean_keepdim,
          "computes and saves the global mean with keepdim=True, shape (1, C) instead of (C,) (the output and "
          "running statistics are right).", replaces=CAP_FW),
    entry(CAP, "variance made unbiased in place before invstd", cap_fw_var_made_unbiased,
          "multiplies var by N/(N - 1) in place for the running update and then uses that unbiased variance "
          "for invstd, so the output and the saved invstd use the unbiased variance.", replaces=CAP_FW),
    entry(CAP, "backward returns six gradients", cap_bw_six_gradients,
          "returns six values (an extra None for all_reduce) instead of one per tensor input of forward: "
          "(dx, dgamma, dbeta, None, None).", replaces=CAP_BW),
    entry(CAP, "running_mean's in-place result used as the mean", cap_fw_chain_alias,
          "takes mean = running_mean.mul_(1 - m).add_(m * batch_mean), the updated running mean, so the "
          "output and the saved mean use the running mean instead of the batch's.", replaces=CAP_FW),
    entry(CAP, "dgamma from the raw input", cap_bw_dgamma_raw_x,
          "computes dgamma as sum(dout * x) with the saved input x instead of sum(dout * x_hat).",
          replaces=CAP_BW),
    entry(CAP, "beta saved in gamma's place", cap_fw_beta_saved,
          "saves (x, beta, mean, invstd, count) instead of (x, gamma, mean, invstd, count), so the backward "
          "pass scales dx by beta.", replaces=CAP_FW),
    right(FW, "new_tensor count, division by the std, buffers blended with copy_", fw_divide_by_std),
    right(BW, "einsum sums, one all-reduce, addcmul", bw_einsum_addcmul),
    right(CAP, "per-rank var_mean merged by the law of total variance, lerp_", cap_fw_total_variance,
          replaces=CAP_FW),
]
