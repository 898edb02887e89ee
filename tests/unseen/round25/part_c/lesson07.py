"""Held-out answers (twenty-fifth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written blind from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names and
causes (rounds 2 to 24), so as to differ from them; each wrong entry has one
mistake."""

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


class NoisyOutputFloat(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        out = out.float()  # activations in float, the usual habit
        shift = (2 * torch.rand(c) - 1) * self.shift
        scale = 1 + torch.rand(c) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftInGammaUnits(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift * self.weight  # the shift in units of gamma


class NoisySkipWhenNoShift(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training or not self.shift:  # no shift: no noise to add
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyScaleBelowOne(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (1 - self.spread)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftPrecedence(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = 2 * torch.rand(c, dtype=dtype) - 1 * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyRowVectors(_Base):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(1, c, dtype=dtype) - 1) * self.shift  # (1, C): broadcasts over the batch
        scale = 1 + torch.rand(1, c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyViewAnyRank(_Base):
    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = self.num_features
            shift = self.shift * (torch.rand(c, dtype=out.dtype) * 2 - 1)
            scale = torch.rand(c, dtype=out.dtype) * (self.spread - 1) + 1
            self.last_noise = (shift, scale)
            view = (1, c) + (1,) * (out.dim() - 2)
            out = torch.addcmul(shift.view(view), out, scale.view(view))
        return out


# ---- gradient_change -----------------------------------------------------------------




def gc_l1_distance(model, x, y, index, lr):
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
    return torch.dist(g, g2, 1).item(), cosine.item()


def gc_sign_step(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad.sign()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_index_among_linears(model, x, y, index, lr):
    work = copy.deepcopy(model)
    positions = [i for i, m in enumerate(work) if isinstance(m, nn.Linear)]
    at = positions[index]  # the index-th linear layer
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[at].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:at]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[at].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_second_pass_eval(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.eval()  # the step is done: now just measure
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


# ---- landscape_probe -------------------------------------------------------------------


def lp_sorted(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in sorted(step_sizes):  # from the smallest step outwards
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_change_per_eta(model, x, y, step_sizes):
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
        change = (g - torch.cat([p.grad.flatten() for p in params])).norm().item()
        changes.append(change / eta)  # change per unit of step
    return losses, changes


def lp_shared_list(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses = changes = []
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


def lp_loss_change(model, x, y, step_sizes):
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
        losses.append(loss.item() - loss0.item())  # how much the loss moved
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_functional_call(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    names = [n for n, _ in work.named_parameters()]
    w0 = {n: p.detach().clone() for n, p in work.named_parameters()}

    def loss_and_grad(weights):
        leaves = {n: w.clone().requires_grad_(True) for n, w in weights.items()}
        loss = F.cross_entropy(torch.func.functional_call(work, leaves, (x,)), y)
        return loss, torch.autograd.grad(loss, [leaves[n] for n in names])

    _, g = loss_and_grad(w0)
    losses, changes = [], []
    for eta in step_sizes:
        point = {n: w0[n] - eta * d for n, d in zip(names, g)}
        loss, h = loss_and_grad(point)
        losses.append(float(loss))
        changes.append(float(sum(((a - b) ** 2).sum() for a, b in zip(g, h)) ** 0.5))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 6 wrong, 1 correct
    entry(N, "training output cast to float32", NoisyOutputFloat,
          "casts the batch-norm output to float32 (.float()) before adding the noise, so a float64 "
          "(or bfloat16) layer returns float32 in training mode instead of keeping its dtype.",
          replaces=NAME),
    entry(N, "shift multiplied by gamma", NoisyShiftInGammaUnits,
          "adds shift * self.weight (the shift in units of gamma) instead of the drawn shift itself, "
          "so the output is not out * scale + shift once gamma is not 1.", replaces=NAME),
    entry(N, "noise skipped when shift is 0", NoisySkipWhenNoShift,
          "returns plain batch norm whenever shift is 0, though the scale noise (spread > 1) must "
          "still be drawn and applied.", replaces=NAME),
    entry(N, "scale factor (1 - spread) instead of (spread - 1)", NoisyScaleBelowOne,
          "draws the scale as 1 + u * (1 - spread), on [2 - spread, 1], instead of 1 + u * (spread - 1) "
          "on [1, spread].", replaces=NAME),
    entry(N, "shift written 2u - 1 * shift (parentheses missing)", NoisyShiftPrecedence,
          "writes the shift as 2 * u - 1 * shift without parentheses, so it lies on "
          "[-shift, 2 - shift] instead of [-shift, shift] (right only for shift = 1).", replaces=NAME),
    entry(N, "noise drawn as (1, C) rows", NoisyRowVectors,
          "draws shift and scale with shape (1, C) instead of (C,), so last_noise holds (1, C) rows "
          "instead of one value per channel in a (C,) vector (the output itself is right).",
          replaces=NAME),
    right(N, "noise viewed as (1, C, 1...) for any rank, addcmul(shift, out, scale)",
          NoisyViewAnyRank, replaces=NAME),
    # gradient_change: 4 wrong
    entry(G, "distance by torch.dist(g, g2, 1)", gc_l1_distance,
          "passes 1 as torch.dist's p, so the distance is the L1 norm (sum of absolute differences) "
          "instead of the Euclidean norm ||G - G'||."),
    entry(G, "earlier layers stepped by lr * sign(grad)", gc_sign_step,
          "steps the earlier layers by lr * p.grad.sign() (a signSGD habit) instead of lr * p.grad."),
    entry(G, "index taken as the index-th linear layer", gc_index_among_linears,
          "reads index as a count of linear layers (positions[index]) instead of the position of "
          "the layer in the model, so another layer is measured and other layers are stepped."),
    entry(G, "copy put in eval mode for the second gradient only", gc_second_pass_eval,
          "switches the copy to eval mode after the step, so G' is taken with running statistics "
          "while G was taken in the model's (training) mode."),
    # landscape_probe: 4 wrong, 1 correct
    entry(L, "step sizes walked in sorted order", lp_sorted,
          "loops over sorted(step_sizes), so for step sizes not given in increasing order the "
          "returned losses and changes are not in the caller's order."),
    entry(L, "gradient change divided by eta", lp_change_per_eta,
          "divides each gradient change by its step size eta (a change per unit step) instead of "
          "returning ||g - g'|| itself (and fails at eta = 0)."),
    entry(L, "losses = changes = [] (one list)", lp_shared_list,
          "creates the two lists with losses = changes = [], which binds both names to the same "
          "list, so the losses and changes are appended to one list and both returned values are "
          "that interleaved list."),
    entry(L, "loss change L(w - eta g) - L(w) returned", lp_loss_change,
          "returns the loss change L(w - eta g) - L(w) at each point instead of the loss "
          "L(w - eta g) itself."),
    right(L, "torch.func.functional_call on the copy with fresh leaves per point, "
             "autograd.grad, norm from summed squares", lp_functional_call),
]
