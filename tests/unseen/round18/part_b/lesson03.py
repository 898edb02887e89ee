"""Held-out answers (eighteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, notebook, right

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
        self._make_parameters(affine)
        self._make_buffers()

    def _make_parameters(self, affine):
        if affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _make_buffers(self):
        c = self.num_features
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(c))
            self.register_buffer("running_var", torch.ones(c))
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

    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm takes (N, C), (N, C, L) or (N, C, H, W); got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}) got {x.shape[1]} channels")

    def _factor(self):
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _remember(self, mean, var, n):
        """The running update (called under no_grad)."""
        self.num_batches_tracked += 1
        f = self._factor()
        self.running_mean.mul_(1 - f).add_(f * mean)
        self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))

    def _running(self):
        return self.running_mean, self.running_var

    def _scale(self, x, mean, var, view):
        return (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)

    def _affine(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        self._check(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._remember(mean, var, n)
        else:
            mean, var = self._running()
        out = self._affine(self._scale(x, mean, var, view), view)
        return out.to(x.dtype)


class StatsAliasedInInit(_Learner):
    """Short names for the buffers, made once in __init__."""

    def _make_buffers(self):
        super()._make_buffers()
        if self.track_running_stats:
            self.stats = {"mean": self.running_mean, "var": self.running_var,
                          "count": self.num_batches_tracked}

    def reset_running_stats(self):
        if self.track_running_stats:
            self.stats["mean"].zero_()
            self.stats["var"].fill_(1.0)
            self.stats["count"].zero_()

    def _factor(self):
        if self.momentum is None:
            return 1.0 / float(self.stats["count"])
        return self.momentum

    def _remember(self, mean, var, n):
        self.stats["count"] += 1
        f = self._factor()
        self.stats["mean"].mul_(1 - f).add_(f * mean)
        self.stats["var"].mul_(1 - f).add_(f * var * n / (n - 1))

    def _running(self):
        return self.stats["mean"], self.stats["var"]


class LerpWithInputDtype(_Learner):
    def _remember(self, mean, var, n):
        self.num_batches_tracked += 1
        f = self._factor()
        self.running_mean.lerp_(mean, f)
        self.running_var.lerp_(var * n / (n - 1), f)


class PythonCounterForAverage(_Learner):
    """momentum=None: the 1/k factor from a plain Python counter kept beside the buffer."""

    def _make_buffers(self):
        super()._make_buffers()
        self.steps = 0

    def _factor(self):
        if self.momentum is None:
            return 1.0 / self.steps
        return self.momentum

    def _remember(self, mean, var, n):
        self.num_batches_tracked += 1
        self.steps += 1
        f = self._factor()
        self.running_mean.mul_(1 - f).add_(f * mean)
        self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class KerasCenterScale(_Learner):
    """Keras's BatchNormalization(center=True, scale=True) in place of affine."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, center=True, scale=True, track_running_stats=True):
        nn.Module.__init__(self)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.center, self.scale = center, scale
        self.affine = center or scale
        self.track_running_stats = track_running_stats
        if scale:
            self.weight = nn.Parameter(torch.ones(num_features))
        else:
            self.register_parameter("weight", None)
        if center:
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("bias", None)
        self._make_buffers()

    def reset_parameters(self):
        self.reset_running_stats()
        with torch.no_grad():
            if self.scale:
                self.weight.fill_(1.0)
            if self.center:
                self.bias.zero_()

    def _affine(self, out, view):
        if self.scale:
            out = out * self.weight.view(view)
        if self.center:
            out = out + self.bias.view(view)
        return out


class SklearnZeroScaleGuard(_Learner):
    """sklearn's StandardScaler habit: a zero standard deviation replaced by 1, no eps."""

    def _scale(self, x, mean, var, view):
        std = torch.sqrt(var)
        std = torch.where(std == 0, torch.ones_like(std), std)
        return (x - mean.view(view)) / std.view(view)


def _batch_normalization(x, mean, variance, offset, scale, variance_epsilon):
    """tf.nn.batch_normalization, argument for argument."""
    inv = torch.rsqrt(variance + variance_epsilon)
    if scale is not None:
        inv = inv * scale
    out = x * inv - mean * inv
    return out + offset if offset is not None else out


class TensorflowArgumentOrder(_Learner):
    def forward(self, x):
        self._check(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._remember(mean, var, n)
        else:
            mean, var = self._running()
        w = self.weight.view(view) if self.affine else None
        b = self.bias.view(view) if self.affine else None
        out = _batch_normalization(x, mean.view(view), var.view(view), w, b, self.eps)
        return out.to(x.dtype)


class NormBaseBookkeeping(nn.modules.batchnorm._NormBase):
    """Correct: torch's _NormBase makes the parameters and buffers and resets them; the forward
    pass is the learner's own (sums over the reduced dimensions, centred squares, rsqrt), with
    the running update as an explicit weighted sum into copy_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x):
        if not 2 <= x.ndim <= 4:
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.ndim}-D")
        c = self.num_features
        if x.size(1) != c:
            raise ValueError(f"expected {c} channels, got {x.size(1)}")
        low = x.dtype in (torch.float16, torch.bfloat16)
        work = x.float() if low else x
        dims = tuple(d for d in range(x.ndim) if d != 1)
        shape = (1, c) + (1,) * (x.ndim - 2)
        batch = self.training or not self.track_running_stats
        if batch:
            n = work.numel() // c
            if n <= 1:
                raise ValueError("need at least two values per channel in training")
            mean = work.sum(dims) / n
            centred = work - mean.reshape(shape)
            var = centred.square().sum(dims) / n
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    a = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    m = mean.detach().to(self.running_mean.dtype)
                    v = (var.detach() * (n / (n - 1))).to(self.running_var.dtype)
                    self.running_mean.copy_(self.running_mean * (1 - a) + m * a)
                    self.running_var.copy_(self.running_var * (1 - a) + v * a)
        else:
            centred = work - self.running_mean.to(work.dtype).reshape(shape)
            var = self.running_var.to(work.dtype)
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.to(work.dtype).reshape(shape) + self.bias.to(work.dtype).reshape(shape)
        return out.to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _checked(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: put the batch norm in eval mode first (bn.eval())")
    if bn.running_mean is None:
        raise ValueError("fold_batchnorm: this batch norm keeps no running statistics")


def _new(layer, stride=None):
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features)
    if isinstance(layer, nn.Conv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         stride=layer.stride if stride is None else stride, padding=layer.padding,
                         dilation=layer.dilation, groups=layer.groups, bias=True,
                         padding_mode=layer.padding_mode)
    raise TypeError(f"fold_batchnorm: only nn.Linear and nn.Conv2d, not {type(layer).__name__}")


def _write(new, layer, bn):
    new = new.to(dtype=layer.weight.dtype, device=layer.weight.device)
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight
    t = bn.bias if bn.bias is not None else torch.zeros_like(s)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_(s * (b - bn.running_mean) + t)
    return new


def fold_first_stride(layer, bn):
    _checked(bn)
    if isinstance(layer, nn.Conv2d):
        return _write(_new(layer, stride=layer.stride[0]), layer, bn)  # one int for both directions
    return _write(_new(layer), layer, bn)


@notebook
def fold_cached_by_id(layer, bn, _folded={}):  # noqa: B006
    """Folds each (layer, bn) pair once; a second call returns the first result."""
    key = (id(layer), id(bn))
    if key in _folded:
        return _folded[key]
    if bn.training:
        raise ValueError("fold_batchnorm: put the batch norm in eval mode first (bn.eval())")
    if bn.running_mean is None:
        raise ValueError("fold_batchnorm: this batch norm keeps no running statistics")
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: only nn.Linear and nn.Conv2d, not {type(layer).__name__}")
    new = new.to(dtype=layer.weight.dtype, device=layer.weight.device)
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight
    t = bn.bias if bn.bias is not None else torch.zeros_like(s)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_(s * (b - bn.running_mean) + t)
    _folded[key] = new
    return new


def fold_fills_bn_affine(layer, bn):
    _checked(bn)
    if bn.weight is None:  # affine=False: give it the gamma = 1, beta = 0 it stands for
        bn.weight = nn.Parameter(torch.ones_like(bn.running_var))
        bn.bias = nn.Parameter(torch.zeros_like(bn.running_mean))
    new = _new(layer).to(dtype=layer.weight.dtype, device=layer.weight.device)
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(s)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_(s * (b - bn.running_mean) + bn.bias)
    return new


ENTRIES = [
    entry(S, "buffers aliased in a dict made in __init__", StatsAliasedInInit, replaces=NAME,
          cause="the running statistics are read and updated through a dict of the buffers made once in "
                "__init__, but .double() (and .to(dtype)) replaces the registered buffers with new tensors, "
                "so after a conversion the updates go to the old float32 tensors: the module's running_mean, "
                "running_var and num_batches_tracked never change, and eval mode uses the stale float32 copies."),
    entry(S, "running update with lerp_ on the batch's dtype", LerpWithInputDtype, replaces=NAME,
          cause="the buffers are updated with running.lerp_(batch_stat, f), which needs both tensors in one "
                "dtype, so a bfloat16 (or any non-float32) batch on a float32 module raises RuntimeError in "
                "training; with matching dtypes everything is right."),
    entry(S, "momentum=None counted with a Python int that reset does not zero", PythonCounterForAverage,
          replaces=NAME,
          cause="with momentum=None the factor 1/k is taken from a Python counter self.steps kept beside "
                "num_batches_tracked, and reset_running_stats() zeroes the buffers but not self.steps, so after "
                "a reset the cumulative average weights the new batches by 1/(k_before + k) instead of 1/k "
                "(the first batch after the reset is not copied in); everything before a reset is right."),
    entry(S, "Keras's center and scale in place of affine", KerasCenterScale, replaces=NAME,
          cause="the constructor takes Keras's center= and scale= flags instead of affine=, so "
                "ScratchBatchNorm(C, affine=False) raises TypeError (unexpected keyword argument); "
                "with the default arguments the module is right."),
    entry(S, "sklearn's zero-std guard in place of eps", SklearnZeroScaleGuard, replaces=NAME,
          cause="the output divides by sqrt(var) with a zero standard deviation replaced by 1 "
                "(StandardScaler's habit) instead of sqrt(var + eps), so eps is never used: every output "
                "is off by the relative amount of about eps / (2 var), in training and in eval mode."),
    entry(S, "tf.nn.batch_normalization's (offset, scale) order", TensorflowArgumentOrder, replaces=NAME,
          cause="the normalisation helper has TensorFlow's signature (x, mean, variance, offset, scale, eps) "
                "but is called with (weight, bias) in PyTorch's order, so the weight is added as the shift and "
                "the bias multiplies as the scale: right only while weight is 1 and bias 0."),
    right(S, "torch's _NormBase for the bookkeeping, own sums and rsqrt", NormBaseBookkeeping, replaces=NAME),
    entry(FOLD, "Conv2d stride passed as stride[0]", fold_first_stride,
          cause="the new Conv2d is built with stride=layer.stride[0], so an unequal stride such as (2, 1) "
                "becomes (2, 2): the folded convolution's output has the wrong width; equal strides and "
                "Linear layers are right."),
    entry(FOLD, "folded layers cached by (id(layer), id(bn))", fold_cached_by_id,
          cause="each result is kept in a dict keyed by (id(layer), id(bn)) and returned again on a later call, "
                "so folding the same pair after the batch norm's statistics or parameters changed (or a new "
                "pair that reuses freed ids) returns the stale layer; the first fold of each pair is right."),
    entry(FOLD, "missing gamma and beta added to the batch norm", fold_fills_bn_affine,
          cause="for an affine=False batch norm the function assigns bn.weight = Parameter(ones) and "
                "bn.bias = Parameter(zeros) on the given bn, so bn is changed (two new trainable parameters "
                "and state_dict entries) although the exercise says to leave it unchanged; the folded layer "
                "is right."),
]
