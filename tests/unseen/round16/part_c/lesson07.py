"""Held-out answers (sixteenth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text); each wrong entry has one mistake."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class ShiftMinusOneUnscaled(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = self.shift * 2 * torch.rand(c, dtype=dtype) - 1  # meant shift * (2 u - 1)
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoiseShapedFor2d(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        size = (1, c, 1, 1)  # "per channel", as for BatchNorm2d's (N, C, H, W)
        shift = (2 * torch.rand(size, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(size, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class OutputUnderNoGrad(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        with torch.no_grad():  # "the noise is a constant for autograd"
            shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
            scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
            self.last_noise = (shift, scale)
            out = out * scale + shift
        return out


# ---- gradient_change -----------------------------------------------------------------


def gc_step_uphill(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p += lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_nll_loss_on_logits(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.nll_loss(work(x), y).backward()  # as in PyTorch's MNIST example
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


# ---- landscape_probe -------------------------------------------------------------------


def lp_functional_call_on_model(model, x, y, step_sizes):
    # JAX style: explicit parameters, "apply" never touches the model, so no copy
    w = {name: p.detach() for name, p in model.named_parameters()}

    def loss_and_grad(params):
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        loss = F.cross_entropy(functional_call(model, leaves, (x,)), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        return loss.item(), torch.cat([d.flatten() for d in grads])

    _, g_flat = loss_and_grad(w)
    g, offset = {}, 0
    for name, p in w.items():
        g[name] = g_flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    losses, changes = [], []
    for eta in step_sizes:
        loss, g2 = loss_and_grad({k: w[k] - eta * g[k] for k in w})
        losses.append(loss)
        changes.append((g_flat - g2).norm().item())
    return losses, changes


def lp_grads_not_cloned_zeroed_in_place(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        for p in params:
            p.grad.zero_()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_autocast_bfloat16(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision, as in the training scripts
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
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_named_restore_quadrature(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    w0 = {name: p.detach().clone() for name, p in work.named_parameters()}
    params = list(work.parameters())
    g = torch.autograd.grad(F.cross_entropy(work(x), y), params)
    losses, changes = [], []
    for eta in map(float, step_sizes):
        with torch.no_grad():
            for (name, p), d in zip(work.named_parameters(), g):
                p.copy_(w0[name] - eta * d)
        loss = F.cross_entropy(work(x), y)
        g2 = torch.autograd.grad(loss, params)
        losses.append(float(loss))
        changes.append(math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(g, g2))))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 3 wrong
    entry(N, "shift's - 1 left outside the scaling", ShiftMinusOneUnscaled,
          "writes the shift as self.shift * 2 * u - 1 instead of self.shift * (2 * u - 1), so it is drawn from "
          "[-1, 2 * shift - 1] (right only for shift = 1).", replaces=NAME),
    entry(N, "noise drawn with shape (1, C, 1, 1)", NoiseShapedFor2d,
          "draws the shift and scale with shape (1, C, 1, 1), as for BatchNorm2d's (N, C, H, W) input, so on "
          "BatchNorm1d's (N, C) output they broadcast to a (1, C, N, C) tensor instead of one value per channel.",
          replaces=NAME),
    entry(N, "output computed inside the noise's torch.no_grad block", OutputUnderNoGrad,
          "puts the line out * scale + shift inside the torch.no_grad() block meant for drawing the noise, so "
          "the training-mode output has no autograd graph (no gradient reaches the input, gamma or beta).",
          replaces=NAME),
    # gradient_change: 2 wrong
    entry(G, "earlier layers stepped uphill (p += lr * grad)", gc_step_uphill,
          "steps the layers before index with p += lr * p.grad (a sign typo) instead of p -= lr * p.grad, so G' "
          "is taken after a step up the loss."),
    entry(G, "nll_loss on the raw logits", gc_nll_loss_on_logits,
          "uses F.nll_loss on the model's raw logits (PyTorch's MNIST example, whose net ends in log_softmax) "
          "instead of F.cross_entropy, so both gradients are of -mean(logit of the label), not of the "
          "cross-entropy."),
    # landscape_probe: 3 wrong, 1 correct
    entry(L, "functional_call on the caller's model, no copy", lp_functional_call_on_model,
          "evaluates the caller's model with torch.func.functional_call and explicit parameters (JAX style) "
          "without a copy, so in training mode every call updates the caller's batch-norm running statistics "
          "and num_batches_tracked (the losses and changes are right)."),
    entry(L, "gradients kept without clone, zeroed with p.grad.zero_()", lp_grads_not_cloned_zeroed_in_place,
          "keeps g's tensors as p.grad without cloning and then zeroes the gradients in place with "
          "p.grad.zero_(), so the next backward overwrites them and every step size after the first steps "
          "along the previous probe point's gradient instead of g."),
    entry(L, "forward passes under bfloat16 autocast", lp_autocast_bfloat16,
          "runs every forward pass under torch.autocast('cpu', dtype=torch.bfloat16), so for a float32 model "
          "the losses and gradients are computed in bfloat16 (about 3 significant digits) instead of the "
          "model's precision (a float64 model is unaffected)."),
    right(L, "named start restore, autograd.grad, norm in quadrature", lp_named_restore_quadrature),
]
