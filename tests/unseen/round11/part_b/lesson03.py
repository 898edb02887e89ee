"""Held-out answers (eleventh set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm.

Each wrong ScratchBatchNorm is a learner's otherwise right class (``_Base``) with ONE
piece changed; each wrong fold_batchnorm is a whole function with one slip."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


class _Base(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.init_affine()
        self.init_buffers()

    def init_affine(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def init_buffers(self):
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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm wants (N, C), (N, C, L) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")

    def factor(self):
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = self.factor()
            unbiased = var * n / (n - 1)
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * unbiased)

    def batch_stats(self, x, dims):
        return x.mean(dims), x.var(dims, correction=0)

    def eval_stats(self, x, dims):
        return self.running_mean, self.running_var

    def shape_for(self, x, training):
        return [1, -1] + [1] * (x.dim() - 2)

    def affine_map(self, out, view):
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        self.validate(x)
        dims = [0, *range(2, x.dim())]
        use_batch = self.training or not self.track_running_stats
        view = self.shape_for(x, use_batch)
        if use_batch:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("ScratchBatchNorm: need more than one value per channel in training")
            mean, var = self.batch_stats(x, dims)
            if self.training and self.track_running_stats:
                self.update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.eval_stats(x, dims)
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        return self.affine_map(out, view).to(x.dtype)


# ---- wrong ScratchBatchNorm ---------------------------------------------------------


class VarKerasMomentum(_Base):
    def update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = self.factor()
            unbiased = var * n / (n - 1)
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(a).add_((1 - a) * unbiased)


class WeightAsOffset(_Base):
    # "zero-init gamma": the learnt scale is 1 + weight, so a fresh module is the identity
    def init_affine(self):
        if self.affine:
            self.weight = nn.Parameter(torch.zeros(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)

    def affine_map(self, out, view):
        if self.affine:
            out = out * (1 + self.weight.view(view)) + self.bias.view(view)
        return out


class LazyBuffers(_Base):
    # buffers made at the first forward call, "so that they get the input's device and dtype"
    def init_buffers(self):
        pass

    def _ensure(self, x):
        if self.track_running_stats and not hasattr(self, "running_mean"):
            c = self.num_features
            self.register_buffer("running_mean", torch.zeros(c, dtype=x.dtype, device=x.device))
            self.register_buffer("running_var", torch.ones(c, dtype=x.dtype, device=x.device))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=x.device))

    def reset_running_stats(self):
        if self.track_running_stats and hasattr(self, "running_mean"):
            super().reset_running_stats()

    def forward(self, x):
        self._ensure(x)
        return super().forward(x)


class UntrainedEvalUsesBatch(_Base):
    # "no statistics yet": eval mode before any training batch falls back to the batch's own
    def forward(self, x):
        if not self.training and self.track_running_stats and int(self.num_batches_tracked) == 0:
            self.validate(x)
            dims = [0, *range(2, x.dim())]
            view = [1, -1] + [1] * (x.dim() - 2)
            mean, var = x.mean(dims), x.var(dims, correction=0)
            out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
            return self.affine_map(out, view).to(x.dtype)
        return super().forward(x)


class StatsRoundedToFloat32(_Base):
    # "the buffers stay float32": the statistics are cast before they go into the buffers
    def update(self, mean, var, n):
        super().update(mean.float(), var.float(), n)


class BiasBeforeWeight(_Base):
    def affine_map(self, out, view):
        if self.affine:
            out = (out + self.bias.view(view)) * self.weight.view(view)
        return out


class AffineFalseBuffers(_Base):
    # affine=False: weight 1 and bias 0 kept as fixed buffers "so forward needs no branch"
    def init_affine(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_buffer("weight", torch.ones(self.num_features))
            self.register_buffer("bias", torch.zeros(self.num_features))

    def reset_parameters(self):
        self.reset_running_stats()
        with torch.no_grad():
            self.weight.fill_(1)
            self.bias.zero_()

    def affine_map(self, out, view):
        return out * self.weight.view(view) + self.bias.view(view)


class CumulativeBiased(_Base):
    def update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            if self.momentum is None:  # plain average of the batches seen (Algorithm 2)
                k = float(self.num_batches_tracked)
                self.running_mean += (mean - self.running_mean) / k
                self.running_var += (var - self.running_var) / k
            else:
                a = self.momentum
                self.running_mean.mul_(1 - a).add_(a * mean)
                self.running_var.mul_(1 - a).add_(a * var * n / (n - 1))


class ChannelCheckTrainingOnly(_Base):
    def validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm wants (N, C), (N, C, L) or (N, C, H, W), got {x.dim()}-D")
        if self.training and x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")


class EvalViewTwoD(_Base):
    def shape_for(self, x, training):
        if training:
            return [1, -1] + [1] * (x.dim() - 2)
        return [1, -1]  # the running statistics are (C,): one row


class BesselFromPreviousBatch(_Base):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._n = None

    def update(self, mean, var, n):
        m = self._n if self._n is not None else n  # values per channel (kept from the last batch)
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = self.factor()
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * var * m / (m - 1))
        self._n = n


class EvalEpsInPlace(_Base):
    def eval_stats(self, x, dims):
        var = self.running_var
        var += self.eps  # add eps here ...
        return self.running_mean, var

    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        self.validate(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        mean, var = self.eval_stats(x, dims)
        out = (x - mean.view(view)) / torch.sqrt(var.view(view))  # ... so not again here
        return self.affine_map(out, view).to(x.dtype)


# ---- correct ScratchBatchNorm -----------------------------------------------------------


class OnePassFloat64(_Base):
    """Moments E[x], E[x^2] in float64 (cancellation is harmless there), cast back."""

    def batch_stats(self, x, dims):
        xd = x.double()
        mean = xd.mean(dims)
        var = (xd * xd).mean(dims) - mean * mean
        return mean.to(x.dtype), var.clamp_min(0).to(x.dtype)


class FunctionalWithBuffers(_Base):
    """F.batch_norm does the normalisation and the buffer update itself."""

    def forward(self, x):
        self.validate(x)
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.numel() // x.shape[1] < 2:
            raise ValueError("ScratchBatchNorm: need more than one value per channel in training")
        a = 0.0
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
            a = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(
            x,
            self.running_mean,  # None when untracked
            self.running_var,
            self.weight,
            self.bias,
            use_batch,
            a,
            self.eps,
        )


# ---- fold_batchnorm ---------------------------------------------------------------------


def _new_like(layer, stride=None):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride if stride is None else stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"cannot fold into {type(layer).__name__}")
    return new.to(dtype=layer.weight.dtype, device=layer.weight.device)


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; call bn.eval() first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm has no running statistics")


def _per_out(layer):
    return [-1] + [1] * (layer.weight.dim() - 1)


def fold_eps_missing_in_bias(layer, bn):
    _refuse(bn)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * (gamma / torch.sqrt(bn.running_var + bn.eps)).view(_per_out(layer)))
        new.bias.copy_(beta + (b - bn.running_mean) * gamma / bn.running_var.sqrt())
    return new


def fold_stride_not_copied(layer, bn):
    _refuse(bn)
    s = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode).to(layer.weight)
    else:
        new = nn.Linear(layer.in_features, layer.out_features).to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_layer_bias_sign(layer, bn):
    _refuse(bn)
    s = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_(beta - s * (bn.running_mean + b))  # "subtract both means"
    return new


def fold_mean_without_gamma(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * (gamma / std).view(_per_out(layer)))
        new.bias.copy_(b * gamma / std - bn.running_mean / std + beta)
    return new


def fold_variance_as_std(layer, bn):
    _refuse(bn)
    denom = bn.running_var + bn.eps  # the spread of each channel
    gamma = bn.weight if bn.affine else torch.ones_like(denom)
    beta = bn.bias if bn.affine else torch.zeros_like(denom)
    b = layer.bias if layer.bias is not None else torch.zeros_like(denom)
    s = gamma / denom
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_refuses_untrained(layer, bn):
    _refuse(bn)
    if bn.num_batches_tracked is not None and int(bn.num_batches_tracked) == 0:
        raise ValueError("fold_batchnorm: the batch norm has never seen a batch (no statistics yet)")
    s = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + beta)
    return new


def fold_affine_false_shift(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    if bn.affine:
        s, shift = bn.weight / std, bn.bias
    else:  # no beta: the shift is the running mean's
        s, shift = 1.0 / std, -bn.running_mean
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * s.view(_per_out(layer)))
        new.bias.copy_((b - bn.running_mean) * s + shift)
    return new


# ---- correct fold_batchnorm ------------------------------------------------------------


def fold_bias_through_bn(layer, bn):
    """The folded bias is bn applied (in eval mode) to the layer's own bias."""
    _refuse(bn)
    s = torch.ones_like(bn.running_var) if not bn.affine else bn.weight.detach()
    s = s * torch.rsqrt(bn.running_var + bn.eps)
    b = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
    probe = b.reshape(1, -1, *([1] * (layer.weight.dim() - 2)))
    with torch.no_grad():
        folded_bias = bn(probe).reshape(-1)
    new = _new_like(layer)
    with torch.no_grad():
        new.weight.copy_((torch.diag(s) @ layer.weight.detach().flatten(1)).view_as(new.weight))
        new.bias.copy_(folded_bias)
    return new


ENTRIES = [
    entry(S, "running_var blended with the old value's weight", VarKerasMomentum, replaces=NAME,
          cause="running_mean is updated PyTorch's way, but running_var uses momentum as the old value's "
                "weight (running_var * momentum + (1 - momentum) * unbiased), the Keras convention."),
    entry(S, "weight stored as an offset from 1", WeightAsOffset, replaces=NAME,
          cause="weight is initialised to 0 and the output is scaled by 1 + weight, so the parameter is not "
                "nn.BatchNorm's weight (a given weight w acts as 1 + w)."),
    entry(S, "buffers created at the first forward call", LazyBuffers, replaces=NAME,
          cause="running_mean, running_var and num_batches_tracked are registered only at the first forward "
                "call (in the input's dtype), so a fresh module has no buffers and its state_dict lacks them."),
    entry(S, "batch statistics in eval mode before any training", UntrainedEvalUsesBatch, replaces=NAME,
          cause="in eval mode, while num_batches_tracked is 0, it normalises with the batch's own statistics "
                "instead of the running ones (mean 0, variance 1) that torch uses."),
    entry(S, "statistics rounded to float32 before the update", StatsRoundedToFloat32, replaces=NAME,
          cause="the batch mean and variance are cast to float32 before the running update, so a float64 "
                "module's running statistics are off at float32's precision (about 1e-8 relative)."),
    entry(S, "bias added before the weight multiplies", BiasBeforeWeight, replaces=NAME,
          cause="the affine map is (x_hat + bias) * weight instead of x_hat * weight + bias."),
    entry(S, "affine=False keeps weight and bias as buffers", AffineFalseBuffers, replaces=NAME,
          cause="with affine=False it registers weight (ones) and bias (zeros) as buffers instead of "
                "setting them to None, so module.weight is not None and the state_dict has extra entries."),
    entry(S, "cumulative branch averages the biased variance", CumulativeBiased, replaces=NAME,
          cause="with momentum=None the cumulative average of running_var uses the batch's biased variance "
                "(no n/(n-1)); the momentum branch is right."),
    entry(S, "channel count checked in training mode only", ChannelCheckTrainingOnly, replaces=NAME,
          cause="the wrong-channel-count ValueError is raised only in training mode; in eval mode a wrong "
                "channel count fails with a broadcasting RuntimeError instead."),
    entry(S, "eval mode views the statistics as (1, C) for every rank", EvalViewTwoD, replaces=NAME,
          cause="in eval mode the running statistics, weight and bias are viewed as (1, C) whatever the "
                "input's rank, so 3-D and 4-D inputs broadcast them along the last axis (error or wrong output)."),
    entry(S, "Bessel factor from the previous batch's size", BesselFromPreviousBatch, replaces=NAME,
          cause="the n/(n-1) factor of the running variance uses the number of values per channel of the "
                "PREVIOUS training batch (kept in an attribute), so it is wrong whenever the batch size changes."),
    entry(S, "eps added to running_var in place in eval mode", EvalEpsInPlace, replaces=NAME,
          cause="in eval mode `var = self.running_var; var += eps` aliases the buffer, so every eval call adds "
                "eps to running_var (the first eval output is right, the buffer changes)."),
    right(S, "one-pass moments in float64, cast back", OnePassFloat64, replaces=NAME),
    right(S, "F.batch_norm updating the buffers itself", FunctionalWithBuffers, replaces=NAME),
    entry(FOLD, "eps left out of the bias's scale", fold_eps_missing_in_bias,
          cause="the weight uses gamma / sqrt(running_var + eps) but the bias divides by sqrt(running_var) "
                "without eps."),
    entry(FOLD, "stride not copied", fold_stride_not_copied,
          cause="the new Conv2d is built without stride=layer.stride, so a strided convolution is folded "
                "into a stride-1 one (wrong output size)."),
    entry(FOLD, "layer's bias subtracted", fold_layer_bias_sign,
          cause="the folded bias is beta - s * (running_mean + b): the layer's own bias b is subtracted "
                "instead of added (right only for a layer without a bias)."),
    entry(FOLD, "running mean not multiplied by gamma", fold_mean_without_gamma,
          cause="the folded bias is b * gamma / std - running_mean / std + beta: the running mean's term "
                "misses the factor gamma."),
    entry(FOLD, "variance used as the standard deviation", fold_variance_as_std,
          cause="the scale is gamma / (running_var + eps), without the square root, in the weight and the bias."),
    entry(FOLD, "refuses a batch norm that has seen no batch", fold_refuses_untrained,
          cause="raises ValueError for an eval-mode batch norm whose num_batches_tracked is 0, although its "
                "running statistics (0 and 1) are fixed and fold like any others."),
    entry(FOLD, "affine=False shift set to minus the running mean", fold_affine_false_shift,
          cause="for a batch norm with affine=False it uses -running_mean as the shift instead of beta = 0, "
                "so the running mean is subtracted a second time (unscaled)."),
    right(FOLD, "bias through bn in eval mode, diag(s) @ W", fold_bias_through_bn),
]
