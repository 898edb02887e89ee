"""The course's figure style, concept colours and shared plot functions.

Plot functions take ``ax=None`` (a new figure when omitted) and return the
figure; the notebook ends the cell with ``plt.show()``.  Figures are PNG:
SVG embeds a date, so its output would differ on every run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

STYLE = Path(__file__).with_name("bncourse.mplstyle")

# One colour per concept across the whole course (Okabe-Ito palette).
COLORS = {
    "bn": "#0072B2",  # with batch norm: blue
    "no_bn": "#D55E00",  # without batch norm: vermillion
    "running": "#009E73",  # running (population) statistics: green
    "renorm": "#CC79A7",  # batch renormalization: purple
    "groupnorm": "#E69F00",  # group norm and other batch-free norms: orange
    "reference": "#555555",  # a reference, target or ideal: grey
}
# Series that are not methods (lesson 01's toy figures: subsets, weight scales,
# activations), so that the colours above keep one meaning in every figure.
SERIES = ("#000000", "#56B4E9", "#999999")  # black, sky blue, grey
LABELS = {
    "bn": "with BN",
    "no_bn": "without BN",
    "running": "running statistics",
    "renorm": "batch renorm",
    "groupnorm": "group norm",
    "reference": "reference",
}


def use_style() -> None:
    """Load the course style and make inline figures PNG (called by setup())."""
    plt.style.use(str(STYLE))
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("png")
    except ImportError:  # plain Python: nothing to configure
        pass


def _axes(ax, **subplots):
    if ax is None:
        fig, ax = plt.subplots(**subplots)
        return fig, ax
    return ax.figure, ax


def feature_histograms(x, x_after=None, *, names=None, ax=None, title=None):
    """Histogram of each feature (column) of ``x``; optionally after a transform.

    With ``x_after`` the figure has two panels (before, after) sharing nothing,
    so the change of scale is visible.
    """
    x = np.asarray(x)
    panels = [x] if x_after is None else [x, np.asarray(x_after)]
    if ax is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels) / 1.4, 3))
        axes = np.atleast_1d(axes)
    else:
        fig, axes = ax.figure, np.atleast_1d(ax)
    names = names or [f"feature {j}" for j in range(x.shape[1])]
    for panel, axis, label in zip(panels, axes, ["before", "after"], strict=False):
        for j in range(panel.shape[1]):
            axis.hist(panel[:, j], bins=20, alpha=0.55, label=names[j])
        axis.set_xlabel("value")
        axis.set_ylabel("count")
        if len(panels) > 1:
            axis.set_title(label)
    axes[0].legend(loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------
# lesson 02: the computational graph of batch norm, and normalisation axes
# --------------------------------------------------------------------------

# (label, x, y) of each node, and the edges (from, to, label on the arrow)
_BN_NODES = {
    "x": ("$x$", 0.0, 1.0),
    "mu": (r"$\mu = \frac{1}{m}\sum_i x_i$", 1.6, 2.1),
    "xc": (r"$x_c = x - \mu$", 3.2, 1.0),
    "var": (r"$\sigma^2 = \frac{1}{m}\sum_i x_c^2$", 4.8, 2.1),
    "std": (r"$s = \sqrt{\sigma^2 + \epsilon}$", 6.4, 2.1),
    "inv": (r"$\rho = 1/s$", 8.0, 2.1),
    "xhat": (r"$\hat{x} = x_c \cdot \rho$", 8.0, 1.0),
    "scale": (r"$\gamma \hat{x}$", 9.6, 1.0),
    "out": (r"$y = \gamma\hat{x} + \beta$", 11.2, 1.0),
    "gamma": (r"$\gamma$", 9.6, 0.0),
    "beta": (r"$\beta$", 11.2, 0.0),
}
_BN_EDGES = [
    ("x", "mu"),
    ("x", "xc"),
    ("mu", "xc"),
    ("xc", "var"),
    ("var", "std"),
    ("std", "inv"),
    ("xc", "xhat"),
    ("inv", "xhat"),
    ("xhat", "scale"),
    ("gamma", "scale"),
    ("scale", "out"),
    ("beta", "out"),
]


def bn_graph(ax=None, highlight=("x", "xc")):
    """The staged computational graph of batch norm's forward pass.

    Nodes where two branches meet on the way back (``x`` receives gradient
    directly and through ``mu``; ``xc`` directly and through ``var``) are
    highlighted: the backward pass must add the gradients of both branches.
    """
    fig, ax = _axes(ax, figsize=(10, 3.4))
    ax.set_axis_off()
    ax.set_xlim(-0.8, 12.2)
    ax.set_ylim(-0.5, 2.6)
    boxes = {}
    for key, (label, x, y) in _BN_NODES.items():
        color = COLORS["no_bn"] if key in highlight else COLORS["bn"]
        boxes[key] = ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=10,
            bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": color, "lw": 1.5},
        )
    for a, b in _BN_EDGES:
        _, x0, y0 = _BN_NODES[a]
        _, x1, y1 = _BN_NODES[b]
        # leave each box by the side that faces the other one
        if abs(x1 - x0) < 1e-9:
            start, end = (
                ((0.5, 1.0), (0.5, 0.0)) if y1 > y0 else ((0.5, 0.0), (0.5, 1.0))
            )
        else:
            start, end = (1.0, 0.5), (0.0, 0.5)
        ax.annotate(
            "",
            xy=end,
            xycoords=boxes[b],
            xytext=start,
            textcoords=boxes[a],
            arrowprops={
                "arrowstyle": "-|>",
                "color": COLORS["reference"],
                "shrinkA": 4,
                "shrinkB": 4,
                "lw": 1.2,
            },
        )
    ax.set_title(
        "Batch norm's forward pass, left to right; the backward pass runs right to "
        "left.\nVermilion: the gradient of this node is the sum over two branches.",
        fontsize=10,
    )
    return fig


def norm_axes(ax=None, n=4, c=6, hw=3, group=3):
    """Which values share one mean and variance in batch, layer, instance, group norm.

    Each panel is a grid of N examples (rows) by C channels (columns); every
    cell holds that channel's H*W values (the small strips).  The coloured
    cells are normalised together, with one mean and one variance.
    """
    from matplotlib.patches import Rectangle

    if ax is None:
        fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    kinds = {
        "batch norm": lambda i, j: j == 1,
        "layer norm": lambda i, j: i == 1,
        "instance norm": lambda i, j: i == 1 and j == 1,
        f"group norm ({c // group} groups)": lambda i, j: i == 1 and j < group,
    }
    for axis, (title, chosen) in zip(axes, kinds.items(), strict=True):
        axis.set_axis_off()
        for i in range(n):
            for j in range(c):
                fill = COLORS["bn"] if chosen(i, j) else "#e4e4e4"
                for k in range(hw):  # the H*W values of one channel: strips
                    axis.add_patch(
                        Rectangle(
                            (j, n - 1 - i + k * 0.8 / hw),
                            0.88,
                            0.8 / hw,
                            facecolor=fill,
                            edgecolor="white",
                            lw=0.6,
                        )
                    )
        axis.set_xlim(-0.6, c + 0.2)
        axis.set_ylim(-0.6, n + 0.3)
        axis.set_title(title)
        axis.text(c / 2, -0.45, f"{c} channels", ha="center", fontsize=9)
        axis.text(
            -0.3,
            n / 2,
            f"{n} examples",
            rotation=90,
            ha="center",
            va="center",
            fontsize=9,
        )
    fig.suptitle(
        "One mean and one variance per coloured set (each cell: the H×W values of "
        "one channel of one example)",
        fontsize=10,
    )
    return fig


# --------------------------------------------------------------------------
# lesson 03: the running mean chasing the true mean
# --------------------------------------------------------------------------


def running_mean_chase(
    momentum=0.1, batch_size=8, steps=150, true_mean=3.0, true_std=2.0, seed=0, ax=None
):
    """How PyTorch's running mean follows a stream of batches.

    Batches of ``batch_size`` values are drawn from N(true_mean, true_std^2);
    a ``torch.nn.BatchNorm1d(1, momentum=momentum)`` sees them in training
    mode, starting from its initial running mean of 0.  Plots the batch means
    (dots), the running mean (line) and the true mean (dashed).  Returns the
    figure; the last running mean is in ``fig.running_mean``.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    bn = torch.nn.BatchNorm1d(1, momentum=momentum).double()
    batch_means, running = [], []
    with torch.no_grad():
        for _ in range(steps):
            x = true_mean + true_std * torch.randn(
                batch_size, 1, generator=gen, dtype=torch.float64
            )
            bn(x)
            batch_means.append(x.mean().item())
            running.append(bn.running_mean.item())
    fig, ax = _axes(ax)
    step = np.arange(1, steps + 1)
    ax.plot(
        step,
        batch_means,
        ".",
        ms=3,
        alpha=0.5,
        color=COLORS["bn"],
        label=f"batch means (batch of {batch_size})",
    )
    ax.plot(
        step,
        running,
        color=COLORS["running"],
        lw=2,
        label=f"running_mean (momentum={momentum:g})",
    )
    ax.axhline(true_mean, color=COLORS["reference"], ls="--", label="true mean")
    ax.set_xlabel("training step")
    ax.set_ylabel("mean of the feature")
    ax.set_ylim(true_mean - 3 * true_std, true_mean + 3 * true_std)
    tail = np.array(running[steps // 2 :])
    ax.set_title(
        f"second half: running mean {tail.mean():.2f} ± {tail.std():.2f} "
        f"(true mean {true_mean:g})"
    )
    ax.legend(loc="lower right")
    fig.running_mean = running[-1]
    return fig


# --------------------------------------------------------------------------
# lesson 01: distributions of each layer's inputs during training
# --------------------------------------------------------------------------


def layer_histograms(record, index=-1, bins=40, limits=(-6, 6)):
    """Histograms of each layer's sigmoid input, with and without BN, at a checkpoint.

    ``record`` maps "no_bn" and "bn" to a dict with "steps" (the checkpoints)
    and "inputs" (per checkpoint, a list with one array per layer).  Rows:
    without BN, with BN; columns: layers.  The grey band marks |input| > 2.5,
    where the sigmoid's slope is below 0.07 (saturated).
    """
    nets = [key for key in ("no_bn", "bn") if key in record]
    layers = len(record[nets[0]]["inputs"][0])
    fig, axes = plt.subplots(
        len(nets), layers, figsize=(3.3 * layers, 2.3 * len(nets)), squeeze=False
    )
    edges = np.linspace(*limits, bins + 1)
    for row, key in enumerate(nets):
        steps = record[key]["steps"]
        values = record[key]["inputs"][index]
        for col in range(layers):
            ax = axes[row, col]
            ax.axvspan(limits[0], -2.5, color="#dddddd", lw=0)
            ax.axvspan(2.5, limits[1], color="#dddddd", lw=0)
            flat = np.clip(np.asarray(values[col]).ravel(), *limits)  # one histogram
            ax.hist(flat, bins=edges, color=COLORS[key])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"layer {col + 1}")
            if col == 0:
                ax.set_ylabel(LABELS[key])
            if row == len(nets) - 1:
                ax.set_xlabel("sigmoid input")
    fig.suptitle(f"Inputs of every sigmoid at step {steps[index]} (grey: saturated)")
    return fig


def lines(series, *, xlabel, ylabel, x=None, logx=False, logy=False, ax=None, **kw):
    """One line per entry of ``series`` ({label: (values, colour)}), against ``x``
    (default 1, 2, ...); extra keywords go to every ``ax.plot``."""
    fig, ax = _axes(ax)
    for label, (values, color) in series.items():
        xs = np.arange(1, len(values) + 1) if x is None else x
        ax.plot(xs, values, color=color, label=label, **kw)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return fig


def subset_boundaries(subsets, boundaries, final, period=25, ax=None):
    """Lesson 01's two subsets and decision boundaries (w1, w2, b) of a logistic
    regression: after every phase of alternating training (``boundaries``, one
    per step, phases of ``period`` steps), and ``final`` of the mixed run."""
    fig, ax = _axes(ax)
    for (x, y), marker in zip(subsets.values(), ("o", "s"), strict=True):
        for label, color in ((1, "#c0392b"), (0, "#27ae60")):
            pts = x[y == label]
            ax.scatter(
                pts[:, 0], pts[:, 1], marker=marker, s=10, color=color, alpha=0.6
            )
    grid = np.linspace(-5, 5, 2)
    ends = range(period - 1, len(boundaries), period)  # the end of every phase
    for k, step in enumerate(ends):
        w1, w2, b = boundaries[step]
        alpha = 0.25 + 0.75 * k / max(len(ends) - 1, 1)
        color = SERIES[1] if k % 2 == 0 else SERIES[0]
        ax.plot(grid, -(w1 * grid + b) / w2, color=color, alpha=alpha, lw=1)
    w1, w2, b = final
    ax.plot(grid, -(w1 * grid + b) / w2, color=SERIES[2], lw=2.5, label="mixed, final")
    ax.plot([], [], color=SERIES[1], label="alternating: after a subset-1 phase")
    ax.plot([], [], color=SERIES[0], label="alternating: after a subset-2 phase")
    ax.set(ylim=(-3, 6), xlabel="feature 1", ylabel="feature 2")
    ax.set_title("Red: roses, green: not; circles: subset 1, squares: subset 2")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def descent_path(X, y, path, title, ax=None, limit=5.0):
    """Contours of the mean squared error of ``X @ w - y`` over the weights (log
    scale) and the path of gradient descent ``path`` (steps, 2)."""
    fig, ax = _axes(ax)
    w1, w2 = np.meshgrid(
        np.linspace(-limit, limit, 200), np.linspace(-limit, limit, 200)
    )
    W = np.stack([w1.ravel(), w2.ravel()], axis=1)
    loss = ((X @ W.T - y[:, None]) ** 2).mean(axis=0).reshape(w1.shape)
    ax.contour(w1, w2, np.log(loss), levels=20, cmap="viridis", linewidths=0.8)
    ax.plot(path[:, 0], path[:, 1], ".-", color=SERIES[0], ms=3, lw=1)
    ax.set(title=title, xlabel="weight 1", ylabel="weight 2", aspect="equal")
    return fig


def gradient_norms(grads, colors):
    """Two panels, per layer: the norms of dL/dW and of dL/dz (each layer's
    output) for every net of ``grads``: {name: {"weights": [...], "outputs": [...]}}."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, key, label in [
        (axes[0], "weights", "norm of dL/dW (the weights)"),
        (axes[1], "outputs", "norm of dL/dz (each layer's output)"),
    ]:
        series = {name: (g[key], colors[name]) for name, g in grads.items()}
        lines(series, xlabel="layer (1 = input side)", ylabel=label, logy=True, ax=ax)
        for line in ax.get_lines():
            line.set_marker("o")
    axes[1].get_legend().remove()
    return fig


def figure1(record):
    """Lesson 01's Figure 1: (a) test accuracy with and without BN, (b-d) the 15th,
    50th and 85th percentiles of one sigmoid input (without BN; with BN, after and
    before the BN layer) over training."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    series = {LABELS[k]: (record[k]["accuracy"], COLORS[k]) for k in ("no_bn", "bn")}
    x = record["no_bn"]["steps"]
    lines(series, x=x, xlabel="training step", ylabel="test accuracy", ax=axes[0])
    axes[0].set_title("(a) test accuracy")
    for ax, key, name, title in [
        (axes[1], "no_bn", "percentiles", "(b) without BN: sigmoid input"),
        (axes[2], "bn", "percentiles", "(c) with BN: sigmoid input (after BN)"),
        (axes[3], "bn", "before", "(d) with BN: the same unit before BN"),
    ]:
        p = np.array(record[key][name])
        for column, style in enumerate((":", "-", ":")):
            label = ("15th and 85th percentiles", "median", None)[column]
            ax.plot(
                record[key]["steps"],
                p[:, column],
                style,
                color=COLORS[key],
                label=label,
            )
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=9)
    # one vertical span (8 units) in (b)-(d), so drifts compare by eye; (d) has its
    # own centre, since the unit before BN does not sit at 0
    axes[1].set_ylim(-4, 4), axes[2].set_ylim(-4, 4)
    centre = float(np.median(np.array(record["bn"]["before"])[:, 1]))
    axes[3].set_ylim(centre - 4, centre + 4)
    axes[1].set_ylabel("percentiles of the input")
    axes[1].legend(fontsize=8, loc="lower right")
    return fig


def saturation(record, threshold=2.5):
    """One panel per layer: the share of sigmoid inputs with |input| > threshold
    over training, with and without BN (``record`` as for :func:`figure1`)."""
    layers = len(record["bn"]["inputs"][0])
    fig, axes = plt.subplots(1, layers, figsize=(4 * layers, 3.2), sharey=True)
    for layer, ax in enumerate(axes):
        series = {
            LABELS[k]: (
                [
                    np.mean(np.abs(inputs[layer]) > threshold)
                    for inputs in record[k]["inputs"]
                ],
                COLORS[k],
            )
            for k in ("no_bn", "bn")
        }
        ylabel = f"share with |input| > {threshold}" if layer == 0 else ""
        lines(
            series,
            x=record["bn"]["steps"],
            xlabel="training step",
            ylabel=ylabel,
            ax=ax,
        )
        ax.set_title(f"layer {layer + 1}")
        if layer:
            ax.get_legend().remove()
    return fig


def gamma_beta(gamma, beta, bn_out, epochs):
    """Lesson 02: a trained BN layer's gamma and beta per feature (sorted by
    gamma), and the histogram of its outputs (``bn_out``) before the ReLU."""
    order = np.argsort(gamma)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax1.plot(gamma[order], "o", ms=3, color=COLORS["bn"], label=r"$\gamma$ (scale)")
    ax1.plot(beta[order], "o", ms=3, color=COLORS["running"], label=r"$\beta$ (shift)")
    ax1.axhline(1, color=COLORS["reference"], lw=0.8, ls="--")
    ax1.axhline(0, color=COLORS["reference"], lw=0.8, ls=":")
    ax1.set_xlabel("feature of the first BN layer (sorted by gamma)")
    ax1.set_ylabel("learned value")
    ax1.legend()
    ax2.hist(np.ravel(bn_out), bins=80, color=COLORS["bn"], alpha=0.8)
    ax2.axvline(0, color=COLORS["reference"], lw=0.8)
    ax2.set_xlabel("BN output before the ReLU (all features, test set)")
    ax2.set_ylabel("count")
    fig.suptitle(f"After {epochs} epochs; initial values: gamma = 1, beta = 0")
    return fig


# --------------------------------------------------------------------------
# lesson 04: results per batch size and per setting, this run beside the reference
# --------------------------------------------------------------------------


def _runs(mine, reference):
    """(results, filled marker?, label) for this run and the shipped reference."""
    yield mine, True, "your run"
    if reference:
        yield reference, False, "reference"


def against_batch_size(mine, reference, panels, mode, color=COLORS["bn"]):
    """One panel per entry of ``panels``: ``{y label: {key: (legend label, colour)}}``
    draws ``results[str(batch size)][key]`` for each key against the batch size,
    this run (filled markers, solid, ``mode`` mode) and the reference (open,
    dashed).  ``{key: y label}`` is the short form: one series per panel, in
    ``color``.  A key missing from a run (an older record) is left out."""
    if all(isinstance(value, str) for value in panels.values()):
        panels = {label: {key: (None, color)} for key, label in panels.items()}
    sizes = sorted(int(s) for s in mine)  # JSON keys are strings: "16" < "2"
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False
    )
    for ax, (ylabel, series) in zip(axes[0], panels.items(), strict=True):
        for key, (label, colour) in series.items():
            for results, fill, name in _runs(mine, reference):
                if any(key not in results.get(str(s), {}) for s in sizes):
                    continue
                run = f"{name} ({mode} mode)" if fill else f"{name} (full)"
                ax.plot(
                    sizes,
                    [results[str(s)][key] for s in sizes],
                    "o-" if fill else "o--",
                    color=colour,
                    mfc=colour if fill else "white",
                    label=run if label is None else f"{label}, {run}",
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("training batch size")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    return fig


def seed_errorbars(mine, reference, settings, norms, ax=None):
    """Mean test accuracy ± standard deviation over seeds, per setting and norm
    (``results[setting][norm]`` = accuracies), this run (filled) and the
    reference (open); ``norms`` maps a norm to its label."""
    fig, ax = _axes(ax, figsize=(9, 3.8))
    for k, (norm, label) in enumerate(norms.items()):
        for results, fill, name in _runs(mine, reference):
            for i, setting in enumerate(settings):
                accs = (results or {}).get(setting, {}).get(norm)
                if not accs:
                    continue
                ax.errorbar(
                    i + (k - 1) * 0.22 + (0.0 if fill else 0.08),
                    np.mean(accs),
                    yerr=0 if len(accs) < 2 else np.std(accs, ddof=1),
                    fmt="o",
                    color=COLORS[norm],
                    mfc=COLORS[norm] if fill else "white",
                    capsize=3,
                    label=f"{label} ({name})" if i == 0 else None,
                )
    ax.set_xticks(range(len(settings)), list(settings))
    ax.set_ylabel("test accuracy (eval mode)")
    ax.set_title("Mean over seeds ± standard deviation")
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    return fig


def paired_differences(mine, reference, settings, a, b, ylabel, ax=None):
    """Per setting, the paired differences ``results[setting][a] - [b]`` over seeds
    (same seed: same start, same batches), in points: mean ± twice their standard
    deviation, this run (filled) and the reference (open).  A bar clear of 0 is a
    difference the lessons call real (mean above twice the spread)."""
    fig, ax = _axes(ax, figsize=(9, 3.2))
    ax.axhline(0, color=COLORS["reference"], lw=0.8)
    for results, fill, name in _runs(mine, reference):
        for i, setting in enumerate(settings):
            first = (results or {}).get(setting, {}).get(a)
            second = (results or {}).get(setting, {}).get(b)
            if not first or not second:
                continue
            diffs = 100 * np.subtract(first, second)
            ax.errorbar(
                i + (0.0 if fill else 0.1),
                np.mean(diffs),
                yerr=0 if len(diffs) < 2 else 2 * np.std(diffs, ddof=1),
                fmt="o",
                color=COLORS[a],
                mfc=COLORS[a] if fill else "white",
                capsize=3,
                label=name if i == 0 else None,
            )
    ax.set_xticks(range(len(settings)), list(settings))
    ax.set_ylabel(ylabel)
    ax.set_title("Paired differences per seed: mean ± 2 standard deviations")
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------
# lesson 05: training histories and sweeps, keyed by norm ("bn" or "none")
# --------------------------------------------------------------------------


def _norm_key(norm):
    return "bn" if norm == "bn" else "no_bn"


def histories(mine, reference=None):
    """Three panels: test accuracy per epoch and per training second (this run
    solid, the reference dashed), and this run's train (solid) and test (dotted)
    loss per epoch.  ``mine[norm]`` is a history of ``helpers.train.train``."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for results, fill, name in _runs(mine, reference):
        for norm, history in results.items():
            color, label = (
                COLORS[_norm_key(norm)],
                f"{LABELS[_norm_key(norm)]} ({name})",
            )
            style = dict(ls="-" if fill else "--", alpha=1.0 if fill else 0.5)
            axes[0].plot(
                history["epoch"],
                history["test_accuracy"],
                color=color,
                label=label,
                **style,
            )
            axes[1].plot(
                history["seconds"], history["test_accuracy"], color=color, **style
            )
            if (
                fill
            ):  # the third panel: this run only, so its line styles mean one thing
                axes[2].plot(history["epoch"], history["train_loss"], "-", color=color)
                axes[2].plot(history["epoch"], history["test_loss"], ":", color=color)
    for ax, xlabel in zip(axes, ("epoch", "training seconds", "epoch"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
    axes[2].set_ylabel("your run's loss (solid: train, dotted: test)")
    axes[0].legend(fontsize=8)
    return fig


def sweep(mine, reference, xlabel, ax=None):
    """Final test accuracy against a swept setting (``results[norm][value]`` is a
    history; a diverged run is an x at 0), this run (filled) and the reference."""
    fig, ax = _axes(ax)
    for results, fill, name in _runs(mine, reference):
        for norm, by_x in results.items():
            color = COLORS[_norm_key(norm)]
            xs = [float(x) for x in by_x]
            ys = [
                None if h["diverged"] else h["test_accuracy"][-1] for h in by_x.values()
            ]
            kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            ax.plot(
                [x for x, _ in kept],
                [y for _, y in kept],
                "o-" if fill else "o--",
                color=color,
                mfc=color if fill else "white",
                label=f"{LABELS[_norm_key(norm)]} ({name})",
            )
            failed = [x for x, y in zip(xs, ys, strict=True) if y is None]
            ax.plot(failed, [0.0] * len(failed), "x", color=color, ms=9)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final test accuracy (x: diverged)")
    ax.legend(fontsize=8)
    return fig


def lr_stress(mine, reference=None, ax=None):
    """Test accuracy after each epoch of a rising learning rate (``results[norm]``
    has "lr", "accuracy", "diverged"); an x marks the rate at which it diverged."""
    fig, ax = _axes(ax)
    for results, fill, name in _runs(mine, reference):
        for norm, rows in results.items():
            color = COLORS[_norm_key(norm)]
            ax.plot(
                rows["lr"],
                rows["accuracy"],
                "o-" if fill else "o--",
                color=color,
                mfc=color if fill else "white",
                label=f"{LABELS[_norm_key(norm)]} ({name})",
            )
            if rows["diverged"]:
                ax.plot(rows["lr"][-1], 0.1, "x", color=color, ms=10)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (one epoch each, raised after every epoch)")
    ax.set_ylabel("test accuracy after that epoch")
    ax.set_title("x: the loss diverged")
    ax.legend(fontsize=8)
    return fig


def bn_parameters(layers, reference=None):
    """Every BN layer's gamma and beta (``layers``: one (gamma, beta) pair of
    lists per layer), jittered per layer; the reference run's beside, in grey."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for params, fill, name in _runs(layers, reference):
        offset = 0.0 if fill else 0.3
        for i, (gamma, beta) in enumerate(params):
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(gamma))
            for ax, values, key in [(axes[0], gamma, "bn"), (axes[1], beta, "running")]:
                ax.scatter(
                    i + 1 + offset + jitter[: len(values)],
                    values,
                    s=6,
                    color=COLORS[key] if fill else COLORS["reference"],
                    alpha=0.5,
                    label=name if i == 0 else None,
                )
    for ax, name, start in [
        (axes[0], r"$\gamma$ (scale)", 1.0),
        (axes[1], r"$\beta$ (shift)", 0.0),
    ]:
        ax.axhline(start, color=COLORS["reference"], ls="--", lw=1)
        ax.set_xlabel("BN layer (1 = nearest the input); grey: the reference run")
        ax.set_ylabel(name)
        ax.set_xticks(range(1, len(layers) + 1))
    axes[0].legend(fontsize=8, markerscale=2)
    return fig


def measures(
    results, labels, colors, x="at", logx=False, logy=(), marker=None, xlabel="SGD step"
):
    """One panel per measure: ``labels`` maps a key of every ``results[name]`` to
    its axis label, with one line per ``name`` in ``colors[name]``.  ``x`` is a
    key of each result (default "at", the steps) or the values themselves; a
    measure with fewer values than ``x`` (a difference between records) is drawn
    against the last ones.  ``logy`` lists the keys drawn on a log scale."""
    fig, axes = plt.subplots(
        1, len(labels), figsize=(5.5 * len(labels), 3.4), squeeze=False
    )
    for ax, (key, label) in zip(axes[0], labels.items(), strict=True):
        for name, result in results.items():
            xs = result[x] if isinstance(x, str) else x
            values = result[key]
            ax.plot(
                xs[len(xs) - len(values) :],
                values,
                color=colors[name],
                label=name,
                marker=marker,
            )
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if key in logy else "linear")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=8)
    return fig
