"""Lesson 05's budgets: what each experiment trains in each mode, and its cost on a T4.

The lesson reads its sizes from here (``lesson05(mode)``), and so does
``tests/test_budgets.py``, which holds the GPU plan to the design's limits: the
whole lesson within 10 minutes on a free Colab T4 and the main BN/no-BN pair
within 3, by the FLOP projection below.  No GPU has run the lesson (none was
available to the project), so every GPU figure is a **projection**; its
assumptions are written here once and printed beside every figure:

* training costs about 3 forward passes (forward, and a backward of twice
  the work), an evaluation one forward pass per test image;
* the convolutions and linear layers run at ``UTILISATION`` of the T4's
  65 TFLOPS fp16 tensor peak (small CNNs reach some 20-40%);
* no step is shorter than ``STEP_FLOOR`` seconds (kernel launches, the
  optimizer: tiny batches are launch-bound, not FLOP-bound).
"""

from __future__ import annotations

from . import train

MODES = ("fast", "cpu", "gpu")
UTILISATION = 0.3
STEP_FLOOR = 2e-3  # seconds per training step, whatever its FLOPs
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
# decoding the 60,000 JPEGs once: about 3,000 images/s per core measured on
# these CPUs (RECIPES.md), Colab's 2 cores
LOAD_SECONDS = (CIFAR_TRAIN + CIFAR_TEST) / (3000 * 2)

# Per mode.  n_train None: all 50,000 training images; n_test None: all 10,000.
_PLAN = {
    "net": {
        "fast": dict(widths=(16, 32, 64, 128), pool_first=True),
        "cpu": dict(widths=(32, 64, 128, 256), pool_first=True),
        "gpu": dict(widths=(64, 128, 256, 512), pool_first=False),
    },
    "main": {
        "fast": dict(n_train=4000, epochs=4),
        "cpu": dict(n_train=None, epochs=8),
        "gpu": dict(n_train=None, epochs=15),
    },
    "sweep": {
        "fast": dict(n_train=2000, epochs=1),
        "cpu": dict(n_train=10_000, epochs=3),
        "gpu": dict(n_train=10_000, epochs=8),
    },
    "lrs": {
        "fast": [0.01, 0.1, 1.0],
        "cpu": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        "gpu": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    },
    "stress": {
        "fast": dict(n_train=1000, factor=4.0, epochs=7),
        "cpu": dict(n_train=10_000, factor=10**0.5, epochs=8),
        "gpu": dict(n_train=None, factor=2.0, epochs=12),
    },
    "batches": {
        "fast": [32, 256],
        "cpu": [16, 64, 256, 1024],
        "gpu": [16, 64, 256, 1024],
    },
    # the slides' Inception network: width scales its channels (1.0: theirs)
    "inception": {
        "fast": dict(width=0.25, n_train=250, n_test=250, epochs=2, step_epochs=1),
        "cpu": dict(width=0.25, n_train=4000, n_test=1000, epochs=6, step_epochs=2),
        "gpu": dict(width=1.0, n_train=10_000, n_test=None, epochs=12, step_epochs=5),
    },
}
MAIN_BATCH, STRESS_BATCH, INCEPTION_BATCH = 128, 256, 250  # the slides' batch: 250
REGULARISER_RUNS, SIGMOID_RUNS = 4, 2


def lesson05(mode: str) -> dict:
    """Every size lesson 05 uses in ``mode`` ("fast", "cpu" or "gpu")."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {MODES}")
    return {name: value[mode] for name, value in _PLAN.items()}


def _count(n, full):
    return full if n is None else n


def experiments(mode: str) -> list[dict]:
    """The training runs of each experiment: name, model builder and its
    arguments, runs, epochs, training images, test images, batch size."""
    plan = lesson05(mode)
    vgg = (train.make_vgg, plan["net"])
    sweep = plan["sweep"]
    n_sweep = _count(sweep["n_train"], CIFAR_TRAIN)

    def row(name, builder, runs, epochs, n_train, batch, n_test=CIFAR_TEST):
        return dict(
            name=name,
            builder=builder,
            runs=runs,
            epochs=epochs,
            n_train=n_train,
            n_test=n_test,
            batch=batch,
        )

    main, stress, inc = plan["main"], plan["stress"], plan["inception"]
    rows = [
        row(
            "1. main pair",
            vgg,
            2,
            main["epochs"],
            _count(main["n_train"], CIFAR_TRAIN),
            MAIN_BATCH,
        ),
        row(
            "2. learning-rate sweep",
            vgg,
            2 * len(plan["lrs"]),
            sweep["epochs"],
            n_sweep,
            MAIN_BATCH,
        ),
        row(
            "2. stress test",
            vgg,
            2,
            stress["epochs"],
            _count(stress["n_train"], CIFAR_TRAIN),
            STRESS_BATCH,
        ),
    ]
    rows += [
        row("3. batch sizes", vgg, 2, sweep["epochs"], n_sweep, batch)
        for batch in plan["batches"]
    ]
    rows.append(
        row(
            "4. regularisers",
            vgg,
            REGULARISER_RUNS,
            sweep["epochs"],
            n_sweep,
            MAIN_BATCH,
        )
    )
    rows.append(
        row("5. sigmoid", vgg, SIGMOID_RUNS, sweep["epochs"], n_sweep, MAIN_BATCH)
    )
    inception = (train.make_inception, dict(width=inc["width"]))
    rows.append(
        row(
            "6. the slides' Inception net",
            inception,
            2,
            inc["epochs"],
            _count(inc["n_train"], CIFAR_TRAIN),
            INCEPTION_BATCH,
            _count(inc["n_test"], CIFAR_TEST),
        )
    )
    return rows


def t4_seconds(flops, n_train, n_test, epochs, batch) -> float:
    """One run's projected seconds on a T4: training (with the step floor) and
    one evaluation of the test images per epoch."""
    steps = epochs * (n_train // min(batch, n_train))
    per_step = max(
        train.projected_seconds(flops, batch, utilisation=UTILISATION), STEP_FLOOR
    )
    evaluation = epochs * n_test * flops / (train.T4_FP16_FLOPS * UTILISATION)
    return steps * per_step + evaluation


_FLOPS: dict = {}


def total_seconds(mode: str = "gpu") -> float:
    """The whole lesson's projected T4 seconds: loading and every run."""
    return LOAD_SECONDS + sum(r["seconds"] for r in projection(mode))


def projection(mode: str = "gpu") -> list[dict]:
    """Each experiment's runs with their FLOPs and projected T4 seconds."""
    flops_of = _FLOPS  # one forward pass per distinct net and process, not per call
    rows = []
    for row in experiments(mode):
        builder, kwargs = row["builder"]
        key = (builder.__name__, tuple(sorted(kwargs.items())))
        if key not in flops_of:
            flops_of[key] = train.forward_flops(builder(**kwargs))
        flops = flops_of[key]
        seconds = row["runs"] * t4_seconds(
            flops, row["n_train"], row["n_test"], row["epochs"], row["batch"]
        )
        rows.append({**row, "flops": flops, "seconds": seconds})
    return rows


def table(mode: str = "gpu") -> str:
    """The projection as text: one line per experiment, then the total."""
    rows = projection(mode)
    lines = [
        f"{'experiment':32s} {'runs':>4s} {'epochs':>6s} {'images':>7s} "
        f"{'GFLOPs':>7s} {'T4 s':>6s}"
    ]
    for r in rows:
        name = r["name"] + (f" (batch {r['batch']})" if "batch" in r["name"] else "")
        lines.append(
            f"{name:32s} {r['runs']:4d} {r['epochs']:6d} {r['n_train']:7,d} "
            f"{r['flops'] / 1e9:7.2f} {r['seconds']:6.0f}"
        )
    lines.append(f"{'loading CIFAR-10 (decoding, see below)':58s} {LOAD_SECONDS:6.0f}")
    total = LOAD_SECONDS + sum(r["seconds"] for r in rows)  # = total_seconds
    lines.append(f"{'whole lesson (projected)':58s} {total:6.0f}")
    return "\n".join(lines)
