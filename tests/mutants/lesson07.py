"""Lesson 07: wrong noisy batch norm, gradient-change and landscape measurements."""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import family


def noisy_class(
    *,
    where="after",
    fresh=True,
    in_eval=False,  # True: noise in eval mode too; "untracked": without statistics
    ranges=True,
    keep=True,
    sides=2,
    shared=False,  # True: one shift and one scale for every channel
    by_hand=False,  # True: F.batch_norm without running statistics
    tied=False,  # True: one uniform draw gives both the shift and the scale
    swapped=False,  # True: last_noise kept as (scale, shift)
    twice=False,  # True: batch norm's forward (and its buffer update) run twice
    crossed=False,  # True: the shift drawn from the scale's range and vice versa
    uncounted=False,  # True: F.batch_norm with the buffers, num_batches_tracked left
    dropped=False,  # True: the keyword arguments (eps, momentum) not passed on
    inside=False,  # True: the noise between the normalisation and gamma, beta
    shift_first=False,  # True: (out + shift) * scale
    stale=False,  # True: last_noise kept from the first call (round 8's wrong cause)
):
    class Noisy(nn.BatchNorm1d):
        def __init__(self, num_features, shift=1.0, spread=2.0, **kw):
            super().__init__(num_features, **({} if dropped else kw))
            self.shift, self.spread = shift, spread
            self.last_noise = self._draw(torch.float64) if not fresh else None

        def _draw(self, dtype):
            c = self.num_features
            if not ranges:  # a normal draw: negative scales, shifts out of range
                return torch.randn(c, dtype=dtype) * self.shift, torch.randn(
                    c, dtype=dtype
                )
            k = 1 if shared else c
            u = torch.rand(k, dtype=dtype)
            shift = (sides * u - sides + 1) * self.shift
            scale = 1 + (u if tied else torch.rand(k, dtype=dtype)) * (self.spread - 1)
            if crossed:
                v = (scale - 1) / (self.spread - 1)  # uniform in [0, 1]
                shift, scale = 1 + u * (self.spread - 1), (2 * v - 1) * self.shift
            return shift.expand(c).clone(), scale.expand(c).clone()

        def forward(self, x):
            untracked = in_eval == "untracked" and self.running_mean is None
            if not self.training and in_eval is not True and not untracked:
                return super().forward(x)
            noise = self._draw(x.dtype) if fresh else self.last_noise
            if keep and not (stale and self.last_noise is not None):
                self.last_noise = noise[::-1] if swapped else noise
            shift, scale = noise
            if where == "before":
                return super().forward(x * scale + shift)
            if shift_first:
                return (super().forward(x) + shift) * scale
            if inside:
                out = F.batch_norm(
                    x, self.running_mean, self.running_var, None, None, True
                )
                return (out * scale + shift) * self.weight + self.bias
            if by_hand:
                out = F.batch_norm(x, None, None, self.weight, self.bias, training=True)
                return out * scale + shift
            if uncounted:
                args = (self.running_mean, self.running_var, self.weight, self.bias)
                out = F.batch_norm(x, *args, True, self.momentum, self.eps)
                return out * scale + shift
            if twice:
                super().forward(x)
            return super().forward(x) * scale + shift

    return Noisy


def noisy_from_weight():
    """Round 11's false ok: the noise drawn like the weight, which affine=False lacks."""

    class FromWeight(noisy_class()):
        def _draw(self, dtype):
            u, v = torch.rand_like(self.weight), torch.rand_like(self.weight)
            return (2 * u - 1) * self.shift, 1 + v * (self.spread - 1)

    return FromWeight


def noisy_detached():
    """Round 12's wrong cause: the input detached, so dx is None ("forgot return")."""

    class Detached(noisy_class()):
        def forward(self, x):
            return super().forward(x.detach())

    return Detached


def noisy_in_graph():
    """Right output and noise, but running_mean rebound to a graph tensor."""

    class InGraph(noisy_class()):
        def forward(self, x):
            out = super().forward(x)
            if self.training:
                self.running_mean = self.running_mean + 0.0 * out.mean(0)
            return out

    return InGraph


def running_var_of(noisy=False):
    """Round 11's: running_var updated by hand, with the biased variance (or the
    unbiased variance of the noisy output), after F.batch_norm without buffers."""

    class ByHand(noisy_class(by_hand=True)):
        def forward(self, x):
            out = super().forward(x)
            if self.training:
                shift, scale = self.last_noise
                z = (x * scale + shift).var(0) if noisy else x.var(0, unbiased=False)
                with torch.no_grad():
                    self.running_mean.lerp_(x.mean(0), self.momentum)
                    self.running_var.lerp_(z, self.momentum)
                    self.num_batches_tracked += 1
            return out

    return ByHand


def changed(
    model,
    x,
    y,
    index,
    lr,
    *,
    before_only=True,
    zero=True,
    squared=False,
    copy_=True,
    eval_=False,
    relative=False,
    train_=False,
    short=False,
    loss=F.cross_entropy,
):
    work = copy.deepcopy(model) if copy_ else model
    if eval_ or train_:
        work.train(train_)
    work.zero_grad()
    loss(work(x), y).backward()
    g = work[index].weight.grad.clone()
    with torch.no_grad():
        for layer in work if not before_only else work[: index - short]:
            for p in layer.parameters():
                p -= lr * p.grad
    if zero:
        work.zero_grad()
    loss(work(x), y).backward()
    g2 = work[index].weight.grad
    distance = (g - g2).norm().item()
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    distance = distance / g.norm().item() if relative else distance
    return (distance**2 if squared else distance), cosine


def probed(
    model,
    x,
    y,
    steps,
    *,
    normalise=False,
    cumulative=False,
    copy_=True,
    eval_=False,
    sort_=False,
    loss_fn=F.cross_entropy,
    refresh=False,  # a training-mode pass at each point (new running statistics)
    g_flipped=False,  # g taken in training mode, then the model's mode put back
):
    work = copy.deepcopy(model) if copy_ else model
    steps = sorted(steps) if sort_ else steps
    if eval_:
        work.eval()
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    mode = work.training
    loss_fn(work.train(mode or g_flipped)(x), y).backward()
    work.train(mode)
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    scale = 1 / g.norm() if normalise else 1.0
    losses, changes = [], []
    for eta in steps:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads, strict=True):
                if cumulative:
                    p -= eta * scale * d
                else:
                    p.copy_(p0 - eta * scale * d)
            if refresh and not work.training:  # eval mode reads the statistics
                work.train()(x)
                work.eval()
        work.zero_grad()
        loss = loss_fn(work(x), y)
        loss.backward()
        losses.append(loss.item())
        changes.append(
            (g - torch.cat([p.grad.flatten() for p in params])).norm().item()
        )
    return losses, changes


def _autocast(model, x, y, steps):  # round 16's false ok: the check's model was float64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return probed(model, x, y, steps)


def _pairwise(model, x, y, steps):  # round 17: F.pairwise_distance adds eps=1e-6
    losses, _ = probed(model, x, y, steps)
    work, changes = copy.deepcopy(model), []
    params = list(work.parameters())
    start = [p.detach().clone() for p in params]
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    grads = [p.grad.detach().clone() for p in params]
    g = torch.cat([d.flatten() for d in grads])
    for eta in steps:
        with torch.no_grad():
            for p, p0, d in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * d)
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        moved = torch.cat([p.grad.flatten() for p in params])
        changes.append(F.pairwise_distance(g[None], moved[None]).item())
    return losses, changes


def _ics(**kw):
    return lambda m, x, y, i, lr: changed(m, x, y, i, lr, **kw)


def _stepped_caller(m, x, y, i, lr):
    """An SGD over the caller's parameters stepping a copy's gradients: nothing moves."""
    work, opt = copy.deepcopy(m), torch.optim.SGD(m[:i].parameters(), lr=lr)
    F.cross_entropy(work(x), y).backward()
    g = work[i].weight.grad.clone()
    opt.step()
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[i].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return (g - g2).norm().item(), cosine


def _rebound(m, x, y, i, lr):
    """Round 19's observed: p = p - lr * p.grad rebinds the name; the model stays."""
    work = copy.deepcopy(m)
    F.cross_entropy(work(x), y).backward()
    g = work[i].weight.grad.clone()
    with torch.no_grad():
        for p in work[:i].parameters():
            p = p - lr * p.grad  # noqa: PLW2901
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[i].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return (g - g2).norm().item(), cosine


def _lr_in_loss(m, x, y, i, lr):
    """Round 22's wrong cause: (lr * loss).backward(), then p -= p.grad: G, G' * lr."""
    work = copy.deepcopy(m)
    (lr * F.cross_entropy(work(x), y)).backward()
    g = work[i].weight.grad.clone()
    with torch.no_grad():
        for p in work[:i].parameters():
            p -= p.grad
    work.zero_grad()
    (lr * F.cross_entropy(work(x), y)).backward()
    g2 = work[i].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return (g - g2).norm().item(), cosine


def _by_name_strings(m, x, y, i, lr):
    """Round 20's false ok: the layers before i by name strings ('12' < '6')."""
    work = copy.deepcopy(m)
    F.cross_entropy(work(x), y).backward()
    g = work[i].weight.grad.clone()
    with torch.no_grad():
        for name, p in work.named_parameters():
            if name.split(".")[0] < str(i):
                p -= lr * p.grad
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[i].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return (g - g2).norm().item(), cosine


def _flat_step(m, x, y, i, lr):
    """Round 20's false ok: one flat vector of the layers before i (none for i = 0)."""
    work = copy.deepcopy(m)
    F.cross_entropy(work(x), y).backward()
    g = work[i].weight.grad.clone()
    params = list(work[:i].parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    flat = flat - lr * torch.cat([p.grad.flatten() for p in params])
    nn.utils.vector_to_parameters(flat, params)
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    g2 = work[i].weight.grad
    cosine = F.cosine_similarity(g.flatten(), g2.flatten(), dim=0).item()
    return (g - g2).norm().item(), cosine


def _one_minus_cosine(m, x, y, i, lr):
    distance, cosine = changed(m, x, y, i, lr)
    return distance, 1 - cosine


def _aliased(m, x, y, i, lr):
    """G kept as a reference to .grad, which zero_grad() then empties in place."""
    work = copy.deepcopy(m)
    F.cross_entropy(work(x), y).backward()
    g = work[i].weight.grad
    with torch.no_grad():
        for layer in work[:i]:
            for p in layer.parameters():
                p -= lr * p.grad
    work.zero_grad(set_to_none=False)
    F.cross_entropy(work(x), y).backward()
    g2 = work[i].weight.grad
    return (g - g2).norm().item(), F.cosine_similarity(
        g.flatten(), g2.flatten(), dim=0
    ).item()


def _unmoved_loss(m, x, y, steps):
    """Right gradient changes, but every loss taken on the model before the step."""
    _, changes = probed(m, x, y, steps)
    loss = F.cross_entropy(copy.deepcopy(m)(x), y).item()
    return [loss] * len(steps), changes


def _per_eta(m, x, y, steps):
    losses, changes = probed(m, x, y, steps)
    return losses, [c / eta for c, eta in zip(changes, steps, strict=True)]


def _probe(**kw):
    return lambda m, x, y, steps: probed(m, x, y, steps, **kw)


def _one_sided_uniform():
    """Round 19's: uniform_(-shift) (upper bound 1): at shift=0 an offset, no mean."""

    class OneSided(noisy_class()):
        def _draw(self, dtype):
            shift, scale = super()._draw(dtype)
            return torch.empty_like(shift).uniform_(-self.shift), scale

    return OneSided


def _scale_range_typo():
    """Round 20's wrong cause: the scale from [1, shift] (a typo), read as an eps."""

    class Typo(noisy_class()):
        def _draw(self, dtype):
            shift, _ = super()._draw(dtype)
            return shift, 1 + torch.rand_like(shift) * (self.shift - 1)

    return Typo


def _eval_short_cut(m, x, y, i, lr):
    """Round 20's wrong cause: (0, 1) in eval mode, the model never run."""
    return (0.0, 1.0) if not m.training else changed(m, x, y, i, lr)


def _first_short_cut(m, x, y, i, lr):
    """Round 21's wrong cause: (0, 0) at index 0, read as 1 - cos (cos is 1 there)."""
    return (0.0, 0.0) if i == 0 else changed(m, x, y, i, lr)


def _cosine_default_dim(m, x, y, i, lr):
    """Round 20's wrong cause: F.cosine_similarity's default dim=1 on 1-D vectors."""
    distance, _ = changed(m, x, y, i, lr)
    return distance, F.cosine_similarity(torch.ones(4), torch.ones(4)).item()


def _spread_before_shift():
    """The constructor's parameters in another order (round 12's class)."""

    class Swapped(noisy_class()):
        def __init__(self, num_features, spread=2.0, shift=1.0, **kw):
            super().__init__(num_features, shift, spread, **kw)

    return Swapped


def _noise_in_float32():
    """Round 23's false ok's class: the noise in float32 whatever the layer's dtype."""

    class Float32(noisy_class()):
        def _draw(self, dtype):
            return super()._draw(torch.float32)

    return Float32


def _eval_by_hand():
    """Round 23's false ok's class: eval by hand from the running statistics, which a
    layer with track_running_stats=False does not keep (it uses the batch's)."""

    class ByHand(noisy_class()):
        def forward(self, x):
            if self.training:
                return super().forward(x)
            z = (x - self.running_mean) / (self.running_var + self.eps).sqrt()
            return z * self.weight + self.bias

    return ByHand


def _noise_from_numpy():
    """Round 13's false ok: the noise drawn with NumPy, float64 for a float32 input."""

    class FromNumPy(noisy_class()):
        def _draw(self, dtype):
            rng, c = np.random.default_rng(), self.num_features
            shift = (2 * rng.random(c) - 1) * self.shift
            scale = 1 + rng.random(c) * (self.spread - 1)
            return torch.from_numpy(shift), torch.from_numpy(scale)

    return FromNumPy


def _noise_from_distributions():
    """Round 17's false ok: torch.distributions.Uniform refuses an empty range."""

    class FromDistributions(noisy_class()):
        def _draw(self, dtype):
            full = lambda v: torch.full((self.num_features,), float(v), dtype=dtype)
            uniform = torch.distributions.Uniform
            shift = uniform(full(-self.shift), full(self.shift)).sample()
            return shift, uniform(full(1), full(self.spread)).sample()

    return FromDistributions


def _scale_once():
    """Round 18's wrong cause: the scale drawn once (kept), the shift at every call."""

    class ScaleOnce(noisy_class()):
        def _draw(self, dtype):
            shift, scale = super()._draw(dtype)
            self.__dict__.setdefault("_scale", scale)
            return shift, self._scale.to(dtype)

    return ScaleOnce


def _affine_off():
    """Round 15's wrong cause: affine=False given to BatchNorm1d ("no running stats")."""

    class AffineOff(noisy_class()):
        def __init__(self, num_features, shift=1.0, spread=2.0, **kw):
            super().__init__(num_features, shift, spread, **{**kw, "affine": False})

    return AffineOff


def _keras_call():
    """Round 18's observed: the noisy forward named call() (Keras's), never called."""
    right = noisy_class()

    class Keras(nn.BatchNorm1d):
        def __init__(self, num_features, shift=1.0, spread=2.0, **kw):
            super().__init__(num_features, **kw)
            self.shift, self.spread, self.last_noise = shift, spread, None

        _draw, call = right._draw, right.forward

    return Keras


def _keras_eps():
    """Round 19's wrong cause: Keras's epsilon (1e-3) as the constructor's default."""

    class KerasEps(noisy_class()):
        def __init__(self, num_features, shift=1.0, spread=2.0, eps=1e-3, **kw):
            super().__init__(num_features, shift, spread, eps=eps, **kw)

    return KerasEps


def _detached_output():
    """Round 19's observed: the training output detached (the noise a constant)."""

    class Detached(noisy_class()):
        def forward(self, x):
            out = super().forward(x)
            return out.detach() if self.training else out

    return Detached


def _draw_squeezed():
    """Round 13's false ok: a (2, C) draw squeezed, so one channel's noise is 0-d."""

    class Squeezed(noisy_class()):
        def _draw(self, dtype):
            u = torch.rand(2, self.num_features, dtype=dtype).squeeze()
            return (2 * u[0] - 1) * self.shift, 1 + u[1] * (self.spread - 1)

    return Squeezed


def _noise_in_buffers():
    """Round 14's wrong cause: the noise kept in buffers redrawn in place (uniform_)."""

    class InBuffers(noisy_class()):
        def _draw(self, dtype):
            if not hasattr(self, "noise_shift"):
                self.register_buffer("noise_shift", torch.empty(self.num_features))
                self.register_buffer("noise_scale", torch.empty(self.num_features))
                self.double()  # the check's module is float64
            self.noise_shift.uniform_(-self.shift, self.shift)
            self.noise_scale.uniform_(1.0, self.spread)
            return self.noise_shift, self.noise_scale

    return InBuffers


# fmt: off
NOISY = {
    "noise in eval mode without running statistics (round 24)": (noisy_class(in_eval="untracked"), "noise in eval mode: add it only when self.training"),
    "scale from [1, shift]": (_scale_range_typo(), "plain batch norm): off by the constant factor"),
    "shift from uniform_(-shift)": (_one_sided_uniform(), "plain batch norm): off by one constant offset"),
    "output detached": (_detached_output(), "your code called .detach() on a tensor in the graph"),
    "Keras's eps=1e-3 as the default": (_keras_eps(), "divides by sqrt(var + e) with e = 0.001, not eps = 1e-05"),
    "forward named call (Keras)": (_keras_call(), "Keras defines no forward(), so a call runs BatchNorm1d's, never call(): PyTorch calls forward()"),
    "noise in buffers redrawn in place": (_noise_in_buffers(), "the same pair of tensors at every step, redrawn in place"),
    "affine=False given to BatchNorm1d": (_affine_off(), "no weight, bias: keep affine=True"),
    "(2, C) draw squeezed": (_draw_squeezed(), "the noise is Tensor (), Tensor (): draw one shift and one scale per channel, tensors of shape (1,)"),
    "noise in float32": (_noise_in_float32(), "torch.bfloat16 (16, 5) input gave torch.float32 (16, 5)"),
    "eval by hand from the running statistics": (_eval_by_hand(), "NoisyBatchNorm eval, no running statistics | ERROR"),
    "noise drawn with NumPy": (_noise_from_numpy(), "torch.float32 (16, 1) input gave torch.float64 (16, 1)"),
    "noise from torch.distributions": (_noise_from_distributions(), "NoisyBatchNorm affine=False        | ERROR   | raised ValueError"),
    "spread before shift": (_spread_before_shift(), "shift is elsewhere"),
    "noise before the normalisation": (noisy_class(where="before"), "before the normalisation"),
    "the same noise at every step": (noisy_class(fresh=False), "the same shift and scale at two steps"),
    "the scale drawn once": (_scale_once(), "the same scale at two steps: drawn once"),
    "last_noise kept from the first call": (noisy_class(stale=True), "module.last_noise is the same at two steps but the outputs differ"),
    "noise in eval mode too": (noisy_class(in_eval=True), "no noise at inference"),
    "noise out of range": (noisy_class(ranges=False), "must be uniform"),
    # the outside review's (2026-12-06, C9): U[0, shift], one-sided
    "one-sided shift": (noisy_class(sides=1), "one-sided"),
    "one noise for all channels": (noisy_class(shared=True), "every channel gets the same value"),
    "running statistics never updated": (noisy_class(by_hand=True), "running_var did not change in a training step"),
    "running_var of the biased variance": (running_var_of(), "running_var averages in the biased variance, not"),
    "running_var of the noisy output": (running_var_of(noisy=True), "running_var averages in the variance of the noisy output, not of x"),
    "running_mean in the graph": (noisy_in_graph(), "require grad after training steps"),
    "input detached": (noisy_detached(), "dx, x's gradient is None: backward() did not reach it"),
    "noise drawn like the weight": (noisy_from_weight(), "NoisyBatchNorm affine=False        | ERROR"),
    "last_noise not kept": (noisy_class(keep=False), "module.last_noise must be the pair"),
    "shift and scale from one draw": (noisy_class(tied=True), "the shift and the scale are correlated"),
    "last_noise as (scale, shift)": (noisy_class(swapped=True), "shift and scale swapped in the formula"),
    "batch norm run twice": (noisy_class(twice=True), "2 updates in a row"),
    "ranges crossed": (noisy_class(crossed=True), "the shift is drawn from the scale's range"),
    "steps not counted": (noisy_class(uncounted=True), "num_batches_tracked is 0 after one training step"),
    "keyword arguments dropped": (noisy_class(dropped=True), "pass **kwargs on"),
    "noise before gamma and beta": (noisy_class(inside=True), "the noise was applied before gamma and beta"),
    "shift added before the scale": (noisy_class(shift_first=True), "the shift was added before the scale"),
}
ICS = {
    "one-hot targets without num_classes": (lambda m, x, y, i, lr: changed(m, x, F.one_hot(y).to(x.dtype), i, lr), "one_hot(y) has y.max() + 1 columns"),  # round 14's false ok
    "cosine in a list": (lambda *a: (changed(*a)[0], [changed(*a)[1]]), "return two Python floats"),  # round 13's false ok
    "updates every layer": (_ics(before_only=False), "the layer itself and the layers after it"),
    "no zero_grad": (_ics(zero=False), "call zero_grad()"),
    "squared distance": (_ics(squared=True), "the distance is squared"),
    "changes the model": (_ics(copy_=False), "work on a copy"),
    # the outside review's (2026-12-06, C8)
    "eval-mode copy": (_ics(eval_=True), "measured in eval mode"),
    "training-mode copy": (_ics(train_=True), "measured in training mode: keep the model's mode (eval here)"),
    "relative distance": (_ics(relative=True), "the distance is relative to ||G||"),
    "1 - cosine": (_one_minus_cosine, "this is 1 - cos(G, G')"),
    "G aliased to the zeroed gradient": (_aliased, "what the measurement gives when nothing moves"),
    "one layer short": (_ics(short=True), "the layer just before it was not updated"),
    "returns tensors": (lambda *a: tuple(map(torch.tensor, changed(*a))), "not NumPy arrays or tensors"),
    "compared in half precision": (lambda *a: tuple(float(torch.tensor(v).half()) for v in changed(*a)), "its values are float16 numbers"),
    "0-d arrays returned": (lambda *a: tuple(np.asarray(v) for v in changed(*a)), "not NumPy arrays"),
    "rounded to 4 decimals": (lambda *a: tuple(round(v, 4) for v in changed(*a)), "rounded to 4 decimals"),
    # round 18's observed (issue 28): grad mode at backward() is seen, not guessed among three
    "p = p - lr * p.grad": (_rebound, "no parameter was changed in place"),
    "an optimiser over the caller's model": (_stepped_caller, "changed its input argument #1's parameter 0.weight in place: leave the caller's model as it was"),
    "the whole function under @torch.no_grad()": (torch.no_grad()(changed), "backward() ran with gradients off (in a torch.no_grad()"),
    # rounds 17 and 19's observed: the torch.nn.functional calls and casts, read against the course's
    "cross-entropy summed": (_ics(loss=lambda z, y: F.cross_entropy(z, y, reduction="sum")), "F.cross_entropy(reduction='sum')"),
    "binary cross-entropy on one-hot targets": (_ics(loss=lambda z, y: F.binary_cross_entropy_with_logits(z, F.one_hot(y, 3).to(z.dtype))), "calls F.cross_entropy, which yours never does"),
    "layers chosen by name strings (round 20)": (_by_name_strings, "gradient_change index 6, lr 0.5    | WRONG"),
    "one flat vector (round 20)": (_flat_step, "gradient_change index 0"),
    "lr folded into the loss (round 22)": (_lr_in_loss, "G and G' are lr times the loss's gradients"),
    "functools.lru_cache on it (round 21's false ok)": (functools.lru_cache(maxsize=None)(changed), "changed a functools cache during the call"),
    "(0, 0) at index 0": (_first_short_cut, "the cosine: got 0, expected 1; your code made none of the course's"),
    "(0, 1) in eval mode": (_eval_short_cut, "made none of the course's torch.nn.functional calls (F.batch_norm, F.cross_entropy, F.relu): the model never ran; what is off"),
    "cosine_similarity's default dim": (_cosine_default_dim, "given or by default, is not an axis here"),
    "logits cast to float32": (_ics(loss=lambda z, y: F.cross_entropy(z.float(), y)), "converts torch.float64 to torch.float32"),
}
PROBE = {
    "step sizes as a float32 tensor": (lambda m, x, y, steps: probed(m, x, y, [float(t) for t in torch.tensor(steps)]), "an error of float32's rounding size"),  # round 15's (a false ok once batches changed)
    "normalised gradient": (_probe(normalise=True), "normalised gradient"),
    "cumulative steps": (_probe(cumulative=True), "the steps piled up"),
    "changes the model": (_probe(copy_=False), "work on a copy"),
    "the caller's gradients cleared (round 23)": (lambda m, *a: (probed(m, *a), m.zero_grad())[0], "changed the .grad the caller's model holds"),
    "eval mode": (_probe(eval_=True), "ran in eval mode"),
    "gradient changes left as zeros": (lambda *a: (probed(*a)[0], [0.0] * len(probed(*a)[1])), "not computed, nothing moved"),
    "step sizes sorted": (_probe(sort_=True), "the step sizes were sorted"),
    "returns one list": (lambda m, x, y, steps: probed(m, x, y, steps)[0], "expected a tuple of 2"),
    "losses of the unmoved model": (_unmoved_loss, "what the measurement gives when nothing moves"),
    "changes divided by eta": (_per_eta, "each gradient change is divided by its eta"),
    "under bfloat16 autocast": (_autocast, "not for a float32 one (as the lesson's)"),
    "changes by F.pairwise_distance": (_pairwise, "a term that small added or left out"),
    "step size 0 skipped (round 20)": (lambda m, x, y, steps: probed(m, x, y, [s for s in steps if s]), "a step size of 0"),
    "nll_loss on the raw logits": (_probe(loss_fn=F.nll_loss), "calls F.cross_entropy, which yours never does (yours calls F.nll_loss)"),
    "g taken in training mode (round 24)": (_probe(g_flipped=True), "g was taken in training mode: keep the model's mode (eval here)"),
    "running statistics refreshed at each point (round 24)": (_probe(refresh=True), "so its running statistics (eval mode reads them) changed"),
    "label smoothing": (_probe(loss_fn=lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1)), "F.cross_entropy(label_smoothing=0.1)"),
}
# fmt: on

MUTANTS = [
    *family("noisy_batchnorm", NOISY, "noisy_batchnorm", name="NoisyBatchNorm"),
    *family("gradient_change", ICS, "gradient_change"),
    *family("landscape_probe", PROBE, "landscape_probe"),
]
