"""Held-out answers (eighth set, part c), lesson 07:

NoisyBatchNorm(num_features, shift=1.0, spread=2.0) (nn.BatchNorm1d subclass; last_noise = (shift, scale))
gradient_change(model, x, y, index, lr) -> (distance, cosine)
landscape_probe(model, x, y, step_sizes) -> (losses, grad_changes)
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"


# ---- NoisyBatchNorm ----------------------------------------------------------------
# the notebook gives __init__ (kept as given in _Given); each learner writes forward.


class _Given(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None


class NoisyScaleCentredOnOne(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        # "spread" read as the width of the scale's range around 1
        scale = 1 + (torch.rand(c, dtype=dtype) - 0.5) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyFoldedBiasUnscaled(_Given):
    def forward(self, x):
        x_hat = F.batch_norm(x, self.running_mean, self.running_var, None, None,
                             self.training, self.momentum, self.eps)
        if self.training:
            self.num_batches_tracked += 1
        if not self.training:
            return x_hat * self.weight + self.bias
        c, dtype = self.num_features, x.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        # noise folded into gamma and beta: gamma * scale, beta + shift
        return x_hat * (self.weight * scale) + (self.bias + shift)


class NoisySizedByBatch(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        n, dtype = x.size(0), out.dtype
        shift = (2 * torch.rand(n, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(n, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyOneUniformForBoth(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        u = torch.rand(self.num_features, dtype=out.dtype)  # one draw, reused for both
        shift = (2 * u - 1) * self.shift
        scale = 1 + u * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyGradEnabledAsMode(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not torch.is_grad_enabled():  # "no gradients: we are evaluating"
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftAttributeOverwritten(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        self.shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        self.scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (self.shift, self.scale)
        return out * self.scale + self.shift


class NoisyLastNoiseFirstOnly(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        if self.last_noise is None:
            self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyReflectedAddcmul(_Given):
    """Correct: draws from the top of each range down, torch.addcmul."""

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        scale = self.spread - (self.spread - 1) * torch.rand(c, dtype=dtype)
        shift = self.shift * (1 - 2 * torch.rand(c, dtype=dtype))
        self.last_noise = (shift, scale)
        return torch.addcmul(shift, out, scale)


# ---- gradient_change ------------------------------------------------------------------


def gc_spectral_norm(model, x, y, index, lr):
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
    distance = torch.linalg.norm(g - g2, 2)  # "the 2-norm": on a matrix, the largest singular value
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return distance.item(), cosine.item()


def gc_softmax_then_ce(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(F.softmax(work(x), dim=1), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(F.softmax(work(x), dim=1), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_adam_step(model, x, y, index, lr):
    work = copy.deepcopy(model)
    opt = torch.optim.Adam(work[:index].parameters(), lr=lr)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_eval_not_done(model, x, y, index, lr):
    work = copy.deepcopy(model)
    if not work.training:
        raise NotImplementedError("TODO: models in eval mode")
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


def gc_modules_slice(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in list(work.modules())[:index]:  # modules() starts with the Sequential itself
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_rounded(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return round((g - g2).norm().item(), 4), round(cosine.item(), 4)


def gc_add_alpha_normalize(model, x, y, index, lr):
    """Correct: add_(alpha=-lr) on .data, cosine as the dot of unit vectors."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone().reshape(-1)
    for layer in work[:index]:
        for p in layer.parameters():
            p.data.add_(p.grad, alpha=-lr)
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad.detach().reshape(-1)
    cosine = torch.dot(F.normalize(g, dim=0), F.normalize(g2, dim=0))
    return float(torch.linalg.vector_norm(g - g2)), float(cosine)


# ---- landscape_probe ------------------------------------------------------------------


def lp_gradient_clipped(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    torch.nn.utils.clip_grad_norm_(work.parameters(), 1.0)  # as in my training loop
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


def lp_steps_popped(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    while step_sizes:
        eta = step_sizes.pop(0)
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_item_not_called(model, x, y, step_sizes):
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
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item)
    return losses, changes


@notebook
def landscape_probe(model, x, y, step_sizes):
    # the copy is kept between calls, to save a deepcopy each time
    if getattr(landscape_probe, "work", None) is None:
        landscape_probe.work = copy.deepcopy(model)
    work = landscape_probe.work
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
    with torch.no_grad():  # back to w for the next call
        for p, p0 in zip(params, start):
            p.copy_(p0)
    return losses, changes


lp_copy_cached = landscape_probe
del landscape_probe


def lp_dicts_by_eta(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = {}, {}
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses[eta] = loss.item()
        changes[eta] = (g - torch.cat([p.grad.flatten() for p in params])).norm().item()
    return losses, changes


def lp_step_and_undo_quadrature(model, x, y, step_sizes):
    """Correct: steps and undoes the step each time; the norm of the change from the
    per-tensor norms combined in quadrature."""
    work = copy.deepcopy(model)
    params = list(work.parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.sub_(eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(float(loss))
        per_tensor = torch.stack([torch.linalg.vector_norm(p.grad - d) for p, d in zip(params, grads)])
        changes.append(float(torch.linalg.vector_norm(per_tensor)))
        with torch.no_grad():
            for p, d in zip(params, grads):
                p.add_(eta * d)
    return losses, changes


ENTRIES = [
    entry(N, "scale centred on 1", NoisyScaleCentredOnOne,
          "draws the scale from [1 - (spread - 1)/2, 1 + (spread - 1)/2] (centred on 1, so some scales "
          "are below 1) instead of uniformly from [1, spread].", replaces=NAME),
    entry(N, "noise folded into gamma and beta, beta not scaled", NoisyFoldedBiasUnscaled,
          "folds the noise into the affine map as x_hat * (gamma * scale) + (beta + shift), so beta is "
          "not multiplied by the scale: wrong whenever beta is not 0.", replaces=NAME),
    entry(N, "noise sized by the batch", NoisySizedByBatch,
          "draws shift and scale with x.size(0) (the number of examples) elements instead of "
          "num_features, which broadcasts wrongly or raises unless N == C.", replaces=NAME),
    entry(N, "one uniform draw for both shift and scale", NoisyOneUniformForBoth,
          "draws one uniform vector and derives both the shift and the scale from it, so the two are "
          "perfectly correlated instead of drawn independently.", replaces=NAME),
    entry(N, "grad mode used as the training flag", NoisyGradEnabledAsMode,
          "decides whether to add noise with torch.is_grad_enabled() instead of self.training, so eval "
          "mode with gradients on adds noise and training under torch.no_grad adds none.", replaces=NAME),
    entry(N, "drawn shift stored in self.shift", NoisyShiftAttributeOverwritten,
          "stores the drawn shift in self.shift, overwriting the range given to __init__, so from the "
          "second call on the shift is drawn from a range set by the previous draw.", replaces=NAME),
    entry(N, "last_noise kept from the first call", NoisyLastNoiseFirstOnly,
          "draws fresh noise at every call but stores it in last_noise only on the first call, so from "
          "the second call last_noise is not the noise applied.", replaces=NAME),
    entry(G, "spectral norm as the distance", gc_spectral_norm,
          "computes the distance as torch.linalg.norm(G - G', 2), which for a matrix is the largest "
          "singular value, instead of the Euclidean (Frobenius) norm of G - G'."),
    entry(G, "softmax before cross_entropy", gc_softmax_then_ce,
          "applies softmax to the outputs before F.cross_entropy (which applies log-softmax itself), so "
          "both gradients are those of a different loss."),
    entry(G, "Adam step of the earlier layers", gc_adam_step,
          "steps the layers before index with torch.optim.Adam (lr * about sign(grad) on the first step) "
          "instead of a plain SGD step p -= lr * grad."),
    entry(G, "eval mode left as NotImplementedError", gc_eval_not_done,
          "unfinished: raises NotImplementedError for a model in eval mode instead of measuring it in "
          "the mode it is in."),
    entry(G, "layers taken from model.modules()", gc_modules_slice,
          "steps list(work.modules())[:index], whose first entry is the Sequential itself, so every "
          "parameter (the measured layer and those after it too) is stepped, the first ones twice."),
    entry(G, "results rounded to 4 decimals", gc_rounded,
          "rounds the distance and the cosine to 4 decimals before returning them."),
    entry(L, "gradient clipped before the probe", lp_gradient_clipped,
          "clips the gradient g to norm 1 (clip_grad_norm_, copied from a training loop) before using "
          "it, so the steps and the gradient changes use the clipped g instead of g."),
    entry(L, "step_sizes consumed with pop", lp_steps_popped,
          "loops with step_sizes.pop(0), which empties the caller's list: the results are right once, "
          "but the caller's step_sizes is left empty (a second call returns nothing)."),
    entry(L, ".item without the call", lp_item_not_called,
          "writes .norm().item without parentheses, so the gradient changes are bound methods instead "
          "of floats."),
    entry(L, "copy cached between calls", lp_copy_cached,
          "keeps the deepcopy of the first model it is given in a function attribute and reuses it, so "
          "every later call probes the first model instead of the model passed."),
    entry(L, "results as dicts keyed by step size", lp_dicts_by_eta,
          "returns two dicts {eta: value} instead of two lists, so iterating over them gives the step "
          "sizes, not the losses and changes."),
    right(N, "draws from the top of each range, torch.addcmul", NoisyReflectedAddcmul, replaces=NAME),
    right(G, "add_(alpha=-lr) on .data, cosine of normalised vectors", gc_add_alpha_normalize),
    right(L, "step and undo, per-tensor norms combined in quadrature", lp_step_and_undo_quadrature),
]
