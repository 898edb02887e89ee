"""Held-out answers, lesson 03: ScratchBatchNorm and fold_batchnorm."""

import copy

import torch
from torch import nn

from _format import entry, right

SB, FB = "scratch_batchnorm", "fold_batchnorm"


class _Init(nn.Module):
    """A right __init__ and resets; each wrong answer below writes its own forward
    (or its own __init__)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input, got {x.dim()}D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _affine(self, out, shape):
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class BiasedRunningVar(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class KerasMomentum(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    # running = momentum * running + (1 - momentum) * batch
                    self.running_mean.copy_(m * self.running_mean + (1 - m) * mean)
                    self.running_var.copy_(m * self.running_var + (1 - m) * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class BuffersInGraph(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class AlwaysBatchStats(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1]
        if n < 2:
            raise ValueError("need more than 1 value per channel")
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, m)
                self.running_var.lerp_(var * n / (n - 1), m)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class UpdatesInEval(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / max(n - 1, 1))
        if self.training or not self.track_running_stats:
            if n < 2:
                raise ValueError("need more than 1 value per channel")
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class BesselWithBatchSize(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.shape[0]  # the batch size
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class CounterNeverIncremented(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    if self.momentum is None:
                        m = 1.0 / (float(self.num_batches_tracked) + 1)
                    else:
                        m = self.momentum
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class Rank2Or4Only(_Init):
    def forward(self, x):
        self._check(x)
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        shape = [1, -1, 1, 1] if x.dim() == 4 else [1, -1]
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class AffineIgnored(_Init):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__(num_features, eps, momentum, True, track_running_stats)
        self.affine = affine

    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return out * self.weight.view(shape) + self.bias.view(shape)


class MomentumNoneUnhandled(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class Float32Inside(_Init):
    def forward(self, x):
        self._check(x)
        x32 = x.float()
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x32.mean(dims), x32.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean.float(), self.running_var.float()
        out = (x32 - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.float().view(shape) + self.bias.float().view(shape)
        return out.to(x.dtype)


class EvalNeedsRunningStats(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class RunningVarWithEps(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False) + self.eps  # eps once, here
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
            out = (x - mean.view(shape)) / torch.sqrt(var.view(shape))
        else:
            out = (x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps)
        return self._affine(out, shape)


class EvalEpsOutside(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
            std = torch.sqrt(var + self.eps)
        else:
            mean = self.running_mean
            std = self.running_var.sqrt() + self.eps  # the stored variance is unbiased already
        out = (x - mean.view(shape)) / std.view(shape)
        return self._affine(out, shape)


class _RightForward(_Init):
    def forward(self, x):
        self._check(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("need more than 1 value per channel")
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self._affine(out, shape)


class ResetZeroesVar(_RightForward):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            for buffer in (self.running_mean, self.running_var, self.num_batches_tracked):
                buffer.zero_()


class NumBatchesFloat(_RightForward):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if track_running_stats:
            self.register_buffer("num_batches_tracked", torch.tensor(0.0))


# ---- correct alternatives -------------------------------------------------------------


class ScratchFlatten(nn.Module):
    """Channels first, then one (C, everything else) matrix; torch.var_mean."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.weight = nn.Parameter(torch.empty(num_features)) if affine else None
        self.bias = nn.Parameter(torch.empty(num_features)) if affine else None
        stats = track_running_stats
        self.register_buffer("running_mean", torch.empty(num_features) if stats else None)
        self.register_buffer("running_var", torch.empty(num_features) if stats else None)
        self.register_buffer(
            "num_batches_tracked", torch.zeros((), dtype=torch.long) if stats else None
        )
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.fill_(0.0)
            self.running_var.fill_(1.0)
            self.num_batches_tracked.fill_(0)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.fill_(0.0)

    def forward(self, x):
        if not 2 <= x.dim() <= 4 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, ...) with 2 to 4 dims, got {tuple(x.shape)}")
        cols = x.transpose(0, 1).reshape(self.num_features, -1)  # (C, values)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            n = cols.shape[1]
            if n <= 1:
                raise ValueError("expected more than 1 value per channel when training")
            var, mean = torch.var_mean(cols, dim=1, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = (1.0 / self.num_batches_tracked.item()) if self.momentum is None else self.momentum
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), w)
                    self.running_var.lerp_((var * (n / (n - 1))).to(self.running_var.dtype), w)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = torch.addcmul(self.bias.reshape(shape), y, self.weight.reshape(shape))
        return y.to(x.dtype)


class ScratchFunctional(nn.Module):
    """The bookkeeping done by torch.nn.functional.batch_norm itself."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
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
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {x.dim()}D input)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.numel() // x.shape[1] < 2:
            raise ValueError("Expected more than 1 value per channel when training")
        return torch.nn.functional.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, use_batch, factor, self.eps,
        )


# ---- fold_batchnorm --------------------------------------------------------------------


def fold_drops_layer_bias(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_(bn.bias - bn.running_mean * scale)
    return new


def fold_no_eps(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / bn.running_var.sqrt()
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return new


def fold_scale_last_axis(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
        weight = layer.weight * scale  # one factor per output
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
        weight = layer.weight * scale.view(-1, 1, 1, 1)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return new


def fold_in_place(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    with torch.no_grad():
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(scale))
        layer.weight.mul_(scale.view(shape))
        layer.bias.copy_((layer.bias - bn.running_mean) * scale + bn.bias)
    return layer


def fold_default_conv(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return new


def fold_training_allowed(layer, bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
    new = new.to(layer.weight)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return new


def fold_float32_layer(layer, bn):
    if bn.training:
        raise ValueError("bn must be in eval mode")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
    with torch.no_grad():
        new.weight.copy_(layer.weight * scale.view(shape))
        new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return new


def fold_deepcopy_diag(layer, bn):
    """Correct: a deep copy keeps every setting; Linear via diag(s) @ W."""
    if bn.training:
        raise ValueError("fold_batchnorm needs bn in eval mode (bn.eval())")
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise TypeError("only nn.Linear and nn.Conv2d can absorb a batch norm")
    if bn.running_var is None:
        raise ValueError("bn has no running statistics")
    with torch.no_grad():
        s = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            s = s * bn.weight
        folded = copy.deepcopy(layer)
        if isinstance(layer, nn.Linear):
            folded.weight.copy_(torch.diag(s) @ layer.weight)
        else:
            folded.weight.copy_(layer.weight * s[:, None, None, None])
        b = layer.bias if layer.bias is not None else torch.zeros_like(s)
        new_bias = s * (b - bn.running_mean)
        if bn.bias is not None:
            new_bias = new_bias + bn.bias
        folded.bias = nn.Parameter(new_bias.to(layer.weight.dtype))
    return folded


ENTRIES = [
    entry(SB, "running_var from the biased variance", BiasedRunningVar,
          "updates running_var with the biased batch variance instead of the unbiased one (n/(n-1) missing).",
          replaces="ScratchBatchNorm"),
    entry(SB, "momentum as the weight of the old value", KerasMomentum,
          "uses the Keras convention running = momentum*running + (1-momentum)*batch, so the new batch gets weight 0.9 instead of 0.1.",
          replaces="ScratchBatchNorm"),
    entry(SB, "buffers reassigned inside the graph", BuffersInGraph,
          "updates the running statistics outside torch.no_grad() by reassigning them from the graph's tensors, so the buffers require grad and carry the autograd history.",
          replaces="ScratchBatchNorm"),
    entry(SB, "batch statistics in eval mode", AlwaysBatchStats,
          "normalises with the batch statistics in eval mode too, never using the running statistics.",
          replaces="ScratchBatchNorm"),
    entry(SB, "running statistics updated in eval mode", UpdatesInEval,
          "updates the running statistics (and the counter) in eval mode too, not only in training.",
          replaces="ScratchBatchNorm"),
    entry(SB, "Bessel factor from the batch size", BesselWithBatchSize,
          "the unbiased correction uses N/(N-1) with N the batch size instead of the number of values per channel (N*H*W), wrong for 3-D and 4-D input.",
          replaces="ScratchBatchNorm"),
    entry(SB, "num_batches_tracked never incremented", CounterNeverIncremented,
          "never increments num_batches_tracked (the cumulative average reads count + 1 instead), so the counter stays 0.",
          replaces="ScratchBatchNorm"),
    entry(SB, "reset zeroes running_var", ResetZeroesVar,
          "reset_running_stats (also called from __init__) sets running_var to 0 instead of 1.",
          replaces="ScratchBatchNorm"),
    entry(SB, "(N, C, L) treated as (N, C)", Rank2Or4Only,
          "for 3-D input (N, C, L) it reduces over dim 0 only (it handles 4-D as [0, 2, 3] and everything else as 2-D).",
          replaces="ScratchBatchNorm"),
    entry(SB, "affine=False ignored", AffineIgnored,
          "always creates weight and bias parameters, even with affine=False.",
          replaces="ScratchBatchNorm"),
    entry(SB, "momentum=None unhandled", MomentumNoneUnhandled,
          "does not handle momentum=None (cumulative average): 1 - None raises TypeError.",
          replaces="ScratchBatchNorm"),
    entry(SB, "computes in float32", Float32Inside,
          "computes in float32 whatever the input dtype, so float64 modules lose precision (about 1e-7 relative).",
          replaces="ScratchBatchNorm"),
    entry(SB, "eval without running statistics crashes", EvalNeedsRunningStats,
          "in eval mode with track_running_stats=False it uses the (None) running statistics instead of batch statistics, and crashes.",
          replaces="ScratchBatchNorm"),
    entry(SB, "eps folded into the stored variance", RunningVarWithEps,
          "adds eps to the batch variance before the running update, so running_var is (slightly) too large by eps*N/(N-1) per update.",
          replaces="ScratchBatchNorm"),
    entry(SB, "eval mode adds eps to the std", EvalEpsOutside,
          "in eval mode divides by sqrt(running_var) + eps instead of sqrt(running_var + eps).",
          replaces="ScratchBatchNorm"),
    entry(SB, "num_batches_tracked as float", NumBatchesFloat,
          "registers num_batches_tracked as a float tensor instead of a long (int64) one.",
          replaces="ScratchBatchNorm"),
    entry(FB, "layer's own bias dropped", fold_drops_layer_bias,
          "the folded bias is beta - mu*s, leaving out the layer's own bias (s*b)."),
    entry(FB, "eps missing", fold_no_eps,
          "the scale is gamma/sqrt(running_var) without eps."),
    entry(FB, "Linear weight scaled along inputs", fold_scale_last_axis,
          "multiplies the Linear weight (out, in) by s of shape (out,) directly, which broadcasts along the input axis (crashes unless in == out)."),
    entry(FB, "folds into the layer in place", fold_in_place,
          "modifies the given layer's weight and bias in place and returns it, instead of a new layer."),
    entry(FB, "conv settings not copied", fold_default_conv,
          "builds the new Conv2d without dilation and groups (only stride and padding), so dilated convolutions give wrong outputs and grouped ones crash."),
    entry(FB, "training-mode bn accepted", fold_training_allowed,
          "does not refuse a batch norm in training mode (it should raise ValueError)."),
    entry(FB, "new layer left in float32", fold_float32_layer,
          "creates the new layer with the default float32 dtype instead of the original layer's dtype (float64 layers become float32 and reject float64 input)."),
    right(SB, "flattened channels, var_mean, lerp_", ScratchFlatten, replaces="ScratchBatchNorm"),
    right(SB, "torch.nn.functional.batch_norm", ScratchFunctional, replaces="ScratchBatchNorm"),
    right(FB, "deepcopy and diag(s) @ W", fold_deepcopy_diag),
]
