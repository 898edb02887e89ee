"""Held-out answers (twelfth set, part c), lesson 07: NoisyBatchNorm,
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

    def _draw(self, dtype):
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        return shift, scale


class NoiseReturnedToo(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self._draw(out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift, (shift, scale)  # the noise, for the plots


class DividedByScale(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self._draw(out.dtype)
        self.last_noise = (shift, scale)
        return out / scale + shift


class InputDetached(_Base):
    def forward(self, x):
        out = super().forward(x.detach())  # the noise is not part of the model
        if not self.training:
            return out
        shift, scale = self._draw(out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class EvalReturnForgotten(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            out
        shift, scale = self._draw(out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class RequiresGradAsMode(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not x.requires_grad:  # no gradient wanted: evaluation
            return out
        shift, scale = self._draw(out.dtype)
        self.last_noise = (shift, scale)
        return out * scale + shift


class InPlaceNoise(_Base):
    """Correct: the noise applied to batch norm's fresh output in place
    (native batch norm's backward does not need its output)."""

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            shift = torch.empty(self.num_features, dtype=out.dtype).uniform_(-self.shift, self.shift)
            scale = torch.empty(self.num_features, dtype=out.dtype).uniform_(1.0, self.spread)
            self.last_noise = (shift, scale)
            out.mul_(scale).add_(shift)
        return out


# ---- gradient_change ---------------------------------------------------------------


def _result(g, g2):
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_second_pass_caller(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g2 = model[index].weight.grad
    return _result(g, g2)


def gc_clipped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    earlier = [p for layer in work[:index] for p in layer.parameters()]
    torch.nn.utils.clip_grad_norm_(earlier, 1.0)  # as in the training loop
    with torch.no_grad():
        for p in earlier:
            p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    return _result(g, work[index].weight.grad)


def gc_alpha_sign(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p.add_(p.grad, alpha=lr)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    return _result(g, work[index].weight.grad)


def gc_norm_dim1(model, x, y, index, lr):
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
    return torch.norm(g - g2, dim=1).item(), cosine.item()


def gc_sgd_optimizer(model, x, y, index, lr):
    """Correct: the earlier layers stepped by a plain torch.optim.SGD over
    work[:index]'s parameters; distance by torch.dist."""
    work = copy.deepcopy(model)
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad.detach()
    cos = torch.dot(g.flatten(), g2.flatten()) / (g.norm() * g2.norm())
    return float(torch.dist(g, g2)), float(cos)


# ---- landscape_probe ---------------------------------------------------------------


def _start(model, x, y):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    return work, params, start, grads


def _point(work, x, y, params, g):
    work.zero_grad()
    loss = F.cross_entropy(work(x), y)
    loss.backward()
    return loss.item(), (g - torch.cat([p.grad.flatten() for p in params])).norm().item()


def lp_zip_order(model, x, y, step_sizes):
    work, params, start, grads = _start(model, x, y)
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, d, p0 in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        loss, change = _point(work, x, y, params, g)
        losses.append(loss)
        changes.append(change)
    return losses, changes


def lp_return_in_loop(model, x, y, step_sizes):
    work, params, start, grads = _start(model, x, y)
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        loss, change = _point(work, x, y, params, g)
        losses.append(loss)
        changes.append(change)
        return losses, changes


def lp_mul_in_place(model, x, y, step_sizes):
    work, params, start, grads = _start(model, x, y)
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - d.mul_(eta))  # no temporary
        loss, change = _point(work, x, y, params, g)
        losses.append(loss)
        changes.append(change)
    return losses, changes


def lp_pairs(model, x, y, step_sizes):
    work, params, start, grads = _start(model, x, y)
    g = torch.cat([d.flatten() for d in grads])
    points = []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        points.append(_point(work, x, y, params, g))
    return points  # (loss, change) for each eta


def lp_zeroed_before_clone(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    F.cross_entropy(work(x), y).backward()
    work.zero_grad(set_to_none=False)  # clean slate for the probes
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        loss, change = _point(work, x, y, params, g)
        losses.append(loss)
        changes.append(change)
    return losses, changes


def lp_fresh_copy_sgd(model, x, y, step_sizes):
    """Correct: a fresh copy of the model for every step size, stepped once by
    torch.optim.SGD(lr=eta) from its own gradient at w."""
    base = copy.deepcopy(model)
    base.zero_grad()
    F.cross_entropy(base(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in base.parameters()]).detach()
    losses, changes = [], []
    grads = [p.grad.detach().clone() for p in base.parameters()]
    for eta in step_sizes:
        work = copy.deepcopy(base)  # deepcopy does not carry .grad: set it
        for p, d in zip(work.parameters(), grads):
            p.grad = d.clone()
        torch.optim.SGD(work.parameters(), lr=eta).step()
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        g2 = torch.cat([p.grad.reshape(-1) for p in work.parameters()])
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(g - g2)))
    return losses, changes


ENTRIES = [
    entry(N, "noise returned beside the output", NoiseReturnedToo,
          "in training mode returns a tuple (output, (shift, scale)) instead of the output tensor.",
          replaces=NAME),
    entry(N, "output divided by the scale", DividedByScale,
          "applies out / scale + shift instead of out * scale + shift, so the scale factor lies "
          "in [1/spread, 1].", replaces=NAME),
    entry(N, "input detached before batch norm", InputDetached,
          "calls super().forward(x.detach()), so no gradient flows back to the layer's input "
          "(the layers before it stop learning).", replaces=NAME),
    entry(N, "return missing in the eval branch", EvalReturnForgotten,
          "writes `out` instead of `return out` in the eval branch, so eval mode also adds noise "
          "(and overwrites last_noise).", replaces=NAME),
    entry(N, "x.requires_grad as the training flag", RequiresGradAsMode,
          "decides between training and eval by x.requires_grad instead of self.training: a "
          "training-mode call on an input that does not require grad gets no noise, and an "
          "eval-mode call on one that does gets noise.", replaces=NAME),
    entry(G, "second pass through the caller's model", gc_second_pass_caller,
          "computes G' with model (the caller's, unstepped) instead of the stepped copy, so G' is "
          "G again (distance 0, cosine 1) and the caller's model gets gradients."),
    entry(G, "gradients clipped to norm 1 before the step", gc_clipped,
          "clips the earlier layers' gradients to total norm 1 (copied from the training code) "
          "before the step, so the step is not lr * gradient."),
    entry(G, "step with add_(grad, alpha=lr)", gc_alpha_sign,
          "steps with p.add_(p.grad, alpha=lr), i.e. p + lr * grad (uphill), instead of "
          "p - lr * grad."),
    entry(G, "norm over dim 1", gc_norm_dim1,
          "computes the distance as torch.norm(g - g2, dim=1) (one norm per row), whose .item() "
          "raises on a layer with more than one output, instead of the norm of the whole difference."),
    entry(L, "zip order: start and grads swapped", lp_zip_order,
          "unpacks zip(params, start, grads) as (p, d, p0), so the points are g - eta * w instead "
          "of w - eta * g."),
    entry(L, "return inside the loop", lp_return_in_loop,
          "has the return statement indented inside the loop, so only the first step size is "
          "probed (lists of length 1)."),
    entry(L, "step computed with d.mul_(eta)", lp_mul_in_place,
          "computes eta * d as d.mul_(eta) in place, so the stored gradient is scaled again at "
          "every step size: the k-th point is w - (eta_1 ... eta_k) g."),
    entry(L, "(loss, change) pairs returned", lp_pairs,
          "returns one list of (loss, change) pairs instead of the two lists (losses, changes)."),
    entry(L, "gradients zeroed before they are cloned", lp_zeroed_before_clone,
          "calls work.zero_grad(set_to_none=False) after the first backward and before cloning "
          "the gradients, so g is all zeros: every point is w itself and the changes are ||g'||."),
    right(N, "output changed in place, uniform_ bounds", InPlaceNoise, replaces=NAME),
    right(G, "torch.optim.SGD over work[:index], torch.dist", gc_sgd_optimizer),
    right(L, "fresh copy per step size, SGD(lr=eta).step()", lp_fresh_copy_sgd),
]
