"""Held-out answers (fourteenth set, part C), lesson 07: NoisyBatchNorm,
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


class _Noisy(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None


class NoiseRequiresGrad(_Noisy):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        # "keep the noise in the graph so its effect on the loss can be looked at"
        shift = ((2 * torch.rand(c, dtype=dtype) - 1) * self.shift).requires_grad_()
        scale = (1 + torch.rand(c, dtype=dtype) * (self.spread - 1)).requires_grad_()
        self.last_noise = (shift, scale)
        return out * scale + shift


class StatsOfNoisyOutput(_Noisy):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        out = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        noisy = out * scale + shift
        # "the running statistics must describe what the next layer sees"
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * noisy.mean(0))
            self.running_var.mul_(1 - m).add_(m * noisy.var(0, unbiased=True))
            self.num_batches_tracked += 1
        return noisy


class NoiseBuffers(_Noisy):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, shift, spread, **kwargs)
        # "no new allocation at every step": the noise lives in two buffers, redrawn in place
        self.register_buffer("noise_shift", torch.zeros(num_features))
        self.register_buffer("noise_scale", torch.ones(num_features))

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        self.noise_shift.uniform_(-self.shift, self.shift)
        self.noise_scale.uniform_(1.0, self.spread)
        self.last_noise = (self.noise_shift, self.noise_scale)
        return out * self.noise_scale + self.noise_shift


# ---- gradient_change -----------------------------------------------------------------


def gc_one_hot_targets(model, x, y, index, lr):
    target = F.one_hot(y).to(x.dtype)  # "cross_entropy wants the target distribution"
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), target).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), target).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_gradient_per_layer(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    for layer in work[:index]:
        with torch.no_grad():
            for p in layer.parameters():
                p -= lr * p.grad
        # "a fresh gradient for the next layer, after this one moved"
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_matrix_norm(model, x, y, index, lr):
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    earlier = [p for p in work[:index].parameters()]
    with torch.no_grad():
        for p in earlier:
            p.data.add_(p.grad, alpha=-lr)
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    distance = torch.linalg.matrix_norm(g - g2)  # Frobenius = 2-norm of the flattened matrix
    cosine = (g * g2).sum() / (torch.linalg.matrix_norm(g) * torch.linalg.matrix_norm(g2))
    return float(distance), float(cosine)


# ---- landscape_probe -------------------------------------------------------------------


def _probe(model, x, y, step_sizes, *, etas=None, change=None, flatten=None):
    flatten = flatten or (lambda ts: torch.cat([t.flatten() for t in ts]))
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = flatten(grads)
    losses, changes = [], []
    for eta in (step_sizes if etas is None else etas(step_sizes)):
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        g2 = flatten([p.grad for p in params])
        changes.append((g - g2).norm().item() if change is None else change(g, g2))
    return losses, changes


def lp_norm_of_new_gradient(model, x, y, step_sizes):
    # "how big the gradient is there" (the difference with g forgotten)
    return _probe(model, x, y, step_sizes, change=lambda g, g2: g2.norm().item())


def lp_step_sizes_as_set(model, x, y, step_sizes):
    # "no point probing the same step size twice"
    return _probe(model, x, y, step_sizes, etas=lambda s: set(s))


def lp_stacked_gradients(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, flatten=lambda ts: torch.stack([t.flatten() for t in ts]).flatten())


ENTRIES = [
    # NoisyBatchNorm: 3 wrong
    entry(N, "noise tensors made to require grad", NoiseRequiresGrad,
          "calls requires_grad_() on the drawn shift and scale, so the noise is a leaf of the autograd graph "
          "(it receives gradients) instead of a constant.", replaces=NAME),
    entry(N, "running statistics of the noisy output", StatsOfNoisyOutput,
          "normalises with batch statistics but updates the running mean and variance from the noisy output "
          "(after the affine map and the noise) instead of from the input, so eval mode uses wrong statistics.",
          replaces=NAME),
    entry(N, "noise kept in registered buffers, redrawn in place", NoiseBuffers,
          "keeps the noise in two registered buffers redrawn in place with uniform_, so last_noise "
          "aliases the buffers (a kept last_noise changes at the next call) and the state_dict gains two "
          "extra entries.", replaces=NAME),
    # gradient_change: 2 wrong, 1 correct
    entry(G, "targets one-hot encoded without num_classes", gc_one_hot_targets,
          "passes F.one_hot(y) as probability targets; one_hot infers the number of classes from y.max() + 1, "
          "so when the batch lacks the last class the target's shape does not match the logits and "
          "cross_entropy raises inside the learner's code (right otherwise)."),
    entry(G, "gradient recomputed after each earlier layer's step", gc_gradient_per_layer,
          "steps the earlier layers one after another, recomputing the gradient after each layer's step, "
          "instead of stepping them all with the gradients of the same first backward pass (right when only "
          "one earlier layer has parameters)."),
    right(G, "p.grad = None, add_(alpha=-lr) on .data, matrix_norm distance", gc_matrix_norm),
    # landscape_probe: 3 wrong
    entry(L, "norm of the new gradient as the change", lp_norm_of_new_gradient,
          "records the norm of the gradient at w - eta g, forgetting to subtract g, instead of the norm of "
          "the difference of the two gradients."),
    entry(L, "step sizes deduplicated with set()", lp_step_sizes_as_set,
          "loops over set(step_sizes), which drops repeated step sizes and puts them in the set's order, so "
          "the results no longer match step_sizes one to one."),
    entry(L, "per-parameter gradients stacked instead of concatenated", lp_stacked_gradients,
          "flattens the gradients with torch.stack, which needs equal sizes, so for a model whose parameters "
          "have different sizes it raises inside the learner's code."),
]
