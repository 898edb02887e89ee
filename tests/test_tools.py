"""Author tools: preview (nbclient + nbconvert) and the reference-record writer."""

from __future__ import annotations

import subprocess
import sys

import nbformat

from .conftest import ROOT


def test_preview_writes_the_transcript_and_every_figure(tmp_path):
    out = tmp_path / "preview"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "preview.py"),
            str(ROOT / "notebooks" / "00_setup_and_conventions.ipynb"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = (out / "00_setup_and_conventions.md").read_text()
    assert "# [cell " in page and "helpers.setup: seed 0" in page
    assert list((out / "00_setup_and_conventions_files").glob("*.png"))


def test_a_stuck_widget_cell_is_interrupted_and_the_rest_still_runs(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import time\ntime.sleep(600)  # interact(...)"),
        nbformat.v4.new_code_cell("print('after the widget')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path = tmp_path / "w.ipynb"
    nbformat.write(nb, path)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "preview.py"),
            str(path),
            "--out",
            str(tmp_path / "p"),
            "--widget-timeout",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1  # the interrupted cell is reported
    assert "after the widget" in (tmp_path / "p" / "w.md").read_text()
