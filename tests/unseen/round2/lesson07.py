"""Held-out answers, lesson 07: NoisyBatchNorm, gradient_change, landscape_probe."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

NB, GC, LP = "noisy_batchnorm", "gradient_change", "landscape_probe"


class NoiseInEval(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        c = self.num_features
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoiseDrawnOnce(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        noise_shift = (2 * torch.rand(num_features) - 1) * shift
        noise_scale = 1 + torch.rand(num_features) * (spread - 1)
        self.last_noise = (noise_shift, noise_scale)

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift, scale = self.last_noise
        return out * scale.to(out.dtype) + shift.to(out.dtype)


class ScaleFromZero(nn.BatchNorm1d):
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
        scale = torch.rand(c, dtype=out.dtype) * self.spread
        self.last_noise = (shift, scale)
        return out * scale + shift


class ShiftNonNegative(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = torch.rand(c, dtype=out.dtype) * self.shift
        scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoiseOnInput(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if self.training:
            c = self.num_features
            shift = (2 * torch.rand(c, dtype=x.dtype) - 1) * self.shift
            scale = 1 + torch.rand(c, dtype=x.dtype) * (self.spread - 1)
            self.last_noise = (shift, scale)
            x = x * scale + shift
        return super().forward(x)


class NoiseTupleSwapped(nn.BatchNorm1d):
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
        shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
        self.last_noise = (scale, shift)
        return out * scale + shift


class OneNoiseForAllChannels(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift = (2 * torch.rand(1, dtype=out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(1, dtype=out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisePerExample(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift = (2 * torch.rand_like(out) - 1) * self.shift
        scale = 1 + torch.rand_like(out) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class EvalReturnsNothing(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            c = self.num_features
            shift = (2 * torch.rand(c, dtype=out.dtype) - 1) * self.shift
            scale = 1 + torch.rand(c, dtype=out.dtype) * (self.spread - 1)
            self.last_noise = (shift, scale)
            return out * scale + shift


# ---- gradient_change -----------------------------------------------------------------------


def gc_no_copy(model, x, y, index, lr):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g = model[index].weight.grad.clone()
    with torch.no_grad():
        for layer in model[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g2 = model[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_steps_layer_too(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[: index + 1]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_grads_accumulate(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_relative(model, x, y, index, lr):
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
    distance = ((g - g2).norm() / g.norm()).item()
    return distance, F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_alias(model, x, y, index, lr):
    work = copy.deepcopy(model)
    for p in work.parameters():
        if p.grad is not None:
            p.grad.zero_()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    for p in work.parameters():
        p.grad.zero_()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_eval_copy(model, x, y, index, lr):
    work = copy.deepcopy(model).eval()  # no buffer changes on the copy
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
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


def gc_linear_layers_only(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[:index]:
            if isinstance(layer, nn.Linear):  # the layers with weights
                layer.weight -= lr * layer.weight.grad
                layer.bias -= lr * layer.bias.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()


# ---- landscape_probe ----------------------------------------------------------------------


def lp_cumulative_steps(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, d in zip(params, grads):
                p -= eta * d
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_weights_only(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([p.grad.flatten() for n, p in work.named_parameters() if n.endswith("weight")])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        g2 = torch.cat([p.grad.flatten() for n, p in work.named_parameters() if n.endswith("weight")])
        changes.append((g - g2).norm().item())
    return losses, changes


def lp_grads_accumulate(model, x, y, step_sizes):
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
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_restores_weights_only(model, x, y, step_sizes):
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    with torch.no_grad():  # put the weights back
        for p, p0 in zip(params, start):
            p.copy_(p0)
    model.zero_grad()
    return losses, changes


# ---- correct alternatives ----------------------------------------------------------------


class NoisyUniform(nn.BatchNorm1d):
    """Noise drawn with Tensor.uniform_, scale first."""

    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift = shift
        self.spread = spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            scale = torch.empty(self.num_features, dtype=out.dtype).uniform_(1.0, self.spread)
            shift = torch.empty(self.num_features, dtype=out.dtype).uniform_(-self.shift, self.shift)
            self.last_noise = (shift, scale)
            out = torch.addcmul(shift, out, scale)
        return out


def gc_autograd(model, x, y, index, lr):
    work = copy.deepcopy(model)
    before = [p for layer in work[:index] for p in layer.parameters()]
    target = work[index].weight
    grads = torch.autograd.grad(F.cross_entropy(work(x), y), [*before, target])
    g = grads[-1]
    with torch.no_grad():
        for p, d in zip(before, grads[:-1]):
            p.sub_(lr * d)
    (g2,) = torch.autograd.grad(F.cross_entropy(work(x), y), [target])
    dist = torch.linalg.vector_norm(g - g2)
    cos = (g * g2).sum() / (g.norm() * g2.norm())
    return dist.item(), cos.item()


def lp_vectors(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    w0 = nn.utils.parameters_to_vector(params).detach().clone()
    g = nn.utils.parameters_to_vector(
        torch.autograd.grad(F.cross_entropy(work(x), y), params)
    ).detach()
    losses, changes = [], []
    for eta in step_sizes:
        nn.utils.vector_to_parameters(w0 - eta * g, params)
        loss = F.cross_entropy(work(x), y)
        g_eta = nn.utils.parameters_to_vector(torch.autograd.grad(loss, params))
        losses.append(float(loss))
        changes.append(float(torch.linalg.vector_norm(g_eta - g)))
    return losses, changes


ENTRIES = [
    entry(NB, "noise in eval mode too", NoiseInEval,
          "adds the noise in eval mode as well; eval mode must be plain batch norm.", replaces="NoisyBatchNorm"),
    entry(NB, "noise drawn once", NoiseDrawnOnce,
          "draws the noise once in __init__ and reuses it at every call instead of drawing it afresh.", replaces="NoisyBatchNorm"),
    entry(NB, "scale drawn from [0, spread]", ScaleFromZero,
          "draws the scale uniformly from [0, spread] instead of [1, spread].", replaces="NoisyBatchNorm"),
    entry(NB, "shift drawn from [0, shift]", ShiftNonNegative,
          "draws the shift from [0, shift] instead of [-shift, shift], so its mean is not zero.", replaces="NoisyBatchNorm"),
    entry(NB, "noise added to the input", NoiseOnInput,
          "applies the noise to the input before batch norm, which normalises it away and puts it into the running statistics.", replaces="NoisyBatchNorm"),
    entry(NB, "last_noise in the wrong order", NoiseTupleSwapped,
          "stores last_noise as (scale, shift) instead of (shift, scale).", replaces="NoisyBatchNorm"),
    entry(NB, "one noise value for all channels", OneNoiseForAllChannels,
          "draws one scale and one shift for all channels instead of one per channel.", replaces="NoisyBatchNorm"),
    entry(NB, "noise per example", NoisePerExample,
          "draws a scale and shift for every element (torch.rand_like(out)) instead of one per channel.", replaces="NoisyBatchNorm"),
    entry(NB, "eval mode returns None", EvalReturnsNothing,
          "returns only inside the training branch, so eval mode returns None.", replaces="NoisyBatchNorm"),
    entry(GC, "no copy of the model", gc_no_copy,
          "updates the given model's layers instead of a copy, so the model changes."),
    entry(GC, "layer index stepped too", gc_steps_layer_too,
          "steps layers up to and including index (work[:index + 1]) instead of only the layers before it."),
    entry(GC, "second gradient accumulated", gc_grads_accumulate,
          "does not zero the gradients before the second backward pass, so G' is G plus the new gradient."),
    entry(GC, "relative distance", gc_relative,
          "returns ||G - G'|| / ||G|| instead of ||G - G'||."),
    entry(GC, "G aliased to the zeroed gradient", gc_alias,
          "keeps G as a reference to .grad and zeroes gradients in place, so G is overwritten by G' (distance 0, cosine 1)."),
    entry(GC, "copy put in eval mode", gc_eval_copy,
          "switches the copy to eval mode, so batch norm uses running statistics instead of the mode the model is in."),
    entry(GC, "only Linear layers stepped", gc_linear_layers_only,
          "steps only the nn.Linear layers before index, leaving the batch-norm layers' weight and bias unchanged."),
    entry(LP, "steps accumulate", lp_cumulative_steps,
          "steps from the previous point instead of from w each time, so the k-th point is w - (eta_1 + ... + eta_k) g."),
    entry(LP, "weights only in the gradient change", lp_weights_only,
          "measures the gradient change on the weights only (biases and batch-norm parameters left out), not all parameters."),
    entry(LP, "gradients accumulate across step sizes", lp_grads_accumulate,
          "does not zero the gradients before each backward pass, so the gradients add up over the step sizes."),
    entry(LP, "running statistics not restored", lp_restores_weights_only,
          "works on the model itself and restores the weights afterwards, but batch norm's running statistics (and counter) stay changed."),
    right(NB, "uniform_ noise, addcmul", NoisyUniform, replaces="NoisyBatchNorm"),
    right(GC, "torch.autograd.grad", gc_autograd),
    right(LP, "parameters_to_vector", lp_vectors),
]
