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

Each net trains at a peak rate that suits it: ``--lr`` for the BN net, a
quarter of it for the net without BN (the lesson's learning-rate sweep shows
why: without BN the high rates fail).

The device comes from ``--device`` or ``BNCOURSE_DEVICE`` (``cpu``, ``cuda``,
default auto), as in the lesson, and is recorded with its name; on CUDA the
engine uses fp16 autocast with a gradient scaler, and the timings wait for the
GPU (``torch.cuda.synchronize``) before reading the clock.  ``--bf16`` turns on
bfloat16 autocast on the CPU (fast on CPUs with AMX or AVX-512-BF16, slower
elsewhere; the lesson turns it on where the CPU has them).  Every run is
warmed up untimed first (``helpers.train``), so no net is charged for first
calls.  ``--nets plain`` adds the baseline, a plain PyTorch loop
(``plain_recipe``), and with ``bn`` a race to ``--target`` accuracy in wall and
CPU seconds.  Compare figures within one run: the machine is shared and noisy.

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
caches hold), i.e. 12% on top of a 50,000-image epoch.
"""

from __future__ import annotations

import argparse
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
    autocast = train.autocast_context(device, bf16)  # what helpers.train uses
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    def step(x, y):
        with autocast:
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


def plain_recipe(
    cifar, widths, epochs, batch=256, lr=0.2, seed=0, on_epoch=None, device="cpu"
):
    """The baseline: a good recipe written as a plain PyTorch loop.

    What a careful tutorial does, with none of ``helpers.train``'s engineering:
    the same BN net (``train.make_vgg(widths, "bn")``), SGD with Nesterov
    momentum and weight decay 5e-4, ``OneCycleLR`` to ``lr``, label smoothing
    0.1, random flips and 2-pixel translations, float32, the loss read every
    step.  It does get the channels_last memory layout, the one-line change
    PyTorch's performance guide recommends for CNNs (1.5x on these CPUs), so
    the race measures more than a layout.  Two untimed warm-up steps on a copy of
    the model first, as the engine does, so neither is charged for first calls.
    On a GPU it does what plain code does: the data stay on the CPU and each
    augmented batch is copied to ``device``.  Returns a history with the
    engine's keys (epoch, test_accuracy, seconds, cpu_seconds).
    """
    import copy

    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    mean = torch.tensor(train.CIFAR_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(train.CIFAR_STD).view(1, 3, 1, 1) * 255

    def tensors(images, labels):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        return ((x - mean) / std).contiguous(), torch.from_numpy(labels).long()

    x_train, y_train = tensors(cifar.x_train, cifar.y_train)
    x_test, y_test = tensors(cifar.x_test, cifar.y_test)
    model = train.make_vgg(widths, "bn")
    model = model.to(device=device, memory_format=torch.channels_last)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    steps = len(x_train) // batch

    def optimizer_for(net):
        return torch.optim.SGD(
            net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
        )

    def augment(x):
        flip = torch.rand(len(x)) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        padded = F.pad(x, (2, 2, 2, 2))
        dy, dx = torch.randint(0, 5, (2, len(x))).tolist()
        crops = [
            padded[i, :, a : a + 32, b : b + 32]
            for i, (a, b) in enumerate(zip(dy, dx, strict=True))
        ]
        return torch.stack(crops).contiguous(memory_format=torch.channels_last)

    def one_step(net, opt, idx):
        x = augment(x_train[idx]).to(device, non_blocking=True)
        loss = loss_fn(net(x), y_train[idx].to(device, non_blocking=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    spare = copy.deepcopy(model)  # the warm-up, untimed, on a copy
    with torch.random.fork_rng():
        for _ in range(2):
            one_step(spare, optimizer_for(spare), torch.arange(batch))
    del spare
    optimizer = optimizer_for(model)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps
    )
    history = {"epoch": [], "test_accuracy": [], "seconds": [], "cpu_seconds": []}
    history["train_loss"], wall, cpu = [], 0.0, 0.0
    for epoch in range(1, epochs + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        order, total = torch.randperm(len(x_train)), 0.0
        for i in range(steps):
            total += one_step(model, optimizer, order[i * batch : (i + 1) * batch])
            schedule.step()
        wall += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        model.eval()
        with torch.no_grad():
            correct = sum(
                (
                    model(x_test[i : i + 1000].to(device)).argmax(1).cpu()
                    == y_test[i : i + 1000]
                )
                .sum()
                .item()
                for i in range(0, len(x_test), 1000)
            )
        history["epoch"].append(epoch)
        history["train_loss"].append(total / steps)
        history["test_accuracy"].append(correct / len(x_test))
        history["seconds"].append(round(wall, 3))
        history["cpu_seconds"].append(round(cpu, 3))
        if on_epoch is not None and on_epoch(history):
            break
    return history


def time_to(history, target):
    """(epoch, wall seconds, CPU seconds) when test accuracy first reaches
    ``target``, or None."""
    for epoch, accuracy, wall, cpu in zip(
        history["epoch"],
        history["test_accuracy"],
        history["seconds"],
        history["cpu_seconds"],
        strict=True,
    ):
        if accuracy >= target:
            return epoch, wall, cpu
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


def _plain_run(cifar, widths, args, device) -> dict:
    if args.pool_first:
        print("  plain: the baseline has no pool-first option; its net pools later")

    def report(history):
        print(
            f"  plain epoch {history['epoch'][-1]:2d}: test accuracy "
            f"{history['test_accuracy'][-1]:.2%}, {history['seconds'][-1]:7.1f} s, "
            f"{history['cpu_seconds'][-1]:7.1f} CPU-s so far",
            flush=True,
        )
        return args.stop_at_target and history["test_accuracy"][-1] >= args.target

    history = plain_recipe(
        cifar, widths, args.epochs, args.batch, args.lr, on_epoch=report, device=device
    )
    history["config"] = {"widths": widths, "epochs": args.epochs, "fp32": True}
    history["config"].update(batch_size=args.batch, lr=args.lr)
    return history


def _race_report(results, args) -> dict:
    """Time to ``--target`` of the engine's BN net and of the plain loop."""
    race = {"target": args.target}
    for name in ("bn", "plain"):
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
    if race["bn"] and race["plain"]:
        ratio = race["plain"]["cpu_seconds"] / race["bn"]["cpu_seconds"]
        race["plain_over_engine_cpu_seconds"] = round(ratio, 3)
        print(
            f"  the plain loop took {ratio:.2f}x the engine's CPU-seconds", flush=True
        )
    return race


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
        "--nets",
        default="bn,none,plain",
        help="bn and none: helpers.train with and without BN; plain: the baseline "
        "loop (plain_recipe), the BN net in fp32",
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
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help="also write the results as a reference record (lesson 05 quotes "
        "data/reference/05_race.json and 05_benchmark.json)",
    )
    parser.add_argument(
        "--share-only", action="store_true", help="only time the input pipelines"
    )
    args = parser.parse_args(argv)
    if args.device:  # what BNCOURSE_DEVICE would say (helpers.config reads it)
        os.environ["BNCOURSE_DEVICE"] = args.device
    widths = tuple(int(w) for w in args.widths.split(","))

    cifar = data.load_cifar10()
    dd = train.DeviceData(cifar)  # the device from BNCOURSE_DEVICE (default: auto)
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
    if not args.skip_pipeline:
        results.update(_pipeline_report(dd, cifar, widths, args))
    if args.share_only:
        return 0
    for norm in args.nets.split(","):
        if norm == "plain":
            results["plain"] = _plain_run(cifar, widths, args, dd.device)
            continue
        # the same initial draw whatever the timing above consumed
        torch.manual_seed(0)
        model = train.make_vgg(widths, norm, pool_first=args.pool_first)
        lr = args.lr if norm != "none" else args.lr / 4
        cfg = train.TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch,
            lr=lr,
            extra={"bf16_cpu": args.bf16, "widths": widths},
        )

        def report(history, norm=norm):
            seconds = history["seconds"]
            spent = seconds[-1] - (seconds[-2] if len(seconds) > 1 else 0.0)
            print(
                f"  {norm:4s} epoch {history['epoch'][-1]:2d}: test accuracy "
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
        print(f"  {norm}: warm-up (untimed) {history['warmup_seconds']:.1f} s")
        results[norm] = history
        best = max(history["test_accuracy"])
        print(
            f"  {norm}: best test accuracy {best:.2%} at peak lr {lr:g} "
            "(target for BN: 87%)",
            flush=True,
        )
    if "bn" in results and "plain" in results:
        results["race"] = _race_report(results, args)
    command = " ".join(
        ["benchmarks/bench_05_cifar.py", *(sys.argv[1:] if argv is None else argv)]
    )
    if args.record:
        write_record(args.record, args.record.stem, {"command": command}, results)
    if args.out:
        provenance = runs.provenance()
        provenance["cpu_bf16"] = args.bf16 and dd.device.type == "cpu"
        provenance["command"] = command
        runs.write_json(args.out, {"provenance": provenance, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
