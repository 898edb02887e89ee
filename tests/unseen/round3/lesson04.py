"""Held-out answers (third set), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -------------------------------------------------------


def bw_r_dropped(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma  # r forgotten
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_gamma_dropped(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dbeta_over_features(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=1)


def bw_projection_sign(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) + x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_mean_term_dropped(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_r_twice(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) * r / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dout_scaled_in_place(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout
    g *= gamma * r  # scales the caller's dout
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm -------------------------------------------------------------------


class _Renorm(nn.Module):
    """A right implementation in a learner's style; each wrong entry changes one piece."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _check(self, x):
        if x.dim() not in (2, 4):
            raise ValueError("expected 2-D or 4-D input")
        if x.shape[1] != self.num_features:
            raise ValueError("wrong number of channels")

    def _rd(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)

    def _eval(self, x, view):
        x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return x_hat * self.weight.view(view) + self.bias.view(view)

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("need more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        r, d = self._rd(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class BatchStatsInEval(_Renorm):
    def _eval(self, x, view):
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        mean, std = x.mean(dims), torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        x_hat = (x - mean.view(view)) / std.view(view)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class DAfterAffine(_Renorm):
    def forward(self, x):
        self._check(x)
        if not self.training:
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        r, d = self._rd(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view)
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view) + d.view(view)


class DClampedWithRmax(_Renorm):
    def _rd(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.rmax, self.rmax)
        return r, d


class UpdateSignFlipped(_Renorm):
    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean -= self.momentum * (mean - self.running_mean)
            self.running_std -= self.momentum * (std - self.running_std)


class EvalWithoutWeight(_Renorm):
    def _eval(self, x, view):
        x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return x_hat + self.bias.view(view)


class DNotDetached(_Renorm):
    def _rd(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
        d = ((mean - self.running_mean.clone()) / self.running_std.clone()).clamp(-self.dmax, self.dmax)
        return r, d


class RDNotReshaped(_Renorm):
    def forward(self, x):
        self._check(x)
        if not self.training:
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        r, d = self._rd(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view) * r + d  # r, d: shape (C,)
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class ThreeDAccepted(_Renorm):
    def _check(self, x):
        if x.shape[1] != self.num_features:
            raise ValueError("wrong number of channels")

    def forward(self, x):
        self._check(x)
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, view)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        r, d = self._rd(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class DefaultRmaxThree(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=3.0, dmax=5.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)


class RunningMeanParameter(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        del self.running_mean
        self.running_mean = nn.Parameter(torch.zeros(num_features))  # "it is learned too"


class DWithoutRunningStd(_Renorm):
    def _rd(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
            d = (mean - self.running_mean).clamp(-self.dmax, self.dmax)  # "in units of x"
        return r, d


# ---- renorm_schedule -------------------------------------------------------------


def _p(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_dmax_from_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps)
    dmax = 1.0 + (dmax_final - 1.0) * _p(step, warmup, d_steps)
    return rmax, dmax


def sch_returned_swapped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps)
    dmax = dmax_final * _p(step, warmup, d_steps)
    return dmax, rmax


def sch_cosine(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def smooth(length):
        return 0.5 - 0.5 * math.cos(math.pi * _p(step, warmup, length))

    return 1.0 + (rmax_final - 1.0) * smooth(r_steps), dmax_final * smooth(d_steps)


def sch_rmax_overshoot(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    return 1.0 + rmax_final * _p(step, warmup, r_steps), dmax_final * _p(step, warmup, d_steps)


def sch_dmax_not_capped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps)
    dmax = dmax_final * max(0.0, (step - warmup) / d_steps)
    return rmax, dmax


def sch_length_plus_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps + 1)
    dmax = dmax_final * _p(step, warmup, d_steps + 1)
    return rmax, dmax


def sch_warmup_ignored(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    return 1.0 + (rmax_final - 1.0) * _p(step, 0, r_steps), dmax_final * _p(step, 0, d_steps)


# ---- correct alternatives ----------------------------------------------------------


def bw_factored(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.einsum("ij,ij->j", dout, y_hat)
    s1, s2 = dbeta, np.einsum("ij,ij->j", dout, x_hat)
    dx = (gamma * r / (n * std)) * (n * dout - s1 - x_hat * s2)
    return dx, dgamma, dbeta


class FunctionalRenorm(nn.Module):
    """x_hat from F.batch_norm (training=True, no running statistics), r and d from
    detached statistics, buffers updated with lerp_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError("expected (N, C) or (N, C, H, W) with num_features channels")
        shape = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            scale = self.weight / self.running_std
            return x * scale.view(shape) + (self.bias - self.running_mean * scale).view(shape)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("need more than one value per channel")
        x_hat = F.batch_norm(x, None, None, training=True, eps=self.eps)
        dims = [d for d in range(x.dim()) if d != 1]
        with torch.no_grad():
            mean = x.mean(dims)
            std = (x.var(dims, correction=0) + self.eps).sqrt()
            r = torch.minimum(torch.maximum(std / self.running_std, torch.full_like(std, 1 / self.rmax)),
                              torch.full_like(std, self.rmax))
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(std, self.momentum)
        y = x_hat * r.view(shape) + d.view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape)


def sch_interp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def ramp(length, start, end):
        if length <= 0:
            return end if step > warmup else start
        return float(np.interp(step, [warmup, warmup + length], [start, end]))

    return ramp(r_steps, 1.0, rmax_final), ramp(d_steps, 0.0, dmax_final)


ENTRIES = [
    entry(BW, "r left out of dx", bw_r_dropped,
          "the gradient reaching x_hat is dout * gamma without the factor r."),
    entry(BW, "gamma left out of dx", bw_gamma_dropped,
          "the gradient reaching x_hat is dout * r without the factor gamma."),
    entry(BW, "dbeta summed over the features", bw_dbeta_over_features,
          "dbeta sums dout over axis 1 (features) instead of axis 0 (the batch)."),
    entry(BW, "sign of the projection term", bw_projection_sign,
          "adds x_hat * mean(g * x_hat) instead of subtracting it."),
    entry(BW, "mean term dropped", bw_mean_term_dropped,
          "leaves out the - mean(g) term (the branch through the batch mean) in dx."),
    entry(BW, "r applied twice", bw_r_twice,
          "multiplies dx by r again although g = dout * gamma * r already contains it."),
    entry(BW, "dout scaled in place", bw_dout_scaled_in_place,
          "multiplies dout by gamma * r in place (g = dout; g *= ...), changing the caller's dout."),
    entry(BR, "batch statistics in eval mode", BatchStatsInEval,
          "in eval mode it normalises with the batch's mean and standard deviation instead of running_mean and running_std.", replaces=NAME),
    entry(BR, "d added after the affine map", DAfterAffine,
          "adds d after weight and bias (x_hat * r * weight + bias + d) instead of before: y = (x_hat * r + d) * weight + bias.", replaces=NAME),
    entry(BR, "d clipped with rmax", DClampedWithRmax,
          "clips d to [-rmax, rmax] instead of [-dmax, dmax] (a typo), so d is not forced to 0 when dmax = 0.", replaces=NAME),
    entry(BR, "running update with the wrong sign", UpdateSignFlipped,
          "subtracts momentum * (batch - running) from the running statistics instead of adding it, so they move away from the batch statistics.", replaces=NAME),
    entry(BR, "weight left out in eval mode", EvalWithoutWeight,
          "in eval mode it adds the bias but never multiplies by weight.", replaces=NAME),
    entry(BR, "d not detached", DNotDetached,
          "computes r under torch.no_grad but d outside it, so gradients flow through d (through the batch mean) although d must be a constant.", replaces=NAME),
    entry(BR, "r and d not reshaped for 4-D input", RDNotReshaped,
          "multiplies by r and adds d of shape (C,) without viewing them as (1, C, 1, 1), so for 4-D input they broadcast along the width (wrong, or an error unless W == C).", replaces=NAME),
    entry(BR, "3-D input accepted", ThreeDAccepted,
          "does not refuse 3-D input (it should raise ValueError): (N, C, L) is reduced over dim 0 only.", replaces=NAME),
    entry(BR, "default rmax 3 and dmax 5", DefaultRmaxThree,
          "the constructor defaults are rmax=3.0, dmax=5.0 (the schedule's final values) instead of rmax=1.0, dmax=0.0, so a default module is not plain batch norm at the start.", replaces=NAME),
    entry(BR, "running_mean as a Parameter", RunningMeanParameter,
          "registers running_mean as an nn.Parameter instead of a buffer, so it is listed among the parameters (an optimizer would train it) and requires grad.", replaces=NAME),
    entry(BR, "d not divided by running_std", DWithoutRunningStd,
          "d = mean - running_mean, not divided by running_std.", replaces=NAME),
    entry(SCH, "dmax ramps from 1", sch_dmax_from_one,
          "dmax ramps from 1 to dmax_final like rmax, instead of from 0."),
    entry(SCH, "returns (dmax, rmax)", sch_returned_swapped,
          "returns the two bounds in the wrong order, (dmax, rmax)."),
    entry(SCH, "cosine ramp", sch_cosine,
          "ramps along a half cosine instead of linearly between the start and the final value."),
    entry(SCH, "rmax ends at rmax_final + 1", sch_rmax_overshoot,
          "rmax = 1 + rmax_final * progress instead of 1 + (rmax_final - 1) * progress, so it ends at rmax_final + 1."),
    entry(SCH, "dmax not capped", sch_dmax_not_capped,
          "clamps the progress of dmax at 0 but not at 1, so dmax keeps growing past dmax_final."),
    entry(SCH, "ramp one step too long", sch_length_plus_one,
          "divides by the ramp length + 1, so both ramps are one step too long and reach their final values one step late."),
    entry(SCH, "warm-up ignored", sch_warmup_ignored,
          "ignores the warm-up: the ramps start at step 0 instead of at step warmup."),
    right(BW, "factored N * dout form", bw_factored),
    right(BR, "F.batch_norm, lerp_, folded eval", FunctionalRenorm, replaces=NAME),
    right(SCH, "np.interp", sch_interp),
]
