"""Write the learner copies in ``notebooks/`` from the sources in ``solutions/``.

    python tools/make_student.py           # regenerate everything
    python tools/make_student.py --check   # exit 1 and name every stale file

Authors write ``solutions/NN_topic.ipynb`` only, marking exercises with
nbgrader's markers, indented like the code they replace::

    def batch_stats(x):
        ### BEGIN SOLUTION hint: reduce over axis 0, the batch axis
        mu = x.mean(axis=0)
        ...
        ### END SOLUTION

    ### BEGIN HIDDEN TESTS
    assert ...
    ### END HIDDEN TESTS

In the learner copy a solution region becomes a stub that raises
``NotImplementedError`` with the one-line hint written after the marker;
hidden tests and cells tagged ``solution-only`` are removed, outputs and noisy
metadata are stripped.  Markers and metadata are read through
``helpers.contract``, which the grader shares.

The generator also writes, in *both* copies, what authors must not type by
hand: the header cell (title, purpose, Colab badge for that copy,
prerequisites, time), the Colab set-up cell before the setup cell (folded in
Colab and JupyterLab; its install line from the repository constant in
``helpers/course.py``), the previous/next links, the lesson
table in README.md, and every number the markdown quotes from a run (marked
``<!--= EXPR | SPEC -->...<!--/-->``, filled from ``data/reference/``; see
``helpers/quotes.py``).  Output is deterministic, so ``--check`` can tell when a
committed file differs from what would be generated.

Why not nbgrader's ``generate_assignment``: it does not write the Colab lines,
headers, navigation or README table, and keeps no hint (its stub is a bare
``raise NotImplementedError()``).  The sources stay nbgrader's format, so a
course on nbgrader can use them as they are (nbgrader 0.9.6 accepted them,
hints included, on 2026-12-01).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python tools/make_student.py` from anywhere
    sys.path.insert(0, str(ROOT))

from helpers import contract, course, quiz, quotes  # noqa: E402

SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
TIMINGS = ROOT / "data" / "reference" / "timings.json"  # tools/make_reference.py
RECORDS = quotes.Records()  # numbers quoted in markdown (helpers/quotes.py)

BEGIN_SOLUTION = contract.BEGIN_SOLUTION
END_SOLUTION = contract.END_SOLUTION
BEGIN_HIDDEN = contract.BEGIN_HIDDEN
END_HIDDEN = contract.END_HIDDEN
SOLUTION_ONLY = contract.SOLUTION_ONLY
SETUP_TAG = contract.SETUP_TAG
HEADER_ID = contract.HEADER_ID
NAV_ID = contract.NAV_ID
COLAB_ID = contract.COLAB_ID
COLAB_BEGIN = "# >>> Colab set-up (written by tools/make_student.py)"
COLAB_END = "# <<< Colab set-up"
# The Colab cell's one visible line: Colab shows a form's title instead of its
# code; JupyterLab collapses the code (``jupyter.source_hidden``) and shows
# what the cell prints.
COLAB_TITLE = (
    "Colab set-up: installs the course package on Colab, does nothing elsewhere"
)
COLAB_METADATA = {
    "cellView": "form",  # Colab: a form, its #@title shown, its code folded
    "jupyter": {"source_hidden": True},  # JupyterLab and Notebook 7: code folded
    "tags": [COLAB_ID],
}
README_BEGIN = "<!-- lessons:begin (written by tools/make_student.py) -->"
README_END = "<!-- lessons:end -->"
KEEP_CELL_METADATA = ("tags", "nbgrader")
KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}

graded, grade_id, tags = contract.graded, contract.grade_id, contract.tags


class AuthoringError(ValueError):
    """A source notebook breaks a rule the generator relies on."""


# --------------------------------------------------------------------------
# marked regions
# --------------------------------------------------------------------------


def _walk(source: str, begin: str, end: str, where: str):
    try:
        yield from contract.walk(source, begin, end)
    except contract.MarkerError as exc:
        raise AuthoringError(f"{where}: {exc}") from None


def _enclosing_function(lines: list[str], index: int, indent: int) -> str | None:
    for line in reversed(lines[:index]):
        match = re.match(r"(\s*)(?:async\s+)?def\s+(\w+)", line)
        if match and len(match.group(1)) < indent:
            return match.group(2)
        match = re.match(r"(\s*)class\s+(\w+)", line)
        if match and len(match.group(1)) < indent:
            return match.group(2)
    return None


def _stub(indent: str, message: str) -> str:
    """``raise NotImplementedError("...")``, wrapped to the course's 88 columns."""
    literal = json.dumps(message, ensure_ascii=False)  # "double quotes"
    stub = indent + f"raise NotImplementedError({literal})"
    if len(stub) <= 88:
        return stub
    width = 88 - len(indent) - 6
    pieces = textwrap.wrap(message, width, break_on_hyphens=False)
    pieces = [p + " " for p in pieces[:-1]] + pieces[-1:]
    return "\n".join(
        [indent + "raise NotImplementedError("]
        + [indent + "    " + json.dumps(p, ensure_ascii=False) for p in pieces]
        + [indent + ")"]
    )


def strip_solutions(source: str, cell_type: str = "code", where: str = "") -> str:
    """Replace each solution region with a stub (code) or a prompt (markdown)."""
    lines = source.splitlines()
    out = []
    for index, (role, line) in enumerate(
        _walk(source, BEGIN_SOLUTION, END_SOLUTION, where)
    ):
        if role == "outside":
            out.append(line)
        if role != "begin":
            continue
        indent = line[: len(line) - len(line.lstrip())]
        hint = contract.marker(line, BEGIN_SOLUTION).strip()
        hint = re.sub(r"^(hint)?\s*:?\s*", "", hint, flags=re.IGNORECASE)
        if cell_type == "markdown":
            out.append(indent + "_Your answer here._")
            continue
        name = _enclosing_function(lines, index, len(indent))
        if name is None:
            raise AuthoringError(
                f"{where}: a solution region outside a function or class "
                "would make the learner copy fail when the cell runs; "
                "put the exercise in a function"
            )
        message = f"{name}: {hint}" if hint else f"{name} is not implemented yet"
        out.append(indent + "# YOUR CODE HERE")
        out.append(_stub(indent, message))
    return "\n".join(out)


def strip_hidden(source: str, where: str = "") -> str:
    kept = [
        line
        for role, line in _walk(source, BEGIN_HIDDEN, END_HIDDEN, where)
        if role == "outside"
    ]
    return "\n".join(kept).rstrip()


# --------------------------------------------------------------------------
# generated cells
# --------------------------------------------------------------------------


def header_source(lesson: course.Lesson, copy_kind: str) -> str:
    folder = "notebooks" if copy_kind == "learner" else "solutions"
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({course.colab_url(folder, lesson)})"
    )
    lines = [
        f"# {lesson.number} · {lesson.title}",
        "",
        lesson.purpose,
        "",
        badge,
        "",
        f"**Prerequisites:** {lesson.prerequisites}  ",
        f"**Time:** about {lesson.minutes} minutes of study. {run_times(lesson)}",
    ]
    if copy_kind == "solution":
        lines += [
            "",
            "> **Instructor's copy, with solutions and hidden tests.** Learners "
            f"work in [`notebooks/{lesson.filename}`](../notebooks/"
            f"{lesson.filename}), which `tools/make_student.py` generates "
            "from this file.",
        ]
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def run_times(lesson: course.Lesson) -> str:
    """The header's running times, from data/reference/timings.json (measured)."""
    record = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    times = record.get("lessons", {}).get(lesson.stem, {})
    if not {"fast", "full"} <= set(times):
        raise AuthoringError(
            f"{TIMINGS.relative_to(ROOT)} has no fast and full times for "
            f"{lesson.stem}: run `python tools/make_reference.py --timings "
            f"solutions/{lesson.filename}`"
        )
    made = record.get("provenance", {})
    # a lesson re-timed since the first run has its own provenance, per mode
    own = [record.get("measured", {}).get(lesson.stem, {}).get(m, {}) for m in times]
    date = max([o["date"] for o in own if "date" in o] or [made.get("date", "?")])
    load = max([o.get("load_average", 0) for o in own] or [0])
    busy = (
        f", on a machine busy with other jobs: load average {load:.0f}; an idle one "
        "is faster"
        if load >= 2
        else ""
    )
    return (
        f"Running every cell took {_minutes(times['fast'])} in fast mode "
        f"(`BNCOURSE_FAST=1`) and {_minutes(times['full'])} in full mode on a "
        f"{made.get('cores', '?')}-core CPU (measured {date}, cold cache{busy})."
    )


def nav_source(lesson: course.Lesson) -> str:
    index = course.LESSONS.index(lesson)
    parts = []
    if index > 0:
        prev = course.LESSONS[index - 1]
        parts.append(f"← Previous: [{prev.number} · {prev.title}]({prev.filename})")
    if index + 1 < len(course.LESSONS):
        nxt = course.LESSONS[index + 1]
        parts.append(f"Next: [{nxt.number} · {nxt.title}]({nxt.filename}) →")
    else:
        parts.append("This is the last lesson: back to the [README](../README.md).")
    return "---\n\n" + " · ".join(parts)


def colab_block() -> str:
    """The Colab cell's code: install the course, or say why not.

    ``pip install git+<repository>@<release>`` fetches the package with its data
    (no clone to find later); ``--no-deps`` keeps Colab's own torch and
    ipywidgets.  A failed install raises one error that names the URL and what
    to do, instead of a ``ModuleNotFoundError`` in the setup cell.
    """
    problems = course.location_problems()
    if problems:
        raise AuthoringError("helpers/course.py: " + "; ".join(problems))
    return COLAB_TEMPLATE.format(
        title=COLAB_TITLE, begin=COLAB_BEGIN, end=COLAB_END, url=course.install_url()
    )


COLAB_TEMPLATE = """\
# @title {title}
{begin}
import sys

if "google.colab" in sys.modules:  # install the course: code and data
    import importlib
    import subprocess

    COURSE = "{url}"
    try:
        import helpers.course  # installed already: this cell ran before
    except ImportError:
        # --no-deps: Colab's own torch and ipywidgets stay as they are
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", COURSE]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"Colab set-up: could not install the course from {{COURSE}}."
                f"\\n{{done.stderr.strip()[-800:]}}\\nCheck that this runtime is "
                "online and that the repository exists and is public (a "
                "fork? see For instructors in its README), then run this "
                "cell again."
            ) from None
        importlib.invalidate_caches()
    print("Colab set-up: course installed; Colab's own PyTorch and ipywidgets kept.")
else:
    print("Colab set-up: not on Colab, nothing to install.")
{end}"""


def colab_cell():
    """The first code cell: the Colab install, folded in Colab and JupyterLab."""
    cell = nbformat.v4.new_code_cell(colab_block())
    cell.id = COLAB_ID
    cell.metadata = nbformat.NotebookNode(copy.deepcopy(COLAB_METADATA))
    return cell


def without_colab_block(source: str) -> str:
    """The setup cell without the Colab lines it held before they had a cell."""
    lines = source.splitlines()
    if COLAB_BEGIN in lines:
        start = lines.index(COLAB_BEGIN)
        if COLAB_END not in lines[start:]:
            raise AuthoringError(f"setup cell: {COLAB_BEGIN!r} without its end")
        end = lines.index(COLAB_END, start)
        lines = lines[:start] + lines[end + 1 :]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# whole notebooks
# --------------------------------------------------------------------------


def _clean_cell(cell):
    cell = copy.deepcopy(cell)
    cell.metadata = nbformat.NotebookNode(
        {k: cell.metadata[k] for k in KEEP_CELL_METADATA if k in cell.metadata}
    )
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    return cell


def _new_markdown(cell_id: str, source: str, tag: str):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    cell.metadata = nbformat.NotebookNode({"tags": [tag]})
    return cell


def normalise_source(nb, lesson: course.Lesson):
    """The solution notebook as it should be committed (header, nav, Colab lines)."""
    cells = [
        _clean_cell(c)
        for c in nb.cells
        if getattr(c, "id", None) not in (HEADER_ID, NAV_ID, COLAB_ID)
    ]
    setup = [c for c in cells if c.cell_type == "code" and SETUP_TAG in tags(c)]
    if len(setup) != 1:
        raise AuthoringError(
            f"{lesson.filename}: exactly one code cell must be tagged "
            f"'{SETUP_TAG}' (found {len(setup)})"
        )
    setup[0].source = without_colab_block(setup[0].source)
    # the Colab install runs first, in a folded cell of its own; the setup
    # cell keeps the lesson's imports and helpers.setup(), in plain view
    cells.insert(cells.index(setup[0]), colab_cell())
    for cell in cells:
        if contract.ANSWERS_TAG in tags(cell):  # the quiz: a point per question
            cell.metadata["nbgrader"]["points"] = len(quiz.load_bank())
        if cell.cell_type == "markdown":
            try:
                cell.source = quotes.fill(cell.source, RECORDS)
                false = quotes.false_claims(cell.source, RECORDS)
            except quotes.QuoteError as exc:
                raise AuthoringError(f"{lesson.filename}: {exc}") from None
            if false:
                raise AuthoringError(
                    f"{lesson.filename}: the records do not bear out the claim "
                    f"{false[0]!r}: rewrite the prose, or rerun the experiment"
                )
    header = _new_markdown(HEADER_ID, header_source(lesson, "solution"), HEADER_ID)
    nav = _new_markdown(NAV_ID, nav_source(lesson), NAV_ID)
    out = nbformat.v4.new_notebook()
    out.cells = [header, *cells, nav]
    out.metadata = nbformat.NotebookNode(
        {
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
            "bncourse": {"lesson": lesson.stem, "copy": "solution"},
        }
    )
    out.nbformat, out.nbformat_minor = 4, 5
    _check_ids(out, lesson)
    return out


def _check_ids(nb, lesson):
    seen = set()
    for index, cell in enumerate(nb.cells):
        if not getattr(cell, "id", None):
            cell.id = f"cell-{index:03d}"
        if cell.id in seen:
            raise AuthoringError(f"{lesson.filename}: duplicate cell id {cell.id}")
        seen.add(cell.id)
    ids = [grade_id(c) for c in nb.cells if grade_id(c)]
    dupes = {g for g in ids if ids.count(g) > 1}
    if dupes:
        raise AuthoringError(f"{lesson.filename}: duplicate grade_id {sorted(dupes)}")


def make_learner(source_nb, lesson: course.Lesson):
    """The learner copy of an already normalised solution notebook."""
    out = copy.deepcopy(source_nb)
    cells = []
    for index, cell in enumerate(out.cells):
        where = f"{lesson.filename} cell {index} ({cell.id})"
        if SOLUTION_ONLY in tags(cell):
            continue
        if cell.id == HEADER_ID:
            cell.source = header_source(lesson, "learner")
        elif cell.cell_type in ("code", "markdown"):
            source = strip_hidden(cell.source, where)
            source = strip_solutions(source, cell.cell_type, where)
            if graded(cell) and not source.strip():
                raise AuthoringError(
                    f"{where}: a graded cell needs a visible check, not only "
                    "hidden tests"
                )
            if not source.strip():
                continue
            cell.source = source
        cells.append(cell)
    out.cells = cells
    out.metadata.bncourse = {"lesson": lesson.stem, "copy": "learner"}
    return out


def render(nb) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def lesson_table() -> str:
    rows = [
        "| # | lesson | what you learn | time | open in Colab |",
        "|---|---|---|---|---|",
    ]
    for lesson in course.LESSONS:
        learner = course.colab_url("notebooks", lesson)
        # the solution: a file of this repository, never a public Colab link
        # (a graded course keeps it private: tools/make_release.py)
        rows.append(
            f"| {lesson.number} | [{lesson.title}](notebooks/{lesson.filename}) "
            f"| {lesson.purpose} | {lesson.minutes} min "
            f"| [learner]({learner}) · [solution](solutions/{lesson.filename}) |"
        )
    return "\n".join(rows)


def readme_text(current: str) -> str:
    if README_BEGIN not in current or README_END not in current:
        raise AuthoringError(f"README.md lacks the {README_BEGIN!r} ... markers")
    head, rest = current.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{lesson_table()}\n{README_END}{tail}"


def expected_files() -> dict[Path, str]:
    """Every generated file and the text it should have."""
    files: dict[Path, str] = {}
    known = {lesson.filename: lesson for lesson in course.LESSONS}
    sources = sorted(SOLUTIONS.glob("*.ipynb"))
    unknown = [p.name for p in sources if p.name not in known]
    if unknown:
        raise AuthoringError(
            f"solutions/{unknown[0]} is not listed in helpers/course.py LESSONS"
        )
    for path in sources:
        lesson = known[path.name]
        nb = nbformat.read(path, as_version=4)
        source_nb = normalise_source(nb, lesson)
        files[path] = render(source_nb)
        files[NOTEBOOKS / path.name] = render(make_learner(source_nb, lesson))
    if README.exists():
        files[README] = readme_text(README.read_text())
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming every file that differs",
    )
    args = parser.parse_args(argv)
    try:
        files = expected_files()
    except AuthoringError as exc:
        print(f"make_student: {exc}", file=sys.stderr)
        return 2
    stale = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                contract.write_atomic(path, text)
    expected_learners = {p.name for p in files if p.parent == NOTEBOOKS}
    orphans = [p for p in NOTEBOOKS.glob("*.ipynb") if p.name not in expected_learners]
    for path in orphans:
        stale.append(path)
        if not args.check:
            path.unlink()
    rel = [str(p.relative_to(ROOT)) for p in stale]
    if args.check:
        if stale:
            print(
                "make_student --check: out of date (run `python "
                "tools/make_student.py` and commit): " + ", ".join(rel),
                file=sys.stderr,
            )
            return 1
        print(f"make_student --check: {len(files)} files up to date")
        return 0
    print(
        f"make_student: wrote {len(stale)} file(s)"
        + (": " + ", ".join(rel) if rel else " (everything was up to date)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
