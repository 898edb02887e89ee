"""Held-out answers (eleventh set, part c), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe. Learned from solutions/07_why_batchnorm_works.ipynb."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"


# ---- NoisyBatchNorm ----------------------------------------------------------------


class _Base(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None


class NoiseShapedLikeWeight(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        # one value per channel: shaped like the layer's weight
        shift = (2 * torch.rand_like(self.weight) - 1) * self.shift
        scale = 1 + torch.rand_like(self.weight) * (self.spread - 1)
        shift, scale = shift.detach(), scale.detach()
        self.last_noise = (shift, scale)
        return out * scale + shift


class LogUniformScale(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = self.spread ** torch.rand(c, dtype=dtype)  # between 1 and spread
        self.last_noise = (shift, scale)
        return out * scale + shift


class ByHandBiasedRunningVar(_Base):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean = x.mean(0)
        var = x.var(0, unbiased=False)
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var)
            self.num_batches_tracked += 1
        out = (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisePreparedForNextCall(_Base):
    def _draw(self, c, dtype):
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        return shift, scale

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        if self.last_noise is None:
            self.last_noise = self._draw(self.num_features, out.dtype)
        shift, scale = self.last_noise
        out = out * scale + shift
        self.last_noise = self._draw(self.num_features, out.dtype)  # ready for the next batch
        return out


class TrainCalledInForward(_Base):
    def forward(self, x):
        self.train()  # "training-mode output"
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ShiftHalved(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (torch.rand(c, dtype=dtype) - 0.5) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ScaleFromInverseSpread(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        lo = 1.0 / self.spread
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = lo + torch.rand(c, dtype=dtype) * (self.spread - lo)
        self.last_noise = (shift, scale)
        return out * scale + shift


class OwnGenerator(nn.BatchNorm1d):
    """Correct: the noise comes from the layer's own torch.Generator, seeded once
    from the global generator; Uniform bounds via torch.empty().uniform_."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None
        self._gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = torch.empty(c, dtype=out.dtype).uniform_(-self.shift, self.shift, generator=self._gen)
        scale = torch.empty(c, dtype=out.dtype).uniform_(1.0, self.spread, generator=self._gen)
        self.last_noise = (shift, scale)
        return shift + scale * out


# ---- gradient_change ---------------------------------------------------------------


def _grads(work, x, y, index):
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    return work[index].weight.grad.clone()


def _result(g, g2):
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_lr_over_batch(model, x, y, index, lr):
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    step = lr / len(x)  # the loss is a mean: per-example rate
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= step * p.grad
    g2 = _grads(work, x, y, index)
    return _result(g, g2)


def gc_weight_attribute(model, x, y, index, lr):
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    with torch.no_grad():
        for layer in work[:index]:
            layer.weight -= lr * layer.weight.grad
            layer.bias -= lr * layer.bias.grad
    g2 = _grads(work, x, y, index)
    return _result(g, g2)


def gc_own_bias_stepped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
        work[index].bias -= lr * work[index].bias.grad  # the bias acts before the weight's output
    g2 = _grads(work, x, y, index)
    return _result(g, g2)


def gc_max_abs(model, x, y, index, lr):
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    g2 = _grads(work, x, y, index)
    cos = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).abs().max().item(), cos.item()


def gc_previous_layer_only(model, x, y, index, lr):
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    with torch.no_grad():
        for p in work[index - 1].parameters():  # the layer before index
            p -= lr * p.grad
    g2 = _grads(work, x, y, index)
    return _result(g, g2)


def gc_freeze_caller(model, x, y, index, lr):
    for layer in model[index + 1:]:  # the layers after index take no part in the step
        layer.requires_grad_(False)
    work = copy.deepcopy(model)
    g = _grads(work, x, y, index)
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    g2 = _grads(work, x, y, index)
    return _result(g, g2)


def gc_accumulated_minus_g(model, x, y, index, lr):
    """Correct: the second backward accumulates into .grad; G' = total - G.
    log_softmax + nll_loss for the cross-entropy."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.grad = None
    F.nll_loss(F.log_softmax(work(x), dim=1), y).backward()
    g = work[index].weight.grad.detach().clone()
    earlier = [p for layer in work[:index] for p in layer.parameters()]
    with torch.no_grad():
        for p in earlier:
            p.add_(p.grad, alpha=-lr)
            p.grad = None
    F.nll_loss(F.log_softmax(work(x), dim=1), y).backward()
    g2 = work[index].weight.grad.detach() - g
    a, b = g.reshape(-1), g2.reshape(-1)
    return float(torch.linalg.vector_norm(a - b)), float(a.dot(b) / (a.norm() * b.norm()))


# ---- landscape_probe ---------------------------------------------------------------


def lp_momentum_optimizer(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    opt = torch.optim.SGD(params, lr=1.0, momentum=0.9)  # as in the training loop
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0)
                p.grad = d.clone()
        opt.param_groups[0]["lr"] = eta
        opt.step()
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_first_eta_everywhere(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    eta = step_sizes[0]
    losses, changes = [], []
    for step in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_cosine_distance(model, x, y, step_sizes):
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
        g2 = torch.cat([p.grad.flatten() for p in params])
        losses.append(loss.item())
        changes.append(1.0 - F.cosine_similarity(g, g2, dim=0).item())  # how far g' turned from g
    return losses, changes


def lp_name_order(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    named = dict(work.named_parameters())
    start = {n: p.detach().clone() for n, p in named.items()}
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in named.items()}
    g = torch.cat([grads[n].flatten() for n in sorted(grads)])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for n, p in named.items():
                p.copy_(start[n] - eta * grads[n])
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in work.parameters()])).norm().item())
    return losses, changes


def lp_start_loss_backward_twice(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    start_loss = F.cross_entropy(work(x), y)
    start_loss.backward()  # the loss at w, recorded for the plot
    F.cross_entropy(work(x), y).backward()  # the gradient g
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


def lp_index_minus_one(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for i in range(len(step_sizes)):
        eta = step_sizes[i - 1]
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_vector_to_parameters(model, x, y, step_sizes):
    """Correct: one flat vector of weights, vector_to_parameters for every point,
    gradients by torch.autograd.grad."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    work = copy.deepcopy(model)
    w0 = parameters_to_vector(work.parameters()).detach().clone()
    g = parameters_to_vector(torch.autograd.grad(F.cross_entropy(work(x), y), list(work.parameters())))
    g = g.detach()
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            vector_to_parameters(w0 - eta * g, work.parameters())
        loss = F.cross_entropy(work(x), y)
        g2 = parameters_to_vector(torch.autograd.grad(loss, list(work.parameters())))
        losses.append(float(loss))
        changes.append(float(torch.dist(g, g2)))
    return losses, changes


ENTRIES = [
    entry(N, "noise shaped by rand_like(self.weight)", NoiseShapedLikeWeight,
          "draws the noise with torch.rand_like(self.weight), which fails for a layer built with "
          "affine=False (its weight is None) instead of drawing num_features values.", replaces=NAME),
    entry(N, "log-uniform scale", LogUniformScale,
          "draws the scale as spread ** u (log-uniform on [1, spread], piled towards 1) instead of "
          "uniformly on [1, spread].", replaces=NAME),
    entry(N, "batch norm by hand, biased running_var", ByHandBiasedRunningVar,
          "normalises by hand in training mode and updates running_var with the biased batch "
          "variance instead of batch norm's unbiased one, so the running variance is not batch norm's.",
          replaces=NAME),
    entry(N, "noise prepared for the next call", NoisePreparedForNextCall,
          "applies the noise stored at the previous call and then draws the next one into "
          "last_noise, so last_noise is not the noise the output was given (from the second call on).",
          replaces=NAME),
    entry(N, "self.train() called in forward", TrainCalledInForward,
          "calls self.train() at the start of forward, so a layer put in eval mode is switched back "
          "to training: eval mode adds noise and updates the running statistics.", replaces=NAME),
    entry(N, "shift range halved", ShiftHalved,
          "draws the shift as (u - 0.5) * shift, uniform on [-shift/2, shift/2], instead of "
          "(2u - 1) * shift on [-shift, shift].", replaces=NAME),
    entry(N, "scale range from 1/spread", ScaleFromInverseSpread,
          "draws the scale uniformly on [1/spread, spread] instead of [1, spread], so some scales "
          "are below 1.", replaces=NAME),
    entry(G, "learning rate divided by the batch size", gc_lr_over_batch,
          "steps the earlier layers with lr / len(x) instead of lr."),
    entry(G, "weight and bias attributes stepped", gc_weight_attribute,
          "steps layer.weight and layer.bias of every layer before index, which raises an "
          "AttributeError on the activation layers (they have no weight) instead of looping over "
          "each layer's parameters()."),
    entry(G, "measured layer's bias stepped too", gc_own_bias_stepped,
          "steps the measured layer's own bias along with the layers before it, so G' also "
          "reflects a change of the measured layer."),
    entry(G, "largest absolute difference as the distance", gc_max_abs,
          "returns max |G - G'| (the largest entry) instead of the Euclidean norm ||G - G'||."),
    entry(G, "only the layer just before index stepped", gc_previous_layer_only,
          "steps only work[index - 1] (often an activation with no parameters) instead of every "
          "layer before index."),
    entry(G, "later layers frozen on the caller's model", gc_freeze_caller,
          "sets requires_grad=False on the layers after index of the caller's model (before "
          "copying), so the model given is changed: those layers stop training afterwards."),
    entry(L, "one momentum optimiser reused for every step size", lp_momentum_optimizer,
          "steps with one torch.optim.SGD(momentum=0.9) reused across the step sizes, so from the "
          "second step size on the momentum buffer makes the step longer than eta * g."),
    entry(L, "first step size used for every point", lp_first_eta_everywhere,
          "sets eta = step_sizes[0] before the loop and loops with another name, so every point is "
          "w - step_sizes[0] * g."),
    entry(L, "1 - cosine as the gradient change", lp_cosine_distance,
          "records 1 - cos(g, g') (how far the gradient turned) instead of the norm ||g - g'||."),
    entry(L, "g flattened in name order, g' in parameter order", lp_name_order,
          "flattens g with the parameters sorted by name but g' in the model's parameter order, "
          "so the two vectors are compared entry by entry in different orders."),
    entry(L, "start loss backpropagated too, g doubled", lp_start_loss_backward_twice,
          "backpropagates the loss at w twice (once to record it, once for g) without zeroing, so "
          "g is twice the gradient: the points are w - 2 eta g and the changes are against 2g."),
    entry(L, "step sizes taken at index i - 1", lp_index_minus_one,
          "loops over range(len(step_sizes)) and takes step_sizes[i - 1], so the first point uses "
          "the last step size and every result is shifted by one."),
    right(N, "own torch.Generator, uniform_ bounds", OwnGenerator, replaces=NAME),
    right(G, "accumulated gradient minus G, log_softmax + nll_loss", gc_accumulated_minus_g),
    right(L, "vector_to_parameters, autograd.grad, torch.dist", lp_vector_to_parameters),
]
