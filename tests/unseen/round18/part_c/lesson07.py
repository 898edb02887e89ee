"""Held-out answers (eighteenth set, part C), lesson 07: NoisyBatchNorm,
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


class NoisyKerasCall(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def call(self, x, training=None):  # Keras: a layer's work goes in call()
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyScaleDrawnInInit(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None
        self.scale = 1 + torch.rand(num_features) * (spread - 1)  # one scale per channel

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = self.scale.to(dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyChainOrder(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = torch.rand(c, dtype=dtype).mul_(2).sub_(1).mul_(self.shift)
        scale = torch.rand(c, dtype=dtype).add_(1).mul_(self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


# ---- gradient_change -----------------------------------------------------------------


def gc_optimizer_on_callers_model(model, x, y, index, lr):
    work = copy.deepcopy(model)
    opt = torch.optim.SGD(model[:index].parameters(), lr=lr)  # the layers before index
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_autograd_grad_then_dot_grad(model, x, y, index, lr):
    work = copy.deepcopy(model)
    target = work[index].weight
    (g,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    (g2,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


@torch.no_grad()  # a measurement: nothing to train
def gc_no_grad_decorator(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    for layer in work[:index]:
        for p in layer.parameters():
            p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_sgd_momentum_first_step(model, x, y, index, lr):
    work = copy.deepcopy(model)
    # the training loop's optimiser: a fresh one's first step is lr * grad
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr, momentum=0.9)
    opt.zero_grad(set_to_none=False)
    work[index].weight.grad = None
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    opt.step()
    work[index].weight.grad = None
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad.detach()
    cos = nn.CosineSimilarity(dim=0)(g.reshape(-1), g2.reshape(-1))
    return torch.linalg.vector_norm(g - g2).item(), cos.item()


# ---- landscape_probe -------------------------------------------------------------------


def lp_fresh_copy_stale_params(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        work = copy.deepcopy(model)  # a clean copy for every probe point
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_start_in_half(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone().half() for p in params]  # the snapshot in half the memory
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
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 3 wrong
    entry(N, "noise written in a Keras call() method", NoisyKerasCall,
          "puts the noisy forward pass in a method named call (Keras's name for it) instead of forward, so "
          "PyTorch never runs it: the layer is plain batch norm in training mode too and last_noise stays None.",
          replaces=NAME),
    entry(N, "scale drawn once in __init__", NoisyScaleDrawnInInit,
          "draws the per-channel scale once, in __init__, and reuses it at every call (only the shift is drawn "
          "afresh), so the scale never changes from step to step.", replaces=NAME),
    entry(N, "in-place chain add_(1).mul_(spread - 1)", NoisyChainOrder,
          "writes the scale as rand(C).add_(1).mul_(spread - 1), i.e. (1 + u) * (spread - 1), instead of "
          "1 + u * (spread - 1): right for spread = 2 by coincidence, but on [spread - 1, 2 (spread - 1)] for "
          "any other spread.", replaces=NAME),
    # gradient_change: 3 wrong, 1 correct
    entry(G, "SGD built over the caller's model, not the copy", gc_optimizer_on_callers_model,
          "builds the optimiser over model[:index].parameters() (the caller's model) instead of the copy's, so "
          "opt.step() finds no gradients there and steps nothing: the copy's earlier layers never move, G' = G "
          "(distance 0, cosine 1)."),
    entry(G, "autograd.grad for G, then p.grad for the step", gc_autograd_grad_then_dot_grad,
          "takes G with torch.autograd.grad (which fills no .grad field) and then steps the earlier layers with "
          "p.grad, which is None, so the step raises a TypeError."),
    entry(G, "whole function under @torch.no_grad()", gc_no_grad_decorator,
          "decorates the function with @torch.no_grad() (a measurement, nothing to train), so no graph is built "
          "and the first backward() raises (the loss does not require grad)."),
    right(G, "SGD with momentum 0.9 (first step), CosineSimilarity, vector_norm", gc_sgd_momentum_first_step),
    # landscape_probe: 2 wrong
    entry(L, "fresh copy per step size, parameters of the first copy", lp_fresh_copy_stale_params,
          "makes a fresh copy of the model for every step size but keeps stepping and reading the parameter "
          "list of the first copy, so every loss is the loss at w and every gradient change is 0."),
    entry(L, "start weights kept in float16", lp_start_in_half,
          "keeps the snapshot of the start weights in float16 (.half(), to halve its memory), so every probe "
          "point starts from w rounded to about 3 significant digits and the losses and changes are off by "
          "about 1e-3 relative."),
]
