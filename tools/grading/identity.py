"""Who handed a submission in: from where the LMS put the file, never its content.

A submission's metadata (``metadata.bncourse.learner``) and the quiz answers
file's ``learner`` are the learner's to write: they are only compared with the
place (``claim_note``).  The rules, first match wins:

1. Moodle's "Download all submissions": one folder per participant,
   ``<Full Name>_<id>_assignsubmission_file_/<file>`` -> ``Participant <id>``
   (the identifier of Moodle's grading worksheet).
2. Canvas's "Download Submissions": ``<login>_<user id>_<submission id>_<name>``,
   ``<login>_LATE_<user id>_...`` for late ones -> the Canvas user id (the
   gradebook's ``ID`` column).
3. One folder per learner with the lesson's own file name
   (``alice/02_bn_forward_backward.ipynb``) -> the folder.
4. A flat folder with the learner in the file name
   (``02_bn_forward_backward_alice.ipynb``, ``02_alice.ipynb``) -> the file
   name less the lesson's name and number.
5. Else the file name without ``.ipynb``.

Gradescope grades one submission per run: its results need no id.

Where a learner can choose the file's name (a flat folder, a folder per
learner that keeps the names learners gave), the name can claim another
learner's id.  It can never replace that learner's score: two submissions
with one id for one lesson are both kept, neither is put in the gradebooks,
and both are flagged for the instructor (``report.flag_duplicates``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath

MOODLE_FOLDER = re.compile(r"^(?P<name>.*)_(?P<id>\d+)_assignsubmission_[a-z]+_?$")
CANVAS_FILE = re.compile(
    r"^(?P<login>[^_/]+)(?:_LATE)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<original>.+)$"
)
MAX_ID = 100  # characters


@dataclass(frozen=True)
class Identity:
    id: str  # the gradebook key
    name: str  # a readable name, where the place gives one
    source: str  # "moodle", "canvas", "folder" or "file"


def _stem(name: str) -> str:
    return name[:-6] if name.endswith(".ipynb") else PurePath(name).stem


def identify(file: str, lesson: str = "") -> Identity:
    """The learner of the submission at ``file`` (the path the grader was given)."""
    path = PurePath(str(file))
    # the outermost Moodle participant folder: Moodle made it; one inside it
    # would be the learner's own (a folder in an uploaded archive)
    for folder in reversed(path.parents):
        match = MOODLE_FOLDER.match(folder.name)
        if match:
            return Identity(
                f"Participant {match['id']}", match["name"].strip()[:MAX_ID], "moodle"
            )
    match = CANVAS_FILE.match(path.name)
    if match and not re.match(r"\d\d$", match["login"]):
        return Identity(match["uid"], match["login"][:MAX_ID], "canvas")
    stem = _stem(path.name)
    if lesson and stem == lesson and path.parent.name not in ("", ".", ".."):
        folder = path.parent.name[:MAX_ID]
        return Identity(folder, folder, "folder")
    rest = stem.replace(lesson, "") if lesson else stem
    rest = re.sub(r"^\d\d(?=[_\-. ]|$)", "", rest).strip("_-. ")
    learner = (rest or stem)[:MAX_ID]
    return Identity(learner, learner, "file")


def claim_note(identity: Identity, claims: dict) -> list[str]:
    """Notes for each claimed learner (``{where: name}``) that is not the place's."""
    known = {identity.id.casefold(), identity.name.casefold()}
    notes = []
    for where, claimed in claims.items():
        claimed = str(claimed or "").strip()[:MAX_ID]
        if claimed and claimed.casefold() not in known:
            notes.append(
                f"{where} names learner {claimed!r}, but the file was handed in as "
                f"{identity.id!r}: the place counts"
            )
    return notes


def canonical(learner_id: str) -> str:
    """What two ids that look alike share: one learner, as far as the grader knows.

    NFKC (full-width letters, ligatures), no invisible or combining characters
    and no spaces, case-folded: ``Alice``, ``alice\u200b`` and ``ａｌｉｃｅ``
    all give ``alice``.  Two submissions of one lesson whose ids share this
    form are flagged as one learner's (``report.duplicates``), so an id that
    imitates another's can never stand beside it unnoticed.
    """
    text = unicodedata.normalize("NFKD", str(learner_id))
    kept = (
        ch
        for ch in text
        if not ch.isspace() and unicodedata.category(ch)[0] not in "CMZ"
    )
    return unicodedata.normalize("NFKC", "".join(kept).casefold())
