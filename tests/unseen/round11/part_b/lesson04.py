"""Held-out answers (eleventh set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"


# ---- batch_renorm_backward ------------------------------------------------------------


def bw_projection_not_over_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0)) / std - x_hat * (g * x_hat).mean(axis=0)
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_first_term_from_dout(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (dout - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_cache_as_dict(dout, cache):
    x_hat, y_hat, std = cache["x_hat"], cache["y_hat"], cache["std"]
    r, gamma = cache["r"], cache["gamma"]
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dgamma_averaged(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).mean(axis=0), dout.sum(axis=0)


@notebook
def bw_reuses_lesson02(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    # batch norm's closed-form backward from lesson 02, fed the gradient scaled by r
    dx, _, _ = batchnorm_backward_alt(dout * r, (x_hat, gamma, std))  # noqa: F821
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_xhat_restandardised(dout, cache):
    _, y_hat, std, r, gamma = cache
    # y_hat = x_hat * r + d: standardising y_hat per feature gives x_hat back
    x_hat = (y_hat - y_hat.mean(axis=0)) / y_hat.std(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_feature_loop(dout, cache):
    """Correct: one feature at a time, with 1-D vectors."""
    x_hat, y_hat, std, r, gamma = cache
    n, dims = dout.shape
    dx = np.empty_like(dout, dtype=np.result_type(dout, x_hat))
    dgamma, dbeta = np.empty(dims), np.empty(dims)
    for j in range(dims):
        g = dout[:, j] * (gamma[j] * r[j])
        dx[:, j] = (n * g - g.sum() - x_hat[:, j] * np.dot(g, x_hat[:, j])) / (n * std[j])
        dgamma[j] = np.dot(dout[:, j], y_hat[:, j])
        dbeta[j] = dout[:, j].sum()
    return dx, dgamma, dbeta


# ---- BatchRenorm: a learner's right class; each wrong entry changes one piece ----------


class _Renorm(nn.Module):
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
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        if self.training and x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")

    def corrections(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d

    def update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)

    def renormalise(self, x, mean, std, r, d, v):
        return (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)

    def affine(self, y, v):
        return y * self.weight.view(v) + self.bias.view(v)

    def forward(self, x):
        self.validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            y = (x - self.running_mean.view(v)) / self.running_std.view(v)
            return self.affine(y, v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self.corrections(mean, std)
        y = self.renormalise(x, mean, std, r, d, v)
        self.update(mean, std)
        return self.affine(y, v)


class DClippedBeforeDividing(_Renorm):
    def corrections(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = (mean - self.running_mean).clamp(-self.dmax, self.dmax) / self.running_std
        return r, d


class RDAfterAffine(_Renorm):
    def forward(self, x):
        self.validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            y = (x - self.running_mean.view(v)) / self.running_std.view(v)
            return self.affine(y, v)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self.corrections(mean, std)
        out = self.affine((x - mean.view(v)) / std.view(v), v)  # batch norm as usual ...
        out = out * r.view(v) + d.view(v)  # ... then the renorm correction
        self.update(mean, std)
        return out


class UnclippedShortcut(_Renorm):
    def forward(self, x):
        self.validate(x)
        if not self.training:
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r_raw = std / self.running_std
            d_raw = (mean - self.running_mean) / self.running_std
        r, d = self.corrections(mean, std)
        if torch.equal(r, r_raw) and torch.equal(d, d_raw):
            # nothing clipped: (x - mu_B) / sigma_B * r + d is just (x - mu) / sigma
            y = (x - self.running_mean.view(v)) / self.running_std.view(v)
        else:
            y = self.renormalise(x, mean, std, r, d, v)
        self.update(mean, std)
        return self.affine(y, v)


class GeometricRunningStd(_Renorm):
    def update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std *= (std / self.running_std) ** self.momentum  # an average of log std


class DSubtracted(_Renorm):
    def renormalise(self, x, mean, std, r, d, v):
        return (x - mean.view(v)) / std.view(v) * r.view(v) - d.view(v)


class FunctionalUpdatesStdAsVariance(_Renorm):
    def forward(self, x):
        self.validate(x)
        if not self.training:
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self.corrections(mean, std)
        # F.batch_norm normalises with the batch statistics and moves the running buffers too
        x_hat = F.batch_norm(x, self.running_mean, self.running_std, None, None, True, self.momentum, self.eps)
        return self.affine(x_hat * r.view(v) + d.view(v), v)


class GuardCountsAllValues(_Renorm):
    def validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        if self.training and x.numel() < 2:
            raise ValueError("BatchRenorm: training needs more than one value")


class DividedByRunningStd(_Renorm):
    def renormalise(self, x, mean, std, r, d, v):
        return (x - mean.view(v)) / self.running_std.view(v) * r.view(v) + d.view(v)


class StdMeanTensorBounds(nn.Module):
    """Correct: channels as rows, torch.std_mean, clamp with tensor bounds, lerp into copy_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm takes 2-D or 4-D input, not {x.dim()}-D")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"BatchRenorm: {c} channels given, {self.num_features} expected")
        rows = x.movedim(1, 0).reshape(c, -1)  # (C, values)
        if self.training:
            if rows.shape[1] < 2:
                raise ValueError("BatchRenorm: one value per channel cannot be normalised in training")
            sd, mu = torch.std_mean(rows, dim=1, correction=0)
            sigma = (sd * sd + self.eps).sqrt()
            with torch.no_grad():
                hi = torch.full_like(sigma, float(self.rmax))
                r = torch.minimum(torch.maximum(sigma / self.running_std, 1 / hi), hi)
                dm = torch.full_like(sigma, float(self.dmax))
                d = torch.clamp((mu - self.running_mean) / self.running_std, -dm, dm)
                self.running_mean.copy_(torch.lerp(self.running_mean, mu, self.momentum))
                self.running_std.copy_(torch.lerp(self.running_std, sigma, self.momentum))
            z = (rows - mu[:, None]) * (r / sigma)[:, None] + d[:, None]
        else:
            z = (rows - self.running_mean[:, None]) / self.running_std[:, None]
        z = torch.addcmul(self.bias[:, None], z, self.weight[:, None])
        shape = list(x.shape)
        shape[0], shape[1] = c, shape[0]
        return z.reshape(shape).movedim(0, 1)


# ---- renorm_schedule ---------------------------------------------------------------------


def sch_backwards(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    # relax = move back from the final bounds towards plain batch norm
    if step <= warmup:
        return 1.0, 0.0

    def left(length):
        if length <= 0:
            return 0.0
        return 1.0 - min(1.0, (step - warmup) / length)

    return 1.0 + (rmax_final - 1.0) * left(r_steps), dmax_final * left(d_steps)


def sch_math_clamp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return math.clamp((step - warmup) / length, 0.0, 1.0)

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_zero_guard_r_only(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if r_steps <= 0:
        pr = 1.0 if step > warmup else 0.0
    else:
        pr = min(1.0, max(0.0, (step - warmup) / r_steps))
    pd = min(1.0, max(0.0, (step - warmup) / d_steps))
    return 1.0 + (rmax_final - 1.0) * pr, dmax_final * pd


def sch_abs_distance(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, abs(step - warmup) / length)  # steps away from the end of the warm-up

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_fractions(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: exact fractions, converted to float at the end."""

    def progress(length):
        if length <= 0:
            return Fraction(int(step > warmup))
        return min(Fraction(1), max(Fraction(0), Fraction(step - warmup, length)))

    pr, pd = progress(r_steps), progress(d_steps)
    return float(1 + (Fraction(rmax_final) - 1) * pr), float(Fraction(dmax_final) * pd)


ENTRIES = [
    entry(BW, "projection term not divided by the batch std", bw_projection_not_over_std,
          cause="dx = (g - mean(g)) / std - x_hat * mean(g * x_hat): the projection (variance) term is not "
                "divided by the batch standard deviation."),
    entry(BW, "first term of dx from dout", bw_first_term_from_dout,
          cause="dx = (dout - mean(g) - x_hat * mean(g * x_hat)) / std: the first term is dout instead of "
                "g = dout * gamma * r (the two batch means use g)."),
    entry(BW, "cache read as a dict", bw_cache_as_dict,
          cause="reads the cache with string keys (cache['x_hat']), but the forward's cache is a tuple, so "
                "the learner's code raises TypeError."),
    entry(BW, "dgamma averaged over the batch", bw_dgamma_averaged,
          cause="dgamma = mean(dout * y_hat) over the batch instead of the sum: too small by the batch size."),
    entry(BW, "lesson 02's batchnorm_backward_alt called", bw_reuses_lesson02,
          cause="calls batchnorm_backward_alt from lesson 02, which is not defined in this notebook, so the "
                "learner's code raises NameError."),
    entry(BW, "x_hat re-derived by standardising y_hat", bw_xhat_restandardised,
          cause="x_hat is recomputed as y_hat standardised per feature, whose std is r * sqrt(var / (var + eps)), "
                "not r, so the recomputed x_hat (and dx's projection term) is off by about eps / (2 var) relative."),
    right(BW, "one feature at a time", bw_feature_loop),
    entry(BR, "d clipped before dividing by the running std", DClippedBeforeDividing, replaces=NAME,
          cause="d = clip(mean - running_mean, -dmax, dmax) / running_std: the difference is clipped before "
                "the division, instead of clipping (mean - running_mean) / running_std."),
    entry(BR, "r and d applied after the affine map", RDAfterAffine, replaces=NAME,
          cause="computes (weight * x_hat + bias) * r + d instead of weight * (x_hat * r + d) + bias."),
    entry(BR, "unclipped case computed from the running statistics", UnclippedShortcut, replaces=NAME,
          cause="when neither r nor d is clipped it outputs (x - running_mean) / running_std directly (the same "
                "value), so the gradient is a fixed affine map's: the batch statistics' terms are lost."),
    entry(BR, "running std averaged geometrically", GeometricRunningStd, replaces=NAME,
          cause="running_std is updated as running_std * (sigma_B / running_std) ** momentum (an average of "
                "log std) instead of running_std + momentum * (sigma_B - running_std)."),
    entry(BR, "d subtracted", DSubtracted, replaces=NAME,
          cause="the training output is x_hat * r - d instead of x_hat * r + d."),
    entry(BR, "F.batch_norm given the buffers updates running_std as a variance", FunctionalUpdatesStdAsVariance,
          replaces=NAME,
          cause="normalises with F.batch_norm(x, running_mean, running_std, training=True, momentum), which also "
                "moves running_std towards the batch's unbiased VARIANCE (running_mean is right); running_std "
                "must move towards sigma_B."),
    entry(BR, "one-value guard counts all values", GuardCountsAllValues, replaces=NAME,
          cause="the training guard refuses only x.numel() < 2, so a batch with one value per channel "
                "(N = 1 for 2-D input, C > 1) is not refused with ValueError."),
    entry(BR, "batch deviations divided by the running std", DividedByRunningStd, replaces=NAME,
          cause="training computes (x - mean) / running_std * r + d instead of (x - mean) / sigma_B * r + d."),
    right(BR, "std_mean on channel rows, tensor bounds, lerp into copy_", StdMeanTensorBounds, replaces=NAME),
    entry(SCH, "ramps run backwards", sch_backwards,
          cause="after the warm-up the bounds start at their final values and shrink back to (1, 0) over the "
                "ramps, instead of rising from (1, 0) to the final values."),
    entry(SCH, "math.clamp", sch_math_clamp,
          cause="calls math.clamp, which does not exist, so the learner's code raises AttributeError "
                "(outside a zero-length ramp)."),
    entry(SCH, "zero-length guard on the r ramp only", sch_zero_guard_r_only,
          cause="only r_steps = 0 is special-cased; with d_steps = 0 the d ramp divides by zero "
                "(ZeroDivisionError) instead of jumping to dmax_final after the warm-up."),
    entry(SCH, "distance from the warm-up's end taken with abs", sch_abs_distance,
          cause="progress is abs(step - warmup) / length, so before the end of the warm-up the bounds rise "
                "too (they must stay at 1 and 0)."),
    right(SCH, "exact fractions", sch_fractions),
]
