"""What the grader writes besides its CSV: feedback, a class report, gradebooks.

* ``feedback_html``: one self-contained page per submission (nbconvert's HTML
  exporter on a notebook made for it): the learner's cells as graded with
  their text output, each test with its points and what its check said (the
  mistake it names), errors in other cells, the quiz's result per question.
  Hidden tests' code and inputs never appear: only the checks' verdicts, with
  the values they quote replaced by ``…``.
* ``class_report``: an HTML page and a CSV of the same numbers for the
  instructor: score distribution, each test's pass rate, the mistakes the
  checks named most often, the quiz's hardest questions and most chosen wrong
  options, submissions that errored and why; figures as embedded PNGs.
* gradebook exports: a Canvas/Moodle-style CSV (one row per learner, one
  column per lesson) and Gradescope's ``results.json``.
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import re
from collections import Counter, defaultdict
from pathlib import Path

# "worst at index (3, 1): got 2.5, expected 1.25" names values of a hidden
# test's inputs: the feedback keeps the verdict and the mistake, not them.
_VALUES = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def named_mistakes(message: str) -> list[str]:
    """The mistakes a check's printed lines name (its WRONG/ERROR details)."""
    found = []
    for line in message.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[1] in ("WRONG", "ERROR"):
            detail = _VALUES.sub("…", parts[2])
            detail = re.sub(r"\(expect < …\)|; worst at index .*$", "", detail).strip()
            if detail and detail not in found:
                found.append(detail)
    if not found and message.strip():
        last = message.strip().splitlines()[-1]
        if not last.startswith("CheckFailed"):
            found.append(_VALUES.sub("…", last)[:200])
    return found


def _safe(message: str) -> str:
    """A check's printout, with a hidden test's failure shown without its values.

    The visible check prints what the learner sees in their own notebook; a
    hidden test prints nothing and fails with ``CheckFailed`` (or an
    assertion), whose text may quote values computed from its inputs: only its
    verdict and the mistake it names are kept, numbers replaced by ``…``.
    """
    visible, hidden = message, ""
    for marker in ("CheckFailed:", "AssertionError", "\nTraceback"):
        if marker in visible:
            visible, hidden = visible.split(marker, 1)
            break
    text = visible.strip()
    hidden = "\n".join(  # lines the visible check printed already are not news
        line
        for line in hidden.splitlines()
        if line.strip() and line.strip() not in text
    )
    if hidden:
        named = named_mistakes(hidden)
        detail = f": {named[0]}" if named else ""
        text += f"\n\nA hidden test failed{detail}."
    return text.strip()


# --------------------------------------------------------------------------
# feedback for one learner
# --------------------------------------------------------------------------


def feedback_notebook(row, bank=None):
    """A notebook that shows the graded run; every source is the learner's."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    score = f"{row.total:g} / {row.maximum:g}" if row.tests else "not graded"
    head = [
        f"# Feedback: {row.notebook or 'unknown lesson'}",
        "",
        f"**{Path(row.file).name}**: {score} points.",
    ]
    if row.error:
        head += ["", f"**What went wrong while it ran:** {html.escape(row.error)}"]
    if row.notes:
        head += [
            "",
            "**Notes for your instructor:** " + html.escape("; ".join(row.notes)),
        ]
    cells = [nbformat.v4.new_markdown_cell("\n".join(head))]
    for item in row.transcript:
        if "test" in item:
            gid = item["test"]
            earned, most = row.tests.get(gid, [0, 0])
            verdict = "passed" if earned >= most else "did not pass"
            text = _safe(row.messages.get(gid, "")) or "(no message)"
            cells.append(
                nbformat.v4.new_markdown_cell(
                    f"**Test `{gid}`: {earned:g} / {most:g} points ({verdict}).** "
                    "What the check said:\n\n```\n" + text + "\n```"
                )
            )
            continue
        cell = nbformat.v4.new_code_cell(item.get("source", ""))
        if item.get("skipped"):
            cell.source = "# (not run while grading: a demonstration)\n" + cell.source
        elif item.get("output"):
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text=item["output"])
            ]
        cells.append(cell)
    if row.quiz:
        cells.append(nbformat.v4.new_markdown_cell(_quiz_table(row.quiz, bank)))
    nb.cells = cells
    return nb


def _quiz_table(quiz: dict, bank) -> str:
    texts = {q.id: q.text for q in bank} if bank else {}
    lines = [
        "## The quiz, question by question",
        "",
        "| question | result | attempts |",
        "|---|---|---|",
    ]
    for qid, item in quiz.items():
        result = "right" if item["correct"] else ("wrong" if item["answered"] else "—")
        text = html.escape(texts.get(qid, qid))[:120].replace("|", "/")
        lines.append(f"| {text} | {result} | {item['attempts']} |")
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", embed_images=True)


def feedback_html(row, bank=None) -> str:
    """A self-contained page: no script or style is fetched from the network."""
    body, _ = _exporter().from_notebook_node(feedback_notebook(row, bank))
    # nbconvert links require.js and MathJax from a CDN: drop every external
    # script so the page opens offline (maths then shows as TeX).
    return re.sub(r"<script[^>]*src=\"https?://[^\"]*\"[^>]*>\s*</script>", "", body)


# --------------------------------------------------------------------------
# the class
# --------------------------------------------------------------------------


def summary(rows) -> dict:
    """The report's numbers, from the rows alone (so merged shards give them too)."""
    graded = [r for r in rows if r.tests]
    tests: dict = defaultdict(lambda: [0, 0])
    mistakes: Counter = Counter()
    questions: dict = defaultdict(
        lambda: {"right": 0, "answered": 0, "wrong": Counter()}
    )
    for row in graded:
        for gid, (earned, most) in row.tests.items():
            key = f"{row.notebook[:2]}:{gid}"
            tests[key][0] += earned >= most
            tests[key][1] += 1
        for gid, named in row.mistakes.items():
            for mistake in named:
                mistakes[f"{row.notebook[:2]}:{gid}: {mistake}"] += 1
        for qid, item in row.quiz.items():
            q = questions[qid]
            q["answered"] += item["answered"]
            q["right"] += item["correct"]
            if item["answered"] and not item["correct"]:
                q["wrong"][tuple(item["choice"])] += 1
    return {
        "submissions": len(rows),
        "graded": len(graded),
        "scores": [r.total / r.maximum if r.maximum else 0.0 for r in graded],
        "tests": {
            k: {"passed": v[0], "graded": v[1]} for k, v in sorted(tests.items())
        },
        "mistakes": mistakes.most_common(20),
        "questions": dict(questions),
        "errors": [(r.file, r.error) for r in rows if r.error],
    }


def _figure_png(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def class_report(rows, out_dir: Path, bank=None) -> tuple[Path, Path]:
    """report.html and report.csv in ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = summary(rows)
    texts = {q.id: q for q in bank} if bank else {}
    hardest = sorted(
        (
            (q["right"] / q["answered"], qid, q)
            for qid, q in numbers["questions"].items()
            if q["answered"]
        ),
        key=lambda item: item[0],
    )[:10]

    def scores(ax):
        ax.hist(
            [100 * s for s in numbers["scores"]],
            bins=10,
            range=(0, 100),
            color="#4c72b0",
        )
        ax.set_xlabel("score (% of the maximum)")
        ax.set_ylabel("submissions")
        ax.set_title("Score distribution")

    def passes(ax):
        names = list(numbers["tests"])
        rates = [100 * v["passed"] / v["graded"] for v in numbers["tests"].values()]
        ax.barh(names, rates, color="#55a868")
        ax.set_xlim(0, 100)
        ax.set_xlabel("submissions that passed (%)")
        ax.set_title("Each test's pass rate")

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Class report</title><style>body{font-family:sans-serif;max-width:"
        "60em;margin:2em auto}td,th{border:1px solid #ccc;padding:.2em .5em}"
        "table{border-collapse:collapse}</style></head><body>",
        "<h1>Class report</h1>",
        f"<p>{numbers['graded']} of {numbers['submissions']} submissions graded.</p>",
    ]
    if numbers["scores"]:
        parts.append(_img(_figure_png(scores), "score distribution"))
    if numbers["tests"]:
        parts.append(_img(_figure_png(passes), "pass rate per test"))
    parts.append("<h2>Mistakes the checks named most often</h2><table>")
    parts.append("<tr><th>test: mistake</th><th>submissions</th></tr>")
    for mistake, count in numbers["mistakes"]:
        parts.append(f"<tr><td>{html.escape(mistake)}</td><td>{count}</td></tr>")
    parts.append("</table><h2>Hardest quiz questions</h2><table>")
    parts.append(
        "<tr><th>question</th><th>right</th><th>most chosen wrong option</th></tr>"
    )
    for rate, qid, q in hardest:
        question = texts.get(qid)
        wrong = q["wrong"].most_common(1)
        option = ""
        if wrong and question is not None:
            option = "; ".join(question.options[i] for i in wrong[0][0])
        text = question.text if question is not None else qid
        parts.append(
            f"<tr><td>{html.escape(text)}</td><td>{rate:.0%}</td>"
            f"<td>{html.escape(option)}</td></tr>"
        )
    parts.append("</table><h2>Submissions that errored</h2><ul>")
    for file, error in numbers["errors"]:
        parts.append(
            f"<li><b>{html.escape(Path(file).name)}</b>: {html.escape(error)}</li>"
        )
    parts.append("</ul></body></html>")
    page = out_dir / "report.html"
    page.write_text("\n".join(parts))
    return page, _report_csv(out_dir / "report.csv", numbers, hardest)


def _report_csv(table: Path, numbers: dict, hardest: list) -> Path:
    """The class report's numbers as CSV, one row per count."""
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "what", "value", "out of"])
        writer.writerow(
            ["submissions", "graded", numbers["graded"], numbers["submissions"]]
        )
        for name, v in numbers["tests"].items():
            writer.writerow(["test passed", name, v["passed"], v["graded"]])
        for mistake, count in numbers["mistakes"]:
            writer.writerow(["mistake", mistake, count, numbers["graded"]])
        for _rate, qid, q in hardest:
            writer.writerow(["question right", qid, q["right"], q["answered"]])
        for file, error in numbers["errors"]:
            writer.writerow(["error", Path(file).name, error, ""])
    return table


# --------------------------------------------------------------------------
# gradebooks
# --------------------------------------------------------------------------


def learner_id(row) -> str:
    """Who handed it in: metadata, else the folder, else the file's own name.

    1. ``metadata.bncourse.learner`` of the notebook, or the ``learner`` field
       of the quiz's answers file;
    2. the folder, when submissions come one folder per learner with the
       lesson's own file name (``alice/02_bn_forward_backward.ipynb``, as
       LMS downloads often are);
    3. the file name without the lesson's name: ``02_bn_forward_backward_alice
       .ipynb`` or ``02_alice.ipynb`` -> ``alice``.
    """
    if row.learner:
        return row.learner
    path = Path(row.file)
    stem = path.stem
    if row.notebook and stem == row.notebook:
        return path.parent.name
    rest = stem.replace(row.notebook, "") if row.notebook else stem
    rest = re.sub(r"^\d\d(?=[_\-. ])", "", rest)
    return rest.strip("_-. ") or stem


def gradebook(rows, path: Path, system: str, lessons) -> Path:
    """One row per learner, one column per lesson (points), for Canvas or Moodle.

    Canvas: ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``,
    then one column per assignment, and a ``Points Possible`` row; the learner
    id goes in ``SIS Login ID`` (Canvas matches on it), ``ID`` is left empty.
    Moodle: ``username`` then one column per lesson (choose "username" as the
    identifier when importing the CSV).
    """
    by_learner: dict = defaultdict(dict)
    maxima: dict = {}
    for row in rows:
        if row.tests:
            by_learner[learner_id(row)][row.notebook] = row.total
            maxima[row.notebook] = row.maximum
    columns = [stem for stem in (x.stem for x in lessons) if stem in maxima]
    titles = {x.stem: f"{x.number} {x.title}" for x in lessons}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if system == "canvas":
            writer.writerow(
                ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
                + [titles[c] for c in columns]
            )
            writer.writerow(
                ["Points Possible", "", "", "", ""] + [maxima[c] for c in columns]
            )
            for learner, marks in sorted(by_learner.items()):
                writer.writerow(
                    [learner, "", "", learner, ""]
                    + [f"{marks[c]:g}" if c in marks else "" for c in columns]
                )
        else:
            writer.writerow(["username"] + [titles[c] for c in columns])
            for learner, marks in sorted(by_learner.items()):
                writer.writerow(
                    [learner] + [f"{marks[c]:g}" if c in marks else "" for c in columns]
                )
    return path


def gradescope_results(row) -> dict:
    """Gradescope's autograder ``results.json`` for one submission."""
    tests = [
        {
            "name": gid,
            "score": earned,
            "max_score": most,
            "output": _safe(row.messages.get(gid, "")),
        }
        for gid, (earned, most) in row.tests.items()
    ]
    output = "; ".join(filter(None, [row.error, *row.notes]))
    return {"score": row.total, "tests": tests, "output": output}
