"""Held-out answers (fourteenth set, part C), lesson 08, current signatures:

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

from _format import entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


def _stats(x, all_reduce):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    return count, mean, var


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_eps_after_division(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    std = torch.sqrt(var)
    x_hat = (x - mean) / std + eps  # meant: / sqrt(var + eps)
    rho = 1.0 / std
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_running_mean_gets_variance(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                  momentum=0.1):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            unbiased = var * count / (count - 1)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
            running_mean.mul_(1 - momentum).add_(momentum * unbiased)  # line copied from the one above
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_default_momentum_09(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                           momentum=0.9):
    count, mean, var = _stats(x, all_reduce)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_xhat_squared_sum(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (x_hat * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_multi_rank_todo(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    n = x_hat.shape[0]
    if float(count.reshape(-1)[0]) != n:
        # TODO: all-reduce the sums for several ranks
        raise NotImplementedError("backward across ranks")
    mean_dy, mean_dy_xhat = dout.mean(0), (dout * x_hat).mean(0)
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_cat_chunk(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    c = x_hat.shape[1]
    total = all_reduce(torch.cat([dout.sum(0), torch.einsum("nc,nc->c", dout, x_hat)]))
    sum_dy, sum_dy_xhat = total.chunk(2)
    assert sum_dy.shape[0] == c
    k = gamma * rho / count
    dx = k * (count * dout - sum_dy - x_hat * sum_dy_xhat)
    return dx, torch.einsum("nc,nc->c", dout, x_hat), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def _cap_grads(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def cap_bw_nones_in_the_middle(saved, dout, all_reduce):
    dx, dgamma, dbeta = _cap_grads(saved, dout, all_reduce)
    # "None for the running statistics, which come right after x"
    return dx, None, None, dgamma, dbeta


def cap_bw_dx_averaged_over_ranks(saved, dout, all_reduce):
    dx, dgamma, dbeta = _cap_grads(saved, dout, all_reduce)
    world = all_reduce(torch.ones(1, dtype=dx.dtype))
    # "gradients are averaged over the ranks, as DistributedDataParallel does"
    return dx / world, dgamma, dbeta, None, None


# ---- merge_running_stats ---------------------------------------------------------------


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mg_between_over_count(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in _bns(model):
        mean = all_reduce(count * bn.running_mean) / total
        within = (count - 1) * bn.running_var
        between = (bn.running_mean - mean) ** 2 / count
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_count_as_tensor(model, all_reduce, count):
    n = count.double()  # "the count comes as a tensor, like the sums"
    total = all_reduce(n.reshape(1))
    for bn in _bns(model):
        mean = all_reduce(n * bn.running_mean) / total
        within = (n - 1) * bn.running_var
        between = n * (bn.running_mean - mean) ** 2
        var = all_reduce(within + between) / (total - 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def mg_through_state_dict(model, all_reduce, count):
    state = model.state_dict()  # detached tensors that share the buffers' storage
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for key in [k for k in state if k.endswith("running_mean")]:
        prefix = key[: -len("running_mean")]
        rm, rv = state[key], state[prefix + "running_var"]
        mean = all_reduce(rm.double() * count) / total
        m2 = all_reduce(rv.double() * (count - 1) + (rm.double() - mean) ** 2 * count)
        rm.copy_(mean.to(rm.dtype))
        rv.copy_((m2 / (total - 1)).to(rv.dtype))


ENTRIES = [
    # sync_batchnorm_forward: 3 wrong
    entry(FW, "eps added after the division", fw_eps_after_division,
          "writes (x - mean) / torch.sqrt(var) + eps, so eps is added to x_hat instead of inside the square "
          "root (and rho, 1 / sqrt(var), has no eps)."),
    entry(FW, "running_mean fed the unbiased variance", fw_running_mean_gets_variance,
          "copies the running_var update line for running_mean and leaves the variable unchanged, so "
          "running_mean moves towards the unbiased variance instead of the mean."),
    entry(FW, "default momentum 0.9", fw_default_momentum_09,
          "gives momentum the default 0.9 instead of 0.1, so a call that does not pass momentum puts 0.9 "
          "of the weight on the batch statistics (right when momentum is passed)."),
    # sync_batchnorm_backward: 2 wrong, 1 correct
    entry(BW, "x_hat times x_hat in the second sum", bw_xhat_squared_sum,
          "all-reduces (x_hat * x_hat).sum(0) instead of (dout * x_hat).sum(0) as the second sum, so the "
          "x_hat term of dx is wrong (dgamma and dbeta are right)."),
    entry(BW, "multi-rank branch left as NotImplementedError", bw_multi_rank_todo,
          "handles one rank only (local means) and raises NotImplementedError when the cached count is not "
          "this rank's size, i.e. on every rank of a multi-rank run (right with one rank)."),
    right(BW, "torch.cat sums, chunk(2), einsum, count * dout form", bw_cat_chunk),
    # sync_bn_layer: 2 wrong
    entry(CAP, "backward's Nones put before dgamma and dbeta", cap_bw_nones_in_the_middle, replaces=CAP_BW,
          cause="returns (dx, None, None, dgamma, dbeta), putting the Nones right after dx, so gamma and beta "
          "get no gradient (and the running statistics' slots get them) instead of (dx, dgamma, dbeta, None, None)."),
    entry(CAP, "dx averaged over the ranks", cap_bw_dx_averaged_over_ranks, replaces=CAP_BW,
          cause="divides dx by the number of ranks (counted with an all-reduce of ones), as DDP averages "
          "parameter gradients, although the all-reduced sums already give each rank its exact dx "
          "(right with one rank)."),
    # merge_running_stats: 2 wrong, 1 correct
    entry(MG, "between-rank term divided by the count", mg_between_over_count,
          "writes (mean_r - mean)^2 / count instead of count * (mean_r - mean)^2 for each rank's "
          "between-rank squared deviations (right when count is 1)."),
    entry(MG, "count assumed to be a tensor", mg_count_as_tensor,
          "calls count.double(), assuming count is a tensor; given a Python int (the documented count) it "
          "raises AttributeError inside the learner's code."),
    right(MG, "writes through the state_dict's shared tensors, float64 sums", mg_through_state_dict),
]
