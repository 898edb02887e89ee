"""Held-out answers (fifth set, part b), lesson 04: batch_renorm_backward,
BatchRenorm, renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -------------------------------------------------------


def bw_float32(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = (dout * gamma * r).astype(np.float32)  # "saves memory"
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_y_hat_in_place(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    y_hat *= dout
    dgamma = y_hat.sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_mean_of_dout(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - dout.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_dbeta_mean(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.mean(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_n_from_shape1(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    N = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) / N - x_hat * (g * x_hat).sum(axis=0) / N) / std
    return dx, dgamma, dbeta


def bw_cache_order(dout, cache):
    x_hat, y_hat, r, std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_torch_dim(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(dim=0) - x_hat * (g * x_hat).mean(dim=0)) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm -------------------------------------------------------------------


class _R(nn.Module):
    """A right implementation in a learner's style; each wrong entry changes one piece."""

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
            raise ValueError(f"BatchRenorm expects 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def enough(self, x):
        if x.numel() // x.shape[1] < 2:
            raise ValueError("need at least 2 values per channel in training")

    def clip(self, mean, std):
        r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
        d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        return r, d

    def update(self, mean, std):
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_std += self.momentum * (std - self.running_std)

    def eval_norm(self, x, shape):
        return (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)

    def affine(self, y, shape):
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)

    def forward(self, x):
        self.validate(x)
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            self.enough(x)
            mean = x.mean(dim=dims)
            std = (x.var(dim=dims, correction=0) + self.eps).sqrt()
            with torch.no_grad():
                r, d = self.clip(mean, std)
            y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
            with torch.no_grad():
                self.update(mean, std)
        else:
            y = self.eval_norm(x, shape)
        return self.affine(y, shape)


class ParamsAsImages(_R):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        # shaped for broadcasting over (N, C, H, W)
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def affine(self, y, shape):
        return y * self.weight + self.bias


class BatchSizeCheck(_R):
    def enough(self, x):
        if x.shape[0] < 2:
            raise ValueError("need a batch of at least 2 in training")


class AssertChecks(_R):
    def validate(self, x):
        assert x.dim() in (2, 4), "BatchRenorm expects 2-D or 4-D input"
        assert x.shape[1] == self.num_features, "wrong number of channels"


class WarmStart(_R):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = False

    def update(self, mean, std):
        if not self.started:  # start the averages from the first batch, not from 0 and 1
            self.running_mean.copy_(mean)
            self.running_std.copy_(std)
            self.started = True
        else:
            super().update(mean, std)


class RDInEval(_R):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_r, self.last_d = None, None

    def clip(self, mean, std):
        r, d = super().clip(mean, std)
        self.last_r, self.last_d = r, d
        return r, d

    def eval_norm(self, x, shape):
        y = super().eval_norm(x, shape)
        if self.last_r is not None:  # same correction as in training
            y = y * self.last_r.reshape(shape) + self.last_d.reshape(shape)
        return y


class SuperInitLate(_R):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        super().__init__(num_features, eps, momentum, rmax, dmax)


# ---- renorm_schedule -------------------------------------------------------------


def _p(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_one_step_early(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup + 1) / length))  # step counts from 1

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_swapped_defaults(step, warmup, r_steps, d_steps, rmax_final=5.0, dmax_final=3.0):
    return 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps), dmax_final * _p(step, warmup, d_steps)


def sch_floor_at_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = max(1.0, rmax_final * _p(step, warmup, r_steps))  # never below 1
    dmax = dmax_final * _p(step, warmup, d_steps)
    return rmax, dmax


def sch_zero_only(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length == 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_bare_return(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return  # TODO: warm-up values
    return 1.0 + (rmax_final - 1.0) * _p(step, warmup, r_steps), dmax_final * _p(step, warmup, d_steps)


# ---- correct alternatives ----------------------------------------------------------


def bw_factored(dout, cache):
    """Correct: gamma * r / std factored out of the projection (they are per-feature constants)."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.einsum("nc,nc->c", dout, y_hat)
    dx = (gamma * r / (n * std)) * (n * dout - dbeta - x_hat * np.einsum("nc,nc->c", dout, x_hat))
    return dx, dgamma, dbeta


def sch_from_the_end(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: distance left to the end of each ramp."""

    def left(length):
        if length <= 0:
            return 0.0 if step > warmup else 1.0
        return float(np.clip((warmup + length - step) / length, 0.0, 1.0))

    return rmax_final - (rmax_final - 1.0) * left(r_steps), dmax_final - dmax_final * left(d_steps)


ENTRIES = [
    entry(BW, "gradient cast to float32", bw_float32,
          "casts g = dout * gamma * r to float32, so dx has float32 precision (about 1e-7 relative) for float64 inputs."),
    entry(BW, "y_hat multiplied in place", bw_y_hat_in_place,
          "computes dgamma with y_hat *= dout, which overwrites y_hat inside the cache: right the first time, "
          "wrong dgamma on any second backward with the same cache."),
    entry(BW, "mean term taken from dout", bw_mean_of_dout,
          "subtracts dout.mean(0) instead of g.mean(0) (g = dout * gamma * r) in dx: the mean term misses gamma * r."),
    entry(BW, "dbeta as a mean", bw_dbeta_mean,
          "dbeta = dout.mean(0) instead of dout.sum(0): too small by the batch size."),
    entry(BW, "batch size read from shape[1]", bw_n_from_shape1,
          "divides the sums by dout.shape[1] (the number of features) instead of the batch size: right only when N == C."),
    entry(BW, "cache unpacked with std and r swapped", bw_cache_order,
          "unpacks the cache as (x_hat, y_hat, r, std, gamma): multiplies by std and divides by r instead of the opposite."),
    entry(BW, "torch's dim= on NumPy arrays", bw_torch_dim,
          "calls .mean(dim=0) on NumPy arrays (torch's keyword), which raises TypeError; NumPy needs axis=0."),
    entry(BR, "weight and bias of shape (1, C, 1, 1)", ParamsAsImages,
          "creates weight and bias with shape (1, C, 1, 1) instead of (C,): right for images, but 2-D input broadcasts "
          "to a 4-D output and the parameters have the wrong shape.", replaces=NAME),
    entry(BR, "batch size checked instead of values per channel", BatchSizeCheck,
          "refuses training input with x.shape[0] < 2, so an image batch of one (N=1, H*W > 1 values per channel) "
          "is refused although it has enough values.", replaces=NAME),
    entry(BR, "assert instead of ValueError", AssertChecks,
          "checks the input's rank and channels with assert, so bad input raises AssertionError instead of ValueError "
          "(and nothing under python -O).", replaces=NAME),
    entry(BR, "running statistics started from the first batch", WarmStart,
          "copies the first batch's mean and std into the running statistics instead of a momentum step from 0 and 1.",
          replaces=NAME),
    entry(BR, "last r and d applied in eval mode", RDInEval,
          "keeps the last training r and d and applies them in eval mode too, where the output must be "
          "(x - running_mean) / running_std only.", replaces=NAME),
    entry(BR, "super().__init__() called after the parameters", SuperInitLate,
          "assigns nn.Parameters before calling super().__init__(), which raises AttributeError "
          "(cannot assign parameter before Module.__init__() call).", replaces=NAME),
    entry(SCH, "ramp one step early", sch_one_step_early,
          "uses (step - warmup + 1) / length, so each ramp starts and ends one step early."),
    entry(SCH, "default rmax_final and dmax_final swapped", sch_swapped_defaults,
          "defaults rmax_final=5.0, dmax_final=3.0 instead of 3.0 and 5.0: wrong whenever the defaults are used."),
    entry(SCH, "rmax as max(1, rmax_final * progress)", sch_floor_at_one,
          "rmax = max(1, rmax_final * progress) instead of 1 + (rmax_final - 1) * progress: stays at 1 for the first "
          "third of the ramp, then rises too fast (right only at the ends)."),
    entry(SCH, "only a zero-length ramp special-cased", sch_zero_only,
          "treats only length == 0 as an instant ramp; a negative length divides by it and the ramp never starts "
          "(stays at 1 and 0)."),
    entry(SCH, "bare return during warm-up", sch_bare_return,
          "unfinished: returns None while step <= warmup instead of (1.0, 0.0)."),
    right(BW, "gamma * r / std factored out, einsum", bw_factored),
    right(SCH, "distance left to the end of each ramp", sch_from_the_end),
]
