"""Lesson 05's GPU plan, run once on a real GPU: ``make gpu-check``.

    BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz python benchmarks/gpu_check.py \\
        [--out data/reference/05_gpu_check.json]

Three parts; projected at 3-6 minutes on one datacenter GPU (not yet run on
one: no GPU was lent to the project; a T4 takes longer):

1. **The main pair to its budget**: the BN and the no-BN net of the GPU plan
   (``helpers.budgets.lesson05("gpu")``: its net, all 50,000 images, its
   epochs, batch ``budgets.MAIN_BATCH``, the lesson's rate 0.05), trained by
   ``helpers.train`` under the CUDA policy (fp16 autocast, gradient scaler,
   fused SGD, a synchronised clock).
2. **The projection against the clock**: each run's measured seconds
   (training, evaluation and the two untimed-in-history warm-up steps, the
   clock read after ``torch.cuda.synchronize``)
   beside ``budgets.t4_seconds``' projection for a T4, and the ratio.  On
   another GPU the ratio says how far that GPU is from the projected T4, not
   whether the T4 budget holds.
3. **The race on CUDA**: ``bench_05_cifar.py``'s engine against its plain loop
   of the same precision, to ``--target`` (capped at ``--race-epochs``).

Writes a record (``--out``) with the device's name, torch's version and every
figure; lesson 05 quotes it where present and says "projected" where not.
``--allow-cpu`` runs the same code on the CPU at tiny sizes (``--tiny``):
``tests/test_benchmarks.py`` does, so the script cannot rot before a GPU sees
it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_05_cifar  # noqa: E402
from benchmarks._notebook import write_record  # noqa: E402
from helpers import budgets, data, train  # noqa: E402

MAIN_LR = 0.05  # lesson 05's run() default


def against_projection(measured_seconds, flops, n_train, n_test, epochs, batch):
    """The measured seconds of one run beside the T4 projection of the same run."""
    projected = budgets.t4_seconds(flops, n_train, n_test, epochs, batch)
    return {
        "measured_seconds": round(measured_seconds, 2),
        "projected_t4_seconds": round(projected, 2),
        "measured_over_projected": round(measured_seconds / projected, 3),
    }


def timed_run(norm, dd, net, epochs, batch, policy, clock=None):
    """Train one net of the plan; its history and the measured seconds
    (training and evaluation, from ``policy.clock`` or ``clock``)."""
    clock = clock or policy.clock
    torch.manual_seed(0)
    model = train.make_vgg(norm=norm, **net)
    cfg = train.TrainConfig(epochs=epochs, batch_size=batch, lr=MAIN_LR)
    start = clock()
    history = train.train(model, dd, cfg, progress=False, policy=policy)
    return history, clock() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data/reference/05_gpu_check.json"
    )
    parser.add_argument("--target", type=float, default=0.84)
    parser.add_argument("--race-epochs", type=int, default=14)
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (tests)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu-check: no CUDA device here (--allow-cpu runs it on the CPU)")
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    policy = train.Policy.for_device(device)
    plan = budgets.lesson05("gpu")
    net, epochs, n_train = plan["net"], plan["main"]["epochs"], plan["main"]["n_train"]
    race = ["--epochs", str(args.race_epochs), "--widths", "32,64,128,256"]
    if args.tiny:
        net, epochs, n_train = dict(widths=(4, 4, 4, 4), pool_first=True), 1, 512
        race = ["--epochs", "1", "--widths", "4,4,4,4", "--n-train", "512"]
    started = time.perf_counter()
    print(f"gpu-check on {name} ({policy.describe()}), torch {torch.__version__}")
    cifar = data.load_cifar10()
    dd = train.DeviceData(cifar, device=device, n_train=n_train)
    flops = train.forward_flops(train.make_vgg(**net))
    results = {
        "device": str(device),
        "device_name": name,
        "precision": policy.describe(),
    }
    results["main"] = {}
    for norm in ("bn", "none"):
        history, seconds = timed_run(norm, dd, net, epochs, budgets.MAIN_BATCH, policy)
        row = against_projection(
            seconds, flops, len(dd.x_train), len(dd.x_test), epochs, budgets.MAIN_BATCH
        )
        row.update(
            test_accuracy=history["test_accuracy"][-1],
            train_seconds=history["seconds"][-1],
            history=history,
        )
        results["main"][norm] = row
        print(
            f"  main pair, {norm:4s}: {row['test_accuracy']:.2%} after {epochs} ep., "
            f"{seconds:.1f} s measured, {row['projected_t4_seconds']:.1f} s projected "
            f"on a T4 (x{row['measured_over_projected']:.2f})",
            flush=True,
        )
    pair = sum(r["measured_seconds"] for r in results["main"].values())
    results["main_pair_seconds"] = round(pair, 2)
    results["main_pair_budget_t4_seconds"] = 180
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "race.json"
        bench_05_cifar.main(
            [*race, "--batch", "256", "--lr", "0.2", "--nets", "bn,plain"]
            + ["--target", str(args.target), "--skip-pipeline", "--stop-at-target"]
            + ["--device", device.type, "--out", str(out)]
        )
        race_results = json.loads(out.read_text())["results"]
    results["race"] = race_results.get("race", {})
    results["race_histories"] = {k: race_results[k] for k in ("bn", "plain")}
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"  whole check: {results['wall_seconds']:.0f} s")
    params = {"command": "benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:])}
    write_record(args.out, args.out.stem, params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
