"""Held-out answers (seventeenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
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


def bw_staged_xmu_divided(dout, cache):
    """Staged backward through x - mu, the variance and the mean (lesson 02's graph)."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dxhat = dout * gamma * r
    xmu = x_hat / std  # x - mu back from x_hat
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * std ** -3
    dmu = np.sum(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmu / n
    return dx, dgamma, dbeta


def bw_factored_precedence(dout, cache):
    """The factored closed form N * g - sum(g) - x_hat * sum(g * x_hat), over N * std."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    g = dout * gamma * r
    dx = (n * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / n * std
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_staged_dmu_mean(dout, cache):
    """Staged backward through x - mu, the variance and the mean (lesson 02's graph)."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dxhat = dout * gamma * r
    xmu = x_hat * std
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * std ** -3
    dmu = np.mean(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmu / n
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

    def _clip(self, r, d):
        return r.clamp(1.0 / self.rmax, self.rmax), d.clamp(-self.dmax, self.dmax)

    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)

    def _eval(self, x, v):
        x_hat = (x - self.running_mean.view(v)) / self.running_std.view(v)
        return x_hat * self.weight.view(v) + self.bias.view(v)

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W), got {x.dim()}-D input")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, v)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        sigma = torch.sqrt(x.var(dims, correction=0) + self.eps)
        with torch.no_grad():
            r, d = self._clip(sigma / self.running_std, (mean - self.running_mean) / self.running_std)
        x_hat = (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
        self._update(mean.detach(), sigma.detach())
        return x_hat * self.weight.view(v) + self.bias.view(v)


class DmaxTrailingComma(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.rmax = rmax
        self.dmax = dmax,


class RunningMeanTowardsStd(_Renorm):
    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_std)
            self.running_std += self.momentum * (sigma - self.running_std)


class EvalFunctionalDefaults(_Renorm):
    """Eval mode through F.batch_norm with the running variance running_std ** 2."""

    def _eval(self, x, v):
        return F.batch_norm(x, self.running_mean, self.running_std ** 2, self.weight, self.bias)


class BoundsAsTensors(_Renorm):
    """r and d clipped with torch.minimum / torch.maximum, which want tensor bounds."""

    def _clip(self, r, d):
        lo, hi = torch.tensor(1.0 / self.rmax), torch.tensor(self.rmax)
        dlo, dhi = torch.tensor(-self.dmax), torch.tensor(self.dmax)
        return torch.maximum(torch.minimum(r, hi), lo), torch.maximum(torch.minimum(d, dhi), dlo)


class LogSpaceClip(nn.Module):
    """Correct: statistics on channel rows (x.transpose(0, 1).flatten(1)); r clipped in log space,
    exp(clamp(log(sigma_B / sigma), -log rmax, log rmax)); the affine steps with torch.addcmul;
    buffers updated with add_(..., alpha=momentum) under no_grad."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps, self.momentum, self.rmax, self.dmax = eps, momentum, rmax, dmax
        self.weight = nn.Parameter(torch.full((num_features,), 1.0))
        self.bias = nn.Parameter(torch.full((num_features,), 0.0))
        self.register_buffer("running_mean", torch.full((num_features,), 0.0))
        self.register_buffer("running_std", torch.full((num_features,), 1.0))

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not {x.ndim}-D {tuple(x.shape)}")
        c = self.num_features
        if x.shape[1] != c:
            raise ValueError(f"BatchRenorm({c}) got {x.shape[1]} channels")
        shape = (1, c) + (1,) * (x.ndim - 2)
        w, b = self.weight.reshape(shape), self.bias.reshape(shape)
        if not self.training:
            return torch.addcmul(b, (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape), w)
        rows = x.transpose(0, 1).flatten(1)  # (C, values)
        if rows.shape[1] < 2:
            raise ValueError("BatchRenorm: a single value per channel gives no batch statistics")
        mu = rows.mean(1)
        sigma = (rows - mu[:, None]).pow(2).mean(1).add(self.eps).sqrt()
        with torch.no_grad():
            bound = math.log(self.rmax)
            r = torch.exp(torch.log(sigma / self.running_std).clamp(-bound, bound))
            d = ((mu - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
            self.running_mean.add_(mu - self.running_mean, alpha=self.momentum)
            self.running_std.add_(sigma - self.running_std, alpha=self.momentum)
        y = torch.addcmul(d.reshape(shape), (x - mu.reshape(shape)) / sigma.reshape(shape), r.reshape(shape))
        return torch.addcmul(b, y, w)


# ---- renorm_schedule ------------------------------------------------------------------


def sch_divide_by_zero_to_inf(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    with np.errstate(divide="ignore", invalid="ignore"):  # a ramp of 0 steps: +-inf, clipped below
        r_progress = np.clip(np.divide(step - warmup, r_steps), 0.0, 1.0)
        d_progress = np.clip(np.divide(step - warmup, d_steps), 0.0, 1.0)
    return float(1.0 + (rmax_final - 1.0) * r_progress), float(dmax_final * d_progress)


def sch_late_binding_lambdas(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    ramps = []
    for length in (r_steps, d_steps):
        if length > 0:
            ramps.append(lambda: min(1.0, max(0.0, (step - warmup) / length)))
        else:
            ramps.append(lambda: 1.0 if step > warmup else 0.0)
    r_progress, d_progress = (ramp() for ramp in ramps)
    return 1.0 + (rmax_final - 1.0) * r_progress, dmax_final * d_progress


ENTRIES = [
    entry(BW, "staged: x - mu recovered as x_hat / std", bw_staged_xmu_divided,
          cause="the staged backward rebuilds x - mu as x_hat / std instead of x_hat * std, so the variance "
                "branch of dx (the projection term) is std**2 times too small; the mean term, dgamma and "
                "dbeta are right."),
    entry(BW, "factored form divided by N, then multiplied by std", bw_factored_precedence,
          cause="dx = (N*g - sum g - x_hat * sum(g x_hat)) / N * std: the parentheses around N * std are "
                "missing, so dx is multiplied by std instead of divided by it (a factor std**2 per "
                "feature); dgamma and dbeta are right."),
    entry(BW, "staged: dmu as a mean, then divided by N again", bw_staged_dmu_mean,
          cause="in the staged backward dmu is np.mean(-dxhat / std) instead of np.sum, and dx adds dmu / N, "
                "so the mean-subtraction term of dx is divided by N twice (N times too small); the "
                "variance branch, dgamma and dbeta are right."),
    entry(BR, "trailing comma makes dmax a tuple", DmaxTrailingComma, replaces=NAME,
          cause="self.dmax = dmax, (a trailing comma) stores the tuple (dmax,) instead of the number, so "
                "clipping d with -self.dmax raises TypeError in training mode, and dmax is not a plain number; "
                "eval mode is right."),
    entry(BR, "running_mean moved towards mean - running_std (typo)", RunningMeanTowardsStd, replaces=NAME,
          cause="the running mean update reads momentum * (mean - self.running_std) instead of "
                "(mean - self.running_mean), so running_mean drifts to the wrong value (and d with it "
                "from the second step); running_std and the first step's output are right."),
    entry(BR, "eval through F.batch_norm with its default eps", EvalFunctionalDefaults, replaces=NAME,
          cause="eval mode calls F.batch_norm(x, running_mean, running_std ** 2, weight, bias), whose "
                "default eps=1e-5 is added again to running_std ** 2 (which already contains eps), so eval "
                "divides by sqrt(running_std**2 + 1e-5) instead of running_std; training is right."),
    entry(BR, "clip bounds made with torch.tensor (float32)", BoundsAsTensors, replaces=NAME,
          cause="the bounds 1/rmax, rmax, -dmax, dmax are made with torch.tensor(python float), which is "
                "float32, so a clipped r or d is rounded to float32 (e.g. 1/1.5, 1.8, 0.7) in a float64 "
                "module: an error of about 1e-8 relative wherever the clip is active."),
    right(BR, "log-space clip of r, channel rows, addcmul", LogSpaceClip, replaces=NAME),
    entry(SCH, "zero-length ramp through np.divide's inf", sch_divide_by_zero_to_inf,
          cause="a ramp of 0 steps is left to np.divide (x / 0 = +-inf, clipped to 1 or 0), but at "
                "step == warmup it is 0 / 0 = nan, so that bound is nan at the warm-up's last step "
                "instead of its starting value; ramps of nonzero length are right."),
    entry(SCH, "late-binding lambdas: both ramps over d_steps", sch_late_binding_lambdas,
          cause="the two progress functions are lambdas made in a loop over (r_steps, d_steps) that read "
                "the loop variable when called, so both use the last length, d_steps: rmax ramps over "
                "d_steps (and divides by zero when d_steps is 0 and r_steps is not); right when r_steps == d_steps."),
]
