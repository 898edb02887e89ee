"""Who handed a submission in: from where the LMS put the file, never its content.

A submission's metadata (``metadata.bncourse.learner``) and the quiz answers
file's ``learner`` are the learner's to write: they are only compared with the
place (``claim_note``).  The place is read at a fixed level below the **class
folder** (``class_folder``: the folder that holds every submission graded
together, or the instructor's ``--class-folder``), never from folders below
that level, which a learner's own archive can make.  The rules, first match
wins, on the first part of the path below the class folder:

1. Moodle's "Download all submissions": one folder per participant,
   ``<Full Name>_<id>_assignsubmission_file_/<file>`` -> ``Participant <id>``
   (the identifier of Moodle's grading worksheet).
2. Canvas's "Download Submissions": ``<login>_<user id>_<submission id>_<name>``,
   ``<login>_LATE_<user id>_...`` for late ones -> the Canvas user id (the
   gradebook's ``ID`` column); a folder of that name (an unpacked archive)
   counts as the file would.
3. One folder per learner (``alice/02_bn_forward_backward.ipynb``, whatever
   the file's name) -> that folder.  A file deeper down
   (``mallory/bob/02_....ipynb``) is still that folder's (``mallory``), with a
   note (``nested_note``).
4. A flat folder with the learner in the file name
   (``02_bn_forward_backward_alice.ipynb``, ``02_alice.ipynb``) -> the file
   name less the lesson's name and number.
5. Else the file name without ``.ipynb``.

Gradescope grades one submission per run: its results need no id.

Where a learner can choose the file's name (a flat folder), the name can
claim another learner's id, or one that only looks like it (``lookalike_keys``:
Unicode's confusable skeleton, UTS #39).  It can never replace that learner's
score: two submissions with one id, or look-alike ids, for one lesson are both
kept, and both are flagged for the instructor (``report.flag_duplicates``);
only a group with exactly one ``plain`` id keeps that one's mark.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath

# the LMS's ids are ASCII digits (``\d`` would take any script's digits)
MOODLE_FOLDER = re.compile(r"^(?P<name>.*)_(?P<id>[0-9]+)_assignsubmission_[a-z]+_?$")
CANVAS_FILE = re.compile(
    r"^(?P<login>[^_/]+)(?:_LATE)?_(?P<uid>[0-9]+)_(?P<sid>[0-9]+)_(?P<original>.+)$"
)
MAX_ID = 100  # characters


@dataclass(frozen=True)
class Identity:
    id: str  # the gradebook key
    name: str  # a readable name, where the place gives one
    source: str  # "moodle", "canvas", "folder" or "file"


def _stem(name: str) -> str:
    return name[:-6] if name.endswith(".ipynb") else PurePath(name).stem


def class_folder(files) -> str | None:
    """The folder every submission in ``files`` lies below (the paths as given).

    The folder that all of them share: with one submission, the folder it is
    in; ``""`` for the current folder.  Relative and absolute paths mixed:
    the absolute folder.  None where there is none: no file, or only the file
    system's root is shared (then ``identify`` reads each layout as it comes).
    Every shard of a class must be given the same list (the README says so),
    so every shard finds the same.
    """
    folders = [os.path.dirname(os.path.normpath(str(f))) for f in files]
    if not folders:
        return None
    try:
        shared = os.path.commonpath(folders) if any(folders) else ""
    except ValueError:  # absolute and relative mixed
        shared = os.path.commonpath([os.path.abspath(f or ".") for f in folders])
    return None if shared and shared == os.path.dirname(shared) else shared


def parts_below(file: str, top: str | None) -> tuple[str, ...] | None:
    """The parts of ``file`` below the class folder ``top`` (None: not below it)."""
    if top is None:
        return None
    path = os.path.normpath(str(file))
    if top in ("", "."):
        parts = PurePath(path).parts
        return None if PurePath(path).is_absolute() else parts
    top = os.path.normpath(top)
    if os.path.isabs(top) and not os.path.isabs(path):
        path = os.path.abspath(path)
    try:
        if os.path.commonpath([top, path]) != top:
            return None
    except ValueError:
        return None
    return PurePath(os.path.relpath(path, top)).parts


def identify(file: str, lesson: str = "", top: str | None = None) -> Identity:
    """The learner of the submission at ``file`` (the path the grader was given).

    ``top`` is the class folder (``class_folder``); the id is read from the
    first part of the path below it.  Without one (a row built by hand), the
    file's own folder stands for a learner's folder when the file has the
    lesson's name, as the LMS layouts put it.
    """
    path = PurePath(str(file))
    parts = parts_below(file, top)
    if parts is None:  # no class folder known: the layouts as they come
        parts = (path.name,)
        for folder in reversed(path.parents):  # the outermost Moodle folder
            if MOODLE_FOLDER.match(folder.name):
                parts = path.relative_to(folder.parent).parts
                break
        else:
            named = lesson and _stem(path.name) == lesson
            if named and path.parent.name not in ("", ".", ".."):
                parts = (path.parent.name, path.name)
    first = parts[0] if parts else path.name
    match = MOODLE_FOLDER.match(first) if len(parts) > 1 else None
    if match:
        return Identity(
            f"Participant {match['id']}", match["name"].strip()[:MAX_ID], "moodle"
        )
    match = CANVAS_FILE.match(first)
    if match and not re.match(r"\d\d$", match["login"]):
        return Identity(match["uid"], match["login"][:MAX_ID], "canvas")
    if len(parts) > 1:
        folder = first[:MAX_ID]
        return Identity(folder, folder, "folder")
    stem = _stem(path.name)
    rest = stem.replace(lesson, "") if lesson else stem
    rest = re.sub(r"^\d\d(?=[_\-. ]|$)", "", rest).strip("_-. ")
    learner = (rest or stem)[:MAX_ID]
    return Identity(learner, learner, "file")


def nested_note(file: str, top: str | None) -> str:
    """A note for a submission more than one folder below the class folder."""
    parts = parts_below(file, top)
    if parts is None or len(parts) <= 2:
        return ""
    inner = "/".join(parts[1:-1])
    return (
        f"the file lies in {inner!r} inside the learner's folder {parts[0]!r}: "
        f"graded as {identify(file, '', top).id!r} (folders inside a submission "
        "never name the learner)"
    )


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


# --------------------------------------------------------------------------
# ids that look alike (Unicode Technical Standard #39, Security Mechanisms)
# --------------------------------------------------------------------------

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt): Cf, variation
# selectors and Other_Default_Ignorable_Code_Point (PropList.txt), less white
# space, the interlinear annotation characters, Egyptian format controls and
# the prepended concatenation marks.  Python's unicodedata has no such
# property; these are the standard's own ranges.
_OTHER_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180D),  # variation selectors from here ...
    (0x180F, 0x180F),
    (0xFE00, 0xFE0F),
    (0xE0100, 0xE01EF),  # ... to here
    (0x2065, 0x2065),
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)
_NOT_IGNORABLE = (
    (0xFFF9, 0xFFFB),
    (0x13430, 0x1343F),
    (0x0600, 0x0605),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
)


def _within(code: int, ranges) -> bool:
    return any(low <= code <= high for low, high in ranges)


def default_ignorable(ch: str) -> bool:
    """Unicode's Default_Ignorable_Code_Point: drawn as nothing (U+200B, U+3164)."""
    code = ord(ch)
    if _within(code, _NOT_IGNORABLE) or ch.isspace():
        return False
    return unicodedata.category(ch) == "Cf" or _within(code, _OTHER_IGNORABLE)


@lru_cache(maxsize=1)
def _prototypes() -> dict:
    """Each confusable character -> its prototype (UTS #39's confusables.txt).

    The data is ``confusable_homoglyphs``'s copy of confusables.txt, which it
    keeps as pairs both ways round: every line joins one character to its
    prototype, so each prototype is the centre of a star.  A source has one
    neighbour (its prototype, a string of one or more characters); a prototype
    with one source is told from it by its length, else either may stand for
    both (the smaller one, for every such pair: equal skeletons stay equal).
    """
    from confusable_homoglyphs.confusables import confusables_data

    def clean(text):  # the package wraps right-to-left letters in U+200E marks
        return text.replace("\u200e", "")

    links: dict = {}
    for key, entries in confusables_data.items():
        for entry in entries:
            a, b = clean(key), clean(entry["c"])
            if a and b and a != b:
                links.setdefault(a, set()).add(b)
                links.setdefault(b, set()).add(a)
    table = {}
    for char, near in links.items():
        if len(char) != 1 or len(near) != 1:
            continue  # a prototype, or the centre of a star: itself
        (other,) = near
        if len(other) > 1 or len(links[other]) > 1:
            table[char] = other
        elif other < char:  # a pair alone: both go to the smaller
            table[char] = other
    return table


def skeleton(text: str) -> str:
    """UTS #39's skeleton: equal for strings a reader cannot tell apart.

    NFD; default-ignorable characters removed; each character replaced by its
    confusables.txt prototype (Cyrillic ``а`` and full-width ``ａ`` -> ``a``,
    U+00A0 -> space); NFD again.  Accents stay: ``José`` and ``Jose`` differ,
    precomposed and decomposed ``José`` do not.
    """
    table = _prototypes()
    text = unicodedata.normalize("NFD", str(text))
    text = "".join(ch for ch in text if not default_ignorable(ch))
    for _ in range(2):  # a prototype's own characters, renamed alike
        text = "".join(table.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFD", text)


def lookalike_keys(learner_id: str) -> tuple[str, str]:
    """Two ids that share either key look alike to a reader: one learner, as far
    as the grader knows (``report.duplicates`` groups them).

    The skeleton as written (``Ian`` and ``lan``) and case-folded (``Carol``
    and ``carol``: Moodle and Canvas match logins without case), with runs of
    white space made one space and none at either end.
    """

    def squeeze(text):  # any white space (U+2028 too) as one space
        return re.sub(r"\s+", " ", text).strip()

    text = str(learner_id)
    return squeeze(skeleton(text)), squeeze(skeleton(text.casefold()))


# UTS #39's "highly restrictive" level: one script (besides Common and
# Inherited), or Latin with the scripts that Chinese, Japanese or Korean
# writing mixes.
_SCRIPT_SETS = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)


def scripts(text: str) -> set:
    """The scripts of ``text``'s characters, besides Common and Inherited."""
    from confusable_homoglyphs.categories import alias

    return {alias(ch) for ch in text} - {"COMMON", "INHERITED"}


def plain(learner_id: str) -> bool:
    """An id a reader sees exactly as it is stored.

    NFC, with no compatibility form (full-width letters, ligatures, NFKC
    leaves it as it is); no default-ignorable, control, format, private or
    unassigned character; no space but single U+0020 between other
    characters; letters of one script (besides Common and Inherited) or of
    one of UTS #39's highly restrictive mixes (Latin with Japanese, Chinese or
    Korean).  ``José``, ``Anna Lee`` and ``Иван`` are plain; ``аlice`` (a
    Cyrillic ``а``), ``alice\u3164``, ``ａlice`` and a decomposed ``José``
    are not.
    """
    text = str(learner_id)
    if not text or text != unicodedata.normalize("NFKC", text):
        return False
    if not unicodedata.is_normalized("NFC", text):
        return False
    if text != text.strip(" ") or "  " in text:
        return False
    for ch in text:
        if ch == " ":
            continue
        if ch.isspace() or default_ignorable(ch):
            return False
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return False
    found = scripts(text)
    return len(found) <= 1 or any(found <= allowed for allowed in _SCRIPT_SETS)
