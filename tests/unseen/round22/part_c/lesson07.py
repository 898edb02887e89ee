"""Held-out answers (twenty-second set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names and
causes (rounds 2 to 21), so as to differ from them; each wrong entry has one
mistake."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyAddcmulOrder(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
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
        return torch.addcmul(out, shift, scale)  # out * scale + shift in one fused op


class NoisyEvalDefaultEps(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training and self.track_running_stats:
            # eval mode: plain batch norm with the running statistics
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias)
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyNoiseExpanded(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
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
        shift, scale = shift.expand_as(out), scale.expand_as(out)  # broadcast made explicit
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyAffineTwice(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.affine:
            out = out * self.weight + self.bias  # gamma and beta on the normalised x
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyWeightBiasSwapped(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        out = F.batch_norm(x, self.running_mean, self.running_var, self.bias, self.weight,
                           True, 0.0 if momentum is None else momentum, self.eps)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisySignedShift(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = self.num_features
            scale = torch.empty(c, dtype=out.dtype).uniform_(1.0, float(self.spread))
            # |shift| uniform on [0, shift] with a fair random sign: uniform on [-shift, shift]
            sign = torch.randint(0, 2, (c,)).to(out.dtype) * 2 - 1
            shift = self.shift * torch.rand(c, dtype=out.dtype) * sign
            self.last_noise = (shift, scale)
            out = torch.addcmul(shift, out, scale)
        return out


# ---- gradient_change -----------------------------------------------------------------


def gc_cached_layer_input(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    h = work[:index](x)  # the measured layer's input
    F.cross_entropy(work[index:](h), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work[index:](h.detach()), y).backward()  # from the measured layer on
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_stop_at_same_shape(model, x, y, index, lr):
    work = copy.deepcopy(model)
    target = work[index].weight
    earlier = []
    for p in work.parameters():  # parameters come in layer order
        if p.shape == target.shape:  # reached the measured layer
            break
        earlier.append(p)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = target.grad.clone()
    with torch.no_grad():
        for p in earlier:
            p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = target.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_lr_in_loss(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    (lr * F.cross_entropy(work(x), y)).backward()  # .grad is now the SGD step itself
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= p.grad
    work.zero_grad()
    (lr * F.cross_entropy(work(x), y)).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_trace_no_transpose(model, x, y, index, lr):
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
    inner = torch.trace(g @ g2)  # <G, G'>
    cosine = inner / (g.norm() * g2.norm())
    return (g - g2).norm().item(), cosine.item()


def gc_walk_to_measured_weight(model, x, y, index, lr):
    work = copy.deepcopy(model)
    measured = work[index].weight
    earlier = []
    for p in work.parameters():
        if p is measured:
            break
        earlier.append(p)

    def loss():
        return F.cross_entropy(F.log_softmax(work(x), dim=1), y)  # log-probabilities in

    work.zero_grad()
    loss().backward()
    g = measured.grad.detach().clone()
    for p in earlier:
        p.detach().sub_(lr * p.grad)  # in place on the parameter's storage
    work.zero_grad()
    loss().backward()
    g2 = measured.grad.detach()
    distance = torch.linalg.vector_norm(g - g2)
    cosine = (g * g2).sum() / (torch.linalg.vector_norm(g) * torch.linalg.vector_norm(g2))
    return float(distance), float(cosine)


# ---- landscape_probe -------------------------------------------------------------------


def lp_g_column(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.reshape(-1, 1) for d in grads])  # the gradient as a column vector
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


def lp_backward_ones(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    per_example = F.cross_entropy(work(x), y, reduction="none")
    per_example.backward(torch.ones_like(per_example))  # backward of a non-scalar
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        per_example = F.cross_entropy(work(x), y, reduction="none")
        per_example.backward(torch.ones_like(per_example))
        losses.append(per_example.mean().item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def _regularised_loss(model, x, y, weight_decay=5e-4):
    penalty = sum((p ** 2).sum() for p in model.parameters())
    return F.cross_entropy(model(x), y) + 0.5 * weight_decay * penalty


def lp_l2_penalty(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    _regularised_loss(work, x, y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = _regularised_loss(work, x, y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def _mean_cross_entropy(out, y):
    return F.cross_entropy(out, y, reduction="sum") / 256  # mean over the probe batch


def lp_batch_of_256(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    _mean_cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = _mean_cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_diff_alias(model, x, y, step_sizes):
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
        new = torch.cat([p.grad.flatten() for p in params])
        diff = g
        diff -= new
        changes.append(diff.norm().item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 5 wrong, 1 correct
    entry(N, "torch.addcmul(out, shift, scale): arguments in the wrong order", NoisyAddcmulOrder,
          "calls torch.addcmul(out, shift, scale), which computes out + shift * scale, instead of "
          "torch.addcmul(shift, out, scale) = out * scale + shift.", replaces=NAME),
    entry(N, "eval branch by F.batch_norm without eps", NoisyEvalDefaultEps,
          "writes eval mode as F.batch_norm(x, running_mean, running_var, weight, bias) without "
          "eps=self.eps, so a layer built with another eps uses F.batch_norm's default 1e-5 in eval "
          "mode.", replaces=NAME),
    entry(N, "noise expanded to the output's shape before being kept", NoisyNoiseExpanded,
          "expands shift and scale to the output's shape (N, C) with expand_as before storing them, so "
          "last_noise holds (N, C) tensors instead of the per-channel (C,) draws (the output is right).",
          replaces=NAME),
    entry(N, "gamma and beta applied again after super().forward", NoisyAffineTwice,
          "multiplies by self.weight and adds self.bias after super().forward(x), which has already "
          "applied them, so gamma and beta act twice, in both modes (invisible while weight is 1 and "
          "bias 0, as in a fresh layer).", replaces=NAME),
    entry(N, "F.batch_norm in training mode with weight and bias swapped", NoisyWeightBiasSwapped,
          "passes self.bias and self.weight to F.batch_norm in the wrong order (weight is its fourth "
          "argument, bias its fifth), so the training-mode output is x_hat * beta + gamma.",
          replaces=NAME),
    right(N, "shift as shift * u * random sign, scale by uniform_, addcmul(shift, out, scale)",
          NoisySignedShift, replaces=NAME),
    # gradient_change: 4 wrong, 1 correct
    entry(G, "measured layer's input computed once, reused after the step", gc_cached_layer_input,
          "computes the measured layer's input h = work[:index](x) once and, after stepping the "
          "earlier layers, runs only work[index:] on that old h.detach(), so G' is computed on the "
          "input from before the step: G' = G (distance 0, cosine 1) whatever the shift."),
    entry(G, "measured weight found by its shape", gc_stop_at_same_shape,
          "walks work.parameters() until one has the shape of work[index].weight, so an earlier "
          "layer of the same shape (the lesson's Linear(100, 100)s) ends the walk early and only "
          "the layers before that one are stepped."),
    entry(G, "learning rate folded into the loss", gc_lr_in_loss,
          "backpropagates lr * loss so that .grad is the SGD step, and then reads G and G' from "
          "those scaled gradients: the step is right but the distance is lr times too small (the "
          "cosine is right)."),
    entry(G, "inner product as trace(G @ G'), no transpose", gc_trace_no_transpose,
          "computes <G, G'> as trace(G @ G') instead of trace(G @ G'^T) (the sum of G * G'), which "
          "is not the Frobenius inner product: a wrong cosine for a square weight, an error for the "
          "others."),
    right(G, "earlier parameters walked up to the measured weight by identity, "
             "cross_entropy on log_softmax, p.detach().sub_ step", gc_walk_to_measured_weight),
    # landscape_probe: 5 wrong
    entry(L, "g kept as a column (n, 1), g' flat (n,)", lp_g_column,
          "builds g as a column vector (n, 1) but the new gradient flat (n,), so g - g' broadcasts to "
          "an (n, n) matrix and the reported change is the norm of that matrix."),
    entry(L, "per-example losses backpropagated with torch.ones_like", lp_backward_ones,
          "takes per-example losses (reduction='none') and backpropagates them with "
          "torch.ones_like, the gradient of their sum, while reporting their mean: g and g' are N "
          "times too large, so every point is N times too far along the gradient."),
    entry(L, "L2 weight-decay penalty added to the loss", lp_l2_penalty,
          "adds an L2 weight-decay term (5e-4 / 2 times the squared norm of every parameter) to the "
          "loss, a training habit, so the losses and both gradients are not the cross-entropy's."),
    entry(L, "mean cross-entropy as the sum divided by 256", lp_batch_of_256,
          "writes the mean cross-entropy as the sum divided by 256, the lesson's probe batch, instead "
          "of len(x): right only for batches of 256, otherwise the losses and gradients are "
          "len(x) / 256 times the true ones."),
    entry(L, "diff = g; diff -= g' (in place on g)", lp_diff_alias,
          "writes diff = g; diff -= g', and -= on a tensor is in place, so g itself becomes g - g': "
          "every change after the first step size is measured against a corrupted g."),
]
