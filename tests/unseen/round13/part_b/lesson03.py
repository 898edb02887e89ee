"""Held-out answers (thirteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

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
        self._parameters_init()
        self._buffers_init()

    def _parameters_init(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _buffers_init(self):
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

    # pieces ---------------------------------------------------------------
    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: input must be 2-D, 3-D or 4-D, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")

    def _dims(self, x):
        return [0] + list(range(2, x.dim()))

    def _count(self, x):
        return x.numel() // x.shape[1]

    def _guard(self, x, n):
        if n < 2:
            raise ValueError("ScratchBatchNorm: need more than one value per channel in training")

    def _moments(self, x, dims):
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        return mean, var

    def _tick(self):
        self.num_batches_tracked += 1

    def _update(self, mean, var, n):
        with torch.no_grad():
            self._tick()
            if self.momentum is None:
                a = 1.0 / self.num_batches_tracked.item()
            else:
                a = self.momentum
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * var * (n / (n - 1)))

    def _eval_scale(self, var, view):
        return torch.sqrt(var.view(view) + self.eps)

    def forward(self, x):
        self._validate(x)
        dims = self._dims(x)
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = self._count(x)
            self._guard(x, n)
            mean, var = self._moments(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
            out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        else:
            out = (x - self.running_mean.view(view)) / self._eval_scale(self.running_var, view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class BesselPerExample(_Learner):
    def _count(self, x):
        return x.numel() // x.shape[0]  # values per example


class GlobalMoments(_Learner):
    def _moments(self, x, dims):
        mean = x.mean()
        var = x.var(unbiased=False)
        return mean.expand(self.num_features), var.expand(self.num_features)


class BuffersInFloat64(_Learner):
    def _buffers_init(self):
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features, dtype=torch.float64))
            self.register_buffer("running_var", torch.ones(self.num_features, dtype=torch.float64))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class GuardOnBatchSize(_Learner):
    def _guard(self, x, n):
        if x.shape[0] < 2:
            raise ValueError("ScratchBatchNorm: need a batch of at least 2 in training")


class MeanScaledInPlace(_Learner):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self._tick()
            a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(mean.mul_(a))
            self.running_var.mul_(1 - a).add_(a * var * (n / (n - 1)))


class ChannelsFromLastDim(_Learner):
    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: input must be 2-D, 3-D or 4-D, got {x.dim()}-D")
        if x.shape[-1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[-1]} channels, expected {self.num_features}")


class GammaBetaNames(_Learner):
    """Parameters named as in lesson 02 (gamma, beta)."""

    def _parameters_init(self):
        if self.affine:
            self.gamma = nn.Parameter(torch.ones(self.num_features))
            self.beta = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.gamma = None
            self.beta = None

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.gamma.fill_(1.0)
                self.beta.zero_()

    def forward(self, x):
        self._validate(x)
        dims = self._dims(x)
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = self._count(x)
            self._guard(x, n)
            mean, var = self._moments(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
            out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        else:
            out = (x - self.running_mean.view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
        if self.affine:
            out = out * self.gamma.view(view) + self.beta.view(view)
        return out.to(x.dtype)


class DimsListGrows(_Learner):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.reduce_dims = [0]

    def _dims(self, x):
        dims = self.reduce_dims
        dims += list(range(2, x.dim()))  # += extends the stored list itself
        return dims


class EvalDividesByVariance(_Learner):
    def _eval_scale(self, var, view):
        return var.view(view) + self.eps


class ForwardUnderNoGrad(_Learner):
    @torch.no_grad()
    def forward(self, x):
        return super().forward(x)


class ResetRunningStatsPass(_Learner):
    def reset_running_stats(self):
        pass  # TODO


class CounterAddFloat(_Learner):
    def _tick(self):
        self.num_batches_tracked.add_(1.0)


class SuperInitForgotten(_Learner):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._parameters_init()
        self._buffers_init()


# correct alternatives


class TrailingViews(nn.Module):
    """Per-channel views of shape (C, 1, ...) broadcast from the right, rsqrt, add_(alpha=)."""

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
            self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.fill_(0.0)
            self.running_var.fill_(1.0)
            self.num_batches_tracked.fill_(0)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.constant_(self.weight, 1.0)
            nn.init.constant_(self.bias, 0.0)

    def forward(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"need a 2-D, 3-D or 4-D input, not {x.dim()}-D")
        c = x.size(1)
        if c != self.num_features:
            raise ValueError(f"got {c} channels instead of {self.num_features}")
        tail = (-1,) + (1,) * (x.dim() - 2)  # (C,), (C, 1) or (C, 1, 1): broadcasts from the right
        dims = tuple(d for d in range(x.dim()) if d != 1)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = 1
            for d in dims:
                n *= x.size(d)
            if n <= 1:
                raise ValueError("one value per channel: cannot train on this batch")
            mean = x.mean(dims)
            centred = x - mean.reshape(tail)
            var = (centred * centred).mean(dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    if self.momentum is None:
                        w = 1.0 / int(self.num_batches_tracked)
                    else:
                        w = self.momentum
                    self.running_mean.add_(mean.detach() - self.running_mean, alpha=w)
                    unbiased = var.detach() * (n / (n - 1))
                    self.running_var.add_(unbiased - self.running_var, alpha=w)
            y = centred * torch.rsqrt(var.reshape(tail) + self.eps)
        else:
            y = (x - self.running_mean.reshape(tail)) * torch.rsqrt(self.running_var.reshape(tail) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(tail) + self.bias.reshape(tail)
        return y.to(dtype=x.dtype)


class ChannelRowsSubUpdate(nn.Module):
    """Statistics from a (C, n) matrix of the channels' values; EMA written as r -= w * (r - b)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_features))
            self.bias = nn.Parameter(torch.empty(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.empty(num_features))
            self.register_buffer("running_var", torch.empty(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
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
            raise ValueError(f"input of {x.dim()} dimensions; expected 2, 3 or 4")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            rows = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, values per channel)
            n = rows.shape[1]
            if n == 1:
                raise ValueError("only one value per channel in training mode")
            var, mean = torch.var_mean(rows, dim=1, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    w = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
                    self.running_mean.sub_(w * (self.running_mean - mean))
                    self.running_var.sub_(w * (self.running_var - var * n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.reshape(shape)) / (var.reshape(shape) + self.eps).sqrt()
        if self.affine:
            out = torch.addcmul(self.bias.reshape(shape), out, self.weight.reshape(shape))
        return out.to(x.dtype)


# ---- fold_batchnorm ---------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("cannot fold a batch norm in training mode: call bn.eval() first")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics")


def _new_like(layer, **over):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  groups=layer.groups, bias=True, padding_mode=layer.padding_mode)
        kw.update(over)
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, **kw)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold into {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _parts(layer, bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    return std, gamma, beta, b


def fold_scale_matmul(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    new = _new_like(layer)
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            new.weight.copy_(s @ layer.weight)  # meant diag(s) @ W
        else:
            new.weight.copy_(layer.weight * s.view(-1, 1, 1, 1))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_beta_over_std(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    new = _new_like(layer)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * (gamma / std).view(shape))
        new.bias.copy_((b * gamma - bn.running_mean * gamma + beta) / std)
    return new


def fold_gamma_twice_in_bias(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    new = _new_like(layer)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(shape))
        new.bias.copy_(gamma * (b - bn.running_mean) * s + beta)
    return new


def fold_one_mean_for_all(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    mu = bn.running_mean.mean()
    new = _new_like(layer)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(shape))
        new.bias.copy_((b - mu) * s + beta)
    return new


def fold_always_float64(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    new = _new_like(layer).double()  # float64 "for precision"
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(shape))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_stride_padding_swapped(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        layer.padding, layer.stride, layer.dilation, layer.groups, True,
                        layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    new = new.to(layer.weight.dtype)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(shape))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_own_bias_times_gamma(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    new = _new_like(layer)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(shape))
        new.bias.copy_(b * gamma - bn.running_mean * s + beta)
    return new


def fold_scales_new_random_weight(layer, bn):
    _refuse(bn)
    std, gamma, beta, b = _parts(layer, bn)
    s = gamma / std
    new = _new_like(layer)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        new.weight.copy_(new.weight * s.view(shape))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_bias_from_zero_input(layer, bn):
    """Correct: the weight scaled per output channel; the bias read off bn(layer(0))."""
    if bn.training:
        raise ValueError("bn is in training mode; fold only an eval-mode batch norm")
    if bn.running_mean is None:
        raise ValueError("bn has no running statistics (track_running_stats=False)")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"only nn.Linear and nn.Conv2d fold, not {type(layer).__name__}")
    inv = torch.rsqrt(bn.running_var + bn.eps)
    scale = inv * bn.weight if bn.affine else inv
    new = copy.deepcopy(layer)
    if new.bias is None:
        new.bias = nn.Parameter(torch.zeros_like(scale))
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            zero = torch.zeros(1, layer.in_features, dtype=layer.weight.dtype)
            bias = bn(layer(zero))[0]
        else:
            kh, kw = layer.kernel_size
            dh, dw = layer.dilation
            ph, pw = (layer.padding, layer.padding) if isinstance(layer.padding, str) else layer.padding
            ph, pw = (kh * dh, kw * dw) if isinstance(ph, str) else (ph, pw)  # 'same': large enough
            zero = torch.zeros(1, layer.in_channels, dh * (kh - 1) + 1 + 2 * ph,
                               dw * (kw - 1) + 1 + 2 * pw, dtype=layer.weight.dtype)
            bias = bn(layer(zero)).mean(dim=(0, 2, 3))  # constant map: every position equal
        new.weight.mul_(scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_(bias)
    return new


ENTRIES = [
    entry(S, "Bessel count per example", BesselPerExample, replaces=NAME,
          cause="the number of values per channel for the unbiased factor n/(n-1) is x.numel() // N "
                "(values per example) instead of x.numel() // C, so running_var gets the wrong factor."),
    entry(S, "one mean and variance for the whole tensor", GlobalMoments, replaces=NAME,
          cause="the batch mean and variance are taken over the whole tensor (one number for every "
                "channel) instead of per channel, for the normalisation and the running statistics."),
    entry(S, "running buffers created as float64", BuffersInFloat64, replaces=NAME,
          cause="running_mean and running_var are registered as float64 tensors instead of float32 "
                "(torch's default), so a fresh module's buffers and state_dict differ from nn.BatchNorm's."),
    entry(S, "one-value guard on the batch size", GuardOnBatchSize, replaces=NAME,
          cause="the training guard refuses x.shape[0] < 2 (the batch size) instead of one value per "
                "channel, so a single image or sequence (N = 1, H*W > 1 values) is refused although "
                "torch normalises it."),
    entry(S, "batch mean scaled in place by the momentum", MeanScaledInPlace, replaces=NAME,
          cause="the running update adds mean.mul_(momentum), which scales the batch mean itself in "
                "place, so the normalisation that follows subtracts momentum * mean instead of the mean."),
    entry(S, "channel count read from the last dimension", ChannelsFromLastDim, replaces=NAME,
          cause="the channel check compares x.shape[-1] instead of x.shape[1] with num_features, so "
                "3-D and 4-D inputs whose last size is not C are refused (and wrong ones accepted)."),
    entry(S, "parameters named gamma and beta", GammaBetaNames, replaces=NAME,
          cause="the affine parameters are called gamma and beta (lesson 02's names) instead of weight "
                "and bias, so module.weight does not exist and the state_dict differs from torch's."),
    entry(S, "reduction dims list extended in place", DimsListGrows, replaces=NAME,
          cause="the reduction dims are a list stored in __init__ and extended with += at every call, so "
                "from the second 3-D/4-D call the list holds repeated dims and the mean fails."),
    entry(S, "eval divides by the variance", EvalDividesByVariance, replaces=NAME,
          cause="in eval mode it divides by running_var + eps without the square root (training mode is right)."),
    entry(S, "forward decorated with torch.no_grad", ForwardUnderNoGrad, replaces=NAME,
          cause="the whole forward is decorated with @torch.no_grad() (meant for the buffer update), so the "
                "output carries no gradient to the input, weight or bias in either mode."),
    entry(S, "reset_running_stats left as pass", ResetRunningStatsPass, replaces=NAME,
          cause="reset_running_stats is left unfinished (its body is pass), so it resets nothing: the "
                "buffers and the counter keep their values."),
    entry(S, "counter incremented by 1.0", CounterAddFloat, replaces=NAME,
          cause="num_batches_tracked.add_(1.0) adds a float to the long counter in place, which torch "
                "refuses (RuntimeError in the learner's code) at every training step."),
    entry(S, "super().__init__() forgotten", SuperInitForgotten, replaces=NAME,
          cause="__init__ never calls super().__init__(), so assigning the first nn.Parameter raises "
                "AttributeError and no module can be built."),
    right(S, "trailing (C, 1, ...) views, rsqrt, add_(alpha=)", TrailingViews, replaces=NAME),
    right(S, "channel rows with var_mean, EMA as sub_", ChannelRowsSubUpdate, replaces=NAME),
    entry(FOLD, "scale @ W instead of diag(scale) @ W", fold_scale_matmul,
          cause="for a Linear the weight is s @ W (a vector-matrix product, shape (in,)) instead of "
                "diag(s) @ W, so the copy into the (out, in) weight fails or broadcasts wrongly."),
    entry(FOLD, "beta divided by the standard deviation", fold_beta_over_std,
          cause="the folded bias is (b * gamma - mu * gamma + beta) / std: beta is divided by "
                "sqrt(var + eps) along with the rest instead of added after the scaling."),
    entry(FOLD, "gamma applied twice in the bias", fold_gamma_twice_in_bias,
          cause="the folded bias is gamma * (b - mu) * s + beta with s = gamma / std already holding "
                "gamma, so the bias is scaled by gamma twice (the weight is right)."),
    entry(FOLD, "one running mean for every channel", fold_one_mean_for_all,
          cause="the folded bias subtracts running_mean.mean(), one number for all channels, instead of "
                "each channel's own running mean."),
    entry(FOLD, "folded layer always float64", fold_always_float64,
          cause="the new layer is converted with .double() whatever the original's dtype, so a float32 "
                "layer folds into a float64 one that rejects float32 input."),
    entry(FOLD, "stride and padding swapped in the Conv2d call", fold_stride_padding_swapped,
          cause="the new Conv2d is built with positional arguments in the order (..., padding, stride, ...) "
                "instead of (..., stride, padding, ...), so stride and padding are swapped."),
    entry(FOLD, "layer's bias scaled by gamma only", fold_own_bias_times_gamma,
          cause="the layer's own bias enters the folded bias as b * gamma, without the division by "
                "sqrt(var + eps) (the running mean's term and the weight are right)."),
    entry(FOLD, "new layer's random weight scaled", fold_scales_new_random_weight,
          cause="the folded weight is new.weight * s, the new layer's random initial weight, instead "
                "of layer.weight * s (the bias is right)."),
    right(FOLD, "bias read off bn(layer(0)), deepcopy", fold_bias_from_zero_input),
]
