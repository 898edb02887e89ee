"""Held-out answers (seventeenth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text); each wrong entry has one mistake."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoiseFromDistributionsUniform(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        # "uniform on [a, b]": the distribution object, as in Pyro / TensorFlow Probability
        shift = torch.distributions.Uniform(-self.shift, self.shift).sample((c,)).to(dtype)
        scale = torch.distributions.Uniform(1.0, self.spread).sample((c,)).to(dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class EvalMethodAsFlag(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.eval:  # "in eval mode: plain batch norm"
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ScaleFromRandn(nn.BatchNorm1d):
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
        scale = 1 + torch.randn(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


# ---- gradient_change -----------------------------------------------------------------


def gc_summed_loss(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y, reduction="sum").backward()  # the loss of the batch: a sum
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y, reduction="sum").backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_first_pass_before_copy(model, x, y, index, lr):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g = model[index].weight.grad.clone()
    work = copy.deepcopy(model)  # "copy only what gets stepped"
    with torch.no_grad():
        for p_work, p in zip(work[:index].parameters(), model[:index].parameters()):
            p_work -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_autograd_inference_mode(model, x, y, index, lr):
    work = copy.deepcopy(model)
    before = [p for layer in work[:index] for p in layer.parameters()]
    target = work[index].weight
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), [target, *before])
    g, steps = grads[0], grads[1:]
    with torch.inference_mode():
        for p, d in zip(before, steps):
            p.sub_(d, alpha=lr)
    (g2,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    a, b = g.reshape(-1), g2.reshape(-1)
    cosine = torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return float(torch.dist(g, g2)), float(cosine)


# ---- landscape_probe -------------------------------------------------------------------


def lp_unit_direction(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    norm = g.norm()
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d / norm)  # a step of length eta along the gradient's direction
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_pairwise_distance(model, x, y, step_sizes):
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
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        g2 = torch.cat([p.grad.flatten() for p in params])
        changes.append(F.pairwise_distance(g, g2).item())  # the Euclidean distance of two vectors
    return losses, changes


def lp_smoothness_ratio(model, x, y, step_sizes):
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
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        g2 = torch.cat([p.grad.flatten() for p in params])
        # Santurkar et al.: the gradient change per unit of distance moved
        changes.append(((g - g2).norm() / (eta * g.norm())).item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 3 wrong
    entry(N, "noise from torch.distributions.Uniform", NoiseFromDistributionsUniform,
          "draws the noise with torch.distributions.Uniform(low, high), which (with its default argument "
          "validation) refuses low == high, so the layer raises for shift=0 or spread=1 (an empty range, "
          "no noise) instead of drawing a shift of 0 or a scale of 1.", replaces=NAME),
    entry(N, "self.eval used as the mode flag", EvalMethodAsFlag,
          "tests `if self.eval:` (a bound method, always true) instead of `if not self.training:`, so the "
          "layer returns plain batch norm in training mode too: no noise is ever added and last_noise "
          "stays None.", replaces=NAME),
    entry(N, "scale drawn with randn instead of rand", ScaleFromRandn,
          "draws the scale as 1 + torch.randn(C) * (spread - 1) (a one-letter typo for torch.rand), so the "
          "scale is Gaussian around 1, often below 1 or negative, instead of uniform on [1, spread].",
          replaces=NAME),
    # gradient_change: 2 wrong, 1 correct
    entry(G, "cross-entropy summed over the batch", gc_summed_loss,
          "uses F.cross_entropy(..., reduction='sum') instead of the default mean, so both gradients are "
          "N times too large and the earlier layers take a step N times too long."),
    entry(G, "first backward pass on the caller's model, copied after", gc_first_pass_before_copy,
          "runs the first forward and backward pass on the caller's model and only then copies it, so the "
          "caller's .grad fields are filled and, in training mode, its batch-norm running statistics and "
          "num_batches_tracked move (the distance and cosine are right)."),
    right(G, "autograd.grad, step under inference_mode, torch.dist, cosine by hand",
          gc_autograd_inference_mode),
    # landscape_probe: 3 wrong
    entry(L, "steps along the unit gradient direction", lp_unit_direction,
          "steps to w - eta * g / ||g|| (a step of length eta along the gradient's direction) instead of "
          "w - eta * g, so every probe point is at the wrong distance (1 / ||g|| times eta * g)."),
    entry(L, "gradient change by F.pairwise_distance", lp_pairwise_distance,
          "measures ||g - g'|| with F.pairwise_distance, which adds eps=1e-6 to every component of the "
          "difference before the norm, so each change is off by about 1e-6 * sqrt(number of parameters) "
          "(visible where the change is small)."),
    entry(L, "returns the smoothness ratio, not the gradient change", lp_smoothness_ratio,
          "returns ||g - g'|| / (eta * ||g||) (the effective beta-smoothness the next cell computes from the "
          "changes) instead of the gradient change ||g - g'|| itself."),
]
