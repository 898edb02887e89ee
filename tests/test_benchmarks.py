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
        + ["--steps", "2", "--nets", "bn,none,plain", "--target", "0.05"],
        ["data share of a step", "per-image DataLoader, 2 workers", "epoch  1:"]
        + ["plain epoch  1:", "race to 5%: plain", "x the engine's CPU-seconds"],
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
