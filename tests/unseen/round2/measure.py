"""Run every answer of the second held-out set (``/work/heldout/unseen2``)
through the checks and the grader of any checkout.

    nice -n 10 /work/main/.venv/bin/python /work/heldout/unseen2/measure.py --repo /work/main
    ... measure.py --repo /work/wt-checks --name checks      # results-checks.json
    ... measure.py --repo /work/main --lesson 02 --only spatial  # print only
    ... measure.py --summary results-main.json               # the auto shares again

Adapted from ``tests/unseen/measure.py`` (same recording, same auto labels); in
addition every entry goes through ``reference.py``, an independent reference
(NumPy formulas, torch autograd and modules, the course's solutions; no
``helpers.checks``) that says whether the answer really is wrong (or right).

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
a labels file of the format of tests/unseen/baseline_labels.json.  A full run
writes ``results-<name>.json`` and ``results-<name>.md`` beside this file
(name: ``--name``, default the checkout folder's name, ``main`` for /work/main)
and prints the auto shares; ``--only``/``--lesson`` runs print and write
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


def _repo_from_argv(argv) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--repo" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--repo="):
            return Path(arg.split("=", 1)[1]).resolve()
    return Path("/work/main")


ROOT = _repo_from_argv(sys.argv)  # the checkout whose checks are measured
os.chdir(ROOT)  # the course's helpers find their data from the repository
for path in (str(HERE), str(ROOT)):
    if path in sys.path:
        sys.path.remove(path)
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))

# as the test suite runs (tests/conftest.py): fast mode, scratch folders
os.environ.setdefault("BNCOURSE_FAST", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("BNCOURSE_CACHE", tempfile.mkdtemp(prefix="bncourse-unseen-"))
os.environ.setdefault("BNCOURSE_QUIZ_DIR", tempfile.mkdtemp(prefix="bncourse-unseen-"))

import nbformat  # noqa: E402
import numpy as np  # noqa: E402

import _format as unseen  # noqa: E402  (this set's entries, not the repo's)
import reference  # noqa: E402
from helpers import contract, course  # noqa: E402
from tools import grade  # noqa: E402
from tools import make_student as ms  # noqa: E402

CRASH = re.compile(
    r"a bug in the course|the check itself failed|Traceback \(most recent", re.I
)
PASSING_VERDICTS = {"ok", "note"}
LABELS = ("NAMED", "OBSERVED", "WRONG CAUSE", "FALSE OK", "CRASH")
# an entry that no longer fits the checkout measured (e.g. an exercise whose
# signature changed): given by the labels file over any auto label, counted
# apart, outside `wrong`, `correct` and every share
NOT_COMPARABLE = "NOT COMPARABLE"
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
    for name, value in substitutions.items():
        space[name] = unseen.realise(value, space)
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
    ref_problems = _reference(lesson, item, subs)
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
        "reference_problems": ref_problems[:8],
        "reference_agrees": not ref_problems,
        "intended": _intended(item, ref_problems, hidden),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _reference(lesson, item, subs) -> list:
    """What the independent reference finds wrong with the entry (empty: none)."""
    import torch

    _seed()
    sol = namespace(lesson, {})
    space = namespace(lesson, subs)
    torch.set_grad_enabled(True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return reference.verify(item.test, space, sol)


def _intended(item, problems, hidden) -> bool:
    """A wrong entry must fail the reference or a graded test; a correct one
    must agree with the reference."""
    if item.correct:
        return not problems
    return bool(problems) or not all(hidden.values())


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
        "reference_problems": [],
        "reference_agrees": None,
        "intended": None,
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
        f"Written by `/work/heldout/unseen2/measure.py` for `{ROOT}` at commit `{_commit()}` (checks, "
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


AUTO = ("CRASH", "FALSE OK", "?", "NOT RUN")


def auto_summary(rows: list[dict]) -> str:
    """Per lesson and overall: the auto labels of the wrong entries ("?" = to be
    read: the check refused it with a message), PASS/FAIL of the correct ones,
    and the entries the independent reference does not bear out."""
    header = (
        "| lesson | wrong | CRASH | FALSE OK | ? (to read) | NOT RUN | visible ok "
        "| full hidden marks | correct | PASS | FAIL | not as intended |"
    )
    out = [header, "|" + "---|" * 12]
    for number in [*unseen.LESSONS, "all"]:
        mine = [r for r in rows if number in ("all", r["lesson"])]
        if not mine:
            continue
        wrong_ = [r for r in mine if not r["correct"]]
        right_ = [r for r in mine if r["correct"]]
        n = max(len(wrong_), 1)

        def share(k, n=n, wrong_=wrong_):
            c = sum(r["auto_label"] == k for r in wrong_)
            return f"{c} ({100 * c / n:.0f}%)"

        vis = sum(bool(r["visible_ok"]) for r in wrong_)
        full = sum(bool(r["hidden"]) and all(r["hidden"].values()) for r in wrong_)
        passing = sum(r["auto_label"] == "PASS" for r in right_)
        off = sum(r.get("intended") is False for r in mine)
        out.append(
            f"| {number} | {len(wrong_)} | "
            + " | ".join(share(k) for k in AUTO)
            + f" | {vis} ({100 * vis / n:.0f}%) | {full} ({100 * full / n:.0f}%)"
            + f" | {len(right_)} | {passing} | {len(right_) - passing} | {off} |"
        )
    return "\n".join(out)


def _label_map(data: dict) -> dict:
    """{id: {"label", "note", ...}} from a labels file: either the format of
    tests/unseen/baseline_labels.json ({"labels": {...}}) or a bare mapping."""
    labels = data.get("labels", data)
    return {k: v for k, v in labels.items() if isinstance(v, dict) and "label" in v}


def merged_labels(results_path: Path, labels_path: Path) -> dict:
    """Each row of a results file with its label: the auto label where no
    reading is needed (CRASH, FALSE OK, PASS, FAIL, NOT RUN), the person's label
    from the labels file for the entries that were read ("?").  Disagreements
    and entries left unlabelled are reported on stderr (an unlabelled "?" entry
    stays "?" and is counted in no column)."""
    rows = json.loads(results_path.read_text())["rows"]
    given = _label_map(json.loads(labels_path.read_text()))
    merged, problems = {}, []
    for r in rows:
        mine = given.get(r["id"], {})
        label = r["auto_label"]
        if mine.get("label") == NOT_COMPARABLE:
            label = NOT_COMPARABLE
        elif label == "?":
            label = mine.get("label", "?")
            if label not in ("NAMED", "OBSERVED", "WRONG CAUSE"):
                problems.append(f"{r['id']}: read entry labelled {label!r}")
        elif mine and mine.get("label") != label:
            problems.append(f"{r['id']}: labels file says {mine.get('label')!r}, "
                            f"the results' auto label is {label!r} (auto label kept)")
        merged[r["id"]] = {"lesson": r["lesson"], "label": label,
                           "correct": r["correct"], "note": mine.get("note", "")}
    for extra in sorted(set(given) - {r["id"] for r in rows}):
        problems.append(f"{extra}: in the labels file, not in the results")
    for line in problems:
        print(f"labels: {line}", file=sys.stderr)
    return merged


def summary(labels_path: Path, with_labels: Path | None = None) -> str:
    """The shares of a results file (auto labels), of a results file with a
    labels file (``--summary results.json --labels labels.json``), or of a
    labels file alone ({"labels": {id: {"lesson", "label"}}}, labels read by a
    person)."""
    data = json.loads(labels_path.read_text())
    if "rows" in data and with_labels is not None:
        labels = merged_labels(labels_path, with_labels)
    elif "rows" in data:
        return auto_summary(data["rows"])
    else:
        labels = _label_map(data)
    apart = any(v["label"] == NOT_COMPARABLE for v in labels.values())
    header = "| lesson | wrong | " + " | ".join(LABELS) + " | correct | passing |"
    if apart:
        header += f" {NOT_COMPARABLE} (wrong + correct, not in the shares) |"
    rows = [header, "|" + "---|" * (len(LABELS) + 4 + apart)]
    for number in [*unseen.LESSONS, "all"]:
        every = [v for v in labels.values() if number in ("all", v["lesson"])]
        mine = [v for v in every if v["label"] != NOT_COMPARABLE]
        gone = [v for v in every if v["label"] == NOT_COMPARABLE]
        # every wrong entry, labelled or not ("?", NOT RUN): the shares then show the gap
        wrong_ = [v for v in mine if v["label"] not in ("PASS", "FAIL")]
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
            + (
                f" {len(gone)} ({sum(not v.get('correct') for v in gone)} + "
                f"{sum(bool(v.get('correct')) for v in gone)}) |"
                if apart
                else ""
            )
        )
    return "\n".join(rows)


def review(results_path: Path, labels_path: Path | None = None) -> str:
    """For labelling: each entry, its auto label, and for those that need
    reading ("?") the cause beside the message the check printed; with
    ``--labels`` (an earlier labels file) also the label and note given there,
    to relabel after the checks change."""
    rows = json.loads(results_path.read_text())["rows"]
    earlier = _label_map(json.loads(labels_path.read_text())) if labels_path else {}
    out = []
    for r in rows:
        if r["auto_label"] != "?":
            out.append(f"{r['id']}: {r['auto_label']}")
            continue
        out.append(f"{r['id']}: ?\n  cause: {r['cause']}")
        if r["id"] in earlier:
            old = earlier[r["id"]]
            out.append(f"  earlier: {old['label']} ({old.get('note', '')})")
        out += [f"  > {line}" for line in r["verdict_lines"][:6]]
        if r["raised"]:
            out.append(f"  raised {r['raised']}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default="/work/main", help="the checkout to measure")
    parser.add_argument("--name", help="results-NAME.json (default: the repo folder's name)")
    parser.add_argument("--lesson", action="append", help="only these lessons")
    parser.add_argument("--only", help="only entries whose id contains this")
    parser.add_argument("--write", action="store_true", help="write even if filtered")
    parser.add_argument(
        "--summary",
        metavar="FILE",
        help="print the shares of a results-*.json or a labels file, run nothing",
    )
    parser.add_argument(
        "--labels",
        metavar="LABELS",
        help="with --summary RESULTS: the labels read by a person (id -> {label, note}); "
        "prints the shares NAMED / OBSERVED / WRONG CAUSE / FALSE OK / CRASH per lesson. "
        "With --review RESULTS: shows each entry's earlier label and note",
    )
    parser.add_argument(
        "--review", metavar="RESULTS", help="print a results file's messages beside the causes"
    )
    args = parser.parse_args(argv)
    if args.summary:
        path = Path(args.summary)
        labels = None
        if args.labels:
            labels = Path(args.labels)
            labels = labels if labels.is_absolute() or labels.exists() else HERE / labels
        print(summary(path if path.is_absolute() or path.exists() else HERE / path, labels))
        return 0
    if args.review:
        path = Path(args.review)
        labels = None
        if args.labels:
            labels = Path(args.labels)
            labels = labels if labels.is_absolute() or labels.exists() else HERE / labels
        print(review(path if path.is_absolute() or path.exists() else HERE / path, labels))
        return 0
    import torch

    torch.set_num_threads(1)
    name = args.name or ROOT.name
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
            flag = "" if row["intended"] is not False else "  !! NOT AS INTENDED"
            print(
                f"{rid} [{row['auto_label']}] visible_ok={row['visible_ok']} "
                f"hidden={row['hidden_points']:g}/{row['hidden_total']:g} "
                f"reference={'agrees' if row['reference_agrees'] else 'differs'}"
                f" ({row['seconds']:.1f}s){flag}",
                file=sys.__stdout__,
                flush=True,
            )
            for line in row["verdict_lines"][:6]:
                print(f"    {line[:2000]}", file=sys.__stdout__)
            if row["raised"]:
                print(f"    raised {row['raised']}", file=sys.__stdout__)
            if row["intended"] is False or (row["correct"] and row["reference_problems"]):
                for line in row["reference_problems"][:4]:
                    print(f"    reference: {line[:200]}", file=sys.__stdout__)
    seconds = time.perf_counter() - started
    filtered = bool(args.lesson or args.only)
    table = auto_summary(rows)
    if not filtered or args.write:
        (HERE / f"results-{name}.json").write_text(
            json.dumps(
                {
                    "repo": str(ROOT),
                    "commit": _commit(),
                    "checks_commit": _commit("helpers", "solutions", "tools"),
                    "seconds": round(seconds, 1),
                    "summary": table,
                    "rows": rows,
                },
                indent=1,
            )
            + "\n"
        )
        (HERE / f"results-{name}.md").write_text(
            markdown(rows, seconds) + "\n## Auto shares\n\n" + table + "\n"
        )
    print(table, file=sys.__stdout__)
    print(f"{len(rows)} entries in {seconds:.0f} s (repo {ROOT} at {_commit()})", file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
