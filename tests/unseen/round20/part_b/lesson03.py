"""Held-out answers (twentieth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Learner(nn.Module):
    """A right learner's module; each wrong entry below changes one piece of it."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._params()
        self._buffers_setup()

    def _params(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _buffers_setup(self):
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
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def _guard(self, x, n):
        if n < 2:
            raise ValueError("ScratchBatchNorm: training needs more than one value per channel")

    def _variance(self, x, dims, view, mean):
        return x.var(dim=dims, correction=0)

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm expects 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}): input has {x.shape[1]} channels")
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            self._guard(x, n)
            mean = x.mean(dim=dims)
            var = self._variance(x, dims, view, mean)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class ParamsFromNumpyOnes(_Learner):
    """weight and bias made from NumPy arrays (np.ones / np.zeros are float64)."""

    def _params(self):
        if self.affine:
            self.weight = nn.Parameter(torch.from_numpy(np.ones(self.num_features)))
            self.bias = nn.Parameter(torch.from_numpy(np.zeros(self.num_features)))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)


class CounterNamedNumBatches(_Learner):
    """The counter buffer registered as num_batches (shortened name)."""

    def _buffers_setup(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.ones(self.num_features))
            self.register_buffer("num_batches", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches.zero_()

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches += 1
            f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches)
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class MomentumCastToFloat(_Learner):
    """momentum stored as float(momentum), "to be safe"."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        nn.Module.__init__(self)
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._params()
        self._buffers_setup()


class GuardOnlyWhenTracking(_Learner):
    """The one-value guard written inside the running-statistics branch."""

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm expects 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}): input has {x.shape[1]} channels")
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, correction=0)
            if self.training and self.track_running_stats:
                self._guard(x, n)
                self._update(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class ResetParametersDataFloat32(_Learner):
    """reset_parameters assigns fresh tensors to .data."""

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.data = torch.ones(self.num_features)
            self.bias.data = torch.zeros(self.num_features)


class VarianceAroundDetachedMean(_Learner):
    """Correct: two-pass variance around a detached mean (the variance's derivative with respect to
    the mean is zero at the mean, so the gradient is unchanged)."""

    def _variance(self, x, dims, view, mean):
        centred = x - mean.detach().view(view)
        return (centred * centred).mean(dim=dims)


# ---- fold_batchnorm --------------------------------------------------------------


def _fold(layer, bn, eps, gamma, beta, mean, var):
    std = torch.sqrt(var + eps)
    scale = gamma / std
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    new = new.to(dtype=layer.weight.dtype, device=layer.weight.device)
    b = layer.bias if layer.bias is not None else torch.zeros_like(mean)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - mean) * scale + beta)
    return new


def _checks(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: bn is in training mode; call bn.eval() first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"fold_batchnorm: cannot fold into {type(layer).__name__}")


def fold_eps_keras_name(layer, bn):
    _checks(layer, bn)
    eps = getattr(bn, "epsilon", 1e-3)  # Keras calls it epsilon
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return _fold(layer, bn, eps, gamma, beta, bn.running_mean, bn.running_var)


def fold_state_dict_positional(layer, bn):
    _checks(layer, bn)
    gamma, beta, mean, var = list(bn.state_dict().values())[:4]  # Keras get_weights() order
    return _fold(layer, bn, bn.eps, gamma, beta, mean, var)


def fold_only_batchnorm2d(layer, bn):
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"fold_batchnorm: expected nn.BatchNorm2d, got {type(bn).__name__}")
    _checks(layer, bn)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return _fold(layer, bn, bn.eps, gamma, beta, bn.running_mean, bn.running_var)


ENTRIES = [
    entry(S, "weight and bias from np.ones / np.zeros (float64 parameters)", ParamsFromNumpyOnes, replaces=NAME,
          cause="weight and bias are made with torch.from_numpy(np.ones(C)) and np.zeros(C), which are float64, "
                "so a float32 module has float64 parameters (unlike nn.BatchNorm's float32) and its output is "
                "computed in float64 before the cast back; .double() modules are right."),
    entry(S, "counter registered as num_batches", CounterNamedNumBatches, replaces=NAME,
          cause="the counter buffer is registered under the name num_batches instead of num_batches_tracked, "
                "so module.num_batches_tracked does not exist and the state_dict keys differ from "
                "nn.BatchNorm's; the counting and every value are right."),
    entry(S, "momentum stored as float(momentum)", MomentumCastToFloat, replaces=NAME,
          cause="__init__ stores self.momentum = float(momentum), which raises TypeError for momentum=None "
                "(the cumulative average), so such a module cannot be built; every numeric momentum is right."),
    entry(S, "one-value guard only when running statistics are tracked", GuardOnlyWhenTracking, replaces=NAME,
          cause="the check for one value per channel sits inside the running-update branch, so with "
                "track_running_stats=False (or in eval mode without statistics) a batch with one value per "
                "channel is not refused and normalises to zeros (beta) instead of raising ValueError."),
    entry(S, "reset_parameters assigns new float32 tensors to .data", ResetParametersDataFloat32, replaces=NAME,
          cause="reset_parameters() sets weight.data = torch.ones(C) and bias.data = torch.zeros(C), new "
                "default-dtype (float32) tensors, so a float64 (or bfloat16) module gets float32 parameters "
                "after a reset; the values 1 and 0 and everything before the reset are right."),
    right(S, "two-pass variance around a detached mean", VarianceAroundDetachedMean, replaces=NAME),
    entry(FOLD, "eps read as Keras's bn.epsilon (default 1e-3)", fold_eps_keras_name,
          cause="eps is read with getattr(bn, 'epsilon', 1e-3), Keras's attribute name, which a torch batch "
                "norm does not have, so every fold uses eps = 1e-3 instead of bn.eps (the folded scale is "
                "slightly wrong, most where running_var is small)."),
    entry(FOLD, "gamma, beta, mean, var read positionally from state_dict", fold_state_dict_positional,
          cause="the four tensors are unpacked from list(bn.state_dict().values())[:4] in Keras's get_weights "
                "order, which only holds with affine=True: for affine=False the state_dict starts with "
                "running_mean, running_var, num_batches_tracked and the unpacking raises ValueError."),
    entry(FOLD, "only nn.BatchNorm2d accepted", fold_only_batchnorm2d,
          cause="the batch norm's type is checked as nn.BatchNorm2d, so the Linear + nn.BatchNorm1d case "
                "raises TypeError; Conv2d + BatchNorm2d folds are right."),
]
