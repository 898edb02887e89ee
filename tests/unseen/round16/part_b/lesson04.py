"""Held-out answers (sixteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_np_cov_default_ddof(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = np.empty_like(g)
    for j in range(g.shape[1]):
        cov = np.cov(g[:, j], x_hat[:, j])[0, 1]  # covariance of g with x_hat
        dx[:, j] = (g[:, j] - g[:, j].mean() - x_hat[:, j] * cov) / std[j]
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_projection_per_example(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    proj = (g * x_hat).mean(axis=1, keepdims=True)  # keepdims so that it broadcasts
    dx = (g - g.mean(axis=0) - x_hat * proj) / std
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_feature_loop_from_one(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n, features = dout.shape
    dx = np.zeros_like(dout)
    for j in range(1, features):
        g = dout[:, j] * gamma[j] * r[j]
        dx[:, j] = (g - g.mean() - x_hat[:, j] * (g * x_hat[:, j]).mean()) / std[j]
    dgamma = (dout * y_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def bw_centring_matrix(dout, cache):
    """Correct: the batch mean removed with the centring matrix I - 11^T / N (a matrix product
    on the left), the projection with einsum, dbeta as ones @ dout."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    g = dout * (gamma * r)[None, :]
    coef = np.einsum("nd,nd->d", g, x_hat) / n
    dx = (centre @ g - x_hat * coef) / std
    dgamma = np.einsum("nd,nd->d", dout, y_hat)
    dbeta = np.ones(n) @ dout
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
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
        self._make_buffers()

    def _make_buffers(self):
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_std", torch.ones(self.num_features))

    def _check(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W), got {x.dim()}-D input")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected {self.num_features} channels, got {x.shape[1]}")

    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)

    def _train(self, x, dims, v):
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dim=dims)
        sigma = torch.sqrt(x.var(dim=dims, correction=0) + self.eps)
        with torch.no_grad():
            r = (sigma / self.running_std).clamp(1.0 / self.rmax, self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax)
        y = (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
        self._update(mean.detach(), sigma.detach())
        return y

    def _eval(self, x, v):
        return (x - self.running_mean.view(v)) / self.running_std.view(v)

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        y = self._train(x, dims, v) if self.training else self._eval(x, v)
        return y * self.weight.view(v) + self.bias.view(v)


class KerasTrainingArgument(_Renorm):
    """forward(x, training=True), as a Keras layer's call(inputs, training=...)."""

    def forward(self, x, training=True):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        v = [1, -1] + [1] * (x.dim() - 2)
        y = self._train(x, dims, v) if training else self._eval(x, v)
        return y * self.weight.view(v) + self.bias.view(v)


class RunningStdParenthesesDropped(_Renorm):
    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * sigma - self.running_std  # parentheses dropped


class BuffersOfShapeOneByC(_Renorm):
    def _make_buffers(self):
        self.register_buffer("running_mean", torch.zeros(1, self.num_features))  # a row, to broadcast
        self.register_buffer("running_std", torch.ones(1, self.num_features))


class LerpStartAndEndSwapped(_Renorm):
    def _update(self, mean, sigma):
        with torch.no_grad():
            self.running_mean.copy_(torch.lerp(mean, self.running_mean, self.momentum))
            self.running_std.copy_(torch.lerp(sigma, self.running_std, self.momentum))


class HypotStdMean(nn.Module):
    """Correct: channels moved last (movedim), torch.std_mean with correction=0, sigma_B as
    hypot(std, sqrt(eps)); r and d from detached statistics clipped with clamp(min=, max=); buffers
    updated with add_; eval on the channels-last view."""

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
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) only, not shape {tuple(x.shape)}")
        c = self.num_features
        if x.shape[1] != c:
            raise ValueError(f"BatchRenorm: {x.shape[1]} channels where {c} were declared")
        last = x.movedim(1, -1)  # (..., C)
        if self.training:
            flat = last.reshape(-1, c)
            if flat.shape[0] < 2:
                raise ValueError("BatchRenorm: one value per channel, no batch statistics in training")
            std0, mean = torch.std_mean(flat, dim=0, correction=0)
            sigma = torch.hypot(std0, torch.full_like(std0, self.eps ** 0.5))
            ms, ss = mean.detach(), sigma.detach()
            r = (ss / self.running_std).clamp(min=1.0 / self.rmax, max=self.rmax)
            d = ((ms - self.running_mean) / self.running_std).clamp(min=-self.dmax, max=self.dmax)
            y = (last - mean) / sigma * r + d
            with torch.no_grad():
                self.running_mean.add_(self.momentum * (ms - self.running_mean))
                self.running_std.add_(self.momentum * (ss - self.running_std))
        else:
            y = (last - self.running_mean) / self.running_std
        return (y * self.weight + self.bias).movedim(-1, 1)


# ---- renorm_schedule ------------------------------------------------------------------


def sch_step_clamped_for_r_reused(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0
    step = min(step, warmup + r_steps)  # past the end of the r ramp nothing changes
    rmax = 1.0 + (rmax_final - 1.0) * ((step - warmup) / r_steps if r_steps > 0 else 1.0)
    dmax = dmax_final * (min(1.0, (step - warmup) / d_steps) if d_steps > 0 else 1.0)
    return rmax, dmax


def sch_zero_length_as_paper_length(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    r_steps = r_steps or 35000  # the paper's lengths when none is given
    d_steps = d_steps or 20000
    if step <= warmup:
        return 1.0, 0.0
    rmax = 1.0 + (rmax_final - 1.0) * min(1.0, (step - warmup) / r_steps)
    dmax = dmax_final * min(1.0, (step - warmup) / d_steps)
    return rmax, dmax


ENTRIES = [
    entry(BW, "np.cov with its default N - 1", bw_np_cov_default_ddof,
          cause="the projection coefficient is np.cov(g, x_hat)[0, 1], which divides by N - 1 by default "
                "(bias=False), instead of the mean of g * x_hat (dividing by N): the projection term of dx "
                "is N / (N - 1) too large; dgamma and dbeta are right."),
    entry(BW, "projection averaged per example (axis=1, keepdims)", bw_projection_per_example,
          cause="the projection coefficient is (g * x_hat).mean(axis=1, keepdims=True), a mean over the "
                "features of each example, instead of the mean over the batch (axis=0); dgamma and dbeta "
                "are right."),
    entry(BW, "feature loop starts at 1", bw_feature_loop_from_one,
          cause="the per-feature loop runs over range(1, D), so the first feature's column of dx is never "
                "computed and stays zero; the other columns, dgamma and dbeta are right."),
    right(BW, "centring matrix on the left, einsum projection, ones @ dout", bw_centring_matrix),
    entry(BR, "Keras-style training argument", KerasTrainingArgument, replaces=NAME,
          cause="forward(x, training=True) decides the mode from its own argument (Keras's call(inputs, "
                "training)) instead of self.training, so after .eval() the module still normalises with the "
                "batch statistics and updates its buffers."),
    entry(BR, "parentheses dropped in the running_std update", RunningStdParenthesesDropped, replaces=NAME,
          cause="running_std += momentum * sigma_B - running_std (parentheses dropped), so running_std becomes "
                "momentum * sigma_B after every step instead of moving by momentum towards sigma_B; "
                "running_mean is right."),
    entry(BR, "running buffers of shape (1, C)", BuffersOfShapeOneByC, replaces=NAME,
          cause="running_mean and running_std are registered as torch.zeros(1, C) / torch.ones(1, C) rows "
                "instead of vectors of shape (C,): the values broadcast right but the buffers (and "
                "state_dict) have the wrong shape."),
    entry(BR, "torch.lerp with start and end swapped", LerpStartAndEndSwapped, replaces=NAME,
          cause="updates the buffers with torch.lerp(batch, running, momentum) instead of "
                "torch.lerp(running, batch, momentum), so the running statistics keep only momentum of "
                "their old value and take 1 - momentum of the batch's."),
    right(BR, "movedim, std_mean and hypot(std, sqrt(eps))", HypotStdMean, replaces=NAME),
    entry(SCH, "step clamped for the r ramp, then reused for d", sch_step_clamped_for_r_reused,
          cause="step is clamped to warmup + r_steps (the end of the r ramp) and the clamped value is reused "
                "for the d ramp, so when d_steps > r_steps dmax stops growing at the end of the r ramp "
                "(and stays 0 when r_steps = 0)."),
    entry(SCH, "zero-length ramp replaced by the paper's length", sch_zero_length_as_paper_length,
          cause="r_steps or 35000 / d_steps or 20000 turns a ramp of 0 steps into the paper's ramp length, "
                "so a zero-length ramp rises slowly instead of jumping to its final value right after "
                "the warm-up."),
]
