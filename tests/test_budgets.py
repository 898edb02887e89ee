"""Lesson 05's GPU plan (helpers/budgets.py) within the design's T4 budget.

No GPU runs in CI, so the budget is held by its FLOP projection: the whole
lesson within 10 minutes on a free Colab T4, the main BN/no-BN pair within 3.
The notebook must read its sizes from the same plan, or the test would hold a
plan nobody runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from helpers import budgets, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_whole_lesson_projects_to_ten_minutes_on_a_t4():
    assert budgets.total_seconds("gpu") <= 600, budgets.table("gpu")


def test_the_main_pair_projects_to_three_minutes_on_a_t4():
    (main,) = [r for r in budgets.projection("gpu") if r["name"].startswith("1.")]
    assert main["runs"] == 2 and main["n_train"] == 50_000
    assert main["seconds"] <= 180, budgets.table("gpu")


def test_the_projection_counts_what_it_says():
    """3 forward passes per training image at 30% of 65 TFLOPS, one per test image."""
    flops, n, n_test, epochs, batch = 1e9, 10_000, 1000, 2, 100
    expected = (3 * flops * n + flops * n_test) * epochs / (65e12 * 0.3)
    assert budgets.t4_seconds(flops, n, n_test, epochs, batch) == pytest.approx(
        expected
    )
    # tiny batches are launch-bound: the step floor
    assert budgets.t4_seconds(1e3, 100, 0, 1, 1) == pytest.approx(
        100 * budgets.STEP_FLOOR
    )


def test_the_inception_port_is_the_slides_net():
    model = train.make_inception("bn")
    convs = [m for m in model.modules() if isinstance(m, train._torch().nn.Conv2d)]
    assert len(convs) == 9 * 6 and not any(c.bias is not None for c in convs)
    bns = [m for m in model.modules() if isinstance(m, train._torch().nn.BatchNorm2d)]
    assert len(bns) == len(convs) and not any(b.weight.requires_grad for b in bns)
    assert model[-1].in_features == 384 + 384 + 128 + 128  # module 5b's outputs
    assert train.count_bn_layers(train.make_inception("none")) == 0


def test_the_notebook_reads_its_sizes_from_the_plan():
    nb = json.loads((ROOT / "solutions" / "05_cifar10_comparison.ipynb").read_text())
    code = "\n".join(
        "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
    )
    assert "budgets.lesson05(" in code
    for literal in ("n_train=4000", "epochs=15", "factor=2.0"):
        assert literal not in code, f"{literal}: a size typed in the notebook"


def test_the_gpu_check_holds_its_clock_against_the_projection():
    """benchmarks/gpu_check.py's arithmetic, with a fake clock: the seconds it
    reports are the clock's, set beside the T4 projection of the same run."""
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_check

    row = gpu_check.against_projection(90.0, 1e9, 50_000, 10_000, 15, 128)
    projected = budgets.t4_seconds(1e9, 50_000, 10_000, 15, 128)
    assert row["projected_t4_seconds"] == round(projected, 2)
    assert row["measured_over_projected"] == round(90.0 / projected, 3)

    class Tiny:
        rng = np.random.default_rng(0)
        x_train = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
        x_test = x_train[:8]
        y_train, y_test = rng.integers(0, 10, 32), rng.integers(0, 10, 8)
        classes, source = tuple("0123456789"), "random"

    ticks = iter([100.0, 107.5])
    policy = train.Policy.for_device("cpu")
    dd = train.DeviceData(Tiny(), device="cpu")
    net = dict(widths=(4, 4), pool_first=True)
    history, seconds = gpu_check.timed_run(
        "bn", dd, net, 1, 16, policy, clock=lambda: next(ticks)
    )
    assert seconds == 7.5 and history["epoch"] == [1]
