"""Held-out answers (sixth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The given forward's cache is (x_hat, y_hat, std, r, gamma).

Each wrong entry is a learner's whole answer with ONE slip; the BatchRenorm answers
share a right base written as a learner would (``_Renorm``) and override the one
method where the slip is.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"


# ---- batch_renorm_backward ------------------------------------------------------------


def bw_gamma_in_dgamma(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * gamma * y_hat, axis=0)
    dxh = dout * gamma * r
    dx = (n * dxh - dxh.sum(axis=0) - x_hat * (dxh * x_hat).sum(axis=0)) / (n * std)
    return dx, dgamma, dbeta


def bw_projection_from_dout(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    proj = (dout * x_hat).mean(axis=0)
    dx = (g - g.mean(axis=0) - x_hat * proj) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dx_transposed(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    # features as rows, so that each feature's batch is one row
    gt = (dout * gamma * r).T
    xt = x_hat.T
    dxt = (gt - gt.mean(axis=1, keepdims=True) - xt * (gt * xt).mean(axis=1, keepdims=True)) / std[:, None]
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dxt, dgamma, dbeta


def bw_n_from_size(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    N = dout.size
    g = dout * gamma * r
    dx = (g - g.sum(axis=0) / N - x_hat * (g * x_hat).sum(axis=0) / N) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_r_averaged(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * np.mean(r)
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_jacobian_einsum(dout, cache):
    """Right: the per-feature Jacobian d x_hat_i / d x_j built explicitly, (N, N, D),
    and contracted with the gradient reaching x_hat."""
    x_hat, y_hat, std, r, gamma = cache
    n = x_hat.shape[0]
    eye = np.eye(n)[:, :, None]
    jac = (eye - 1.0 / n - np.einsum("id,jd->ijd", x_hat, x_hat) / n) / std  # [i, j, d]
    g = dout * gamma * r
    dx = np.einsum("ijd,id->jd", jac, g)
    return dx, np.einsum("nd,nd->d", dout, y_hat), dout.sum(axis=0)


# ---- BatchRenorm --------------------------------------------------------------------


class _Renorm(nn.Module):
    """Right: a learner's BatchRenorm, split in small methods."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.rmax = rmax
        self.dmax = dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._buffers_init()

    def _buffers_init(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_std", torch.ones(self.num_features))

    def _check(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}) got {x.shape[1]} channels")

    @staticmethod
    def _axes(x):
        return (0,) if x.dim() == 2 else (0, 2, 3)

    @staticmethod
    def _col(t, x):
        return t.reshape(1, -1, 1, 1) if x.dim() == 4 else t.reshape(1, -1)

    def _clip(self, std, mean):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, min=1.0 / self.rmax, max=self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, min=-self.dmax, max=self.dmax)
        return r, d

    def _update(self, x, mean, std):
        with torch.no_grad():
            self.running_mean.add_(self.momentum * (mean - self.running_mean))
            self.running_std.add_(self.momentum * (std - self.running_std))

    def _eval(self, x):
        return (x - self._col(self.running_mean, x)) / self._col(self.running_std, x)

    def _train(self, x):
        axes = self._axes(x)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs at least 2 values per channel in training")
        mean = x.mean(dim=axes)
        std = (x.var(dim=axes, unbiased=False) + self.eps).sqrt()
        r, d = self._clip(std, mean)
        xh = (x - self._col(mean, x)) / self._col(std, x)
        y = xh * self._col(r, x) + self._col(d, x)
        self._update(x, mean, std)
        return y

    def forward(self, x):
        self._check(x)
        y = self._train(x) if self.training else self._eval(x)
        return y * self._col(self.weight, x) + self._col(self.bias, x)


class PlainShortcutNoUpdate(_Renorm):
    def _train(self, x):
        if self.rmax == 1 and self.dmax == 0:  # plain batch norm: no need for r and d
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        return super()._train(x)


class NormalisationInNoGrad(_Renorm):
    def _train(self, x):
        axes = self._axes(x)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs at least 2 values per channel in training")
        with torch.no_grad():  # r and d must not get gradients
            mean = x.mean(dim=axes)
            std = (x.var(dim=axes, unbiased=False) + self.eps).sqrt()
            r = torch.clamp(std / self.running_std, min=1.0 / self.rmax, max=self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, min=-self.dmax, max=self.dmax)
            y = (x - self._col(mean, x)) / self._col(std, x) * self._col(r, x) + self._col(d, x)
            self.running_mean.add_(self.momentum * (mean - self.running_mean))
            self.running_std.add_(self.momentum * (std - self.running_std))
        return y


class BuffersNotPersistent(_Renorm):
    def _buffers_init(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features), persistent=False)
        self.register_buffer("running_std", torch.ones(self.num_features), persistent=False)


class ChannelCheck2DOnly(_Renorm):
    def _check(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), got {tuple(x.shape)}")
        if x.dim() == 2 and x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}) got {x.shape[1]} channels")


class EvalNotReshaped(_Renorm):
    def _eval(self, x):
        return (x - self.running_mean) / self.running_std


class RunningStdOfWholeBatch(_Renorm):
    def _update(self, x, mean, std):
        with torch.no_grad():
            self.running_mean.add_(self.momentum * (mean - self.running_mean))
            whole = torch.sqrt(x.var(unbiased=False) + self.eps)
            self.running_std.add_(self.momentum * (whole - self.running_std))


class RminFixedAtInit(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.rmin = 1.0 / rmax

    def _clip(self, std, mean):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, min=self.rmin, max=self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, min=-self.dmax, max=self.dmax)
        return r, d


class CentresInputInPlace(_Renorm):
    def _train(self, x):
        axes = self._axes(x)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs at least 2 values per channel in training")
        mean = x.mean(dim=axes)
        std = (x.var(dim=axes, unbiased=False) + self.eps).sqrt()
        r, d = self._clip(std, mean)
        x -= self._col(mean, x)  # save memory: centre in place
        x /= self._col(std, x)
        y = x * self._col(r, x) + self._col(d, x)
        self._update(x, mean, std)
        return y


class RmaxDmaxSwapped(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.rmax, self.dmax = dmax, rmax


class ClampMinMaxFlattened(nn.Module):
    """Right: channels flattened to (C, values), clipping with torch.minimum/maximum,
    running updates with mul_ and add_, eval as one scale and shift."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.momentum, self.rmax, self.dmax = momentum, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError(f"input must be (N, C) or (N, C, H, W), got {x.ndim} dimensions")
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {c}")
        shape = (1, c) + (1,) * (x.ndim - 2)
        if not self.training:
            scale = self.weight / self.running_std
            shift = self.bias - self.running_mean * scale
            return x * scale.view(shape) + shift.view(shape)
        flat = x.movedim(1, -1).reshape(-1, c)  # (values, C)
        if flat.shape[0] < 2:
            raise ValueError("one value per channel: cannot normalise in training mode")
        mean = flat.mean(0)
        std = ((flat - mean).pow(2).mean(0) + self.eps).sqrt()
        with torch.no_grad():
            ratio = std / self.running_std
            r = torch.maximum(torch.minimum(ratio, torch.full_like(ratio, self.rmax)),
                              torch.full_like(ratio, 1.0 / self.rmax))
            shift_ = (mean - self.running_mean) / self.running_std
            d = torch.maximum(torch.minimum(shift_, torch.full_like(shift_, self.dmax)),
                              torch.full_like(shift_, -self.dmax))
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_std.mul_(1 - self.momentum).add_(self.momentum * std)
        y = (x - mean.view(shape)) / std.view(shape)
        y = y * r.view(shape) + d.view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape)


# ---- renorm_schedule ----------------------------------------------------------------


def _progress(step, start, length):
    if length <= 0:
        return 1.0 if step > start else 0.0
    return min(1.0, max(0.0, (step - start) / length))


def sch_d_over_r_steps(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps)
    dmax = dmax_final * _progress(step, warmup, r_steps)
    return rmax, dmax


def sch_dmax_capped_at_rmax_final(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def up(length):  # ramp up from the warm-up, 0 before it
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return max(0.0, (step - warmup) / length)

    rmax = min(1.0 + (rmax_final - 1.0) * up(r_steps), rmax_final)
    dmax = min(dmax_final * up(d_steps), rmax_final)
    return rmax, dmax


def sch_ramp_ends_absolute(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    # r_steps / d_steps: the steps at which the bounds reach their final values
    rmax = 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps - warmup)
    dmax = dmax_final * _progress(step, warmup, d_steps - warmup)
    return rmax, dmax


def sch_both_final_after_r(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    if step >= warmup + r_steps:
        return rmax_final, dmax_final
    rmax = 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps)
    dmax = dmax_final * _progress(step, warmup, d_steps)
    return rmax, dmax


def sch_finals_hard_coded(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (3.0 - 1.0) * _progress(step, warmup, r_steps)
    dmax = 5.0 * _progress(step, warmup, d_steps)
    return rmax, dmax


def sch_elapsed_clipped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Right: steps elapsed since the warm-up, clipped to the ramp's length."""
    def fraction(length):
        elapsed = step - warmup
        if elapsed <= 0:
            return 0.0
        if elapsed >= length:
            return 1.0
        return elapsed / length

    return (1.0 + fraction(r_steps) * (rmax_final - 1.0), fraction(d_steps) * dmax_final)


ENTRIES = [
    entry(BW, "gamma in dgamma", bw_gamma_in_dgamma,
          "dgamma = sum(dout * gamma * y_hat): gamma multiplies its own gradient "
          "(it should be sum(dout * y_hat))"),
    entry(BW, "projection term from dout", bw_projection_from_dout,
          "the variance (projection) term of dx uses mean(dout * x_hat) instead of "
          "mean(g * x_hat) with g = dout * gamma * r: gamma * r is missing from that term only"),
    entry(BW, "dx returned transposed", bw_dx_transposed,
          "dx is computed on the transposed arrays (features as rows) and returned as (D, N) "
          "without transposing back"),
    entry(BW, "N taken as dout.size", bw_n_from_size,
          "the batch size is read as dout.size (N * D values) instead of dout.shape[0], so the "
          "mean and projection terms of dx are divided by N * D"),
    entry(BW, "r averaged over the features", bw_r_averaged,
          "r is treated as one number (np.mean(r)) instead of a per-feature vector, so features "
          "whose r is clipped differently get the wrong factor in dx"),
    entry(BR, "plain batch-norm shortcut skips the running update", PlainShortcutNoUpdate,
          "with rmax = 1 and dmax = 0 the learner returns F.batch_norm's output directly and "
          "never updates running_mean and running_std in that case", replaces=NAME),
    entry(BR, "whole training normalisation inside no_grad", NormalisationInNoGrad,
          "the no_grad block meant for r and d also covers the normalisation, so the output "
          "carries no gradient to the input", replaces=NAME),
    entry(BR, "buffers registered with persistent=False", BuffersNotPersistent,
          "running_mean and running_std are registered with persistent=False, so they are not in "
          "state_dict (not saved or loaded with the model)", replaces=NAME),
    entry(BR, "channel count checked for 2-D input only", ChannelCheck2DOnly,
          "the wrong-channel-count ValueError is raised only for 2-D input; a 4-D input with the "
          "wrong channel count fails later with a broadcasting RuntimeError", replaces=NAME),
    entry(BR, "eval mode not reshaped for 4-D input", EvalNotReshaped,
          "eval mode subtracts and divides by the (C,) running statistics without reshaping them "
          "to (1, C, 1, 1), so for 4-D input they broadcast against the last (width) axis", replaces=NAME),
    entry(BR, "running_std updated with the whole batch's std", RunningStdOfWholeBatch,
          "running_std is moved towards the std of all values of the batch (every channel "
          "together) instead of each channel's sigma_B", replaces=NAME),
    entry(BR, "lower bound 1/rmax fixed at construction", RminFixedAtInit,
          "1/rmax is computed once in __init__ (self.rmin), so when the schedule changes rmax "
          "later the lower clip of r stays at the initial 1/rmax", replaces=NAME),
    entry(BR, "input centred in place", CentresInputInPlace,
          "the input is centred and scaled in place (x -= mean; x /= std), which fails for an "
          "input that requires grad and overwrites the caller's tensor otherwise", replaces=NAME),
    entry(BR, "rmax and dmax swapped in __init__", RmaxDmaxSwapped,
          "`self.rmax, self.dmax = dmax, rmax`: the two bounds are stored swapped", replaces=NAME),
    entry(SCH, "d ramp over r_steps", sch_d_over_r_steps,
          "dmax's ramp uses r_steps (copy-paste) instead of d_steps, so dmax ramps over the "
          "r ramp's length"),
    entry(SCH, "dmax capped at rmax_final", sch_dmax_capped_at_rmax_final,
          "dmax is capped with min(..., rmax_final) instead of dmax_final, so it stops at "
          "rmax_final (3 by default) or overshoots dmax_final when dmax_final < rmax_final"),
    entry(SCH, "r_steps and d_steps read as absolute end steps", sch_ramp_ends_absolute,
          "r_steps and d_steps are read as the steps where the ramps end (the paper's '3 at step "
          "40,000'), so the ramps last r_steps - warmup and d_steps - warmup steps"),
    entry(SCH, "both bounds final once the r ramp ends", sch_both_final_after_r,
          "after warmup + r_steps the function returns (rmax_final, dmax_final), so a d ramp "
          "longer than the r ramp jumps to its final value early"),
    entry(SCH, "final values hard-coded 3 and 5", sch_finals_hard_coded,
          "the ramps end at 3 and 5 whatever rmax_final and dmax_final say"),
    right(BW, "explicit per-feature Jacobian with einsum", bw_jacobian_einsum),
    right(BR, "flattened channels, minimum/maximum clipping", ClampMinMaxFlattened, replaces=NAME),
    right(SCH, "elapsed steps clipped to the ramp", sch_elapsed_clipped),
]
