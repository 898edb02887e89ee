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

The device comes from ``BNCOURSE_DEVICE`` (``cpu``, ``cuda``, default auto), as in
the lesson; on CUDA the engine uses fp16 autocast with a gradient scaler, and
the timings wait for the GPU (``torch.cuda.synchronize``) before reading the
clock.  ``--bf16`` turns on bfloat16 autocast on the CPU (fast on CPUs with AMX or
AVX-512-BF16, slower elsewhere: the lesson's default is fp32).  Compare
figures within one run: the machine is shared and noisy.
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
    parser.add_argument("--nets", default="bn,none")
    parser.add_argument(
        "--steps", type=int, default=20, help="batches per pipeline timing"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--share-only", action="store_true", help="only time the input pipelines"
    )
    args = parser.parse_args(argv)
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
    if args.share_only:
        return 0
    results = {"prepare_seconds": prepare, "step_seconds": step_time}
    for norm in args.nets.split(","):
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
                f"train images/s, {seconds[-1]:7.1f} s so far",
                flush=True,
            )

        history = train.train(
            model, dd, cfg, progress=False, cpu_bf16=args.bf16, on_epoch=report
        )
        results[norm] = history
        best = max(history["test_accuracy"])
        print(
            f"  {norm}: best test accuracy {best:.2%} at peak lr {lr:g} "
            "(target for BN: 87%)",
            flush=True,
        )
    if args.out:
        provenance = runs.provenance()
        provenance["cpu_bf16"] = args.bf16 and dd.device.type == "cpu"
        provenance["command"] = " ".join(
            ["benchmarks/bench_05_cifar.py", *(sys.argv[1:] if argv is None else argv)]
        )
        runs.write_json(args.out, {"provenance": provenance, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
