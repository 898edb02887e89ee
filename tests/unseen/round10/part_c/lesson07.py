"""Held-out answers (tenth set, part c), lesson 07:

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


class NoisySignShift(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c, dtype = self.num_features, out.dtype
        shift = self.shift * torch.sign(torch.randn(c, dtype=dtype))  # +- shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyBatchMeanScale(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        shift = (2 * torch.rand_like(out) - 1).mean(0) * self.shift
        scale = 1 + torch.rand_like(out).mean(0) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyCumulative(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked)  # average over all batches so far
            out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               True, factor, self.eps)
        else:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyDtypePositional(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        c = self.num_features
        shift = (2 * torch.rand(c, out.dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, out.dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyEvalNoEps(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        if not self.training:  # inference: the running statistics, by hand
            x_hat = (x - self.running_mean) / torch.sqrt(self.running_var)
            return self.weight * x_hat + self.bias
        out = super().forward(x)
        c, dtype = self.num_features, out.dtype
        shift = (2 * torch.rand(c, dtype=dtype) - 1) * self.shift
        scale = 1 + torch.rand(c, dtype=dtype) * (self.spread - 1)
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisySpreadTwo(nn.BatchNorm1d):
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
        scale = 1 + torch.rand(c, dtype=dtype)  # uniform on [1, 2]
        self.last_noise = (shift, scale)
        return out * scale + shift


class NoisyRandLikeRow(nn.BatchNorm1d):
    def __init__(self, num_features, shift=1.0, spread=2.0, **kwargs):
        super().__init__(num_features, **kwargs)
        self.shift, self.spread = shift, spread
        self.last_noise = None

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        u = torch.rand_like(out[:2])  # two rows of uniforms, one per noise
        shift = torch.lerp(torch.full_like(u[0], -self.shift), torch.full_like(u[0], self.shift), u[0])
        scale = u[1] * (self.spread - 1) + 1
        self.last_noise = (shift, scale)
        return torch.addcmul(shift, out, scale)


# ---- gradient_change -----------------------------------------------------------------


def gc_stale_cache(model, x, y, index, lr, _first={}):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    if index not in _first:  # the gradient before the step, kept per layer
        _first[index] = work[index].weight.grad.clone()
    g = _first[index]
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_cosine_unflattened(model, x, y, index, lr):
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
    cosine = F.cosine_similarity(g, g2, dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_slice_from_one(model, x, y, index, lr):
    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work[1:index]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_column_norms(model, x, y, index, lr):
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
    return torch.linalg.norm(g - g2, dim=0).sum().item(), cosine.item()


def gc_float32(model, x, y, index, lr):
    work = copy.deepcopy(model).float()  # float32 is enough for a probe
    x = x.float()
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


def gc_vector_not_written_back(model, x, y, index, lr):
    from torch.nn.utils import parameters_to_vector

    work = copy.deepcopy(model)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.clone()
    earlier = list(work[:index].parameters())
    with torch.no_grad():
        vec = parameters_to_vector(earlier)
        vec -= lr * parameters_to_vector([p.grad for p in earlier])
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0)
    return (g - g2).norm().item(), cosine.item()


def gc_later_frozen(model, x, y, index, lr):
    work = copy.deepcopy(model)
    for p in work[index + 1:].parameters():
        p.requires_grad_(False)  # their gradients are never used
    work.zero_grad(set_to_none=True)
    F.cross_entropy(work(x), y).backward()
    g = work[index].weight.grad.detach().clone()
    with torch.no_grad():
        for layer in work[:index]:
            for p in layer.parameters():
                p.sub_(p.grad, alpha=lr)
    work.zero_grad(set_to_none=True)
    F.cross_entropy(work(x), y).backward()
    g2 = work[index].weight.grad
    a, b = g.reshape(-1), g2.reshape(-1)
    return torch.dist(a, b).item(), (a @ b / (a.norm() * b.norm())).item()


# ---- landscape_probe -----------------------------------------------------------------


def lp_data_alias(model, x, y, step_sizes):
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
                p.data = p0  # back to the start
                p.sub_(eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([p.grad.flatten() for p in params])).norm().item())
    return losses, changes


def lp_last_layer_only(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = work[-1].weight.grad.clone()
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - work[-1].weight.grad).norm().item())
    return losses, changes


def lp_cat_generator(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat(d.flatten() for d in grads)
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


def lp_changes_todo(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        losses.append(F.cross_entropy(work(x), y).item())
        changes.append(0.0)  # TODO: the gradient change
    return losses, changes


def lp_one_zip(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    losses, changes = [], []
    for eta, p, p0, d in zip(step_sizes, params, start, grads):
        with torch.no_grad():
            p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append((g - torch.cat([q.grad.flatten() for q in params])).norm().item())
    return losses, changes


def lp_reference_at_first_point(model, x, y, step_sizes):
    work = copy.deepcopy(model)
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = None
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        new = torch.cat([p.grad.flatten() for p in params])
        if g is None:
            g = new.clone()  # the gradient to compare with
        losses.append(loss.item())
        changes.append((g - new).norm().item())
    return losses, changes


def lp_law_of_cosines(model, x, y, step_sizes):
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
                p.copy_(p0).add_(d, alpha=-eta)
        work.zero_grad()
        loss = F.cross_entropy(work(x), y)
        loss.backward()
        h = torch.cat([p.grad.flatten() for p in params])
        squared = g.dot(g) + h.dot(h) - 2 * g.dot(h)  # |g - h|^2
        losses.append(float(loss))
        changes.append(float(squared.clamp(min=0).sqrt()))
    return losses, changes


ENTRIES = [
    # NoisyBatchNorm
    entry(N, "shift as plus or minus shift (sign of a normal draw)", NoisySignShift,
          "draws the shift as shift * sign(randn): every shift is exactly -shift or +shift (a coin "
          "flip), not uniform on [-shift, shift]", replaces=NAME),
    entry(N, "noise averaged over the batch's rows", NoisyBatchMeanScale,
          "draws an (N, C) array of uniforms and averages it over the examples, so each channel's "
          "shift and scale are means of N uniforms, bunched around the middle of the range instead "
          "of uniform on it", replaces=NAME),
    entry(N, "cumulative average as the running-statistics momentum", NoisyCumulative,
          "updates the running statistics with momentum 1 / num_batches_tracked (the cumulative "
          "average, PyTorch's momentum=None) instead of the module's momentum 0.1", replaces=NAME),
    entry(N, "dtype passed positionally to torch.rand", NoisyDtypePositional,
          "calls torch.rand(c, out.dtype) with the dtype as a positional argument, which raises a "
          "TypeError in training mode (dtype= must be a keyword)", replaces=NAME),
    entry(N, "eval mode by hand without eps", NoisyEvalNoEps,
          "eval mode normalises by hand with sqrt(running_var), leaving out eps, so its output "
          "differs from batch norm's in eval mode", replaces=NAME),
    entry(N, "scale range hard-coded to [1, 2]", NoisySpreadTwo,
          "draws the scale as 1 + u (uniform on [1, 2]) whatever the spread argument: right only "
          "for the default spread=2", replaces=NAME),
    right(N, "two rows of rand_like(out), lerp and addcmul", NoisyRandLikeRow, replaces=NAME),
    # gradient_change
    entry(G, "first gradient cached per index across calls", gc_stale_cache,
          "keeps the first gradient in a mutable default dict keyed by the layer index, so every "
          "later call for the same index compares with the gradient of the first call's model"),
    entry(G, "cosine of the unflattened weight gradients", gc_cosine_unflattened,
          "calls F.cosine_similarity(G, G', dim=0) on the 2-D gradients without flattening them: "
          "one cosine per column, and .item() on that vector raises a RuntimeError"),
    entry(G, "earlier layers stepped from work[1:index]", gc_slice_from_one,
          "steps work[1:index] instead of work[:index], so the first layer (index 0) is never "
          "updated"),
    entry(G, "distance as the sum of column norms", gc_column_norms,
          "takes torch.linalg.norm(G - G', dim=0).sum(), the sum of the columns' norms, instead of "
          "the Frobenius norm of the whole difference"),
    entry(G, "model and inputs cast to float32", gc_float32,
          "casts the copy and x to float32 for the probe, so the gradients and the step are "
          "computed in float32 and the results differ from float64 ones at about 1e-7"),
    entry(G, "stepped vector never written back", gc_vector_not_written_back,
          "steps a parameters_to_vector copy of the earlier layers' weights but never writes it back "
          "(vector_to_parameters forgotten), so the model is not changed: distance 0, cosine 1"),
    right(G, "layers after index frozen, sub_(alpha=lr), torch.dist and a dot-product cosine",
          gc_later_frozen),
    # landscape_probe
    entry(L, "start restored with p.data = p0 (aliasing)", lp_data_alias,
          "restores each parameter with p.data = p0, which makes it share p0's storage, so the "
          "in-place step p.sub_(eta * d) also changes the saved start: the steps accumulate"),
    entry(L, "gradient change on the last layer's weight only", lp_last_layer_only,
          "measures the gradient change on work[-1].weight only (as in gradient_change) instead of "
          "over all parameters"),
    entry(L, "torch.cat given a generator", lp_cat_generator,
          "passes a generator expression to torch.cat, which raises a TypeError (it needs a list "
          "or tuple of tensors)"),
    entry(L, "gradient change left as a TODO (zeros)", lp_changes_todo,
          "never computes the gradient change: appends 0.0 for every step size (a TODO left in)"),
    entry(L, "step sizes zipped with the parameters", lp_one_zip,
          "zips step_sizes with the parameters in one loop, so each step size moves one parameter "
          "tensor only (and the steps of earlier ones stay), and there are min(len(step_sizes), "
          "number of tensors) results"),
    entry(L, "change measured against the first probe point's gradient", lp_reference_at_first_point,
          "takes the gradient at the first step size's point as the reference instead of the "
          "gradient at the start, so the first change is always 0"),
    right(L, "law of cosines for |g - g'|, add_(alpha=-eta)", lp_law_of_cosines),
]
