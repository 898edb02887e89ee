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
* ``Quiz.report()`` prints the score: one point per question.  The grader
  scores the answers file with its own copy of this module.
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

from . import config, contract, course

BANK_FILE = "quiz_bank.json"
ANSWERS_FILE = "06_quiz.answers.json"  # the grader looks for this name
# Not a secret: the checksum detects accidental or naive edits of the file.
_SALT = "bncourse-quiz-v1"
LESSONS = course.quiz_keys()  # derived from the lesson registry


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
    return [
        Question(
            id=q["id"],
            lesson=q["lesson"],
            text=q["text"],
            options=tuple(q["options"]),
            correct=frozenset(q["correct"]),
            explanation=q["explanation"],
            misconceptions={int(k): v for k, v in q.get("misconceptions", {}).items()},
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
    ):
        self.questions = list(questions) if questions is not None else load_bank()
        self.by_id = {q.id: q for q in self.questions}
        self.learner = learner.strip()
        self.path = (
            Path(answers_file) if answers_file else config.quiz_dir() / ANSWERS_FILE
        )
        order = list(self.by_id)
        random.Random(seed).shuffle(order)
        self.order = order
        self.option_order = {}
        for q in self.questions:
            perm = list(range(len(q.options)))
            key = f"{self.learner}|{q.id}".encode()
            random.Random(int(hashlib.sha256(key).hexdigest(), 16)).shuffle(perm)
            self.option_order[q.id] = perm
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
        right = set(chosen) == set(question.correct)
        previous = self.answers.get(question_id, {})
        self.answers[question_id] = {
            "choice": list(chosen),
            "correct": right,
            "attempts": int(previous.get("attempts", 0)) + 1,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        write_answers(self.path, self.answers, self.learner)
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

    def score(self) -> tuple[int, int]:
        right = sum(
            1 for q in self.questions if self.answers.get(q.id, {}).get("correct")
        )
        return right, len(self.questions)

    def wrong_ids(self) -> list[str]:
        return [
            qid
            for qid in self.order
            if qid in self.answers and not self.answers[qid]["correct"]
        ]

    def summary(self) -> str:
        right, total = self.score()
        answered = sum(1 for q in self.questions if q.id in self.answers)
        wrong = answered - right
        return (
            f"Score: {right}/{total} correct; {wrong} wrong, {total - answered} not "
            "answered yet."
        )

    def report(self) -> None:
        """Print the score (one point per question); ``score()`` gives the numbers.

        The grader does not read this: it scores the answers file itself, with
        its own copy of this module (``tools/grading/worker.py``).
        """
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
                "[quiz] nothing to hand in yet: answer a question first (your "
                f"answers are saved in {self.path.name})"
            )
            return None
        right, total = self.score()
        if "google.colab" in sys.modules:
            from google.colab import files

            print(
                f"[quiz] Colab deletes {self.path.parent} when this runtime ends: "
                f"your browser now downloads {self.path.name} ({right}/{total} "
                "correct). Hand it in with this notebook (File > Download > "
                "Download .ipynb); run this cell again after answering more."
            )
            files.download(str(self.path))
        else:
            print(
                f"[quiz] hand in {self.path} ({right}/{total} correct) together "
                "with this notebook; it is saved after every answer."
            )
        return self.path

    # -- the widget --------------------------------------------------------

    def _question_widget(self, number: int, question: Question):
        import ipywidgets as w

        perm = self.option_order[question.id]
        labels = [(question.options[i], i) for i in perm]
        if question.multiple:
            chooser = w.VBox(
                [
                    w.Checkbox(
                        value=False,
                        description=label,
                        indent=False,
                        layout=w.Layout(width="auto"),
                    )
                    for label, _ in labels
                ]
            )

            def chosen():
                return [
                    index
                    for (label, index), box in zip(
                        labels, chooser.children, strict=True
                    )
                    if box.value
                ]

            hint = " <i>(select every correct answer)</i>"
        else:
            chooser = w.RadioButtons(
                options=labels, value=None, layout=w.Layout(width="auto")
            )

            def chosen():
                return [] if chooser.value is None else [chooser.value]

            hint = ""
        title = w.HTMLMath(
            value=f"<b>{number}.</b> {to_html(question.text)}{hint}",
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
            result = self.answer(question.id, picked)
            feedback.value = self._feedback_html(
                question, result.chosen, result.correct
            )
            self._summary.value = to_html(self.summary())

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
        retry = w.Button(description="Retry wrong answers")
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
