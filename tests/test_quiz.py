"""The quiz: bank, recorded answers, widgets (ipywidgets 8 and 7.7.1), grading."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from helpers import quiz
from tools import grade

from .conftest import ROOT, quiz_solution_with_answers

# `make test` installs Colab's versions there (ipywidgets 7.7.1 among them)
W7 = ROOT / ".venv" / "colab"


@pytest.fixture
def bank():
    return quiz.load_bank()


@pytest.fixture
def answers(tmp_path):
    return tmp_path / "answers.json"


# --------------------------------------------------------------------------
# the bank
# --------------------------------------------------------------------------


def test_bank_is_valid_and_covers_every_lesson(bank):
    raw = json.loads(quiz.bank_path().read_text())
    assert quiz.validate_bank(raw) == []
    assert len(bank) >= 30
    per_lesson = Counter(q.lesson for q in bank)
    for lesson in ("01", "02", "03", "04", "05"):
        assert per_lesson[lesson] >= 4, lesson
    assert per_lesson["general"] == 6  # the six questions of the source notes
    assert per_lesson["00"] >= 1
    assert len({q.id for q in bank}) == len(bank)
    assert any(q.multiple for q in bank), "at least one select-all question"
    numeric = [q for q in bank if all(o.replace(".", "").isdigit() for o in q.options)]
    assert numeric, "at least one numeric question"


def test_every_wrong_option_names_its_misconception(bank):
    for q in bank:
        wrong = set(range(len(q.options))) - q.correct
        assert set(q.misconceptions) == wrong, q.id
        assert q.explanation.strip(), q.id


def _raw_question(**changes):
    q = {
        "id": "x",
        "lesson": "02",
        "text": "What?",
        "options": ["a", "b", "c"],
        "correct": [0],
        "explanation": "Because.",
        "misconceptions": {"1": "no b", "2": "no c"},
    }
    q.update(changes)
    return q


@pytest.mark.parametrize(
    "raw, message",
    [
        ([_raw_question(), _raw_question()], "duplicate id"),
        ([_raw_question(), _raw_question(id="y")], "duplicate question text"),
        ([_raw_question(correct=[3])], "valid option indices"),
        ([_raw_question(correct=[])], "valid option indices"),
        ([_raw_question(options=["a", "b"])], "3 to 5 options"),
        ([_raw_question(misconceptions={"1": "no b"})], "misconceptions needed"),
        ([_raw_question(explanation=" ")], "empty explanation"),
        ([_raw_question(lesson="09")], "is not one of"),
        ([_raw_question(options=["a", "a", "c"])], "two options are the same"),
        ({}, "non-empty JSON list"),
    ],
)
def test_validation_names_the_problem(raw, message):
    problems = quiz.validate_bank(raw)
    assert any(message in p for p in problems), problems


def test_unreadable_bank_says_which_file(tmp_path):
    bad = tmp_path / "bank.json"
    bad.write_text("[{")
    with pytest.raises(quiz.BankError, match="bank.json"):
        quiz.load_bank(bad)


# --------------------------------------------------------------------------
# answering and recording
# --------------------------------------------------------------------------


def test_answers_are_recorded_saved_and_reloaded(bank, answers, capsys):
    q = bank[1]
    first = quiz.Quiz(bank, learner="ada", answers_file=answers)
    wrong = next(i for i in range(len(q.options)) if i not in q.correct)
    feedback = first.answer(q.id, q.options[wrong])
    assert not feedback.correct and q.misconceptions[wrong] in feedback.message
    feedback = first.answer(q.id, sorted(q.correct))
    assert feedback.correct and feedback.message.startswith("Correct!")
    stored = json.loads(answers.read_text())
    assert stored["learner"] == "ada" and stored["answers"][q.id]["attempts"] == 2
    assert stored["answers"][q.id]["time"]
    again = quiz.Quiz(bank, learner="ada", answers_file=answers)
    # wrong, then right: practice shows it right, the first attempt counted 0
    assert again.score() == (0, len(bank))  # the default policy: first attempts
    assert again.score("weighted") == (0.5, len(bank))
    assert again.score("last") == (1, len(bank))
    assert stored["answers"][q.id]["first_correct"] is False
    assert stored["answers"][q.id]["right_at"] == 2
    assert "loaded 1 recorded answer" in capsys.readouterr().out


def test_scoring_policies_reward_the_first_attempt_not_persistence(bank, tmp_path):
    my = quiz.Quiz(bank, answers_file=tmp_path / "a.json")
    right_away, persistent, gave_up = bank[0], bank[2], bank[3]
    my.answer(right_away.id, sorted(right_away.correct))
    for q in (persistent, gave_up):
        wrong = next(i for i in range(len(q.options)) if i not in q.correct)
        for _ in range(3):
            my.answer(q.id, [wrong])
    my.answer(persistent.id, sorted(persistent.correct))  # right at attempt 4
    assert my.score("first")[0] == 1
    assert my.score("weighted")[0] == pytest.approx(1.25)
    assert my.score("last")[0] == 2
    my.answer(right_away.id, [i for i in range(9) if i not in right_away.correct][:1])
    assert my.score("first")[0] == 1, "a later wrong answer keeps the first point"
    with pytest.raises(ValueError, match="policy"):
        quiz.Quiz(bank, answers_file=tmp_path / "b.json", policy="best")


def test_no_catch_all_option_is_keyed(bank):
    """'All three' keyed against its three true items grades the same answer
    wrong when given item by item (review 2026-12-06, W6): a question whose
    items are all true lists them and says 'select every correct answer'."""
    catch_all = re.compile(
        r"\b(all|each) (of )?(these|the above|three|four|five|options)\b|^all\W*$", re.I
    )
    keyed = [
        (q.id, q.options[i])
        for q in bank
        for i in q.correct
        if catch_all.search(q.options[i]) or quiz.CATCH_ALL.match(q.options[i])
    ]
    assert keyed == []
    assert catch_all.search("All three") and catch_all.search("All of these")


def test_catch_all_options_come_last_for_every_learner(tmp_path):
    raw = [
        _raw_question(
            options=["a", "b", "None of these", "c"],
            misconceptions={"1": "no b", "2": "no", "3": "no c"},
        )
    ]
    questions = [
        quiz.Question(
            id=q["id"],
            lesson=q["lesson"],
            text=q["text"],
            options=tuple(q["options"]),
            correct=frozenset(q["correct"]),
            explanation=q["explanation"],
            misconceptions={int(k): v for k, v in q["misconceptions"].items()},
        )
        for q in raw
    ]
    for learner in ("", "ada", "bob", "eve"):
        my = quiz.Quiz(questions, learner=learner, answers_file=tmp_path / "a.json")
        assert my.option_order["x"][-1] == 2


def test_a_single_answer_question_takes_one_choice(bank, answers):
    """Radio semantics in code too: two ticks on a one-answer question are refused,
    so no recorded answer can hold more than one choice for it."""
    my = quiz.Quiz(bank, answers_file=answers)
    single = next(q for q in bank if not q.multiple)
    with pytest.raises(ValueError, match="one correct answer"):
        my.answer(single.id, [0, 1])
    assert single.id not in my.answers
    multi = next(q for q in bank if q.multiple)
    assert my.answer(multi.id, sorted(multi.correct)).correct


def test_the_longest_option_gives_nothing_away(bank):
    """The correct option is the strictly longest no more often than chance."""
    single = [q for q in bank if not q.multiple]
    longest = [
        q
        for q in single
        if all(
            len(q.options[next(iter(q.correct))]) > len(o)
            for i, o in enumerate(q.options)
            if i not in q.correct
        )
    ]
    chance = sum(1 / len(q.options) for q in single)  # if lengths were random
    assert len(longest) <= chance + 2, (len(longest), round(chance, 1))


def test_no_option_shows_raw_code_marks(bank):
    for q in bank:
        for option in q.options:
            shown = quiz.to_html(option)
            assert "`" not in shown and "**" not in shown, (q.id, option)


def test_unknown_question_or_option_is_refused_clearly(bank, answers):
    my = quiz.Quiz(bank, answers_file=answers)
    with pytest.raises(KeyError, match="no question"):
        my.answer("nope", 0)
    with pytest.raises(ValueError, match="not an option"):
        my.answer(bank[0].id, "a made-up answer")


@pytest.mark.parametrize(
    "content, problem",
    [("{not json", "not a valid answers file"), (None, "edited by hand")],
)
def test_corrupt_or_edited_file_is_set_aside_and_reported(
    bank, answers, capsys, content, problem
):
    my = quiz.Quiz(bank, answers_file=answers)
    my.answer(bank[0].id, sorted(bank[0].correct))
    if content is None:  # flip an answer to "correct" by hand
        stored = json.loads(answers.read_text())
        stored["answers"][bank[0].id]["correct"] = False
        answers.write_text(json.dumps(stored))
    else:
        answers.write_text(content)
    reloaded = quiz.Quiz(bank, answers_file=answers)
    out = capsys.readouterr().out
    assert problem in out and "set aside" in out
    assert reloaded.score()[0] == 0 and reloaded.problem
    kept = list(answers.parent.glob("answers.json.untrusted-*"))
    assert len(kept) == 1 and not answers.exists()


def test_question_order_is_seeded_and_options_are_shuffled_per_learner(bank, tmp_path):
    a = quiz.Quiz(bank, learner="ada", answers_file=tmp_path / "a.json")
    b = quiz.Quiz(bank, learner="bob", answers_file=tmp_path / "b.json")
    a2 = quiz.Quiz(bank, learner="ada", answers_file=tmp_path / "c.json")
    assert a.order == b.order == a2.order
    assert a.order != [q.id for q in bank]  # shuffled within a lesson
    assert a.option_order == a2.option_order
    assert a.option_order != b.option_order


def test_questions_come_in_lesson_order(bank, tmp_path):
    """No question on lesson 08 before one on lesson 00 (review 2026-12-06, C5)."""
    my = quiz.Quiz(bank, answers_file=tmp_path / "a.json")
    lessons = [my.by_id[qid].lesson for qid in my.order]
    assert lessons == sorted(lessons, key=quiz.LESSONS.index)
    assert lessons[0] == "general" and lessons[-1] == quiz.LESSONS[-1]


def test_the_quiz_summary_counts_the_lessons_it_covers(bank):
    """06's Summary says how many lessons the bank covers (it said six of eight)."""
    lessons = {q.lesson for q in bank} - {"general"}
    nb = nbformat.read(ROOT / "solutions" / "06_quiz.ipynb", 4)
    summary = next(c.source for c in nb.cells if c.source.startswith("## Summary"))
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
    words |= {8: "eight", 9: "nine", 10: "ten"}
    assert f"{words[len(lessons)]} lessons" in summary, (sorted(lessons), summary)
    numbers = ", ".join(sorted(lessons)[:-1]) + " and " + sorted(lessons)[-1]
    assert numbers in summary, numbers


def test_markdown_subset_is_rendered_and_html_escaped():
    html = quiz.to_html("Use `x.var(0)` and **not** *this* <b>; $\\gamma$")
    assert "<code>x.var(0)</code>" in html and "<b>not</b>" in html
    assert "<i>this</i>" in html and "&lt;b&gt;" in html and "$\\gamma$" in html


# --------------------------------------------------------------------------
# the widget, driven through its own buttons
# --------------------------------------------------------------------------

WIDGET_SCRIPT = r"""
import json, sys
sys.path.insert(0, {root!r})
import ipywidgets as w
from helpers import quiz
from tools import grade

bank = quiz.load_bank()
my = quiz.Quiz(bank, learner="ada", answers_file={answers!r})
box = my.widget()
questions, retry_row, summary = box.children
one, two = [n for n, qid in enumerate(my.order) if not my.by_id[qid].multiple][:2]
first = questions.children[one]
title, chooser, check_row, feedback = first.children
q = my.by_id[my.order[one]]
wrong = next(i for i in range(len(q.options)) if i not in q.correct)
check = check_row.children[0]
check.click()
assert "Pick an answer first" in feedback.value
chooser.value = wrong
check.click()
assert "Not quite" in feedback.value, feedback.value
chooser.value = sorted(q.correct)[0]
check.click()
assert "Correct!" in feedback.value, feedback.value
multi = next(n for n, qid in enumerate(my.order) if my.by_id[qid].multiple)
mq = my.by_id[my.order[multi]]
questions.children[multi].children[1].value = sorted(mq.correct)
questions.children[multi].children[2].children[0].click()
assert "Correct!" in questions.children[multi].children[3].value
second = questions.children[two]
q2 = my.by_id[my.order[two]]
second.children[1].value = [i for i in range(len(q2.options)) if i not in q2.correct][0]
second.children[2].children[0].click()
assert f"Score: 1/{{len(bank)}} (first attempts" in summary.value, summary.value
assert "Practice: 2 right now, 1 wrong" in summary.value, summary.value
# a single-answer question's options are radio buttons: choosing one clears the rest
assert not q.multiple and all(isinstance(b, w.RadioButtons) for b in chooser.boxes)
assert "(one answer)" in title.value
assert f"[{{quiz.lesson_label(q.lesson)}}]" in title.value
chooser.value = wrong
chooser.boxes[(chooser.indices.index(sorted(q.correct)[0]))].index = 0
assert chooser.value == sorted(q.correct)[0]
assert sum(bool(b.value) for b in chooser.boxes) == 1
mchooser = questions.children[multi].children[1]
assert all(isinstance(b, w.Checkbox) for b in mchooser.boxes)
retry_row.children[0].click()
assert len(questions.children) == 1, len(questions.children)
stored = json.load(open({answers!r}))
print(w.__version__, len(stored["answers"]))
"""


def _run_widget_script(tmp_path, extra_path=None):
    script = WIDGET_SCRIPT.format(root=str(ROOT), answers=str(tmp_path / "a.json"))
    env = None
    if extra_path:
        import os

        env = dict(os.environ, PYTHONPATH=str(extra_path))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_widget_works_with_the_installed_ipywidgets(tmp_path):
    """Whatever the environment has: 8.x from `make lab`, 7.7.1 on Colab."""
    version, recorded = _run_widget_script(tmp_path)
    assert version.split(".")[0] in {"7", "8"} and recorded == "3"


@pytest.mark.skipif(
    not (W7 / "ipywidgets").is_dir(),
    reason="Colab's ipywidgets 7.7.1 is not installed in .venv/colab",
)
def test_widget_works_with_colabs_ipywidgets_7(tmp_path):
    version, recorded = _run_widget_script(tmp_path, extra_path=W7)
    assert version == "7.7.1" and recorded == "3"


# --------------------------------------------------------------------------
# grading the quiz
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_grader_scores_one_point_per_question(bank, tmp_path):
    from .test_grade import run_grader

    lesson = "06_quiz"
    learner = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4)
    # a learner who answered 10 questions right and 2 wrong, file handed in
    partial = tmp_path / f"{lesson}_ada.ipynb"
    nbformat.write(copy.deepcopy(learner), partial)
    my = quiz.Quiz(bank, answers_file=tmp_path / f"{lesson}_ada.answers.json")
    for q in bank[:10]:
        my.answer(q.id, sorted(q.correct))
    for q in bank[10:12]:
        my.answer(q.id, [i for i in range(len(q.options)) if i not in q.correct][:1])
    my.answer(bank[11].id, sorted(bank[11].correct))  # right at the 2nd attempt
    # a learner whose answers file was edited by hand
    edited = tmp_path / f"{lesson}_eve.ipynb"
    nbformat.write(copy.deepcopy(learner), edited)
    stored = json.loads((tmp_path / f"{lesson}_ada.answers.json").read_text())
    for record in stored["answers"].values():
        record["correct"] = True
    (tmp_path / f"{lesson}_eve.answers.json").write_text(json.dumps(stored))
    untouched = tmp_path / "untouched" / f"{lesson}.ipynb"
    untouched.parent.mkdir()
    nbformat.write(copy.deepcopy(learner), untouched)
    paths = [quiz_solution_with_answers(tmp_path), untouched, partial, edited]
    rows = run_grader(tmp_path, paths)
    solution, untouched, ada, eve = (rows[str(p)] for p in paths)
    total = len(bank)
    assert solution["total"] == solution["maximum"] == str(total)
    assert untouched["total"] == "0"
    (quiz_cell,) = grade.test_cells(ROOT / "solutions" / f"{lesson}.ipynb")
    points = grade.points_of(quiz_cell)  # the quiz's weight in the grade
    assert float(ada["total"]) == pytest.approx(10 * points / total)  # first tries
    per_question = json.loads(ada["quiz"])
    assert per_question[bank[11].id]["attempts"] == 2
    assert per_question[bank[11].id]["correct"]
    assert not per_question[bank[11].id]["first_correct"]
    assert per_question[bank[0].id]["points"] == 1.0
    assert eve["total"] == "0" and "edited by hand" in eve["notes"]
    assert Path(tmp_path / f"{lesson}_ada.answers.json").exists()  # untouched
