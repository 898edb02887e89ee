"""Held-out answers (twenty-fourth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written blind from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names and
causes (rounds 2 to 23), so as to differ from them; each wrong entry has one
mistake."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyBnTrainingFlag(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        # the same flag as _BatchNorm.forward: batch statistics are in use
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        if not bn_training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyFBatchNormEpsMomentum(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                           True, self.eps, self.momentum)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftInStd(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        # "moves by up to one standard deviation": the shift in units of the output's std
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift * out.std(0)
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyMaxShiftName(nn.BatchNorm1d):
    def __init__(self, num_features, max_shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.max_shift, self.spread = max_shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.max_shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDefaultsSwapped(nn.BatchNorm1d):
    def __init__(self, num_features, shift=2.0, spread=1.0, **kwargs):
        super().__init__(num_features, **kwargs)
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


class NoisyEinsum(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            u = out.new_empty(2, self.num_features).uniform_()
            shift = self.shift * (1 - 2 * u[0])
            scale = self.spread + (1 - self.spread) * u[1]
            self.last_noise = (shift, scale)
            out = torch.einsum("nc...,c->nc...", out, scale) + shift
        return out


# ---- gradient_change -----------------------------------------------------------------


def gc_cosine_sum_of_norms(model, x, y, index, lr):
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
    cosine = (g * g2).sum() / (g.norm() + g2.norm())
    return (g - g2).norm().item(), cosine.item()


def gc_frozen_after_backward(model, x, y, index, lr):
    work = copy.deepcopy(model)
    opt = torch.optim.SGD(work.parameters(), lr=lr)
    opt.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    work[index:].requires_grad_(False)  # freeze the measured layer and the ones after it
    opt.step()
    work[index:].requires_grad_(True)
    opt.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_measured_layer_stepped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for p in work[index].parameters():
            p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_ignore_index(model, x, y, index, lr):
    work = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    work.zero_grad()
    loss_fn(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    loss_fn(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_opt_zero_grad(model, x, y, index, lr):
    work = copy.deepcopy(model)
    earlier = [p for layer in work[:index] for p in layer.parameters()]
    opt = torch.optim.SGD(earlier, lr=lr) if earlier else None
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    if opt is not None:
        opt.step()
        opt.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


# ---- landscape_probe -----------------------------------------------------------------


def lp_gradient_in_training_mode(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    mode = work.training
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.train()  # the gradient as the optimiser sees it, in training mode
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
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_bn_recalibrated(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    mode = work.training
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
            # new weights: refresh batch norm's statistics before measuring
            work.train()
            work(x)
            work.train(mode)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_tensor_norms(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.stack([d.norm() for d in grads])  # one number per parameter tensor
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.stack([p.grad.norm() for p in params])).norm().item())
    return losses, changes


def lp_layerwise_unit_step(model, x, y, step_sizes):
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
                p.copy_(p0 - eta * d / (d.norm() + 1e-12))  # layer-wise step, as in LARS
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_state_reload(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    saved = copy.deepcopy(work.state_dict())
    named = dict(work.named_parameters())
    loss = F.cross_entropy(work(x), y)
    g_parts = torch.autograd.grad(loss, list(named.values()))
    step = dict(zip(named, (d.detach() for d in g_parts)))
    losses, changes = [], []
    for eta in step_sizes:
        work.load_state_dict(saved)
        with torch.no_grad():
            for name, p in work.named_parameters():
                p.sub_(step[name], alpha=eta)
        loss = F.cross_entropy(work(x), y)
        new = torch.autograd.grad(loss, [p for _, p in work.named_parameters()])
        sq = sum(((a - step[n]) ** 2).sum() for n, a in zip(named, new))
        losses.append(float(loss))
        changes.append(float(torch.sqrt(sq)))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 5 wrong, 1 correct
    entry(N, "mode flag copied from _BatchNorm.forward's bn_training", NoisyBnTrainingFlag,
          "uses PyTorch's bn_training (training or no running statistics) as the noise flag, so a "
          "layer built with track_running_stats=False keeps adding noise in eval mode instead of "
          "being plain batch norm there.", replaces=NAME),
    entry(N, "F.batch_norm given eps and momentum in each other's place",
          NoisyFBatchNormEpsMomentum,
          "calls F.batch_norm(..., True, self.eps, self.momentum) while its order is (training, "
          "momentum, eps), so the running statistics move by 1e-5 per step instead of 0.1 and "
          "the output is normalised with eps = 0.1.", replaces=NAME),
    entry(N, "shift multiplied by the output's standard deviation", NoisyShiftInStd,
          "multiplies the drawn shift by out.std(0), the batch's (differentiable) standard "
          "deviation, so the shift depends on the data, carries gradient into the input and can "
          "leave [-shift, shift], instead of being a constant drawn from that range.",
          replaces=NAME),
    entry(N, "constructor argument named max_shift instead of shift", NoisyMaxShiftName,
          "names the constructor's shift argument max_shift, so NoisyBatchNorm(c, shift=...) "
          "passes shift on through **kwargs to nn.BatchNorm1d, which raises TypeError.",
          replaces=NAME),
    entry(N, "default values swapped: shift=2.0, spread=1.0", NoisyDefaultsSwapped,
          "gives the constructor the defaults shift=2.0 and spread=1.0 instead of shift=1.0 and "
          "spread=2.0, so a layer built with the defaults never scales (scale always 1) and "
          "shifts by up to 2.", replaces=NAME),
    right(N, "one (2, C) uniform_ draw, shift as shift(1 - 2u), scale as spread + (1 - spread)v, "
             "applied by einsum", NoisyEinsum, replaces=NAME),
    # gradient_change: 5 wrong
    entry(G, "cosine divided by the sum of the norms", gc_cosine_sum_of_norms,
          "divides the inner product <G, G'> by |G| + |G'| instead of |G| * |G'|, so the cosine "
          "is not the cosine (it scales with the gradients' size)."),
    entry(G, "SGD over every parameter, later layers frozen with requires_grad_(False) after "
             "the backward", gc_frozen_after_backward,
          "builds SGD over all parameters and freezes work[index:] with requires_grad_(False) "
          "after the backward pass, but the frozen parameters keep their .grad and SGD steps "
          "them anyway, so the measured layer and the ones after it move too."),
    entry(G, "work[index].parameters() stepped (colon of work[:index] missing)",
          gc_measured_layer_stepped,
          "steps the parameters of work[index], the measured layer itself, instead of the layers "
          "before it (work[:index]), so the earlier layers never move."),
    entry(G, "CrossEntropyLoss(ignore_index=0)", gc_ignore_index,
          "uses nn.CrossEntropyLoss(ignore_index=0), a padding habit, so every example of class "
          "0 is left out of the loss and both gradients are those of the other examples only."),
    entry(G, "opt.zero_grad() of the earlier layers' optimiser before the second backward",
          gc_opt_zero_grad,
          "clears the gradients with opt.zero_grad() of an SGD optimiser over the earlier layers "
          "only, which leaves the measured layer's gradient in place, so G' is G plus the new "
          "gradient."),
    # landscape_probe: 4 wrong, 1 correct
    entry(L, "g taken with the copy switched to training mode, points in the model's mode",
          lp_gradient_in_training_mode,
          "computes the starting gradient g with the copy in training mode (then puts the copy "
          "back in the model's mode), so for a model in eval mode g is the training-mode "
          "gradient (batch statistics) while the points are measured in eval mode: the model's "
          "mode must be kept throughout."),
    entry(L, "batch norm's statistics refreshed by a training-mode pass at each point",
          lp_bn_recalibrated,
          "runs a training-mode forward pass at each point w - eta * g to refresh batch norm's "
          "running statistics before measuring, so a model in eval mode is measured with "
          "statistics that are not its own (the running statistics of w must stay as they are)."),
    entry(L, "per-tensor gradient norms compared instead of the gradients", lp_tensor_norms,
          "reduces each gradient to the vector of its per-tensor norms and returns the distance "
          "between those vectors, not the norm of the difference of the full gradients, so "
          "changes of direction inside a tensor are not seen."),
    entry(L, "layer-wise unit step (each tensor's gradient normalised, as in LARS)",
          lp_layerwise_unit_step,
          "steps each parameter tensor by eta * d / |d| (its own gradient normalised, a LARS "
          "habit) instead of eta * d, so the points are not w - eta * g."),
    right(L, "state_dict deep-copied and reloaded per step size, autograd.grad by name, "
             "sub_(alpha=eta), norm from the sum of squares", lp_state_reload),
]
