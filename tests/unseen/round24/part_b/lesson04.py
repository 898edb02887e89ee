"""Held-out answers (twenty-fourth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_lesson02_shortcut_reused(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    # lesson 02's compact form: dx = gamma / (N std) * (N dout - dbeta - x_hat * dgamma), with gamma * r
    dx = (gamma * r) / (n * std) * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def bw_feature_loop_over_batch(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dx = np.zeros_like(dout)
    centring = np.eye(n) - 1.0 / n
    for j in range(len(dout)):  # one feature at a time
        g = dout[:, j] * gamma[j] * r[j]
        jac = centring - np.outer(x_hat[:, j], x_hat[:, j]) / n
        dx[:, j] = jac @ g / std[j]
    return dx, dgamma, dbeta


def bw_r_index_off_by_one(dout, cache):
    x_hat, y_hat, std, gamma = cache[0], cache[1], cache[2], cache[4]
    r = cache[2]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
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


class BoundsAsFrozenParameters(_Renorm):
    """rmax and dmax registered as nn.Parameter(torch.tensor(...), requires_grad=False)."""

    def _bounds(self, rmax, dmax):
        self.rmax = nn.Parameter(torch.tensor(float(rmax)), requires_grad=False)
        self.dmax = nn.Parameter(torch.tensor(float(dmax)), requires_grad=False)


class RankCheckWithOr(_Renorm):
    """Rank check written `x.dim() != 2 or x.dim() != 4`."""

    def _validate(self, x):
        if x.dim() != 2 or x.dim() != 4:
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): got {x.shape[1]} channels")


class TwoDLiftedNotRestored(_Renorm):
    """(N, C) input lifted to (N, C, 1, 1) so that one 4-D code path serves both; not flattened back."""

    def forward(self, x):
        self._validate(x)
        if x.dim() == 2:
            x = x[:, :, None, None]
        return self._normalise(x)


class BuffersFromIntLists(_Renorm):
    """Buffers built as torch.tensor([0] * C) and torch.tensor([1] * C)."""

    def _buffers_init(self):
        self.register_buffer("running_mean", torch.tensor([0] * self.num_features))
        self.register_buffer("running_std", torch.tensor([1] * self.num_features))


class ChannelRowsScaleShift(nn.Module):
    """Correct: channels as rows (transpose(0, 1).flatten(1)), sigma_B via std(correction=0) then
    hypot with sqrt(eps), r and d from .data, clipping with torch.minimum / torch.maximum against tensors,
    buffers moved with mul_/add_, eval as one per-channel scale and shift."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm: rank {x.dim()} not supported, give (N, C) or (N, C, H, W)")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"BatchRenorm: {c} channels given, {self.num_features} expected")
        shape = (1, c) + (1,) * (x.dim() - 2)
        if not self.training:
            scale = self.weight / self.running_std
            shift = self.bias - self.running_mean * scale
            return x * scale.reshape(shape) + shift.reshape(shape)
        rows = x.transpose(0, 1).flatten(1)  # (C, values)
        if rows.shape[1] < 2:
            raise ValueError("BatchRenorm: one value per channel in training")
        mu = rows.mean(1)
        sigma = torch.hypot(rows.std(1, correction=0), torch.tensor(self.eps, dtype=x.dtype).sqrt())
        lo = torch.full_like(sigma, 1.0 / self.rmax)
        hi = torch.full_like(sigma, float(self.rmax))
        r = torch.minimum(torch.maximum(sigma.data / self.running_std, lo), hi)
        d_raw = (mu.data - self.running_mean) / self.running_std
        d = torch.minimum(torch.maximum(d_raw, torch.full_like(d_raw, -self.dmax)),
                          torch.full_like(d_raw, float(self.dmax)))
        y = (x - mu.reshape(shape)) / sigma.reshape(shape) * r.reshape(shape) + d.reshape(shape)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mu)
            self.running_std.mul_(1 - self.momentum).add_(self.momentum * sigma)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


# ---- renorm_schedule ------------------------------------------------------------------


def sch_zero_length_as_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        return min(1.0, max(0.0, (step - warmup) / max(length, 1)))  # max(length, 1): no division by 0

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_dmax_towards_rmax_final(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    rmax = 1.0 + (rmax_final - 1.0) * progress(r_steps)
    dmax = rmax_final * progress(d_steps)
    return rmax, dmax


def sch_strict_warmup_zero_ramp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step < warmup:
        return 1.0, 0.0
    if step > warmup + r_steps:
        rmax = rmax_final
    else:
        rmax = 1.0 + (rmax_final - 1.0) * (step - warmup) / r_steps
    if step > warmup + d_steps:
        dmax = dmax_final
    else:
        dmax = dmax_final * (step - warmup) / d_steps
    return rmax, dmax


def sch_median_clamp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: progress clamped as the median of (0, p, 1); a ramp of no length as float(step > warmup)."""
    def share(length):
        if length > 0:
            return sorted((0.0, (step - warmup) / length, 1.0))[1]
        return float(step > warmup)

    return 1.0 + share(r_steps) * (rmax_final - 1.0), share(d_steps) * dmax_final


ENTRIES = [
    entry(BW, "lesson 02's compact form with its dgamma and dbeta reused", bw_lesson02_shortcut_reused,
          cause="dx is written as lesson 02's compact form (gamma * r) / (N * std) * (N * dout - dbeta - x_hat * "
                "dgamma), reusing this function's dgamma, which is sum(dout * y_hat) = r * sum(dout * x_hat) + "
                "d * sum(dout), where sum(dout * x_hat) is needed, so the projection term is wrong wherever r != 1 "
                "or d != 0; dgamma and dbeta are right."),
    entry(BW, "per-feature Jacobian loop over range(len(dout))", bw_feature_loop_over_batch,
          cause="the loop over features runs over range(len(dout)), the batch size N, instead of the number of "
                "features D, so with N > D it raises IndexError and with N < D the last D - N features of dx are "
                "left at zero; with N == D, and dgamma and dbeta always, it is right."),
    entry(BW, "r read as cache[2] (the std), off by one", bw_r_index_off_by_one,
          cause="r is read from the cache by index as cache[2], which is the batch std, instead of cache[3], so "
                "dx is scaled by std / r too much per feature; dgamma and dbeta are right."),
    entry(BR, "rmax and dmax registered as frozen nn.Parameters", BoundsAsFrozenParameters, replaces=NAME,
          cause="rmax and dmax are stored as nn.Parameter(torch.tensor(value), requires_grad=False), so assigning "
                "a new float bound (as the training loop does, m.rmax = 2.0) raises TypeError, and the bounds "
                "are listed among the module's parameters and state_dict; the forward pass with the bounds given "
                "at construction is right."),
    entry(BR, "rank check `x.dim() != 2 or x.dim() != 4`", RankCheckWithOr, replaces=NAME,
          cause="the rank check is `if x.dim() != 2 or x.dim() != 4: raise ValueError`, `or` where `and` was meant, "
                "which is true for every input, so every (N, C) and (N, C, H, W) input is refused with "
                "ValueError."),
    entry(BR, "(N, C) lifted to (N, C, 1, 1) and not flattened back", TwoDLiftedNotRestored, replaces=NAME,
          cause="a 2-D input is reshaped to (N, C, 1, 1) so that the 4-D code path serves both ranks, and the "
                "output is not reshaped back, so a (N, C) input returns a (N, C, 1, 1) output (values, gradients "
                "and buffers right); 4-D inputs are right."),
    entry(BR, "buffers built from Python int lists (int64)", BuffersFromIntLists, replaces=NAME,
          cause="running_mean and running_std are made with torch.tensor([0] * C) and torch.tensor([1] * C), "
                "which are int64 tensors (and .double() leaves them int64), so the in-place running update of a "
                "float batch statistic raises RuntimeError (result type can't be cast to Long) at the first "
                "training step; eval mode before training is right."),
    right(BR, "channel rows, std(correction=0) hypot sqrt(eps), .data, minimum/maximum clips, scale and shift eval",
          ChannelRowsScaleShift, replaces=NAME),
    entry(SCH, "zero-length ramp guarded with max(length, 1)", sch_zero_length_as_one,
          cause="the division by the ramp length is guarded with max(length, 1), so a ramp of 0 steps becomes a "
                "ramp of 1 step instead of jumping to its final value right after step warmup: with an integer "
                "warm-up it is right at integer steps, but with a fractional warm-up (12.5 from set_bounds' "
                "scaling) step 13 gets half-way values; ramps of positive length are right."),
    entry(SCH, "dmax ramps towards rmax_final (name typo)", sch_dmax_towards_rmax_final,
          cause="the dmax line multiplies the d progress by rmax_final instead of dmax_final, so dmax ramps from 0 "
                "to rmax_final (3 by default) instead of dmax_final; rmax and the timing of both ramps are right."),
    entry(SCH, "warm-up tested `step < warmup`, 0-step ramp divides by zero at step == warmup",
          sch_strict_warmup_zero_ramp,
          cause="the warm-up test is `step < warmup`, so step == warmup reaches the ramp formula, which divides "
                "(step - warmup) by the ramp length: for a ramp of 0 steps this raises ZeroDivisionError exactly "
                "at step == warmup; every other step, and every ramp of positive length, is right."),
    right(SCH, "median-of-three clamp, float(step > warmup) for a ramp of no length", sch_median_clamp),
]
