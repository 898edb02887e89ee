"""Plausible wrong answers to the course's exercises, with the message each must get.

Each entry: name -> (function(s), substring the check's report must contain).
They are built from small correct implementations written here (tests may
hold solutions; ``helpers`` never does).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------
# lesson 02: correct reference implementations, then mutants
# --------------------------------------------------------------------------


def bn_forward(
    x,
    gamma,
    beta,
    eps=1e-5,
    *,
    axis=0,
    ddof=0,
    eps_out=False,
    affine=True,
    sqrt=True,
    check_n=True,
    fixed_eps=None,
):
    if check_n and x.shape[0] < 2:
        raise ValueError("N < 2")
    eps = fixed_eps if fixed_eps is not None else eps
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    if eps_out:
        denom = np.sqrt(var) + eps
    elif sqrt:
        denom = np.sqrt(var + eps)
    else:
        denom = var + eps
    x_hat = (x - mu) / denom
    out = gamma * x_hat + beta if affine else x_hat
    return out, (x_hat, np.sqrt(var + eps), gamma)


def bn_backward(
    dout,
    cache,
    *,
    mean_branch=True,
    var_branch=True,
    gamma_factor=True,
    sum_dgamma=True,
    sum_dbeta=True,
    dgamma_from=None,
    sign=1.0,
    mean_params=False,
):
    x_hat, std, gamma = cache
    dx_hat = dout * gamma if gamma_factor else dout
    dx = dx_hat.copy()
    if mean_branch:
        dx = dx - dx_hat.mean(0)
    if var_branch:
        dx = dx - x_hat * (dx_hat * x_hat).mean(0)
    dx = sign * dx / std
    source = x_hat if dgamma_from is None else dgamma_from(x_hat, std)
    dgamma = dout * source
    reduce = np.mean if mean_params else np.sum
    dgamma = reduce(dgamma, axis=0) if sum_dgamma else dgamma
    dbeta = reduce(dout, axis=0) if sum_dbeta else dout
    return dx, dgamma, dbeta


def _fwd(**kw):
    return lambda x, g, b, eps=1e-5: bn_forward(x, g, b, eps, **kw)


def _bwd(**kw):
    return lambda d, c: bn_backward(d, c, **kw)


BN_FORWARD = {
    "wrong axis": (_fwd(axis=1), "wrong axis"),
    "unbiased variance": (_fwd(ddof=1), "unbiased variance"),
    "eps outside the square root": (_fwd(eps_out=True), "eps is added outside"),
    "gamma and beta forgotten": (_fwd(affine=False), "not applied"),
    "missing square root": (_fwd(sqrt=False), "missing square root"),
    "ignores eps": (_fwd(fixed_eps=1e-5), "ignores its eps argument"),
    "no ValueError for N=1": (_fwd(check_n=False), "did not raise ValueError"),
    "returns out only": (
        lambda x, g, b, eps=1e-5: bn_forward(x, g, b, eps)[0],
        "expected a tuple of 2",
    ),
    "returns None": (lambda x, g, b, eps=1e-5: None, "returned None"),
    "NaN": (
        lambda x, g, b, eps=1e-5: (bn_forward(x, g, b, eps)[0] * np.nan, None),
        "NaN",
    ),
    "raises TypeError": (lambda x, g, b, eps=1e-5: x.mean(foo=1), "raised TypeError"),
    "mutates its input": (
        lambda x, g, b, eps=1e-5: (x.__isub__(x.mean(0)), bn_forward(x, g, b, eps))[1],
        "in place",
    ),
    "wrong shape": (
        lambda x, g, b, eps=1e-5: (bn_forward(x, g, b, eps)[0].T, None),
        "axes are swapped",
    ),
}

BN_BACKWARD = {
    "missing mean branch": (_bwd(mean_branch=False), "branch through mu"),
    "missing variance branch": (_bwd(var_branch=False), "branch through var"),
    "mu and var as constants": (
        _bwd(mean_branch=False, var_branch=False),
        "as constants",
    ),
    "forgets gamma": (_bwd(gamma_factor=False), "forgets gamma"),
    "dgamma not summed": (_bwd(sum_dgamma=False), "not summed"),
    "dbeta not summed": (_bwd(sum_dbeta=False), "not summed"),
    "dgamma and dbeta averaged": (_bwd(mean_params=True), "averaged over the batch"),
    "dgamma from the centred x": (
        _bwd(dgamma_from=lambda x_hat, std: x_hat * std),
        "centred x",
    ),
    "wrong sign": (_bwd(sign=-1.0), "wrong sign"),
    "returns None": (lambda d, c: None, "returned None"),
    "returns two": (lambda d, c: bn_backward(d, c)[:2], "tuple of 3"),
    "raises AttributeError": (lambda d, c: d.foo, "raised AttributeError"),
    "NaN dx": (
        lambda d, c: (bn_backward(d, c)[0] * np.nan,) + bn_backward(d, c)[1:],
        "NaN",
    ),
}


def spatial_forward(x, gamma, beta, eps=1e-5, *, mode="right", reshape_back=True):
    n, c, h, w = x.shape
    if mode == "per position":
        flat = x.reshape(n, -1)
        mu, var = flat.mean(0), flat.var(0)
        g, b = np.repeat(gamma, h * w), np.repeat(beta, h * w)
        out = (g * (flat - mu) / np.sqrt(var + eps) + b).reshape(x.shape)
        return out, None
    if mode == "naive reshape":
        cols = x.reshape(-1, c)
    else:
        cols = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = bn_forward(cols, gamma, beta, eps)
    if not reshape_back:
        return out, cache
    if mode == "naive reshape":
        return out.reshape(x.shape), cache
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


def spatial_backward(dout, cache, *, sum_hw=True):
    n, c, h, w = dout.shape
    cols = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = bn_backward(cols, cache)
    dx = dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    if not sum_hw:  # summed over N only
        x_hat = cache[0].reshape(n, h, w, c).transpose(0, 3, 1, 2)
        dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    return dx, dgamma, dbeta


SPATIAL_FORWARD = {
    "statistics per position": (
        lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, mode="per position"),
        "per position",
    ),
    "reshape without transpose": (
        lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, mode="naive reshape"),
        "without moving C last",
    ),
    "not reshaped back": (
        lambda x, g, b, eps=1e-5: spatial_forward(x, g, b, eps, reshape_back=False),
        "reshape back",
    ),
}
SPATIAL_BACKWARD = {
    "dgamma summed over N only": (
        lambda d, c: spatial_backward(d, c, sum_hw=False),
        "summed over N only",
    ),
}


def ln_forward(x, gamma, beta, eps=1e-5, *, axis=1, ddof=0):
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, np.sqrt(var + eps), gamma)


def ln_backward(dout, cache, *, sum_dgamma=True):
    x_hat, std, gamma = cache
    g = dout * gamma
    dx = (
        g - g.mean(1, keepdims=True) - x_hat * (g * x_hat).mean(1, keepdims=True)
    ) / std
    dgamma = (dout * x_hat).sum(0) if sum_dgamma else dout * x_hat
    return dx, dgamma, dout.sum(0)


LN_FORWARD = {
    "normalises columns (batch norm)": (
        lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, axis=0),
        "wrong axis",
    ),
    "unbiased variance": (
        lambda x, g, b, eps=1e-5: ln_forward(x, g, b, eps, ddof=1),
        "unbiased variance",
    ),
}
LN_BACKWARD = {
    "dgamma not summed": (
        lambda d, c: ln_backward(d, c, sum_dgamma=False),
        "not summed",
    ),
}


# --------------------------------------------------------------------------
# lesson 03: a from-scratch batch norm with switchable mistakes, and folding
# --------------------------------------------------------------------------


def scratch_class(
    *,
    running_var="unbiased",  # "biased"
    momentum_on="new",  # "old"
    buffers=True,
    update_in_eval=False,
    axes="right",  # "batch only": statistics over dim 0 alone
    eval_uses_batch=False,
    count_batches=True,
    handle_none=True,
    normalise_unbiased=False,
    count="values",  # "examples": n = N instead of N*L
    stats_without_grad=False,
    validate=True,
):
    import torch
    from torch import nn

    class Scratch(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
            super().__init__()
            self.num_features, self.eps = num_features, eps
            self.momentum, self.affine = momentum, affine
            if affine:
                self.weight = nn.Parameter(torch.ones(num_features))
                self.bias = nn.Parameter(torch.zeros(num_features))
            else:
                self.register_parameter("weight", None)
                self.register_parameter("bias", None)
            if buffers:
                self.register_buffer("running_mean", torch.zeros(num_features))
                self.register_buffer("running_var", torch.ones(num_features))
                self.register_buffer("num_batches_tracked", torch.tensor(0))
            else:
                self.running_mean = torch.zeros(num_features)
                self.running_var = torch.ones(num_features)
                self.num_batches_tracked = torch.tensor(0)

        def forward(self, x):
            if validate and (
                x.dim() not in (2, 3, 4) or x.shape[1] != self.num_features
            ):
                raise ValueError("bad input")
            dims = [0] if axes == "batch only" else [0, *range(2, x.dim())]
            view = [1, -1] + [1] * (x.dim() - 2)
            n = x.numel() // x.shape[1] if count == "values" else x.shape[0]
            use_batch = self.training or eval_uses_batch
            if use_batch:
                if validate and x.numel() // x.shape[1] < 2:
                    raise ValueError("one value per channel")
                with torch.set_grad_enabled(
                    not stats_without_grad and torch.is_grad_enabled()
                ):
                    mean = x.mean(dims, keepdim=True)
                    var = x.var(
                        dims, correction=1 if normalise_unbiased else 0, keepdim=True
                    )
            if self.training or update_in_eval:
                with torch.no_grad():
                    if count_batches:
                        self.num_batches_tracked += 1
                    m = self.momentum
                    if m is None:
                        m = (
                            1.0 / max(int(self.num_batches_tracked), 1)
                            if handle_none
                            else None
                        )
                    bm = x.mean([0, *range(2, x.dim())])
                    bv = x.var([0, *range(2, x.dim())], correction=0)
                    if running_var == "unbiased":
                        bv = bv * n / (n - 1)
                    if momentum_on == "new":
                        self.running_mean.mul_(1 - m).add_(m * bm)
                        self.running_var.mul_(1 - m).add_(m * bv)
                    else:
                        self.running_mean.mul_(m).add_((1 - m) * bm)
                        self.running_var.mul_(m).add_((1 - m) * bv)
            if not use_batch:
                mean = self.running_mean.view(view)
                var = self.running_var.view(view)
            out = (x - mean) / torch.sqrt(var + self.eps)
            if self.affine:
                out = out * self.weight.view(view) + self.bias.view(view)
            return out

    return Scratch


SCRATCH = {
    "biased running_var": (
        scratch_class(running_var="biased"),
        "biased batch variance",
    ),
    "momentum on the old value": (
        scratch_class(momentum_on="old"),
        "momentum is applied to the old value",
    ),
    "buffers as plain tensors": (scratch_class(buffers=False), "register_buffer"),
    "updates in eval mode": (scratch_class(update_in_eval=True), "eval mode changed"),
    "statistics over N only for 3-D/4-D": (
        scratch_class(axes="batch only"),
        "every dim except channels",
    ),
    "eval uses batch statistics": (
        scratch_class(eval_uses_batch=True),
        "eval mode still normalises",
    ),
    "num_batches_tracked not counted": (
        scratch_class(count_batches=False),
        "num_batches_tracked",
    ),
    "momentum=None not handled": (scratch_class(handle_none=False), "momentum=None"),
    "normalises with the unbiased variance": (
        scratch_class(normalise_unbiased=True),
        "normalised with the unbiased variance",
    ),
    "unbiased factor counts examples only": (
        scratch_class(count="examples"),
        "n counts every value",
    ),
    "statistics outside the graph": (
        scratch_class(stats_without_grad=True),
        "gradient differs",
    ),
    "no input validation": (scratch_class(validate=False), "did not raise ValueError"),
}


def fold_variant(
    *,
    eps=True,
    subtract_mean=True,
    add_beta=True,
    scale_bias=True,
    sequential=False,
    in_place=False,
    copy_settings=True,
    make_bias=True,
):
    import torch
    from torch import nn

    def fold(layer, bn):
        if sequential:
            return nn.Sequential(layer, bn)
        std = torch.sqrt(bn.running_var + (bn.eps if eps else 0.0))
        scale = bn.weight / std
        own = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        shift = -bn.running_mean * scale if subtract_mean else 0.0
        bias = (
            (own * scale if scale_bias else own)
            + shift
            + (bn.bias if add_beta else 0.0)
        )
        if isinstance(layer, nn.Linear):
            new = (
                layer
                if in_place
                else nn.Linear(layer.in_features, layer.out_features, bias=make_bias)
            )
        else:
            kwargs = (
                dict(stride=layer.stride, padding=layer.padding)
                if copy_settings
                else {}
            )
            new = (
                layer
                if in_place
                else nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    bias=make_bias,
                    **kwargs,
                )
            )
        new = new.to(layer.weight)
        shape = [-1] + [1] * (layer.weight.dim() - 1)
        with torch.no_grad():
            weight = layer.weight * scale.view(shape)
            new.weight.copy_(weight)
            if new.bias is not None:
                new.bias.copy_(bias)
            elif in_place:
                new.bias = nn.Parameter(bias)
        return new

    return fold


FOLD = {
    "no eps": (fold_variant(eps=False), "eps is missing"),
    "mean not subtracted": (
        fold_variant(subtract_mean=False),
        "running mean is not subtracted",
    ),
    "beta forgotten": (fold_variant(add_beta=False), "beta is missing"),
    "own bias not scaled": (fold_variant(scale_bias=False), "own bias is not scaled"),
    "returns a Sequential": (fold_variant(sequential=True), "returned a Sequential"),
    "changes the layer in place": (fold_variant(in_place=True), "in place"),
    "conv settings not copied": (
        fold_variant(copy_settings=False),
        "copy every setting",
    ),
    "no bias created": (fold_variant(make_bias=False), "has no bias"),
}


# --------------------------------------------------------------------------
# lesson 04: batch renormalization
# --------------------------------------------------------------------------


def renorm_forward(
    x, gamma, beta, running_mean, running_std, rmax, dmax, eps=1e-5, r=None, d=None
):
    """The notebook's given NumPy forward pass (not an exercise)."""
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    if r is None:
        r = np.clip(std / running_std, 1.0 / rmax, rmax)
    if d is None:
        d = np.clip((mu - running_mean) / running_std, -dmax, dmax)
    x_hat = (x - mu) / std
    y_hat = x_hat * r + d
    return gamma * y_hat + beta, (x_hat, y_hat, std, r, gamma), (r, d)


def renorm_backward(dout, cache, *, with_r=True, dgamma_from="y_hat", sum_params=True):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * (r if with_r else 1.0)
    dx = (g - g.mean(0) - x_hat * (g * x_hat).mean(0)) / std
    source = y_hat if dgamma_from == "y_hat" else x_hat
    dgamma = (dout * source).sum(0) if sum_params else dout * source
    return dx, dgamma, dout.sum(0)


RENORM_BACKWARD = {
    "misses the factor r": (
        lambda d, c: renorm_backward(d, c, with_r=False),
        "misses the factor r",
    ),
    "dgamma from x_hat": (
        lambda d, c: renorm_backward(d, c, dgamma_from="x_hat"),
        "dgamma uses x_hat",
    ),
    "dgamma not summed": (
        lambda d, c: renorm_backward(d, c, sum_params=False),
        "not summed",
    ),
    "returns None": (lambda d, c: None, "returned None"),
}


def renorm_class(
    *,
    detach=True,
    clip_r=True,
    clip_d=True,
    std_update="std",
    eval_uses_batch=False,
    attributes=True,
    validate=True,
    momentum_on="new",
    rebind_buffers=False,
):
    import torch
    from torch import nn

    class Renorm(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self._fixed = (rmax, dmax)
            self.rmax, self.dmax = rmax, dmax
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_std", torch.ones(num_features))
            self.num_features = num_features

        def forward(self, x):
            if validate and x.shape[1] != self.num_features:
                raise ValueError("channels")
            dims = [0] if x.dim() == 2 else [0, 2, 3]
            view = [1, -1] + [1] * (x.dim() - 2)
            rmax, dmax = (self.rmax, self.dmax) if attributes else self._fixed
            if not (self.training or eval_uses_batch):
                x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
                return x_hat * self.weight.view(view) + self.bias.view(view)
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            std = torch.sqrt(var + self.eps)
            s, m = (std.detach(), mean.detach()) if detach else (std, mean)
            r = s / self.running_std
            d = (m - self.running_mean) / self.running_std
            if clip_r:
                r = r.clamp(1 / rmax, rmax)
            if clip_d:
                d = d.clamp(-dmax, dmax)
            if not self.training:  # eval mode normalising with the batch
                r, d = torch.ones_like(r), torch.zeros_like(d)
            x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            if self.training:
                with torch.no_grad():
                    a = self.momentum
                    new_std = {
                        "std": std,
                        "var": var + self.eps,
                        "no eps": torch.sqrt(var),
                    }[std_update]
                    if rebind_buffers:  # new tensors: the graph's old ones stay intact
                        self.running_mean = self.running_mean + a * (
                            mean - self.running_mean
                        )
                        self.running_std = self.running_std + a * (
                            new_std - self.running_std
                        )
                    elif momentum_on == "new":
                        self.running_mean += a * (mean - self.running_mean)
                        self.running_std += a * (new_std - self.running_std)
                    else:
                        self.running_mean.copy_(mean + a * (self.running_mean - mean))
                        self.running_std.copy_(
                            new_std + a * (self.running_std - new_std)
                        )
            return x_hat * self.weight.view(view) + self.bias.view(view)

    return Renorm


RENORM = {
    "gradient through r and d": (
        renorm_class(detach=False, rebind_buffers=True),
        "flows through r and d",
    ),
    "gradient through r and d, buffers in place": (
        renorm_class(detach=False),
        "detached statistics",
    ),
    "no clipping": (renorm_class(clip_r=False, clip_d=False), "not clipped"),
    "r not clipped": (renorm_class(clip_r=False), "r is not clipped"),
    "d not clipped": (renorm_class(clip_d=False), "d is not clipped"),
    "running std updated with the variance": (
        renorm_class(std_update="var"),
        "updated with the variance",
    ),
    "running std without eps": (renorm_class(std_update="no eps"), "without eps"),
    "eval uses batch statistics": (
        renorm_class(eval_uses_batch=True),
        "eval mode still uses the batch",
    ),
    "rmax and dmax fixed at construction": (
        renorm_class(attributes=False),
        "changed nothing",
    ),
    "momentum on the old value": (
        renorm_class(momentum_on="old"),
        "momentum weighs the old value",
    ),
    "no input validation": (renorm_class(validate=False), "ValueError"),
}


def schedule_variant(kind):
    def schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        def ramp(t, length, final, start=0.0):
            return start + (final - start) * min(1.0, max(0.0, t) / length)

        t = step - warmup
        if kind == "no warm-up delay":
            return ramp(step, r_steps, rmax_final, 1.0), ramp(step, d_steps, dmax_final)
        if kind == "swapped":
            return ramp(t, d_steps, rmax_final, 1.0), ramp(t, r_steps, dmax_final)
        if kind == "uncapped":
            return (
                1.0 + (rmax_final - 1.0) * max(0.0, t) / r_steps,
                dmax_final * max(0.0, t) / d_steps,
            )
        if kind == "constant finals":
            return ramp(t, r_steps, 3.0, 1.0), ramp(t, d_steps, 5.0)
        if kind == "returns one value":
            return ramp(t, r_steps, rmax_final, 1.0)
        raise AssertionError(kind)

    return schedule


SCHEDULE = {
    "ramps from step 0": (
        schedule_variant("no warm-up delay"),
        "start after the warm-up",
    ),
    "ramps swapped": (schedule_variant("swapped"), "swapped"),
    "not capped": (schedule_variant("uncapped"), "keep growing"),
    "ignores the final values": (schedule_variant("constant finals"), "ignored"),
    "returns one value": (schedule_variant("returns one value"), "tuple of 2"),
}


def _renorm_mutates(dout, cache):
    dout -= dout.mean(0)  # changes the caller's array
    return renorm_backward(dout, cache)


RENORM_BACKWARD.update(
    {
        "NaN dx": (
            lambda d, c: (
                renorm_backward(d, c)[0] * np.nan,
                *renorm_backward(d, c)[1:],
            ),
            "NaN",
        ),
        "raises TypeError": (lambda d, c: d.sum(foo=1), "raised TypeError"),
        "transposed dx": (
            lambda d, c: (renorm_backward(d, c)[0].T, *renorm_backward(d, c)[1:]),
            "axes are swapped",
        ),
        "mutates dout": (_renorm_mutates, "in place"),
    }
)


def _schedule_raises(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    return step + "steps"


SCHEDULE.update(
    {
        "returns None": (lambda *a, **k: None, "returned None"),
        "raises TypeError": (_schedule_raises, "raised TypeError"),
        "returns three values": (lambda *a, **k: (1.0, 0.0, 0.0), "tuple of 2"),
    }
)
