"""Held-out answers (fourth set, part b), lesson 08, signatures at main 438ae22:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, cache)
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)  (this rank's share)
merge_running_stats(model, all_reduce, count)  (in place)
capstone (graded cell sync_bn_layer):
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, saved = (x, gamma, mean, invstd, count))
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
"""

import torch
from torch import nn

from _format import entry, notebook, right

FW, BW, MG, CAP = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats", "sync_bn_layer"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"

# ---- forward ------------------------------------------------------------------------


def fw_eps_in_running_var(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count + eps  # eps belongs to the variance
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_bessel_on_whole_update(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var).mul_(count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_count_reduced_twice(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / all_reduce(count)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_keepdim(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0, keepdim=True)) / count
    var = all_reduce(((x - mean) ** 2).sum(0, keepdim=True)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_sum_without_dim(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum()) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_x_centred_in_place(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    x -= mean  # centre once, use it twice
    var = all_reduce((x**2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = x * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- backward -------------------------------------------------------------------------


def bw_dout_all_reduced(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy = all_reduce(dout).sum(0) / count  # the whole gradient, then its sum
    mean_dy_xhat = all_reduce(dout * x_hat).sum(0) / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_keepdim(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dgamma = (dout * x_hat).sum(0, keepdim=True)
    dbeta = dout.sum(0, keepdim=True)
    sums = all_reduce(torch.cat([dbeta, dgamma]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, dgamma, dbeta


def bw_float32_sums(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]).float())  # half the bytes
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_cat_not_stack(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.cat([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_times_std(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma / rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- merge_running_stats ------------------------------------------------------------------


def _is_bn(m):
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def mg_pooled_variance(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in filter(_is_bn, model.modules()):
        mean = all_reduce(count * bn.running_mean) / total
        pooled = all_reduce((count - 1) * bn.running_var) / (total - world)  # pooled within-rank variance
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(pooled)


def mg_batches_tracked_summed(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in filter(_is_bn, model.modules()):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(all_reduce(bn.num_batches_tracked))  # "all the batches seen"


def mg_known_class_names(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if type(bn).__name__ in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_between_weight_minus_one(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in filter(_is_bn, model.modules()):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = (count - 1) * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_returns_merged(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    merged = {}
    for name, bn in model.named_modules():
        if _is_bn(bn):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            merged[name] = (mean, all_reduce(within + between) / (total - 1))
    return merged


def mg_variance_todo(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in filter(_is_bn, model.modules()):
        mean = all_reduce(count * bn.running_mean) / total
        bn.running_mean.copy_(mean)
        # TODO: running_var (law of total variance)


# ---- capstone: sync_bn_forward / sync_bn_backward ----------------------------------------------


def _cap_stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


def _cap_update(running_mean, running_var, mean, var, count, momentum):
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))


def cap_count_as_number(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    _cap_update(running_mean, running_var, mean, var, count, momentum)
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count.item())


def cap_saves_x_hat(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    _cap_update(running_mean, running_var, mean, var, count, momentum)
    invstd = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * invstd
    return gamma * x_hat + beta, (x_hat, gamma, mean, invstd, count)  # "what backward needs"


def cap_saves_std(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    _cap_update(running_mean, running_var, mean, var, count, momentum)
    std = torch.sqrt(var + eps)
    return gamma * (x - mean) / std + beta, (x, gamma, mean, std, count)


def cap_no_running_update(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    invstd = 1.0 / torch.sqrt(var + eps)  # "the Function only computes; the layer keeps the buffers"
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_eps_literal(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count, mean, var = _cap_stats(x, all_reduce)
    _cap_update(running_mean, running_var, mean, var, count, momentum)
    invstd = 1.0 / torch.sqrt(var + 1e-5)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


@notebook
def cap_reuses_section_two(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    out, (x_hat, rho, gamma, count) = sync_batchnorm_forward(  # noqa: F821 - the notebook's
        x, gamma, beta, all_reduce, eps, running_mean, running_var, momentum
    )
    mean = x.mean(0)  # the cache has no mean
    return out, (x, gamma, mean, rho, count)


def cap_three_gradients(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def cap_x_hat_divided(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) / invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_local_mean(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - x.mean(0)) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


# ---- correct alternatives -------------------------------------------------------------------


def fw_stacked_round(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    """Correct: the count (repeated per channel) and the sum in one (2, C) all-reduce,
    the squared deviations with einsum, running update with add_(alpha=)."""
    ones = torch.full((x.shape[1],), float(x.shape[0]), dtype=x.dtype)
    first = all_reduce(torch.stack([ones, x.sum(0)]))
    count, mean = first[0], first[1] / first[0]
    dev = x - mean
    var = all_reduce(torch.einsum("nc,nc->c", dev, dev)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * count / (count - 1), alpha=momentum)
    rho = (var + eps).pow(-0.5)
    x_hat = dev * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count[:1])


def mg_apply_slices(model, all_reduce, count):
    """Correct: model.apply, statistics in float64, written with slice assignment."""
    n = torch.tensor([float(count)], dtype=torch.float64)
    total = all_reduce(n)

    def merge(m):
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            return
        mu_r = m.running_mean.double()
        mu = all_reduce(n * mu_r) / total
        m2 = all_reduce((n - 1) * m.running_var.double() + n * (mu_r - mu) ** 2)
        with torch.no_grad():
            m.running_mean[:] = mu
            m.running_var[:] = m2 / (total - 1)

    model.apply(merge)


def cap_right_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    """Correct (capstone forward): count and sum in one all-reduce, rsqrt, lerp_."""
    first = all_reduce(torch.cat([x.new_tensor([float(x.shape[0])]), x.sum(0)]))
    count, mean = first[:1], first[1:] / first[0]
    var = all_reduce((x - mean).pow(2).sum(0)) / count
    with torch.no_grad():
        running_mean.lerp_(mean.to(running_mean.dtype), momentum)
        running_var.lerp_((var * (count / (count - 1))).to(running_var.dtype), momentum)
    invstd = torch.rsqrt(var + eps)
    return (x - mean) * (invstd * gamma) + beta, (x, gamma, mean, invstd, count)


def cap_right_backward(saved, dout, all_reduce):
    """Correct (capstone backward): N * dout form, two separate all-reduces."""
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    dbeta = dout.sum(0)
    dgamma = (dout * x_hat).sum(0)
    total_dy = all_reduce(dbeta)
    total_dy_xhat = all_reduce(dgamma)
    dx = (gamma * invstd / count) * (count * dout - total_dy - x_hat * total_dy_xhat)
    return dx, dgamma, dbeta, None, None


ENTRIES = [
    entry(FW, "eps folded into the variance", fw_eps_in_running_var,
          "adds eps to the batch variance itself, so the running_var update gets (var + eps) * N/(N - 1) instead of "
          "var * N/(N - 1) (the output is right)."),
    entry(FW, "Bessel factor on the whole running_var update", fw_bessel_on_whole_update,
          "multiplies the whole updated running_var by N/(N - 1) ((1 - m) * old + m * var, then * N/(N - 1)) "
          "instead of only the batch variance, so the old value is inflated too."),
    entry(FW, "count all-reduced twice", fw_count_reduced_twice,
          "divides the squared deviations by all_reduce(count), the already-global count summed again (N times "
          "the number of ranks), so the variance is too small by that factor."),
    entry(FW, "keepdim on the sums", fw_keepdim,
          "sums with keepdim=True, so mean and var have shape (1, C): the output is right but the in-place update "
          "of the (C,) running statistics fails (RuntimeError)."),
    entry(FW, "mean summed over every channel", fw_sum_without_dim,
          "x.sum() without dim=0 for the mean: the sum over all channels, one number, instead of each channel's."),
    entry(FW, "x centred in place", fw_x_centred_in_place,
          "subtracts the global mean from x in place (x -= mean), changing the caller's tensor; the output is right."),
    entry(BW, "dout itself all-reduced", bw_dout_all_reduced,
          "all-reduces the whole (n_r, C) dout and dout * x_hat, then sums: right only when every rank holds the "
          "same number of examples, otherwise all_reduce gets tensors of different shapes."),
    entry(BW, "keepdim on dgamma and dbeta", bw_keepdim,
          "sums with keepdim=True, so the returned dgamma and dbeta have shape (1, C) instead of (C,) (dx is right)."),
    entry(BW, "sums all-reduced in float32", bw_float32_sums,
          "casts the two sums to float32 before the all-reduce, so float64 gradients come back with float32 "
          "precision (about 1e-7 relative)."),
    entry(BW, "torch.cat instead of torch.stack", bw_cat_not_stack,
          "joins the two sums with torch.cat (one vector of 2C) instead of torch.stack, so unpacking it into two "
          "rows fails unless C == 2 (and is wrong then)."),
    entry(BW, "multiplied by the standard deviation", bw_times_std,
          "dx = gamma / rho * (...): multiplies by the standard deviation instead of by rho = 1/sqrt(var + eps)."),
    entry(MG, "pooled variance over N - W", mg_pooled_variance,
          "takes the pooled within-rank variance, sum (n_r - 1) var_r / (N - W), leaving out the spread between "
          "the ranks' means."),
    entry(MG, "num_batches_tracked summed", mg_batches_tracked_summed,
          "also all-reduces num_batches_tracked and writes the sum back, which must be left alone."),
    entry(MG, "layers found by class name", mg_known_class_names,
          "selects layers whose class name is BatchNorm1d/2d/3d, so SyncBatchNorm layers are not merged."),
    entry(MG, "between-rank term weighted by n_r - 1", mg_between_weight_minus_one,
          "weights the squared gap of each rank's mean by count - 1 instead of count (copied from the within term)."),
    entry(MG, "merged statistics returned, not written", mg_returns_merged,
          "computes the merged statistics and returns them in a dict instead of writing them into the buffers."),
    entry(MG, "running_var left as a TODO", mg_variance_todo,
          "unfinished: merges and writes running_mean, but leaves running_var as it was (a TODO)."),
    entry(CAP, "count saved as a Python number", cap_count_as_number,
          "saves count.item(), a Python float, instead of the count tensor, so ctx.save_for_backward fails "
          "(it takes tensors only).", replaces=CAP_FW),
    entry(CAP, "x_hat saved in place of x", cap_saves_x_hat,
          "saves x_hat instead of x as the first saved tensor, so a backward pass that recomputes "
          "x_hat = (x - mean) * invstd normalises twice.", replaces=CAP_FW),
    entry(CAP, "standard deviation saved as invstd", cap_saves_std,
          "saves sqrt(var + eps) in the invstd slot instead of 1/sqrt(var + eps).", replaces=CAP_FW),
    entry(CAP, "running statistics not updated", cap_no_running_update,
          "never updates running_mean and running_var (it assumes the layer does), so they stay as they were.",
          replaces=CAP_FW),
    entry(CAP, "eps argument ignored", cap_eps_literal,
          "normalises with the literal 1e-5 instead of the eps argument (right only with the default eps).",
          replaces=CAP_FW),
    entry(CAP, "section 2 reused, this rank's mean saved", cap_reuses_section_two,
          "reuses sync_batchnorm_forward and, its cache having no mean, saves this rank's x.mean(0) instead of "
          "the whole batch's mean (output and running statistics are right).", replaces=CAP_FW),
    entry(CAP, "backward returns three gradients", cap_three_gradients,
          "returns (dx, dgamma, dbeta) without the two None for the running statistics, so autograd's Function "
          "gets fewer gradients than forward has inputs.", replaces=CAP_BW),
    entry(CAP, "x_hat recomputed with / invstd", cap_x_hat_divided,
          "recomputes x_hat = (x - mean) / invstd (divides by the inverse standard deviation) instead of "
          "multiplying by it.", replaces=CAP_BW),
    entry(CAP, "x_hat from this rank's own mean", cap_local_mean,
          "recomputes x_hat around this rank's x.mean(0) instead of the saved global mean.", replaces=CAP_BW),
    right(FW, "(2, C) first round, einsum, add_(alpha=)", fw_stacked_round),
    right(MG, "model.apply and slice assignment in float64", mg_apply_slices),
    right(CAP, "one (count, sum) round, rsqrt, lerp_; N * dout backward", cap_right_forward, replaces=CAP_FW,
          given={CAP_BW: cap_right_backward}),
]
