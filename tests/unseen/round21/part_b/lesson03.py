"""Held-out answers (twenty-first set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Base(nn.Module):
    """A right learner's module; each wrong entry below changes one piece of it."""

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
            self.running_var.fill_(1.0)
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

    def _one_value(self, x, n):
        raise ValueError(f"ScratchBatchNorm: one value per channel ({tuple(x.shape)}): no batch variance")

    def _affine(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}): input has {x.shape[1]} channels")
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1]
        if (self.training or not self.track_running_stats) and n < 2:
            self._one_value(x, n)
        if self.training or not self.track_running_stats:
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, correction=0)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self._affine(out, view).to(x.dtype)


class CumulativeFactorTensor(_Base):
    """momentum=None: the factor 1 / num_batches_tracked left as a tensor."""

    def _factor(self):
        if self.momentum is None:
            return 1 / self.num_batches_tracked
        return self.momentum


class MulWithoutUnderscore(_Base):
    """The decay written with .mul(...) (no underscore) before .add_(...)."""

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            self.running_mean.mul(1 - f).add_(f * mean)
            self.running_var.mul(1 - f).add_(f * var * n / (n - 1))


class AffineTestedOnWeight(_Base):
    """`if self.weight:` in place of `if self.affine:`."""

    def _affine(self, out, view):
        if self.weight:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out


class UntrackedByDefault(_Base):
    """track_running_stats defaults to False (nn.InstanceNorm's signature)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=False):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class ResetZeroNotCalled(_Base):
    """reset_running_stats: `self.running_mean.zero_` without the call parentheses."""

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()


class OneValueSwitchesToEval(_Base):
    """A training batch with one value per channel switches the module to eval mode."""

    def forward(self, x):
        if self.training and self.track_running_stats and x.dim() in (2, 3, 4) and x.numel() // x.shape[1] < 2:
            self.eval()  # a single sample: normalise it with the running statistics, as at inference
        return super().forward(x)


class FlattenedToNCL(_Base):
    """Correct: every rank flattened to (N, C, L) (L = 1 for 2-D input), statistics over dims 0 and 2."""

    def forward(self, x):
        if not 2 <= x.ndim <= 4:
            raise ValueError(f"ScratchBatchNorm takes (N, C), (N, C, L) or (N, C, H, W), not {tuple(x.shape)}")
        if x.size(1) != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.size(1)} channels given, {self.num_features} expected")
        flat = x.reshape(x.size(0), x.size(1), -1)
        if self.training or not self.track_running_stats:
            n = flat.size(0) * flat.size(2)
            if n < 2:
                raise ValueError("ScratchBatchNorm: a batch variance needs two values per channel")
            mean = flat.mean(dim=(0, 2))
            var = flat.var(dim=(0, 2), correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    self.running_mean.copy_(self.running_mean + f * (mean - self.running_mean))
                    self.running_var.copy_(self.running_var + f * (var * (n / (n - 1)) - self.running_var))
        else:
            mean, var = self.running_mean, self.running_var
        out = (flat - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        if self.affine:
            out = torch.addcmul(self.bias[None, :, None], out, self.weight[None, :, None])
        return out.reshape(x.shape).to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; fold only after bn.eval()")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics (track_running_stats=False)")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"fold_batchnorm: cannot fold into a {type(layer).__name__}")


def _new_layer(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    return new.to(layer.weight)


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return gamma / std, beta


def fold_linear_keras_kernel(layer, bn):
    _refuse(layer, bn)
    scale, beta = _scale_shift(bn)
    new = _new_layer(layer)
    own = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            new.weight.copy_(layer.weight.T * scale)  # the kernel is (in, out): scale its columns
        else:
            new.weight.copy_(layer.weight * scale.view(-1, 1, 1, 1))
        new.bias.copy_((own - bn.running_mean) * scale + beta)
    return new


def fold_bias_with_weight_view(layer, bn):
    _refuse(layer, bn)
    scale, beta = _scale_shift(bn)
    new = _new_layer(layer)
    own = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    per_channel = scale.view(-1, *[1] * (layer.weight.dim() - 1))
    with torch.no_grad():
        new.weight.copy_(layer.weight * per_channel)
        new.bias.copy_((own - bn.running_mean) * per_channel + beta)
    return new


def fold_conv_view_one_short(layer, bn):
    _refuse(layer, bn)
    scale, beta = _scale_shift(bn)
    new = _new_layer(layer)
    own = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            new.weight.copy_(layer.weight * scale[:, None])
        else:
            new.weight.copy_(layer.weight * scale[:, None, None])
        new.bias.copy_((own - bn.running_mean) * scale + beta)
    return new


def fold_keras_layout_permuted(layer, bn):
    """Correct: the weight brought to Keras's layout (output channels last), scaled there, brought back."""
    if bn.training:
        raise ValueError("fold_batchnorm: fold a batch norm in eval mode only (call bn.eval())")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: no running statistics to fold (track_running_stats=False)")
    if isinstance(layer, nn.Linear):
        to_keras, from_keras = (1, 0), (1, 0)  # (out, in) <-> (in, out)
    elif isinstance(layer, nn.Conv2d):
        to_keras, from_keras = (2, 3, 1, 0), (3, 2, 0, 1)  # (out, in, kh, kw) <-> (kh, kw, in, out)
    else:
        raise TypeError(f"fold_batchnorm: {type(layer).__name__} is neither nn.Linear nor nn.Conv2d")
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    scale = bn.weight * inv_std if bn.weight is not None else inv_std
    shift = bn.bias - bn.running_mean * scale if bn.bias is not None else -bn.running_mean * scale
    new = _new_layer(layer)
    with torch.no_grad():
        kernel = layer.weight.permute(*to_keras) * scale
        new.weight.copy_(kernel.permute(*from_keras))
        new.bias.copy_(shift if layer.bias is None else layer.bias * scale + shift)
    return new


ENTRIES = [
    entry(S, "momentum=None factor left as the tensor 1 / num_batches_tracked", CumulativeFactorTensor, replaces=NAME,
          cause="with momentum=None the factor is written 1 / self.num_batches_tracked, a true division of a long "
                "tensor that gives a float32 tensor, so a float64 module's cumulative average is blended with a "
                "factor rounded to float32 (1/3, 1/5, ... slightly off, about 1e-8 relative); every numeric "
                "momentum and every float32 module are right."),
    entry(S, "decay written .mul(1 - f) without the underscore", MulWithoutUnderscore, replaces=NAME,
          cause="the running update is written running.mul(1 - f).add_(f * stat): mul without the underscore "
                "returns a new tensor, the in-place add_ lands on that temporary, and the buffers running_mean "
                "and running_var never change (they stay 0 and 1); the counter, the training outputs and the "
                "gradients are right."),
    entry(S, "`if self.weight:` in place of `if self.affine:`", AffineTestedOnWeight, replaces=NAME,
          cause="the affine step is guarded by `if self.weight:`, the truth value of a tensor, which raises "
                "RuntimeError (ambiguous boolean) for every module with affine=True and more than one channel; "
                "affine=False (weight None) is right."),
    entry(S, "track_running_stats defaults to False (nn.InstanceNorm's signature)", UntrackedByDefault, replaces=NAME,
          cause="the signature's default is track_running_stats=False (InstanceNorm's), so a module built without "
                "that argument keeps no running statistics (its three buffers are None) and normalises with the "
                "batch in eval mode too; modules built with track_running_stats=True are right."),
    entry(S, "reset_running_stats: running_mean.zero_ without parentheses", ResetZeroNotCalled, replaces=NAME,
          cause="reset_running_stats() writes self.running_mean.zero_ without the call parentheses, so the running "
                "mean is not reset (the variance and the counter are); reset_parameters() inherits the slip; "
                "everything else is right."),
    entry(S, "one value per channel switches the module to eval mode", OneValueSwitchesToEval, replaces=NAME,
          cause="in training mode a batch with one value per channel calls self.eval() and is normalised with "
                "the running statistics instead of raising ValueError, and the module stays in eval mode for "
                "every later call (no more batch statistics or running updates); modules without running "
                "statistics still raise."),
    right(S, "every rank flattened to (N, C, L), rsqrt and addcmul", FlattenedToNCL, replaces=NAME),
    entry(FOLD, "Linear weight scaled as weight.T * s (Keras's kernel layout), not transposed back",
          fold_linear_keras_kernel,
          cause="the Linear weight is scaled as layer.weight.T * s, Keras's (in, out) kernel layout, and copied "
                "into the new (out, in) weight without transposing back: a shape error when in_features != "
                "out_features, a transposed weight when they are equal; the bias and Conv2d folds are right."),
    entry(FOLD, "bias scaled with the weight's per-channel view", fold_bias_with_weight_view,
          cause="the per-channel view of the scale made for the weight, shape (C, 1) or (C, 1, 1, 1), is used in "
                "the bias line too, so (b - mean) * scale broadcasts to a matrix and copying it into the bias "
                "raises a shape error for every fold; the weight is right."),
    entry(FOLD, "Conv2d scale viewed as (C, 1, 1), one dimension short", fold_conv_view_one_short,
          cause="the Conv2d weight is multiplied by scale[:, None, None], a (C, 1, 1) view that lines up with the "
                "kernel's input-channel axis instead of its output channels, so the fold raises a broadcast error "
                "when in_channels / groups differs from out_channels (and scales the wrong axis when they are "
                "equal); Linear folds and the bias are right."),
    right(FOLD, "weight permuted to Keras's layout, scaled, permuted back", fold_keras_layout_permuted),
]
