"""Held-out answers (sixth set, part c), lesson 08:

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
from torch import nn

from _format import entry, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"

# ---- forward ------------------------------------------------------------------------


def fw_momentum_or(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    momentum = momentum or 0.1  # a default for a missing momentum
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


def fw_float64_out(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    x, gamma, beta = x.double(), gamma.double(), beta.double()  # statistics in float64
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


def fw_square_after_sum(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce((x - mean).sum(0)) ** 2 / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_gamma_aliased(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    scale = gamma
    scale *= rho  # one scale per channel
    x_hat = (x - mean) * rho
    return (x - mean) * scale + beta, (x_hat, rho, gamma, count)


def fw_bessel_on_mean(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            bessel = count / (count - 1)
            running_mean.mul_(1 - momentum).add_(momentum * mean * bessel)
            running_var.mul_(1 - momentum).add_(momentum * var * bessel)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_one_round_vector_norm(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    """Correct: count and sum in one all-reduce of C + 1 numbers, the squared deviations as a
    squared vector norm, the running update as running += m * (new - running)."""
    first = all_reduce(torch.cat([x.new_full((1,), x.shape[0]), x.sum(0)]))
    count, mean = first[:1], first[1:] / first[0]
    centred = x - mean
    var = all_reduce(torch.linalg.vector_norm(centred, dim=0) ** 2) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean += momentum * (mean - running_mean)
            running_var += momentum * (var * count / (count - 1) - running_var)
    rho = (var + eps).rsqrt()
    x_hat = centred * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- backward -----------------------------------------------------------------------


def bw_params_over_channels(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(1), dout.sum(1)


def bw_product_of_means(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), x_hat.sum(0)]))
    mean_dy, mean_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * (mean_dy * mean_xhat))
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_share_as_global_over_world(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    world = all_reduce(torch.ones(1, dtype=dout.dtype))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    dbeta, dgamma = sums / world  # DDP averages over the ranks
    return dx, dgamma, dbeta


def bw_mean_of_means(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    world = all_reduce(torch.ones(1, dtype=dout.dtype))
    mean_dy = all_reduce(dout.mean(0)) / world
    mean_dy_xhat = all_reduce((dout * x_hat).sum(0)) / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_bessel(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / (count - 1)
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- merge_running_stats ------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_batches_as_count(model, all_reduce, count):
    for bn in _bns(model):
        n = bn.num_batches_tracked.double()  # how much each rank has seen
        total = all_reduce(n.reshape(1))
        mean = all_reduce(n * bn.running_mean) / total
        within = (n - 1) * bn.running_var
        between = n * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_affine_averaged(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        if bn.affine:  # make the whole layer the same on every rank
            with torch.no_grad():
                bn.weight.copy_(all_reduce(bn.weight) / world)
                bn.bias.copy_(all_reduce(bn.bias) / world)


def mg_momentum_blend(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        m = bn.momentum if bn.momentum is not None else 0.1
        bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), m)
        bn.running_var.lerp_(var.to(bn.running_var.dtype), m)


def mg_unweighted_centre(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        centre = all_reduce(bn.running_mean.double()) / world  # the middle of the ranks' means
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - centre) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_by_buffers_addcmul(model, all_reduce, count):
    """Correct: layers found by their buffers, the merge in float64 with addcmul."""
    n = torch.tensor(float(count), dtype=torch.float64)
    total = all_reduce(n.reshape(1))[0]
    for _, layer in model.named_modules():
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm) or getattr(layer, "running_var", None) is None:
            continue
        mu, var = layer.running_mean.double(), layer.running_var.double()
        merged = all_reduce(mu * n) / total
        spread = torch.addcmul((n - 1) * var, mu - merged, mu - merged, value=float(count))
        merged_var = all_reduce(spread) / (total - 1)
        layer.running_mean.copy_(merged)
        layer.running_var.copy_(merged_var)


# ---- capstone: sync_bn_forward / sync_bn_backward -----------------------------------------


def cap_bw_no_param_grads(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, None, None, None, None  # DDP takes care of gamma and beta


def cap_fw_rank_size_guard(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if x.shape[0] > 1:  # no unbiased variance from a single example
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_no_eps(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = torch.rsqrt(var)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_centred_only(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = x - mean
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_momentum_copy_paste(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_((1 - momentum) * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_returns_dx_last(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return (dout * x_hat).sum(0), dout.sum(0), dx, None, None


def cap_bw_staged(saved, dout, all_reduce):
    """Correct: the staged chain (dvar, dmean) of lesson 02, its two sums all-reduced."""
    x, gamma, mean, invstd, count = saved
    centred = x - mean
    dx_hat = dout * gamma
    sums = all_reduce(torch.stack([dx_hat.sum(0), (dx_hat * centred).sum(0)]))
    dvar = -0.5 * sums[1] * invstd ** 3
    dmean = -sums[0] * invstd  # the variance branch's share sums to 0 with the global mean
    dx = dx_hat * invstd + dvar * 2 * centred / count + dmean / count
    x_hat = centred * invstd
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


ENTRIES = [
    entry(FW, "momentum 0 taken as missing", fw_momentum_or,
          "writes momentum = momentum or 0.1, so momentum=0 (running statistics frozen) updates them with 0.1."),
    entry(FW, "output left in float64", fw_float64_out,
          "casts x, gamma and beta to float64 for the statistics and returns out (and the cache) in float64, "
          "so a float32 input gets a float64 output."),
    entry(FW, "deviations summed before squaring", fw_square_after_sum,
          "all-reduces the sum of the deviations and squares it ((sum (x - mean))^2, about 0) instead of "
          "summing the squared deviations."),
    entry(FW, "gamma scaled in place through an alias", fw_gamma_aliased,
          "writes scale = gamma; scale *= rho, which multiplies the caller's gamma in place (shared by every "
          "rank), so gamma changes and the output is wrong."),
    entry(FW, "Bessel factor on running_mean too", fw_bessel_on_mean,
          "multiplies the batch mean by N/(N - 1) in the running_mean update as well, instead of only the "
          "variance in the running_var update."),
    right(FW, "one (C + 1) round, vector_norm, += m * (new - old)", fw_one_round_vector_norm),
    entry(BW, "dgamma and dbeta summed over channels", bw_params_over_channels,
          "sums dgamma and dbeta over dim 1 (each example's channels) instead of dim 0, returning shape "
          "(n_r,) instead of (C,)."),
    entry(BW, "product of means for mean(dout * x_hat)", bw_product_of_means,
          "uses mean(dout) * mean(x_hat) (all-reducing x_hat's sum) instead of the mean of the product "
          "dout * x_hat."),
    entry(BW, "dgamma and dbeta as global sums over world size", bw_share_as_global_over_world,
          "returns the all-reduced sums divided by the number of ranks as dgamma and dbeta instead of this "
          "rank's own sums (equal only when the ranks' contributions are equal)."),
    entry(BW, "mean of dout as a mean of the ranks' means", bw_mean_of_means,
          "takes mean(dout) as the average of the ranks' means (all_reduce(dout.mean(0)) / world) instead of "
          "the all-reduced sum over N: wrong when the ranks hold different numbers of examples."),
    entry(BW, "N - 1 in the backward means", bw_bessel,
          "divides the two all-reduced sums by N - 1 instead of N."),
    entry(MG, "num_batches_tracked as the count", mg_batches_as_count,
          "weights each rank by its layer's num_batches_tracked instead of the count argument."),
    entry(MG, "weight and bias averaged too", mg_affine_averaged,
          "also replaces each layer's weight and bias by their average over the ranks, which must be left "
          "alone."),
    entry(MG, "merged statistics blended with momentum", mg_momentum_blend,
          "moves the buffers towards the merged values by the layer's momentum (lerp_) instead of replacing "
          "them with the merged values."),
    entry(MG, "spread around the unweighted mean of means", mg_unweighted_centre,
          "takes the between-rank deviations from the plain average of the ranks' means instead of the "
          "count-weighted merged mean (the merged mean itself is right)."),
    right(MG, "layers found by their buffers, float64 addcmul", mg_by_buffers_addcmul),
    entry(CAP, "parameter gradients returned as None", cap_bw_no_param_grads,
          "returns None for dgamma and dbeta (as if DDP computed them) instead of this rank's sums.",
          replaces=CAP_BW),
    entry(CAP, "running statistics skipped on a rank of one example", cap_fw_rank_size_guard,
          "guards the running update with x.shape[0] > 1 (this rank's size) instead of updating on every "
          "rank, so a rank holding one example keeps its old running statistics.", replaces=CAP_FW),
    entry(CAP, "eps left out of invstd", cap_fw_no_eps,
          "computes invstd = rsqrt(var) without eps (the argument is unused), so the output and the saved "
          "invstd are off.", replaces=CAP_FW),
    entry(CAP, "x_hat recomputed without invstd", cap_bw_centred_only,
          "recomputes x_hat as x - mean, leaving out the factor invstd.", replaces=CAP_BW),
    entry(CAP, "running_mean's batch term weighted by 1 - momentum", cap_fw_momentum_copy_paste,
          "updates running_mean as (1 - m) * old + (1 - m) * mean (copy-paste of the first factor) instead of "
          "(1 - m) * old + m * mean.", replaces=CAP_FW),
    entry(CAP, "backward returns dx last", cap_bw_returns_dx_last,
          "returns (dgamma, dbeta, dx, None, None) instead of (dx, dgamma, dbeta, None, None).",
          replaces=CAP_BW),
    right(CAP, "staged dvar / dmean backward", cap_bw_staged, replaces=CAP_BW),
]
