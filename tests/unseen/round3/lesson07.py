"""Held-out answers (third set), lesson 07: NoisyBatchNorm, gradient_change,
landscape_probe."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class _Noisy(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def _draw(self, c, dtype):
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        return shift, scale

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self._draw(self.num_features, out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class RangesSwapped(_Noisy):
    def _draw(self, c, dtype):
        shift = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        scale = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        return shift, scale


class HalfNormalScale(_Noisy):
    def _draw(self, c, dtype):
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.randn(c, dtype=dtype).abs() * (self.spread - 1) / 2
        return shift, scale


class NoiseOnlyInEval(_Noisy):
    def forward(self, x):
        out = nn.BatchNorm1d.forward(self, x)
        if self.training:  # condition the wrong way round
            return out
        shift, scale = self._draw(self.num_features, out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ShiftNeverAdded(_Noisy):
    def forward(self, x):
        out = nn.BatchNorm1d.forward(self, x)
        if not self.training:
            return out
        shift, scale = self._draw(self.num_features, out.dtype)
        self.last_noise = (shift, scale)
        return out * scale


class LastNoiseNeverStored(_Noisy):
    def forward(self, x):
        out = nn.BatchNorm1d.forward(self, x)
        if not self.training:
            return out
        shift, scale = self._draw(self.num_features, out.dtype)
        last_noise = (shift, scale)  # noqa: F841 - a local, not the attribute
        return out * scale + shift


class ScaleClampedAtOne(_Noisy):
    def _draw(self, c, dtype):
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = (torch.rand(c, dtype=dtype) * self.spread).clamp(min=1.0)
        return shift, scale


class ShiftRangeDoubled(_Noisy):
    def _draw(self, c, dtype):
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * 2 * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        return shift, scale


class BatchNormCalledTwice(_Noisy):
    def forward(self, x):
        if not self.training:
            return nn.BatchNorm1d.forward(self, x)
        channels = nn.BatchNorm1d.forward(self, x).shape[1]  # "to read C"
        shift, scale = self._draw(channels, x.dtype)
        self.last_noise = (shift, scale)
        return nn.BatchNorm1d.forward(self, x) * scale + shift


class NoisyDrawnTogether(nn.BatchNorm1d):
    """Correct: one (2, C) draw, split; torch.addcmul."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            u = torch.rand(2, self.num_features, dtype=out.dtype, device=out.device)
            shift = self.shift * (2 * u[1] - 1)
            scale = torch.lerp(torch.ones_like(u[0]), torch.full_like(u[0], self.spread), u[0])
            self.last_noise = (shift, scale)
            out = torch.addcmul(shift, out, scale)
        return out


# ---- gradient_change ---------------------------------------------------------------


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def gc_returns_swapped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    cos = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return cos.item(), (g - g2).norm().item()


def gc_layers_after(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[index + 1:]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_dot_product(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), (g.flatten() @ g2.flatten()).item()  # "cosine"


def gc_bias_gradient(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].bias.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].bias.grad
    return (g - g2).norm().item(), F.cosine_similarity(g, g2, dim=0).item()


def gc_decay_typo(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p  # p.grad meant
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_squared_distance(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    return ((g - g2) ** 2).sum().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_step_without_no_grad(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    _loss(work, x, y).backward()
    g = work[index].weight.grad.clone()
    for layer in work[:index]:
        for p in layer.parameters():
            p -= lr * p.grad  # in place on a leaf that requires grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_index_from_one(model, x, y, index, lr):
    work = copy.deepcopy(model)
    layer = work[index - 1]  # "the index-th layer"
    work.zero_grad()
    _loss(work, x, y).backward()
    g = layer.weight.grad.clone()
    with torch.no_grad():
        for before in work[:index - 1]:
            for p in before.parameters():
                p -= lr * p.grad
    work.zero_grad()
    _loss(work, x, y).backward()
    g2 = layer.weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_sgd(model, x, y, index, lr):
    """Correct: torch.optim.SGD on the layers before index."""
    work = copy.deepcopy(model)
    before = [p for layer in work[:index] for p in layer.parameters()]
    opt = torch.optim.SGD(before, lr=lr) if before else None
    work.zero_grad(set_to_none=True)
    _loss(work, x, y).backward()
    g = work[index].weight.grad.detach().clone()
    if opt is not None:
        opt.step()
    work.zero_grad(set_to_none=True)
    _loss(work, x, y).backward()
    g2 = work[index].weight.grad.detach()
    dist = torch.linalg.vector_norm(g - g2)
    cos = torch.dot(g.flatten(), g2.flatten()) / (g.norm() * g2.norm())
    return float(dist), float(cos)


# ---- landscape_probe ---------------------------------------------------------------


def _probe(model, x, y, step_sizes, *, sign=-1.0, change=None, copy_model=True, mode=None, indent_bug=False):
    work = copy.deepcopy(model) if copy_model else model
    if mode == "eval":
        work.eval()
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
                p.copy_(p0 + sign * eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        g2 = torch.cat([p.grad.flatten() for p in params])
        value = (g - g2).norm().item() if change is None else change(g, g2)
        if not indent_bug:
            losses.append(loss.item())
            changes.append(value)
    if indent_bug:
        losses.append(loss.item())
        changes.append(value)
    return losses, changes


def lp_swapped(model, x, y, step_sizes):
    losses, changes = _probe(model, x, y, step_sizes)
    return changes, losses


def lp_no_copy(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, copy_model=False)


def lp_relative(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change=lambda g, g2: ((g - g2).norm() / g.norm()).item())


def lp_ascent(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, sign=+1.0)


def lp_eval_mode(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, mode="eval")


def lp_norm_difference(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change=lambda g, g2: abs(g.norm() - g2.norm()).item())


def lp_append_outside_loop(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, indent_bug=True)


def lp_fresh_copy_each(model, x, y, step_sizes):
    """Correct: a fresh copy of the model for every step size, gradients by
    torch.autograd.grad."""
    base = copy.deepcopy(model)
    names = [n for n, _ in base.named_parameters()]
    g0 = torch.autograd.grad(F.cross_entropy(base(x), y), list(base.parameters()))
    flat0 = torch.cat([t.reshape(-1) for t in g0])
    losses, changes = [], []
    for eta in step_sizes:
        work = copy.deepcopy(model)
        with torch.no_grad():
            for (name, p), d in zip(work.named_parameters(), g0):
                assert name in names
                p.sub_(eta * d)
        loss = F.cross_entropy(work(x), y)
        g1 = torch.autograd.grad(loss, list(work.parameters()))
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(flat0 - torch.cat([t.reshape(-1) for t in g1]))))
    return losses, changes


ENTRIES = [
    entry(N, "shift and scale ranges swapped", RangesSwapped,
          "draws the shift from [1, spread] and the scale from [-shift, shift]: the two ranges are swapped.", replaces=NAME),
    entry(N, "scale from a half-normal", HalfNormalScale,
          "draws the scale as 1 + |normal| * (spread - 1)/2 (unbounded, not uniform) instead of uniform in [1, spread].", replaces=NAME),
    entry(N, "noise only in eval mode", NoiseOnlyInEval,
          "the training test is inverted: it adds the noise in eval mode and none in training.", replaces=NAME),
    entry(N, "shift never added", ShiftNeverAdded,
          "draws and stores the shift but returns out * scale without adding it.", replaces=NAME),
    entry(N, "last_noise never stored", LastNoiseNeverStored,
          "assigns the noise to a local variable last_noise instead of self.last_noise, so the attribute stays None.", replaces=NAME),
    entry(N, "scale clamped at 1", ScaleClampedAtOne,
          "draws the scale uniform in [0, spread] and clamps it at 1, so about 1/spread of the scales are exactly 1 instead of uniform in [1, spread].", replaces=NAME),
    entry(N, "shift range doubled", ShiftRangeDoubled,
          "draws the shift from [-2 shift, 2 shift] instead of [-shift, shift].", replaces=NAME),
    entry(N, "batch norm run twice", BatchNormCalledTwice,
          "calls the batch norm forward twice per training call, so the running statistics (and num_batches_tracked) are updated twice.", replaces=NAME),
    entry(G, "returns (cosine, distance)", gc_returns_swapped,
          "returns the cosine first and the distance second instead of (distance, cosine)."),
    entry(G, "steps the layers after index", gc_layers_after,
          "steps the layers after index (work[index + 1:]) instead of the layers before it."),
    entry(G, "dot product for the cosine", gc_dot_product,
          "returns the dot product of G and G' instead of their cosine (not divided by the norms)."),
    entry(G, "bias gradient measured", gc_bias_gradient,
          "measures the gradient of the layer's bias instead of its weight."),
    entry(G, "step along the weights", gc_decay_typo,
          "steps p -= lr * p (the parameter itself) instead of p -= lr * p.grad."),
    entry(G, "squared distance", gc_squared_distance,
          "returns the squared distance ||G - G'||^2 instead of ||G - G'||."),
    entry(G, "step outside torch.no_grad", gc_step_without_no_grad,
          "updates the parameters in place outside torch.no_grad(), which raises on a leaf that requires grad."),
    entry(G, "layer counted from 1", gc_index_from_one,
          "measures layer index - 1 (and steps the layers before it) instead of layer index."),
    entry(L, "returns (changes, losses)", lp_swapped,
          "returns the two lists in the wrong order, (changes, losses)."),
    entry(L, "no copy of the model", lp_no_copy,
          "moves the given model's parameters instead of a copy's, so the model is left at the last point."),
    entry(L, "relative gradient change", lp_relative,
          "divides each gradient change by ||g|| (relative change) instead of returning ||g - g'||."),
    entry(L, "steps uphill", lp_ascent,
          "moves to w + eta * g instead of w - eta * g."),
    entry(L, "copy put in eval mode", lp_eval_mode,
          "puts the copy in eval mode, so batch norm uses running statistics instead of the model's own mode."),
    entry(L, "difference of the norms", lp_norm_difference,
          "returns | ||g|| - ||g'|| | (the change of the gradient's length) instead of ||g - g'||."),
    entry(L, "results appended after the loop", lp_append_outside_loop,
          "appends to the lists after the loop instead of inside it, so only the last step size's loss and change are returned."),
    right(N, "one (2, C) draw, lerp and addcmul", NoisyDrawnTogether, replaces=NAME),
    right(G, "torch.optim.SGD", gc_sgd),
    right(L, "a fresh copy per step size, autograd.grad", lp_fresh_copy_each),
]
