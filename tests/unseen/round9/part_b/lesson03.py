"""Held-out answers (ninth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm: a learner's right class, each wrong entry changes one piece ----


class _Base(nn.Module):
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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _weight(self):
        return self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)

    def _unbiased(self, var, n):
        return var * n / (n - 1)

    def _stats(self, x, dims):
        return x.mean(dims), x.var(dims, correction=0)

    def _apply_affine(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("more than one value per channel is needed in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    w = self._weight()
                    self.running_mean.mul_(1 - w).add_(w * mean)
                    self.running_var.mul_(1 - w).add_(w * self._unbiased(var, n))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._apply_affine(out, view).to(x.dtype)


class RunningStatsInTraining(_Base):
    """Updates the buffers, then normalises with them in training too."""

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("more than one value per channel is needed in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    w = self._weight()
                    self.running_mean.mul_(1 - w).add_(w * mean)
                    self.running_var.mul_(1 - w).add_(w * self._unbiased(var, n))
        if self.track_running_stats:
            mean, var = self.running_mean, self.running_var  # "the statistics batch norm keeps"
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._apply_affine(out, view).to(x.dtype)


class MeanDetached(_Base):
    def _stats(self, x, dims):
        mean = x.detach().mean(dims)  # "the mean is just a constant to subtract"
        return mean, x.var(dims, correction=0)


class AffineThroughData(_Base):
    def _apply_affine(self, out, view):
        if self.affine:
            out = out * self.weight.data.view(view) + self.bias.data.view(view)
        return out


class MomentumNoneFixedAtInit(_Base):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.cumulative = momentum is None

    def _weight(self):
        if self.cumulative:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum


class ResetParametersOnlyAffine(_Base):
    def reset_parameters(self):
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)


class ResetRebindsBuffers(_Base):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean = torch.zeros_like(self.running_mean)
            self.running_var = torch.ones_like(self.running_var)
            self.num_batches_tracked = torch.zeros_like(self.num_batches_tracked)


class MeanMomentumHardCoded(_Base):
    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("more than one value per channel is needed in training")
            mean, var = self._stats(x, dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    w = self._weight()
                    self.running_mean.mul_(0.9).add_(0.1 * mean)
                    self.running_var.mul_(1 - w).add_(w * self._unbiased(var, n))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._apply_affine(out, view).to(x.dtype)


class CounterShapeOne(_Base):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if track_running_stats:
            self.num_batches_tracked = torch.zeros(1, dtype=torch.long)


class SequenceBranchUnfinished(_Base):
    def forward(self, x):
        if x.dim() == 3:
            raise NotImplementedError("(N, C, L) input: TODO")
        return super().forward(x)


class RankOnlyCheckedAbove(_Base):
    def _validate(self, x):
        if x.dim() > 4:
            raise ValueError(f"expected at most 4 dimensions, got {x.dim()}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")


class BesselCachedFirstBatch(_Base):
    def _unbiased(self, var, n):
        if not hasattr(self, "_correction"):
            self._correction = n / (n - 1)  # computed once
        return var * self._correction


class CumulativeIntegerDivision(_Base):
    def _weight(self):
        if self.momentum is None:
            return 1 // int(self.num_batches_tracked)
        return self.momentum


# ---- correct alternatives --------------------------------------------------------


class PerChannelLoop(_Base):
    """One channel at a time, stacked; torch.var(correction=1) for the running variance."""

    def forward(self, x):
        self._validate(x)
        c = x.shape[1]
        view = [1, -1] + [1] * (x.dim() - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.numel() // c < 2:
            raise ValueError("more than one value per channel is needed in training")
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        work = x.to(torch.promote_types(x.dtype, torch.float32))
        means, variances = [], []
        for k in range(c):
            values = work.select(1, k).reshape(-1)
            if use_batch:
                m = values.mean()
                v = ((values - m) ** 2).mean()
                if self.training and self.track_running_stats:
                    with torch.no_grad():
                        w = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                        self.running_mean[k] = (1 - w) * self.running_mean[k] + w * m
                        self.running_var[k] = (1 - w) * self.running_var[k] + w * values.var(correction=1)
            else:
                m, v = self.running_mean[k], self.running_var[k]
            means.append(m)
            variances.append(v)
        mean, var = torch.stack(means), torch.stack(variances)
        out = (work - mean.view(view)) * torch.rsqrt(var.view(view) + self.eps)
        return self._apply_affine(out, view).to(x.dtype)


class ScaleShiftAddcmul(_Base):
    """Unbiased variance from torch.var directly, buffers blended with lerp_,
    the normalisation and the affine map folded into one scale and shift."""

    def forward(self, x):
        self._validate(x)
        dims = tuple([0] + list(range(2, x.dim())))
        view = [1, -1] + [1] * (x.dim() - 2)
        x_in, x = x, x.to(torch.promote_types(x.dtype, torch.float32))
        if self.training or not self.track_running_stats:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("more than one value per channel is needed in training")
            mean = x.mean(dims)
            var = (x - mean.view(view)).pow(2).mean(dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), w)
                    self.running_var.lerp_(x.var(dims, correction=1).to(self.running_var.dtype), w)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
            shift = self.bias - mean * scale
        else:
            shift = -mean * scale
        return torch.addcmul(shift.view(view), x, scale.view(view)).to(x_in.dtype)


# ---- fold_batchnorm ---------------------------------------------------------------


def _guard(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: bn is in training mode; fold only in eval mode")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics")


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    if bn.affine:
        return bn.weight / std, bn.bias
    return 1.0 / std, torch.zeros_like(bn.running_mean)


def _empty_like(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _shape(layer):
    return [-1] + [1] * (layer.weight.dim() - 1)


def fold_assigns_tensors(layer, bn):
    _guard(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _empty_like(layer)
    with torch.no_grad():
        new.weight = layer.weight * s.view(_shape(layer))
        new.bias = (b - bn.running_mean) * s + beta
    return new


def fold_in_channels_from_weight(layer, bn):
    _guard(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
    else:
        out_c, in_c = layer.weight.shape[:2]
        new = nn.Conv2d(in_c, out_c, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups, padding_mode=layer.padding_mode)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_shape(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_conv_view_for_linear(layer, bn):
    _guard(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _empty_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        new.weight.mul_(s.view(-1, 1, 1, 1))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_refuses_affine_false(layer, bn):
    _guard(bn)
    if not bn.affine:
        raise ValueError("fold_batchnorm: bn has no weight and bias to fold")
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _empty_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_shape(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_bias_aliases_layer(layer, bn):
    _guard(bn)
    s, beta = _scale_shift(bn)
    new = _empty_like(layer)
    with torch.no_grad():
        if layer.bias is not None:
            b = layer.bias  # no copy: the subtraction below happens in layer.bias itself
            b -= bn.running_mean
        else:
            b = -bn.running_mean
        new.weight.copy_(layer.weight * s.view(_shape(layer)))
        new.bias.copy_(b * s + beta)
    return new


def fold_bias_only_if_layer_had_one(layer, bn):
    _guard(bn)
    s, beta = _scale_shift(bn)
    new = _empty_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_shape(layer)))
        if layer.bias is not None:
            new.bias.copy_((layer.bias - bn.running_mean) * s + beta)
    return new


def fold_moveaxis_addcmul(layer, bn):
    """Scales the weight with the output axis moved last; bias by torch.addcmul."""
    if bn.training:
        raise ValueError("bn in training mode cannot be folded")
    if bn.running_mean is None:
        raise ValueError("bn tracks no running statistics")
    inv_std = (bn.running_var + bn.eps).rsqrt()
    gamma = bn.weight if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(inv_std)
    s = gamma * inv_std
    own = layer.bias if layer.bias is not None else torch.zeros_like(inv_std)
    with torch.no_grad():
        weight = (layer.weight.movedim(0, -1) * s).movedim(-1, 0).clone()
        bias = torch.addcmul(beta, own - bn.running_mean, s).clone()
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, layer.dilation, layer.groups, True, layer.padding_mode,
                        device=layer.weight.device, dtype=layer.weight.dtype)
    elif isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, True,
                        device=layer.weight.device, dtype=layer.weight.dtype)
    else:
        raise TypeError("only nn.Linear and nn.Conv2d can be folded")
    new.load_state_dict({"weight": weight, "bias": bias})
    return new


ENTRIES = [
    entry(S, "normalises with the updated running statistics in training", RunningStatsInTraining,
          "in training mode it updates the buffers and then normalises with running_mean / running_var instead of the batch's own mean and biased variance.", replaces=NAME),
    entry(S, "batch mean taken from a detached input", MeanDetached,
          "the batch mean is computed from x.detach(), so the input gradient misses the path through the mean (the output itself is right).", replaces=NAME),
    entry(S, "weight and bias applied through .data", AffineThroughData,
          "multiplies by weight.data and adds bias.data, so weight and bias receive no gradient (outputs and input gradients are right).", replaces=NAME),
    entry(S, "momentum=None decided once in __init__", MomentumNoneFixedAtInit,
          "whether to use the cumulative average is decided once from the constructor's momentum, so setting module.momentum = None later (as recalibrate does) gives a None factor and a TypeError, and setting a number later is ignored.", replaces=NAME),
    entry(S, "reset_parameters leaves the running statistics", ResetParametersOnlyAffine,
          "reset_parameters resets weight and bias but not the running statistics and the counter (it does not call reset_running_stats).", replaces=NAME),
    entry(S, "reset_running_stats rebinds new tensors", ResetRebindsBuffers,
          "reset_running_stats assigns new tensors (zeros_like / ones_like) instead of resetting the existing buffers in place, so anything holding the old buffers keeps the stale statistics.", replaces=NAME),
    entry(S, "running mean blended with a hard-coded 0.1", MeanMomentumHardCoded,
          "running_mean is always blended with a fixed 0.1 instead of the module's momentum (or 1/k for momentum=None); running_var uses the right factor.", replaces=NAME),
    entry(S, "num_batches_tracked of shape (1,)", CounterShapeOne,
          "num_batches_tracked is a 1-element tensor of shape (1,) instead of a 0-d long tensor, so the state_dict does not match torch's.", replaces=NAME),
    entry(S, "(N, C, L) branch left unfinished", SequenceBranchUnfinished,
          "3-D (N, C, L) input raises NotImplementedError: that branch was left as a TODO.", replaces=NAME),
    entry(S, "rank checked only from above", RankOnlyCheckedAbove,
          "only inputs with more than 4 dimensions are refused, so a 1-D input fails with an IndexError (x.shape[1]) instead of the ValueError.", replaces=NAME),
    entry(S, "Bessel factor cached from the first batch", BesselCachedFirstBatch,
          "the factor n/(n - 1) for running_var is computed at the first training batch and reused, so later batches of another size get the first batch's factor.", replaces=NAME),
    entry(S, "cumulative weight by integer division", CumulativeIntegerDivision,
          "with momentum=None the weight 1 // k is integer division: 1 at the first batch and 0 afterwards, so the running statistics stay those of the first batch.", replaces=NAME),
    entry(FOLD, "tensors assigned to the new layer's parameters", fold_assigns_tensors,
          "assigns plain tensors to new.weight and new.bias (new.weight = ...), which nn.Module refuses with a TypeError; they must be copied in or wrapped in nn.Parameter."),
    entry(FOLD, "in_channels read from the weight's shape", fold_in_channels_from_weight,
          "builds the new Conv2d with in_channels = weight.shape[1], which is in_channels / groups for a grouped convolution, so grouped convolutions fail."),
    entry(FOLD, "convolution's per-channel view used for a Linear", fold_conv_view_for_linear,
          "scales the weight with s.view(-1, 1, 1, 1), the shape for a Conv2d, which cannot broadcast in place into a Linear's 2-D weight."),
    entry(FOLD, "affine=False batch norm refused", fold_refuses_affine_false,
          "raises ValueError for a batch norm with affine=False instead of folding it with gamma = 1, beta = 0."),
    entry(FOLD, "layer's bias changed in place", fold_bias_aliases_layer,
          "subtracts the running mean from layer.bias itself (an alias, not a copy), so the original layer is changed (the folded layer is right)."),
    entry(FOLD, "bias written only when the layer had one", fold_bias_only_if_layer_had_one,
          "writes the folded bias only when the original layer had a bias, so for a layer without one the new layer keeps nn.Linear / nn.Conv2d's random initial bias."),
    right(S, "one channel at a time, torch.var(correction=1)", PerChannelLoop, replaces=NAME),
    right(S, "lerp_, unbiased torch.var, scale and shift with addcmul", ScaleShiftAddcmul, replaces=NAME),
    right(FOLD, "movedim scaling, addcmul bias, load_state_dict", fold_moveaxis_addcmul),
]
