"""What the grader writes, against a learner who attacks it (issue 27, items 3-5).

A learner controls everything in a submission: its metadata, its file and
folder names (what the LMS archive unpacks to), the quiz's answers file, the
text its code prints and raises.  None of it may

* choose whose gradebook row a score lands in (identity comes from where the
  LMS put the file; two submissions with one id are both kept and flagged);
* collide with another submission's output file, or run as script in a page
  the instructor opens, or as a formula in a spreadsheet the instructor opens;
* score quiz points its recorded choices do not earn, or stop the class's
  report and gradebooks.

Each attack was written first and seen to succeed against the grader at
3fd9a5f.  The unit tests build ``Row`` objects; one end-to-end run grades a
small class of lesson 00 and quiz submissions.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from argparse import Namespace
from html.parser import HTMLParser

import nbformat
import pytest

from helpers import quiz
from tools import grade
from tools.grading import report, safe, worker

from .conftest import ROOT, run_grader

L00 = "00_setup_and_conventions"
QUIZ = "06_quiz"
FORMULAS = {  # folder names, so no "/" in them
    '=HYPERLINK(CONCAT("http:",A1),"click")',
    "+cmd|' -C calc'!A0",
    "@SUM(1+1)*cmd|' -C calc'!A0",
    "-2+3+cmd|' -C calc'!A0",
    "\t=1+1",
    "\r=1+1",
}
SCRIPT = "<img src=x onerror=alert(1)>"


def _row(file, total=2.0, notebook=L00, **fields):
    row = grade.Row(file=str(file), notebook=notebook)
    row.tests = {"batch_stats": [total, 2.0]}
    for key, value in fields.items():
        setattr(row, key, value)
    return row


def _table(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _outputs(tmp_path, *formats, feedback=True, report_dir=True, shard=None):
    return Namespace(
        out=tmp_path / "grades.csv",
        feedback=(tmp_path / "feedback") if feedback else None,
        report=(tmp_path / "report") if report_dir else None,
        format=list(formats),
        quiet=True,
        shard=shard,
    )


# --------------------------------------------------------------------------
# 3. who is who
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        (f"class/alice/{L00}.ipynb", "alice"),
        (f"class/{L00}_alice.ipynb", "alice"),
        ("class/00_alice.ipynb", "alice"),
        # Canvas's "Download submissions": <login>_<user id>_<submission id>_<name>
        (f"dl/lovelaceada_12345_67890_{L00}.ipynb", "12345"),
        (f"dl/lovelaceada_LATE_12345_67891_{L00}-1.ipynb", "12345"),
        (  # Canvas's ids are ASCII digits: Arabic-Indic ones are a file name
            f"dl/lovelaceada_\u0661\u0662\u0663_67890_{L00}.ipynb",
            "lovelaceada_\u0661\u0662\u0663_67890",
        ),
        # Moodle's: one folder per participant
        (
            f"dl/Ada Lovelace_4321_assignsubmission_file_/{L00}.ipynb",
            "Participant 4321",
        ),
        (
            "dl/Ada Lovelace_4321_assignsubmission_file_/my work.ipynb",
            "Participant 4321",
        ),
        (  # a folder of the learner's own inside Moodle's does not count
            "dl/Ada Lovelace_4321_assignsubmission_file_/"
            f"Bob_99_assignsubmission_file_/{L00}.ipynb",
            "Participant 4321",
        ),
    ],
)
def test_the_learner_is_who_the_lms_says(path, expected):
    # metadata and the answers file claim someone else: they count for nothing
    row = _row(path, learner="alice" if expected != "alice" else "mallory")
    assert report.learner_id(row) == expected


def test_a_claimed_learner_does_not_replace_another_learners_grade(tmp_path):
    """Attack: an untouched copy whose metadata says ``alice``.  At 3fd9a5f it
    took alice's row in the Canvas and Moodle gradebooks (last row wins): her
    honest 2 became the attacker's 0 and the attacker vanished."""
    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb", 2.0),
        _row(tmp_path / "mallory" / f"{L00}.ipynb", 0.0, learner="alice"),
    ]
    args = _outputs(tmp_path, "canvas", "moodle", feedback=False, report_dir=False)
    grade.write_outputs(rows, args)
    canvas = _table(tmp_path / "grades-canvas.csv")
    assert {r[3]: r[5] for r in canvas[2:]} == {"alice": "2", "mallory": "0"}
    moodle = _table(tmp_path / "grades-moodle.csv")
    assert {r[0]: r[1] for r in moodle[1:]} == {"alice": "2", "mallory": "0"}
    table = {r[0]: r for r in _table(tmp_path / "grades.csv")[1:]}
    assert table[rows[1].file][1] == "mallory"


def test_a_claim_that_disagrees_with_the_place_is_noted(tmp_path):
    """The grader's worker reports the notebook's (or answers file's) claimed
    learner; the row keeps the place's id and says who the file claims."""
    result = tmp_path / "result.json"
    result.write_text(
        json.dumps(
            {"notebook": L00, "tests": {"batch_stats": [0, 2]}, "learner": "alice"}
        )
    )
    path = tmp_path / "mallory" / f"{L00}.ipynb"
    job = grade.Job(0, path, grade.Row(file=str(path)), tmp_path / "w", result, 0.0)
    row = grade._finish(job)
    assert report.learner_id(row) == "mallory"
    assert any("alice" in note and "mallory" in note for note in row.notes), row.notes


def test_two_submissions_with_one_id_are_both_kept_and_flagged(tmp_path):
    """Attack: a second file for alice's lesson (another folder, the flat
    layout).  At 3fd9a5f the last row silently replaced the other in both
    gradebooks."""
    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb", 2.0),
        _row(tmp_path / f"{L00}_alice.ipynb", 0.0),
        _row(tmp_path / "bob" / f"{L00}.ipynb", 1.0),
    ]
    args = _outputs(tmp_path, "canvas", "moodle", feedback=False)
    grade.write_outputs(rows, args)
    canvas = _table(tmp_path / "grades-canvas.csv")
    cells = {r[3]: r[5] for r in canvas[2:]}
    assert cells == {"alice": "", "bob": "1"}  # no score chosen for alice
    assert "Notes" not in canvas[0]  # Canvas would create an assignment of it
    conflicts = _table(tmp_path / "grades-conflicts.csv")
    assert [r[:3] for r in conflicts[1:]] == [["alice", L00, "2"]]
    assert f"{L00}_alice.ipynb" in conflicts[1][3]
    moodle = _table(tmp_path / "grades-moodle.csv")
    assert moodle[0][-1] == "Notes"
    alice = next(r for r in moodle[1:] if r[0] == "alice")
    assert alice[1] == "" and "2 submissions for lesson 00" in alice[-1]
    assert "resolve by hand" in alice[-1] and "2, 0" in alice[-1]
    table = _table(tmp_path / "grades.csv")
    notes = {r[0]: r[-1] for r in table[1:]}
    for row in rows[:2]:
        assert "2 submissions for lesson 00" in notes[row.file]
    assert "submissions" not in notes[rows[2].file]
    page = (tmp_path / "report" / "report.html").read_text()
    assert "2 submissions for lesson 00" in page and f"{L00}_alice.ipynb" in page


def test_shards_merged_flag_a_learner_split_across_them(tmp_path):
    """Attack: two submissions for alice that land in different shards.  Each
    shard alone has one; ``grade.py merge`` must still flag them (at 3fd9a5f
    the merged gradebooks kept the last), read the neutralised cells back as
    they were, and index the pages the shards wrote into one folder."""
    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb", 2.0),
        _row(tmp_path / f"{L00}_alice.ipynb", 0.0),
        _row(tmp_path / "=1+2" / f"{L00}.ipynb", 1.0, error="@SUM(A1)"),
    ]
    shards = []
    for k, part in enumerate((rows[:1], rows[1:]), 1):
        args = _outputs(tmp_path, report_dir=False, shard=(k, 2))
        args.out = tmp_path / f"shard{k}.csv"
        grade.write_outputs(part, args)
        shards.append(str(args.out))
    merged = tmp_path / "merged.csv"
    assert (
        grade.main(
            ["merge", "--out", str(merged), "--quiet", "--feedback"]
            + [str(tmp_path / "feedback"), "--format", "canvas", *shards]
        )
        == 0
    )
    canvas = {r[3]: r[5] for r in _table(tmp_path / "merged-canvas.csv")[2:]}
    assert canvas == {"alice": "", "'=1+2": "1"}  # flagged; a formula neutralised
    table = {r["file"]: r for r in csv.DictReader(open(merged, newline=""))}
    assert "2 submissions for lesson 00" in table[rows[0].file]["notes"]
    again = {r.file: r for r in grade.read_csv(merged)}
    assert again[rows[2].file].error == "@SUM(A1)"
    assert report.learner_id(again[rows[2].file]) == "=1+2"
    index = list(csv.DictReader(open(tmp_path / "feedback" / "index.csv")))
    assert {r["file"] for r in index if r["page"]} == {r.file for r in rows}


# --------------------------------------------------------------------------
# 4. safe outputs
# --------------------------------------------------------------------------


def test_output_files_are_unique_per_submission(tmp_path):
    """Attack: the layout the README recommends (``alice/<lesson>.ipynb``,
    ``bob/<lesson>.ipynb``) and a file named like the grader's own
    de-duplicated name (``0001-<lesson>.ipynb``).  At 3fd9a5f Gradescope's
    JSON was one file for all and a feedback page overwrote another's."""
    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb", 2.0),
        _row(tmp_path / "bob" / f"{L00}.ipynb", 0.0),
        _row(tmp_path / "eve" / f"0001-{L00}.ipynb", 1.0),
        _row(tmp_path / f"0001-{L00}.ipynb", 0.0),
    ]
    for k, part in enumerate((rows[:2], rows[2:]), 1):  # two shards, one folder
        args = _outputs(tmp_path, "gradescope", report_dir=False, shard=(k, 2))
        args.out = tmp_path / f"shard{k}.csv"
        grade.write_outputs(part, args)
    pages = sorted((tmp_path / "feedback").glob("*.html"))
    assert len(pages) == len(rows), [p.name for p in pages]
    results = sorted((tmp_path / "gradescope").glob("*.json"))
    assert len(results) == len(rows), [p.name for p in results]
    scores = sorted(json.loads(p.read_text())["score"] for p in results)
    assert scores == sorted(r.total for r in rows)  # none overwritten
    # the index says which page is whose, shard by shard
    indexed = {}
    for index in (tmp_path / "feedback").glob("index*.csv"):
        for record in csv.DictReader(open(index, newline="")):
            indexed[record["file"]] = record["page"]
    assert set(indexed) == {r.file for r in rows}
    assert sorted(indexed.values()) == [p.name for p in pages]
    for row in rows:  # the page is the submission's own
        page = (tmp_path / "feedback" / indexed[row.file]).read_text()
        assert f"{row.total:g} / 2 points" in page


class _Elements(HTMLParser):
    """Every element and attribute an HTML page really has (not its text)."""

    def __init__(self):
        super().__init__()
        self.bad: list = []
        self.script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on"):
                self.bad.append((tag, name, value))
            if name in ("href", "src", "action") and "javascript:" in (value or ""):
                self.bad.append((tag, name, value))
        if tag in ("img", "iframe", "object", "embed", "svg", "math", "form"):
            if not (tag == "img" and dict(attrs).get("src", "").startswith("data:")):
                self.bad.append((tag, attrs))
        self.script = tag == "script"

    def handle_data(self, data):
        if self.script and "alert" in data:
            self.bad.append(("script", data[:80]))

    def handle_endtag(self, tag):
        self.script = False


def _live(page: str) -> list:
    parser = _Elements()
    parser.feed(page)
    return parser.bad


def test_learner_strings_never_reach_html_as_markup(tmp_path):
    """Attack: ``<img src=x onerror=...>`` in a file name (and a learner id from
    its folder), an error, a note, a check's message that closes its code fence
    first, a markdown link to ``javascript:``, a transcript's output.  At
    3fd9a5f the file name became a live element of the feedback page."""
    folder = tmp_path / SCRIPT
    row = _row(
        folder / f"00_{SCRIPT}.ipynb",
        0.0,
        error=f"ValueError: {SCRIPT}",
        notes=[f"[click](javascript:alert(2)) {SCRIPT}"],
        messages={"batch_stats": f"```\n{SCRIPT}\n```\n[x](javascript:alert(3))"},
        transcript=[
            {"source": f"print('{SCRIPT}')", "output": "<script>alert(4)</script>"},
            {"test": "batch_stats"},
        ],
        mistakes={"batch_stats": [SCRIPT]},
        quiz={
            "gen-applications": {
                "lesson": "general",
                "answered": True,
                "correct": False,
                "choice": [0],
                "attempts": 1,
                "points": 0.0,
            }
        },
    )
    row.notebook = f"00_{SCRIPT}"  # a notebook name is the learner's too
    bank = quiz.load_bank()
    page = report.feedback_html(row, bank)
    assert _live(page) == []
    assert SCRIPT not in page
    report_page, _ = report.class_report([row], tmp_path / "report", bank)
    assert _live(report_page.read_text()) == []
    row.notebook = L00
    args = _outputs(tmp_path, "canvas")
    written = grade.write_outputs([row], args)
    for path in written:
        if path.suffix == ".html":
            assert _live(path.read_text()) == [], path


def test_no_csv_cell_can_be_a_formula(tmp_path, monkeypatch):
    """Attack: learner ids (from folder names), errors, notes and mistakes that
    a spreadsheet runs as formulas (OWASP: cells led by = + - @ tab CR).  At
    3fd9a5f they went into grades.csv and the gradebooks as they were."""
    # the relative path below is the class's, whatever folder pytest runs in
    # (relative and absolute paths mixed resolve against the current folder)
    monkeypatch.chdir(tmp_path)
    rows = []
    for n, formula in enumerate(sorted(FORMULAS)):
        rows.append(
            _row(
                tmp_path / formula / f"{L00}.ipynb",
                float(n % 3),
                error=formula,
                notes=[formula, "plain"],
                mistakes={"batch_stats": [formula]},
            )
        )
    rows.append(_row(f"{sorted(FORMULAS)[0]}/{L00}.ipynb", 1.0))  # relative path
    args = _outputs(tmp_path, "canvas", "moodle")
    written = grade.write_outputs(rows, args)
    tables = [p for p in written if p.suffix == ".csv"]
    tables += list((tmp_path / "feedback").glob("*.csv"))
    for table in tables:
        for record in _table(table):
            for cell in record:
                assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (table, cell)
    assert len({p.name for p in tables}) >= 5, tables  # grades, 2 books, report, index
    # grade.py merge reads the CSV back as it was
    again = grade.read_csv(args.out)
    assert [r.file for r in again] == [r.file for r in rows]
    assert [r.error for r in again] == [r.error for r in rows]
    assert [r.notes[:2] for r in again] == [r.notes[:2] for r in rows]
    assert [r.mistakes for r in again] == [r.mistakes for r in rows]
    ids = [report.learner_id(r) for r in again]
    assert ids == [report.learner_id(r) for r in rows]
    assert set(ids[:-1]) == FORMULAS


def test_one_bad_row_does_not_stop_the_others_outputs(tmp_path, monkeypatch):
    """A page that cannot be written costs only that page: the others, the
    report and the gradebooks are written, and the index says why."""
    rows = [_row(tmp_path / n / f"{L00}.ipynb", 2.0) for n in ("ada", "bob", "cy")]
    real = report.feedback_html

    def flaky(row, bank=None):
        if "bob" in row.file:
            raise RuntimeError("renderer broke")
        return real(row, bank)

    monkeypatch.setattr(report, "feedback_html", flaky)
    args = _outputs(tmp_path, "canvas", "moodle", "gradescope")
    grade.write_outputs(rows, args)
    assert len(list((tmp_path / "feedback").glob("*.html"))) >= 2
    index = list(csv.DictReader(open(tmp_path / "feedback" / "index.csv")))
    bob = next(r for r in index if "bob" in r["file"])
    assert "renderer broke" in bob["status"]
    assert (tmp_path / "report" / "report.html").is_file()
    assert len(_table(tmp_path / "grades-canvas.csv")) == 5


# --------------------------------------------------------------------------
# 5. the quiz, scored from its choices
# --------------------------------------------------------------------------


def _bank():
    return {q.id: q for q in quiz.load_bank()}


def _answers_file(path, records, learner="", **extra):
    """A hand-made answers file with a valid checksum (the salt is public)."""
    data = {
        "learner": learner,
        "saved": "2026-12-06T00:00:00+00:00",
        "answers": records,
        "checksum": quiz._checksum(records),
        **extra,
    }
    path.write_text(json.dumps(data))
    return path


def _wrong(q):
    return [next(i for i in range(len(q.options)) if i not in q.correct)]


def test_a_lying_answers_file_scores_only_what_its_choices_earn(tmp_path):
    """Attack: every choice wrong, every flag saying right.  At 3fd9a5f the
    grader trusted the flags: 42/42."""
    records = {
        qid: {
            "choice": _wrong(q),
            "first_choice": _wrong(q),
            "correct": True,
            "first_correct": True,
            "right_at": 1,
            "attempts": 1,
        }
        for qid, q in _bank().items()
    }
    path = _answers_file(tmp_path / "lie.json", records)
    for policy in ("first", "weighted", "last"):
        fraction, _note, details, _ = worker._judge_answers(path, policy)
        assert fraction == 0.0, policy
        assert not any(d["correct"] or d["first_correct"] for d in details.values())


def test_honest_answers_score_by_each_policy(tmp_path):
    bank = _bank()
    ids = sorted(bank)
    right = {qid: sorted(bank[qid].correct) for qid in ids}
    records = {}
    for qid in ids[:10]:  # right at once
        records[qid] = {"choice": right[qid], "first_choice": right[qid], "attempts": 1}
    for qid in ids[10:14]:  # right at the third attempt
        records[qid] = {
            "choice": right[qid],
            "first_choice": _wrong(bank[qid]),
            "attempts": 3,
            "right_at": 3,
        }
    for qid in ids[14:16]:  # claims right at once, but the first choice was wrong
        records[qid] = {
            "choice": right[qid],
            "first_choice": _wrong(bank[qid]),
            "attempts": 4,
            "right_at": 1,
            "first_correct": True,
        }
    for qid in ids[16:18]:  # wrong to the end
        records[qid] = {
            "choice": _wrong(bank[qid]),
            "first_choice": _wrong(bank[qid]),
            "attempts": 2,
        }
    path = _answers_file(tmp_path / "a.json", records)
    n = len(ids)
    first, *_ = worker._judge_answers(path, "first")
    assert first == pytest.approx(10 / n)
    weighted, *_ = worker._judge_answers(path, "weighted")
    assert weighted == pytest.approx((10 + 4 / 3 + 2 / 2) / n)
    last, *_ = worker._judge_answers(path, "last")
    assert last == pytest.approx(16 / n)


def _report_survives(tmp_path, details, note=""):
    row = _row(tmp_path / "q" / f"{QUIZ}.ipynb", 0.0, notebook=QUIZ, quiz=details)
    row.tests = {"quiz": [0.0, 42.0]}
    row.notes = [note] if note else []
    bank = quiz.load_bank()
    page, table = report.class_report([row], tmp_path / "report", bank)
    assert page.is_file() and table.is_file()
    assert _live(report.feedback_html(row, bank)) == []
    args = _outputs(tmp_path, "canvas", "moodle", "gradescope")
    grade.write_outputs([row], args)
    return row


@pytest.mark.parametrize(
    "choice",
    [
        [999],
        [-1],
        ["0"],
        [True],
        [0, 0],
        [0.0],
        "0",
        None,
        {"0": 1},
        list(range(10**4)),
    ],
)
def test_an_invalid_choice_costs_its_question_not_the_class(tmp_path, choice):
    """Attack: ``choice: [999]``.  At 3fd9a5f the class report raised
    IndexError, grade.py exited 1 and nobody got a report or gradebook."""
    bank = _bank()
    qid = "gen-applications"
    records = {qid: {"choice": choice, "first_choice": choice, "attempts": 1}}
    other = sorted(bank)[1]
    records[other] = {
        "choice": sorted(bank[other].correct),
        "first_choice": sorted(bank[other].correct),
        "attempts": 1,
        "correct": True,
        "first_correct": True,
    }
    path = _answers_file(tmp_path / "bad.json", records)
    fraction, note, details, _ = worker._judge_answers(path, "first")
    assert fraction == pytest.approx(1 / len(bank))  # the valid answer counts
    assert qid in note and "invalid" in note, note
    assert details[qid]["points"] == 0 and not details[qid]["correct"]
    assert all(
        isinstance(i, int) and 0 <= i < len(bank[k].options)
        for k, d in details.items()
        for i in d["choice"]
    )
    _report_survives(tmp_path, details, note)
    # the worst case at 3fd9a5f: the recorded choice itself reaches the report
    details[qid]["choice"] = [999]
    details[qid]["answered"] = True
    _report_survives(tmp_path, details, note)


def test_two_answers_to_a_single_answer_question_score_nothing(tmp_path):
    bank = _bank()
    qid = next(k for k, q in bank.items() if not q.multiple)
    both = sorted(set(bank[qid].correct) | set(_wrong(bank[qid])))
    path = _answers_file(
        tmp_path / "a.json", {qid: {"choice": both, "first_choice": both}}
    )
    fraction, note, details, _ = worker._judge_answers(path, "first")
    assert fraction == 0.0 and qid in note


def _padded(path, size):
    records = {
        qid: {"choice": sorted(q.correct), "first_choice": sorted(q.correct)}
        for qid, q in _bank().items()
    }
    return _answers_file(path, records, pad="x" * size)


@pytest.mark.parametrize(
    "kind", ["not json", "answers list", "top list", "huge", "duplicate ids", "deep"]
)
def test_a_malformed_answers_file_gives_a_note_and_never_stops_the_class(
    tmp_path, kind
):
    path = tmp_path / "a.json"
    bank = _bank()
    qid = sorted(bank)[0]
    good = {
        "choice": sorted(bank[qid].correct),
        "first_choice": sorted(bank[qid].correct),
    }
    if kind == "not json":
        path.write_text("{this is not json")
    elif kind == "answers list":
        path.write_text(json.dumps({"answers": [], "checksum": quiz._checksum([])}))
    elif kind == "top list":
        path.write_text("[1, 2, 3]")
    elif kind == "huge":  # 50 MB of padding around answers that are all right
        _padded(path, 50 * 2**20)
    elif kind == "duplicate ids":
        text = json.dumps({qid: good})[1:-1]
        answers = "{" + text + ", " + text + "}"
        checksum = quiz._checksum({qid: good})
        path.write_text(f'{{"answers": {answers}, "checksum": "{checksum}"}}')
    elif kind == "deep":
        path.write_text('{"answers": ' + "[" * 100000 + "]" * 100000 + "}")
    fraction, note, details, learner = worker._judge_answers(path, "first")
    assert fraction == 0.0 and "answers file" in note, (kind, note)
    assert isinstance(learner, str)
    _report_survives(tmp_path, details, note)


def test_unknown_question_ids_are_ignored_and_noted(tmp_path):
    bank = _bank()
    qid = sorted(bank)[0]
    good = {
        "choice": sorted(bank[qid].correct),
        "first_choice": sorted(bank[qid].correct),
    }
    path = _answers_file(tmp_path / "a.json", {qid: good, "made-up": good})
    fraction, note, details, _ = worker._judge_answers(path, "first")
    assert fraction == pytest.approx(1 / len(bank))
    assert "made-up" in note and "made-up" not in details


# --------------------------------------------------------------------------
# one class, end to end
# --------------------------------------------------------------------------


def _lesson00(body: str | None, learner: str = ""):
    """Lesson 00 cut to its setup, exercise and graded cells (seconds to run)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{L00}.ipynb", 4)
    keep = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        grading = cell.metadata.get("nbgrader", {})
        if "setup" in tags or grading.get("grade") or grading.get("solution"):
            if body is not None and "raise NotImplementedError" in cell.source:
                cell.source = body
            keep.append(cell)
    nb.cells = keep
    if learner:
        nb.metadata.setdefault("bncourse", {})["learner"] = learner
    return nb


GOOD = (
    "def batch_stats(x):\n    if len(x) < 2:\n        raise ValueError('N < 2')\n"
    "    return x.mean(0), x.var(0), x.var(0, ddof=1)\n"
)
NASTY = (
    "def batch_stats(x):\n"
    f"    print({SCRIPT!r} + '```')\n"
    f"    raise ValueError({SCRIPT!r})\n"
    f"raise RuntimeError({SCRIPT!r})\n"
)


@pytest.mark.slow
def test_a_class_of_attacks_end_to_end(tmp_path):
    klass = tmp_path / "class"
    paths = {}

    def put(relative, nb):
        path = klass / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        paths[relative] = path
        return path

    put(f"alice/{L00}.ipynb", _lesson00(GOOD))
    put(f"mallory/{L00}.ipynb", _lesson00(None, learner="alice"))
    put(f"bob/{L00}.ipynb", _lesson00(GOOD))
    put(f"{L00}_bob.ipynb", _lesson00(None))
    put(f"eve/00_{SCRIPT}.ipynb", _lesson00(NASTY))
    put(f'=HYPERLINK("http:x")/{L00}.ipynb', _lesson00(GOOD))
    put(f"trudy/carol/{L00}.ipynb", _lesson00(GOOD))  # a folder in an archive
    bank = _bank()
    # a quiz in the flat part of the class, and an answers file there that
    # names no submission (every answer right): never erin's (A07)
    erin = klass / f"{QUIZ}_erin.ipynb"
    shutil.copyfile(ROOT / "notebooks" / f"{QUIZ}.ipynb", erin)
    paths["erin"] = erin
    right = {
        qid: {"choice": sorted(q.correct), "first_choice": sorted(q.correct)}
        for qid, q in bank.items()
    }
    _answers_file(klass / quiz.ANSWERS_FILE, right)
    for name, choice in (("dan", [999]), ("liar", None)):
        path = klass / name / f"{QUIZ}.ipynb"
        path.parent.mkdir(parents=True)
        shutil.copyfile(ROOT / "notebooks" / f"{QUIZ}.ipynb", path)
        records = {
            qid: {
                "choice": choice or _wrong(q),
                "first_choice": choice or _wrong(q),
                "correct": True,
                "first_correct": True,
                "attempts": 1,
            }
            for qid, q in bank.items()
        }
        _answers_file(path.with_name(f"{QUIZ}.answers.json"), records, learner="alice")
        paths[name] = path
    out = tmp_path / "out" / "grades.csv"
    out.parent.mkdir()
    rows = run_grader(
        out,
        list(paths.values()),
        "--cell-timeout",
        "60",
        "--feedback",
        str(tmp_path / "feedback"),
        "--report",
        str(tmp_path / "report"),
        "--format",
        "canvas",
        "--format",
        "moodle",
        "--format",
        "gradescope",
    )
    assert len(rows) == len(paths)
    by = {name: rows[str(path)] for name, path in paths.items()}
    assert by[f"alice/{L00}.ipynb"]["total"] == "2"
    assert by[f"mallory/{L00}.ipynb"]["learner"] == "mallory"
    assert "alice" in by[f"mallory/{L00}.ipynb"]["notes"]
    assert by["liar"]["total"] == "0" and by["dan"]["total"] == "0"
    assert "invalid" in by["dan"]["notes"]
    assert by["erin"]["total"] == "0" and "names no submission" in by["erin"]["notes"]
    nested = by[f"trudy/carol/{L00}.ipynb"]
    assert nested["learner"] == "trudy" and "graded as 'trudy'" in nested["notes"]
    canvas = {r[3]: r[5:] for r in _table(out.with_name("grades-canvas.csv"))[2:]}
    assert canvas["alice"][0] == "2" and canvas["mallory"][0] == "0"
    assert canvas['\'=HYPERLINK("http:x")'][0] == "2"  # neutralised, not lost
    assert canvas["bob"][0] == ""  # two submissions: flagged, not chosen
    moodle = _table(out.with_name("grades-moodle.csv"))
    assert any("2 submissions for lesson 00" in r[-1] for r in moodle if r[0] == "bob")
    graded = [r for r in rows.values() if r["total"] != ""]
    assert len(list((tmp_path / "feedback").glob("*.html"))) >= len(graded)
    assert len(list((out.parent / "gradescope").glob("*.json"))) == len(paths)
    html_pages = list((tmp_path / "feedback").glob("*.html"))
    html_pages.append(tmp_path / "report" / "report.html")
    for page in html_pages:
        text = page.read_text()
        assert _live(text) == [] and SCRIPT not in text, page
    csvs = [out, out.with_name("grades-canvas.csv"), out.with_name("grades-moodle.csv")]
    csvs += [tmp_path / "report" / "report.csv", *(tmp_path / "feedback").glob("*.csv")]
    for table in csvs:
        for record in _table(table):
            assert all(c[:1] not in ("=", "+", "-", "@", "\t", "\r") for c in record)


def test_an_unsandboxed_run_is_said_in_the_report_and_the_gradebooks(tmp_path):
    from helpers import course
    from tools.grading import sandbox

    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb"),
        _row(tmp_path / "bob" / f"{L00}.ipynb"),
    ]
    rows[1].notes.append(sandbox.UNSANDBOXED_NOTE)
    rows[1].unsandboxed = True  # the status; the note only says it
    page, table = report.class_report(rows, tmp_path / "report")
    assert "1 of 2 submission(s) were graded unsandboxed" in page.read_text()
    assert "unsandboxed" in table.read_text()
    moodle = report.gradebook(rows, tmp_path / "m.csv", "moodle", course.LESSONS)
    lines = moodle.read_text().splitlines()
    assert "graded unsandboxed" in next(ln for ln in lines if ln.startswith("bob"))
    assert "unsandboxed" not in next(ln for ln in lines if ln.startswith("alice"))


def test_ids_that_only_look_alike_are_flagged_as_one_learner(tmp_path):
    from helpers import course

    # case, a zero-width space, a full-width a, a Cyrillic a, a Hangul filler
    # (the last two were not grouped at 2c3fb8b: three rows rendered "alice")
    alike = ["alice", "Alice\u200b", "\uff41lice", "\u0430lice", "alice\u3164"]
    rows = [_row(tmp_path / name / f"{L00}.ipynb", total=2.0) for name in alike]
    rows.append(_row(tmp_path / "bob" / f"{L00}.ipynb", total=1.0))
    found = report.duplicates(rows)
    assert len(found) == 1 and len(next(iter(found.values()))) == len(alike)
    moodle = report.gradebook(rows, tmp_path / "m.csv", "moodle", course.LESSONS)
    table = {r[0]: r for r in _table(moodle)[1:]}
    assert table["bob"][1] == "1"
    # the one plain id keeps its mark; every look-alike's is withheld; all flagged
    assert table["alice"][1] == "2" and "resolve by hand" in table["alice"][-1]
    for name in alike[1:]:
        assert table[name][1] == "" and "resolve by hand" in table[name][-1]
    # the same plain id twice, or two that differ in case: nothing is kept
    twice = [_row(tmp_path / d / "x" / f"{L00}.ipynb") for d in ("a", "b")]
    cased = [_row(tmp_path / n / f"{L00}.ipynb") for n in ("carol", "Carol")]
    for group in (twice, cased):
        assert report.keeper(next(iter(report.duplicates(group).values()))) is None


def _marks(rows, tmp_path):
    """The Moodle gradebook's first lesson cell, by username."""
    from helpers import course

    moodle = report.gradebook(rows, tmp_path / "m.csv", "moodle", course.LESSONS)
    return {r[0]: r[1] for r in _table(moodle)[1:]}


def test_an_honest_accented_or_spaced_name_keeps_its_mark(tmp_path):
    """Attack (A04): ``Jose`` beside an honest ``José``, ``AnnaLee`` beside
    ``Anna Lee``.  At 2c3fb8b the honest ids were not "plain" (canonical
    dropped accents and spaces), so the impostor kept its mark and the honest
    one's was withheld.  They are different ids that a reader tells apart: each
    keeps its own.  A decomposed ``José`` does look like the precomposed one:
    the precomposed (plain) one keeps its mark."""
    klass = tmp_path / "class"
    honest = ["Jos\u00e9", "Anna Lee", "\u0418\u0432\u0430\u043d", "\u6f22\u3042"]
    rows = [_row(klass / name / f"{L00}.ipynb", total=2.0) for name in honest]
    rows += [_row(klass / name / f"{L00}.ipynb", 0.0) for name in ("Jose", "AnnaLee")]
    assert report.duplicates(rows) == {}
    marks = _marks(rows, tmp_path)
    assert {name: marks[name] for name in honest} == dict.fromkeys(honest, "2")
    assert marks["Jose"] == marks["AnnaLee"] == "0"
    decomposed = [
        _row(klass / "Jos\u00e9" / f"{L00}.ipynb", total=2.0),
        _row(klass / "Jose\u0301" / f"{L00}.ipynb", total=0.0),
    ]
    (group,) = report.duplicates(decomposed).values()
    assert report.keeper(group) is decomposed[0]
    marks = _marks(decomposed, tmp_path)
    assert marks["Jos\u00e9"] == "2" and marks["Jose\u0301"] == ""


@pytest.mark.parametrize(
    "name, plain",
    [
        ("alice", True),
        ("Jos\u00e9", True),
        ("Anna Lee", True),
        ("Participant 4321", True),
        ("\u0418\u0432\u0430\u043d", True),  # Cyrillic alone
        ("\u5c71\u7530\u305f\u308d\u3046", True),  # Han with Hiragana
        ("Jose\u0301", False),  # decomposed
        ("\u0430lice", False),  # Cyrillic a among Latin letters
        ("alice\u3164", False),
        ("ali\u200bce", False),
        ("\uff41lice", False),
        ("Anna\u00a0Lee", False),
        ("Anna  Lee", False),
        (" alice", False),
    ],
)
def test_a_plain_id_is_one_a_reader_sees_as_it_is(name, plain):
    from tools.grading import identity

    assert identity.plain(name) is plain


def test_a_folder_inside_a_learners_folder_never_names_the_learner(tmp_path):
    """Attack (A06): mallory's archive unpacks to ``mallory/bob/<lesson>``.
    At 2c3fb8b the innermost folder was the id: it was graded as bob and bob's
    honest mark was withheld.  The id is the first folder below the class
    folder, the LMS's folder for Moodle, the file name for Canvas."""
    from tools.grading import identity

    klass = tmp_path / "class"
    rows = [
        _row(klass / "bob" / f"{L00}.ipynb", 2.0),
        _row(klass / "mallory" / "bob" / f"{L00}.ipynb", 0.0),
        _row(klass / "alice" / f"{L00}.ipynb", 1.0),
    ]
    args = _outputs(tmp_path, "canvas", "moodle", feedback=False, report_dir=False)
    grade.write_outputs(rows, args)
    moodle = {r[0]: r[1] for r in _table(tmp_path / "grades-moodle.csv")[1:]}
    assert moodle == {"bob": "2", "mallory": "0", "alice": "1"}
    table = {r[0]: r for r in _table(tmp_path / "grades.csv")[1:]}
    assert table[rows[1].file][1] == "mallory"
    assert "submissions" not in table[rows[0].file][-1]
    top = str(klass)
    note = identity.nested_note(rows[1].file, top)
    assert "'bob'" in note and "graded as 'mallory'" in note
    assert identity.nested_note(rows[0].file, top) == ""
    for inner, expected in (  # an LMS's name inside a learner's folder: no id
        (f"Bob_99_assignsubmission_file_/{L00}.ipynb", "mallory"),
        (f"bob_12345_678_{L00}.ipynb", "mallory"),
        (
            f"Ada_4321_assignsubmission_file_/Bob_99_assignsubmission_file_/{L00}.ipynb",
            "Participant 4321",
        ),
    ):
        path = klass / ("" if inner.startswith("Ada") else "mallory") / inner
        assert identity.identify(str(path), L00, top).id == expected, inner


def test_the_class_folder_is_the_one_all_submissions_share(tmp_path, monkeypatch):
    """The level ids are read at: the folder every submission given lies below,
    the same for relative, absolute and mixed paths (shards are given the same
    list, so they agree)."""
    from tools.grading import identity

    monkeypatch.chdir(tmp_path)
    files = ["class/alice/x.ipynb", "class/mallory/bob/y.ipynb", "class/00_eve.ipynb"]
    mixed = [str(tmp_path / files[0]), *files[1:]]
    absolute = [str(tmp_path / f) for f in files]
    for given in (files, mixed, absolute):
        top = identity.class_folder(given)
        ids = [identity.identify(f, L00, top).id for f in given]
        assert ids == ["alice", "mallory", "eve"], (given, top)
    assert identity.class_folder(["00_a.ipynb", "00_b.ipynb"]) == ""
    assert identity.identify("00_a.ipynb", L00, "").id == "a"


def test_an_answers_file_belongs_only_to_the_submission_it_names(tmp_path):
    """Attack (A07): a stray ``06_quiz.answers.json`` in a flat folder.  At
    2c3fb8b it scored every quiz notebook of that folder that had no answers
    file of its own.  It is a submission's only in a learner's own folder."""
    klass = tmp_path / "class"
    (klass / "dan").mkdir(parents=True)
    quiz_nb = (ROOT / "notebooks" / f"{QUIZ}.ipynb").read_bytes()
    for path in (klass / f"{QUIZ}_erin.ipynb", klass / f"{QUIZ}_fay.ipynb"):
        path.write_bytes(quiz_nb)
    (klass / "dan" / f"{QUIZ}_mine.ipynb").write_bytes(quiz_nb)
    stray = b'{"answers": {}}'
    (klass / quiz.ANSWERS_FILE).write_bytes(stray)
    (klass / f"{QUIZ}_fay.answers.json").write_bytes(b'{"fay": 1}')
    (klass / "dan" / quiz.ANSWERS_FILE).write_bytes(b'{"dan": 1}')
    private = tmp_path / "private"
    private.mkdir()
    copied, jobs = {}, {}
    for index, name in enumerate(
        (f"{QUIZ}_erin.ipynb", f"{QUIZ}_fay.ipynb", f"dan/{QUIZ}_mine.ipynb")
    ):
        jobs[name] = grade._prepare(index, klass / name, private, 0, klass)
        answers = private / f"answers-{index}.json"
        copied[name] = answers.read_bytes() if answers.exists() else None
        shutil.rmtree(jobs[name].workdir)
    assert copied == {
        f"{QUIZ}_erin.ipynb": None,
        f"{QUIZ}_fay.ipynb": b'{"fay": 1}',
        f"dan/{QUIZ}_mine.ipynb": b'{"dan": 1}',
    }
    assert jobs[f"{QUIZ}_erin.ipynb"].unclaimed == quiz.ANSWERS_FILE  # noted


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_graded_and_every_output_written(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    odd = os.path.join(os.fsencode(folder), b"00_x\xff\xfe.ipynb")
    with open(odd, "wb") as f:  # the solution, under a name that is not UTF-8
        f.write((ROOT / "solutions" / f"{L00}.ipynb").read_bytes())
    out = tmp_path / "out"
    rows = run_grader(
        out / "grades.csv",
        [os.fsdecode(odd)],
        "--feedback",
        str(out / "feedback"),
        "--report",
        str(out / "report"),
        "--format",
        "canvas",
        "--format",
        "gradescope",
    )
    (row,) = rows.values()
    assert row["total"] == row["maximum"] and "\\xff" in row["file"]
    assert list((out / "feedback").glob("*.html"))
    assert (out / "report" / "report.html").is_file()
    assert list(out.rglob("*.json")) and (out / "grades-canvas.csv").is_file()


# --------------------------------------------------------------------------
# 6. learner text: one line, no control characters, bounded (GRADER-FINDINGS
#    A03, A15, A18-A21, A24; each seen failing at 2c3fb8b)
# --------------------------------------------------------------------------

SEPARATORS = (",", ";", "\t", "|")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# what a kernel sends: a lone surrogate, a terminal's clear screen, window
# title and clipboard write (OSC 52), a C1 CSI, a bidi override, a forged line
NASTY_TEXT = (
    "a\ud800b\x1b[2J\x1b]0;title\x07\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m"
    "\u202egnp.exe\nlayernorm_forward | WRONG | the check itself failed\r\nend"
)


def test_learner_text_is_one_clean_bounded_line():
    text = safe.learner_text(NASTY_TEXT)
    assert text.isprintable(), repr(text)  # no control, surrogate or newline
    text.encode("utf-8")  # writable: the lone surrogate is gone
    for part in ("\\u001b[2J", "\\u009b31m", "\\u202egnp", "end"):
        assert part in text, (part, text)
    assert "WRONG" in text and text.count("\n") == 0
    lines = safe.learner_text(NASTY_TEXT, lines=True)
    assert lines.splitlines()[1].startswith("layernorm_forward | WRONG")
    assert all(line.isprintable() for line in lines.splitlines())
    assert safe.learner_text(b"bad \xff byte") == "bad \\xff byte"
    capped = safe.learner_text("x" * 10_000, 100)
    assert len(capped) < 200 and capped.startswith("x" * 100), capped
    assert "9900 more" in capped and safe.learner_text(capped, 100) == capped
    # idempotent: records read back and cleaned again stay as they are
    assert safe.learner_text(text) == text
    notes = safe.learner_notes([f"hook {i}\n" for i in range(1000)])
    assert len("; ".join(notes)) < 10_000
    assert notes[-1].startswith("... and ") and "more" in notes[-1], notes[-1]
    assert safe.learner_notes(notes) == notes


def test_no_csv_field_under_any_separator_is_a_formula(tmp_path):
    """Attack (A03): formulas after a ``;`` (or ``,``, tab, ``|``) inside a
    folder name, an error, a note and a mistake.  At 2c3fb8b only a cell's
    first character was neutralised: ``x;=1+2`` was a live formula in a
    spreadsheet that splits on ``;``."""
    hidden = [
        f"x{sep}{pad}{lead}1+2"
        for sep in SEPARATORS
        for lead in "=+-@"
        for pad in ("", " ", '"')
    ]
    hidden += ["x;\r=1", "x;'=1", "x; '=1", "'", "''"]
    rows = []
    for n, text in enumerate(hidden):
        folder = text.replace("\r", "_")  # a folder name: no CR (shown escapes it)
        rows.append(
            _row(
                tmp_path / f"f{n}" / folder / f"{L00}.ipynb",
                float(n % 3),
                error=text,
                notes=[text, "plain"],
                mistakes={"batch_stats": [text]},
            )
        )
    args = _outputs(tmp_path, "canvas", "moodle", "gradescope")
    written = grade.write_outputs(rows, args)
    tables = [p for p in written if p.suffix == ".csv"]
    assert len({p.name for p in tables}) >= 5, tables
    for table in tables:
        raw = table.read_text()
        for sep in SEPARATORS:
            # a spreadsheet that splits on ``sep``: by the CSV rules, and naively
            parsed = csv.reader(io.StringIO(raw, newline=""), delimiter=sep)
            fields = [f for record in parsed for f in record]
            fields += [f for line in raw.splitlines() for f in line.split(sep)]
            for field in fields:
                lead = field.lstrip(' "')[:1]
                assert lead not in TRIGGERS, (table.name, sep, field)
    again = grade.read_csv(args.out)  # grade.py merge reads every value back
    assert [r.error for r in again] == hidden
    for row, text in zip(again, hidden, strict=True):  # notes are joined by "; "
        assert "; ".join(row.notes).startswith(f"{text}; plain"), row.notes
    assert [r.mistakes for r in again] == [{"batch_stats": [h]} for h in hidden]
    assert [r.file for r in again] == [r.file for r in rows]


# Every separator a spreadsheet's import dialog offers (Excel's Text Import
# Wizard, LibreOffice's CSV dialog: comma, semicolon, tab, space, and "other",
# often a pipe) and the other whitespace it may split on.
WHITESPACE = (" ", "\x0b", "\x0c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000")


def test_no_csv_field_under_a_space_or_other_whitespace_is_a_formula(tmp_path):
    """Attack (held-out A02, 4th battery): Excel's and LibreOffice's import
    dialogs split on a space too; a file named `` =2+3`` and a failing cell
    whose first line is ``y =1+1 #`` gave the fields ``=2+3`` and ``=1+1``,
    unprefixed, in every CSV the grader wrote (``safe._FIELDS`` had no space).
    A control character after a separator starts a field as a trigger too."""
    hidden = [
        f"x{sep}{pad}{lead}1+2"
        for sep in WHITESPACE
        for lead in ("=", "+", "-", "@", "\x01", "\x1b")
        for pad in ("", '"')
    ]
    hidden += ["y =1+1 #", " =2+3", "a  @b", "a\xa0'=1", "'", "x '"]
    rows = [
        _row(
            tmp_path / f"f{n}" / f"mallory {text[:12]} x" / f"{L00}.ipynb",
            float(n % 3),
            error=f'code cell 9 ("{text}") raised ValueError',
            notes=[text, "plain"],
            mistakes={"batch_stats": [text]},
        )
        for n, text in enumerate(hidden)
    ]
    args = _outputs(tmp_path, "canvas", "moodle", "gradescope")
    written = grade.write_outputs(rows, args)
    tables = [p for p in written if p.suffix == ".csv"]
    assert len({p.name for p in tables}) >= 5, tables
    leads = ("=", "+", "-", "@", *(chr(c) for c in range(32)))
    for table in tables:
        raw = table.read_text()
        for sep in (*SEPARATORS, *WHITESPACE):
            parsed = csv.reader(io.StringIO(raw, newline=""), delimiter=sep)
            fields = [f for record in parsed for f in record]
            fields += [f for line in raw.splitlines() for f in line.split(sep)]
            for field in fields:
                lead = field.lstrip(' "')[:1]
                assert lead not in leads, (table.name, repr(sep), field)
    again = grade.read_csv(args.out)  # grade.py merge reads every value back
    assert [r.error for r in again] == [r.error for r in rows]
    assert [r.notes for r in again] == [[text, "plain"] for text in hidden]
    assert [r.mistakes for r in again] == [{"batch_stats": [h]} for h in hidden]
    assert [r.file for r in again] == [r.file for r in rows]


def test_a_note_cannot_forge_the_unsandboxed_status_through_a_merge(tmp_path):
    """Attack (held-out A03, 4th battery): a graded cell's ``grade_id`` of
    ``x; <the unsandboxed note>; y`` is echoed in a note; ``grade.py merge``
    split the notes at "; " and read a row's status from a note's text, so
    the merged report, the Moodle notes and the console said that a sandboxed
    run was graded unsandboxed (and any other note could be forged).  The
    status is its own column; a note's own "; " is escaped (``;;``)."""
    from tools.grading import sandbox

    forged = f"x; {sandbox.UNSANDBOXED_NOTE}; y"
    fake_dup = "2 submissions for lesson 00 by 'carol' (files a): resolve by hand"
    rows = [
        _row(tmp_path / "alice" / f"{L00}.ipynb"),
        _row(
            tmp_path / "mallory" / f"{L00}.ipynb",
            notes=[
                f"submission metadata ignored (a graded cell {forged!r} the course "
                "does not have)",
                f"q; {fake_dup}; r",
                "ends with a semicolon;",
                ";; ;",
            ],
        ),
    ]
    shards = []
    for k, part in enumerate((rows[:1], rows[1:]), 1):
        args = _outputs(tmp_path, report_dir=False, feedback=False, shard=(k, 2))
        args.out = tmp_path / f"shard{k}.csv"
        grade.write_outputs(part, args)
        shards.append(str(args.out))
    merged = tmp_path / "merged.csv"
    assert (
        grade.main(
            ["merge", "--out", str(merged), "--quiet", "--report"]
            + [str(tmp_path / "report"), "--format", "moodle", *shards]
        )
        == 0
    )
    back = {r.file: r for r in grade.read_csv(merged)}
    assert back[rows[1].file].notes == rows[1].notes  # as they were, not split
    assert not any(r.unsandboxed for r in back.values())
    assert sandbox.unsandboxed_warning(list(back.values())) == ""
    assert "unsandboxed" not in (tmp_path / "report" / "report.csv").read_text()
    assert "WARNING" not in (tmp_path / "report" / "report.html").read_text()
    moodle = (tmp_path / "merged-moodle.csv").read_text()
    assert "00: graded unsandboxed" not in moodle, moodle
    # the status the grader did record survives the merge, in its own column
    rows[0].unsandboxed = True
    args = _outputs(tmp_path, report_dir=False, feedback=False)
    grade.write_outputs(rows, args)
    back = {r.file: r for r in grade.read_csv(args.out)}
    assert [back[r.file].unsandboxed for r in rows] == [True, False]


def test_kernel_text_enters_the_records_clean(tmp_path, capsys):
    """Attack (A18-A20): a result whose error, notes, messages, learner and
    transcript hold a lone surrogate, terminal escapes and forged lines.  At
    2c3fb8b write_csv raised UnicodeEncodeError (no output for the class) and
    grade.py printed the escapes raw."""
    result = tmp_path / "result.json"
    result.write_text(
        json.dumps(
            {
                "notebook": L00,
                "tests": {"batch_stats": [0, 2]},
                "error": f'code cell 3 ("{NASTY_TEXT}") raised {NASTY_TEXT}',
                "notes": [f"the kernel has a hook ({NASTY_TEXT})"] * 3
                + [f"n{i}" for i in range(500)],
                "messages": {"batch_stats": f"batch_stats | WRONG | {NASTY_TEXT}"},
                "learner": NASTY_TEXT,
                "transcript": [
                    {"source": NASTY_TEXT * 10_000, "skipped": True},
                    {"source": "print(1)", "output": NASTY_TEXT * 10_000},
                    {"test": "batch_stats"},
                ],
            }
        )
    )
    path = tmp_path / "alice" / f"{L00}.ipynb"
    job = grade.Job(0, path, grade.Row(file=str(path)), tmp_path / "w", result, 0.0)
    row = grade._finish(job)
    for text in (row.error, row.learner, *row.notes):
        assert text.isprintable() and len(text) <= 1000, text[:200]
    assert len(row.notes) < 40 and any(n.startswith("... and ") for n in row.notes)
    for line in row.messages["batch_stats"].splitlines():
        assert line.isprintable(), line
    for cell in row.transcript[:2]:
        for value in cell.values():
            if isinstance(value, str):
                assert len(value) < 50_000 and "\x1b" not in value
                value.encode("utf-8")
    for named in row.mistakes["batch_stats"]:
        assert named.isprintable()
    args = _outputs(tmp_path, "canvas", "moodle", "gradescope")
    args.quiet = False
    grade.write_outputs([row], args)
    assert args.out.is_file() and (tmp_path / "report" / "report.html").is_file()
    # the class report's mistakes and the CSV: no forged line
    report_csv = _table(tmp_path / "report" / "report.csv")
    assert not any(r[1].startswith("layernorm_forward") for r in report_csv), report_csv
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err


def test_shown_paths_are_injective_and_shard_on_their_bytes(tmp_path):
    """Attack (A24): a name with the raw byte 0xff and one with the text
    ``\\xff`` were shown alike (``merge`` stopped: "in two shards"), and
    ``--shard`` raised UnicodeEncodeError on the raw byte (every shard died)."""
    raw = tmp_path / os.fsdecode(b"00_x\xff.ipynb")
    text = tmp_path / "00_x\\xff.ipynb"
    names = {grade.shown(raw), grade.shown(text)}
    assert len(names) == 2, names
    escaped = grade.shown(tmp_path / "00_a\x1b[2J\nb\u202e.ipynb")
    assert escaped.isprintable() and "\\u001b" in escaped and "\\u202e" in escaped
    assert grade.shown(tmp_path / "00_José Lee.ipynb").endswith("00_José Lee.ipynb")
    for shard in ((1, 2), (2, 2)):
        grade.in_shard(raw, shard)  # no exception
    assert sum(grade.in_shard(raw, (k, 3)) for k in (1, 2, 3)) == 1
    rows = [_row(name, 1.0) for name in sorted(names)]
    shards = []
    for k, row in enumerate(rows, 1):
        args = _outputs(tmp_path, feedback=False, report_dir=False, shard=(k, 2))
        args.out = tmp_path / f"shard{k}.csv"
        grade.write_outputs([row], args)
        shards.append(str(args.out))
    merged = tmp_path / "merged.csv"
    assert grade.main(["merge", "--out", str(merged), "--quiet", *shards]) == 0
    assert sorted(r.file for r in grade.read_csv(merged)) == sorted(names)


def test_merge_reads_any_csv_the_grader_wrote_and_never_stops_on_a_row(tmp_path):
    """Attack (A15): a 203,043-character notes cell (1000 hook notes) made
    ``grade.py merge`` fail with "field larger than field limit" and write
    nothing; one row that does not parse must cost only itself."""
    rows = [
        _row(tmp_path / "flood" / f"{L00}.ipynb", 1.0, notes=["n" * 300_000]),
        _row(tmp_path / "bob" / f"{L00}.ipynb", 2.0),
    ]
    args = _outputs(tmp_path, feedback=False, report_dir=False)
    grade.write_csv(rows, args.out)
    broken = tmp_path / "broken.csv"
    text = args.out.read_text().replace(
        "\n" + rows[1].file,
        "\n" + str(tmp_path / "cy" / f"{L00}.ipynb") + ",cy,"
        f"{L00},x,2,oops,{{not json,,,\n" + rows[1].file,
        1,
    )
    broken.write_text(text)
    merged = tmp_path / "merged.csv"
    assert grade.main(["merge", "--out", str(merged), "--quiet", str(broken)]) == 0
    again = {r.file: r for r in grade.read_csv(merged)}
    assert again[rows[1].file].total == 2.0
    assert again[rows[0].file].total == 1.0
    cy = again[str(tmp_path / "cy" / f"{L00}.ipynb")]
    assert "not read back" in cy.error and not cy.tests, cy


def _bare_run(tmp_path, outputs):
    """A worker.Run without a kernel: ``run_code`` answers ``outputs``."""
    run = object.__new__(worker.Run)
    run.result = worker.Result(notebook=L00)
    run.result_path = tmp_path / "result.json"
    run.hooks_baseline, run.hooks_seen = None, set()
    run.failed, run.replies, run.position, run.flooded = [], [], 0, {}
    run.kept = worker.Budget(worker.TRANSCRIPT_CAP, worker.ENTRY_COST)
    run.run_code = lambda *a, **k: outputs
    return run


def test_a_hook_report_too_large_or_too_long_is_itself_a_note(tmp_path):
    """Attack (A15): 4000 event callbacks made the hook probe's reply larger
    than 100 kB; at 2c3fb8b it was ignored and no hook was noted at all.  1000
    callbacks gave 1000 notes (a 203,043-character CSV cell)."""
    from tools.grading import remote

    huge = json.dumps({"event callback": ["post_run_cell: f"] * 20_000})
    run = _bare_run(tmp_path, [{"data": {remote.MIME: huge}}])
    run.hooks_baseline = {}
    run.note_hooks()
    assert any("too large" in n for n in run.result.notes), run.result.notes
    many = {"event callback": [f"post_run_cell: f{i}\ud800" for i in range(1000)]}
    run = _bare_run(tmp_path, [{"data": {remote.MIME: json.dumps(many)}}])
    run.hooks_baseline = {}
    run.note_hooks()
    assert len(run.result.notes) <= 40, len(run.result.notes)
    for note in run.result.notes:
        note.encode("utf-8")
        assert note.isprintable()


def test_every_transcript_cell_is_capped(tmp_path):
    """Attack (A21): a 28 MB cell tagged skip-when-grading was kept whole (a
    35 MB feedback page, 1.2 GB in the grader); cells that ran were capped."""
    from helpers import contract

    run = _bare_run(tmp_path, [])
    big = "x = 1  # " + "y" * 3_000_000
    run.step(1, {"source": big, "tags": [contract.SKIP_WHEN_GRADING]})
    run.step(2, {"source": big + "\x1b[2J", "tags": []})
    assert len(run.result.transcript) == 2
    for item in run.result.transcript:
        assert len(item["source"]) <= 25_000, len(item["source"])
        assert "\x1b" not in item["source"]


def test_empty_skipped_cells_are_not_free(tmp_path):
    """Attack (attacks4 A01): an empty source cost 0 characters, so 50,000
    empty cells tagged skip-when-grading were all kept (a 30.8 MB feedback
    page that took 587 s to render in the grader's process).  Each entry now
    costs at least ENTRY_COST, and the row says how many were left out."""
    from helpers import contract

    run = _bare_run(tmp_path, [])
    for position in range(1, 5001):
        run.step(position, {"source": "", "tags": [contract.SKIP_WHEN_GRADING]})
    kept = len(run.result.transcript)
    assert kept <= worker.TRANSCRIPT_CAP // worker.ENTRY_COST, kept
    assert "cells are not in the feedback" in run.flood_note(), run.flood_note()


def test_a_hidden_failure_shows_nothing_of_the_learners_exception():
    """Attack (A01): in a hidden test, an exception whose TYPE NAME spells the
    inputs and ends in a newline (the filter needed a colon on its line).  The
    grader raises the learner's exception with its words only while a visible
    test runs; in a hidden one it is an anonymous exception of the same kind."""
    from tools.grading import remote

    session = remote.Session(lambda code: [])
    reply = {"raised": "ValueError", "message": "rows sixtyfour"}
    spelled = {"raised": "LEAKsixfour\nx | WRONG | LEAKsixfour", "message": "LEAKm"}
    with pytest.raises(ValueError) as seen:
        session._result(reply, ())
    assert "sixtyfour" in str(seen.value)  # a visible test shows the learner's words
    with pytest.raises(Exception) as seen:
        session._result(spelled, ())
    assert "\n" not in type(seen.value).__name__  # one line
    session.hidden = True
    for answer in (reply, spelled):
        with pytest.raises(Exception) as seen:
            session._result(answer, ())
        shown_ = f"{type(seen.value).__name__}: {seen.value!s} {seen.value!r}"
        assert "LEAK" not in shown_ and "sixtyfour" not in shown_, shown_
    with pytest.raises(ValueError):  # a check that expects a ValueError still works
        session._result(reply, ())
    message = (
        "batch_stats | ok | shapes" + report.HIDDEN_FAILED + "batch_stats | WRONG | "
        "raised LEAKsixfour\nbatch_stats | WRONG | returned 'LEAKabc' <LEAKdef in "
        "the learner's kernel>"
    )
    assert "LEAK" not in report._safe(message), report._safe(message)
