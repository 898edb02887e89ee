"""Lesson 03: answers to ``ScratchBatchNorm`` and ``fold_batchnorm`` (held out:
see ``tests/unseen``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from . import entry, right

# --------------------------------------------------------------------------
# ScratchBatchNorm
# --------------------------------------------------------------------------


def scratch(
    *,
    cumulative_before_count=False,
    eval_eps=True,
    count_dtype=torch.long,
    buffer_dtype=torch.float32,
    stats="right",  # "naive reshape", "transpose reshape", "one pass"
    honour_affine=True,
    mean_outside_no_grad=False,
    reset_parameters_resets_stats=True,
    dims_allowed=(2, 3, 4),
    guard="values",  # "examples": refuses N = 1 whatever the length
    untracked_eval="batch",  # "buffers": eval reads the (None) buffers
    rebind=False,
):
    """A ScratchBatchNorm class with one learner's slip switched on."""

    class ScratchBatchNorm(nn.Module):
        def __init__(
            self,
            num_features,
            eps=1e-5,
            momentum=0.1,
            affine=True,
            track_running_stats=True,
        ):
            super().__init__()
            self.num_features, self.eps, self.momentum = num_features, eps, momentum
            self.affine = affine
            self.track_running_stats = track_running_stats
            if affine or not honour_affine:
                self.weight = nn.Parameter(torch.ones(num_features))
                self.bias = nn.Parameter(torch.zeros(num_features))
            else:
                self.register_parameter("weight", None)
                self.register_parameter("bias", None)
            if track_running_stats:
                kw = dict(dtype=buffer_dtype)
                self.register_buffer("running_mean", torch.zeros(num_features, **kw))
                self.register_buffer("running_var", torch.ones(num_features, **kw))
                count = torch.tensor(0, dtype=count_dtype)
                self.register_buffer("num_batches_tracked", count)
            else:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    self.register_buffer(name, None)

        def reset_running_stats(self):
            if self.track_running_stats:
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

        def reset_parameters(self):
            if reset_parameters_resets_stats:
                self.reset_running_stats()
            if self.weight is not None:
                nn.init.ones_(self.weight)
                nn.init.zeros_(self.bias)

        def _stats(self, x):
            c = x.shape[1]
            if stats == "naive reshape" and x.dim() > 2:
                rows = x.reshape(c, -1)  # not the channels: memory order
                return rows.mean(1), rows.var(1, correction=0)
            if stats == "transpose reshape":
                rows = x.transpose(0, 1).reshape(c, -1)
                return rows.mean(1), rows.var(1, correction=0)
            dims = [0, *range(2, x.dim())]
            mean = x.mean(dims)
            if stats == "one pass":
                x64 = x.double()
                var = ((x64 * x64).mean(dims) - mean.double() ** 2).to(x.dtype)
                return mean, var
            return mean, x.var(dims, correction=0)

        def _update(self, mean, var, n):
            self.num_batches_tracked += 1
            factor = self.momentum
            if factor is None:
                seen = int(self.num_batches_tracked)
                factor = 1.0 / max(seen - 1, 1) if cumulative_before_count else 1 / seen
            unbiased = var * n / (n - 1)
            if rebind:
                self.running_mean = (
                    (1 - factor) * self.running_mean + factor * mean
                ).detach()
                self.running_var = (
                    (1 - factor) * self.running_var + factor * unbiased
                ).detach()
                return
            if mean_outside_no_grad:
                self.running_mean.mul_(1 - factor).add_(factor * mean)
                with torch.no_grad():
                    self.running_var.mul_(1 - factor).add_(factor * unbiased)
                return
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(factor * mean)
                self.running_var.mul_(1 - factor).add_(factor * unbiased)

        def forward(self, x):
            if x.dim() not in dims_allowed:
                raise ValueError(f"unsupported input of {x.dim()} dimensions")
            if x.shape[1] != self.num_features:
                raise ValueError(f"expected {self.num_features} channels")
            view = [1, -1] + [1] * (x.dim() - 2)
            batch = self.training or (
                not self.track_running_stats and untracked_eval == "batch"
            )
            if batch:
                n = x.numel() // x.shape[1]
                if (x.shape[0] if guard == "examples" else n) < 2:
                    raise ValueError("need more than one value per channel")
                mean, var = self._stats(x)
                if self.training and self.track_running_stats:
                    self._update(mean, var, n)
                eps = self.eps
            else:
                mean, var = self.running_mean, self.running_var
                eps = self.eps if eval_eps else 0.0
            out = (x - mean.view(view)) / torch.sqrt(var.view(view) + eps)
            if self.weight is not None:
                out = out * self.weight.view(view) + self.bias.view(view)
            return out.to(x.dtype)

    return ScratchBatchNorm


# --------------------------------------------------------------------------
# fold_batchnorm
# --------------------------------------------------------------------------

SETTINGS = ("stride", "padding", "dilation", "groups", "padding_mode")


def folder(
    *,
    settings=SETTINGS,
    keep_dtype=True,
    fixed_eps=None,
    own_bias=True,
    column_scale=False,
    sqrt=True,
    scale_bn_in_place=False,
    refuse_untracked=True,
    affine_aware=True,
):
    def fold_batchnorm(layer, bn):
        if bn.training:
            raise ValueError("fusion only for eval")
        if refuse_untracked and bn.running_var is None:
            raise ValueError("no running statistics to fold")
        eps = bn.eps if fixed_eps is None else fixed_eps
        var = bn.running_var + eps
        std = torch.sqrt(var) if sqrt else var
        if affine_aware and not bn.affine:
            gamma, beta = torch.ones_like(std), torch.zeros_like(std)
        else:
            gamma, beta = bn.weight, bn.bias
        if scale_bn_in_place:
            with torch.no_grad():
                gamma = bn.weight.div_(std)
            scale = gamma
        else:
            scale = gamma / std
        b = layer.bias if (own_bias and layer.bias is not None) else 0.0
        if isinstance(layer, nn.Linear):
            new = nn.Linear(layer.in_features, layer.out_features)
        else:
            kw = {k: getattr(layer, k) for k in settings}
            new = nn.Conv2d(
                layer.in_channels, layer.out_channels, layer.kernel_size, **kw
            )
        if keep_dtype:
            new = new.to(layer.weight.dtype)
        with torch.no_grad():
            if column_scale:  # fine for a Linear's (out, in) weight only
                new.weight.copy_(layer.weight * scale[:, None])
            else:
                shape = [-1] + [1] * (layer.weight.dim() - 1)
                new.weight.copy_(layer.weight * scale.view(shape))
            new.bias.copy_((b - bn.running_mean) * scale + beta)
        return new

    return fold_batchnorm


def fold_by_deepcopy(layer, bn):
    """Copy the layer (every setting comes along), then rescale its tensors."""
    if bn.training or bn.running_var is None:
        raise ValueError("fold_batchnorm: needs a batch norm in eval mode with stats")
    new = copy.deepcopy(layer)
    inv = torch.rsqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(inv)
    beta = bn.bias if bn.affine else torch.zeros_like(inv)
    with torch.no_grad():
        new.weight.mul_((gamma * inv).reshape(-1, *[1] * (new.weight.dim() - 1)))
        old = layer.bias if layer.bias is not None else torch.zeros_like(inv)
        bias = beta + (old - bn.running_mean) * gamma * inv
        if new.bias is None:
            new.bias = nn.Parameter(bias.detach().clone())
        else:
            new.bias.copy_(bias)
    return new


def fold_functional_weights(layer, bn):
    """W' = diag(s) W and b' = s (b - mu) + beta, with s built once in float64."""
    if bn.training:
        raise ValueError("fusion only for eval")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fusion needs running statistics")
    s = (bn.weight if bn.affine else 1.0) / (bn.running_var + bn.eps).sqrt()
    s = s.double()
    w = torch.einsum("o,o...->o...", s, layer.weight.double())
    b0 = layer.bias.double() if layer.bias is not None else 0.0
    shift = bn.bias.double() if bn.affine else 0.0
    b = s * (b0 - bn.running_mean.double()) + shift
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            padding_mode=layer.padding_mode,
        )
    new = new.to(layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        new.bias.copy_(b)
    return new


S, F = "scratch_batchnorm", "fold_batchnorm"


def _s(name, cause, **kw):
    return entry(S, name, scratch(**kw), cause, replaces="ScratchBatchNorm")


def _s_right(name, **kw):
    return right(S, name, scratch(**kw), replaces="ScratchBatchNorm")


def _f(name, cause, **kw):
    return entry(F, name, folder(**kw), cause)


ENTRIES = [
    _s(
        "cumulative average one batch late",
        "with momentum=None the factor is 1/(count before this batch), so the "
        "cumulative average is off by one batch",
        cumulative_before_count=True,
    ),
    _s(
        "eval without eps",
        "eval mode divides by sqrt(running_var) without eps",
        eval_eps=False,
    ),
    _s(
        "num_batches_tracked as a float",
        "num_batches_tracked is created as a float tensor, not a long one",
        count_dtype=torch.float32,
    ),
    _s(
        "float64 buffers",
        "the running buffers are created in float64, so they are not float32 "
        "as torch's are when the module is not converted",
        buffer_dtype=torch.float64,
    ),
    _s(
        "reshape to (C, -1) without transposing",
        "for 3-D and 4-D input the statistics come from x.reshape(C, -1), which "
        "mixes channels (no transpose first)",
        stats="naive reshape",
    ),
    _s(
        "affine=False ignored",
        "with affine=False it still creates weight and bias parameters",
        honour_affine=False,
    ),
    _s(
        "running_mean updated outside no_grad",
        "running_mean is updated in place outside torch.no_grad(), so it joins "
        "the autograd graph",
        mean_outside_no_grad=True,
    ),
    _s(
        "reset_parameters keeps the statistics",
        "reset_parameters() resets weight and bias but not the running statistics",
        reset_parameters_resets_stats=False,
    ),
    _s(
        "refuses (N, C, L)",
        "3-D input (N, C, L) is refused: only 2-D and 4-D are accepted",
        dims_allowed=(2, 4),
    ),
    _s(
        "refuses one example of length L",
        "the one-value guard tests N (x.shape[0]) instead of the values per "
        "channel, so one example with L > 1 positions is refused",
        guard="examples",
    ),
    _s(
        "untracked eval reads None buffers",
        "with track_running_stats=False eval mode still reads the running buffers, "
        "which are None, instead of using the batch statistics",
        untracked_eval="buffers",
    ),
    _s_right("buffers rebound to detached tensors", rebind=True),
    _s_right("channels first, then reshape", stats="transpose reshape"),
    _s_right("one-pass variance in float64", stats="one pass"),
    _f(
        "dilation and groups not copied",
        "the folded conv copies stride, padding and padding_mode but not "
        "dilation and groups",
        settings=("stride", "padding", "padding_mode"),
    ),
    _f(
        "crashes on affine=False",
        "uses bn.weight and bn.bias without checking bn.affine, so a batch norm "
        "with affine=False (weight None) makes it fail",
        affine_aware=False,
    ),
    _f(
        "new layer left in float32",
        "the new layer is created in the default float32 and never converted to "
        "the original's dtype, so the folded weights lose precision",
        keep_dtype=False,
    ),
    _f(
        "eps fixed at 1e-5",
        "a fixed eps of 1e-5 is used instead of bn.eps",
        fixed_eps=1e-5,
    ),
    _f(
        "own bias dropped",
        "the layer's own bias is left out of the new bias",
        own_bias=False,
    ),
    _f(
        "scale[:, None] for every layer",
        "the weight is scaled with scale[:, None], which broadcasts only against "
        "a Linear's 2-D weight, not a conv's 4-D one",
        column_scale=True,
    ),
    _f(
        "no square root",
        "the scale divides by running_var + eps instead of its square root",
        sqrt=False,
    ),
    _f(
        "divides bn.weight in place",
        "bn.weight is divided in place to build the scale, which changes the "
        "original batch norm",
        scale_bn_in_place=True,
    ),
    _f(
        "untracked batch norm not refused",
        "a batch norm with track_running_stats=False is not refused, so it "
        "fails with a TypeError on running_var None",
        refuse_untracked=False,
    ),
    right(F, "deepcopy the layer, then rescale", fold_by_deepcopy),
    right(F, "einsum in float64", fold_functional_weights),
]
