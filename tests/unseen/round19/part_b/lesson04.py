"""Held-out answers (nineteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_staged_dvar_exponent_sign_lost(dout, cache):
    """Staged through x - mu, the variance and the mean, as lesson 02's graph."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * y_hat, axis=0)
    dxhat = dout * gamma * r
    xmu = x_hat * std
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * std ** 3
    dmu = np.sum(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmu / n
    return dx, dgamma, dbeta


def bw_gamma_missing_in_projection(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    projection = np.mean(dout * r * x_hat, axis=0)
    dx = (g - np.mean(g, axis=0) - x_hat * projection) / std
    dgamma = np.sum(dout * y_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_parameter_loop_from_one(dout, cache):
    """dgamma and dbeta accumulated example by example."""
    x_hat, y_hat, std, r, gamma = cache
    n, d = dout.shape
    dgamma = np.zeros(d)
    dbeta = np.zeros(d)
    for i in range(1, n):
        dgamma += dout[i] * y_hat[i]
        dbeta += dout[i]
    g = dout * gamma * r
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

    def _r_d(self, mean, sigma):
        with torch.no_grad():
            r = torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d

    def _train_out(self, x, mean, sigma, v):
        r, d = self._r_d(mean, sigma)
        return (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)

    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)

    def forward(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) input, not {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): input has {x.size(1)} channels")
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        v = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        w, b = self.weight.view(v), self.bias.view(v)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * w + b
        if x.numel() // x.size(1) < 2:
            raise ValueError("BatchRenorm: one value per channel cannot be normalised in training")
        mean = x.mean(dims)
        sigma = (x.var(dims, correction=0) + self.eps).sqrt()
        y = self._train_out(x, mean, sigma, v)
        self._update(mean, sigma)
        return y * w + b


class RunningStdTowardsStdMinusMean(_Renorm):
    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_mean)


class LowerBoundTwoMinusRmax(_Renorm):
    """r clipped to [1 - (rmax - 1), rmax], symmetric around 1."""

    def _r_d(self, mean, sigma):
        with torch.no_grad():
            r = torch.clamp(sigma / self.running_std, 2.0 - self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d


class ConstantsWithItem(_Renorm):
    """r and d made constants for the gradient with .item()."""

    def _r_d(self, mean, sigma):
        r = torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax).item()
        d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax).item()
        return r, d

    def _train_out(self, x, mean, sigma, v):
        r, d = self._r_d(mean, sigma)
        return (x - mean.view(v)) / sigma.view(v) * r + d


class PlainShortcutNeedsBothBounds(_Renorm):
    """Plain batch norm (r = 1, d = 0) unless the bounds are relaxed."""

    def _train_out(self, x, mean, sigma, v):
        if self.rmax > 1.0 and self.dmax > 0.0:
            r, d = self._r_d(mean, sigma)
            return (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
        return (x - mean.view(v)) / sigma.view(v)


class RenormScaleShiftAddcmul(nn.Module):
    """Correct: one per-channel factor r / sigma_B (r detached) times the centred input, plus d,
    through torch.addcmul; channel shape from unsqueeze; buffers moved with torch.lerp into
    copy_; eval as x * (gamma / sigma) + (beta - mu * gamma / sigma)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps, self.momentum, self.rmax, self.dmax = eps, momentum, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    @staticmethod
    def _ch(t, rank):
        return t.reshape(t.shape[0], *[1] * (rank - 2))

    def forward(self, x):
        rank = x.dim()
        if rank not in (2, 4):
            raise ValueError(f"BatchRenorm: expected a 2-D or 4-D input, got {rank}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: {x.shape[1]} channels given, {self.num_features} expected")
        ch = lambda t: self._ch(t, rank)  # noqa: E731
        if not self.training:
            scale = self.weight / self.running_std
            return torch.addcmul(ch(self.bias - self.running_mean * scale), x, ch(scale))
        reduce = [0, 2, 3] if rank == 4 else [0]
        if x.numel() // x.shape[1] <= 1:
            raise ValueError("BatchRenorm: training needs at least two values per channel")
        mu = x.mean(reduce)
        sigma = (x - ch(mu)).pow(2).mean(reduce).add(self.eps).sqrt()
        r = (sigma.detach() / self.running_std).clamp(1.0 / self.rmax, self.rmax)
        d = ((mu.detach() - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        y = torch.addcmul(ch(d), x - ch(mu), ch(r / sigma))
        with torch.no_grad():
            self.running_mean.copy_(torch.lerp(self.running_mean, mu, self.momentum))
            self.running_std.copy_(torch.lerp(self.running_std, sigma, self.momentum))
        return torch.addcmul(ch(self.bias), y, ch(self.weight))


# ---- renorm_schedule ------------------------------------------------------------------


def sch_warmup_as_ratio(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """The warm-up tested as the share of it that is done."""
    if step / warmup <= 1:
        return 1.0, 0.0

    def progress(length):
        if length == 0:
            return 1.0
        return min(1.0, (step - warmup) / length)

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_step_capped_at_length(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Steps since the warm-up, the step first capped where the ramp ends."""

    def progress(length):
        if length == 0:
            return 1.0 if step > warmup else 0.0
        elapsed = max(0, min(step, length) - warmup)
        return elapsed / length

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_rmax_towards_dmax_final(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length == 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    rmax = 1.0 + (dmax_final - 1.0) * progress(r_steps)
    dmax = dmax_final * progress(d_steps)
    return rmax, dmax


def sch_counted_with_range(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: the ramp's progress as the number of its steps already taken,
    len(range(warmup, min(step, warmup + length))), over its length."""

    def progress(length):
        if length <= 0:
            return float(step > warmup)
        return len(range(warmup, min(step, warmup + length))) / length

    rmax = rmax_final * progress(r_steps) + 1.0 * (1.0 - progress(r_steps))
    return rmax, dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "staged: dvar with std ** 3 (exponent's minus sign lost)", bw_staged_dvar_exponent_sign_lost,
          cause="in the staged backward the variance gradient is written -0.5 * sum(dxhat * (x - mu)) * std ** 3 "
                "instead of std ** -3, so the variance branch of dx is multiplied by std**6; the mean branch, "
                "dgamma and dbeta are right."),
    entry(BW, "gamma left out of the projection term", bw_gamma_missing_in_projection,
          cause="the projection coefficient is mean(dout * r * x_hat) instead of mean(g * x_hat) with "
                "g = dout * gamma * r, so the x_hat term of dx lacks the factor gamma (right only where "
                "gamma = 1); the other terms, dgamma and dbeta are right."),
    entry(BW, "dgamma and dbeta accumulated over range(1, N)", bw_parameter_loop_from_one,
          cause="dgamma and dbeta are summed in a loop over the examples that starts at 1, so the first "
                "example's contribution is left out of both; dx is right."),
    entry(BR, "running_std moved towards sigma_B - running_mean (typo)", RunningStdTowardsStdMinusMean,
          replaces=NAME,
          cause="the running update of the standard deviation is written running_std += momentum * "
                "(sigma_B - running_mean) instead of (sigma_B - running_std), so running_std drifts wrongly "
                "(right only while running_mean equals running_std), and with it r, d and eval mode; the "
                "running mean and the first training output are right."),
    entry(BR, "r's lower bound 2 - rmax (symmetric around 1)", LowerBoundTwoMinusRmax, replaces=NAME,
          cause="r is clipped to [2 - rmax, rmax], an interval symmetric around 1, instead of [1 / rmax, rmax], "
                "so small batch deviations are clipped too low (for rmax = 1.5: at 0.5 instead of 0.667; for "
                "rmax >= 2 not at all from below); rmax = 1 and the upper bound are right."),
    entry(BR, "r and d made constants with .item()", ConstantsWithItem, replaces=NAME,
          cause="r and d are taken out of the graph with .item(), which only works for a one-element tensor, "
                "so with more than one channel training raises RuntimeError (a Tensor with C elements cannot "
                "be converted to Scalar); with C = 1 the module is right."),
    entry(BR, "renorm only when both bounds are relaxed (and for or)", PlainShortcutNeedsBothBounds,
          replaces=NAME,
          cause="training falls back to plain batch norm (r = 1, d = 0) unless rmax > 1 and dmax > 0 both "
                "hold, so with only one bound relaxed (rmax > 1 with dmax = 0, or dmax > 0 with rmax = 1) r and "
                "d are not applied; the running updates, eval mode, and both bounds relaxed are right."),
    right(BR, "addcmul with r / sigma_B per channel, lerp into copy_", RenormScaleShiftAddcmul, replaces=NAME),
    entry(SCH, "warm-up tested as step / warmup <= 1", sch_warmup_as_ratio,
          cause="the warm-up is tested with step / warmup <= 1, which raises ZeroDivisionError when "
                "warmup = 0 (a schedule without warm-up); every warmup > 0 is right."),
    entry(SCH, "step capped at the ramp length, not warmup + length", sch_step_capped_at_length,
          cause="the elapsed steps are max(0, min(step, length) - warmup), the step capped at the ramp's "
                "length instead of warmup + length, so with a warm-up the ramp stops at "
                "(length - warmup) / length of the way (and never starts if length <= warmup) and the final "
                "values are never reached; warmup = 0 is right."),
    entry(SCH, "rmax ramps towards dmax_final (name typo)", sch_rmax_towards_dmax_final,
          cause="the rmax line uses dmax_final where rmax_final belongs, 1 + (dmax_final - 1) * progress, so "
                "rmax ramps from 1 to dmax_final (5 by default) instead of rmax_final; dmax and the warm-up are "
                "right."),
    right(SCH, "progress counted with len(range(...))", sch_counted_with_range),
]
