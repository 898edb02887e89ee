"""Held-out answers (fifteenth set, part C), lesson 07: NoisyBatchNorm,
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


class KerasMomentum(nn.BatchNorm1d):
    # "Keras's BatchNormalization uses momentum=0.99"
    def __init__(self, num_features, shift=1.0, spread=2.0, momentum=0.99, **kwargs):
        super().__init__(num_features, momentum=momentum, **kwargs)
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


class NoAffine(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        # "the random affine map takes the place of gamma and beta"
        kwargs.setdefault("affine", False)
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
        return out * scale + shift


class KerasTrainingArgument(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x, training=None):  # Keras's call(inputs, training=None)
        out = super().forward(x)
        if not training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


# ---- gradient_change -----------------------------------------------------------------


def gc_sub_in_place(model, x, y, index, lr):
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
    distance = g.sub_(g2).norm().item()  # "no temporary for the difference"
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return distance, cosine.item()


def gc_cosine_from_distance(model, x, y, index, lr):
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
    distance = (g - g2).norm().item()
    cosine = 1 - distance**2 / 2  # ||a - b||^2 = 2 - 2 cos(a, b)
    return distance, cosine


def gc_log_softmax_dim0(model, x, y, index, lr):
    def loss(logits, target):  # "cross-entropy is nll of log_softmax"
        return F.nll_loss(F.log_softmax(logits, dim=0), target)

    work = copy.deepcopy(model)
    work.zero_grad()
    loss(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    loss(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


# ---- landscape_probe -------------------------------------------------------------------


def lp_mutable_default_lists(model, x, y, step_sizes, losses=[], changes=[]):  # noqa: B006
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
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


def lp_step_sizes_float32_tensor(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in torch.tensor(step_sizes):  # "a tensor of step sizes"
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_foreach_autograd(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = [p for p in work.parameters()]
    start = [p.detach().clone() for p in params]
    g = torch.autograd.grad(F.cross_entropy(work(x), y), params)
    g_flat = torch.cat([t.reshape(-1) for t in g])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0 in zip(params, start):
                p.copy_(p0)
            torch._foreach_add_(params, list(g), alpha=-eta)
        loss = F.cross_entropy(work(x), y)
        g2 = torch.autograd.grad(loss, params)
        losses.append(loss.item())
        changes.append(float(torch.linalg.vector_norm(g_flat - torch.cat([t.reshape(-1) for t in g2]))))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 3 wrong
    entry(N, "Keras momentum 0.99 as the constructor's default", KerasMomentum,
          "gives the constructor momentum=0.99 (Keras's default, which weights the old running value) and passes "
          "it to nn.BatchNorm1d, where momentum weights the new batch, so the running statistics move almost all "
          "the way to each batch's.", replaces=NAME),
    entry(N, "affine=False passed to BatchNorm1d", NoAffine,
          "passes affine=False to nn.BatchNorm1d, so the layer has no gamma and beta (weight and bias are None) "
          "and the output is the plain normalised input times the noise, not batch norm's affine output.",
          replaces=NAME),
    entry(N, "Keras training argument as the mode flag", KerasTrainingArgument,
          "adds a Keras-style forward(x, training=None) argument and applies the noise only when training is "
          "truthy instead of using self.training, so module(x) in training mode never adds noise (last_noise "
          "stays None).", replaces=NAME),
    # gradient_change: 3 wrong
    entry(G, "difference taken with g.sub_ before the cosine", gc_sub_in_place,
          "computes the distance with g.sub_(g2), which overwrites g with g - g2 in place, so the cosine is then "
          "taken between G - G' and G' instead of between G and G' (the distance is right)."),
    entry(G, "cosine derived from the distance as for unit vectors", gc_cosine_from_distance,
          "computes the cosine as 1 - ||G - G'||^2 / 2, an identity that holds only for unit vectors, instead of "
          "<G, G'> / (||G|| ||G'||) (the distance is right)."),
    entry(G, "log_softmax over dim 0", gc_log_softmax_dim0,
          "writes the cross-entropy as nll_loss(log_softmax(logits, dim=0)), normalising over the batch instead "
          "of over the classes (dim=1), so both gradients are of the wrong loss."),
    # landscape_probe: 2 wrong, 1 correct
    entry(L, "result lists as mutable default arguments", lp_mutable_default_lists,
          "takes losses=[] and changes=[] as default arguments, which Python creates once, so every later call "
          "appends to the lists of the earlier calls (right on the first call only)."),
    entry(L, "step sizes turned into a float32 tensor", lp_step_sizes_float32_tensor,
          "loops over torch.tensor(step_sizes), which stores the step sizes in float32, so a step size such as "
          "0.1 is rounded (by about 1e-9 relative) and a float64 model is probed at slightly wrong points."),
    right(L, "fresh start each step with _foreach_add_, autograd.grad, vector_norm", lp_foreach_autograd),
]
