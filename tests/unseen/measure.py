"""Run every held-out answer of ``tests/unseen`` through the checks and the grader.

    nice -n 10 .venv/bin/python tests/unseen/measure.py            # all lessons
    .venv/bin/python tests/unseen/measure.py --lesson 02 --only spatial  # print only
    .venv/bin/python tests/unseen/measure.py --summary              # BASELINE shares

For each entry (``tests/unseen/lessonNN.py``'s ``ENTRIES``):

1. **the learner's check**: the visible part of the graded cell runs in a
   learner's session (``BNCOURSE_GRADING`` unset) with the entry in the
   notebook's namespace; what it prints is kept, and whether anything raised.
   A crash is an exception out of the cell, or a line saying the check itself
   failed ("a bug in the course").  The same visible cell then runs in grading
   mode: it passes ("visible ok") when the check raises nothing there, which
   does not depend on the wording of the messages;
2. **the grader's tests**: every graded cell of the lesson, hidden tests
   included, as ``tools/grade.py`` reads them from ``solutions/``, in grading
   mode; which pass.

It records, it judges nothing: the labels (NAMED, OBSERVED, WRONG CAUSE, FALSE
OK, CRASH; PASS or FAIL for correct alternatives) are given by a person reading
each message against the entry's ``cause`` (README.md), kept in
``baseline_labels.json``.  A full run writes ``results.json`` and
``results.md`` beside this file; ``--only``/``--lesson`` runs print and write
nothing unless ``--write``.  Not a test module: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# as the test suite runs (tests/conftest.py): fast mode, scratch folders
os.environ.setdefault("BNCOURSE_FAST", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("BNCOURSE_CACHE", tempfile.mkdtemp(prefix="bncourse-unseen-"))
os.environ.setdefault("BNCOURSE_QUIZ_DIR", tempfile.mkdtemp(prefix="bncourse-unseen-"))

import nbformat  # noqa: E402
import numpy as np  # noqa: E402

from helpers import contract, course  # noqa: E402
from tests import unseen  # noqa: E402
from tools import grade  # noqa: E402
from tools import make_student as ms  # noqa: E402

CRASH = re.compile(
    r"a bug in the course|the check itself failed|Traceback \(most recent", re.I
)
PASSING_VERDICTS = {"ok", "note"}
LABELS = ("NAMED", "OBSERVED", "WRONG CAUSE", "FALSE OK", "CRASH")
OUTPUT_LIMIT = 4000  # characters of each visible output kept in results.json

# --------------------------------------------------------------------------
# the notebook as the kernel and the grader see it (as tests/test_mutants.py)
# --------------------------------------------------------------------------


def _is_definitions(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    kinds = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return bool(tree.body) and all(isinstance(node, kinds) for node in tree.body)


_CODE: dict = {}
_TESTS: dict = {}


def lesson_of(number: str):
    return next(x for x in course.checked_lessons() if x.number == number)


def solution_code(lesson) -> list:
    """The solution's setup, exercise cells and given definitions, compiled."""
    if lesson.number not in _CODE:
        nb = nbformat.read(ROOT / "solutions" / lesson.filename, as_version=4)
        code = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            source = cell.source
            if contract.SETUP_TAG in contract.tags(cell):
                source = source.split(ms.COLAB_END, 1)[-1]  # no Colab lines
            elif contract.SKIP_WHEN_GRADING in contract.tags(cell):
                continue  # the grader skips it too
            elif not (contract.is_solution(cell) or _is_definitions(source)):
                continue
            code.append(compile(source, lesson.filename, "exec"))
        _CODE[lesson.number] = code
        _TESTS[lesson.number] = grade.test_cells(ROOT / "solutions" / lesson.filename)
    return _CODE[lesson.number]


def graded_cells(lesson) -> list:
    solution_code(lesson)
    return _TESTS[lesson.number]


def namespace(lesson, substitutions: dict) -> dict:
    """Like a kernel after running the notebook, with some answers replaced."""
    space: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for code in solution_code(lesson):
            exec(code, space)
    space.update(substitutions)
    return space


def visible(cell) -> str:
    return contract.without(cell.source, contract.BEGIN_HIDDEN, contract.END_HIDDEN)


def cell_for(lesson, grade_id: str):
    for cell in graded_cells(lesson):
        if contract.grade_id(cell) == grade_id:
            return cell
    raise LookupError(f"lesson {lesson.number} has no graded test {grade_id!r}")


# --------------------------------------------------------------------------
# running one entry
# --------------------------------------------------------------------------


def _seed():
    """The same global random state before every run: checks that draw from
    it (lesson 07's noise) see the same numbers each time."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@contextlib.contextmanager
def _mode(grading: bool):
    old = os.environ.get("BNCOURSE_GRADING")
    if grading:
        os.environ["BNCOURSE_GRADING"] = "1"
    else:
        os.environ.pop("BNCOURSE_GRADING", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BNCOURSE_GRADING", None)
        else:
            os.environ["BNCOURSE_GRADING"] = old


def _run(code, space, grading: bool):
    """(printed text, exception or None)."""
    buffer = io.StringIO()
    error = None
    _seed()
    with (
        _mode(grading),
        contextlib.redirect_stdout(buffer),
        contextlib.redirect_stderr(buffer),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            exec(code, space)
        except Exception as exc:  # recorded, never raised: this script judges nothing
            error = exc
    return buffer.getvalue(), error


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def verdict_lines(output: str) -> list[str]:
    """The lines that are not an ok or a note (every line when none parses)."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    judged, other = [], []
    for line in lines:
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) >= 3:
            if parts[1].lower() not in PASSING_VERDICTS:
                judged.append(line)
        else:
            other.append(line)
    if judged:
        return judged
    return [line for line in other if not line.startswith("helpers.setup")]


def measure(lesson, item) -> dict:
    """Everything recorded about one entry."""
    started = time.perf_counter()
    subs = item.substitutions()
    cell = cell_for(lesson, item.test)
    code = compile(visible(cell), f"graded cell {item.test}", "exec")
    shown, raised = _run(code, namespace(lesson, subs), grading=False)
    _, refused = _run(code, namespace(lesson, subs), grading=True)
    hidden, points, total, errors = {}, 0.0, 0.0, {}
    for graded in graded_cells(lesson):
        gid = contract.grade_id(graded)
        full = compile(graded.source, f"graded cell {gid}", "exec")
        _, failed = _run(full, namespace(lesson, subs), grading=True)
        worth = contract.points(graded, 1.0)
        total += worth
        hidden[gid] = failed is None
        if failed is None:
            points += worth
        else:
            errors[gid] = _first_line(failed)
    crashed = raised is not None or bool(CRASH.search(shown))
    return {
        "lesson": lesson.number,
        "id": f"{lesson.number}:{item.id}",
        "check": item.check,
        "name": item.name,
        "test": item.test,
        "correct": item.correct,
        "cause": item.cause,
        "output": shown[:OUTPUT_LIMIT],
        "verdict_lines": verdict_lines(shown),
        "raised": None if raised is None else _first_line(raised),
        "crashed": crashed,
        "visible_ok": raised is None and refused is None,
        "visible_grading_error": None if refused is None else _first_line(refused),
        "hidden": hidden,
        "hidden_errors": errors,
        "hidden_points": points,
        "hidden_total": total,
        "own_test_passed": hidden.get(item.test),
        "auto_label": auto_label(item.correct, crashed, raised, refused, hidden),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _driver_failure(lesson, item, exc) -> dict:
    """The row of an entry this script could not run (a graded cell renamed, say)."""
    return {
        "lesson": lesson.number,
        "id": f"{lesson.number}:{item.id}",
        "check": item.check,
        "name": item.name,
        "test": item.test,
        "correct": item.correct,
        "cause": item.cause,
        "output": "",
        "verdict_lines": [f"measure.py could not run it: {_first_line(exc)}"],
        "raised": None,
        "crashed": False,
        "visible_ok": False,
        "visible_grading_error": None,
        "hidden": {},
        "hidden_errors": {},
        "hidden_points": 0.0,
        "hidden_total": 0.0,
        "own_test_passed": None,
        "auto_label": "NOT RUN",
        "seconds": 0.0,
    }


def auto_label(correct, crashed, raised, refused, hidden) -> str:
    """The labels that need no reading; "?" where a person must read the message."""
    full_marks = all(hidden.values())
    visible_ok = raised is None and refused is None
    if correct:
        return "PASS" if visible_ok and full_marks and not crashed else "FAIL"
    if crashed:
        return "CRASH"
    if visible_ok or full_marks:
        return "FALSE OK"
    return "?"


# --------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------


def _cell(text: str, width: int = 240) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def markdown(rows: list[dict], seconds: float) -> str:
    checks = _commit("helpers", "solutions", "tools")
    out = [
        "# Held-out answers through the checks and the grader",
        "",
        f"Written by `tests/unseen/measure.py` at commit `{_commit()}` (checks, "
        f"solutions and grader last changed at `{checks}`), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {seconds:.0f} s. "
        "Visible ok: the visible check raised nothing in grading mode. Hidden: the "
        "lesson's graded cells (hidden tests included) that passed, and points.",
        "",
    ]
    for number in unseen.LESSONS:
        mine = [r for r in rows if r["lesson"] == number]
        if not mine:
            continue
        out += [
            f"## Lesson {number}",
            "",
            "| id | check | cause | visible verdict line(s) | crashed | visible ok "
            "| hidden tests passed |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            passed = sum(r["hidden"].values())
            failed = [g for g, ok in r["hidden"].items() if not ok]
            hidden = (
                f"{passed}/{len(r['hidden'])} ({r['hidden_points']:g}/"
                f"{r['hidden_total']:g} pts)"
                + (f"; failed: {', '.join(failed)}" if failed else "")
            )
            lines = r["verdict_lines"] or ["(no line printed)"]
            if r["raised"]:
                lines = [*lines, f"raised {r['raised']}"]
            cause = "correct alternative" if r["correct"] else r["cause"]
            out.append(
                f"| {_cell(r['name'], 60)} | {r['check']} | {_cell(cause, 160)} | "
                f"{_cell(' // '.join(lines))} | {'yes' if r['crashed'] else ''} | "
                f"{'yes' if r['visible_ok'] else 'no'} | {hidden} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def _commit(*paths: str) -> str:
    """The short hash of HEAD, or of the last commit that touched ``paths``."""
    try:
        import subprocess

        return subprocess.run(
            ["git", "log", "-1", "--format=%h", "HEAD", "--", *paths],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        return "unknown"


def summary(labels_path: Path) -> str:
    """Per lesson and overall shares of a labels file (baseline_labels.json)."""
    labels = json.loads(labels_path.read_text())["labels"]
    header = "| lesson | wrong | " + " | ".join(LABELS) + " | correct | passing |"
    rows = [header, "|" + "---|" * (len(LABELS) + 4)]
    for number in [*unseen.LESSONS, "all"]:
        mine = [v for v in labels.values() if number in ("all", v["lesson"])]
        wrong_ = [v for v in mine if v["label"] in LABELS]
        right_ = [v for v in mine if v["label"] in ("PASS", "FAIL")]
        counts = {k: sum(v["label"] == k for v in wrong_) for k in LABELS}
        passing = sum(v["label"] == "PASS" for v in right_)
        shares = [
            f"{counts[k]} ({100 * counts[k] / max(len(wrong_), 1):.0f}%)"
            for k in LABELS
        ]
        rows.append(
            f"| {number} | {len(wrong_)} | "
            + " | ".join(shares)
            + f" | {len(right_)} | {passing} |"
        )
    return "\n".join(rows)


def review(results_path: Path, labels_path: Path) -> str:
    """For relabelling after the checks changed: each entry that needs reading
    (auto label "?"), its cause, its baseline label and what it prints now."""
    rows = json.loads(results_path.read_text())["rows"]
    labels = json.loads(labels_path.read_text())["labels"]
    out = []
    for r in rows:
        before = labels.get(r["id"], {}).get("label", "-")
        if r["auto_label"] != "?":
            out.append(f"{r['id']}: {r['auto_label']} (baseline {before})")
            continue
        out.append(f"{r['id']}: ? (baseline {before})\n  cause: {r['cause']}")
        out += [f"  > {line}" for line in r["verdict_lines"][:6]]
        if r["raised"]:
            out.append(f"  raised {r['raised']}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lesson", action="append", help="only these lessons")
    parser.add_argument("--only", help="only entries whose id contains this")
    parser.add_argument("--write", action="store_true", help="write even if filtered")
    parser.add_argument(
        "--summary",
        nargs="?",
        const=str(HERE / "baseline_labels.json"),
        metavar="LABELS",
        help="print the shares of a labels file (default baseline_labels.json)",
    )
    parser.add_argument(
        "--review",
        action="store_true",
        help="print results.json's messages beside the baseline labels, to relabel",
    )
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(Path(args.summary)))
        return 0
    if args.review:
        print(review(HERE / "results.json", HERE / "baseline_labels.json"))
        return 0
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    for number in args.lesson or unseen.LESSONS:
        lesson = lesson_of(number)
        for item in unseen.load(number).ENTRIES:
            rid = f"{number}:{item.id}"
            if args.only and args.only not in rid:
                continue
            try:
                row = measure(lesson, item)
            except Exception as exc:  # the driver's own failure: recorded, not fatal
                row = _driver_failure(lesson, item, exc)
            rows.append(row)
            print(
                f"{rid} [{row['auto_label']}] visible_ok={row['visible_ok']} "
                f"hidden={row['hidden_points']:g}/{row['hidden_total']:g} "
                f"({row['seconds']:.1f}s)",
                file=sys.__stdout__,
                flush=True,
            )
            for line in row["verdict_lines"][:6]:
                print(f"    {line[:300]}", file=sys.__stdout__)
            if row["raised"]:
                print(f"    raised {row['raised']}", file=sys.__stdout__)
    seconds = time.perf_counter() - started
    filtered = bool(args.lesson or args.only)
    if not filtered or args.write:
        (HERE / "results.json").write_text(
            json.dumps(
                {
                    "commit": _commit(),
                    "checks_commit": _commit("helpers", "solutions", "tools"),
                    "seconds": round(seconds, 1),
                    "rows": rows,
                },
                indent=1,
            )
            + "\n"
        )
        (HERE / "results.md").write_text(markdown(rows, seconds))
    print(f"{len(rows)} entries in {seconds:.0f} s", file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
