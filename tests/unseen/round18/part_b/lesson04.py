"""Held-out answers (eighteenth set, part b), lesson 04: batch_renorm_backward, BatchRenorm,
renorm_schedule."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

BW, BR, SCH = "batch_renorm_backward", "batch_renorm", "renorm_schedule"
NAME = "BatchRenorm"

# ---- batch_renorm_backward ----------------------------------------------------------


def bw_product_of_means(dout, cache):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r  # what reaches x_hat
    projection = g.mean(axis=0) * x_hat.mean(axis=0)  # E[g * x_hat]
    dx = (g - g.mean(axis=0) - x_hat * projection) / std
    dgamma = np.sum(dout * y_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_cache_first(cache, dout):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * r
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    dgamma = np.sum(dout * y_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bw_staged_mean_branch_over_std_twice(dout, cache):
    """Staged through x - mu, the variance and the mean, as lesson 02's graph."""
    x_hat, y_hat, std, r, gamma = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * y_hat, axis=0)
    dxhat = dout * gamma * r
    xmu = x_hat * std
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * std ** -3
    dmu = np.sum(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmu / (n * std)
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
        self._make()

    def _make(self):
        c = self.num_features
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_std", torch.ones(c))

    def _r_d(self, mean, sigma):
        with torch.no_grad():
            r = torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)
            d = self._clip_d((mean - self.running_mean) / self.running_std)
        return r, d

    def _clip_d(self, d):
        return torch.clamp(d, -self.dmax, self.dmax)

    def forward(self, x):
        if x.dim() != 2 and x.dim() != 4:
            raise ValueError(f"BatchRenorm: (N, C) or (N, C, H, W) input, not {x.dim()}-D")
        if x.size(1) != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}): input has {x.size(1)} channels")
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        v = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        w, b = self.weight.view(v), self.bias.view(v)
        if not self.training:
            return (x - self.running_mean.view(v)) / self.running_std.view(v) * w + b
        if x.numel() // x.size(1) < 2:
            raise ValueError("BatchRenorm: one value per channel cannot be normalised in training")
        mean = x.mean(dims)
        sigma = (x.var(dims, correction=0) + self.eps).sqrt()
        r, d = self._r_d(mean, sigma)
        y = (x - mean.view(v)) / sigma.view(v) * r.view(v) + d.view(v)
        with torch.no_grad():
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (sigma - self.running_std)
        return y * w + b


class KerasRenormClipping(_Renorm):
    """Keras's BatchNormalization(renorm=True, renorm_clipping={...}) signature."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, renorm_clipping=None):
        nn.Module.__init__(self)
        clipping = dict(renorm_clipping or {})
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.rmax = clipping.get("rmax", 1.0)
        self.dmax = clipping.get("dmax", 0.0)
        self._make()


class RequiresGradFalse(_Renorm):
    """r and d made constants with requires_grad_(False)."""

    def _r_d(self, mean, sigma):
        r = torch.clamp(sigma / self.running_std, 1.0 / self.rmax, self.rmax)
        d = self._clip_d((mean - self.running_mean) / self.running_std)
        r.requires_grad_(False)
        d.requires_grad_(False)
        return r, d


class BoundsAsClassDefaults(_Renorm):
    rmax = 1.0  # plain batch norm until the schedule says otherwise
    dmax = 0.0

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        nn.Module.__init__(self)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self._make()


class DmaxZeroMeansUnclipped(_Renorm):
    """Keras's renorm_clipping habit: a bound that is not set does not clip."""

    def _clip_d(self, d):
        if self.dmax:
            d = torch.clamp(d, -self.dmax, self.dmax)
        return d


class RenormThroughBatchNormAffine(nn.Module):
    """Correct: training mode is F.batch_norm with the batch's statistics and r, d folded into its
    affine parameters, gamma * (x_hat r + d) + beta = (gamma r) x_hat + (gamma d + beta); sigma_B
    from torch.var_mean; buffers moved with lerp_ under no_grad; eval as one scale and shift."""

    def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x):
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchRenorm wants (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm expects {self.num_features} channels, got {x.shape[1]}")
        if not self.training:
            scale = self.weight / self.running_std
            shift = self.bias - self.running_mean * scale
            shape = (1, -1) + (1,) * (x.ndim - 2)
            return x * scale.reshape(shape) + shift.reshape(shape)
        if x.numel() // x.shape[1] < 2:
            raise ValueError("BatchRenorm needs two or more values per channel in training")
        dims = [d for d in range(x.ndim) if d != 1]
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            sigma = torch.sqrt(var + self.eps)
            r = (sigma / self.running_std).clamp(min=1.0 / self.rmax, max=self.rmax)
            d = ((mean - self.running_mean) / self.running_std).clamp(min=-self.dmax, max=self.dmax)
        out = F.batch_norm(x, None, None, self.weight * r, self.bias + self.weight * d,
                           training=True, momentum=0.0, eps=self.eps)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(sigma, self.momentum)
        return out


# ---- renorm_schedule ------------------------------------------------------------------


def sch_keras_schedule_factory(warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Built once, called with the step (as Keras's LearningRateSchedule objects are)."""

    def progress(step, length):
        if length == 0:
            return 1.0 if step > warmup else 0.0
        return min(1.0, max(0.0, (step - warmup) / length))

    def schedule(step):
        return 1.0 + (rmax_final - 1.0) * progress(step, r_steps), dmax_final * progress(step, d_steps)

    return schedule


def sch_table_negative_index(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Each ramp as a table of its values, indexed by the steps since the warm-up."""

    def bound(start, end, length):
        if length == 0:
            return end if step > warmup else start
        table = start + (end - start) * (np.arange(length + 1) / length)
        return float(table[min(step - warmup, length)])

    return bound(1.0, rmax_final, r_steps), bound(0.0, dmax_final, d_steps)


def sch_torch_heaviside(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Correct: progress as a float64 tensor, clamp for a ramp, torch.heaviside (0 at the step
    itself) for a ramp of 0 steps, back to Python floats with .item()."""
    elapsed = torch.tensor(float(step - warmup), dtype=torch.float64)

    def progress(length):
        if length == 0:
            return torch.heaviside(elapsed, torch.zeros((), dtype=torch.float64)).item()
        return torch.clamp(elapsed / length, 0.0, 1.0).item()

    return 1.0 + (rmax_final - 1.0) * progress(r_steps), dmax_final * progress(d_steps)


ENTRIES = [
    entry(BW, "E[g * x_hat] taken as E[g] * E[x_hat]", bw_product_of_means,
          cause="the projection coefficient mean(g * x_hat) is written as mean(g) * mean(x_hat), and x_hat "
                "has mean zero over the batch, so the projection term of dx vanishes: dx = (g - mean g) / std; "
                "dgamma and dbeta are right."),
    entry(BW, "parameters in the order (cache, dout)", bw_cache_first,
          cause="the function is defined as batch_renorm_backward(cache, dout), the reverse of the exercise's "
                "(dout, cache), so called as (dout, cache) it unpacks the gradient array as the cache "
                "(ValueError: too many values to unpack, or garbage when N = 5)."),
    entry(BW, "staged: mean branch divided by std twice", bw_staged_mean_branch_over_std_twice,
          cause="in the staged backward dmu already contains the 1/std (sum of -dxhat / std), but dx adds "
                "dmu / (N * std), so the mean-subtraction term of dx is divided by std once more; the "
                "variance branch, dgamma and dbeta are right."),
    entry(BR, "Keras's renorm_clipping dict in place of rmax and dmax", KerasRenormClipping, replaces=NAME,
          cause="the constructor takes renorm_clipping={'rmax': ..., 'dmax': ...} as Keras does instead of "
                "rmax= and dmax=, so BatchRenorm(C, rmax=2.0, dmax=1.0) raises TypeError; with the defaults "
                "(and bounds set as attributes afterwards) the module is right."),
    entry(BR, "r and d fixed with requires_grad_(False)", RequiresGradFalse, replaces=NAME,
          cause="r and d are computed in the graph and then marked constant with requires_grad_(False), which "
                "torch refuses for a non-leaf tensor (RuntimeError) whenever the input requires grad; with a "
                "plain input tensor the outputs and buffers are right."),
    entry(BR, "rmax and dmax left to class attributes", BoundsAsClassDefaults, replaces=NAME,
          cause="__init__ never stores its rmax and dmax arguments, so the class attributes rmax = 1.0 and "
                "dmax = 0.0 are used: BatchRenorm(C, rmax=2.0, dmax=1.0) behaves as plain batch norm until "
                "the bounds are assigned on the instance."),
    entry(BR, "dmax = 0 read as 'no clipping'", DmaxZeroMeansUnclipped, replaces=NAME,
          cause="d is clipped only `if self.dmax:` (Keras's unset-bound habit), so with dmax = 0, the default "
                "and the warm-up value, d is not clipped at all instead of being 0: the training output is "
                "shifted by (mean_B - running_mean) / running_std; any dmax > 0 is right."),
    right(BR, "F.batch_norm with r and d folded into weight and bias", RenormThroughBatchNormAffine,
          replaces=NAME),
    entry(SCH, "a schedule factory (Keras LearningRateSchedule style)", sch_keras_schedule_factory,
          cause="renorm_schedule(warmup, r_steps, d_steps, ...) returns a function of the step instead of "
                "taking the step first and returning (rmax, dmax), so renorm_schedule(step, warmup, r_steps, "
                "d_steps) shifts every argument by one and returns a function."),
    entry(SCH, "ramp table indexed by step - warmup, negative in the warm-up", sch_table_negative_index,
          cause="each ramp is a table of length + 1 values indexed by min(step - warmup, length) with no lower "
                "bound, so during the warm-up the negative index wraps around to values from the end of the "
                "ramp (or raises IndexError far before it) instead of (1, 0); from the warm-up's end on it is right."),
    right(SCH, "float64 tensor progress, clamp, torch.heaviside for 0 steps", sch_torch_heaviside),
]
