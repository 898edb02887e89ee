"""Numbers the prose quotes come from the shipped records (helpers/quotes.py)."""

from __future__ import annotations

import json

import nbformat
import pytest

from helpers import course, quiz, quotes

from .conftest import ROOT

COPIES = [
    (folder, lesson)
    for lesson in course.LESSONS
    for folder in ("solutions", "notebooks")
]


def _markdown(folder, lesson):
    nb = nbformat.read(ROOT / folder / lesson.filename, 4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


@pytest.mark.parametrize(
    "folder, lesson", COPIES, ids=[f"{f}/{x.number}" for f, x in COPIES]
)
def test_every_quoted_number_and_claim_agrees_with_its_record(folder, lesson):
    for text in _markdown(folder, lesson):
        assert quotes.stale(text) == [], (lesson.filename, quotes.stale(text))
        assert quotes.false_claims(text) == [], lesson.filename
        for expr, _spec, _text in quotes.marks(text):  # only the lesson's records
            named = {n for n in lesson.references if f'"{n}"' in expr}
            assert named, f"{lesson.filename}: {expr} quotes no record it declares"


def test_lessons_that_quote_runs_mark_their_numbers():
    marked = {
        lesson.number
        for lesson in course.LESSONS
        if any(quotes.marks(t) for t in _markdown("solutions", lesson))
    }
    assert {"01", "02", "03", "04", "05"} <= marked


def test_quiz_explanations_quote_records_too():
    raw = json.loads((ROOT / "data" / quiz.BANK_FILE).read_text(encoding="utf-8"))
    for question in raw:
        texts = [question["text"], question["explanation"], *question["options"]]
        for text in texts + list(question.get("misconceptions", {}).values()):
            assert quotes.stale(text) == [], (question["id"], quotes.stale(text))
            assert quotes.false_claims(text) == [], question["id"]


def _records_with(change):
    """The shipped records, with 04_small_batches changed by ``change``."""
    records = quotes.Records()
    record = json.loads(
        (ROOT / "data" / "reference" / "04_small_batches.json").read_text()
    )
    change(record["results"])
    records["04_small_batches"] = record["results"]
    return records


def test_a_changed_record_makes_the_quoted_number_stale():
    text = "\n".join(_markdown("solutions", course.lesson("04")))
    assert quotes.stale(text) == []

    def lower(results):
        results["2"]["accuracy"] -= 0.05

    assert quotes.stale(text, _records_with(lower)), "a changed record must show"


def test_a_record_that_contradicts_a_claim_is_caught():
    text = "\n".join(_markdown("solutions", course.lesson("04")))
    assert quotes.false_claims(text) == []

    def flatten(results):
        for size in results.values():
            size["accuracy"] = 0.9
            size["mismatch"] = 0.3

    assert quotes.false_claims(text, _records_with(flatten)), "flat: nothing falls"


def test_fill_rewrites_the_text_and_reports_bad_expressions():
    records = quotes.Records({"x": {"a": [0.5, 0.7]}})
    text = (
        'mean <!--= mean(R["x"]["a"]) | .0% -->9%<!--/--> '
        '<!--? R["x"]["a"][1] > 0.6 -->'
    )
    assert "60%<!--/-->" in quotes.fill(text, records)
    assert quotes.stale(text, records)
    assert quotes.false_claims(text, records) == []
    assert quotes.plain(text.replace("9%", "60%")).strip() == "mean 60%"
    with pytest.raises(quotes.QuoteError, match="KeyError"):
        quotes.render('R["x"]["b"]', ".1f", records)
    with pytest.raises(quotes.QuoteError, match="no reference record"):
        quotes.render('R["nope"]', ".1f")


def test_the_generator_fills_numbers_and_refuses_a_false_claim():
    from tools import make_student

    lesson = course.lesson("04")
    nb = nbformat.read(ROOT / "solutions" / lesson.filename, 4)
    target = next(c for c in nb.cells if quotes.marks(c.source))
    expr, spec, written = quotes.marks(target.source)[0]
    target.source = target.source.replace(f"-->{written}<!--/-->", "-->0<!--/-->", 1)
    fixed = make_student.normalise_source(nb, lesson)
    assert any(f"-->{written}<!--/-->" in c.source for c in fixed.cells)
    target.source += "\n<!--? 1 > 2 -->"
    with pytest.raises(make_student.AuthoringError, match="do not bear out"):
        make_student.normalise_source(nb, lesson)
