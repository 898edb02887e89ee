"""Held-out answers (sixth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm.

Each wrong entry is a learner's whole answer with ONE slip; the ScratchBatchNorm
answers share a right base written as a learner would (``_Learner``) and override
the one method where the slip is.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm --------------------------------------------------------------


class _Learner(nn.Module):
    """Right: a learner's ScratchBatchNorm (helpers for the checks and the statistics)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if self.affine:
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
        if not self.track_running_stats:
            return
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def _validate(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm wants 2-D, 3-D or 4-D input, not {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"got {x.size(1)} channels, expected {self.num_features}")

    def _dims(self, x):
        return tuple(d for d in range(x.dim()) if d != 1)

    def _shape(self, x):
        return (1, self.num_features) + (1,) * (x.dim() - 2)

    def _guard(self, x):
        if x.numel() // x.size(1) <= 1:
            raise ValueError("need more than one value per channel in training")

    def _stats(self, x, dims):
        mean = x.mean(dim=dims)
        var = ((x - mean.reshape(self._shape(x))) ** 2).mean(dim=dims)
        return mean, var

    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                a = 1.0 / self.num_batches_tracked.item()
            else:
                a = self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * (n / (n - 1)))

    def _normalise(self, x, mean, var):
        shape = self._shape(x)
        y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def forward(self, x):
        self._validate(x)
        dims = self._dims(x)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            self._guard(x)
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                n = x.numel() // x.size(1)
                self._track(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var).to(x.dtype)


class BesselIntegerDivision(_Learner):
    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * (n // (n - 1)))


class MomentumZeroAsNone(_Learner):
    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = self.momentum or 1.0 / self.num_batches_tracked.item()
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * (n / (n - 1)))


class HalfInputsNotCastBack(_Learner):
    def forward(self, x):
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # compute in float32 for precision
        self._validate(x)
        dims = self._dims(x)
        if self.training or not self.track_running_stats:
            self._guard(x)
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                self._track(mean.detach(), var.detach(), x.numel() // x.size(1))
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var)


class ResetParametersNoAffineCheck(_Learner):
    def reset_parameters(self):
        self.reset_running_stats()
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)


class ResetRunningStatsUntracked(_Learner):
    def reset_running_stats(self):
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()


class GuardInEvalToo(_Learner):
    def forward(self, x):
        self._validate(x)
        self._guard(x)  # at the top: checked in every mode
        return super().forward(x)


class StatsInsideNoGrad(_Learner):
    def forward(self, x):
        self._validate(x)
        dims = self._dims(x)
        if self.training or not self.track_running_stats:
            self._guard(x)
            with torch.no_grad():
                mean, var = self._stats(x, dims)
                if self.training and self.track_running_stats:
                    self._track(mean, var, x.numel() // x.size(1))
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var).to(x.dtype)


class CounterPythonInt(_Learner):
    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.ones(self.num_features))
            self.num_batches_tracked = 0
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.num_batches_tracked = None

    def reset_running_stats(self):
        if not self.track_running_stats:
            return
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked = 0

    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            self.running_var.copy_((1 - a) * self.running_var + a * var * (n / (n - 1)))


class DimsCachedFirstCall(_Learner):
    def _dims(self, x):
        if not hasattr(self, "_reduce"):
            self._reduce = tuple(d for d in range(x.dim()) if d != 1)
        return self._reduce

    def _shape(self, x):
        if not hasattr(self, "_bshape"):
            self._bshape = (1, self.num_features) + (1,) * (x.dim() - 2)
        return self._bshape


class GuardRefusesTwo(_Learner):
    def _guard(self, x):
        if x.numel() // x.size(1) <= 2:
            raise ValueError("need more than one value per channel in training")


class BesselOnMeanToo(_Learner):
    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            c = n / (n - 1)
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean * c)
            self.running_var.copy_((1 - a) * self.running_var + a * var * c)


class KeepdimStatsIntoBuffers(_Learner):
    def _stats(self, x, dims):
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        return mean, var

    def _normalise(self, x, mean, var):
        if mean.dim() == x.dim():  # batch statistics, already broadcastable
            y = (x - mean) / torch.sqrt(var + self.eps)
            if self.affine:
                shape = self._shape(x)
                y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
            return y
        return super()._normalise(x, mean, var)

    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * var * (n / (n - 1)))


class RunningVarAroundRunningMean(_Learner):
    def forward(self, x):
        self._x = x.detach()
        return super().forward(x)

    def _track(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
            # spread of the batch around the (just updated) population mean
            dev = ((self._x - self.running_mean.reshape(self._shape(self._x))) ** 2).mean(dim=self._dims(self._x))
            self.running_var.copy_((1 - a) * self.running_var + a * dev * (n / (n - 1)))


# ---- ScratchBatchNorm: correct alternatives ------------------------------------------


class TwoVarianceCalls(nn.Module):
    """Right: biased variance for the output, a second var() call (correction=1) for
    the buffers, torch.lerp into copy_, dims from a list comprehension."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", nn.Parameter(torch.ones(num_features)) if affine else None)
        self.register_parameter("bias", nn.Parameter(torch.zeros(num_features)) if affine else None)
        for name, value in (("running_mean", torch.zeros(num_features)),
                            ("running_var", torch.ones(num_features)),
                            ("num_batches_tracked", torch.zeros((), dtype=torch.long))):
            self.register_buffer(name, value if track_running_stats else None)

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

    def forward(self, x):
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"input must be 2-D, 3-D or 4-D, got {x.ndim}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{x.shape[1]} channels given, module has {self.num_features}")
        dims = [d for d in range(x.ndim) if d != 1]
        expand = lambda t: t[(None, slice(None)) + (None,) * (x.ndim - 2)]  # noqa: E731
        if self.training or not self.track_running_stats:
            if x.numel() <= x.shape[1]:
                raise ValueError("more than one value per channel is needed in training mode")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    w = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
                    self.running_mean.copy_(torch.lerp(self.running_mean, mean.to(self.running_mean), w))
                    unbiased = x.var(dims, correction=1).to(self.running_var)
                    self.running_var.copy_(torch.lerp(self.running_var, unbiased, w))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - expand(mean)) * torch.rsqrt(expand(var) + self.eps)
        if self.affine:
            out = torch.addcmul(expand(self.bias), out, expand(self.weight))
        return out.to(x.dtype)


class TorchStyleFactor(nn.Module):
    """Right: the bookkeeping written like torch's own _BatchNorm (an
    exponential_average_factor), statistics from centred squares on a
    channels-first flattening."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features))
            self.bias = nn.Parameter(torch.empty(num_features))
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
        self.reset_parameters()

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

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2-D, 3-D or 4-D input (got {x.dim()}-D)")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {c}")
        flat = x.transpose(0, 1).reshape(c, -1)  # (C, values per channel)
        n = flat.shape[1]
        bn_training = self.training or not self.track_running_stats
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        if bn_training:
            if n < 2:
                raise ValueError("cannot compute a variance from 1 value per channel")
            mean = flat.mean(1)
            centred = flat - mean[:, None]
            var = (centred * centred).mean(1)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                    self.running_var.mul_(1 - factor).add_(var.detach() * n / (n - 1), alpha=factor)
        else:
            mean, var = self.running_mean, self.running_var
        shape = [1, c] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) / (var.view(shape) + self.eps).sqrt()
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


# ---- fold_batchnorm ------------------------------------------------------------------


def _new_layer(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                        bias=True, padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: put bn in eval mode first (training mode has no fixed statistics)")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")


def _affine(bn):
    if bn.weight is None:
        return torch.ones_like(bn.running_var), torch.zeros_like(bn.running_mean)
    return bn.weight, bn.bias


def _fill(new, layer, bn, s, own_bias):
    gamma, beta = _affine(bn)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        new.bias.copy_(s * (own_bias - bn.running_mean) + beta)
    return new


def fold_shallow_copy(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    new = copy.copy(layer)  # a new module object ...
    own_bias = layer.bias.detach().clone() if layer.bias is not None else torch.zeros_like(s)
    with torch.no_grad():
        new.weight.mul_(s.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        if new.bias is None:
            new.bias = nn.Parameter(torch.zeros_like(s))
        new.bias.copy_(s * (own_bias - bn.running_mean) + beta)
    return new


def fold_assert_training(layer, bn):
    assert not bn.training, "fold_batchnorm needs bn in eval mode"
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma, _ = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    own = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_new_layer(layer), layer, bn, s, own)


def fold_condition_inverted(layer, bn):
    if not bn.training:
        raise ValueError("fold_batchnorm: bn must not be in training mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma, _ = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    own = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return _fill(_new_layer(layer), layer, bn, s, own)


def fold_missing_bias_from_bn(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    own = layer.bias if layer.bias is not None else beta
    return _fill(_new_layer(layer), layer, bn, s, own)


def fold_one_global_std(layer, bn):
    _refuse(bn)
    gamma, _ = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var.mean() + bn.eps)
    own = layer.bias if layer.bias is not None else torch.zeros_like(gamma)
    return _fill(_new_layer(layer), layer, bn, s, own)


def fold_eps_added_in_place(layer, bn):
    _refuse(bn)
    gamma, _ = _affine(bn)
    var = bn.running_var
    with torch.no_grad():
        var += bn.eps
    s = gamma / var.sqrt()
    own = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        new.bias.copy_(s * (own - bn.running_mean) + _affine(bn)[1])
    return new


def fold_wrapped_in_sequential(layer, bn):
    _refuse(bn)
    gamma, _ = _affine(bn)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    own = layer.bias if layer.bias is not None else torch.zeros_like(s)
    return nn.Sequential(_fill(_new_layer(layer), layer, bn, s, own))


# ---- fold_batchnorm: correct alternative --------------------------------------------


def fold_probe_linear(layer, bn):
    """Right: a Linear is folded by probing bn(layer(.)) with zeros and the identity
    (the composition is affine); a Conv2d by a deepcopy scaled in place."""
    if bn.training:
        raise ValueError("bn is in training mode: its statistics are not fixed, nothing to fold")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("bn keeps no running statistics (track_running_stats=False): cannot fold")
    if isinstance(layer, nn.Linear):
        k = layer.in_features
        lin, norm = copy.deepcopy(layer).double(), copy.deepcopy(bn).double()  # probe in float64
        with torch.no_grad():
            eye = torch.eye(k, dtype=torch.float64)
            zero = torch.zeros(1, k, dtype=torch.float64)
            b0 = norm(lin(zero))[0]
            cols = norm(lin(eye)) - b0  # row i = W' e_i
        new = nn.Linear(k, layer.out_features, dtype=layer.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(cols.T)
            new.bias.copy_(b0)
        return new
    if isinstance(layer, nn.Conv2d):
        new = copy.deepcopy(layer)
        var = bn.running_var
        s = (bn.weight if bn.affine else torch.ones_like(var)) / (var + bn.eps).sqrt()
        shift = bn.bias if bn.affine else torch.zeros_like(var)
        own = layer.bias if layer.bias is not None else torch.zeros_like(var)
        with torch.no_grad():
            new.weight.mul_(s[:, None, None, None])
            new.bias = nn.Parameter(((own - bn.running_mean) * s + shift).detach().clone())
        return new
    raise TypeError(f"cannot fold into a {type(layer).__name__}")


ENTRIES = [
    entry(S, "Bessel factor with integer division", BesselIntegerDivision,
          "running_var is updated with var * (n // (n - 1)): integer division makes the factor 1 "
          "for every batch of more than 2 values per channel (2 for n = 2) instead of n / (n - 1)",
          replaces=NAME),
    entry(S, "momentum=0 read as None", MomentumZeroAsNone,
          "`self.momentum or 1/k` treats momentum=0.0 as None, so a module that should keep its "
          "running statistics frozen uses the cumulative average instead",
          replaces=NAME),
    entry(S, "half-precision input computed in float32, not cast back", HalfInputsNotCastBack,
          "a float16/bfloat16 input is converted to float32 for the computation and the output "
          "is returned in float32 instead of the input's dtype",
          replaces=NAME),
    entry(S, "reset_parameters ignores affine=False", ResetParametersNoAffineCheck,
          "reset_parameters() calls nn.init on weight and bias without checking self.affine, so "
          "it fails (weight is None) on a module built with affine=False",
          replaces=NAME),
    entry(S, "reset_running_stats ignores track_running_stats=False", ResetRunningStatsUntracked,
          "reset_running_stats() zeroes the buffers without checking track_running_stats, so it "
          "fails on an untracked module whose buffers are None (torch's does nothing)",
          replaces=NAME),
    entry(S, "one-value guard in eval mode too", GuardInEvalToo,
          "the 'more than one value per channel' ValueError is raised in every mode, so eval mode "
          "refuses a single example, which it can normalise with the running statistics",
          replaces=NAME),
    entry(S, "statistics computed inside no_grad", StatsInsideNoGrad,
          "the batch mean and variance are computed inside the torch.no_grad() block meant for "
          "the buffer update, so the normalisation uses detached statistics and the input "
          "gradient lacks the terms through the mean and the variance",
          replaces=NAME),
    entry(S, "counter a Python int", CounterPythonInt,
          "num_batches_tracked is a plain Python int attribute, not a registered long buffer, "
          "so it is missing from state_dict and the buffers",
          replaces=NAME),
    entry(S, "reduction dims cached at the first call", DimsCachedFirstCall,
          "the reduction dims and broadcast shape are computed at the first forward call and "
          "reused, so a later input of another rank (2-D then 3-D) is reduced over the wrong "
          "dimensions",
          replaces=NAME),
    entry(S, "guard refuses two values per channel", GuardRefusesTwo,
          "the guard is `n <= 2` instead of `n < 2`, so a training batch with two values per "
          "channel (a batch of 2 in (N, C)) is refused with a ValueError",
          replaces=NAME),
    entry(S, "Bessel factor applied to the running mean too", BesselOnMeanToo,
          "the n / (n - 1) factor multiplies the batch mean as well as the variance in the "
          "running update, so running_mean is too large by that factor",
          replaces=NAME),
    entry(S, "keepdim statistics added into the buffers", KeepdimStatsIntoBuffers,
          "the statistics are computed with keepdim=True and added in place into the (C,) "
          "buffers, which cannot take the (1, C, ...) shape: the buffer update fails",
          replaces=NAME),
    entry(S, "running variance measured around the running mean", RunningVarAroundRunningMean,
          "running_var is updated with the batch's mean squared deviation from the (just "
          "updated) running mean instead of the batch's own unbiased variance",
          replaces=NAME),
    entry(FOLD, "copy.copy of the layer", fold_shallow_copy,
          "copy.copy makes a shallow copy that shares the weight tensor with `layer`, so scaling "
          "the new weight in place also changes the original layer"),
    entry(FOLD, "assert for the training-mode refusal", fold_assert_training,
          "a batch norm in training mode is refused with an assert (AssertionError) instead of a "
          "ValueError"),
    entry(FOLD, "refusal condition inverted", fold_condition_inverted,
          "`if not bn.training: raise` refuses every batch norm in eval mode (the ones to fold) "
          "and lets training-mode ones through"),
    entry(FOLD, "missing layer bias replaced by bn.bias", fold_missing_bias_from_bn,
          "for a layer without a bias the learner uses bn.bias as the layer's own bias instead of "
          "zeros, so beta enters the folded bias twice (once scaled)"),
    entry(FOLD, "one std for all channels", fold_one_global_std,
          "the scale divides gamma by sqrt(mean of running_var + eps), one number for every "
          "channel, instead of each channel's own sqrt(running_var + eps)"),
    entry(FOLD, "eps added to running_var in place", fold_eps_added_in_place,
          "`var = bn.running_var; var += bn.eps` aliases the buffer, so folding adds eps to the "
          "batch norm's running_var (bn is changed, and a second fold would be off)"),
    entry(FOLD, "folded layer wrapped in nn.Sequential", fold_wrapped_in_sequential,
          "returns nn.Sequential(folded) instead of the nn.Linear / nn.Conv2d itself"),
    right(S, "two variance calls, lerp into copy_", TwoVarianceCalls, replaces=NAME),
    right(S, "torch-style averaging factor, flattened channels", TorchStyleFactor, replaces=NAME),
    right(FOLD, "Linear probed with the identity, conv by deepcopy", fold_probe_linear),
]
