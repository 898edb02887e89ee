"""Held-out answers (twenty-fifth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Learner(nn.Module):
    """A right learner's module in small methods; each wrong entry below overrides exactly one."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self._set_momentum(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._make_parameters()
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _set_momentum(self, momentum):
        self.momentum = momentum

    def _make_parameters(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _use_batch_stats(self):
        return self.training or not self.track_running_stats

    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")

    def _count(self):
        self.num_batches_tracked += 1

    def _keep(self, mean, var):
        pass

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._use_batch_stats():
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            self._keep(mean, var)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._count()
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class BiasStartsAtOne(_Learner):
    """The bias line copied from the weight line: both made with torch.ones."""

    def _make_parameters(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.ones(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)


class ResetForgetsCounter(_Learner):
    """reset_running_stats resets the two running buffers and forgets num_batches_tracked."""

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)


class SpatialDimsOffByOne(_Learner):
    """Reduction dims written [0] + list(range(2, x.dim() - 1)): the last spatial axis is left out."""

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim() - 1))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._use_batch_stats():
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._count()
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class PooledVarianceMerge(_Learner):
    """Running variance blended as a pooled (Chan) merge: the spread between the two means added."""

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._use_batch_stats():
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._count()
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    spread = f * (1 - f) * (mean - self.running_mean) ** 2  # variance between the two means
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)) + spread)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class BiasOutsideAffineBranch(_Learner):
    """The bias addition dedented out of `if self.affine:`."""

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._use_batch_stats():
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._count()
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view)
        out = out + self.bias.view(view)
        return out.to(x.dtype)


class ChannelRowsEinsum(nn.Module):
    """Correct: channels as rows (transpose then reshape), moments by einsum on centred rows, running
    buffers moved with torch.add(..., alpha=) into copy_, eval as a precomputed scale and shift (addcmul)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", nn.Parameter(torch.ones(num_features)) if affine else None)
        self.register_parameter("bias", nn.Parameter(torch.zeros(num_features)) if affine else None)
        for name, value in (("running_mean", torch.zeros(num_features)), ("running_var", torch.ones(num_features)),
                            ("num_batches_tracked", torch.zeros((), dtype=torch.long))):
            self.register_buffer(name, value if track_running_stats else None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.fill_(0.0)
            self.running_var.fill_(1.0)
            self.num_batches_tracked.fill_(0)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.fill_(0.0)

    def forward(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm: input must be 2-D, 3-D or 4-D, not {x.dim()}-D")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {c}")
        shape = (1, c) + (1,) * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            rows = x.transpose(0, 1).reshape(c, -1)  # (C, values)
            n = rows.shape[1]
            if n <= 1:
                raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
            mean = rows.sum(1) / n
            centred = rows - mean[:, None]
            var = torch.einsum("cv,cv->c", centred, centred) / n
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    a = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
                    self.running_mean.copy_(torch.add(self.running_mean, mean - self.running_mean, alpha=a))
                    self.running_var.copy_(torch.add(self.running_var, var * n / (n - 1) - self.running_var,
                                                     alpha=a))
            y = centred / torch.sqrt(var + self.eps)[:, None]
            y = y.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
            if self.affine:
                y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
            return y.to(x.dtype)
        inv = torch.rsqrt(self.running_var + self.eps)
        scale = inv * self.weight if self.affine else inv
        shift = (self.bias if self.affine else torch.zeros_like(inv)) - self.running_mean * scale
        return torch.addcmul(shift.reshape(shape), x, scale.reshape(shape)).to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode, call bn.eval() first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")


def _empty_like(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: only nn.Linear and nn.Conv2d can be folded, not {type(layer).__name__}")
    return new.to(layer.weight)


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return gamma / std, beta


def fold_bias_or_zeros(layer, bn):
    _refuse(bn)
    scale, beta = _scale_shift(bn)
    new = _empty_like(layer)
    b = layer.bias or torch.zeros_like(scale)  # the layer's bias, or zeros if it has none
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_linear_sizes_swapped(layer, bn):
    _refuse(bn)
    scale, beta = _scale_shift(bn)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.out_features, layer.in_features, bias=True).to(layer.weight)
    else:
        new = _empty_like(layer)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_scale_floor_divided(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight // std if bn.affine else 1.0 / std
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    new = _empty_like(layer)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_bias_precedence(layer, bn):
    _refuse(bn)
    scale, beta = _scale_shift(bn)
    new = _empty_like(layer)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_(b - bn.running_mean * scale + beta)
    return new


def fold_einsum_addcmul(layer, bn):
    """Correct: settings gathered into a dict for type(layer)(**settings), weight scaled with einsum over
    the output axis, bias by addcmul, the refusals tested through getattr."""
    if getattr(bn, "training"):
        raise ValueError("fold_batchnorm: refuse to fold a batch norm in training mode")
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise ValueError("fold_batchnorm: no running statistics to fold")
    if type(layer) is nn.Linear or isinstance(layer, nn.Linear):
        settings = dict(in_features=layer.in_features, out_features=layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        settings = dict(in_channels=layer.in_channels, out_channels=layer.out_channels,
                        kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups, padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm cannot fold a {type(layer).__name__}")
    new = type(layer)(**settings, bias=True, dtype=layer.weight.dtype, device=layer.weight.device)
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        s = s * bn.weight
        beta = bn.bias
    else:
        beta = torch.zeros_like(s)
    own = torch.zeros_like(s) if layer.bias is None else layer.bias
    with torch.no_grad():
        new.weight.copy_(torch.einsum("o...,o->o...", layer.weight, s))
        new.bias.copy_(torch.addcmul(beta, own - bn.running_mean, s))
    return new


ENTRIES = [
    entry(S, "bias line copied from the weight line (torch.ones)", BiasStartsAtOne, replaces=NAME,
          cause="the bias parameter is created with torch.ones (the weight line copied) instead of torch.zeros, "
                "so a fresh module adds 1 to every normalised output; normalisation, gradients' shapes and the "
                "running statistics are right (reset_parameters sets the bias back to 0)."),
    entry(S, "reset_running_stats forgets num_batches_tracked", ResetForgetsCounter, replaces=NAME,
          cause="reset_running_stats zeroes running_mean and fills running_var with 1 but leaves "
                "num_batches_tracked as it was, so after a reset the counter keeps counting from its old value "
                "(and with momentum=None the cumulative average then gives the new batches the wrong weights); "
                "forward passes before any reset are right."),
    entry(S, "reduction dims range(2, x.dim() - 1), last spatial axis left out", SpatialDimsOffByOne,
          replaces=NAME,
          cause="the reduction dims are [0] + list(range(2, x.dim() - 1)), whose end is one short, so for 3-D "
                "and 4-D inputs the last spatial axis is not reduced: the statistics keep a per-position axis "
                "and viewing them per channel fails (RuntimeError) in training mode unless that axis has size "
                "1; 2-D inputs and eval mode are right."),
    entry(S, "running variance blended as a pooled (Chan) merge", PooledVarianceMerge, replaces=NAME,
          cause="the running variance update adds f * (1 - f) * (mean - running_mean) ** 2, the between-means "
                "term of a pooled variance merge, to torch's blend, so running_var grows too large whenever the "
                "batch mean differs from the running mean (from the first batch on, unless its mean is 0); "
                "outputs in training mode and the running mean are right."),
    entry(S, "bias added outside `if self.affine:`", BiasOutsideAffineBranch, replaces=NAME,
          cause="the line adding the bias is dedented out of the `if self.affine:` block, so a module built with "
                "affine=False (bias None) raises AttributeError on None.view in every forward pass; with "
                "affine=True it is right."),
    right(S, "channel rows, einsum moments on centred rows, torch.add(alpha=) into copy_, addcmul eval",
          ChannelRowsEinsum, replaces=NAME),
    entry(FOLD, "`layer.bias or zeros` for the missing bias", fold_bias_or_zeros,
          cause="the layer's bias is taken as `layer.bias or torch.zeros_like(scale)`, whose truth test on a "
                "tensor of more than one value raises RuntimeError, so every layer with a bias of two or more "
                "channels crashes; layers without a bias (and one-channel ones) are folded right."),
    entry(FOLD, "new nn.Linear built as Linear(out_features, in_features)", fold_linear_sizes_swapped,
          cause="the new Linear is built as nn.Linear(layer.out_features, layer.in_features), sizes swapped, so "
                "its weight has the transposed shape and copying the scaled weight into it raises RuntimeError "
                "unless in_features == out_features (then it is right); Conv2d folds are right."),
    entry(FOLD, "scale written bn.weight // std (floor division)", fold_scale_floor_divided,
          cause="the per-channel scale is written bn.weight // std, floor division instead of /, so it is "
                "rounded down to a whole number (0 for gamma < std) and the folded weight and bias are wrong "
                "for affine batch norms; affine=False and refusals are right."),
    entry(FOLD, "bias written b - mean * scale + beta (parentheses lost)", fold_bias_precedence,
          cause="the new bias is written b - running_mean * scale + beta instead of (b - running_mean) * scale + "
                "beta, so the layer's own bias is not multiplied by the scale; layers without a bias and the "
                "folded weight are right."),
    right(FOLD, "type(layer)(**settings, dtype=, device=), einsum over the output axis, addcmul bias",
          fold_einsum_addcmul),
]
