"""Held-out answers (fifth set, part b), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class _Noisy(nn.BatchNorm1d):
    """A right implementation in a learner's style; each wrong entry changes one piece."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def draw(self, like):
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=like.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=like.dtype) * (self.spread - 1)
        return shift, scale

    def apply_noise(self, out, shift, scale):
        return out * scale + shift

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self.draw(out)
        self.last_noise = (shift, scale)
        return self.apply_noise(out, shift, scale)


class NormalShift(_Noisy):
    def draw(self, like):
        c = self.num_features
        shift = torch.randn(c, dtype=like.dtype) * self.shift  # "noise" = Gaussian
        scale = 1 + torch.rand(c, dtype=like.dtype) * (self.spread - 1)
        return shift, scale


class ScaleUpToOnePlusSpread(_Noisy):
    def draw(self, like):
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=like.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=like.dtype) * self.spread
        return shift, scale


class KwargsDropped(_Noisy):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features)
        self.shift, self.spread = shift, spread
        self.last_noise = None


class ForwardNoGrad(_Noisy):
    def forward(self, x):
        with torch.no_grad():  # the noise must not be learned
            return super().forward(x)


class NoiseAsLists(_Noisy):
    def forward(self, x):
        out = super(_Noisy, self).forward(x)
        if not self.training:
            return out
        shift, scale = self.draw(out)
        self.last_noise = (shift.tolist(), scale.tolist())  # plain numbers for logging
        return out * scale + shift


class ShiftBeforeScale(_Noisy):
    def apply_noise(self, out, shift, scale):
        return (out + shift) * scale


# ---- gradient_change ---------------------------------------------------------------


def gc_one_layer_short(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[: index - 1]:  # the layers before index
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_nll_on_logits(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.nll_loss(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.nll_loss(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_returns_tensors(model, x, y, index, lr):
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
    return (g - g2).norm(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)


def gc_grads_on_caller(model, x, y, index, lr):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g = model[index].weight.grad.clone()
    work = copy.deepcopy(model)  # copy now, with the gradients in it (the learner believes)
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_loss_args_swapped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(y, work(x)).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(y, work(x)).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


# ---- landscape_probe ---------------------------------------------------------------


def lp_losses_as_tensors(model, x, y, step_sizes):
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
            for p, p0, d in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss)
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_indices_as_steps(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in range(len(step_sizes)):
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_change_per_eta(model, x, y, step_sizes):
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
            for p, p0, d in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        # gradient change per unit step (a smoothness estimate)
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item() / eta)
    return losses, changes


def lp_first_step_skipped(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes[1:]:  # the first one is the start point
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


# ---- correct alternatives ----------------------------------------------------------


class NoisyInPlace(nn.BatchNorm1d):
    """Correct: noise drawn with uniform_ and applied in place on batch norm's output."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = self.num_features
            shift = out.new_empty(c).uniform_(-self.shift, self.shift)
            scale = out.new_empty(c).uniform_(1.0, self.spread)
            self.last_noise = (shift, scale)
            out = out.mul(scale).add_(shift)
        return out


def gc_sgd_momentum(model, x, y, index, lr):
    """Correct: torch.optim.SGD with momentum 0.9 over the earlier layers (its first
    step is a plain gradient step)."""
    work = copy.deepcopy(model)
    before = [p for layer in work[:index] for p in layer.parameters()]
    opt = torch.optim.SGD(before, lr=lr, momentum=0.9)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    dot = (g * g2).sum()
    return torch.dist(g, g2).item(), (dot / (g.norm() * g2.norm())).item()


ENTRIES = [
    entry(N, "Gaussian shift", NormalShift,
          "draws the shift from a normal distribution (randn * shift) instead of uniformly from [-shift, shift].",
          replaces=NAME),
    entry(N, "scale from [1, 1 + spread]", ScaleUpToOnePlusSpread,
          "scale = 1 + rand * spread, a uniform draw from [1, 1 + spread] instead of [1, spread].", replaces=NAME),
    entry(N, "keyword arguments not passed on", KwargsDropped,
          "calls super().__init__(num_features) without **kwargs, so eps, momentum, affine, ... given to the layer "
          "are ignored.", replaces=NAME),
    entry(N, "forward under torch.no_grad", ForwardNoGrad,
          "runs the whole forward under torch.no_grad, so nothing before or in the layer gets a gradient "
          "(the output has no grad_fn).", replaces=NAME),
    entry(N, "last_noise stored as lists", NoiseAsLists,
          "stores last_noise as Python lists (.tolist()) instead of the (shift, scale) tensors.", replaces=NAME),
    entry(N, "shift added before scaling", ShiftBeforeScale,
          "returns (out + shift) * scale instead of out * scale + shift, so the shift is scaled too.", replaces=NAME),
    entry(G, "one layer short", gc_one_layer_short,
          "steps work[:index - 1] instead of work[:index], leaving the layer just before index unmoved."),
    entry(G, "nll_loss on logits", gc_nll_on_logits,
          "uses F.nll_loss on the model's raw outputs (no log_softmax), a different loss from cross-entropy."),
    entry(G, "returns tensors", gc_returns_tensors,
          "returns the distance and cosine as 0-d tensors (one with a grad_fn) instead of Python floats (.item())."),
    entry(G, "first gradient taken on the caller's model", gc_grads_on_caller,
          "runs the first backward on the caller's model (leaving gradients in it) and then copies it, expecting "
          "the copy to carry the gradients; deepcopy does not copy .grad, so the step on the copy finds p.grad None "
          "(TypeError in the learner's code)."),
    entry(G, "cross_entropy's arguments swapped", gc_loss_args_swapped,
          "calls F.cross_entropy(y, logits), target first, which raises inside the learner's code."),
    entry(L, "losses kept as tensors", lp_losses_as_tensors,
          "appends the loss tensor itself (with its graph) instead of loss.item(), so losses is a list of tensors."),
    entry(L, "indices used as step sizes", lp_indices_as_steps,
          "loops over range(len(step_sizes)), so the steps taken are 0, 1, 2, ... instead of the given sizes."),
    entry(L, "gradient change divided by the step size", lp_change_per_eta,
          "records ||g - g'|| / eta (a smoothness estimate) instead of ||g - g'||."),
    entry(L, "first step size skipped", lp_first_step_skipped,
          "loops over step_sizes[1:], so the first step size is never probed and both lists are one short."),
    right(N, "new_empty().uniform_ and in-place add_", NoisyInPlace, replaces=NAME),
    right(G, "SGD with momentum over the earlier layers, torch.dist", gc_sgd_momentum),
]
