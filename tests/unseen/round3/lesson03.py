"""Held-out answers (third set), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"

# ---- ScratchBatchNorm: a learner's class with one slip each ----------------------


class _Scratch(nn.Module):
    """A right implementation, written the way a learner might; each wrong entry
    below changes one method."""

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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

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

    def _affine(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._affine(out, view).to(x.dtype)


class AffineOnlyInTraining(_Scratch):
    def forward(self, x):
        if not self.training and self.track_running_stats:
            view = [1, -1] + [1] * (x.dim() - 2)
            if x.shape[1] != self.num_features:
                raise ValueError("wrong number of channels")
            return (x - self.running_mean.view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
        return super().forward(x)


class CounterInEval(_Scratch):
    def forward(self, x):
        if not self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1  # "one more batch seen"
        return super().forward(x)


class CounterCountsExamples(_Scratch):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += n  # values seen, not batches
            f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class BesselFromAllValues(_Scratch):
    def forward(self, x):
        self._total = x.numel()
        return super().forward(x)

    def _update(self, mean, var, n):
        total = self._total  # every value of the batch, all channels together
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * total / (total - 1))


class OldValueNotDecayed(_Scratch):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.add_(f * mean)
            self.running_var.add_(f * var * n / (n - 1))


class BatchMeanInEval(_Scratch):
    def forward(self, x):
        if not self.training and self.track_running_stats:
            view = [1, -1] + [1] * (x.dim() - 2)
            dims = [0, *range(2, x.dim())]
            out = (x - x.mean(dims).view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
            return self._affine(out, view)
        return super().forward(x)


class EpsIgnored(_Scratch):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, 1e-5, momentum, affine, track_running_stats)


class RandomWeight(_Scratch):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if affine:
            self.weight = nn.Parameter(torch.rand(num_features))  # "random init breaks symmetry"


class BesselInverted(_Scratch):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * (n - 1) / n)


class VarianceOverBatchOnly(_Scratch):
    def forward(self, x):
        if x.dim() == 2 or not self.training or x.dim() not in (3, 4) or x.shape[1] != self.num_features:
            return super().forward(x)  # the checks and the 2-D / eval paths
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1]
        mean = x.mean(dims)
        var = x.var(0, unbiased=False).mean(dim=tuple(range(1, x.dim() - 1)))  # per position, then averaged
        if self.track_running_stats:
            self._update(mean.detach(), var.detach(), n)
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._affine(out, view)


class MomentumNoneAsDefault(_Scratch):
    def _factor(self):
        return 0.1 if self.momentum is None else self.momentum  # "None means the default"


class UnbiasedInEvalDenominator(_Scratch):
    def forward(self, x):
        if not self.training and self.track_running_stats:
            view = [1, -1] + [1] * (x.dim() - 2)
            n_last = getattr(self, "_n_last", 2)
            var = self.running_var * (n_last - 1) / n_last  # "back to the biased variance"
            out = (x - self.running_mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
            return self._affine(out, view)
        if self.training:
            self._n_last = x.numel() // x.shape[1]
        return super().forward(x)


class RunningVarFromStd(_Scratch):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * torch.sqrt(var * n / (n - 1)))


# ---- correct alternatives --------------------------------------------------------


class ViaFlatChannels(_Scratch):
    """Moves the channels first and flattens, two-pass statistics in at least
    float32, cast back; running update with lerp_; scale and shift folded."""

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError("expected 2-D, 3-D or 4-D input")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError("wrong number of channels")
        work = x.to(torch.promote_types(x.dtype, torch.float32))
        flat = work.transpose(0, 1).reshape(c, -1)  # (C, values)
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = flat.shape[1]
            if n < 2:
                raise ValueError("need more than one value per channel")
            mean = flat.mean(1)
            var = ((flat - mean[:, None]) ** 2).mean(1)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), w)
                    self.running_var.lerp_((var * (n / (n - 1))).to(self.running_var.dtype), w)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + self.eps)
        shift = -mean * scale
        if self.affine:
            scale, shift = scale * self.weight, shift * self.weight + self.bias
        return (work * scale.view(view) + shift.view(view)).to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return gamma / std, beta


def _new_like(layer, bias=True):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=bias)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias,
                        padding_mode=layer.padding_mode)
    return new.to(layer.weight)


def _refuse(bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    if bn.running_var is None:
        raise ValueError("bn has no running statistics")


def _per_out(layer):
    return [-1] + [1] * (layer.weight.dim() - 1)


def fold_beta_dropped(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s)
    return new


def fold_mean_not_scaled(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_(b * s - bn.running_mean + beta)
    return new


def fold_eps_outside(layer, bn):
    _refuse(bn)
    s = (bn.weight if bn.affine else 1.0) / (torch.sqrt(bn.running_var) + bn.eps)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_mean_added(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b + bn.running_mean) * s + beta)
    return new


def fold_bias_none_crash(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((layer.bias - bn.running_mean) * s + beta)
    return new


def fold_bias_flag_copied(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    has_bias = layer.bias is not None
    new = _new_like(layer, bias=has_bias)  # "same layout as the original"
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        if has_bias:
            new.bias.copy_((layer.bias - bn.running_mean) * s + beta)
    return new


def fold_padding_not_copied(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        dilation=layer.dilation, groups=layer.groups)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_returns_tensors(layer, bn):
    _refuse(bn)
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    with torch.no_grad():
        w = layer.weight * s.view(_per_out(layer))
        bias = (b - bn.running_mean) * s + beta
    return w, bias


def fold_unbiased_to_biased(layer, bn):
    _refuse(bn)
    n = int(bn.num_batches_tracked) or 1
    var = bn.running_var * (n - 1) / n if n > 1 else bn.running_var  # "running_var is unbiased"
    std = torch.sqrt(var + bn.eps)
    s = (bn.weight if bn.affine else 1.0) / std
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_refuses_eval_only_by_flag(layer, bn):
    """Refuses nothing: checks bn.track_running_stats instead of bn.training."""
    if not bn.track_running_stats:
        raise ValueError("bn has no running statistics")
    s, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


# ---- fold: correct alternative -----------------------------------------------------


def fold_functional(layer, bn):
    """Weights from the functional forms: W' = W * s via einsum, b' = bn(b) in eval."""
    if bn.training:
        raise ValueError("batch norm must be in eval mode")
    if bn.running_var is None:
        raise ValueError("no running statistics")
    inv = torch.rsqrt(bn.running_var + bn.eps)
    s = inv * bn.weight if bn.weight is not None else inv
    own = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        bias = torch.nn.functional.batch_norm(
            own[None], bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)[0]
        weight = torch.einsum("o...,o->o...", layer.weight, s)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, dtype=layer.weight.dtype)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, layer.dilation, layer.groups, True, layer.padding_mode,
                        dtype=layer.weight.dtype)
    new.weight = nn.Parameter(weight.clone())
    new.bias = nn.Parameter(bias.clone())
    return new


ENTRIES = [
    entry(S, "affine left out in eval mode", AffineOnlyInTraining,
          "in eval mode it normalises with the running statistics but never applies weight and bias.", replaces=NAME),
    entry(S, "counter incremented in eval mode", CounterInEval,
          "increments num_batches_tracked in eval mode too (the running statistics themselves are left alone).", replaces=NAME),
    entry(S, "counter counts values, not batches", CounterCountsExamples,
          "adds the number of values per channel to num_batches_tracked instead of 1 per training batch.", replaces=NAME),
    entry(S, "old running value not decayed", OldValueNotDecayed,
          "adds momentum * batch statistic to the running statistics without multiplying the old value by 1 - momentum.", replaces=NAME),
    entry(S, "batch mean in eval mode", BatchMeanInEval,
          "in eval mode it centres with the batch's mean (the running variance is used) instead of running_mean.", replaces=NAME),
    entry(S, "eps argument ignored", EpsIgnored,
          "the constructor ignores its eps argument and always uses 1e-5.", replaces=NAME),
    entry(S, "weight initialised at random", RandomWeight,
          "initialises weight with torch.rand instead of ones, so a fresh module is not the identity affine map.", replaces=NAME),
    entry(S, "Bessel factor inverted in the running variance", BesselInverted,
          "updates running_var with var * (n - 1)/n instead of var * n/(n - 1).", replaces=NAME),
    entry(S, "3-D/4-D variance per position, averaged", VarianceOverBatchOnly,
          "for 3-D and 4-D input in training it takes the variance over the batch at each position and averages those, instead of the variance over N and every position together (the spread between positions is lost).", replaces=NAME),
    entry(S, "momentum=None read as 0.1", MomentumNoneAsDefault,
          "with momentum=None it uses a momentum of 0.1 instead of the cumulative average 1/num_batches_tracked.", replaces=NAME),
    entry(S, "Bessel factor from all values", BesselFromAllValues,
          "the unbiased correction for running_var uses total/(total - 1) with total the number of values of the whole batch (all channels) instead of the number per channel.", replaces=NAME),
    entry(S, "eval converts running_var back to biased", UnbiasedInEvalDenominator,
          "in eval mode it rescales running_var by (n - 1)/n (\"back to the biased variance\") instead of using running_var as it is.", replaces=NAME),
    entry(S, "running_var averages the standard deviation", RunningVarFromStd,
          "updates running_var with the unbiased standard deviation (a square root) instead of the unbiased variance.", replaces=NAME),
    entry(FOLD, "beta dropped", fold_beta_dropped,
          "the folded bias is (b - mu) * s without the batch norm's bias beta."),
    entry(FOLD, "running mean not scaled", fold_mean_not_scaled,
          "the folded bias is b * s - mu + beta: the running mean is not multiplied by the scale s."),
    entry(FOLD, "eps outside the square root", fold_eps_outside,
          "the scale divides by sqrt(running_var) + eps instead of sqrt(running_var + eps)."),
    entry(FOLD, "running mean added", fold_mean_added,
          "the folded bias adds the running mean, (b + mu) * s + beta, instead of subtracting it."),
    entry(FOLD, "layer without a bias crashes", fold_bias_none_crash,
          "uses layer.bias without handling bias=False, so a layer without a bias raises TypeError."),
    entry(FOLD, "bias=False carried over", fold_bias_flag_copied,
          "creates the folded layer without a bias when the original has none, so batch norm's shift (beta - mu * s) is lost."),
    entry(FOLD, "padding not copied", fold_padding_not_copied,
          "builds the new Conv2d without the original's padding, so padded convolutions give outputs of the wrong size."),
    entry(FOLD, "returns weight and bias, not a layer", fold_returns_tensors,
          "returns the folded (weight, bias) tensors instead of a new nn.Linear / nn.Conv2d layer."),
    entry(FOLD, "running_var converted to biased", fold_unbiased_to_biased,
          "rescales running_var by (n - 1)/n with n = num_batches_tracked, but batch norm in eval divides by sqrt(running_var + eps) as stored."),
    entry(FOLD, "tests track_running_stats instead of training", fold_refuses_eval_only_by_flag,
          "refuses only a batch norm without running statistics and folds a batch norm in training mode instead of raising ValueError."),
    right(S, "flattened channels, rsqrt, lerp_", ViaFlatChannels, replaces=NAME),
    right(S, "helper methods, detached statistics", _Scratch, replaces=NAME),
    right(FOLD, "F.batch_norm on the bias, einsum", fold_functional),
]
