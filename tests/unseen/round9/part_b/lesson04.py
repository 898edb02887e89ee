"""Held-out answers (ninth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule.  The forward's cache is (x_hat, y_hat, std, r, gamma)."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward -------------------------------------------------------


def bw_gamma_twice(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = gamma * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dx_negated(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g.mean(axis=0) - g + x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_dgamma_einsum_keeps_batch(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = np.einsum("nd,nd->n", dout, y_hat)
    return dx, dgamma, dout.sum(axis=0)


def bw_unpacks_d(dout, cache):
    x_hat, y_hat, std, r, d, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * (x_hat * r + d)).sum(axis=0), dout.sum(axis=0)


def bw_dgamma_todo(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = np.zeros_like(gamma)  # TODO: the d term makes this tricky
    return dx, dgamma, dout.sum(axis=0)


def bw_mean_term_outside_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = g / std - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0) / std
    return dx, (dout * y_hat).sum(axis=0), dout.sum(axis=0)


def bw_einsum_reduce(dout, cache):
    """Sums with np.add.reduce, the projection with einsum, the 1/N written out."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.add.reduce(dout, axis=0)
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    g = dout * (gamma * r)
    proj = np.einsum("nd,nd->d", g, x_hat) / n
    dx = (g - np.add.reduce(g, axis=0) / n - x_hat * proj) / std
    return dx, dgamma, dbeta


# ---- BatchRenorm ---------------------------------------------------------------------


class _Renorm(nn.Module):
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
            raise ValueError(f"expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {x.shape[1]}")

    def _batch_std(self, x, dims):
        return torch.sqrt(x.var(dims, correction=0) + self.eps)

    def _r_d(self, mean, std):
        r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
        d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d

    def _update(self, x, dims, mean, std):
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_std += self.momentum * (std - self.running_std)

    def forward(self, x):
        self._validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than one value per channel in training")
            mean = x.mean(dims)
            std = self._batch_std(x, dims)
            with torch.no_grad():
                r, d = self._r_d(mean, std)
            y = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            with torch.no_grad():
                self._update(x, dims, mean, std)
        else:
            y = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return self.weight.view(view) * y + self.bias.view(view)


class StdInsideNoGrad(_Renorm):
    def forward(self, x):
        self._validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than one value per channel in training")
            mean = x.mean(dims)
            with torch.no_grad():
                std = self._batch_std(x, dims)
                r, d = self._r_d(mean, std)
            y = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            with torch.no_grad():
                self._update(x, dims, mean, std)
        else:
            y = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return self.weight.view(view) * y + self.bias.view(view)


class ChannelErrorNameError(_Renorm):
    def _validate(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W), got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got {channels}")  # noqa: F821


class ScalarBias(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__(num_features, eps, momentum, rmax, dmax)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self._validate(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError("need more than one value per channel in training")
            mean = x.mean(dims)
            std = self._batch_std(x, dims)
            with torch.no_grad():
                r, d = self._r_d(mean, std)
            y = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            with torch.no_grad():
                self._update(x, dims, mean, std)
        else:
            y = (x - self.running_mean.view(view)) / self.running_std.view(view)
        return self.weight.view(view) * y + self.bias


class RunningStdPlainAttribute(_Renorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        nn.Module.__init__(self)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.rmax = rmax
        self.dmax = dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.running_std = torch.ones(num_features)  # a tensor: "no gradient, so it is not a parameter"


class EpsInRunningStd(_Renorm):
    def _r_d(self, mean, std):
        denom = self.running_std + self.eps  # "never divide by zero"
        r = torch.clamp(std / denom, 1.0 / self.rmax, self.rmax)
        d = torch.clamp((mean - self.running_mean) / denom, -self.dmax, self.dmax)
        return r, d


class RunningMeanGlobal(_Renorm):
    def _update(self, x, dims, mean, std):
        self.running_mean += self.momentum * (x.mean() - self.running_mean)
        self.running_std += self.momentum * (std - self.running_std)


class RunningStdInVarianceSpace(_Renorm):
    def _update(self, x, dims, mean, std):
        self.running_mean += self.momentum * (mean - self.running_mean)
        blended = (1 - self.momentum) * self.running_std**2 + self.momentum * std**2
        self.running_std.copy_(blended.sqrt())


class EinsumWhereRenorm(nn.Module):
    """Clipping with torch.where, r and d from detached statistics (no no_grad
    block), per-channel affine with einsum, buffers updated with lerp_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    @staticmethod
    def _clip(v, lo, hi):
        return torch.where(v < lo, torch.full_like(v, lo), torch.where(v > hi, torch.full_like(v, hi), v))

    def forward(self, x):
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) or (N, {self.num_features}, H, W)")
        pattern = "nc,c->nc" if x.dim() == 2 else "nchw,c->nchw"
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        view = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            if x.numel() // self.num_features < 2:
                raise ValueError("one value per channel: cannot normalise in training")
            var, mean = torch.var_mean(x, dims, correction=0)
            std = (var + self.eps).sqrt()
            r = self._clip(std.detach() / self.running_std, 1 / self.rmax, self.rmax)
            d = self._clip((mean.detach() - self.running_mean) / self.running_std, -self.dmax, self.dmax)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_std.lerp_(std.detach(), self.momentum)
            z = torch.einsum(pattern, x - mean.view(view), r / std) + d.view(view)
        else:
            z = torch.einsum(pattern, x - self.running_mean.view(view), 1 / self.running_std)
        return torch.einsum(pattern, z, self.weight) + self.bias.view(view)


# ---- renorm_schedule ------------------------------------------------------------------


def _progress(step, warmup, length):
    if length <= 0:
        return 1.0 if step > warmup else 0.0
    return min(1.0, max(0.0, (step - warmup) / length))


def sch_inverse_linear(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    # the lower clip 1/rmax ramps linearly from 1 to 1/rmax_final
    lower = 1.0 + (1.0 / rmax_final - 1.0) * _progress(step, warmup, r_steps)
    return 1.0 / lower, dmax_final * _progress(step, warmup, d_steps)


def sch_dmax_copy_paste(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps)
    dmax = 0.0 + (dmax_final - 1.0) * _progress(step, warmup, d_steps)
    return rmax, dmax


def sch_ramp_todo(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    # TODO: linear ramps over r_steps and d_steps
    return rmax_final, dmax_final


def sch_no_warmup_no_schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if not warmup:  # "no warm-up: the schedule is off"
        return rmax_final, dmax_final
    return 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps), dmax_final * _progress(step, warmup, d_steps)


def sch_returns_dict(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    return {
        "rmax": 1.0 + (rmax_final - 1.0) * _progress(step, warmup, r_steps),
        "dmax": dmax_final * _progress(step, warmup, d_steps),
    }


def sch_length_floor_one(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """max(length, 1) instead of a special case for a ramp of 0 steps."""
    after = step - warmup
    pr = min(max(after / max(r_steps, 1), 0.0), 1.0)
    pd = min(max(after / max(d_steps, 1), 0.0), 1.0)
    return 1.0 + pr * (rmax_final - 1.0), pd * dmax_final


ENTRIES = [
    entry(BW, "gamma applied twice in dx", bw_gamma_twice,
          "dx multiplies by gamma again after the gradient reaching x_hat already includes gamma * r."),
    entry(BW, "dx with the opposite sign", bw_dx_negated,
          "dx is written as (mean(g) - g + x_hat * mean(g * x_hat)) / std: every term has the opposite sign."),
    entry(BW, "dgamma einsum keeps the batch axis", bw_dgamma_einsum_keeps_batch,
          "dgamma is np.einsum('nd,nd->n', ...): summed over the features, one value per example, instead of over the batch."),
    entry(BW, "six values unpacked from the cache", bw_unpacks_d,
          "unpacks the cache as (x_hat, y_hat, std, r, d, gamma), but the forward's cache has five items, so it raises ValueError."),
    entry(BW, "dgamma left as zeros (TODO)", bw_dgamma_todo,
          "dgamma is left as np.zeros_like(gamma) with a TODO instead of sum(dout * y_hat)."),
    entry(BW, "mean term not divided by std", bw_mean_term_outside_std,
          "dx = g/std - mean(g) - x_hat * mean(g * x_hat)/std: the mean term is not divided by the batch std (bracket misplaced)."),
    entry(BR, "batch std computed inside the no_grad block", StdInsideNoGrad,
          "the batch standard deviation is computed inside the torch.no_grad() block with r and d, so no gradient flows through sigma_B (outputs and buffers are right, input gradients are not).", replaces=NAME),
    entry(BR, "NameError in the channel-count error", ChannelErrorNameError,
          "the wrong-channel-count ValueError's message uses an undefined name (channels), so the learner's code raises NameError instead of ValueError.", replaces=NAME),
    entry(BR, "bias a single scalar", ScalarBias,
          "bias is nn.Parameter(torch.zeros(1)), one shift shared by every channel, instead of one per channel.", replaces=NAME),
    entry(BR, "running_std a plain tensor attribute", RunningStdPlainAttribute,
          "running_std is a plain tensor attribute instead of a registered buffer: not in state_dict, not converted by .double() / .to().", replaces=NAME),
    entry(BR, "eps added to running_std in r and d", EpsInRunningStd,
          "r and d divide by running_std + eps instead of running_std.", replaces=NAME),
    entry(BR, "running mean from the mean over all channels", RunningMeanGlobal,
          "running_mean is moved towards x.mean(), one mean over every channel, instead of the per-channel batch mean.", replaces=NAME),
    entry(BR, "running std blended as a variance", RunningStdInVarianceSpace,
          "running_std is updated as sqrt((1 - a) * running_std**2 + a * sigma_B**2) instead of running_std + a * (sigma_B - running_std).", replaces=NAME),
    entry(SCH, "lower bound 1/rmax ramped linearly", sch_inverse_linear,
          "ramps 1/rmax linearly from 1 to 1/rmax_final and returns its inverse, so rmax rises along a hyperbola instead of linearly from 1 to rmax_final."),
    entry(SCH, "dmax ends at dmax_final - 1", sch_dmax_copy_paste,
          "the dmax line copies rmax's (dmax_final - 1), so dmax ramps from 0 to dmax_final - 1 instead of dmax_final."),
    entry(SCH, "ramp left as a TODO", sch_ramp_todo,
          "after the warm-up it returns the final values at once: the linear ramps were left as a TODO."),
    entry(SCH, "warmup=0 read as no schedule", sch_no_warmup_no_schedule,
          "with warmup=0 it returns the final values from step 0 instead of ramping from step 0."),
    entry(SCH, "returns a dict", sch_returns_dict,
          "returns {'rmax': ..., 'dmax': ...} instead of the tuple (rmax, dmax)."),
    right(BW, "np.add.reduce and einsum projection", bw_einsum_reduce),
    right(BR, "torch.where clipping, einsum affine, lerp_", EinsumWhereRenorm, replaces=NAME),
    right(SCH, "max(length, 1) for a ramp of 0 steps", sch_length_floor_one),
]
