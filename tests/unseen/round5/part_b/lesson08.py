"""Held-out answers (fifth set, part b), lesson 08:

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


def fw_always_updates(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_truthiness(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_count_from_shape1(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[1])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_keras_eps(x, gamma, beta, all_reduce, eps=1e-3, running_mean=None, running_var=None, momentum=0.1):
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


def fw_cache_order(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, gamma, rho, count)


# ---- backward -----------------------------------------------------------------------


def bw_dgamma_times_gamma(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, gamma * (dout * x_hat).sum(0), dout.sum(0)


def bw_reduced_twice(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dy = all_reduce(dout.sum(0))
    dy_xhat = all_reduce((dout * x_hat).sum(0))
    sums = all_reduce(torch.stack([dy, dy_xhat]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_five_outputs(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def bw_gamma_on_dout_only(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = rho * (gamma * dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_list_to_all_reduce(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    mean_dy, mean_dy_xhat = all_reduce([dout.sum(0), (dout * x_hat).sum(0)])  # one round for both
    mean_dy, mean_dy_xhat = mean_dy / count, mean_dy_xhat / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- merge_running_stats ------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_int_to_all_reduce(model, all_reduce, count):
    total = all_reduce(count)
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_mean_scaled_in_place(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(bn.running_mean.mul_(count)) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_stds_pooled(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        std = all_reduce((count - 1) * bn.running_var.sqrt()) / (total - 1)  # pool the spreads
        between = all_reduce(count * (bn.running_mean - mean) ** 2) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(std**2 + between)


def mg_between_over_total(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = all_reduce((count - 1) * bn.running_var) / (total - 1)
        between = all_reduce(count * (bn.running_mean - mean) ** 2) / total  # variance of the means
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(within + between)


# ---- capstone -----------------------------------------------------------------------


def cap_returns_out_only(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta


def cap_saves_gamma_invstd(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    scale = gamma / torch.sqrt(var + eps)  # one multiply instead of two
    return (x - mean) * scale + beta, (x, gamma, mean, scale, count)


def cap_bw_unpack_order(saved, dout, all_reduce):
    x, mean, gamma, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_float32(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    dout = dout.float()  # the layer's default dtype
    x_hat = ((x - mean) * invstd).float()
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count.float()
    dx = gamma.float() * invstd.float() * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_x_centred_in_place(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x -= mean
    x_hat = x * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


# ---- correct alternatives -----------------------------------------------------------


def fw_square_addcmul(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    """Correct: torch.square for the deviations, addcmul for the affine map,
    running statistics updated with mul_/add_(alpha=)."""
    n = x.new_full((1,), x.size(0))
    count = all_reduce(n)
    mean = all_reduce(torch.sum(x, dim=0)) / count
    var = all_reduce(torch.square(x - mean).sum(dim=0)) / count
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), alpha=momentum)
    rho = (var + eps).rsqrt()
    x_hat = (x - mean) * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


def cap_right_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    """Correct (capstone forward): moments in float64, cast back."""
    x64 = x.double()
    count = all_reduce(torch.tensor([float(len(x))], dtype=x.dtype)).to(x.dtype)
    mean = (all_reduce(x64.sum(0).to(x.dtype)).double() / count.double())
    var = all_reduce(((x64 - mean) ** 2).sum(0).to(x.dtype)).double() / count.double()
    mean, var = mean.to(x.dtype), var.to(x.dtype)
    with torch.no_grad():
        running_mean.copy_((1 - momentum) * running_mean + momentum * mean)
        running_var.copy_((1 - momentum) * running_var + momentum * var * count / (count - 1))
    invstd = torch.rsqrt(var + eps)
    return gamma * ((x - mean) * invstd) + beta, (x, gamma, mean, invstd, count)


def cap_right_backward(saved, dout, all_reduce):
    """Correct (capstone backward): x_hat's gradient staged, then projected."""
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    g = dout * gamma
    totals = all_reduce(torch.stack([g.sum(0), (g * x_hat).sum(0)]))
    dx = invstd * (g - totals[0] / count - x_hat * totals[1] / count)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


ENTRIES = [
    entry(FW, "running statistics updated unconditionally", fw_always_updates,
          "updates running_mean and running_var without checking that they were given, so a call without them "
          "fails on None (AttributeError in the learner's code)."),
    entry(FW, "`if running_mean:` as the presence test", fw_truthiness,
          "tests `if running_mean:` instead of `is not None`: a tensor of several channels raises RuntimeError "
          "(ambiguous truth value), and one channel of value 0 is skipped."),
    entry(FW, "count from x.shape[1]", fw_count_from_shape1,
          "counts x.shape[1] (the channels) per rank instead of x.shape[0] (the examples): right only when n_r == C."),
    entry(FW, "default eps 1e-3", fw_keras_eps,
          "the default eps is 1e-3 (Keras's) instead of 1e-5: wrong whenever eps is not passed."),
    entry(FW, "cache as (x_hat, gamma, rho, count)", fw_cache_order,
          "returns the cache in the order (x_hat, gamma, rho, count) instead of (x_hat, rho, gamma, count)."),
    entry(BW, "dgamma multiplied by gamma", bw_dgamma_times_gamma,
          "returns gamma * sum(dout * x_hat) as dgamma instead of sum(dout * x_hat)."),
    entry(BW, "sums all-reduced twice", bw_reduced_twice,
          "all-reduces the two sums, then all-reduces their stack again: the global sums multiplied by the number "
          "of ranks (right only for one rank)."),
    entry(BW, "five outputs as in the capstone", bw_five_outputs,
          "returns (dx, dgamma, dbeta, None, None), the capstone's backward, instead of the three gradients."),
    entry(BW, "gamma only on dout in dx", bw_gamma_on_dout_only,
          "dx = rho * (gamma * dout - mean_dy - x_hat * mean_dy_xhat): gamma multiplies only the first term "
          "instead of the whole bracket."),
    entry(BW, "a list passed to all_reduce", bw_list_to_all_reduce,
          "passes a Python list of the two sums to all_reduce instead of one stacked tensor."),
    entry(MG, "count passed to all_reduce as a Python int", mg_int_to_all_reduce,
          "all-reduces the Python int count itself instead of a tensor holding it."),
    entry(MG, "running_mean scaled in place", mg_mean_scaled_in_place,
          "all-reduces bn.running_mean.mul_(count), which scales the buffer in place, so the between-rank term uses "
          "count * mean instead of the rank's mean (the merged mean is right, the variance wrong)."),
    entry(MG, "standard deviations pooled", mg_stds_pooled,
          "pools the standard deviations (sum (n_r - 1) std_r / (N - 1), squared) instead of the variances."),
    entry(MG, "between-rank term over N", mg_between_over_total,
          "divides the within-rank sum by N - 1 but the between-rank sum by N: the between term is too small by "
          "(N - 1)/N."),
    entry(CAP, "forward returns only the output", cap_returns_out_only,
          "returns out alone instead of (out, saved), so nothing is saved for backward.", replaces=CAP_FW),
    entry(CAP, "gamma * invstd saved as invstd", cap_saves_gamma_invstd,
          "saves the folded scale gamma / sqrt(var + eps) in the invstd slot, so backward multiplies by gamma twice.",
          replaces=CAP_FW),
    entry(CAP, "saved tensors unpacked with mean and gamma swapped", cap_bw_unpack_order,
          "unpacks saved as (x, mean, gamma, invstd, count) instead of (x, gamma, mean, invstd, count).",
          replaces=CAP_BW),
    entry(CAP, "backward computed in float32", cap_bw_float32,
          "casts dout and x_hat to float32, so a float64 layer gets float32 gradients (wrong dtype and precision).",
          replaces=CAP_BW),
    entry(CAP, "saved x centred in place", cap_bw_x_centred_in_place,
          "x -= mean in backward changes the saved x in place: right once, wrong (or refused by autograd) on a "
          "second backward.", replaces=CAP_BW),
    right(FW, "torch.square, rsqrt, addcmul, add_(alpha=)", fw_square_addcmul),
    right(CAP, "float64 moments cast back; staged g = dout * gamma backward", cap_right_forward, replaces=CAP_FW,
          given={CAP_BW: cap_right_backward}),
]
