"""Held-out answers (twentieth set, part D), lesson 08, current signatures:

sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None,
    running_var=None, momentum=0.1) -> (out, (x_hat, rho, gamma, count))
sync_batchnorm_backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)   (this rank's share)
sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
    momentum=0.1) -> (out, (x, gamma, mean, invstd, count))            (graded cell sync_bn_layer)
sync_bn_backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None, None)
merge_running_stats(model, all_reduce, count)   (in place)

Written blind from solutions/08 only (lesson text, exercise and graded cells); each
wrong entry has one mistake; mistakes chosen to differ from rounds 2 to 19.
"""

import torch
from torch import nn

from _format import entry, notebook, right

FW, BW, CAP, MG = "sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer", "merge_running_stats"
CAP_FW, CAP_BW = "sync_bn_forward", "sync_bn_backward"


# ---- sync_batchnorm_forward ------------------------------------------------------------


def fw_add_without_underscore(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add(momentum * mean)
            running_var.mul_(1 - momentum).add(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_bessel_guard_on_local_count(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                   momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if running_mean is not None:
        with torch.no_grad():
            # N / (N - 1) blows up for a single example: correct only when there are several
            unbiased = var * count / (count - 1) if x.shape[0] > 1 else var
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_flax_returns_new_state(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                              momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean) * rho
    out, cache = gamma * x_hat + beta, (x_hat, rho, gamma, count)
    if running_mean is not None:
        # batch_stats as a new state, as flax.linen.BatchNorm does, rather than mutated arrays
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
        return out, cache, (new_mean, new_var)
    return out, cache


def fw_channels_first_reshaped_back(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None,
                                    momentum=0.1):
    xt = x.t()  # (C, n_r): one row per channel
    count = all_reduce(torch.tensor([float(xt.shape[1])], dtype=x.dtype))
    mean = all_reduce(xt.sum(1)) / count
    var = all_reduce(((xt - mean[:, None]) ** 2).sum(1)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    rho = 1.0 / torch.sqrt(var + eps)
    x_hat = ((xt - mean[:, None]) * rho[:, None]).reshape(x.shape)  # back to (n_r, C)
    return gamma * x_hat + beta, (x_hat, rho, gamma, count)


def fw_right_keepdim(x, gamma, beta, all_reduce, eps=1e-5, running_mean=None, running_var=None, momentum=0.1):
    count = all_reduce(x.new_tensor([[x.shape[0]]]))  # (1, 1)
    mean = all_reduce(x.sum(0, keepdim=True)) / count  # (1, C)
    var = all_reduce((x - mean).pow(2).sum(0, keepdim=True)) / count
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean.squeeze(0))
            running_var.mul_(1 - momentum).add_(momentum * (var * count / (count - 1)).squeeze(0))
    rho = (var + eps).rsqrt()
    x_hat = (x - mean) * rho
    return x_hat * gamma + beta, (x_hat, rho, gamma, count)


# ---- sync_batchnorm_backward -----------------------------------------------------------


def bw_dgamma_from_dx(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dx * x_hat).sum(0), dout.sum(0)


def bw_zero_dx_for_one_example(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    if dout.shape[0] == 1:
        # a single example: batch norm's output does not depend on it (lesson 02), so no gradient
        dx = torch.zeros_like(dout)
    else:
        dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bw_split_size_as_pieces(dout, cache, all_reduce):
    x_hat, rho, gamma, count = cache
    sums = all_reduce(torch.cat([dout.sum(0), (dout * x_hat).sum(0)]))  # (2C,): one call
    mean_dy, mean_dy_xhat = (sums / count).split(2)  # the two halves
    dx = gamma * rho * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


# ---- sync_bn_layer ---------------------------------------------------------------------


@notebook
def sync_bn_backward(saved, dout, all_reduce):
    # section 3 does the work; the running statistics get no gradient
    dx, dgamma, dbeta = sync_batchnorm_backward(dout, saved, all_reduce)  # noqa: F821
    return dx, dgamma, dbeta, None, None


CAP_BW_SECTION3_SAVED = sync_bn_backward


def cap_fw_update_only_with_grad_enabled(x, gamma, beta, running_mean, running_var, all_reduce, eps=1e-5,
                                         momentum=0.1):
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    mean = all_reduce(x.sum(0)) / count
    var = all_reduce(((x - mean) ** 2).sum(0)) / count
    if torch.is_grad_enabled():  # a training step, not an evaluation under no_grad
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    invstd = 1.0 / torch.sqrt(var + eps)
    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)


def cap_bw_one_none(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    return dx, (dout * x_hat).sum(0), dout.sum(0), None  # None for the running statistics


def cap_bw_dgamma_times_invstd(saved, dout, all_reduce):
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
    mean_dy, mean_dy_xhat = sums / count
    dx = gamma * invstd * (dout - mean_dy - x_hat * mean_dy_xhat)
    dgamma = (dout * x_hat).sum(0) * invstd  # as torch's SyncBatchNorm: sum_dy_xmu * invstd
    return dx, dgamma, dout.sum(0), None, None


# ---- merge_running_stats ---------------------------------------------------------------


def mg_training_layers_only(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        # as _BatchNorm.forward: running statistics belong to layers in training mode
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.training:
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_model_double_then_float(model, all_reduce, count):
    model.double()  # merge in float64, then back
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean) ** 2
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    model.float()


def mg_square_on_the_merged_mean(model, all_reduce, count):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            mean = all_reduce(count * bn.running_mean) / total
            within = (count - 1) * bn.running_var
            between = count * (bn.running_mean - mean ** 2)
            var = all_reduce(within + between) / (total - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def mg_right_recursive_float64(model, all_reduce, count):
    total = all_reduce(torch.full((1,), float(count), dtype=torch.float64))

    def visit(module):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            m, v = module.running_mean.double(), module.running_var.double()
            merged = all_reduce(count * m) / total
            squares = all_reduce((count - 1) * v + count * (m - merged).square())
            with torch.no_grad():
                module.running_mean.copy_(merged)
                module.running_var.copy_(squares / (total - 1))
        for child in module.children():
            visit(child)

    visit(model)


ENTRIES = [
    # sync_batchnorm_forward: 4 wrong, 1 correct
    entry(FW, "running update chained with add, not add_", fw_add_without_underscore,
          "ends both running updates with .add(...) instead of .add_(...), so the batch term is computed into a "
          "new tensor and thrown away: the buffers are only multiplied by 1 - momentum."),
    entry(FW, "Bessel factor guarded by this rank's count", fw_bessel_guard_on_local_count,
          "skips the N / (N - 1) correction when this rank holds a single example (x.shape[0] > 1 guard) although "
          "N is the global count, so that rank stores the biased variance in running_var and the ranks' buffers "
          "disagree (ranks with two or more examples are right)."),
    entry(FW, "Flax habit: new running statistics returned, buffers left alone", fw_flax_returns_new_state,
          "returns the updated running statistics as a third value (out, cache, (mean, var)), as Flax returns "
          "new batch_stats, instead of updating running_mean and running_var in place (the output and cache are "
          "right)."),
    entry(FW, "channels-first view reshaped back instead of transposed", fw_channels_first_reshaped_back,
          "works on x.t() (C, n_r) and turns the normalised result back into (n_r, C) with .reshape(x.shape) "
          "instead of .t(), so the output's values are scrambled across examples and channels (the statistics "
          "and running buffers are right)."),
    right(FW, "keepdim=True throughout, (1, 1) count, rsqrt", fw_right_keepdim),
    # sync_batchnorm_backward: 3 wrong
    entry(BW, "dgamma summed from dx instead of dout", bw_dgamma_from_dx,
          "computes dgamma as (dx * x_hat).sum(0), multiplying by the input gradient dx instead of the upstream "
          "gradient dout (dx and dbeta are right)."),
    entry(BW, "zero dx on a rank holding one example", bw_zero_dx_for_one_example,
          "returns a zero dx on a rank that holds a single example (single-device reasoning from lesson 02), "
          "although with synchronised statistics that example's gradient is not zero (other ranks and dgamma, "
          "dbeta are right)."),
    entry(BW, "torch.split(2) read as two pieces", bw_split_size_as_pieces,
          "splits the concatenated (2C,) sums with .split(2), which makes pieces of size 2 rather than 2 pieces "
          "(chunk(2)), so the unpacking into the two means fails for C other than 2."),
    # sync_bn_layer: 4 wrong
    entry(CAP, "section 3 reused with the capstone's saved tuple", CAP_BW_SECTION3_SAVED, replaces=CAP_BW,
          cause="passes the capstone's saved tuple (x, gamma, mean, invstd, count) to section 3's "
          "sync_batchnorm_backward, whose cache is (x_hat, rho, gamma, count), without building x_hat, so the "
          "call fails unpacking five values into four."),
    entry(CAP, "running update only when grad mode is enabled", cap_fw_update_only_with_grad_enabled,
          replaces=CAP_FW,
          cause="updates the running statistics only if torch.is_grad_enabled(), mistaking grad mode for training "
          "mode; inside the autograd Function's forward grad mode is off, so the layer never updates its buffers "
          "(a direct call does)."),
    entry(CAP, "backward returns one None for the running statistics", cap_bw_one_none, replaces=CAP_BW,
          cause="returns four values (dx, dgamma, dbeta, None), one None for both running statistics, instead of "
          "one per input of forward (two Nones), so autograd rejects the gradients (dx, dgamma, dbeta are right)."),
    entry(CAP, "dgamma as torch's sum_dy_xmu * invstd, with x_hat", cap_bw_dgamma_times_invstd, replaces=CAP_BW,
          cause="multiplies dgamma by invstd as PyTorch's backward does for sum(dout * (x - mean)), but sums "
          "dout * x_hat, which is already scaled, so dgamma is invstd times too large (dx and dbeta are right)."),
    # merge_running_stats: 3 wrong, 1 correct
    entry(MG, "only layers in training mode merged", mg_training_layers_only,
          "merges only layers with bn.training set (copying _BatchNorm.forward's condition), so a model in eval "
          "mode, such as PreciseBN's copies, is left unmerged (models in training mode are right)."),
    entry(MG, "model.double() for the merge, model.float() after", mg_model_double_then_float,
          "converts the model to float64 and back around the merge, which replaces every buffer with a new tensor "
          "and every parameter's storage, so the buffers are not updated in place (the merged values are right)."),
    entry(MG, "between-rank term squares the merged mean only", mg_square_on_the_merged_mean,
          "writes count * (running_mean - mean ** 2) instead of count * (running_mean - mean) ** 2, so the "
          "between-rank term squares only the merged mean and the merged variance is wrong (the mean is right)."),
    right(MG, "recursive walk over children, float64, torch.full total", mg_right_recursive_float64),
]
