"""tools/build_site.py without a browser or a kernel: what a page is made of.

The site itself, built and opened in Chromium, is tests/test_site.py.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from helpers import course, quiz
from tools import build_site as bs

from .conftest import ROOT


def _solved(lesson: course.Lesson, widgets: dict | None = None):
    """The lesson's instructor copy with a made-up output in every code cell:
    ``out-<cell id>``, or the widget view given for that cell."""
    nb = nbformat.read(ROOT / "solutions" / lesson.filename, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text=f"out-{cell.id}\n")]
            if widgets and cell.id in widgets:
                cell.outputs.append(widgets[cell.id])
    nb.metadata["bncourse_site"] = {"mode": "fast", "date": "2026-12-06"}
    return nb


def _widget(text: str):
    return nbformat.v4.new_output(
        "display_data",
        data={bs.WIDGET_VIEW: {"model_id": "m1"}, "text/plain": text},
    )


def _cell(nb, cell_id):
    return next(c for c in nb.cells if c.id == cell_id)


def test_the_static_quiz_lists_every_question_option_and_answer_folded():
    text = quiz.static_markdown()
    bank = quiz.load_bank()
    blocks = text.split('<div class="bncourse-static-question"')[1:]
    assert len(blocks) == len(bank)
    for question, block in zip(
        sorted(bank, key=_bank_position(text)), blocks, strict=True
    ):
        assert f'id="quiz-{question.id}"' in block
        shown, folded = block.split("<details", 1)
        for index, option in enumerate(question.options):
            assert f"**({chr(97 + index)})** {option}" in shown
        assert question.explanation not in shown  # folded, not shown
        right = ", ".join(f"({chr(97 + i)})" for i in sorted(question.correct))
        assert f"**Answer: {right}.** {question.explanation}" in folded
        for index, why in question.misconceptions.items():
            assert f"**({chr(97 + index)})** {why}" in folded
    assert "<!--" not in text


def _bank_position(text):
    return lambda question: text.index(f'id="quiz-{question.id}"')


def test_a_page_is_the_learner_copy_with_the_instructors_outputs():
    lesson = course.lesson("02")
    page = bs.page_notebook(lesson, _solved(lesson))
    learner = nbformat.read(ROOT / "notebooks" / lesson.filename, as_version=4)
    assert [c.id for c in page.cells] == [c.id for c in learner.cells]
    for cell, mine in zip(page.cells, learner.cells, strict=True):
        if cell.cell_type == "code":
            assert cell.source == mine.source  # the stubs, never the answers
            assert cell.outputs[0]["text"] == f"out-{cell.id}\n"
    header = page.cells[0].source
    assert "colab-badge.svg" not in header  # an outside image: links instead
    assert course.colab_url("notebooks", lesson) in header
    assert (
        f"{{download}}`Download the notebook <notebooks/{lesson.filename}>`" in header
    )
    assert "fast-mode run of the instructor's copy" in header
    setup = next(c for c in page.cells if "setup" in c.metadata.get("tags", []))
    assert "hide-input" in setup.metadata["tags"]


def test_quote_markers_never_reach_a_page():
    lesson = course.lesson("04")
    source = (ROOT / "notebooks" / lesson.filename).read_text()
    assert "<!--=" in source  # the lesson quotes numbers from its records
    page = bs.page_notebook(lesson, _solved(lesson))
    assert not any("<!--" in c.source for c in page.cells if c.cell_type == "markdown")


def test_widgets_get_their_static_fallbacks_and_session_outputs_are_dropped():
    lesson = course.lesson("06")
    solved = _solved(lesson, {"3d5de542": _widget("VBox(children=(VBox(...")})
    page = bs.page_notebook(lesson, solved)
    shown = _cell(page, "3d5de542").outputs
    assert shown[0]["text"] == "out-3d5de542\n"
    markdown = shown[1]["data"]["text/markdown"]
    assert markdown.startswith(bs.QUIZ_NOTE)
    assert markdown.count("bncourse-static-question") == len(quiz.load_bank())
    assert _cell(page, "2875ef08").outputs == []  # the instructor's 42/42
    assert _cell(page, "quiz-hand-in").outputs == []  # a path on the build machine
    assert "d82658c1" not in [c.id for c in page.cells]  # the answer key

    slider = course.lesson("01")
    solved = _solved(slider, {"e0e7919c": _widget("interactive(children=(IntSlider(")})
    shown = _cell(bs.page_notebook(slider, solved), "e0e7919c").outputs
    assert shown[1]["data"]["text/markdown"] == bs.SLIDER_NOTE

    solved = _solved(slider, {"e0e7919c": _widget("Button(description='Go')")})
    with pytest.raises(bs.SiteError, match="no static fallback"):
        bs.page_notebook(slider, solved)


def test_a_progress_bar_shows_its_last_state():
    state = {
        "m1": {
            "model_name": "HBoxModel",
            "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]},
        },
        "a": {
            "model_name": "HTMLModel",
            "state": {"value": "with\u2007BN:\u2007\u200793%"},
        },
        "b": {
            "model_name": "FloatProgressModel",
            "state": {"value": 601.0, "max": 601.0},
        },
        "c": {
            "model_name": "HTMLModel",
            "state": {"value": "557/601 [00:00&lt;00:00]"},
        },
    }
    bar = bs._progress_bar(_widget("with BN: 93%"), state)
    assert bar["text"] == "with BN: 100% (601/601)\n"
    assert bs._progress_bar(_widget("x"), {"m1": {"model_name": "VBoxModel"}}) is None


@pytest.mark.parametrize(
    "source, expected",
    [
        ("is\n$a = b\n  - c$, so", "is\n$a = b - c$, so"),  # MyST: a list item
        ("$$a\n- b$$ and $c$", "$$a\n- b$$ and $c$"),  # display maths: as it is
        ("`$x\n` and `$HOME`", "`$x\n` and `$HOME`"),  # no maths in code
    ],
)
def test_inline_maths_is_joined_onto_one_line(source, expected):
    assert bs.join_inline_maths(source) == expected


def test_a_prose_change_reruns_nothing_a_code_change_does():
    nb = nbformat.read(
        ROOT / "solutions" / "02_bn_forward_backward.ipynb", as_version=4
    )
    key = bs.run_key(nb, "digest")
    prose = next(c for c in nb.cells if c.cell_type == "markdown")
    prose.source += "\nOne more sentence."
    assert bs.run_key(nb, "digest") == key
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\nx = 1"
    assert bs.run_key(nb, "digest") != key
    assert bs.run_key(nb, "another digest") != bs.run_key(nb, "digest")


def test_the_index_lists_every_lesson_with_colab_and_a_download():
    text = bs.index_page(course.LESSONS)
    for lesson in course.LESSONS:
        row = next(
            line for line in text.splitlines() if f"]({lesson.filename})" in line
        )
        assert course.colab_url("notebooks", lesson) in row
        assert f"<notebooks/{lesson.filename}>" in row
    toc = re.search(r"```\{toctree\}(.*?)```", text, re.S).group(1)
    assert [line for line in toc.splitlines() if line and ":" not in line] == [
        lesson.stem for lesson in course.LESSONS
    ]
