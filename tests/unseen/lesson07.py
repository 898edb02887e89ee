"""Lesson 07: answers to ``NoisyBatchNorm``, ``gradient_change`` and
``landscape_probe`` (held out: see ``tests/unseen``)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import entry, right

# --------------------------------------------------------------------------
# NoisyBatchNorm
# --------------------------------------------------------------------------


def noisy(
    *,
    shift_kind="uniform",
    scale_kind="uniform",
    order="scale first",
    shared=False,
    plain_bn=False,
    draw="rand",
):
    class NoisyBatchNorm(nn.BatchNorm1d):
        def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
            super().__init__(num_features, **kwargs)
            self.shift, self.spread = shift, spread
            self.last_noise = None

        def _draw(self, c, dtype):
            if draw == "uniform_":
                shift = torch.empty(c, dtype=dtype).uniform_(-self.shift, self.shift)
                scale = torch.empty(c, dtype=dtype).uniform_(1.0, self.spread)
                return shift, scale
            n = 1 if shared else c
            if shift_kind == "half":
                shift = (torch.rand(n, dtype=dtype) - 0.5) * self.shift
            elif shift_kind == "clipped normal":
                shift = torch.randn(n, dtype=dtype).clamp(-1, 1) * self.shift
            else:
                shift = (2 * torch.rand(n, dtype=dtype) - 1) * self.shift
            if scale_kind == "from 0":
                scale = torch.rand(n, dtype=dtype) * self.spread
            elif scale_kind == "one plus spread":
                scale = 1 + torch.rand(n, dtype=dtype) * self.spread
            else:
                scale = 1 + torch.rand(n, dtype=dtype) * (self.spread - 1)
            return shift.expand(c), scale.expand(c)

        def forward(self, x):
            if plain_bn:  # normalise by hand: no buffers, no weight and bias
                out = F.batch_norm(x, None, None, training=True, eps=self.eps)
            else:
                out = super().forward(x)
            if not self.training:
                return out
            shift, scale = self._draw(self.num_features, out.dtype)
            self.last_noise = (shift, scale)
            if order == "shift first":
                return (out + shift) * scale
            if draw == "uniform_":
                return torch.addcmul(shift, out, scale)
            return out * scale + shift

    return NoisyBatchNorm


# --------------------------------------------------------------------------
# gradient_change
# --------------------------------------------------------------------------


def changed(
    model,
    x,
    y,
    index,
    lr,
    *,
    second_on="copy",
    sign=-1.0,
    only_linear=False,
    upto=0,
    rowwise=False,
    zero="none",
    clone=True,
    mode="train",
    relative=False,
):
    work = copy.deepcopy(model)
    if mode == "eval":
        work.eval()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad
    g = g.clone() if clone else g
    with torch.no_grad():
        for layer in work[: index + upto]:
            if only_linear and not isinstance(layer, nn.Linear):
                continue
            for p in layer.parameters():
                p += sign * lr * p.grad
    if zero == "in place":
        for p in work.parameters():
            p.grad.zero_()
    else:
        work.zero_grad()
    target = model if second_on == "original" else work
    target.zero_grad()
    F.cross_entropy(target(x), y).backward()
    g2 = target[index].weight.grad
    if rowwise:
        cosine = F.cosine_similarity(g, g2, dim=1).mean()
    else:
        cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    distance = (g - g2).norm()
    if relative:
        distance = distance / g.norm()
    return distance.item(), cosine.item()


def _ics(**kw):
    def gradient_change(model, x, y, index, lr):
        return changed(model, x, y, index, lr, **kw)

    return gradient_change


def change_with_sgd(model, x, y, index, lr):
    work = copy.deepcopy(model)
    weight = work[index].weight
    g = torch.autograd.grad(F.cross_entropy(work(x), y), weight)[0]
    before = [p for layer in work[:index] for p in layer.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), before)
    for p, dp in zip(before, grads, strict=True):
        p.grad = dp
    torch.optim.SGD(before, lr=lr).step()
    g2 = torch.autograd.grad(F.cross_entropy(work(x), y), weight)[0]
    cos = (g * g2).sum() / (g.norm() * g2.norm())
    return torch.linalg.vector_norm(g - g2).item(), cos.item()


# --------------------------------------------------------------------------
# landscape_probe
# --------------------------------------------------------------------------


def probe(
    model,
    x,
    y,
    step_sizes,
    *,
    compare_to="start",
    change="difference",
    matrices_only=False,
    measure_before=False,
    clone=True,
    reduction="mean",
):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y, reduction=reduction).backward()
    grads = [p.grad.detach().clone() if clone else p.grad for p in params]
    g = torch.cat([d.flatten() for d in grads]).clone()
    previous = g
    losses, changes = [], []

    def move(eta):
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads, strict=True):
                if matrices_only and p.dim() < 2:
                    continue
                p.copy_(p0 - eta * d)

    def measure():
        if clone:
            work.zero_grad()
        else:
            for p in params:
                p.grad.zero_()
        loss = F.cross_entropy(work(x), y, reduction=reduction)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in params]).clone()

    for eta in step_sizes:
        if measure_before:
            loss, g2 = measure()
            move(eta)
        else:
            move(eta)
            loss, g2 = measure()
        losses.append(loss)
        if change == "norm":
            changes.append(g2.norm().item())
        else:
            reference = previous if compare_to == "previous" else g
            changes.append((reference - g2).norm().item())
        previous = g2
    return losses, changes


def _probe(**kw):
    def landscape_probe(model, x, y, step_sizes):
        return probe(model, x, y, step_sizes, **kw)

    return landscape_probe


def probe_vectors(model, x, y, step_sizes):
    """The weights as one vector: parameters_to_vector / vector_to_parameters."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    work = copy.deepcopy(model)
    params = list(work.parameters())
    w0 = parameters_to_vector(params).detach().clone()
    g = parameters_to_vector(
        torch.autograd.grad(F.cross_entropy(work(x), y), params)
    ).detach()
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            vector_to_parameters(w0 - eta * g, params)
        loss = F.cross_entropy(work(x), y)
        g2 = parameters_to_vector(torch.autograd.grad(loss, params))
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(g - g2)))
    return losses, changes


def probe_functional(model, x, y, step_sizes):
    """torch.func.functional_call on a copy: the weights are passed, never set."""
    from torch.func import functional_call

    work = copy.deepcopy(model)
    names = [name for name, _ in work.named_parameters()]
    w0 = [p.detach() for _, p in work.named_parameters()]

    def loss_and_grad(weights):
        weights = [w.detach().requires_grad_() for w in weights]
        loss = F.cross_entropy(
            functional_call(work, dict(zip(names, weights, strict=True)), (x,)), y
        )
        return loss, torch.autograd.grad(loss, weights)

    _, g = loss_and_grad(w0)
    flat = torch.cat([d.flatten() for d in g])
    losses, changes = [], []
    for eta in step_sizes:
        loss, g2 = loss_and_grad([w - eta * d for w, d in zip(w0, g, strict=True)])
        losses.append(loss.item())
        changes.append((flat - torch.cat([d.flatten() for d in g2])).norm().item())
    return losses, changes


N, G, P = "noisy_batchnorm", "gradient_change", "landscape_probe"


def _n(name, cause, **kw):
    return entry(N, name, noisy(**kw), cause, replaces="NoisyBatchNorm")


ENTRIES = [
    _n(
        "shift in half the range",
        "the shift is uniform in [-shift/2, shift/2] instead of [-shift, shift]",
        shift_kind="half",
    ),
    _n(
        "shift from a clipped normal",
        "the shift is a normal draw clipped to [-shift, shift], not uniform",
        shift_kind="clipped normal",
    ),
    _n(
        "scale from 0",
        "the scale is uniform in [0, spread] instead of [1, spread]",
        scale_kind="from 0",
    ),
    _n(
        "scale up to 1 + spread",
        "the scale is uniform in [1, 1 + spread] instead of [1, spread]",
        scale_kind="one plus spread",
    ),
    _n(
        "shift before the scale",
        "the shift is added before scaling: (out + shift) * scale",
        order="shift first",
    ),
    _n(
        "one noise for every channel",
        "one shift and one scale are drawn and "
        "shared by all channels instead of one per channel",
        shared=True,
    ),
    _n(
        "normalises with F.batch_norm by hand",
        "normalises with "
        "F.batch_norm(x, None, None) instead of super().forward, so the running "
        "statistics are never updated (and weight and bias unused)",
        plain_bn=True,
    ),
    right(N, "uniform_ and addcmul", noisy(draw="uniform_"), replaces="NoisyBatchNorm"),
    entry(
        G,
        "second gradient on the original model",
        _ics(second_on="original"),
        "the second gradient is computed on the original model instead of the "
        "stepped copy",
    ),
    entry(
        G,
        "gradient ascent",
        _ics(sign=1.0),
        "the step adds lr * grad instead of subtracting it",
    ),
    entry(
        G,
        "only the Linear layers step",
        _ics(only_linear=True),
        "only the "
        "nn.Linear layers before index are stepped; the batch norms' gamma and "
        "beta are not",
    ),
    entry(
        G,
        "steps the layer itself too",
        _ics(upto=1),
        "work[:index + 1] also steps the layer being measured (off by one)",
    ),
    entry(
        G,
        "cosine row by row",
        _ics(rowwise=True),
        "the cosine is taken row "
        "by row of the weight gradient and averaged, not over the flattened "
        "gradient",
    ),
    entry(
        G,
        "first gradient overwritten",
        _ics(clone=False, zero="in place"),
        "the first gradient is not cloned and p.grad.zero_() overwrites it, so "
        "G and G' are the same tensor",
    ),
    entry(
        G,
        "measured in eval mode",
        _ics(mode="eval"),
        "the copy is put in eval mode, so batch norm uses running statistics",
    ),
    entry(
        G,
        "relative distance",
        _ics(relative=True),
        "the distance is divided by ||G|| (relative change)",
    ),
    right(G, "SGD optimizer and autograd.grad", change_with_sgd),
    entry(
        P,
        "change against the previous point",
        _probe(compare_to="previous"),
        "each gradient change is measured against the previous step's gradient "
        "instead of the gradient at the start",
    ),
    entry(
        P,
        "gradient norm, not change",
        _probe(change="norm"),
        "returns ||g(w - eta g)|| instead of ||g - g(w - eta g)||",
    ),
    entry(
        P,
        "steps the weight matrices only",
        _probe(matrices_only=True),
        "only parameters with 2 or more dimensions are moved; biases and batch "
        "norm parameters stay",
    ),
    entry(
        P,
        "measured before each step",
        _probe(measure_before=True),
        "each "
        "loss and gradient is measured before moving to w - eta g, so every "
        "value belongs to the previous step size",
    ),
    entry(
        P,
        "gradient not cloned",
        _probe(clone=False),
        "the gradients are not "
        "cloned and are zeroed in place, so later steps move along the latest "
        "gradient, not the one at the start",
    ),
    entry(
        P,
        "summed loss",
        _probe(reduction="sum"),
        "the loss is summed over "
        "the batch instead of averaged, so the gradient and the steps are N "
        "times larger",
    ),
    right(P, "parameters_to_vector", probe_vectors),
    right(P, "torch.func.functional_call", probe_functional),
]
