"""Load the solution functions of a lesson from its notebook, for benchmarks.

Benchmarks measure the course's reference solutions, which live only in
``solutions/`` (``helpers`` never contains them).  This executes the
notebook's exercise cells (nbgrader ``solution: true``) in a fresh namespace.
"""

from __future__ import annotations

import argparse
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


def parser(doc: str, record: str, **options) -> argparse.ArgumentParser:
    """The benchmark's command line: ``--NAME`` (an int) for each option with its
    default, ``--repeat``, and ``--record`` (the reference record ``record``, in
    ``data/reference/``, that its lesson quotes)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in {**options, "repeat": 7}.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument(
        "--record",
        type=Path,
        help=f"also write the timings as a reference record (data/reference/"
        f"{record}.json is the one the lesson quotes)",
    )
    return parser


def write_record(path, name: str, params: dict, results: dict) -> None:
    """A benchmark's results as a reference record (``helpers.runs``' format), so
    that the lesson's quoted timings are generated from it (``helpers.quotes``)."""
    from helpers import runs

    params = {
        k: (str(v) if not isinstance(v, (int, float, str)) else v)
        for k, v in params.items()
        if k != "record"
    }
    record = {
        "name": name,
        "params": params,
        "provenance": {**runs.provenance(), "mode": "benchmark"},
        "results": results,
    }
    runs.write_json(Path(path), record)
    print(f"  wrote {path}")
