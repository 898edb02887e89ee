"""Lesson 04: answers to ``batch_renorm_backward``, ``BatchRenorm`` and
``renorm_schedule`` (held out: see ``tests/unseen``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import entry, right

# --------------------------------------------------------------------------
# the NumPy backward pass, with a forward pass whose cache it reads
# --------------------------------------------------------------------------


def renorm_forward(
    x, gamma, beta, running_mean, running_std, rmax, dmax, eps=1e-5, r=None, d=None
):
    """The given forward pass; caches (x, x_hat, y_hat, std, r, d, gamma)."""
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    if r is None:
        r = np.clip(std / running_std, 1.0 / rmax, rmax)
    if d is None:
        d = np.clip((mu - running_mean) / running_std, -dmax, dmax)
    x_hat = (x - mu) / std
    y_hat = x_hat * r + d
    return gamma * y_hat + beta, (x, x_hat, y_hat, std, r, d, gamma), (r, d)


def backward(
    dout, cache, *, r_power=1, dgamma_from="y_hat", branch="x_hat", std="cache"
):
    x, x_hat, y_hat, sigma, r, d, gamma = cache
    if std == "recomputed":
        sigma = x.std(axis=0)  # no eps
    dbeta = dout.sum(axis=0)
    if dgamma_from == "y_hat":
        dgamma = (dout * y_hat).sum(axis=0)
    else:  # "x_hat r": the shift d forgotten
        dgamma = (dout * x_hat * r).sum(axis=0)
    g = dout * gamma * r**r_power
    if branch == "closed form of lesson 02":
        n = dout.shape[0]
        dx = gamma * r / sigma * (dout - dbeta / n - x_hat * dgamma / n)
        return dx, dgamma, dbeta
    h = y_hat if branch == "y_hat" else x_hat
    dx = (g - g.mean(axis=0) - h * (g * h).mean(axis=0)) / sigma
    return dx, dgamma, dbeta


def _bwd(**kw):
    def batch_renorm_backward(dout, cache):
        return backward(dout, cache, **kw)

    return batch_renorm_backward


def backward_one_line(dout, cache):
    x, x_hat, y_hat, sigma, r, d, gamma = cache
    n = dout.shape[0]
    dbeta = np.einsum("ij->j", dout)
    dgamma = np.einsum("ij,ij->j", dout, y_hat)
    dx_hat_sum = np.einsum("ij,ij->j", dout, x_hat)
    dx = (gamma * r / (n * sigma)) * (n * dout - dbeta - x_hat * dx_hat_sum)
    return dx, dgamma, dbeta


def backward_staged(dout, cache):
    """Through y_hat, x_hat, sigma and mu, stage by stage (r, d constants)."""
    x, x_hat, y_hat, sigma, r, d, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dy_hat = dout * gamma
    dx_hat = dy_hat * r
    xc = x_hat * sigma
    dsigma = -(dx_hat * xc).sum(axis=0) / sigma**2
    dvar = dsigma / (2 * sigma)
    dxc = dx_hat / sigma + 2 * xc * dvar / n
    dx = dxc - dxc.mean(axis=0)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------
# the BatchRenorm module
# --------------------------------------------------------------------------


def renorm_module(
    *,
    r_inverted=False,
    d_sign=1.0,
    d_by_batch_std=False,
    r_lower_clip=True,
    update_first=False,
    eval_eps=False,
    std_init=1.0,
    detach_all=False,
    running_correction=0,
    default_momentum=0.01,
    update_in_graph=False,
    stat_dims="right",  # "batch only": dim 0 for every input
    stats="right",  # "var_mean": torch.var_mean and rsqrt
    rows=False,  # 4-D input handled as (N*H*W, C) rows
    rebind=False,
):
    class BatchRenorm(nn.Module):
        def __init__(
            self, num_features, eps=1e-5, momentum=default_momentum, rmax=1.0, dmax=0.0
        ):
            super().__init__()
            self.num_features, self.eps, self.momentum = num_features, eps, momentum
            self.rmax, self.dmax = rmax, dmax
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_std", torch.full((num_features,), std_init))

        def _update(self, mean, std, x, dims):
            if running_correction:
                std = torch.sqrt(x.var(dims, correction=running_correction) + self.eps)
            a = self.momentum
            if update_in_graph:  # new tensors, made outside torch.no_grad()
                self.running_mean = self.running_mean + a * (mean - self.running_mean)
                self.running_std = self.running_std + a * (std - self.running_std)
                return
            with torch.no_grad():
                if rebind:
                    self.running_mean = (
                        self.running_mean + a * (mean - self.running_mean)
                    ).detach()
                    self.running_std = (
                        self.running_std + a * (std - self.running_std)
                    ).detach()
                else:
                    self.running_mean += a * (mean - self.running_mean)
                    self.running_std += a * (std - self.running_std)

        def _train(self, x):
            dims = [0] if stat_dims == "batch only" or x.dim() == 2 else [0, 2, 3]
            if stats == "var_mean":
                var, mean = torch.var_mean(x, dims, correction=0)
                std = torch.sqrt(var + self.eps)
            else:
                mean = x.mean(dims)
                std = torch.sqrt(x.var(dims, correction=0) + self.eps)
            if update_first:
                self._update(mean, std, x, dims)
            if detach_all:
                mean, std = mean.detach(), std.detach()
            with torch.no_grad():
                s, m = std.detach(), mean.detach()
                r = self.running_std / s if r_inverted else s / self.running_std
                lo = 1 / self.rmax if r_lower_clip else None
                r = r.clamp(lo, self.rmax)
                scale = s if d_by_batch_std else self.running_std
                d = (d_sign * (m - self.running_mean) / scale).clamp(
                    -self.dmax, self.dmax
                )
            if not update_first:
                self._update(mean, std, x, dims)
            return mean, std, r, d

        def forward(self, x):
            if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
                raise ValueError(f"expected (N, {self.num_features}[, H, W]) input")
            if rows and x.dim() == 4:
                n, c, h, w = x.shape
                flat = x.permute(0, 2, 3, 1).reshape(-1, c)
                return self.forward(flat).reshape(n, h, w, c).permute(0, 3, 1, 2)
            view = [1, -1] + [1] * (x.dim() - 2)
            if not self.training:
                std = self.running_std
                if eval_eps:
                    std = torch.sqrt(self.running_std**2 + self.eps)
                x_hat = (x - self.running_mean.view(view)) / std.view(view)
            else:
                mean, std, r, d = self._train(x)
                if stats == "var_mean":
                    x_hat = (x - mean.view(view)) * torch.rsqrt(
                        std.view(view) ** 2
                    ) * r.view(view) + d.view(view)
                else:
                    x_hat = (x - mean.view(view)) / std.view(view) * r.view(
                        view
                    ) + d.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)

    return BatchRenorm


# --------------------------------------------------------------------------
# the schedule
# --------------------------------------------------------------------------


def schedule(kind):
    def renorm_schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        t = step - warmup
        if kind == "integer division":
            pr = min(1, max(0, t // r_steps))
            pd = min(1, max(0, t // d_steps))
        elif kind == "one step late":
            pr = min(1.0, max(0.0, (t - 1) / r_steps))
            pd = min(1.0, max(0.0, (t - 1) / d_steps))
        elif kind == "one length":
            pr = pd = min(1.0, max(0.0, t / r_steps))
        elif kind == "no lower clip":
            pr, pd = min(1.0, t / r_steps), min(1.0, t / d_steps)
        else:
            pr = min(1.0, max(0.0, t / r_steps))
            pd = min(1.0, max(0.0, t / d_steps))
        rmax = 1.0 + (rmax_final - 1.0) * pr
        dmax = dmax_final * pd
        if kind == "dmax from 1":
            dmax = 1.0 + (dmax_final - 1.0) * pd
        if kind == "rmax past its final":
            rmax = 1.0 + rmax_final * pr
        if kind == "returns (dmax, rmax)":
            return dmax, rmax
        return rmax, dmax

    return renorm_schedule


def schedule_interp(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    rmax = np.interp(step, [warmup, warmup + r_steps], [1.0, rmax_final])
    dmax = np.interp(step, [warmup, warmup + d_steps], [0.0, dmax_final])
    return float(rmax), float(dmax)


def schedule_clip(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    progress = np.clip((step - warmup) / np.array([r_steps, d_steps]), 0.0, 1.0)
    return 1.0 + (rmax_final - 1.0) * progress[0], dmax_final * progress[1]


B, M, S = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
GIVEN = {"batch_renorm_forward": renorm_forward}


def _b(name, cause, **kw):
    return entry(B, name, _bwd(**kw), cause, given=GIVEN)


def _m(name, cause, **kw):
    return entry(M, name, renorm_module(**kw), cause, replaces="BatchRenorm")


def _s(kind, cause):
    return entry(S, kind, schedule(kind), cause)


ENTRIES = [
    _b("divides by r", "dx divides by r instead of multiplying by it", r_power=-1),
    _b(
        "dgamma without d",
        "dgamma = sum(dout * x_hat * r): the shift d is left out of y_hat",
        dgamma_from="x_hat r",
    ),
    _b(
        "y_hat in the variance branch",
        "the variance branch of dx projects on y_hat instead of x_hat",
        branch="y_hat",
    ),
    _b(
        "lesson 02's closed form with renorm's dgamma",
        "lesson 02's closed form is reused with dgamma = sum(dout * y_hat), but "
        "the formula needs sum(dout * x_hat)",
        branch="closed form of lesson 02",
    ),
    _b(
        "std recomputed without eps",
        "sigma is recomputed from x as x.std(0), without eps",
        std="recomputed",
    ),
    right(B, "one line with einsum", backward_one_line, given=GIVEN),
    right(B, "staged through sigma", backward_staged, given=GIVEN),
    _m(
        "r inverted",
        "r = running_std / sigma_B instead of sigma_B / running_std",
        r_inverted=True,
    ),
    _m(
        "d with the wrong sign",
        "d = (running_mean - mu_B) / running_std: sign flipped",
        d_sign=-1.0,
    ),
    _m(
        "d divided by the batch std",
        "d divides by sigma_B instead of running_std",
        d_by_batch_std=True,
    ),
    _m(
        "r clipped from above only",
        "r is clipped to rmax but not to 1/rmax from below",
        r_lower_clip=False,
    ),
    _m(
        "running statistics updated before r and d",
        "the running statistics are "
        "updated before r and d are computed, so r and d use the new values",
        update_first=True,
    ),
    _m(
        "eps in eval mode",
        "eval mode divides by sqrt(running_std^2 + eps) instead of running_std",
        eval_eps=True,
    ),
    _m(
        "running_std starts at 0",
        "running_std is initialised to zeros instead of ones",
        std_init=0.0,
    ),
    _m(
        "whole normalisation detached",
        "mean and sigma are detached before "
        "normalising, so no gradient flows through the batch statistics",
        detach_all=True,
    ),
    _m(
        "running std from the unbiased variance",
        "running_std is updated with the unbiased batch variance (correction=1)",
        running_correction=1,
    ),
    _m(
        "torch's default momentum",
        "the default momentum is 0.1 (torch's batch norm) instead of the paper's 0.01",
        default_momentum=0.1,
    ),
    _m(
        "running statistics left in the graph",
        "the running statistics are "
        "rebuilt outside torch.no_grad(), so they carry autograd history across "
        "steps",
        update_in_graph=True,
    ),
    _m(
        "statistics over dim 0 for images",
        "for (N, C, H, W) input the statistics are taken over dim 0 only",
        stat_dims="batch only",
    ),
    right(
        M,
        "var_mean, rsqrt and rebound buffers",
        renorm_module(stats="var_mean", rebind=True),
        replaces="BatchRenorm",
    ),
    right(M, "images as rows", renorm_module(rows=True), replaces="BatchRenorm"),
    _s(
        "integer division",
        "(step - warmup) // r_steps is integer division, so "
        "the ramps jump from 0 to 1 at their end",
    ),
    _s(
        "one step late",
        "the ramps start one step after the warm-up (step - warmup - 1)",
    ),
    _s("one length", "dmax ramps over r_steps instead of d_steps"),
    _s(
        "no lower clip",
        "the progress is not clipped at 0, so during the warm-up rmax < 1 and dmax < 0",
    ),
    _s("dmax from 1", "dmax ramps from 1 (like rmax) instead of from 0"),
    _s(
        "rmax past its final",
        "rmax = 1 + rmax_final * progress, which ends at 1 + rmax_final",
    ),
    _s("returns (dmax, rmax)", "the pair is returned in the wrong order"),
    right(S, "np.interp", schedule_interp),
    right(S, "np.clip on both progresses", schedule_clip),
]
