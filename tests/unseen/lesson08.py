"""Lesson 08: answers to ``sync_batchnorm_forward``, ``sync_batchnorm_backward``
and ``merge_running_stats`` (held out: see ``tests/unseen``)."""

from __future__ import annotations

import torch
from torch import nn

from . import entry, right

EPS = 1e-5

# --------------------------------------------------------------------------
# the forward pass: cache = (x_hat, rho, gamma, count)
# --------------------------------------------------------------------------


def _running(running_mean, running_var, momentum, mean, var, count):
    """PyTorch's update, from whatever statistics the answer computed."""
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))


def forward(
    x,
    gamma,
    beta,
    all_reduce,
    eps=EPS,
    running_mean=None,
    running_var=None,
    momentum=0.1,
    *,
    count_by="sum",
    eps_out=False,
    swap_affine=False,
    second_moment="deviations",
    local_var=False,
):
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    if count_by == "world":  # every rank assumed to hold as many as this one
        count = all_reduce(torch.ones(1, dtype=x.dtype)) * n
    else:
        count = all_reduce(n)
    mean = all_reduce(x.sum(0)) / count
    if local_var:
        var = x.var(0, correction=0)
    elif second_moment == "rank average":
        world = all_reduce(torch.ones(1, dtype=x.dtype))
        var = all_reduce((x * x).mean(0)) / world - mean**2
    elif second_moment == "own means":
        var = all_reduce(((x - x.mean(0)) ** 2).sum(0)) / count
    else:
        var = all_reduce(((x - mean) ** 2).sum(0)) / count
    _running(running_mean, running_var, momentum, mean, var, count)
    rho = 1.0 / (torch.sqrt(var) + eps) if eps_out else 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    g, b = (beta, gamma) if swap_affine else (gamma, beta)
    return g * x_hat + b, (x_hat, rho, gamma, count)


def _fwd(**kw):
    def sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=EPS, *running):
        return forward(x, gamma, beta, all_reduce, eps, *running, **kw)

    return sync_batchnorm_forward


def right_forward(x, gamma, beta, all_reduce, eps=EPS, *running):
    return forward(x, gamma, beta, all_reduce, eps, *running)


def forward_one_pass(
    x, gamma, beta, all_reduce, eps=EPS, running_mean=None, running_var=None, m=0.1
):
    """One all-reduce of (count, sum, sum of squares), accumulated in float64."""
    x64 = x.double()
    packed = torch.cat(
        [
            torch.tensor([float(x.shape[0])], dtype=torch.float64),
            x64.sum(0),
            (x64 * x64).sum(0),
        ]
    )
    total = all_reduce(packed)
    c = x.shape[1]
    count, s, ss = total[:1], total[1 : 1 + c], total[1 + c :]
    mean = s / count
    var = (ss / count - mean * mean).clamp_min(0)
    _running(running_mean, running_var, m, mean.to(x.dtype), var.to(x.dtype), count)
    rho = (1.0 / torch.sqrt(var + eps)).to(x.dtype)
    x_hat = (x - mean.to(x.dtype)) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count.to(x.dtype))


def forward_chan(
    x, gamma, beta, all_reduce, eps=EPS, running_mean=None, running_var=None, m=0.1
):
    """Per-rank mean and M2 merged across ranks (Chan et al.'s parallel formula)."""
    n = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    local_mean = x.mean(0)
    m2 = ((x - local_mean) ** 2).sum(0)
    count = all_reduce(n)
    mean = all_reduce(n * local_mean) / count
    total_m2 = all_reduce(m2 + n * (local_mean - mean) ** 2)
    _running(running_mean, running_var, m, mean, total_m2 / count, count)
    rho = torch.rsqrt(total_m2 / count + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# --------------------------------------------------------------------------
# the backward pass
# --------------------------------------------------------------------------


def backward(
    dout,
    cache,
    all_reduce,
    *,
    divide_by="count",
    mean_term=True,
    with_gamma=True,
    var_sign=-1.0,
    params_over=None,
):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    if divide_by == "count":
        mean_dy, mean_dy_xhat = sums / count
    elif divide_by == "local":
        mean_dy, mean_dy_xhat = sums / dout.shape[0]
    else:  # "nothing": the sums used as if they were means
        mean_dy, mean_dy_xhat = sums
    scale = gamma * rho if with_gamma else rho
    dx = scale * (
        dout - (mean_dy if mean_term else 0) + var_sign * x_hat * mean_dy_xhat
    )
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    if params_over == "count":
        dgamma, dbeta = dgamma / count, dbeta / count
    return dx, dgamma, dbeta


def _bwd(**kw):
    def sync_batchnorm_backward(dout, cache, all_reduce):
        return backward(dout, cache, all_reduce, **kw)

    return sync_batchnorm_backward


def backward_two_calls(dout, cache, all_reduce):
    """Two all-reduces, and the closed form multiplied out by the count."""
    x_hat, rho, gamma, count = cache
    dbeta = dout.sum(0)
    dgamma = (dout * x_hat).sum(0)
    sum_dy = all_reduce(dbeta)
    sum_dy_xhat = all_reduce(dgamma)
    dx = gamma * rho / count * (count * dout - sum_dy - x_hat * sum_dy_xhat)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------
# merging running statistics
# --------------------------------------------------------------------------


def _bns(model, top_level_only=False):
    modules = model.children() if top_level_only else model.modules()
    return [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def merge(
    model,
    all_reduce,
    count,
    *,
    top_level_only=False,
    unbiased_spread=False,
    mean_first=False,
    weights="count",
    average="var",
    write_mean=True,
    spread="square",
):
    """The count-weighted merge (the current API), with one mistake on top."""
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in _bns(model, top_level_only):
        n = torch.tensor([float(count)], dtype=torch.float64)
        if weights == "batches":
            n = bn.num_batches_tracked.to(torch.float64).reshape(1)
        total = all_reduce(n)
        mean = all_reduce(n * bn.running_mean) / total
        if mean_first:
            bn.running_mean.copy_(mean)
        gap = bn.running_mean - mean
        gap = gap.abs() if spread == "abs" else gap**2
        between = all_reduce(n * gap)
        if unbiased_spread:  # a second Bessel correction, over the ranks
            between = between * world / (world - 1)
        if average == "std":  # the ranks' standard deviations averaged, squared
            within = all_reduce((n - 1) * bn.running_var.sqrt()) / (total - world)
            within = (total - world) * within**2
        else:
            within = all_reduce((n - 1) * bn.running_var)
        if write_mean:
            bn.running_mean.copy_(mean)
        bn.running_var.copy_((within + between) / (total - 1))


def _merge(**kw):
    def merge_running_stats(model, all_reduce, count):
        return merge(model, all_reduce, count, **kw)

    return merge_running_stats


def merge_moments(model, all_reduce, count):
    """E[m^2] - E[m]^2 (count-weighted) for the spread of the ranks' means."""
    n = torch.tensor([float(count)], dtype=torch.float64)
    total = all_reduce(n)
    for bn in _bns(model):
        mean = all_reduce(n * bn.running_mean) / total
        second = all_reduce(n * bn.running_mean**2) / total
        within = all_reduce((n - 1) * bn.running_var)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_((within + total * (second - mean**2)) / (total - 1))


def merge_stacked(model, all_reduce, count):
    """Both terms in one all-reduce per layer, written back with .data[...]."""
    n = torch.tensor([float(count)], dtype=torch.float64)
    total = all_reduce(n)
    for bn in _bns(model):
        c = bn.num_features
        mean = all_reduce(n * bn.running_mean) / total
        packed = torch.cat(
            [(n - 1) * bn.running_var, n * (bn.running_mean - mean) ** 2]
        )
        merged = all_reduce(packed) / (total - 1)
        bn.running_mean.data[...] = mean
        bn.running_var.data[...] = merged[:c] + merged[c:]


F_, B_, M_ = "sync_batchnorm_forward", "sync_batchnorm_backward", "merge_running_stats"
GIVEN = {F_: right_forward}

ENTRIES = [
    entry(
        F_,
        "equal shards assumed",
        _fwd(count_by="world"),
        "the count is "
        "world_size times this rank's size, which is wrong when shards differ",
    ),
    entry(
        F_,
        "eps outside the square root",
        _fwd(eps_out=True),
        "eps is added to the standard deviation instead of the variance",
    ),
    entry(
        F_,
        "gamma and beta swapped",
        _fwd(swap_affine=True),
        "out = beta * x_hat + gamma",
    ),
    entry(
        F_,
        "second moment averaged over ranks",
        _fwd(second_moment="rank average"),
        "E[x^2] is the plain average of the ranks' E[x^2], not "
        "weighted by their counts",
    ),
    entry(
        F_,
        "deviations from each rank's own mean",
        _fwd(second_moment="own means"),
        "the squared deviations are taken from each rank's own mean, "
        "missing the spread of the ranks' means around the global mean",
    ),
    entry(
        F_,
        "only the mean synchronised",
        _fwd(local_var=True),
        "the mean is global but the variance is this rank's own",
    ),
    right(F_, "one-pass moments in float64, one all-reduce", forward_one_pass),
    right(F_, "Chan's parallel merge of mean and M2", forward_chan),
    entry(
        B_,
        "means over this rank's count",
        _bwd(divide_by="local"),
        "the all-reduced sums are divided by this rank's count instead of the total",
        given=GIVEN,
    ),
    entry(
        B_,
        "sums used as means",
        _bwd(divide_by="nothing"),
        "the all-reduced sums are not divided by the count",
        given=GIVEN,
    ),
    entry(
        B_,
        "mean term missing",
        _bwd(mean_term=False),
        "dx does not subtract the mean of dy",
        given=GIVEN,
    ),
    entry(
        B_,
        "gamma missing from dx",
        _bwd(with_gamma=False),
        "dx is not multiplied by gamma",
        given=GIVEN,
    ),
    entry(
        B_,
        "variance term added",
        _bwd(var_sign=1.0),
        "the x_hat * mean(dy * x_hat) term is added instead of subtracted",
        given=GIVEN,
    ),
    entry(
        B_,
        "dgamma and dbeta over the total count",
        _bwd(params_over="count"),
        "dgamma and dbeta are divided by the total count",
        given=GIVEN,
    ),
    right(B_, "two all-reduces, multiplied out", backward_two_calls, given=GIVEN),
    entry(
        M_,
        "top-level children only",
        _merge(top_level_only=True),
        "only the "
        "model's direct children are searched, so batch norms inside nested "
        "modules are never merged",
    ),
    entry(
        M_,
        "spread over world_size - 1",
        _merge(unbiased_spread=True),
        "the spread of the means gets a second Bessel correction over the "
        "ranks, world_size / (world_size - 1)",
    ),
    entry(
        M_,
        "mean written before the spread",
        _merge(mean_first=True),
        "the "
        "merged mean is copied into running_mean before the spread is computed, "
        "so the spread is zero",
    ),
    entry(
        M_,
        "weighted by num_batches_tracked",
        _merge(weights="batches"),
        "the means are weighted by each rank's num_batches_tracked, not by the "
        "count of examples behind its statistics",
    ),
    entry(
        M_,
        "standard deviations averaged",
        _merge(average="std"),
        "the ranks' "
        "standard deviations are averaged and squared instead of averaging the "
        "variances",
    ),
    entry(
        M_,
        "merged mean never written",
        _merge(write_mean=False),
        "the merged mean is computed but never copied into running_mean",
    ),
    entry(
        M_,
        "absolute gaps",
        _merge(spread="abs"),
        "the spread uses |mean_r - mean| instead of its square",
    ),
    right(M_, "E[m^2] - E[m]^2", merge_moments),
    right(M_, "one all-reduce per layer, .data[...]", merge_stacked),
]
