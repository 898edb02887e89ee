"""Held-out answers (seventh set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -----------------------------------------------------------


def bw_y_hat_in_projection(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * y_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_std_from_x_hat(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    std = x_hat.std(axis=0)  # the batch std
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_sqrt_of_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / np.sqrt(std)
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_staged_dvar_without_half(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    xmu = x_hat * std
    dxhat = dout * gamma * r
    dvar = np.sum(dxhat * xmu, axis=0) * -(std ** -3)  # d(1/sqrt(v))/dv
    dmu = -np.sum(dxhat, axis=0) / std + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmu / n
    return dx, np.sum(dout * y_hat, axis=0), np.sum(dout, axis=0)


def bw_dbeta_times_r(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), (dout * r).sum(axis=0)


# ---- BatchRenorm: a learner's right module; each wrong entry changes one piece --------


class _BR(nn.Module):
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

    def _reduce_dims(self, x):
        if x.dim() == 2:
            return (0,)
        if x.dim() == 4:
            return (0, 2, 3)
        raise ValueError(f"BatchRenorm takes 2-D or 4-D input, not {x.dim()}-D")

    def _r(self, std):
        return torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)

    def _d(self, mean, std):
        return torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)

    def _train_normalise(self, x, mean, std, r, d, s):
        return (x - mean.reshape(s)) / std.reshape(s) * r.reshape(s) + d.reshape(s)

    def _eval_normalise(self, x, s):
        return (x - self.running_mean.reshape(s)) / self.running_std.reshape(s)

    def _affine(self, x_hat, s, training):
        return x_hat * self.weight.reshape(s) + self.bias.reshape(s)

    def forward(self, x):
        dims = self._reduce_dims(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        s = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            return self._affine(self._eval_normalise(x, s), s, False)
        if x.numel() // x.shape[1] <= 1:
            raise ValueError("need at least two values per channel in training")
        mean = x.mean(dim=dims)
        std = (x.var(dim=dims, unbiased=False) + self.eps).sqrt()
        with torch.no_grad():
            r = self._r(std)
            d = self._d(mean, std)
        x_hat = self._train_normalise(x, mean, std, r, d, s)
        with torch.no_grad():
            self.running_mean.add_(self.momentum * (mean - self.running_mean))
            self.running_std.add_(self.momentum * (std - self.running_std))
        return self._affine(x_hat, s, True)


class RInverted(_BR):
    def _r(self, std):
        return torch.clamp(self.running_std / std, 1.0 / self.rmax, self.rmax)


class EpsInEval(_BR):
    def _eval_normalise(self, x, s):
        return (x - self.running_mean.reshape(s)) / (self.running_std.reshape(s) ** 2 + self.eps).sqrt()


class DInsideR(_BR):
    def _train_normalise(self, x, mean, std, r, d, s):
        return ((x - mean.reshape(s)) / std.reshape(s) + d.reshape(s)) * r.reshape(s)


class AffineOnlyInEval(_BR):
    def _affine(self, x_hat, s, training):
        if training:
            return x_hat
        return x_hat * self.weight.reshape(s) + self.bias.reshape(s)


class RunningStdStartsAtZero(_BR):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.running_std.zero_()


class MomentumDefaultTorch(_BR):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)


class DOverBatchStd(_BR):
    def _d(self, mean, std):
        return torch.clamp((mean - self.running_mean) / std, -self.dmax, self.dmax)


class RClippedBeforeDividing(_BR):
    def _r(self, std):
        return torch.clamp(std, 1.0 / self.rmax, self.rmax) / self.running_std


# ---- renorm_schedule ---------------------------------------------------------------------


def _ramp(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_numpy_array(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    p = np.array([_ramp(step, warmup, r_steps), _ramp(step, warmup, d_steps)])
    return np.array([1.0, 0.0]) + np.array([rmax_final - 1.0, dmax_final]) * p


def sch_zero_length_final_in_warmup(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def ramp(length):
        if length <= 0:
            return 1.0  # no ramp: straight to the final value
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * ramp(r_steps), dmax_final * ramp(d_steps)


def sch_d_after_r(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _ramp(step, warmup, r_steps)
    dmax = dmax_final * _ramp(step, warmup + r_steps, d_steps)
    return rmax, dmax


def sch_min_max_swapped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def ramp(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return max(1.0, min(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * ramp(r_steps), dmax_final * ramp(d_steps)


_BOUNDS = {"rmax": 1.0, "dmax": 0.0}


def sch_monotone_global(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _ramp(step, warmup, r_steps)
    dmax = dmax_final * _ramp(step, warmup, d_steps)
    # the bounds only ever relax during training
    _BOUNDS["rmax"] = max(_BOUNDS["rmax"], rmax)
    _BOUNDS["dmax"] = max(_BOUNDS["dmax"], dmax)
    return _BOUNDS["rmax"], _BOUNDS["dmax"]


# ---- correct alternatives -------------------------------------------------------------


def bw_weighted_averages(dout, cache):
    """np.average for the two means; the common factor gamma * r / std applied last."""
    x_hat, y_hat, std, r, gamma = cache
    dbeta = np.add.reduce(dout, axis=0)
    dgamma = np.add.reduce(dout * y_hat, axis=0)
    centred = dout - np.average(dout, axis=0)
    proj = x_hat * np.average(dout * x_hat, axis=0)
    dx = (centred - proj) * (gamma * r / std)
    return dx, dgamma, dbeta


class FunctionalEvalRenorm(nn.Module):
    """Eval through F.batch_norm with running_std**2 - eps as the variance; training from
    torch.std_mean; buffers with torch.lerp into copy_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError("BatchRenorm: (N, C) or (N, C, H, W) only")
        if x.size(1) != self.num_features:
            raise ValueError("BatchRenorm: wrong channel count")
        if not self.training:
            # (x - mu) / sqrt(var + eps) with var + eps = running_std ** 2
            return F.batch_norm(x, self.running_mean, self.running_std ** 2 - self.eps,
                                self.weight, self.bias, training=False, eps=self.eps)
        if x.numel() // x.size(1) < 2:
            raise ValueError("BatchRenorm: more than one value per channel needed")
        xt = x.transpose(0, 1).reshape(x.size(1), -1)
        sd, mean = torch.std_mean(xt, dim=1, correction=0)
        std = torch.sqrt(sd * sd + self.eps)
        rs = self.running_std.detach()
        r = (std.detach() / rs).clamp(min=1.0 / self.rmax, max=self.rmax)
        d = ((mean.detach() - self.running_mean) / rs).clamp(min=-self.dmax, max=self.dmax)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = (r / std) * self.weight
        shift = (d - mean * r / std) * self.weight + self.bias
        out = x * scale.view(shape) + shift.view(shape)
        with torch.no_grad():
            self.running_mean.copy_(torch.lerp(self.running_mean, mean, self.momentum))
            self.running_std.copy_(torch.lerp(self.running_std, std, self.momentum))
        return out


def sch_median_clamp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def frac(length):
        if length <= 0:
            return float(step > warmup)
        return sorted((0.0, (step - warmup) / length, 1.0))[1]

    return rmax_final + (1.0 - rmax_final) * (1.0 - frac(r_steps)), dmax_final * frac(d_steps)


ENTRIES = [
    entry(BW, "y_hat in the projection term", bw_y_hat_in_projection,
          "the projection term uses mean(g * y_hat) instead of mean(g * x_hat)."),
    entry(BW, "std recomputed from x_hat", bw_std_from_x_hat,
          "recomputes the batch std as x_hat.std(axis=0) (about 1) instead of using the cached std of x, so dx is not divided by the real sigma_B."),
    entry(BW, "square root of the cached std", bw_sqrt_of_std,
          "divides dx by np.sqrt(std), as if the cache held the variance, instead of by std."),
    entry(BW, "staged dvar without the 1/2", bw_staged_dvar_without_half,
          "in a staged backward, the local gradient of 1/sqrt(var + eps) is taken as -(var + eps)^(-3/2) without the factor 1/2, so the variance branch is doubled."),
    entry(BW, "dbeta multiplied by r", bw_dbeta_times_r,
          "dbeta = sum(dout * r) instead of sum(dout): r scales x_hat, not beta."),
    entry(BR, "r inverted", RInverted,
          "r = running_std / sigma_B instead of sigma_B / running_std.", replaces=NAME),
    entry(BR, "eps added again in eval mode", EpsInEval,
          "eval mode divides by sqrt(running_std**2 + eps) instead of running_std, which already contains eps.", replaces=NAME),
    entry(BR, "d inside the r factor", DInsideR,
          "computes ((x - mean) / std + d) * r instead of (x - mean) / std * r + d.", replaces=NAME),
    entry(BR, "weight and bias only in eval mode", AffineOnlyInEval,
          "training mode returns the renormalised x_hat without weight and bias; only eval mode applies them.", replaces=NAME),
    entry(BR, "running_std starts at zero", RunningStdStartsAtZero,
          "running_std is initialised to zeros instead of ones.", replaces=NAME),
    entry(BR, "momentum default 0.1", MomentumDefaultTorch,
          "the constructor's default momentum is 0.1 (nn.BatchNorm's) instead of 0.01.", replaces=NAME),
    entry(BR, "d divided by the batch std", DOverBatchStd,
          "d = (mean - running_mean) / sigma_B instead of / running_std.", replaces=NAME),
    entry(BR, "clip applied to the batch std", RClippedBeforeDividing,
          "clips sigma_B to [1/rmax, rmax] and then divides by running_std, instead of clipping the ratio r = sigma_B / running_std.", replaces=NAME),
    entry(SCH, "returns a NumPy array", sch_numpy_array,
          "returns np.array([rmax, dmax]) instead of a tuple of two floats."),
    entry(SCH, "zero-length ramp final during warm-up", sch_zero_length_final_in_warmup,
          "a ramp of length 0 gives the final value at every step, also during the warm-up (it should stay at the start value until the warm-up ends)."),
    entry(SCH, "d ramp starts after the r ramp", sch_d_after_r,
          "the dmax ramp starts when the rmax ramp ends (warmup + r_steps) instead of at the end of the warm-up."),
    entry(SCH, "min and max swapped in the clamp", sch_min_max_swapped,
          "clamps the progress with max(1, min(0, p)) instead of min(1, max(0, p)), so it is always 1 and both bounds are final from step 0."),
    entry(SCH, "bounds kept monotone in a global", sch_monotone_global,
          "keeps the largest bounds seen so far in a module-level dict and never lowers them, so a call for an earlier step after a later one returns the later step's bounds."),
    right(BW, "np.average, common factor last", bw_weighted_averages),
    right(BR, "F.batch_norm eval, std_mean, lerp into copy_", FunctionalEvalRenorm, replaces=NAME),
    right(SCH, "median-of-three clamp, rmax from the end", sch_median_clamp),
]
