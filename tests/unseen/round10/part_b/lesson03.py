"""Held-out answers (tenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm: a learner's right class; each wrong entry changes one piece ----


class _Mine(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._make_affine()
        if track_running_stats:
            self._make_buffers()
        else:
            self._no_buffers()

    def _make_affine(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _make_buffers(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _no_buffers(self):
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

    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _statistics(self, x, dims):
        return x.mean(dims), x.var(dims, unbiased=False)

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

    def _guard(self, n):
        if n < 2:
            raise ValueError("training needs more than one value per channel")

    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            self._guard(n)
            mean, var = self._statistics(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class RunningMeanStartsAtOne(_Mine):
    def _make_buffers(self):
        self.register_buffer("running_mean", torch.ones(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))


class CumulativeOffByOne(_Mine):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            if self.momentum is None:
                k = float(self.num_batches_tracked)
                # average of the k batches seen so far: old average weighted by k, new batch by 1
                self.running_mean.copy_((self.running_mean * k + mean) / (k + 1))
                self.running_var.copy_((self.running_var * k + var * n / (n - 1)) / (k + 1))
            else:
                f = self.momentum
                self.running_mean.mul_(1 - f).add_(f * mean)
                self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))


class ReturnsOutAndStats(_Mine):
    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            self._guard(n)
            mean, var = self._statistics(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype), (mean, var)  # like batchnorm_forward: the output and what was used


class ResetRunningStatsResetsAffine(_Mine):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()
        if self.affine:  # "reset" the whole layer
            with torch.no_grad():
                self.weight.fill_(1)
                self.bias.zero_()


class ChannelCheckOneSided(_Mine):
    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] > self.num_features:
            raise ValueError(f"too many channels: {x.shape[1]} > {self.num_features}")


class TrainOverrideNoReturn(_Mine):
    def train(self, mode=True):
        self.training = mode  # no submodules, so this is all train() has to do


class WeightColumnShape(_Mine):
    def _make_affine(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features, 1))
            self.bias = nn.Parameter(torch.zeros(self.num_features, 1))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)


class UntrackedLeftTodo(_Mine):
    def forward(self, x):
        if not self.track_running_stats:
            raise NotImplementedError("TODO: batch statistics without running buffers")
        return super().forward(x)


class BesselTwice(_Mine):
    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self._factor()
            unbiased = self._last_x.var(self._dims)  # torch's default: unbiased
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * unbiased * n / (n - 1))

    def forward(self, x):
        self._last_x, self._dims = x.detach(), [0, *range(2, x.dim())]
        return super().forward(x)


class GuardAfterUpdate(_Mine):
    def forward(self, x):
        self._check(x)
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            mean, var = self._statistics(x, dims)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
            self._guard(n)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class ViewOfTransposed(_Mine):
    def _statistics(self, x, dims):
        c = x.shape[1]
        flat = x.transpose(0, 1).view(c, -1)  # channels first, everything else in a row
        return flat.mean(1), flat.var(1, unbiased=False)


# ---- correct alternatives ------------------------------------------------------


class TwoPassDeviations(_Mine):
    """The variance as the mean of squared deviations, written out; lerp_ for the buffers."""

    def _statistics(self, x, dims):
        view = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        return mean, ((x - mean.view(view)) ** 2).mean(dims)

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f = self._factor()
            mean, var = mean.to(self.running_mean.dtype), var.to(self.running_var.dtype)
            self.running_mean.lerp_(mean, f)
            self.running_var.lerp_(var * (n / (n - 1)), f)


class ChannelsFirstFlatten(_Mine):
    """Statistics on a (C, everything else) matrix made with movedim + reshape, var_mean."""

    def _statistics(self, x, dims):
        flat = x.movedim(1, 0).reshape(x.shape[1], -1)
        var, mean = torch.var_mean(flat, dim=1, correction=0)
        return mean, var


# ---- fold_batchnorm ----------------------------------------------------------------


def _new_layer(layer):
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    return new.to(layer.weight.dtype)


def fold_gamma_alias(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = gamma.detach()
    scale /= std  # gamma / sigma
    b = layer.bias.detach() if layer.bias is not None else torch.zeros_like(std)
    new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_in_features_from_bn(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(bn.num_features, bn.num_features).to(layer.weight.dtype)
    else:
        new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_dilation_from_padding(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.padding, groups=layer.groups,
                        padding_mode=layer.padding_mode)
    new = new.to(layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_load_state_dict(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    new = _new_layer(layer)
    new.load_state_dict(layer.state_dict())  # start from the layer's own weights
    with torch.no_grad():
        new.weight.mul_(scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((new.bias - bn.running_mean) * scale + beta)
    return new


def fold_mean_negated_in_place(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        minus_mean = bn.running_mean.neg_()
        b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        new = _new_layer(layer)
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b + minus_mean) * scale + beta)
    return new


def fold_linear_no_return(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    new = _new_layer(layer)
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            new.weight.copy_(layer.weight * scale[:, None])
            new.bias.copy_((b - bn.running_mean) * scale + beta)
        else:
            new.weight.copy_(layer.weight * scale[:, None, None, None])
            new.bias.copy_((b - bn.running_mean) * scale + beta)
            return new


def fold_freezes_layer(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn has no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    for p in layer.parameters():
        p.requires_grad_(False)  # no autograd while we fold
    scale = (gamma / torch.sqrt(bn.running_var + bn.eps)).detach()
    b = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    new = _new_layer(layer)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - bn.running_mean) * scale + beta)
    return new


def fold_bias_by_functional_bn(layer, bn):
    """Right: a deep copy of the layer, its weight scaled, and the bias passed
    through the batch norm itself with F.batch_norm (eval statistics)."""
    if bn.training:
        raise ValueError("fold_batchnorm: bn must be in eval mode")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: bn keeps no running statistics to fold")
    new = copy.deepcopy(layer)
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(inv_std)
    with torch.no_grad():
        own = layer.bias if layer.bias is not None else torch.zeros_like(inv_std)
        folded_bias = F.batch_norm(own[None], bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                   training=False, eps=bn.eps)[0]
        new.weight.mul_((gamma * inv_std).reshape(-1, *([1] * (layer.weight.dim() - 1))))
        if new.bias is None:
            new.bias = nn.Parameter(folded_bias.clone())
        else:
            new.bias.copy_(folded_bias)
    return new


ENTRIES = [
    entry(S, "running_mean starts at one", RunningMeanStartsAtOne,
          "running_mean is created with torch.ones instead of torch.zeros (copied from the running_var line), so a fresh module's running mean is 1 and every later blend starts from the wrong value.", replaces=NAME),
    entry(S, "cumulative average off by one", CumulativeOffByOne,
          "with momentum=None the count k is incremented first and then the average is (old * k + new) / (k + 1), one batch too many: the first batch gets weight 1/2 instead of 1 (the initial 0 / 1 is kept in the average).", replaces=NAME),
    entry(S, "forward returns (out, (mean, var))", ReturnsOutAndStats,
          "forward returns a tuple (output, (mean, var)) in the style of lesson 02's batchnorm_forward instead of the output tensor alone.", replaces=NAME),
    entry(S, "reset_running_stats resets weight and bias too", ResetRunningStatsResetsAffine,
          "reset_running_stats also sets weight to 1 and bias to 0, erasing the learnt affine parameters; only the three buffers should be reset (reset_parameters does both).", replaces=NAME),
    entry(S, "channel check one-sided", ChannelCheckOneSided,
          "the channel check only refuses inputs with MORE channels than num_features; an input with fewer channels is not refused with ValueError and fails later with a broadcasting RuntimeError.", replaces=NAME),
    entry(S, "train() overridden without returning self", TrainOverrideNoReturn,
          "train(mode) is overridden to set self.training but returns None, so module.train() / module.eval() return None instead of the module (chaining such as m = ScratchBatchNorm(3).eval() breaks).", replaces=NAME),
    entry(S, "weight and bias of shape (C, 1)", WeightColumnShape,
          "weight and bias are created with shape (num_features, 1) instead of (num_features,), so the parameters do not match nn.BatchNorm's (loading or copying torch's weights fails) although the output is right.", replaces=NAME),
    entry(S, "track_running_stats=False left as a TODO", UntrackedLeftTodo,
          "a module built with track_running_stats=False raises NotImplementedError in forward: the branch that always uses batch statistics was never written.", replaces=NAME),
    entry(S, "Bessel correction applied twice", BesselTwice,
          "the running variance is updated with torch's default (already unbiased) variance multiplied again by n / (n - 1), so running_var is too large by n / (n - 1).", replaces=NAME),
    entry(S, "one-value guard after the running update", GuardAfterUpdate,
          "the check for one value per channel comes after the running update, so a refused batch of one value per channel has already incremented num_batches_tracked and blended n / (n - 1) = 1 / 0 (inf) into running_var before the ValueError.", replaces=NAME),
    entry(S, "view of a transposed input", ViewOfTransposed,
          "the statistics use x.transpose(0, 1).view(C, -1), and view cannot reshape the non-contiguous transposed tensor, so every training call on a 3-D or 4-D input raises RuntimeError (reshape is needed); 2-D inputs work.", replaces=NAME),
    entry(FOLD, "gamma divided in place through a detached alias", fold_gamma_alias,
          "scale = bn.weight.detach() shares bn.weight's storage, so scale /= std divides the batch norm's own weight in place: the given bn is changed (and a second fold is wrong)."),
    entry(FOLD, "Linear sized from the batch norm", fold_in_features_from_bn,
          "the new Linear is built as nn.Linear(bn.num_features, bn.num_features), which is only right for a square layer; in_features must come from the layer."),
    entry(FOLD, "dilation copied from padding", fold_dilation_from_padding,
          "the new Conv2d is built with dilation=layer.padding (a copy-paste slip), which is only right when the convolution's padding equals its dilation."),
    entry(FOLD, "load_state_dict from a layer without bias", fold_load_state_dict,
          "the new layer (always with a bias) loads layer.state_dict() strictly, which fails with a missing 'bias' key for a layer built with bias=False."),
    entry(FOLD, "running mean negated in place", fold_mean_negated_in_place,
          "bn.running_mean.neg_() negates the batch norm's running mean in place (neg_ instead of neg), so the given bn is changed (the folded layer itself is right)."),
    entry(FOLD, "Linear branch without a return", fold_linear_no_return,
          "the return statement is inside the Conv2d branch only, so folding a Linear returns None."),
    entry(FOLD, "layer's parameters frozen", fold_freezes_layer,
          "calls requires_grad_(False) on the given layer's parameters, so the original layer can no longer be trained (the folded layer is right)."),
    right(S, "two-pass squared deviations, lerp_", TwoPassDeviations, replaces=NAME),
    right(S, "movedim + reshape, torch.var_mean", ChannelsFirstFlatten, replaces=NAME),
    right(FOLD, "deepcopy, bias through F.batch_norm", fold_bias_by_functional_bn),
]
