"""The benchmark scripts still run (tiny sizes: their figures are not checked here).

A benchmark that no test runs rots quietly, and the lessons quote its figures.
These runs use sizes far too small to time anything; they check that each
script runs to the end and prints the lines its lesson quotes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "bench_02_batchnorm.py": (
        ["--n", "16", "--d", "8", "--repeat", "1"],
        ["numpy forward+backward_alt", "torch forward+backward"],
    ),
    "bench_03_fold.py": (["--batch", "2", "--repeat", "1"], ["speed-up"]),
    # fast mode: the shipped CIFAR-10 subset, a tiny net, one epoch
    "bench_05_cifar.py": (
        ["--epochs", "1", "--widths", "4,4,4,4", "--pool-first", "--batch", "64"]
        + ["--steps", "2", "--target", "0.05"]
        # and the fast recipe at tiny widths, with one of its ablations
        + ["--nets", "bn,none,plain,fast,fast-no_tta+no_whitening"]
        + ["--fast-epochs", "1", "--fast-widths", "4,4,4"],
        ["data share of a step", "per-image DataLoader, 2 workers", "epoch  1:"]
        + ["plain epoch  1:", "race to 5%: plain", "x the engine's CPU-seconds"]
        + ["fast epoch  1:", "fast with test-time augmentation:", "race to 5%: fast"]
        + ["fast-no_tta+no_whitening epoch  1:", "x the plain loop's CPU-seconds"],
    ),
    # the GPU check's code, on the CPU at tiny sizes (no GPU runs in CI)
    "gpu_check.py": (
        ["--allow-cpu", "--tiny", "--out", "gpu_check.json", "--target", "0.05"],
        ["gpu-check on CPU", "main pair, bn", "main pair, none", "projected on a T4"]
        + ["race to 5%: plain", "whole check", "wrote gpu_check.json"],
    ),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_prints_what_the_lesson_quotes(script, tmp_path):
    args, expected = CASES[script]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in expected:
        assert text in proc.stdout, f"{text!r} missing from:\n{proc.stdout[-2000:]}"


def test_the_race_counts_the_fast_recipe_s_set_up_and_tta():
    """Time to a target: the first epoch that reaches it; the fast recipe's
    whitening set-up is added, and its final evaluation with test-time
    augmentation counts as a last row, its cost included."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_05_cifar import time_to

    history = {
        "epoch": [1, 2],
        "test_accuracy": [0.5, 0.82],
        "seconds": [10.0, 20.0],
        "cpu_seconds": [15.0, 30.0],
    }
    assert time_to(history, 0.8) == (2, 20.0, 30.0)
    assert time_to(history, 0.84) is None
    history.update(whiten_seconds=1.0, whiten_cpu_seconds=2.0)
    history.update(tta_accuracy=0.85, tta_seconds=3.0, tta_cpu_seconds=4.0)
    assert time_to(history, 0.8) == (2, 21.0, 32.0)
    assert time_to(history, 0.84) == (2, 24.0, 36.0)
    assert time_to(history, 0.9) is None


def test_a_plain_loop_stopped_short_of_the_target_bounds_the_ratio():
    """Stopped (--plain-cpu-budget) below the target, the plain loop would have
    needed more than the CPU-seconds it spent: the race says 'at most'."""
    import argparse

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_05_cifar import _race_report

    def history(accuracies, cpu):
        return {
            "epoch": list(range(1, len(cpu) + 1)),
            "test_accuracy": accuracies,
            "seconds": cpu,
            "cpu_seconds": cpu,
        }

    results = {
        "fast": history([0.7, 0.85], [100.0, 200.0]),
        "plain": history([0.5, 0.6, 0.7], [200.0, 400.0, 800.0]),
    }
    race = _race_report(results, argparse.Namespace(target=0.84))
    assert race["plain"] == {} and race["fast"]["cpu_seconds"] == 200.0
    assert race["fast_over_plain_cpu_seconds_at_most"] == 0.25
    assert "fast_over_plain_cpu_seconds" not in race
    results["plain"]["test_accuracy"][-1] = 0.9
    race = _race_report(results, argparse.Namespace(target=0.84))
    assert race["fast_over_plain_cpu_seconds"] == 0.25
    assert "fast_over_plain_cpu_seconds_at_most" not in race


def test_the_seed_study_pairs_seeds_then_tunes_each_net_s_rate(monkeypatch):
    """--seeds with --lr-sweep: both nets at the untuned rates for every seed,
    the sweep on the first seed, then each net at its best rate for the other
    seeds; each net's spread over seeds.  Fake runs: accuracy = a function of
    the net, the rate and the seed."""
    import argparse

    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_05_cifar as bench

    def accuracy(norm, lr, seed):  # BN best at 0.05, no BN at 0.2
        best = {"bn": 0.05, "none": 0.2}[norm]
        return 0.8 - abs(lr - best) + seed / 100

    order = []

    def fake_run(dd, widths, norm, lr, seed, args, label=None):
        order.append((norm, lr, seed))
        acc = accuracy(norm, lr, seed)
        return {
            "test_accuracy": [acc / 2, acc],
            "train_loss": [2.0, 1.0],
            "seconds": [1.0, 2.0],
            "cpu_seconds": [1.0, 2.0],
            "diverged": False,
        }

    monkeypatch.setattr(bench, "_vgg_run", fake_run)
    dd = argparse.Namespace(x_train=range(100), x_test=range(10))
    args = argparse.Namespace(
        seeds="0,1,2",
        lr_sweep="0.05,0.1,0.2",
        lr=0.2,
        lr_none=0.05,
        epochs=2,
        batch=16,
        pool_first=True,
        bf16=False,
    )
    saved = []
    study = bench.seed_study(dd, (4, 4), args, save=saved.append)
    # (1) the untuned pair first, seed by seed
    assert order[:6] == [
        (norm, {"bn": 0.2, "none": 0.05}[norm], seed)
        for seed in (0, 1, 2)
        for norm in ("bn", "none")
    ]
    assert len(order) == len(set(order)) == 6 + 4 + 4  # no run twice
    assert len(saved) >= len(order)  # a save after every run
    assert study["bn"]["best_lr"] == 0.05 and study["none"]["best_lr"] == 0.2
    tuned = study["none"]["tuned"]
    assert tuned["final_accuracy"] == pytest.approx([0.8, 0.81, 0.82])
    assert tuned["mean"] == pytest.approx(0.81)
    assert (tuned["min"], tuned["max"]) == pytest.approx((0.8, 0.82))
    assert tuned["std"] == pytest.approx(0.01)
    untuned = study["bn"]["untuned"]
    assert untuned["lr"] == 0.2
    assert untuned["final_accuracy"] == pytest.approx([0.65, 0.66, 0.67])
    assert study["bn"]["sweep"] == pytest.approx(
        {"0.05": 0.8, "0.1": 0.75, "0.2": 0.65}
    )


def test_a_race_from_runs_made_apart_keeps_the_record_s_other_keys(tmp_path):
    """--race-from: the one-thread race from two --out files (fast and plain,
    run side by side), written under --record-key of an existing record."""
    import json

    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_05_cifar as bench

    def out(name, accuracies, cpu):
        history = {
            "epoch": list(range(1, len(cpu) + 1)),
            "test_accuracy": accuracies,
            "seconds": [2 * c for c in cpu],
            "cpu_seconds": cpu,
        }
        path = tmp_path / f"{name}.json"
        machine = {"name": "2 CPU core(s)", "threads": 1}
        path.write_text(
            json.dumps(
                {
                    "provenance": {"command": f"--nets {name}"},
                    "results": {name: history, "machine": machine},
                }
            )
        )
        return str(path)

    record = tmp_path / "05_race.json"
    record.write_text(json.dumps({"name": "05_race", "results": {"race": "kept"}}))
    fast = out("fast", [0.7, 0.85], [50.0, 100.0])
    plain = out("plain", [0.6, 0.8, 0.86], [100.0, 200.0, 400.0])
    args = ["--race-from", fast, plain, "--record", str(record)]
    assert bench.main([*args, "--record-key", "one_thread"]) == 0
    written = json.loads(record.read_text())["results"]
    assert written["race"] == "kept"
    race = written["one_thread"]["race"]
    assert race["plain"] == {"epoch": 3, "seconds": 800.0, "cpu_seconds": 400.0}
    assert race["fast_over_plain_cpu_seconds"] == 0.25
    assert race["fast_over_plain_seconds"] == 0.25
    assert written["one_thread"]["commands"] == {
        "fast": "--nets fast",
        "plain": "--nets plain",
    }
