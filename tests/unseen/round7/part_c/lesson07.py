"""Held-out answers (seventh set, part c), lesson 07:

NoisyBatchNorm(num_features, shift=1.0, spread=2.0) (nn.BatchNorm1d subclass; last_noise = (shift, scale))
gradient_change(model, x, y, index, lr) -> (distance, cosine)
landscape_probe(model, x, y, step_sizes) -> (losses, grad_changes)
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

N, G, L = "noisy_batchnorm", "gradient_change", "landscape_probe"
NAME = "NoisyBatchNorm"


# ---- NoisyBatchNorm ----------------------------------------------------------------
# the notebook gives __init__ (kept as given in _Given); each learner writes forward.


class _Given(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None


class NoisyLogUniform(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = self.spread ** torch.rand(c, dtype=dtype)  # a factor: drawn on a log scale, in [1, spread]
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyOneCallLate(_Given):
    def _draw(self, dtype):
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        return shift, scale

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        if self.last_noise is None:
            self.last_noise = self._draw(out.dtype)
        shift, scale = self.last_noise
        out = out * scale + shift
        self.last_noise = self._draw(out.dtype)  # fresh noise ready for the next call
        return out


class NoisyHandBiased(_Given):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean = x.mean(0)
        var = x.var(0, unbiased=False)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
            self.num_batches_tracked += 1
        out = (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyHandUnbiased(_Given):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean = x.mean(0)
        var = x.var(0)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
            self.num_batches_tracked += 1
        out = (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyShiftHalved(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (torch.rand(c, dtype=dtype) - 0.5) * self.shift  # centred on 0
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisySwappedRoles(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * shift + scale


class NoisyReciprocalRange(_Given):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = torch.empty(c, dtype=dtype).uniform_(-self.shift, self.shift)
        scale = torch.empty(c, dtype=dtype).uniform_(1 / self.spread, self.spread)  # shrink or grow
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyFunctional(_Given):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            m = 1.0 / float(self.num_batches_tracked)
        else:
            m = self.momentum
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, m, self.eps)
        u = torch.rand(2, self.num_features, dtype=out.dtype)
        shift = u[0] * (2 * self.shift) - self.shift
        scale = u[1] * (self.spread - 1) + 1
        self.last_noise = (shift, scale)
        return out.mul_(scale).add_(shift)


# ---- gradient_change ---------------------------------------------------------------


def gc_params_as_layers(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for p in list(work.parameters())[:index]:  # the parameters before index
            p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_biases_not_stepped(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            if getattr(layer, "weight", None) is not None:
                layer.weight -= lr * layer.weight.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_second_pass_no_grad(model, x, y, index, lr):
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


def gc_cosine_norm_squared(model, x, y, index, lr):
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
    cosine = (g * g2).sum() / g.norm() ** 2
    return (g - g2).norm().item(), cosine.item()


def gc_distance_over_lr(model, x, y, index, lr):
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
    return ((g - g2).norm() / lr).item(), cosine.item()  # change per unit of learning rate


def gc_half_precision(model, x, y, index, lr):
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
    a, b = g.flatten().half(), g2.flatten().half()  # half the memory for two big vectors
    cosine = F.cosine_similarity(a.float(), b.float(), dim=0)
    return (a - b).float().norm().item(), cosine.item()


def gc_state_dict_copy(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    state = {k: v.detach().clone() for k, v in work.state_dict().items()}
    for name, p in work.named_parameters():
        if int(name.split(".")[0]) < index:
            state[name] = state[name] - lr * p.grad
    stepped = copy.deepcopy(model)
    stepped.load_state_dict(state)
    stepped.zero_grad()
    F.cross_entropy(stepped(x), y).backward()
    g2 = stepped[index].weight.grad.detach()
    a, b = g.reshape(-1), g2.reshape(-1)
    cosine = torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return torch.linalg.vector_norm(a - b).item(), cosine.item()


# ---- landscape_probe ---------------------------------------------------------------


def _probe(model, x, y, step_sizes, *, cat_flat=True, change="norm", loss_scale=1.0):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    if cat_flat:
        g = torch.cat([d.flatten() for d in grads])
    else:
        g = torch.cat(grads)
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item() * loss_scale)
        now = torch.cat([p.grad.flatten() for p in params])
        if change == "norm":
            changes.append((g - now).norm().item())
        elif change == "maxabs":
            changes.append((g - now).abs().max().item())
        elif change == "cosine":
            changes.append(1 - F.cosine_similarity(g, now, dim=0).item())
        elif change == "first":
            changes.append((grads[0] - params[0].grad).norm().item())
    return losses, changes


def lp_max_abs(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change="maxabs")


def lp_cat_unflattened(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, cat_flat=False)


def lp_last_step_left_out(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for i in range(len(step_sizes) - 1):
        eta = step_sizes[i]
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_one_minus_cosine(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change="cosine")


def lp_first_tensor_only(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, change="first")


def lp_loss_per_example(model, x, y, step_sizes):
    return _probe(model, x, y, step_sizes, loss_scale=1.0 / len(x))


def lp_autograd_add_alpha(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = [p for p in work.parameters()]
    w0 = [p.detach().clone() for p in params]
    g = torch.autograd.grad(F.cross_entropy(work(x), y), params)
    g = [d.detach() for d in g]
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, w0, g):
                p.copy_(p0.add(d, alpha=-eta))
        loss = F.cross_entropy(work(x), y)
        now = torch.autograd.grad(loss, params)
        diff = torch.cat([(a - b).reshape(-1) for a, b in zip(g, now)])
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(diff)))
    return losses, changes


ENTRIES = [
    entry(N, "scale drawn on a log scale", NoisyLogUniform,
          "draws the scale as spread ** U(0, 1) (log-uniform on [1, spread]) instead of uniformly on [1, spread].",
          replaces=NAME),
    entry(N, "noise applied one call late", NoisyOneCallLate,
          "applies the noise drawn at the previous call and stores a new draw in last_noise, so last_noise is "
          "not the noise applied to this call's output (the first two calls use the same noise).", replaces=NAME),
    entry(N, "hand-written batch norm, biased running_var", NoisyHandBiased,
          "computes batch norm by hand in training mode and updates running_var with the biased batch variance "
          "instead of the unbiased one that nn.BatchNorm1d stores (the output is right).", replaces=NAME),
    entry(N, "hand-written batch norm with the unbiased variance", NoisyHandUnbiased,
          "computes batch norm by hand in training mode and normalises with the unbiased variance x.var(0) "
          "instead of the biased one.", replaces=NAME),
    entry(N, "shift range halved", NoisyShiftHalved,
          "draws the shift as (U(0, 1) - 0.5) * shift, i.e. from [-shift/2, shift/2] instead of [-shift, shift].",
          replaces=NAME),
    entry(N, "shift and scale swapped in the formula", NoisySwappedRoles,
          "returns out * shift + scale instead of out * scale + shift (the draws and last_noise are right).",
          replaces=NAME),
    entry(N, "scale drawn from [1/spread, spread]", NoisyReciprocalRange,
          "draws the scale uniformly from [1/spread, spread] instead of [1, spread].", replaces=NAME),
    entry(G, "parameters counted as layers", gc_params_as_layers,
          "steps list(work.parameters())[:index], the first index parameter tensors, instead of the parameters "
          "of the layers work[:index].", ),
    entry(G, "biases not stepped", gc_biases_not_stepped,
          "steps only the weight of each earlier layer, leaving their biases (and batch norm's beta) unstepped."),
    entry(G, "second pass under torch.no_grad", gc_second_pass_no_grad,
          "puts the second forward and backward inside the torch.no_grad block of the step, so backward raises "
          "(the loss has no graph)."),
    entry(G, "cosine over |G| squared", gc_cosine_norm_squared,
          "divides G . G' by |G|^2 instead of |G| |G'| in the cosine."),
    entry(G, "distance divided by the learning rate", gc_distance_over_lr,
          "returns ||G - G'|| / lr instead of ||G - G'||."),
    entry(G, "gradients compared in half precision", gc_half_precision,
          "rounds G and G' to float16 before the distance and the cosine, so both lose precision (about 1e-3 "
          "relative)."),
    entry(L, "largest entry of the gradient change", lp_max_abs,
          "measures the gradient change as the largest absolute entry of g(w - eta g) - g instead of its "
          "2-norm."),
    entry(L, "gradients concatenated without flattening", lp_cat_unflattened,
          "concatenates the parameter gradients with torch.cat without flattening them, which raises for "
          "tensors of different ranks (weights and biases)."),
    entry(L, "last step size left out", lp_last_step_left_out,
          "loops over range(len(step_sizes) - 1), so the last step size gets no loss and no gradient change "
          "(both lists one short)."),
    entry(L, "1 - cosine as the gradient change", lp_one_minus_cosine,
          "measures the gradient change as 1 - cos(g, g(w - eta g)) instead of the norm of the difference."),
    entry(L, "first parameter tensor only", lp_first_tensor_only,
          "measures the gradient change of the first parameter tensor (the first layer's weight) only instead of "
          "all parameters flattened together."),
    entry(L, "loss divided by the batch size", lp_loss_per_example,
          "divides the (already averaged) cross-entropy by len(x), so every loss is len(x) times too small."),
    right(N, "F.batch_norm with the counter, one (2, C) draw, in-place mul_/add_", NoisyFunctional, replaces=NAME),
    right(G, "stepped state_dict loaded into a second copy, torch.dot cosine", gc_state_dict_copy),
    right(L, "autograd.grad both times, add(alpha=-eta) from the start", lp_autograd_add_alpha),
]
