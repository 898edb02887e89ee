"""Held-out answers (twenty-third set, part C), lesson 07: NoisyBatchNorm,
gradient_change, landscape_probe.  Written blind from solutions/07 only (exercise
cells, graded cells, lesson text) and a skim of earlier rounds' entry names and
causes (rounds 2 to 22), so as to differ from them; each wrong entry has one
mistake."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"

# ---- NoisyBatchNorm ----------------------------------------------------------------


class NoisyExplicitDefaults(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        # PyTorch's defaults written out, for readability; the rest passed on
        super().__init__(num_features, eps=1e-5, momentum=0.1, **kwargs)
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


class NoisyDefaultDtype(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = (2 * torch.rand(c) - 1) * self.shift
        scale = 1 + torch.rand(c) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyRangeAdded(nn.BatchNorm1d):
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
        return out * scale + self.shift


class NoisyEvalRunningOnly(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:
            # eval mode: plain batch norm with the running statistics
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyReturnsClean(nn.BatchNorm1d):
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
        noisy = out * scale + shift
        return out


# ---- gradient_change -----------------------------------------------------------------


def gc_grad_name_reused(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grad = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                grad = p.grad
                p -= lr * grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    new = work[index].weight.grad
    cosine = F.cosine_similarity(grad.flatten(), new.flatten(), dim=0)
    return (grad - new).norm().item(), cosine.item()


def gc_backward_inputs(model, x, y, index, lr):
    work = copy.deepcopy(model)
    weight = work[index].weight
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr) if index > 0 else None
    work.zero_grad()
    F.cross_entropy(work(x), y).backward(inputs=[weight])  # only the gradient measured
    g = weight.grad.clone()
    if opt is not None:
        opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward(inputs=[weight])
    g2 = weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_sgd_over_earlier(model, x, y, index, lr):
    work = copy.deepcopy(model)
    opt = torch.optim.SGD(work[:index].parameters(), lr=lr)  # the layers before index only
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_normalize_rows(model, x, y, index, lr):
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
    cosine = (F.normalize(g) * F.normalize(g2)).sum()  # <G/|G|, G'/|G'|>
    return (g - g2).norm().item(), cosine.item()


def gc_no_clone_set_to_none(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad(set_to_none=True)
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad  # no clone: zero_grad below drops .grad, it does not zero it
    earlier = [p for layer in work[:index] for p in layer.parameters()]
    with torch.no_grad():
        for p in earlier:
            p.sub_(p.grad, alpha=lr)
    work.zero_grad(set_to_none=True)
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    distance = torch.linalg.vector_norm(g - g2)
    cosine = torch.sum(g * g2) / torch.sqrt(torch.sum(g * g) * torch.sum(g2 * g2))
    return float(distance), float(cosine)


# ---- landscape_probe -------------------------------------------------------------------


def lp_zero_grad_caller(model, x, y, step_sizes):
    model.zero_grad()  # start clean: no stale gradients in the copy
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
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


def lp_offset_not_advanced(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    w = torch.cat([p.detach().flatten() for p in params])
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = torch.cat([p.grad.flatten() for p in params])
    losses, changes = [], []
    for eta in step_sizes:
        point = w - eta * g
        offset = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                p.copy_(point[offset:offset + n].view_as(p))
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_one_list_two_names(model, x, y, step_sizes):
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


def lp_new_gradient_pasted(model, x, y, step_sizes):
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
        g_new = torch.cat([d.flatten() for d in grads])
        changes.append((g - g_new).norm().item())
    return losses, changes


def lp_params_from_modules(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = [p for m in work.modules() for p in m.parameters()]  # every layer's parameters
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
    return losses, changes


def lp_start_from_caller(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach() for p in model.parameters()]  # the caller's model never moves: w
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), params)
    g = torch.cat([d.reshape(-1) for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(torch.add(p0, d, alpha=-eta))
        loss = F.cross_entropy(work(x), y)
        new = torch.autograd.grad(loss, params)
        losses.append(float(loss))
        changes.append(torch.linalg.vector_norm(g - torch.cat([d.reshape(-1) for d in new])).item())
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm: 5 wrong
    entry(N, "PyTorch's defaults eps=1e-5, momentum=0.1 written out beside **kwargs",
          NoisyExplicitDefaults,
          "passes eps=1e-5 and momentum=0.1 explicitly to nn.BatchNorm1d.__init__ as well as "
          "**kwargs, so a layer built with eps= or momentum= raises TypeError (multiple values "
          "for the same keyword argument).", replaces=NAME),
    entry(N, "noise drawn with torch.rand's default dtype", NoisyDefaultDtype,
          "draws shift and scale with torch.rand(c) and no dtype, i.e. in float32 whatever the "
          "layer's dtype, so a bfloat16 (or float16) layer returns a float32 training-mode "
          "output (and a float64 layer keeps float32 noise).", replaces=NAME),
    entry(N, "output shifted by self.shift (the range) instead of the drawn shift",
          NoisyRangeAdded,
          "returns out * scale + self.shift, the shift's range (1.0 by default), instead of the "
          "drawn shift, so every channel is shifted by the same constant while last_noise keeps "
          "the drawn shift.", replaces=NAME),
    entry(N, "eval branch by F.batch_norm on the running statistics only", NoisyEvalRunningOnly,
          "writes eval mode as F.batch_norm with the running statistics and training=False, which "
          "raises for a layer built with track_running_stats=False (no running statistics; "
          "plain batch norm uses the batch's statistics there).", replaces=NAME),
    entry(N, "noisy output computed, clean output returned", NoisyReturnsClean,
          "computes noisy = out * scale + shift but returns out, so the training-mode output has "
          "no noise while last_noise holds the noise that was drawn.", replaces=NAME),
    # gradient_change: 4 wrong, 1 correct
    entry(G, "name grad reused inside the step loop", gc_grad_name_reused,
          "stores G in a variable named grad and then writes grad = p.grad inside the loop that "
          "steps the earlier layers, so after the loop grad is the last earlier parameter's "
          "gradient, not G (right only for index 0)."),
    entry(G, "backward(inputs=[weight]) for both gradients", gc_backward_inputs,
          "restricts both backward passes to the measured weight (backward(inputs=[weight])), so "
          "the earlier layers get no gradient and the SGD step skips them: nothing moves and "
          "G' = G (distance 0, cosine 1)."),
    entry(G, "torch.optim.SGD over work[:index].parameters(), index 0 not handled",
          gc_sgd_over_earlier,
          "builds torch.optim.SGD(work[:index].parameters(), lr=lr), which raises ValueError "
          "(an empty parameter list) for index 0, where there are no earlier layers and the "
          "answer is G' = G (distance 0, cosine 1)."),
    entry(G, "cosine from F.normalize of the 2-D gradients (default dim=1)", gc_normalize_rows,
          "normalises the 2-D gradients with F.normalize, whose default dim=1 normalises each row, "
          "so the cosine is the sum of the rows' cosines (up to the number of output features) "
          "instead of the cosine of the whole matrices."),
    right(G, "G not cloned (zero_grad sets .grad to None), sub_(alpha=lr), vector_norm, "
             "cosine by sums", gc_no_clone_set_to_none),
    # landscape_probe: 5 wrong, 1 correct
    entry(L, "model.zero_grad() on the caller's model before copying", lp_zero_grad_caller,
          "calls model.zero_grad() on the caller's model (to copy it without stale gradients), "
          "which deletes the gradients the caller holds, e.g. between a training loop's "
          "backward and its optimiser step; the values returned are right."),
    entry(L, "flat w - eta g cut into parameters, offset never advanced", lp_offset_not_advanced,
          "cuts the flat point w - eta * g into parameters but never advances the offset, so every "
          "parameter tensor is filled from the start of the vector (the first layer's weights) "
          "and every point is wrong, eta = 0 included."),
    entry(L, "losses = changes = [] (one list, two names)", lp_one_list_two_names,
          "initialises the results with losses = changes = [], one list under two names, so both "
          "returned lists are the same list of 2 * len(step_sizes) interleaved losses and "
          "changes."),
    entry(L, "new gradient built from the saved grads (line pasted from g)",
          lp_new_gradient_pasted,
          "builds the gradient at w - eta * g with the line that built g (from the saved start "
          "gradients grads instead of p.grad), so every gradient change is 0; the losses are "
          "right."),
    entry(L, "parameters collected from work.modules()", lp_params_from_modules,
          "collects the parameters as [p for m in work.modules() for p in m.parameters()], and "
          "modules() yields the Sequential itself as well as its layers, so every parameter is "
          "listed twice: the gradient vectors hold each gradient twice and every change is "
          "sqrt(2) times too large (the losses are right)."),
    right(L, "start read from the caller's untouched parameters, autograd.grad, "
             "torch.add(alpha=-eta)", lp_start_from_caller),
]
