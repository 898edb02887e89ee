"""Held-out answers (nineteenth set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 18.
"""

import torch
import torch.nn.functional as F
from torch import nn

from _format import Unseen, entry, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_batch_norm_positional_eps(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
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
    # let PyTorch do the affine normalisation with the global statistics (eval mode: no update)
    out = F.batch_norm(x, mean, var, gamma, beta, False, eps)
    return out, (x_hat, rho, gamma, count)


def fw_fresh_buffers_start_at_batch(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                    momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            unbiased = var * count / (count - 1)
            if bool((running_mean == 0).all()) and bool((running_var == 1).all()):
                # fresh buffers: start the averages at the first batch, not at 0 and 1 (no start-value bias)
                running_mean.copy_(mean)
                running_var.copy_(unbiased)
            else:
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_centred_twice(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                     momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    xc = x - mean
    var = all_reduce(((xc - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = xc * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_squeezed_input(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                      momentum=0.1):
    x = x.squeeze()  # (n, C, 1) or (n, C) alike
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


def fw_right_one_round_functional(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                  momentum=0.1):
    c = x.shape[1]
    first = all_reduce(torch.cat([x.sum(0), x.new_tensor([x.shape[0]])]))  # (C + 1,): the sums and the count
    count = first[c:]
    mean = first[:c] / count
    var = all_reduce((x - mean).square().sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean += momentum * (mean - running_mean)
            running_var += momentum * (var * count / (count - 1) - running_var)
    out = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)
    rho = torch.rsqrt(var + eps)
    return out, ((x - mean) * rho, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_dbeta_from_reduced_sums(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), sums[0]  # sum(dout) is computed already


def bw_stacked_rows_summed_over_stack_axis(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout, dout * x_hat]).sum(0))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_second_row_mean(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).mean(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


def cap_bw_dout_scaled_in_place(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    g = dout.mul_(gamma)  # dL/dx_hat, staged as in lesson 02
    sums = all_reduce(torch.stack([g.sum(0), (g * x_hat).sum(0)]))
    mean_g, mean_g_xhat = sums / count
    dx = invstd * (g - mean_g - x_hat * mean_g_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None


def cap_fw_running_by_f_batch_norm(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                   momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    # the running statistics exactly as nn.BatchNorm1d updates them in training mode
    F.batch_norm(x, running_mean, running_var, training=True, momentum=momentum, eps=eps)
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_fw_x_saved_bfloat16(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    # keep the activation for backward in bfloat16: half the memory
    return gamma * (x - mean) * invstd + beta, (x.to(torch.bfloat16), gamma, mean, invstd, count)


def cap_bw_dbeta_not_reduced(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout, None, None  # d out / d beta = 1


def cap_fw_right(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5, momentum=0.1):
    count = all_reduce(x.new_full((1,), x.shape[0]))
    mean = all_reduce(x.sum(0)) / count
    xc = x - mean
    var = all_reduce(torch.einsum("nc,nc->c", xc, xc)) / count
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * (count / (count - 1)), momentum)
    invstd = torch.rsqrt(var + eps)
    return torch.addcmul(beta, xc * invstd, gamma), (x, gamma, mean, invstd, count)


def cap_bw_right(saved, dout, all_reduce):
    # PyTorch's form: sums of dout and dout * (x - mean), invstd squared on the second
    x, gamma, mean, invstd, count = saved
    xc = x - mean
    s = all_reduce(torch.stack([dout.sum(0), (dout * xc).sum(0)]))
    dx = gamma * invstd * (dout - s[0] / count - xc * invstd.square() * s[1] / count)
    return dx, (dout * xc).sum(0) * invstd, dout.sum(0), None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_named_modules_pairs(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.named_modules():  # named, to print which layers were merged
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_generator_spent(model, all_reduce, count):
    layers = (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    old_means = []
    for bn in layers:  # first pass: the means
        old_means.append(bn.running_mean.clone())
        bn.running_mean.copy_(all_reduce(count * bn.running_mean) / total)
    for bn, old in zip(layers, old_means):  # second pass: the variances
        m2 = (count - 1) * bn.running_var + count * (old - bn.running_mean) ** 2
        bn.running_var.copy_(all_reduce(m2) / (total - 1))


def mg_each_rank_divided_by_own_dof(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce((within + between) / (count - 1))  # each rank's share, normalised first
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong, 1 correct
    entry(FW, "F.batch_norm with eps in the momentum slot", fw_batch_norm_positional_eps,
          "computes the output with F.batch_norm(x, mean, var, gamma, beta, False, eps), passing eps as the 7th "
          "positional argument, which is F.batch_norm's momentum, so the output always uses the default eps 1e-5 "
          "instead of the eps argument (the cache and running statistics are right)."),
    entry(FW, "fresh buffers set to the first batch's statistics", fw_fresh_buffers_start_at_batch,
          "when the running buffers still hold their start values (all zeros and all ones) it copies the batch "
          "mean and unbiased variance into them instead of the momentum average, so an update from fresh buffers "
          "ignores momentum (later updates are right)."),
    entry(FW, "squared deviations of the centred input from the mean again", fw_centred_twice,
          "computes the variance from (xc - mean) ** 2 where xc = x - mean is already centred, so the squared "
          "deviations are taken around 2 * mean and the variance is var + mean ** 2."),
    entry(FW, "x.squeeze() at the start", fw_squeezed_input,
          "squeezes x at the start, so on a rank holding one example x becomes a (C,) vector: that rank counts C "
          "examples and sums over the channels (ranks with two or more examples are unaffected)."),
    right(FW, "count in the sums' all-reduce, += momentum * (new - old), F.batch_norm(eps=eps)",
          fw_right_one_round_functional),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "dbeta taken from the all-reduced sums", bw_dbeta_from_reduced_sums,
          "returns sums[0], the sum of dout over all ranks, as dbeta (reusing the all-reduced row) instead of this "
          "rank's dout.sum(0), so dbeta is the whole batch's (dx and dgamma are right)."),
    entry(BW, "stacked per-example rows summed over the stack axis", bw_stacked_rows_summed_over_stack_axis,
          "stacks dout and dout * x_hat into a (2, n_r, C) tensor and sums over dim 0 (the stack axis) instead of "
          "dim 1 (the examples), so it all-reduces the (n_r, C) tensor dout + dout * x_hat instead of the two (C,) "
          "sums."),
    entry(BW, "second all-reduced row as .mean(0)", bw_second_row_mean,
          "writes (dout * x_hat).mean(0) instead of .sum(0) in the second all-reduced row, so after the division by "
          "N the x_hat term of dx uses the sum of the ranks' own means over N instead of mean(dout * x_hat) "
          "(dgamma and dbeta are right)."),
    # sync_bn_layer: 4 wrong, 1 correct
    entry(CAP, "dout scaled by gamma in place (staged backward)", cap_bw_dout_scaled_in_place, replaces=CAP_BW,
          cause="stages dL/dx_hat as g = dout.mul_(gamma), which scales dout itself in place, so dgamma and dbeta, "
          "summed from dout afterwards, are gamma times too large (dx is right; the caller's dout is changed)."),
    entry(CAP, "running statistics updated by F.batch_norm(training=True)", cap_fw_running_by_f_batch_norm,
          replaces=CAP_FW,
          cause="updates the running statistics by calling F.batch_norm(x, running_mean, running_var, "
          "training=True, ...) on this rank's slice, which uses this rank's own mean and unbiased variance "
          "(n_r / (n_r - 1)) instead of the whole batch's, and raises on a rank holding one example."),
    entry(CAP, "x saved in bfloat16", cap_fw_x_saved_bfloat16, replaces=CAP_FW,
          cause="saves x cast to bfloat16 (to halve the memory kept for backward), so the saved input is not x and "
          "the backward pass recomputes x_hat from x rounded to about 3 significant digits (the output, mean, "
          "invstd, count and running statistics are right)."),
    entry(CAP, "dbeta returned as dout, not summed", cap_bw_dbeta_not_reduced, replaces=CAP_BW,
          cause="returns dout itself, the (n_r, C) per-example gradient, as dbeta instead of its sum over the "
          "examples dout.sum(0) (dx and dgamma are right)."),
    Unseen(CAP, "new_full count, einsum, lerp_, addcmul; PyTorch's sum_dy_xmu backward",
           {CAP_FW: cap_fw_right, CAP_BW: cap_bw_right}, CAP, correct=True),
    # merge_running_stats: 3 wrong
    entry(MG, "isinstance on named_modules() pairs", mg_named_modules_pairs,
          "loops over model.named_modules(), which yields (name, module) pairs, with a single loop variable, so "
          "isinstance(pair, _BatchNorm) is never true and no layer is merged."),
    entry(MG, "layers as a generator, spent by the first pass", mg_generator_spent,
          "keeps the layers in a generator expression and loops over it twice; the first pass (the means) "
          "exhausts it, so the second pass (the variances) sees no layer and running_var is never merged."),
    entry(MG, "each rank's squared deviations divided by its count - 1 before the all-reduce",
          mg_each_rank_divided_by_own_dof,
          "divides each rank's within plus between squared deviations by its own count - 1 before the all-reduce "
          "instead of dividing the all-reduced total by N - 1, so the merged variance is about the sum of the "
          "ranks' variances (the mean is right)."),
]
