"""Held-out answers (twenty-second set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 21.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_all_reduce_as_average(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.mean(0))  # every rank's mean, all-reduced: the global mean (as lax.pmean / Horovod)
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_norm_not_squared(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                        momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    # sum of the squared deviations per channel
    var = all_reduce(torch.linalg.vector_norm(x - mean, dim=0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_f_batch_norm_eval_without_eps(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
                                     running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    # the library normalises with the whole batch's statistics (eval mode: uses the ones given)
    out = F.batch_norm(x, mean, var, gamma, beta, training=False)
    return out, (x_hat, rho, gamma, count)


def fw_shift_per_rank(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                      momentum=0.1):
    c = x.shape[1]
    shift = x[0]  # shifted data: the sum of squares no longer cancels at large means
    d = x - shift
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    stats = all_reduce(torch.cat([n, d.sum(0), (d * d).sum(0)]))  # one round
    count, s1, s2 = stats[:1], stats[1:c + 1], stats[c + 1:]
    mean = shift + s1 / count
    var = s2 / count - (s1 / count) ** 2
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_first_sum_not_divided(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sum_dy, sum_dy_xhat = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    dx = gamma * rho * (dout - sum_dy - x_hat * sum_dy_xhat / count)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_staged_rho_power(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    xmu = x_hat / rho  # x - mean
    dxhat = dout * gamma
    sums = all_reduce(torch.stack([dxhat.sum(0), (dxhat * xmu).sum(0)]))
    dvar = -0.5 * sums[1] * rho ** 1.5  # (var + eps) ** -1.5
    dmean = -rho * sums[0]  # the term dvar * mean(-2 (x - mean)) is 0 over the whole batch
    dx = dxhat * rho + dvar * 2.0 * xmu / count + dmean / count
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_second_sum_over_channels(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(1)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_right_builtin_sum_vstack(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    s_dy = sum(dout)  # Python's sum over the rows: a (C,) tensor
    s_dy_xhat = sum(dout * x_hat)
    tot_dy, tot_dy_xhat = all_reduce(torch.vstack((s_dy, s_dy_xhat))).unbind(0)
    dx = (gamma * rho / count) * (count * dout - tot_dy - x_hat * tot_dy_xhat)
    return dx, s_dy_xhat, s_dy


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_math_sqrt(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / math.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_moving_average_sign(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():  # TF's assign_moving_average: variable -= (1 - decay) * (variable - value)
        running_mean.sub_(momentum * (mean - running_mean))
        running_var.sub_(momentum * (var * count / (count - 1) - running_var))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_torch_formula_with_xhat(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    # torch/nn/modules/_functions.py (batch_norm_backward_elemt):
    # (dy - mean_dy - xmu * invstd ** 2 * mean_dy_xmu) * invstd * weight
    dx = (dout - mean_dy - x_hat * invstd ** 2 * mean_dy_xhat) * invstd * gamma
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_bw_xhat_in_place_on_saved_x(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = x.sub_(mean).mul_(invstd)  # no copy of x needed
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_right_channels_last_flat(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                    momentum=0.1):
    c = x.shape[1]
    flat = x.movedim(1, -1).reshape(-1, c)  # (values per channel, C), for BatchNorm1d/2d/3d inputs
    count = all_reduce(flat.new_tensor([flat.shape[0]]))
    mean = all_reduce(flat.sum(0)) / count
    var = all_reduce((flat - mean).square().sum(0)) / count
    with torch.no_grad():
        running_mean.lerp_(mean.to(running_mean.dtype), momentum)
        running_var.lerp_((var * count / (count - 1)).to(running_var.dtype), momentum)
    invstd = torch.rsqrt(var + eps)
    shape = (1, c) + (1,) * (x.dim() - 2)
    out = (x - mean.view(shape)) * (gamma * invstd).view(shape) + beta.view(shape)
    return out, (x, gamma, mean, invstd, count)


def cap_bw_right_channels_last_flat(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.dim() - 2)
    x_hat = (x - mean.view(shape)) * invstd.view(shape)
    dims = [d for d in range(x.dim()) if d != 1]
    local = torch.stack([dout.sum(dims), (dout * x_hat).sum(dims)])
    mean_dy, mean_dy_xhat = all_reduce(local) / count
    dx = (gamma * invstd).view(shape) * (dout - mean_dy.view(shape) - x_hat * mean_dy_xhat.view(shape))
    return dx, local[1], local[0], None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_count_inside_square(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = (count * (bn.running_mean - mean)) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_legacy_tensor_constructor(model, all_reduce, count):
    total = all_reduce(torch.Tensor(count))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_layers_cached_on_function(model, all_reduce, count):
    layers = getattr(mg_layers_cached_on_function, "layers", None)
    if layers is None:  # find the BN layers once, not on every call
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        mg_layers_cached_on_function.layers = layers
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in layers:
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong
    entry(FW, "all_reduce of the ranks' means taken as the global mean", fw_all_reduce_as_average,
          "all-reduces each rank's x.mean(0) as if all_reduce averaged over the ranks (lax.pmean / Horovod "
          "habit), but it sums, so the mean is the sum of the ranks' means instead of all_reduce(x.sum(0)) / N."),
    entry(FW, "vector_norm of the deviations not squared", fw_norm_not_squared,
          "uses torch.linalg.vector_norm(x - mean, dim=0) for the sum of squared deviations but forgets to "
          "square it, so the variance is built from the ranks' norms (square roots of their sums of squares)."),
    entry(FW, "F.batch_norm in eval mode without eps=eps", fw_f_batch_norm_eval_without_eps,
          "computes the output with F.batch_norm(x, mean, var, gamma, beta, training=False) but does not "
          "pass eps=eps, so the default 1e-5 is used whatever eps is given (right only at the default eps)."),
    entry(FW, "shifted one-round moments with each rank's own shift", fw_shift_per_rank,
          "computes the variance in one round from data shifted by this rank's first example x[0], but the "
          "shift differs from rank to rank, so the all-reduced shifted sums mix shifts and the mean and "
          "variance are wrong (the shift must be the same on every rank)."),
    # sync_batchnorm_backward: 3 wrong, 1 correct
    entry(BW, "sum of dout not divided by N in dx", bw_first_sum_not_divided,
          "subtracts the all-reduced sum of dout instead of its mean (forgets to divide it by N; the second "
          "sum is divided), so dx is wrong (dgamma and dbeta are right)."),
    entry(BW, "staged backward with rho ** 1.5 for (var + eps) ** -1.5", bw_staged_rho_power,
          "in the staged backward writes (var + eps) ** -1.5 as rho ** 1.5, but rho = (var + eps) ** -0.5, so "
          "it is rho ** 3; dvar and hence dx are wrong (dgamma and dbeta are right)."),
    entry(BW, "second sum over the channels (sum(1))", bw_second_sum_over_channels,
          "sums dout * x_hat over axis 1 (the channels, one value per example) instead of axis 0, so the "
          "stacked tensor to all-reduce is malformed (its two rows differ in length and the ranks' shapes "
          "differ)."),
    right(BW, "Python's sum over the rows, vstack and unbind, N * dout form", bw_right_builtin_sum_vstack),
    # sync_bn_layer: 4 wrong, 1 correct
    entry(CAP, "invstd with math.sqrt", cap_fw_math_sqrt, replaces=CAP_FW,
          cause="computes invstd = 1 / math.sqrt(var + eps), the scalar formula, which cannot take a tensor of "
          "C channels (ValueError); torch.sqrt or rsqrt is needed."),
    entry(CAP, "TF moving average with the difference reversed", cap_fw_moving_average_sign, replaces=CAP_FW,
          cause="updates the buffers with TF's form running -= momentum * (...) but writes the difference as "
          "(batch - running) instead of (running - batch), so the running statistics move away from the "
          "batch's (the output and the saved tensors are right)."),
    entry(CAP, "PyTorch's invstd ** 2 kept with the x_hat sum", cap_bw_torch_formula_with_xhat,
          replaces=CAP_BW,
          cause="copies PyTorch's dx formula, whose last term is (x - mean) * invstd ** 2 * mean(dout * (x - mean)), "
          "but with x_hat and mean(dout * x_hat) in it, so the last term carries an extra invstd ** 2 (dgamma "
          "and dbeta are right)."),
    entry(CAP, "x_hat computed in place on the saved x", cap_bw_xhat_in_place_on_saved_x, replaces=CAP_BW,
          cause="computes x_hat with x.sub_(mean).mul_(invstd), in place on the saved input, so the layer's "
          "input x (and the saved tensor) is overwritten by x_hat: this call's gradients are right but x is "
          "changed for the caller and a second backward from the same saved tensors is wrong."),
    right(CAP, "channels moved last and flattened (any BN input), lerp_, rsqrt, view(1, C, ...)",
          cap_fw_right_channels_last_flat, replaces=CAP_FW, given={CAP_BW: cap_bw_right_channels_last_flat}),
    # merge_running_stats: 3 wrong
    entry(MG, "count inside the square of the between-rank term", mg_count_inside_square,
          "writes the between-rank term as (count * (running_mean - mean)) ** 2 instead of "
          "count * (running_mean - mean) ** 2, so it is weighted by count squared (the mean is right)."),
    entry(MG, "torch.Tensor(count) for the total count", mg_legacy_tensor_constructor,
          "builds the count with torch.Tensor(count), the legacy constructor, which makes an uninitialised "
          "tensor of count elements instead of the one number count (torch.tensor([float(count)])), so the "
          "ranks all-reduce tensors of different lengths."),
    entry(MG, "BN layers cached on the function at the first call", mg_layers_cached_on_function,
          "caches the list of BN layers on the function at its first call and reuses it on every later call, "
          "so later calls (and the other ranks' calls) merge the first model's layers and leave their own "
          "model's statistics alone."),
]
