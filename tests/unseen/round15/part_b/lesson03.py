"""Held-out answers (fifteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

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

    def _moments(self, x, dims):
        var, mean = torch.var_mean(x, dims, correction=0)
        return mean, var

    def _unbiased(self, var, n):
        return var * n / (n - 1)

    def _factor(self, n):
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _blend(self, a, mean, unbiased):
        self.running_mean.mul_(1 - a).add_(a * mean)
        self.running_var.mul_(1 - a).add_(a * unbiased)

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm expects 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: got {x.shape[1]} channels, expected {self.num_features}")
        dims = [0] + list(range(2, x.dim()))
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
            mean, var = self._moments(x, dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    a = self._factor(n)
                    self._blend(a, mean.detach(), self._unbiased(var.detach(), n))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class VarMeanUnpackedMeanFirst(_Mine):
    def _moments(self, x, dims):
        mean, var = torch.var_mean(x, dims, correction=0)  # "like tf.nn.moments: (mean, variance)"
        return mean, var


class BesselNOverNPlusOne(_Mine):
    def _unbiased(self, var, n):
        return var * n / (n + 1)  # typo: meant n / (n - 1)


class RunningVarBlendedWithRunningMean(_Mine):
    def _blend(self, a, mean, unbiased):
        self.running_mean.copy_((1 - a) * self.running_mean + a * mean)
        self.running_var.copy_((1 - a) * self.running_mean + a * unbiased)  # typo: running_mean


class WeightSharesRunningVarTensor(_Mine):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        nn.Module.__init__(self)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        ones = torch.ones(num_features)  # "weight and running_var both start at one"
        if affine:
            self.weight = nn.Parameter(ones)
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", ones)
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)


class CumulativeWeightedByValues(_Mine):
    """momentum=None as sklearn's StandardScaler.partial_fit: batches weighted by their size."""

    def _factor(self, n):
        if self.momentum is None:
            self._seen = getattr(self, "_seen", 0) + n
            return n / self._seen
        return self.momentum

    def reset_running_stats(self):
        super().reset_running_stats()
        self._seen = 0


class DefaultMomentumOneHundredth(_Mine):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class LayerNormOnChannelRows(nn.Module):
    """Correct: channels moved to rows (C, n), normalised with F.layer_norm over each row;
    running update with torch.var_mean(correction=1) and add_(alpha=); eval with rsqrt."""

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
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) only, got {x.dim()}-D")
        c = self.num_features
        if x.shape[1] != c:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels given, {c} expected")
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        rows = work.transpose(0, 1).reshape(c, -1)  # (C, n)
        n = rows.shape[1]
        if self.training or not self.track_running_stats:
            if n < 2:
                raise ValueError("ScratchBatchNorm: a single value per channel cannot be normalised")
            normed = torch.nn.functional.layer_norm(rows, (n,), eps=self.eps)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    v, m = torch.var_mean(rows, dim=1, correction=1)
                    self.running_mean.mul_(1 - w).add_(m, alpha=w)
                    self.running_var.mul_(1 - w).add_(v, alpha=w)
        else:
            normed = (rows - self.running_mean[:, None]) * torch.rsqrt(self.running_var[:, None] + self.eps)
        if self.affine:
            normed = normed * self.weight[:, None] + self.bias[:, None]
        back = normed.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
        return back.to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: put bn in eval mode first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics")


def _scale_shift(bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    return gamma / std, beta


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


def fold_inside_inference_mode(layer, bn):
    _refuse(bn)
    with torch.inference_mode():  # "the faster no_grad"
        scale, beta = _scale_shift(bn)
        b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        new = _blank(layer)
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_dilation_groups_positional(layer, bn):
    _refuse(bn)
    scale, beta = _scale_shift(bn)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, True)
    elif isinstance(layer, nn.Conv2d):
        # positional: (in, out, kernel, stride, padding, dilation, groups, bias, padding_mode)
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, layer.groups, layer.dilation, True, layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_new_bias_default_dtype(layer, bn):
    _refuse(bn)
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    scale, beta = _scale_shift(bn)
    folded = copy.deepcopy(layer)
    if folded.bias is None:
        folded.bias = nn.Parameter(torch.zeros(folded.weight.shape[0]))  # default dtype: float32
    with torch.no_grad():
        folded.weight.mul_(scale.view([-1] + [1] * (folded.weight.dim() - 1)))
        folded.bias.copy_((folded.bias - bn.running_mean) * scale + beta)
    return folded


ENTRIES = [
    entry(S, "var_mean unpacked as (mean, var)", VarMeanUnpackedMeanFirst, replaces=NAME,
          cause="unpacks torch.var_mean, which returns (var, mean), as mean, var (TensorFlow's "
                "tf.nn.moments order), so it centres on the variance and divides by sqrt(mean + eps)."),
    entry(S, "Bessel factor n / (n + 1)", BesselNOverNPlusOne, replaces=NAME,
          cause="the running variance is updated with var * n / (n + 1) instead of var * n / (n - 1) "
                "(a sign typo), so running_var is too small; the output in training is right."),
    entry(S, "running_var blended with the running mean", RunningVarBlendedWithRunningMean, replaces=NAME,
          cause="typo in the running update: running_var becomes (1 - a) * running_mean + a * unbiased "
                "var, blending the (just updated) running mean instead of the old running variance."),
    entry(S, "weight and running_var share one tensor", WeightSharesRunningVarTensor, replaces=NAME,
          cause="weight = nn.Parameter(ones) and register_buffer('running_var', ones) share one tensor, "
                "so each training step's running-variance update overwrites the weight in place before "
                "the output uses it; .double() or .to() happens to separate them (float64 is right)."),
    entry(S, "momentum=None average weighted by batch size", CumulativeWeightedByValues, replaces=NAME,
          cause="with momentum=None the cumulative average weights each batch by its number of values "
                "(n / values seen so far, as sklearn's partial_fit) instead of 1/k per batch: wrong as "
                "soon as batch sizes differ."),
    entry(S, "default momentum 0.01", DefaultMomentumOneHundredth, replaces=NAME,
          cause="the signature's default momentum is 0.01 (batch renorm's) instead of torch's 0.1, so a "
                "module built without momentum= updates its running statistics ten times too slowly."),
    entry(FOLD, "folded inside torch.inference_mode", fold_inside_inference_mode,
          cause="builds and fills the new layer inside torch.inference_mode() instead of no_grad, so its "
                "parameters are inference tensors: the folded layer fails as soon as it is used with "
                "autograd (an input that requires grad, fine-tuning)."),
    entry(FOLD, "dilation and groups swapped positionally", fold_dilation_groups_positional,
          cause="passes Conv2d's settings positionally in the order (..., padding, groups, dilation, ...), "
                "but the signature is (..., padding, dilation, groups, ...): groups gets the dilation "
                "tuple, so building any Conv2d raises TypeError inside torch (Linear is right)."),
    entry(FOLD, "missing bias created in the default dtype", fold_new_bias_default_dtype,
          cause="for a layer without a bias it adds nn.Parameter(torch.zeros(out)) in the default dtype "
                "(float32), so a float64 layer gets a float32 bias and the folded layer cannot run "
                "(float32 layers are right)."),
    right(S, "F.layer_norm on channel rows, var_mean, add_(alpha=)", LayerNormOnChannelRows, replaces=NAME),
]
