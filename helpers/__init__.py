"""The Batch Normalization course's shared package.

Importing it does nothing but define names.  The one call that changes global
state is :func:`setup`, run once in every notebook's setup cell; it prints what
it set.  Modules are imported by name where needed::

    import helpers
    from helpers import checks, config, data, plotting
"""

from __future__ import annotations

import platform
import random
from dataclasses import dataclass

__version__ = "0.1.0"


@dataclass(frozen=True)
class Session:
    """What :func:`setup` set, for cells that need it (``env.device``)."""

    seed: int
    device: str
    mode: str
    threads: int


def setup(seed: int = 0, threads: int | None = 1) -> Session:
    """Seed every generator, load the course's figure style, print the settings.

    Seeds Python's ``random``, NumPy's legacy global generator and torch (CPU
    and CUDA).  Cells whose numbers matter still make their own generators
    (``np.random.default_rng(0)``), so any cell can be re-run on its own.

    ``threads`` sets torch's intra-op threads on the CPU: one by default.  The
    lessons' networks are small, and on a machine whose cores are busy with
    anything else torch's threads wait for each other: lesson 01 in full mode
    took 624 s with one of two cores loaded and two threads, 14 s with one
    thread.  ``threads=None`` keeps torch's default (one per core), which pays
    off for lesson 05's convolutional nets on an otherwise idle machine.
    """
    import numpy as np

    from . import config, plotting

    random.seed(seed)
    np.random.seed(seed)
    torch_version = "not installed"
    n_threads = 1
    try:
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device
        torch_version = torch.__version__
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        n_threads = torch.get_num_threads()
    except ImportError:  # the NumPy-only parts still work
        pass
    plotting.use_style()
    device = config.device() if torch_version != "not installed" else "cpu"
    session = Session(seed=seed, device=device, mode=config.mode(), threads=n_threads)
    print(
        f"helpers.setup: seed {seed} | Python {platform.python_version()} | "
        f"numpy {np.__version__} | torch {torch_version} ({n_threads} thread"
        f"{'s' if n_threads != 1 else ''}) | device {device} | {config.describe()}"
    )
    return session
