"""Writing what a learner controls: CSV cells, output file names, HTML text.

Every string that comes from a submission (its file and folder names, the
learner id taken from them, what its code printed or raised, the notes about
it) is the learner's.  Three rules keep it from acting on the instructor's
side:

* ``learner_text``: the one gate through which text from a submission (what
  its kernel sends: exception type names and messages, hook names, outputs,
  cell sources; its file and folder names, through ``path_text``) enters the
  grader's records.  It comes out writable (a lone surrogate or an undecodable
  byte is replaced), inert (control characters, terminal escape sequences and
  bidi overrides are shown as ``\\u001b``-style escapes), on one line unless
  asked for lines (so it cannot start a line of a report, a CSV's mistakes or
  the console), and capped; ``learner_notes`` caps a list of notes as a whole.
* ``cell``: a CSV cell that a spreadsheet would run as a formula (OWASP: one
  that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; here
  also their full-width forms and any control character) gets a leading
  ``'``, and so does every field of it that a spreadsheet splitting on another
  separator (``,``, ``;``, ``|``, tab, space, any whitespace) would see: a
  piece after a separator that starts (after quotes and apostrophes) with a
  trigger.
  ``uncell`` removes exactly those, so every value comes back as it was
  (``grade.py merge`` reads the CSVs it wrote).  ``write_table`` and
  ``read_table`` are the only CSV writer and reader of the grader's outputs.
* ``output_name``: a file name per submission that no submission can steer
  onto another's: a readable part (letters, digits, ``_`` and ``-`` only) and
  a hash of the submission's path as the grader was given it, which differs
  for any two submissions of a class (shards included: each is given the same
  list of paths).
* ``esc``: HTML-escaped text, quotes included; learner text never goes
  through markdown (whose links and raw HTML pass escaping by).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import os
import re
import sys
from pathlib import Path, PurePath

from helpers import contract

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's (``_TRIGGER`` has more)

TEXT_CAP = 300  # characters of one piece of learner text (an error, a note)
NOTES_COUNT = 30  # notes kept per submission; the rest are counted
NOTES_CAP = 6000  # characters of a submission's notes, all together

# Shown escaped: C0 and C1 controls and DEL (terminal escape sequences start
# with ESC or a C1 CSI), the bidi controls that reorder what follows them,
# and lone surrogates (not writable as UTF-8).  Newlines are handled apart.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INERT = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_BREAKS = "\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029"
_ONE_LINE = re.compile(f"[ \t]*[{_BREAKS}][{_BREAKS} \t]*")
_LINES = re.compile(f"\r\n|[{_BREAKS}]")


_CUT = re.compile(r" \[\.\.\. (\d+) more characters\]$")


def _escape(match) -> str:
    char = match.group(0)
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # a lone surrogate: not text
    return f"\\u{ord(char):04x}"


def learner_text(value, limit: int = TEXT_CAP, *, lines: bool = False) -> str:
    """Text from a submission, safe to store, print and write anywhere.

    Undecodable bytes become ``\\xff``, lone surrogates U+FFFD, control
    characters and bidi overrides ``\\u001b``-style escapes; line breaks become
    one space, or with ``lines`` plain ``\\n``; at most ``limit`` characters of
    the text are kept, and the cut says how many were dropped.  Idempotent.
    """
    if value is None:
        text = ""
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "backslashreplace")
    else:
        text = value if isinstance(value, str) else str(value)
    found = _CUT.search(text)  # cut before: cleaned again, it stays as it is
    before = int(found.group(1)) if found else 0
    if found:
        text = text[: found.start()]
    size = len(text)
    text = text[:limit]
    text = _LINES.sub("\n", text) if lines else _ONE_LINE.sub(" ", text)
    if lines:  # keep the newlines (and tabs) of what the cell printed
        text = re.sub(
            f"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f{_BIDI}\ud800-\udfff]",
            _escape,
            text,
        )
    else:
        text = _INERT.sub(_escape, text)
    cut = before + max(size - limit, 0) + max(len(text) - limit, 0)
    text = text[:limit]
    if cut:
        text += f" [... {cut} more characters]"
    return text


_MORE = re.compile(r"\.\.\. and (\d+) more notes")


def learner_notes(notes, count: int = NOTES_COUNT, total: int = NOTES_CAP) -> list:
    """Notes about a submission, each ``learner_text``, bounded all together:
    past ``count`` notes or ``total`` characters, one "... and N more notes"
    (idempotent: a list it returned comes back as it is)."""
    texts = [learner_text(note) for note in notes]
    more = _MORE.fullmatch(texts[-1]) if texts else None
    extra = int(more.group(1)) if more else 0
    if more:
        texts.pop()
    kept, size = [], 0
    for index, text in enumerate(texts):
        if len(kept) >= count or size + len(text) > total:
            extra += len(texts) - index
            break
        kept.append(text)
        size += len(text) + 2
    if extra:
        kept.append(f"... and {extra} more notes")
    return kept


NOTE_SEPARATOR = "; "
_NOTE_TOKENS = re.compile(r";;|; |;|[^;]+")


def join_notes(notes) -> str:
    """Notes in one cell, ``"; "`` between them; a note's own ``;`` is written
    ``;;``, so no text inside a note (a learner's words, a grader's own list)
    reads as the end of one note and the start of another."""
    return NOTE_SEPARATOR.join(str(note).replace(";", ";;") for note in notes)


def split_notes(text: str) -> list:
    """The notes ``join_notes`` was given (empty ones dropped)."""
    notes, current = [], []
    for token in _NOTE_TOKENS.findall(text or ""):
        if token == NOTE_SEPARATOR:
            notes.append("".join(current))
            current = []
        else:
            current.append(";" if token == ";;" else token)
    notes.append("".join(current))
    return [note for note in notes if note]


def path_text(path) -> str:
    """A path as the grader shows it, one to one: its bytes as UTF-8, where
    ``\\`` is a backslash, ``\\xff`` a byte that is not UTF-8 and ``\\u001b``
    a control character or bidi override (escaped, never raw)."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # a surrogate that no file system name decodes to
        raw = os.fspath(path).encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")

    def escape(match) -> str:
        char = match.group(0)
        if "\udc80" <= char <= "\udcff":
            return f"\\x{ord(char) - 0xDC00:02x}"
        return f"\\u{ord(char):04x}"

    return re.sub(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]", escape, text)


# A field a spreadsheet sees: the cell cut at any separator it may split on.
# Excel's Text Import Wizard and LibreOffice's CSV dialog offer comma,
# semicolon, tab and space (and "other": a pipe is the usual one); line breaks
# end a record; and any other whitespace (``\s``: vertical tab, form feed, the
# information separators, NEL, no-break and ideographic spaces ...) may be
# taken for one.  A trigger after quotes counts too.  (An arbitrary letter
# typed as "other" is not covered: no text could be written under it.)
_FIELDS = re.compile(r"([,;|\s])")
# A field a spreadsheet may run: one that starts with = + - @ (OWASP; their
# full-width forms too) or a control character (tab and CR are OWASP's).
_TRIGGER = re.compile("[=+\\-@\uff1d\uff0b\uff0d\uff20\x00-\x1f\x7f-\x9f]")


def _leads(text: str):
    """The start of every field of ``text`` (its pieces between separators)
    and whether a spreadsheet would run it: whether its text from there, after
    quotes and apostrophes, starts with a trigger (a piece that is only quotes
    is judged by the separator after it: a tab, a CR)."""
    pieces, at = _FIELDS.split(text), 0
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            lead = text[at:].lstrip("'\"")[:1]
            yield index, bool(lead) and bool(_TRIGGER.match(lead))
        at += len(piece)


def cell(value) -> str:
    """A CSV cell no spreadsheet runs, whatever its separator: each field of it
    that could start a formula gets a leading ``'`` (``uncell`` undoes it)."""
    text = "" if value is None else str(value)
    if not text:
        return text
    pieces = _FIELDS.split(text)
    for index, risky in list(_leads(text)):
        if risky:
            pieces[index] = "'" + pieces[index]
    text = "".join(pieces)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # never a reason to lose the whole file
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def uncell(text: str) -> str:
    """The value ``cell`` was given: a field it prefixed still starts with a
    trigger after its quotes and apostrophes, one it left never does."""
    pieces = _FIELDS.split(text)
    for index, risky in list(_leads(text)):
        if risky and pieces[index][:1] == "'":
            pieces[index] = pieces[index][1:]
    return "".join(pieces)


def csv_text(header, records) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([cell(v) for v in header])
    for record in records:
        writer.writerow([cell(v) for v in record])
    return buffer.getvalue()


def write_table(path: Path, header, records) -> Path:
    """A CSV of neutralised cells, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contract.write_atomic(path, csv_text(header, records))
    return path


def read_table(path: Path) -> list[dict]:
    """The records of a CSV that ``write_table`` wrote, values as given."""
    _no_field_limit()
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [uncell(h) for h in next(reader)]
        except StopIteration:
            return []
        return [
            dict(zip(header, (uncell(v) for v in record), strict=False))
            for record in reader
        ]


def _no_field_limit() -> None:
    """Read fields of any size (a CSV the grader wrote may hold long notes)."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # a C long smaller than Py_ssize_t
            limit //= 2


def output_name(file: str) -> str:
    """``<folder>--<stem>-<hash>``: readable, and unique per submission path."""
    path = PurePath(str(file))
    stem = path.name[:-6] if path.name.endswith(".ipynb") else path.name
    readable = f"{path.parent.name}--{stem}" if path.parent.name else stem
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", readable)[:80].strip("_-") or "file"
    raw = str(file).encode("utf-8", "surrogateescape")
    return f"{readable}-{hashlib.sha256(raw).hexdigest()[:16]}"


def esc(text) -> str:
    """HTML text (quotes escaped too, for attribute values)."""
    return html.escape("" if text is None else str(text), quote=True)
