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


def setup(seed: int = 0) -> Session:
    """Seed every generator, load the course's figure style, print the settings.

    Seeds Python's ``random``, NumPy's legacy global generator and torch (CPU
    and CUDA).  Cells whose numbers matter still make their own generators
    (``np.random.default_rng(0)``), so any cell can be re-run on its own.
    """
    import numpy as np

    from . import config, plotting

    random.seed(seed)
    np.random.seed(seed)
    torch_version = "not installed"
    try:
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device
        torch_version = torch.__version__
    except ImportError:  # the NumPy-only parts still work
        pass
    plotting.use_style()
    device = config.device() if torch_version != "not installed" else "cpu"
    session = Session(seed=seed, device=device, mode=config.mode())
    print(
        f"helpers.setup: seed {seed} | Python {platform.python_version()} | "
        f"numpy {np.__version__} | torch {torch_version} | device {device} | "
        f"{config.describe()}"
    )
    return session
