"""Lesson 05: train the BN and the no-BN net on full CIFAR-10 and time the pipeline.

    BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz \\
        python benchmarks/bench_05_cifar.py [--epochs 15] [--widths 48,96,192,384]
            [--pool-first] [--bf16] [--batch 256] [--lr 0.2] [--out results.json]

First prints the share of a training step spent on data handling (batch
selection and augmentation, done on the device by ``helpers.train``) against a
per-image ``torch.utils.data.DataLoader`` baseline written here, which crops
and flips one image at a time as a typical tutorial pipeline does (see
``pipeline_costs``); then trains each net and prints, per epoch, its test
accuracy and training images per second.  ``--share-only`` stops after the
first part.

The rates are not tuned: ``--lr`` for the BN net and a quarter of it for the
net without BN.  The lesson's own sweep (smaller budget, batch 128) puts the
best rate of the net without BN *above* the BN net's (the outside review of
2026-12-06, W3), so these figures do not compare each net at its best rate.
``--seeds 0,1,2 --lr-sweep 0.05,0.1,0.2`` (``seed_study``) repeats the pair
over seeds and tries rates.  Its run of 2026-12-06
(``data/reference/05_seeds.json``, ``benchmarks/results/bench_05_seeds.*``;
``--epochs 4 --widths 48,96,192,384 --pool-first --bf16 --batch 256 --lr 0.2
--lr-none 0.05 --skip-pipeline --threads 1``: the 15-epoch pair's nets and
settings at 4 epochs, to fit 40 CPU-minutes; 12 runs of 132-154 CPU-s on
one thread): at the untuned rates, with BN 78.80% (78.60-79.01) and without
71.33% (71.24-71.45) over the three seeds; on seed 0, BN 78.14%, 78.92% and
79.01% at 0.05, 0.1 and 0.2, no BN 71.29%, 75.12% and 63.04%; each at its
best (BN 0.2, no BN 0.1) over the three seeds, BN 78.80% and no BN 74.74%
(74.22-75.12): a gap of 3.7-4.6 points in every seed instead of 7.2-7.7.

The device comes from ``--device`` or ``BNCOURSE_DEVICE`` (``cpu``, ``cuda``,
default auto), as in the lesson, and is recorded with its name; on CUDA the
engine uses fp16 autocast with a gradient scaler, and the timings wait for the
GPU (``torch.cuda.synchronize``) before reading the clock.  ``--bf16`` turns on
bfloat16 autocast on the CPU (fast on CPUs with AMX or AVX-512-BF16, slower
elsewhere; the lesson turns it on where the CPU has them).  Every run is
warmed up untimed first (``helpers.train``), so no net is charged for first
calls.  ``--nets plain`` adds the baseline, a plain PyTorch loop of the
engine's precision (``plain_recipe``), and with ``bn`` a race to ``--target``
accuracy in wall and CPU seconds.  Compare figures within one run: the
machine is shared and noisy.

The fast recipe (``--nets fast``, ``fast_recipe``): the engine running what the
fastest CIFAR-10 training uses, Keller Jordan's airbench
(github.com/KellerJordan/cifar10-airbench, ``airbench93``'s widths 64-128-128;
David Page's "How to train your ResNet" before it): its net
(``train.make_airbench``: a frozen first layer that whitens 2x2 patches of the
training images, GELUs, BN without a learned scale, identity-initialised
convolutions, logits scaled by 1/9), batch 1,024, its hyperparameters (rate 1.5
on a mean loss, momentum 0.85, weight decay 0.0153/11.5 of the rate, BN biases
at 64 times the rate, label smoothing 0.2, one cycle from a fifth of the peak
to 7% of it), 2-pixel reflected translations, and its test-time flips and
shifts, for 4 epochs; not its lookahead, which bought nothing here (below).
Its time to a target counts the whitening layer's set-up, and the final
evaluation with test-time augmentation where only that evaluation reaches the
target. Not taken from airbench: its alternating
flips, the whitening bias frozen after 3 epochs, weight decay on BN biases, and
its step-exact fractional epochs. ``--nets fast-<part>[+<part>]`` runs it
without the parts named (``ABLATIONS``), and ``--collect`` gathers such runs'
``--out`` files in one ablation record.

The race, 2026-12-06 (``data/reference/05_race.json``,
``benchmarks/results/bench_05_race_cpu.json``; ``--nets fast,plain
--stop-at-target``, the plain loop's 14-epoch schedule of the 2026-12-01 race,
one process on 2 threads with ``OMP_WAIT_POLICY=PASSIVE`` (a first try with
spinning OpenMP threads charged an epoch 2.2 times the CPU-seconds it costs one
thread, on the loaded machine), a 2-core AMD EPYC with AVX-512-BF16, bf16
autocast on both sides, load average 2-110 from other jobs): the plain loop
reached 84% at epoch 13 (84.34%) after 1310 CPU-seconds (2564 s), its epochs
costing 72-137 CPU-s; the fast recipe reached 84.52% at its 4th and last epoch
(per epoch 54.3%, 70.5%, 78.2%, 84.5%) after 342 CPU-seconds, the whitening
set-up (0.4 CPU-s) included, its epochs costing 81-87 CPU-s: **0.26 times the
plain loop's CPU-seconds** (0.38 times its wall time; the fast recipe ran while
the machine was busiest).  Half a point above the target, one seed: its
test-time views (not needed, not counted) took it to 85.63% for 18 more
CPU-seconds.  During the plain loop's epoch 13 the running process's race
report was replaced by the committed one, which only adds a bound for a plain
loop stopped short of the target (``--plain-cpu-budget``; unused: it reached
84%).

One thread, the two side by side, each with ``--threads 1`` pinned to its own
core (``--nets fast`` and ``--nets plain`` at the same time, then
``--race-from`` their ``--out`` files into ``05_race.json``'s ``one_thread``;
``benchmarks/results/bench_05_race_1thread_measured.sh`` and its ``.json`` and
``.log`` files), 2026-12-06, after lookahead's deletion: the fast recipe
reached 84.57% at epoch 4 after 250 CPU-seconds (991 s), the plain loop 84.27%
at epoch 13 after 886 CPU-seconds (3055 s): **0.28 times the plain loop's
CPU-seconds** (0.32 times its wall time; load average 3-36 from other jobs).
Each side's accuracies are those of the earlier, stopped one-thread runs
epoch for epoch (``bench_05_race_1thread_*.log``; one thread is
deterministic), the fast recipe's those of its run without lookahead
(below).  One thread costs less CPU per epoch than two (the plain loop 65-71
CPU-s, mean 68, against 72-137, mean 101; the fast recipe 62-64 against
81-87): on two threads both loops pay for the threads' synchronisation.

What some parts buy (``data/reference/05_fast_ablation.json``, from the runs'
``--out`` files in ``benchmarks/results/``; one seed each, full CIFAR-10, 4
epochs, bf16, one thread; the final accuracy with test-time views and without,
and the CPU-seconds of the whole run; wall times meaningless, some runs were
paused): the recipe 85.76% and 84.82%, 251 CPU-s (the one-thread race's run;
the views add 0.9 points for 18 CPU-s); without the whitening layer (PyTorch's
draw, trained) 84.34% and 83.21%, 249 CPU-s: 1.6 points less, short of 84%;
with ReLUs for GELUs 85.08% and 84.20%, 261 CPU-s; without lookahead 85.81% and
84.57%, 252 CPU-s: lookahead bought nothing measurable at this budget, within
one seed's noise, and was deleted from the engine (the 2-thread race ran
with it, the measured 1-thread race without); batch 512 at half the rate
86.21% and 84.90%, 259 CPU-s, no worse and as cheap: a larger batch buys
nothing on a CPU, where a step costs in proportion to its images.  Not
measured for lack of CPU time: the identity initialisation, the BN biases'
64-fold rate, label smoothing 0.2 against 0.1, the schedule's floor, the
reflected 2-pixel translations (``ABLATIONS`` names each; ``--nets
fast-<name>`` runs one).  The rates of the lesson's BN and no-BN
pair are not tuned (above).

Where the engine's time goes (``benchmarks/profile_05_engine.py``, 2026-12-06,
before the engine was trimmed; the race's configuration: VGG 32-64-128-256 with
BN, batch 256, bf16 autocast, one thread pinned to one core of the 2-core AMX
Xeon, the machine shared with other jobs (load average 8-20), median of 40
steps; ``benchmarks/results/profile_05_engine_before.json``): a step cost
about 363 ms, of which the forward with the loss 35%, the backward 62%, the
batched crop-and-flip 1.6% (5.7 ms), batch selection 0.2%, the optimiser
(SGD step, the learning rate, the disabled scaler) 0.3% and the bookkeeping
(the loss summed on the device) under 0.1%.  ``torch.profiler`` puts the
forward's time in the convolutions (oneDNN), batch norm, max-pooling and the
ReLUs.  Inside a step there was no overhead to remove.  Outside it, the
evaluation did cost: batches of 1,000 test images took 8.7 s per 10,000
images, twice the 4.6 s of batches of 250 (larger activations than the
caches hold), i.e. 12% on top of a 50,000-image epoch, and the whole
process's system time was 2-3 times the plain loop's (most likely the page
faults of those large allocations; not measured apart).

The engine against the plain loop of the same precision (``plain_recipe``,
bf16 autocast on this CPU), pinned side by side: the two commands at the
same time, each with ``OMP_NUM_THREADS=1`` and ``taskset`` on its own core
(swapped each repeat), one epoch of the same 10,000 images, widths
32-64-128-256, batch 256 (``benchmarks/results/engine_vs_plain_pinned.json``;
load average 4-150 from other jobs).  Training CPU-seconds of the epoch,
engine over plain: before the trim 1.07, 0.99, 1.04 (median 1.04); after it
1.04, 1.00, 1.00, 1.03, 0.85, 0.92, 1.22 (median 1.00).  The whole process
(``/usr/bin/time`` user + system: loading, warm-up and an evaluation of
10,000 test images included): before 1.23, 1.19, 1.21; after 1.01, 0.97,
0.98, 0.98, 0.91, 0.93, 1.25 (median 0.98), the evaluation's batches of 1,000
being the difference.  Side by side, a shared machine's noise is up to +-20%; with
the two loops alternating step by step in one process
(``profile_05_engine.py --interleaved 40``) the engine's steps cost 1.01,
1.06, 0.98 and 1.00 times the plain loop's: the same within a few per cent,
as it must be, since both run the same kernels (above).  So the issue's 78
against 38 CPU-seconds per epoch (issue 31) was not reproduced: the engine's
step was never twice the plain step of the same precision.  After the trim
the profile is unchanged inside a step (forward 33%, backward 64%,
augmentation 1.6%) and the evaluation of 10,000 images costs 3.5-4.8 s
instead of 8.7 (``benchmarks/results/profile_05_engine_after_core*.json``).
(One epoch of 39 steps to a peak of 0.2 leaves both nets at chance accuracy:
these runs time, they do not train.)  After lookahead's deletion
(2026-12-06; ``benchmarks/results/engine_vs_plain_05_after_deletion.json``,
the runs and their script in ``benchmarks/results/05_epoch_parity/``, the same
one-epoch runs), engine over plain, training CPU-seconds: one thread, side by
side pinned, 0.97 and 1.09 (the whole process 1.00 and 1.05); two threads, one
process at a time, 1.05 and 0.92 (1.07 and 0.93).  Two repeats each: 1.00
within a shared machine's noise.  On two threads an epoch cost either loop
about twice its one-thread CPU-seconds (24-33 against 12-15).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._notebook import write_record  # noqa: E402
from helpers import data, runs, train  # noqa: E402


class PerImageDataset(torch.utils.data.Dataset):
    """The baseline: one uint8 image at a time, normalised, cropped, flipped."""

    def __init__(self, images, labels, padding=4):
        self.images, self.labels, self.padding = images, labels, padding
        self.mean = np.array(train.CIFAR_MEAN, dtype=np.float32) * 255
        self.std = np.array(train.CIFAR_STD, dtype=np.float32) * 255

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image = (self.images[i].astype(np.float32) - self.mean) / self.std
        p = self.padding
        padded = np.pad(image, ((p, p), (p, p), (0, 0)))
        dy, dx = np.random.randint(0, 2 * p + 1, size=2)
        crop = padded[dy : dy + 32, dx : dx + 32]
        if np.random.rand() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))), int(
            self.labels[i]
        )


def _per_batch(fn, repeats, device):
    def sync():  # CUDA runs asynchronously: wait for the work before reading a clock
        if device.type == "cuda":
            torch.cuda.synchronize()

    fn()  # warm-up (and, for a DataLoader, starting its workers)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def pipeline_costs(dd, model, batch, cifar, steps=20, bf16=False):
    """Seconds per batch: data preparation alone, and whole training steps.

    Returns ``(prepare, step)``.  ``prepare`` times each pipeline producing
    batches with no training at all: ``helpers.train``'s on-device index
    selection + crop/flip, and a ``DataLoader`` over ``PerImageDataset`` in
    the main process (0 workers, so all its work is counted).  The data share
    of a step is prepare / (prepare + compute), with compute the step on a
    batch already prepared.  Timing the preparation on its own is far less
    noisy than subtracting two step times that differ by a few per cent.
    ``step`` times whole steps: compute only, and with each pipeline feeding
    it, including a ``DataLoader`` with 2 workers, whose cost on a 2-core
    machine is the CPU time its workers take from the training.
    """
    device = dd.device
    model = model.to(device=device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(0)
    policy = train.Policy.for_device(device, bf16)  # what helpers.train uses
    scaler = policy.scaler()

    def step(x, y):
        with policy.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    order = torch.randperm(len(dd.x_train), generator=gen, device=device)
    counter = iter(range(10**9))

    def batched():
        i = next(counter) % (len(order) // batch)
        idx = order[i * batch : (i + 1) * batch]
        return train.crop_flip(dd.x_train[idx], generator=gen), dd.y_train[idx]

    def loader(workers):
        return iter(
            torch.utils.data.DataLoader(
                PerImageDataset(cifar.x_train, cifar.y_train),
                batch_size=batch,
                shuffle=True,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=device.type == "cuda",
            )
        )

    def moved(x, y):  # what a training loop does with each loaded batch
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        return x, y.to(device, non_blocking=True)

    batched_name = "batched on the device (helpers.train)"
    prepare = {batched_name: _per_batch(batched, 5 * steps, device)}
    serial = loader(0)
    prepare["per-image DataLoader, main process"] = _per_batch(
        lambda: moved(*next(serial)), steps, device
    )
    fixed = batched()
    step_time = {
        "compute only (prepared batch)": _per_batch(lambda: step(*fixed), steps, device)
    }
    step_time[batched_name] = _per_batch(lambda: step(*batched()), steps, device)
    for workers in (0, 2):
        it = loader(workers)
        step_time[f"per-image DataLoader, {workers} workers"] = _per_batch(
            lambda it=it: step(*moved(*next(it))), steps, device
        )
        del it
    return prepare, step_time


def plain_augment(x):
    """A random horizontal flip and a random translation of up to 4 pixels for
    each image of a batch, at once: index arithmetic on the zero-padded batch."""
    F, n, device = torch.nn.functional, len(x), x.device
    flip = torch.rand(n, device=device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n, 1, 1, 1), device=device)
    rows = dy + torch.arange(32, device=device).view(1, 1, 32, 1)
    cols = dx + torch.arange(32, device=device).view(1, 1, 1, 32)
    i = torch.arange(n, device=device).view(n, 1, 1, 1)
    c = torch.arange(x.shape[1], device=device).view(1, -1, 1, 1)
    return padded[i, c, rows, cols].contiguous(memory_format=torch.channels_last)


def plain_recipe(
    dd, widths, epochs, batch=256, lr=0.2, seed=0, on_epoch=None, bf16=False
):
    """The baseline: the loop a careful learner writes, in the engine's precision.

    The same BN net (``train.make_vgg(widths, "bn")``) in channels_last, the
    data as tensors on the device (``dd``, the engine's own), batched
    augmentation (``plain_augment``), SGD with Nesterov momentum and weight
    decay 5e-4 on every parameter, ``OneCycleLR`` to ``lr``, label smoothing
    0.1, the loss summed on the device and read once per epoch.  Precision as
    the engine's: fp16 autocast with a ``GradScaler`` on CUDA, bf16 autocast on
    the CPU with ``bf16``, else float32.  Two untimed warm-up steps on a copy
    of the model first, as the engine does.  Returns a history with the
    engine's keys (epoch, test_accuracy, seconds, cpu_seconds, train_loss).
    """
    import copy

    device, cuda = dd.device, dd.device.type == "cuda"
    torch.manual_seed(seed)
    model = train.make_vgg(widths, "bn").to(device, memory_format=torch.channels_last)
    low = torch.float16 if cuda else torch.bfloat16
    autocast = torch.autocast(device.type, dtype=low, enabled=cuda or bf16)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    steps = len(dd.x_train) // batch

    def sgd(net):
        return torch.optim.SGD(
            net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
        )

    def step(net, optimizer, scaler, idx):
        with autocast:
            loss = loss_fn(net(plain_augment(dd.x_train[idx])), dd.y_train[idx])
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    spare = copy.deepcopy(model)  # the warm-up, untimed, on a copy
    with torch.random.fork_rng(devices=[device] if cuda else []):
        optimizer, scaler = sgd(spare), torch.amp.GradScaler(device.type, enabled=cuda)
        for _ in range(2):
            step(spare, optimizer, scaler, torch.arange(batch, device=device))
    del spare
    optimizer, scaler = sgd(model), torch.amp.GradScaler(device.type, enabled=cuda)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * steps
    )
    history = {"epoch": [], "test_accuracy": [], "seconds": [], "cpu_seconds": []}
    history["train_loss"], wall, cpu = [], 0.0, 0.0
    for epoch in range(1, epochs + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        order, total = torch.randperm(len(dd.x_train), device=device), 0.0
        for i in range(steps):
            total += step(model, optimizer, scaler, order[i * batch : (i + 1) * batch])
            schedule.step()
        total = float(total)  # waits for the device: the clock is read after
        wall += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        model.eval()
        with torch.no_grad(), autocast:
            correct = sum(
                (
                    model(dd.x_test[i : i + batch]).argmax(1)
                    == dd.y_test[i : i + batch]
                ).sum()
                for i in range(0, len(dd.x_test), batch)
            )
        history["epoch"].append(epoch)
        history["train_loss"].append(total / steps)
        history["test_accuracy"].append(int(correct) / len(dd.x_test))
        history["seconds"].append(round(wall, 3))
        history["cpu_seconds"].append(round(cpu, 3))
        if on_epoch is not None and on_epoch(history):
            break
    return history


# The engine's fast recipe (airbench93's net and hyperparameters, K. Jordan,
# github.com/KellerJordan/cifar10-airbench, converted to a mean loss: peak rate
# 11.5 / (1 + 1 / (1 - 0.85)) per 1,024 images, weight decay 0.0153 / 11.5 of
# the rate), for a few epochs.  Every key is one part; ABLATIONS turns one off.
FAST_RECIPE = {
    "epochs": 4,
    "batch_size": 1024,
    "lr": 1.5,
    "momentum": 0.85,
    "weight_decay": 0.0153 / 11.5,
    "label_smoothing": 0.2,
    "warmup": 0.23,
    "lr_start": 0.2,
    "lr_end": 0.07,
    "bias_lr_scale": 64.0,
    "tta": 2,
    "augmentation": "translate2_flip",
}
FAST_NET = {"widths": (64, 128, 128), "dirac": True, "gelu": True, "whiten": True}
# each ablation: what changes from the recipe (the rate is rescaled with the batch)
ABLATIONS = {
    "no_tta": {"tta": 0},
    "no_bias_lr_scale": {"bias_lr_scale": 1.0},
    "smoothing_0.1": {"label_smoothing": 0.1},
    "crop4_zero_pad": {"augmentation": "crop_flip"},
    "one_cycle_from_0": {"lr_start": 0.0, "lr_end": 0.0, "warmup": 0.2},
    "batch_256": {"batch_size": 256, "lr": 1.5 / 4},
    "batch_512": {"batch_size": 512, "lr": 1.5 / 2},
    "no_dirac": {"dirac": False},
    "relu": {"gelu": False},
    "no_whitening": {"whiten": False},
}


def fast_recipe(
    dd, epochs=None, ablate=(), seed=0, bf16=False, on_epoch=None, widths=None
):
    """The engine's fast recipe (``FAST_RECIPE``, ``FAST_NET``), with the
    parts named in ``ablate`` (keys of ``ABLATIONS``) changed back.

    ``train.make_airbench``'s net, its first layer set to whiten 2x2 patches
    of 5,000 training images (timed: ``whiten_cpu_seconds``), trained by
    ``train.train``.  Returns its history, with ``config["recipe"]`` the
    settings used.
    """
    settings = {**FAST_RECIPE, **FAST_NET}
    for name in ablate:
        settings.update(ABLATIONS[name])
    if epochs is not None:
        settings["epochs"] = epochs
    if widths is not None:  # the tests' tiny nets
        settings["widths"] = tuple(widths)
    torch.manual_seed(seed)
    model = train.make_airbench(
        settings["widths"], dirac=settings["dirac"], gelu=settings["gelu"]
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    if settings["whiten"]:
        train.init_whitening(model, dd.x_train[:5000])
    else:  # an ordinary first layer: PyTorch's draw, trained
        model[0].weight.requires_grad_(True)
    whiten = (time.perf_counter() - start, time.process_time() - cpu_start)
    fields = {k: v for k, v in settings.items() if k in FAST_RECIPE}
    cfg = train.TrainConfig(seed=seed, extra={"bf16_cpu": bf16}, **fields)
    history = train.train(
        model, dd, cfg, progress=False, cpu_bf16=bf16, on_epoch=on_epoch
    )
    history["whiten_seconds"] = round(whiten[0], 3)
    history["whiten_cpu_seconds"] = round(whiten[1], 3)
    history["config"]["recipe"] = {**settings, "ablate": list(ablate)}
    return history


def time_to(history, target):
    """(epoch, wall seconds, CPU seconds) when test accuracy first reaches
    ``target``, or None.  The fast recipe's set-up (``whiten_*seconds``) is
    counted, and its last epoch is judged by the evaluation with test-time
    augmentation (``tta_accuracy``), whose cost is counted too."""
    setup = history.get("whiten_seconds", 0.0), history.get("whiten_cpu_seconds", 0.0)
    rows = list(
        zip(
            history["epoch"],
            history["test_accuracy"],
            history["seconds"],
            history["cpu_seconds"],
            strict=True,
        )
    )
    if "tta_accuracy" in history:
        epoch, _, wall, cpu = rows[-1]
        tta = history["tta_seconds"], history["tta_cpu_seconds"]
        rows.append((epoch, history["tta_accuracy"], wall + tta[0], cpu + tta[1]))
    for epoch, accuracy, wall, cpu in rows:
        if accuracy >= target:
            return epoch, round(wall + setup[0], 3), round(cpu + setup[1], 3)
    return None


def _pipeline_report(dd, cifar, widths, args) -> dict:
    torch.manual_seed(0)
    probe = train.make_vgg(widths, "bn", pool_first=args.pool_first)
    prepare, step_time = pipeline_costs(
        dd, probe, args.batch, cifar, steps=args.steps, bf16=args.bf16
    )
    compute = step_time["compute only (prepared batch)"]
    print(f"input pipeline, per batch of {args.batch} images:")
    for name, seconds in prepare.items():
        print(
            f"  preparing, {name:38s} {seconds * 1000:7.1f} ms: data share of a step "
            f"{seconds / (seconds + compute):5.1%}",
            flush=True,
        )
    for name, seconds in step_time.items():
        print(
            f"  training step, {name:38s} {seconds * 1000:7.1f} ms "
            f"({args.batch / seconds:4.0f} images/s)",
            flush=True,
        )
    return {"prepare_seconds": prepare, "step_seconds": step_time}


def _plain_run(dd, widths, args) -> dict:
    if args.pool_first:
        print("  plain: the baseline has no pool-first option; its net pools later")

    def report(history):
        print(
            f"  plain epoch {history['epoch'][-1]:2d}: test accuracy "
            f"{history['test_accuracy'][-1]:.2%}, {history['seconds'][-1]:7.1f} s, "
            f"{history['cpu_seconds'][-1]:7.1f} CPU-s so far",
            flush=True,
        )
        reached = args.stop_at_target and history["test_accuracy"][-1] >= args.target
        spent = (
            args.plain_cpu_budget
            and history["cpu_seconds"][-1] >= args.plain_cpu_budget
        )
        if spent and not reached:
            print(
                f"  plain: stopped, {args.plain_cpu_budget:g} CPU-s spent", flush=True
            )
        return reached or spent

    history = plain_recipe(
        dd, widths, args.epochs, args.batch, args.lr, on_epoch=report, bf16=args.bf16
    )
    history["config"] = {"widths": widths, "epochs": args.epochs, "bf16": args.bf16}
    history["config"].update(batch_size=args.batch, lr=args.lr)
    return history


def _fast_run(dd, name, args) -> dict:
    """``fast`` is the recipe; ``fast-<ablation>[+<ablation>...]`` drops parts."""
    ablate = [a for a in name.split("-", 1)[1].split("+")] if "-" in name else []

    def report(history):
        print(
            f"  {name} epoch {history['epoch'][-1]:2d}: test accuracy "
            f"{history['test_accuracy'][-1]:.2%}, {history['seconds'][-1]:7.1f} s, "
            f"{history['cpu_seconds'][-1]:7.1f} CPU-s so far",
            flush=True,
        )
        if "tta_accuracy" in history:
            print(
                f"  {name} with test-time augmentation: {history['tta_accuracy']:.2%}"
                f" (+{history['tta_cpu_seconds']:.1f} CPU-s)",
                flush=True,
            )

    widths = args.fast_widths and [int(w) for w in args.fast_widths.split(",")]
    history = fast_recipe(
        dd, args.fast_epochs, ablate, bf16=args.bf16, on_epoch=report, widths=widths
    )
    history["final_accuracy"] = history.get(
        "tta_accuracy", history["test_accuracy"][-1]
    )
    history["total_cpu_seconds"] = round(
        history["cpu_seconds"][-1]
        + history["whiten_cpu_seconds"]
        + history.get("tta_cpu_seconds", 0.0),
        3,
    )
    history["total_seconds"] = round(
        history["seconds"][-1]
        + history["whiten_seconds"]
        + history.get("tta_seconds", 0.0),
        3,
    )
    return history


def _race_report(results, args) -> dict:
    """Time to ``--target`` of the engine (its VGG recipe ``bn`` and its fast
    recipe ``fast``, whichever ran) and of the plain loop."""
    race = {"target": args.target}
    for name in [n for n in ("bn", "fast", "plain") if n in results]:
        reached = time_to(results[name], args.target)
        race[name] = dict(
            zip(("epoch", "seconds", "cpu_seconds"), reached or (), strict=False)
        )
        when = (
            f"epoch {reached[0]}, {reached[1]:.1f} s, {reached[2]:.1f} CPU-s"
            if reached
            else "never"
        )
        print(f"  race to {args.target:.0%}: {name:5s} {when}", flush=True)
    if race.get("bn") and race["plain"]:
        ratio = race["plain"]["cpu_seconds"] / race["bn"]["cpu_seconds"]
        race["plain_over_engine_cpu_seconds"] = round(ratio, 3)
        print(
            f"  the plain loop took {ratio:.2f}x the engine's CPU-seconds", flush=True
        )
    if race.get("fast") and not race["plain"]:
        # the plain loop stopped (or its schedule ended) short of the target:
        # it would have needed more than the CPU-seconds it had spent
        spent = results["plain"]["cpu_seconds"][-1]
        bound = race["fast"]["cpu_seconds"] / spent
        race["fast_over_plain_cpu_seconds_at_most"] = round(bound, 3)
        print(
            f"  the fast recipe took at most {bound:.2f}x the plain loop's "
            f"CPU-seconds (the plain loop stopped below {args.target:.0%} after "
            f"{spent:.0f})",
            flush=True,
        )
    if race.get("fast") and race["plain"]:
        for unit in ("cpu_seconds", "seconds"):
            ratio = race["fast"][unit] / race["plain"][unit]
            race[f"fast_over_plain_{unit}"] = round(ratio, 3)
        print(
            f"  the fast recipe took {race['fast_over_plain_cpu_seconds']:.2f}x the "
            f"plain loop's CPU-seconds ({race['fast_over_plain_seconds']:.2f}x its "
            "wall time)",
            flush=True,
        )
    return race


def _lr_none(args) -> float:
    """The no-BN net's peak rate: ``--lr-none``, else a quarter of ``--lr``."""
    return args.lr_none if args.lr_none is not None else args.lr / 4


def _vgg_run(dd, widths, norm, lr, seed, args, label=None) -> dict:
    """The lesson's VGG net (``norm`` "bn" or "none") trained by the engine,
    its initial draw and its batches from ``seed``, whatever ran before."""
    label = label or norm
    torch.manual_seed(seed)
    model = train.make_vgg(widths, norm, pool_first=args.pool_first)
    cfg = train.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        lr=lr,
        seed=seed,
        extra={"bf16_cpu": args.bf16, "widths": widths},
    )

    def report(history):
        seconds = history["seconds"]
        spent = seconds[-1] - (seconds[-2] if len(seconds) > 1 else 0.0)
        print(
            f"  {label:4s} epoch {history['epoch'][-1]:2d}: test accuracy "
            f"{history['test_accuracy'][-1]:.2%}, {len(dd.x_train) / spent:,.0f} "
            f"train images/s, {seconds[-1]:7.1f} s, "
            f"{history['cpu_seconds'][-1]:7.1f} CPU-s so far",
            flush=True,
        )
        reached = history["test_accuracy"][-1] >= args.target
        return args.stop_at_target and norm == "bn" and reached

    history = train.train(
        model, dd, cfg, progress=False, cpu_bf16=args.bf16, on_epoch=report
    )
    print(f"  {label}: warm-up (untimed) {history['warmup_seconds']:.1f} s")
    best = max(history["test_accuracy"])
    print(
        f"  {label}: best test accuracy {best:.2%} at peak lr {lr:g} "
        "(target for BN: 87%)",
        flush=True,
    )
    return history


def _spread(accuracies) -> dict:
    """Final accuracies over seeds: the list, mean, lowest, highest, and the
    sample standard deviation."""
    a = np.asarray(accuracies, dtype=float)
    return {
        "final_accuracy": [float(x) for x in a],
        "mean": float(a.mean()),
        "min": float(a.min()),
        "max": float(a.max()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
    }


def seed_study(dd, widths, args, save=None) -> dict:
    """The BN and no-BN pair over ``--seeds``, and with ``--lr-sweep`` each net
    at its own best rate.

    In this order, so that what is done first is what matters most: (1) both
    nets at the untuned rates (``--lr``, ``--lr-none``) for every seed; (2) on
    the first seed, each net at every other rate of ``--lr-sweep``; (3) each
    net whose best rate on the first seed (final test accuracy) is not its
    untuned one, at that rate for the other seeds.  ``save(study)`` is called
    after every run (a partial study is still a record of what ran).  Each
    run keeps its per-epoch accuracies and CPU-seconds; each net its spread
    over seeds (``_spread``) at the untuned rate and, with a sweep, at its best.
    """
    seeds = [int(s) for s in args.seeds.split(",")]
    sweep = [float(r) for r in args.lr_sweep.split(",")] if args.lr_sweep else []
    untuned = {"bn": args.lr, "none": _lr_none(args)}
    study = {"seeds": seeds, "lr_sweep": sweep, "untuned_lr": untuned, "runs": {}}
    study["budget"] = {
        "train_images": len(dd.x_train),
        "test_images": len(dd.x_test),
        "epochs": args.epochs,
        "batch_size": args.batch,
        "widths": list(widths),
        "pool_first": args.pool_first,
        "bf16": args.bf16,
        "threads": torch.get_num_threads(),
    }

    def name(norm, lr, seed):
        return f"{norm} lr {lr:g} seed {seed}"

    def run(norm, lr, seed):
        key = name(norm, lr, seed)
        if key not in study["runs"]:
            h = _vgg_run(dd, widths, norm, lr, seed, args, label=key)
            keep = ("test_accuracy", "train_loss", "seconds", "cpu_seconds")
            study["runs"][key] = {k: h[k] for k in keep}
            study["runs"][key].update(lr=lr, seed=seed, diverged=h["diverged"])
            if save is not None:
                save(study)
        return study["runs"][key]["test_accuracy"][-1]

    def final(norm, lr):
        return [run(norm, lr, s) for s in seeds]

    for seed in seeds:  # (1) interleaved: an unfinished study still pairs seeds
        for norm in ("bn", "none"):
            run(norm, untuned[norm], seed)
    for norm in ("bn", "none"):
        study[norm] = {
            "untuned": {"lr": untuned[norm], **_spread(final(norm, untuned[norm]))}
        }
    for norm in ("bn", "none"):  # (2)
        rates = sorted({*sweep, untuned[norm]}) if sweep else []
        study[norm]["sweep"] = {f"{r:g}": run(norm, r, seeds[0]) for r in rates}
    for norm in ("bn", "none"):  # (3)
        if sweep:
            best = max(study[norm]["sweep"], key=study[norm]["sweep"].get)
            study[norm]["best_lr"] = float(best)
            study[norm]["tuned"] = {
                "lr": float(best),
                **_spread(final(norm, float(best))),
            }
            if save is not None:
                save(study)
    for norm in ("bn", "none"):
        for kind in ("untuned", "tuned"):
            if kind in study[norm]:
                row = study[norm][kind]
                print(
                    f"  {norm:4s} {kind:7s} lr {row['lr']:g}: final test accuracy "
                    f"{row['mean']:.2%} mean over seeds {seeds} (lowest "
                    f"{row['min']:.2%}, highest {row['max']:.2%}, sd {row['std']:.2%})",
                    flush=True,
                )
    return study


def race_from(paths, target) -> dict:
    """The race from the ``--out`` files of runs made apart (the one-thread
    race: ``--nets fast`` and ``--nets plain`` side by side, each pinned to its
    own core): their histories, each file's command and machine, and the
    race's report (``_race_report``)."""
    results, commands, machines = {}, {}, {}
    for path in paths:
        saved = json.loads(Path(path).read_text())
        for name, history in saved["results"].items():
            if name in ("fast", "plain", "bn"):
                results[name] = history
                commands[name] = saved["provenance"]["command"]
                machines[name] = saved["results"]["machine"]
    race = _race_report(results, argparse.Namespace(target=target))
    return {**results, "race": race, "commands": commands, "machines": machines}


def collect_ablations(paths) -> dict:
    """The ablation table from the ``--out`` files of runs of the fast recipe
    and its ablations (``--nets fast`` or ``fast-<a>``): per run, its final
    accuracy (with test-time augmentation where the run had it), its accuracy
    without it, and its CPU and wall seconds, set-up and final evaluation
    included; each row with the command and machine that produced it, named
    by the run and its threads."""
    table = {}
    for path in paths:
        saved = json.loads(Path(path).read_text())
        for name, history in saved["results"].items():
            if not (name == "fast" or name.startswith("fast-")):
                continue
            row = {
                k: history[k]
                for k in ("final_accuracy", "total_cpu_seconds", "total_seconds")
            }
            row["accuracy_without_tta"] = history["test_accuracy"][-1]
            row["test_accuracy"] = history["test_accuracy"]
            row["cpu_seconds"] = history["cpu_seconds"]
            row["ablate"] = history["config"]["recipe"]["ablate"]
            row["command"] = saved["provenance"]["command"]
            row["threads"] = saved["results"]["machine"].get("threads")
            row["machine"] = saved["results"]["machine"]["name"]
            table[f"{name}, {row['threads']} thread(s)"] = row
    return {
        "recipe": {**FAST_RECIPE, **FAST_NET},
        "ablations": ABLATIONS,
        "runs": table,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--widths", default="48,96,192,384")
    parser.add_argument("--pool-first", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--lr", type=float, default=0.2, help="BN's peak rate; the no-BN net gets lr/4"
    )
    parser.add_argument(
        "--lr-none",
        type=float,
        default=None,
        help="the no-BN net's peak rate (default: a quarter of --lr)",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="e.g. 0,1,2: the BN and no-BN pair over these seeds instead of --nets "
        "(seed_study; with --lr-sweep, each net also at its best rate)",
    )
    parser.add_argument(
        "--lr-sweep",
        default=None,
        help="e.g. 0.05,0.1,0.2: with --seeds, the rates tried on the first seed",
    )
    parser.add_argument(
        "--nets",
        default="bn,none,plain",
        help="bn and none: helpers.train with and without BN; plain: the baseline "
        "loop (plain_recipe), the BN net in the engine's precision; fast: the "
        "engine's fast recipe (fast_recipe); fast-<a>[+<b>]: it without the parts "
        "named (ABLATIONS)",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=0.84,
        help="the accuracy the race of bn against plain is run to",
    )
    parser.add_argument(
        "--skip-pipeline", action="store_true", help="no input-pipeline timings"
    )
    parser.add_argument(
        "--stop-at-target",
        action="store_true",
        help="end each run at the epoch that reaches --target (its schedule stays "
        "the one planned for --epochs, so its time to the target is unchanged)",
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="batches per pipeline timing"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="default: BNCOURSE_DEVICE"
    )
    parser.add_argument(
        "--n-train", type=int, default=None, help="a random subset (default: all)"
    )
    parser.add_argument(
        "--plain-cpu-budget",
        type=float,
        default=None,
        help="stop the plain loop after the epoch that brings its CPU-seconds to "
        "this (the race then bounds the ratio instead of measuring it)",
    )
    parser.add_argument(
        "--fast-epochs",
        type=int,
        default=None,
        help=f"epochs of the fast recipe (default {FAST_RECIPE['epochs']})",
    )
    parser.add_argument(
        "--fast-widths",
        default=None,
        help="the fast recipe's widths (default: FAST_NET's, airbench93's)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: all)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help="also write the results as a reference record (lesson 05 quotes "
        "data/reference/05_race.json and 05_benchmark.json)",
    )
    parser.add_argument(
        "--race-from",
        nargs="+",
        type=Path,
        default=None,
        help="race the runs of these --out files (fast, plain, bn) to --target and "
        "write the report as --record, under --record-key if given (the record's "
        "other keys kept), then stop",
    )
    parser.add_argument(
        "--record-key",
        default=None,
        help="with --race-from: the key of the record's results to write (e.g. "
        "one_thread in data/reference/05_race.json)",
    )
    parser.add_argument(
        "--note", default=None, help="with --race-from: how the runs were made"
    )
    parser.add_argument(
        "--share-only", action="store_true", help="only time the input pipelines"
    )
    parser.add_argument(
        "--collect",
        nargs="+",
        type=Path,
        default=None,
        help="write --record from these --out files of fast-recipe runs (the "
        "ablation table; data/reference/05_fast_ablation.json) and stop",
    )
    args = parser.parse_args(argv)
    if args.race_from:
        report = race_from(args.race_from, args.target)
        command = " ".join(
            ["benchmarks/bench_05_cifar.py", *(sys.argv[1:] if argv is None else argv)]
        )
        report["command"] = command
        if args.note:
            report["note"] = args.note
        if args.record_key:
            record = json.loads(args.record.read_text())
            record["results"][args.record_key] = report
            runs.write_json(args.record, record)
            print(f"  wrote {args.record} ({args.record_key})")
        elif args.record:
            write_record(args.record, args.record.stem, {"command": command}, report)
        return 0
    if args.collect:
        params = {"command": "benchmarks/bench_05_cifar.py --collect ..."}
        params["sources"] = " ".join(p.name for p in args.collect)
        write_record(
            args.record, args.record.stem, params, collect_ablations(args.collect)
        )
        return 0
    if args.device:  # what BNCOURSE_DEVICE would say (helpers.config reads it)
        os.environ["BNCOURSE_DEVICE"] = args.device
    widths = tuple(int(w) for w in args.widths.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)

    cifar = data.load_cifar10()
    dd = train.DeviceData(
        cifar, n_train=args.n_train
    )  # the device from BNCOURSE_DEVICE (default: auto)
    if dd.device.type == "cuda":
        precision = "fp16 autocast"
        machine = torch.cuda.get_device_name(dd.device)
    else:
        precision = "bf16 autocast" if args.bf16 else "fp32"
        machine = f"{os.cpu_count()} CPU core(s)"
    print(
        f"lesson 05 benchmark: {dd}, widths {widths}, pool_first={args.pool_first}, "
        f"{precision}, batch {args.batch}, peak lr {args.lr}, {args.epochs} epochs | "
        f"{machine}, torch {torch.__version__}, Python {platform.python_version()}",
        flush=True,
    )
    results = {"machine": {"device": str(dd.device), "name": machine}}
    results["machine"]["precision"] = precision
    results["machine"]["threads"] = torch.get_num_threads()
    if not args.skip_pipeline:
        results.update(_pipeline_report(dd, cifar, widths, args))
    if args.share_only:
        return 0
    command = " ".join(
        ["benchmarks/bench_05_cifar.py", *(sys.argv[1:] if argv is None else argv)]
    )

    def save(results):
        if args.record:
            write_record(args.record, args.record.stem, {"command": command}, results)
        if args.out:
            provenance = runs.provenance()
            provenance["cpu_bf16"] = args.bf16 and dd.device.type == "cpu"
            provenance["command"] = command
            runs.write_json(args.out, {"provenance": provenance, "results": results})

    if args.seeds:
        results["study"] = seed_study(
            dd, widths, args, lambda study: save({**results, "study": study})
        )
        save(results)
        return 0
    for norm in args.nets.split(","):
        if norm == "plain":
            results["plain"] = _plain_run(dd, widths, args)
            continue
        if norm == "fast" or norm.startswith("fast-"):
            results[norm] = _fast_run(dd, norm, args)
            continue
        lr = args.lr if norm != "none" else _lr_none(args)
        results[norm] = _vgg_run(dd, widths, norm, lr, 0, args)
    if "plain" in results and ("bn" in results or "fast" in results):
        results["race"] = _race_report(results, args)
    save(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
