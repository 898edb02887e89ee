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
    "inv": (r"$r = 1/s$", 8.0, 2.1),
    "xhat": (r"$\hat{x} = x_c \cdot r$", 8.0, 1.0),
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
        "left.\nRed: the gradient of this node is the sum over two branches.",
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
