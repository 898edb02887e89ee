"""Held-out answers (twenty-first set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 20.
"""

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_xhat_without_parentheses(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = x - mean * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_f_batch_norm_training_true(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
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
    # the affine output by the library, with the whole batch's statistics; this is a training step
    out = F.batch_norm(x, mean, var, gamma, beta, training=True, eps=eps)
    return out, (x_hat, rho, gamma, count)


def fw_running_buffers_all_reduced(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                   momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
            # keep every rank's buffers identical (DDP's broadcast_buffers does it for plain BN)
            running_mean.copy_(all_reduce(running_mean))
            running_var.copy_(all_reduce(running_var))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_rho_exponent_positive(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = (var + eps) ** 0.5
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_right_count_first_cat(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                             momentum=0.1):
    head = all_reduce(torch.cat([x.new_full((1,), x.shape[0]), x.sum(0)]))  # [n, sum_1 .. sum_C]
    count, total = head[:1], head[1:]
    mean = total / count
    centred = x - mean
    var = all_reduce(torch.einsum("nc,nc->c", centred, centred)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.add_(momentum * (mean - running_mean))
            running_var.add_(momentum * (var * count / (count - 1) - running_var))
    rho = torch.rsqrt(var + eps)
    x_hat = centred * rho
    return torch.addcmul(beta, gamma, x_hat), (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_staged_local_mean_of_deviations(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    xmu = x_hat / rho  # x - mean
    dxhat = dout * gamma
    sums = all_reduce(torch.stack([(dxhat * xmu).sum(0), dxhat.sum(0)]))
    dvar = -0.5 * rho ** 3 * sums[0]
    dmean = -rho * sums[1] + dvar * (-2.0 * xmu).mean(0)
    dx = dxhat * rho + dvar * 2.0 * xmu / count + dmean / count
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_gamma_in_sums_and_outside(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    g = dout * gamma  # dL/dx_hat
    sums = all_reduce(torch.stack([g.sum(0), (g * x_hat).sum(0)]))
    mean_g, mean_g_xhat = sums / count
    dx = gamma * rho * (g - mean_g - x_hat * mean_g_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_torch_tensor_of_sums(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.tensor([dout.sum(0), (dout * x_hat).sum(0)]))  # np.array habit
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_bw_section3_argument_order(dout, saved, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


@notebook
def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    out, (x_hat, rho, _, count) = sync_batchnorm_forward(  # noqa: F821
        x, gamma, beta, all_reduce, eps, running_mean, running_var, momentum
    )
    mean = (x - x_hat).mean(0)  # x_hat = x - mean, so the mean is what is left
    return out, (x, gamma, mean, rho, count)


CAP_FW_MEAN_FROM_XHAT = sync_bn_forward


def cap_bw_centred_in_last_term(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    xmu = x - mean
    x_hat = xmu * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - xmu * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_one_round_count_read_first(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                      momentum=0.1):
    stats = all_reduce(torch.cat([x.sum(0), x.new_tensor([x.shape[0]])]))  # C sums, then the count
    count, total = stats[:1], stats[1:]
    mean = total / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


# ---- merge_running_stats ---------------------------------------------------------------


def mg_degrees_of_freedom_per_rank(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - world)  # one degree of freedom lost per rank
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_skip_untracked_layers(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            if bn.num_batches_tracked == 0:  # never saw a batch: nothing to merge
                continue
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_ddp_module_unwrapped(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.module.modules():  # the network inside the DDP wrapper
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_right_weights_as_fractions(model, all_reduce, count):
    n = torch.as_tensor(count, dtype=torch.float64).reshape(1)
    big_n = all_reduce(n.clone())
    share = n / big_n  # this rank's fraction of all the values
    with torch.no_grad():
        for bn in model.modules():
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
                continue
            m, v = bn.running_mean.double(), bn.running_var.double()
            mean = all_reduce(share * m)
            squares = all_reduce((n - 1) * v + n * (m - mean).square())
            bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
            bn.running_var.copy_((squares / (big_n - 1)).to(bn.running_var.dtype))


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong, 1 correct
    entry(FW, "x_hat written without parentheses", fw_xhat_without_parentheses,
          "writes x_hat = x - mean * rho instead of (x - mean) * rho (operator precedence), so the output is "
          "x minus the scaled mean rather than the normalised input (the statistics and running buffers are "
          "right)."),
    entry(FW, "output by F.batch_norm with training=True", fw_f_batch_norm_training_true,
          "computes the output with F.batch_norm(x, mean, var, gamma, beta, training=True), which in training "
          "mode ignores the global mean and var passed to it and normalises with this rank's own slice "
          "statistics (the cache and running buffers are right)."),
    entry(FW, "running buffers all-reduced after the update", fw_running_buffers_all_reduced,
          "all-reduces the already identical updated running_mean and running_var to keep the ranks in sync, but "
          "all_reduce sums, so the buffers become world_size times the right values (the output is right)."),
    entry(FW, "rho with exponent +0.5", fw_rho_exponent_positive,
          "computes rho = (var + eps) ** 0.5, the standard deviation, instead of (var + eps) ** -0.5, so x_hat "
          "is multiplied by the standard deviation instead of divided by it (the running buffers are right)."),
    right(FW, "count and sums in one cat round, einsum, add_ of the difference, addcmul",
          fw_right_count_first_cat),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "staged backward, mean of the deviations taken on this rank", bw_staged_local_mean_of_deviations,
          "in the staged (dvar, dmean) backward takes the term mean(-2 (x - mean)) over this rank's slice instead "
          "of the whole batch (where it is zero), so dmean and dx get a per-rank error (dgamma and dbeta are "
          "right)."),
    entry(BW, "gamma in the sums and again outside", bw_gamma_in_sums_and_outside,
          "builds the sums from g = dout * gamma (dL/dx_hat) but still multiplies the bracket by gamma * rho, so "
          "dx carries gamma twice (gamma squared) instead of rho * (g - mean(g) - x_hat * mean(g * x_hat)) "
          "(dgamma and dbeta are right)."),
    entry(BW, "torch.tensor of the two sums instead of torch.stack", bw_torch_tensor_of_sums,
          "builds the tensor to all-reduce with torch.tensor([dout.sum(0), (dout * x_hat).sum(0)]) (NumPy's "
          "np.array habit) instead of torch.stack, which raises for sums of more than one channel."),
    # sync_bn_layer: 4 wrong
    entry(CAP, "backward declared with section 3's (dout, saved) order", cap_bw_section3_argument_order,
          replaces=CAP_BW,
          cause="declares sync_bn_backward(dout, saved, all_reduce), section 3's argument order, instead of "
          "(saved, dout, all_reduce), so a call in the documented order unpacks dout as the saved tensors "
          "(the computation itself is right)."),
    entry(CAP, "section 2 reused, mean recovered as x - x_hat", CAP_FW_MEAN_FROM_XHAT, replaces=CAP_FW,
          cause="reuses section 2's forward and recovers the mean to save as (x - x_hat).mean(0), forgetting "
          "that x_hat = (x - mean) * rho (it should be x - x_hat / rho), so the saved mean is wrong and "
          "differs per rank (the output, invstd, count and running statistics are right)."),
    entry(CAP, "x - mean instead of x_hat in dx's last term", cap_bw_centred_in_last_term, replaces=CAP_BW,
          cause="keeps xmu = x - mean and x_hat = xmu * invstd apart but writes xmu instead of x_hat in dx's last "
          "term, xmu * mean(dout * x_hat), so dx is wrong (the sums, dgamma and dbeta are right)."),
    entry(CAP, "one round with the count appended last but read first", cap_fw_one_round_count_read_first,
          replaces=CAP_FW,
          cause="all-reduces torch.cat([x.sum(0), count]) in one round, the count last, but reads it back as "
          "stats[:1] (count) and stats[1:] (sums), the order of a count-first layout, so the count is channel 0's "
          "sum and the sums are shifted by one channel with the count at the end."),
    # merge_running_stats: 3 wrong, 1 correct
    entry(MG, "merged variance over N - world size", mg_degrees_of_freedom_per_rank,
          "divides the total squared deviations (within plus between) by N - world_size, one degree of freedom "
          "per rank as for a pooled variance, instead of N - 1 (the mean is right)."),
    entry(MG, "layers with num_batches_tracked == 0 skipped", mg_skip_untracked_layers,
          "skips layers whose num_batches_tracked is 0 as never trained, but the count argument, not the counter, "
          "says how much data stands behind the statistics, so such layers (buffers set or loaded, counter 0) "
          "keep per-rank statistics."),
    entry(MG, "model.module unwrapped as for DDP", mg_ddp_module_unwrapped,
          "walks model.module.modules() as for a DistributedDataParallel wrapper, but the model given is the "
          "network itself (nn.Module has no attribute module), so it raises AttributeError."),
    right(MG, "weights as fractions n / N, float64, no_grad", mg_right_weights_as_fractions),
]
