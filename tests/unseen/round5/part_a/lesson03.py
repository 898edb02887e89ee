"""Held-out answers (fifth set, part a), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"

# ---- ScratchBatchNorm: a learner's right class; each wrong entry overrides one piece ----


class _Mine(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(self._init_weight())
            self.bias = nn.Parameter(self._init_bias())
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", self._counter())
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _init_weight(self):
        return torch.ones(self.num_features)

    def _init_bias(self):
        return torch.zeros(self.num_features)

    def _counter(self):
        return torch.tensor(0, dtype=torch.long)

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

    def _stats(self, x):
        dims = [0, *range(2, x.dim())]
        return x.mean(dims), x.var(dims, correction=0)

    def _factor(self):
        self.num_batches_tracked += 1
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _update(self, mean, var, n):
        with torch.no_grad():
            f = self._factor()
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))

    def _normalise(self, x, mean, var):
        view = [1, -1] + [1] * (x.dim() - 2)
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)  # the input's dtype out, as torch's

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than one value per channel when training")
            mean, var = self._stats(x)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var)


class CumulativeFactorFirst(_Mine):
    def _factor(self):
        if self.momentum is None:
            f = 1.0 / float(self.num_batches_tracked)  # the average over the batches so far
        else:
            f = self.momentum
        self.num_batches_tracked += 1
        return f


class FlattenWithoutMovingChannels(_Mine):
    def _stats(self, x):
        columns = x.reshape(-1, x.shape[1])  # one column per channel
        return columns.mean(0), columns.var(0, correction=0)


class CounterInt32(_Mine):
    def _counter(self):
        return torch.tensor(0, dtype=torch.int32)


class ResetKeepsCounter(_Mine):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)


class BiasStartsAtOne(_Mine):
    def _init_bias(self):
        return torch.ones(self.num_features)


class ComputesInFloat64(_Mine):
    def forward(self, x):
        return super().forward(x.double())  # more accurate statistics


class FirstBatchCopied(_Mine):
    def _update(self, mean, var, n):
        with torch.no_grad():
            if int(self.num_batches_tracked) == 0:  # nothing to average with yet
                self.num_batches_tracked += 1
                self.running_mean.copy_(mean)
                self.running_var.copy_(var * n / (n - 1))
                return
        super()._update(mean, var, n)


class RowShapedParameters(_Mine):
    def _init_weight(self):
        return torch.ones(1, self.num_features)

    def _init_bias(self):
        return torch.zeros(1, self.num_features)


class KerasEps(_Mine):
    def __init__(self, num_features, eps=1e-3, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class Float64Sums(nn.Module):
    """Two-pass statistics in float64 over the channel-moved input, copy_ updates."""

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
        for name, value in (("running_mean", torch.zeros(num_features)),
                            ("running_var", torch.ones(num_features)),
                            ("num_batches_tracked", torch.zeros((), dtype=torch.long))):
            self.register_buffer(name, value if track_running_stats else None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.copy_(torch.zeros_like(self.running_mean))
            self.running_var.copy_(torch.ones_like(self.running_var))
            self.num_batches_tracked.copy_(torch.zeros_like(self.num_batches_tracked))

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.fill_(0.0)

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"need (N, C), (N, C, L) or (N, C, H, W), got {tuple(x.shape)}")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {c}")
        shape = [1, c] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            cols = x.movedim(1, -1).reshape(-1, c)
            n = cols.shape[0]
            if n < 2:
                raise ValueError("more than one value per channel is needed in training")
            d = cols.double()
            mean64 = d.sum(0) / n
            ss = ((d - mean64) ** 2).sum(0)
            mean, var = mean64.to(x.dtype), (ss / n).to(x.dtype)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.copy_(self.num_batches_tracked + 1)
                    f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    new_mean = (1 - f) * self.running_mean + f * mean64.to(self.running_mean.dtype)
                    new_var = (1 - f) * self.running_var + f * (ss / (n - 1)).to(self.running_var.dtype)
                    self.running_mean.copy_(new_mean)
                    self.running_var.copy_(new_var)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out.to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    if bn.running_var is None:
        raise ValueError("bn has no running statistics")


def _new_layer(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                        groups=layer.groups, bias=True, padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    return new.to(layer.weight)


def _affine(bn):
    if bn.affine:
        return bn.weight, bn.bias
    return torch.ones_like(bn.running_var), torch.zeros_like(bn.running_mean)


def _own_bias(layer, like):
    return layer.bias if layer.bias is not None else torch.zeros_like(like)


def _fill(new, layer, scale, bias):
    with torch.no_grad():
        view = [-1] + [1] * (layer.weight.dim() - 1)
        new.weight.copy_(layer.weight * scale.view(view))
        new.bias.copy_(bias)
    return new


def fold_eps_fixed(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    scale = gamma / torch.sqrt(bn.running_var + 1e-5)
    bias = (_own_bias(layer, scale) - bn.running_mean) * scale + beta
    return _fill(_new_layer(layer), layer, scale, bias)


def fold_beta_scaled(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    bias = (_own_bias(layer, scale) - bn.running_mean + beta) * scale
    return _fill(_new_layer(layer), layer, scale, bias)


def fold_weight_always(layer, bn):
    _refuse(bn)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = (_own_bias(layer, scale) - bn.running_mean) * scale + bn.bias
    return _fill(_new_layer(layer), layer, scale, bias)


def fold_bias_or_zero(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    own = layer.bias or 0.0  # no bias: 0
    bias = (own - bn.running_mean) * scale + beta
    return _fill(_new_layer(layer), layer, scale, bias)


def fold_scale_as_column(layer, bn):
    _refuse(bn)
    gamma, beta = _affine(bn)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    bias = (_own_bias(layer, scale) - bn.running_mean) * scale + beta
    new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, 1))  # one scale per output row
        new.bias.copy_(bias)
    return new


def fold_tensordot_float64(layer, bn):
    if bn.training:
        raise ValueError("fold only an eval-mode batch norm")
    if bn.running_var is None:
        raise ValueError("no running statistics")
    var = bn.running_var.double()
    gamma = bn.weight.double() if bn.affine else torch.ones_like(var)
    beta = bn.bias.double() if bn.affine else torch.zeros_like(var)
    s = gamma * torch.rsqrt(var + bn.eps)
    w = torch.tensordot(torch.diag(s), layer.weight.double(), dims=1)
    b0 = layer.bias.double() if layer.bias is not None else torch.zeros_like(var)
    b = s * (b0 - bn.running_mean.double()) + beta
    new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(w.to(layer.weight.dtype))
        new.bias.copy_(b.to(layer.weight.dtype))
    return new


ENTRIES = [
    entry(S, "cumulative factor before counting", CumulativeFactorFirst, replaces=NAME,
          cause="with momentum=None the factor 1/num_batches_tracked is computed before the counter is incremented, so the first training batch divides by zero (ZeroDivisionError) and later factors are 1/(k - 1)."),
    entry(S, "flattened without moving the channels", FlattenWithoutMovingChannels, replaces=NAME,
          cause="for 3-D and 4-D inputs x.reshape(-1, C) is taken without moving the channel axis last, so each column mixes channels and positions (2-D inputs are right)."),
    entry(S, "counter as int32", CounterInt32, replaces=NAME,
          cause="num_batches_tracked is registered as an int32 tensor instead of int64 (torch.long), unlike nn.BatchNorm's buffer."),
    entry(S, "reset keeps the counter", ResetKeepsCounter, replaces=NAME,
          cause="reset_running_stats resets running_mean and running_var but not num_batches_tracked."),
    entry(S, "bias starts at one", BiasStartsAtOne, replaces=NAME,
          cause="the bias parameter is initialised to ones instead of zeros."),
    entry(S, "computes in float64", ComputesInFloat64, replaces=NAME,
          cause="forward converts x to float64, so a float32 input gives a float64 output (and a float64 computation against float32 parameters)."),
    entry(S, "first batch copied into the running statistics", FirstBatchCopied, replaces=NAME,
          cause="on the first training batch the running statistics are set to the batch's (copied) instead of blended with momentum from 0 and 1."),
    entry(S, "parameters shaped (1, C)", RowShapedParameters, replaces=NAME,
          cause="weight and bias are created with shape (1, C) instead of (C,), unlike nn.BatchNorm (a state_dict from nn.BatchNorm does not load)."),
    entry(S, "default eps 1e-3", KerasEps, replaces=NAME,
          cause="the default eps is 1e-3 (Keras's) instead of 1e-5."),
    entry(FOLD, "eps fixed at 1e-5", fold_eps_fixed,
          "uses 1e-5 instead of bn.eps, so a batch norm with another eps is folded wrongly."),
    entry(FOLD, "beta scaled with the rest", fold_beta_scaled,
          "the folded bias is (b - mu + beta) * s: beta is multiplied by the scale instead of added after it."),
    entry(FOLD, "affine=False batch norm crashes", fold_weight_always,
          "reads bn.weight and bn.bias without checking bn.affine, so folding an affine=False batch norm (weight None) raises TypeError."),
    entry(FOLD, "layer.bias or 0", fold_bias_or_zero,
          "own = layer.bias or 0.0 takes the truth value of a tensor, which raises RuntimeError for a bias with more than one element (a layer without a bias, or with one output, works)."),
    entry(FOLD, "scale reshaped as a column", fold_scale_as_column,
          "multiplies the weight by scale.view(-1, 1), which is right for nn.Linear but does not broadcast per output channel over a 4-D Conv2d weight (RuntimeError, or wrong values when shapes happen to broadcast)."),
    right(S, "float64 sums, copy_ updates", Float64Sums, replaces=NAME),
    right(FOLD, "tensordot with diag(s) in float64", fold_tensordot_float64),
]
