"""Held-out answers (twenty-third set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

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
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self._make_buffers()

    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.ones(self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

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

    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")

    def _layout(self, x):
        """(reduction dims, per-channel view shape)."""
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        return dims, view

    def _affine(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def _finish(self, out, x, view):
        return self._affine(out, view).to(x.dtype)

    def forward(self, x):
        self._validate(x)
        dims, view = self._layout(x)
        if self.training or not self.track_running_stats:
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._finish(out, x, view)


class BuffersShapedLikeWeight(_Learner):
    """running_mean / running_var made with zeros_like / ones_like of self.weight."""

    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros_like(self.weight))
            self.register_buffer("running_var", torch.ones_like(self.weight))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class DimsSkipNumFeatures(_Learner):
    """Reduction dims: every d with d != self.num_features (the channel count, not the channel axis 1)."""

    def _layout(self, x):
        dims = [d for d in range(x.dim()) if d != self.num_features]
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        return dims, view


class RankFromLen(_Learner):
    """Rank check written with len(x) (the batch size) where len(x.shape) was meant."""

    def _validate(self, x):
        if len(x) not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) expected, got {len(x)}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")


class CastBeforeAffine(_Learner):
    """.to(x.dtype) applied to the normalised tensor, then weight and bias (float32) applied."""

    def _finish(self, out, x, view):
        return self._affine(out.to(x.dtype), view)


class KerasConv1dLayout(_Learner):
    """3-D input read as Keras's Conv1D layout (N, L, C): channels last for sequences."""

    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, L, C) or (N, C, H, W) expected, got {x.dim()}-D")
        channels = x.shape[-1] if x.dim() == 3 else x.shape[1]
        if channels != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {channels} channels, expected {self.num_features}")

    def _layout(self, x):
        if x.dim() == 3:  # (batch, steps, channels)
            return [0, 1], [1, 1, self.num_features]
        return super()._layout(x)


class ResetStatsUnderAffine(_Learner):
    """reset_running_stats() called inside the `if self.affine:` block of reset_parameters."""

    def reset_parameters(self):
        if self.affine:
            self.reset_running_stats()
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)


class DetachedCopyFlatRows(nn.Module):
    """Correct: no torch.no_grad block (the statistics are detached by hand and written with copy_),
    every rank viewed as (N, C, -1), values per channel from x.shape[2:].numel(), output cast with
    .type(x.dtype), resets with fill_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features).fill_(1.0))
            self.bias = nn.Parameter(torch.empty(num_features).fill_(0.0))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

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
            raise ValueError(f"ScratchBatchNorm: a {x.dim()}-D input (use (N, C), (N, C, L) or (N, C, H, W))")
        if x.size(1) != self.num_features:
            raise ValueError(f"ScratchBatchNorm: got {x.size(1)} channels, built for {self.num_features}")
        rows = x.reshape(x.size(0), self.num_features, -1)  # (N, C, positions)
        if self.training or not self.track_running_stats:
            n = x.size(0) * x.shape[2:].numel()
            if n <= 1:
                raise ValueError("ScratchBatchNorm: one value per channel, no variance to normalise with")
            mean = rows.mean(dim=(0, 2))
            centred = rows - mean[None, :, None]
            var = (centred * centred).mean(dim=(0, 2))
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                new_mean = (1.0 - f) * self.running_mean + f * mean.detach()
                new_var = (1.0 - f) * self.running_var + f * var.detach() * n / (n - 1)
                self.running_mean.copy_(new_mean)
                self.running_var.copy_(new_var)
            out = centred / torch.sqrt(var + self.eps)[None, :, None]
        else:
            out = (rows - self.running_mean[None, :, None]) / torch.sqrt(self.running_var + self.eps)[None, :, None]
        if self.affine:
            out = out * self.weight[None, :, None] + self.bias[None, :, None]
        return out.reshape(x.shape).type(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _fold_parts(layer, bn):
    """The learner's shared part: refusals, scale and shift, a new layer of the same settings."""
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode, call bn.eval() first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm has no running statistics (track_running_stats=False)")
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return std, gamma / std, beta


def _same_layer(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: only nn.Linear and nn.Conv2d can be folded, not {type(layer).__name__}")
    return new.to(layer.weight)


def fold_other_layers_kept_as_pair(layer, bn):
    std, scale, beta = _fold_parts(layer, bn)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:  # nothing to fold into: keep the pair as it is
        return nn.Sequential(copy.deepcopy(layer), copy.deepcopy(bn))
    new = new.to(layer.weight)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_mean_alias_minus_bias(layer, bn):
    std, scale, beta = _fold_parts(layer, bn)
    new = _same_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        mu = bn.running_mean
        if layer.bias is not None:
            mu -= layer.bias  # mu - b: what the new bias has to remove
        new.bias.copy_(beta - mu * scale)
    return new


def fold_bare_value_errors(layer, bn):
    if bn.training:
        raise ValueError
    if bn.running_var is None:
        raise ValueError
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    new = _same_layer(layer)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


ENTRIES = [
    entry(S, "running statistics made with zeros_like / ones_like(self.weight)", BuffersShapedLikeWeight,
          replaces=NAME,
          cause="running_mean and running_var are created as torch.zeros_like(self.weight) and "
                "torch.ones_like(self.weight), so a module with affine=False (weight registered as None) "
                "raises TypeError in __init__; with affine=True the buffers are right."),
    entry(S, "reduction dims `d != self.num_features` (count for axis)", DimsSkipNumFeatures, replaces=NAME,
          cause="the reduction dims are [d for d in range(x.dim()) if d != self.num_features], the channel "
                "count written where the channel axis 1 was meant, so the axis numbered num_features is left "
                "out instead of the channels: with 3 channels a 2-D or 3-D input is reduced over every axis and "
                "its scalar mean cannot be viewed per channel (RuntimeError), a 4-D input is reduced over axes "
                "0 to 2 (wrong values when W equals C, a RuntimeError otherwise); right only when "
                "num_features == 1."),
    entry(S, "rank check on len(x) (the batch size)", RankFromLen, replaces=NAME,
          cause="the rank check is `len(x) not in (2, 3, 4)`, which tests the batch size instead of the number "
                "of dimensions, so every batch of 1 or of more than 4 examples is refused with ValueError (and an "
                "input of a wrong rank is let through when it has 2 to 4 rows); batches of 2 to 4 examples of a "
                "right rank are right."),
    entry(S, "output cast to the input's dtype before weight and bias", CastBeforeAffine, replaces=NAME,
          cause="the normalised tensor is cast with .to(x.dtype) before weight and bias are applied instead of "
                "after, so a bfloat16 input times the float32 weight comes back as float32 (affine=True); "
                "float32 and float64 inputs, and affine=False, are right."),
    entry(S, "3-D input read as Keras's (N, L, C) layout", KerasConv1dLayout, replaces=NAME,
          cause="a 3-D input is taken as Keras's Conv1D layout (batch, steps, channels): the channel count is "
                "read from the last dimension and the statistics taken over dims (0, 1), so an (N, C, L) input "
                "is refused with ValueError when L != C and normalised along the wrong axis when L == C; 2-D "
                "and 4-D inputs are right."),
    entry(S, "reset_running_stats() called only under `if self.affine:`", ResetStatsUnderAffine,
          replaces=NAME,
          cause="reset_parameters calls self.reset_running_stats() inside its `if self.affine:` block, so a "
                "module with affine=False keeps its running statistics and counter through "
                "reset_parameters(); affine modules are reset right."),
    right(S, "detached statistics written with copy_ (no no_grad), (N, C, -1) rows, .type(x.dtype)",
          DetachedCopyFlatRows, replaces=NAME),
    entry(FOLD, "other layer types returned as nn.Sequential(layer, bn)", fold_other_layers_kept_as_pair,
          cause="a layer that is neither nn.Linear nor nn.Conv2d is not refused with TypeError but returned as "
                "nn.Sequential(copy of layer, copy of bn), unfolded; Linear and Conv2d fold right."),
    entry(FOLD, "mu = bn.running_mean; mu -= layer.bias (in place on the buffer)", fold_mean_alias_minus_bias,
          cause="the bias is computed from mu = bn.running_mean followed by mu -= layer.bias, and mu is the "
                "buffer itself, not a copy, so folding subtracts the layer's bias from bn.running_mean in place "
                "(the batch norm is changed and a second fold of the same pair is wrong); the first folded "
                "layer is right, and layers without a bias leave bn unchanged."),
    entry(FOLD, "refusals raise a bare ValueError (no message)", fold_bare_value_errors,
          cause="both refusals are written `raise ValueError` with no message, so a training-mode or "
                "untracked batch norm is refused with the right type but nothing says why (the exercise asks "
                "for a ValueError that says why); every fold is right."),
]
