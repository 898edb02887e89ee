"""Held-out answers (thirteenth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text); each wrong entry has one mistake."""

import copy
import random

import numpy as np
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


class TriangularShift(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        # "symmetric around 0": the difference of two uniforms
        shift = (torch.rand(c, dtype=dtype) - torch.rand(c, dtype=dtype)) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NumpyNoise(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = torch.from_numpy(np.random.uniform(-self.shift, self.shift, c))
        scale = torch.from_numpy(np.random.uniform(1.0, self.spread, c))
        self.last_noise = (shift, scale)
        return out * scale + shift


class EvalUnderNoGrad(_Noisy):
    def forward(self, x):
        if not self.training:
            with torch.no_grad():  # "no training in eval mode, no graph needed"
                return super().forward(x)
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ForkedGenerator(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        with torch.random.fork_rng():  # "do not disturb the training's random state"
            shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
            scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class StatsProtectedByEval(_Noisy):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        # "the running statistics must stay batch norm's own": keep them out of it
        self.eval()
        out = super().forward(x)
        self.train()
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class EvenlySpacedScales(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        # "cover the whole range": the scales 1 .. spread, shuffled over the channels
        scale = torch.linspace(1, self.spread, c, dtype=dtype)[torch.randperm(c)]
        self.last_noise = (shift, scale)
        return out * scale + shift


class SqueezedDraw(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        u = torch.rand(2, c, dtype=dtype).squeeze()
        shift, scale = (2 * u[0] - 1) * self.shift, 1 + u[1] * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class PythonRandomNoise(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = torch.tensor([random.uniform(-self.shift, self.shift) for _ in range(c)], dtype=out.dtype)
        scale = torch.tensor([random.uniform(1.0, self.spread) for _ in range(c)], dtype=out.dtype)
        self.last_noise = (shift, scale)
        return torch.addcmul(shift, out, scale)


# ---- gradient_change -----------------------------------------------------------------


def _gc(model, x, y, index, lr, *, loss=None, step=None, measured=None, cosine=None):
    loss = loss or (lambda out, y: F.cross_entropy(out, y))
    measured = measured or (lambda layer: layer.weight.grad.flatten())
    work = copy.deepcopy(model)
    work.zero_grad()
    loss(work(x), y).backward()
    g = measured(work[index]).clone()
    if step is None:
        with torch.no_grad():
            for layer in work[:index]:
                for p in layer.parameters():
                    p -= lr * p.grad
    else:
        step(work, index, lr)
    work.zero_grad()
    loss(work(x), y).backward()
    g2 = measured(work[index])
    cos = F.cosine_similarity(g, g2, dim=0).item() if cosine is None else cosine(g, g2)
    return (g - g2).norm().item(), cos


def gc_label_smoothing(model, x, y, index, lr):
    # the loss of the training loop, label smoothing included
    return _gc(model, x, y, index, lr, loss=lambda out, y: F.cross_entropy(out, y, label_smoothing=0.1))


def _unit_steps(work, index, lr):
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad / p.grad.norm()  # "a step of length lr"


def gc_unit_steps(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, step=_unit_steps)


def _nested_steps(work, index, lr):
    with torch.no_grad():
        for layer in work[:index]:
            for p in work[:index].parameters():
                p -= lr * p.grad


def gc_nested_loop(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, step=_nested_steps)


def _nesterov(work, index, lr):
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr, momentum=0.9, nesterov=True)
    opt.step()


def gc_nesterov(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, step=_nesterov)


def gc_cosine_list(model, x, y, index, lr):
    return _gc(model, x, y, index, lr,
               cosine=lambda g, g2: F.cosine_similarity(g.view(1, -1), g2.view(1, -1)).tolist())


def gc_weight_and_bias(model, x, y, index, lr):
    return _gc(model, x, y, index, lr,
               measured=lambda layer: torch.cat([layer.weight.grad.flatten(), layer.bias.grad.flatten()]))


def gc_functional(model, x, y, index, lr):
    from torch.func import functional_call, grad

    work = copy.deepcopy(model)
    params = {k: v.detach() for k, v in work.named_parameters()}
    buffers = dict(work.named_buffers())

    def loss(p, b):
        return F.cross_entropy(functional_call(work, (p, b), (x,)), y)

    key = f"{index}.weight"
    grads = grad(loss)(params, buffers)
    before = {k: v - lr * grads[k] if int(k.split(".")[0]) < index else v for k, v in params.items()}
    g, g2 = grads[key], grad(loss)(before, buffers)[key]
    cos = torch.dot(g.flatten(), g2.flatten()) / (g.norm() * g2.norm())
    return torch.linalg.vector_norm(g - g2).item(), cos.item()


# ---- landscape_probe -------------------------------------------------------------------


def _changes(params, g):
    return (g - torch.cat([p.grad.flatten() for p in params])).norm().item()


def lp_gradient_in_eval(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    mode = work.training
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.eval()  # "g at w, without touching batch norm's buffers"
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    work.train(mode)
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
        changes.append(_changes(params, g))
    return losses, changes


def lp_gradient_on_caller(model, x, y, step_sizes):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    work = copy.deepcopy(model)  # the probes on a copy
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
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
        changes.append(_changes(params, g))
    return losses, changes


def lp_undo_with_new_gradient(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.sub_(eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append(_changes(params, g))
        with torch.no_grad():  # back to w
            for p in params:
                p.add_(eta * p.grad)
    return losses, changes


def lp_step_vector_as_g(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    losses, changes = [], []
    for eta in step_sizes:
        step = [eta * d for d in grads]
        with torch.no_grad():
            for p, p0, s in zip(params, start, step):
                p.copy_(p0 - s)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        delta = torch.cat([s.flatten() for s in step])
        changes.append(_changes(params, delta))
    return losses, changes


def lp_stale_gradient(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    # "the gradient at w is already there after training's backward pass"
    grads = [p.grad.detach().clone() for p in model.parameters()]
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
        changes.append(_changes(params, g))
    return losses, changes


def lp_two_loops(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses = []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        losses.append(F.cross_entropy(work(x), y).item())
    changes = []
    for eta in step_sizes:  # the gradients, in a second pass
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.sub_(eta * d)
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        changes.append(_changes(params, g))
    return losses, changes


def lp_func_grad_and_value(model, x, y, step_sizes):
    from torch.func import functional_call, grad_and_value

    work = copy.deepcopy(model)
    params = {k: v.detach().clone() for k, v in work.named_parameters()}
    buffers = dict(work.named_buffers())

    def loss(p, b):
        return F.cross_entropy(functional_call(work, (p, b), (x,)), y)

    g0, _ = grad_and_value(loss)(params, buffers)
    flat0 = torch.cat([g0[k].reshape(-1) for k in params])
    losses, changes = [], []
    for eta in step_sizes:
        moved = {k: params[k] - eta * g0[k] for k in params}
        gk, value = grad_and_value(loss)(moved, buffers)
        losses.append(float(value))
        changes.append(float(torch.linalg.vector_norm(flat0 - torch.cat([gk[k].reshape(-1) for k in params]))))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 7 wrong, 1 correct
    entry(N, "shift as the difference of two uniforms", TriangularShift,
          "draws the shift as (u1 - u2) * shift, the difference of two uniforms (a triangular distribution "
          "piled around 0), instead of uniformly on [-shift, shift].", replaces=NAME),
    entry(N, "noise drawn with NumPy", NumpyNoise,
          "draws the noise with np.random.uniform and torch.from_numpy, which gives float64 tensors: a "
          "float32 layer returns a float64 output (and last_noise in float64).", replaces=NAME),
    entry(N, "eval mode under torch.no_grad", EvalUnderNoGrad,
          "runs eval mode under torch.no_grad(), so in eval mode the output has no graph and no gradient "
          "reaches the input or the layer's weight and bias (plain batch norm's eval mode is differentiable).",
          replaces=NAME),
    entry(N, "noise drawn inside fork_rng", ForkedGenerator,
          "draws the noise inside torch.random.fork_rng(), which restores the random state afterwards, so "
          "every call draws the same noise instead of new noise.", replaces=NAME),
    entry(N, "training forward run in eval mode", StatsProtectedByEval,
          "switches the layer to eval mode around super().forward in training (to protect the running "
          "statistics), so training mode normalises with the running statistics and never updates them.",
          replaces=NAME),
    entry(N, "evenly spaced scales, shuffled", EvenlySpacedScales,
          "takes the scales as torch.linspace(1, spread, C) in a random order instead of independent uniform "
          "draws: always the same C values (only 1 for a single channel).", replaces=NAME),
    entry(N, "(2, C) draw squeezed", SqueezedDraw,
          "draws torch.rand(2, C).squeeze(), which for a single channel (C = 1) gives shape (2,), so the "
          "shift and scale are 0-d tensors instead of shape (C,) (right for C > 1).", replaces=NAME),
    right(N, "Python's random per channel, addcmul", PythonRandomNoise, replaces=NAME),
    # gradient_change: 6 wrong, 1 correct
    entry(G, "label smoothing in the loss", gc_label_smoothing,
          "uses the training loop's F.cross_entropy(..., label_smoothing=0.1) for both gradients instead of "
          "plain cross-entropy."),
    entry(G, "earlier layers stepped by unit-norm gradients", gc_unit_steps,
          "divides each earlier parameter's gradient by its norm before the step (p -= lr * grad / |grad|) "
          "instead of the plain SGD step p -= lr * grad."),
    entry(G, "nested loop over the earlier layers", gc_nested_loop,
          "loops over the earlier layers and, inside, over all of work[:index].parameters(), so every earlier "
          "parameter is stepped once per earlier layer (index times) instead of once."),
    entry(G, "Nesterov momentum in the step", gc_nesterov,
          "steps the earlier layers with torch.optim.SGD(momentum=0.9, nesterov=True), whose first step is "
          "1.9 * lr * grad, instead of a plain step of lr * grad."),
    entry(G, "cosine returned as a list", gc_cosine_list,
          "computes the cosine on (1, D) views and returns it with .tolist(), a one-element list, instead of "
          "a Python float."),
    entry(G, "measured layer's bias included", gc_weight_and_bias,
          "takes G and G' as the measured layer's weight and bias gradients concatenated instead of its "
          "weight gradient only."),
    right(G, "torch.func.grad with functional_call", gc_functional),
    # landscape_probe: 6 wrong, 1 correct
    entry(L, "g taken in eval mode", lp_gradient_in_eval,
          "computes g at w with the copy in eval mode (to leave batch norm's buffers alone) and the probes in "
          "the model's own mode, so for a training-mode model g is not the gradient the probes compare with."),
    entry(L, "g taken on the caller's model", lp_gradient_on_caller,
          "runs the first forward and backward pass on the caller's model (only the probes on a copy), so "
          "the model given is changed: its batch-norm running statistics and counter move and its .grad is filled."),
    entry(L, "step undone with the new gradient", lp_undo_with_new_gradient,
          "steps to w - eta * g and undoes the step with p.grad, the gradient at the new point, instead of "
          "g, so from the second step size on the probes do not start from w."),
    entry(L, "step vector used as g", lp_step_vector_as_g,
          "measures the gradient change against the step vector eta * g (a variable mix-up) instead of g."),
    entry(L, "g read from the model's stored .grad", lp_stale_gradient,
          "never computes g: it reads the .grad already stored in the model (None for a fresh model, a "
          "raise inside the learner's code; a previous batch's gradient after training) instead of the "
          "gradient of the loss on (x, y) at w."),
    entry(L, "gradient changes in a second loop", lp_two_loops,
          "computes the losses in a first loop and the gradient changes in a second one whose steps start "
          "from where the first loop left the weights and accumulate, so the changes are measured at the wrong points."),
    right(L, "torch.func.grad_and_value with functional_call", lp_func_grad_and_value),
]
