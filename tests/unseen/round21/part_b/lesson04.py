"""Held-out answers (twenty-first set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_dgamma_matrix_product(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = dout.T @ y_hat  # sum over the batch of dout * y_hat
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_gamma_at_r(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * (gamma @ r)  # gamma times r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_staged_dmu_not_averaged(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    dx_hat = dout * gamma * r
    centred = x_hat * std  # x - mu
    dvar = (dx_hat * centred).sum(axis=0) * -0.5 * std ** -3
    dmu = (-dx_hat / std).sum(axis=0) + dvar * (-2.0 * centred).mean(axis=0)
    dx = dx_hat / std + dvar * 2.0 * centred / n + dmu
    return dx, dgamma, dbeta


def bw_builtin_sum(dout, cache):
    """Correct: Python's built-in sum() over the rows and len() for the batch size."""
    x_hat, y_hat, std, r, gamma = cache
    n = len(dout)
    dbeta = sum(dout)
    dgamma = sum(dout * y_hat)
    g = dout * (gamma * r)
    dx = (g - sum(g) / n - x_hat * (sum(g * x_hat) / n)) / std
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
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def _check(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchRenorm: expected (N, C) or (N, C, H, W) input, got {x.dim()}-D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): the input has {x.shape[1]} channels")

    def _r_d(self, mean, std):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self._r_d(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view)
        y_hat = x_hat * r.view(view) + d.view(view)
        self._update(mean, std)
        return y_hat * self.weight.view(view) + self.bias.view(view)


class ReturnsUncorrected(_Renorm):
    """y_hat computed, x_hat returned in training mode."""

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self._r_d(mean, std)
        x_hat = (x - mean.view(view)) / std.view(view)
        y_hat = x_hat * r.view(view) + d.view(view)  # noqa: F841
        self._update(mean, std)
        return x_hat * self.weight.view(view) + self.bias.view(view)


class NoGradWithoutCall(_Renorm):
    """`with torch.no_grad:` (no parentheses) around r and d."""

    def _r_d(self, mean, std):
        with torch.no_grad:
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d


class RDUnderInferenceMode(_Renorm):
    """r and d computed under torch.inference_mode()."""

    def _r_d(self, mean, std):
        with torch.inference_mode():
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d


class RunningStdEqualsPlus(_Renorm):
    """`=+` typed for `+=` in the running_std update."""

    def _update(self, mean, std):
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std =+ self.momentum * (std - self.running_std)  # noqa: E225


# ---- renorm_schedule ------------------------------------------------------------------


def sch_lengths_truncated_to_int(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    warmup, r_steps, d_steps = int(warmup), int(r_steps), int(d_steps)  # steps are whole numbers

    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_returns_progress(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    def progress(length):
        if length <= 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    rmax = progress(r_steps)
    dmax = progress(d_steps)
    return rmax, dmax


ENTRIES = [
    entry(BW, "dgamma as dout.T @ y_hat (a (D, D) matrix)", bw_dgamma_matrix_product,
          cause="dgamma is written dout.T @ y_hat, a (D, D) matrix whose diagonal is the right dgamma (the "
                "off-diagonal entries mix features), instead of (dout * y_hat).sum(axis=0); dx and dbeta are "
                "right."),
    entry(BW, "gamma @ r (a dot product) for gamma * r", bw_gamma_at_r,
          cause="the factor reaching x_hat is written dout * (gamma @ r), the dot product of gamma and r (one "
                "number, sum of gamma * r) instead of the per-feature product gamma * r, so dx is scaled by "
                "sum(gamma * r) / (gamma_j * r_j) per feature (right only with one feature); dgamma and dbeta "
                "are right."),
    entry(BW, "staged: dmu added to dx without dividing by N", bw_staged_dmu_not_averaged,
          cause="the staged backward (dx_hat, dvar, dmu) adds dmu to dx instead of dmu / N, so the mean branch "
                "is N times too large (dx off by (N - 1) * dmu / N per feature); the dvar branch, dgamma and "
                "dbeta are right."),
    right(BW, "built-in sum() over the rows, len() for N", bw_builtin_sum),
    entry(BR, "r and d computed, uncorrected x_hat returned", ReturnsUncorrected, replaces=NAME,
          cause="training mode computes y_hat = x_hat * r + d but returns weight * x_hat + bias (a variable-name "
                "slip), so the correction is never applied and the layer is plain batch norm in training (right "
                "only while rmax = 1 and dmax = 0); the buffers and eval mode are right."),
    entry(BR, "`with torch.no_grad:` without the call parentheses", NoGradWithoutCall, replaces=NAME,
          cause="r and d are computed in `with torch.no_grad:` (the class, not an instance), which raises "
                "TypeError (not a context manager) at every training step; eval mode is right."),
    entry(BR, "r and d computed under torch.inference_mode()", RDUnderInferenceMode, replaces=NAME,
          cause="r and d are computed under torch.inference_mode() instead of torch.no_grad(), which makes them "
                "inference tensors: multiplying them into a graph that needs them for the gradient (an input "
                "that requires grad) raises RuntimeError (inference tensors cannot be saved for backward); "
                "with an input that needs no gradient the values are right."),
    entry(BR, "`=+` for `+=` in the running_std update", RunningStdEqualsPlus, replaces=NAME,
          cause="the running std update is typed self.running_std =+ momentum * (sigma_B - running_std), which "
                "assigns the increment itself (+x) instead of adding it, so running_std becomes a small (often "
                "negative) number after the first step and the later r, d and eval outputs are wrong; the "
                "running mean and the first step's output are right."),
    entry(SCH, "warm-up and ramp lengths truncated with int()", sch_lengths_truncated_to_int,
          cause="warmup, r_steps and d_steps are converted with int() ('steps are whole numbers'), which "
                "truncates the fractional lengths that set_bounds' scaling produces (12.5 -> 12, 87.5 -> 87), so "
                "the ramps start and end early by the dropped fraction; whole-number arguments are right."),
    entry(SCH, "returns the ramps' progress, not the bounds", sch_returns_progress,
          cause="the function returns the two ramps' progress (0 to 1, like a LambdaLR multiplier) instead of "
                "the bounds 1 + (rmax_final - 1) * progress and dmax_final * progress, so rmax starts at 0 "
                "and ends at 1 and dmax ends at 1 whatever rmax_final and dmax_final are."),
]
