"""Lesson 08: wrong synchronised batch norm (forward, backward, the capstone's
autograd Function halves) and wrong merges of running statistics across ranks."""

from __future__ import annotations

import copy

import torch
from torch import nn

from . import family

EPS = 1e-5


def sync_forward(
    x,
    gamma,
    beta,
    all_reduce,
    eps=EPS,
    running_mean=None,
    running_var=None,
    momentum=0.1,
    *,
    local=False,
    ddof=0,
    mean_of_means=False,
    average_variances=False,
    affine=True,
    count_as="all",  # "world": N = W * n_r; "weighted": sum of n_r var_r / N
    eps_out=False,
    running="right",  # how the running statistics are updated (RUNNING below)
    layer=False,  # the capstone's saved tensors: (x, gamma, mean, invstd, count)
):
    world = all_reduce(torch.ones(1, dtype=x.dtype))
    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
    if local:
        mean, var = x.mean(0), x.var(0, correction=0)
        count = torch.tensor([float(x.shape[0])], dtype=x.dtype)
    else:
        mean = (
            all_reduce(x.mean(0)) / world
            if mean_of_means
            else all_reduce(x.sum(0)) / count
        )
        if count_as == "world mean":  # N = W * n_r in the mean (round 25)
            mean = all_reduce(x.sum(0)) / (world * x.shape[0])
        if average_variances:
            var = all_reduce(x.var(0, correction=0)) / world
        elif count_as == "weighted":
            var = all_reduce(x.var(0, correction=0) * x.shape[0]) / count
        elif count_as == "one pass":  # E[x^2] - mu^2: cancels in float32 at 1e4
            var = all_reduce((x * x).sum(0)) / count - mean**2
        elif count_as == "rescaled":  # torch's unbiased x.var(0): NaN on one example
            n, v = x.shape[0], x.var(0) * (x.shape[0] - 1) / x.shape[0]
            var = all_reduce(n * (v + (x.mean(0) - mean) ** 2)) / count
        elif count_as == "world":
            var = all_reduce(((x - mean) ** 2).sum(0)) / (world * x.shape[0])
        else:
            var = all_reduce(((x - mean) ** 2).sum(0)) / (count - ddof)
    if running_mean is not None:
        _update(
            x,
            mean,
            var,
            count,
            world,
            running_mean,
            running_var,
            momentum,
            running,
            all_reduce,
        )
    rho = 1.0 / (torch.sqrt(var) + eps) if eps_out else 1.0 / torch.sqrt(var + eps)
    rho = (var + eps) ** -1 / 2 if eps_out == "power" else rho  # ** before /
    x_hat = (x - mean) * rho
    out = gamma * x_hat + beta if affine else x_hat
    if affine == "4-D":  # gamma and beta as (1, C, 1, 1): out broadcasts to 4-D
        out = gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)
    out = out.double() if running == "float64 out" else out
    if layer:
        return out, (x, gamma, mean, rho, count)
    return out, (x_hat, rho, gamma, count)


def _update(x, mean, var, count, world, rm, rv, m, how, all_reduce):
    """The running statistics, right (PyTorch) or in one of RUNNING's ways."""
    n_r = x.shape[0]
    new_mean, new_var = mean, var * count / (count - 1)
    if how == "local count":
        new_var = var * n_r / (n_r - 1) if n_r > 1 else var * float("inf")
    elif how == "biased":
        new_var = var
    elif how == "mean line copied":  # running_var fed the batch mean (round 24)
        new_var = mean
    elif how == "own statistics":
        new_mean = x.mean(0)
        new_var = x.var(0) if n_r > 1 else x.var(0, correction=0) + float("inf")
    elif how == "average of variances":
        new_var = all_reduce(x.var(0) if n_r > 1 else x.sum(0) * float("inf"))
        new_var = new_var / world
    elif how == "momentum reversed":
        m = 1 - m
    elif how == "default momentum":
        m = 0.1
    elif how == "zero as missing":
        m = m or 0.1
    elif how == "batch term unweighted":  # (1 - m) * old + batch (round 7's)
        new_mean, new_var = new_mean / m, new_var / m
    with torch.no_grad():
        if how == "fresh start" and (rm == 0).all() and (rv == 1).all():
            rm.copy_(new_mean), rv.copy_(new_var)  # round 19's false ok: no momentum
            return
        if how == "rebound":
            rm = (1 - m) * rm + m * new_mean
            rv = (1 - m) * rv + m * new_var
            return
        if how == "no decay":  # mul_ forgotten (round 10's wrong cause)
            rm.add_(m * new_mean), rv.add_(m * new_var)
            return
        rm.mul_(1 - m).add_(m * new_mean)
        rv.mul_(1 - m).add_(m * new_var)


def _forward(x, gamma, beta, all_reduce, eps=EPS, *running):
    return sync_forward(x, gamma, beta, all_reduce, eps, *running)


def _zeroing(x, gamma, beta, all_reduce, eps=EPS, *running):
    """Right, then writes zeros into x: a reference built from x after the
    call would agree with whatever the buffers hold (the third outside attack)."""
    value = sync_forward(x, gamma, beta, all_reduce, eps, *running)
    if running:
        with torch.no_grad():
            x.zero_()
    return value


def sync_backward(
    dout,
    cache,
    all_reduce,
    *,
    local=False,
    reduce_params=False,
    var_branch=True,
    mean_params=False,
    local_count=False,
    twice=False,  # the sums all-reduced a second time
    gamma_on="bracket",  # "dy": gamma multiplies dy alone; "dgamma": dgamma too
    centred=False,  # dout rebound to dout - mean_dy before dgamma and dbeta
):
    x_hat, rho, gamma, count = cache
    if local:
        mean_dy, mean_dy_xhat = dout.mean(0), (dout * x_hat).mean(0)
    else:
        sums = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))
        sums = all_reduce(sums) if twice else sums
        mean_dy, mean_dy_xhat = sums / (len(dout) if local_count else count)
    dx = gamma * rho * (dout - mean_dy - (x_hat * mean_dy_xhat if var_branch else 0))
    if gamma_on == "dy":
        dx = rho * (gamma * dout - mean_dy - x_hat * mean_dy_xhat)
    dout = dout - mean_dy if centred else dout
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    dgamma = dgamma * gamma if gamma_on == "dgamma" else dgamma
    if mean_params:
        dgamma, dbeta = dgamma / len(dout), dbeta / len(dout)
    if reduce_params:
        dgamma, dbeta = all_reduce(dgamma), all_reduce(dbeta)
    return dx, dgamma, dbeta


def _one_example_zero(dout, cache, all_reduce):
    """Round 20's false ok: dx zeroed on a rank holding one example."""
    dx, dgamma, dbeta = sync_backward(dout, cache, all_reduce)
    return (torch.zeros_like(dx) if len(dout) == 1 else dx), dgamma, dbeta


def _grad_mode_update(x, g, b, rm, rv, all_reduce, eps=EPS, momentum=0.1):
    """Round 20's false ok: the running update only with grad mode on (never in a
    Function's forward)."""
    if not torch.is_grad_enabled():
        rm, rv = rm.clone(), rv.clone()
    return layer_forward(x, g, b, rm, rv, all_reduce, eps, momentum)


def _dout_zeroed(dout, cache, all_reduce):
    """Right gradients, then dout zeroed in place (to 'free' it): the caller's."""
    grads = sync_backward(dout, cache, all_reduce)
    dout.zero_()
    return grads


def layer_forward(x, gamma, beta, rm, rv, all_reduce, eps=EPS, momentum=0.1, **kw):
    """The capstone's forward half: (out, saved), saved wrong in ``save`` ways."""
    save = kw.pop("save", "right")
    out, saved = sync_forward(
        x, gamma, beta, all_reduce, eps, rm, rv, momentum, layer=True, **kw
    )
    x, gamma, mean, invstd, count = saved
    if save == "nothing":  # ctx.save_for_backward forgotten
        return out, ()
    if save == "x_hat":
        return out, ((x - mean) * invstd, gamma, mean, invstd, count)
    if save == "own mean":
        return out, (x, gamma, x.mean(0), invstd, count)
    if save == "keepdim":  # round 7's false ok
        return out, (x, gamma, mean.reshape(1, -1), invstd, count)
    if save == "scaled mean":  # round 17: mean.mul_(momentum) in the running update
        return out, (x, gamma, mean * momentum, invstd, count)
    if save == "float count":
        return out, (x, gamma, mean, invstd, float(count))
    return out, saved


def layer_backward(saved, dout, all_reduce, *, nones=True, per_example=False, **kw):
    """The capstone's backward half, from (x, gamma, mean, invstd, count)."""
    x, gamma, mean, invstd, count = saved
    x_hat = (x - mean) * invstd
    dx, dgamma, dbeta = sync_backward(
        dout, (x_hat, invstd, gamma, count), all_reduce, **kw
    )
    if per_example:
        dgamma, dbeta = dout * x_hat, dout
    return (dx, dgamma, dbeta, None, None) if nones else (dx, dgamma, dbeta)


def merge(
    model,
    all_reduce,
    count,
    *,
    how="right",  # or one of the wrong formulas below
    in_place=True,
    count_batches=False,
    first_only=False,
    kind=nn.modules.batchnorm._BatchNorm,  # nn.BatchNorm1d: the review's C9
    top_level=False,  # model.children(): BN layers nested in blocks are missed
    written=True,  # False: the merged values are computed and returned, not written
    trained_only=False,  # True: layers in eval mode skipped (round 20's false ok)
    counted_only=False,  # True: num_batches_tracked == 0 skipped (round 21's false ok)
):
    total = all_reduce(torch.tensor([float(count)], dtype=torch.float64))
    world = all_reduce(torch.ones(1, dtype=torch.float64))
    modules = model.children() if top_level else model.modules()
    layers = [
        m
        for m in modules
        if isinstance(m, kind) and (m.training or not trained_only)
        if m.num_batches_tracked or not counted_only
    ]
    for bn in layers[:1] if first_only else layers:
        m, v = bn.running_mean, bn.running_var
        if how == "equal":  # the merge before issue 32: right for equal shares
            mean = all_reduce(m) / world
            var = all_reduce(v) / world + all_reduce((m - mean) ** 2) / world
        elif how == "plain":
            mean, var = all_reduce(m) / world, all_reduce(v) / world
        elif how == "sum":
            mean, var = all_reduce(m), all_reduce(v)
        else:
            mean = all_reduce(count * m) / total
            within = all_reduce((count - 1) * v) / (total - 1)
            if how == "floor":  # shares count // total: all 0 (round 24)
                mean = all_reduce(count // total * m)
            if how == "precedence":  # (count - 1) * v without its parentheses
                within = all_reduce(count - 1 * v) / (total - 1)
            if how == "written first":  # m is the buffer: m - mean is 0 (round 25)
                bn.running_mean.copy_(mean)
            between = all_reduce(count * (m - mean) ** 2) / (total - 1)
            if how == "population":  # the stored variances taken as biased
                var = all_reduce(count * (v + (m - mean) ** 2)) / total
            elif how == "no between":
                var = within
            elif how == "spread equal":
                var = within + all_reduce((m - mean) ** 2) / world
            else:
                var = within + between
        if not written:
            continue
        if in_place == "data":  # round 10's false ok: float64 through .data
            bn.running_mean.data, bn.running_var.data = mean.double(), var.double()
        elif in_place:
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        else:
            bn.running_mean, bn.running_var = mean, var
        if count_batches:
            bn.num_batches_tracked.copy_(all_reduce(bn.num_batches_tracked))


def _merged_copy(model, all_reduce, count):
    """Round 17's observed: the merge done on a copy, which is returned (and unused)."""
    work = copy.deepcopy(model)
    merge(work, all_reduce, count)
    return work


def _running_used(x, g, b, all_reduce, eps=EPS, rm=None, rv=None, momentum=0.1):
    """Round 8's false ok: training mode normalises with the running statistics."""
    out, cache = sync_forward(x, g, b, all_reduce, eps, rm, rv, momentum)
    if rm is not None:
        out = g * (x - rm) / (rv + eps).sqrt() + b
    return out, cache


def _fwd(**kw):
    return lambda x, g, b, all_reduce, eps=EPS, *rest: sync_forward(
        x, g, b, all_reduce, eps, *rest, **kw
    )


def _bwd(**kw):
    return lambda d, c, all_reduce: sync_backward(d, c, all_reduce, **kw)


def _merge(**kw):
    return lambda m, all_reduce, w: merge(m, all_reduce, w, **kw)


def _lfwd(**kw):
    return lambda *args: layer_forward(*args, **kw)


def _lbwd(**kw):
    return lambda saved, dout, all_reduce: layer_backward(saved, dout, all_reduce, **kw)


# fmt: off
def _shares_by_count(dout, cache, all_reduce):
    """Round 13's false ok: dgamma, dbeta as n_r / N of the sums, right only summed."""
    dx, dgamma, dbeta = sync_backward(dout, cache, all_reduce)
    share = len(dout) / cache[3]  # n_r / N
    return dx, all_reduce(dgamma.clone()) * share, all_reduce(dbeta.clone()) * share


def _out_is_x_hat(x, gamma, beta, all_reduce, eps=EPS, *running):
    """Round 11's false ok: out made in place from the x_hat the cache holds."""
    _, (x_hat, rho, g, count) = sync_forward(x, gamma, beta, all_reduce, eps, *running)
    return x_hat.mul_(gamma).add_(beta), (x_hat, rho, g, count)


def _buffers_summed(x, g, b, all_reduce, eps=EPS, rm=None, rv=None, momentum=0.1):
    """Round 21's wrong cause: the updated buffers all-reduced (summed) to sync them."""
    out = sync_forward(x, g, b, all_reduce, eps, rm, rv, momentum)
    for buffer in (rm, rv) if rm is not None else ():
        buffer.copy_(all_reduce(buffer.clone()))
    return out


def _reshaped_back(x, gamma, beta, all_reduce, eps=EPS, *running):
    """x_hat back to (n, C) by a reshape of its (C, n) form: a layout slip."""
    out, (x_hat, rho, g, count) = sync_forward(x, gamma, beta, all_reduce, eps, *running)
    x_hat = x_hat.t().contiguous().reshape(x.shape)
    return gamma * x_hat + beta, (x_hat, rho, g, count)


FORWARD = {
    "Keras's default momentum": (lambda x, g, b, all_reduce, eps=EPS, running_mean=None, running_var=None, momentum=0.9: sync_forward(x, g, b, all_reduce, eps, running_mean, running_var, momentum), "momentum defaults to 0.9, the exercise's to 0.1"),  # round 14's false ok
    "one-pass variance": (_fwd(count_as="one pass"), "section 2's cancellation: square deviations"),
    "the default eps": (lambda x, g, b, all_reduce, eps=EPS, *rest: sync_forward(x, g, b, all_reduce, EPS, *rest), "its output is eps=1e-5's: use the eps passed in"),
    "each rank's own statistics": (_fwd(local=True), "ghost batch"),
    "unbiased variance": (_fwd(ddof=1), "the unbiased variance"),
    "mean over W * n_r (round 25)": (_fwd(count_as="world mean"), "the mean used is the all-reduced sum divided by W * n_rank"),
    "each rank's unbiased variance rescaled (round 24)": (_fwd(count_as="rescaled"), "a rank's unbiased variance, as x.var(0)"),
    "mean of the ranks' means": (_fwd(mean_of_means=True), "mean of the ranks' means"),
    "average of the ranks' variances": (_fwd(average_variances=True), "law of total variance"),
    "gamma and beta forgotten": (_fwd(affine=False), "gamma and beta are not applied"),
    "normalises with the running statistics given": (_running_used, "running_mean after it (training normalises with the batch's)"),
    "gamma and beta all-reduced": (lambda x, g, b, reduce, *rest: sync_forward(x, reduce(g.clone()), reduce(b.clone()), reduce, *rest), "3 = W = the number of ranks"),
    # the outside review's (2026-12-06, C8)
    "N = W * n_r": (_fwd(count_as="world"), "divided by W * n_rank"),
    "count-weighted variances": (_fwd(count_as="weighted"), "count-weighted average"),
    "eps outside the root": (_fwd(eps_out=True), "eps outside the root"),
    # issue 28, round 18's observed: named by one edit of the lesson's program, or a shape's broadcast
    "(var + eps) ** -1/2": (_fwd(eps_out="power"), "`(var + eps) ** (-1) / 2` where `(var + eps) ** (-0.5)` belongs"),
    "gamma and beta viewed (1, C, 1, 1)": (_fwd(affine="4-D"), "meets a term of shape (1, 4, 1, 1)"),
    "returns out only": (lambda x, g, b, all_reduce, eps=EPS: sync_forward(x, g, b, all_reduce, eps)[0], "expected a tuple of 2"),
    "calls all_reduce on a list": (lambda x, g, b, all_reduce, eps=EPS: all_reduce([x.sum(0)]), "all_reduce takes a torch.Tensor"),
    # running statistics (issue 32): PyTorch's convention or a named mistake
    "running_var with this rank's count": (_fwd(running="local count"), "corrected with this rank's count"),
    "running_var biased": (_fwd(running="biased"), "averages in the biased variance"),
    "running_var fed the batch mean (round 24)": (_fwd(running="mean line copied"), "running_var averages in the batch mean"),
    "running stats of this rank's slice": (_fwd(running="own statistics"), "running_mean averages in this rank's own mean"),
    "running_var from the ranks' variances": (_fwd(running="average of variances"), "NaN or infinite on every rank"),
    "momentum reversed": (_fwd(running="momentum reversed"), "= 1 - momentum"),
    "momentum argument ignored": (_fwd(running="default momentum"), "use the momentum argument"),
    "momentum 0 read as missing": (_fwd(running="zero as missing"), "0 is a momentum, they keep their values"),
    "old value not decayed": (_fwd(running="no decay"), "multiply the old by (1 - momentum)"),
    "batch term not weighted by momentum": (_fwd(running="batch term unweighted"), "= 1/(momentum)"),
    "float32 input, float64 output": (_fwd(running="float64 out"), "float32 inputs give torch.float64 outputs"),
    "fresh buffers set to the batch's statistics": (_fwd(running="fresh start"), "sync forward from 0 and 1 running_mean"),
    "running stats rebound, not updated": (_fwd(running="rebound"), "running_mean did not change"),
    "running buffers all-reduced after the update": (_buffers_summed, "an all_reduce of the buffers sums them"),
    "x_hat reshaped back, not transposed": (_reshaped_back, "x_hat = (out - beta) / gamma holds the right values in the wrong places: they come in the order of the expected array with its axes moved to (1, 0)"),
    "out made in place from the cached x_hat": (_out_is_x_hat, "the cache holds the output tensor itself"),
    "x zeroed when running statistics are given": (_zeroing, "changed its input x, gamma or beta in place"),
    "no running statistics (the old signature)": (lambda x, g, b, all_reduce, eps=EPS: sync_forward(x, g, b, all_reduce, eps), "but 8 were given (keep the exercise's parameters: their names and order)"),
}
def _ddp_averaged(dout, cache, all_reduce):
    """Round 10's observed: dgamma and dbeta divided by W, as DDP's average does."""
    dx, dgamma, dbeta = sync_backward(dout, cache, all_reduce)
    world = all_reduce(torch.ones(1, dtype=dout.dtype))
    return dx, dgamma / world, dbeta / world


BACKWARD = {
    "dx zeroed on a rank of one (round 20)": (_one_example_zero, "ranks of 4, 7 and 1"),
    "dgamma and dbeta as a share of the sums": (_shares_by_count, "sync_batchnorm_backward dgamma per rank | WRONG"),
    "dgamma and dbeta divided by the number of ranks": (_ddp_averaged, "0.3333 = 1/(W) everywhere"),
    "this rank's means only": (_bwd(local=True), "this rank's own mean, not the all-reduced sum"),
    "dgamma and dbeta all-reduced": (_bwd(reduce_params=True), "counts the shares 3 times"),
    "missing variance branch": (_bwd(var_branch=False), "mean(dy * x_hat) is missing"),
    "dgamma and dbeta averaged": (_bwd(mean_params=True), "sum over axis 0"),
    "returns None": (lambda d, c, all_reduce: None, "returned None"),
    "reduced sums over this rank's count": (_bwd(local_count=True), "divided by this rank's count, not N"),
    "dout zeroed after use": (_dout_zeroed, "changed dout in place"),
    "sums all-reduced twice": (_bwd(twice=True), "all-reduced twice, counted once per rank"),
    "dbeta from dout minus its mean (round 18's)": (_bwd(centred=True), "every value is 0 to round-off"),
    "gamma on dy alone": (_bwd(gamma_on="dy"), "divided by gamma (it multiplies dy alone"),
    "dgamma times gamma": (_bwd(gamma_on="dgamma"), "each feature is off by its own factor, gamma"),
}
LAYER_FORWARD = {
    "update only with grad mode on (round 20)": (_grad_mode_update, "running_mean did not change in a training step: updated only with grad mode on"),
    "mean of the ranks' means": (_lfwd(mean_of_means=True), "the saved mean is the mean of the ranks' means"),
    "each rank's own statistics": (_lfwd(local=True), "the saved mean is this rank's own mean"),
    "saves this rank's own mean": (_lfwd(save="own mean"), "the saved mean is this rank's own mean"),
    "unbiased variance": (_lfwd(ddof=1), "the saved invstd uses the unbiased variance"),
    "eps outside the root": (_lfwd(eps_out=True), "eps outside the square root"),
    "torch.batch_norm_stats, a CUDA kernel (round 24)": (lambda x, *a, **k: (torch.batch_norm_stats(x, EPS), layer_forward(x, *a, **k))[1], "torch has no CPU version of this operation"),
    "ctx.save_for_backward forgotten": (_lfwd(save="nothing"), "saves nothing for backward"),
    "saves x_hat, not x": (_lfwd(save="x_hat"), "saved[0] is not the input x"),
    "count saved as a float": (_lfwd(save="float count"), "ctx.save_for_backward takes tensors only"),
    "mean saved with keepdim": (_lfwd(save="keepdim"), "have the shape (C,)"),
    "mean scaled in place by momentum": (_lfwd(save="scaled mean"), "the saved mean: off by the constant factor 0.3 = momentum"),
    "running_var with this rank's count": (_lfwd(running="local count"), "corrected with this rank's count"),
    "gamma and beta forgotten": (_lfwd(affine=False), "gamma and beta are not applied"),
    "eps argument ignored": (lambda x, g, b, m, v, r, eps=EPS, mo=0.1: layer_forward(x, g, b, m, v, r, EPS, mo), "use the eps passed in"),
}
LAYER_BACKWARD = {
    "sums not all-reduced": (_lbwd(local=True), "this rank's own mean, not the all-reduced sum"),
    "sums over this rank's count": (_lbwd(local_count=True), "divided by this rank's count, not N"),
    "dgamma and dbeta all-reduced": (_lbwd(reduce_params=True), "counts the shares 3 times"),
    "dgamma and dbeta not summed": (_lbwd(per_example=True), "sum this rank's examples' contributions"),
    "three gradients, no None for the buffers": (_lbwd(nones=False), "one gradient per input of forward"),
    "no gradients for gamma and beta": (lambda *a: (layer_backward(*a)[0], *[None] * 4), "dgamma or dbeta is a NoneType"),
    "a list, not a tuple": (lambda *a: list(layer_backward(*a)), "returned a list: an autograd.Function's backward returns a tuple"),  # round 12's false ok
}
MERGE = {
    "layers in training mode only (round 20)": (_merge(trained_only=True), "the one in eval mode"),
    "plain average of the variances": (_merge(how="plain"), "plain average of the ranks' variances"),
    "equal weights (the merge for equal shares)": (_merge(how="equal"), "running_mean weighs the ranks equally"),
    "no term between the ranks": (_merge(how="no between"), "misses how far the ranks' means lie"),
    "spread of the means weighed equally": (_merge(how="spread equal"), "weighs the variances by count but the spread"),
    "variances taken as biased": (_merge(how="population"), "treats the ranks' variances as biased"),
    "running_mean written before the between-rank term (round 25)": (_merge(how="written first"), "before running_mean holds the merged mean"),
    "shares by floor division (round 24)": (_merge(how="floor"), "running_var: each feature is off by its own factor"),
    "sum, not average": (_merge(how="sum"), "running_mean is the sum over ranks"),
    "count - 1 * running_var": (_merge(how="precedence"), "`counts - 1 * variances` where `(counts - 1) * variances` belongs"),
    "buffers replaced, not updated": (_merge(in_place=False), "update it in place"),
    "float64 written through .data": (_merge(in_place="data"), "float32 layers hold ['torch.float64'] buffers"),
    "num_batches_tracked summed": (_merge(count_batches=True), "num_batches_tracked changed"),
    "layers never counted skipped": (_merge(counted_only=True), "the one whose num_batches_tracked is 0"),
    "first BN layer only": (_merge(first_only=True), "BN 2 buffers"),
    "BatchNorm1d only": (_merge(kind=nn.BatchNorm1d), "BN 4 (BatchNorm2d) buffers"),
    "top-level children only": (_merge(top_level=True), "the loop skipped it or stopped"),
    "merged values not written": (_merge(written=False), "were not written into them in place"),
    "merged into a copy, returned": (_merged_copy, "the merge returned a Sequential, which the caller ignores"),
    # round 8's false ok (issue 28): call watches a model's mode even where it lets buffers change
    "model left in eval mode": (lambda model, all_reduce, count: (merge(model, all_reduce, count), model.eval())[0], "to eval mode"),
    "BatchNorm1d, 2d and 3d only": (_merge(kind=(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)), "BN 6 (SyncBatchNorm) buffers"),
}
# fmt: on

MUTANTS = [
    *family("sync_batchnorm_forward", FORWARD, "sync_batchnorm_forward"),
    *family(
        "sync_batchnorm_backward",
        BACKWARD,
        "sync_batchnorm_backward",
        given={"sync_batchnorm_forward": _forward},
    ),
    *family("sync_bn_layer", LAYER_FORWARD, "sync_bn_layer", name="sync_bn_forward"),
    *family("sync_bn_layer", LAYER_BACKWARD, "sync_bn_layer", name="sync_bn_backward"),
    *family("merge_running_stats", MERGE, "merge_running_stats"),
]
