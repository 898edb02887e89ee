"""Load the solution functions of a lesson from its notebook, for benchmarks.

Benchmarks measure the course's reference solutions, which live only in
``solutions/`` (``helpers`` never contains them).  This executes the
notebook's exercise cells (nbgrader ``solution: true``) in a fresh namespace.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


PREAMBLE = "import numpy as np\nimport torch\nfrom torch import nn\n"


def load_solutions(stem: str, preamble: str = PREAMBLE):
    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    namespace: dict = {}
    exec(preamble, namespace)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get(
            "solution"
        ):
            exec(compile(cell.source, f"{stem}.ipynb", "exec"), namespace)
    return namespace
