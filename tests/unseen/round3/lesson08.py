"""Held-out answers (third set), lesson 08, CURRENT signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)  (this rank's share)
merge_running_stats(model, all_reduce, count)  (in place)
"""

import torch
from torch import nn

from _format import entry, right

FW, BW, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


def _finish(x, gamma, beta, mean, var, count, eps):
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- forward ------------------------------------------------------------------------


def fw_running_var_biased(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var)
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_running_var_rank_count(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        n = x.shape[0]
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_running_reassigned(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_keras_momentum(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(momentum).add_((1 - momentum) * mean)
            running_var.mul_(momentum).add_((1 - momentum) * var * count / (count - 1))
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_running_local_stats(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * x.mean(0))  # "this rank's buffers"
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_no_affine(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return x_hat, (x_hat, rho, gamma, count)


def fw_cache_rank_count(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    out, (x_hat, rho, gamma, _) = _finish(x, gamma, beta, mean, var, count, eps)
    return out, (x_hat, rho, gamma, x.shape[0])  # "the count of this slice"


def fw_momentum_ignored(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(0.9).add_(0.1 * mean)
            running_var.mul_(0.9).add_(0.1 * var * count / (count - 1))
    return _finish(x, gamma, beta, mean, var, count, eps)


# ---- backward -------------------------------------------------------------------------


def bw_dgamma_mean(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0) / count, dout.sum(0) / count


def bw_rho_missing(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_returns_dbeta_first(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, dout.sum(0), (dout * x_hat).sum(0)


def bw_unpacked_swapped(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy_xhat, mean_dy = sums / count  # rows in the other order
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_dx_over_count(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat) / count
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_dout_centred_in_place(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    sums = all_reduce(torch.stack([dbeta, dgamma]))
    mean_dy, mean_dy_xhat = sums / count
    dout -= mean_dy  # the caller's dout
    dout -= x_hat * mean_dy_xhat
    return gamma * rho * dout, dgamma, dbeta


def bw_dgamma_from_centred(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat / rho).sum(0), dout.sum(0)  # "the centred input"


# ---- merge_running_stats ------------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_counts_ignored(model, all_reduce, count):
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(bn.running_mean) / world
        var = all_reduce(bn.running_var + (bn.running_mean - mean) ** 2) / world
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_within_biased(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = count * bn.running_var  # running_var read as biased
        between = count * (bn.running_mean - mean) ** 2
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(all_reduce(within + between) / (total - 1))


def mg_over_total(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(all_reduce(within + between) / total)


def mg_total_not_reduced(model, all_reduce, count):
    total = float(count)  # "the count"
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(all_reduce(within + between) / (total - 1))


def mg_buffers_replaced(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean = mean  # a new tensor (float64), not the buffer updated in place
        bn.running_var = var


def mg_between_unweighted(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = (bn.running_mean - mean) ** 2  # not weighted by the count
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(all_reduce(within + between) / (total - 1))


def mg_first_layer_only(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(all_reduce(within + between) / (total - 1))
        return  # indented one level too deep


def mg_children_only(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.children():  # top-level modules only
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(all_reduce(within + between) / (total - 1))


# ---- correct alternatives -------------------------------------------------------------------


def fw_chan(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    """Correct: the rank's own mean and M2 merged with Chan's formula (two rounds),
    float64 statistics, running update with lerp_."""
    n_r = x.shape[0]
    x64 = x.double()
    local_mean = x64.mean(0)
    count = all_reduce(torch.tensor([float(n_r)], dtype=torch.float64))
    mean = all_reduce(local_mean * n_r) / count
    m2 = all_reduce(((x64 - local_mean) ** 2).sum(0) + n_r * (local_mean - mean) ** 2)
    var = m2 / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((m2 / (count - 1)).to(running_var.dtype), momentum)
    rho = torch.rsqrt(var + eps).to(x.dtype)
    x_hat = (x - mean.to(x.dtype)) * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count.to(x.dtype))


def bw_n_form(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dbeta = dout.sum(0)
    dgamma = (dout * x_hat).sum(0)
    total_b = all_reduce(dbeta)
    total_g = all_reduce(dgamma)
    dx = (gamma * rho / count) * (count * dout - total_b - x_hat * total_g)
    return dx, dgamma, dbeta


def mg_all_layers_at_once(model, all_reduce, count):
    """Correct: every layer's statistics in one tensor, two all-reduces in all."""
    bns = _bns(model)
    if not bns:
        return
    c = float(count)
    means = torch.cat([bn.running_mean.double() for bn in bns])
    variances = torch.cat([bn.running_var.double() for bn in bns])
    first = all_reduce(torch.cat([torch.tensor([c], dtype=torch.float64), c * means]))
    total, mean = first[0], first[1:] / first[0]
    var = all_reduce((c - 1) * variances + c * (means - mean) ** 2) / (total - 1)
    start = 0
    for bn in bns:
        k = bn.running_mean.numel()
        bn.running_mean.copy_(mean[start:start + k])
        bn.running_var.copy_(var[start:start + k])
        start += k


ENTRIES = [
    entry(FW, "running_var from the biased variance", fw_running_var_biased,
          "updates running_var with the biased variance instead of the unbiased one (var * N/(N - 1), N the global count)."),
    entry(FW, "running_var's Bessel factor from the rank's count", fw_running_var_rank_count,
          "the unbiased correction of running_var uses this rank's n_r/(n_r - 1) instead of the global N/(N - 1) (infinite on a rank with one example)."),
    entry(FW, "running statistics reassigned, not updated in place", fw_running_reassigned,
          "assigns new tensors to the local names running_mean and running_var instead of updating the caller's tensors in place, so the running statistics never change."),
    entry(FW, "Keras momentum in the running update", fw_keras_momentum,
          "updates the running statistics as momentum * old + (1 - momentum) * batch, so the batch gets weight 1 - momentum."),
    entry(FW, "running_mean from this rank's mean", fw_running_local_stats,
          "updates running_mean with this rank's own mean x.mean(0) instead of the global mean (the running variance is right)."),
    entry(FW, "gamma and beta not applied", fw_no_affine,
          "returns x_hat instead of gamma * x_hat + beta."),
    entry(FW, "cache holds this rank's count", fw_cache_rank_count,
          "the forward output is right, but the cache stores this rank's n_r instead of the global count N, so the backward pass divides the all-reduced sums by n_r.",
          test=BW),
    entry(FW, "momentum argument ignored", fw_momentum_ignored,
          "ignores the momentum argument and always uses 0.1 in the running update."),
    entry(BW, "dgamma and dbeta divided by N", bw_dgamma_mean,
          "returns dgamma and dbeta divided by the global count N (means) instead of this rank's sums."),
    entry(BW, "rho missing from dx", bw_rho_missing,
          "leaves the factor rho = 1/sqrt(var + eps) out of dx."),
    entry(BW, "returns (dx, dbeta, dgamma)", bw_returns_dbeta_first,
          "returns dbeta before dgamma instead of (dx, dgamma, dbeta)."),
    entry(BW, "all-reduced rows unpacked in the wrong order", bw_unpacked_swapped,
          "unpacks the stacked all-reduced sums in the wrong order, so mean(dout) and mean(dout * x_hat) trade places in dx."),
    entry(BW, "dx divided by N", bw_dx_over_count,
          "divides dx by the global count N once more."),
    entry(BW, "dout changed in place", bw_dout_centred_in_place,
          "subtracts the two means from dout in place, changing the caller's dout (dx itself is right)."),
    entry(BW, "dgamma from the centred input", bw_dgamma_from_centred,
          "dgamma sums dout * (x - mean) (x_hat / rho) instead of dout * x_hat."),
    entry(MG, "counts ignored (equal weights)", mg_counts_ignored,
          "weights every rank equally (1/W, with the biased law of total variance) instead of by its count, wrong when ranks saw different amounts of data."),
    entry(MG, "running_var read as biased", mg_within_biased,
          "takes the within-rank squared deviations as count * running_var instead of (count - 1) * running_var (running_var is unbiased)."),
    entry(MG, "divides by N instead of N - 1", mg_over_total,
          "divides the total squared deviations by N instead of N - 1, so the merged variance is biased."),
    entry(MG, "total count not all-reduced", mg_total_not_reduced,
          "uses this rank's count as the total instead of all-reducing it, so the merged mean and variance are W times too large (about)."),
    entry(MG, "buffers replaced by new tensors", mg_buffers_replaced,
          "assigns new tensors to bn.running_mean and bn.running_var (float64) instead of copying into the buffers in place, so their dtype changes and any reference to the old buffers keeps the old values."),
    entry(MG, "between-rank term not weighted by count", mg_between_unweighted,
          "adds (mu_r - mu)^2 for each rank instead of count * (mu_r - mu)^2."),
    entry(MG, "only the first layer merged", mg_first_layer_only,
          "returns inside the loop after the first batch-norm layer, so the other layers keep per-rank statistics."),
    entry(MG, "top-level layers only", mg_children_only,
          "walks model.children() instead of model.modules(), so batch-norm layers inside nested modules are not merged."),
    right(FW, "Chan merge in float64, lerp_", fw_chan),
    right(BW, "two all-reduces, N * dout form", bw_n_form),
    right(MG, "all layers in one tensor", mg_all_layers_at_once),
]
