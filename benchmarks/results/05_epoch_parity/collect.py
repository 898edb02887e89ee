"""Collect benchmarks/results/05_epoch_parity/* into one JSON summary."""

import json
import statistics
from pathlib import Path

D = Path("benchmarks/results/05_epoch_parity")
out = {
    "what": "per-epoch CPU-seconds of the engine (bench_05_cifar.py --nets bn) against the "
    "plain loop of the same precision (--nets plain): one epoch of the same 10,000 training "
    "images, bf16 autocast, VGG 32-64-128-256 with BN, batch 256; training = the script's own "
    "CPU-seconds of the epoch (evaluation excluded), process = /usr/bin/time user+sys of the "
    "whole command (loading, warm-up, one evaluation of 10,000 test images). One thread: the "
    "two side by side, each pinned to its own core, cores swapped per repeat; two threads: "
    "one process at a time, engine, plain, plain, engine (OMP_WAIT_POLICY=PASSIVE). After "
    "lookahead's deletion from helpers/train.py (it was never on in this path).",
    "script": "benchmarks/results/05_epoch_parity/run.sh",
    "runs": {},
}
for threads in ("1t", "2t"):
    rows = []
    for r in ("r1", "r2"):
        row = {}
        for side, net in (("engine", "bn"), ("plain", "plain")):
            f = D / f"{threads}_{side}_{r}.json"
            t = D / f"{threads}_{side}_{r}.time"
            if not f.is_file():
                continue
            saved = json.loads(f.read_text())
            h = saved["results"][net]
            user, sys_, wall = map(float, t.read_text().split()[-3:])
            row[side] = {
                "training_cpu_s": h["cpu_seconds"][-1],
                "training_wall_s": h["seconds"][-1],
                "process_cpu_s": round(user + sys_, 2),
                "process_wall_s": wall,
                "command": saved["provenance"]["command"],
            }
        if len(row) == 2:
            row["training_ratio"] = round(
                row["engine"]["training_cpu_s"] / row["plain"]["training_cpu_s"], 3
            )
            row["process_ratio"] = round(
                row["engine"]["process_cpu_s"] / row["plain"]["process_cpu_s"], 3
            )
            rows.append(row)
    if rows:
        out["runs"][threads] = {
            "repeats": rows,
            "training_ratio_median": statistics.median(
                r["training_ratio"] for r in rows
            ),
            "process_ratio_median": statistics.median(r["process_ratio"] for r in rows),
        }
Path("benchmarks/results/engine_vs_plain_05_after_deletion.json").write_text(
    json.dumps(out, indent=1) + "\n"
)
print(
    json.dumps(
        {
            k: {kk: vv for kk, vv in v.items() if kk != "repeats"}
            | {
                "ratios": [
                    (r["training_ratio"], r["process_ratio"]) for r in v["repeats"]
                ]
            }
            for k, v in out["runs"].items()
        },
        indent=1,
    )
)
