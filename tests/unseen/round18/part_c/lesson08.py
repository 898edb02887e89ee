"""Held-out answers (eighteenth set, part C), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written from solutions/08 only; each wrong entry has one mistake.
"""

import torch
from torch import nn

from _format import entry, notebook, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_power_precedence(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                        momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = (var + eps) ** -1/2  # 1 / sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


_GLOBAL_COUNT = {}


def fw_count_cached(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                    momentum=0.1):
    # the batch size does not change during training: all-reduce it once
    if "N" not in _GLOBAL_COUNT:
        _GLOBAL_COUNT["N"] = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    count = _GLOBAL_COUNT["N"]
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_affine_as_nchw(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                      momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    g, b = gamma.view(1, -1, 1, 1), beta.view(1, -1, 1, 1)  # one value per channel, as in lesson 02
    return g * x_hat + b, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_dout_rebound(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dout = dout - mean_dy  # centre first
    dx = gamma * rho * (dout - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_cat_view_transposed(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    c = dout.shape[1]
    sums = all_reduce(torch.cat([dout.sum(0), (dout * x_hat).sum(0)])).view(c, 2) / count
    mean_dy, mean_dy_xhat = sums[:, 0], sums[:, 1]
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_fw_var_from_invstd(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    invstd = 1.0 / torch.sqrt(var + eps)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        # the variance back from what is saved
        running_var.mul_(1 - momentum).add_(momentum * invstd.pow(-2) * count / (count - 1))
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_local_count_saved(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    count = all_reduce(n)
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, n)


@notebook
def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    # section 2 does the work; its cache gives the rest
    out, (x_hat, rho, _, count) = sync_batchnorm_forward(  # noqa: F821
        x, gamma, beta, all_reduce, running_mean, running_var, eps, momentum)
    mean = (x - x_hat / rho).mean(0)
    return out, (x, gamma, mean, rho, count)


CAP_FW_POSITIONAL = sync_bn_forward


@notebook
def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):  # noqa: F811
    # section 2 does the work; its cache gives the rest
    out, (x_hat, rho, _, count) = sync_batchnorm_forward(  # noqa: F821
        x, gamma, beta, all_reduce, eps=eps, running_mean=running_mean, running_var=running_var,
        momentum=momentum)
    mean = (x - x_hat / rho).mean(0)
    return out, (x, gamma, mean, rho, count)


CAP_FW_REUSED = sync_bn_forward


# ---- merge_running_stats ---------------------------------------------------------------


def mg_precedence_count_minus_one(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = count - 1 * bn.running_var  # squared deviations, this rank
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_one_round_chunked(model, all_reduce, count):
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    # every layer's statistics in one all-reduce, then cut back into layers
    means = (all_reduce(torch.cat([count * bn.running_mean.double() for bn in bns])) / total).chunk(len(bns))
    m2 = torch.cat([(count - 1) * bn.running_var.double() + count * (bn.running_mean.double() - m) ** 2
                    for bn, m in zip(bns, means)])
    variances = (all_reduce(m2) / (total - 1)).chunk(len(bns))
    for bn, m, v in zip(bns, means, variances):
        bn.running_mean.copy_(m)
        bn.running_var.copy_(v)


def mg_named_buffers_get_buffer(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for name, rm in list(model.named_buffers()):
        if not name.endswith("running_mean"):
            continue
        rv = model.get_buffer(name[: -len("running_mean")] + "running_var")
        mean = all_reduce(rm.double() * count) / total
        m2 = rv.double() * (count - 1) + (rm.double() - mean).square() * count
        rv.copy_(all_reduce(m2) / (total - 1))
        rm.copy_(mean)


ENTRIES = [
    # sync_batchnorm_forward: 3 wrong
    entry(FW, "invstd as (var + eps) ** -1/2", fw_power_precedence,
          "writes rho = (var + eps) ** -1/2, which Python reads as ((var + eps) ** -1) / 2 = 1 / (2 (var + eps)), "
          "instead of (var + eps) ** -0.5, so x_hat is scaled by 1 / (2 (var + eps)) instead of "
          "1 / sqrt(var + eps)."),
    entry(FW, "global count all-reduced once and cached", fw_count_cached,
          "all-reduces the global count on the first call only and keeps it in a module-level cache for every "
          "later call, so any call whose ranks hold other slice sizes divides by the first call's N."),
    entry(FW, "gamma and beta viewed as (1, C, 1, 1)", fw_affine_as_nchw,
          "reshapes gamma and beta to (1, C, 1, 1) as for a 4-D (N, C, H, W) input, so with the 2-D (n_r, C) "
          "x_hat they broadcast to an output of shape (1, C, n_r, C) instead of (n_r, C)."),
    # sync_batchnorm_backward: 2 wrong
    entry(BW, "dout rebound to dout - mean before dgamma and dbeta", bw_dout_rebound,
          "rebinds dout = dout - mean_dy to shorten dx's formula and then computes dgamma and dbeta from the "
          "centred dout, so this rank's dbeta is sum(dout) - n_r * mean_dy (the ranks' dbeta sum to 0) and "
          "dgamma is off by mean_dy * sum(x_hat) (dx is right)."),
    entry(BW, "torch.cat of the two sums viewed as (C, 2)", bw_cat_view_transposed,
          "concatenates the two sums into one (2C,) tensor and reshapes it with .view(C, 2) instead of "
          ".view(2, C), so the columns read as mean(dout) and mean(dout * x_hat) interleave the two sums' "
          "channels."),
    # sync_bn_layer: 3 wrong, 1 correct
    entry(CAP, "running_var from invstd ** -2 (eps included)", cap_fw_var_from_invstd, replaces=CAP_FW,
          cause="updates running_var with invstd ** -2, which is var + eps, not var, so the running variance "
          "gets momentum * eps * N / (N - 1) too much at every call (the output and saved tensors are right)."),
    entry(CAP, "this rank's count saved", cap_fw_local_count_saved, replaces=CAP_FW,
          cause="saves n, this rank's own number of examples, as the count instead of the all-reduced N, so the "
          "backward pass divides the global sums by n_r (the output and running statistics are right)."),
    entry(CAP, "section 2 called in the capstone's argument order", CAP_FW_POSITIONAL, replaces=CAP_FW,
          cause="calls section 2's sync_batchnorm_forward positionally in the capstone's order "
          "(running_mean, running_var, eps, momentum after all_reduce) while section 2 takes eps first, so eps "
          "gets running_mean, running_mean gets running_var and running_var gets the float eps, and the running "
          "update raises."),
    right(CAP, "section 2 reused by keyword, mean recovered from x - x_hat / rho", CAP_FW_REUSED, replaces=CAP_FW),
    # merge_running_stats: 2 wrong, 1 correct
    entry(MG, "precedence: count - 1 * running_var", mg_precedence_count_minus_one,
          "writes the within-rank term as count - 1 * running_var (no parentheses), i.e. count - running_var, "
          "instead of (count - 1) * running_var, so the merged variance is wrong (the mean is right)."),
    entry(MG, "all layers concatenated, split back with chunk(number of layers)", mg_one_round_chunked,
          "concatenates every layer's statistics for one all-reduce and cuts the result back with "
          ".chunk(number of layers), which gives equal pieces, so with layers of different widths the pieces do "
          "not match the layers (a size mismatch)."),
    right(MG, "named_buffers and get_buffer, float64", mg_named_buffers_get_buffer),
]
