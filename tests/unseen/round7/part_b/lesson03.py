"""Held-out answers (seventh set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"

# ---- ScratchBatchNorm: a learner's right class; each wrong entry changes one piece ----


class _Base(nn.Module):
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
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def _validate(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"need 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"need {self.num_features} channels, got {x.size(1)}")

    def _shape(self, x):
        return [1, x.size(1)] + [1] * (x.dim() - 2)

    def _count(self, x):
        return x.numel() // x.size(1)

    def _stats(self, x, dims):
        return x.mean(dim=dims), x.var(dim=dims, unbiased=False)

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                a = 1.0 / self.num_batches_tracked.item()
            else:
                a = self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * n / (n - 1))

    def _normalise(self, x, mean, var, shape):
        return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)

    def _eval_normalise(self, x, shape):
        return self._normalise(x, self.running_mean, self.running_var, shape)

    def forward(self, x):
        self._validate(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        shape = self._shape(x)
        if self.training or not self.track_running_stats:
            n = self._count(x)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
            y = self._normalise(x, mean, var, shape)
        else:
            y = self._eval_normalise(x, shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)


class VarianceDetached(_Base):
    def _stats(self, x, dims):
        mean = x.mean(dim=dims)
        var = x.detach().var(dim=dims, unbiased=False)  # "no need to backprop through the variance"
        return mean, var


class EpsOutsideRoot(_Base):
    def _normalise(self, x, mean, var, shape):
        return (x - mean.reshape(shape)) / (torch.sqrt(var.reshape(shape)) + self.eps)


class BesselCountNTimesLast(_Base):
    def _count(self, x):
        if x.dim() == 2:
            return x.size(0)
        return x.size(0) * x.size(-1)  # N * L: for images this leaves H out


class InputCentredInPlace(_Base):
    def _normalise(self, x, mean, var, shape):
        x -= mean.reshape(shape)  # saves a copy
        return x / torch.sqrt(var.reshape(shape) + self.eps)


class RunningVarStartsAtZero(_Base):
    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.zeros(self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class EvalWithoutEps(_Base):
    def _eval_normalise(self, x, shape):
        return (x - self.running_mean.reshape(shape)) / torch.sqrt(self.running_var.reshape(shape))


class UntrackedKeepsBuffers(_Base):
    def _make_buffers(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))


class RunningStatsOfOutput(_Base):
    def forward(self, x):
        self._validate(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        shape = self._shape(x)
        if self.training or not self.track_running_stats:
            n = self._count(x)
            if n <= 1:
                raise ValueError("need more than one value per channel in training")
            mean, var = self._stats(x, dims)
            y = self._normalise(x, mean, var, shape)
            if self.affine:
                y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
            if self.training and self.track_running_stats:
                self._update(*self._stats(y.detach(), dims), n)  # statistics of what the layer outputs
            return y.to(x.dtype)
        y = self._eval_normalise(x, shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)


class ViewFor4DOnly(_Base):
    def _shape(self, x):
        return [1, -1, 1, 1]


class BuffersAsAttributes(_Base):
    def _make_buffers(self):
        if self.track_running_stats:
            self.running_mean = torch.zeros(self.num_features)
            self.running_var = torch.ones(self.num_features)
            self.num_batches_tracked = torch.tensor(0, dtype=torch.long)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None


class CumulativeWithNewCount(_Base):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            k = self.num_batches_tracked.item()
            if self.momentum is None:
                # running average of k values: old * k + new, over k + 1
                self.running_mean.copy_((self.running_mean * k + mean) / (k + 1))
                self.running_var.copy_((self.running_var * k + var * n / (n - 1)) / (k + 1))
                return
            a = self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * n / (n - 1))


class MomentumUpdateTodo(_Base):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                raise NotImplementedError("TODO: cumulative average")
            a = self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * n / (n - 1))


# ---- correct alternatives: ScratchBatchNorm ------------------------------------------


class UnbiasedThenRescaled(_Base):
    """Takes the unbiased variance (correction=1) once and rescales it to the biased one for
    the normalisation; running statistics with mul_/add_(alpha=...)."""

    def _stats(self, x, dims):
        n = self._count(x)
        var_u, mean = torch.var_mean(x, dim=dims, correction=1)
        self._last_unbiased = var_u.detach()  # only the buffers use it
        return mean, var_u * ((n - 1) / n)

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(mean, alpha=a)
            self.running_var.mul_(1 - a).add_(self._last_unbiased, alpha=a)


class CentredSecondPass(_Base):
    """Centres once, squares and averages by hand; eval mode as one scale and shift."""

    def _stats(self, x, dims):
        mean = x.mean(dim=dims, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=dims)
        return mean.flatten(), var

    def _eval_normalise(self, x, shape):
        inv = torch.rsqrt(self.running_var + self.eps)
        return x * inv.reshape(shape) - (self.running_mean * inv).reshape(shape)


# ---- fold_batchnorm ----------------------------------------------------------------------


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    if bn.affine:
        return bn.weight / std, bn.bias
    return 1.0 / std, torch.zeros_like(bn.running_mean)


def _new_like(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold a {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _refuse(bn):
    if bn.training:
        raise ValueError("bn is in training mode: put it in eval mode before folding")
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError("bn has no running statistics to fold")


def _fill(new, layer, bn, scale, shift):
    b = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_kernel_first_size(layer, bn):
    _refuse(bn)
    scale, shift = _scale_shift(bn)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        k = layer.kernel_size[0]  # square kernels
        new = nn.Conv2d(layer.in_channels, layer.out_channels, k, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        padding_mode=layer.padding_mode)
    new = new.to(dtype=layer.weight.dtype)
    return _fill(new, layer, bn, scale, shift)


def fold_runtime_error(layer, bn):
    if bn.training:
        raise RuntimeError("bn must be in eval mode to be folded")
    if bn.running_mean is None:
        raise RuntimeError("bn has no running statistics to fold")
    scale, shift = _scale_shift(bn)
    return _fill(_new_like(layer), layer, bn, scale, shift)


def fold_conv_todo(layer, bn):
    _refuse(bn)
    scale, shift = _scale_shift(bn)
    if isinstance(layer, nn.Conv2d):
        raise NotImplementedError("TODO: Conv2d")
    return _fill(_new_like(layer), layer, bn, scale, shift)


def fold_bias_over_variance(layer, bn):
    _refuse(bn)
    scale, shift = _scale_shift(bn)
    new = _new_like(layer)
    b = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_(gamma * (b - bn.running_mean) / (bn.running_var + bn.eps) + shift)
    return new


def fold_std_float32(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var.float() + bn.eps).to(bn.running_var.dtype)
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return _fill(_new_like(layer), layer, bn, scale, shift)


def fold_untracked_not_refused(layer, bn):
    if bn.training:
        raise ValueError("bn is in training mode: put it in eval mode before folding")
    scale, shift = _scale_shift(bn)
    return _fill(_new_like(layer), layer, bn, scale, shift)


def fold_weight_gamma_only(layer, bn):
    _refuse(bn)
    scale, shift = _scale_shift(bn)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    new = _new_like(layer)
    b = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight * gamma.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_groups_dropped(layer, bn):
    _refuse(bn)
    scale, shift = _scale_shift(bn)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, padding_mode=layer.padding_mode)
    new = new.to(dtype=layer.weight.dtype)
    return _fill(new, layer, bn, scale, shift)


# ---- correct alternative: fold_batchnorm -----------------------------------------------


def fold_addcmul_parameters(layer, bn):
    """deepcopy of the layer, new Parameters assigned; bias with torch.addcmul, rsqrt."""
    if bn.training:
        raise ValueError("cannot fold a batch norm in training mode")
    if bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError("only nn.Linear and nn.Conv2d")
    with torch.no_grad():
        inv = torch.rsqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.weight is not None else torch.ones_like(inv)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(inv)
        scale = gamma * inv
        b = layer.bias if layer.bias is not None else torch.zeros_like(inv)
        new = copy.deepcopy(layer)
        w = layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1))
        new.weight = nn.Parameter(w.clone())
        new.bias = nn.Parameter(torch.addcmul(beta, b - bn.running_mean, scale).to(layer.weight.dtype))
    return new


ENTRIES = [
    entry(S, "variance detached", VarianceDetached,
          "computes the batch variance from x.detach(), so the gradient misses the branch through the variance (the mean's branch is kept).", replaces=NAME),
    entry(S, "eps outside the square root", EpsOutsideRoot,
          "normalises by sqrt(var) + eps instead of sqrt(var + eps), in both modes.", replaces=NAME),
    entry(S, "Bessel count from N times the last size", BesselCountNTimesLast,
          "counts the values per channel as N * x.size(-1), which leaves H out for 4-D input, so the unbiased factor n/(n-1) of the running variance is wrong for images.", replaces=NAME),
    entry(S, "input centred in place", InputCentredInPlace,
          "subtracts the mean from the input in place (x -= mean), changing the caller's tensor (and failing on an input that requires grad).", replaces=NAME),
    entry(S, "running_var starts at zero", RunningVarStartsAtZero,
          "running_var is initialised to zeros instead of ones.", replaces=NAME),
    entry(S, "eps left out in eval mode", EvalWithoutEps,
          "eval mode divides by sqrt(running_var) without adding eps.", replaces=NAME),
    entry(S, "untracked module keeps buffers", UntrackedKeepsBuffers,
          "with track_running_stats=False it still registers running_mean, running_var and num_batches_tracked as tensors instead of None.", replaces=NAME),
    entry(S, "running statistics of the output", RunningStatsOfOutput,
          "updates the running statistics with the mean and variance of the layer's output (after normalisation and the affine map) instead of the input's.", replaces=NAME),
    entry(S, "per-channel view built for 4-D only", ViewFor4DOnly,
          "reshapes the statistics, weight and bias to (1, C, 1, 1) for every input rank, so a 2-D input broadcasts into a wrong (1, C, N, C) output and a 3-D input fails to broadcast.", replaces=NAME),
    entry(S, "running statistics as plain attributes", BuffersAsAttributes,
          "keeps running_mean, running_var and num_batches_tracked as plain tensor attributes instead of register_buffer, so they are not in state_dict and do not follow .double() / .to().", replaces=NAME),
    entry(S, "cumulative average weights the old value by the new count", CumulativeWithNewCount,
          "with momentum=None it averages as (old * k + new) / (k + 1) with k already incremented, so the new batch has weight 1/(k+1) instead of 1/k.", replaces=NAME),
    entry(S, "momentum=None left as a TODO", MomentumUpdateTodo,
          "the momentum=None (cumulative average) branch raises NotImplementedError (left unfinished).", replaces=NAME),
    entry(FOLD, "only the first kernel size", fold_kernel_first_size,
          "builds the Conv2d with kernel_size[0], so a non-square kernel (e.g. 3x1) becomes square (copying the weight fails or the layer is wrong).", ),
    entry(FOLD, "RuntimeError instead of ValueError", fold_runtime_error,
          "refuses a training-mode (or untracked) batch norm with RuntimeError instead of the ValueError asked for."),
    entry(FOLD, "Conv2d branch left as a TODO", fold_conv_todo,
          "the Conv2d case raises NotImplementedError (only nn.Linear is folded)."),
    entry(FOLD, "bias divided by the variance", fold_bias_over_variance,
          "the folded bias uses gamma * (b - mu) / (var + eps) instead of / sqrt(var + eps); the weight is right."),
    entry(FOLD, "std computed in float32", fold_std_float32,
          "computes sqrt(running_var + eps) in float32 and casts it back, so a float64 fold is off at float32's precision."),
    entry(FOLD, "untracked batch norm not refused", fold_untracked_not_refused,
          "does not refuse a batch norm built with track_running_stats=False (it should raise ValueError); it fails on the None running_var instead."),
    entry(FOLD, "weight scaled by gamma only", fold_weight_gamma_only,
          "scales the weight by gamma without dividing by sqrt(running_var + eps); the bias is right."),
    entry(FOLD, "groups not passed to the new Conv2d", fold_groups_dropped,
          "builds the new Conv2d without groups=layer.groups, so for a grouped convolution its weight has the wrong shape and copying the folded weight into it fails."),
    right(S, "unbiased var_mean rescaled, add_(alpha=)", UnbiasedThenRescaled, replaces=NAME),
    right(S, "centred second pass, eval as scale and shift", CentredSecondPass, replaces=NAME),
    right(FOLD, "deepcopy, new Parameters, addcmul and rsqrt", fold_addcmul_parameters),
]
