"""Held-out answers (eighth set, part c), lesson 08:

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


# ---- forward (section 2) ------------------------------------------------------------


def fw_var_pooled_over_channels(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum()) / (count * x.shape[1])  # one variance for the layer
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_chan_unbiased_var_mean(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    var_r, mean_r = torch.var_mean(x, dim=0)  # this rank's, default unbiased=True
    m2_r = var_r * (n - 1)  # this rank's sum of squared deviations
    count = all_reduce(n)
    mean = all_reduce(n * mean_r) / count
    m2 = all_reduce(m2_r + n * (mean_r - mean) ** 2)
    var = m2 / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * m2 / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_normalised_with_running(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                               momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
        mean, var = running_mean, running_var  # use the statistics we keep
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_eps_as_floor(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = torch.rsqrt(var.clamp(min=eps))  # never divide by zero
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_mean_from_sum(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    total = all_reduce(x.sum(0))
    mean = total / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * total)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_count_from_shape(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                        momentum=0.1):
    count = all_reduce(torch.tensor(x.shape, dtype=x.dtype))  # x.shape instead of x.shape[0]
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_count_per_channel(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                         momentum=0.1):
    """Correct: the count per channel from ones_like(x), sums in one stacked round."""
    first = all_reduce(torch.stack([torch.ones_like(x).sum(0), x.sum(0)]))
    count, mean = first[0], first[1] / first[0]
    var = all_reduce((x - mean).pow(2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * count / (count - 1), momentum)
    rho = (var + eps).rsqrt()
    x_hat = (x - mean) * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- backward (section 3) -------------------------------------------------------------


def bw_mean_dy_in_xhat_term(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_mean_term_dropped(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_xhat_scaled_in_place(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    x_hat *= mean_dy_xhat  # saves a temporary
    dx = gamma * rho * (dout - mean_dy - x_hat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_params_todo(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    dgamma = torch.zeros_like(gamma)  # TODO
    dbeta = torch.zeros_like(gamma)  # TODO
    return dx, dgamma, dbeta


def bw_means_reduced(dout, cache, all_reduce):
    """Correct: each rank divides by N before the all-reduce (a sum of shares of the means)."""
    x_hat, rho, gamma, count = cache
    mean_dy, mean_dy_xhat = all_reduce(torch.stack([dout, dout * x_hat]).sum(1) / count)
    dx = (gamma * rho) * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, torch.einsum("nc,nc->c", dout, x_hat), dout.sum(0)


# ---- capstone ------------------------------------------------------------------------------


def cap_fw_eps_momentum_swapped(x, gamma, beta, running_mean, running_var, all_reduce, momentum=0.1, eps=1e-5):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


@notebook
def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    # reuse section 2 for the output and the running statistics
    out, (x_hat, invstd, gamma, count) = sync_batchnorm_forward(
        x, gamma, beta, all_reduce, eps, running_mean, running_var, momentum)
    mean = all_reduce(x.sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        var = all_reduce(((x - mean) ** 2).sum(0)) / count
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    return out, (x, gamma, mean, invstd, count)


cap_fw_running_twice = sync_bn_forward
del sync_bn_forward


def cap_fw_sum_saved_as_mean(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    total = all_reduce(x.sum(0))
    mean = total / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, total, invstd, count)


def cap_bw_statistics_constant(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    with torch.enable_grad():
        xr = x.detach().requires_grad_()
        gr = gamma.detach().requires_grad_()
        br = torch.zeros_like(gamma, requires_grad=True)
        out = gr * (xr - mean) * invstd + br  # the forward again, autograd does the rest
        dx, dgamma, dbeta = torch.autograd.grad(out, (xr, gr, br), dout)
    return dx, dgamma, dbeta, None, None


@notebook
def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    # sections 2 and 3 reused; one more all-reduce for the mean the backward pass needs
    out, (x_hat, invstd, gamma, count) = sync_batchnorm_forward(
        x, gamma, beta, all_reduce, eps, running_mean, running_var, momentum)
    mean = all_reduce(x.sum(0)) / count
    return out, (x, gamma, mean, invstd, count)


cap_fw_reuse = sync_bn_forward
del sync_bn_forward


@notebook
def sync_bn_backward(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    dx, dgamma, dbeta = sync_batchnorm_backward(dout, ((x - mean) * invstd, invstd, gamma, count), all_reduce)
    return dx, dgamma, dbeta, None, None


cap_bw_reuse = sync_bn_backward
del sync_bn_backward


# ---- merge_running_stats -------------------------------------------------------------------


def mg_between_weighted_by_total(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = total * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_precedence(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / total - 1
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_eval_mode(model, all_reduce, count):
    model.eval()  # the merged statistics are for evaluation
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_3d_not_done(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        elif isinstance(bn, nn.modules.batchnorm._BatchNorm):
            raise NotImplementedError(f"TODO: {type(bn).__name__}")


ENTRIES = [
    entry(FW, "variance pooled over the channels", fw_var_pooled_over_channels,
          "sums the squared deviations over every channel (.sum() without dim) and divides by N * C, so "
          "all channels share one variance instead of each having its own."),
    entry(FW, "Chan merge with var_mean's unbiased default", fw_chan_unbiased_var_mean,
          "merges per-rank torch.var_mean, whose default is the unbiased variance, via (n_r - 1) * var_r: "
          "right for ranks of 2 or more examples, NaN for a rank that holds one example."),
    entry(FW, "normalises with the running statistics when given", fw_normalised_with_running,
          "after updating the running statistics, normalises with them (as in eval mode) instead of the "
          "batch's statistics whenever running_mean and running_var are given."),
    entry(FW, "eps as a floor on the variance", fw_eps_as_floor,
          "uses rsqrt(var.clamp(min=eps)) (eps as a lower bound) instead of 1/sqrt(var + eps)."),
    entry(FW, "running_mean updated with the global sum", fw_running_mean_from_sum,
          "updates running_mean with the all-reduced sum (total) instead of the mean total / N (a variable "
          "mix-up); the output and running_var are right."),
    entry(FW, "count from torch.tensor(x.shape)", fw_count_from_shape,
          "builds the count from torch.tensor(x.shape) (n_r and C) instead of x.shape[0], so the division "
          "by the 2-element count fails to broadcast (or mixes N and W * C) unless C == 2."),
    entry(BW, "mean(dout) in the x_hat term", bw_mean_dy_in_xhat_term,
          "the last term of dx uses x_hat * mean(dout) instead of x_hat * mean(dout * x_hat) (the wrong "
          "variable)."),
    entry(BW, "mean(dout) term left out of dx", bw_mean_term_dropped,
          "dx = gamma * rho * (dout - x_hat * mean(dout * x_hat)): the term - mean(dout) is left out."),
    entry(BW, "cached x_hat scaled in place", bw_xhat_scaled_in_place,
          "multiplies the cached x_hat in place by mean(dout * x_hat) (x_hat *= ...), so dgamma is summed "
          "with the scaled x_hat and the caller's cache is changed (dx is right)."),
    entry(BW, "parameter gradients left as zeros (TODO)", bw_params_todo,
          "unfinished: dx is right, but dgamma and dbeta are returned as zeros (a TODO) instead of this "
          "rank's sums."),
    entry(CAP, "eps and momentum swapped in the signature", cap_fw_eps_momentum_swapped,
          "declares (..., all_reduce, momentum=0.1, eps=1e-5) while the given Function passes (..., "
          "all_reduce, eps, momentum) positionally, so eps receives the momentum and momentum the eps.",
          replaces=CAP_FW),
    entry(CAP, "section 2 reused, running statistics updated again", cap_fw_running_twice,
          "reuses sync_batchnorm_forward with the running statistics (which updates them) and then updates "
          "them again itself, so the momentum step is taken twice.", replaces=CAP_FW),
    entry(CAP, "the global sum saved as the mean", cap_fw_sum_saved_as_mean,
          "saves the all-reduced sum (total) in the mean's slot instead of the mean (a variable mix-up); the "
          "output and the running statistics are right, the backward recomputes x_hat from the sum.",
          replaces=CAP_FW),
    entry(CAP, "statistics treated as constants in the backward", cap_bw_statistics_constant,
          "recomputes the forward from the saved tensors and lets autograd differentiate it with the mean "
          "and invstd as constants, so dx = gamma * invstd * dout misses the terms through the batch "
          "statistics.", replaces=CAP_BW),
    entry(MG, "between-rank term weighted by the total count", mg_between_weighted_by_total,
          "weights each rank's squared gap (mu_r - mu)^2 by the total count N instead of its own count n_r."),
    entry(MG, "precedence: / total - 1", mg_precedence,
          "writes all_reduce(...) / total - 1, which divides by N and then subtracts 1, instead of "
          "dividing by (N - 1)."),
    entry(MG, "model switched to eval mode", mg_eval_mode,
          "calls model.eval() at the start (the merged statistics being for evaluation), which changes the "
          "mode of a model that was training; the statistics are right."),
    entry(MG, "BatchNorm3d and SyncBatchNorm left as NotImplementedError", mg_3d_not_done,
          "unfinished: merges BatchNorm1d and BatchNorm2d but raises NotImplementedError for the other "
          "batch-norm layers (BatchNorm3d, SyncBatchNorm)."),
    right(FW, "count per channel from ones_like, one stacked round, lerp_, addcmul", fw_count_per_channel),
    right(BW, "means all-reduced (each rank divides by N first), einsum", bw_means_reduced),
    right(CAP, "sections 2 and 3 reused, one more all-reduce for the mean", cap_fw_reuse,
          replaces=CAP_FW, given={CAP_BW: cap_bw_reuse}),
]
