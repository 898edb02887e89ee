"""Run a notebook and write what a learner would see: a transcript and the figures.

    python tools/preview.py notebooks/02_bn_forward_backward.ipynb --out preview/
        [--full] [--timeout 600]

Writes ``<stem>.txt`` (each cell's source and text output, in order, with the
time it took) and ``<stem>-cellNN-K.png`` for every figure, so an author can
read the lesson top to bottom as a newcomer would and look at every figure.
Runs in fast mode unless ``--full``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=Path("preview"))
    parser.add_argument("--full", action="store_true", help="full mode, not fast mode")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)

    os.environ["BNCOURSE_FAST"] = "0" if args.full else "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend makes the PNGs
    nb = nbformat.read(args.notebook, as_version=4)
    times = {}
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(args.notebook.parent.resolve())}},
    )
    starts = {}
    client.on_cell_execute = lambda cell, cell_index: starts.__setitem__(
        cell_index, time.monotonic()
    )
    client.on_cell_executed = lambda cell, cell_index, execute_reply: times.__setitem__(
        cell_index, time.monotonic() - starts.get(cell_index, time.monotonic())
    )
    start = time.monotonic()
    client.execute()
    total = time.monotonic() - start

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.notebook.stem
    lines, figures, errors = [], 0, 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            lines += [f"=== [{index}] markdown", cell.source, ""]
            continue
        lines += [
            f"=== [{index}] code ({times.get(index, 0.0):.2f} s)",
            cell.source,
            "---",
        ]
        for k, output in enumerate(cell.get("outputs", [])):
            kind = output.get("output_type")
            if kind == "stream":
                lines.append(output["text"].rstrip())
            elif kind == "error":
                errors += 1
                lines.append(f"ERROR {output['ename']}: {output['evalue']}")
            elif kind in ("display_data", "execute_result"):
                payload = output.get("data", {})
                if "image/png" in payload:
                    name = f"{stem}-cell{index:02d}-{k}.png"
                    (args.out / name).write_bytes(
                        base64.b64decode(payload["image/png"])
                    )
                    lines.append(f"[figure {name}]")
                    figures += 1
                elif "text/plain" in payload:
                    lines.append(payload["text/plain"].rstrip())
        lines.append("")
    (args.out / f"{stem}.txt").write_text("\n".join(lines))
    print(
        f"{args.notebook}: {total:.1f} s, {figures} figure(s), {errors} error(s); "
        f"wrote {args.out / (stem + '.txt')}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
