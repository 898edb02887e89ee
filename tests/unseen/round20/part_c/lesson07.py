"""Held-out answers (twentieth set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names
(rounds 2 to 19), so as to differ from them; each wrong entry has one mistake."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyThroughData(nn.BatchNorm1d):
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
        out.data.mul_(scale).add_(shift)  # through .data: the noise stays out of autograd
        return out


class NoisyBatchNorm2dBase(nn.BatchNorm2d):
    # the CNN habit: batch norm is BatchNorm2d
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
        return out * scale + shift


class NoisySpreadFirst(nn.BatchNorm1d):
    def __init__(self, num_features, spread=2.0, shift=1.0, **kwargs):
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


class NoisyScaleFromShift(nn.BatchNorm1d):
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
        scale = 1 + torch.rand(c, dtype=dtype) * (self.shift - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyEvalMeanVarSwapped(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:  # eval: plain batch norm with the running statistics
            return F.batch_norm(x, self.running_var, self.running_mean, self.weight, self.bias,
                                False, 0.0, self.eps)
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDiagLinear(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        u = torch.rand(c, dtype=dtype)
        v = torch.rand(c, dtype=dtype)
        shift = self.shift * (1 - 2 * u)
        scale = self.spread + (1 - self.spread) * v
        self.last_noise = (shift, scale)
        return F.linear(out, torch.diag(scale), shift)  # a diagonal affine map


# ---- gradient_change -----------------------------------------------------------------


def gc_restore_parameters_only(model, x, y, index, lr):
    saved = [p.detach().clone() for p in model.parameters()]  # put back at the end
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
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), saved):
            p.copy_(p0)
    model.zero_grad()
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_names_compared_as_strings(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for name, p in work.named_parameters():
            if name.split(".")[0] < str(index):  # the layers before index
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_vector_step(model, x, y, index, lr):
    work = copy.deepcopy(model)
    earlier = list(work[:index].parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        flat = torch.cat([p.flatten() for p in earlier])
        step = torch.cat([p.grad.flatten() for p in earlier])
        nn.utils.vector_to_parameters(flat - lr * step, earlier)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_cosine_default_dim(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g.flatten(), g2.flatten())
    return (g - g2).norm().item(), cosine.item()


def gc_eval_shortcut(model, x, y, index, lr):
    if not model.training:
        return 0.0, 1.0  # eval mode: batch norm's statistics are frozen, nothing can shift
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
    return (g - g2).norm().item(), cosine.item()


# ---- landscape_probe -------------------------------------------------------------------


def lp_start_from_state_dict(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [t.detach().clone() for t in work.state_dict().values()]
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
    return losses, changes


def lp_losses_in_eval_mode(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    mode = work.training
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
            work.eval()  # evaluate the loss as in a validation loop
            losses.append(F.cross_entropy(work(x), y).item())
            work.train(mode)
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_descent_direction(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    direction = [-p.grad.detach().clone() for p in params]  # the descent direction, -g
    d0 = torch.cat([d.flatten() for d in direction])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, direction):
                p.copy_(p0 + eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((d0 - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_zero_step_skipped(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        if eta == 0:
            continue  # no step, nothing to measure
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_flat_split(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = torch.cat([p.detach().flatten() for p in params]).clone()
    loss = F.cross_entropy(work(x), y)
    g = torch.cat([d.flatten() for d in torch.autograd.grad(loss, params)])
    sizes = [p.numel() for p in params]
    losses, changes = [], []
    for eta in step_sizes:
        point = torch.split(start - eta * g, sizes)
        with torch.no_grad():
            for p, chunk in zip(params, point):
                p.copy_(chunk.view_as(p))
        loss = F.cross_entropy(work(x), y)
        g2 = torch.cat([d.flatten() for d in torch.autograd.grad(loss, params)])
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(g2 - g)))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 5 wrong, 1 correct
    entry(N, "noise applied in place through out.data", NoisyThroughData,
          "applies the noise in place through out.data, which autograd does not see, so the values are "
          "right but the gradient through the layer is plain batch norm's, without the factor scale.",
          replaces=NAME),
    entry(N, "subclass of nn.BatchNorm2d", NoisyBatchNorm2dBase,
          "subclasses nn.BatchNorm2d (a CNN habit) instead of nn.BatchNorm1d, so the layer rejects the "
          "2-D (and 3-D) inputs that batch norm over features takes.", replaces=NAME),
    entry(N, "constructor's spread and shift in the wrong order", NoisySpreadFirst,
          "declares __init__(num_features, spread=2.0, shift=1.0), the two noise arguments in the wrong "
          "order, so positional arguments NoisyBatchNorm(C, shift, spread) set the shift from the spread "
          "and the spread from the shift.", replaces=NAME),
    entry(N, "scale's range typed with self.shift", NoisyScaleFromShift,
          "types self.shift instead of self.spread in the scale, so the scale is drawn from [1, shift] "
          "(always 1 at the default shift 1.0) instead of [1, spread].", replaces=NAME),
    entry(N, "eval branch: F.batch_norm with running mean and variance swapped", NoisyEvalMeanVarSwapped,
          "writes eval mode as F.batch_norm(x, running_var, running_mean, ...), the mean and variance in "
          "the wrong order, so eval mode subtracts the running variance and divides by the square root "
          "of the running mean.", replaces=NAME),
    right(N, "shift from 1 - 2u, scale from spread + (1 - spread) v, applied by F.linear(diag)",
          NoisyDiagLinear, replaces=NAME),
    # gradient_change: 5 wrong
    entry(G, "caller's model used, parameters restored, buffers not", gc_restore_parameters_only,
          "works on the caller's model and restores only its parameters afterwards, so in training mode "
          "the two forward passes leave batch norm's running statistics (and counter) changed."),
    entry(G, "layers before index chosen by comparing name strings", gc_names_compared_as_strings,
          "picks the layers to step with name.split('.')[0] < str(index), a string comparison, so layers "
          "numbered 10 and up (e.g. '12' < '6') are stepped too when the model has ten or more entries."),
    entry(G, "earlier layers stepped as one flat vector", gc_vector_step,
          "steps the earlier layers as one concatenated vector, which fails for index 0 (no earlier "
          "parameters: torch.cat of an empty list) where the answer is G' = G."),
    entry(G, "cosine_similarity on flat vectors with its default dim=1", gc_cosine_default_dim,
          "calls F.cosine_similarity on the flattened gradients without dim=0, and its default dim=1 does "
          "not exist for 1-D tensors, so the call raises."),
    entry(G, "eval mode short-cut to (0.0, 1.0)", gc_eval_shortcut,
          "returns (0.0, 1.0) without measuring when the model is in eval mode (thinking nothing can "
          "shift with frozen statistics), although stepping the earlier layers changes layer index's "
          "inputs and gradient in eval mode too."),
    # landscape_probe: 4 wrong, 1 correct
    entry(L, "start weights from state_dict().values(), buffers included", lp_start_from_state_dict,
          "takes the start weights from state_dict().values(), which hold batch norm's buffers between "
          "the parameters, and zips them with parameters(), so after the first batch norm every "
          "parameter is reset from the wrong tensor."),
    entry(L, "losses read in eval mode under no_grad", lp_losses_in_eval_mode,
          "reads each loss in eval mode under torch.no_grad (a validation-loop habit) while the gradient "
          "is taken in the model's own mode, so for a model in training mode the losses use batch "
          "norm's running statistics instead of the batch's."),
    entry(L, "descent direction -g kept, change measured against it", lp_descent_direction,
          "keeps the descent direction d = -g (an optimiser habit), steps right with w + eta d, but "
          "measures the change as |d - g'| = |g + g'| instead of |g' - g|."),
    entry(L, "step size 0 skipped", lp_zero_step_skipped,
          "skips a step size of 0 (no step, nothing to measure) instead of reporting the loss at w and a "
          "change of 0, so the lists are shorter than step_sizes and misaligned with it."),
    right(L, "one flat start and g, split by numel and viewed back, autograd.grad", lp_flat_split),
]
