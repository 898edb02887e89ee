"""Held-out answers (eighth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm.

Written blind (solutions/03 only for the API); mistakes chosen to differ from every
earlier held-out set's lesson-03 entries."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm: a learner's right class, split into small steps ------------


class _Base(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
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
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    # -- pieces ------------------------------------------------------------------
    def _validate(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm wants 2-D, 3-D or 4-D input, not {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}) got {x.size(1)} channels")

    def _use_batch(self):
        return self.training or not self.track_running_stats

    def _stats(self, x, dims):
        mean = x.mean(dim=dims)
        var = ((x - mean.view(self._view)) ** 2).mean(dim=dims)
        return mean, var

    def _bump(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            k = self.num_batches_tracked.item()
            a = (1.0 / k) if self.momentum is None else self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * (n / (n - 1)))

    def _normalise(self, x, mean, var):
        out = (x - mean.view(self._view)) / torch.sqrt(var.view(self._view) + self.eps)
        if self.affine:
            out = out * self.weight.view(self._view) + self.bias.view(self._view)
        return out

    def forward(self, x):
        self._validate(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        self._view = (1, -1) + (1,) * (x.dim() - 2)
        if self._use_batch():
            n = x.numel() // x.size(1)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                self._bump(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var).to(x.dtype)


class ModeFromGradMode(_Base):
    def _use_batch(self):
        # "eval is when you are not computing gradients"
        return torch.is_grad_enabled() or not self.track_running_stats

    def forward(self, x):
        self._validate(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        self._view = (1, -1) + (1,) * (x.dim() - 2)
        if self._use_batch():
            n = x.numel() // x.size(1)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(x, dims)
            if self.track_running_stats:
                self._bump(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var).to(x.dtype)


class BesselOnBlend(_Base):
    def _bump(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            k = self.num_batches_tracked.item()
            a = (1.0 / k) if self.momentum is None else self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            blended = (1 - a) * self.running_var + a * var
            self.running_var.copy_(blended * (n / (n - 1)))  # correction on the whole average


class AffineBeforeNormalising(_Base):
    def forward(self, x):
        self._validate(x)
        self._view = (1, -1) + (1,) * (x.dim() - 2)
        if self.affine:
            x_in = x * self.weight.view(self._view) + self.bias.view(self._view)
        else:
            x_in = x
        dims = tuple(d for d in range(x.dim()) if d != 1)
        if self._use_batch():
            n = x.numel() // x.size(1)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                self._bump(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x_in - mean.view(self._view)) / torch.sqrt(var.view(self._view) + self.eps)
        return out.to(x.dtype)


class ReshapedBackWithoutTranspose(_Base):
    def forward(self, x):
        self._validate(x)
        c = x.size(1)
        flat = x.movedim(1, -1).reshape(-1, c)  # (values, C)
        self._view = (1, -1)
        if self._use_batch():
            n = flat.size(0)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(flat, (0,))
            if self.training and self.track_running_stats:
                self._bump(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = self._normalise(flat, mean, var)
        return out.reshape(x.shape).to(x.dtype)  # back to the input's shape


class EvalConstantsCached(_Base):
    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        self._validate(x)
        self._view = (1, -1) + (1,) * (x.dim() - 2)
        if not hasattr(self, "_eval_stats"):  # the population statistics, taken once
            self._eval_stats = (self.running_mean.clone(), self.running_var.clone())
        mean, var = self._eval_stats
        return self._normalise(x, mean, var).to(x.dtype)


class BuffersFollowInputDtype(_Base):
    def forward(self, x):
        if self.track_running_stats and self.running_mean.dtype != x.dtype:
            # keep the statistics in the same precision as the data
            self.running_mean = self.running_mean.to(x.dtype)
            self.running_var = self.running_var.to(x.dtype)
        return super().forward(x)


class AcceptsFiveD(_Base):
    def _validate(self, x):
        if x.dim() < 2:
            raise ValueError(f"need at least (N, C), got {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}) got {x.size(1)} channels")


class ResetMakesNewParameters(_Base):
    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))


class EvalUnderNoGrad(_Base):
    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        with torch.no_grad():  # inference: nothing to differentiate
            return super().forward(x)


class ChannelsFromWeight(_Base):
    def _validate(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm wants 2-D, 3-D or 4-D input, not {x.dim()}-D")
        if x.size(1) != len(self.weight):
            raise ValueError(f"expected {len(self.weight)} channels, got {x.size(1)}")


class FrozenAffine(_Base):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if affine:
            # weight 1 and bias 0 "as the identity map"
            self.weight = nn.Parameter(torch.ones(num_features), requires_grad=False)
            self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=False)


# ---- ScratchBatchNorm: correct alternatives ----------------------------------------


class UnbiasedFirst(_Base):
    """Computes the unbiased variance with torch.var_mean (correction=1) for the buffer
    and derives the biased one for the normalisation; buffers via torch.lerp and copy_."""

    def forward(self, x):
        self._validate(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        view = (1, -1) + (1,) * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.size(1)
            if n < 2:
                raise ValueError("need more than one value per channel in training")
            var_u, mean = torch.var_mean(x, dim=dims, correction=1)
            var = var_u * ((n - 1) / n)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = 1.0 / float(self.num_batches_tracked) if self.momentum is None else float(self.momentum)
                    self.running_mean.copy_(torch.lerp(self.running_mean, mean.to(self.running_mean.dtype), w))
                    self.running_var.copy_(torch.lerp(self.running_var, var_u.to(self.running_var.dtype), w))
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.reshape(view)) * torch.rsqrt(var.reshape(view) + self.eps)
        if self.affine:
            x_hat = torch.addcmul(self.bias.reshape(view), x_hat, self.weight.reshape(view))
        return x_hat.to(x.dtype)


class ViaFunctionalInstanceMath(_Base):
    """Channels last and flattened, biased variance as E[(x - m)^2] via einsum, output
    moved back with movedim; buffers rebound (out of place) under no_grad."""

    def forward(self, x):
        self._validate(x)
        c = x.size(1)
        moved = x.movedim(1, -1)
        flat = moved.reshape(-1, c)
        if self.training or not self.track_running_stats:
            n = flat.size(0)
            if n < 2:
                raise ValueError("need more than one value per channel in training")
            mean = flat.sum(0) / n
            dev = flat - mean
            var = torch.einsum("nc,nc->c", dev, dev) / n
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked = self.num_batches_tracked + 1
                    a = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    self.running_mean = (1 - a) * self.running_mean + a * mean.detach().to(self.running_mean.dtype)
                    self.running_var = (1 - a) * self.running_var + a * (var.detach() * n / (n - 1)).to(self.running_var.dtype)
        else:
            mean, var = self.running_mean, self.running_var
        out = (moved - mean) / (var + self.eps).sqrt()
        if self.affine:
            out = out * self.weight + self.bias
        return out.movedim(-1, 1).to(x.dtype)


# ---- fold_batchnorm -----------------------------------------------------------------


def _build(layer, bias=True):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=bias)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        bias=bias, padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _gamma_beta(bn):
    if bn.affine:
        return bn.weight, bn.bias
    return torch.ones_like(bn.running_var), torch.zeros_like(bn.running_mean)


def _fill(new, layer, s, bias):
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(shape))
        new.bias.copy_(bias)
    return new


def fold_refuses_training_layer(layer, bn):
    if bn.training or layer.training:  # "both must be in eval mode to fuse"
        raise ValueError("fold_batchnorm: put the layer and the batch norm in eval mode first")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_build(layer), layer, s, (b - bn.running_mean) * s + beta)


def fold_var_for_mean(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: training mode")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_build(layer), layer, s, (b - bn.running_var) * s + beta)


def fold_zeros_from_out_features(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: training mode")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    if layer.bias is not None:
        b = layer.bias
    else:
        b = torch.zeros(layer.out_features, dtype=layer.weight.dtype)
    return _fill(_build(layer), layer, s, (b - bn.running_mean) * s + beta)


def fold_eps_as_floor(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: training mode")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var.clamp(min=bn.eps))  # eps keeps the root away from 0
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_build(layer), layer, s, (b - bn.running_mean) * s + beta)


def fold_switches_bn_to_eval(layer, bn):
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    if bn.training:
        bn.eval()  # folding is for inference anyway
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_build(layer), layer, s, (b - bn.running_mean) * s + beta)


def fold_weight_todo(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: training mode")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _build(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight)  # TODO: scale per output channel
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_momentum_for_eps(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: training mode")
    if not bn.track_running_stats:
        raise ValueError("fold_batchnorm: no running statistics")
    gamma, beta = _gamma_beta(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.momentum)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_build(layer), layer, s, (b - bn.running_mean) * s + beta)


# ---- fold: correct alternative --------------------------------------------------------


def fold_with_torch_fusion(layer, bn):
    """torch.nn.utils.fusion's fuse_linear_bn_weights / fuse_conv_bn_weights applied to
    a deep copy of the layer (gamma 1 and beta 0 passed for an affine=False batch norm)."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    fused = copy.deepcopy(layer)
    if isinstance(layer, nn.Linear):
        fuse = fuse_linear_bn_weights
    elif isinstance(layer, nn.Conv2d):
        fuse = fuse_conv_bn_weights
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    with torch.no_grad():
        w, b = fuse(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, gamma, beta)
    fused.weight, fused.bias = nn.Parameter(w.detach().clone()), nn.Parameter(b.detach().clone())
    return fused


ENTRIES = [
    entry(S, "train/eval decided by grad mode", ModeFromGradMode,
          "decides between batch and running statistics with torch.is_grad_enabled() instead of self.training, so eval mode with gradients on normalises with (and updates) batch statistics, and training under torch.no_grad() uses the running ones.", replaces=NAME),
    entry(S, "Bessel factor on the blended running variance", BesselOnBlend,
          "multiplies the whole blended running_var ((1 - a) * running_var + a * var) by n/(n - 1) instead of only the batch variance, so the old value is inflated again at every step.", replaces=NAME),
    entry(S, "weight and bias applied before normalising", AffineBeforeNormalising,
          "applies weight and bias to the input before subtracting the mean and dividing by the standard deviation (statistics of the raw input), instead of to the normalised output.", replaces=NAME),
    entry(S, "output reshaped back without moving the channels", ReshapedBackWithoutTranspose,
          "moves the channels last and flattens for the statistics (right), but returns out.reshape(x.shape) without moving the channel axis back, so 3-D and 4-D outputs have their values scrambled across channels and positions.", replaces=NAME),
    entry(S, "eval statistics cached at the first eval call", EvalConstantsCached,
          "copies running_mean and running_var once, at the first eval call, and reuses that copy in every later eval call, so after further training (or a reset) eval mode still normalises with the old statistics.", replaces=NAME),
    entry(S, "buffers converted to the input's dtype", BuffersFollowInputDtype,
          "converts running_mean and running_var to the input's dtype when they differ, so a bfloat16 batch turns the float32 buffers into bfloat16 (they must stay float32).", replaces=NAME),
    entry(S, "5-D input accepted", AcceptsFiveD,
          "checks only that the input has at least 2 dimensions, so a 5-D input is normalised instead of being refused with ValueError.", replaces=NAME),
    entry(S, "reset_parameters creates new parameters", ResetMakesNewParameters,
          "reset_parameters() assigns new float32 nn.Parameter objects instead of resetting weight and bias in place, so after .double() they come back float32 and an optimizer holding the old parameters no longer trains the module's.", replaces=NAME),
    entry(S, "eval mode under torch.no_grad", EvalUnderNoGrad,
          "runs the eval-mode normalisation inside torch.no_grad(), so in eval mode no gradient flows to the input, weight or bias.", replaces=NAME),
    entry(S, "channel check reads len(self.weight)", ChannelsFromWeight,
          "compares the channel count with len(self.weight) instead of num_features, so with affine=False (weight None) every forward call raises TypeError.", replaces=NAME),
    entry(S, "weight and bias created with requires_grad=False", FrozenAffine,
          "creates weight and bias as nn.Parameter(..., requires_grad=False), so they get no gradient and are never trained.", replaces=NAME),
    entry(FOLD, "refuses a layer in training mode", fold_refuses_training_layer,
          "raises ValueError when the Linear/Conv2d layer (not only the batch norm) is in training mode, although a layer's mode changes nothing in its output, so a freshly built layer cannot be folded."),
    entry(FOLD, "running_var in place of running_mean in the bias", fold_var_for_mean,
          "the folded bias subtracts bn.running_var instead of bn.running_mean: (b - running_var) * s + beta."),
    entry(FOLD, "zeros sized by out_features", fold_zeros_from_out_features,
          "for a layer without a bias it builds the zero bias from layer.out_features, which nn.Conv2d does not have, so a Conv2d without a bias raises AttributeError."),
    entry(FOLD, "eps as a floor on the variance", fold_eps_as_floor,
          "the scale uses sqrt(max(running_var, eps)) instead of sqrt(running_var + eps), so eps is not added (different unless a variance is below eps)."),
    entry(FOLD, "training-mode bn switched to eval", fold_switches_bn_to_eval,
          "instead of refusing a batch norm in training mode with ValueError, it calls bn.eval() (changing the caller's module) and folds it."),
    entry(FOLD, "weight left unscaled (TODO)", fold_weight_todo,
          "unfinished: the new weight is a copy of the layer's weight without the per-output-channel scale s (a TODO); the bias is right."),
    entry(FOLD, "bn.momentum in place of bn.eps", fold_momentum_for_eps,
          "the scale divides by sqrt(running_var + bn.momentum) instead of sqrt(running_var + bn.eps) (the wrong attribute)."),
    right(S, "var_mean unbiased first, lerp and addcmul", UnbiasedFirst, replaces=NAME),
    right(S, "channels last, einsum variance, buffers rebound", ViaFunctionalInstanceMath, replaces=NAME),
    right(FOLD, "torch.nn.utils.fusion weights on a deep copy", fold_with_torch_fusion),
]
