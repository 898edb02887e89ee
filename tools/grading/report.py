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

Everything a submission controls is the learner's: file and folder names,
the learner id taken from them (``identity``), what its code printed or
raised.  It reaches HTML escaped and never through markdown (``safe.esc``;
nbconvert's sanitiser runs over the feedback page besides), and CSV cells
neutralised against formulas (``safe.write_table``).  A row that cannot be
written costs only its own output, with a message.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from . import identity, safe, sandbox

# "worst at index (3, 1): got 2.5, expected 1.25" names values of a hidden
# test's inputs: the feedback keeps the verdict and the mistake, not them.
_VALUES = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


# Where a test's message turns to its hidden part (tools/grading/worker.py):
# what follows was computed from a hidden test's inputs.
HIDDEN_FAILED = "\n[hidden test failed]\n"
# A learner's exception, its type name and message: their words, not the
# course's (in a hidden test they could carry its inputs out).  The grader
# raises a hidden call's exception without them (``remote.Session.hidden``);
# these filters are a second line: what follows "raised" on the line, quoted
# text and <...> (a returned string, an object of the kernel's) are dropped.
_RAISED = re.compile(r"raised .*$")
_QUOTED = re.compile(r"(?<![A-Za-z])'[^']*(?:'|$)|\"[^\"]*(?:\"|$)|<[^>]*(?:>|$)")


def named_mistakes(message: str, fallback: bool = True) -> list[str]:
    """The mistakes a check's printed lines name (its WRONG/ERROR details).

    ``fallback``: with no such line, the message's last line stands in.
    """
    found = []
    for line in message.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[1] in ("WRONG", "ERROR"):
            detail = _VALUES.sub("…", parts[2])
            # drop the values (a hidden test's), keep a hint that follows them
            detail = re.sub(
                r"\(expect < …\)|; worst at index .*?: got \S*, expected [^ .]*",
                "",
                detail,
            ).strip()
            if detail and detail not in found:
                found.append(detail)
    if fallback and not found and message.strip():
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
    for marker in (
        HIDDEN_FAILED.strip(),
        "CheckFailed:",
        "AssertionError",
        "\nTraceback",
    ):
        if marker in visible:
            visible, hidden = visible.split(marker, 1)
            hidden = hidden or " "  # failed, even if it said nothing
            break
    text = visible.strip()
    if hidden:
        # only the check's own words: never the learner's (an exception's type
        # and message), never values
        lines = [ln for ln in hidden.splitlines() if ln.strip() not in text]
        named = named_mistakes("\n".join(lines), fallback=False)
        named = [_QUOTED.sub("…", _RAISED.sub("raised an exception", n)) for n in named]
        detail = f": {named[0]}" if named else ""
        text += f"\n\nA hidden test failed{detail}."
    return text.strip()


# --------------------------------------------------------------------------
# who is who, and who handed in twice
# --------------------------------------------------------------------------


def learner_id(row) -> str:
    """Who handed it in: from where the LMS put the file (``identity``).

    The notebook's metadata and the quiz answers file's ``learner`` never
    count: the grader only notes where they disagree with the place.
    """
    return place_of(row).id


def place_of(row) -> identity.Identity:
    """Where the LMS put it, read below the row's class folder, if it has one."""
    return identity.identify(row.file, row.notebook, getattr(row, "class_folder", None))


DUPLICATE = re.compile(r"^\d+ submissions for lesson ")


def duplicates(rows) -> dict:
    """(learner, lesson) -> its graded rows, where there is more than one.

    Ids that look alike count as one learner: ids that share a key of
    ``identity.lookalike_keys`` (Unicode's confusable skeleton, with and
    without case), and every id joined to them that way.  The learner in the
    key is the group's ids, ``" / "``-joined.
    """
    graded = [row for row in rows if row.tests]
    parent = list(range(len(graded)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, row in enumerate(graded):
        for key in identity.lookalike_keys(learner_id(row)):
            j = first.setdefault((key, row.notebook), i)
            parent[root(i)] = root(j)
    groups: dict = defaultdict(list)
    for i, row in enumerate(graded):
        groups[root(i)].append(row)
    found = {}
    for group in groups.values():
        if len(group) > 1:
            learner = " / ".join(sorted({learner_id(r) for r in group}))
            found[(learner, group[0].notebook)] = group
    return found


def keeper(group):
    """The one submission of a look-alike group whose mark the gradebooks keep,
    or None (then every mark is withheld until the instructor decides).

    Kept only where exactly one of the group has a plain id (``identity.
    plain``: NFC, no invisible, default-ignorable or full-width character, one
    script) and the others do not: a look-alike that adds invisible
    characters to ``bob``, writes it with a Cyrillic ``о`` or decomposes its
    accents cannot withhold bob's mark, and its own is withheld.  An honest
    ``José`` or ``Anna Lee`` is plain.  The same id twice, or two plain ids
    that look alike (``Carol`` and ``carol``, ``Ian`` and ``lan``), keep
    nothing.
    """
    plain = [r for r in group if identity.plain(learner_id(r))]
    return plain[0] if len(plain) == 1 else None


def duplicate_note(key, group) -> str:
    _, lesson = key
    learner = " / ".join(sorted({learner_id(r) for r in group}))
    files = ", ".join(str(r.file) for r in group)
    scores = ", ".join(f"{r.total:g}" for r in group)
    return (
        f"{len(group)} submissions for lesson {lesson[:2]} by {learner!r} (files "
        f"{files} with scores {scores}): resolve by hand"
    )


def flag_duplicates(rows) -> dict:
    """Note every submission that shares its learner and lesson with another.

    Idempotent (a CSV read back keeps its notes): an older count is replaced.
    Returns ``duplicates(rows)``.
    """
    found = duplicates(rows)
    for key, group in found.items():
        note = duplicate_note(key, group)
        for row in group:
            row.notes = [n for n in row.notes if not DUPLICATE.match(str(n))]
            row.notes.append(note)
    return found


# --------------------------------------------------------------------------
# feedback for one learner
# --------------------------------------------------------------------------

# A feedback page's own text is HTML: one line per markdown cell, of the tags
# nbconvert's sanitiser keeps (div, pre, code, strong, ul, li ...), so that
# markdown processes none of it.  Learner text is escaped, newlines included.


def _text(value) -> str:
    """Learner text for a line of HTML."""
    return safe.esc(value).replace("\r", " ").replace("\n", " ")


def _pre(value) -> str:
    """Learner text for a <pre> block, still on one line of the cell."""
    text = safe.esc(value).replace("\r\n", "\n").replace("\r", "\n")
    return "<pre>" + text.replace("\n", "&#10;") + "</pre>"


def _cell(*parts: str):
    import nbformat

    return nbformat.v4.new_markdown_cell(
        '<div class="bnc-feedback">' + "".join(parts) + "</div>"
    )


def feedback_notebook(row, bank=None):
    """A notebook that shows the graded run; every source is the learner's."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    score = f"{row.total:g} / {row.maximum:g}" if row.tests else "not graded"
    head = [
        f"<div><strong>Feedback: {_text(row.notebook or 'unknown lesson')}</strong>"
        "</div>",
        f"<div><code>{_text(Path(str(row.file)).name)}</code> "
        f"(handed in as <code>{_text(learner_id(row))}</code>): {score} points.</div>",
    ]
    if row.error:
        head.append(
            f"<div><strong>What went wrong while it ran:</strong> {_text(row.error)}"
            "</div>"
        )
    if row.notes:
        items = "".join(f"<li>{_text(n)}</li>" for n in row.notes)
        head.append(
            f"<div><strong>Notes for your instructor:</strong></div><ul>{items}</ul>"
        )
    cells = [_cell(*head)]
    for item in row.transcript:
        if not isinstance(item, dict):
            continue
        if "test" in item:
            gid = str(item["test"])
            earned, most = row.tests.get(gid, [0, 0])
            verdict = "passed" if earned >= most else "did not pass"
            text = _safe(str(row.messages.get(gid, ""))) or "(no message)"
            cells.append(
                _cell(
                    f"<div><strong>Test <code>{_text(gid)}</code>: {earned:g} / "
                    f"{most:g} points ({verdict}).</strong> What the check said:</div>",
                    _pre(text),
                )
            )
            continue
        cell = nbformat.v4.new_code_cell(str(item.get("source", "")))
        if item.get("skipped"):
            cell.source = "# (not run while grading: a demonstration)\n" + cell.source
        elif item.get("output"):
            cell.outputs = [
                nbformat.v4.new_output(
                    "stream", name="stdout", text=str(item["output"])
                )
            ]
        cells.append(cell)
    if row.quiz:
        cells.append(_cell(*_quiz_list(row.quiz, bank)))
    nb.cells = cells
    return nb


def _quiz_list(quiz: dict, bank) -> list[str]:
    texts = {q.id: q.text for q in bank} if bank else {}
    items = []
    for qid, item in quiz.items():
        item = item if isinstance(item, dict) else {}
        if item.get("correct"):
            result = "right"
        else:
            result = "wrong" if item.get("answered") else "not answered"
        text = texts.get(qid, str(qid))[:160]
        items.append(
            f"<li>{_text(text)}: <strong>{result}</strong> "
            f"({_text(item.get('attempts', 0))} attempt(s))</li>"
        )
    return [
        "<div><strong>The quiz, question by question</strong></div>",
        "<ul>" + "".join(items) + "</ul>",
    ]


@functools.lru_cache(maxsize=1)
def _exporter():
    from nbconvert import HTMLExporter

    options = {"template_name": "lab", "embed_images": True}
    if "sanitize_html" in HTMLExporter.class_trait_names():  # nbconvert >= 7.0
        options["sanitize_html"] = True  # defence in depth: all is escaped already
    return HTMLExporter(**options)


def feedback_html(row, bank=None) -> str:
    """A self-contained page: no script or style is fetched from the network."""
    body, _ = _exporter().from_notebook_node(feedback_notebook(row, bank))
    # nbconvert links require.js and MathJax from a CDN: drop every external
    # script so the page opens offline (maths then shows as TeX).
    return re.sub(r"<script[^>]*src=\"https?://[^\"]*\"[^>]*>\s*</script>", "", body)


def feedback_index(entries, folder: Path, name: str = "index") -> Path:
    """``<name>.csv``: which page (or JSON) is whose, and why one is missing.

    ``entries``: (file name written or '', row, status) per submission.
    """
    header = ["page", "file", "learner", "notebook", "total", "maximum", "status"]
    records = []
    for page, row, status in entries:
        total = f"{row.total:g}" if row.tests else ""
        maximum = f"{row.maximum:g}" if row.tests else ""
        records.append(
            [page, row.file, learner_id(row), row.notebook, total, maximum, status]
        )
    return safe.write_table(folder / f"{name}.csv", header, records)


# --------------------------------------------------------------------------
# the class
# --------------------------------------------------------------------------


def _choices(item, question) -> tuple | None:
    """A recorded choice as valid option indices of ``question``, else None."""
    choice = item.get("choice") if isinstance(item, dict) else None
    if not isinstance(choice, (list, tuple)) or not choice:
        return None
    limit = len(question.options) if question is not None else 0
    if not all(type(i) is int and 0 <= i < limit for i in choice):
        return None
    return tuple(sorted(set(choice)))


def summary(rows, bank=None) -> dict:
    """The report's numbers, from the rows alone (so merged shards give them too).

    A row whose data cannot be counted is listed with the errors, not fatal.
    """
    by_id = {q.id: q for q in bank} if bank else {}
    graded = [r for r in rows if r.tests]
    tests: dict = defaultdict(lambda: [0, 0])
    mistakes: Counter = Counter()
    questions: dict = defaultdict(
        lambda: {"right": 0, "answered": 0, "wrong": Counter()}
    )
    errors = []
    for row in graded:
        try:
            mine_tests, mine_mistakes, mine_questions = [], [], []
            for gid, (earned, most) in row.tests.items():
                mine_tests.append(
                    (f"{row.notebook[:2]}:{gid}", float(earned) >= float(most))
                )
            for gid, named in row.mistakes.items():
                for mistake in named:
                    mine_mistakes.append(f"{row.notebook[:2]}:{gid}: {mistake}")
            for qid, item in row.quiz.items():
                if not isinstance(item, dict):
                    continue
                answered, right = bool(item.get("answered")), bool(item.get("correct"))
                chosen = _choices(item, by_id.get(qid)) if by_id else None
                mine_questions.append((str(qid), answered, right, chosen))
        except Exception as exc:  # one row's data never stops the report
            errors.append(
                (row.file, f"not counted in the report: {type(exc).__name__}")
            )
            continue
        for key, passed in mine_tests:
            tests[key][0] += passed
            tests[key][1] += 1
        mistakes.update(mine_mistakes)
        for qid, answered, right, chosen in mine_questions:
            q = questions[qid]
            q["answered"] += answered
            q["right"] += right
            if answered and not right and chosen is not None:
                q["wrong"][chosen] += 1
    return {
        "submissions": len(rows),
        "graded": len(graded),
        "scores": [r.total / r.maximum if r.maximum else 0.0 for r in graded],
        "tests": {
            k: {"passed": v[0], "graded": v[1]} for k, v in sorted(tests.items())
        },
        "mistakes": mistakes.most_common(20),
        "questions": dict(questions),
        "errors": [(r.file, r.error) for r in rows if r.error] + errors,
        "duplicates": [
            (key, duplicate_note(key, group)) for key, group in duplicates(rows).items()
        ],
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


def _report_head(numbers: dict, unsandboxed: str) -> list[str]:
    """The class report's opening: title, counts, and a warning if unsandboxed."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Class report</title><style>body{font-family:sans-serif;max-width:"
        "60em;margin:2em auto}td,th{border:1px solid #ccc;padding:.2em .5em}"
        "table{border-collapse:collapse}</style></head><body>",
        "<h1>Class report</h1>",
        f"<p>{numbers['graded']} of {numbers['submissions']} submissions graded.</p>",
    ]
    if unsandboxed:
        parts.append(f"<p style='color:#b00'><b>{safe.esc(unsandboxed)}</b></p>")
    return parts


def class_report(rows, out_dir: Path, bank=None) -> tuple[Path, Path]:
    """report.html and report.csv in ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = summary(rows, bank)
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
        # test ids are the course's; a learner's notebook name never gets here
        names = list(numbers["tests"])
        rates = [100 * v["passed"] / v["graded"] for v in numbers["tests"].values()]
        ax.barh(names, rates, color="#55a868")
        ax.set_xlim(0, 100)
        ax.set_xlabel("submissions that passed (%)")
        ax.set_title("Each test's pass rate")

    esc = safe.esc
    unsandboxed = sandbox.unsandboxed_warning(rows)
    parts = _report_head(numbers, unsandboxed)
    for draw, alt, wanted in (
        (scores, "score distribution", numbers["scores"]),
        (passes, "pass rate per test", numbers["tests"]),
    ):
        if wanted:
            try:
                parts.append(_img(_figure_png(draw), alt))
            except Exception as exc:  # a figure is not worth the report
                parts.append(f"<p>(figure not drawn: {esc(type(exc).__name__)})</p>")
    if numbers["duplicates"]:
        parts.append("<h2>Learners with more than one submission</h2><ul>")
        for _key, note in numbers["duplicates"]:
            parts.append(f"<li>{esc(note)}</li>")
        parts.append("</ul>")
    parts.append("<h2>Mistakes the checks named most often</h2><table>")
    parts.append("<tr><th>test: mistake</th><th>submissions</th></tr>")
    for mistake, count in numbers["mistakes"]:
        parts.append(f"<tr><td>{esc(mistake)}</td><td>{count}</td></tr>")
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
            f"<tr><td>{esc(text)}</td><td>{rate:.0%}</td><td>{esc(option)}</td></tr>"
        )
    parts.append("</table><h2>Submissions that errored</h2><ul>")
    for file, error in numbers["errors"]:
        parts.append(f"<li><b>{esc(Path(str(file)).name)}</b>: {esc(error)}</li>")
    parts.append("</ul></body></html>")
    page = out_dir / "report.html"
    page.write_text("\n".join(parts))
    table = _report_csv(out_dir / "report.csv", numbers, hardest, unsandboxed)
    return page, table


def _report_csv(table: Path, numbers: dict, hardest: list, unsandboxed="") -> Path:
    """The class report's numbers as CSV, one row per count."""
    records = [["submissions", "graded", numbers["graded"], numbers["submissions"]]]
    if unsandboxed:
        records.append(["warning", "unsandboxed", unsandboxed, ""])
    for name, v in numbers["tests"].items():
        records.append(["test passed", name, v["passed"], v["graded"]])
    for mistake, count in numbers["mistakes"]:
        records.append(["mistake", mistake, count, numbers["graded"]])
    for _rate, qid, q in hardest:
        records.append(["question right", qid, q["right"], q["answered"]])
    for file, error in numbers["errors"]:
        records.append(["error", Path(str(file)).name, error, ""])
    for (learner, lesson), note in numbers["duplicates"]:
        records.append(["duplicate", learner, note, lesson])
    return safe.write_table(table, ["kind", "what", "value", "out of"], records)


# --------------------------------------------------------------------------
# gradebooks
# --------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"grade.py: {safe.learner_text(message, 2000)}", file=sys.stderr, flush=True)


def gradebook(rows, path: Path, system: str, lessons) -> Path:
    """One row per learner, one column per lesson (points), for Canvas or Moodle.

    Canvas: ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``,
    then one column per assignment, and a ``Points Possible`` row.  A learner
    id from Canvas's own download names is the Canvas user id: it goes in
    ``ID``; any other id goes in ``SIS Login ID``.  Moodle: ``username``, one
    column per lesson and ``Notes`` (leave it on "Ignore" when importing).

    Two submissions of one learner for one lesson: the cell is left empty (no
    score is chosen for them) and the Moodle ``Notes`` column and the
    ``-conflicts.csv`` beside the gradebooks say which files and scores to
    resolve by hand.  Canvas gets no notes column: Canvas makes a new
    assignment of every column it does not know.
    """
    conflicts = duplicates(rows)
    group_of = {id(r): key for key, group in conflicts.items() for r in group}
    by_learner: dict = defaultdict(dict)
    who: dict = {}
    notes: dict = defaultdict(list)
    maxima: dict = {}
    for row in rows:
        if not row.tests:
            continue
        try:
            place = place_of(row)
            key = group_of.get(id(row))
            if key in conflicts and row is keeper(conflicts[key]):
                by_learner[place.id][row.notebook] = float(row.total)
                notes[place.id].append(duplicate_note(key, conflicts[key]))
            elif key in conflicts:
                by_learner[place.id].setdefault(row.notebook, None)
                note = duplicate_note(key, conflicts[key])
                if note not in notes[place.id]:
                    notes[place.id].append(note)
            else:
                by_learner[place.id][row.notebook] = float(row.total)
            who.setdefault(place.id, place)
            maxima[row.notebook] = float(row.maximum)
            if getattr(row, "unsandboxed", False):
                notes[place.id].append(f"{row.notebook[:2]}: graded unsandboxed")
        except Exception as exc:  # one row never costs the others theirs
            _warn(f"{row.file}: left out of the {system} gradebook ({exc})")
    columns = [stem for stem in (x.stem for x in lessons) if stem in maxima]
    titles = {x.stem: f"{x.number} {x.title}" for x in lessons}
    if sandbox.unsandboxed_warning(rows):  # Canvas's CSV has no place for it
        _warn(f"{path.name}: {sandbox.unsandboxed_warning(rows)}")

    def cells(marks):
        return [f"{marks[c]:g}" if marks.get(c) is not None else "" for c in columns]

    records = []
    if system == "canvas":
        header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
        header += [titles[c] for c in columns]
        records.append(
            ["Points Possible", "", "", "", ""] + [f"{maxima[c]:g}" for c in columns]
        )
        for learner, marks in sorted(by_learner.items()):
            place = who[learner]
            if place.source == "canvas":
                first = [place.name, learner, "", "", ""]
            else:
                first = [learner, "", "", learner, ""]
            records.append(first + cells(marks))
    else:
        header = ["username"] + [titles[c] for c in columns] + ["Notes"]
        for learner, marks in sorted(by_learner.items()):
            records.append([learner] + cells(marks) + [safe.join_notes(notes[learner])])
    return safe.write_table(path, header, records)


def conflicts_table(rows, path: Path) -> Path:
    """Every learner and lesson with more than one graded submission."""
    records = [
        [
            learner,
            lesson,
            len(group),
            ", ".join(str(r.file) for r in group),
            ", ".join(f"{r.total:g}" for r in group),
        ]
        for (learner, lesson), group in sorted(duplicates(rows).items())
    ]
    return safe.write_table(
        path, ["learner", "notebook", "submissions", "files", "scores"], records
    )


def gradescope_results(row) -> dict:
    """Gradescope's autograder ``results.json`` for one submission (plain text)."""
    tests = [
        {
            "name": str(gid),
            "score": earned,
            "max_score": most,
            "output": _safe(str(row.messages.get(gid, ""))),
            "output_format": "text",
        }
        for gid, (earned, most) in row.tests.items()
    ]
    output = "; ".join(filter(None, [row.error, safe.join_notes(row.notes)]))
    return {
        "score": row.total,
        "tests": tests,
        "output": output,
        "output_format": "text",
    }
