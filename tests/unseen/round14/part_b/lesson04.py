"""Held-out answers (fourteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_dx_squeezed(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return np.squeeze(dx), dgamma, dbeta  # "no stray size-1 axes"


def bw_gamma_missing_in_mean_term(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    scale = gamma * r / std
    dx = scale * dout - (r / std) * dout.mean(axis=0) - scale * x_hat * (dout * x_hat).mean(axis=0)
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_xhat_rebuilt(dout, cache):
    """Correct: x_hat rebuilt from y_hat (its batch mean is d), dgamma as a diagonal."""
    _, y_hat, std, r, gamma = cache
    x_hat = (y_hat - y_hat.mean(axis=0)) / r
    n = dout.shape[0]
    dxhat = dout * gamma * r
    dx = (n * dxhat - dxhat.sum(axis=0) - x_hat * np.sum(dxhat * x_hat, axis=0)) / (n * std)
    dgamma = np.diag(dout.T @ y_hat).copy()
    dbeta = np.ones(n) @ dout
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Mine(nn.Module):
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

    def _eval_view(self, x):
        return [1, -1] + [1] * (x.dim() - 2)

    def _sigma(self, x, dims, mean, v):
        return torch.sqrt(((x - mean.view(v)) ** 2).mean(dim=dims) + self.eps)

    def _eval_stats(self):
        return self.running_mean, self.running_std

    def _remember(self, mean, sigma):
        pass

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0] + list(range(2, x.dim()))
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            ev = self._eval_view(x)
            m, s = self._eval_stats()
            y = (x - m.view(ev)) / s.view(ev)
            return y * self.weight.view(ev) + self.bias.view(ev)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: more than one value per channel needed in training")
        mean = x.mean(dim=dims)
        sigma = self._sigma(x, dims, mean, v)
        with torch.no_grad():
            r = (sigma / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        y = (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
        with torch.no_grad():
            self.running_mean.add_(self.momentum * (mean.detach() - self.running_mean))
            self.running_std.add_(self.momentum * (sigma.detach() - self.running_std))
            self._remember(mean.detach(), sigma.detach())
        return y * self.weight.view(v) + self.bias.view(v)


class EvalViewAlways4D(_Mine):
    def _eval_view(self, x):
        return [1, -1, 1, 1]  # "images are (N, C, H, W)"


class OneSigmaForAllChannels(_Mine):
    def _sigma(self, x, dims, mean, v):
        var = ((x - mean.view(v)) ** 2).mean()  # every channel's squared deviations together
        return torch.sqrt(var + self.eps).expand(self.num_features)


class EvalWithLastBatch(_Mine):
    def _remember(self, mean, sigma):
        self._last = (mean.clone(), sigma.clone())

    def _eval_stats(self):
        return getattr(self, "_last", (self.running_mean, self.running_std))


# ---- renorm_schedule ------------------------------------------------------------------


def _progress(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_parentheses_rmax(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + rmax_final - 1.0 * _progress(step, warmup, r_steps)  # meant (rmax_final - 1.0) * p
    dmax = dmax_final * _progress(step, warmup, d_steps)
    return rmax, dmax


def sch_rounded(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps)
    dmax = dmax_final * _progress(step, warmup, d_steps)
    return round(rmax, 2), round(dmax, 2)  # "tidy numbers for the log"


def sch_longer_ramp_for_both(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    length = max(r_steps, d_steps)  # "the schedule ends when the longer ramp ends"
    p = _progress(step, warmup, length)
    return 1.0 + (rmax_final - 1.0) * p, dmax_final * p


ENTRIES = [
    entry(BW, "dx squeezed", bw_dx_squeezed,
          cause="returns np.squeeze(dx), so with one feature (D = 1) or one example dx loses an axis "
                "and no longer has x's shape (N, D)."),
    entry(BW, "gamma missing from the mean term", bw_gamma_missing_in_mean_term,
          cause="the mean term of dx is (r / std) * mean(dout) without gamma, while the dout term and "
                "the projection term carry gamma * r / std."),
    right(BW, "x_hat rebuilt from y_hat, np.diag for dgamma", bw_xhat_rebuilt),
    entry(BR, "eval mode always viewed as (1, C, 1, 1)", EvalViewAlways4D, replaces=NAME,
          cause="in eval mode the running statistics, weight and bias are viewed as (1, C, 1, 1) for "
                "every input, so 2-D input (N, C) broadcasts to the wrong shape (4-D input is right)."),
    entry(BR, "one sigma_B for all channels", OneSigmaForAllChannels, replaces=NAME,
          cause="sigma_B is the square root of the mean squared deviation over every channel together "
                "(one number for the layer) instead of one per channel; the mean is per channel."),
    entry(BR, "eval mode uses the last training batch's statistics", EvalWithLastBatch, replaces=NAME,
          cause="eval mode normalises with the mean and sigma_B of the last training batch (kept in "
                "self._last) instead of running_mean and running_std."),
    entry(SCH, "missing parentheses around rmax_final - 1", sch_parentheses_rmax,
          cause="rmax is 1 + rmax_final - 1 * progress instead of 1 + (rmax_final - 1) * progress, so "
                "rmax starts at rmax_final + 1 and falls to rmax_final instead of ramping up from 1."),
    entry(SCH, "both ramps over the longer length", sch_longer_ramp_for_both,
          cause="both bounds ramp over max(r_steps, d_steps) steps, so the shorter ramp is stretched "
                "(its bound reaches its final value late); equal lengths are right."),
    entry(SCH, "bounds rounded to two decimals", sch_rounded,
          cause="returns round(rmax, 2), round(dmax, 2), so during a ramp the bounds are off by up to "
                "0.005 wherever the exact value has more decimals."),
]
