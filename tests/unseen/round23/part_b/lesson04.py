"""Held-out answers (twenty-third set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_mean_term_added(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g + g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_chained_zeros(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dgamma = dbeta = np.zeros_like(gamma)
    for i in range(dout.shape[0]):  # accumulate example by example
        dgamma += dout[i] * y_hat[i]
        dbeta += dout[i]
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_d_from_mean_sum_form(dout, cache):
    """Correct: dgamma split as r * sum(dout * x_hat) + d * sum(dout), d read back as y_hat's batch mean
    (x_hat has mean 0); dx in the sum form with N."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    d = y_hat.mean(axis=0)
    dbeta = np.sum(dout, axis=0)
    dgamma = r * np.sum(dout * x_hat, axis=0) + d * dbeta
    g = dout * (gamma * r)
    dx = (n * g - np.sum(g, axis=0) - x_hat * np.sum(g * x_hat, axis=0)) / (n * std)
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
    """A right learner's module in small methods; each wrong entry overrides one."""

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

    def _validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) expected, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): got {x.shape[1]} channels")

    def _correction(self, mean, std):
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.rmax, self.rmax)
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
        self._validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self._correction(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class KerasInferenceAverages(_Renorm):
    """Eval mode normalises with a second, Keras-style pair of moving averages (moving_mean,
    moving_variance, decay 0.99), kept besides running_mean / running_std."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.register_buffer("moving_mean", torch.zeros(num_features))
        self.register_buffer("moving_variance", torch.ones(num_features))
        self.inference_decay = 0.99  # Keras's BatchNormalization(momentum=0.99)

    def _update(self, mean, std):
        super()._update(mean, std)
        with torch.no_grad():
            a = self.inference_decay
            self.moving_mean.mul_(a).add_((1 - a) * mean)
            self.moving_variance.mul_(a).add_((1 - a) * (std * std - self.eps))

    def _eval(self, x, view):
        x_hat = (x - self.moving_mean.view(view)) / torch.sqrt(self.moving_variance.view(view) + self.eps)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class SigmaDetachedInPlace(_Renorm):
    """r's sigma_B taken as std.detach_() (in place) where std.detach() was meant."""

    def _correction(self, mean, std):
        r = (std.detach_() / self.running_std).clamp(1.0 / self.rmax, self.rmax)
        d = ((mean.detach() - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d


class EvalFunctionalStdAsVar(_Renorm):
    """Eval mode through F.batch_norm, running_std passed in its running_var slot."""

    def _eval(self, x, view):
        return F.batch_norm(x, self.running_mean, self.running_std, self.weight, self.bias,
                            training=False, eps=self.eps)


class DmaxDefaultOne(_Renorm):
    """dmax defaults to 1.0, like rmax."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=1.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)


class MeanUpdateUnweighted(_Renorm):
    """Running averages moved with mul_(1 - momentum).add_(...): the batch mean added without momentum."""

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(mean)
            self.running_std.mul_(1 - self.momentum).add_(self.momentum * std)


class VarMeanRatioAddcmul(nn.Module):
    """Correct: torch.var_mean for the batch statistics, r and d from detached copies, the correction
    written as (x - mu) * (r / sigma_B) + d, buffers moved with lerp_, eval and affine with addcmul."""

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

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not a {x.ndim}-D tensor")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        if not self.training:
            scale = (1.0 / self.running_std).reshape(shape)
            y = (x - self.running_mean.reshape(shape)) * scale
            return torch.addcmul(self.bias.reshape(shape), y, self.weight.reshape(shape))
        dims = (0,) if x.ndim == 2 else (0, 2, 3)
        if x.numel() // self.num_features == 1:
            raise ValueError("BatchRenorm: one value per channel cannot be normalised in training")
        var, mu = torch.var_mean(x, dim=dims, correction=0)
        sigma = torch.sqrt(var + self.eps)
        s_const, m_const = sigma.detach(), mu.detach()
        r = torch.clamp(s_const / self.running_std, min=1.0 / self.rmax, max=self.rmax)
        d = torch.clamp((m_const - self.running_mean) / self.running_std, min=-self.dmax, max=self.dmax)
        y = (x - mu.reshape(shape)) * (r / sigma).reshape(shape) + d.reshape(shape)
        with torch.no_grad():
            self.running_mean.lerp_(m_const, self.momentum)
            self.running_std.lerp_(s_const, self.momentum)
        return torch.addcmul(self.bias.reshape(shape), y, self.weight.reshape(shape))


# ---- renorm_schedule ------------------------------------------------------------------


def sch_paper_order_assumed(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    # as in the paper: d finishes first (25k), r later (40k)
    if step <= warmup:
        return 1.0, 0.0
    t = step - warmup
    rmax = 1.0 + (rmax_final - 1.0) * t / r_steps if r_steps > 0 else rmax_final
    if t <= d_steps:  # both ramps still rising
        return rmax, dmax_final * t / d_steps
    if t <= r_steps:  # d done, r still rising
        return rmax, dmax_final
    return rmax_final, dmax_final


def sch_zero_ramp_next_whole_step(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:  # no ramp: final from the step after the warm-up
            return 1.0 if step >= warmup + 1 else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "mean term of dx added instead of subtracted", bw_mean_term_added,
          cause="dx is written (g + mean(g) - x_hat * mean(g * x_hat)) / std, the batch mean of g added where "
                "it must be subtracted, so dx is off by 2 * mean(g) / std per feature (it no longer sums to "
                "zero over the batch); dgamma and dbeta are right."),
    entry(BW, "dgamma = dbeta = np.zeros_like(gamma): one array for both", bw_chained_zeros,
          cause="dgamma and dbeta are created by the chained assignment dgamma = dbeta = np.zeros_like(gamma), "
                "so both names are one array and each receives both accumulations: both are returned as "
                "sum(dout * y_hat) + sum(dout); dx is right."),
    right(BW, "dgamma from r * sum(dout * x_hat) + d * sum(dout), d as y_hat's mean; dx in the sum form",
          bw_d_from_mean_sum_form),
    entry(BR, "eval mode through Keras-style moving_mean / moving_variance (decay 0.99)",
          KerasInferenceAverages, replaces=NAME,
          cause="besides running_mean and running_std the module keeps Keras's separate inference averages "
                "(moving_mean, moving_variance, updated with decay 0.99) and eval mode normalises with those, "
                "not with running_mean and running_std, so eval outputs are wrong (and the state_dict has two "
                "extra buffers); training mode and running_mean / running_std are right."),
    entry(BR, "sigma_B for r taken as std.detach_() (in place)", SigmaDetachedInPlace, replaces=NAME,
          cause="r is computed from std.detach_() instead of std.detach(), which detaches the batch std itself "
                "in place, so the normalisation (x - mean) / std no longer passes a gradient through sigma_B: "
                "the input gradient lacks the variance term (forward outputs and buffers are right)."),
    entry(BR, "eval mode through F.batch_norm with running_std as the variance", EvalFunctionalStdAsVar,
          replaces=NAME,
          cause="eval mode calls F.batch_norm(x, running_mean, running_std, weight, bias, training=False, "
                "eps=eps), passing the running standard deviation where F.batch_norm expects a variance, so eval "
                "divides by sqrt(running_std + eps) instead of running_std; training mode is right."),
    entry(BR, "dmax defaults to 1.0", DmaxDefaultOne, replaces=NAME,
          cause="the signature gives dmax=1.0 (taken as neutral like rmax=1.0) instead of 0.0, so a module built "
                "with the defaults lets d reach [-1, 1] and is not plain batch norm in training; modules given "
                "dmax explicitly are right."),
    entry(BR, "running_mean moved with mul_(1 - momentum).add_(mean)", MeanUpdateUnweighted, replaces=NAME,
          cause="the running mean is updated as running_mean.mul_(1 - momentum).add_(mean), the batch mean added "
                "without its factor momentum, so running_mean drifts towards mean / momentum (eval mode is wrong, "
                "and so is d from the second step on when dmax > 0); running_std's update and the first "
                "training output are right."),
    right(BR, "torch.var_mean, (x - mu) * (r / sigma_B) + d, lerp_ buffers, addcmul", VarMeanRatioAddcmul,
          replaces=NAME),
    entry(SCH, "assumes the d ramp ends first (the paper's order)", sch_paper_order_assumed,
          cause="the schedule is written for the paper's order (d_steps <= r_steps): after the d ramp ends it "
                "only checks t <= r_steps, and while t <= d_steps it returns the unclamped r ramp, so when "
                "d_steps > r_steps rmax overshoots rmax_final between the two ramp ends; schedules with "
                "d_steps <= r_steps are right."),
    entry(SCH, "a ramp of 0 steps finishes at step warmup + 1", sch_zero_ramp_next_whole_step,
          cause="a ramp of 0 steps returns its final value only from step >= warmup + 1 (read as 'the next "
                "step') instead of for every step > warmup, so with a fractional warm-up (12.5 from "
                "set_bounds' scaling) step 13 still gets the start value; integer warm-ups and ramps of "
                "positive length are right."),
]
