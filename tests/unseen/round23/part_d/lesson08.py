"""Held-out answers (twenty-third set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 22.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_process_group_guard(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                           momentum=0.1):
    # as torch.nn.SyncBatchNorm: synchronise only inside an initialised process group,
    # otherwise behave as plain batch norm on this process's batch
    if dist.is_available() and dist.is_initialized():
        count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
        mean = all_reduce(x.sum(0)) / count
        var = all_reduce(((x - mean) ** 2).sum(0)) / count
    else:
        count = torch.tensor([float(x.shape[0])], dtype=x.dtype)
        mean = x.sum(0) / count
        var = ((x - mean) ** 2).sum(0) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_var_mean_order_swapped(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    # this rank's moments first (tf.nn.moments order: mean, variance), then Chan's merge
    local_mean, local_var = torch.var_mean(x, dim=0, correction=0)
    count = all_reduce(n)
    mean = all_reduce(n * local_mean) / count
    m2 = all_reduce(n * local_var + n * (local_mean - mean) ** 2)
    var = m2 / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_squares_not_divided(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                           momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0))  # sum of the squared deviations over all ranks
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_f_normalize(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = F.normalize(x - mean, dim=0)  # each channel scaled to unit spread
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_count_plus_eps(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / (count + 1e-5)  # never divide by zero
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_first_mean_local(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy_xhat = all_reduce((dout * x_hat).sum(0)) / count
    dx = gamma * rho * (dout - dout.mean(0) - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_both_means_from_row_one(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums[1] / count, sums[1] / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_right_centred_second_round(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy = all_reduce(dout.sum(0)) / count
    centred = dout - mean_dy  # the x_hat sum is unchanged: x_hat sums to 0 over the whole batch
    mean_dy_xhat = all_reduce((centred * x_hat).sum(0)) / count
    dx = gamma * rho * (centred - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_residuals_dict(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    # residuals by name, as for jax.custom_vjp
    saved = {"x": x, "gamma": gamma, "mean": mean, "invstd": invstd, "count": count}
    return gamma * (x - mean) * invstd + beta, saved


def cap_bw_residuals_dict(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = (saved[k] for k in ("x", "gamma", "mean", "invstd", "count"))
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_eps_twice(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    var_eps = var + eps
    invstd = torch.rsqrt(var_eps + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_invstd_float32(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = (1.0 / torch.sqrt(var + eps)).float()  # statistics kept in float32, as BN's buffers
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_dx_per_rank_mean_loss(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    dx = dx * count / x.shape[0]  # each rank's loss is the mean over its own slice
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_right_int_count(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([x.shape[0]]))  # an int64 tensor: counts are integers
    mean = torch.div(all_reduce(x.sum(0)), count)
    var = torch.linalg.vector_norm(x - mean, dim=0).square()
    var = all_reduce(var) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var * count / (count - 1), alpha=momentum)
    invstd = torch.rsqrt(var + eps)
    return torch.addcmul(beta, x - mean, gamma * invstd), (x, gamma, mean, invstd, count)


def cap_bw_right_vecdot(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    local = torch.stack([dout.sum(0), torch.linalg.vecdot(dout.mT, x_hat.mT)])
    total = all_reduce(local)
    scale = gamma * invstd
    dx = scale * dout - scale * (total[0] + x_hat * total[1]) / count
    return dx, local[1], local[0], None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_recursion_over_modules(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * m.running_mean) / total
            within = (count - 1) * m.running_var
            between = count * (m.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        elif m is not model and len(list(m.children())) > 0:
            mg_recursion_over_modules(m, all_reduce, count)  # nested blocks


def mg_stale_mean_in_second_loop(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    means = []
    for bn in layers:  # first the merged means of every layer
        mean = all_reduce(count * bn.running_mean) / total
        means.append(mean)
    for bn, m in zip(layers, means):  # then the variances around them
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(m)
        bn.running_var.copy_(var)


def mg_counts_in_mean_only(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            # law of total variance: mean of the variances plus variance of the means
            var = all_reduce(bn.running_var + (bn.running_mean - mean) ** 2) / world
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong
    entry(FW, "synchronises only inside an initialised process group", fw_process_group_guard,
          "copies torch.nn.SyncBatchNorm's fallback: it calls the given all_reduce only when "
          "torch.distributed.is_initialized(), so with the exercise's all_reduce and no process group every rank "
          "normalises (and updates its running statistics) with its own slice's statistics."),
    entry(FW, "torch.var_mean unpacked as (mean, var)", fw_var_mean_order_swapped,
          "unpacks torch.var_mean(x, dim=0, correction=0) as (mean, variance), TensorFlow's tf.nn.moments order, "
          "but torch.var_mean returns (variance, mean), so each rank's mean and variance are swapped before the "
          "(otherwise right) count-weighted merge."),
    entry(FW, "all-reduced squared deviations not divided by the count", fw_squares_not_divided,
          "takes the all-reduced sum of the squared deviations as the variance, forgetting to divide it by the "
          "global count N, so the variance is N times too large: the output is squeezed towards beta and "
          "running_var is wrong (running_mean is right)."),
    entry(FW, "F.normalize taken for standardisation", fw_f_normalize,
          "computes x_hat with F.normalize(x - mean, dim=0), which divides each channel by the L2 norm of this "
          "rank's centred slice, not by sqrt(var + eps) of the whole batch (rho is computed but unused in x_hat), "
          "so the output is wrong (the running statistics are right)."),
    # sync_batchnorm_backward: 3 wrong, 1 correct
    entry(BW, "all-reduced sums divided by count + 1e-5", bw_count_plus_eps,
          "divides the all-reduced sums by count + 1e-5 (a habit against division by zero) instead of count, "
          "so both means are slightly too small and dx is off by about 1e-6 relative (dgamma and dbeta are right)."),
    entry(BW, "mean of dout taken on this rank", bw_first_mean_local,
          "all-reduces only the sum of dout * x_hat and takes the mean of dout with this rank's dout.mean(0), "
          "not the whole batch's, so dx is wrong (dgamma and dbeta are right)."),
    entry(BW, "both means read from the second all-reduced row", bw_both_means_from_row_one,
          "reads both means from row 1 of the all-reduced stack (sums[1] / count twice), so the mean of dout "
          "is replaced by the mean of dout * x_hat and dx is wrong (dgamma and dbeta are right)."),
    right(BW, "two rounds, dout centred on the global mean before the x_hat sum", bw_right_centred_second_round),
    # sync_bn_layer: 4 wrong, 1 correct
    Unseen(CAP, "saved tensors as a dict (jax.custom_vjp residuals)",
           {CAP_FW: cap_fw_residuals_dict, CAP_BW: cap_bw_residuals_dict}, CAP,
           "returns the saved tensors as a dict of named tensors, as JAX residuals, instead of the tuple "
           "(x, gamma, mean, invstd, count), and the backward reads them by name, so ctx.save_for_backward(*saved) "
           "gets the keys (strings) and the backward cannot take the tuple autograd gives back."),
    entry(CAP, "eps added twice to the variance", cap_fw_eps_twice, replaces=CAP_FW,
          cause="forms var_eps = var + eps and then takes rsqrt(var_eps + eps), so invstd is 1/sqrt(var + 2 eps): "
          "the output and the saved invstd are slightly off (the running statistics and the mean are right)."),
    entry(CAP, "invstd cast to float32", cap_fw_invstd_float32, replaces=CAP_FW,
          cause="casts invstd to float32 (.float(), as BN's buffers are), so with float64 inputs the saved invstd and "
          "the output lose precision (errors of about 1e-8) and the saved invstd has the wrong dtype."),
    entry(CAP, "dx rescaled to a per-rank mean loss (N / n_r)", cap_bw_dx_per_rank_mean_loss, replaces=CAP_BW,
          cause="multiplies dx by count / n_r, thinking each rank's loss is the mean over its own slice, but dout "
          "is already the gradient of the one loss over the whole batch, so dx is too large by N / n_r on every "
          "rank (dgamma and dbeta are right)."),
    Unseen(CAP, "int64 count, vector_norm squared, add_(alpha=), addcmul; vecdot backward",
           {CAP_FW: cap_fw_right_int_count, CAP_BW: cap_bw_right_vecdot}, CAP, correct=True),
    # merge_running_stats: 3 wrong
    entry(MG, "recursion into nested blocks on top of model.modules()", mg_recursion_over_modules,
          "recurses into every nested block although model.modules() already walks the whole tree, so the batch "
          "norms inside nested blocks are merged twice (the second merge shrinks their running_var; top-level "
          "layers are right)."),
    entry(MG, "stale loop variable mean in the second loop", mg_stale_mean_in_second_loop,
          "computes every layer's merged mean in a first loop and the variances in a second, but the between-rank "
          "term uses the loop variable mean left from the first loop (the last layer's) instead of m, so the "
          "variances are wrong (or the shapes clash) while the means are right."),
    entry(MG, "counts in the mean, equal weights in the variance", mg_counts_in_mean_only,
          "weights the means by the counts but merges the variances with equal weights (mean of the ranks' "
          "variances plus mean squared deviation of their means, over the number of ranks), so running_var is "
          "wrong for unequal counts (and biased even for equal ones); running_mean is right."),
]
