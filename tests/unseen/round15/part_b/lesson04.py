"""Held-out answers (fifteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_one_over_n_floor(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    g = dout * gamma * r
    inv_n = 1 // n  # meant 1 / n
    dx = (n * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) * inv_n / std
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_std_divides_projection_only(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0) / std  # parentheses forgotten
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_dgamma_over_axis1(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = (dout * y_hat).sum(axis=1)  # typo: axis=1
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_cov_per_feature(dout, cache):
    """Correct: dx per feature with np.cov(bias=True) for the projection; dgamma split into its
    r * x_hat and d parts (d = the batch mean of y_hat)."""
    x_hat, y_hat, std, r, gamma = cache
    n, features = dout.shape
    d = y_hat.mean(axis=0)
    dgamma = r * np.einsum("nd,nd->d", dout, x_hat) + d * dout.sum(axis=0)
    dbeta = dout.sum(axis=0)
    g = dout * (gamma * r)
    dx = np.empty_like(g)
    for j in range(features):
        c = np.cov(g[:, j], x_hat[:, j], bias=True)[0, 1]
        dx[:, j] = (g[:, j] - g[:, j].mean() - x_hat[:, j] * c) / std[j]
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

    def _eval(self, x, v):
        y = (x - self.running_mean.view(v)) / self.running_std.view(v)
        return y * self.weight.view(v) + self.bias.view(v)

    def _r(self, sigma):
        return (sigma / self.running_std).clamp(1.0 / self.rmax, self.rmax)

    def _renorm(self, x, mean, sigma, r, d, v):
        return (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)

    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected 2-D or 4-D input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0] + list(range(2, x.dim()))
        v = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return self._eval(x, v)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: more than one value per channel needed in training")
        mean = x.mean(dim=dims)
        sigma = torch.sqrt(x.var(dim=dims, correction=0) + self.eps)
        with torch.no_grad():
            r = self._r(sigma)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        y = self._renorm(x, mean, sigma, r, d, v)
        self._update(mean, sigma)
        return y * self.weight.view(v) + self.bias.view(v)


class RunningUpdateOutsideNoGrad(_Mine):
    def _update(self, mean, sigma):
        self.running_mean += self.momentum * (mean - self.running_mean)  # no torch.no_grad()
        self.running_std += self.momentum * (sigma - self.running_std)


class EvalBatchNormTensorFlowOrder(_Mine):
    def _eval(self, x, v):
        # tf.nn.batch_normalization(x, mean, variance, offset, scale, variance_epsilon)
        return F.batch_norm(x, self.running_mean, self.running_std ** 2, self.bias, self.weight,
                            False, 0.0, 0.0)


class DLeftOut(_Mine):
    def _renorm(self, x, mean, sigma, r, d, v):
        return (x - mean.view(v)) / sigma.view(v) * r.view(v)  # + d forgotten


class RDividedByRunningMean(_Mine):
    def _r(self, sigma):
        return (sigma / self.running_mean).clamp(1.0 / self.rmax, self.rmax)  # typo: running_mean


class RecursiveChannelsLast(nn.Module):
    """Correct: 4-D input handled by recursion on its channels-last (N*H*W, C) view; r and d
    from .detach(); buffers rebound through .data with torch.lerp; affine with addcmul."""

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
            raise ValueError(f"BatchRenorm takes (N, C) or (N, C, H, W), not {x.dim()}-D input")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: {x.shape[1]} channels, {self.num_features} expected")
        if x.dim() == 4:
            n, c, h, w = x.shape
            flat = x.permute(0, 2, 3, 1).reshape(-1, c)
            return self.forward(flat).reshape(n, h, w, c).permute(0, 3, 1, 2)
        if not self.training:
            return torch.addcmul(self.bias, (x - self.running_mean) / self.running_std, self.weight)
        if x.shape[0] < 2:
            raise ValueError("BatchRenorm: training needs two or more values per channel")
        mean = x.mean(0)
        sigma = (x.var(0, correction=0) + self.eps).sqrt()
        r = (sigma.detach() / self.running_std).clamp(min=1.0 / self.rmax, max=self.rmax)
        d = ((mean.detach() - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        y = (x - mean) / sigma * r + d
        self.running_mean.data = torch.lerp(self.running_mean, mean.detach(), self.momentum)
        self.running_std.data = torch.lerp(self.running_std, sigma.detach(), self.momentum)
        return torch.addcmul(self.bias, y, self.weight)


# ---- renorm_schedule ------------------------------------------------------------------


def _ramp(now, start, length):
    if length <= 0:
        return 1.0 if now > start else 0.0
    return min(1.0, max(0.0, (now - start) / length))


def sch_ramp_arguments_swapped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _ramp(warmup, step, r_steps)  # meant _ramp(step, warmup, ...)
    dmax = dmax_final * _ramp(warmup, step, d_steps)
    return rmax, dmax


def sch_cyclic(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        if step <= warmup:
            return 0.0
        return ((step - warmup) % length) / length  # "position in the cycle", as a cyclic LR

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "1 // n for 1 / n", bw_one_over_n_floor,
          cause="writes inv_n = 1 // n (integer division) in the N * g form of dx, which is 0 for any "
                "batch of two or more, so dx is all zeros; dgamma and dbeta are right."),
    entry(BW, "only the projection term divided by std", bw_std_divides_projection_only,
          cause="missing parentheses: dx = g - mean(g) - x_hat * mean(g * x_hat) / std divides only the "
                "projection term by the batch std, not the whole bracket."),
    entry(BW, "dgamma summed over axis 1", bw_dgamma_over_axis1,
          cause="dgamma = (dout * y_hat).sum(axis=1): summed over the features (one value per example) "
                "instead of over the batch; dx and dbeta are right."),
    right(BW, "np.cov per feature, dgamma split into r and d parts", bw_cov_per_feature),
    entry(BR, "running update outside torch.no_grad", RunningUpdateOutsideNoGrad, replaces=NAME,
          cause="updates running_mean and running_std in place outside torch.no_grad() with the "
                "batch mean and sigma_B that require grad, so the buffers join the autograd graph "
                "(history kept across steps, deepcopy fails); the values are right."),
    entry(BR, "eval F.batch_norm with bias and weight swapped", EvalBatchNormTensorFlowOrder, replaces=NAME,
          cause="eval mode calls F.batch_norm(x, mean, var, self.bias, self.weight, ...) in TensorFlow's "
                "(offset, scale) order, but torch's is (weight, bias): gamma and beta are swapped in "
                "eval mode only."),
    entry(BR, "d left out of the training output", DLeftOut, replaces=NAME,
          cause="the training output is gamma * (x_hat * r) + beta: d is computed and clipped but never "
                "added (right only while dmax = 0)."),
    entry(BR, "r divided by the running mean", RDividedByRunningMean, replaces=NAME,
          cause="typo: r = clip(sigma_B / running_mean) instead of sigma_B / running_std (d and the "
                "running updates are right)."),
    right(BR, "recursion on channels-last rows, detach, lerp into .data", RecursiveChannelsLast,
          replaces=NAME),
    entry(SCH, "ramp helper called with step and warmup swapped", sch_ramp_arguments_swapped,
          cause="the helper _ramp(now, start, length) is called as _ramp(warmup, step, length), so the "
                "progress is (warmup - step) / length: the bounds are relaxed before the warm-up ends and "
                "stay (1, 0) after it."),
    entry(SCH, "progress taken modulo the ramp length", sch_cyclic,
          cause="progress is ((step - warmup) % length) / length, as in a cyclic schedule, so after each "
                "ramp the bounds fall back to (1, 0) and ramp again instead of staying at their final "
                "values."),
]
