"""Run a notebook and write what a learner would see: a transcript and the figures.

    python tools/preview.py notebooks/02_bn_forward_backward.ipynb --out preview/
        [--full] [--timeout 600] [--widget-timeout 60]

Executes the notebook with nbclient, then writes it with nbconvert's Markdown
exporter: ``<stem>.md`` (each cell's source, headed by its number and the
seconds it took, and its text output) and every figure as a PNG in
``<stem>_files/`` (nbconvert's ExtractOutputPreprocessor), so an author can
read the lesson top to bottom as a newcomer would and look at every figure.
Runs in fast mode unless ``--full``.  Cells that build widgets (``interact``,
``.widget()``) get ``--widget-timeout``: without a front end they may wait.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

WIDGET_HINTS = ("interact(", ".widget(", "ipywidgets")


def execute(nb, path: Path, timeout: int, widget_timeout: int) -> dict[int, float]:
    """Run ``nb`` in place (errors kept in the outputs); seconds per cell."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        timeout_func=lambda cell: (
            widget_timeout if any(h in cell.source for h in WIDGET_HINTS) else timeout
        ),
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,  # a stuck cell is interrupted, the rest runs
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    starts: dict[int, float] = {}
    times: dict[int, float] = {}
    client.on_cell_execute = lambda cell, cell_index: starts.__setitem__(
        cell_index, time.monotonic()
    )
    client.on_cell_executed = lambda cell, cell_index, execute_reply: times.__setitem__(
        cell_index, time.monotonic() - starts.get(cell_index, time.monotonic())
    )
    client.execute()
    return times


def export(nb, times: dict[int, float], out: Path, stem: str) -> tuple[Path, int]:
    """Markdown and PNGs through nbconvert; returns the file and the figure count."""
    from nbconvert import MarkdownExporter

    shown = copy.deepcopy(nb)
    for index, cell in enumerate(shown.cells):
        if cell.cell_type == "code":
            seconds = times.get(index, 0.0)
            cell.source = f"# [cell {index}: {seconds:.2f} s]\n" + cell.source
    exporter = MarkdownExporter()  # extracts figures (ExtractOutputPreprocessor)
    body, resources = exporter.from_notebook_node(
        shown, resources={"output_files_dir": f"{stem}_files"}
    )
    out.mkdir(parents=True, exist_ok=True)
    figures = 0
    for name, data in resources.get("outputs", {}).items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        figures += name.endswith(".png")
    page = out / f"{stem}.md"
    page.write_text(body)
    return page, figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=Path("preview"))
    parser.add_argument("--full", action="store_true", help="full mode, not fast mode")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument(
        "--widget-timeout", type=int, default=60, help="seconds per widget cell"
    )
    args = parser.parse_args(argv)

    os.environ["BNCOURSE_FAST"] = "0" if args.full else "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend makes the PNGs
    nb = nbformat.read(args.notebook, as_version=4)
    start = time.monotonic()
    times = execute(nb, args.notebook, args.timeout, args.widget_timeout)
    total = time.monotonic() - start
    page, figures = export(nb, times, args.out, args.notebook.stem)
    errors = [
        f"cell {i}: {o['ename']}: {o['evalue']}"
        for i, cell in enumerate(nb.cells)
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    for line in errors:
        print(f"ERROR {line}", file=sys.stderr)
    print(
        f"{args.notebook}: {total:.1f} s, {figures} figure(s), {len(errors)} "
        f"error(s); wrote {page}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
