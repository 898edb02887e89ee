"""Held-out answers (thirteenth set, part C), lesson 08, current signatures:

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

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _finish(x, gamma, beta, mean, var, count, eps):
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def _running(running_mean, running_var, mean, var, count, momentum):
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_count_float64(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    # "count in float64, so that it is exact"
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=torch.float64))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    _running(running_mean, running_var, mean, var, count, momentum)
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_centred_on_own_mean(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    own = x.mean(0)
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    _running(running_mean, running_var, mean, var, count, momentum)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - own) * rho  # the rank's mean, computed first, left in
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_local_correction(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    n = x.shape[0]
    count = all_reduce(torch.tensor([float(n)], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    own = x.mean(0)
    within = all_reduce(((x - own) ** 2).sum(0))
    var = (within + n * (own - mean) ** 2) / count  # the between-rank part of this rank only
    _running(running_mean, running_var, mean, var, count, momentum)
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_rank_sum_in_rho(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    squares = ((x - mean) ** 2).sum(0)
    var = all_reduce(squares) / count
    _running(running_mean, running_var, mean, var, count, momentum)
    rho = 1.0 / torch.sqrt(squares / count + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_floor_division(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) // count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    _running(running_mean, running_var, mean, var, count, momentum)
    return _finish(x, gamma, beta, mean, var, count, eps)


def fw_shifted_moments(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    # round 1: the count, the number of ranks and the sum of the ranks' first rows (a shift
    # near the mean); round 2: moments of the shifted data, which do not cancel
    one = torch.ones(1, dtype=x.dtype)
    first = all_reduce(torch.cat([one * x.shape[0], one, x[0]]))
    count, shift = first[:1], first[2:] / first[1]
    d = x - shift
    s = all_reduce(torch.stack([d.sum(0), (d * d).sum(0)]))
    dm = s[0] / count
    mean = shift + dm
    var = (s[1] / count - dm * dm).clamp_min(0)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.copy_(torch.lerp(running_mean, mean, momentum))
            running_var.copy_(torch.lerp(running_var, var * count / (count - 1), momentum))
    rho = torch.rsqrt(var + eps)
    x_hat = d.sub(dm).mul(rho)
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -------------------------------------------------------------


def bw_float64_sums(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]).double())  # "exact sums"
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_proportional_share(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    n = dout.shape[0]  # "this rank's share": its part n_r / N of the total
    return dx, n * mean_dy_xhat, n * mean_dy


def bw_result_ignored(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = torch.stack([dout.sum(0), (dout * x_hat).sum(0)])
    all_reduce(sums)  # as torch.distributed.all_reduce: in place
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_scalar_parameter_grads(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(), dout.sum()


def bw_op_keyword(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    stacked = torch.stack([dout.sum(0), (dout * x_hat).sum(0)])
    sums = all_reduce(stacked, op=torch.distributed.ReduceOp.SUM)
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_staged_dvar_dmean(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    dxhat = dout * gamma
    s = all_reduce(torch.stack([dxhat.sum(0), (dxhat * x_hat).sum(0)]))
    xc = x_hat / rho  # x - mean
    dvar = -0.5 * (s[1] / rho) * rho**3  # sum(dxhat * xc) * -1/2 (var + eps)^(-3/2)
    dmean = -rho * s[0]  # the variance branch adds dvar * mean(-2 xc) = 0
    dx = dxhat * rho + dvar * 2 * xc / count + dmean / count
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer (sync_bn_forward, sync_bn_backward) -------------------------------------


def cap_fw_count_alias(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    dof = count
    dof -= 1  # degrees of freedom of the unbiased variance
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / dof)
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_stacked_running(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():  # both buffers in one go
        stats = torch.stack([running_mean, running_var])
        stats.mul_(1 - momentum).add_(momentum * torch.stack([mean, var * count / (count - 1)]))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_pow_inplace(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    xc = x - mean
    var = all_reduce(xc.pow_(2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * xc * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_sum_dy_xmu(saved, dout, all_reduce):
    # PyTorch's SyncBatchNorm backward works with sum(dy * (x - mean))
    x, gamma, mean, invstd, count = saved
    xmu = x - mean
    sums = all_reduce(torch.stack([dout.sum(0), (dout * xmu).sum(0)]))
    mean_dy, mean_dy_xmu = sums / count
    dx = gamma * invstd * (dout - mean_dy - xmu * mean_dy_xmu)
    return dx, (dout * xmu).sum(0) * invstd, dout.sum(0), None, None


def cap_fw_guard_two_examples(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    if x.shape[0] < 2:  # lesson 00's guard: the unbiased variance needs 2 examples
        raise ValueError("batch norm needs at least 2 examples per batch")
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_new_full(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(x.new_full((1,), x.shape[0]))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce((x - mean).square().sum(0)) / count
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * count / (count - 1), momentum)
    invstd = torch.rsqrt(var + eps)
    return torch.addcmul(beta, (x - mean) * invstd, gamma), (x, gamma, mean, invstd, count)


def cap_bw_projection(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    basis = torch.stack([torch.ones_like(x_hat), x_hat])  # (2, n_r, C)
    coef = all_reduce(torch.einsum("knc,nc->kc", basis, dout)) / count
    dx = gamma * invstd * (dout - torch.einsum("knc,kc->nc", basis, coef))
    return dx, torch.einsum("nc,nc->c", dout, x_hat), dout.sum(0), None, None


# ---- merge_running_stats ------------------------------------------------------------------


def _merge(model, all_reduce, count, *, pick=None, mean_of=None, write=None, between_sum=False):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    if pick is None:
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    else:
        layers = pick(model)
    for bn in layers:
        if mean_of is None:
            mean = all_reduce(count * bn.running_mean) / total
        else:
            mean = mean_of(bn, all_reduce, count, total)
        within = (count - 1) * bn.running_var
        between = count * (bn.running_mean - mean) ** 2
        if between_sum:
            between = between.sum()
        if write is None:
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        else:
            write(bn, all_reduce, count, total, mean, within, between)


def mg_names(model, all_reduce, count):
    def pick(model):
        return [m for name, m in model.named_modules()
                if "bn" in name.lower() or "norm" in name.lower()]
    _merge(model, all_reduce, count, pick=pick)


def mg_count_outside(model, all_reduce, count):
    _merge(model, all_reduce, count,
           mean_of=lambda bn, all_reduce, count, total: all_reduce(bn.running_mean) * count / total)


def mg_count_shadowed(model, all_reduce, count):
    count = all_reduce(torch.tensor([float(count)], dtype=torch.float64))  # all the counts
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / count
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (count - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_own_variance_plus_spread(model, all_reduce, count):
    def write(bn, all_reduce, count, total, mean, within, between):
        spread = all_reduce(between) / (total - 1)
        bn.running_var.add_(spread)  # "widen each rank's variance by the spread of the means"
        bn.running_mean.copy_(mean)
    _merge(model, all_reduce, count, write=write)


def mg_between_summed(model, all_reduce, count):
    _merge(model, all_reduce, count, between_sum=True)


ENTRIES = [
    # sync_batchnorm_forward: 5 wrong, 1 correct
    entry(FW, "count created in float64", fw_count_float64,
          "creates the count in float64 whatever x's dtype, so type promotion makes the mean, the variance "
          "and the output float64 for a float32 input (float32 in must give float32 out)."),
    entry(FW, "x centred on this rank's own mean", fw_centred_on_own_mean,
          "computes the global mean and variance right but centres x with this rank's own mean x.mean(0) "
          "(a variable left over) in x_hat; the running statistics are right."),
    entry(FW, "between-rank correction of this rank only", fw_local_correction,
          "all-reduces the squared deviations from each rank's own mean but adds only this rank's "
          "n_r (mean_r - mean)^2 term, not all-reduced, so each rank gets a different, wrong variance."),
    entry(FW, "rank's own squared deviations in rho", fw_rank_sum_in_rho,
          "normalises with this rank's sum of squared deviations divided by N (the name before the "
          "all-reduce) instead of the all-reduced variance; the running statistics are right."),
    entry(FW, "mean by floor division", fw_floor_division,
          "divides the all-reduced sum by the count with // (floor division), so the mean is rounded down "
          "to a whole number."),
    right(FW, "shifted one-pass moments, lerp, addcmul", fw_shifted_moments),
    # sync_batchnorm_backward: 5 wrong, 1 correct
    entry(BW, "sums all-reduced in float64", bw_float64_sums,
          "casts the stacked sums to float64 before the all-reduce, so for float32 inputs dx comes back "
          "float64 instead of in the input's dtype."),
    entry(BW, "parameter gradients as a proportional share", bw_proportional_share,
          "returns n_r / N of the all-reduced sums (n_r times the global means) as dgamma and dbeta instead "
          "of this rank's own sums."),
    entry(BW, "all_reduce used as if in place", bw_result_ignored,
          "calls all_reduce on the stacked sums and ignores its result (as if it summed in place, like "
          "torch.distributed.all_reduce), so dx uses this rank's sums divided by the global N."),
    entry(BW, "dgamma and dbeta summed to scalars", bw_scalar_parameter_grads,
          "sums dout * x_hat and dout over every element (.sum() without dim=0), so dgamma and dbeta are "
          "scalars instead of shape (C,)."),
    entry(BW, "op= keyword passed to all_reduce", bw_op_keyword,
          "calls all_reduce(t, op=ReduceOp.SUM) as for torch.distributed; the given all_reduce takes one "
          "tensor only, so it raises a TypeError inside the learner's code."),
    right(BW, "staged dvar and dmean with all-reduced sums", bw_staged_dvar_dmean),
    # sync_bn_layer: 5 wrong, 1 correct
    entry(CAP, "count decremented through an alias", cap_fw_count_alias, replaces=CAP_FW,
          cause="writes dof = count; dof -= 1, which decrements the count tensor itself, so the running variance "
          "gets the biased variance (count / dof = 1) and the saved count is N - 1."),
    entry(CAP, "running statistics updated in a stacked copy", cap_fw_stacked_running, replaces=CAP_FW,
          cause="updates torch.stack([running_mean, running_var]) in place, a new tensor, so the running "
          "statistics themselves never change."),
    entry(CAP, "centred input squared in place", cap_fw_pow_inplace, replaces=CAP_FW,
          cause="computes the variance with xc.pow_(2), which squares the centred input in place, so the output "
          "uses the squared deviations instead of x - mean."),
    entry(CAP, "PyTorch's sum_dy_xmu without invstd squared", cap_bw_sum_dy_xmu, replaces=CAP_BW,
          cause="all-reduces sum(dout * (x - mean)) as PyTorch's backward does but leaves out its factor invstd^2 "
          "in the last term of dx (dgamma is right)."),
    entry(CAP, "ValueError for a rank with one example", cap_fw_guard_two_examples, replaces=CAP_FW,
          cause="raises ValueError when this rank holds fewer than 2 examples (lesson 00's guard on the rank's "
          "slice), though only the global count N needs 2 or more."),
    Unseen(CAP, "new_full count, lerp_, addcmul; projection backward with einsum",
           {CAP_FW: cap_fw_new_full, CAP_BW: cap_bw_projection}, CAP, correct=True),
    # merge_running_stats: 5 wrong
    entry(MG, "layers found by their names", mg_names,
          "selects the batch-norm layers by module name (containing 'bn' or 'norm') instead of by type, so "
          "layers with other names (in an nn.Sequential: '1', '3.2') are not merged."),
    entry(MG, "count moved out of the all-reduce", mg_count_outside,
          "computes the merged mean as all_reduce(running_mean) * count / total (this rank's count taken "
          "out of the sum) instead of all_reduce(count * running_mean) / total, so each rank gets a different mean."),
    entry(MG, "count overwritten by the total", mg_count_shadowed,
          "reuses the name count for the all-reduced total, so every rank weighs its statistics by N "
          "instead of its own count: the merged mean is the sum of the ranks' means."),
    entry(MG, "own variance plus the spread", mg_own_variance_plus_spread,
          "adds the all-reduced spread of the means to each rank's own running variance instead of "
          "merging the within-rank variances too."),
    entry(MG, "between-rank term summed over the channels", mg_between_summed,
          "sums the between-rank term count * (mean_r - mean)^2 over the channels (.sum()), so every "
          "channel gets the total spread of all channels."),
]
