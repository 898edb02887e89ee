"""Collect the runs of ``run.sh`` here into
``benchmarks/results/engine_vs_plain_05_after_deletion.json`` (run from the
repository root)."""

import json
import statistics
from pathlib import Path

D = Path("benchmarks/results/05_epoch_parity")
WHAT = (
    "per-epoch CPU-seconds of the engine (bench_05_cifar.py --nets bn) against the "
    "plain loop of the same precision (--nets plain): one epoch of the same 10,000 "
    "training images, bf16 autocast, VGG 32-64-128-256 with BN, batch 256; training "
    "= the script's own CPU-seconds of the epoch (evaluation excluded), process = "
    "/usr/bin/time user+sys of the whole command (loading, warm-up, one evaluation "
    "of 10,000 test images). One thread: the two side by side, each pinned to its "
    "own core, cores swapped per repeat; two threads: one process at a time, engine, "
    "plain, plain, engine (OMP_WAIT_POLICY=PASSIVE). After lookahead's deletion from "
    "helpers/train.py (it was never on in this path)."
)


def side(threads, name, net, repeat):
    saved = json.loads((D / f"{threads}_{name}_{repeat}.json").read_text())
    history = saved["results"][net]
    times = (D / f"{threads}_{name}_{repeat}.time").read_text().split()[-3:]
    user, system, wall = map(float, times)
    return {
        "training_cpu_s": history["cpu_seconds"][-1],
        "training_wall_s": history["seconds"][-1],
        "process_cpu_s": round(user + system, 2),
        "process_wall_s": wall,
        "command": saved["provenance"]["command"],
    }


out = {"what": WHAT, "script": str(D / "run.sh"), "runs": {}}
for threads in ("1t", "2t"):
    rows = []
    for repeat in ("r1", "r2"):
        if not (D / f"{threads}_plain_{repeat}.json").is_file():
            continue
        row = {
            "engine": side(threads, "engine", "bn", repeat),
            "plain": side(threads, "plain", "plain", repeat),
        }
        for unit in ("training", "process"):
            engine, plain = row["engine"], row["plain"]
            ratio = engine[f"{unit}_cpu_s"] / plain[f"{unit}_cpu_s"]
            row[f"{unit}_ratio"] = round(ratio, 3)
        rows.append(row)
    out["runs"][threads] = {
        "repeats": rows,
        "training_ratio_median": statistics.median(r["training_ratio"] for r in rows),
        "process_ratio_median": statistics.median(r["process_ratio"] for r in rows),
    }
target = Path("benchmarks/results/engine_vs_plain_05_after_deletion.json")
target.write_text(json.dumps(out, indent=1) + "\n")
for threads, v in out["runs"].items():
    ratios = [(r["training_ratio"], r["process_ratio"]) for r in v["repeats"]]
    print(threads, "engine/plain (training, process):", ratios)
