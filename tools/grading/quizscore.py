"""The quiz, scored from the choices an answers file records, by the grader's bank.

The answers file is the learner's: a hand-made one can record any choices it
likes (the quiz's checksum uses a public salt: it stops accidents, not a
determined learner).  So the grader trusts nothing in it but the choices:

* each question's first and last answer are recomputed from ``first_choice``
  and ``choice`` against the grader's own bank (``helpers.quiz.load_bank``);
  the file's ``correct`` and ``first_correct`` flags count for nothing, and
  ``right_at`` only sets k of the weighted policy (below);
* a choice must be a list of distinct option indices of that question, and a
  single-answer question's exactly one; anything else (out of range, not an
  int, repeated, too long) scores that question 0 with a note;
* a file that is not JSON, too large, too deep, of the wrong shape, with a
  question recorded twice or a checksum that does not match (an edit the quiz
  itself refuses) is not used: the quiz scores 0 with a note.  Unknown question
  ids are ignored, with a note.

Policies (``helpers.quiz.POLICIES``): ``first`` a point when the first choice
is right; ``last`` a point when the last choice is right; ``weighted`` a point
when the first choice is right, else 1/k when the last choice is right, with k
the attempt the file says it first was right at (at least 2; its attempt count
when it says nothing valid), else 0.  A forger gains nothing by ``right_at``:
claiming the first choice right earns more, and is what the first policy
already has to take on trust.

Nothing here raises on a learner's file: every problem becomes a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 1_000_000  # a real answers file of 42 questions is about 10 kB
MAX_ATTEMPTS = 10**6


class Malformed(ValueError):
    """The file cannot be used; the message says why."""


@dataclass
class Scored:
    fraction: float = 0.0
    details: dict = field(default_factory=dict)  # question id -> its result
    notes: list = field(default_factory=list)
    learner: str = ""  # what the file claims (cross-checked by the grader)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise Malformed(f"recorded twice: {', '.join(map(repr, twice))}")
    return dict(pairs)


def read(path: Path) -> dict:
    """The file's JSON object, or ``Malformed``."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise Malformed(f"{size:,} bytes, more than the {MAX_BYTES:,} allowed")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise Malformed(f"more than the {MAX_BYTES:,} bytes allowed")
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except Malformed:
        raise
    except RecursionError:
        raise Malformed("nested too deep") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise Malformed(f"not valid JSON ({type(exc).__name__}: {first})") from None
    if not isinstance(data, dict):
        raise Malformed(f"a JSON {type(data).__name__}, not an object")
    return data


def claimed_learner(path: Path) -> str:
    """The ``learner`` the file names, or '' (never raises)."""
    try:
        learner = read(path).get("learner", "")
    except Malformed:
        return ""
    return learner.strip()[:100] if isinstance(learner, str) else ""


def _choice(value, question) -> tuple[int, ...]:
    """Valid option indices, or ``ValueError`` saying what is wrong."""
    if not isinstance(value, list):
        raise ValueError(f"not a list ({type(value).__name__})")
    if len(value) > len(question.options):
        raise ValueError(f"{len(value)} options chosen of {len(question.options)}")
    if not all(type(i) is int for i in value):
        raise ValueError("an option that is not an integer")
    if not all(0 <= i < len(question.options) for i in value):
        raise ValueError("an option out of range")
    if len(set(value)) != len(value):
        raise ValueError("an option chosen twice")
    if not value:
        raise ValueError("no option chosen")
    if not question.multiple and len(value) != 1:
        raise ValueError("a single-answer question answered with several options")
    return tuple(sorted(value))


def _count(value, default: int) -> int:
    if type(value) is int and 1 <= value <= MAX_ATTEMPTS:
        return value
    return default


def points(first_right: bool, last_right: bool, right_at: int, policy: str) -> float:
    if policy == "last":
        return 1.0 if last_right else 0.0
    if first_right:
        return 1.0
    if policy == "weighted" and last_right:
        return 1.0 / max(2, right_at)
    return 0.0


def _note_unknown(result, unknown: list) -> None:
    """A note for answers to questions the bank does not have (ignored)."""
    unknown = sorted(str(k)[:40] for k in unknown)
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        result.notes.append(
            f"answers file: unknown question(s) {', '.join(map(repr, unknown[:3]))}"
            f"{more} ignored"
        )


def score(path: Path, bank, policy: str = "first") -> Scored:
    """Each question of ``bank`` scored from the choices ``path`` records."""
    result = Scored()
    questions = list(bank)
    result.details = {
        q.id: {
            "lesson": q.lesson,
            "answered": False,
            "correct": False,
            "choice": [],
            "attempts": 0,
            "first_correct": False,
            "points": 0.0,
        }
        for q in questions
    }
    try:
        data = read(path)
        learner = data.get("learner", "")
        result.learner = learner.strip()[:100] if isinstance(learner, str) else ""
        answers = data.get("answers")
        if not isinstance(answers, dict):
            raise Malformed(f"'answers' is not an object ({type(answers).__name__})")
        from helpers import quiz

        if data.get("checksum") != quiz._checksum(answers):
            raise Malformed("edited by hand (its checksum does not match)")
    except Malformed as exc:
        result.notes.append(f"answers file not used: {exc}")
        return result
    except Exception as exc:  # a grader's bug must not stop the class
        result.notes.append(f"answers file not used: {type(exc).__name__}: {exc}"[:300])
        return result
    by_id = {q.id: q for q in questions}
    _note_unknown(result, [k for k in answers if k not in by_id])
    invalid = []
    for qid, record in answers.items():
        if qid not in by_id:
            continue
        question, item = by_id[qid], result.details[qid]
        try:
            if not isinstance(record, dict):
                raise ValueError(f"not an object ({type(record).__name__})")
            last = _choice(record.get("choice"), question)
            first_raw = record.get("first_choice")
            attempts = _count(record.get("attempts"), 1)
            if first_raw is None and attempts == 1:  # written before it was kept
                first = last
            elif first_raw is None:
                first = None
            else:
                first = _choice(first_raw, question)
        except ValueError as exc:
            invalid.append(f"{qid}: {exc}")
            item["answered"] = True
            continue
        correct = tuple(sorted(question.correct))
        first_right, last_right = first == correct, last == correct
        right_at = _count(record.get("right_at"), attempts)
        item.update(
            answered=True,
            correct=last_right,
            choice=list(last),
            attempts=attempts,
            first_correct=first_right,
            points=points(first_right, last_right, right_at, policy),
        )
    if invalid:
        more = f" (+{len(invalid) - 3} more)" if len(invalid) > 3 else ""
        result.notes.append(
            "answers file: invalid choice, scored 0: " + "; ".join(invalid[:3]) + more
        )
    total = len(questions)
    earned = sum(item["points"] for item in result.details.values())
    result.fraction = earned / total if total else 0.0
    return result
