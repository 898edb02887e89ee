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
