"""Held-out answers (twentieth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_means_swapped_between_terms(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - (g * x_hat).mean(axis=0) - x_hat * g.mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_r_missing_in_mean_term(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - (dout * gamma).mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_gamma_scaled_in_place(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    scale = gamma
    scale *= r  # gamma * r, the factor reaching x_hat
    g = dout * scale
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
    """A right learner's module; each wrong entry changes one piece."""

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

    def _r(self, sigma):
        with torch.no_grad():
            return torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)

    def _d(self, mean):
        with torch.no_grad():
            return torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)

    def _update(self, x, dims, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): got {x.shape[1]} channels")
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(v)) / self.running_std.view(v)
        else:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("BatchRenorm: training needs more than one value per channel")
            mean = x.mean(dims)
            sigma = torch.sqrt(x.var(dims, correction=0) + self.eps)
            r, d = self._r(sigma), self._d(mean)
            x_hat = (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
            self._update(x, dims, mean, sigma)
        return x_hat * self.weight.view(v) + self.bias.view(v)


class OnlyDDetached(_Renorm):
    """d computed under no_grad; r computed outside it."""

    def _r(self, sigma):
        return torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)


class RunningStdFromTensorStd(_Renorm):
    """The running update recomputes the batch std with x.std(...)."""

    def _update(self, x, dims, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (x.std(dims, correction=0) - self.running_std)


class DClampOnRunningStd(_Renorm):
    """Parenthesis misplaced in the line of d."""

    def _d(self, mean):
        with torch.no_grad():
            return (mean - self.running_mean) / self.running_std.clamp(-self.dmax, self.dmax)


class TorchMaximumWithFloats(_Renorm):
    """r clipped NumPy-style with maximum / minimum and Python-float bounds."""

    def _r(self, sigma):
        with torch.no_grad():
            return torch.minimum(torch.maximum(sigma / self.running_std, 1.0 / self.rmax), self.rmax)


class RenormThroughFBatchNorm(nn.Module):
    """Correct: training through F.batch_norm with gamma * r as its weight and gamma * d + beta as its
    bias (r, d detached); buffers with torch.lerp into copy_; eval through F.batch_norm with
    running_std ** 2 as the variance and eps = 0."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim != 2 and x.ndim != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W) input, not {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_std ** 2, self.weight, self.bias,
                                training=False, eps=0.0)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: more than one value per channel is needed in training")
        dims = [0] if x.ndim == 2 else [0, 2, 3]
        var, mean = torch.var_mean(x, dims, correction=0)
        sigma = torch.sqrt(var + self.eps)
        with torch.no_grad():
            r = (sigma / self.running_std).clamp(1 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        out = F.batch_norm(x, None, None, self.weight * r, self.weight * d + self.bias, training=True,
                           eps=self.eps)
        with torch.no_grad():
            self.running_mean.copy_(torch.lerp(self.running_mean, mean, self.momentum))
            self.running_std.copy_(torch.lerp(self.running_std, sigma, self.momentum))
        return out


# ---- renorm_schedule ------------------------------------------------------------------


def sch_int_only_arguments(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    for name, value in (("step", step), ("warmup", warmup), ("r_steps", r_steps), ("d_steps", d_steps)):
        if not isinstance(value, int):
            raise TypeError(f"renorm_schedule: {name} must be an int, got {type(value).__name__}")

    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_warmup_subtracted_twice(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(elapsed, length):
        if length <= 0:
            return 1.0 if elapsed > 0 else 0.0
        return min(1.0, max(0.0, (elapsed - warmup) / length))

    elapsed = step - warmup
    return 1.0 + (rmax_final - 1.0) * progress(elapsed, r_steps), dmax_final * progress(elapsed, d_steps)


def sch_end_tested_with_equality(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if step <= warmup:
            return 0.0
        if length == 0 or step == warmup + length:
            return 1.0
        return (step - warmup) / length

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_infinite_progress_for_zero_length(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: a zero-length ramp gets infinite progress once the warm-up is over, then one min()."""
    elapsed = max(0, step - warmup)

    def progress(length):
        if length > 0:
            raw = elapsed / length
        else:
            raw = math.inf if elapsed > 0 else 0.0
        return min(1.0, raw)

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "the two batch means swapped between the terms", bw_means_swapped_between_terms,
          cause="dx is written (g - mean(g * x_hat) - x_hat * mean(g)) / std, the two batch means exchanged "
                "between the centring term and the projection term (instead of g - mean(g) - x_hat * "
                "mean(g * x_hat)); dgamma and dbeta are right."),
    entry(BW, "r left out of the mean term", bw_r_missing_in_mean_term,
          cause="the centring term subtracts mean(dout * gamma) instead of mean(dout * gamma * r), so dx is "
                "wrong by (1 - r) * mean(dout * gamma) / std per feature (right only where r = 1); the "
                "projection term, dgamma and dbeta are right."),
    entry(BW, "gamma scaled in place by r (scale = gamma; scale *= r)", bw_gamma_scaled_in_place,
          cause="the factor gamma * r is made with scale = gamma; scale *= r, which multiplies the caller's "
                "gamma array (held in the cache) by r in place, so every later use of gamma (the next "
                "forward or backward pass, the optimiser) sees gamma * r; this call's dx, dgamma and dbeta "
                "are right."),
    entry(BR, "only d detached, r left in the graph", OnlyDDetached, replaces=NAME,
          cause="d is computed under torch.no_grad but r is not, so r = clip(sigma_B / running_std) stays in "
                "the graph: the gradient would flow through r, and since running_std, saved for that division, "
                "is then updated in place, backward raises RuntimeError (a variable needed for the gradient "
                "modified by an inplace operation); the forward values and the buffers are right."),
    entry(BR, "running_std moved towards x.std() (no eps)", RunningStdFromTensorStd, replaces=NAME,
          cause="the running update recomputes the batch std as x.std(dims, correction=0), without eps, "
                "instead of reusing sigma_B = sqrt(var + eps), so running_std drifts towards a slightly "
                "smaller value (by about eps / (2 sigma) per step's share); outputs in training and r, d are "
                "right on the first step."),
    entry(BR, "d's clamp applied to running_std (misplaced parenthesis)", DClampOnRunningStd, replaces=NAME,
          cause="d is written (mean - running_mean) / running_std.clamp(-dmax, dmax), the clamp on the "
                "running std instead of on the quotient, so d is unclipped and divided by a std clipped to "
                "dmax (by 0 with dmax = 0, giving inf or nan)."),
    entry(BR, "torch.maximum / torch.minimum with Python-float bounds", TorchMaximumWithFloats, replaces=NAME,
          cause="r is clipped with torch.minimum(torch.maximum(r, 1 / rmax), rmax), NumPy's habit, but "
                "torch.maximum and torch.minimum take two tensors, not a float, so every training step raises "
                "TypeError; d and eval mode are right."),
    right(BR, "F.batch_norm with gamma * r, gamma * d + beta; eval with running_std ** 2, eps 0",
          RenormThroughFBatchNorm, replaces=NAME),
    entry(SCH, "arguments checked with isinstance(value, int)", sch_int_only_arguments,
          cause="every argument is checked with isinstance(value, int), which refuses NumPy integers (the "
                "notebook's np.arange steps) and floats (set_bounds' scaled warm-up and ramp lengths) with "
                "TypeError; plain Python ints give the right values."),
    entry(SCH, "warm-up subtracted twice (helper given step - warmup)", sch_warmup_subtracted_twice,
          cause="the progress helper is called with the elapsed steps step - warmup and subtracts warmup "
                "again inside, so each ramp starts at 2 * warmup instead of warmup (zero-length ramps and "
                "warmup = 0 are right)."),
    entry(SCH, "ramp end tested with == (no cap past it)", sch_end_tested_with_equality,
          cause="the end of a ramp is tested with step == warmup + length, so the progress is 1 only at that "
                "exact step and keeps growing past it: rmax and dmax exceed rmax_final and dmax_final after "
                "the ramps end (warm-up, zero-length ramps and the ramps themselves are right)."),
    right(SCH, "infinite progress for a zero-length ramp, one min()", sch_infinite_progress_for_zero_length),
]
