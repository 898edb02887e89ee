"""Small nets, training loops and measurements for lesson 07 (why batch norm works).

Everything here is a tool for an experiment, not an answer to an exercise:
MLPs and a CNN whose normalisation layer is chosen by name, a plain SGD loop
that records what the experiments read, batch-norm variants for the ablations
(centring only, scaling only, frozen affine, ghost batches), and the
scale-invariance measurements.  The exercises of the lesson (the noisy batch
norm, the gradient-change measure of internal covariate shift, the
loss-landscape probe) are the learner's; the experiments take them as
arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_
from .evaluation import accuracy  # noqa: F401  (re-exported: eval-mode accuracy)


def mnist(n_test: int = 1000, seed: int = 0):
    """The shipped MNIST digits as tensors: (x_train, y_train, x_test, y_test)."""
    arrays = data_.load_mnist().split(n_test=n_test, seed=seed)
    return tuple(torch.from_numpy(a) for a in arrays)


# --------------------------------------------------------------------------
# batch-norm variants for the ablations
# --------------------------------------------------------------------------


class CenterOnly(nn.Module):
    """Subtracts the batch mean (running mean at eval), then adds beta: no scaling."""

    def __init__(self, num_features: int, momentum: float = 0.1):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            mean = x.mean(0)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
        else:
            mean = self.running_mean
        return x - mean + self.bias


class ScaleOnly(nn.Module):
    """Divides by the batch standard deviation (running one at eval), then scales
    by gamma: no centring (the root mean square about the mean is kept)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.eps, self.momentum = eps, momentum
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if self.training:
            var = x.var(0, correction=0)
            with torch.no_grad():
                self.running_var.lerp_(var, self.momentum)
        else:
            var = self.running_var
        return x / torch.sqrt(var + self.eps) * self.weight


def frozen_affine(num_features: int) -> nn.BatchNorm1d:
    """Batch norm with gamma = 1 and beta = 0 kept fixed (``affine=False``)."""
    return nn.BatchNorm1d(num_features, affine=False)


class GhostBatchNorm1d(nn.BatchNorm1d):
    """Batch norm computed on consecutive ghost batches of ``ghost`` examples
    (Hoffer, Hubara & Soudry 2017); eval mode as usual.  The running averages
    see every ghost batch."""

    def __init__(self, num_features: int, ghost: int, **kw):
        super().__init__(num_features, **kw)
        self.ghost = ghost

    def forward(self, x):
        if not self.training or self.ghost >= len(x):
            return super().forward(x)
        return torch.cat(
            [super(GhostBatchNorm1d, self).forward(c) for c in x.split(self.ghost)]
        )


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda width: nn.Identity(),
    "bn": nn.BatchNorm1d,
    "centre only": CenterOnly,
    "scale only": ScaleOnly,
    "gamma, beta frozen": frozen_affine,
}


# --------------------------------------------------------------------------
# nets
# --------------------------------------------------------------------------


def mlp(
    norm: str | Callable[[int], nn.Module] = "bn",
    depth: int = 4,
    width: int = 100,
    activation: type[nn.Module] = nn.ReLU,
    init_scale: float | None = None,
    norm_after_activation: bool = False,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    """784 -> ``depth`` hidden layers of ``width`` -> 10.

    ``norm`` is a name of :data:`NORMS` or a factory ``width -> module``, placed
    after each hidden affine layer (before the activation, or after it with
    ``norm_after_activation``).  ``init_scale``, when given, draws every weight
    from N(0, init_scale^2) and zeroes the biases (CS231n's weight-scale sweep);
    otherwise PyTorch's default initialisation.
    """
    torch.manual_seed(seed)
    make = NORMS[norm] if isinstance(norm, str) else norm
    layers, fan_in = [], 784
    for _ in range(depth):
        block = [make(width), activation()]
        block = block[::-1] if norm_after_activation else block
        layers += [nn.Linear(fan_in, width), *block]
        layers += [nn.Dropout(dropout)] if dropout else []
        fan_in = width
    model = nn.Sequential(*layers, nn.Linear(fan_in, 10))
    if init_scale is not None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0.0, init_scale)
                    m.bias.zero_()
    return model


CNN_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda c: nn.Identity(),
    "batch norm": nn.BatchNorm2d,
    "layer norm": lambda c: nn.GroupNorm(1, c),
    "instance norm": lambda c: nn.GroupNorm(c, c),
    "group norm": lambda c: nn.GroupNorm(4, c),
}


def cnn(norm: str = "batch norm", channels=(16, 32), seed: int = 0) -> nn.Sequential:
    """A small CNN for 28x28 digits: (conv 3x3, norm, ReLU, max-pool 2) per
    stage, then a linear classifier.  Layer norm is GroupNorm(1, C) (over C, H,
    W of each example), instance norm GroupNorm(C, C) (each channel of each
    example), group norm 4 groups."""
    torch.manual_seed(seed)
    layers, c_in = [], 1
    for c in channels:
        conv = nn.Conv2d(c_in, c, 3, padding=1)
        layers += [conv, CNN_NORMS[norm](c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    side = 28 // 2 ** len(channels)
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        *layers,
        nn.Flatten(),
        nn.Linear(c_in * side**2, 10),
    )


# --------------------------------------------------------------------------
# training and evaluation
# --------------------------------------------------------------------------


def bn_fed_weights(model) -> list[nn.Parameter]:
    """The weights of every linear or convolutional layer whose output goes
    straight into a batch-norm layer: the scale-invariant weights (batch norm
    divides their scale away).  Their biases are left out (batch norm removes
    them too, so their gradient is zero)."""
    modules = [m for m in model.modules() if not isinstance(m, nn.Sequential)]
    return [
        layer.weight
        for layer, after in zip(modules, modules[1:], strict=False)
        if isinstance(layer, nn.Linear | nn.Conv2d)
        and isinstance(after, nn.modules.batchnorm._BatchNorm)
    ]


def optimizer(
    model,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    decay_only: list | None = None,
) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter, or, with
    ``decay_only``, on those parameters only (two parameter groups)."""
    if decay_only is None:
        groups = [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    else:
        chosen = {id(p) for p in decay_only}
        rest = [p for p in model.parameters() if id(p) not in chosen]
        groups = [
            {"params": list(decay_only), "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def sgd(
    model,
    x,
    y,
    steps: int,
    lr: float = 0.1,
    batch: int = 64,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    every: int = 0,
    probe: Callable | None = None,
    decay_only: list | None = None,
    lr_drop: tuple[int, float] | None = None,
):
    """``steps`` steps of SGD on random batches of (x, y), in training mode.

    Returns the history: the training loss of every step (``"loss"``), and,
    every ``every`` steps, ``probe(model, step)`` (``"probes"``, with the steps
    in ``"at"``).  A loss that becomes NaN or infinite stops the run
    (``"diverged"``).  ``weight_decay`` applies to every parameter, or only to
    the parameters in ``decay_only`` (see :func:`optimizer`); ``lr_drop =
    (step, factor)`` multiplies the learning rate by ``factor`` from ``step``
    on.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = optimizer(model, lr, momentum, weight_decay, decay_only)
    history = {"loss": [], "at": [], "probes": [], "diverged": False}
    for step in range(steps):
        if lr_drop is not None and step == lr_drop[0]:
            for group in opt.param_groups:
                group["lr"] = lr * lr_drop[1]
        if every and step % every == 0 and probe is not None:
            history["at"].append(step)
            history["probes"].append(probe(model, step))
        index = torch.randint(len(x), (batch,), generator=gen)
        loss = F.cross_entropy(model.train()(x[index]), y[index])
        if not torch.isfinite(loss):
            history["diverged"] = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
    return history


# --------------------------------------------------------------------------
# scale invariance
# --------------------------------------------------------------------------


def scale_invariance(seed: int = 0, scale: float = 10.0) -> dict:
    """Linear(20, 8) -> BatchNorm1d(8) on a batch: what scaling the weights by
    ``scale`` changes.  Returns the output's change, the weight gradient's
    component along the weights (relative), and the ratio of the gradient
    norms before and after scaling (``scale`` when the gradient shrinks as
    1/||W||)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 20, generator=gen, dtype=torch.float64)
    target = torch.randn(32, 8, generator=gen, dtype=torch.float64)
    torch.manual_seed(seed)
    layer, bn = nn.Linear(20, 8).double(), nn.BatchNorm1d(8).double()
    out = {}
    for name, factor in (("original", 1.0), ("scaled", scale)):
        w = (layer.weight.detach() * factor).requires_grad_()
        y = bn(F.linear(x, w, layer.bias))
        ((y - target) ** 2).mean().backward()
        out[name] = (y.detach(), w.grad, w.detach())
    (y1, g1, w1), (y2, g2, _) = out["original"], out["scaled"]
    return {
        "output change": (y1 - y2).abs().max().item(),
        "gradient along the weights": (g1 * w1).sum().abs().item()
        / (g1.norm() * w1.norm()).item(),
        "gradient norm ratio": (g1.norm() / g2.norm()).item(),
    }


def rescale_to_he(model, scale: float, bn_fed: bool = True, classifier: bool = False):
    """Multiply weights drawn from N(0, ``scale``^2) by sqrt(2 / fan_in) / scale,
    to He's scale: those of the layers that feed a batch norm (``bn_fed``: the
    function does not change, up to eps) and/or the last linear layer
    (``classifier``: it does, since no normalisation follows it).  In place;
    returns the model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    chosen = {id(w) for w in bn_fed_weights(model)} if bn_fed else set()
    with torch.no_grad():
        for layer in linears:
            last = layer is linears[-1]
            if id(layer.weight) in chosen or (classifier and last):
                layer.weight.mul_((2 / layer.in_features) ** 0.5 / scale)
    return model


def train_only(model, part: str):
    """Freeze every parameter except ``part``: "gamma, beta" (the affine
    parameters of every batch-norm layer: Frankle, Schwab & Morcos's
    BatchNorm-only training) or "classifier" (the last linear layer: a
    linear read-out of random features).  In place; returns the model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    keep = {
        "gamma, beta": [
            p
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters()
        ],
        "classifier": list(linears[-1].parameters()),
    }[part]
    chosen = {id(p) for p in keep}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return model


def first_layer_norm(model) -> float:
    """||W|| of the first linear layer."""
    return (
        next(m for m in model.modules() if isinstance(m, nn.Linear))
        .weight.norm()
        .item()
    )
