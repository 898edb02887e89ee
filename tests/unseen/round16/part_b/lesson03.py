"""Held-out answers (sixteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Learner(nn.Module):
    """A right learner's module; each wrong entry overrides one piece of it."""

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
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.fill_(0.0)

    # pieces
    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: input must be 2-D, 3-D or 4-D, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {x.shape[1]}")

    def _guard(self, x, n):
        if n < 2:
            raise ValueError("ScratchBatchNorm: more than one value per channel is needed to train")

    def _stats(self, x, dims, view):
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, correction=0)
        return mean, var

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            if self.momentum is None:
                a = 1.0 / float(self.num_batches_tracked)
            else:
                a = self.momentum
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * var * n / (n - 1))

    def _eval_stats(self, x):
        return self.running_mean, self.running_var

    def forward(self, x):
        self._check(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            self._guard(x, n)
            mean, var = self._stats(x, dims, view)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self._eval_stats(x)
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class UntrackedEvalReturnsInput(_Learner):
    """track_running_stats=False: 'no statistics kept, so eval mode has nothing to normalise with'."""

    def forward(self, x):
        self._check(x)
        if not self.training and not self.track_running_stats:
            return x  # no running statistics: leave the input as it is
        return super().forward(x)


class KerasEpsilonDefault(_Learner):
    def __init__(self, num_features, eps=1e-3, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class GuardFor2DOnly(_Learner):
    def _guard(self, x, n):
        if x.dim() == 2 and x.shape[0] < 2:
            raise ValueError("ScratchBatchNorm: more than one value per channel is needed to train")


class DeviationsFromFlatMean(_Learner):
    def _stats(self, x, dims, view):
        mean = x.mean(dim=dims)
        var = ((x - mean) ** 2).mean(dim=dims)  # mean not viewed per channel here
        return mean, var


class RunningVarFromTorchFull(_Learner):
    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.full((self.num_features,), 1))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class KerasBufferNames(_Learner):
    """Buffers named as Keras's BatchNormalization names its moving statistics."""

    def _make_buffers(self):
        if self.track_running_stats:
            self.register_buffer("moving_mean", torch.zeros(self.num_features))
            self.register_buffer("moving_variance", torch.ones(self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("moving_mean", None)
            self.register_buffer("moving_variance", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.moving_mean.zero_()
            self.moving_variance.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.moving_mean.mul_(1 - a).add_(a * mean)
            self.moving_variance.mul_(1 - a).add_(a * var * n / (n - 1))

    def _eval_stats(self, x):
        return self.moving_mean, self.moving_variance


class GroupNormPerChannel(nn.Module):
    """Correct: the training normalisation is F.group_norm with one group per channel on a
    (1, C, n) arrangement of the batch (biased variance, eps inside); running statistics with
    torch.var(correction=1) and an EMA written as old + a * (new - old); eval as scale and
    shift with rsqrt."""

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
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

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
        if not 2 <= x.dim() <= 4:
            raise ValueError(f"ScratchBatchNorm: want (N, C), (N, C, L) or (N, C, H, W); got {tuple(x.shape)}")
        c = self.num_features
        if x.shape[1] != c:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, but num_features={c}")
        work = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        rows = work.transpose(0, 1).reshape(1, c, -1)  # (1, C, n): one group per channel
        n = rows.shape[-1]
        if self.training or not self.track_running_stats:
            if n < 2:
                raise ValueError("ScratchBatchNorm: one value per channel: no variance to normalise with")
            w = self.weight.to(work.dtype) if self.affine else None
            b = self.bias.to(work.dtype) if self.affine else None
            out = F.group_norm(rows, c, w, b, self.eps)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    k = int(self.num_batches_tracked)
                    a = 1.0 / k if self.momentum is None else self.momentum
                    flat = rows[0].detach()
                    self.running_mean += a * (flat.mean(1).to(self.running_mean.dtype) - self.running_mean)
                    unbiased = torch.var(flat, dim=1, correction=1).to(self.running_var.dtype)
                    self.running_var += a * (unbiased - self.running_var)
        else:
            scale = torch.rsqrt(self.running_var + self.eps).to(work.dtype)
            shift = -self.running_mean.to(work.dtype) * scale
            if self.affine:
                scale, shift = scale * self.weight, shift * self.weight + self.bias
            out = rows * scale.view(1, c, 1) + shift.view(1, c, 1)
        back = out.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
        return back.to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: bn is in training mode; call bn.eval() before folding")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")


def _gamma_beta(bn):
    if bn.affine:
        return bn.weight, bn.bias
    return torch.ones_like(bn.running_var), torch.zeros_like(bn.running_mean)


def fold_padding_mode_not_copied(layer, bn):
    _refuse(bn)
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_copy_without_no_grad(layer, bn):
    _refuse(bn)
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight)
    new.weight.copy_(layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
    new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_eps_hard_coded(layer, bn):
    _refuse(bn)
    gamma, beta = _gamma_beta(bn)
    scale = gamma / torch.sqrt(bn.running_var + 1e-5)  # batch norm's eps
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


ENTRIES = [
    entry(S, "track_running_stats=False: eval returns the input", UntrackedEvalReturnsInput, replaces=NAME,
          cause="with track_running_stats=False the module returns its input unchanged in eval mode "
                "instead of normalising with the batch's own statistics as torch does."),
    entry(S, "default eps 1e-3 (Keras's epsilon)", KerasEpsilonDefault, replaces=NAME,
          cause="the signature's default eps is 1e-3 (Keras's BatchNormalization epsilon) instead of "
                "torch's 1e-5, so a module built without eps= divides by sqrt(var + 0.001)."),
    entry(S, "one-value guard for 2-D input only", GuardFor2DOnly, replaces=NAME,
          cause="the one-value-per-channel ValueError is raised only for 2-D input (batch of one); a 3-D or "
                "4-D batch with one value per channel (N = 1, L = 1 or H = W = 1) trains anyway (zero output) and "
                "puts var * n / (n - 1) = 0 / 0 (nan) into running_var."),
    entry(S, "deviations from the mean without the per-channel view", DeviationsFromFlatMean, replaces=NAME,
          cause="the variance is ((x - mean) ** 2).mean(dims) with mean of shape (C,) not viewed as "
                "(1, C, 1, ...), so for 3-D and 4-D input the mean is broadcast along the last axis "
                "(an error, or the wrong deviations when that axis has C entries); 2-D is right."),
    entry(S, "running_var made with torch.full((C,), 1)", RunningVarFromTorchFull, replaces=NAME,
          cause="running_var is registered as torch.full((C,), 1), which infers an integer (int64) tensor "
                "from the integer fill value, so the buffer is not floating point (.double() leaves it "
                "int64) and the in-place running update cannot write floats into it."),
    entry(S, "buffers named moving_mean and moving_variance", KerasBufferNames, replaces=NAME,
          cause="the running statistics are registered under Keras's names moving_mean and "
                "moving_variance instead of running_mean and running_var (state_dict and anyone reading "
                "the buffers by torch's names fail); the values are right."),
    right(S, "F.group_norm with one group per channel, EMA as old + a * (new - old)", GroupNormPerChannel,
          replaces=NAME),
    entry(FOLD, "padding_mode not copied", fold_padding_mode_not_copied,
          cause="the new Conv2d gets stride, padding, dilation and groups but not padding_mode, so a "
                "convolution with padding_mode='reflect' (or 'replicate', 'circular') is folded into one "
                "that pads with zeros: the borders of the output differ."),
    entry(FOLD, "parameters filled with copy_ outside torch.no_grad", fold_copy_without_no_grad,
          cause="fills the new layer's weight and bias with copy_ without torch.no_grad(), which raises "
                "(an in-place operation on a leaf that requires grad), so fold_batchnorm never returns."),
    entry(FOLD, "eps hard-coded to 1e-5", fold_eps_hard_coded,
          cause="the scale uses sqrt(running_var + 1e-5) instead of sqrt(running_var + bn.eps): right for a "
                "batch norm built with the default eps, wrong for any other eps."),
]
