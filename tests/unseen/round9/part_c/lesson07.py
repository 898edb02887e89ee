"""Held-out answers (ninth set, part c), lesson 07:

NoisyBatchNorm(num_features, shift=1.0, spread=2.0, **kwargs)  (nn.BatchNorm1d subclass)
gradient_change(model, x, y, index, lr) -> (distance, cosine)  (Python floats)
landscape_probe(model, x, y, step_sizes) -> (losses, grad_changes)  (lists of Python floats)
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ------------------------------------------------------------------


class NoisyPositionalSuper(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, shift, spread, **kwargs)
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


class NoisyFreshBatchNorm(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        out = nn.BatchNorm1d(self.num_features)(x)  # batch norm, then the noise
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyEvalNoAffine(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:  # plain batch norm with the running statistics
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyNoRunningStats(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        out = F.batch_norm(x, None, None, self.weight, self.bias, training=True,
                           momentum=self.momentum, eps=self.eps)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftOffsetOne(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = torch.rand(c, dtype=dtype) * 2 * self.shift - 1
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDrawUnpacked(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        u, v = torch.rand(self.num_features, 2, dtype=out.dtype)  # one pair per channel
        shift = (2 * u - 1) * self.shift
        scale = 1 + v * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyInPlaceRandLike(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift = torch.rand_like(self.running_mean).mul_(2 * self.shift).sub_(self.shift)
        scale = torch.rand_like(self.running_mean).mul_(self.spread - 1).add_(1)
        self.last_noise = (shift, scale)
        return out.mul_(scale).add_(shift)


# ---- gradient_change -------------------------------------------------------------------


def gc_row_cosine(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g, g2).mean()
    return (g - g2).norm().item(), cosine.item()


def gc_state_dict_not_cloned(model, x, y, index, lr):
    saved = model.state_dict()  # to put the model back afterwards
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g = model[index].weight.grad.clone()
    with torch.no_grad():
        for layer in model[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g2 = model[index].weight.grad.clone()
    model.load_state_dict(saved)
    model.zero_grad()
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_weight_decay(model, x, y, index, lr):
    work = copy.deepcopy(model)
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr, weight_decay=5e-4)
    opt.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_eval_and_back(model, x, y, index, lr):
    model.eval()  # so that batch norm's buffers cannot change
    work = copy.deepcopy(model)
    model.train()
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


def gc_weights_not_grad(model, x, y, index, lr):
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
    g2 = work[index].weight
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_numpy_scalars(model, x, y, index, lr):
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
    return (g - g2).norm().detach().numpy(), cosine.detach().numpy()


def gc_foreach_dist(model, x, y, index, lr):
    work = copy.deepcopy(model)
    earlier = [p for p in work[:index].parameters()]
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    with torch.no_grad():
        torch._foreach_add_(earlier, [p.grad for p in earlier], alpha=-lr)
    for p in work.parameters():
        p.grad = None
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad.detach()
    cosine = (g * g2).sum() / (g.norm() * g2.norm())
    return float(torch.dist(g, g2)), float(cosine)


# ---- landscape_probe --------------------------------------------------------------------


def _flat_grad(params):
    return torch.cat([p.grad.flatten() for p in params])


def lp_previous_point(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    previous = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        here = _flat_grad(params)
        changes.append((here - previous).norm().item())
        previous = here
    return losses, changes


def lp_loss_before_step(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    loss = F.cross_entropy(work(x), y)
    loss.backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        losses.append(loss.item())
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        changes.append((g - _flat_grad(params)).norm().item())
    return losses, changes


def lp_float32_inputs(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    x = x.float()
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
        changes.append((g - _flat_grad(params)).norm().item())
    return losses, changes


def lp_linear_only(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = [p for m in work.modules() if isinstance(m, nn.Linear) for p in m.parameters()]
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
        changes.append((g - _flat_grad(params)).norm().item())
    return losses, changes


def lp_train_copy(model, x, y, step_sizes):
    work = copy.deepcopy(model).train()
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
        changes.append((g - _flat_grad(params)).norm().item())
    return losses, changes


def lp_taylor_losses(model, x, y, step_sizes):
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
        losses.append((loss0 - eta * g.dot(g)).item())  # the loss at w - eta * g
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        changes.append((g - _flat_grad(params)).norm().item())
    return losses, changes


def lp_two_forwards(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    g_parts = torch.autograd.grad(F.cross_entropy(work(x), y), params)
    g = torch.cat([d.reshape(-1) for d in g_parts])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, g_parts):
                p.copy_(p0).sub_(d, alpha=eta)
            losses.append(float(F.cross_entropy(work(x), y)))
        here = torch.autograd.grad(F.cross_entropy(work(x), y), params)
        changes.append(float(torch.linalg.vector_norm(g - torch.cat([d.reshape(-1) for d in here]))))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm
    entry(N, "shift and spread passed on to BatchNorm1d positionally", NoisyPositionalSuper,
          "passes shift and spread positionally to nn.BatchNorm1d.__init__, where they become "
          "eps=1.0 and momentum=2.0", replaces=NAME),
    entry(N, "batch norm by a new nn.BatchNorm1d built in every call", NoisyFreshBatchNorm,
          "normalises with a fresh nn.BatchNorm1d built in each training call instead of its own "
          "batch norm, so its weight, bias and running statistics are never used or updated (and the "
          "fresh layer is float32 whatever the module's dtype)", replaces=NAME),
    entry(N, "eval mode without the weight and bias", NoisyEvalNoAffine,
          "eval mode calls F.batch_norm with the running statistics but without self.weight and "
          "self.bias, so the affine map is dropped in eval mode", replaces=NAME),
    entry(N, "running statistics not passed to F.batch_norm", NoisyNoRunningStats,
          "the training branch calls F.batch_norm(x, None, None, ...), so the running statistics "
          "(and the batch counter) are never updated", replaces=NAME),
    entry(N, "shift offset hard-coded to 1", NoisyShiftOffsetOne,
          "draws the shift as 2 * shift * u - 1 (offset 1, not shift): right only for shift=1; "
          "for shift=0.5 it lies in [-1, 0]", replaces=NAME),
    entry(N, "rand(C, 2) unpacked along the channels", NoisyDrawUnpacked,
          "draws torch.rand(C, 2) and unpacks it into (u, v) along the first axis (the channels): "
          "a ValueError unless C == 2 (torch.rand(2, C) was meant)", replaces=NAME),
    right(N, "rand_like of a buffer, in-place mul_/add_ on the output", NoisyInPlaceRandLike,
          replaces=NAME),
    # gradient_change
    entry(G, "cosine row by row, averaged", gc_row_cosine,
          "F.cosine_similarity(g, g2) without flattening uses dim=1: one cosine per row of the "
          "weight gradient, averaged, instead of the cosine of the flattened matrices"),
    entry(G, "model restored from a state_dict that was not cloned", gc_state_dict_not_cloned,
          "works on the caller's model and restores it from model.state_dict() taken without "
          "cloning: the saved tensors are the parameters and buffers themselves, so the step (and "
          "batch norm's buffer updates) stay in the model"),
    entry(G, "SGD with weight decay from the training code", gc_weight_decay,
          "steps the earlier layers with torch.optim.SGD(..., weight_decay=5e-4) copied from the "
          "training loop, so the step is not the plain -lr * grad"),
    entry(G, "caller's model switched to eval and then to train", gc_eval_and_back,
          "puts the caller's model in eval mode before copying (to protect batch norm's buffers), "
          "so both gradients are taken in eval mode, then calls model.train(): a training-mode model "
          "is measured in eval mode and an eval-mode model is left in training mode"),
    entry(G, "second gradient taken as the weights (.grad forgotten)", gc_weights_not_grad,
          "takes G' as work[index].weight (the weights themselves, .grad forgotten), so distance "
          "and cosine compare the gradient with the weights"),
    entry(G, "0-d NumPy arrays returned", gc_numpy_scalars,
          "returns .detach().numpy() of the 0-d tensors: 0-d NumPy arrays, not the Python floats "
          "asked for (.item())"),
    right(G, "_foreach_add_ step, torch.dist and a hand-written cosine", gc_foreach_dist),
    # landscape_probe
    entry(L, "gradient change against the previous point's gradient", lp_previous_point,
          "measures each gradient change against the gradient at the previous step size's point "
          "instead of against g at w (only the first step size is right)"),
    entry(L, "loss recorded before each step", lp_loss_before_step,
          "appends the loss computed before each step, i.e. the previous point's loss (L(w) "
          "first), while the gradient change is taken at the new point"),
    entry(L, "inputs cast to float32", lp_float32_inputs,
          "casts x to float32 (x.float()), which raises a dtype error for a float64 model "
          "(and would lose precision in a float64 setting)"),
    entry(L, "nn.Linear parameters only", lp_linear_only,
          "steps and measures the nn.Linear layers' parameters only: batch norm's weight and bias "
          "are neither moved along g nor part of the gradient vectors"),
    entry(L, "copy switched to training mode", lp_train_copy,
          "calls .train() on the copy, so an eval-mode model is probed with batch statistics (and "
          "a different loss and gradient) instead of in its own mode"),
    entry(L, "losses from the first-order Taylor expansion", lp_taylor_losses,
          "reports the first-order prediction L(w) - eta * ||g||^2 as the loss at w - eta * g "
          "instead of evaluating the loss there"),
    right(L, "loss under no_grad, gradient from a second forward (autograd.grad)", lp_two_forwards),
]
