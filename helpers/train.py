"""Lesson 05's CIFAR-10 training loop (the lesson is the comparison, not the loop).

It is the loop a careful learner writes, no faster per epoch:
``benchmarks/bench_05_cifar.py``'s ``plain_recipe`` is that loop in some 40
lines with the same precision, and the engine costs the same CPU-seconds per
epoch (the benchmark's docstring: where the time goes, and the pinned
side-by-side measurement).  What it adds is bookkeeping the lessons need: a
per-epoch history, untimed warm-up, divergence detection, the schedules the
lesson compares.  Design, for a free Colab T4 and for a 2-core CPU alike:

* the whole data set lives on the device as one tensor, normalised once
  (float16 on CUDA, float32 on the CPU), in channels_last layout;
* augmentation (random crop after padding, horizontal flip) is done for a
  whole batch at once on the device with index arithmetic: no per-image
  Python work and no DataLoader workers (Colab has 2 CPU cores; a per-image
  pipeline would be the bottleneck);
* batches are slices of a random permutation of the indices;
* the device policy is one object (``Policy``): on CUDA fp16 autocast with a
  gradient scaler (the T4 has no bf16), fused SGD, ``cudnn.benchmark``, a
  clock read after ``torch.cuda.synchronize``; on the CPU bf16 autocast where
  the CPU has bf16 units (``helpers.config.cpu_bf16``), fp32 elsewhere; the
  tests run the CUDA policy on the CPU;
* the loss is summed on the device and read once per epoch, never per step;
* a few untimed warm-up steps on a copy of the model before the clock starts,
  so first-call costs are charged to no run;
* the same code path everywhere; the device and the budget come from
  ``helpers.config``.

``train`` returns a per-epoch history (train loss, test loss, test accuracy,
wall time, learning rate) that ``helpers.runs`` can cache as JSON, so plots
re-render without retraining.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import config

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _torch():
    import torch

    return torch


# --------------------------------------------------------------------------
# data on the device
# --------------------------------------------------------------------------


class DeviceData:
    """Train and test images as normalised tensors on one device.

    ``images`` are uint8 arrays (N, 32, 32, 3) as ``helpers.data`` returns
    them; they are converted and normalised once here.
    """

    def __init__(self, cifar, device=None, n_train=None, n_test=None, seed=0):
        torch = _torch()
        self.device = torch.device(device or config.device())
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        rng = np.random.default_rng(seed)
        train_idx = np.arange(len(cifar.x_train))
        test_idx = np.arange(len(cifar.x_test))
        if n_train is not None and n_train < len(train_idx):
            train_idx = np.sort(rng.choice(train_idx, n_train, replace=False))
        if n_test is not None and n_test < len(test_idx):
            test_idx = np.sort(rng.choice(test_idx, n_test, replace=False))
        self.x_train = self._to_device(cifar.x_train[train_idx])
        self.y_train = torch.as_tensor(cifar.y_train[train_idx], device=self.device)
        self.x_test = self._to_device(cifar.x_test[test_idx])
        self.y_test = torch.as_tensor(cifar.y_test[test_idx], device=self.device)
        self.classes = cifar.classes
        self.source = cifar.source

    def _to_device(self, images_uint8):
        torch = _torch()
        x = torch.as_tensor(images_uint8, device=self.device).permute(0, 3, 1, 2)
        mean = torch.tensor(CIFAR_MEAN, device=self.device).view(1, 3, 1, 1) * 255
        std = torch.tensor(CIFAR_STD, device=self.device).view(1, 3, 1, 1) * 255
        x = ((x.float() - mean) / std).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last)

    def __repr__(self) -> str:
        return (
            f"DeviceData({len(self.x_train):,} train, {len(self.x_test):,} test on "
            f"{self.device}, {str(self.dtype).replace('torch.', '')})"
        )


def crop_flip(images, padding=4, generator=None, mode="constant"):
    """Random crops (after zero padding) and horizontal flips of a whole batch.

    Done with index arithmetic on the batch's device: the padded batch is
    indexed with per-image row and column offsets, so no Python loop runs
    per image.  ``images`` is (N, C, H, W); the result has the same shape.
    ``mode="reflect"`` pads with the mirrored border instead of zeros.
    """
    torch = _torch()
    n, c, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4, mode=mode)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    return out.contiguous(memory_format=torch.channels_last)


def flip_shear_zoom(images, shear_degrees=0.2, zoom=0.2, generator=None):
    """Keras's ``ImageDataGenerator(horizontal_flip=True, shear_range=0.2,
    zoom_range=0.2)``, the slides' augmentation, for a whole batch on its device.

    Per image: a zoom factor for each axis drawn from [1 - zoom, 1 + zoom], a
    shear angle from [-shear_degrees, shear_degrees] (Keras's ``shear_range`` is
    in degrees: 0.2 is a fifth of a degree, next to nothing), edges filled with
    the nearest pixel (Keras's default), then a coin-flip mirror.  One
    ``affine_grid`` + ``grid_sample`` call does every image at once.
    """
    torch = _torch()
    F = torch.nn.functional
    n, device = len(images), images.device

    def uniform(low, high):
        u = torch.rand(n, device=device, generator=generator)
        return low + (high - low) * u

    zx, zy = uniform(1 - zoom, 1 + zoom), uniform(1 - zoom, 1 + zoom)
    shear = torch.deg2rad(uniform(-shear_degrees, shear_degrees))
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = zx  # Keras: shear matrix [[1, -sin s], [0, cos s]] @ zoom
    theta[:, 0, 1] = -torch.sin(shear) * zy
    theta[:, 1, 1] = torch.cos(shear) * zy
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    theta[:, 0, 0] = torch.where(flip, -theta[:, 0, 0], theta[:, 0, 0])
    grid = F.affine_grid(theta.to(images.dtype), images.shape, align_corners=False)
    out = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def translate2_flip(images, generator=None):
    """airbench's augmentation: flips and translations of up to 2 pixels, the
    border reflected (``crop_flip`` with ``padding=2, mode="reflect"``)."""
    return crop_flip(images, padding=2, generator=generator, mode="reflect")


AUGMENTATIONS = {
    "crop_flip": crop_flip,
    "flip_shear_zoom": flip_shear_zoom,
    "translate2_flip": translate2_flip,
}


# --------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------


def make_vgg(
    widths=(32, 64, 128, 256),
    norm="bn",
    activation="relu",
    dropout=0.0,
    classes=10,
    pool_first=False,
):
    """A VGG-style CNN: one 3x3 conv per block, then max-pooling.

    Every block but the first halves the resolution; with ``pool_first`` the
    first does too (four times less compute, for CPUs).

    ``norm``: "bn" (conv without bias -> BN -> activation), "bn_after"
    (conv with bias -> activation -> BN) or "none" (conv with bias -> activation).
    ``activation``: "relu" or "sigmoid".  ``dropout`` before the classifier.
    """
    torch = _torch()
    nn = torch.nn
    if norm not in ("bn", "bn_after", "none"):
        raise ValueError(f"norm={norm!r}: use 'bn', 'bn_after' or 'none'")
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
    layers, c_in = [], 3
    for i, width in enumerate(widths):
        # a bias right before BN is redundant (BN subtracts the mean); before a
        # ReLU it is not, so "bn_after" keeps it
        conv = nn.Conv2d(c_in, width, 3, padding=1, bias=(norm != "bn"))
        if norm == "bn":
            layers += [conv, nn.BatchNorm2d(width), act()]
        elif norm == "bn_after":
            layers += [conv, act(), nn.BatchNorm2d(width)]
        else:
            layers += [conv, act()]
        if i > 0 or pool_first:
            layers.append(nn.MaxPool2d(2))
        c_in = width
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, classes))
    return nn.Sequential(*layers)


def make_airbench(widths=(64, 128, 128), classes=10, dirac=True, gelu=True):
    """Keller Jordan's airbench net (``airbench93``'s widths by default), the
    fast recipe's net.

    A 2x2 convolution without padding whose 24 filters are the train set's
    patch-whitening transform and its negative (frozen; ``init_whitening``
    sets them), a GELU, then three groups of conv 3x3 -> max-pool 2 -> BN ->
    GELU -> conv 3x3 -> BN -> GELU, a 3x3 max-pool, a linear layer without
    bias and the logits scaled by 1/9.  The BN layers have no learned scale
    (a ReLU-like unit commutes with it), eps 1e-12 and momentum 0.4 (airbench's
    0.6 in the other convention); with ``dirac`` each convolution starts as an
    identity on its first input channels (``torch.nn.init.dirac_``) plus
    PyTorch's default draw.  ``gelu=False`` puts ReLUs instead.
    """
    torch = _torch()
    nn = torch.nn
    act = nn.GELU if gelu else nn.ReLU

    class Scale(nn.Module):
        def forward(self, x):
            return x / 9

    def conv(c_in, c_out):
        layer = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        if dirac:
            with torch.no_grad():
                nn.init.dirac_(layer.weight[:c_in])
        return layer

    def bn(c):
        norm = nn.BatchNorm2d(c, eps=1e-12, momentum=0.4)
        norm.weight.requires_grad_(False)
        return norm

    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    whiten.weight.requires_grad_(False)
    layers, c_in = [whiten, act()], 24
    for width in widths:
        layers += [conv(c_in, width), nn.MaxPool2d(2), bn(width), act()]
        layers += [conv(width, width), bn(width), act()]
        c_in = width
    layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(c_in, classes, bias=False)]
    return nn.Sequential(*layers, Scale())


def init_whitening(model, images, eps=5e-4):
    """Set the first layer of ``make_airbench``'s net to whiten 2x2 patches of
    ``images`` (normalised, N x 3 x 32 x 32; airbench uses 5,000 train images):
    the eigenvectors of the patches' covariance, each divided by the square
    root of its eigenvalue, and their negatives."""
    torch = _torch()
    layer = model[0]
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    with torch.no_grad():
        x = images.float()
        patches = (
            x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
        )
        covariance = patches.T @ patches / len(patches)
        values, vectors = torch.linalg.eigh(covariance)
        values, vectors = values.flip(0), vectors.T.flip(0)
        scaled = (vectors / torch.sqrt(values + eps)[:, None]).reshape(-1, c, h, w)
        layer.weight.copy_(torch.cat((scaled, -scaled)))
    return model


# The slides' Inception network (KieferN/Batch_Normalization): GoogLeNet's
# modules 3a-5b, without its stem.  Per module: 1x1, 3x3 reduce, 3x3,
# 5x5 reduce, 5x5, pool projection; "pool" is a 3x3 max-pool with stride 2.
INCEPTION_MODULES = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    "pool",
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    "pool",
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)


def _inception_conv(c_in, c_out, kernel, norm):
    """Conv (no bias, as in the slides' code) -> BN without a learned scale -> ReLU.

    Keras's ``BatchNormalization(scale=False)`` keeps beta and fixes gamma at
    1: a ReLU commutes with a positive scale, so the next convolution can
    absorb it.  Here gamma is a BN weight frozen at 1 (``requires_grad``
    False).  BN's momentum and eps are PyTorch's (0.1, 1e-5), not Keras's
    (0.99 in Keras's convention, 1e-3): with Keras's, the running averages of
    a run of a few dozen steps would still be mostly their initial values.
    """
    torch = _torch()
    nn = torch.nn
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)]
    if norm == "bn":
        bn = nn.BatchNorm2d(c_out)
        bn.weight.requires_grad_(False)
        layers.append(bn)
    return [*layers, nn.ReLU()]


def make_inception(norm="bn", width=1.0, classes=10):
    """The slides' Inception network for CIFAR-10, ported from their Keras code.

    Nine inception modules (``INCEPTION_MODULES``) on the 32x32 input, 3x3
    max-pooling with stride 2 after 3b and 4e, global average pooling, one
    linear layer (the softmax is in the loss).  ``norm``: "bn" (BN after every
    convolution, before its ReLU, gamma frozen at 1) or "none".  ``width``
    scales every module's channels (1.0 is the slides' net; lesson 05's CPU
    budgets use a quarter of it, a sixteenth of the FLOPs).
    """
    torch = _torch()
    nn = torch.nn
    if norm not in ("bn", "none"):
        raise ValueError(f"norm={norm!r}: use 'bn' or 'none'")

    class Module(nn.Module):
        def __init__(self, c_in, c1, r3, c3, r5, c5, cp):
            super().__init__()
            self.branches = nn.ModuleList(
                [
                    nn.Sequential(*_inception_conv(c_in, c1, 1, norm)),
                    nn.Sequential(
                        *_inception_conv(c_in, r3, 1, norm),
                        *_inception_conv(r3, c3, 3, norm),
                    ),
                    nn.Sequential(
                        *_inception_conv(c_in, r5, 1, norm),
                        *_inception_conv(r5, c5, 5, norm),
                    ),
                    nn.Sequential(
                        nn.MaxPool2d(3, stride=1, padding=1),
                        *_inception_conv(c_in, cp, 1, norm),
                    ),
                ]
            )
            self.channels = c1 + c3 + c5 + cp

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    layers, c_in = [], 3
    for spec in INCEPTION_MODULES:
        if spec == "pool":
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            continue
        module = Module(c_in, *(max(1, round(c * width)) for c in spec[1:]))
        layers.append(module)
        c_in = module.channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


# NVIDIA T4 datasheet: 65 TFLOPS of fp16 on its tensor cores, 320 GB/s of memory.
T4_FP16_FLOPS = 65e12


def forward_flops(model, image_shape=(3, 32, 32)) -> int:
    """FLOPs (2 per multiply-add) of one image's forward pass through every
    ``Conv2d`` and ``Linear`` of ``model``; normalisation, activations and
    pooling are memory-bound and not counted.  Measured with forward hooks on a
    zero image, so any architecture counts right."""
    torch = _torch()
    total = [0]

    def conv(module, inputs, output):
        per_output = (module.in_channels // module.groups) * math.prod(
            module.kernel_size
        )
        total[0] += 2 * output.numel() * per_output

    def linear(module, inputs, output):
        total[0] += 2 * output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *image_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total[0]


def projected_seconds(flops_per_image, images, peak=T4_FP16_FLOPS, utilisation=0.3):
    """Training time projected from FLOPs: forward + backward is about 3 forward
    passes, at ``utilisation`` of the peak (an assumption to state beside every
    projected figure: small CNNs reach some 20-40% of a GPU's tensor peak)."""
    return 3 * flops_per_image * images / (peak * utilisation)


def count_bn_layers(model) -> int:
    torch = _torch()
    return sum(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()
    )


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """One run's settings.  ``lr`` is the peak of a one-cycle schedule (the
    starting rate of a step schedule)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.2  # share of the steps spent warming up
    augment: bool = True
    augmentation: str = "crop_flip"  # or "flip_shear_zoom" (the slides' Keras one)
    seed: int = 0
    # "one-cycle"; "constant" (lesson 05's learning-rate stress test); "step":
    # lr x 0.1 every ``step_epochs`` epochs (the slides' schedule)
    schedule: str = "one-cycle"
    step_epochs: int = 10
    nesterov: bool = True
    # the fast recipe's parts (airbench, Page): one-cycle from lr * lr_start up
    # to lr, then down to lr * lr_end; BN parameters at bias_lr_scale times the
    # rate; test-time augmentation of the final evaluation (1: mirror, 2:
    # mirror and 1-pixel translations).  No lookahead: airbench's bought
    # nothing measurable here (data/reference/05_fast_ablation.json)
    lr_start: float = 0.0
    lr_end: float = 0.0
    bias_lr_scale: float = 1.0
    tta: int = 0
    extra: dict = field(default_factory=dict)  # anything else worth recording

    def asdict(self) -> dict:
        return asdict(self)


def _lr_at(step, total, peak, warmup, start=0.0, end=0.0):
    """Linear warm-up to ``peak``, then linear decay to 0 (one cycle); with
    ``start`` or ``end``, from ``peak * start`` and down to ``peak * end``."""
    up = max(1, int(total * warmup))
    if step < up:
        frac = (step + 1) / up
        return peak * (start + (1 - start) * frac)
    frac = max(0.0, (total - step) / max(1, total - up))
    return peak * (end + (1 - end) * frac)


@dataclass(frozen=True)
class Policy:
    """How one device trains, in one place: the autocast dtype (None: float32),
    the gradient scaler, the fused optimiser, cuDNN's autotuner, and whether the
    clock waits for the device.  ``Policy.for_device`` picks them; every field
    is plain, so ``tests/test_train.py`` runs the CUDA policy on the CPU
    (fp16 autocast, ``GradScaler("cpu")``, fused SGD) and a typo in a CUDA-only
    line fails there.
    """

    device: object  # a torch.device
    autocast_dtype: object = None  # torch.float16, torch.bfloat16 or None
    grad_scaler: bool = False
    fused: bool = False
    cudnn_benchmark: bool = False
    synchronize: bool = False  # torch.cuda.synchronize() before reading a clock

    @classmethod
    def for_device(cls, device, cpu_bf16=False) -> Policy:
        """CUDA: fp16 autocast with a scaler (the T4 has no bf16), fused SGD (the
        scaler hands it the overflow flag: no host read per step), cuDNN's
        autotuner, a synchronised clock.  CPU: bf16 autocast if ``cpu_bf16``
        (fast only with AMX or AVX-512-BF16, see ``config.cpu_bf16``), else fp32.
        """
        torch = _torch()
        device = torch.device(device)
        if device.type == "cuda":
            return cls(device, torch.float16, True, True, True, True)
        return cls(device, torch.bfloat16 if cpu_bf16 else None)

    def on(self, device) -> Policy:
        """The same choices on another device (the tests run CUDA's on the CPU)."""
        return replace(self, device=_torch().device(device))

    def autocast(self):
        torch = _torch()
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def scaler(self):
        return _torch().amp.GradScaler(self.device.type, enabled=self.grad_scaler)

    def generator(self, seed):
        return _torch().Generator(device=self.device).manual_seed(seed)

    def prepare(self, model):
        torch = _torch()
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        return model.to(device=self.device, memory_format=torch.channels_last)

    def optimizer(self, model, cfg: TrainConfig):
        """SGD (Nesterov by default); no weight decay on BN parameters and
        biases; BN parameters at ``cfg.bias_lr_scale`` times the rate (the
        ``lr_scale`` of their group; ``_Run`` applies it)."""
        torch = _torch()
        norms = {
            id(p)
            for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for p in m.parameters()
        }
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim > 1]},
            {
                "params": [p for p in params if p.ndim <= 1 and id(p) not in norms],
                "weight_decay": 0.0,
            },
            {
                "params": [p for p in params if id(p) in norms],
                "weight_decay": 0.0,
                "lr_scale": cfg.bias_lr_scale,
            },
        ]
        return torch.optim.SGD(
            [g for g in groups if g["params"]],
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
            fused=self.fused,
        )

    def clock(self) -> float:
        """Wall-clock seconds, after the device has finished its queued work."""
        if self.synchronize:
            _torch().cuda.synchronize()
        return time.perf_counter()

    def describe(self) -> str:
        dtype = str(self.autocast_dtype).replace("torch.", "")
        precision = "float32" if self.autocast_dtype is None else f"{dtype} autocast"
        return precision + (" with a gradient scaler" if self.grad_scaler else "")


def evaluate(model, data, batch_size=256, cpu_bf16=False, policy=None, tta=0):
    """(test loss, test accuracy) in eval mode, with ``tta`` the level of
    test-time augmentation (``tta_logits``).  Batches of 256: batches of
    1,000 cost twice as much per image on the CPU (their activations outgrow
    the caches; ``benchmarks/bench_05_cifar.py``'s docstring)."""
    torch = _torch()
    policy = policy or Policy.for_device(data.device, cpu_bf16)
    model.eval()
    loss = correct = 0
    with torch.no_grad(), policy.autocast():
        for i in range(0, len(data.x_test), batch_size):
            x, y = data.x_test[i : i + batch_size], data.y_test[i : i + batch_size]
            logits = tta_logits(model, x, tta)
            loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    n = len(data.x_test)
    return float(loss) / n, int(correct) / n


def tta_logits(model, x, level):
    """Logits averaged over test-time views: 0 the image; 1 it and its mirror;
    2 also both shifted by one pixel up-left and down-right (reflected
    border), the shifts weighted half as a whole (airbench's weighting)."""
    torch = _torch()
    if level == 0:
        return model(x).float()
    logits = (model(x).float() + model(x.flip(-1)).float()) / 2
    if level == 1:
        return logits
    padded = torch.nn.functional.pad(x, (1,) * 4, mode="reflect")
    h, w = x.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
    views = [
        tta_logits(model, v.contiguous(memory_format=torch.channels_last), 1)
        for v in shifted
    ]
    return logits / 2 + (views[0] + views[1]) / 4


class _Run:
    """One training run: model, optimiser, scaler, generator, schedule."""

    def __init__(self, model, data: DeviceData, cfg: TrainConfig, policy: Policy):
        torch = _torch()
        if cfg.schedule not in ("one-cycle", "constant", "step"):
            raise ValueError(
                f"schedule={cfg.schedule!r}: use one-cycle, constant or step"
            )
        self.n = len(data.x_train)
        if self.n == 0:
            raise ValueError("train(): the data set has no training images")
        self.data, self.cfg, self.policy = data, cfg, policy
        torch.manual_seed(cfg.seed)
        self.gen = policy.generator(cfg.seed)
        self.model = policy.prepare(model)
        self.optimizer = policy.optimizer(self.model, cfg)
        self.scaler = policy.scaler()
        self.augment = AUGMENTATIONS[cfg.augmentation] if cfg.augment else None
        # a data set smaller than one batch trains on all of it, once per epoch
        self.batch_size = min(cfg.batch_size, self.n)
        self.steps_per_epoch = self.n // self.batch_size
        self.total = self.steps_per_epoch * cfg.epochs
        self.step = 0
        self.lr = self.rate()

    def rate(self) -> float:
        """This step's learning rate (a Python float: no device read)."""
        cfg = self.cfg
        if cfg.schedule == "constant":
            return cfg.lr
        if cfg.schedule == "step":
            return cfg.lr * 0.1 ** (
                self.step // self.steps_per_epoch // cfg.step_epochs
            )
        return _lr_at(
            self.step, self.total, cfg.lr, cfg.warmup, cfg.lr_start, cfg.lr_end
        )

    def train_step(self, x, y):
        """One step on a batch; the loss stays on the device."""
        torch = _torch()
        if self.augment is not None:
            x = self.augment(x, generator=self.gen)
        self.lr = self.rate()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * group.get("lr_scale", 1.0)
        with self.policy.autocast():
            loss = torch.nn.functional.cross_entropy(
                self.model(x), y, label_smoothing=self.cfg.label_smoothing
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return loss.detach()

    def epoch(self, bar):
        """One pass over a random permutation; the summed loss, on the device."""
        torch, data, b = _torch(), self.data, self.batch_size
        self.model.train()
        order = torch.randperm(self.n, device=data.device, generator=self.gen)
        running = torch.zeros((), device=data.device)
        for i in bar:
            idx = order[i * b : (i + 1) * b]
            running += self.train_step(data.x_train[idx], data.y_train[idx]).float() * b
        return running

    def warm_up(self, steps: int) -> float:
        """``steps`` untimed steps on a copy (its own optimiser and generator);
        seconds spent.  First calls are slow (oneDNN building kernels, cuDNN's
        autotuner), and whichever net ran first would be charged for them; the
        real run is left bit for bit as it would be (``tests/test_train.py``)."""
        if steps <= 0:
            return 0.0
        torch = _torch()
        start = self.policy.clock()
        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # dropout draws: given back after
            spare = _Run(
                copy.deepcopy(self.model),
                self.data,
                replace(self.cfg, seed=self.cfg.seed + 1),
                self.policy,
            )
            x, y = (
                self.data.x_train[: self.batch_size],
                self.data.y_train[: self.batch_size],
            )
            for _ in range(steps):
                spare.train_step(x, y)
        return self.policy.clock() - start


def train(
    model,
    data: DeviceData,
    cfg: TrainConfig,
    progress=True,
    label="",
    cpu_bf16=False,
    on_epoch=None,
    warmup_steps=2,
    policy: Policy | None = None,
):
    """Train ``model`` on ``data``; return the per-epoch history (a JSON-able dict).

    ``policy`` defaults to ``Policy.for_device(data.device, cpu_bf16)``.
    ``seconds`` is wall-clock training time (evaluation excluded; the clock
    waits for the device) and ``cpu_seconds`` the CPU time this process spent
    on it (all its threads), both cumulative per epoch.  Neither includes the
    ``warmup_steps`` untimed steps run first on a copy of the model
    (``warmup_seconds`` records them), so per-second comparisons do not depend
    on which net ran first.

    A loss that becomes NaN or infinite ends the run after that epoch: the
    history then records ``diverged: True`` and the remaining epochs are not
    run (a result to show, not an error to hide).  The loss is read from the
    device once per epoch, never inside a step (``tests/test_train.py``
    counts).  ``on_epoch(history)`` is called after every epoch (the benchmark
    prints from it); if it returns True the run ends there (the learning-rate
    schedule stays the one planned for ``cfg.epochs``).  With ``cfg.tta`` the
    last epoch is evaluated once more with test-time augmentation, timed:
    ``tta_accuracy``, ``tta_seconds`` and ``tta_cpu_seconds``.
    """
    from tqdm.auto import tqdm

    policy = policy or Policy.for_device(data.device, cpu_bf16)
    run = _Run(model, data, cfg, policy)
    history = {"epoch": [], "train_loss": [], "test_loss": [], "test_accuracy": []}
    history.update(seconds=[], lr=[], cpu_seconds=[], diverged=False)
    history.update(config=cfg.asdict(), device=str(data.device), train_images=run.n)
    history["precision"] = policy.describe()
    history["warmup_seconds"] = round(run.warm_up(warmup_steps), 3)
    elapsed = cpu = 0.0
    for epoch in range(1, cfg.epochs + 1):
        start, cpu_start = policy.clock(), time.process_time()
        bar = tqdm(
            range(run.steps_per_epoch),
            desc=f"{label} epoch {epoch}/{cfg.epochs}".strip(),
            leave=False,
            disable=not progress,
        )
        running = run.epoch(bar)
        elapsed += policy.clock() - start  # training time only, not evaluation
        cpu += time.process_time() - cpu_start
        train_loss = running.item() / (run.steps_per_epoch * run.batch_size)
        test_loss, test_acc = evaluate(run.model, data, policy=policy)
        history["diverged"] = not math.isfinite(train_loss)
        history["epoch"].append(epoch)
        history["train_loss"].append(train_loss if math.isfinite(train_loss) else None)
        history["test_loss"].append(test_loss if math.isfinite(test_loss) else None)
        history["test_accuracy"].append(test_acc)
        history["seconds"].append(round(elapsed, 3))
        history["cpu_seconds"].append(round(cpu, 3))
        history["lr"].append(run.lr)
        last = epoch == cfg.epochs
        if cfg.tta and last and not history["diverged"]:
            # the recipe's final evaluation is part of its cost: timed
            start, cpu_start = policy.clock(), time.process_time()
            _, accuracy = evaluate(run.model, data, policy=policy, tta=cfg.tta)
            history["tta_accuracy"] = accuracy
            history["tta_seconds"] = round(policy.clock() - start, 3)
            history["tta_cpu_seconds"] = round(time.process_time() - cpu_start, 3)
        stop = on_epoch(history) if on_epoch is not None else False
        if history["diverged"] or stop:
            break
    return history
