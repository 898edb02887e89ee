"""Held-out answers, lesson 04: batch_renorm_backward, BatchRenorm, renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, RS = "batch_renorm_backward", "batch_renorm", "renorm_schedule"

# cache of the given batch_renorm_forward: (x_hat, y_hat, std, r, gamma)


def bw_dgamma_x_hat(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def bw_divides_by_r(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma / r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_through_r(dout, cache):
    # x_hat * r = (x - mu) / sigma_B * sigma_B / sigma = (x - mu) / sigma:
    # the batch std cancels, only the mean branch is left
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma
    dx = r / std * (g - g.mean(axis=0))
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_mean_over_features(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=1, keepdims=True)
          - x_hat * (g * x_hat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_n_minus_1(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) / (n - 1) - x_hat * (g * x_hat).sum(axis=0) / (n - 1)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_no_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


# ---- BatchRenorm -------------------------------------------------------------------------


class _RenormInit(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _dims(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected 2D or 4D input, got {x.dim()}D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        if self.training and x.numel() // x.shape[1] < 2:
            raise ValueError("training needs more than 1 value per channel")
        return ([0], [1, -1]) if x.dim() == 2 else ([0, 2, 3], [1, -1, 1, 1])


class RClippedFromZero(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 0.0, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class DOneSided(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, 0.0, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class RNotDetached(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
        d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class AveragesVariance(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        var = x.var(dims, correction=0)
        std = torch.sqrt(var + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (var - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class UpdateBeforeRD(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class UnbiasedBatchStd(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class EvalSqrtOfStd(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            x_hat = (x - self.running_mean.view(v)) / torch.sqrt(self.running_std.view(v) + self.eps)
            return x_hat * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class MomentumReversed(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean.copy_(self.momentum * self.running_mean + (1 - self.momentum) * mean)
            self.running_std.copy_(self.momentum * self.running_std + (1 - self.momentum) * std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class BoundsAsBuffers(_RenormInit):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        del self.rmax, self.dmax
        # saved with the model, so a checkpoint resumes the schedule
        self.register_buffer("rmax", torch.tensor(float(rmax)))
        self.register_buffer("dmax", torch.tensor(float(dmax)))

    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.minimum(torch.maximum(std / self.running_std, 1 / self.rmax), self.rmax)
            d = torch.minimum(torch.maximum((mean - self.running_mean) / self.running_std, -self.dmax), self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class StatsOverDim0Only(_RenormInit):
    def forward(self, x):
        self._dims(x)
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(0)
        std = torch.sqrt(x.var(0, correction=0) + self.eps)
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean) / std * r + d
        return y * self.weight.view(v) + self.bias.view(v)


class EpsOutsideSqrt(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        std = x.var(dims, correction=0).sqrt() + self.eps
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


class RunningStdWithoutEps(_RenormInit):
    def forward(self, x):
        dims, v = self._dims(x)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dims)
        var = x.var(dims, correction=0)
        std = torch.sqrt(var + self.eps)
        with torch.no_grad():
            sigma_b = var.sqrt()  # the batch's own standard deviation
            r = torch.clamp(sigma_b / self.running_std, 1 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma_b - self.running_std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        return y * self.weight.view(v) + self.bias.view(v)


# ---- schedule ------------------------------------------------------------------------------


def sched_unclamped_below(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    pr = min(1.0, (step - warmup) / r_steps)
    pd = min(1.0, (step - warmup) / d_steps)
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sched_swapped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    pr = min(1.0, (step - warmup) / d_steps)
    pd = min(1.0, (step - warmup) / r_steps)
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sched_rmax_from_zero(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    pr = min(1.0, (step - warmup) / r_steps)
    pd = min(1.0, (step - warmup) / d_steps)
    return max(1.0, rmax_final * pr), dmax_final * pd


def sched_from_step_zero(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step < warmup:
        return 1.0, 0.0
    pr = min(1.0, step / (warmup + r_steps))
    pd = min(1.0, step / (warmup + d_steps))
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sched_integer_division(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    pr = min(1, (step - warmup) // r_steps)
    pd = min(1, (step - warmup) // d_steps)
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sched_one_step_late(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    pr = min(1.0, (step - warmup - 1) / r_steps)  # the first step after warmup is step 0 of the ramp
    pd = min(1.0, (step - warmup - 1) / d_steps)
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


# ---- correct alternatives --------------------------------------------------------------


def bw_staged(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    dx_hat = dout * gamma * r  # y_hat = x_hat * r + d, r and d constants
    # x_hat = xc / std, std = sqrt(var + eps), var = mean(xc^2), xc = x - mu
    xc = x_hat * std
    dvar = -0.5 * np.sum(dx_hat * xc, axis=0) / std**3
    dxc = dx_hat / std + 2.0 * xc * dvar / n
    dx = dxc - dxc.mean(axis=0)
    return dx, dgamma, dbeta


class RenormVarMean(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.rmax = rmax
        self.dmax = dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) or (N, {self.num_features}, H, W), got {tuple(x.shape)}")
        cols = x.movedim(1, -1).reshape(-1, self.num_features)  # (values, C)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        w, b = self.weight.reshape(shape), self.bias.reshape(shape)
        if not self.training:
            return torch.addcmul(b, (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape), w)
        if cols.shape[0] < 2:
            raise ValueError("BatchRenorm needs at least 2 values per channel in training")
        var, mean = torch.var_mean(cols, dim=0, unbiased=False)
        std = (var + self.eps).sqrt()
        r = (std.detach() / self.running_std).clamp(min=1.0 / self.rmax, max=self.rmax)
        d = ((mean.detach() - self.running_mean) / self.running_std).clamp(min=-self.dmax, max=self.dmax)
        y = (x - mean.reshape(shape)) * (r / std).reshape(shape) + d.reshape(shape)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(std, self.momentum)
        return y * w + b


def sched_clip(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def ramp(length):
        if length <= 0:
            return float(step > warmup)
        return float(np.clip((step - warmup) / length, 0.0, 1.0))

    return 1.0 + ramp(r_steps) * (rmax_final - 1.0), ramp(d_steps) * dmax_final


ENTRIES = [
    entry(BW, "dgamma from x_hat", bw_dgamma_x_hat,
          "dgamma sums dout * x_hat instead of dout * (x_hat * r + d), the value gamma multiplies."),
    entry(BW, "divides by r", bw_divides_by_r,
          "the gradient reaching x_hat divides by r instead of multiplying by it."),
    entry(BW, "differentiates through r", bw_through_r,
          "treats r = sigma_B / sigma as a function of x, so sigma_B cancels and the variance branch is lost; r and d must be held constant."),
    entry(BW, "means over the features", bw_mean_over_features,
          "the batch means in dx are taken over axis 1 (features) instead of axis 0 (the batch)."),
    entry(BW, "sums divided by N - 1", bw_n_minus_1,
          "divides the two batch sums in dx by N - 1 instead of N."),
    entry(BW, "dx not divided by the batch std", bw_no_std,
          "forgets to divide dx by sigma_B (the batch standard deviation)."),
    entry(BR, "r clipped to [0, rmax]", RClippedFromZero,
          "clips r to [0, rmax] instead of [1/rmax, rmax], so with rmax = 1 r is not forced to 1.",
          replaces="BatchRenorm"),
    entry(BR, "d clipped to [0, dmax]", DOneSided,
          "clips d to [0, dmax] instead of [-dmax, dmax], so negative corrections are lost.",
          replaces="BatchRenorm"),
    entry(BR, "r and d not detached", RNotDetached,
          "computes r and d from the batch statistics without detaching them (outside torch.no_grad), so autograd treats them as functions of x: gradients flow through r and d, or backward fails because the running buffers r and d read are then updated in place.",
          replaces="BatchRenorm"),
    entry(BR, "running_std averages the variance", AveragesVariance,
          "updates running_std with the batch variance instead of the batch standard deviation.",
          replaces="BatchRenorm"),
    entry(BR, "running statistics updated before r and d", UpdateBeforeRD,
          "updates running_mean and running_std before computing r and d, which must use the old values.",
          replaces="BatchRenorm"),
    entry(BR, "unbiased batch variance", UnbiasedBatchStd,
          "sigma_B uses torch's default unbiased variance (N - 1) instead of the biased one.",
          replaces="BatchRenorm"),
    entry(BR, "eval mode takes sqrt of running_std", EvalSqrtOfStd,
          "in eval mode divides by sqrt(running_std + eps), treating the running standard deviation as a variance.",
          replaces="BatchRenorm"),
    entry(BR, "momentum weights the old value", MomentumReversed,
          "updates running = momentum * running + (1 - momentum) * batch, giving the new batch weight 1 - momentum.",
          replaces="BatchRenorm"),
    entry(BR, "rmax and dmax as buffers", BoundsAsBuffers,
          "stores rmax and dmax as tensor buffers, not plain attributes, so setting m.rmax = 2.0 raises TypeError.",
          replaces="BatchRenorm"),
    entry(BR, "(N, C, H, W) reduced over N only", StatsOverDim0Only,
          "reduces over dim 0 only, so 4-D input gets per-(C, H, W) statistics and the (C,) running buffers fail to update.",
          replaces="BatchRenorm"),
    entry(BR, "eps added to the batch std", EpsOutsideSqrt,
          "sigma_B = sqrt(var) + eps instead of sqrt(var + eps).",
          replaces="BatchRenorm"),
    entry(BR, "r and running_std from sqrt(var) without eps", RunningStdWithoutEps,
          "uses sqrt(var) without eps for r and the running_std update, while normalising with sqrt(var + eps): sigma_B must be the same sqrt(var + eps) everywhere.",
          replaces="BatchRenorm"),
    entry(RS, "progress not clamped at 0", sched_unclamped_below,
          "does not clamp the progress below 0, so before the warmup ends rmax < 1 and dmax < 0."),
    entry(RS, "r_steps and d_steps swapped", sched_swapped,
          "ramps rmax over d_steps and dmax over r_steps."),
    entry(RS, "rmax ramps from 0", sched_rmax_from_zero,
          "ramps rmax as rmax_final * progress (from 0, floored at 1) instead of from 1 to rmax_final."),
    entry(RS, "ramp counted from step 0", sched_from_step_zero,
          "measures the ramp from step 0 over warmup + steps, so the bounds jump at the end of the warmup and reach the final values at the right step only."),
    entry(RS, "integer division", sched_integer_division,
          "uses integer division (//) for the progress, so the bounds jump from start to final value instead of rising linearly."),
    entry(RS, "ramp one step late", sched_one_step_late,
          "counts the ramp from step warmup + 1 (progress (step - warmup - 1) / steps), so every value lags one step and the final values come one step late."),
    right(BW, "staged chain with r", bw_staged),
    right(BR, "var_mean, lerp_ and movedim", RenormVarMean, replaces="BatchRenorm"),
    right(RS, "np.clip ramp", sched_clip),
]
