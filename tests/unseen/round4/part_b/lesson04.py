"""Held-out answers (fourth set, part b), lesson 04: batch_renorm_backward,
BatchRenorm, renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -------------------------------------------------------


def bw_divides_by_variance(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std**2
    return dx, dgamma, dbeta


def bw_dbeta_from_g(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dbeta = g.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_returns_dbeta_first(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dbeta, dgamma


def bw_sums_not_means(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / std
    return dx, dgamma, dbeta


def bw_dbeta_todo(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dbeta = None  # TODO
    return dx, dgamma, dbeta


def bw_eps_twice(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / np.sqrt(std**2 + 1e-5)
    return dx, dgamma, dbeta


def bw_global_means(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean() - x_hat * (g * x_hat).mean()) / std
    return dx, dgamma, dbeta


def bw_keepdims(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0, keepdims=True)
    dgamma = (dout * y_hat).sum(axis=0, keepdims=True)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0, keepdims=True) - x_hat * (g * x_hat).mean(axis=0, keepdims=True)) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm -------------------------------------------------------------------


class _R(nn.Module):
    """A right implementation in a learner's style; each wrong entry changes one piece."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm expects 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def enough(self, x):
        if x.numel() // x.shape[1] < 2:
            raise ValueError("need at least 2 values per channel in training")

    def clip(self, mean, std):
        r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
        d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d

    def update(self, mean, std):
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_std += self.momentum * (std - self.running_std)

    def forward(self, x):
        self.validate(x)
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            self.enough(x)
            mean = x.mean(dim=dims)
            std = (x.var(dim=dims, correction=0) + self.eps).sqrt()
            with torch.no_grad():
                r, d = self.clip(mean, std)
            y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
            with torch.no_grad():
                self.update(mean, std)
        else:
            y = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class MomentumHardCoded(_R):
    def update(self, mean, std):
        self.running_mean += 0.01 * (mean - self.running_mean)  # the paper's value
        self.running_std += 0.01 * (std - self.running_std)


class NoSingleValueCheck(_R):
    def enough(self, x):
        pass


class RClampBoundsSwapped(_R):
    def clip(self, mean, std):
        r = (std / self.running_std).clamp(self.rmax, 1 / self.rmax)
        d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d


class EvalMethodAsFlag(_R):
    def forward(self, x):
        self.validate(x)
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.eval:  # meant: not self.training
            y = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        else:
            self.enough(x)
            mean = x.mean(dim=dims)
            std = (x.var(dim=dims, correction=0) + self.eps).sqrt()
            with torch.no_grad():
                r, d = self.clip(mean, std)
            y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
            with torch.no_grad():
                self.update(mean, std)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class BuffersInFloat64(_R):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        # "averages over many steps deserve double precision"
        self.register_buffer("running_mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("running_std", torch.ones(num_features, dtype=torch.float64))


class PythonMinMax(_R):
    def clip(self, mean, std):
        r = max(1 / self.rmax, min(self.rmax, std / self.running_std))
        d = max(-self.dmax, min(self.dmax, (mean - self.running_mean) / self.running_std))
        return r, d


class ChannelsFromLastDim(_R):
    def validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm expects 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[-1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features, got {x.shape[-1]}")


class ReturnsOutAndRD(_R):
    def forward(self, x):
        self.validate(x)
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            y = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
            return y * self.weight.reshape(shape) + self.bias.reshape(shape)
        self.enough(x)
        mean = x.mean(dim=dims)
        std = (x.var(dim=dims, correction=0) + self.eps).sqrt()
        with torch.no_grad():
            r, d = self.clip(mean, std)
        y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
        with torch.no_grad():
            self.update(mean, std)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape), (r, d)  # as batch_renorm_forward


class UpdatedInEveryMode(_R):
    def forward(self, x):
        self.validate(x)
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            self.enough(x)
        mean = x.mean(dim=dims)
        std = (x.var(dim=dims, correction=0) + self.eps).sqrt()
        with torch.no_grad():
            r, d = self.clip(mean, std)
            self.update(mean, std)
        if self.training:
            y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
        else:
            y = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


# ---- renorm_schedule -------------------------------------------------------------


def _progress(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_zero_length_inclusive(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step >= warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_zero_length_todo(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            raise NotImplementedError("TODO: a ramp of length 0")
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_rounded_progress(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return round(min(1.0, max(0.0, (step - warmup) / length)), 1)  # "tidy numbers"

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_geometric_rmax(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = rmax_final ** _progress(step, warmup, r_steps)  # from 1 to rmax_final
    dmax = dmax_final * _progress(step, warmup, d_steps)
    return rmax, dmax


def sch_length_minus_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / (length - 1)))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


# ---- correct alternatives ----------------------------------------------------------


def bw_autograd_rebuilt(dout, cache):
    """Correct: autograd on an input rebuilt from the cache (dx does not depend on
    the mean), with r, d, and the eps inside std, as constants."""
    x_hat, y_hat, std, r, gamma = cache
    d = y_hat - x_hat * r
    x0 = x_hat * std
    eps = std**2 - x0.var(axis=0)  # the eps the forward pass used
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    g = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(x0.shape[1], dtype=torch.float64, requires_grad=True)
    mu = x.mean(0)
    s = torch.sqrt(((x - mu) ** 2).mean(0) + torch.tensor(eps))
    out = g * ((x - mu) / s * torch.tensor(r) + torch.tensor(d)) + b
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return x.grad.numpy(), g.grad.numpy(), b.grad.numpy()


class FoldedScaleShiftRenorm(nn.Module):
    """Correct: training output as one per-channel scale and shift, a = w r / sigma_B,
    b = bias + w (d - mu_B r / sigma_B), with r, d detached and mu_B, sigma_B live."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError("BatchRenorm takes (N, C) or (N, C, H, W)")
        if x.size(1) != self.num_features:
            raise ValueError("channel count does not match num_features")
        dims = tuple(i for i in range(x.ndim) if i != 1)
        shape = [1] * x.ndim
        shape[1] = -1
        if self.training:
            if x.numel() == x.size(1):
                raise ValueError("one value per channel: no batch statistics")
            mu = x.mean(dims)
            sigma = torch.sqrt(((x - mu.view(shape)) ** 2).mean(dims) + self.eps)
            r = torch.clamp(sigma.detach() / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mu.detach() - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            scale = self.weight * r / sigma
            shift = self.bias + self.weight * d - mu * scale
            with torch.no_grad():
                m = self.momentum
                self.running_mean.copy_((1 - m) * self.running_mean + m * mu)
                self.running_std.copy_((1 - m) * self.running_std + m * sigma)
        else:
            scale = self.weight / self.running_std
            shift = self.bias - self.running_mean * scale
        return x * scale.view(shape) + shift.view(shape)


def sch_branches(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: explicit branches instead of a clamped progress."""

    def ramp(length, start, end):
        if step <= warmup:
            return start
        if step >= warmup + length:
            return end
        return start + (end - start) * (step - warmup) / length

    return ramp(r_steps, 1.0, rmax_final), ramp(d_steps, 0.0, dmax_final)


ENTRIES = [
    entry(BW, "dx divided by the variance", bw_divides_by_variance,
          "divides dx by std ** 2 (the batch variance) instead of by std."),
    entry(BW, "dbeta from the scaled gradient", bw_dbeta_from_g,
          "dbeta sums g = dout * gamma * r (the gradient reaching x_hat) instead of dout."),
    entry(BW, "returns (dx, dbeta, dgamma)", bw_returns_dbeta_first,
          "returns dbeta before dgamma instead of (dx, dgamma, dbeta)."),
    entry(BW, "sums instead of means in dx", bw_sums_not_means,
          "subtracts the batch sums of g and g * x_hat instead of their means (not divided by N)."),
    entry(BW, "dbeta left as a TODO", bw_dbeta_todo,
          "unfinished: dbeta is left as None (a TODO) while dx and dgamma are right."),
    entry(BW, "eps added to std again", bw_eps_twice,
          "divides dx by sqrt(std**2 + eps) although std already includes eps, so eps is counted twice."),
    entry(BW, "means over the whole array", bw_global_means,
          "takes the two means in dx over the whole array (no axis) instead of over the batch per feature."),
    entry(BW, "keepdims on dgamma and dbeta", bw_keepdims,
          "sums with keepdims=True, so dgamma and dbeta have shape (1, D) instead of (D,) (dx is right)."),
    entry(BR, "momentum hard-coded to 0.01", MomentumHardCoded,
          "the running update uses 0.01 instead of self.momentum, so any other momentum is ignored.", replaces=NAME),
    entry(BR, "no check for one value per channel", NoSingleValueCheck,
          "does not raise ValueError in training when there is only one value per channel (N = 1 for 2-D input).",
          replaces=NAME),
    entry(BR, "r clamped with its bounds swapped", RClampBoundsSwapped,
          "clamps r with min=rmax, max=1/rmax (arguments swapped), so for rmax > 1 every r becomes 1/rmax.",
          replaces=NAME),
    entry(BR, "self.eval used as the mode flag", EvalMethodAsFlag,
          "tests `if self.eval:` (a bound method, always true) instead of `not self.training`, so training mode "
          "also normalises with the running statistics and never updates them.", replaces=NAME),
    entry(BR, "running buffers in float64", BuffersInFloat64,
          "registers running_mean and running_std as float64, so a float32 module returns float64 outputs "
          "(the next float32 layer then fails on the dtype).", replaces=NAME),
    entry(BR, "Python min/max to clip r and d", PythonMinMax,
          "clips r and d with Python's built-in min/max, which cannot compare tensors of several channels "
          "(RuntimeError) instead of torch.clamp.", replaces=NAME),
    entry(BR, "channel count read from the last dimension", ChannelsFromLastDim,
          "checks x.shape[-1] against num_features instead of x.shape[1], so 4-D input with W != C is refused.",
          replaces=NAME),
    entry(BR, "training mode returns (out, (r, d))", ReturnsOutAndRD,
          "copies batch_renorm_forward's return and gives back (out, (r, d)) in training mode instead of the output.",
          replaces=NAME),
    entry(BR, "running statistics updated in eval mode too", UpdatedInEveryMode,
          "computes the batch statistics and updates the running ones before checking the mode, so eval mode "
          "changes running_mean and running_std (and normalises with the updated values).", replaces=NAME),
    entry(SCH, "zero-length ramp finished at the warm-up step", sch_zero_length_inclusive,
          "for a ramp of length 0 it jumps to the final value at step == warmup (>=) instead of after it (>), "
          "so at the last warm-up step the bounds are not (1, 0)."),
    entry(SCH, "zero-length ramp left as a TODO", sch_zero_length_todo,
          "unfinished: a ramp of length 0 (r_steps or d_steps = 0) raises NotImplementedError."),
    entry(SCH, "progress rounded to 0.1", sch_rounded_progress,
          "rounds the progress to one decimal, so the bounds rise in ten steps instead of linearly."),
    entry(SCH, "rmax ramps geometrically", sch_geometric_rmax,
          "rmax = rmax_final ** progress (geometric from 1 to rmax_final) instead of rising linearly."),
    entry(SCH, "ramp length minus one", sch_length_minus_one,
          "divides by the ramp length - 1, so both ramps reach their final values one step early (and a ramp of "
          "length 1 divides by zero)."),
    right(BW, "autograd on a rebuilt input", bw_autograd_rebuilt),
    right(BR, "folded per-channel scale and shift", FoldedScaleShiftRenorm, replaces=NAME),
    right(SCH, "explicit branches", sch_branches),
]
