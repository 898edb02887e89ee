"""Lesson 05: train the BN and the no-BN net on full CIFAR-10 and time the pipeline.

    BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz \\
        python benchmarks/bench_05_cifar.py [--epochs 15] [--widths 48,96,192,384]
            [--pool-first] [--bf16] [--batch 256] [--lr 0.2] [--out results.json]

Prints, per epoch and per net, the test accuracy and the training images per
second, then the share of a training step spent on data handling (batch
selection and augmentation, done on the device by ``helpers.train``) against a
per-image ``torch.utils.data.DataLoader`` baseline written here, which crops
and flips one image at a time as a typical tutorial pipeline does.

Each net trains at a peak rate that suits it: ``--lr`` for the BN net, a
quarter of it for the net without BN (the lesson's learning-rate sweep shows
why: without BN the high rates fail).

``--bf16`` turns on bfloat16 autocast on the CPU (fast on CPUs with AMX or
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


def pipeline_costs(dd, model, batch, cifar, steps=20, bf16=False):
    """Seconds per training step with each input pipeline, and with none.

    "pure": the step on a batch that is already prepared (compute only);
    "batched": ``helpers.train``'s on-device index selection + crop/flip;
    "per-image, N workers": a ``DataLoader`` over ``PerImageDataset``.  The
    share of a pipeline is 1 - pure / its step time: it counts the time the
    step waits for data *and* the time the workers take from the training on
    a 2-core machine, which a "time spent waiting" measure would hide.
    """
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def step(x, y):
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    order = torch.randperm(len(dd.x_train), generator=gen)

    def batched(i):
        idx = order[i * batch : (i + 1) * batch]
        return train.crop_flip(dd.x_train[idx], generator=gen), dd.y_train[idx]

    fixed = batched(0)
    for _ in range(3):  # warm-up
        step(*fixed)
    costs = {}
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*fixed)
    costs["pure compute (prepared batch)"] = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for i in range(steps):
        step(*batched(i))
    costs["batched on the device (helpers.train)"] = (time.perf_counter() - t0) / steps
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(
            PerImageDataset(cifar.x_train, cifar.y_train),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
        it = iter(loader)
        next(it)  # start the workers before timing
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = next(it)
            step(x.contiguous(memory_format=torch.channels_last), y)
        costs[f"per-image DataLoader, {workers} workers"] = (
            time.perf_counter() - t0
        ) / steps
        del it, loader
    return costs


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
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--share-only", action="store_true", help="only time the input pipelines"
    )
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(","))

    cifar = data.load_cifar10()
    dd = train.DeviceData(cifar, device="cpu")
    print(
        f"lesson 05 benchmark: {dd}, widths {widths}, pool_first={args.pool_first}, "
        f"{'bf16 autocast' if args.bf16 else 'fp32'}, batch {args.batch}, peak lr "
        f"{args.lr}, {args.epochs} epochs | torch {torch.__version__}, "
        f"{os.cpu_count()} CPU core(s), Python {platform.python_version()}",
        flush=True,
    )
    torch.manual_seed(0)
    probe = train.make_vgg(widths, "bn", pool_first=args.pool_first).to(
        memory_format=torch.channels_last
    )
    costs = pipeline_costs(dd, probe, args.batch, cifar, bf16=args.bf16)
    pure = costs["pure compute (prepared batch)"]
    print("input pipeline, seconds per training step of", args.batch, "images:")
    for name, seconds in costs.items():
        share = 1 - pure / seconds
        print(
            f"  {name:42s} {seconds * 1000:7.1f} ms  {args.batch / seconds:6.0f} "
            f"images/s  data share {max(share, 0.0):5.1%}",
            flush=True,
        )
    if args.share_only:
        return 0
    results = {"pipeline_seconds_per_step": costs}
    for norm in args.nets.split(","):
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
        runs.write_json(args.out, {"provenance": runs.provenance(), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
