"""Held-out answers (nineteenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Learner(nn.Module):
    """A right learner's module; each wrong entry below changes one piece of it."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self._setup(num_features, eps, momentum, affine, track_running_stats)

    def _setup(self, num_features, eps, momentum, affine, track_running_stats):
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
                self.bias.fill_(0.0)

    def _training(self):
        return self.training

    def _count(self, x):
        """Values per channel."""
        return x.numel() // x.shape[1]

    def _stats(self, x, dims, n):
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, correction=0)
        if self._training() and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1)
                self.running_mean.mul_(1 - f).add_(f * mean)
                self.running_var.mul_(1 - f).add_(f * unbiased)
        return mean, var

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm takes (N, C), (N, C, L) or (N, C, H, W); got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}) got {x.shape[1]} channels")
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._training() or not self.track_running_stats:
            n = self._count(x)
            if x.numel() // x.shape[1] < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean, var = self._stats(x, dims, n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class BesselInPlaceOnBatchVar(_Learner):
    """The unbiased variance for the buffer made with mul_ on the batch variance itself."""

    def _stats(self, x, dims, n):
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, correction=0)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.mul_(n / (n - 1))
                self.running_mean.mul_(1 - f).add_(f * mean)
                self.running_var.mul_(1 - f).add_(f * unbiased)
        return mean, var


class InstanceNormAffineDefault(_Learner):
    """affine's default taken from nn.InstanceNorm1d (affine=False)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=True):
        nn.Module.__init__(self)
        self._setup(num_features, eps, momentum, affine, track_running_stats)


class BesselCountHeightSquared(_Learner):
    """Values per channel written out by rank; the 4-D case multiplies the height twice."""

    def _count(self, x):
        if x.dim() == 2:
            return x.shape[0]
        if x.dim() == 3:
            return x.shape[0] * x.shape[2]
        return x.shape[0] * x.shape[2] * x.shape[2]


class TrainMethodAsFlag(_Learner):
    """`self.train` (the bound method, always true) tested instead of `self.training`."""

    def _training(self):
        return bool(self.train)


class ResetParametersBiasOnes(_Learner):
    """reset_parameters written by copying the weight's line."""

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.ones_(self.bias)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: bn must be in eval mode (call bn.eval())")
    if bn.running_mean is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")


def fold_view_one_dim_too_many(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight.dtype)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, *[1] * layer.weight.dim()))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_affine_false_scale_is_std(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale, shift = bn.weight / std, bn.bias
    else:  # gamma = 1, beta = 0
        scale, shift = std, torch.zeros_like(std)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight.dtype)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_padding_mode_in_bias_slot(layer, bn):
    _refuse(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, layer.dilation, layer.groups, layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")
    new = new.to(layer.weight.dtype)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, *[1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + shift)
    return new


def fold_flatten_diag_addcmul(layer, bn):
    """Correct: the settings through the constructors' dtype=/device= keywords, the weight as
    diag(s) @ W.flatten(1) reshaped back, the bias with torch.addcmul."""
    if bn.training:
        raise ValueError("fold_batchnorm: only an eval-mode batch norm can be folded")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fold_batchnorm: this batch norm has no running statistics to fold")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"fold_batchnorm folds nn.Linear or nn.Conv2d, not {type(layer).__name__}")
    kw = {"dtype": layer.weight.dtype, "device": layer.weight.device}
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True, **kw)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode, **kw)
    with torch.no_grad():
        inv = torch.rsqrt(bn.running_var + bn.eps)
        s = inv * bn.weight if bn.weight is not None else inv
        beta = bn.bias.detach().clone() if bn.bias is not None else torch.zeros_like(s)
        w = layer.weight.detach()
        new.weight.copy_((torch.diag(s) @ w.flatten(1)).reshape(w.shape))
        b = layer.bias.detach() if layer.bias is not None else torch.zeros_like(s)
        new.bias.copy_(torch.addcmul(beta, s, b - bn.running_mean))
    return new


ENTRIES = [
    entry(S, "Bessel factor applied with mul_ to the batch variance", BesselInPlaceOnBatchVar, replaces=NAME,
          cause="the unbiased variance for the buffer is made with var.mul_(n / (n - 1)) on the batch variance "
                "itself (in place, under no_grad), so the tensor later used to normalise is the unbiased "
                "variance: training outputs are scaled by sqrt((n - 1) / n) and the gradients no longer match "
                "the forward pass; the buffers and eval mode are right."),
    entry(S, "affine=False by default (nn.InstanceNorm's signature)", InstanceNormAffineDefault, replaces=NAME,
          cause="the default of affine is taken from nn.InstanceNorm1d, affine=False, so "
                "ScratchBatchNorm(C) has no weight and bias (no learnable parameters, nothing in their "
                "state_dict entries); with affine=True passed explicitly the module is right."),
    entry(S, "4-D values per channel counted as N * H * H", BesselCountHeightSquared, replaces=NAME,
          cause="the number of values per channel for the Bessel factor of a 4-D input is written "
                "N * H * H (the height twice) instead of N * H * W, so for non-square images the running "
                "variance is updated with the wrong factor n / (n - 1); 2-D, 3-D and square inputs are right."),
    entry(S, "`if self.train:` (the method) in place of self.training", TrainMethodAsFlag, replaces=NAME,
          cause="the mode is tested with self.train, the bound method, which is always true, so the module "
                "behaves as in training mode after .eval() too: eval mode normalises with the batch's "
                "statistics and keeps updating the running buffers and the counter."),
    entry(S, "reset_parameters fills the bias with ones", ResetParametersBiasOnes, replaces=NAME,
          cause="reset_parameters() was written by copying the weight's line, nn.init.ones_(self.bias), so "
                "after a reset the bias is 1 instead of 0 and every output is shifted by 1; the module is "
                "right until reset_parameters() is called."),
    entry(FOLD, "per-channel view with one dimension too many", fold_view_one_dim_too_many,
          cause="the scale is viewed as (-1, 1, ..., 1) with layer.weight.dim() ones instead of dim() - 1, so "
                "it broadcasts against the weight to a tensor with an extra dimension and copy_ into the new "
                "weight raises RuntimeError, for Linear and Conv2d alike."),
    entry(FOLD, "affine=False: scale taken as the std, not 1 / std", fold_affine_false_scale_is_std,
          cause="for a batch norm with affine=False the scale is set to std = sqrt(running_var + eps) instead "
                "of 1 / std (gamma = 1 dropped the division too), so the folded weight and bias are multiplied "
                "by var + eps too much; affine batch norms are right."),
    entry(FOLD, "Conv2d settings positional, padding_mode in the bias slot", fold_padding_mode_in_bias_slot,
          cause="the new Conv2d is built positionally as (in, out, k, stride, padding, dilation, groups, "
                "padding_mode), but the eighth positional parameter is bias, so padding_mode goes to bias "
                "(a non-empty string, so a bias is still made) and the new layer keeps padding_mode='zeros': "
                "wrong for reflect, replicate or circular padding; everything else is right."),
    right(FOLD, "constructor dtype=/device=, diag(s) @ W.flatten(1), addcmul bias", fold_flatten_diag_addcmul),
]
