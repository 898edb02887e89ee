"""Held-out answers (fourth set, part a), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"

# ---- ScratchBatchNorm: a learner's right class; each wrong entry overrides one piece ----


class _Learner(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._make_parameters()
        self._make_buffers()

    def _make_parameters(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    # -- pieces of forward ----------------------------------------------------------
    def _check_shape(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _check_count(self, x):
        if x.numel() // x.shape[1] < 2:
            raise ValueError("need more than one value per channel in training")

    def _dims(self, x):
        return [0] + list(range(2, x.dim()))

    def _shape(self, x):
        return [1, -1] + [1] * (x.dim() - 2)

    def _batch_stats(self, x):
        dims = self._dims(x)
        mean = x.mean(dim=dims)
        var = ((x - mean.view(self._shape(x))) ** 2).mean(dim=dims)
        return mean, var

    def _count(self):
        self.num_batches_tracked += 1

    def _update(self, mean, var, n):
        with torch.no_grad():
            self._count()
            f = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(mean, alpha=f)
            self.running_var.mul_(1 - f).add_(var * (n / (n - 1)), alpha=f)

    def _eval_stats(self, x):
        return self.running_mean, self.running_var

    def _affine(self, out, x):
        if self.affine:
            shape = self._shape(x)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    def forward(self, x):
        self._check_shape(x)
        if self.training or not self.track_running_stats:
            self._check_count(x)
            mean, var = self._batch_stats(x)
            if self.training and self.track_running_stats:
                self._update(mean, var, x.numel() // x.shape[1])
        else:
            mean, var = self._eval_stats(x)
        shape = self._shape(x)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, x).to(x.dtype)  # bfloat16 in, bfloat16 out


class UnbiasedNormalisation(_Learner):
    def _batch_stats(self, x):
        dims = self._dims(x)
        return x.mean(dim=dims), x.var(dim=dims)  # torch's default var

    def _update(self, mean, var, n):
        with torch.no_grad():
            self._count()
            f = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(mean, alpha=f)
            self.running_var.mul_(1 - f).add_(var, alpha=f)  # var is already unbiased


class NoOneValueGuard(_Learner):
    def _check_count(self, x):
        pass


class NoChannelCheck(_Learner):
    def _check_shape(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")


class ResetMakesNewBuffers(_Learner):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean = torch.zeros(self.num_features)
            self.running_var = torch.ones(self.num_features)
            self.num_batches_tracked = torch.tensor(0, dtype=torch.long)


class ResetParametersStatsOnly(_Learner):
    def reset_parameters(self):
        self.reset_running_stats()


class UntrackedStillUpdates(_Learner):
    def forward(self, x):
        self._check_shape(x)
        if self.training:
            self._check_count(x)
            mean, var = self._batch_stats(x)
            self._update(mean, var, x.numel() // x.shape[1])
        elif self.track_running_stats:
            mean, var = self._eval_stats(x)
        else:
            self._check_count(x)
            mean, var = self._batch_stats(x)
        shape = self._shape(x)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, x).to(x.dtype)  # bfloat16 in, bfloat16 out


class CounterOnlyCumulative(_Learner):
    def _update(self, mean, var, n):
        with torch.no_grad():
            if self.momentum is None:
                self.num_batches_tracked += 1
                f = 1.0 / int(self.num_batches_tracked)
            else:
                f = self.momentum
            self.running_mean.mul_(1 - f).add_(mean, alpha=f)
            self.running_var.mul_(1 - f).add_(var * (n / (n - 1)), alpha=f)


class WeightNotReshaped(_Learner):
    def _affine(self, out, x):
        if self.affine:
            out = out * self.weight + self.bias
        return out


class FourDOverHeightOnly(_Learner):
    def _dims(self, x):
        return [0] if x.dim() == 2 else [0, 2]  # the positions' dimension


class EvalBatchVariance(_Learner):
    def _eval_stats(self, x):
        dims = self._dims(x)
        var = ((x - x.mean(dim=dims).view(self._shape(x))) ** 2).mean(dim=dims)
        return self.running_mean, var


class PlainTensorAffine(_Learner):
    def _make_parameters(self):
        if self.affine:
            self.weight = torch.ones(self.num_features)
            self.bias = torch.zeros(self.num_features)
        else:
            self.weight = None
            self.bias = None


class CounterNotPersistent(_Learner):
    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.ones(self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long),
                                 persistent=False)
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class CounterTwice(_Learner):
    def forward(self, x):
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1  # count the batch
        return super().forward(x)


class AffineFalseForward(_Learner):
    def _affine(self, out, x):
        shape = self._shape(x)
        return out * self.weight.view(shape) + self.bias.view(shape)


# ---- correct alternative ---------------------------------------------------------------


class StdMeanKeepdim(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        for name, value in [("running_mean", torch.zeros(num_features)),
                            ("running_var", torch.ones(num_features)),
                            ("num_batches_tracked", torch.zeros((), dtype=torch.int64))]:
            self.register_buffer(name, value if track_running_stats else None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def forward(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError("input must be (N, C), (N, C, L) or (N, C, H, W)")
        if x.size(1) != self.num_features:
            raise ValueError(f"{x.size(1)} channels, expected {self.num_features}")
        dims = tuple(d for d in range(x.dim()) if d != 1)
        if self.training or not self.track_running_stats:
            count = x.numel() // x.size(1)
            if count <= 1:
                raise ValueError("one value per channel: no variance")
            std, mean = torch.std_mean(x, dim=dims, correction=0, keepdim=True)
            var = std * std
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    f = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                    self.running_mean.mul_(1 - f).add_(mean.flatten(), alpha=f)
                    self.running_var.mul_(1 - f).add_(var.flatten() * count / (count - 1), alpha=f)
        else:
            shape = [1, -1] + [1] * (x.dim() - 2)
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            shape = [1, -1] + [1] * (x.dim() - 2)
            out = torch.addcmul(self.bias.view(shape), out, self.weight.view(shape))
        return out.to(x.dtype)


# ---- fold_batchnorm ---------------------------------------------------------------------------


def _new_like(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        bias=True, padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return gamma / std, beta


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: bn must be in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics")


def _per_out(layer):
    return [-1] + [1] * (layer.weight.dim() - 1)


def fold_mean_times_gamma(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    gamma = bn.weight if bn.affine else torch.ones_like(s)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_(b * s - bn.running_mean * gamma + beta)
    return new


def fold_sequential(layer, bn):
    _refuse(bn)
    return nn.Sequential(copy.deepcopy(layer), copy.deepcopy(bn)).eval()


def fold_padding_mode_default(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    new = new.to(layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_copy_with_grad(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    new.weight.copy_(layer.weight * s.view(_per_out(layer)))  # no torch.no_grad()
    new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_linear_swapped(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.out_features, layer.in_features)  # "weight is (out, in)"
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        padding_mode=layer.padding_mode)
    new = new.to(layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_train_method(layer, bn):
    if bn.train:  # "is it in training mode?"
        raise ValueError("fold_batchnorm: bn must be in eval mode")
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_own_bias_unscaled(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_(b + beta - bn.running_mean * s)
    return new


def fold_divides_by_scale(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight / s.view(_per_out(layer)))  # "normalise the weight"
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_fusion_library(layer, bn):
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    if bn.training:
        raise ValueError("bn is in training mode: fold only for eval")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("bn keeps no running statistics")
    layer, bn = copy.deepcopy(layer).eval(), copy.deepcopy(bn)
    if not bn.affine:  # the fusion helpers multiply by bn.weight: give it gamma = 1, beta = 0
        bn.weight = nn.Parameter(torch.ones_like(bn.running_var))
        bn.bias = nn.Parameter(torch.zeros_like(bn.running_mean))
    if isinstance(layer, nn.Linear):
        return fuse_linear_bn_eval(layer, bn)
    if isinstance(layer, nn.Conv2d):
        return fuse_conv_bn_eval(layer, bn)
    raise TypeError(type(layer).__name__)


ENTRIES = [
    entry(S, "normalises with the unbiased variance", UnbiasedNormalisation, replaces=NAME,
          cause="normalises with torch's default x.var() (unbiased, N - 1) instead of the biased variance; the running update is right."),
    entry(S, "no one-value guard", NoOneValueGuard, replaces=NAME,
          cause="does not refuse a training batch with one value per channel (ValueError expected), so such a batch fails later inside the running update (ZeroDivisionError in the Bessel factor n/(n - 1))."),
    entry(S, "no channel-count check", NoChannelCheck, replaces=NAME,
          cause="does not check x.shape[1] against num_features, so a wrong channel count fails with a broadcasting RuntimeError instead of ValueError."),
    entry(S, "reset makes new float32 buffers", ResetMakesNewBuffers, replaces=NAME,
          cause="reset_running_stats assigns new torch.zeros/torch.ones tensors instead of resetting the buffers in place, so after .double() (or .to(device)) the reset buffers are float32 again."),
    entry(S, "reset_parameters leaves weight and bias", ResetParametersStatsOnly, replaces=NAME,
          cause="reset_parameters() only resets the running statistics; weight and bias are not set back to 1 and 0."),
    entry(S, "untracked module updates None buffers", UntrackedStillUpdates, replaces=NAME,
          cause="in training it updates the running statistics without checking track_running_stats, so with track_running_stats=False it calls methods on None and raises."),
    entry(S, "counter only counted for momentum=None", CounterOnlyCumulative, replaces=NAME,
          cause="increments num_batches_tracked only when momentum is None (it is needed only there), while PyTorch counts every training batch."),
    entry(S, "weight and bias not reshaped per channel", WeightNotReshaped, replaces=NAME,
          cause="multiplies by self.weight and adds self.bias of shape (C,) without viewing them as (1, C, 1, ...), so for 3-D/4-D input they broadcast along the last axis (an error, or wrong when it has length C)."),
    entry(S, "4-D statistics over N and H only", FourDOverHeightOnly, replaces=NAME,
          cause="reduces over dims [0, 2] for every input of 3 or more dims (right for 3-D), so for 4-D input the statistics have one value per (channel, column w) instead of per channel over N, H and W, and viewing them per channel fails with a RuntimeError."),
    entry(S, "eval uses the batch variance", EvalBatchVariance, replaces=NAME,
          cause="in eval mode it centres with running_mean but divides by the batch's own variance instead of running_var."),
    entry(S, "weight and bias as plain tensors", PlainTensorAffine, replaces=NAME,
          cause="creates weight and bias as plain tensors (not nn.Parameter), so they are not parameters: no gradients for the optimiser, no state_dict entries, not moved by .double()."),
    entry(S, "num_batches_tracked not persistent", CounterNotPersistent, replaces=NAME,
          cause="registers num_batches_tracked with persistent=False, so it is missing from state_dict (a checkpoint does not save it and nn.BatchNorm's state_dict does not load)."),
    entry(S, "counter incremented twice per batch", CounterTwice, replaces=NAME,
          cause="forward increments num_batches_tracked and the update increments it again, so the counter counts two per training batch (and momentum=None averages with 1/(2k))."),
    entry(S, "affine=False crashes in forward", AffineFalseForward, replaces=NAME,
          cause="applies weight and bias without checking self.affine, so with affine=False (weight None) forward raises AttributeError."),
    entry(FOLD, "running mean scaled by gamma only", fold_mean_times_gamma,
          "the folded bias subtracts running_mean * gamma instead of running_mean * gamma / sqrt(running_var + eps) (the mean is not divided by the standard deviation)."),
    entry(FOLD, "returns the two layers chained", fold_sequential,
          "returns nn.Sequential(layer, bn) (copies, outputs right) instead of one folded nn.Linear / nn.Conv2d."),
    entry(FOLD, "padding_mode not copied", fold_padding_mode_default,
          "builds the new Conv2d without the original's padding_mode, so a 'reflect' or 'circular' padded convolution is folded into a zero-padded one."),
    entry(FOLD, "copy_ outside torch.no_grad", fold_copy_with_grad,
          "copies into the new layer's weight with copy_ outside torch.no_grad(), which raises RuntimeError (an in-place operation on a leaf that requires grad)."),
    entry(FOLD, "Linear built with in and out swapped", fold_linear_swapped,
          "creates the new layer as nn.Linear(out_features, in_features) (arguments swapped), so copying the (out, in) weight into it fails with a RuntimeError unless in_features == out_features."),
    entry(FOLD, "tests bn.train instead of bn.training", fold_train_method,
          "tests `if bn.train:`, a bound method that is always true, so every batch norm (in eval mode too) is refused with ValueError."),
    entry(FOLD, "layer's own bias not scaled", fold_own_bias_unscaled,
          "the folded bias is b + beta - mu * s: the layer's own bias b is not multiplied by the scale s."),
    entry(FOLD, "weight divided by the scale", fold_divides_by_scale,
          "divides the layer's weight by s = gamma / sqrt(var + eps) instead of multiplying by it (the bias is right)."),
    right(S, "std_mean with keepdim, addcmul", StdMeanKeepdim, replaces=NAME),
    right(FOLD, "torch.nn.utils.fusion on copies", fold_fusion_library),
]
