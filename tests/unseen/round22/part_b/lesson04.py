"""Held-out answers (twenty-second set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import torch
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_dgamma_d_twice(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    # the output is gamma * (x_hat * r + d) + beta: the y_hat part, and the d part
    dgamma = (dout * y_hat).sum(axis=0) + (y_hat - x_hat * r).mean(axis=0) * dbeta
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, dgamma, dbeta


def bw_means_then_over_n(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / (n * std)
    return dx, dgamma, dbeta


def bw_times_std(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * y_hat).sum(axis=0)
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) * std  # x = x_hat * std + mu
    return dx, dgamma, dbeta


# ---- BatchRenorm ----------------------------------------------------------------------


class _Renorm(nn.Module):
    """A right learner's module, in small methods; each wrong entry changes one."""

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

    def _view(self, x):
        return [1, -1] + [1] * (x.dim() - 2)

    def _r_d(self, mean, std):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, 1.0 / self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d

    def _eval(self, x, view):
        return (x - self.running_mean.view(view)) / self.running_std.view(view)

    def _train(self, x, dims, view):
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm: training needs more than one value per channel")
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, correction=0) + self.eps)
        r, d = self._r_d(mean, std)
        y_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        return y_hat

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = self._view(x)
        if not self.training:
            y_hat = self._eval(x, view)
        else:
            y_hat = self._train(x, dims, view)
        return y_hat * self.weight.view(view) + self.bias.view(view)


class RClampCopiedFromD(_Renorm):
    """r clipped to [-rmax, rmax], the d line's symmetric bounds."""

    def _r_d(self, mean, std):
        with torch.no_grad():
            r = torch.clamp(std / self.running_std, -self.rmax, self.rmax)
            d = torch.clamp((mean - self.running_mean) / self.running_std, -self.dmax, self.dmax)
        return r, d


class ClampResultsDropped(_Renorm):
    """r.clamp(...) and d.clamp(...) called for their effect: the clipped copies are thrown away."""

    def _r_d(self, mean, std):
        with torch.no_grad():
            r = std / self.running_std
            d = (mean - self.running_mean) / self.running_std
            r.clamp(1.0 / self.rmax, self.rmax)
            d.clamp(-self.dmax, self.dmax)
        return r, d


class ViewOneShort(_Renorm):
    """The per-channel view built with x.dim() - 3 trailing ones."""

    def _view(self, x):
        return [1, -1] + [1] * (x.dim() - 3)


class ModeBranchesSwapped(_Renorm):
    """`if self.training:` where `if not self.training:` was meant."""

    def forward(self, x):
        self._check(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        view = self._view(x)
        if self.training:
            y_hat = self._eval(x, view)
        else:
            y_hat = self._train(x, dims, view)
        return y_hat * self.weight.view(view) + self.bias.view(view)


class InPlaceSigmaAndCorrection(nn.Module):
    """Correct: sigma_B by in-place add_ and sqrt_ on the batch variance, the correction applied in place
    (mul_, add_) on the normalised tensor, channels found by a comprehension, buffers moved with sub_."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features = num_features
        self.eps, self.momentum, self.rmax, self.dmax = eps, momentum, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim != 2 and x.ndim != 4:
            raise ValueError(f"BatchRenorm: {x.ndim}-D input; it takes (N, C) or (N, C, H, W)")
        if x.size(1) != self.num_features:
            raise ValueError(f"BatchRenorm: {x.size(1)} channels, {self.num_features} expected")
        dims = tuple(i for i in range(x.ndim) if i != 1)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            if x.numel() < 2 * x.size(1):
                raise ValueError("BatchRenorm: one value per channel, no batch standard deviation")
            mu = x.mean(dim=dims)
            sigma = x.var(dim=dims, unbiased=False).add_(self.eps).sqrt_()
            r = (sigma.detach() / self.running_std).clamp(min=1 / self.rmax, max=self.rmax)
            d = ((mu.detach() - self.running_mean) / self.running_std).clamp(min=-self.dmax, max=self.dmax)
            y = (x - mu.reshape(shape)) / sigma.reshape(shape)
            y.mul_(r.reshape(shape)).add_(d.reshape(shape))
            with torch.no_grad():
                self.running_mean.sub_(self.momentum * (self.running_mean - mu))
                self.running_std.sub_(self.momentum * (self.running_std - sigma))
        else:
            y = (x - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        return torch.addcmul(self.bias.reshape(shape), y, self.weight.reshape(shape))


# ---- renorm_schedule ------------------------------------------------------------------


def sch_slope_one_capped(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step <= warmup:
        return 1.0, 0.0

    def ramp(length):
        return (step - warmup) / length if length > 0 else float("inf")

    rmax = min(rmax_final, 1.0 + ramp(r_steps))  # rises over r_steps, stops at rmax_final
    dmax = min(dmax_final, 0.0 + ramp(d_steps))
    return rmax, dmax


def sch_warmup_as_range(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    if step in range(warmup + 1):  # steps 0 .. warmup
        return 1.0, 0.0

    def progress(length):
        return 1.0 if length <= 0 else min(1.0, max(0.0, (step - warmup) / length))

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


def sch_early_return_zero_division(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: the warm-up returned first, a ramp of 0 steps caught as ZeroDivisionError."""
    if step <= warmup:
        return 1.0, 0.0
    done = []
    for length in (r_steps, d_steps):
        try:
            done.append(min(1.0, (step - warmup) / length))
        except ZeroDivisionError:
            done.append(1.0)
    return 1.0 + (rmax_final - 1.0) * done[0], dmax_final * done[1]


ENTRIES = [
    entry(BW, "d added to dgamma a second time", bw_dgamma_d_twice,
          cause="dgamma adds a separate d term, d * sum(dout) (d recovered as y_hat - x_hat * r), to "
                "(dout * y_hat).sum(axis=0), whose y_hat already contains d, so d's part of dgamma is counted "
                "twice (right only for the features where d = 0); dx and dbeta are right."),
    entry(BW, "mean form of dx also divided by N", bw_means_then_over_n,
          cause="dx is written with batch means (g - mean(g) - x_hat * mean(g * x_hat)) and then divided by "
                "N * std, mixing in the 1 / N of the sum form, so dx is N times too small; dgamma and dbeta are "
                "right."),
    entry(BW, "dx multiplied by std (chain rule inverted)", bw_times_std,
          cause="the last step of dx multiplies by the batch std instead of dividing (from x = x_hat * std + mu, "
                "the chain rule read backwards), so dx is std^2 times too large per feature; dgamma and dbeta "
                "are right."),
    entry(BR, "r clipped to [-rmax, rmax], the d line's bounds", RClampCopiedFromD, replaces=NAME,
          cause="r is clamped to [-rmax, rmax], the symmetric bounds of d's line copied, instead of "
                "[1 / rmax, rmax], so r is never pushed up to 1 / rmax: with rmax = 1 the layer is not plain "
                "batch norm (r = sigma_B / sigma whenever that is below 1); d, the buffers and eval mode are "
                "right."),
    entry(BR, "r.clamp(...) and d.clamp(...) results thrown away", ClampResultsDropped, replaces=NAME,
          cause="r and d are computed and then r.clamp(...) and d.clamp(...) are called without assigning their "
                "results (clamp is not in place), so r and d are never clipped: even with rmax = 1, dmax = 0 "
                "the layer applies the full correction; the buffers and eval mode are right."),
    entry(BR, "per-channel view one dimension short for images", ViewOneShort, replaces=NAME,
          cause="the per-channel view is built as [1, -1] + [1] * (x.dim() - 3), one trailing 1 short, so for "
                "(N, C, H, W) input the statistics are viewed as (1, C, 1) and broadcast against (H, W) (a shape "
                "error, or the wrong axis when C equals H); (N, C) input is right."),
    entry(BR, "`if self.training:` for `if not self.training:`", ModeBranchesSwapped, replaces=NAME,
          cause="the mode test lost its `not`, so training mode normalises with the running statistics (no "
                "batch statistics, r, d, or running update) and eval mode uses the batch's statistics and "
                "updates the buffers; each branch's code is right."),
    right(BR, "in-place add_/sqrt_ for sigma_B and mul_/add_ for the correction", InPlaceSigmaAndCorrection,
          replaces=NAME),
    entry(SCH, "ramps rise by 1 per ramp length, capped at the final values", sch_slope_one_capped,
          cause="each bound rises by 1 over its ramp length ((step - warmup) / length) and is capped at its final "
                "value, leaving out the factor (final - start), so rmax reaches 3 only after 2 * r_steps and dmax "
                "reaches 5 after 5 * d_steps (right only when the final value is 1 above the start)."),
    entry(SCH, "warm-up tested with `step in range(warmup + 1)`", sch_warmup_as_range,
          cause="the warm-up is tested with step in range(warmup + 1), which raises TypeError when warmup is not "
                "a whole number (set_bounds' scaling gives 12.5 for the notebook's runs); integer arguments are "
                "right."),
    right(SCH, "warm-up returned first, ZeroDivisionError for a ramp of 0 steps", sch_early_return_zero_division),
]
