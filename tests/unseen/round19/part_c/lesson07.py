"""Held-out answers (nineteenth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names, so
as to differ from them; each wrong entry has one mistake."""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyKerasEpsilon(nn.BatchNorm1d):
    # Keras's BatchNormalization uses epsilon=1e-3: the learner carries it over
    def __init__(self, num_features, shift=1.0, spread=2.0, eps=1e-3, **kwargs):
        super().__init__(num_features, eps=eps, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyUniformOneArgument(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = torch.empty(c, dtype=dtype).uniform_(-self.shift)  # symmetric, I thought
        scale = torch.empty(c, dtype=dtype).uniform_(1, self.spread)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDoubleNoise(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        # draw the noise in double precision, to be safe
        shift = (2 * torch.rand(c, dtype=torch.float64) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=torch.float64) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDetachedOutput(nn.BatchNorm1d):
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
        self.last_noise = (shift, scale)
        return (out * scale + shift).detach()  # the noise is a constant for autograd


# ---- gradient_change -----------------------------------------------------------------


def gc_grad_enabled_by_mode(model, x, y, index, lr):
    work = copy.deepcopy(model)
    with torch.set_grad_enabled(work.training):  # the fine-tuning tutorial's train/eval idiom
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


def gc_logits_to_float32(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x).float(), y).backward()  # the loss in float32, as under AMP
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x).float(), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_cosine_typo(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g.flatten(), g.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_rebinding_step(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p = p - lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_bce_one_hot(model, x, y, index, lr):
    def loss_fn(out):
        target = F.one_hot(y, num_classes=out.shape[1]).to(out.dtype)
        return F.binary_cross_entropy_with_logits(out, target)

    work = copy.deepcopy(model)
    work.zero_grad()
    loss_fn(work(x)).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    loss_fn(work(x)).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_numpy_measures(model, x, y, index, lr):
    work = copy.deepcopy(model)
    earlier = [p for layer in work[:index] for p in layer.parameters()]
    target = work[index].weight
    first = torch.autograd.grad(F.cross_entropy(work(x), y), earlier + [target])
    with torch.no_grad():
        for p, d in zip(earlier, first[:-1]):
            p.copy_(p - lr * d)
    (second,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    a = first[-1].detach().numpy().ravel()
    b = second.detach().numpy().ravel()
    distance = np.linalg.norm(a - b)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(distance), float(cosine)


# ---- landscape_probe -------------------------------------------------------------------


def lp_parameters_generator(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = work.parameters()
    start = [p.detach().clone() for p in work.parameters()]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in work.parameters()]
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
        changes.append((g - torch.cat([p.grad.flatten() for p in work.parameters()])).norm().item())
    return losses, changes


def lp_frozen_after_g(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    work.requires_grad_(False)  # g is taken: freeze the copy so the probes cannot train it
    losses, changes = [], []
    for eta in step_sizes:
        for p, p0, d in zip(params, start, grads):
            p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_zero_grad_at_loop_end(model, x, y, step_sizes):
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
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
        work.zero_grad()  # clean up for the next step size
    return losses, changes


def lp_float32_arrays(model, x, y, step_sizes):
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
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return np.array(losses, dtype=np.float32), np.array(changes, dtype=np.float32)


def lp_incremental_prev_first(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    prev = 0.0
    for eta in step_sizes:
        prev = eta
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.sub_((eta - prev) * d)  # move on from the previous point
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_incremental(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    prev = 0.0
    for eta in step_sizes:
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.sub_((eta - prev) * d)  # from w - prev * g to w - eta * g
        prev = eta
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 4 wrong
    entry(N, "Keras epsilon 1e-3 as the constructor's default", NoisyKerasEpsilon,
          "gives the constructor Keras's default epsilon (eps=1e-3) instead of PyTorch's 1e-5, so the "
          "normalisation (training and eval mode) divides by sqrt(var + 1e-3) and the output is too small "
          "for low-variance channels.", replaces=NAME),
    entry(N, "shift drawn with uniform_(-shift), one argument", NoisyUniformOneArgument,
          "draws the shift with uniform_(-shift), whose upper bound then defaults to 1, so the shift is "
          "uniform on [-shift, 1]: right for shift = 1 by coincidence, wrong (not symmetric) for any other "
          "shift.", replaces=NAME),
    entry(N, "noise drawn in float64", NoisyDoubleNoise,
          "draws the noise with dtype=torch.float64 instead of the output's dtype, so a float32 layer's "
          "training output is promoted to float64 (and the next float32 layer cannot take it).",
          replaces=NAME),
    entry(N, "output detached", NoisyDetachedOutput,
          "detaches the whole training-mode output (to make the noise a constant for autograd), so no "
          "gradient flows back to the input, weight or bias through the layer.", replaces=NAME),
    # gradient_change: 5 wrong, 1 correct
    entry(G, "backward passes under set_grad_enabled(work.training)", gc_grad_enabled_by_mode,
          "wraps the measurement in torch.set_grad_enabled(work.training) (the train/eval idiom of training "
          "loops), so for a model in eval mode no graph is built and the first backward() raises, although "
          "the gradients are needed in either mode."),
    entry(G, "logits cast to float32 before the loss", gc_logits_to_float32,
          "casts the logits to float32 before cross-entropy (a mixed-precision habit), so for a float64 "
          "model both gradients carry float32 round-off and the distance and cosine are only about "
          "float32-accurate."),
    entry(G, "cosine of G with itself (typo)", gc_cosine_typo,
          "types cosine_similarity(g, g) instead of (g, g2), so the cosine is always 1 whatever the "
          "distance."),
    entry(G, "step written p = p - lr * p.grad", gc_rebinding_step,
          "writes the step as p = p - lr * p.grad, which rebinds the loop variable to a new tensor "
          "instead of updating the parameter in place, so the earlier layers never move: G' = G "
          "(distance 0, cosine 1)."),
    entry(G, "binary cross-entropy on one-hot targets", gc_bce_one_hot,
          "uses binary_cross_entropy_with_logits on one-hot targets (a Keras multi-label habit) instead of "
          "cross-entropy, so both gradients are of another loss."),
    right(G, "autograd.grad of earlier and measured at once, NumPy distance and cosine", gc_numpy_measures),
    # landscape_probe: 5 wrong, 1 correct
    entry(L, "params = work.parameters(), a generator", lp_parameters_generator,
          "keeps params = work.parameters(), a generator that the first step size's zip exhausts, so only "
          "the first probe point is stepped to; every later one stays at w - eta_1 g."),
    entry(L, "copy frozen with requires_grad_(False) after g", lp_frozen_after_g,
          "freezes the copy with requires_grad_(False) after taking g (instead of stepping under "
          "torch.no_grad), so the loss at the first probe point has no graph and backward() raises."),
    entry(L, "zero_grad at the end of the loop body", lp_zero_grad_at_loop_end,
          "zeroes the gradients at the end of each probe instead of before its backward pass, so the first "
          "probe's gradient is added to g still held in .grad: its change is |g'| instead of |g' - g| "
          "(the later ones are right)."),
    entry(L, "results returned as float32 NumPy arrays", lp_float32_arrays,
          "returns the losses and changes as float32 NumPy arrays instead of lists of Python floats, so "
          "they are rounded to about 7 significant digits."),
    entry(L, "incremental steps, previous step size updated first", lp_incremental_prev_first,
          "steps incrementally by (eta - prev) * g but sets prev = eta before the step instead of after, "
          "so every step is 0: every loss is the loss at w and every change 0."),
    right(L, "incremental steps by (eta - previous eta) * g", lp_incremental),
]
