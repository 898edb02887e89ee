"""Held-out answers (twelfth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Base(nn.Module):
    """A right learner's class; each wrong entry changes one piece."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._make_params()
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _make_params(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

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

    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _stats(self, x, dims):
        return x.mean(dims), x.var(dims, unbiased=False)

    def _factor(self):
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))

    def _out(self, out):
        return out

    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than one value per channel")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return self._out(out).to(x.dtype)


class ChannelTypeError(_Base):
    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise TypeError(f"expected {self.num_features} channels, got {x.shape[1]}")


class CounterOnlyWithMomentum(_Base):
    def _update(self, mean, var, n):
        with torch.no_grad():
            if self.momentum is not None:
                self.num_batches_tracked += 1
                f = self.momentum
            else:
                f = 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class MomentumBeforeEps(_Base):
    def __init__(self, num_features, momentum=0.1, eps=1e-5, affine=True, track_running_stats=True):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)


class ResetCounterToOne(_Base):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.fill_(1)


class MomentumOverwritten(_Base):
    def _factor(self):
        if self.momentum is None:
            self.momentum = 1.0 / float(self.num_batches_tracked)
        return self.momentum


class FrozenParamsWithoutAffine(_Base):
    def _make_params(self):
        self.weight = nn.Parameter(torch.ones(self.num_features), requires_grad=self.affine)
        self.bias = nn.Parameter(torch.zeros(self.num_features), requires_grad=self.affine)


class EvalOutputDetached(_Base):
    def _out(self, out):
        return out if self.training else out.detach()


class EpsInStoredVariance(_Base):
    def _stats(self, x, dims):
        return x.mean(dims), x.var(dims, unbiased=False) + self.eps

    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than one value per channel")
            mean, var = self._stats(x, dims)  # eps already in var
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
            out = (x - mean.view(view)) / torch.sqrt(var.view(view))
        else:
            out = (x - self.running_mean.view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class ResetZeroesWeight(_Base):
    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)


# correct alternatives


class ViaFunctional(_Base):
    """torch's own F.batch_norm, with the counter and the cumulative factor kept here."""

    def forward(self, x):
        self._check(x)
        training = self.training or not self.track_running_stats
        if training and x.numel() // x.shape[1] < 2:
            raise ValueError("need more than one value per channel")
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = self._factor()
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training, factor, self.eps)


class ChannelsLastMoments(_Base):
    """Statistics of the (values, C) matrix, variance from E[x^2] - E[x]^2, lerp_ updates."""

    def _stats(self, x, dims):
        flat = x.movedim(1, -1).reshape(-1, x.shape[1])
        mean = flat.mean(0)
        return mean, (flat * flat).mean(0) - mean * mean

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.lerp_(mean, f)
            self.running_var.lerp_(var * (n / (n - 1)), f)


# ---- fold_batchnorm ---------------------------------------------------------------------


def _fold(layer, bn, *, view=None, conv_cls=None, scale_fn=None, other_as_conv=False):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    if bn.running_var is None:
        raise ValueError("bn has no running statistics")
    if scale_fn is not None:
        scale = scale_fn(bn)
    else:
        std = torch.sqrt(bn.running_var + bn.eps)
        scale = bn.weight / std if bn.affine else 1.0 / std
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
        shape = [-1, 1]
    elif isinstance(layer, nn.Conv2d) or other_as_conv:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        padding_mode=layer.padding_mode)
        shape = view or [-1, 1, 1, 1]
    else:
        raise TypeError(f"cannot fold {type(layer).__name__}")
    new = new.to(dtype=layer.weight.dtype, device=layer.weight.device)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_other_layers_as_conv(layer, bn):
    return _fold(layer, bn, other_as_conv=True)


def fold_conv_scaled_along_inputs(layer, bn):
    return _fold(layer, bn, view=[1, -1, 1, 1])


def fold_linear_view_for_conv(layer, bn):
    return _fold(layer, bn, view=[-1, 1])


def fold_eps_missing_without_affine(layer, bn):
    def scale(bn):
        if bn.affine:
            return bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return 1.0 / torch.sqrt(bn.running_var)
    return _fold(layer, bn, scale_fn=scale)


def fold_with_torch_fusion(layer, bn):
    """torch.nn.utils.fusion on copies, with the course's refusals first."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    if bn.training:
        raise ValueError("fold_batchnorm: bn is in training mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: no running statistics")
    if isinstance(layer, nn.Linear):
        fuse = fuse_linear_bn_weights
    elif isinstance(layer, nn.Conv2d):
        fuse = fuse_conv_bn_weights
    else:
        raise TypeError(f"cannot fold into a {type(layer).__name__}")
    folded = copy.deepcopy(layer).eval()
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
    weight, bias = fuse(folded.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, gamma, beta)
    folded.weight, folded.bias = weight, bias
    return folded


ENTRIES = [
    entry(S, "wrong channel count raises TypeError", ChannelTypeError,
          "a wrong number of channels raises TypeError instead of ValueError (the rank error is right).",
          replaces=NAME),
    entry(S, "counter incremented only with a momentum", CounterOnlyWithMomentum,
          "num_batches_tracked is incremented only when momentum is a number; with momentum=None it stays 0, "
          "so the cumulative factor 1/num_batches_tracked divides by zero.", replaces=NAME),
    entry(S, "momentum before eps in the signature", MomentumBeforeEps,
          "the constructor's positional order is (num_features, momentum, eps, ...) instead of torch's "
          "(num_features, eps, momentum, ...), so ScratchBatchNorm(C, 1e-3, 0.2) swaps eps and momentum.",
          replaces=NAME),
    entry(S, "reset sets the counter to 1", ResetCounterToOne,
          "reset_running_stats fills num_batches_tracked with 1 (copied from the running_var line) instead of 0.",
          replaces=NAME),
    entry(S, "momentum attribute overwritten by the cumulative factor", MomentumOverwritten,
          "with momentum=None the first training batch stores 1/num_batches_tracked into self.momentum, so from "
          "the second batch on it is a fixed momentum of 1.0 instead of a cumulative average.", replaces=NAME),
    entry(S, "affine=False keeps frozen parameters", FrozenParamsWithoutAffine,
          "with affine=False it still creates weight and bias (as Parameters with requires_grad=False) instead "
          "of registering them as None, so the state_dict and parameters() differ from torch's.", replaces=NAME),
    entry(S, "eval output detached", EvalOutputDetached,
          "in eval mode it returns out.detach(), so no gradient flows to the input, weight or bias in eval mode.",
          replaces=NAME),
    entry(S, "eps kept in the stored variance", EpsInStoredVariance,
          "adds eps to the batch variance once and reuses that sum for the running update, so running_var "
          "tracks var + eps (times n/(n-1)) instead of the unbiased variance.", replaces=NAME),
    entry(S, "reset_parameters zeroes the weight", ResetZeroesWeight,
          "reset_parameters sets weight to 0 (nn.init.zeros_ copied from the bias line) instead of 1.",
          replaces=NAME),
    right(S, "F.batch_norm with own counter", ViaFunctional, replaces=NAME),
    right(S, "channels-last moments and lerp_", ChannelsLastMoments, replaces=NAME),
    entry(FOLD, "other layer types folded as Conv2d", fold_other_layers_as_conv,
          "anything that is not an nn.Linear is rebuilt as an nn.Conv2d (an nn.Conv1d too) instead of being "
          "refused with TypeError."),
    entry(FOLD, "Conv2d weight scaled along input channels", fold_conv_scaled_along_inputs,
          "for Conv2d the scale is viewed as (1, C, 1, 1), along the input channels, instead of (C, 1, 1, 1) "
          "along the output channels."),
    entry(FOLD, "Linear's column view used for Conv2d", fold_linear_view_for_conv,
          "the scale is viewed as (C, 1) for Conv2d too, so it broadcasts against the kernel's last two "
          "dimensions instead of the output channels."),
    entry(FOLD, "eps left out when affine=False", fold_eps_missing_without_affine,
          "for a batch norm with affine=False the scale is 1/sqrt(running_var), without eps (the affine branch "
          "is right)."),
    right(FOLD, "torch.nn.utils.fusion on copies", fold_with_torch_fusion),
]
