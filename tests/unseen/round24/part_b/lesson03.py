"""Held-out answers (twenty-fourth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import torch
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Learner(nn.Module):
    """A right learner's module in small methods; each wrong entry below overrides exactly one."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self._set_momentum(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._make_parameters()
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _set_momentum(self, momentum):
        self.momentum = momentum

    def _make_parameters(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

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

    def _use_batch_stats(self):
        return self.training or not self.track_running_stats

    def _validate(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")

    def _count(self):
        self.num_batches_tracked += 1

    def _keep(self, mean, var):
        pass

    def forward(self, x):
        self._validate(x)
        dims = [0] + list(range(2, x.dim()))
        view = [1, self.num_features] + [1] * (x.dim() - 2)
        if self._use_batch_stats():
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError("ScratchBatchNorm: training needs more than one value per channel")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            self._keep(mean, var)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self._count()
                    if self.momentum is None:
                        f = 1.0 / float(self.num_batches_tracked)
                    else:
                        f = self.momentum
                    self.running_mean.mul_(1 - f).add_(f * mean)
                    self.running_var.mul_(1 - f).add_(f * var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)


class ModeFixedAtConstruction(_Learner):
    """Whether to normalise with the batch's statistics decided once in __init__ (self.use_batch_stats)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.use_batch_stats = self.training or not self.track_running_stats

    def _use_batch_stats(self):
        return self.use_batch_stats


class RankRangeEndExclusive(_Learner):
    """Rank check written `x.dim() not in range(2, 4)` for ranks 2 to 4."""

    def _validate(self, x):
        if x.dim() not in range(2, 4):
            raise ValueError(f"ScratchBatchNorm: (N, C), (N, C, L) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: {x.shape[1]} channels, expected {self.num_features}")


class BatchStatsKeptForInspection(_Learner):
    """The batch mean and variance kept on the module (self.batch_mean, self.batch_var) to look at later."""

    def _keep(self, mean, var):
        self.batch_mean = mean
        self.batch_var = var


class NoAttributesWithoutAffine(_Learner):
    """weight and bias created only under `if affine:`; with affine=False the names are not defined at all."""

    def _make_parameters(self):
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features))


class MomentumAsTensor(_Learner):
    """momentum stored as torch.tensor(momentum) (a float32 scalar tensor)."""

    def _set_momentum(self, momentum):
        self.momentum = torch.tensor(momentum)


class UnbiasedFirstRebound(nn.Module):
    """Correct: torch's default (unbiased) variance computed first, the biased one derived from it by
    (n - 1) / n; buffers rebound to new tensors under no_grad (register_buffer's names keep them buffers);
    channels moved last with movedim and flattened."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.full((num_features,), 1.0))
            self.bias = nn.Parameter(torch.full((num_features,), 0.0))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if not self.track_running_stats:
            return
        self.running_mean.copy_(torch.zeros_like(self.running_mean))
        self.running_var.copy_(torch.ones_like(self.running_var))
        self.num_batches_tracked.copy_(torch.zeros_like(self.num_batches_tracked))

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.copy_(torch.ones_like(self.weight))
                self.bias.copy_(torch.zeros_like(self.bias))

    def forward(self, x):
        if not 2 <= x.dim() <= 4:
            raise ValueError(f"ScratchBatchNorm wants 2, 3 or 4 dimensions, not {x.dim()}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm({self.num_features}) given {x.shape[1]} channels")
        shape = [1] * x.dim()
        shape[1] = self.num_features
        if self.training or not self.track_running_stats:
            flat = x.movedim(1, -1).reshape(-1, self.num_features)  # (values, C)
            n = flat.shape[0]
            if n == 1:
                raise ValueError("ScratchBatchNorm: a single value per channel has no variance")
            unbiased = flat.var(0)  # torch's default: n - 1
            mean = flat.mean(0)
            var = unbiased * ((n - 1) / n)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked = self.num_batches_tracked + 1
                    a = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                    self.running_mean = self.running_mean + a * (mean - self.running_mean)
                    self.running_var = self.running_var + a * (unbiased - self.running_var)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out.to(dtype=x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _refuse(bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode, call bn.eval() first")
    if bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")


def _fold_with(layer, bn, mean, var):
    std = torch.sqrt(var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
                        padding_mode=layer.padding_mode)
    else:
        raise TypeError(f"fold_batchnorm: only nn.Linear and nn.Conv2d can be folded, not {type(layer).__name__}")
    new = new.to(layer.weight)
    b = layer.bias if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view([-1] + [1] * (layer.weight.dim() - 1)))
        new.bias.copy_((b - mean) * scale + beta)
    return new


def fold_refusals_joined_with_and(layer, bn):
    if bn.training and bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm has no fixed statistics to fold "
                         "(training mode without running statistics)")
    return _fold_with(layer, bn, bn.running_mean, bn.running_var)


def fold_puts_layer_in_eval(layer, bn):
    layer.eval()  # like torch's fuse_*_bn_eval, fold in eval mode
    _refuse(bn)
    return _fold_with(layer, bn, bn.running_mean, bn.running_var)


def fold_debiased_statistics(layer, bn):
    _refuse(bn)
    # the lesson's debiasing: the running statistics still lean towards their start (0, 1)
    start = (1 - bn.momentum) ** int(bn.num_batches_tracked)
    mean = bn.running_mean / (1 - start)
    var = (bn.running_var - start) / (1 - start)
    return _fold_with(layer, bn, mean, var)


ENTRIES = [
    entry(S, "batch or running statistics decided once in __init__", ModeFixedAtConstruction, replaces=NAME,
          cause="whether to normalise with the batch's statistics is computed once in __init__ "
                "(self.use_batch_stats = self.training or not self.track_running_stats) and forward reads that "
                "flag, so .eval() has no effect: eval mode still normalises with the batch's statistics and "
                "keeps updating the running statistics and counter; training mode is right."),
    entry(S, "rank check `x.dim() not in range(2, 4)`", RankRangeEndExclusive, replaces=NAME,
          cause="the rank check is `x.dim() not in range(2, 4)`, whose end is exclusive, so it accepts only 2-D "
                "and 3-D inputs and refuses every (N, C, H, W) input with ValueError; 2-D and 3-D inputs are "
                "right."),
    entry(S, "batch mean and variance kept on the module for inspection", BatchStatsKeptForInspection,
          replaces=NAME,
          cause="forward stores the batch mean and variance as plain attributes (self.batch_mean, "
                "self.batch_var) with their autograd history, so after a training step with gradients on the "
                "module holds non-leaf tensors: copy.deepcopy of it raises RuntimeError and the last graph is "
                "kept alive; outputs, gradients and buffers are right."),
    entry(S, "affine=False leaves weight and bias undefined", NoAttributesWithoutAffine, replaces=NAME,
          cause="weight and bias are only created under `if affine:`, with no register_parameter(name, None) "
                "otherwise, so a module built with affine=False has no weight or bias attribute at all "
                "(AttributeError where torch's has None); its outputs and buffers are right."),
    entry(S, "momentum stored as torch.tensor(momentum)", MomentumAsTensor, replaces=NAME,
          cause="__init__ stores self.momentum = torch.tensor(momentum), so momentum=None raises in the "
                "constructor (torch.tensor(None)) and any momentum is rounded to float32 (0.1 becomes "
                "0.10000000149), which moves float64 running statistics off torch's by about 1e-9 relative."),
    right(S, "torch's unbiased variance first, biased derived, buffers rebound under no_grad, movedim rows",
          UnbiasedFirstRebound, replaces=NAME),
    entry(FOLD, "the two refusals joined with `and`", fold_refusals_joined_with_and,
          cause="the refusal is one test `if bn.training and bn.running_var is None`, `and` where `or` was "
                "meant, so a training-mode batch norm with running statistics is folded (with its running "
                "statistics) instead of refused, and an untracked one in eval mode crashes with TypeError "
                "instead of a ValueError; folds of eval-mode tracked batch norms are right."),
    entry(FOLD, "layer.eval() called on the layer to fold", fold_puts_layer_in_eval,
          cause="fold_batchnorm calls layer.eval() on the layer it is given (as torch's fusion requires), so the "
                "caller's layer is switched to eval mode (layer.training changes), although the exercise says "
                "to leave layer unchanged; the folded layer is right."),
    entry(FOLD, "running statistics debiased before folding", fold_debiased_statistics,
          cause="the running mean and variance are debiased first as in the lesson's debiased() "
                "(divided by 1 - (1 - momentum) ** num_batches_tracked), so the folded layer does not equal "
                "bn(layer(x)) in eval mode, which uses the running statistics as they are (and a batch norm "
                "with momentum=None raises TypeError); weights, refusals and layer settings are right."),
]
