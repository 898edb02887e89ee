"""Held-out answers (seventeenth set, part b), lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, FOLD = "scratch_batchnorm", "fold_batchnorm"
NAME = "ScratchBatchNorm"


# ---- ScratchBatchNorm ---------------------------------------------------------------


class _Base(nn.Module):
    """A right learner's module, split into pieces; each wrong entry overrides one piece."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.momentum, self.affine = momentum, affine
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

    def _count(self, x):
        """Values per channel."""
        return x.numel() // x.shape[1]

    def _unbiased(self, var, n):
        return var * (n / (n - 1))

    def _update(self, mean, var, n):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - a).add_(a * mean)
            self.running_var.mul_(1 - a).add_(a * self._unbiased(var, n))

    def _normalise(self, x, mean, var, view):
        out = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0, *range(2, x.dim())]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = self._count(x)
            if n < 2:
                raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        return self._normalise(x, mean, var, view).to(x.dtype)


class CountAsTensor(_Base):
    """The values per channel counted with a tensor of the reduced sizes."""

    def _count(self, x):
        dims = [0, *range(2, x.dim())]
        return torch.tensor([x.shape[d] for d in dims]).prod()  # N * L or N * H * W


class BesselParenthesesMissing(_Base):
    def _unbiased(self, var, n):
        return var * n / n - 1  # the m / (m - 1) factor


class FunctionalEpsInMomentumSlot(_Base):
    """Statistics and running buffers left to F.batch_norm (it applies the n / (n - 1) itself)."""

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {x.shape[1]}")
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.numel() // x.shape[1] < 2:
            raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        w = self.weight.to(work.dtype) if self.affine else None
        b = self.bias.to(work.dtype) if self.affine else None
        out = F.batch_norm(work, self.running_mean, self.running_var, w, b, use_batch, self.eps)
        return out.to(x.dtype)


class ChannelsLastByReversing(_Base):
    """Statistics on a channels-last (-1, C) view of the input."""

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ScratchBatchNorm: expected a 2-D, 3-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"ScratchBatchNorm: expected {self.num_features} channels, got {x.shape[1]}")
        c = self.num_features
        if x.dim() == 2:
            rows = x
        elif x.dim() == 3:
            rows = x.permute(0, 2, 1).reshape(-1, c)
        else:
            rows = x.permute(0, 3, 2, 1).reshape(-1, c)  # channels to the end
        if self.training or not self.track_running_stats:
            n = rows.shape[0]
            if n < 2:
                raise ValueError("ScratchBatchNorm: need more than one value per channel to train")
            mean = rows.mean(0)
            var = rows.var(0, correction=0)
            if self.training and self.track_running_stats:
                self._update(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var
        out = self._normalise(rows, mean, var, [1, -1])
        if x.dim() == 3:
            out = out.reshape(x.shape[0], x.shape[2], c).permute(0, 2, 1)
        elif x.dim() == 4:
            n_, _, h, w = x.shape
            out = out.reshape(n_, h, w, c).permute(0, 3, 1, 2)
        return out.to(x.dtype)


class ResetCounterAssignedInt(_Base):
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked = 0


class PartialFitPooledVariance(_Base):
    """momentum=None: the population statistics of every value seen, merged batch by batch as
    sklearn's StandardScaler.partial_fit merges them (Chan et al.'s pairwise update)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._values_seen = 0

    def reset_running_stats(self):
        super().reset_running_stats()
        self._values_seen = 0

    def _update(self, mean, var, n):
        if self.momentum is not None:
            return super()._update(mean, var, n)
        with torch.no_grad():
            self.num_batches_tracked += 1
            seen = self._values_seen
            total = seen + n
            delta = mean - self.running_mean
            m2 = self.running_var * max(seen - 1, 0) + var * n + delta ** 2 * seen * n / total
            self.running_mean.add_(delta * n / total)
            self.running_var.copy_(m2 / (total - 1))
            self._values_seen = total


class InstanceNormRows(nn.Module):
    """Correct: the batch laid out as (1, C, n) channel rows and normalised with
    F.instance_norm (biased variance, eps inside); the unbiased running variance from the
    diagonal of torch.cov; EMA with mul_ and add_(alpha=); eval with F.instance_norm given the
    running statistics (use_input_stats=False)."""

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
        for name, fill in (("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill) if track_running_stats else None)
        self.register_buffer(
            "num_batches_tracked", torch.zeros((), dtype=torch.long) if track_running_stats else None
        )
        self.reset_parameters()

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

    def forward(self, x):
        if x.dim() < 2 or x.dim() > 4:
            raise ValueError(f"ScratchBatchNorm wants (N, C), (N, C, L) or (N, C, H, W), not {tuple(x.shape)}")
        c = self.num_features
        if x.size(1) != c:
            raise ValueError(f"ScratchBatchNorm was built for {c} channels; this input has {x.size(1)}")
        low = x.dtype in (torch.float16, torch.bfloat16)
        work = x.float() if low else x
        rows = work.transpose(0, 1).reshape(c, -1).unsqueeze(0)  # (1, C, n)
        n = rows.shape[-1]
        w = self.weight.to(work.dtype) if self.affine else None
        b = self.bias.to(work.dtype) if self.affine else None
        if self.training or not self.track_running_stats:
            if n < 2:
                raise ValueError("ScratchBatchNorm: one value per channel cannot be normalised in training")
            out = F.instance_norm(rows, weight=w, bias=b, eps=self.eps)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    k = self.num_batches_tracked.item()
                    a = 1.0 / k if self.momentum is None else self.momentum
                    data = rows[0].detach()
                    unbiased = torch.atleast_2d(torch.cov(data)).diagonal()
                    self.running_mean.mul_(1 - a).add_(data.mean(1).to(self.running_mean.dtype), alpha=a)
                    self.running_var.mul_(1 - a).add_(unbiased.to(self.running_var.dtype), alpha=a)
        else:
            out = F.instance_norm(rows, self.running_mean.to(work.dtype), self.running_var.to(work.dtype),
                                  weight=w, bias=b, use_input_stats=False, eps=self.eps)
        shape = (c, x.shape[0], *x.shape[2:])
        return out.reshape(shape).transpose(0, 1).to(x.dtype)


# ---- fold_batchnorm --------------------------------------------------------------


def _new_layer(layer, **conv_settings):
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=True)
    if isinstance(layer, nn.Conv2d):
        settings = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                        groups=layer.groups, padding_mode=layer.padding_mode)
        settings.update(conv_settings)
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, bias=True, **settings)
    raise TypeError(f"fold_batchnorm: cannot fold a {type(layer).__name__}")


def _fill(new, layer, bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    own = layer.bias if layer.bias is not None else torch.zeros_like(std)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1))))
        new.bias.copy_((own - bn.running_mean) * scale + beta)
    return new


def fold_bn_first(bn, layer):
    """fold_batchnorm(bn, layer): "fold the batch norm into the layer"."""
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; call .eval() first")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")
    return _fill(_new_layer(layer), layer, bn)


def fold_not_implemented(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; call .eval() first")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise NotImplementedError(f"fold_batchnorm: folding into {type(layer).__name__} is not supported")
    return _fill(_new_layer(layer), layer, bn)


def fold_padding_same(layer, bn):
    if bn.training:
        raise ValueError("fold_batchnorm: the batch norm is in training mode; call .eval() first")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("fold_batchnorm: the batch norm keeps no running statistics")
    return _fill(_new_layer(layer, padding="same"), layer, bn)  # output the size of the input


def fold_through_batch_norm(layer, bn):
    """Correct: bn in eval mode is s * z + t per channel, so F.batch_norm applied to the
    weight's fan-in rows (each row a 'batch' of C values) minus F.batch_norm of zeros gives
    s * W, and F.batch_norm of the layer's bias gives the new bias; the layer is a deep copy."""
    if bn.training:
        raise ValueError("fold_batchnorm: batch norm still in training mode (use bn.eval())")
    if bn.running_mean is None:
        raise ValueError("fold_batchnorm: batch norm without running statistics cannot be folded")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"fold_batchnorm: Linear or Conv2d only, not {type(layer).__name__}")

    def affine(z):  # bn's eval-mode map on a (k, C) block
        return F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    with torch.no_grad():
        c = layer.weight.shape[0]
        rows = layer.weight.reshape(c, -1).t()  # (fan-in, C)
        zero = torch.zeros(1, c, dtype=rows.dtype)
        scaled = (affine(rows) - affine(zero)).t().reshape(layer.weight.shape)
        own = layer.bias if layer.bias is not None else torch.zeros(c, dtype=rows.dtype)
        bias = affine(own.view(1, c)).view(c)
        folded = copy.deepcopy(layer)
        folded.weight = nn.Parameter(scaled.clone())
        folded.bias = nn.Parameter(bias.clone())
    return folded


ENTRIES = [
    entry(S, "values per channel counted as a tensor", CountAsTensor, replaces=NAME,
          cause="n is torch.tensor([...sizes...]).prod(), a long tensor, so n / (n - 1) is computed in "
                "float32 (torch's default dtype for integer true division) and the Bessel factor in the "
                "running variance is rounded to float32 (relative error about 1e-8) even for float64 input."),
    entry(S, "Bessel factor without parentheses", BesselParenthesesMissing, replaces=NAME,
          cause="the unbiased variance is written var * n / n - 1 (parentheses around n - 1 missing), i.e. "
                "var - 1, so running_var is updated with the biased variance minus one; the output is right."),
    entry(S, "F.batch_norm with eps in the momentum slot", FunctionalEpsInMomentumSlot, replaces=NAME,
          cause="F.batch_norm(x, running_mean, running_var, weight, bias, training, self.eps) passes eps "
                "positionally where F.batch_norm takes momentum (eps comes after it), so the running "
                "statistics move by 1e-5 per batch instead of by momentum (and momentum=None is never used); "
                "the outputs in training mode are right."),
    entry(S, "4-D channels-last view by permute(0, 3, 2, 1)", ChannelsLastByReversing, replaces=NAME,
          cause="for 4-D input the channels-last rows come from x.permute(0, 3, 2, 1) (N, W, H, C) but the "
                "output is reshaped back as (N, H, W, C), so H and W are exchanged in the output's layout: "
                "the statistics and buffers are right, the 4-D outputs are scrambled (2-D and 3-D are right)."),
    entry(S, "reset_running_stats assigns num_batches_tracked = 0", ResetCounterAssignedInt, replaces=NAME,
          cause="reset_running_stats() sets self.num_batches_tracked = 0 (a Python int) instead of zeroing "
                "the tensor in place, which nn.Module refuses for a registered buffer (TypeError), so the "
                "reset fails after zeroing the mean and setting the variance."),
    entry(S, "momentum=None merged as StandardScaler.partial_fit", PartialFitPooledVariance, replaces=NAME,
          cause="with momentum=None running_var is the pooled unbiased variance of every value seen "
                "(sklearn's partial_fit merge, which adds the spread between batch means) instead of the "
                "plain average of the batches' unbiased variances that torch keeps; running_mean is "
                "weighted by values, not batches, so it differs when batch sizes differ."),
    right(S, "F.instance_norm on (1, C, n) rows, torch.cov diagonal, add_(alpha=)", InstanceNormRows,
          replaces=NAME),
    entry(FOLD, "parameters in the order (bn, layer)", fold_bn_first,
          cause="the function is defined as fold_batchnorm(bn, layer), the reverse of the exercise's "
                "(layer, bn), so called as fold_batchnorm(layer, bn) it reads the layer as the batch norm: "
                "a layer in training mode is refused as 'batch norm in training mode'."),
    entry(FOLD, "NotImplementedError for other layers", fold_not_implemented,
          cause="a layer other than nn.Linear or nn.Conv2d is refused with NotImplementedError instead of "
                "the TypeError the exercise asks for; everything else is right."),
    entry(FOLD, "Conv2d rebuilt with padding='same'", fold_padding_same,
          cause="the new Conv2d is built with padding='same' (Keras's habit of size-preserving convolutions) "
                "instead of layer.padding: right only when the layer's padding is 'same'-sized, wrong "
                "(other output size) for padding=0 and refused by torch for strided convolutions."),
    right(FOLD, "F.batch_norm on the weight rows minus its value at zero, deepcopy", fold_through_batch_norm),
]
