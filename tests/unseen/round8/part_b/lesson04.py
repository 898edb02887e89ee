"""Held-out answers (eighth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The given forward's cache is (x_hat, y_hat, std, r, gamma).

Written blind (solutions/04 only for the API); mistakes chosen to differ from every
earlier held-out set's lesson-04 entries."""

import numpy as np
import torch
from torch import nn

from _format import entry, notebook, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ---------------------------------------------------------


def bw_dgamma_total(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = np.sum(dout * y_hat)  # "sum of everything gamma touched"
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_staged_without_two(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dxhat = dout * gamma * r
    xmu = x_hat * std
    inv = 1.0 / std
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * inv**3
    dmu = np.sum(-dxhat * inv, axis=0) + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat * inv + dvar * xmu / n + dmu / n  # d var / d x_i = 2 (x_i - mu) / N
    dgamma = np.sum(dout * y_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_r_as_column(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r[:, None]
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_nested_return(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, ((dout * y_hat).sum(axis=0), dout.sum(axis=0))


def bw_dgamma_times_r(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = (dout * y_hat).sum(axis=0) * r
    return dx, dgamma, dout.sum(axis=0)


def bw_statistics_constant(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dx = dout * gamma * r / std  # "r and d are constants, and so are mu_B and sigma_B"
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_r_in_denominator(dout, cache):
    """Batch norm's closed form on dout * gamma, divided by the per-feature std / r."""
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma
    centred = g - g.mean(axis=0, keepdims=True)
    proj = x_hat * (g * x_hat).mean(axis=0, keepdims=True)
    dx = (centred - proj) / (std / r)
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    dbeta = np.add.reduce(dout, axis=0)
    return dx, dgamma, dbeta


# ---- BatchRenorm ------------------------------------------------------------------


class _Renorm(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _bounds(self):
        return self.rmax, self.dmax

    def _running(self):
        return self.running_mean, self.running_std

    def _check(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}) got {x.shape[1]} channels")
        if self.training and x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs more than one value per channel in training")

    def _rd(self, mean, std):
        rmax, dmax = self._bounds()
        mu, sigma = self._running()
        r = torch.clamp(std / sigma, 1.0 / rmax, rmax)
        d = torch.clamp((mean - mu) / sigma, -dmax, dmax)
        return r, d

    def _update(self, mean, std, r, d):
        mu, sigma = self._running()
        mu += self.momentum * (mean - mu)
        sigma += self.momentum * (std - sigma)

    def _eval(self, x, v):
        mu, sigma = self._running()
        return (x - mu.view(v)) / sigma.view(v)

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            mean = x.mean(dim=dims)
            std = torch.sqrt(x.var(dim=dims, unbiased=False) + self.eps)
            with torch.no_grad():
                r, d = self._rd(mean, std)
            y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
            with torch.no_grad():
                self._update(mean, std, r, d)
        else:
            y = self._eval(x, v)
        return y * self.weight.view(v) + self.bias.view(v)


class ClippedValuesIntoRunning(_Renorm):
    def _update(self, mean, std, r, d):
        mu, sigma = self._running()
        # move towards the corrected statistics sigma * r and mu + sigma * d
        target_std = sigma * r
        target_mean = mu + sigma * d
        mu += self.momentum * (target_mean - mu)
        sigma += self.momentum * (target_std - sigma)


class RFromVariances(_Renorm):
    def _rd(self, mean, std):
        rmax, dmax = self._bounds()
        mu, sigma = self._running()
        r = torch.clamp(std**2 / sigma**2, 1.0 / rmax, rmax)  # ratio of the variances
        d = torch.clamp((mean - mu) / sigma, -dmax, dmax)
        return r, d


class BoundsUnderOtherNames(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        del self.rmax, self.dmax
        self.r_max, self.d_max = rmax, dmax

    def _bounds(self):
        return self.r_max, self.d_max


class GuardInEvalToo(_Renorm):
    def _check(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}) got {x.shape[1]} channels")
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs more than one value per channel")


class BufferNamedRunningVar(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        nn.Module.__init__(self)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))  # holds sigma

    def _running(self):
        return self.running_mean, self.running_var


class UpdateOnlyWithGrad(_Renorm):
    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, v) * self.weight.view(v) + self.bias.view(v)
        mean = x.mean(dim=dims)
        std = torch.sqrt(x.var(dim=dims, unbiased=False) + self.eps)
        with torch.no_grad():
            r, d = self._rd(mean, std)
        y = (x - mean.view(v)) / std.view(v) * r.view(v) + d.view(v)
        if torch.is_grad_enabled():  # only a real training step should move the averages
            with torch.no_grad():
                self._update(mean, std, r, d)
        return y * self.weight.view(v) + self.bias.view(v)


class EvalImagesTodo(_Renorm):
    def _eval(self, x, v):
        if x.dim() == 4:
            raise NotImplementedError("TODO: eval mode for images")
        return super()._eval(x, v)


class RebindAndDetach(nn.Module):
    """var_mean over the reduced dims, r and d detached with .detach(), buffers rebound
    (out of place) under no_grad, the affine step with addcmul."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum, self.rmax, self.dmax = num_features, eps, momentum, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError("expected 2-D or 4-D input")
        if x.shape[1] != self.num_features:
            raise ValueError("wrong number of channels")
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        dims = (0, 2, 3) if x.ndim == 4 else (0,)
        if self.training:
            if x.numel() < 2 * x.shape[1]:
                raise ValueError("one value per channel")
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            sigma_b = (var + self.eps).sqrt()
            r = (sigma_b.detach() / self.running_std).clamp(min=1.0 / self.rmax, max=self.rmax)
            d = ((mean.detach() - self.running_mean) / self.running_std).clamp(min=-self.dmax, max=self.dmax)
            z = (x - mean.reshape(shape)) / sigma_b.reshape(shape) * r.reshape(shape) + d.reshape(shape)
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_std = (1 - m) * self.running_std + m * sigma_b
        else:
            z = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        return torch.addcmul(self.bias.reshape(shape), z, self.weight.reshape(shape))


# ---- renorm_schedule -----------------------------------------------------------------


def sch_float32(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def prog(length):
        if length <= 0:
            return np.float32(1.0 if step > warmup else 0.0)
        return np.clip(np.float32(step - warmup) / np.float32(length), np.float32(0), np.float32(1))

    return 1 + (rmax_final - 1) * prog(r_steps), dmax_final * prog(d_steps)


def sch_shared_length(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    total = r_steps + d_steps  # one relaxation phase for both bounds
    if total <= 0:
        p = 1.0 if step > warmup else 0.0
    else:
        p = min(1.0, max(0.0, (step - warmup) / total))
    return 1.0 + (rmax_final - 1.0) * p, dmax_final * p


@notebook
def sch_call_counter(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    # called once per training step, so count the calls
    sch_call_counter.calls = getattr(sch_call_counter, "calls", -1) + 1
    t = sch_call_counter.calls

    def prog(length):
        if length <= 0:
            return 1.0 if t > warmup else 0.0
        return min(1.0, max(0.0, (t - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * prog(r_steps), dmax_final * prog(d_steps)


def sch_length_with_warmup(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def prog(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / (warmup + length)))

    return 1.0 + (rmax_final - 1.0) * prog(r_steps), dmax_final * prog(d_steps)


def sch_zero_length_never(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def prog(length):
        if length == 0:
            return 0.0  # no ramp: the bound is never relaxed
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * prog(r_steps), dmax_final * prog(d_steps)


def sch_clamped_step(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Clamps the step into [warmup, warmup + length] and interpolates, instead of
    clamping a progress; a ramp of length <= 0 is a step function at the warm-up."""

    def ramp(start, end, length):
        if length <= 0:
            return float(end) if step > warmup else float(start)
        t = min(max(step, warmup), warmup + length)
        return start + (end - start) * (t - warmup) / length

    return ramp(1.0, rmax_final, r_steps), ramp(0.0, dmax_final, d_steps)


ENTRIES = [
    entry(BW, "dgamma summed over every axis", bw_dgamma_total,
          "dgamma = np.sum(dout * y_hat) over the whole array (one number) instead of over the batch axis (one value per feature)."),
    entry(BW, "staged dx without the factor 2 of the variance branch", bw_staged_without_two,
          "in a staged backward the variance branch adds dvar * (x - mu) / N instead of dvar * 2 (x - mu) / N (the derivative of the squared deviation loses its 2)."),
    entry(BW, "r reshaped as a column", bw_r_as_column,
          "multiplies dout * gamma by r[:, None], a (D, 1) column, so r broadcasts along the batch axis: a broadcasting error unless N == D, and the wrong factor per example when N == D."),
    entry(BW, "returns (dx, (dgamma, dbeta))", bw_nested_return,
          "returns a pair (dx, (dgamma, dbeta)) instead of the three arrays (dx, dgamma, dbeta)."),
    entry(BW, "dgamma multiplied by r", bw_dgamma_times_r,
          "dgamma = sum(dout * y_hat) * r: r is already inside y_hat = x_hat * r + d, so it is counted twice."),
    entry(BW, "batch statistics held constant too", bw_statistics_constant,
          "dx = dout * gamma * r / sigma_B: besides r and d it also treats the batch mean and standard deviation as constants, so the mean and variance terms of batch norm's backward are missing."),
    right(BW, "closed form on dout * gamma over std / r, einsum", bw_r_in_denominator),
    entry(BR, "running statistics moved towards the clipped values", ClippedValuesIntoRunning,
          "updates the running statistics towards the corrected values (running_std * r and running_mean + running_std * d, clipped) instead of the batch's own sigma_B and mu_B, so with rmax = 1, dmax = 0 they never move.", replaces=NAME),
    entry(BR, "r as a ratio of variances", RFromVariances,
          "r = clip(sigma_B^2 / sigma^2) (the ratio of the variances) instead of clip(sigma_B / sigma), the ratio of the standard deviations.", replaces=NAME),
    entry(BR, "rmax and dmax stored as r_max and d_max", BoundsUnderOtherNames,
          "stores the bounds as self.r_max and self.d_max, so the attributes rmax and dmax that the training loop sets are never read (the bounds stay at their construction values) and m.rmax does not exist.", replaces=NAME),
    entry(BR, "one-value guard in eval mode too", GuardInEvalToo,
          "raises the one-value-per-channel ValueError in eval mode too, so a single example cannot be evaluated, though eval mode needs no batch statistics.", replaces=NAME),
    entry(BR, "running std kept in a buffer named running_var", BufferNamedRunningVar,
          "registers the running standard deviation under the name running_var (copied from ScratchBatchNorm) instead of running_std, so m.running_std does not exist and state_dict has the wrong key.", replaces=NAME),
    entry(BR, "running statistics updated only with gradients on", UpdateOnlyWithGrad,
          "updates running_mean and running_std only when torch.is_grad_enabled(), so a training-mode forward under torch.no_grad() leaves the running statistics unchanged.", replaces=NAME),
    entry(BR, "eval mode for images left as a TODO", EvalImagesTodo,
          "unfinished: eval mode raises NotImplementedError for (N, C, H, W) input (only 2-D eval is written).", replaces=NAME),
    right(BR, "var_mean, .detach() and rebound buffers", RebindAndDetach, replaces=NAME),
    entry(SCH, "computed in float32", sch_float32,
          "computes the progress in np.float32, so the bounds are np.float32 numbers off by float32 rounding (about 1e-7) instead of Python floats."),
    entry(SCH, "one ramp length r_steps + d_steps for both", sch_shared_length,
          "uses r_steps + d_steps as the length of both ramps, so rmax and dmax rise together over the summed length instead of over r_steps and d_steps."),
    entry(SCH, "counts its calls instead of reading step", sch_call_counter,
          "ignores the step argument and counts its own calls in a function attribute, so the bounds are right only when it is called exactly once per step from step 0."),
    entry(SCH, "ramp length includes the warm-up", sch_length_with_warmup,
          "divides (step - warmup) by warmup + length instead of by the ramp's length, so the ramps start on time but are too slow and end warmup steps late."),
    entry(SCH, "zero-length ramp never finishes", sch_zero_length_never,
          "a ramp of 0 steps returns the start value forever (1 or 0) instead of jumping to its final value right after the warm-up."),
    right(SCH, "step clamped into the ramp, then interpolated", sch_clamped_step),
]
