"""Held-out answers (twelfth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_r_missing_in_projection(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    proj = (dout * gamma * x_hat).mean(axis=0)
    dx = (g - g.mean(axis=0) - x_hat * proj) / std
    return dx, dgamma, dbeta


def bw_cache_hats_swapped(dout, cache):
    y_hat, x_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_projection_with_r(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * r * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_staged_std_power(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    xmu = x_hat * std
    dvar = np.sum(g * xmu, axis=0) * -0.5 * std ** -1.5
    dmu = -np.sum(g, axis=0) / std + dvar * -2.0 * xmu.mean(axis=0)
    dx = g / std + dvar * 2.0 * xmu / n + dmu / n
    return dx, dgamma, dbeta


def bw_staged(dout, cache):
    """Staged backward through the variance (correct)."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    xmu = x_hat * std
    dvar = np.sum(g * xmu, axis=0) * -0.5 * std ** -3
    dmu = -np.sum(g, axis=0) / std + dvar * -2.0 * xmu.mean(axis=0)
    dx = g / std + dvar * 2.0 * xmu / n + dmu / n
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps, self.momentum, self.rmax, self.dmax = eps, momentum, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _moments(self, x, dims):
        return x.mean(dims), torch.sqrt(x.var(dims, unbiased=False) + self.eps)

    def _rd(self, mean, std):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)

    def _eval(self, x, view):
        return (x - self.running_mean.view(view)) / self.running_std.view(view)

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm takes 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        view = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than one value per channel in training")
            mean, std = self._moments(x, dims)
            r, d = self._rd(mean, std)
            y = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            self._update(mean, std)
        else:
            y = self._eval(x, view)
        return y * self.weight.view(view) + self.bias.view(view)


class MeanDetached(_Renorm):
    def _moments(self, x, dims):
        mean = x.detach().mean(dims)
        return mean, torch.sqrt(x.var(dims, unbiased=False) + self.eps)


class UpdatedTwice(_Renorm):
    def forward(self, x):
        out = super().forward(x)
        if self.training:  # left over from a first version that updated after the call
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            self._update(*self._moments(x.detach(), dims))
        return out


class DClampedAboveOnly(_Renorm):
    def _rd(self, mean, std):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, max=self.dmax)
        return r, d


class StdUpdatedWithOneMinusMomentum(_Renorm):
    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += (1 - self.momentum) * (std - self.running_std)


class EvalWithoutCentring(_Renorm):
    def _eval(self, x, view):
        return x / self.running_std.view(view)


class OneValuePassedThrough(_Renorm):
    def forward(self, x):
        if self.training and x.dim() in (2, 4) and x.numel() // x.shape[1] < 2:
            return x  # nothing to normalise with a single value
        return super().forward(x)


class LerpVarMean(_Renorm):
    """torch.var_mean for the moments, lerp_ for the moving averages (correct)."""

    def _moments(self, x, dims):
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        return mean, (var + self.eps).sqrt()

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(std, self.momentum)


# ---- renorm_schedule ------------------------------------------------------------------


def sch_one_zero_ramp_finishes_both(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if r_steps <= 0 or d_steps <= 0:
        done = step > warmup
        return (rmax_final, dmax_final) if done else (1.0, 0.0)
    pr = min(1.0, max(0.0, (step - warmup) / r_steps))
    pd = min(1.0, max(0.0, (step - warmup) / d_steps))
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sch_progress_reused(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    p = progress(r_steps)
    p = progress(d_steps)
    dmax = dmax_final * p
    rmax = 1.0 + (rmax_final - 1.0) * p
    return rmax, dmax


def sch_d_without_warmup(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(start, length):
        if length <= 0:
            return 1.0 if step > start else 0.0
        return min(1.0, max(0.0, (step - start) / length))

    return 1.0 + (rmax_final - 1.0) * progress(warmup, r_steps), dmax_final * progress(0, d_steps)


def sch_lerp_form(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """rmax as a blend of 1 and rmax_final (correct)."""
    def progress(length):
        if length <= 0:
            return float(step > warmup)
        return float(np.clip((step - warmup) / length, 0.0, 1.0))

    pr, pd = progress(r_steps), progress(d_steps)
    return rmax_final * pr + 1.0 * (1.0 - pr), dmax_final * pd


ENTRIES = [
    entry(BW, "r left out of the projection term", bw_r_missing_in_projection,
          "the projection term uses mean(dout * gamma * x_hat) without r, while the other terms use "
          "g = dout * gamma * r."),
    entry(BW, "cache unpacked with x_hat and y_hat swapped", bw_cache_hats_swapped,
          "unpacks the cache as (y_hat, x_hat, ...) instead of (x_hat, y_hat, ...), so dgamma uses x_hat and "
          "the projection term of dx uses y_hat."),
    entry(BW, "r in the projection term twice", bw_projection_with_r,
          "the projection term is x_hat * r * mean(g * x_hat): an extra factor r (g already holds r)."),
    entry(BW, "staged dvar with std**-1.5", bw_staged_std_power,
          "in the staged backward, dvar uses std ** -1.5 (copied from var ** -1.5) instead of std ** -3."),
    right(BW, "staged through the variance", bw_staged),
    entry(BR, "batch mean detached", MeanDetached,
          "the batch mean is computed from x.detach(), so the gradient misses the path through the batch mean "
          "(only the standard deviation is differentiated).", replaces=NAME),
    entry(BR, "running statistics updated twice", UpdatedTwice,
          "the running mean and std are updated twice per training step (inside forward and again after it), "
          "so they move by about 2 * momentum per batch.", replaces=NAME),
    entry(BR, "d clamped from above only", DClampedAboveOnly,
          "d is clamped with max=dmax only, so negative d below -dmax is not clipped.", replaces=NAME),
    entry(BR, "running_std moved with 1 - momentum", StdUpdatedWithOneMinusMomentum,
          "running_std is updated with the weight 1 - momentum instead of momentum (the running mean is right).",
          replaces=NAME),
    entry(BR, "running mean not subtracted in eval mode", EvalWithoutCentring,
          "in eval mode it divides by running_std but never subtracts running_mean.", replaces=NAME),
    entry(BR, "one value per channel passed through", OneValuePassedThrough,
          "a training batch with one value per channel is returned unchanged instead of raising ValueError.",
          replaces=NAME),
    right(BR, "var_mean and lerp_", LerpVarMean, replaces=NAME),
    entry(SCH, "one zero-length ramp finishes both", sch_one_zero_ramp_finishes_both,
          "when either ramp has 0 steps, both bounds jump to their final values after the warm-up, so the "
          "other ramp is skipped."),
    entry(SCH, "rmax ramp reuses the d progress", sch_progress_reused,
          "the progress variable is reassigned with d's progress before rmax is computed, so rmax ramps over "
          "d_steps instead of r_steps."),
    entry(SCH, "d ramp without the warm-up", sch_d_without_warmup,
          "the d ramp is counted from step 0 instead of from the end of the warm-up (rmax's ramp is right)."),
    right(SCH, "blend of 1 and rmax_final", sch_lerp_form),
]
