"""Where a training step of lesson 05's engine spends its time, phase by phase.

    BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz OMP_NUM_THREADS=1 \\
        python benchmarks/profile_05_engine.py [--steps 40] [--widths 32,64,128,256]
            [--batch 256] [--bf16] [--torch-profiler]

Runs ``--steps`` training steps of the race's configuration (the BN net,
batch 256, SGD with Nesterov momentum, label smoothing, crop-and-flip
augmentation) through the same calls ``helpers.train.train`` makes, with a
CPU-time clock read between the phases: batch selection, augmentation,
forward (with the loss), backward, optimiser (zero_grad, step, the learning
rate), bookkeeping (the loss summed on the device); then one evaluation pass
over ``--test`` test images.  With one thread (``OMP_NUM_THREADS=1``) and on
the CPU every phase runs synchronously, so the clock readings are the phases'
costs; on CUDA the script synchronises before each reading (which itself
slows the step: read the shares, not the totals).  ``--torch-profiler`` also
prints ``torch.profiler``'s table of the operators with the most self CPU
time.  The same phases are timed for the plain loop of the benchmark
(``bench_05_cifar.plain_recipe``'s step) for comparison.

Results (2-core Xeon with AMX, the machine shared with other jobs, one thread,
bf16 autocast, batch 256, widths 32-64-128-256, 40 steps, median ms per step)
are in ``benchmarks/results/profile_05_engine_*.json`` and in the module docstring
of ``benchmarks/bench_05_cifar.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import data, train  # noqa: E402

PHASES = ("batch", "augment", "forward", "backward", "optimiser", "bookkeeping")


class Clock:
    """CPU-seconds per phase of each step (``reset`` starts a step; on CUDA the
    clock is wall time after a synchronisation)."""

    def __init__(self, device):
        self.device, self.steps = device, []
        self.last = self._now()

    def _now(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def reset(self):
        self.steps.append({})
        self.last = self._now()

    def lap(self, phase):
        now = self._now()
        step = self.steps[-1]
        step[phase] = step.get(phase, 0.0) + now - self.last
        self.last = now


def profile_engine(dd, widths, batch, bf16, steps):
    """Per-phase seconds of ``steps`` steps of the engine, and of one evaluation."""
    torch.manual_seed(0)
    model = train.make_vgg(widths, "bn")
    cfg = train.TrainConfig(epochs=1, batch_size=batch, lr=0.2)
    run = train._Run(model, dd, cfg, train.Policy.for_device(dd.device, bf16))
    run.warm_up(2)
    clock = Clock(dd.device)
    run.model.train()
    order = torch.randperm(run.n, device=dd.device, generator=run.gen)
    running = torch.zeros((), device=dd.device)
    for i in range(steps):
        clock.reset()
        idx = order[i * batch : (i + 1) * batch]
        x = dd.x_train[idx]
        clock.lap("batch")
        x = run.augment(x, generator=run.gen)
        clock.lap("augment")
        run.lr = run.rate()
        for group in run.optimizer.param_groups:
            group["lr"] = run.lr
        clock.lap("optimiser")
        with run.policy.autocast():
            loss = torch.nn.functional.cross_entropy(
                run.model(x), dd.y_train[idx], label_smoothing=cfg.label_smoothing
            )
        clock.lap("forward")
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        clock.lap("backward")
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.step += 1
        clock.lap("optimiser")
        running += loss.detach().float() * len(idx)
        clock.lap("bookkeeping")
    clock.reset()
    train.evaluate(run.model, dd, policy=run.policy)
    clock.lap("evaluation")
    return clock.steps


def profile_plain(dd, widths, batch, bf16, steps):
    """The same phases for the benchmark's plain loop of the same precision
    (``bench_05_cifar.plain_recipe``'s step, written out)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_05_cifar import plain_augment

    torch.manual_seed(0)
    model = train.make_vgg(widths, "bn").to(
        dd.device, memory_format=torch.channels_last
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.2, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    policy = train.Policy.for_device(dd.device, bf16)  # the same autocast and scaler
    scaler = policy.scaler()
    clock = Clock(dd.device)
    order = torch.randperm(len(dd.x_train), device=dd.device)
    model.train()
    for i in range(steps):
        clock.reset()
        idx = order[i * batch : (i + 1) * batch]
        x, y = dd.x_train[idx], dd.y_train[idx]
        clock.lap("batch")
        x = plain_augment(x)
        clock.lap("augment")
        with policy.autocast():
            loss = loss_fn(model(x), y)
        clock.lap("forward")
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        clock.lap("backward")
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        clock.lap("optimiser")
        loss.detach()
        clock.lap("bookkeeping")
    clock.reset()
    model.eval()
    with torch.no_grad(), policy.autocast():
        for i in range(0, len(dd.x_test), batch):
            model(dd.x_test[i : i + batch]).argmax(1)
    clock.lap("evaluation")
    return clock.steps


def interleaved(dd, widths, batch, bf16, steps):
    """CPU-seconds of ``steps`` whole steps of the engine (``train_step`` and
    its bookkeeping) and of the plain loop (``plain_recipe``'s step), the two
    alternating step by step in one process, so a shared machine's load falls
    on both alike; each side warmed up by two steps first."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_05_cifar import plain_augment

    torch.manual_seed(0)
    cfg = train.TrainConfig(epochs=1, batch_size=batch, lr=0.2)
    policy = train.Policy.for_device(dd.device, bf16)
    run = train._Run(train.make_vgg(widths, "bn"), dd, cfg, policy)
    running = torch.zeros((), device=dd.device)

    def engine(idx):
        nonlocal running
        running += run.train_step(dd.x_train[idx], dd.y_train[idx]).float() * batch

    torch.manual_seed(0)
    model = train.make_vgg(widths, "bn").to(
        dd.device, memory_format=torch.channels_last
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 0.2, total_steps=steps + 2
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    scaler, total = policy.scaler(), torch.zeros((), device=dd.device)

    def plain(idx):
        nonlocal total
        with policy.autocast():
            loss = loss_fn(model(plain_augment(dd.x_train[idx])), dd.y_train[idx])
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        total += loss.detach()

    order = torch.randperm(len(dd.x_train), device=dd.device)
    spent = {"engine": 0.0, "plain": 0.0}
    sides = {"engine": engine, "plain": plain}
    run.model.train(), model.train()
    for i in range(steps + 2):
        idx = order[(i * batch) % (len(order) - batch) :][:batch]
        names = ("engine", "plain") if i % 2 == 0 else ("plain", "engine")
        for name in names:
            start = time.process_time()
            sides[name](idx)
            if i >= 2:  # two warm-up steps each
                spent[name] += time.process_time() - start
    return {
        "steps": steps,
        "engine_cpu_s": round(spent["engine"], 3),
        "plain_cpu_s": round(spent["plain"], 3),
        "engine_over_plain": round(spent["engine"] / spent["plain"], 4),
    }


def summary(steps) -> dict:
    """Median milliseconds per step of each phase and its share of the step
    (the median step's phases), and the evaluation (the last entry)."""
    *train_steps, evaluation = steps
    med = {
        p: statistics.median(s.get(p, 0.0) for s in train_steps) * 1000 for p in PHASES
    }
    total = sum(med.values())
    out = {
        p: {"ms": round(ms, 2), "share": round(ms / total, 4)} for p, ms in med.items()
    }
    out["step_ms"] = round(total, 1)
    out["evaluation_ms"] = round(evaluation["evaluation"] * 1000, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--widths", default="32,64,128,256")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--n-train", type=int, default=12_800)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--torch-profiler", action="store_true")
    parser.add_argument(
        "--interleaved",
        type=int,
        default=0,
        metavar="STEPS",
        help="also time STEPS steps of each, engine and plain alternating",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(","))
    cifar = data.load_cifar10(verbose=False)
    dd = train.DeviceData(cifar, n_train=args.n_train, n_test=args.test)
    steps = min(args.steps, args.n_train // args.batch)
    results = {
        "config": {**vars(args), "widths": widths, "out": None, "steps": steps},
        "threads": torch.get_num_threads(),
        "device": str(dd.device),
        "torch": torch.__version__,
    }
    for name, fn in (("engine", profile_engine), ("plain", profile_plain)):
        results[name] = summary(fn(dd, widths, args.batch, args.bf16, steps))
        print(f"{name} ({results['threads']} thread(s), {dd.device}), ms per step:")
        for phase in PHASES:
            row = results[name].get(phase)
            if row:
                print(f"  {phase:12s} {row['ms']:8.2f} ms  {row['share']:6.1%}")
        print(f"  {'step':12s} {results[name]['step_ms']:8.1f} ms")
        print(
            f"  evaluation of {len(dd.x_test):,} test images: "
            f"{results[name]['evaluation_ms']:.0f} ms",
            flush=True,
        )
    if args.interleaved:
        results["interleaved"] = interleaved(
            dd, widths, args.batch, args.bf16, args.interleaved
        )
        print(f"interleaved whole steps: {results['interleaved']}", flush=True)
    if args.torch_profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            profile_engine(dd, widths, args.batch, args.bf16, min(steps, 10))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
