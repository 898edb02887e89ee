"""Held-out answers (fourth set, part b), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class _Noisy(nn.BatchNorm1d):
    """A right implementation in a learner's style; each wrong entry changes one piece."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def draw(self, like):
        c = self.num_features
        shift = torch.empty(c, dtype=like.dtype).uniform_(-self.shift, self.shift)
        scale = torch.empty(c, dtype=like.dtype).uniform_(1.0, self.spread)
        return shift, scale

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self.draw(out)
        self.last_noise = (shift, scale)
        return out * scale + shift


class IntegerScale(_Noisy):
    def draw(self, like):
        c = self.num_features
        shift = torch.empty(c, dtype=like.dtype).uniform_(-self.shift, self.shift)
        scale = torch.randint(1, int(self.spread) + 1, (c,)).to(like.dtype)  # "between 1 and spread"
        return shift, scale


class NoiseAsRow(_Noisy):
    def draw(self, like):
        c = self.num_features
        shift = torch.empty(1, c, dtype=like.dtype).uniform_(-self.shift, self.shift)
        scale = torch.empty(1, c, dtype=like.dtype).uniform_(1.0, self.spread)
        return shift, scale


class SeededInForward(_Noisy):
    def draw(self, like):
        torch.manual_seed(0)  # "reproducible noise"
        return super().draw(like)


class TrainMethodAsFlag(_Noisy):
    def forward(self, x):
        out = nn.BatchNorm1d.forward(self, x)
        if not self.train:  # meant: self.training
            return out
        shift, scale = self.draw(out)
        self.last_noise = (shift, scale)
        return out * scale + shift


class FunctionalNoCounter(_Noisy):
    def forward(self, x):
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                           self.training, self.momentum, self.eps)
        if not self.training:
            return out
        shift, scale = self.draw(out)
        self.last_noise = (shift, scale)
        return out * scale + shift


class ExpectedScaleInEval(_Noisy):
    def forward(self, x):
        out = nn.BatchNorm1d.forward(self, x)
        if not self.training:
            return out * (1 + self.spread) / 2  # the noise's mean, as dropout rescales
        shift, scale = self.draw(out)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoiseIntoTheWeight(_Noisy):
    def forward(self, x):
        if not self.training:
            return nn.BatchNorm1d.forward(self, x)
        shift, scale = self.draw(x)
        self.last_noise = (shift, scale)
        with torch.no_grad():  # let batch norm's own affine map carry the noise
            self.weight.mul_(scale)
            self.bias.mul_(scale).add_(shift)
        return nn.BatchNorm1d.forward(self, x)


class ShiftPrecedence(_Noisy):
    def draw(self, like):
        c = self.num_features
        shift = 2 * torch.rand(c, dtype=like.dtype) - 1 * self.shift  # (2u - 1) * shift meant
        scale = 1 + torch.rand(c, dtype=like.dtype) * (self.spread - 1)
        return shift, scale


# ---- gradient_change ---------------------------------------------------------------


def _gc(model, x, y, index, lr, *, copier=copy.deepcopy, reduction="mean", mode=None, stepper="before",
        distance="l2", cosine="torch", zero_before_step=False):
    work = copier(model)
    if mode == "train":
        work.train()
    work.zero_grad()
    F.cross_entropy(work(x), y, reduction=reduction).backward()
    g = work[index].weight.grad.clone()
    if zero_before_step:
        work.zero_grad()
    if stepper == "sgd all":
        torch.optim.SGD(work.parameters(), lr=lr).step()
    else:
        with torch.no_grad():
            for layer in work[:index]:
                for p in layer.parameters():
                    if p.grad is not None:
                        p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y, reduction=reduction).backward()
    g2 = work[index].weight.grad
    if distance == "l1":
        dist = (g - g2).abs().sum().item()
    else:
        dist = (g - g2).norm().item()
    if cosine == "distance":
        cos = 1.0 - F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()  # "cosine", as scipy's
    elif cosine == "todo":
        cos = 0.0  # TODO
    else:
        cos = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return dist, cos


def gc_summed_loss(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, reduction="sum")


def gc_copy_put_in_train_mode(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, mode="train")


def gc_shallow_copy(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, copier=copy.copy)


def gc_sgd_on_every_layer(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, stepper="sgd all")


def gc_l1_distance(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, distance="l1")


def gc_cosine_distance(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, cosine="distance")


def gc_zeroed_before_step(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, zero_before_step=True)


def gc_cosine_todo(model, x, y, index, lr):
    return _gc(model, x, y, index, lr, cosine="todo")


# ---- landscape_probe ---------------------------------------------------------------


def _lp(model, x, y, step_sizes, *, clone_start=True, unit=False, no_grad_forward=False,
        squared=False, order=None, latest_grad=False):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() if clone_start else p.detach() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    if unit:
        grads = [d / g.norm() for d in grads]
    losses, changes = [], []
    etas = sorted(step_sizes) if order == "sorted" else step_sizes
    for eta in etas:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                step = p.grad if latest_grad else d
                p.copy_(p0 - eta * step)
        work.zero_grad()
        if no_grad_forward:
            with torch.no_grad():  # "no need to track the probe"
                loss = F.cross_entropy(work(x), y)
        else:
            loss = F.cross_entropy(work(x), y)
        loss.backward()
        g2 = torch.cat([p.grad.flatten() for p in params])
        change = ((g - g2) ** 2).sum() if squared else (g - g2).norm()
        losses.append(loss.item())
        changes.append(change.item())
    return losses, changes


def lp_start_not_cloned(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, clone_start=False)


def lp_unit_gradient(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, unit=True)


def lp_forward_under_no_grad(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, no_grad_forward=True)


def lp_squared_change(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, squared=True)


def lp_step_sizes_sorted(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, order="sorted")


def lp_latest_gradient(model, x, y, step_sizes):
    return _lp(model, x, y, step_sizes, latest_grad=True)


# ---- correct alternatives ----------------------------------------------------------


class NoisyDistributions(nn.BatchNorm1d):
    """Correct: noise from torch.distributions.Uniform, applied with torch.addcmul."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = self.num_features
            lo = torch.tensor([-float(self.shift), 1.0], dtype=torch.float64)
            hi = torch.tensor([float(self.shift), float(self.spread)], dtype=torch.float64)
            draw = torch.distributions.Uniform(lo, hi).sample((c,)).to(out.dtype)  # (C, 2)
            shift, scale = draw[:, 0].contiguous(), draw[:, 1].contiguous()
            self.last_noise = (shift, scale)
            out = torch.addcmul(shift.expand_as(out), out, scale.expand_as(out))
        return out


def gc_autograd_subset(model, x, y, index, lr):
    """Correct: gradients of the measured weight and of the earlier layers' parameters
    only (torch.autograd.grad), the step with sub_, the cosine in float64 by hand."""
    work = copy.deepcopy(model)
    target = work[index].weight
    before = [p for layer in list(work)[:index] for p in layer.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), [target, *before])
    first = grads[0].detach().clone()
    with torch.no_grad():
        for p, dp in zip(before, grads[1:]):
            p.sub_(dp, alpha=lr)
    (second,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    a, b = first.double().flatten(), second.double().flatten()
    cos = (a @ b) / torch.sqrt((a @ a) * (b @ b))
    return float(torch.linalg.vector_norm(first - second)), float(cos)


def lp_optimizer_per_step(model, x, y, step_sizes):
    """Correct: a fresh copy for each step size, stepped by torch.optim.SGD(lr=eta)."""
    losses, changes = [], []
    for eta in step_sizes:
        work = copy.deepcopy(model)
        opt = torch.optim.SGD(work.parameters(), lr=eta)
        opt.zero_grad()
        F.cross_entropy(work(x), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in work.parameters()]).clone()
        opt.step()
        opt.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        g2 = torch.cat([p.grad.reshape(-1) for p in work.parameters()])
        losses.append(loss.item())
        changes.append(torch.dist(g, g2).item())
    return losses, changes


ENTRIES = [
    entry(N, "integer scales from randint", IntegerScale,
          "draws the scale with torch.randint(1, spread + 1), so it takes only whole values (1 or 2 for "
          "spread 2) instead of a uniform draw from [1, spread].", replaces=NAME),
    entry(N, "noise of shape (1, C)", NoiseAsRow,
          "draws shift and scale with shape (1, C) instead of (C,): the output broadcasts right, but last_noise "
          "holds (1, C) tensors.", replaces=NAME),
    entry(N, "generator re-seeded in forward", SeededInForward,
          "calls torch.manual_seed(0) before every draw, so the same noise comes back at every call (and the "
          "global random state is reset).", replaces=NAME),
    entry(N, "self.train used as the mode flag", TrainMethodAsFlag,
          "tests `if not self.train:` (a bound method, always true) instead of `not self.training`, so eval mode "
          "adds noise too.", replaces=NAME),
    entry(N, "F.batch_norm without the batch counter", FunctionalNoCounter,
          "normalises with F.batch_norm on the module's buffers, which does not increment num_batches_tracked "
          "(super().forward does).", replaces=NAME),
    entry(N, "eval mode scaled by the noise's mean", ExpectedScaleInEval,
          "in eval mode multiplies the output by the mean scale (1 + spread) / 2, as dropout rescales, instead of "
          "returning plain batch norm.", replaces=NAME),
    entry(N, "noise folded into weight and bias in place", NoiseIntoTheWeight,
          "multiplies weight and bias by the noise in place (the parameters themselves), so the noise accumulates "
          "from call to call and the learned parameters are corrupted.", replaces=NAME),
    entry(N, "operator precedence in the shift", ShiftPrecedence,
          "writes 2 * u - 1 * shift instead of (2 * u - 1) * shift, so the shift is uniform in "
          "[-shift, 2 - shift]: right only for shift = 1.", replaces=NAME),
    entry(G, "summed loss", gc_summed_loss,
          "uses the summed cross-entropy (reduction='sum') instead of the mean, so both gradients are N times "
          "larger and the step of the earlier layers N times longer."),
    entry(G, "copy switched to training mode", gc_copy_put_in_train_mode,
          "calls work.train() on the copy, so a model in eval mode is measured with batch statistics instead of "
          "in its own mode."),
    entry(G, "shallow copy of the model", gc_shallow_copy,
          "copies the model with copy.copy (shallow), which shares the layers and parameters, so the step "
          "changes the given model."),
    entry(G, "SGD over every parameter", gc_sgd_on_every_layer,
          "steps torch.optim.SGD(work.parameters()) (every layer, the measured one and those after it included) "
          "instead of only the layers before index."),
    entry(G, "L1 distance", gc_l1_distance,
          "returns the sum of absolute differences |G - G'| (L1) instead of the Euclidean norm."),
    entry(G, "cosine distance", gc_cosine_distance,
          "returns the cosine distance 1 - cos (scipy's `cosine`) instead of the cosine."),
    entry(G, "gradients zeroed before the step", gc_zeroed_before_step,
          "calls zero_grad before stepping, so (with the None guard) no parameter moves and G' = G."),
    entry(G, "cosine left as a TODO", gc_cosine_todo,
          "unfinished: the cosine is returned as 0.0 (a TODO); the distance is right."),
    entry(L, "start weights not cloned", lp_start_not_cloned,
          "keeps the start weights as p.detach() (a view of the same storage), so copy_ moves w too and the steps "
          "accumulate: the k-th point is w - (eta_1 + ... + eta_k) g."),
    entry(L, "steps along the unit gradient", lp_unit_gradient,
          "steps to w - eta * g / ||g|| (a normalised direction) instead of w - eta * g."),
    entry(L, "probe forward under torch.no_grad", lp_forward_under_no_grad,
          "computes the loss at w - eta g under torch.no_grad(), so loss.backward() raises (no graph)."),
    entry(L, "squared gradient change", lp_squared_change,
          "returns ||g - g'||^2 instead of ||g - g'||."),
    entry(L, "step sizes sorted", lp_step_sizes_sorted,
          "iterates over sorted(step_sizes), so for step sizes not given in increasing order the results come "
          "back in another order than the step sizes."),
    entry(L, "steps along the latest gradient", lp_latest_gradient,
          "steps along p.grad (the gradient at the previous probe point after the first step size) instead of "
          "the saved gradient g at w."),
    right(N, "torch.distributions.Uniform and addcmul", NoisyDistributions, replaces=NAME),
    right(G, "autograd.grad on the measured and earlier parameters", gc_autograd_subset),
    right(L, "fresh copy and SGD(lr=eta) per step size", lp_optimizer_per_step),
]
