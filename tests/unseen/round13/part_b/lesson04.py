"""Held-out answers (thirteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_dgamma_without_d(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = np.sum(dout * x_hat * r, axis=0)  # the scale of x_hat, d forgotten
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_projection_bessel(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    g = dout * gamma * r
    proj = (g * x_hat).sum(axis=0) / (n - 1)  # "the variance uses n - 1"
    dx = (g - g.mean(axis=0) - x_hat * proj) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_eps_removed_from_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    sigma = np.sqrt(std ** 2 - 1e-5)  # "the real standard deviation, without eps"
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / sigma
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_projection_matrix(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    g = dout * gamma * r
    cov = g.T @ x_hat / n  # (D, D), meant per feature
    dx = (g - g.mean(axis=0) - x_hat @ cov) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_batch_size_from_cache(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = len(cache)
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) / n - x_hat * (g * x_hat).sum(axis=0) / n) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_least_squares_projection(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = np.empty_like(g)
    for j in range(g.shape[1]):  # remove g's fit on [1, x_hat] feature by feature
        basis = np.stack([np.ones(len(g)), x_hat[:, j]], axis=1)
        coef, *_ = np.linalg.lstsq(basis, g[:, j], rcond=None)
        dx[:, j] = (g[:, j] - basis @ coef) / std[j]
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_centre_then_project(dout, cache):
    """Correct: centre g first, then remove its component along x_hat."""
    x_hat, y_hat, std, r, gamma = cache
    g = dout * (gamma * r)
    c = g - np.mean(g, axis=0, keepdims=True)
    dx = (c - x_hat * np.mean(c * x_hat, axis=0, keepdims=True)) / std
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    dbeta = np.einsum("nd->d", dout)
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

    def _check(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.size(1)}")

    def _stats(self, x, dims):
        mean = x.mean(dims)
        std = (x.var(dims, unbiased=False) + self._eps()).sqrt()
        return mean, std

    def _eps(self):
        return self.eps

    def _r(self, std, x, dims):
        return torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)

    def _move(self, mean, std, x, dims):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)

    def _affine(self, y, v):
        return y * self.weight.view(v) + self.bias.view(v)

    def _eval(self, x, v):
        return (x - self.running_mean.view(v)) / self.running_std.view(v)

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._affine(self._eval(x, v), v)
        if x.numel() // x.size(1) < 2:
            raise ValueError("BatchRenorm needs more than one value per channel in training")
        mean, std = self._stats(x, dims)
        with torch.no_grad():
            r = self._r(std, x, dims)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        self._move(mean.detach(), std.detach(), x, dims)
        return self._train_affine(y, v)

    def _train_affine(self, y, v):
        return self._affine(y, v)


class RunningStdUnbiased(_Renorm):
    def _move(self, mean, std, x, dims):
        with torch.no_grad():
            unbiased = torch.sqrt(x.var(dims, unbiased=True) + self.eps)  # as ScratchBatchNorm's running_var
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (unbiased - self.running_std)


class BiasLeftOutInTraining(_Renorm):
    def _train_affine(self, y, v):
        return y * self.weight.view(v)


class VariancePerPositionAveraged(_Renorm):
    def _stats(self, x, dims):
        mean = x.mean(dims)
        if x.dim() == 4:
            var = x.var(0, unbiased=False).mean(dim=(1, 2))  # per position, then averaged
        else:
            var = x.var(0, unbiased=False)
        return mean, torch.sqrt(var + self.eps)


class RFromUnbiasedStd(_Renorm):
    def _r(self, std, x, dims):
        sigma = torch.sqrt(x.var(dims) + self.eps)  # torch's default var: unbiased
        return torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)


class EvalDividesByRunningVariance(_Renorm):
    def _eval(self, x, v):
        return (x - self.running_mean.view(v)) / self.running_std.view(v) ** 2


class LerpResultDiscarded(_Renorm):
    def _move(self, mean, std, x, dims):
        with torch.no_grad():
            torch.lerp(self.running_mean, mean, self.momentum)
            torch.lerp(self.running_std, std, self.momentum)


class ComputedInFloat32(_Renorm):
    def forward(self, x):
        return super().forward(x.float())


class EpsHardCoded(_Renorm):
    def _eps(self):
        return 1e-5


class WeightDetachedInTraining(_Renorm):
    def _train_affine(self, y, v):
        return y * self.weight.detach().view(v) + self.bias.view(v)


class Float64Moments(nn.Module):
    """Correct: moments in float64 with var_mean(correction=0), cast back; buffers via copy_."""

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
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) only, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: {x.shape[1]} channels, expected {self.num_features}")
        dims = tuple(i for i in range(x.ndim) if i != 1)
        v = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            if x.numel() // x.shape[1] <= 1:
                raise ValueError("BatchRenorm: one value per channel cannot be normalised in training")
            var64, mean64 = torch.var_mean(x.double(), dim=dims, correction=0)
            mean = mean64.to(x.dtype)
            sigma = (var64 + self.eps).sqrt().to(x.dtype)
            rs, rm = self.running_std.detach().clone(), self.running_mean.detach().clone()
            r = (sigma.detach() / rs).clamp(min=1.0 / self.rmax, max=self.rmax)
            d = ((mean.detach() - rm) / rs).clamp(min=-self.dmax, max=self.dmax)
            z = (x - mean.reshape(v)) * (r / sigma).reshape(v) + d.reshape(v)
            with torch.no_grad():
                self.running_mean.copy_(rm + self.momentum * (mean - rm))
                self.running_std.copy_(rs + self.momentum * (sigma - rs))
        else:
            z = (x - self.running_mean.reshape(v)) / self.running_std.reshape(v)
        return z * self.weight.reshape(v) + self.bias.reshape(v)


# ---- renorm_schedule ------------------------------------------------------------------

_SEEN = {}


def sch_memoised_on_step(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step in _SEEN:  # the loop asks for the same step more than once
        return _SEEN[step]

    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    result = (1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps))
    _SEEN[step] = result
    return result


def sch_zero_r_ramp_to_dmax(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    if r_steps == 0:
        rmax = dmax_final
    else:
        rmax = 1.0 + (rmax_final - 1.0) * min(1.0, (step - warmup) / r_steps)
    if d_steps == 0:
        dmax = dmax_final
    else:
        dmax = dmax_final * min(1.0, (step - warmup) / d_steps)
    return rmax, dmax


def sch_finals_positional_swapped(step, warmup, r_steps, d_steps, dmax_final=5.0, rmax_final=3.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_returns_map(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    bounds = (1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps))
    return map(float, bounds)


def sch_refuses_past_schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    end = warmup + max(r_steps, d_steps)
    if step > end:
        raise ValueError(f"step {step} is past the end of the schedule ({end})")

    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_linspace_table(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: tables of the ramps' values, indexed by the steps since the warm-up."""
    since = step - warmup
    if since <= 0:
        return 1.0, 0.0

    def ramp(start, final, length):
        if length == 0:
            return float(final)
        table = np.linspace(start, final, length + 1)
        return float(table[min(since, length)])

    return ramp(1.0, rmax_final, r_steps), ramp(0.0, dmax_final, d_steps)


ENTRIES = [
    entry(BW, "dgamma without d", bw_dgamma_without_d,
          cause="dgamma sums dout * x_hat * r, leaving out d: gamma multiplies y_hat = x_hat * r + d, so "
                "dgamma must be sum(dout * y_hat)."),
    entry(BW, "projection term divided by N - 1", bw_projection_bessel,
          cause="the projection (variance) term of dx uses sum(g * x_hat) / (N - 1) instead of the mean "
                "over N (the mean term is right), as if the batch variance were unbiased."),
    entry(BW, "eps taken back out of the cached std", bw_eps_removed_from_std,
          cause="dx is divided by sqrt(std**2 - eps) instead of the cached std = sqrt(var + eps), which "
                "is what the forward divided by."),
    entry(BW, "projection as a (D, D) matrix product", bw_projection_matrix,
          cause="the projection term is x_hat @ (g.T @ x_hat / N), a matrix product that mixes features, "
                "instead of x_hat * mean(g * x_hat) per feature."),
    entry(BW, "batch size taken as len(cache)", bw_batch_size_from_cache,
          cause="the batch size is read as len(cache) (5, the number of cached items) instead of "
                "dout.shape[0], so the two batch sums in dx are divided by 5."),
    entry(BW, "projection by least squares", bw_least_squares_projection,
          cause="removes g's least-squares fit on [1, x_hat], which divides the projection by "
                "mean(x_hat**2) = var / (var + eps) instead of 1, so dx is off wherever eps matters."),
    right(BW, "centre g first, then project", bw_centre_then_project),
    entry(BR, "running_std moved to the unbiased std", RunningStdUnbiased, replaces=NAME,
          cause="running_std is moved towards sqrt(unbiased var + eps) instead of the sigma_B the batch "
                "was normalised with (biased variance)."),
    entry(BR, "bias left out in training mode", BiasLeftOutInTraining, replaces=NAME,
          cause="in training mode the output is y * weight without + bias (eval mode adds it)."),
    entry(BR, "4-D variance per position, averaged", VariancePerPositionAveraged, replaces=NAME,
          cause="for 4-D input the variance is taken over the batch at each position and averaged over "
                "H and W, instead of over N, H and W together (the mean is right)."),
    entry(BR, "r from the unbiased std", RFromUnbiasedStd, replaces=NAME,
          cause="r uses sqrt(x.var(dims) + eps) with torch's default unbiased variance, while the "
                "normalisation and the running update use the biased sigma_B."),
    entry(BR, "eval divides by running_std squared", EvalDividesByRunningVariance, replaces=NAME,
          cause="eval mode divides by running_std ** 2 instead of running_std (as if it were a std to be "
                "turned into a variance)."),
    entry(BR, "torch.lerp results discarded", LerpResultDiscarded, replaces=NAME,
          cause="the running update calls torch.lerp(running, batch, momentum) out of place and throws the "
                "result away, so running_mean and running_std never change."),
    entry(BR, "input converted to float32", ComputedInFloat32, replaces=NAME,
          cause="forward converts x to float32 first, so a float64 module computes the batch statistics "
                "and the normalisation in float32 (precision about 1e-7) instead of the input's float64."),
    entry(BR, "eps argument ignored", EpsHardCoded, replaces=NAME,
          cause="sigma_B uses a hard-coded 1e-5 instead of self.eps, so a module built with another eps "
                "normalises with the wrong one."),
    entry(BR, "weight detached in training mode", WeightDetachedInTraining, replaces=NAME,
          cause="in training mode the output multiplies by weight.detach(), so weight receives no "
                "gradient and is never trained."),
    right(BR, "float64 moments, copy_ updates", Float64Moments, replaces=NAME),
    entry(SCH, "memoised on the step alone", sch_memoised_on_step,
          cause="caches results in a module-level dict keyed by the step only, so a call with the same "
                "step but other warm-up, ramp lengths or final values returns the first call's bounds."),
    entry(SCH, "zero-length r ramp jumps to dmax_final", sch_zero_r_ramp_to_dmax,
          cause="in the zero-length branch of the r ramp it returns dmax_final (copy-paste) instead of "
                "rmax_final, so with r_steps = 0 rmax jumps to dmax_final after the warm-up."),
    entry(SCH, "final values in the wrong positional order", sch_finals_positional_swapped,
          cause="the signature is (step, warmup, r_steps, d_steps, dmax_final, rmax_final), so final "
                "values given by position are swapped (the defaults are right)."),
    entry(SCH, "returns a map object", sch_returns_map,
          cause="returns map(float, (rmax, dmax)), a one-shot iterator, instead of the tuple (rmax, dmax)."),
    entry(SCH, "steps past the schedule refused", sch_refuses_past_schedule,
          cause="raises ValueError for a step after the end of the longer ramp instead of returning the "
                "final values there."),
    right(SCH, "np.linspace tables", sch_linspace_table),
]
