"""Held-out answers (sixth set, part c), lesson 07:

NoisyBatchNorm(num_features, shift=1.0, spread=2.0) (nn.BatchNorm1d subclass; last_noise = (shift, scale))
gradient_change(model, x, y, index, lr) -> (distance, cosine)
landscape_probe(model, x, y, step_sizes) -> (losses, grad_changes)
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"


# ---- NoisyBatchNorm ----------------------------------------------------------------
# the notebook gives __init__; every class below keeps it as given.


class NoisyParams(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        # keep the noise as parameters of the layer, refilled at every call
        if not hasattr(self, "noise_shift"):
            self.noise_shift = nn.Parameter(torch.zeros(self.num_features, dtype=out.dtype))
            self.noise_scale = nn.Parameter(torch.ones(self.num_features, dtype=out.dtype))
        with torch.no_grad():
            self.noise_shift.uniform_(-self.shift, self.shift)
            self.noise_scale.uniform_(1.0, self.spread)
        self.last_noise = (self.noise_shift, self.noise_scale)
        return out * self.noise_scale + self.noise_shift


class NoisyAlwaysBatchStats(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                           True, self.momentum, self.eps)
        self.num_batches_tracked += 1
        if not self.training:
            return out
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyStoresExcess(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
        u = torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, u)
        return out * (1 + u) + shift


class NoisyBeforeAffine(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        # normalise without the affine map, add the noise, then gamma and beta
        x_hat = F.batch_norm(x, self.running_mean, self.running_var, None, None,
                             self.training, self.momentum, self.eps)
        if self.training:
            self.num_batches_tracked += 1
        if not self.training:
            return x_hat * self.weight + self.bias
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=x_hat.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=x_hat.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return (x_hat * scale + shift) * self.weight + self.bias


class NoisyEvalIdentity(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return x
        out = super().forward(x)
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyColumnNoise(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        # one value per channel, as a column (thinking of (N, C, L) inputs)
        shift = (2 * torch.rand(c, 1, dtype=out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, 1, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftFromSpread(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.spread
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyFolded(nn.BatchNorm1d):
    """Correct: the noise folded into F.batch_norm's weight and bias (out of place),
    the counter and the cumulative-average momentum done by hand."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        c = self.num_features
        shift = torch.empty(c, dtype=x.dtype).uniform_(-self.shift, self.shift)
        scale = torch.empty(c, dtype=x.dtype).uniform_(1.0, self.spread)
        self.last_noise = (shift, scale)
        factor = 0.0
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        weight = self.weight * scale if self.affine else scale
        bias = self.bias * scale + shift if self.affine else shift
        return F.batch_norm(x, self.running_mean, self.running_var, weight, bias, True, factor, self.eps)


# ---- gradient_change ------------------------------------------------------------------


def gc_linear_index(model, x, y, index, lr):
    work = copy.deepcopy(model)
    linears = [m for m in work if isinstance(m, nn.Linear)]
    layer = linears[index]  # the index-th Linear layer
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = layer.weight.grad.clone()
    with torch.no_grad():
        for m in work[:index]:
            for p in m.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = layer.weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_all_parameters(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = torch.cat([p.grad.flatten() for p in work.parameters()]).clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = torch.cat([p.grad.flatten() for p in work.parameters()])
    cosine = F.cosine_similarity(g, g2, dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_angle(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).clamp(-1, 1)
    return (g - g2).norm().item(), math.acos(cosine.item())


def gc_lr_ignored(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_unit_gradients(model, x, y, index, lr):
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
    u, u2 = g / g.norm(), g2 / g2.norm()  # compare directions
    cosine = (u * u2).sum()
    return (u - u2).norm().item(), cosine.item()


def gc_loss_reused(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    loss = F.cross_entropy(work(x), y)
    loss.backward(retain_graph=True)
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    loss.backward()  # the same loss again, after the step
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_vector_params(model, x, y, index, lr):
    """Correct: the earlier layers' parameters as one vector (parameters_to_vector /
    vector_to_parameters), gradients from autograd.grad."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    work = copy.deepcopy(model)
    before = [p for layer in work[:index] for p in layer.parameters()]
    target = work[index].weight
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), before + [target])
    g = grads[-1]
    with torch.no_grad():
        vec = parameters_to_vector(before) - lr * parameters_to_vector(grads[:-1])
        vector_to_parameters(vec, before)
    (g2,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    distance = torch.linalg.vector_norm(g - g2)
    cosine = torch.dot(g.flatten(), g2.flatten()) / (g.norm() * g2.norm())
    return float(distance), float(cosine)


# ---- landscape_probe ------------------------------------------------------------------


def _probe(model, x, y, step_sizes, *, change, record=None):
    """Shared skeleton in a learner's style; `change(g, g2, grads, new)` gives the
    gradient change, `record` how the two lists get their values."""
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
        new = [p.grad for p in params]
        g2 = torch.cat([q.flatten() for q in new])
        losses.append(loss.item())
        changes.append(change(g, g2, grads, new))
    return losses, changes


def lp_rms(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change=lambda g, g2, a, b: (g - g2).pow(2).mean().sqrt().item())


def lp_per_tensor_sum(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes,
                  change=lambda g, g2, a, b: sum((d - q).norm().item() for d, q in zip(a, b)))


def lp_loss_decrease(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    loss0 = F.cross_entropy(work(x), y)
    loss0.backward()
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
        losses.append(loss0.item() - loss.item())  # how much the step gains
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_start_prepended(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    loss0 = F.cross_entropy(work(x), y)
    loss0.backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [loss0.item()], [0.0]  # the curve starts at w
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


def lp_caller_model_loss(model, x, y, step_sizes):
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
        losses.append(F.cross_entropy(model(x), y).item())
        F.cross_entropy(work(x), y).backward()
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_inserted_at_front(model, x, y, step_sizes):
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
        losses.insert(0, loss.item())
        changes.insert(0, (g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_state_dict(model, x, y, step_sizes):
    """Correct: the copy reloaded from a saved state_dict before each step (buffers
    included), the step taken with sub_ under no_grad."""
    work = copy.deepcopy(model)
    saved = copy.deepcopy(work.state_dict())
    names = [n for n, _ in work.named_parameters()]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in work.named_parameters()}
    g = torch.cat([grads[n].reshape(-1) for n in names])
    losses, changes = [], []
    for eta in step_sizes:
        work.load_state_dict(saved)
        with torch.no_grad():
            for n, p in work.named_parameters():
                p.sub_(grads[n], alpha=eta)
        for p in work.parameters():
            p.grad = None
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        here = torch.cat([p.grad.reshape(-1) for _, p in work.named_parameters()])
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(g - here)))
    return losses, changes


ENTRIES = [
    entry(N, "noise kept as parameters", NoisyParams,
          "keeps the noise in nn.Parameters of the layer (refilled at every call), so the noise is trainable "
          "(it appears in model.parameters() and gets gradients) instead of a constant for autograd.",
          replaces=NAME),
    entry(N, "batch statistics in eval mode too", NoisyAlwaysBatchStats,
          "normalises with F.batch_norm(..., training=True) in both modes, so eval mode uses the batch's "
          "statistics (and updates the running statistics) instead of plain eval-mode batch norm.",
          replaces=NAME),
    entry(N, "last_noise holds scale - 1", NoisyStoresExcess,
          "applies out * (1 + u) + shift but stores last_noise = (shift, u), u = scale - 1, instead of the "
          "scale actually applied.", replaces=NAME),
    entry(N, "noise before the affine map", NoisyBeforeAffine,
          "adds the noise to x_hat before weight and bias ((x_hat * scale + shift) * weight + bias) instead of "
          "to batch norm's output: right only while weight is 1 and bias 0.", replaces=NAME),
    entry(N, "eval mode returns the input", NoisyEvalIdentity,
          "returns x unchanged in eval mode instead of plain batch norm (running statistics, weight, bias).",
          replaces=NAME),
    entry(N, "noise of shape (C, 1)", NoisyColumnNoise,
          "draws shift and scale with shape (C, 1) instead of (C,), so for (N, C) input out * scale "
          "broadcasts against the wrong axis (fails unless N == C).", replaces=NAME),
    entry(N, "shift range taken from spread", NoisyShiftFromSpread,
          "draws the shift from [-spread, spread] (copy-paste of the scale's parameter) instead of "
          "[-shift, shift].", replaces=NAME),
    right(N, "noise folded into F.batch_norm's weight and bias", NoisyFolded, replaces=NAME),
    entry(G, "index taken among the Linear layers", gc_linear_index,
          "reads index as the position among the model's nn.Linear layers (linears[index]) instead of the "
          "position in the nn.Sequential, so another layer is measured (or IndexError).",),
    entry(G, "gradient of every parameter", gc_all_parameters,
          "takes G and G' over all the model's parameters instead of the weight of layer index only."),
    entry(G, "angle instead of cosine", gc_angle,
          "returns the angle arccos(cos) in radians instead of the cosine."),
    entry(G, "learning rate ignored", gc_lr_ignored,
          "steps the earlier layers by p -= p.grad, ignoring lr (a step of size 1)."),
    entry(G, "distance between unit gradients", gc_unit_gradients,
          "returns the distance between G/||G|| and G'/||G'|| (the directions) instead of ||G - G'||."),
    entry(G, "first loss backpropagated again", gc_loss_reused,
          "computes the loss once (retain_graph=True) and backpropagates the same loss again after the step "
          "instead of a new forward pass: the old graph gives G' = G, or autograd refuses (RuntimeError in the "
          "learner's code) where a stepped parameter was saved for backward."),
    right(G, "parameters_to_vector step, autograd.grad", gc_vector_params),
    entry(L, "RMS of the gradient difference", lp_rms,
          "returns the root mean square of g - g' (norm divided by sqrt(number of parameters)) instead of "
          "its norm."),
    entry(L, "per-tensor norms added", lp_per_tensor_sum,
          "adds the norms of each parameter tensor's gradient difference instead of taking the norm of the "
          "whole flattened difference."),
    entry(L, "loss decrease instead of loss", lp_loss_decrease,
          "records L(w) - L(w - eta g) (the decrease) instead of the loss L(w - eta g)."),
    entry(L, "start point prepended", lp_start_prepended,
          "puts the loss at w and a change of 0 at the front of the lists, so both are one longer than "
          "step_sizes and shifted by one."),
    entry(L, "loss read from the caller's model", lp_caller_model_loss,
          "records the loss of the caller's model (model(x), at w) instead of the moved copy's, so every loss "
          "is L(w)."),
    entry(L, "results inserted at the front", lp_inserted_at_front,
          "inserts each result at position 0 (list.insert(0, ...)), so both lists come back in reverse order "
          "of step_sizes."),
    right(L, "state_dict reloaded per step, sub_(alpha=)", lp_state_dict),
]
