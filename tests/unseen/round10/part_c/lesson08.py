"""Held-out answers (tenth set, part c), lesson 08:

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
import torch.nn.functional as F
from torch import nn

from _format import entry, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"

# ---- forward ------------------------------------------------------------------------


def fw_bessel_inverted(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            unbiased = var * (count - 1) / count
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_x_all_reduced(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x).sum(0) / count
    var = all_reduce((x - mean) ** 2).sum(0) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_not_implemented(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        raise NotImplementedError("running statistics: later")
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_var_around_running_mean(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
                                       running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            around = all_reduce(((x - running_mean) ** 2).sum(0)) / (count - 1)
            running_var.mul_(1 - momentum).add_(momentum * around)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_beta_inside_scale(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * (x_hat + beta), (x_hat, rho, gamma, count)


def fw_functional_eval(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    n_r = x.new_tensor([x.shape[0]])
    count = all_reduce(n_r)
    mean = all_reduce(n_r * x.mean(0)) / count
    var = all_reduce((x - mean).square().sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * count / (count - 1), momentum)
    # batch norm with the global statistics given as "running" ones, in eval mode
    out = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)
    rho = (var + eps).rsqrt()
    return out, ((x - mean) * rho, rho, gamma, count)


# ---- backward -----------------------------------------------------------------------


def bw_parameter_grads_averaged(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    world = all_reduce(torch.ones(1, dtype=dout.dtype))  # DDP averages over the ranks
    return dx, (dout * x_hat).sum(0) / world, dout.sum(0) / world


def bw_dx_todo(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dx = gamma * rho * dout  # TODO: the terms of the mean and the variance
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_count_reduced_again(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    total = all_reduce(count)
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / total
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_two_arguments(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sum_dy, sum_dy_xhat = all_reduce(dout.sum(0), (dout * x_hat).sum(0))
    dx = gamma * rho * (dout - sum_dy / count - x_hat * sum_dy_xhat / count)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_local_n_times_dout(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    n = dout.shape[0]
    dx = gamma * rho / count * (n * dout - sums[0] - x_hat * sums[1])
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- capstone -----------------------------------------------------------------------


def cap_fw_count_vector(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.ones(x.shape[0], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count.sum()
    var = all_reduce(((x - mean) ** 2).sum(0)) / count.sum()
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count.sum() / (count.sum() - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count.sum().reshape(1))


def cap_fw_no_decay(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.add_(momentum * mean)
        running_var.add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_beta_dropped(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd, (x, gamma, mean, invstd, count)


def cap_bw_output_as_xhat(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = gamma * (x - mean) * invstd  # the normalised x, as in the forward
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_no_xhat(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    centred = x - mean
    sums = all_reduce(torch.stack([dout.sum(0), torch.einsum("nc,nc->c", dout, centred)]))
    mean_dy, mean_dy_centred = sums / count
    dx = gamma * invstd * (dout - mean_dy - centred * invstd.square() * mean_dy_centred)
    return dx, invstd * torch.einsum("nc,nc->c", dout, centred), dout.sum(0), None, None


# ---- merge_running_stats ------------------------------------------------------------


def mg_add_instead_of_copy(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.add_(mean)
            bn.running_var.add_(var)


def mg_mean_over_n_minus_1(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / (total - 1)
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_total_count_times_world(model, all_reduce, count):
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    total = count * world  # every rank has about count values
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_float64_data(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            m, v = bn.running_mean.double(), bn.running_var.double()  # exact sums
            mean = all_reduce(count * m) / total
            var = all_reduce((count - 1) * v + count * (m - mean) ** 2) / (total - 1)
            bn.running_mean.data = mean
            bn.running_var.data = var


def mg_two_passes(model, all_reduce, count):
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    n = torch.tensor([count], dtype=torch.float32)
    total = all_reduce(n)
    merged = {}
    for bn in layers:  # first every reduction, then every write
        mean = all_reduce(bn.running_mean * n) / total
        squares = torch.addcmul((n - 1) * bn.running_var, bn.running_mean - mean, bn.running_mean - mean, value=count)
        merged[bn] = (mean, all_reduce(squares) / (total - 1))
    for bn, (mean, var) in merged.items():
        bn.running_mean[...] = mean
        bn.running_var[...] = var


ENTRIES = [
    # forward
    entry(FW, "Bessel factor inverted in running_var", fw_bessel_inverted,
          "multiplies the batch variance by (N - 1) / N instead of N / (N - 1) for the running "
          "variance, so running_var gets a variance smaller than the biased one"),
    entry(FW, "x itself all-reduced, summed afterwards", fw_x_all_reduced,
          "all-reduces the (n_r, C) arrays x and (x - mean)**2 and sums over the rows afterwards "
          "instead of all-reducing their column sums: with slices of different sizes the reduction "
          "fails (shape error); right only when every rank has the same number of rows"),
    entry(FW, "running-statistics branch left as NotImplementedError", fw_running_not_implemented,
          "raises NotImplementedError when running_mean is given: the running-statistics update is "
          "not written"),
    entry(FW, "running_var from deviations around the updated running_mean", fw_running_var_around_running_mean,
          "computes the running variance's batch term from squared deviations around the just "
          "updated running_mean instead of around the batch mean"),
    entry(FW, "beta inside the scale: gamma * (x_hat + beta)", fw_beta_inside_scale,
          "returns gamma * (x_hat + beta) instead of gamma * x_hat + beta: the shift is scaled by "
          "gamma"),
    right(FW, "n_r * local mean, lerp_, F.batch_norm in eval mode with the global statistics",
          fw_functional_eval),
    # backward
    entry(BW, "dgamma and dbeta divided by the number of ranks", bw_parameter_grads_averaged,
          "divides this rank's dgamma and dbeta by the number of ranks (as DDP averages gradients) "
          "instead of returning this rank's share of the sums", replaces=BW),
    entry(BW, "dx without the batch terms (TODO)", bw_dx_todo,
          "returns dx = gamma * rho * dout, leaving out the mean(dout) and x_hat * mean(dout * x_hat) "
          "terms (a TODO never finished)", replaces=BW),
    entry(BW, "the cached global count all-reduced again", bw_count_reduced_again,
          "all-reduces the cached count again although it is already the global N, so the means "
          "are divided by world_size * N", replaces=BW),
    entry(BW, "two tensors passed to all_reduce", bw_two_arguments,
          "calls all_reduce(a, b) with two tensors, which raises a TypeError (all_reduce takes one "
          "tensor: stack them)", replaces=BW),
    entry(BW, "N * dout form with this rank's n_r", bw_local_n_times_dout,
          "uses the N * dout form with this rank's row count n_r in front of dout but the global N "
          "in the denominator: right only when a rank holds the whole batch", replaces=BW),
    # capstone
    entry(CAP, "count all-reduced as a vector of ones", cap_fw_count_vector,
          "all-reduces torch.ones(n_r) (a vector with one entry per example) instead of a one-entry "
          "count: with slices of different sizes the ranks' vectors differ in length and the "
          "reduction fails (shape error); right only when every rank has the same number of rows", replaces=CAP_FW),
    entry(CAP, "running statistics never decayed (mul_ forgotten)", cap_fw_no_decay,
          "adds momentum * batch statistic to the running statistics without first multiplying "
          "them by 1 - momentum, so they grow instead of averaging", replaces=CAP_FW),
    entry(CAP, "beta left out of the output", cap_fw_beta_dropped,
          "returns gamma * x_hat without + beta", replaces=CAP_FW),
    entry(CAP, "backward's x_hat recomputed with gamma", cap_bw_output_as_xhat,
          "recomputes x_hat in the backward as gamma * (x - mean) * invstd (the forward's scaled "
          "output without beta), so the x_hat term of dx and dgamma carry an extra gamma",
          replaces=CAP_BW),
    right(CAP, "x_hat never formed: sums of dout * (x - mean), invstd applied twice", cap_bw_no_xhat,
          replaces=CAP_BW),
    # merge
    entry(MG, "merged statistics added with add_ instead of copied", mg_add_instead_of_copy,
          "writes the merged statistics with add_ instead of copy_, so each layer holds its old "
          "statistics plus the merged ones"),
    entry(MG, "N - 1 in the mean's denominator too", mg_mean_over_n_minus_1,
          "divides the count-weighted sum of the means by N - 1 (as for the variance) instead of N"),
    entry(MG, "total count as count * world size", mg_total_count_times_world,
          "takes the total count as this rank's count times the number of ranks instead of "
          "all-reducing the counts: right only for equal counts, and ranks with different counts "
          "end up with different statistics"),
    entry(MG, "merged in float64 and assigned with .data", mg_float64_data,
          "merges in float64 and assigns the results with .data =, so the buffers become float64 "
          "tensors (new storage) while the layer's weights stay float32"),
    right(MG, "all reductions first, then [...] writes; addcmul", mg_two_passes),
]
