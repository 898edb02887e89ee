"""Held-out answers (twenty-second set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Base(nn.Module):
    """A right learner's module, cut into small methods; each wrong entry below changes one of them."""

    RANKS = (2, 3, 4)

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
        self._buffers_for(track_running_stats)

    def _buffers_for(self, track):
        if track:
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

    def _check(self, x):
        if x.dim() not in self.RANKS:
            raise ValueError(f"ScratchBatchNorm: expected (N, C), (N, C, L) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}): the input has {x.shape[1]} channels")

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))

    def _batch_norm(self, x, mean, var, view):
        return (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)

    def _cast(self, out, x):
        return out.to(x.dtype)

    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
            out = self._batch_norm(x, mean, var, view)
        else:
            out = (x - self.running_mean.view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return self._cast(out, x)


class UpdateOnlyMeanDetached(_Base):
    """No torch.no_grad(): the learner detaches by hand, and forgets the variance."""

    def _update(self, mean, var, n):
        self.num_batches_tracked += 1
        f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - f).add_(f * mean.detach())
        self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class NoEpsInTraining(_Base):
    """The training-mode normalisation divides by sqrt(var) (eps only in the eval branch)."""

    def _batch_norm(self, x, mean, var, view):
        return (x - mean.view(view)) / torch.sqrt(var.view(view))


class RanksOfBatchNorm2dAndLinear(_Base):
    """Rank check `x.dim() not in (2, 4)`: (N, C, L) sequences refused."""

    RANKS = (2, 4)


class BuffersUnderAffine(_Base):
    """The buffers' `if` copied from the parameters' block: `if affine:` decides the running statistics."""

    def _buffers_for(self, track):
        super()._buffers_for(self.affine)


class OutputInBufferDtype(_Base):
    """The output cast to the running statistics' dtype instead of the input's."""

    def _cast(self, out, x):
        return out.to(self.running_mean.dtype)


class InPlaceAffineCountFirst(nn.Module):
    """Correct: a `(1, C, 1, ...)` view from a tuple slice, the cumulative factor 1 / (k + 1) taken before
    counting, torch.var with its default correction (in the buffers' dtype) for the running variance, affine
    applied in place."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        stats = {
            "running_mean": torch.zeros(num_features),
            "running_var": torch.ones(num_features),
            "num_batches_tracked": torch.zeros((), dtype=torch.long),
        }
        for key, value in stats.items():
            self.register_buffer(key, value if track_running_stats else None)

    def reset_running_stats(self):
        if not self.track_running_stats:
            return
        with torch.no_grad():
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
        if not 2 <= x.dim() <= 4:
            raise ValueError(f"ScratchBatchNorm: a {x.dim()}-D input; give (N, C), (N, C, L) or (N, C, H, W)")
        if x.size(1) != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.size(1)} channels in, {self.num_features} expected")
        shape = (1, self.num_features, 1, 1)[: x.dim()]
        dims = tuple(d for d in range(x.dim()) if d != 1)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if x.numel() <= x.size(1):
                raise ValueError("ScratchBatchNorm: one value per channel, its variance is not defined")
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    k = int(self.num_batches_tracked)
                    f = 1.0 / (k + 1) if self.momentum is None else self.momentum
                    self.running_mean.copy_((1 - f) * self.running_mean + f * mean)
                    self.running_var.copy_((1 - f) * self.running_var + f * x.to(self.running_var).var(dim=dims))
                    self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.reshape(shape)) / (var.reshape(shape) + self.eps).sqrt()
        if self.affine:
            out.mul_(self.weight.reshape(shape)).add_(self.bias.reshape(shape))
        return out.to(dtype=x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; fold it after bn.eval()")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics (track_running_stats=False)")


def _new_layer(layer, bias=True):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=bias)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold into a {type(layer).__name__}")
    return new.to(layer.weight)


def _gamma_beta(bn):
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
    return gamma, beta


def _own_bias(layer):
    return layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.weight.shape[0])


def _per_channel(layer):
    return [-1] + [1] * (layer.weight.dim() - 1)


def fold_std_from_running_mean(layer, bn):
    _refuse(bn)
    new = _new_layer(layer)
    gamma, beta = _gamma_beta(bn)
    std = torch.sqrt(bn.running_mean + bn.eps)
    scale = gamma / std
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(_per_channel(layer)))
        new.bias.copy_((_own_bias(layer) - bn.running_mean) * scale + beta)
    return new


def fold_mean_minus_bias(layer, bn):
    _refuse(bn)
    new = _new_layer(layer)
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(_per_channel(layer)))
        new.bias.copy_((bn.running_mean - _own_bias(layer)) * scale + beta)
    return new


def fold_refuses_cumulative(layer, bn):
    _refuse(bn)
    if bn.momentum is None:
        raise ValueError("fold_batchnorm: momentum=None keeps a cumulative average, no fixed statistics to fold")
    new = _new_layer(layer)
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(_per_channel(layer)))
        new.bias.copy_((_own_bias(layer) - bn.running_mean) * scale + beta)
    return new


def fold_bias_only_if_affine(layer, bn):
    _refuse(bn)
    new = _new_layer(layer, bias=bn.affine)  # the new bias comes from beta
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(_per_channel(layer)))
        if new.bias is not None:
            new.bias.copy_((_own_bias(layer) - bn.running_mean) * scale + beta)
    return new


ENTRIES = [
    entry(S, "running update outside no_grad, only the mean detached", UpdateOnlyMeanDetached, replaces=NAME,
          cause="the running update is written without torch.no_grad(), detaching by hand: the batch mean is "
                "passed as mean.detach() but the unbiased variance is not detached, so running_var's in-place "
                "update records autograd history (running_var gets a grad_fn linked to every training step's "
                "graph); the values of every buffer and output are right."),
    entry(S, "eps left out of the training-mode normalisation", NoEpsInTraining, replaces=NAME,
          cause="the batch-statistics branch normalises with (x - mean) / sqrt(var) without eps (eps is added "
                "only where the running statistics are used), so training outputs and gradients (and every output "
                "of a module with track_running_stats=False) are slightly too large, by about eps / (2 var) "
                "relative; the buffers and eval mode with running statistics are right."),
    entry(S, "rank check `in (2, 4)`: (N, C, L) input refused", RanksOfBatchNorm2dAndLinear, replaces=NAME,
          cause="the rank check accepts x.dim() in (2, 4) only, so every 3-D (N, C, L) input raises ValueError "
                "although the exercise asks for it; 2-D and 4-D inputs are right."),
    entry(S, "running statistics registered under `if affine:`", BuffersUnderAffine, replaces=NAME,
          cause="the buffers are registered under `if affine:` (the condition of the parameters' block, copied) "
                "instead of `if track_running_stats:`, so a module with affine=False has no running statistics "
                "(None: training crashes at the update, eval mode at the normalisation) and one with "
                "track_running_stats=False but "
                "affine=True keeps three buffers it should not have; modules with both flags equal are right."),
    entry(S, "output cast to the running statistics' dtype", OutputInBufferDtype, replaces=NAME,
          cause="the output is cast with .to(self.running_mean.dtype) instead of .to(x.dtype), so a bfloat16 "
                "input gives a float32 output (the buffers stay float32) and a module with "
                "track_running_stats=False raises AttributeError (running_mean is None); float64 modules with "
                "running statistics are right."),
    right(S, "tuple-slice view, factor 1 / (k + 1) before counting, affine in place", InPlaceAffineCountFirst,
          replaces=NAME),
    entry(FOLD, "std computed from running_mean (typo)", fold_std_from_running_mean,
          cause="the standard deviation is written torch.sqrt(bn.running_mean + bn.eps), running_mean typed for "
                "running_var, so the scale is wrong for every channel (NaN where the running mean is below "
                "-eps); the bias formula, the refusals and the new layer's settings are right."),
    entry(FOLD, "(mu - b) in place of (b - mu) in the bias", fold_mean_minus_bias,
          cause="the folded bias is written (running_mean - b) * s + beta instead of (b - running_mean) * s + "
                "beta, so the shifted part of the bias has the wrong sign (right only where b equals the running "
                "mean); the weight is right."),
    entry(FOLD, "a batch norm with momentum=None refused", fold_refuses_cumulative,
          cause="besides the two refusals asked for, a batch norm with momentum=None (cumulative average) is "
                "refused with ValueError as if it had no fixed statistics, although in eval mode its running "
                "statistics are as fixed as any; every other fold is right."),
    entry(FOLD, "new layer built with bias=bn.affine", fold_bias_only_if_affine,
          cause="the new layer is built with bias=bn.affine ('the new bias comes from beta') and its bias is "
                "written only when it exists, so folding a batch norm with affine=False gives a layer without "
                "bias, dropping (b - running_mean) / sqrt(running_var + eps); affine batch norms fold right."),
]
