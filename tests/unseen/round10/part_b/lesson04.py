"""Held-out answers (tenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -------------------------------------------------------


def bw_xhat_from_yhat(dout, cache):
    _, y_hat, std, r, gamma = cache
    x_hat = y_hat / r  # y_hat = x_hat * r
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_std_divided_in_place(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    std /= r  # the effective scale of x is std / r
    g = dout * gamma
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_projection_matmul(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat @ (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


N = 8  # batch size used in this notebook's examples


def bw_batch_size_hard_coded(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (N * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / (N * std)
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dgamma_without_d(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = (dout * x_hat * r).sum(axis=0)
    return dx, dgamma, dout.sum(axis=0)


def bw_mean_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std.mean()
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_centred_first(dout, cache):
    """Right: g centred first; (g - mean g) . x_hat has the same mean as g . x_hat
    because x_hat has mean 0 in every feature."""
    x_hat, y_hat, std, r, gamma = cache
    dbeta = np.add.reduce(dout, axis=0)
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    g = dout * (gamma * r / std)
    gc = g - g.mean(axis=0, keepdims=True)
    dx = gc - x_hat * (gc * x_hat).mean(axis=0, keepdims=True)
    return dx, dgamma, dbeta


# ---- BatchRenorm -----------------------------------------------------------------


class _Renorm(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self._params()
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _params(self):
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))

    def _bounds(self):
        return self.rmax, self.dmax

    def _r(self, std, rmax):
        return (std / self.running_std).clamp(1 / rmax, rmax)

    def _d(self, mean, dmax):
        return ((mean - self.running_mean) / self.running_std).clamp(-dmax, dmax)

    def _running(self, mean, std, n):
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_std += self.momentum * (std - self.running_std)

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError("training needs more than 1 value per channel")
            mean = x.mean(dims)
            std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
            rmax, dmax = self._bounds()
            with torch.no_grad():
                r, d = self._r(std, rmax), self._d(mean, dmax)
            x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            with torch.no_grad():
                self._running(mean, std, n)
        else:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class FloorDivisionLowerBound(_Renorm):
    def _r(self, std, rmax):
        return (std / self.running_std).clamp(1 // rmax, rmax)


class BiasAsBuffer(_Renorm):
    def _params(self):
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.register_buffer("bias", torch.zeros(self.num_features))


class BoundsTupleAtInit(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.bounds = (rmax, dmax)

    def _bounds(self):
        return self.bounds


class DClampedOneSided(_Renorm):
    def _d(self, mean, dmax):
        return ((mean - self.running_mean) / self.running_std).clamp(0, dmax)


class RunningStdBessel(_Renorm):
    def _running(self, mean, std, n):
        unbiased = torch.sqrt((std**2 - self.eps) * n / (n - 1) + self.eps)  # as in lesson 03
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_std += self.momentum * (unbiased - self.running_std)


class RClampedFromAboveOnly(_Renorm):
    def _r(self, std, rmax):
        return torch.clamp(std / self.running_std, max=rmax)


@notebook
class NumpyForwardInside(nn.Module):
    """Reuses the notebook's NumPy batch_renorm_forward for the training output."""

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
            raise ValueError(f"expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)
        c = x.shape[1]
        rows = x.movedim(1, -1).reshape(-1, c)
        if rows.shape[0] < 2:
            raise ValueError("training needs more than 1 value per channel")
        as_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
        out, cache, _ = batch_renorm_forward(
            as_np(rows), as_np(self.weight), as_np(self.bias), as_np(self.running_mean),
            as_np(self.running_std), self.rmax, self.dmax, self.eps)
        with torch.no_grad():
            mean, std = rows.mean(0), torch.from_numpy(cache[2]).to(x)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        shape = list(x.movedim(1, -1).shape)
        return torch.from_numpy(out).to(x).reshape(shape).movedim(-1, 1)


class FunctionalBatchNormThenRD(_Renorm):
    """Right: x_hat from F.batch_norm in training mode (no running buffers given),
    then r and d from detached statistics; buffers blended with lerp_."""

    def forward(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return (x - self.running_mean.view(view)) * (self.weight / self.running_std).view(view) \
                + self.bias.view(view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("training needs more than 1 value per channel")
        x_hat = F.batch_norm(x, None, None, None, None, training=True, eps=self.eps)
        with torch.no_grad():
            dims = [0] if x.dim() == 2 else [0, 2, 3]
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            std = (var + self.eps).sqrt()
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(std, self.momentum)
        return (x_hat * r.view(view) + d.view(view)) * self.weight.view(view) + self.bias.view(view)


# ---- renorm_schedule -------------------------------------------------------------


def sched_memo_by_step(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0, _seen={}):  # noqa: B006
    if step in _seen:  # the training loop asks for the same step many times
        return _seen[step]

    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    _seen[step] = (1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps))
    return _seen[step]


def sched_clip_reversed(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return float(np.clip((step - warmup) / length, 1.0, 0.0))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sched_keyword_only(step, warmup, r_steps, d_steps, *, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sched_missing_parentheses(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, step - warmup / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sched_warmup_returns_final(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return rmax_final, dmax_final

    def progress(length):
        if length <= 0:
            return 1.0
        return min(1.0, (step - warmup) / length)

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sched_by_end_step(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Right: each ramp described by its end step; 0 before it starts, 1 once it ends."""

    def progress(length):
        end = warmup + length
        if step <= warmup:
            return 0.0
        if step >= end:
            return 1.0
        return (step - warmup) / length

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "x_hat recovered as y_hat / r", bw_xhat_from_yhat,
          "x_hat is recomputed as y_hat / r, forgetting that y_hat = x_hat * r + d, so x_hat is wrong (by d / r) whenever d is not 0 and dx's projection term is wrong."),
    entry(BW, "cache's std divided by r in place", bw_std_divided_in_place,
          "std /= r divides the cached std array in place (the cache's own array), so the first call is right but a second backward with the same cache divides again and is wrong; the cache is changed."),
    entry(BW, "matrix product in the projection term", bw_projection_matmul,
          "the projection term is written x_hat @ (g * x_hat).mean(axis=0), a matrix-vector product giving one value per row, instead of the elementwise x_hat * (...) per feature; it fails or, for N = D, broadcasts wrongly."),
    entry(BW, "batch size hard-coded to 8", bw_batch_size_hard_coded,
          "the batch size N is a global constant 8 instead of dout.shape[0], so dx is right only for batches of 8."),
    entry(BW, "d dropped from dgamma", bw_dgamma_without_d,
          "dgamma is sum(dout * x_hat * r), leaving out the d term of y_hat = x_hat * r + d; it is wrong whenever d is not 0."),
    entry(BW, "dx divided by the mean std", bw_mean_std,
          "dx is divided by std.mean(), one number for all features, instead of each feature's own std."),
    entry(BR, "1 // rmax as the lower bound", FloorDivisionLowerBound, replaces=NAME,
          cause="r's lower bound is written 1 // rmax (floor division), which is 0 for any rmax > 1, so r is never clipped from below (right only for rmax = 1)."),
    entry(BR, "bias registered as a buffer", BiasAsBuffer, replaces=NAME,
          cause="bias is registered as a buffer instead of an nn.Parameter, so it is not among the parameters and never learns (the output is right)."),
    entry(BR, "bounds read from a tuple made at construction", BoundsTupleAtInit, replaces=NAME,
          cause="forward clips with self.bounds, a tuple stored in __init__, so setting module.rmax / module.dmax later (as the schedule does) has no effect."),
    entry(BR, "d clamped to [0, dmax]", DClampedOneSided, replaces=NAME,
          cause="d is clamped to [0, dmax] instead of [-dmax, dmax], so negative corrections (batch mean below the running mean) are set to 0."),
    entry(BR, "Bessel correction on the running std", RunningStdBessel, replaces=NAME,
          cause="the running std is moved towards an unbiased (n / (n - 1)) batch std, lesson 03's habit, instead of the batch's sigma_B used in the normalisation."),
    entry(BR, "r clamped from above only", RClampedFromAboveOnly, replaces=NAME,
          cause="r is clamped with max=rmax only, with no lower bound 1 / rmax, so r below 1 / rmax is not clipped."),
    entry(BR, "NumPy batch_renorm_forward inside forward", NumpyForwardInside, replaces=NAME,
          cause="the training output comes from the NumPy batch_renorm_forward on detached arrays and is turned back into a tensor, so it has no autograd graph: no gradient reaches x, weight or bias (backward raises)."),
    entry(SCH, "results memoised by step alone", sched_memo_by_step,
          "caches the result in a mutable default dict keyed by step only, so a later call with the same step but another schedule (warmup, lengths, finals) returns the first schedule's bounds."),
    entry(SCH, "np.clip bounds in the wrong order", sched_clip_reversed,
          "np.clip(p, 1.0, 0.0) has its lower and upper bounds swapped, and NumPy then returns 0 for every p, so the ramps never move (except zero-length ones)."),
    entry(SCH, "final bounds keyword-only", sched_keyword_only,
          "rmax_final and dmax_final are keyword-only (after *), so a call passing them positionally, renorm_schedule(step, warmup, r, d, 2.0, 4.0), raises TypeError."),
    entry(SCH, "missing parentheses in (step - warmup) / length", sched_missing_parentheses,
          "progress is step - warmup / length (operator precedence) instead of (step - warmup) / length, so the ramps jump to (nearly) their final values at once."),
    entry(SCH, "warm-up branch returns the final bounds", sched_warmup_returns_final,
          "during the warm-up (step <= warmup) it returns (rmax_final, dmax_final) instead of (1, 0): the two branches' values were swapped."),
    right(BW, "g centred first, einsum and np.add.reduce", bw_centred_first),
    right(BR, "F.batch_norm then r and d, lerp_ buffers", FunctionalBatchNormThenRD, replaces=NAME),
    right(SCH, "ramps by their end step", sched_by_end_step),
]
