"""Held-out answers (twenty-fifth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_torch_tensors(dout, cache):
    # torch habit: do the algebra on tensors (shared memory, no copies)
    x_hat, y_hat, std, r, gamma = (torch.from_numpy(np.asarray(a)) for a in cache)
    dout = torch.from_numpy(np.asarray(dout))
    dbeta = dout.sum(0)
    dgamma = (dout * y_hat).sum(0)
    g = dout * gamma * r
    dx = (g - g.mean(0) - x_hat * (g * x_hat).mean(0)) / std
    return dx, dgamma, dbeta


def bw_projection_float32(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    proj = np.mean(g * x_hat, axis=0, dtype=np.float32)  # accumulate in float32 to save memory
    dx = (g - g.mean(axis=0) - x_hat * proj) / std
    return dx, dgamma, dbeta


def bw_mean_term_n_minus_1(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) / (n - 1) - x_hat * (g * x_hat).sum(axis=0) / n) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
    """A right learner's module in small methods; each wrong entry overrides one."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self._bounds(rmax, dmax)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._buffers_init()

    def _bounds(self, rmax, dmax):
        self.rmax = rmax
        self.dmax = dmax

    def _buffers_init(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_std", torch.ones(self.num_features))

    def _validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): got {x.shape[1]} channels")

    def _normalise(self, x):
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        return x_hat * self.weight.view(view) + self.bias.view(view)

    def forward(self, x):
        self._validate(x)
        return self._normalise(x)


class ChannelsNotMovedForRows(_Renorm):
    """Batch statistics taken on x.reshape(-1, C), channels not moved last first."""

    def _normalise(self, x):
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        rows = x.reshape(-1, self.num_features)  # (values, C)
        mean = rows.mean(0)
        std = torch.sqrt(rows.var(0, correction=0) + self.eps)
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class AffineWithoutView(_Renorm):
    """weight and bias applied as x_hat * self.weight + self.bias, without the per-channel view."""

    def _normalise(self, x):
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight + self.bias
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        return x_hat * self.weight + self.bias


class WeightStartsAtZero(_Renorm):
    """The weight line copied from the bias line: created with torch.zeros."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.weight = nn.Parameter(torch.zeros(num_features))


# ---- renorm_schedule ------------------------------------------------------------------


def sch_floor_division(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) // length))

    rmax = 1.0 + (rmax_final - 1.0) * progress(r_steps)
    dmax = dmax_final * progress(d_steps)
    return rmax, dmax


def sch_no_lower_clamp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, (step - warmup) / length)

    rmax = 1.0 + (rmax_final - 1.0) * progress(r_steps)
    dmax = dmax_final * progress(d_steps)
    return rmax, dmax


def sch_ramp_lengths_swapped(step, warmup, d_steps, r_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    rmax = 1.0 + (rmax_final - 1.0) * progress(r_steps)
    dmax = dmax_final * progress(d_steps)
    return rmax, dmax


def sch_three_branches(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: each ramp as three branches (before its start, past its end, in between)."""
    bounds = []
    for length, start, final in ((r_steps, 1.0, rmax_final), (d_steps, 0.0, dmax_final)):
        if step <= warmup:
            bounds.append(start)
        elif step >= warmup + length:
            bounds.append(final)
        else:
            bounds.append(start + (final - start) * (step - warmup) / length)
    return tuple(bounds)


ENTRIES = [
    entry(BW, "computed and returned as torch tensors", bw_torch_tensors,
          cause="the cache and dout are turned into torch tensors with torch.from_numpy and dx, dgamma and dbeta "
                "are returned as torch tensors, not NumPy arrays as the NumPy exercise asks; their values are "
                "right."),
    entry(BW, "projection mean accumulated with dtype=np.float32", bw_projection_float32,
          cause="the projection mean (g * x_hat).mean is taken with np.mean(..., dtype=np.float32), so that term "
                "is rounded to float32 and dx is off by about 1e-7 relative in float64; the mean term, dgamma "
                "and dbeta are right."),
    entry(BW, "mean term divided by N - 1", bw_mean_term_n_minus_1,
          cause="the mean term of dx is g.sum(axis=0) / (n - 1) instead of / n, so dx no longer sums to zero "
                "over the batch (off by sum(g) / (N (N - 1)) / std per feature); the projection term, dgamma "
                "and dbeta are right."),
    entry(BR, "statistics on x.reshape(-1, C) without moving the channels", ChannelsNotMovedForRows,
          replaces=NAME,
          cause="in training mode the batch statistics are taken on x.reshape(-1, C) without moving the channel "
                "axis last first, so for (N, C, H, W) inputs each 'channel' column mixes values of different "
                "channels and positions: the 4-D mean, std, r, d and running statistics are wrong; 2-D inputs "
                "and eval mode are right."),
    entry(BR, "weight and bias applied without the per-channel view", AffineWithoutView, replaces=NAME,
          cause="weight and bias are applied as x_hat * self.weight + self.bias without the per-channel view, so "
                "for (N, C, H, W) inputs they broadcast along the last (width) axis: RuntimeError unless W == C, "
                "and silently per-column instead of per-channel when W == C; 2-D inputs are right."),
    entry(BR, "weight created with torch.zeros (bias line copied)", WeightStartsAtZero, replaces=NAME,
          cause="the weight parameter is created with torch.zeros (the bias line copied) instead of torch.ones, "
                "so a fresh module outputs the bias (zeros) for every input and no gradient reaches the input; "
                "the running statistics and r and d are right."),
    entry(SCH, "progress by floor division (step - warmup) // length", sch_floor_division,
          cause="the ramp progress is (step - warmup) // length, floor division, so it stays 0 for the whole "
                "ramp and jumps to 1 at its end instead of rising linearly; warm-up, zero-length ramps and "
                "steps past the ramps are right."),
    entry(SCH, "progress clamped from above only", sch_no_lower_clamp,
          cause="the progress is min(1, (step - warmup) / length) without max(0, ...), so during the warm-up it "
                "is negative and rmax falls below 1 and dmax below 0; after the warm-up it is right."),
    entry(SCH, "r_steps and d_steps swapped in the signature", sch_ramp_lengths_swapped,
          cause="the signature lists the ramp lengths as (step, warmup, d_steps, r_steps), swapped, so the rmax "
                "ramp runs over the d length and the dmax ramp over the r length whenever the two differ; with "
                "equal lengths it is right."),
    right(SCH, "three branches per ramp in one loop", sch_three_branches),
]
