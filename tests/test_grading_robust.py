"""Grading you can trust: a class of broken and correct submissions, end to end.

A class with one submission of every kind, broken ones included, goes through
``tools/grade.py``: every submission gets its row, the deserved points, the CSV
appears atomically and the grader's files are untouched.
``benchmarks/bench_grading.py`` grades the full class of 30.  (Wrong
implementations of every exercise go through the checks and the grader's tests
in ``tests/test_mutants.py``.)
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import pytest

from .conftest import ROOT, run_grader


def _digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
    }


@pytest.mark.slow
def test_a_class_with_every_kind_of_submission(tmp_path):
    from tools import make_class

    klass = tmp_path / "class"
    out = klass / "grades.csv"
    # the evil submission also overwrites this run's CSV by its absolute path
    roster = make_class.make_class(
        klass, size=len(make_class.ALL_KINDS), extra_targets=[out]
    )
    solutions_before = _digest(ROOT / "solutions")
    rows = run_grader(
        out,
        [r["file"] for r in roster],
        # the memory hog must reach MemoryError and honest cells must finish
        # before the cell limit on a busy CI machine too (6 s was once too
        # short at load 7): only the looping submission waits it out
        "--cell-timeout",
        "30",
        "--timeout",
        "300",
        "--memory-mb",
        "3072",
    )
    assert set(rows) == {r["file"] for r in roster}, "every submission has its row"
    for entry in roster:
        row = rows[entry["file"]]
        if entry["points"] is None:
            assert row["total"] == "" and entry["note"] in row["error"], row
            continue
        for test, points in entry["points"].items():
            assert float(row[f"02:{test}"]) == points, (entry["kind"], test, row)
        assert entry["note"] in row["error"], (entry["kind"], row["error"])
    assert _digest(ROOT / "solutions") == solutions_before, "the grader's tests changed"
    assert not list(klass.glob(".grades-*")), "no temporary CSV left behind"
    assert json.loads((klass / "expected.json").read_text())


@pytest.mark.slow
def test_a_memory_hog_costs_only_its_own_cell(tmp_path):
    """After a cell's MemoryError the next cells and tests run as in a fresh
    kernel: IPython's references to the failed frames (kept for %debug) would
    keep the hoard allocated, and with the default limit the backward test's
    calls then killed the kernel (2 of 12 points instead of 12)."""
    import nbformat

    from tools import make_class

    lesson = "02_bn_forward_backward"
    learner = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4)
    answers = make_class._answers(
        nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", 4)
    )
    nb, full, note = make_class.build("memory", learner, answers)
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(nb, path)
    # the grader's default memory limit, no sandbox: the set-up that failed
    row = run_grader(tmp_path / "grades.csv", [path], "--sandbox", "off")[str(path)]
    assert note in row["error"], row
    assert row["error"].count("raised") == 1, row["error"]
    assert float(row["total"]) == float(row["maximum"]), row


# GRADER-FINDINGS A15, A18-A21: a kernel that sends what no report can hold.
HOOKS = """
ip = get_ipython()
def _hook(lines):
    return lines
_hook.__qualname__ = "\\ud800 hook"
ip.input_transformers_post.append(_hook)
for _i in range(1000):
    def _each(result):
        pass
    _each.__qualname__ = f"\\ud800 {_i}"
    ip.events.register("post_run_cell", _each)
"""
BAD_NAME = (
    "def batch_stats(x):\n"
    "    raise type('Bad\\nbatch_stats | WRONG | forged', (Exception,), {})"
    "('\\ud800 \\x1b]52;c;cm0gLXJmIH4=\\x07')\n"
)
ESCAPES = "# \x1b[2J\x1b]0;pwned\x07\x1b]52;c;cm0gLXJmIH4=\x07\nraise ValueError('x')\n"


@pytest.mark.slow
def test_what_the_kernel_sends_cannot_stop_or_forge_the_outputs(tmp_path):
    """Attacks (A15, A18-A21): hooks named with a lone surrogate, 1000 of them;
    an exception type name with a newline that forges a check's line; terminal
    escapes in a failing cell's first line; a 3 MB cell tagged
    skip-when-grading.  At 2c3fb8b grade.py exited 1 (UnicodeEncodeError) and
    wrote nothing for the class."""
    import nbformat

    from helpers import contract

    lesson = "00_setup_and_conventions"
    nb = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4)
    setup = next(c for c in nb.cells if contract.SETUP_TAG in contract.tags(c))
    skipped = nbformat.v4.new_code_cell("x = 1  # " + "y" * 3_000_000)
    skipped.metadata["tags"] = [contract.SKIP_WHEN_GRADING]
    nb.cells = [setup, *map(nbformat.v4.new_code_cell, (HOOKS, ESCAPES, BAD_NAME))]
    nb.cells += [skipped] + [
        c
        for c in nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4).cells
        if contract.graded(c)
    ]
    path = tmp_path / "mallory" / f"{lesson}.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    out = tmp_path / "out" / "grades.csv"
    command = [sys.executable, str(ROOT / "tools" / "grade.py"), "--out", str(out)]
    command += ["--report", str(tmp_path / "report"), "--feedback"]
    command += [str(tmp_path / "feedback"), "--format", "moodle", "--sandbox", "off"]
    done = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\x1b" not in done.stdout + done.stderr, done.stdout  # A18
    with open(out, newline="") as f:
        (row,) = csv.DictReader(f)
    assert "\x1b" not in row["error"] and "\\u001b" in row["error"], row["error"]
    assert "hook" in row["notes"] and len(row["notes"]) < 10_000, len(row["notes"])
    mistakes = json.loads(row["mistakes"][row["mistakes"].startswith("'") :])
    for named in mistakes["batch_stats"]:  # A19: no forged line
        assert not named.startswith("forged"), mistakes
    report_csv = (tmp_path / "report" / "report.csv").read_text()
    assert "\nforged" not in report_csv and ",forged" not in report_csv
    (page,) = (tmp_path / "feedback").glob("*.html")
    assert page.stat().st_size < 1_000_000, page.stat().st_size  # A21
    merged = tmp_path / "merged.csv"
    again = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "grade.py"), "merge", "--out"]
        + [str(merged), "--quiet", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and merged.is_file(), again.stderr[-2000:]


# attacks4 A01, A05, A10: what a submission makes the grader hold or render is
# charged to a budget per item, at least a minimum cost each, so that no kind
# of item (an empty cell, an empty message, a widget's comm) is free.
def test_every_transcript_entry_costs_at_least_a_minimum():
    """A01: 5,000 empty skipped cells cost 0 characters, so the transcript
    kept all 5,000 (and 50,000: a 30 MB page rendered for 10 minutes in the
    grader's own process)."""
    from tools.grading import worker

    items = [{"source": "", "skipped": True}] * 5000
    kept = worker.capped_transcript(items + [{"test": "t"}], budget=200_000)
    assert len(kept) <= 200_000 // 2000 + 1, len(kept)
    assert kept[-1] == {"test": "t"}, "the grader's tests are always kept"


def _message(msg_type, content, buffers=()):
    return {
        "msg_type": msg_type,
        "header": {"msg_type": msg_type},
        "parent_header": {"msg_id": "m"},
        "content": content,
        "buffers": list(buffers),
        "metadata": {},
    }


def test_what_the_kernel_sends_is_charged_whatever_its_type():
    """A05, A10: outputs of the channel's MIME type, error outputs and widget
    comms were never capped: a kernel held ~3 GB in the grader's worker (which
    the watchdog does not count).  Every message now costs its size, at least
    a minimum, against one budget a request."""
    import nbformat
    from nbclient.exceptions import CellExecutionComplete

    from tools.grading import remote, worker

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    nb.cells = [cell]
    client = worker._client_class()(nb, km=None)
    client.reset_execution_trackers()
    client.clear_before_next_output = False  # as execute_cell sets it
    cell.metadata["execution"] = {}
    for _ in range(3000):  # empty messages are not free either
        client.process_message(
            _message("display_data", {"data": {}, "metadata": {}}), cell, 0
        )
    blob = "x" * 100_000
    for i in range(30):
        client.process_message(
            _message("display_data", {"data": {remote.MIME: blob}, "metadata": {}}),
            cell,
            0,
        )
        client.process_message(
            _message("error", {"ename": "E", "evalue": blob, "traceback": [blob]}),
            cell,
            0,
        )
        state = {"_model_module": "m", "_model_name": "n", "v": blob}
        client.process_message(
            _message(
                "comm_open",
                {
                    "comm_id": f"c{i}",
                    "target_name": "jupyter.widget",
                    "data": {"state": state, "buffer_paths": []},
                },
            ),
            cell,
            0,
        )
    held = sum(len(json.dumps(o, default=str)) for o in cell.outputs)
    assert held <= 1_100_000, held  # 9 MB before
    assert len(cell.outputs) <= 1_000_000 // 200, len(cell.outputs)
    assert not client.widget_state and not client.widget_buffers
    with pytest.raises(CellExecutionComplete):  # a request still ends
        client.process_message(_message("status", {"execution_state": "idle"}), cell, 0)


FLOOD = """
from IPython.display import display
from ipykernel.comm import Comm
for _i in range(12):
    display({"application/vnd.bncourse.call+json": "x" * 1_000_000}, raw=True)
    Comm(target_name="jupyter.widget", data={"state": {
        "_model_module": "m", "_model_name": "n", "v": "x" * 1_000_000}})
"""


@pytest.mark.slow
def test_a_flood_of_cells_or_messages_costs_only_its_own_row(tmp_path):
    """A01 scaled down (5,000 empty skipped cells) and A05/A10 (a cell that
    sends 24 MB of the channel's MIME type and of widget comms): the feedback
    page keeps a bounded number of cells, the row says what was dropped and
    keeps its points, and an honest submission graded with it is unchanged."""
    import nbformat

    from helpers import contract
    from tools.grading import worker

    lesson = "00_setup_and_conventions"
    honest = tmp_path / "alice" / f"{lesson}.ipynb"
    honest.parent.mkdir()
    honest.write_bytes((ROOT / "solutions" / f"{lesson}.ipynb").read_bytes())
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", 4)
    empty = []
    for _ in range(5000):
        cell = nbformat.v4.new_code_cell("")
        cell.metadata["tags"] = [contract.SKIP_WHEN_GRADING]
        empty.append(cell)
    setup = [
        i for i, c in enumerate(nb.cells) if contract.SETUP_TAG in contract.tags(c)
    ]
    at = setup[0] + 1
    nb.cells[at:at] = [nbformat.v4.new_code_cell(FLOOD), *empty]
    path = tmp_path / "mallory" / f"{lesson}.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    rows = run_grader(
        tmp_path / "grades.csv",
        [honest, path],
        "--feedback",
        str(tmp_path / "feedback"),
    )
    row, alice = rows[str(path)], rows[str(honest)]
    assert float(alice["total"]) == float(alice["maximum"]) > 0, alice
    assert float(row["total"]) == float(row["maximum"]), row
    assert "cells are not in the feedback" in row["notes"], row["notes"]
    assert "the kernel sent more than the grader keeps" in row["notes"], row["notes"]
    assert "grader keeps" not in alice["notes"], alice["notes"]
    assert "not in the feedback" not in alice["notes"], alice["notes"]
    (page,) = [p for p in (tmp_path / "feedback").glob("*.html") if "mallory" in p.name]
    cells = page.read_text().count('class="jp-Cell jp-CodeCell')
    assert cells <= worker.TRANSCRIPT_CAP // worker.ENTRY_COST, cells
