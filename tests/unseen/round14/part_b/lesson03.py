"""Held-out answers (fourteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Mine(nn.Module):
    """A right learner's module; each wrong entry overrides one piece of it."""

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
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def _is_training(self, x):
        return self.training

    def _mean(self, x, dims):
        return x.mean(dim=dims)

    def _var(self, x, dims, mean, view):
        return ((x - mean.view(view)) ** 2).mean(dim=dims)

    def _denominator(self, var, view):
        return torch.sqrt(var.view(view) + self.eps)

    def _finish(self, out):
        return out

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm expects 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: got {x.shape[1]} channels, expected {self.num_features}")
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        training = self._is_training(x)
        if training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
            mean = self._mean(x, dims)
            var = self._var(x, dims, mean, view)
            if training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    a = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    self.running_mean.mul_(1 - a).add_(a * mean.detach())
                    self.running_var.mul_(1 - a).add_(a * var.detach() * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / self._denominator(var, view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return self._finish(out.to(x.dtype))


class OnePassVarianceFloat32(_Mine):
    def _var(self, x, dims, mean, view):
        return (x * x).mean(dim=dims) - mean * mean  # E[x^2] - E[x]^2, in the input's dtype


class EpsSquared(_Mine):
    def _denominator(self, var, view):
        return torch.sqrt(var.view(view) + self.eps ** 2)  # "eps is a standard deviation"


class OutputSqueezed(_Mine):
    def _finish(self, out):
        return out.squeeze()  # "drop the size-1 dims the views added"


class MeanOverBatchSizeOnly(_Mine):
    def _mean(self, x, dims):
        return x.sum(dim=dims) / x.shape[0]  # divides by N, not by N * H * W


class TrainingFromRequiresGrad(_Mine):
    def _is_training(self, x):
        return x.requires_grad  # "an input that needs gradients means we are training"


class ChannelLoopCorrect(nn.Module):
    """Correct: one channel at a time with torch.std_mean(correction=0), stacked; running
    update as torch.lerp out of place then copy_; output assembled with torch.stack."""

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
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x):
        if not 2 <= x.dim() <= 4:
            raise ValueError(f"ScratchBatchNorm: 2-D to 4-D input only, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {x.shape[1]}")
        use_batch = self.training or not self.track_running_stats
        outs, means, vars_ = [], [], []
        n = x.numel() // x.shape[1]
        if use_batch and n <= 1:
            raise ValueError("ScratchBatchNorm: one value per channel cannot be normalised")
        for c in range(self.num_features):
            xc = x[:, c]
            if use_batch:
                sd, m = torch.std_mean(xc, dim=None, correction=0)
                v = sd * sd
                means.append(m)
                vars_.append(v)
            else:
                m, v = self.running_mean[c], self.running_var[c]
            oc = (xc - m) / torch.sqrt(v + self.eps)
            if self.affine:
                oc = oc * self.weight[c] + self.bias[c]
            outs.append(oc)
        if use_batch and self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                w = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
                bm = torch.stack(means).detach()
                bv = torch.stack(vars_).detach() * (n / (n - 1))
                self.running_mean.copy_(torch.lerp(self.running_mean, bm.to(self.running_mean.dtype), w))
                self.running_var.copy_(torch.lerp(self.running_var, bv.to(self.running_var.dtype), w))
        return torch.stack(outs, dim=1)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: put bn in eval mode first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics")


def _blank(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    return new.to(layer.weight)


def fold_dilation_not_copied(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_missing_bias_is_mean(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    # "no bias: the layer's output is already what bn centres on"
    b = layer.bias if layer.bias is not None else bn.running_mean
    new = _blank(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_refuses_grouped_conv(layer, bn):
    _refuse(bn)
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        raise NotImplementedError("fold_batchnorm: grouped convolutions are not supported")
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    new = _blank(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


ENTRIES = [
    entry(S, "one-pass variance in the input's dtype", OnePassVarianceFloat32, replaces=NAME,
          cause="the batch variance is E[x^2] - E[x]^2 computed in the input's dtype, which cancels "
                "catastrophically in float32 when the mean is large against the spread (offset 3000: "
                "the variance is off by a large fraction)."),
    entry(S, "eps squared", EpsSquared, replaces=NAME,
          cause="divides by sqrt(var + eps**2) instead of sqrt(var + eps): eps is treated as a "
                "standard deviation, so a module with a large eps (0.5) normalises too little."),
    entry(S, "output squeezed", OutputSqueezed, replaces=NAME,
          cause="returns out.squeeze(), which drops every size-1 dimension: with one channel or one "
                "example (or H = 1) the output has the wrong shape."),
    entry(S, "mean divided by the batch size only", MeanOverBatchSizeOnly, replaces=NAME,
          cause="the batch mean is x.sum over (N, H, W) divided by N only, so for 3-D and 4-D input "
                "the mean is H*W (or L) times too large (2-D input is right)."),
    entry(S, "training decided by x.requires_grad", TrainingFromRequiresGrad, replaces=NAME,
          cause="uses batch statistics (and updates the running ones) only when x.requires_grad, "
                "instead of when self.training: a training module fed a plain tensor uses the running "
                "statistics, and an eval module fed a tensor that requires grad updates them."),
    entry(FOLD, "dilation not copied", fold_dilation_not_copied,
          cause="builds the new Conv2d without the original's dilation (stride, padding, groups and "
                "padding_mode are copied), so a dilated convolution folds into an undilated one."),
    entry(FOLD, "missing layer bias taken as the running mean", fold_missing_bias_is_mean,
          cause="for a layer without a bias it uses bn.running_mean as the layer's bias, so the "
                "folded bias is just beta: the running mean is never subtracted (layers with a bias "
                "are right)."),
    entry(FOLD, "grouped convolutions refused", fold_refuses_grouped_conv,
          cause="raises NotImplementedError for a Conv2d with groups > 1 instead of folding it "
                "(the per-output-channel scaling works for any groups)."),
    right(S, "one channel at a time, std_mean, lerp into copy_", ChannelLoopCorrect, replaces=NAME),
]
