"""The course quiz: a question bank, an ipywidgets front end, recorded answers, a score.

* The bank (``data/quiz_bank.json``) is validated when loaded; a problem in it
  is reported with the question's id (``validate_bank``).
* ``Quiz.widget()`` shows the questions with core ipywidgets only (works on
  ipywidgets 7.7.1, as on Colab, and on 8.x): pick an answer, press Check, see
  right or wrong with the explanation and, for a wrong answer, the
  misconception it stands for.  A summary line keeps the score; "Retry wrong
  answers" shows only the questions still wrong.
* Without a front end (nbval, the grader) ``Quiz.answer(question_id, choice)``
  answers programmatically, exactly as a click would.
* Every answer is recorded in the kernel and saved at once to a small JSON file
  in the notebook's folder, with a timestamp and an attempt count; re-running a
  cell reloads it.  On Colab that folder is deleted with the runtime:
  ``Quiz.hand_in()`` downloads the file there (and names it elsewhere).  The
  file carries a checksum: a corrupt or hand-edited file is reported, set
  aside (renamed, never deleted) and not trusted.  The checksum catches
  accidents and naive edits, not a determined cheat.
* **Scoring policy.** Practice is unlimited: a learner may answer again after
  seeing the explanation.  What counts for a grade is set by ``policy``:
  ``"first"`` (the default: a point for a question answered right at the first
  attempt), ``"weighted"`` (1/k points for a question first answered right at
  attempt k) or ``"last"`` (the last answer, for practice only).  The grader
  takes ``--quiz-policy`` (default ``first``) and writes each question's
  attempts in its ``quiz`` column.
* The score is shown in one place at a time: ``Quiz.report()`` displays the
  same line as the widget and both are updated after every answer.  The
  grader scores the answers file with its own copy of this module.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from . import config, contract, course, quotes

BANK_FILE = "quiz_bank.json"
ANSWERS_FILE = "06_quiz.answers.json"  # the grader looks for this name
# Not a secret: the checksum detects accidental or naive edits of the file.
_SALT = "bncourse-quiz-v1"
LESSONS = course.quiz_keys()  # derived from the lesson registry
POLICIES = {
    "first": "a point for each question answered right at the first attempt",
    "weighted": "1/k points for a question first answered right at attempt k",
    "last": "a point for each question whose last answer is right (practice)",
}
# catch-all options ("All of these", "None of the above") stay last, unshuffled
CATCH_ALL = re.compile(
    r"^(all of (these|the above)|all (two|three|four)|none of (these|the above)"
    r"|both|neither)\W*$",
    re.I,
)


class BankError(ValueError):
    """The question bank breaks a rule; the message names the question."""


@dataclass(frozen=True)
class Question:
    id: str
    lesson: str
    text: str
    options: tuple[str, ...]
    correct: frozenset[int]
    explanation: str
    misconceptions: dict[int, str]

    @property
    def multiple(self) -> bool:
        return len(self.correct) > 1


# --------------------------------------------------------------------------
# the bank
# --------------------------------------------------------------------------


def validate_bank(raw) -> list[str]:
    """Every problem of a raw bank (a list of dicts), as readable messages."""
    problems = []
    if not isinstance(raw, list) or not raw:
        return ["the bank must be a non-empty JSON list of questions"]
    seen_ids, seen_texts = set(), set()
    for n, q in enumerate(raw):
        where = f"question {n} ({q.get('id', '?') if isinstance(q, dict) else '?'})"
        if not isinstance(q, dict):
            problems.append(f"{where}: not an object")
            continue
        required = {"id", "lesson", "text", "options", "correct", "explanation"}
        missing = sorted(required - set(q))
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if q["id"] in seen_ids:
            problems.append(f"{where}: duplicate id")
        seen_ids.add(q["id"])
        text_key = re.sub(r"\s+", " ", str(q["text"]).strip().lower())
        if text_key in seen_texts:
            problems.append(f"{where}: duplicate question text")
        seen_texts.add(text_key)
        if q["lesson"] not in LESSONS:
            problems.append(f"{where}: lesson {q['lesson']!r} is not one of {LESSONS}")
        options = q["options"]
        if not isinstance(options, list) or not 3 <= len(options) <= 5:
            problems.append(f"{where}: needs 3 to 5 options")
            continue
        if len({str(o).strip().lower() for o in options}) != len(options):
            problems.append(f"{where}: two options are the same")
        correct = q["correct"]
        if (
            not isinstance(correct, list)
            or not correct
            or any(not isinstance(i, int) or not 0 <= i < len(options) for i in correct)
            or len(set(correct)) != len(correct)
        ):
            problems.append(f"{where}: 'correct' must list valid option indices")
            continue
        if len(correct) == len(options):
            problems.append(f"{where}: every option is correct")
        if not str(q["explanation"]).strip():
            problems.append(f"{where}: empty explanation")
        wrong = {str(i) for i in range(len(options)) if i not in correct}
        given = set(q.get("misconceptions", {}))
        if given != wrong:
            problems.append(
                f"{where}: misconceptions needed for exactly the wrong options "
                f"{sorted(wrong)}, got {sorted(given)}"
            )
        elif any(not str(v).strip() for v in q["misconceptions"].values()):
            problems.append(f"{where}: an empty misconception")
    return problems


def bank_path() -> Path:
    return config.data_dir() / BANK_FILE


def load_bank(path=None) -> list[Question]:
    """The validated question bank (``BankError`` says what is wrong)."""
    path = Path(path) if path else bank_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BankError(f"cannot read the question bank {path}: {exc}") from None
    problems = validate_bank(raw)
    if problems:
        raise BankError(f"{path}: " + "; ".join(problems[:5]))
    records = quotes.Records()

    def shown(text: str) -> str:  # numbers quoted from the lessons' records
        try:
            return quotes.plain(quotes.fill(text, records))
        except quotes.QuoteError as exc:
            raise BankError(f"{path}: {exc}") from None

    return [
        Question(
            id=q["id"],
            lesson=q["lesson"],
            text=shown(q["text"]),
            options=tuple(shown(o) for o in q["options"]),
            correct=frozenset(q["correct"]),
            explanation=shown(q["explanation"]),
            misconceptions={
                int(k): shown(v) for k, v in q.get("misconceptions", {}).items()
            },
        )
        for q in raw
    ]


# --------------------------------------------------------------------------
# text: the bank's light Markdown to HTML for HTMLMath
# --------------------------------------------------------------------------


def to_html(text: str) -> str:
    """Escape, then render `code`, **bold**, *italics* and line breaks.

    The bank uses only these inline rules (and $...$ maths, left for MathJax),
    so a full Markdown library would be a dependency for three regexes.
    """
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<i>\1</i>", out)
    return out.replace("\n", "<br>")


# --------------------------------------------------------------------------
# recorded answers
# --------------------------------------------------------------------------


def _checksum(answers: dict) -> str:
    text = json.dumps(answers, sort_keys=True) + _SALT
    return hashlib.sha256(text.encode()).hexdigest()


def read_answers(path: Path) -> tuple[dict, str | None]:
    """(answers, problem); a problem (corrupt, edited) means: not trusted."""
    if not path.exists():
        return {}, None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        answers, checksum = stored["answers"], stored["checksum"]
        if not isinstance(answers, dict):
            raise ValueError("'answers' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {}, f"{path} is not a valid answers file ({type(exc).__name__}: {exc})"
    if checksum != _checksum(answers):
        return {}, f"{path} was edited by hand (its checksum does not match)"
    return answers, None


def write_answers(path: Path, answers: dict, learner: str) -> None:
    """Atomic write: the file is complete or untouched, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "learner": learner,
        "saved": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "answers": answers,
        "checksum": _checksum(answers),
    }
    contract.write_json_atomic(path, data)


# --------------------------------------------------------------------------
# the quiz
# --------------------------------------------------------------------------


@dataclass
class Feedback:
    question: Question
    correct: bool
    chosen: tuple[int, ...]
    message: str

    def __repr__(self) -> str:
        return self.message


class Quiz:
    """Questions in a seeded order, options shuffled per learner, answers recorded."""

    def __init__(
        self,
        questions=None,
        learner: str = "",
        answers_file=None,
        seed: int = 0,
        verbose: bool = True,
        policy: str = "first",
    ):
        if policy not in POLICIES:
            raise ValueError(
                f"policy must be one of {sorted(POLICIES)}, not {policy!r}"
            )
        self.policy = policy
        self._views: list = []  # displayed score lines, updated after each answer
        self._summary = None
        self.questions = list(questions) if questions is not None else load_bank()
        self.by_id = {q.id: q for q in self.questions}
        self.learner = learner.strip()
        self.path = (
            Path(answers_file) if answers_file else config.quiz_dir() / ANSWERS_FILE
        )
        # by lesson (general questions first, then 00, 01, ...), so that no
        # question comes before the lessons it needs; seeded order within one
        order = list(self.by_id)
        random.Random(seed).shuffle(order)
        rank = {key: n for n, key in enumerate(LESSONS)}
        self.order = sorted(order, key=lambda qid: rank[self.by_id[qid].lesson])
        self.option_order = {}
        for q in self.questions:
            last = [i for i, o in enumerate(q.options) if CATCH_ALL.match(o)]
            perm = [i for i in range(len(q.options)) if i not in last]
            key = f"{self.learner}|{q.id}".encode()
            random.Random(int(hashlib.sha256(key).hexdigest(), 16)).shuffle(perm)
            self.option_order[q.id] = perm + last
        answers, problem = read_answers(self.path)
        self.answers = {k: v for k, v in answers.items() if k in self.by_id}
        self.problem = problem  # kept for report(): the grader shows it
        if problem:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            kept = self.path.with_name(f"{self.path.name}.untrusted-{stamp}")
            os.replace(self.path, kept)
            print(
                f"[quiz] {problem}.\n[quiz] It was set aside as {kept.name} and is not "
                "used; your answers start afresh (grading ignores an edited file)."
            )
        elif verbose and self.answers:
            print(
                f"[quiz] loaded {len(self.answers)} recorded answer(s) from {self.path}"
            )

    # -- answering ---------------------------------------------------------

    def _indices(self, question: Question, choice) -> tuple[int, ...]:
        """Option indices (in the bank's order) from texts or indices."""
        items = (
            choice if isinstance(choice, (list, tuple, set, frozenset)) else [choice]
        )
        out = []
        for item in items:
            if isinstance(item, int) and 0 <= item < len(question.options):
                out.append(item)
            elif isinstance(item, str) and item in question.options:
                out.append(question.options.index(item))
            else:
                raise ValueError(
                    f"{item!r} is not an option of question {question.id!r}: give the "
                    "option's text or its index in the bank"
                )
        return tuple(sorted(set(out)))

    def answer(self, question_id: str, choice) -> Feedback:
        """Answer a question (as a click on Check would) and record it."""
        if question_id not in self.by_id:
            raise KeyError(f"no question {question_id!r}")
        question = self.by_id[question_id]
        chosen = self._indices(question, choice)
        if len(chosen) > 1 and not question.multiple:
            raise ValueError(
                f"question {question_id!r} has one correct answer: choose one option, "
                f"not {len(chosen)}"
            )
        right = set(chosen) == set(question.correct)
        previous = self.answers.get(question_id, {})
        attempts = int(previous.get("attempts", 0)) + 1
        right_at = previous.get("right_at") or (attempts if right else None)
        self.answers[question_id] = {
            "choice": list(chosen),
            "correct": right,
            "attempts": attempts,
            "first_choice": previous.get("first_choice", list(chosen)),
            "first_correct": previous.get("first_correct", right),
            "right_at": right_at,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        write_answers(self.path, self.answers, self.learner)
        self._refresh()
        return Feedback(question, right, chosen, self._message(question, chosen, right))

    def _message(self, question, chosen, right) -> str:
        if right:
            return f"Correct! {question.explanation}"
        notes = [
            question.misconceptions[i] for i in chosen if i in question.misconceptions
        ]
        missed = sorted(question.correct - set(chosen))
        parts = ["Not quite."]
        parts += notes
        if missed and question.multiple:
            parts.append(f"{len(missed)} correct option(s) not selected.")
        parts.append(question.explanation)
        return " ".join(parts)

    # -- scores ------------------------------------------------------------

    def points(self, question_id: str, policy: str | None = None) -> float:
        """What one question earns under ``policy`` (default: this quiz's)."""
        record = self.answers.get(question_id)
        if not record:
            return 0.0
        policy = policy or self.policy
        if policy == "last":
            return 1.0 if record.get("correct") else 0.0
        # files written before attempts were tracked: the last answer, if single
        single = int(record.get("attempts", 1)) == 1
        first = record.get("first_correct", bool(record.get("correct")) and single)
        if policy == "first":
            return 1.0 if first else 0.0
        right_at = record.get("right_at") or (
            1 if first else (None if not record.get("correct") else record["attempts"])
        )
        return 1.0 / right_at if right_at else 0.0

    def score(self, policy: str | None = None) -> tuple[float, int]:
        """(points, number of questions) under ``policy`` (default: this quiz's)."""
        earned = sum(self.points(q.id, policy) for q in self.questions)
        return earned, len(self.questions)

    def wrong_ids(self) -> list[str]:
        return [
            qid
            for qid in self.order
            if qid in self.answers and not self.answers[qid]["correct"]
        ]

    def summary(self) -> str:
        earned, total = self.score()
        answered = sum(1 for q in self.questions if q.id in self.answers)
        now_right = sum(
            1 for q in self.questions if self.answers.get(q.id, {}).get("correct")
        )
        policy = {"first": "first attempts", "weighted": "attempts-weighted"}.get(
            self.policy, "last answers"
        )
        return (
            f"Score: {earned:g}/{total} ({policy}, as graded). Practice: {now_right} "
            f"right now, {answered - now_right} wrong, {total - answered} not answered "
            "yet."
        )

    def _refresh(self) -> None:
        """Every score line shown (widget, report cell) says the same."""
        text = to_html(self.summary())
        if self._summary is not None:
            self._summary.value = text
        for handle in self._views:
            handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict:
        return {"text/html": to_html(self.summary()), "text/plain": self.summary()}

    def report(self) -> None:
        """Show the score (the same line as the widget's, updated after each answer).

        The grader does not read this: it scores the answers file itself, with
        its own copy of this module (``tools/grading/worker.py``).
        """
        shell = None
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            pass
        if shell is not None and getattr(shell, "kernel", None) is not None:
            from IPython.display import display

            self._views.append(display(self._bundle(), raw=True, display_id=True))
        else:
            print(self.summary())
        if self.problem:
            print(f"[quiz] note: {self.problem}; those answers were not used")

    # -- handing in --------------------------------------------------------

    def hand_in(self) -> Path | None:
        """Say which file to hand in; on Colab, download it to this computer.

        On Colab the answers file lives in the runtime's ``/content`` folder,
        which is deleted when the runtime ends: the download is the copy that
        survives.  Elsewhere the file already sits beside the notebook.
        Returns the file's path (None when nothing was answered yet).
        """
        import sys

        if not self.path.is_file():
            print(
                "[quiz] nothing to hand in yet: answer the questions, then run this "
                f"cell again (your answers are saved in {self.path.name} as you go)"
            )
            return None
        earned, total = self.score()
        if "google.colab" in sys.modules:
            from google.colab import files

            print(
                f"[quiz] Colab deletes {self.path.parent} when this runtime ends: "
                f"your browser now downloads {self.path.name} ({earned:g}/{total} "
                "points). Hand it in with this notebook (File > Download > "
                "Download .ipynb); run this cell again after answering more."
            )
            files.download(str(self.path))
        else:
            print(
                f"[quiz] hand in {self.path} ({earned:g}/{total} points) together "
                "with this notebook; it is saved after every answer."
            )
        return self.path

    # -- the widget --------------------------------------------------------

    def _question_widget(self, number: int, question: Question):
        import ipywidgets as w

        chooser = _choices(
            [(question.options[i], i) for i in self.option_order[question.id]],
            question.multiple,
        )
        chosen = chooser.chosen
        hint = (
            " <i>(select every correct answer)</i>"
            if question.multiple
            else " <i>(one answer)</i>"
        )
        title = w.HTMLMath(
            value=f"<b>{number}.</b> <small>[{lesson_label(question.lesson)}]</small> "
            f"{to_html(question.text)}{hint}",
            layout=w.Layout(width="auto"),
        )
        check = w.Button(description="Check", button_style="primary")
        feedback = w.HTMLMath(value="")
        previous = self.answers.get(question.id)
        if previous:
            feedback.value = self._feedback_html(
                question, tuple(previous["choice"]), previous["correct"], recorded=True
            )

        def on_check(_button):
            picked = chosen()
            if not picked:
                feedback.value = (
                    "<span style='color:#b35900'>Pick an answer first.</span>"
                )
                return
            result = self.answer(question.id, picked)  # refreshes the score line
            feedback.value = self._feedback_html(
                question, result.chosen, result.correct
            )

        check.on_click(on_check)
        box = w.VBox(
            [title, chooser, w.HBox([check]), feedback],
            layout=w.Layout(
                border="1px solid #dddddd", padding="6px", margin="0 0 8px 0"
            ),
        )
        box.add_class("bncourse-question")
        return box

    def _feedback_html(self, question, chosen, right, recorded=False) -> str:
        color = "#1a7f37" if right else "#b3261e"
        prefix = "(recorded) " if recorded else ""
        return (
            f"<div class='bncourse-feedback' style='color:{color}'>{prefix}"
            f"{to_html(self._message(question, chosen, right))}</div>"
        )

    def widget(self, only=None):
        """The quiz as a VBox: questions, a score line, a retry button."""
        import ipywidgets as w

        ids = only if only is not None else self.order
        self._summary = w.HTML(value=to_html(self.summary()))
        retry = w.Button(
            description="Retry wrong answers", layout=w.Layout(width="auto")
        )
        questions = w.VBox(
            [self._question_widget(n, self.by_id[qid]) for n, qid in enumerate(ids, 1)]
        )

        def on_retry(_button):
            wrong = self.wrong_ids()
            if not wrong:
                self._summary.value = to_html(self.summary() + " Nothing to retry.")
                return
            questions.children = [
                self._question_widget(n, self.by_id[qid])
                for n, qid in enumerate(wrong, 1)
            ]

        retry.on_click(on_retry)
        return w.VBox([questions, w.HBox([retry]), self._summary])


def lesson_label(key: str) -> str:
    """How a question's lesson is named in its title: 'lesson 03', 'general'."""
    return "general" if key == "general" else f"lesson {key}"


def _choices(labels, multiple: bool):
    """The options of one question, each rendered like the question (maths, code).

    RadioButtons and Checkbox labels are plain text in ipywidgets 7 and 8, so
    ``$...$`` would show raw.  Each option is a row: a button without a label,
    then an ``HTMLMath`` with the option's text.  A question with several
    correct options has checkboxes; a single-answer question has radio buttons
    (a one-option ``RadioButtons`` per row, so the row keeps its maths label),
    and choosing one clears the others.  The container's ``value`` is the
    chosen option index (single) or the list of indices (multiple), in the
    bank's numbering.
    """
    import ipywidgets as w

    def is_on(box) -> bool:
        return bool(box.value)

    def put(box, on: bool) -> None:
        if multiple:
            box.value = on
        else:
            box.index = 0 if on else None

    class Choices(w.VBox):
        def chosen(self) -> list[int]:
            return [
                i for i, box in zip(self.indices, self.boxes, strict=True) if is_on(box)
            ]

        @property
        def value(self):
            picked = self.chosen()
            return picked if self.multiple else (picked[0] if picked else None)

        @value.setter
        def value(self, choice):
            wanted = set(choice if self.multiple else [choice])
            for index, box in zip(self.indices, self.boxes, strict=True):
                put(box, index in wanted)

    boxes, rows = [], []
    for text, _ in labels:
        size = w.Layout(width="28px", flex="0 0 auto")
        if multiple:
            box = w.Checkbox(value=False, indent=False, layout=size)
        else:
            box = w.RadioButtons(options=[("", True)], index=None, layout=size)
        label = w.HTMLMath(value=to_html(text), layout=w.Layout(flex="1 1 auto"))
        row = w.HBox([box, label], layout=w.Layout(align_items="center"))
        row.add_class("bncourse-option")
        boxes.append(box)
        rows.append(row)
    chooser = Choices(rows)
    chooser.boxes, chooser.indices = boxes, [index for _, index in labels]
    chooser.multiple = multiple
    if not multiple:

        def exclusive(change):
            if change["new"]:
                for other in boxes:
                    if other is not change["owner"] and is_on(other):
                        put(other, False)

        for box in boxes:
            box.observe(exclusive, names="value")
    return chooser


# --------------------------------------------------------------------------
# a static page: the bank without a kernel (the course's website)
# --------------------------------------------------------------------------


def static_markdown(questions=None) -> str:
    """The whole bank as MyST Markdown, for a page that has no kernel.

    A static site cannot run the widget, so the website shows this instead:
    every question (grouped by lesson, general questions first) with its
    options lettered (a), (b), ... in the bank's order, and the answer, the
    explanation and what each wrong option stands for folded in a
    ``<details>`` element, so a reader can try a question before unfolding it.
    Each question is a ``div.bncourse-static-question`` with the question's id.
    The bank's light Markdown (`code`, **bold**, *italics*, $maths$) is MyST already.
    """
    questions = list(questions) if questions is not None else load_bank()
    titles = {
        item.number: f"Lesson {item.number} · {item.title}" for item in course.LESSONS
    }
    titles["general"] = "General questions"
    keys = list(LESSONS) + sorted({q.lesson for q in questions} - set(LESSONS))
    lines: list[str] = []
    number = 0
    for key in keys:
        group = [q for q in questions if q.lesson == key]
        if not group:
            continue
        lines += [f'<p class="rubric">{html.escape(titles.get(key, key))}</p>', ""]
        for q in group:
            number += 1
            hint = " *(select every correct answer)*" if q.multiple else ""
            lines += [
                f'<div class="bncourse-static-question" id="quiz-{q.id}">',
                "",
                f"**{number}.** {q.text}{hint}",
                "",
            ]
            lines += [f"- **({chr(97 + i)})** {o}" for i, o in enumerate(q.options)]
            right = ", ".join(f"({chr(97 + i)})" for i in sorted(q.correct))
            lines += [
                "",
                '<details class="bncourse-answer">'
                "<summary>Answer and explanation</summary>",
                "",
                f"**Answer: {right}.** {q.explanation}",
                "",
            ]
            wrong = [
                f"- **({chr(97 + i)})** {q.misconceptions[i]}"
                for i in sorted(q.misconceptions)
            ]
            if wrong:
                lines += ["Why not the others:", "", *wrong, ""]
            lines += ["</details>", "", "</div>", ""]
    return "\n".join(lines)
