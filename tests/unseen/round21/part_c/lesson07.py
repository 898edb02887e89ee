"""Held-out answers (twenty-first set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names
(rounds 2 to 20), so as to differ from them; each wrong entry has one mistake."""

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyInputToFloat(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        x = x.float()  # activations as float, the usual habit
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyScaleSqrt(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        # the variance is spread by up to `spread`, so the standard deviation by its root
        scale = torch.sqrt(1 + torch.rand(c, dtype=dtype) * (self.spread - 1))
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyEvalEpsOutside(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training and self.track_running_stats:  # eval: running statistics, by hand
            x_hat = (x - self.running_mean) / (self.running_var.sqrt() + self.eps)
            return x_hat * self.weight + self.bias if self.affine else x_hat
        if not self.training:
            return super().forward(x)
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyKerasMomentum(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        # _BatchNorm.forward, written out; running = momentum * running + (1 - momentum) * batch
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else 1 - self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        out = F.batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                           self.weight, self.bias, bn_training, factor, self.eps)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyUniformBoundsReversed(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = out.new_empty(c).uniform_(-self.shift, self.shift)
        scale = out.new_empty(c).uniform_(self.spread, 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyLastNoiseShiftTwice(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, shift)
        return out * scale + shift


class NoisyAnyRank(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = out.shape[1]
            u_shift = torch.rand(c, dtype=out.dtype)
            u_scale = torch.rand(c, dtype=out.dtype)
            shift = self.shift * u_shift * 2 - self.shift
            scale = (self.spread - 1) * u_scale + 1
            self.last_noise = (shift, scale)
            view = (1, c) + (1,) * (out.dim() - 2)  # (N, C) or (N, C, L)
            out = out.mul(scale.view(view)).add(shift.view(view))
        return out


# ---- gradient_change -----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def gc_lru_cached(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_lr_index_swapped(model, x, y, lr, index):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_index0_cosine_zero(model, x, y, index, lr):
    if index == 0:
        return 0.0, 0.0  # no layers before it: nothing shifts
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_cosine_with_difference(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    diff = g2 - g
    cosine = F.cosine_similarity(g.flatten(), diff.flatten(), dim=0)
    return diff.norm().item(), cosine.item()


def gc_trace_inner_product(model, x, y, index, lr):
    work = copy.deepcopy(model)
    layer = work[index]
    F.cross_entropy(work(x), y).backward()
    G1 = layer.weight.grad.detach().clone()
    with torch.no_grad():
        for p in work[:index].parameters():
            p.add_(p.grad, alpha=-lr)
    layer.zero_grad()  # only the measured layer's gradient is read again
    F.cross_entropy(work(x), y).backward()
    G2 = layer.weight.grad
    inner = torch.trace(G1 @ G2.T)  # Frobenius inner product <G, G'>
    cosine = inner / (torch.linalg.matrix_norm(G1) * torch.linalg.matrix_norm(G2))
    return torch.linalg.matrix_norm(G1 - G2).item(), cosine.item()


# ---- landscape_probe -------------------------------------------------------------------


def lp_g_buffer_float32(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = torch.zeros(sum(p.numel() for p in params))  # one flat vector for g
    i = 0
    for p in params:
        g[i:i + p.numel()] = p.grad.flatten()
        i += p.numel()
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            j = 0
            for p, p0 in zip(params, start):
                p.copy_(p0 - eta * g[j:j + p.numel()].view_as(p))
                j += p.numel()
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def _xent(logits, y):
    logp = F.log_softmax(logits, dim=1)
    return logp[torch.arange(len(y)), y].mean()  # cross-entropy written by hand


def lp_handwritten_xent_no_minus(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    _xent(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = _xent(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_sub_out_of_place(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0)
                p.sub(eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_start_loss_appended(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    loss = F.cross_entropy(work(x), y)
    loss.backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 6 wrong, 1 correct
    entry(N, "input cast with x.float() at the start of forward", NoisyInputToFloat,
          "casts the input to float32 with x.float() before batch norm, so a float64 layer fails on "
          "(or a float64 input loses precision in) a computation that should stay in the layer's dtype.",
          replaces=NAME),
    entry(N, "scale as the square root of a uniform on [1, spread]", NoisyScaleSqrt,
          "takes the square root of a uniform draw on [1, spread] (reading spread as a factor on the "
          "variance), so the scale lies in [1, sqrt(spread)] instead of [1, spread].", replaces=NAME),
    entry(N, "eval branch by hand with eps added to the standard deviation", NoisyEvalEpsOutside,
          "writes eval mode by hand as (x - running_mean) / (sqrt(running_var) + eps), eps outside the "
          "square root, so eval mode is not plain batch norm (visibly so for channels of small "
          "running variance).", replaces=NAME),
    entry(N, "F.batch_norm given the Keras momentum convention 1 - momentum", NoisyKerasMomentum,
          "passes 1 - self.momentum to F.batch_norm (the Keras convention, running = m * running + "
          "(1 - m) * batch), so the running statistics take 0.9 of each batch instead of 0.1.",
          replaces=NAME),
    entry(N, "scale drawn with uniform_(spread, 1), bounds reversed", NoisyUniformBoundsReversed,
          "calls uniform_(self.spread, 1) with the bounds in the wrong order, which raises for any "
          "spread above 1 (uniform_ wants from <= to).", replaces=NAME),
    entry(N, "last_noise stores the shift twice", NoisyLastNoiseShiftTwice,
          "stores self.last_noise = (shift, shift), a typo for (shift, scale), so the kept noise does not "
          "describe the scale applied to the output.", replaces=NAME),
    right(N, "noise viewed as (1, C, 1...) for any rank, mul/add, shift as shift * 2u - shift",
          NoisyAnyRank, replaces=NAME),
    # gradient_change: 4 wrong, 1 correct
    entry(G, "functools.lru_cache on the function", gc_lru_cached,
          "decorates gradient_change with functools.lru_cache, so a second call with the same model and "
          "batch objects (after the model has trained, as in a training loop) returns the first call's "
          "stale result."),
    entry(G, "signature (model, x, y, lr, index): lr and index swapped", gc_lr_index_swapped,
          "declares the arguments as (model, x, y, lr, index), so a call in the exercise's order "
          "(model, x, y, index, lr) uses the learning rate as the index and the index as the "
          "learning rate."),
    entry(G, "index 0 short-cut returning (0.0, 0.0)", gc_index0_cosine_zero,
          "returns (0.0, 0.0) for index 0 (no layers before it), a cosine of 0 where G' = G gives a "
          "cosine of 1."),
    entry(G, "cosine of G with the difference G' - G", gc_cosine_with_difference,
          "computes the cosine between G and diff = G' - G (the variable it reused for the distance) "
          "instead of between G and G'."),
    right(G, "trace(G G'^T) inner product, matrix_norm, only the measured layer zeroed",
          gc_trace_inner_product),
    # landscape_probe: 4 wrong
    entry(L, "g gathered into a torch.zeros buffer (default float32)", lp_g_buffer_float32,
          "gathers g into torch.zeros(n), whose default dtype is float32, so for a float64 model g is "
          "rounded to float32: the steps and the gradient changes are off by float32 rounding (a "
          "change of about 1e-8 |g| instead of 0 at step size 0)."),
    entry(L, "hand-written cross-entropy without the minus sign", lp_handwritten_xent_no_minus,
          "writes the cross-entropy by hand as the mean of log_softmax at the targets without the "
          "minus sign, so the losses are negative and g is minus the true gradient (the steps go "
          "uphill)."),
    entry(L, "step written p.sub(eta * d), out of place", lp_sub_out_of_place,
          "restores w with p.copy_(p0) and then calls p.sub(eta * d), the out-of-place version whose "
          "result is discarded, so no step is taken: every loss is the loss at w and every change 0."),
    entry(L, "start loss variable appended at every step size", lp_start_loss_appended,
          "appends loss.item() of the variable that still holds the loss at w (the point's loss is "
          "backpropagated without being kept), so every reported loss is the loss at w while the "
          "changes are right."),
]
